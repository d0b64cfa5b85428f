//! Opening paths *beneath* a directory descriptor without following any
//! symlink, and refusing files that are not what they must be.
//!
//! A repository (or an object store) is one directory the caller chose; its
//! own sub-directories (`objects/`, `objects/XX/`, `images/`, `streams/`,
//! the refs trees) must be real directories inside it. Every path below the
//! root is resolved here, relative to the root's descriptor, with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` — so a symlink anywhere in
//! the path (absolute or relative, planted before or during an operation)
//! makes the open fail with `ELOOP` instead of leading outside. Kernels
//! without `openat2` (before 5.6) get the same guarantee from a walk that
//! opens one component at a time with `O_NOFOLLOW`.
//!
//! Files read from such a place are opened with `O_NONBLOCK | O_NOFOLLOW |
//! O_NOCTTY` and checked with `fstat` to be regular files, so a FIFO, socket
//! or device planted there is reported instead of waited on
//! ([`open_regular`]).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Set once `openat2` turned out to be unavailable (ENOSYS, or refused by a
/// seccomp filter with EPERM): every later call walks instead.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` (relative, `/`-separated, no `..`) below `root` with `flags`.
/// No symlink is followed anywhere in the path, including the last
/// component (with `O_PATH | O_NOFOLLOW` a final symlink is opened itself,
/// as by `openat`). `ELOOP` means a symlink was met; `ENOTDIR` a file where a
/// directory must be.
pub fn openat(root: BorrowedFd<'_>, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    if rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{rel:?} is not a plain relative path"),
        ));
    }
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(root, rel, flags, mode, resolve) {
            // EAGAIN: the kernel asks to retry (a rename raced the lookup).
            Err(Errno::AGAIN) => return walk(root, rel, flags, mode),
            Err(Errno::NOSYS | Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
            other => return other.map_err(Into::into),
        }
    }
    walk(root, rel, flags, mode)
}

/// The fallback of [`openat`]: one `openat(O_NOFOLLOW)` per component.
fn walk(root: BorrowedFd<'_>, rel: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let mut parts: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let last = parts.pop().unwrap_or(".");
    let mut cur: Option<OwnedFd> = None;
    for part in parts {
        let at = cur.as_ref().map_or(root, |fd| fd.as_fd());
        let next = rustix::fs::openat(
            at,
            part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // O_NOFOLLOW|O_DIRECTORY on a symlink gives ENOTDIR: say ELOOP.
            Errno::NOTDIR if is_symlink(at, part) => Errno::LOOP,
            e => e,
        })?;
        cur = Some(next);
    }
    let at = cur.as_ref().map_or(root, |fd| fd.as_fd());
    Ok(rustix::fs::openat(at, last, flags, mode)?)
}

fn is_symlink(dir: BorrowedFd<'_>, name: &str) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Opens the directory `rel` below `root` for reading (`"."` is the root itself).
pub fn open_dir(root: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    if rel == "." {
        return Ok(rustix::fs::openat(
            root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    openat(root, rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
}

/// `lstat` of `rel` below `root`, following no symlink on the way.
pub fn lstat(root: BorrowedFd<'_>, rel: &str) -> io::Result<rustix::fs::Stat> {
    let fd = openat(root, rel, OFlags::PATH, Mode::empty())?;
    Ok(rustix::fs::fstat(&fd)?)
}

/// Opens the regular file `rel` below `root` read-only, without blocking on
/// a FIFO or device and without following symlinks; anything that is not a
/// regular file is refused with [`io::ErrorKind::InvalidData`] and a message
/// naming what it is.
pub fn open_regular(root: BorrowedFd<'_>, rel: &str) -> io::Result<File> {
    let fd = openat(
        root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e.raw_os_error().map(Errno::from_raw_os_error) {
        // A final symlink with O_NOFOLLOW, a socket (ENXIO), or a device
        // without a driver: say what is there.
        Some(Errno::LOOP | Errno::NXIO | Errno::NODEV) => match lstat(root, rel) {
            Ok(st) => not_regular(FileType::from_raw_mode(st.st_mode)),
            Err(_) => e,
        },
        _ => e,
    })?;
    let file = File::from(fd);
    check_regular(&file)?;
    Ok(file)
}

/// Fails unless `file` is a regular file (see [`open_regular`]).
pub fn check_regular(file: impl AsFd) -> io::Result<()> {
    let st = rustix::fs::fstat(file)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        other => Err(not_regular(other)),
    }
}

/// The error for a file of type `ft` where a regular file must be.
pub fn not_regular(ft: FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("is {}, expected a regular file", describe(ft)),
    )
}

/// A file type in words, with its article.
pub fn describe(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "a file of unknown type",
    }
}

/// The entries of the open directory `dir` (except `.` and `..`) with their
/// types, not following symlinks; read through a new descriptor, so `dir`
/// keeps its position. A type the directory entry does not carry is looked
/// up with `fstatat`.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, FileType)>> {
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut ft = entry.file_type();
        if ft == FileType::Unknown {
            ft = match rustix::fs::statat(
                dir,
                entry.file_name(),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
        }
        out.push((OsString::from_vec(name.to_vec()), ft));
    }
    Ok(out)
}

/// `rel` split at its last `/` into the parent directory (`"."` for none)
/// and the last component.
pub fn split_parent(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or((".", rel))
}

/// Creates the directory `rel` below `root` and every missing parent (mode
/// `mode`), one component at a time, refusing symlinks on the way; returns
/// the open directory.
pub fn mkdir_all(root: BorrowedFd<'_>, rel: &str, mode: Mode) -> io::Result<OwnedFd> {
    let mut cur = open_dir(root, ".")?;
    for part in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if part == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel:?} contains '..'"),
            ));
        }
        match rustix::fs::mkdirat(&cur, part, mode) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        cur = openat(
            cur.as_fd(),
            part,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
    }
    Ok(cur)
}

/// Removes the directory tree `name` in `dir` (or the file or symlink
/// `name`), never following a symlink. `NotFound` is success.
pub fn remove_tree(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    // Depth-first with an explicit stack of open directories (no recursion),
    // bounded by the kernel's path length.
    let sub = openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
    let mut stack: Vec<OwnedFd> = vec![sub];
    let mut names = vec![OsString::from(name)];
    while let Some(fd) = stack.last() {
        let mut descended = false;
        for (child, ft) in read_dir(fd.as_fd())? {
            if ft == FileType::Directory {
                let child_fd = rustix::fs::openat(
                    fd,
                    child.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                if stack.len() > 4096 {
                    return Err(io::Error::other("directory tree nested too deeply"));
                }
                stack.push(child_fd);
                names.push(child);
                descended = true;
                break;
            }
            match rustix::fs::unlinkat(fd, child.as_os_str(), rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if descended {
            continue;
        }
        // Empty now: remove it from its parent.
        stack.pop();
        let done = names.pop().unwrap_or_default();
        let parent = stack.last().map_or(dir, |fd| fd.as_fd());
        match rustix::fs::unlinkat(parent, done.as_os_str(), rustix::fs::AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root(dir: &std::path::Path) -> OwnedFd {
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn both_ways(test: impl Fn()) {
        test();
        NO_OPENAT2.store(true, Ordering::Relaxed);
        test();
        NO_OPENAT2.store(false, Ordering::Relaxed);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        std::fs::write(tmp.path().join("real/file"), b"ok").unwrap();
        symlink(outside.path(), tmp.path().join("abs")).unwrap();
        symlink("real", tmp.path().join("rel")).unwrap();
        symlink("real/file", tmp.path().join("filelink")).unwrap();
        let fd = root(tmp.path());
        both_ways(|| {
            assert!(open_regular(fd.as_fd(), "real/file").is_ok());
            for path in ["abs/secret", "rel/file"] {
                let e = open_regular(fd.as_fd(), path).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc_eloop()), "{path}: {e}");
                assert!(open_dir(fd.as_fd(), path.split('/').next().unwrap()).is_err());
            }
            let e = open_regular(fd.as_fd(), "filelink").unwrap_err();
            assert!(e.to_string().contains("is a symlink"), "{e}");
            assert_eq!(
                FileType::from_raw_mode(lstat(fd.as_fd(), "filelink").unwrap().st_mode),
                FileType::Symlink
            );
        });
        assert!(openat(fd.as_fd(), "../x", OFlags::RDONLY, Mode::empty()).is_err());
        assert!(openat(fd.as_fd(), "/etc", OFlags::RDONLY, Mode::empty()).is_err());
    }

    fn libc_eloop() -> i32 {
        Errno::LOOP.raw_os_error()
    }

    #[test]
    fn special_files_are_reported_not_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
        let fd = root(tmp.path());
        both_ways(|| {
            let e = open_regular(fd.as_fd(), "fifo").unwrap_err();
            assert!(e.to_string().contains("is a FIFO"), "{e}");
            let e = open_regular(fd.as_fd(), "sock").unwrap_err();
            assert!(e.to_string().contains("is a socket"), "{e}");
        });
    }

    #[test]
    fn mkdir_all_and_remove_tree_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        symlink(outside.path(), tmp.path().join("link")).unwrap();
        let fd = root(tmp.path());
        both_ways(|| {
            assert!(mkdir_all(fd.as_fd(), "link/sub", Mode::from_raw_mode(0o755)).is_err());
        });
        assert!(!outside.path().join("sub").exists());
        mkdir_all(fd.as_fd(), "a/b/c", Mode::from_raw_mode(0o755)).unwrap();
        std::fs::write(tmp.path().join("a/b/c/f"), b"x").unwrap();
        symlink(outside.path(), tmp.path().join("a/b/out")).unwrap();
        remove_tree(fd.as_fd(), "a").unwrap();
        assert!(!tmp.path().join("a").exists());
        assert!(outside.path().join("keep").exists());
        remove_tree(fd.as_fd(), "link").unwrap();
        assert!(outside.path().join("keep").exists());
        remove_tree(fd.as_fd(), "missing").unwrap();
    }
}
