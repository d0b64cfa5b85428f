//! Storing and opening objects of a repository.
//!
//! In a secure repository every new object gets fs-verity enabled before it
//! is linked into place, and the kernel's measurement must equal its name;
//! in an insecure one the digest computed in userspace names it and enabling
//! verity is only attempted (it is kept where the filesystem supports it).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;

use crate::objects::{Existing, ObjectPolicy, Stored};
use crate::verity::{
    Digest, VerityError, digest_bytes, digest_file, enable_verity, measure_verity,
};

use super::error::{RepoError, Result};
use super::{Repository, paths};

/// Attempts at enabling fs-verity while a writable descriptor may still be
/// open elsewhere (a forked child inheriting it).
const ENABLE_ATTEMPTS: u32 = 4;

impl Repository {
    /// The check run on every new object before it is published: enable
    /// fs-verity (required in secure repositories) and, where enabled,
    /// compare the kernel's measurement with `expected`. ETXTBSY that
    /// persists through a few short retries is returned as
    /// [`io::ErrorKind::ExecutableFileBusy`], on which the object store
    /// seals a fresh copy instead.
    pub fn finish_object(&self, file: &File, expected: &Digest) -> io::Result<()> {
        let mut attempt = 0;
        let enabled = loop {
            match enable_verity(file.as_fd(), self.algorithm) {
                Ok(()) | Err(VerityError::AlreadyEnabled) => break true,
                Err(VerityError::OpenForWrite) if attempt + 1 < ENABLE_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(VerityError::NotSupported) if !self.secure => break false,
                Err(e) => return Err(e.into()),
            }
        };
        if enabled {
            let found = measure_verity(file.as_fd())?;
            if found != *expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "fs-verity content mismatch: expected {}, kernel measured {}",
                        expected.to_prefixed(),
                        found.to_prefixed()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether an object already stored under `digest` is sound: with
    /// fs-verity, its measurement must be `digest`; without, it is damaged
    /// in a secure repository, and in an insecure one it must have `size`
    /// bytes (its content is not re-hashed: that is `fsck`'s job).
    pub fn object_is_sound(&self, file: &File, digest: &Digest, size: u64) -> io::Result<bool> {
        match measure_verity(file.as_fd()) {
            Ok(found) => Ok(found == *digest),
            Err(e) if e.is_missing() => Ok(!self.secure && file.metadata()?.len() == size),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the content of `file` (from its start) unless a sound object
    /// has it (a damaged one is replaced); returns its digest. The digest is
    /// computed first (on all CPUs for large files), so content already in
    /// the repository is never copied.
    pub fn ensure_object_from_file(&self, file: &File) -> Result<(Digest, Stored)> {
        self.check_writable()?;
        let digest = digest_file(self.algorithm, file, 0)
            .map_err(|e| RepoError::io(self.objects.path(), e))?;
        let stored = self
            .objects
            .copy_from(file, &digest, self)
            .map_err(|e| RepoError::io(self.display(&paths::object_path(&digest)), e))?;
        Ok((digest, stored))
    }

    /// Stores data read from `src` in one pass (hashing while writing).
    pub fn ensure_object_from_reader(&self, src: impl Read) -> Result<(Digest, Stored)> {
        self.check_writable()?;
        self.objects
            .write_new(src, self.algorithm, self)
            .map_err(|e| RepoError::io(self.objects.path(), e))
    }

    /// Stores `data` unless a sound object has it.
    pub fn ensure_object_bytes(&self, data: &[u8]) -> Result<(Digest, Stored)> {
        self.check_writable()?;
        let digest = digest_bytes(self.algorithm, data);
        let existing = self
            .objects
            .check(&digest, data.len() as u64, self)
            .map_err(|e| RepoError::io(self.display(&paths::object_path(&digest)), e))?;
        if existing == Existing::Sound {
            return Ok((digest, Stored::Existing));
        }
        let (found, stored) = self
            .objects
            .write_new(data, self.algorithm, self)
            .map_err(|e| RepoError::io(self.objects.path(), e))?;
        debug_assert_eq!(found, digest);
        Ok((found, stored))
    }

    /// True if the object exists.
    pub fn has_object(&self, digest: &Digest) -> Result<bool> {
        self.objects
            .contains(digest)
            .map_err(|e| self.layout_error(&paths::object_path(digest), e))
    }

    /// Opens an object. In a secure repository its fs-verity measurement
    /// must equal `digest`; in an insecure one an object with verity enabled
    /// is checked the same way and one without is trusted.
    pub fn open_object(&self, digest: &Digest) -> Result<File> {
        let path = self.display(&paths::object_path(digest));
        if digest.algorithm() != self.algorithm {
            return Err(RepoError::NotFound {
                path: self.path.clone(),
                what: "object",
                name: format!(
                    "{digest} (a {} digest in a {} repository)",
                    digest.algorithm(),
                    self.algorithm
                ),
            });
        }
        let file = self.objects.open_object(digest).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RepoError::NotFound {
                    path: self.path.clone(),
                    what: "object",
                    name: digest.to_hex(),
                }
            } else {
                self.layout_error(&paths::object_path(digest), e)
            }
        })?;
        match measure_verity(file.as_fd()) {
            Ok(found) if found == *digest => Ok(file),
            Ok(found) => Err(RepoError::DigestMismatch {
                path,
                expected: Box::new(*digest),
                found: Box::new(found),
            }),
            Err(e) if e.is_missing() && !self.secure => Ok(file),
            Err(e) => Err(RepoError::io(path, e)),
        }
    }

    /// Reads a whole object (checked as by [`Repository::open_object`]),
    /// refusing objects larger than `limit` bytes.
    pub fn read_object(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let file = self.open_object(digest)?;
        let path = self.display(&paths::object_path(digest));
        let len = file.metadata().map_err(|e| RepoError::io(&path, e))?.len();
        if len > limit {
            return Err(RepoError::io(
                &path,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("object is {len} bytes, more than the {limit} allowed here"),
                ),
            ));
        }
        let mut data = Vec::with_capacity(len as usize);
        file.take(limit)
            .read_to_end(&mut data)
            .map_err(|e| RepoError::io(&path, e))?;
        Ok(data)
    }
}

/// A repository seals objects with [`Repository::finish_object`] and judges
/// existing ones with [`Repository::object_is_sound`].
impl ObjectPolicy for Repository {
    fn seal(&self, file: &File, digest: &Digest) -> io::Result<()> {
        self.finish_object(file, digest)
    }

    fn judges_existing(&self) -> bool {
        true
    }

    fn existing_is_sound(&self, file: &File, digest: &Digest, size: u64) -> io::Result<bool> {
        self.object_is_sound(file, digest, size)
    }
}
