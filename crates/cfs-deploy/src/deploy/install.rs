//! `system install to-filesystem` (boot-deploy.md §6.1): an OCI OS image
//! installed on a physical root and its boot directory.
//!
//! 1. `<root>/composefs` (0700): a SHA-512 repository, EROFS V1, secure when
//!    the filesystem has fs-verity (otherwise only with
//!    `allow_missing_verity`);
//! 2. the image pulled and tagged `localhost/bootc-<manifest digest>` (the GC
//!    root bootc uses), its boot image built (sealed UKIs checked);
//! 3. `state/deploy/<id>/etc` from the image's `/etc` (without `.updated`),
//!    `var` → `../../os/default/var`, the shared var seeded from the image's
//!    `/var` once, the `.origin`;
//! 4. boot binaries (the kernel and initramfs of `/usr/lib/modules/<kver>`,
//!    or the UKI) and the entry (kargs: `root=` if given, `rw`, the
//!    composefs argument, `/usr/lib/bootc/kargs.d/*.toml`, `--karg`);
//! 5. systemd-boot from the image's own files (`--bootloader none`: entries
//!    only).
//!
//! The entry set is written last (staged, then exchanged), so an interrupted
//! install leaves no entry naming a half-made deployment.

use std::io::{self, Read};

use cfs_core::repository::{InitOptions, OpenOptions, RepoError, Repository};
use cfs_core::tree::{FileSystem, InodeKind, XattrFilter};
use cfs_oci::pull::{PullOptions, pull};
use cfs_oci::source::{SourceOptions, open_source};
use cfs_oci::store::{OciImage, tag_image};

use super::origin::Origin;
use super::{Layout, binaries, checkout, entryset, other};
use crate::bls::Entry;
use crate::boot_image::oci::{boot_tree, cached_boot_image, commit_boot_tree, sealed_boot_image};
use crate::boot_image::resources::boot_digest;
use crate::boot_image::{BootType, Contents, PeKind, RepoContents, Resource};
use crate::cmdline::{ComposefsArg, Epoch};
use crate::os_release::{OsRelease, entry_file_name, sort_key};

/// Which bootloader to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bootloader {
    /// systemd-boot, from the image's `/usr/lib/systemd/boot/efi`.
    #[default]
    SystemdBoot,
    /// Entries and binaries only.
    None,
}

/// Options of [`install`].
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The image, in any form `oci pull` takes.
    pub image: String,
    /// Extra kernel arguments.
    pub kargs: Vec<String>,
    /// The `root=` argument (e.g. `root=UUID=…`), if the initramfs needs it.
    pub root_karg: Option<String>,
    /// Install on a filesystem without fs-verity (insecure repository).
    pub allow_missing_verity: bool,
    /// The bootloader.
    pub bootloader: Bootloader,
}

/// What [`install`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The deployment id (boot image digest, hex).
    pub id: String,
    /// The entry file written.
    pub entry: String,
    /// The kernel command line of the entry (kernel entries).
    pub options: String,
    /// `bls` or `uki`.
    pub boot_type: BootType,
}

fn at(path: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The kernel arguments of `/usr/lib/bootc/kargs.d/*.toml` (`kargs = [..]`,
/// honouring `match-architectures`), in file-name order.
pub fn kargs_d(fs: &FileSystem, contents: &dyn Contents) -> io::Result<Vec<String>> {
    let dir_path = b"/usr/lib/bootc/kargs.d";
    let Some(dir) = fs.lookup(dir_path).and_then(|id| fs.directory(id)) else {
        return Ok(Vec::new());
    };
    let arch = std::env::consts::ARCH;
    let mut out = Vec::new();
    for e in dir.entries() {
        if !e.name.ends_with(b".toml") || !matches!(fs.inode(e.inode).kind, InodeKind::Regular(_)) {
            continue;
        }
        let mut path = dir_path.to_vec();
        path.push(b'/');
        path.extend_from_slice(&e.name);
        let text = String::from_utf8(contents.read(fs, &path, e.inode, 1 << 20).map_err(other)?)
            .map_err(|_| {
                io::Error::other(format!("{}: not UTF-8", String::from_utf8_lossy(&path)))
            })?;
        let arrays = toml_string_arrays(&text);
        if let Some(archs) = arrays.iter().find(|(k, _)| k == "match-architectures")
            && !archs.1.iter().any(|a| a == arch)
        {
            continue;
        }
        if let Some((_, k)) = arrays.into_iter().find(|(k, _)| k == "kargs") {
            out.extend(k);
        }
    }
    Ok(out)
}

/// `key = ["a", "b"]` arrays of strings in a small TOML file (the only
/// shape kargs.d uses), across lines; comments ignored.
fn toml_string_arrays(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_owned();
        let after = rest[eq + 1..].trim_start();
        if let Some(body) = after.strip_prefix('[') {
            let mut items = Vec::new();
            let mut chars = body.char_indices();
            let mut end = body.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    ']' => {
                        end = i + 1;
                        break;
                    }
                    '#' => {
                        for (_, c) in chars.by_ref() {
                            if c == '\n' {
                                break;
                            }
                        }
                    }
                    '"' => {
                        let mut s = String::new();
                        let mut escaped = false;
                        for (_, c) in chars.by_ref() {
                            match (escaped, c) {
                                (false, '\\') => escaped = true,
                                (false, '"') => break,
                                (_, c) => {
                                    s.push(c);
                                    escaped = false;
                                }
                            }
                        }
                        items.push(s);
                    }
                    _ => {}
                }
            }
            out.push((key, items));
            rest = &body[end.min(body.len())..];
        } else {
            rest = &rest[eq + 1..];
        }
    }
    out
}

/// Opens (creating if needed) the repository of `layout`.
fn repository(layout: &Layout, allow_missing_verity: bool) -> io::Result<Repository> {
    let path = layout.repo();
    std::fs::create_dir_all(&path)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    if path.join("meta.json").exists() {
        return Repository::open(&path, &OpenOptions::default()).map_err(other);
    }
    let secure = InitOptions::default();
    match Repository::init(&path, &secure) {
        Ok((r, _)) => Ok(r),
        Err(RepoError::VerityUnsupported { .. }) if allow_missing_verity => {
            let opts = InitOptions {
                insecure: true,
                ..InitOptions::default()
            };
            Repository::init(&path, &opts)
                .map(|(r, _)| r)
                .map_err(other)
        }
        Err(e @ RepoError::VerityUnsupported { .. }) => Err(io::Error::other(format!(
            "{e}; pass --allow-missing-verity to install without fs-verity (files are then not verified at boot)"
        ))),
        Err(e) => Err(other(e)),
    }
}

/// Builds options for a new deployment's kernel entry from the image tree,
/// its contents and its composefs argument.
pub type OptionsFn<'a> =
    dyn Fn(&FileSystem, &dyn Contents, &ComposefsArg) -> io::Result<String> + 'a;

/// A deployment made by [`deploy_image`]: everything but its entry in a set.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The deployment id.
    pub id: String,
    /// Its entry file name as the primary entry.
    pub name: String,
    /// The entry.
    pub entry: Entry,
    /// Its kernel command line.
    pub options: String,
    /// `bls` or `uki`.
    pub boot_type: BootType,
    /// The OCI manifest digest.
    pub manifest_digest: String,
}

/// Installs `opts.image` on `layout` (see the module docs).
pub fn install(layout: &Layout, opts: &InstallOptions) -> io::Result<Installed> {
    let repo = repository(layout, opts.allow_missing_verity)?;
    let build =
        |fs: &FileSystem, contents: &dyn Contents, arg: &ComposefsArg| -> io::Result<String> {
            let mut options: Vec<String> = opts.root_karg.iter().cloned().collect();
            options.push("rw".into());
            options.push(arg.to_string());
            options.extend(kargs_d(fs, contents)?);
            options.extend(opts.kargs.iter().cloned());
            Ok(options.join(" "))
        };
    let d = deploy_image(layout, &repo, &opts.image, &build, opts.bootloader, true)?;
    let mut set = vec![(d.name.clone(), d.entry.to_string())];
    set.extend(entryset::foreign(layout)?);
    entryset::stage(layout, &set)?;
    entryset::exchange(layout)?;
    Ok(Installed {
        id: d.id,
        entry: d.name,
        options: d.options,
        boot_type: d.boot_type,
    })
}

/// Pulls `image` into `repo`, builds its boot image and makes its
/// deployment (state, origin, boot binaries, systemd-boot) without touching
/// any entry; `seed_var` seeds the shared var if it does not exist.
pub fn deploy_image(
    layout: &Layout,
    repo: &Repository,
    image: &str,
    build_options: &OptionsFn<'_>,
    bootloader: Bootloader,
    seed_var: bool,
) -> io::Result<Deployed> {
    let opts = SourceOptions::for_reference(image, None).map_err(other)?;
    let source = open_source(image, &opts).map_err(other)?;
    let report = pull(repo, source.as_ref(), &PullOptions::default()).map_err(other)?;
    let digest = report.manifest_digest.clone();
    tag_image(repo, &digest, &format!("localhost/bootc-{digest}")).map_err(other)?;
    let img = OciImage::open_manifest(repo, &digest).map_err(other)?;
    let filter = XattrFilter::AllowlistOnly;
    // One boot tree serves the boot image (unless already stored) and the
    // deployment's /etc, /var and boot binaries.
    let (fs, tree) = boot_tree(repo, &img, filter).map_err(other)?;
    let boot = match cached_boot_image(repo, &img, filter) {
        Some(b) => b,
        None => commit_boot_tree(repo, &img, filter, &fs, &tree).map_err(other)?,
    };
    let uki = tree.resources.iter().find(|r| {
        matches!(
            r,
            Resource::Uki {
                kind: PeKind::Uki,
                ..
            }
        )
    });
    // A sealed UKI decides the deployment's image (bootc #2334).
    let uki_path = match uki {
        Some(Resource::Uki { path, .. }) => Some(path.as_slice()),
        _ => None,
    };
    let sealed = sealed_boot_image(repo, &img, filter, &fs, &tree, uki_path).map_err(other)?;
    let (v, id_digest) = match sealed {
        Some(s) => s,
        None => boot
            .images
            .first()
            .copied()
            .ok_or_else(|| other("no boot image"))?,
    };
    let id = id_digest.to_hex();
    if bootloader == Bootloader::SystemdBoot && fs.lookup(SYSTEMD_BOOT).is_none() {
        return Err(other(NO_SYSTEMD_BOOT));
    }
    if layout.origin(&id).exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("deployment {id} already exists"),
        ));
    }
    let contents = RepoContents(repo);

    // State.
    let state = layout.state(&id);
    if state.exists() {
        std::fs::remove_dir_all(&state)?;
    }
    std::fs::create_dir_all(&state).map_err(|e| at(&state, e))?;
    checkout::checkout(&fs, repo, b"/etc", &state.join("etc"))
        .map_err(|e| at(&state.join("etc"), e))?;
    let _ = std::fs::remove_file(state.join("etc/.updated"));
    let var = layout.shared_var();
    if seed_var && !var.exists() {
        std::fs::create_dir_all(var.parent().ok_or_else(|| other("no var parent"))?)?;
        if fs.lookup(b"/var").is_some() {
            checkout::checkout(&fs, repo, b"/var", &var).map_err(|e| at(&var, e))?;
        } else {
            std::fs::create_dir(&var)?;
        }
    }
    std::os::unix::fs::symlink("../../os/default/var", state.join("var"))
        .map_err(|e| at(&state.join("var"), e))?;

    // Boot binaries and the entry.
    let os = fs
        .lookup(b"/usr/lib/os-release")
        .and_then(|i| contents.read(&fs, b"/usr/lib/os-release", i, 1 << 16).ok())
        .and_then(|b| OsRelease::parse(&String::from_utf8_lossy(&b)))
        .or_else(|| OsRelease::parse(""))
        .ok_or_else(|| other("cannot read the image's os-release"))?;
    let os_id = os.os_id().to_owned();
    let version = os.version(&id).to_owned();
    let title = os.title(&id).to_owned();
    let arg = if v == 2 {
        ComposefsArg::short(id_digest, !repo.is_secure())
    } else {
        ComposefsArg::self_describing(Epoch::V1, id_digest, !repo.is_secure())
    };
    let options = build_options(&fs, &contents, &arg)?;
    let name = entry_file_name(&os_id, &version, true);
    let key = sort_key(&os_id, true);
    let (entry, boot_type, boot_digest_hex) = if let Some(r @ Resource::Uki { path, inode, .. }) =
        uki
    {
        let target = layout.uki(&id);
        std::fs::create_dir_all(target.parent().ok_or_else(|| other("no UKI parent"))?)?;
        let mut src = contents.open(&fs, path, *inode).map_err(other)?;
        let tmp = target.with_extension("efi.tmp");
        io::copy(&mut src, &mut std::fs::File::create(&tmp)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        let mut e = Entry::default();
        let push = |e: &mut Entry, k: &str, val: &str| e.push(k, val).map_err(other);
        push(&mut e, "title", &title)?;
        push(&mut e, "version", &version)?;
        push(
            &mut e,
            "efi",
            &format!("/EFI/Linux/bootc/bootc_composefs-{id}.efi"),
        )?;
        push(&mut e, "sort-key", &key)?;
        (
            e,
            BootType::Uki,
            boot_digest(&fs, &contents, r).map_err(other)?,
        )
    } else {
        let Some(
            r @ Resource::Kernel {
                kver,
                vmlinuz,
                initramfs: Some(initrd),
            },
        ) = tree.resources.iter().find(|r| {
            matches!(
                r,
                Resource::Kernel {
                    initramfs: Some(_),
                    ..
                }
            )
        })
        else {
            return Err(other(
                "the image has no kernel (/usr/lib/modules/<kver>/vmlinuz with initramfs.img) and no UKI",
            ));
        };
        let dir = format!("/usr/lib/modules/{kver}");
        let bd = boot_digest(&fs, &contents, r)
            .map_err(other)?
            .unwrap_or_default();
        let mut k: Box<dyn Read> = Box::new(
            contents
                .open(&fs, format!("{dir}/vmlinuz").as_bytes(), *vmlinuz)
                .map_err(other)?,
        );
        let mut i: Box<dyn Read> = Box::new(
            contents
                .open(&fs, format!("{dir}/initramfs.img").as_bytes(), *initrd)
                .map_err(other)?,
        );
        let kdir = binaries::install_kernel(layout, &id, &bd, &mut k, &mut i)?;
        let e = Entry::kernel(
            &title,
            &version,
            &format!("/EFI/Linux/{kdir}/vmlinuz"),
            &[&format!("/EFI/Linux/{kdir}/initrd")],
            &options,
            &key,
        )
        .map_err(other)?;
        (e, BootType::Bls, Some(bd))
    };
    let origin = Origin::new(
        image,
        &boot_type.to_string(),
        boot_digest_hex.as_deref().unwrap_or(""),
        &digest,
    );
    if bootloader == Bootloader::SystemdBoot {
        install_systemd_boot(layout, &fs, &contents)?;
    }
    // The origin last: it is what makes the deployment exist.
    layout.write_origin(&id, &origin)?;
    Ok(Deployed {
        id,
        name,
        entry,
        options,
        boot_type,
        manifest_digest: digest,
    })
}

/// systemd-boot in an image (Debian package `systemd-boot-efi`).
const SYSTEMD_BOOT: &[u8] = b"/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

const NO_SYSTEMD_BOOT: &str = "the image has no systemd-boot (/usr/lib/systemd/boot/efi/systemd-bootx64.efi, package systemd-boot-efi); install it in the image or pass --bootloader none";

/// Copies the image's systemd-boot to `EFI/systemd/systemd-bootx64.efi` and
/// the fallback `EFI/BOOT/BOOTX64.EFI`; `loader/loader.conf` if absent.
fn install_systemd_boot(
    layout: &Layout,
    fs: &FileSystem,
    contents: &dyn Contents,
) -> io::Result<()> {
    let src = SYSTEMD_BOOT;
    let Some(id) = fs.lookup(src) else {
        return Err(other(NO_SYSTEMD_BOOT));
    };
    let data = contents.read(fs, src, id, 64 << 20).map_err(other)?;
    for dest in ["EFI/systemd/systemd-bootx64.efi", "EFI/BOOT/BOOTX64.EFI"] {
        let path = layout.boot.join(dest);
        std::fs::create_dir_all(path.parent().ok_or_else(|| other("no parent"))?)?;
        super::write_atomic(&path, &data)?;
    }
    let conf = layout.boot.join("loader/loader.conf");
    if !conf.exists() {
        std::fs::create_dir_all(layout.boot.join("loader"))?;
        std::fs::write(conf, "timeout 5\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::toml_string_arrays;

    #[test]
    fn kargs_d_arrays() {
        let a = toml_string_arrays(
            "# c\nkargs = [\"console=ttyS0\", \"quiet\" # x\n, \"a=\\\"b\\\"\"]\nmatch-architectures = [\"x86_64\"]\n",
        );
        assert_eq!(
            a[0],
            (
                "kargs".into(),
                vec!["console=ttyS0".into(), "quiet".into(), "a=\"b\"".into()]
            )
        );
        assert_eq!(a[1], ("match-architectures".into(), vec!["x86_64".into()]));
        assert!(toml_string_arrays("x = 1\n").is_empty());
    }
}
