//! An object directory: file contents named by their fs-verity digest.
//!
//! ```text
//! DIR/
//!   0b/6aeb8072e1260ee430edff44a4939b9a306ff4d0fd58d8b3ec40abf3ea7636   (mode 0644)
//!   ...
//! ```
//!
//! The first byte of the digest in hex names a subdirectory (mode 0755), the
//! rest of the hex digest the file (see [`Digest::object_path`]). This is the
//! layout of `mkcomposefs --digest-store` and of the `objects/` directory of a
//! repository.
//!
//! Objects are published atomically: the content is written to an unnamed
//! `O_TMPFILE` in the target subdirectory and linked into place with
//! `linkat` (or, where the filesystem lacks `O_TMPFILE`, written to a named
//! temporary file and renamed), so a reader never sees a partial object and an
//! interrupted copy leaves no half-written object behind. Durability is the
//! caller's choice: [`ObjectDir::sync`] issues one `syncfs` barrier for every
//! object written so far, which must happen before anything that references
//! them is published.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::verity::{Algorithm, Digest, FsVerityHasher};

/// Prefix of named temporary files (created directly in the store directory).
pub const TEMP_PREFIX: &str = ".tmp-object-";
/// Read buffer of [`ObjectDir::write_new`].
const COPY_BUFFER: usize = 1 << 20;
/// Mode of object files.
const OBJECT_MODE: u32 = 0o644;
/// Mode of the `XX` subdirectories and of a directory created by [`ObjectDir::create`].
const DIR_MODE: u32 = 0o755;

/// An open object directory.
#[derive(Debug)]
pub struct ObjectDir {
    dir: OwnedFd,
    path: PathBuf,
}

/// What [`ObjectDir::copy_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new object was written.
    Written,
    /// The object already existed; nothing was written.
    Existing,
}

/// Called on the finished object (opened read-only) before it is linked into
/// place; e.g. to enable fs-verity. Errors abort the store.
pub type Finisher<'a> = &'a (dyn Fn(&File) -> io::Result<()> + Sync);

impl ObjectDir {
    /// Opens `path`, creating it (mode 0755, parents too) if missing.
    pub fn create(path: &Path) -> io::Result<Self> {
        std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            DIR_MODE,
        )
        .create(path)?;
        Self::open(path)
    }

    /// Opens an existing object directory.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ObjectDir {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True if an object (of any file type) exists under this digest.
    pub fn contains(&self, digest: &Digest) -> io::Result<bool> {
        self.contains_path(digest.object_path().as_str())
    }

    fn contains_path(&self, rel: &str) -> io::Result<bool> {
        match rustix::fs::statat(&self.dir, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the object `digest` read-only.
    pub fn open_object(&self, digest: &Digest) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.dir,
            digest.object_path().as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Stores the content of `src` (read from its start) as the object `digest`
    /// unless it exists. The caller vouches that `digest` is the content's
    /// fs-verity digest. `finish` runs on the complete object before it is
    /// published.
    pub fn copy_from(
        &self,
        src: &File,
        digest: &Digest,
        finish: Finisher<'_>,
    ) -> io::Result<Stored> {
        if self.contains(digest)? {
            return Ok(Stored::Existing);
        }
        let rel = digest.object_path();
        let (subdir, name) = rel.split_at(2);
        let name = &name[1..];
        let subdir_fd = self.open_subdir(subdir)?;
        match rustix::fs::openat(
            &subdir_fd,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(OBJECT_MODE),
        ) {
            Ok(fd) => self.publish_tmpfile(fd, src, &subdir_fd, name, finish),
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::NOENT | Errno::INVAL) => {
                self.publish_named(src, &subdir_fd, name, finish)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn open_subdir(&self, subdir: &str) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        match rustix::fs::openat(&self.dir, subdir, flags, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&self.dir, subdir, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(rustix::fs::openat(&self.dir, subdir, flags, Mode::empty())?)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn publish_tmpfile(
        &self,
        fd: OwnedFd,
        src: &File,
        subdir: &OwnedFd,
        name: &str,
        finish: Finisher<'_>,
    ) -> io::Result<Stored> {
        let mut tmp = File::from(fd);
        copy_content(src, &mut tmp)?;
        tmp.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(OBJECT_MODE))?;
        let ro = reopen_read_only(tmp)?;
        finish(&ro)?;
        let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ro));
        match rustix::fs::linkat(CWD, proc.as_str(), subdir, name, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => Ok(Stored::Written),
            // Another writer published the same object first.
            Err(Errno::EXIST) => Ok(Stored::Existing),
            Err(e) => Err(e.into()),
        }
    }

    fn publish_named(
        &self,
        src: &File,
        subdir: &OwnedFd,
        name: &str,
        finish: Finisher<'_>,
    ) -> io::Result<Stored> {
        let mut tmp = self.named_temp()?;
        copy_content(src, tmp.as_file_mut())?;
        self.link_named(tmp, subdir, name, finish)
    }

    /// A named temporary file directly in the store directory (never in an
    /// `XX/` subdirectory, where every name must be a digest).
    fn named_temp(&self) -> io::Result<tempfile::NamedTempFile> {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.path)?;
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(OBJECT_MODE))?;
        Ok(tmp)
    }

    /// Finishes a complete named temporary file and renames it into place
    /// (without replacing an existing object).
    fn link_named(
        &self,
        tmp: tempfile::NamedTempFile,
        subdir: &OwnedFd,
        name: &str,
        finish: Finisher<'_>,
    ) -> io::Result<Stored> {
        let ro = File::open(tmp.path())?;
        let tmp_path = tmp.into_temp_path();
        finish(&ro)?;
        match rustix::fs::renameat_with(
            CWD,
            &*tmp_path,
            subdir,
            name,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                // Renamed away: nothing left for the guard to delete.
                let _ = tmp_path.keep();
                Ok(Stored::Written)
            }
            Err(Errno::EXIST) => Ok(Stored::Existing),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores content whose digest is not known in advance, computing the
    /// fs-verity digest while writing it (one pass over the data). `finish`
    /// runs on the complete file, opened read-only, with its digest, before
    /// it is linked into place.
    pub fn write_new(
        &self,
        mut src: impl Read,
        alg: Algorithm,
        finish: &(dyn Fn(&File, &Digest) -> io::Result<()> + Sync),
    ) -> io::Result<(Digest, Stored)> {
        let mut hasher = FsVerityHasher::new(alg);
        // One copy buffer per thread, reused: allocating (and zeroing) 1 MiB
        // per object costs more than hashing a small object.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut fill = |out: &mut File, hasher: &mut FsVerityHasher| -> io::Result<()> {
            BUFFER.with(|cell| {
                let mut taken = cell.take();
                taken.resize(COPY_BUFFER, 0);
                let result = (|| loop {
                    let n = match src.read(&mut taken) {
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    hasher.update(&taken[..n]);
                    out.write_all(&taken[..n])?;
                })();
                cell.replace(taken);
                result
            })
        };
        match rustix::fs::openat(
            &self.dir,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(OBJECT_MODE),
        ) {
            Ok(fd) => {
                let mut tmp = File::from(fd);
                fill(&mut tmp, &mut hasher)?;
                tmp.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(OBJECT_MODE))?;
                let digest = hasher.finalize();
                if self.contains(&digest)? {
                    return Ok((digest, Stored::Existing));
                }
                let ro = reopen_read_only(tmp)?;
                finish(&ro, &digest)?;
                let rel = digest.object_path();
                let (subdir, name) = rel.split_at(2);
                let subdir_fd = self.open_subdir(subdir)?;
                let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ro));
                match rustix::fs::linkat(
                    CWD,
                    proc.as_str(),
                    &subdir_fd,
                    &name[1..],
                    AtFlags::SYMLINK_FOLLOW,
                ) {
                    Ok(()) => Ok((digest, Stored::Written)),
                    Err(Errno::EXIST) => Ok((digest, Stored::Existing)),
                    Err(e) => Err(e.into()),
                }
            }
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::NOENT | Errno::INVAL) => {
                let mut tmp = self.named_temp()?;
                fill(tmp.as_file_mut(), &mut hasher)?;
                let digest = hasher.finalize();
                if self.contains(&digest)? {
                    return Ok((digest, Stored::Existing));
                }
                let rel = digest.object_path();
                let (subdir, name) = rel.split_at(2);
                let subdir_fd = self.open_subdir(subdir)?;
                let finish_one = |f: &File| finish(f, &digest);
                let stored = self.link_named(tmp, &subdir_fd, &name[1..], &finish_one)?;
                Ok((digest, stored))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes everything written to the object directory's filesystem durable
    /// (`syncfs`).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.dir)?;
        Ok(())
    }

    /// The directory descriptor.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

/// Reopens a file read-only through `/proc/self/fd` and closes the writable
/// descriptor: fs-verity refuses files that are open for writing.
fn reopen_read_only(file: File) -> io::Result<File> {
    let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    let ro = File::from(rustix::fs::open(
        proc.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    drop(file);
    Ok(ro)
}

/// Copies all of `src` (from offset 0) to `dst` with `copy_file_range`,
/// falling back to read/write where the kernel cannot.
fn copy_content(src: &File, dst: &mut File) -> io::Result<()> {
    let mut offset: u64 = 0;
    loop {
        let mut off_in = offset;
        match rustix::fs::copy_file_range(src, Some(&mut off_in), &*dst, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(n) => offset += n as u64,
            Err(Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS) if offset == 0 => {
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let n = std::os::unix::fs::FileExt::read_at(src, &mut buf, pos)?;
        if n == 0 {
            return Ok(());
        }
        dst.write_all(&buf[..n])?;
        pos += n as u64;
    }
}

/// Reads the whole content of an object (for checks and tests).
pub fn read_object(dir: &ObjectDir, digest: &Digest) -> io::Result<Vec<u8>> {
    let fd = rustix::fs::openat(
        &dir.dir,
        std::ffi::OsStr::from_bytes(digest.object_path().as_bytes()),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut v = Vec::new();
    File::from(fd).read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests;
