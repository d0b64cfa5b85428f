//! Bootable images with our tools alone (run in CI; the comparisons with
//! composefs-rs are in `boot_interop`):
//!
//! - a V2 image passes `fsck.erofs` and mounts through `cfsctl mount`,
//!   showing the source tree;
//! - a real Debian 12 image with SELinux policy: `oci pull --bootable` into a
//!   V1+V2 repository, both boot images pass `fsck.erofs`, carry the same
//!   labels, every label is `matchpathcon`'s, the V2 boot image mounts with
//!   an empty /boot, `compute-karg` of the tree names the V1 boot image;
//! - a sealed UKI: accepted when sealed for the boot image, refused (naming
//!   both ids) when not, and the recovery search.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cfs_core::erofs::reader::{ReadOptions, read_image};
use cfs_core::tree::FileSystem;

use crate::boot_interop::compare_with_matchpathcon;
use crate::debian_os;
use crate::mount::{Mounted, build_source, walk, xattrs};
use crate::oci_support::{exec, ok};
use crate::support::privileged;

/// Our `cfsctl ARGS`, asserting success; its stdout.
pub(crate) fn us(args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cfsctl"));
    c.stdin(Stdio::null()).args(args);
    ok(&format!("cfsctl {}", args.join(" ")), &exec(&mut c))
}

/// Our `cfsctl ARGS`, asserting failure; its stderr.
pub(crate) fn us_fails(args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cfsctl"));
    let out = exec(c.stdin(Stdio::null()).args(args));
    assert!(!out.status.success(), "cfsctl {} succeeded", args.join(" "));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fsck_erofs(image: &Path) {
    let out = Command::new("fsck.erofs")
        .arg(image)
        .output()
        .expect("fsck.erofs (erofs-utils) is needed");
    assert!(
        out.status.success(),
        "fsck.erofs {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn init(repo: &Path, formats: &str) {
    us(&[
        "init",
        "--insecure",
        "--erofs",
        formats,
        repo.to_str().unwrap(),
    ]);
}

#[test]
fn v2_image_passes_fsck_and_mounts() {
    if !privileged("v2_image_passes_fsck_and_mounts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build_source(&src);
    let repo = tmp.path().join("repo");
    init(&repo, "v2");
    let r = repo.to_str().unwrap();
    let id = us(&[
        "--repo",
        r,
        "create-image",
        "--no-propagate-usr-to-root",
        src.to_str().unwrap(),
        "v2img",
    ]);
    let hex = id.trim().rsplit(':').next().unwrap().to_owned();
    let image = repo.join("images").join(&hex);
    fsck_erofs(&image);
    let (_, info) = read_image(&std::fs::read(&image).unwrap(), &ReadOptions::default()).unwrap();
    assert_eq!(info.composefs_version, 2);

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    us(&["--repo", r, "mount", "refs/v2img", mnt.to_str().unwrap()]);
    let _guard = Mounted(mnt.clone());
    let source = walk(&src);
    let mounted = walk(&mnt);
    for (path, s) in &source {
        let whiteout = s.file_type().is_char_device() && s.rdev() == 0;
        if whiteout {
            // V2 stores whiteouts as they are: overlayfs hides them.
            assert!(!mounted.contains_key(path), "{} shown", path.display());
            continue;
        }
        let m = mounted
            .get(path)
            .unwrap_or_else(|| panic!("{} missing", path.display()));
        let (sp, mp) = (src.join(path), mnt.join(path));
        assert_eq!(m.mode(), s.mode(), "{} mode", path.display());
        assert_eq!(
            (m.uid(), m.gid()),
            (s.uid(), s.gid()),
            "{} owner",
            path.display()
        );
        assert_eq!(
            m.mtime(),
            s.mtime(),
            "{} mtime (V2 keeps seconds)",
            path.display()
        );
        assert_eq!(xattrs(&mp), xattrs(&sp), "{} xattrs", path.display());
        if s.is_file() {
            assert_eq!(
                std::fs::read(&mp).unwrap(),
                std::fs::read(&sp).unwrap(),
                "{}",
                path.display()
            );
        }
        if s.is_symlink() {
            assert_eq!(
                std::fs::read_link(&mp).unwrap(),
                std::fs::read_link(&sp).unwrap()
            );
        }
        if s.file_type().is_block_device() || s.file_type().is_char_device() {
            assert_eq!(m.rdev(), s.rdev(), "{} rdev", path.display());
        }
    }
    assert_eq!(
        mounted.len(),
        source.len() - 1,
        "only the whiteout is hidden"
    );
}

/// The `boot     HEX (VN)` lines of `oci pull --bootable`, by format.
fn boot_ids(out: &str) -> Vec<(u32, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("boot     "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let hex = it.next()?.to_owned();
            let v = it
                .next()?
                .trim_start_matches("(V")
                .trim_end_matches(')')
                .parse()
                .ok()?;
            Some((v, hex))
        })
        .collect()
}

fn read_tree(repo: &Path, hex: &str) -> FileSystem {
    let image = repo.join("images").join(hex);
    fsck_erofs(&image);
    read_image(&std::fs::read(&image).unwrap(), &ReadOptions::default())
        .unwrap()
        .0
}

/// Path → `security.selinux` of every name.
fn labels(fs: &FileSystem) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = vec![(
        b"/".to_vec(),
        fs.inode(fs.root())
            .stat
            .xattrs
            .get(b"security.selinux")
            .map(<[u8]>::to_vec),
    )];
    fs.walk(|p, e| {
        out.push((
            p.to_vec(),
            fs.inode(e.inode)
                .stat
                .xattrs
                .get(b"security.selinux")
                .map(<[u8]>::to_vec),
        ));
    });
    out.sort();
    out
}

#[test]
fn debian_selinux_boot_image() {
    if !privileged("debian_selinux_boot_image")
        || !crate::oci_support::have_tools(
            "debian_selinux_boot_image",
            &["matchpathcon", "fsck.erofs"],
        )
    {
        return;
    }
    let Some(os) = debian_os::build("selinux", None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, "v1,v2");
    let r = repo.to_str().unwrap();
    let source = format!("oci:{}:latest", os.join("oci").display());
    let out = us(&["--repo", r, "oci", "pull", "--bootable", &source, "os"]);
    let ids = boot_ids(&out);
    assert_eq!(
        ids.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vec![1, 2],
        "{out}"
    );
    let v1 = read_tree(&repo, &ids[0].1);
    let v2 = read_tree(&repo, &ids[1].1);
    assert_eq!(
        labels(&v1),
        labels(&v2),
        "both formats carry the same labels"
    );
    let fc = os.join("rootfs/etc/selinux/default/contexts/files/file_contexts");
    compare_with_matchpathcon(&v1, &fc);
    // The plain images keep no labels (the xattr allowlist drops them).
    let inspect = us(&["--repo", r, "oci", "inspect", "os"]);
    assert!(inspect.contains(&ids[0].1), "{inspect}");

    // compute-karg of the unpacked tree names the V1 boot image.
    let karg = us(&[
        "--repo",
        r,
        "compute-karg",
        os.join("rootfs").to_str().unwrap(),
    ]);
    assert_eq!(
        karg.trim(),
        format!("composefs.digest=v1-sha512-12:{}", ids[0].1)
    );
    let karg2 = us(&[
        "--repo",
        r,
        "--erofs-version",
        "2",
        "compute-karg",
        os.join("rootfs").to_str().unwrap(),
    ]);
    assert_eq!(karg2.trim(), format!("composefs={}", ids[1].1));

    // The V2 boot image mounts: /boot is empty, programs read back.
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    us(&["--repo", r, "mount", &ids[1].1, mnt.to_str().unwrap()]);
    let _guard = Mounted(mnt.clone());
    assert_eq!(std::fs::read_dir(mnt.join("boot")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read(mnt.join("usr/bin/bash")).unwrap(),
        std::fs::read(os.join("rootfs/usr/bin/bash")).unwrap()
    );
}

#[test]
fn debian_sealed_uki() {
    if !crate::oci_support::have_tools("debian_sealed_uki", &["objcopy"]) {
        return;
    }
    let Some(plain) = debian_os::build("plain", None) else {
        return;
    };
    let rootfs = plain.join("rootfs");
    // /boot is not in the boot image: a UKI added there does not change it.
    let karg = us(&[
        "--no-repo",
        "--hash",
        "sha512",
        "compute-karg",
        rootfs.to_str().unwrap(),
    ]);
    let karg = karg.trim().to_owned();
    let v2_karg = us(&[
        "--no-repo",
        "--hash",
        "sha512",
        "--erofs-version",
        "2",
        "compute-karg",
        rootfs.to_str().unwrap(),
    ]);
    let v2 = v2_karg
        .trim()
        .strip_prefix("composefs=")
        .unwrap()
        .to_owned();
    let v1 = karg.rsplit(':').next().unwrap().to_owned();
    let Some(uki) = debian_os::build("uki", Some(&format!("{karg} rw"))) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, "v1");
    let r = repo.to_str().unwrap();
    let source = |dir: &PathBuf| format!("oci:{}:latest", dir.join("oci").display());
    let out = us(&[
        "--repo",
        r,
        "oci",
        "pull",
        "--bootable",
        &source(&uki),
        "uki",
    ]);
    assert_eq!(boot_ids(&out), vec![(1, v1.clone())], "{out}");
    assert!(out.contains("boottype uki\n"), "{out}");
    // The boot digest of the UKI (.linux ‖ .initrd) and of the kernel it was
    // made from (vmlinuz ‖ initramfs.img) are the same.
    let kver = std::fs::read_to_string(plain.join("kver")).unwrap();
    let modules = rootfs.join("usr/lib/modules").join(kver.trim());
    let mut both = std::fs::read(modules.join("vmlinuz")).unwrap();
    both.extend(std::fs::read(modules.join("initramfs.img")).unwrap());
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(&both)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let kernels: Vec<&str> = out.lines().filter(|l| l.starts_with("kernel   ")).collect();
    assert_eq!(kernels.len(), 2, "{out}");
    for k in kernels {
        assert!(k.ends_with(&format!(" sha256:{digest}")), "{k}");
    }
    assert!(
        out.contains("sealed   /boot/EFI/Linux/") && out.contains(&karg),
        "{out}"
    );

    // Sealed for another image: refused, naming the UKI's digest and both ids.
    let wrong = "ab".repeat(64);
    let Some(bad) = debian_os::build("uki", Some(&format!("composefs={wrong} rw"))) else {
        return;
    };
    let repo2 = tmp.path().join("repo2");
    init(&repo2, "v1");
    let err = us_fails(&[
        "--repo",
        repo2.to_str().unwrap(),
        "oci",
        "pull",
        "--bootable",
        &source(&bad),
        "bad",
    ]);
    assert!(
        err.contains(&wrong) && err.contains(&v1) && err.contains(&v2),
        "{err}"
    );
    assert!(err.contains("--expected-digest"), "{err}");

    // Recovery: the V1 repository finds the V2 boot image and names it.
    let out = us(&[
        "--repo",
        r,
        "oci",
        "pull",
        "--bootable",
        "--expected-digest",
        &v2,
        &source(&uki),
        "uki",
    ]);
    assert!(
        out.contains(&format!(
            "boot     {v2} (xattr-mode=allowlist-only, format=V2)"
        )),
        "{out}"
    );
    let inspect = us(&["--repo", r, "oci", "inspect", "uki"]);
    assert!(inspect.contains(&v1), "{inspect}");
    // No configuration gives a digest that is nobody's.
    let err = us_fails(&[
        "--repo",
        r,
        "oci",
        "pull",
        "--bootable",
        "--expected-digest",
        &wrong,
        &source(&uki),
        "uki",
    ]);
    assert!(
        err.contains("no boot image configuration matched") && err.contains("tried 4"),
        "{err}"
    );
}

#[test]
fn upgrade_adds_a_format_to_plain_and_boot_images() {
    let Some(plain) = debian_os::build("plain", None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, "v1");
    let r = repo.to_str().unwrap();
    let source = format!("oci:{}:latest", plain.join("oci").display());
    us(&["--repo", r, "oci", "pull", "--bootable", &source, "os"]);
    let out = us(&["--repo", r, "upgrade", "--add-erofs", "v2"]);
    let plain_v2 = us(&[
        "--repo",
        r,
        "--erofs-version",
        "2",
        "oci",
        "compute-id",
        "os",
    ]);
    let boot_v2 = us(&[
        "--repo",
        r,
        "--erofs-version",
        "2",
        "oci",
        "compute-id",
        "--bootable",
        "os",
    ]);
    assert!(
        out.contains("EROFS formats now fsverity-sha512-12, EROFS V1+V2"),
        "{out}"
    );
    assert!(
        out.contains(&format!("os: composefs.image {}", plain_v2.trim())),
        "{out}"
    );
    assert!(
        out.contains(&format!("os: composefs.image.boot {}", boot_v2.trim())),
        "{out}"
    );
    let meta = std::fs::read_to_string(repo.join("meta.json")).unwrap();
    assert!(
        meta.contains("\"extra\": [\n      2\n    ]") && meta.contains("v1_erofs"),
        "{meta}"
    );
    // The new images are linked and kept by gc; a second upgrade has nothing to do.
    us(&["--repo", r, "gc"]);
    assert!(repo.join("images").join(boot_v2.trim()).exists());
    let again = us(&["--repo", r, "upgrade", "--add-erofs", "v2"]);
    assert_eq!(again, "EROFS formats unchanged\n");
    let fsck = us(&["--repo", r, "oci", "fsck"]);
    assert!(!fsck.contains("error"), "{fsck}");
}
