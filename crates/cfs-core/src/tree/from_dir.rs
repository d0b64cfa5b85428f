//! Reading a directory on disk into a [`FileSystem`] (the metadata pass of
//! `mkcomposefs SOURCE IMAGE`).
//!
//! Follows C `mkcomposefs` (`lcfs_build`, composefs 1.0.8) unless asked otherwise:
//! - every entry is `lstat`ed (symlinks are never followed); the image root takes
//!   the source directory's own metadata;
//! - xattrs are read with `llistxattr`/`lgetxattr` (all namespaces the caller can
//!   see; only `user.*` with [`ScanOptions::user_xattrs_only`]);
//! - `skip_devices` drops entries whose `readdir` type is a block or character
//!   device (so also whiteouts, and nothing on filesystems reporting
//!   `DT_UNKNOWN`), exactly like C;
//! - hard links are not detected by default: every name is its own inode with
//!   nlink 1 (C behaviour); [`ScanOptions::detect_hardlinks`] shares inodes by
//!   `(st_dev, st_ino)` and makes the first name in depth-first name order the
//!   primary one;
//! - file contents are not read here: regular files of size > 0 are returned as
//!   [`FileRef`]s to be hashed (and, up to the inline limit, inlined) later.
//!
//! Directories are processed one at a time (their descriptor is closed before
//! descending), so deep trees do not exhaust file descriptors or the stack.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};

use super::{
    DirEntry, Directory, FileSystem, Inode, InodeId, InodeKind, Mtime, RegularFile, Stat, Xattr,
    Xattrs,
};
use crate::tree::ExternalFile;

/// Largest xattr value Linux allows (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;
/// Largest xattr name list Linux allows (`XATTR_LIST_MAX`).
const XATTR_LIST_MAX: usize = 65536;
/// Buffer for `getdents64` records.
const DIRENT_BUFFER: usize = 64 << 10;

/// What to read from the source directory.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Read no xattrs.
    pub skip_xattrs: bool,
    /// Read only `user.*` xattrs.
    pub user_xattrs_only: bool,
    /// Drop block and character devices (by `readdir` type, like C).
    pub skip_devices: bool,
    /// Set every mtime to 0.
    pub use_epoch: bool,
    /// Share inodes between hard links instead of breaking them (not C behaviour).
    pub detect_hardlinks: bool,
}

/// A regular file whose content still has to be read.
#[derive(Debug, Clone)]
pub struct FileRef {
    /// Its inode in the tree (an `External` file without payload yet).
    pub inode: InodeId,
    /// Path relative to the scanned root.
    pub path: Box<[u8]>,
    /// Size found by `lstat`.
    pub size: u64,
}

/// The result of a scan: the tree, the files to read, and the open root.
#[derive(Debug)]
pub struct ScannedTree {
    /// The tree; regular files of size > 0 are `External` without payload.
    pub fs: FileSystem,
    /// Every regular file of size > 0, in scan order (directories are read in
    /// depth-first name order, each directory's files in name order).
    pub files: Vec<FileRef>,
    /// The source directory, for opening files relative to it.
    pub root: OwnedFd,
    /// The source path as given (for messages).
    pub root_path: PathBuf,
}

impl ScannedTree {
    /// Opens a file of the scan read-only; a file replaced since the scan
    /// by a FIFO or device is refused, not waited on.
    pub fn open(&self, file: &FileRef) -> io::Result<std::fs::File> {
        let fd = rustix::fs::openat(
            &self.root,
            OsStr::from_bytes(&file.path),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )?;
        let file = std::fs::File::from(fd);
        crate::beneath::check_regular(&file)?;
        Ok(file)
    }

    /// The full path of a file of the scan, for messages.
    pub fn display_path(&self, file: &FileRef) -> PathBuf {
        self.root_path.join(OsStr::from_bytes(&file.path))
    }
}

/// A filesystem error while scanning, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ScanError {
    /// The path that failed.
    pub path: PathBuf,
    /// The error.
    #[source]
    pub source: io::Error,
}

impl ScanError {
    fn new(path: PathBuf, source: impl Into<io::Error>) -> Self {
        ScanError {
            path,
            source: source.into(),
        }
    }
}

struct Scanner<'a> {
    opts: &'a ScanOptions,
    root_path: &'a Path,
    fs: FileSystem,
    files: Vec<FileRef>,
    links: HashMap<(u64, u64), InodeId>,
    link_count: HashMap<InodeId, u32>,
    names: Vec<u8>,
    value: Vec<u8>,
    dirent_buf: Vec<u8>,
}

/// Scans `root` into a tree. Content of regular files is not read.
pub fn scan_directory(root: &Path, opts: &ScanOptions) -> Result<ScannedTree, ScanError> {
    scan_directory_with(root, opts, &mut |_, _| Ok(()))
}

/// How [`OnFile`] gets at a file's content.
pub(crate) enum Opened<'a> {
    /// The scanner already opened it (read-only).
    File(OwnedFd),
    /// Open `name` in the directory `dir`.
    At(BorrowedFd<'a>, &'a [u8]),
}

/// Called for every regular file of size > 0 as soon as the scan finds it.
pub(crate) type OnFile<'a, E> = dyn FnMut(&FileRef, Opened<'_>) -> Result<(), E> + 'a;

/// [`scan_directory`], calling `on_file` for each regular file found (so its
/// content can be processed while the scan goes on).
pub(crate) fn scan_directory_with<E: From<ScanError>>(
    root: &Path,
    opts: &ScanOptions,
    on_file: &mut OnFile<'_, E>,
) -> Result<ScannedTree, E> {
    let fail = |e: io::Error| ScanError::new(root.to_path_buf(), e);
    if opts.skip_xattrs && opts.user_xattrs_only {
        return Err(fail(io::Error::from_raw_os_error(libc_einval())).into());
    }
    let st =
        rustix::fs::statat(CWD, root, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail(e.into()))?;
    if st.st_mode & 0o170000 != 0o040000 {
        return Err(fail(rustix::io::Errno::NOTDIR.into()).into());
    }
    let root_fd = rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(e.into()))?;
    let mut scanner = Scanner {
        opts,
        root_path: root,
        fs: FileSystem::new(Stat::default()),
        files: Vec::new(),
        links: HashMap::new(),
        link_count: HashMap::new(),
        names: Vec::new(),
        value: Vec::new(),
        dirent_buf: Vec::with_capacity(DIRENT_BUFFER),
    };
    let root_xattrs = scanner
        .read_xattrs(XattrSource::Fd(root_fd.as_fd()))
        .map_err(fail)?;
    let root_inode = scanner.fs.inode_mut(InodeId::ROOT);
    root_inode.stat = stat_of(&st, opts.use_epoch, root_xattrs);
    if let InodeKind::Directory(d) = &mut root_inode.kind {
        d.size = st.st_size as u64;
    }

    // Directories still to read: (inode, path relative to the root).
    let mut pending: Vec<(InodeId, Vec<u8>)> = vec![(InodeId::ROOT, Vec::new())];
    while let Some((dir_id, rel)) = pending.pop() {
        let subdirs = scanner.read_directory(&root_fd, dir_id, &rel, on_file)?;
        // Reverse so that directories are read in depth-first name order.
        pending.extend(subdirs.into_iter().rev());
    }

    let mut fs = scanner.fs;
    for (id, n) in scanner.link_count {
        fs.inode_mut(id).nlink = n;
    }
    if opts.detect_hardlinks {
        fs.normalize_hardlink_primaries();
    }
    Ok(ScannedTree {
        fs,
        files: scanner.files,
        root: root_fd,
        root_path: root.to_path_buf(),
    })
}

fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

/// `/proc/self/fd/N/name`: a path naming `name` in the directory `dir` without
/// building the full path (what C does with `O_PATH` descriptors).
fn proc_path(dir: &OwnedFd, name: &[u8]) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}", dir.as_raw_fd()).into_bytes();
    if !name.is_empty() {
        p.push(b'/');
        p.extend_from_slice(name);
    }
    p
}

// `st_mtime` is `i64` or `c_long` depending on the architecture.
#[allow(clippy::useless_conversion)]
fn stat_of(st: &rustix::fs::Stat, use_epoch: bool, xattrs: Xattrs) -> Stat {
    Stat {
        mode: (st.st_mode & 0o7777) as u16,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: if use_epoch {
            Mtime::default()
        } else {
            Mtime::new(i64::from(st.st_mtime), st.st_mtime_nsec as u32)
        },
        xattrs,
    }
}

/// The device number as the C tools store it: the low 32 bits of the `dev_t`
/// in the kernel's `new_encode_dev` layout.
fn encode_rdev(rdev: u64) -> u32 {
    let major = u64::from(rustix::fs::major(rdev));
    let minor = u64::from(rustix::fs::minor(rdev));
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u32
}

impl Scanner<'_> {
    fn full_path(&self, rel: &[u8]) -> PathBuf {
        self.root_path.join(OsStr::from_bytes(rel))
    }

    /// Reads one directory's entries into the tree; returns its subdirectories.
    fn read_directory<E: From<ScanError>>(
        &mut self,
        root: &OwnedFd,
        dir_id: InodeId,
        rel: &[u8],
        on_file: &mut OnFile<'_, E>,
    ) -> Result<Vec<(InodeId, Vec<u8>)>, E> {
        let dir_fd = if rel.is_empty() {
            rustix::fs::openat(
                root,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        } else {
            rustix::fs::openat(
                root,
                OsStr::from_bytes(rel),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        }
        .map_err(|e| ScanError::new(self.full_path(rel), e))?;

        let mut names: Vec<(Vec<u8>, rustix::fs::FileType)> = Vec::new();
        // getdents64 straight on our descriptor (no extra open of ".").
        let dir_path = self.full_path(rel);
        let mut dirent_buf = std::mem::take(&mut self.dirent_buf);
        let mut dir = rustix::fs::RawDir::new(&dir_fd, dirent_buf.spare_capacity_mut());
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(|e| ScanError::new(dir_path.clone(), e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let ftype = entry.file_type();
            if self.opts.skip_devices
                && matches!(
                    ftype,
                    rustix::fs::FileType::BlockDevice | rustix::fs::FileType::CharacterDevice
                )
            {
                continue;
            }
            names.push((name.to_vec(), ftype));
        }
        self.dirent_buf = dirent_buf;
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let mut subdirs = Vec::new();
        for (name, ftype) in names {
            let child_rel = join_rel(rel, &name);
            let root_path = self.root_path;
            let fail =
                |e: io::Error| ScanError::new(root_path.join(OsStr::from_bytes(&child_rel)), e);
            // Regular files are opened right away: their metadata and xattrs
            // come from the descriptor (no path walks), and the workers read
            // their content through it.
            let opened = if ftype == rustix::fs::FileType::RegularFile {
                open_regular(&dir_fd, &name)
            } else {
                None
            };
            let st = match &opened {
                Some((_, st)) => *st,
                None => {
                    rustix::fs::statat(&dir_fd, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| fail(e.into()))?
                }
            };
            let is_dir = st.st_mode & 0o170000 == 0o040000;
            if self.opts.detect_hardlinks && !is_dir && st.st_nlink > 1 {
                let key = (st.st_dev as u64, st.st_ino as u64);
                if let Some(&target) = self.links.get(&key) {
                    *self.link_count.entry(target).or_insert(1) += 1;
                    self.push_entry(dir_id, name, target, true);
                    continue;
                }
            }
            let xattrs = match &opened {
                Some((fd, _)) => self.read_xattrs(XattrSource::Fd(fd.as_fd())),
                None => self.read_xattrs(XattrSource::Path(&proc_path(&dir_fd, &name))),
            }
            .map_err(fail)?;
            let stat = stat_of(&st, self.opts.use_epoch, xattrs);
            let kind = match st.st_mode & 0o170000 {
                0o040000 => InodeKind::Directory(Directory {
                    size: st.st_size as u64,
                    ..Directory::new()
                }),
                0o100000 => {
                    let size = st.st_size as u64;
                    if size == 0 {
                        InodeKind::Regular(RegularFile::Inline(Box::default()))
                    } else {
                        InodeKind::Regular(RegularFile::External(ExternalFile {
                            size,
                            payload: None,
                            digest: None,
                        }))
                    }
                }
                0o120000 => {
                    let target =
                        rustix::fs::readlinkat(&dir_fd, OsStr::from_bytes(&name), Vec::new())
                            .map_err(|e| fail(e.into()))?;
                    InodeKind::Symlink(target.into_bytes().into_boxed_slice())
                }
                0o020000 => InodeKind::CharDevice(encode_rdev(st.st_rdev as u64)),
                0o060000 => InodeKind::BlockDevice(encode_rdev(st.st_rdev as u64)),
                0o010000 => InodeKind::Fifo,
                0o140000 => InodeKind::Socket,
                _ => return Err(fail(rustix::io::Errno::INVAL.into()).into()),
            };
            let size = match &kind {
                InodeKind::Regular(f) => f.size(),
                _ => 0,
            };
            let id = self.fs.push_inode(Inode::new(stat, kind));
            if is_dir {
                self.fs.inode_mut(id).nlink = 2;
                subdirs.push((id, child_rel.clone()));
            } else if self.opts.detect_hardlinks && st.st_nlink > 1 {
                self.links.insert((st.st_dev as u64, st.st_ino as u64), id);
            }
            if size > 0 {
                let file = FileRef {
                    inode: id,
                    path: child_rel.into_boxed_slice(),
                    size,
                };
                let how = match opened {
                    Some((fd, _)) => Opened::File(fd),
                    None => Opened::At(dir_fd.as_fd(), &name),
                };
                on_file(&file, how)?;
                self.files.push(file);
            }
            self.push_entry(dir_id, name, id, false);
        }
        Ok(subdirs)
    }

    fn push_entry(&mut self, dir: InodeId, name: Vec<u8>, inode: InodeId, alias: bool) {
        // Names arrive sorted and unique, so appending keeps the order.
        if let Some(d) = self.fs.directory_mut(dir) {
            d.push(DirEntry {
                name: name.into_boxed_slice(),
                inode,
                alias,
            });
        }
    }

    /// Reads the xattrs of a file (a path is not followed if it is a symlink).
    fn read_xattrs(&mut self, source: XattrSource<'_>) -> io::Result<Xattrs> {
        let mut xattrs = Xattrs::new();
        if self.opts.skip_xattrs {
            return Ok(xattrs);
        }
        // Buffers of the largest sizes Linux allows: one call each, no size query.
        self.names.resize(XATTR_LIST_MAX, 0);
        self.value.resize(XATTR_SIZE_MAX, 0);
        let listed = match source {
            XattrSource::Fd(fd) => rustix::fs::flistxattr(fd, &mut self.names[..]),
            XattrSource::Path(p) => {
                rustix::fs::llistxattr(OsStr::from_bytes(p), &mut self.names[..])
            }
        };
        let names_len = match listed {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(xattrs),
            Err(e) => return Err(e.into()),
        };
        let names = std::mem::take(&mut self.names);
        for name in names[..names_len]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
        {
            if self.opts.user_xattrs_only && !name.starts_with(b"user.") {
                continue;
            }
            let cname =
                CString::new(name).map_err(|_| io::Error::from(rustix::io::Errno::INVAL))?;
            let got = match source {
                XattrSource::Fd(fd) => rustix::fs::fgetxattr(fd, &*cname, &mut self.value[..]),
                XattrSource::Path(p) => {
                    rustix::fs::lgetxattr(OsStr::from_bytes(p), &*cname, &mut self.value[..])
                }
            };
            match got {
                Ok(len) => xattrs.push_unchecked(Xattr {
                    name: name.into(),
                    value: self.value[..len].into(),
                }),
                // Removed since it was listed.
                Err(rustix::io::Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.names = names;
        Ok(xattrs)
    }
}

/// Where to read xattrs from.
#[derive(Clone, Copy)]
enum XattrSource<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a [u8]),
}

/// Opens `name` in `dir` if it is (still) a regular file; `None` if it cannot
/// be opened as one (the caller falls back to path-based calls, which report
/// errors the way C does).
fn open_regular(dir: &OwnedFd, name: &[u8]) -> Option<(OwnedFd, rustix::fs::Stat)> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let name = OsStr::from_bytes(name);
    // Reading must not change the source: no access-time updates (and no
    // journal writes for them) where we may ask for that (owner or root).
    let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        r => r,
    }
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (st.st_mode & 0o170000 == 0o100000).then_some((fd, st))
}

fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl FileSystem {
    /// Makes the first name of every hard-linked inode in depth-first name
    /// order its primary name (the others become aliases).
    pub fn normalize_hardlink_primaries(&mut self) {
        let mut linked = vec![false; self.len()];
        for inode in self.inodes() {
            if let InodeKind::Directory(d) = &inode.kind {
                for e in d.entries().iter().filter(|e| e.alias) {
                    linked[e.inode.index()] = true;
                }
            }
        }
        let mut first: HashMap<InodeId, (InodeId, usize)> = HashMap::new();
        self.walk_with_parent(|parent, index, e| {
            if linked[e.inode.index()] {
                first.entry(e.inode).or_insert((parent, index));
            }
        });
        for dir in 0..self.inodes.len() {
            let dir_id = InodeId(dir as u32);
            let InodeKind::Directory(d) = &mut self.inodes[dir].kind else {
                continue;
            };
            for (index, e) in d.entries_mut().iter_mut().enumerate() {
                if let Some(&owner) = first.get(&e.inode) {
                    e.alias = owner != (dir_id, index);
                }
            }
        }
    }

    /// Like [`FileSystem::walk`] but passes the parent directory and the entry's
    /// index in it instead of the path.
    fn walk_with_parent(&self, mut f: impl FnMut(InodeId, usize, &DirEntry)) {
        let mut stack: Vec<(InodeId, usize)> = vec![(InodeId::ROOT, 0)];
        let mut entered = vec![false; self.len()];
        entered[0] = true;
        while let Some((dir, idx)) = stack.last_mut() {
            let dir_id = *dir;
            let index = *idx;
            let entries = self
                .directory(dir_id)
                .map(Directory::entries)
                .unwrap_or(&[]);
            let Some(e) = entries.get(index) else {
                stack.pop();
                continue;
            };
            *idx += 1;
            f(dir_id, index, e);
            if !e.alias
                && self.directory(e.inode).is_some()
                && !std::mem::replace(&mut entered[e.inode.index()], true)
            {
                stack.push((e.inode, 0));
            }
        }
    }
}

#[cfg(test)]
mod tests;
