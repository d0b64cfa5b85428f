//! Writing part of an image's tree to disk: a deployment's `/etc` and the
//! shared `/var` are copies of the image's, with owners, modes, xattrs
//! and mtimes. File contents come from the tree (inline) or the repository
//! (external objects); hard links inside the subtree stay hard links.
//! Nothing outside `dest` is touched: entries are created relative to
//! directory descriptors and symlinks in the tree are created, never
//! followed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{
    AtFlags, FileType as RFileType, Mode, OFlags, Timespec, Timestamps, XattrFlags, chmodat,
    chownat, lsetxattr, mkdirat, mknodat, openat, symlinkat, utimensat,
};

use cfs_core::repository::Repository;
use cfs_core::tree::{FileSystem, InodeId, InodeKind, RegularFile, Stat};

/// Counts of what [`checkout`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkout {
    /// Names written (files, directories, links, nodes).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

fn err(path: &[u8], e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", String::from_utf8_lossy(path)))
}

fn times(stat: &Stat) -> Timestamps {
    let ts = Timespec {
        tv_sec: stat.mtime.sec,
        tv_nsec: i64::from(stat.mtime.nsec),
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// Owner, then mode (not for symlinks; after the owner, which clears
/// set-id bits), xattrs and mtime of `name` in `dir`.
fn finish(dir: &OwnedFd, name: &str, stat: &Stat, is_link: bool) -> io::Result<()> {
    chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(stat.uid)),
        Some(rustix::fs::Gid::from_raw(stat.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !is_link {
        // `name` was created by us in a directory we created: not a symlink.
        chmodat(
            dir,
            name,
            Mode::from_raw_mode(u32::from(stat.mode)),
            AtFlags::empty(),
        )?;
    }
    let path = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(dir).to_string())
        .join(name);
    for x in &stat.xattrs {
        lsetxattr(
            &path,
            std::ffi::OsStr::from_bytes_compat(&x.name),
            &x.value,
            XattrFlags::empty(),
        )?;
    }
    utimensat(dir, name, &times(stat), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &Self;
}

impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &Self {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// Writes the directory `source` of `fs` (an absolute image path such as
/// `/etc`) into `dest`, which must not exist (its parent must). External
/// files are read from `repo`.
pub fn checkout(
    fs: &FileSystem,
    repo: &Repository,
    source: &[u8],
    dest: &Path,
) -> io::Result<Checkout> {
    let top = fs
        .lookup(source)
        .filter(|&id| fs.directory(id).is_some())
        .ok_or_else(|| err(source, "no such directory in the image"))?;
    let parent = dest.parent().ok_or_else(|| io::Error::other("no parent"))?;
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("destination name is not UTF-8"))?;
    let parent_fd = rustix::fs::open(parent, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut out = Checkout::default();
    // First name (relative to `dest`) of every inode written, for hard links.
    let mut links: HashMap<InodeId, String> = HashMap::new();
    mkdirat(&parent_fd, name, Mode::from_raw_mode(0o700))?;
    let top_fd = openat(
        &parent_fd,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // (directory fd, its path relative to `dest`, inode, next entry).
    let mut stack = vec![(top_fd.try_clone()?, String::new(), top, 0usize)];
    // Directories to finish after their entries (relative paths).
    let mut finished: Vec<(String, InodeId)> = Vec::new();
    while let Some((dir_fd, rel, dir, next)) = stack.pop() {
        let entries = fs.directory(dir).map(|d| d.entries()).unwrap_or(&[]);
        let Some(e) = entries.get(next) else {
            continue;
        };
        let ename = std::str::from_utf8(&e.name)
            .map_err(|_| err(&e.name, "name is not UTF-8"))?
            .to_owned();
        let child_rel = if rel.is_empty() {
            ename.clone()
        } else {
            format!("{rel}/{ename}")
        };
        let inode = fs.inode(e.inode);
        out.entries += 1;
        if let Some(first) = links.get(&e.inode) {
            rustix::fs::linkat(
                &top_fd,
                first.as_str(),
                &dir_fd,
                ename.as_str(),
                AtFlags::empty(),
            )?;
            stack.push((dir_fd, rel, dir, next + 1));
            continue;
        }
        match &inode.kind {
            InodeKind::Directory(_) => {
                mkdirat(&dir_fd, ename.as_str(), Mode::from_raw_mode(0o700))?;
                let child = openat(
                    &dir_fd,
                    ename.as_str(),
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                finished.push((child_rel.clone(), e.inode));
                stack.push((dir_fd, rel, dir, next + 1));
                stack.push((child, child_rel, e.inode, 0));
                continue;
            }
            InodeKind::Regular(content) => {
                let fd = openat(
                    &dir_fd,
                    ename.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut f = File::from(fd);
                match content {
                    RegularFile::Inline(data) => {
                        f.write_all(data)?;
                        out.bytes += data.len() as u64;
                    }
                    RegularFile::External(ext) => {
                        let digest = ext
                            .digest
                            .as_ref()
                            .ok_or_else(|| err(&e.name, "external file without a digest"))?;
                        let mut src = repo.open_object(digest).map_err(|x| err(&e.name, x))?;
                        out.bytes += io::copy(&mut src, &mut f)?;
                    }
                }
            }
            InodeKind::Symlink(target) => {
                symlinkat(
                    std::ffi::OsStr::from_bytes_compat(target),
                    &dir_fd,
                    ename.as_str(),
                )?;
            }
            InodeKind::CharDevice(rdev) | InodeKind::BlockDevice(rdev) => {
                let ft = if matches!(inode.kind, InodeKind::CharDevice(_)) {
                    RFileType::CharacterDevice
                } else {
                    RFileType::BlockDevice
                };
                mknodat(
                    &dir_fd,
                    ename.as_str(),
                    ft,
                    Mode::from_raw_mode(0o600),
                    u64::from(*rdev),
                )?;
            }
            InodeKind::Fifo => mknodat(
                &dir_fd,
                ename.as_str(),
                RFileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )?,
            InodeKind::Socket => mknodat(
                &dir_fd,
                ename.as_str(),
                RFileType::Socket,
                Mode::from_raw_mode(0o600),
                0,
            )?,
        }
        let is_link = matches!(inode.kind, InodeKind::Symlink(_));
        finish(&dir_fd, &ename, &inode.stat, is_link).map_err(|x| err(&e.name, x))?;
        links.insert(e.inode, child_rel);
        stack.push((dir_fd, rel, dir, next + 1));
    }
    // Directories last, deepest first, so their mtimes stick; then `dest`.
    for (rel, id) in finished.into_iter().rev() {
        finish(&top_fd, &rel, &fs.inode(id).stat, false).map_err(|x| err(rel.as_bytes(), x))?;
    }
    finish(&parent_fd, name, &fs.inode(top).stat, false).map_err(|x| err(source, x))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;
    use cfs_core::repository::InitOptions;
    use cfs_core::tree::{DirEntry, Directory, Inode, Mtime};

    fn stat(mode: u16, uid: u32, sec: i64) -> Stat {
        Stat {
            mode,
            uid,
            gid: uid + 1,
            mtime: Mtime::new(sec, 7),
            xattrs: Default::default(),
        }
    }

    fn add(fs: &mut FileSystem, dir: InodeId, name: &str, id: InodeId, alias: bool) {
        fs.directory_mut(dir)
            .unwrap()
            .insert(DirEntry {
                name: name.as_bytes().into(),
                inode: id,
                alias,
            })
            .unwrap();
    }

    #[test]
    fn a_subtree_with_metadata_and_hard_links() {
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var("CFS_TEST_PRIVILEGED").as_deref() != Ok("require"),
                "the checkout test needs root, and CFS_TEST_PRIVILEGED=require"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!("checkout test needs root (ownership): skipped");
            }
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (repo, _) = Repository::init(
            &tmp.path().join("repo"),
            &InitOptions {
                insecure: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mut fs = FileSystem::new(stat(0o755, 0, 1));
        let etc = fs.push_inode(Inode::new(
            stat(0o750, 5, 100),
            InodeKind::Directory(Directory::new()),
        ));
        add(&mut fs, InodeId::ROOT, "etc", etc, false);
        let sub = fs.push_inode(Inode::new(
            stat(0o700, 6, 200),
            InodeKind::Directory(Directory::new()),
        ));
        add(&mut fs, etc, "sub", sub, false);
        let mut s = stat(0o4755, 7, 300);
        s.xattrs.set(b"user.note", b"v");
        let file = fs.push_inode(Inode::new(
            s,
            InodeKind::Regular(RegularFile::Inline(b"hello".to_vec().into())),
        ));
        add(&mut fs, etc, "file", file, false);
        add(&mut fs, sub, "hard", file, true);
        let link = fs.push_inode(Inode::new(
            stat(0o777, 8, 400),
            InodeKind::Symlink(b"/etc/shadow".to_vec().into()),
        ));
        add(&mut fs, etc, "link", link, false);
        let fifo = fs.push_inode(Inode::new(stat(0o620, 9, 500), InodeKind::Fifo));
        add(&mut fs, sub, "fifo", fifo, false);
        let dest = tmp.path().join("out");
        let c = checkout(&fs, &repo, b"/etc", &dest).unwrap();
        assert_eq!(c.entries, 5);
        assert_eq!(c.bytes, 5);
        let md = |p: &str| std::fs::symlink_metadata(dest.join(p)).unwrap();
        assert_eq!(
            (md("").mode() & 0o7777, md("").uid(), md("").mtime()),
            (0o750, 5, 100)
        );
        assert_eq!(
            (
                md("sub").mode() & 0o7777,
                md("sub").uid(),
                md("sub").mtime()
            ),
            (0o700, 6, 200)
        );
        assert_eq!(
            (
                md("file").mode() & 0o7777,
                md("file").uid(),
                md("file").gid()
            ),
            (0o4755, 7, 8)
        );
        assert_eq!((md("file").mtime(), md("file").mtime_nsec()), (300, 7));
        assert_eq!(md("file").ino(), md("sub/hard").ino(), "hard link kept");
        assert_eq!(std::fs::read(dest.join("file")).unwrap(), b"hello");
        let mut v = [0u8; 8];
        let n = rustix::fs::lgetxattr(dest.join("file"), "user.note", &mut v).unwrap();
        assert_eq!(&v[..n], b"v");
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!((md("link").uid(), md("link").mtime()), (8, 400));
        assert!(md("sub/fifo").file_type().is_fifo());
        assert_eq!(md("sub/fifo").mode() & 0o7777, 0o620);
        assert!(checkout(&fs, &repo, b"/etc", &dest).is_err(), "dest exists");
        assert!(checkout(&fs, &repo, b"/nope", &tmp.path().join("x")).is_err());
    }
}
