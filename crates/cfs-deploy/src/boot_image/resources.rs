//! Boot resources of an OS image, found before `/boot` is emptied
//! (boot-deploy.md §2):
//!
//! - Type 1 entries: `/boot/loader/entries/*.conf`; the `linux`, `initrd` and
//!   `efi` paths they name are resolved from the image root, as composefs-rs
//!   does, falling back to below `/boot` (where the paths are relative to
//!   the boot partition);
//! - UKIs: `*.efi` below `/boot/EFI/Linux` and below each
//!   `/usr/lib/modules/<kver>/` (addons: `*.addon.efi`, usually in
//!   `<uki>.efi.extra.d/`), global addons below `/boot/loader/addons`;
//! - kernels: `/usr/lib/modules/<kver>/vmlinuz` with `initramfs.img` beside it.
//!
//! The boot digest of a kernel is the SHA-256 of the kernel followed by the
//! initramfs (of a UKI: of its `.linux` then `.initrd` sections); bootc uses
//! it to share byte-identical kernels between deployments.

use sha2::{Digest as _, Sha256};

use cfs_core::tree::{FileSystem, InodeId, InodeKind};

use super::{BootError, Contents};
use crate::bls::Entry;
use crate::uki::Uki;

/// What kind of UKI file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeKind {
    /// A Unified Kernel Image.
    Uki,
    /// An addon of the UKIs beside it.
    Addon,
    /// An addon for every UKI (`/boot/loader/addons`).
    GlobalAddon,
}

/// One boot resource of an image.
#[derive(Debug, Clone)]
pub enum Resource {
    /// A Boot Loader Specification Type 1 entry and the files it names.
    Type1 {
        /// The entry's file name (`foo.conf`).
        file_name: String,
        /// The parsed entry.
        entry: Entry,
        /// (path as written in the entry, image path, inode) of each file.
        files: Vec<(String, Vec<u8>, InodeId)>,
    },
    /// A UKI or UKI addon.
    Uki {
        /// Path in the image.
        path: Vec<u8>,
        /// Kernel version (the `/usr/lib/modules` directory), if found there.
        kver: Option<String>,
        /// UKI or addon.
        kind: PeKind,
        /// The file.
        inode: InodeId,
    },
    /// `/usr/lib/modules/<kver>/vmlinuz` (+ `initramfs.img`).
    Kernel {
        /// Kernel version.
        kver: String,
        /// The kernel.
        vmlinuz: InodeId,
        /// The initramfs, if present.
        initramfs: Option<InodeId>,
    },
}

/// Boot type of an image (bootc's `bls` / `uki`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootType {
    /// Kernel + initramfs with Type 1 entries.
    Bls,
    /// Unified Kernel Images.
    Uki,
}

impl std::fmt::Display for BootType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootType::Bls => "bls",
            BootType::Uki => "uki",
        })
    }
}

/// Largest Type 1 entry read (64 KiB).
const MAX_ENTRY: u64 = 64 << 10;

fn regular(fs: &FileSystem, path: &[u8]) -> Option<InodeId> {
    let id = fs.lookup(path)?;
    matches!(fs.inode(id).kind, InodeKind::Regular(_)).then_some(id)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Finds every boot resource of `fs` (see the module docs).
pub fn find(fs: &FileSystem, contents: &dyn Contents) -> Result<Vec<Resource>, BootError> {
    let mut out = Vec::new();
    type1(fs, contents, &mut out)?;
    for (dir, kind) in [
        (&b"/boot/EFI/Linux"[..], PeKind::Addon),
        (b"/boot/loader/addons", PeKind::GlobalAddon),
    ] {
        if let Some(id) = fs.lookup(dir).filter(|&id| fs.directory(id).is_some()) {
            pe_files(fs, id, dir, None, kind, &mut out);
        }
    }
    let modules = b"/usr/lib/modules";
    if let Some(mods) = fs.lookup(modules).and_then(|id| fs.directory(id)) {
        for e in mods.entries() {
            if fs.directory(e.inode).is_none() {
                continue;
            }
            let kver = String::from_utf8_lossy(&e.name).into_owned();
            let dir = join(modules, &e.name);
            pe_files(fs, e.inode, &dir, Some(&kver), PeKind::Addon, &mut out);
        }
        for e in mods.entries() {
            if fs.directory(e.inode).is_none() {
                continue;
            }
            let dir = join(modules, &e.name);
            let Some(vmlinuz) = regular(fs, &join(&dir, b"vmlinuz")) else {
                continue;
            };
            let kver = std::str::from_utf8(&e.name)
                .map_err(|_| {
                    BootError::Invalid(format!(
                        "{}: kernel version is not UTF-8",
                        String::from_utf8_lossy(&dir)
                    ))
                })?
                .to_owned();
            out.push(Resource::Kernel {
                kver,
                vmlinuz,
                initramfs: regular(fs, &join(&dir, b"initramfs.img")),
            });
        }
    }
    Ok(out)
}

fn type1(
    fs: &FileSystem,
    contents: &dyn Contents,
    out: &mut Vec<Resource>,
) -> Result<(), BootError> {
    let dir_path = b"/boot/loader/entries";
    let Some(dir) = fs.lookup(dir_path).and_then(|id| fs.directory(id)) else {
        return Ok(());
    };
    for e in dir.entries() {
        if !e.name.ends_with(b".conf") {
            continue;
        }
        let path = join(dir_path, &e.name);
        let shown = String::from_utf8_lossy(&path).into_owned();
        if !matches!(fs.inode(e.inode).kind, InodeKind::Regular(_)) {
            return Err(BootError::Invalid(format!("{shown} is not a regular file")));
        }
        let bytes = contents.read(fs, &path, e.inode, MAX_ENTRY)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| BootError::Invalid(format!("{shown}: not UTF-8")))?;
        let entry = Entry::parse_unchecked(&text)
            .map_err(|err| BootError::Invalid(format!("{shown}: {err}")))?;
        let mut files = Vec::new();
        for key in ["linux", "initrd", "efi"] {
            for value in entry.get_all(key) {
                let mut image_path = value.as_bytes().to_vec();
                if !image_path.starts_with(b"/") {
                    image_path.insert(0, b'/');
                }
                let id = regular(fs, &image_path)
                    .or_else(|| {
                        image_path = join(b"/boot", value.trim_start_matches('/').as_bytes());
                        regular(fs, &image_path)
                    })
                    .ok_or_else(|| {
                        BootError::Invalid(format!(
                            "{shown}: {key} {value}: no such regular file in the image (looked at {value} and /boot/{})",
                            value.trim_start_matches('/')
                        ))
                    })?;
                files.push((value.to_owned(), image_path, id));
            }
        }
        out.push(Resource::Type1 {
            file_name: String::from_utf8_lossy(&e.name).into_owned(),
            entry,
            files,
        });
    }
    Ok(())
}

/// `*.efi` files below `dir`, recursively; `addon_kind` for `*.addon.efi`.
fn pe_files(
    fs: &FileSystem,
    dir: InodeId,
    dir_path: &[u8],
    kver: Option<&str>,
    addon_kind: PeKind,
    out: &mut Vec<Resource>,
) {
    // Entries in name order, descending into a directory where it is listed.
    let mut stack = vec![(dir, dir_path.to_vec(), 0usize)];
    while let Some((dir, path, next)) = stack.last_mut() {
        let Some(e) = fs.directory(*dir).and_then(|d| d.entries().get(*next)) else {
            stack.pop();
            continue;
        };
        *next += 1;
        let p = join(path, &e.name);
        if fs.directory(e.inode).is_some() {
            stack.push((e.inode, p, 0));
            continue;
        }
        if !e.name.ends_with(b".efi") || !matches!(fs.inode(e.inode).kind, InodeKind::Regular(_)) {
            continue;
        }
        let kind = if e.name.ends_with(b".addon.efi") {
            addon_kind
        } else {
            PeKind::Uki
        };
        out.push(Resource::Uki {
            path: p,
            kver: kver.map(str::to_owned),
            kind,
            inode: e.inode,
        });
    }
}

/// The boot type: `uki` when the image has a UKI, else `bls` when it has a
/// kernel, else none.
pub fn boot_type(resources: &[Resource]) -> Option<BootType> {
    if resources.iter().any(|r| {
        matches!(
            r,
            Resource::Uki {
                kind: PeKind::Uki,
                ..
            }
        )
    }) {
        Some(BootType::Uki)
    } else if resources
        .iter()
        .any(|r| matches!(r, Resource::Type1 { .. } | Resource::Kernel { .. }))
    {
        Some(BootType::Bls)
    } else {
        None
    }
}

/// Largest kernel or initramfs hashed (1 GiB).
const MAX_BOOT_FILE: u64 = 1 << 30;

/// The boot digest (hex SHA-256) of a kernel resource: kernel then
/// initramfs; of a UKI: its `.linux` then `.initrd` sections. `None` for a
/// Type 1 entry or an addon.
pub fn boot_digest(
    fs: &FileSystem,
    contents: &dyn Contents,
    r: &Resource,
) -> Result<Option<String>, BootError> {
    let mut h = Sha256::new();
    match r {
        Resource::Kernel {
            kver,
            vmlinuz,
            initramfs,
        } => {
            let dir = format!("/usr/lib/modules/{kver}");
            h.update(contents.read(
                fs,
                format!("{dir}/vmlinuz").as_bytes(),
                *vmlinuz,
                MAX_BOOT_FILE,
            )?);
            if let Some(i) = initramfs {
                h.update(contents.read(
                    fs,
                    format!("{dir}/initramfs.img").as_bytes(),
                    *i,
                    MAX_BOOT_FILE,
                )?);
            }
        }
        Resource::Uki {
            path,
            kind: PeKind::Uki,
            inode,
            ..
        } => {
            let shown = String::from_utf8_lossy(path).into_owned();
            let uki = Uki::open(contents.open(fs, path, *inode)?)
                .map_err(|e| BootError::Invalid(format!("{shown}: {e}")))?;
            for s in [".linux", ".initrd"] {
                if let Some(bytes) = uki
                    .read(s, MAX_BOOT_FILE)
                    .map_err(|e| BootError::Invalid(format!("{shown}: {e}")))?
                {
                    h.update(bytes);
                }
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}
