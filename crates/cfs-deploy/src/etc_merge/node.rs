//! One directory entry as the merge sees it (type, content identity,
//! metadata), read without following symlinks, and the low-level helpers
//! the planner and the applier share: opening directories below a root one
//! `O_NOFOLLOW` component at a time, listing them, extended attributes of
//! entries that cannot be opened (symlinks, sockets, devices).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::EntryKind;

/// Extended attributes, name → value.
pub(super) type Xattrs = BTreeMap<OsString, Vec<u8>>;

/// What the merge compares of one entry (never its times).
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) kind: EntryKind,
    /// Permission bits (`0o7777`); not compared for symlinks.
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Device number (devices only).
    pub(super) rdev: u64,
    pub(super) size: u64,
    /// Symlink target.
    pub(super) target: Option<Vec<u8>>,
    pub(super) xattrs: Xattrs,
}

impl Node {
    pub(super) fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// Equal metadata (and, for symlinks and devices, target and number);
    /// regular file contents are compared by [`same_node`].
    fn same_metadata(&self, other: &Node) -> bool {
        self.kind == other.kind
            && (self.kind == EntryKind::Symlink || self.mode == other.mode)
            && self.uid == other.uid
            && self.gid == other.gid
            && self.rdev == other.rdev
            && self.target == other.target
            && self.xattrs == other.xattrs
    }
}

/// The kind of a file type; `None` for a type the kernel did not name.
pub(super) fn kind_of(ft: FileType) -> Option<EntryKind> {
    Some(match ft {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        FileType::Fifo => EntryKind::Fifo,
        FileType::Socket => EntryKind::Socket,
        FileType::CharacterDevice => EntryKind::CharDevice,
        FileType::BlockDevice => EntryKind::BlockDevice,
        _ => return None,
    })
}

/// `lstat` of `name` in `dir`; `None` if absent.
pub(super) fn stat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The kind of a stat result, or an error for an unknown type.
pub(super) fn kind_of_stat(st: &rustix::fs::Stat) -> io::Result<EntryKind> {
    kind_of(FileType::from_raw_mode(st.st_mode)).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown file type (mode {:o})", st.st_mode),
        )
    })
}

/// Reads `name` in `dir` without following it; `None` if absent.
pub(super) fn read_node(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Node>> {
    let Some(st) = stat(dir, name)? else {
        return Ok(None);
    };
    let kind = kind_of_stat(&st)?;
    let target = match kind {
        EntryKind::Symlink => Some(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes()),
        _ => None,
    };
    let rdev = match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice => st.st_rdev,
        _ => 0,
    };
    Ok(Some(Node {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev,
        size: u64::try_from(st.st_size).unwrap_or(0),
        target,
        xattrs: read_xattrs(dir, name)?,
    }))
}

/// Whether `a` (`name` in `dir_a`) and `b` (`name` in `dir_b`) are the
/// same entry: same type and metadata, and for regular files the same
/// bytes. Directories compare their own metadata only.
pub(super) fn same_node(
    dir_a: BorrowedFd<'_>,
    a: &Node,
    dir_b: BorrowedFd<'_>,
    b: &Node,
    name: &OsStr,
) -> io::Result<bool> {
    if !a.same_metadata(b) {
        return Ok(false);
    }
    if a.kind != EntryKind::File {
        return Ok(true);
    }
    if a.size != b.size {
        return Ok(false);
    }
    same_content(open_file(dir_a, name)?, open_file(dir_b, name)?)
}

/// Opens the regular file `name` in `dir` for reading (no symlink, no
/// blocking on a FIFO planted meanwhile), checking it is still regular.
pub(super) fn open_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    cfs_core::beneath::check_regular(&fd)?;
    Ok(File::from(fd))
}

fn same_content(mut a: File, mut b: File) -> io::Result<bool> {
    let mut buf_a = vec![0u8; 64 << 10];
    let mut buf_b = vec![0u8; 64 << 10];
    loop {
        let n = read_full(&mut a, &mut buf_a)?;
        let m = read_full(&mut b, &mut buf_b)?;
        if buf_a.get(..n) != buf_b.get(..m) {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` unless the file ends first; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `/proc/self/fd/<dir>/<name>`: a path naming `name` in `dir` for the
/// `l*xattr` calls, which do not follow the last component (`name` itself
/// may be a symlink, a socket or a device, which cannot be opened safely).
pub(super) fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    path.push(name);
    path
}

/// All extended attributes of `name` in `dir` (not following it).
pub(super) fn read_xattrs(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Xattrs> {
    let path = proc_path(dir, name);
    let mut out = Xattrs::new();
    let list = loop {
        let size = match rustix::fs::llistxattr_query(&path) {
            Ok(size) => size,
            Err(Errno::NOTSUP) => return Ok(out),
            Err(Errno::NOENT) if !Path::new("/proc/self/fd").is_dir() => {
                return Err(io::Error::other(
                    "/proc is not mounted (needed to read extended attributes)",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(out);
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(&path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            // Grew meanwhile: ask again.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    for attr in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let attr = OsStr::from_bytes(attr);
        if let Some(value) = get_xattr(&path, attr)? {
            out.insert(attr.to_owned(), value);
        }
    }
    Ok(out)
}

fn get_xattr(path: &Path, attr: &OsStr) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(path, attr) {
            Ok(size) => size,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, attr, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes the extended attributes of `name` in `dir` exactly `want`:
/// sets every one of them and removes any other (a default ACL or an
/// automatic label the new entry was born with). Removing
/// `security.selinux` may be refused by the system; that is ignored.
pub(super) fn replace_xattrs(dir: BorrowedFd<'_>, name: &OsStr, want: &Xattrs) -> io::Result<()> {
    let path = proc_path(dir, name);
    for old in read_xattrs(dir, name)?.keys() {
        if !want.contains_key(old) {
            match rustix::fs::lremovexattr(&path, old) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(_) if old.as_bytes() == b"security.selinux" => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    set_xattrs(
        dir,
        name,
        want.iter().map(|(k, v)| (k.as_os_str(), v.as_slice())),
    )
}

/// Sets each of `attrs` on `name` in `dir`.
pub(super) fn set_xattrs<'a>(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    attrs: impl IntoIterator<Item = (&'a OsStr, &'a [u8])>,
) -> io::Result<()> {
    let path = proc_path(dir, name);
    for (attr, value) in attrs {
        rustix::fs::lsetxattr(&path, attr, value, rustix::fs::XattrFlags::empty())
            .map_err(|e| io::Error::new(e.kind(), format!("setting {attr:?}: {e}")))?;
    }
    Ok(())
}

/// Removes each of `attrs` from `name` in `dir` (absent ones are fine).
pub(super) fn remove_xattrs<'a>(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    attrs: impl IntoIterator<Item = &'a OsStr>,
) -> io::Result<()> {
    let path = proc_path(dir, name);
    for attr in attrs {
        match rustix::fs::lremovexattr(&path, attr) {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("removing {attr:?}: {e}"))),
        }
    }
    Ok(())
}

/// Opens the directory `rel` below `root` (the root itself for an empty
/// path), one component at a time with `O_NOFOLLOW | O_DIRECTORY`: a
/// symlink anywhere fails instead of leading elsewhere.
pub(super) fn open_dir(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur = rustix::fs::openat(root, ".", flags, Mode::empty())?;
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel:?} is not a plain relative path"),
            ));
        };
        cur = rustix::fs::openat(&cur, name, flags, Mode::empty()).map_err(|e| match e {
            // O_NOFOLLOW | O_DIRECTORY on a symlink says ENOTDIR: say so.
            Errno::NOTDIR | Errno::LOOP => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a directory (a symlink is never followed)",
                    name.display()
                ),
            ),
            e => e.into(),
        })?;
    }
    Ok(cur)
}

/// The names in the directory `dir`, sorted (byte order).
pub(super) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names: Vec<OsString> = cfs_core::beneath::read_dir(dir.as_fd())?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// `path` split into its parent (empty for a top-level entry) and its last
/// component.
pub(super) fn split(path: &Path) -> (&Path, &OsStr) {
    let parent = path.parent().unwrap_or(Path::new(""));
    (parent, path.file_name().unwrap_or(OsStr::new(".")))
}

/// A fresh name for a temporary entry in a directory (`attempt` makes it
/// unique when an earlier one exists).
pub(super) fn temp_name(attempt: u32) -> OsString {
    OsString::from_vec(format!(".cfs-etc-merge.{}.{attempt}", std::process::id()).into_bytes())
}
