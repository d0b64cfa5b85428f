//! Raw fs-verity ioctls (`linux/fsverity.h`): `FS_IOC_ENABLE_VERITY` and
//! `FS_IOC_MEASURE_VERITY`, issued through `rustix::ioctl`.
//!
//! `struct fsverity_enable_arg` (128 bytes, native endian): `version` u32,
//! `hash_algorithm` u32, `block_size` u32, `salt_size` u32, `salt_ptr` u64,
//! `sig_size` u32, reserved u32, `sig_ptr` u64, 11 reserved u64.
//!
//! `struct fsverity_digest` (4-byte header + flexible array):
//! `digest_algorithm` u16 (out), `digest_size` u16 (in: capacity, out: size),
//! then the digest bytes. The ioctl number encodes the 4-byte header size; we
//! pass a buffer with room for 64 digest bytes and say so in `digest_size`.

use std::os::fd::BorrowedFd;

use rustix::ioctl::{Opcode, Setter, Updater, ioctl, opcode};

/// `struct fsverity_enable_arg`.
#[repr(C)]
#[derive(Debug)]
struct FsverityEnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

const _: () = assert!(size_of::<FsverityEnableArg>() == 128);

/// Header of `struct fsverity_digest` (what the ioctl number encodes).
#[repr(C)]
struct FsverityDigestHeader {
    digest_algorithm: u16,
    digest_size: u16,
}

const _: () = assert!(size_of::<FsverityDigestHeader>() == 4);

/// Largest digest the kernel can return (SHA-512).
pub(crate) const MAX_DIGEST_SIZE: usize = 64;

/// `struct fsverity_digest` with room for the largest digest.
#[repr(C)]
#[derive(Debug)]
struct FsverityDigestBuf {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; MAX_DIGEST_SIZE],
}

const _: () = assert!(size_of::<FsverityDigestBuf>() == 4 + MAX_DIGEST_SIZE);
const _: () = assert!(align_of::<FsverityDigestBuf>() == 2);

/// `_IOW('f', 133, struct fsverity_enable_arg)`.
const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<FsverityEnableArg>(b'f', 133);
/// `_IOWR('f', 134, struct fsverity_digest)`.
const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<FsverityDigestHeader>(b'f', 134);

const _: () = assert!(FS_IOC_ENABLE_VERITY as u64 == 0x4080_6685);
const _: () = assert!(FS_IOC_MEASURE_VERITY as u64 == 0xC004_6686);

/// Issues `FS_IOC_ENABLE_VERITY` on `fd` (version 1, no salt, no signature).
pub(crate) fn enable_verity(
    fd: BorrowedFd<'_>,
    hash_algorithm: u32,
    block_size: u32,
) -> rustix::io::Result<()> {
    let arg = FsverityEnableArg {
        version: 1,
        hash_algorithm,
        block_size,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: FS_IOC_ENABLE_VERITY reads exactly one `struct fsverity_enable_arg`
    // (128 bytes, layout checked above) from the pointer and writes nothing to
    // user memory. salt_size and sig_size are 0, so the null salt_ptr and
    // sig_ptr are never dereferenced.
    let setter = unsafe { Setter::<FS_IOC_ENABLE_VERITY, FsverityEnableArg>::new(arg) };
    // SAFETY: see above; `setter` owns the argument for the duration of the call.
    unsafe { ioctl(fd, setter) }
}

/// What `FS_IOC_MEASURE_VERITY` reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    /// Kernel `FS_VERITY_HASH_ALG_*` number.
    pub(crate) algorithm: u16,
    /// Digest size reported by the kernel (≤ 64 unless the kernel misbehaves).
    pub(crate) size: u16,
    /// The first `min(size, 64)` bytes are the digest.
    pub(crate) bytes: [u8; MAX_DIGEST_SIZE],
}

/// Issues `FS_IOC_MEASURE_VERITY` on `fd`.
pub(crate) fn measure_verity(fd: BorrowedFd<'_>) -> rustix::io::Result<Measured> {
    let mut buf = FsverityDigestBuf {
        digest_algorithm: 0,
        digest_size: MAX_DIGEST_SIZE as u16,
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: FS_IOC_MEASURE_VERITY reads `digest_size` from the 4-byte header
    // of `struct fsverity_digest` and writes the header plus at most
    // `digest_size` (= 64) digest bytes, which `FsverityDigestBuf` has room for
    // (size checked above). It fails with EOVERFLOW rather than writing more.
    let updater = unsafe { Updater::<FS_IOC_MEASURE_VERITY, FsverityDigestBuf>::new(&mut buf) };
    // SAFETY: see above; `buf` is exclusively borrowed for the duration of the call.
    unsafe { ioctl(fd, updater) }?;
    Ok(Measured {
        algorithm: buf.digest_algorithm,
        size: buf.digest_size,
        bytes: buf.digest,
    })
}
