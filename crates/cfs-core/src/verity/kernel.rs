//! Kernel fs-verity: enabling verity on a file and measuring its digest.
//!
//! `FS_IOC_ENABLE_VERITY` is issued with version 1, 4096-byte Merkle blocks,
//! no salt and no signature; it needs a read-only descriptor and no writer on
//! the file, and makes the file immutable. `FS_IOC_MEASURE_VERITY` returns the
//! digest the kernel computed (same value as [`super::digest_bytes`] of the
//! content). Without `CONFIG_FS_VERITY`, or on a filesystem without verity
//! support (tmpfs, overlayfs, XFS, ext4 without the `verity` feature), both
//! fail with [`VerityError::NotSupported`].

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;

use super::block::BLOCK_SIZE;
use super::digest::{Algorithm, Digest};
use super::parallel::digest_file;
use crate::sys::verity_ioctl;

/// Errors of the fs-verity ioctls, by errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerityError {
    /// ENOTTY or EOPNOTSUPP: no `CONFIG_FS_VERITY`, or the filesystem (or this
    /// file) has no fs-verity support.
    #[error("filesystem or kernel does not support fs-verity")]
    NotSupported,
    /// ENODATA from measuring: the file does not have verity enabled.
    #[error("fs-verity is not enabled on the file")]
    NotEnabled,
    /// EEXIST from enabling: verity is already enabled.
    #[error("fs-verity is already enabled on the file")]
    AlreadyEnabled,
    /// ETXTBSY from enabling: some descriptor or mapping has the file open for writing.
    #[error("cannot enable fs-verity: the file is open for writing (ETXTBSY)")]
    OpenForWrite,
    /// EBUSY from enabling: verity is being enabled concurrently on the file.
    #[error("cannot enable fs-verity: enabling is already in progress on the file (EBUSY)")]
    Busy,
    /// ENOPKG from enabling: the kernel knows the algorithm but its crypto API lacks it.
    #[error("hash algorithm {0} is not available in the kernel crypto API (ENOPKG)")]
    AlgorithmUnavailable(Algorithm),
    /// The kernel measured a digest with an algorithm or size this crate does not know.
    #[error("kernel reported an unsupported fs-verity digest: algorithm {kernel_id}, {size} bytes")]
    UnsupportedAlgorithm {
        /// The kernel's `FS_VERITY_HASH_ALG_*` number.
        kernel_id: u16,
        /// The reported digest size in bytes.
        size: u16,
    },
    /// Any other error (EACCES, EINVAL, EROFS, EPERM, EFBIG, EINTR, …).
    #[error("fs-verity ioctl failed: {0}")]
    Io(#[source] io::Error),
}

impl VerityError {
    /// The errors meaning "no kernel digest available" (verity unsupported or
    /// not enabled), after which computing in userspace is appropriate.
    pub fn is_missing(&self) -> bool {
        matches!(self, VerityError::NotSupported | VerityError::NotEnabled)
    }

    fn from_errno(e: Errno) -> Self {
        match e {
            Errno::NOTTY | Errno::OPNOTSUPP => VerityError::NotSupported,
            Errno::NODATA => VerityError::NotEnabled,
            Errno::EXIST => VerityError::AlreadyEnabled,
            Errno::TXTBSY => VerityError::OpenForWrite,
            Errno::BUSY => VerityError::Busy,
            other => VerityError::Io(io::Error::from(other)),
        }
    }
}

impl From<VerityError> for io::Error {
    fn from(e: VerityError) -> Self {
        let kind = match &e {
            VerityError::Io(inner) => inner.kind(),
            VerityError::NotSupported | VerityError::AlgorithmUnavailable(_) => {
                io::ErrorKind::Unsupported
            }
            VerityError::NotEnabled | VerityError::UnsupportedAlgorithm { .. } => {
                io::ErrorKind::InvalidData
            }
            VerityError::AlreadyEnabled => io::ErrorKind::AlreadyExists,
            VerityError::OpenForWrite => io::ErrorKind::ExecutableFileBusy,
            VerityError::Busy => io::ErrorKind::ResourceBusy,
        };
        io::Error::new(kind, e)
    }
}

/// Enables fs-verity on the file open as `fd` (must be opened read-only, with
/// no writer anywhere), with 4096-byte blocks, no salt and no signature.
///
/// The kernel reads the whole file to build the tree; afterwards the file
/// content can no longer change.
pub fn enable_verity(fd: BorrowedFd<'_>, alg: Algorithm) -> Result<(), VerityError> {
    verity_ioctl::enable_verity(fd, u32::from(alg.kernel_id()), BLOCK_SIZE as u32).map_err(|e| {
        match e {
            Errno::NOPKG => VerityError::AlgorithmUnavailable(alg),
            other => VerityError::from_errno(other),
        }
    })
}

/// The fs-verity digest the kernel has for the file open as `fd`.
pub fn measure_verity(fd: BorrowedFd<'_>) -> Result<Digest, VerityError> {
    let m = verity_ioctl::measure_verity(fd).map_err(VerityError::from_errno)?;
    let unsupported = || VerityError::UnsupportedAlgorithm {
        kernel_id: m.algorithm,
        size: m.size,
    };
    let alg = u8::try_from(m.algorithm)
        .ok()
        .and_then(Algorithm::from_kernel_id)
        .ok_or_else(unsupported)?;
    if usize::from(m.size) != alg.digest_len() {
        return Err(unsupported());
    }
    m.bytes
        .get(..alg.digest_len())
        .and_then(Digest::from_bytes)
        .ok_or_else(unsupported)
}

/// The fs-verity digest of `file` with algorithm `alg`: measured by the
/// kernel if verity is enabled with that algorithm, otherwise computed in
/// userspace (verity unsupported or not enabled, or enabled with another
/// algorithm). The userspace path reads the file with positional reads from
/// offset 0 on the calling thread.
pub fn measure_or_compute(file: &File, alg: Algorithm) -> io::Result<Digest> {
    match measure_verity(file.as_fd()) {
        Ok(d) if d.algorithm() == alg => Ok(d),
        Ok(_) | Err(VerityError::UnsupportedAlgorithm { .. }) => digest_file(alg, file, 1),
        Err(e) if e.is_missing() => digest_file(alg, file, 1),
        Err(e) => Err(e.into()),
    }
}
