//! The boot transform on hand-built trees.

use sha2::{Digest as _, Sha256};

use super::*;
use cfs_core::tree::{DirEntry, Directory, Inode, Mtime, Stat};

/// Contents are all inline in these trees.
struct Inline;

impl Contents for Inline {
    fn open_external(&self, path: &[u8], _: &ExternalFile) -> Result<File, BootError> {
        Err(read_error(path, io::Error::other("not inline")))
    }
}

fn stat(sec: i64) -> Stat {
    let mut s = Stat {
        mode: 0o755,
        mtime: Mtime::new(sec, 0),
        ..Default::default()
    };
    s.xattrs.set(
        b"security.selinux",
        b"system_u:object_r:container_file_t:s0",
    );
    s
}

fn add(
    fs: &mut FileSystem,
    dir: InodeId,
    name: &str,
    kind: InodeKind,
    alias_of: Option<InodeId>,
) -> InodeId {
    let (id, alias) = match alias_of {
        Some(id) => (id, true),
        None => (fs.push_inode(Inode::new(stat(5), kind)), false),
    };
    fs.directory_mut(dir)
        .unwrap()
        .insert(DirEntry {
            name: name.as_bytes().into(),
            inode: id,
            alias,
        })
        .unwrap();
    id
}

fn dir(fs: &mut FileSystem, parent: InodeId, name: &str) -> InodeId {
    add(
        fs,
        parent,
        name,
        InodeKind::Directory(Directory::new()),
        None,
    )
}

fn file(data: &[u8]) -> InodeKind {
    InodeKind::Regular(RegularFile::Inline(data.into()))
}

/// /usr (mtime 77) with a kernel, /boot with a Type 1 entry whose kernel is
/// a hard link of /usr's, /sysroot with content.
fn os_tree() -> FileSystem {
    let mut fs = FileSystem::new(stat(1));
    let usr = dir(&mut fs, InodeId::ROOT, "usr");
    fs.inode_mut(usr).stat.mtime = Mtime::new(77, 9);
    let lib = dir(&mut fs, usr, "lib");
    let modules = dir(&mut fs, lib, "modules");
    let k = dir(&mut fs, modules, "6.12.0");
    let boot = dir(&mut fs, InodeId::ROOT, "boot");
    let loader = dir(&mut fs, boot, "loader");
    let entries = dir(&mut fs, loader, "entries");
    add(
        &mut fs,
        entries,
        "os.conf",
        file(b"title OS\nlinux /boot/vmlinuz-6.12.0\ninitrd /initrd.img\noptions rw\n"),
        None,
    );
    // The primary name of the kernel is in /boot: it must move to /usr.
    let kernel = add(&mut fs, boot, "vmlinuz-6.12.0", file(b"KERNEL"), None);
    add(&mut fs, boot, "initrd.img", file(b"INITRD"), None);
    add(&mut fs, k, "vmlinuz", InodeKind::Fifo, Some(kernel));
    add(&mut fs, k, "initramfs.img", file(b"INITRAMFS"), None);
    fs.inode_mut(kernel).nlink = 2;
    let sysroot = dir(&mut fs, InodeId::ROOT, "sysroot");
    dir(&mut fs, sysroot, "ostree");
    fs
}

#[test]
fn transform_empties_boot_and_sysroot_keeps_resources_and_links() {
    let mut fs = os_tree();
    let t = transform_for_boot(&mut fs, &Inline, true).unwrap();
    for d in [&b"/boot"[..], b"/sysroot"] {
        let id = fs.lookup(d).unwrap();
        assert!(fs.directory(id).unwrap().is_empty());
        assert_eq!(fs.inode(id).stat.mtime, Mtime::new(77, 9), "/usr's mtime");
    }
    // The kernel lost its /boot name: one name left, now the primary one.
    let k = fs.lookup(b"/usr/lib/modules/6.12.0/vmlinuz").unwrap();
    assert_eq!(fs.inode(k).nlink, 1);
    fs.validate().unwrap();
    // No policy in the image: every label is stripped.
    assert!(!t.labelled);
    for inode in fs.inodes() {
        assert!(inode.stat.xattrs.get(b"security.selinux").is_none());
    }
    // Resources: the Type 1 entry (paths from the root, then below /boot) and the kernel.
    assert_eq!(t.resources.len(), 2, "{:?}", t.resources);
    let Resource::Type1 {
        file_name, files, ..
    } = &t.resources[0]
    else {
        panic!("{:?}", t.resources[0]);
    };
    assert_eq!(file_name, "os.conf");
    let paths: Vec<&[u8]> = files.iter().map(|(_, p, _)| &p[..]).collect();
    assert_eq!(
        paths,
        vec![&b"/boot/vmlinuz-6.12.0"[..], b"/boot/initrd.img"]
    );
    assert_eq!(resources::boot_type(&t.resources), Some(BootType::Bls));
    let digest = resources::boot_digest(&fs, &Inline, &t.resources[1])
        .unwrap()
        .unwrap();
    let expected: String = Sha256::digest(b"KERNELINITRAMFS")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, expected);
}

#[test]
fn missing_boot_dirs_and_bad_entries_are_clear_errors() {
    let mut fs = os_tree();
    let root = fs.directory_mut(InodeId::ROOT).unwrap();
    root.remove(b"sysroot");
    let e = transform_for_boot(&mut fs, &Inline, false).unwrap_err();
    assert!(e.to_string().contains("/sysroot is missing"), "{e}");

    let mut fs = os_tree();
    let entries = fs.lookup(b"/boot/loader/entries").unwrap();
    add(
        &mut fs,
        entries,
        "bad.conf",
        file(b"linux /nowhere\n"),
        None,
    );
    let e = transform_for_boot(&mut fs, &Inline, true).unwrap_err();
    assert!(
        e.to_string()
            .contains("/boot/loader/entries/bad.conf: linux /nowhere: no such regular file"),
        "{e}"
    );
}

#[test]
fn ukis_and_addons_are_found() {
    let mut fs = os_tree();
    let boot = fs.lookup(b"/boot").unwrap();
    let efi = dir(&mut fs, boot, "EFI");
    let linux = dir(&mut fs, efi, "Linux");
    add(&mut fs, linux, "os.efi", file(b"MZ"), None);
    let extra = dir(&mut fs, linux, "os.efi.extra.d");
    add(&mut fs, extra, "x.addon.efi", file(b"MZ"), None);
    let k = fs.lookup(b"/usr/lib/modules/6.12.0").unwrap();
    add(&mut fs, k, "os.efi", file(b"MZ"), None);
    let found = resources::find(&fs, &Inline).unwrap();
    let ukis: Vec<(String, Option<String>, PeKind)> = found
        .iter()
        .filter_map(|r| match r {
            Resource::Uki {
                path, kver, kind, ..
            } => Some((
                String::from_utf8_lossy(path).into_owned(),
                kver.clone(),
                *kind,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        ukis,
        vec![
            ("/boot/EFI/Linux/os.efi".into(), None, PeKind::Uki),
            (
                "/boot/EFI/Linux/os.efi.extra.d/x.addon.efi".into(),
                None,
                PeKind::Addon
            ),
            (
                "/usr/lib/modules/6.12.0/os.efi".into(),
                Some("6.12.0".into()),
                PeKind::Uki
            ),
        ]
    );
    assert_eq!(resources::boot_type(&found), Some(BootType::Uki));
}
