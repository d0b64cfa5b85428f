//! `unshare(CLONE_NEWNS)`: a private mount namespace for this process.
//! rustix 1.1 marks `unshare` unsafe for the sake of `CLONE_FILES` (other
//! threads could observe descriptors of an unshared table); only
//! `CLONE_NEWNS` is passed here.

use rustix::io::Errno;
use rustix::thread::UnshareFlags;

/// `unshare(CLONE_NEWNS)`; fails with EINVAL once the process has threads
/// sharing its filesystem information, so call it before starting any.
pub(crate) fn unshare_mount_namespace() -> Result<(), Errno> {
    // SAFETY: CLONE_NEWNS gives this thread a copy of its mount namespace;
    // no descriptor table is unshared (no CLONE_FILES), which is the only
    // reason the wrapper is unsafe.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
}
