//! `mount_setattr(2)` (Linux 5.12), which rustix 1.x does not wrap: used to
//! turn a detached mount into an ID-mapped one (`MOUNT_ATTR_IDMAP`).
//!
//! `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0` = 32 bytes): `attr_set`,
//! `attr_clr`, `propagation`, `userns_fd`, all u64.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// `MOUNT_ATTR_IDMAP`
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr`.
#[repr(C)]
#[derive(Debug)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const _: () = assert!(size_of::<MountAttr>() == 32);

/// `mount_setattr(mount, "", AT_EMPTY_PATH, {attr_set = MOUNT_ATTR_IDMAP, userns_fd})`.
pub(crate) fn set_idmap(mount: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns.as_raw_fd()).map_err(|_| Errno::BADF)?,
    };
    // SAFETY: mount_setattr(dfd, path, flags, struct mount_attr *, size) reads
    // `size` (32) bytes from `attr`, which lives for the call; the path is a
    // NUL-terminated empty string and `mount` an open descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            std::ptr::from_ref(&attr),
            size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    Ok(())
}
