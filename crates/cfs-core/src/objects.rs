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
//!
//! An [`ObjectPolicy`] decides around publishing: it *seals* every new object
//! before it is linked (a repository enables and checks fs-verity there), and
//! judges an object that already exists under the digest. A damaged existing
//! object (not a regular file, or judged unsound — e.g. wrong fs-verity
//! measurement) is **repaired**: the new, sealed content is linked under a
//! temporary name in the store directory and renamed over it, so readers see
//! either the old file or the complete new one. When sealing fails with
//! ETXTBSY (a writable descriptor to the new file leaked, e.g. into a child
//! forked meanwhile), the content is copied to a fresh temporary file and
//! that one is sealed and published instead.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
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
    /// `XX` subdirectories seen to be real directories (not symlinks), so
    /// that existence checks below them take one `fstatat` (see
    /// [`ObjectDir::lstat`]).
    verified: [std::sync::atomic::AtomicBool; 256],
}

/// What [`ObjectDir::copy_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new object was written.
    Written,
    /// The object already existed; nothing was written.
    Existing,
    /// The object existed but was damaged; it was replaced.
    Repaired,
}

impl Stored {
    /// True if content was written (a new or a repaired object).
    pub fn wrote(self) -> bool {
        matches!(self, Stored::Written | Stored::Repaired)
    }
}

/// What a store does around publishing objects.
pub trait ObjectPolicy: Sync {
    /// Runs on a complete new object (opened read-only) before it is
    /// linked into place, e.g. to enable fs-verity; an error aborts the
    /// store. An error of kind [`io::ErrorKind::ExecutableFileBusy`] (someone
    /// holds the file open for writing) makes the store seal a fresh copy
    /// instead, once.
    fn seal(&self, file: &File, digest: &Digest) -> io::Result<()>;

    /// True if [`ObjectPolicy::existing_is_sound`] looks at existing
    /// objects; when false (the default) an existing regular file is kept
    /// without being opened.
    fn judges_existing(&self) -> bool {
        false
    }

    /// Whether the regular file already stored under `digest` may stand for
    /// content of `size` bytes with that digest; `false` has it replaced.
    /// The default trusts it.
    fn existing_is_sound(&self, file: &File, digest: &Digest, size: u64) -> io::Result<bool> {
        let _ = (file, digest, size);
        Ok(true)
    }
}

/// A closure sealing objects, trusting existing ones.
impl<F: Fn(&File, &Digest) -> io::Result<()> + Sync> ObjectPolicy for F {
    fn seal(&self, file: &File, digest: &Digest) -> io::Result<()> {
        self(file, digest)
    }
}

/// The state of the object under a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// No object.
    Missing,
    /// An object the policy accepts.
    Sound,
    /// Something that must be replaced.
    Damaged,
}

/// A temporary file being filled: unnamed (`O_TMPFILE`) or named (fallback).
enum Temp {
    Unnamed(File),
    Named(File, TempName),
}

/// A sealed temporary file, read-only, ready to publish.
enum Sealed {
    Unnamed(File),
    Named(File, TempName),
}

/// The name of a named temporary file in the store directory, unlinked
/// (through the directory's descriptor, never by path) unless published.
struct TempName {
    dir: OwnedFd,
    name: String,
}

impl Drop for TempName {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

impl Sealed {
    fn file(&self) -> &File {
        match self {
            Sealed::Unnamed(f) | Sealed::Named(f, _) => f,
        }
    }
}

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
        Ok(Self::from_fd(dir, path.to_path_buf()))
    }

    /// An object directory already open as `dir` (`path` is for messages).
    /// Nothing below it is ever reached through a symlink: every `XX/`
    /// subdirectory and object is opened relative to `dir` with
    /// [`crate::beneath`].
    pub fn from_fd(dir: OwnedFd, path: PathBuf) -> Self {
        ObjectDir {
            dir,
            path,
            verified: std::array::from_fn(|_| std::sync::atomic::AtomicBool::new(false)),
        }
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
        match self.lstat(rel) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `lstat` of `rel` (`XX/rest`, from [`Digest::object_path`]) below the
    /// store: an `XX` that is a symlink or a file is an error (`ELOOP`,
    /// `ENOTDIR`), not a way out. `XX` is checked once (then remembered), so
    /// the lookup on the hot path of every import is one `fstatat`; only a
    /// concurrent swap of a checked `XX` could mislead this *query* — every
    /// open, write and unlink resolves its path again without symlinks.
    fn lstat(&self, rel: &str) -> io::Result<rustix::fs::Stat> {
        let index = rel
            .get(..2)
            .and_then(|xx| u8::from_str_radix(xx, 16).ok())
            .filter(|_| rel.as_bytes().get(2) == Some(&b'/'));
        let Some(index) = index else {
            return crate::beneath::lstat(self.dir.as_fd(), rel);
        };
        let seen = &self.verified[usize::from(index)];
        if !seen.load(std::sync::atomic::Ordering::Relaxed) {
            let st = rustix::fs::statat(&self.dir, &rel[..2], AtFlags::SYMLINK_NOFOLLOW)?;
            match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::Directory => {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed)
                }
                rustix::fs::FileType::Symlink => return Err(Errno::LOOP.into()),
                _ => return Err(Errno::NOTDIR.into()),
            }
        }
        Ok(rustix::fs::statat(
            &self.dir,
            rel,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Opens the object `digest` read-only; anything but a regular file
    /// (a FIFO, a device, a symlink) is refused without blocking on it.
    pub fn open_object(&self, digest: &Digest) -> io::Result<File> {
        crate::beneath::open_regular(self.dir.as_fd(), digest.object_path().as_str())
    }

    /// The state of the object `digest` for content of `size` bytes: missing,
    /// sound, or damaged (not a regular file, or refused by `policy`). Special
    /// files are judged by `lstat` alone, never opened.
    pub fn check(
        &self,
        digest: &Digest,
        size: u64,
        policy: &dyn ObjectPolicy,
    ) -> io::Result<Existing> {
        let rel = digest.object_path();
        let st = match self.lstat(rel.as_str()) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Missing),
            Err(e) => return Err(e),
        };
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Ok(Existing::Damaged);
        }
        if !policy.judges_existing() {
            return Ok(Existing::Sound);
        }
        let fd = match crate::beneath::openat(
            self.dir.as_fd(),
            rel.as_str(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Replaced by something else between the stat and the open.
            Err(e) if e.raw_os_error() == Some(Errno::NXIO.raw_os_error()) => {
                return Ok(Existing::Damaged);
            }
            Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
                // The object itself became a symlink (damaged), unless its
                // directory did (an error, raised by the next lstat).
                self.lstat(rel.as_str())?;
                return Ok(Existing::Damaged);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Missing),
            Err(e) => return Err(e),
        };
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Ok(Existing::Damaged);
        }
        Ok(if policy.existing_is_sound(&file, digest, size)? {
            Existing::Sound
        } else {
            Existing::Damaged
        })
    }

    /// Stores the content of `src` (read from its start) as the object `digest`
    /// unless a sound one exists (a damaged one is replaced). The caller
    /// vouches that `digest` is the content's fs-verity digest. `policy`
    /// seals the complete object before it is published.
    pub fn copy_from(
        &self,
        src: &File,
        digest: &Digest,
        policy: &dyn ObjectPolicy,
    ) -> io::Result<Stored> {
        let size = src.metadata()?.len();
        let existing = self.check(digest, size, policy)?;
        if existing == Existing::Sound {
            return Ok(Stored::Existing);
        }
        let rel = digest.object_path();
        let (subdir, name) = rel.split_at(2);
        let name = &name[1..];
        let subdir_fd = self.open_subdir(subdir)?;
        let mut tmp = self.new_temp(&subdir_fd)?;
        copy_content(src, tmp.file_mut())?;
        let sealed = self.seal(tmp, digest, &subdir_fd, policy)?;
        self.publish(sealed, &subdir_fd, name, existing == Existing::Damaged)
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

    /// A new temporary file: unnamed in `dir` (`O_TMPFILE`), or, where the
    /// filesystem cannot, named in the store directory (never in an `XX/`
    /// subdirectory, where every name must be a digest).
    fn new_temp(&self, dir: &OwnedFd) -> io::Result<Temp> {
        match rustix::fs::openat(
            dir,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(OBJECT_MODE),
        ) {
            Ok(fd) => {
                let file = File::from(fd);
                file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(OBJECT_MODE))?;
                Ok(Temp::Unnamed(file))
            }
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::NOENT | Errno::INVAL) => self.named_temp(),
            Err(e) => Err(e.into()),
        }
    }

    /// A named temporary file in the store directory, created through its
    /// descriptor (`O_EXCL | O_NOFOLLOW`).
    fn named_temp(&self) -> io::Result<Temp> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
            match rustix::fs::openat(
                &self.dir,
                name.as_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(OBJECT_MODE),
            ) {
                Ok(fd) => {
                    let guard = TempName {
                        dir: self.dir.try_clone()?,
                        name,
                    };
                    let file = File::from(fd);
                    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
                        OBJECT_MODE,
                    ))?;
                    return Ok(Temp::Named(file, guard));
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reopens `tmp` read-only (fs-verity refuses files open for writing) and
    /// seals it; on ETXTBSY seals a fresh copy instead.
    fn seal(
        &self,
        tmp: Temp,
        digest: &Digest,
        dir: &OwnedFd,
        policy: &dyn ObjectPolicy,
    ) -> io::Result<Sealed> {
        let sealed = tmp.into_read_only()?;
        match policy.seal(sealed.file(), digest) {
            Ok(()) => Ok(sealed),
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                // A writable descriptor of this file leaked (a child forked
                // while it was open): the copy has no writer anywhere.
                let mut copy = self.new_temp(dir)?;
                copy_content(sealed.file(), copy.file_mut())?;
                drop(sealed);
                let sealed = copy.into_read_only()?;
                policy.seal(sealed.file(), digest)?;
                Ok(sealed)
            }
            Err(e) => Err(e),
        }
    }

    /// Links a sealed file as `subdir/name`: without replacing anything
    /// (someone else publishing first is fine), or, for a damaged object,
    /// by renaming it over the old one.
    fn publish(
        &self,
        sealed: Sealed,
        subdir: &OwnedFd,
        name: &str,
        replace: bool,
    ) -> io::Result<Stored> {
        match sealed {
            Sealed::Unnamed(ro) => {
                let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ro));
                if replace {
                    let tmp_name = self.link_temp_name(&proc)?;
                    let rename =
                        || rustix::fs::renameat(&self.dir, tmp_name.as_str(), subdir, name);
                    let mut result = rename();
                    if matches!(result, Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST)) {
                        // A directory squats the object's name: take it away.
                        crate::beneath::remove_tree(subdir.as_fd(), name)?;
                        result = rename();
                    }
                    return match result {
                        Ok(()) => Ok(Stored::Repaired),
                        Err(e) => {
                            let _ = rustix::fs::unlinkat(
                                &self.dir,
                                tmp_name.as_str(),
                                AtFlags::empty(),
                            );
                            Err(e.into())
                        }
                    };
                }
                match rustix::fs::linkat(CWD, proc.as_str(), subdir, name, AtFlags::SYMLINK_FOLLOW)
                {
                    Ok(()) => Ok(Stored::Written),
                    // Another writer published the same object first.
                    Err(Errno::EXIST) => Ok(Stored::Existing),
                    Err(e) => Err(e.into()),
                }
            }
            Sealed::Named(_ro, mut temp) => {
                let flags = if replace {
                    rustix::fs::RenameFlags::empty()
                } else {
                    rustix::fs::RenameFlags::NOREPLACE
                };
                let rename = || {
                    rustix::fs::renameat_with(&self.dir, temp.name.as_str(), subdir, name, flags)
                };
                let mut result = rename();
                if replace && matches!(result, Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST)) {
                    // A directory squats the object's name: take it away.
                    crate::beneath::remove_tree(subdir.as_fd(), name)?;
                    result = rename();
                }
                match result {
                    Ok(()) => {
                        // Renamed away: nothing left for the guard to delete.
                        temp.name.clear();
                        Ok(if replace {
                            Stored::Repaired
                        } else {
                            Stored::Written
                        })
                    }
                    Err(Errno::EXIST) => Ok(Stored::Existing),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Links the unnamed file behind `proc` (`/proc/self/fd/N`) under a
    /// fresh `.tmp-object-*` name in the store directory; returns the name.
    fn link_temp_name(&self, proc: &str) -> io::Result<String> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}repair-{}-{n}", std::process::id());
            match rustix::fs::linkat(CWD, proc, &self.dir, name.as_str(), AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => return Ok(name),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stores content whose digest is not known in advance, computing the
    /// fs-verity digest while writing it (one pass over the data). Then as
    /// [`ObjectDir::copy_from`]: a sound existing object is kept, a damaged
    /// one replaced, and `policy` seals the new object before it is linked.
    pub fn write_new(
        &self,
        mut src: impl Read,
        alg: Algorithm,
        policy: &dyn ObjectPolicy,
    ) -> io::Result<(Digest, Stored)> {
        let mut hasher = FsVerityHasher::new(alg);
        // One copy buffer per thread, reused: allocating (and zeroing) 1 MiB
        // per object costs more than hashing a small object.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut size = 0u64;
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
                    size += n as u64;
                })();
                cell.replace(taken);
                result
            })
        };
        let mut tmp = self.new_temp(&self.dir)?;
        fill(tmp.file_mut(), &mut hasher)?;
        let digest = hasher.finalize();
        let existing = self.check(&digest, size, policy)?;
        if existing == Existing::Sound {
            return Ok((digest, Stored::Existing));
        }
        let rel = digest.object_path();
        let (subdir, name) = rel.split_at(2);
        let subdir_fd = self.open_subdir(subdir)?;
        let sealed = self.seal(tmp, &digest, &self.dir, policy)?;
        let stored = self.publish(
            sealed,
            &subdir_fd,
            &name[1..],
            existing == Existing::Damaged,
        )?;
        Ok((digest, stored))
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

impl Temp {
    fn file_mut(&mut self) -> &mut File {
        match self {
            Temp::Unnamed(f) => f,
            Temp::Named(f, _) => f,
        }
    }

    /// The file reopened read-only, its writable descriptor closed.
    fn into_read_only(self) -> io::Result<Sealed> {
        match self {
            Temp::Unnamed(f) => Ok(Sealed::Unnamed(reopen_read_only(f)?)),
            Temp::Named(f, name) => Ok(Sealed::Named(reopen_read_only(f)?, name)),
        }
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
    let mut v = Vec::new();
    dir.open_object(digest)?.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests;
