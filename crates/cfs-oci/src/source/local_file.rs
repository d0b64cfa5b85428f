//! Opening the local files of image sources without ever blocking on a
//! special file, and without leaving an OCI layout through a symlink.
//!
//! - **Files of an OCI layout directory** (`oci-layout`, `index.json`,
//!   `blobs/sha256/<hex>`): opened relative to the layout directory with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` and `O_NONBLOCK`, so
//!   a symlink that stays inside the layout is followed and one leading
//!   outside (or an absolute one) is refused. Kernels without `openat2`
//!   (before 5.6, or behind a seccomp filter) get `openat` with
//!   `O_NOFOLLOW`: a symlink as the last component is refused. Then
//!   `fstat`: anything but a regular file (FIFO, socket, device,
//!   directory) is refused with an error naming the path and what was
//!   found. `O_NONBLOCK` makes opening a FIFO return at once instead of
//!   waiting for a writer; it has no effect on regular files.
//! - **Archive files** named by `oci-archive:` / `docker-archive:`: a
//!   regular file is read in place. A pipe or FIFO (`/dev/stdin`, a shell's
//!   `<(…)`) is read to its end, as a stream, into an anonymous temporary
//!   file in `$TMPDIR` first, since the tar index needs positioned reads; a
//!   FIFO without a writer reads as empty (no wait) and is refused as such.
//!   Devices, sockets and directories are refused.
//! - **Credentials and registries.conf files** ([`read_regular`]): regular
//!   files only, at most [`MAX_SMALL_FILE`] bytes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Most bytes spooled to a temporary file from a compressed archive or an
/// archive read from a pipe (256 GiB): a compression bomb or an endless
/// pipe stops there instead of filling the disk.
pub(crate) const MAX_SPOOLED_ARCHIVE: u64 = 256 << 30;

/// Largest credentials or registries.conf file read (1 MiB).
pub(crate) const MAX_SMALL_FILE: u64 = 1 << 20;

/// What a file type is called in messages (`a FIFO`).
pub(crate) fn kind_name(file_type: FileType) -> &'static str {
    cfs_core::beneath::describe(file_type)
}

fn other(path: &Path, message: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {message}", path.display()))
}

/// An `io::Error` naming `path` for an errno (`ENOENT` keeps its kind).
fn errno(path: &Path, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Opens the directory `path` (the root of an OCI layout).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(path, e))
}

/// `fd` as a [`File`] if it is a regular file, with its size; `shown`
/// names it in the error otherwise (`…: is a FIFO, expected a regular
/// file`).
fn regular(fd: OwnedFd, shown: &Path) -> io::Result<(File, u64)> {
    let st = rustix::fs::fstat(&fd).map_err(|e| errno(shown, e))?;
    let file_type = FileType::from_raw_mode(st.st_mode);
    if file_type != FileType::RegularFile {
        return Err(other(
            shown,
            format_args!("is {}, expected a regular file", kind_name(file_type)),
        ));
    }
    Ok((File::from(fd), st.st_size as u64))
}

/// Opens the regular file `name` (relative, `/`-separated) beneath the
/// directory `dir`; `shown` is its full path for messages. See the module
/// docs for what is refused.
pub(crate) fn open_beneath(dir: &OwnedFd, name: &str, shown: &Path) -> io::Result<(File, u64)> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(Errno::XDEV) => {
            return Err(other(shown, "a symlink leads outside the layout"));
        }
        Err(Errno::NOSYS | Errno::PERM) => {
            match rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::LOOP) => {
                    return Err(other(shown, "is a symlink, expected a regular file"));
                }
                Err(e) => return Err(open_error(Some(dir), Path::new(name), shown, e)),
            }
        }
        Err(e) => return Err(open_error(Some(dir), Path::new(name), shown, e)),
    };
    regular(fd, shown)
}

/// The error for a failed open of `name` beneath `dir` (or of the path
/// `name` itself, for `dir` = `None`): sockets, and devices without a
/// driver, cannot be opened at all (`ENXIO`, `ENODEV`), so say what the
/// file is.
fn open_error(dir: Option<&OwnedFd>, name: &Path, shown: &Path, e: Errno) -> io::Error {
    if matches!(e, Errno::NXIO | Errno::NODEV) {
        let st = match dir {
            Some(dir) => rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::stat(name),
        };
        if let Ok(st) = st {
            let file_type = FileType::from_raw_mode(st.st_mode);
            return other(
                shown,
                format_args!("is {}, expected a regular file", kind_name(file_type)),
            );
        }
    }
    errno(shown, e)
}

/// Opens an archive file named by the user: a regular file as is, a pipe
/// or FIFO copied to an anonymous temporary file (rewound). See the module
/// docs.
pub(crate) fn open_archive_file(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| open_error(None, path, path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| errno(path, e))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(File::from(fd)),
        FileType::Fifo => {
            // Blocking reads from here on: the stream is read as it comes.
            rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| errno(path, e))?;
            let mut out = tempfile::tempfile()
                .map_err(|e| other(path, format_args!("creating a temporary file: {e}")))?;
            let copied =
                cfs_core::limits::copy_bounded(File::from(fd), &mut out, MAX_SPOOLED_ARCHIVE)
                    .map_err(|e| other(path, format_args!("reading the pipe: {e}")))?;
            if copied == 0 {
                return Err(other(
                    path,
                    "is a pipe or FIFO that gave no data (no writer?)",
                ));
            }
            out.seek(SeekFrom::Start(0))?;
            Ok(out)
        }
        file_type => Err(other(
            path,
            format_args!(
                "is {}, expected a regular file or a pipe",
                kind_name(file_type)
            ),
        )),
    }
}

/// The whole regular file `path`, at most `limit` bytes (`NotFound` keeps
/// its kind, so callers can skip missing files).
pub(crate) fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| open_error(None, path, path, e))?;
    let (file, size) = regular(fd, path)?;
    if size > limit {
        return Err(other(
            path,
            format_args!("has {size} bytes, more than the {limit} accepted"),
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    file.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Creates a FIFO at `path` (for the tests of the sources).
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    #[test]
    fn spooling_stops_at_the_limit() {
        let mut out = tempfile::tempfile().unwrap();
        let e = cfs_core::limits::copy_bounded(std::io::repeat(0), &mut out, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("more than 1048576 bytes"), "{e}");
        let mut out = tempfile::tempfile().unwrap();
        assert_eq!(
            cfs_core::limits::copy_bounded(&[1u8; 7][..], &mut out, 7).unwrap(),
            7
        );
    }
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn beneath_accepts_regular_files_and_inner_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
        std::fs::write(d.join("blobs/sha256/aa"), b"hello").unwrap();
        symlink("aa", d.join("blobs/sha256/bb")).unwrap();
        let dir = open_dir(d).unwrap();
        let (mut f, size) = open_beneath(&dir, "blobs/sha256/aa", &d.join("x")).unwrap();
        assert_eq!(size, 5);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        // A symlink inside the layout is followed (openat2) or refused
        // (fallback); never anything else.
        match open_beneath(&dir, "blobs/sha256/bb", &d.join("bb")) {
            Ok((_, size)) => assert_eq!(size, 5),
            Err(e) => assert!(e.to_string().contains("is a symlink"), "{e}"),
        }
        let e = open_beneath(&dir, "missing", &d.join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn beneath_refuses_special_files_and_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("layout");
        std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
        std::fs::write(tmp.path().join("outside"), b"secret").unwrap();
        mkfifo(&d.join("fifo"));
        let _sock = UnixListener::bind(d.join("sock")).unwrap();
        symlink("../outside", d.join("escape")).unwrap();
        symlink(tmp.path().join("outside"), d.join("absolute")).unwrap();
        symlink("/dev/null", d.join("null")).unwrap();
        let dir = open_dir(&d).unwrap();
        let refuse = |name: &str, needle: &str| {
            let shown = d.join(name);
            let e = open_beneath(&dir, name, &shown).unwrap_err().to_string();
            assert!(e.starts_with(&shown.display().to_string()), "{e}");
            assert!(e.contains(needle), "{name}: {e}");
        };
        refuse("fifo", "is a FIFO, expected a regular file");
        refuse("sock", "is a socket, expected a regular file");
        refuse("blobs", "is a directory, expected a regular file");
        for name in ["escape", "absolute", "null"] {
            let shown = d.join(name);
            let e = open_beneath(&dir, name, &shown).unwrap_err().to_string();
            assert!(
                e.contains("outside the layout") || e.contains("is a symlink"),
                "{name}: {e}"
            );
        }
    }

    #[test]
    fn archive_files_pipes_and_devices() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = tmp.path().join("a.tar");
        std::fs::write(&reg, b"data").unwrap();
        let mut s = String::new();
        open_archive_file(&reg)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "data");
        let e = open_archive_file(Path::new("/dev/null"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/null: is a character device, expected a regular file or a pipe"),
            "{e}"
        );
        let e = open_archive_file(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        // A FIFO without a writer: refused at once, no wait.
        let fifo = tmp.path().join("fifo");
        mkfifo(&fifo);
        let e = open_archive_file(&fifo).unwrap_err().to_string();
        assert!(e.contains("gave no data"), "{e}");
        // A FIFO with a writer: read as a stream. The writer's open blocks
        // until a reader comes; either side retries when the other was
        // not there yet (EOF for the reader, EPIPE for the writer).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                while std::time::Instant::now() < deadline {
                    let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                        continue;
                    };
                    if std::io::Write::write_all(&mut w, b"streamed").is_ok() {
                        return;
                    }
                }
            })
        };
        let mut got = String::new();
        while got.is_empty() && std::time::Instant::now() < deadline {
            match open_archive_file(&fifo) {
                Ok(mut f) => {
                    f.read_to_string(&mut got).unwrap();
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        // A writer still waiting in open() is released by one more reader.
        let _release = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo);
        writer.join().unwrap();
        assert_eq!(got, "streamed");
    }

    #[test]
    fn small_files_are_regular_and_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("auth.json");
        std::fs::write(&f, b"{}").unwrap();
        assert_eq!(read_regular(&f, 10).unwrap(), b"{}");
        let e = read_regular(&f, 1).unwrap_err().to_string();
        assert!(e.contains("more than the 1 accepted"), "{e}");
        let fifo = tmp.path().join("fifo");
        mkfifo(&fifo);
        let e = read_regular(&fifo, 10).unwrap_err().to_string();
        assert!(e.contains("is a FIFO, expected a regular file"), "{e}");
        let e = read_regular(&tmp.path().join("none"), 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
