//! Kernel check: an image built by `mkcomposefs` from a real tree, mounted
//! with `mount -t erofs`, shows the source's names, types, modes, owners,
//! mtimes, xattrs, symlink targets and inline contents.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::support::{privileged, run, tool};

/// Unmounts (lazily) when dropped, so a failing test leaves no mount behind.
pub(crate) struct Mounted(pub(crate) PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, XattrFlags::empty()).unwrap();
}

pub(crate) fn build_source(root: &Path) {
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::create_dir(root.join("empty-dir")).unwrap();
    for (name, size) in [
        ("empty", 0usize),
        ("one", 1),
        ("inline-64", 64),
        ("ext-65", 65),
        ("block", 4096),
        ("big", 300_000),
    ] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(root.join("dir").join(name), data).unwrap();
    }
    std::fs::write(root.join("dir/sub/hard-a"), b"shared").unwrap();
    std::fs::hard_link(root.join("dir/sub/hard-a"), root.join("hard-b")).unwrap();
    symlink("dir/one", root.join("link")).unwrap();
    symlink("x".repeat(4000), root.join("long-link")).unwrap();
    let long_name = "n".repeat(255);
    std::fs::write(root.join(&long_name), b"long name").unwrap();
    let node = |name: &str, ft, dev| {
        rustix::fs::mknodat(CWD, root.join(name), ft, Mode::from_raw_mode(0o640), dev).unwrap()
    };
    node("fifo", FileType::Fifo, 0);
    node("sock", FileType::Socket, 0);
    node("chr", FileType::CharacterDevice, rustix::fs::makedev(1, 3));
    node("blk", FileType::BlockDevice, rustix::fs::makedev(8, 1));
    node("whiteout", FileType::CharacterDevice, 0);
    set_xattr(&root.join("dir/one"), "user.note", b"a=b\0c");
    set_xattr(&root.join("dir/big"), "trusted.test", b"t");
    set_xattr(&root.join("dir"), "security.test", b"s");
    set_xattr(&root.join("dir/sub"), "user.shared", b"same");
    set_xattr(&root.join("dir/block"), "user.shared", b"same");
    rustix::fs::chownat(
        CWD,
        root.join("dir/one"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(70000)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    rustix::fs::chmod(root.join("dir/ext-65"), Mode::from_raw_mode(0o4751)).unwrap();
    let mut n = 0i64;
    let mut stamp = |p: &Path| {
        n += 1;
        let ts = Timespec {
            tv_sec: 1_700_000_000 + n,
            tv_nsec: 123_456_789 + n,
        };
        rustix::fs::utimensat(
            CWD,
            p,
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    };
    let mut all: Vec<PathBuf> = walk(root).into_keys().map(|p| root.join(p)).collect();
    // Directories last, deepest first, so their mtimes stick.
    all.sort_by_key(|p| {
        (
            p.is_dir() && !p.is_symlink(),
            std::cmp::Reverse(p.components().count()),
        )
    });
    for p in all {
        stamp(&p);
    }
    stamp(root);
}

/// Relative path → metadata of every entry below `root`.
pub(crate) fn walk(root: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path().strip_prefix(root).unwrap().to_path_buf(), md);
        }
    }
    out
}

pub(crate) fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, OsStr::from_bytes(name), &mut value[..]).unwrap();
        out.insert(name.to_vec(), value[..len].to_vec());
    }
    out
}

#[test]
fn mounted_image_matches_source() {
    if !privileged("mounted_image_matches_source") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build_source(&src);
    let image = tmp.path().join("image.cfs");
    let o = run(tool("mkcomposefs").arg(&src).arg(&image));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fsck = std::process::Command::new("fsck.erofs")
        .arg(&image)
        .output()
        .expect("fsck.erofs (erofs-utils) is needed");
    assert!(
        fsck.status.success(),
        "fsck.erofs: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "erofs", "-o", "ro"])
        .arg(&image)
        .arg(&mnt)
        .status()
        .expect("mount(8)");
    assert!(status.success(), "mount -t erofs failed");
    let _guard = Mounted(mnt.clone());

    let source = walk(&src);
    let mounted = walk(&mnt);
    // The image root also holds the 256 whiteout stubs 00..ff (char 0:0).
    let mut stubs = 0;
    for (path, md) in &mounted {
        if !source.contains_key(path) {
            let name = path.to_string_lossy();
            assert!(
                name.len() == 2 && u8::from_str_radix(&name, 16).is_ok(),
                "unexpected {name}"
            );
            assert!(
                md.file_type().is_char_device_like() && md.rdev() == 0,
                "{name}"
            );
            stubs += 1;
        }
    }
    assert_eq!(stubs, 256);
    for (path, s) in &source {
        let m = mounted
            .get(path)
            .unwrap_or_else(|| panic!("{} missing", path.display()));
        let sp = src.join(path);
        let mp = mnt.join(path);
        let whiteout = s.file_type().is_char_device_like() && s.rdev() == 0;
        if whiteout {
            // Whiteouts are stored escaped: a regular file carrying overlay markers.
            assert!(m.is_file(), "{}", path.display());
            assert_eq!(m.mode() & 0o7777, s.mode() & 0o7777);
            let x = xattrs(&mp);
            assert!(
                x.contains_key(&b"trusted.overlay.overlay.whiteout"[..]),
                "{x:?}"
            );
            continue;
        }
        assert_eq!(m.mode(), s.mode(), "{} mode", path.display());
        assert_eq!(
            (m.uid(), m.gid()),
            (s.uid(), s.gid()),
            "{} owner",
            path.display()
        );
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (s.mtime(), s.mtime_nsec()),
            "{} mtime",
            path.display()
        );
        if s.is_dir() {
            assert_eq!(m.nlink(), s.nlink(), "{} nlink", path.display());
        } else {
            assert_eq!(m.size(), s.size(), "{} size", path.display());
        }
        if s.file_type().is_char_device_like() || s.file_type().is_block_device_like() {
            assert_eq!(m.rdev(), s.rdev(), "{} rdev", path.display());
        }
        if s.is_symlink() {
            assert_eq!(
                std::fs::read_link(&mp).unwrap(),
                std::fs::read_link(&sp).unwrap()
            );
        }
        let mut mx = xattrs(&mp);
        let redirect = mx.remove(&b"trusted.overlay.redirect"[..]);
        let metacopy = mx.remove(&b"trusted.overlay.metacopy"[..]);
        assert_eq!(mx, xattrs(&sp), "{} xattrs", path.display());
        if s.is_file() {
            if s.size() > 0 && s.size() <= 64 {
                assert_eq!(
                    std::fs::read(&mp).unwrap(),
                    std::fs::read(&sp).unwrap(),
                    "{} content",
                    path.display()
                );
                assert!(redirect.is_none() && metacopy.is_none());
            } else if s.size() > 64 {
                // External: redirect to the object named by its digest, digest in metacopy.
                let hex = String::from_utf8(
                    run(tool("composefs-info").arg("measure-file").arg(&sp)).stdout,
                )
                .unwrap();
                let hex = hex.trim();
                assert_eq!(
                    redirect.unwrap(),
                    format!("/{}/{}", &hex[..2], &hex[2..]).into_bytes()
                );
                let metacopy = metacopy.unwrap();
                assert_eq!(&metacopy[..4], &[0, 36, 0, 1]);
                let digest: String = metacopy[4..].iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(digest, hex);
            }
        }
    }
}

pub(crate) trait FileTypeKinds {
    fn is_char_device_like(&self) -> bool;
    fn is_block_device_like(&self) -> bool;
}

impl FileTypeKinds for std::fs::FileType {
    fn is_char_device_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_char_device(self)
    }
    fn is_block_device_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_block_device(self)
    }
}
