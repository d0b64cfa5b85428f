//! Loop devices (`linux/loop.h`): `LOOP_CTL_GET_FREE` on `/dev/loop-control`
//! and `LOOP_CONFIGURE` (Linux 5.8) on `/dev/loopN`, for kernels that cannot
//! mount EROFS straight from a regular file.
//!
//! `struct loop_config` (304 bytes): `fd` u32, `block_size` u32, then
//! `struct loop_info64` (232 bytes: `lo_device`, `lo_inode`, `lo_rdevice`,
//! `lo_offset`, `lo_sizelimit` u64; `lo_number`, `lo_encrypt_type`,
//! `lo_encrypt_key_size`, `lo_flags` u32; `lo_file_name[64]`,
//! `lo_crypt_name[64]`, `lo_encrypt_key[32]`, `lo_init[2]` u64), then 8
//! reserved u64.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// `LOOP_CTL_GET_FREE`: returns the number of a free loop device (creating one if needed).
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// `LOOP_CONFIGURE`: bind a backing fd and set the status in one call.
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;

/// `LO_FLAGS_READ_ONLY`
pub(crate) const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`: detach when the last user closes the device.
pub(crate) const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// `LO_FLAGS_DIRECT_IO`
pub(crate) const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `LO_NAME_SIZE`
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Debug)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
#[derive(Debug)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(size_of::<LoopInfo64>() == 232);
const _: () = assert!(size_of::<LoopConfig>() == 304);
const _: () = assert!(std::mem::offset_of!(LoopConfig, info) == 8);
const _: () = assert!(std::mem::offset_of!(LoopInfo64, lo_flags) == 52);
const _: () = assert!(std::mem::offset_of!(LoopInfo64, lo_file_name) == 56);

/// Issues `LOOP_CTL_GET_FREE` on an open `/dev/loop-control`; returns the device number.
pub(crate) fn get_free(control: BorrowedFd<'_>) -> Result<u32, Errno> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns the device
    // number (or -1 with errno); `control` is a valid open descriptor.
    let r = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
    if r < 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    u32::try_from(r).map_err(|_| Errno::RANGE)
}

/// Issues `LOOP_CONFIGURE` on an open `/dev/loopN`: backs it with `backing`,
/// with `block_size`, `flags` (`LO_FLAGS_*`) and `name` (truncated to 63
/// bytes) as `lo_file_name`.
pub(crate) fn configure(
    device: BorrowedFd<'_>,
    backing: BorrowedFd<'_>,
    block_size: u32,
    flags: u32,
    name: &[u8],
) -> Result<(), Errno> {
    let mut file_name = [0u8; LO_NAME_SIZE];
    let n = name.len().min(LO_NAME_SIZE - 1);
    file_name[..n].copy_from_slice(&name[..n]);
    let config = LoopConfig {
        fd: u32::try_from(backing.as_raw_fd()).map_err(|_| Errno::BADF)?,
        block_size,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: file_name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads one `struct loop_config` (304 bytes, layout
    // pinned by the asserts above) from the pointer, which stays valid for the
    // call, and writes nothing back. Both descriptors are open.
    let r = unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            LOOP_CONFIGURE,
            std::ptr::from_ref(&config),
        )
    };
    if r < 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    Ok(())
}
