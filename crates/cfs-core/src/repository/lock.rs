//! The repository lock: an advisory `flock` on the repository directory.
//!
//! Every open repository handle holds `LOCK_SH` for its lifetime; garbage
//! collection converts it to `LOCK_EX` (waiting until no other handle, of
//! this or another process, cfs or composefs-rs, is open) and back. A writer
//! that published objects therefore cannot have them collected before it
//! has linked them from a ref, and it cannot start while a collection runs.

use std::os::fd::BorrowedFd;

use rustix::fs::FlockOperation;

/// Takes the shared lock, waiting for a running collection to finish.
pub(crate) fn lock_shared(dir: BorrowedFd<'_>) -> std::io::Result<()> {
    retry(|| rustix::fs::flock(dir, FlockOperation::LockShared))
}

/// Converts to the exclusive lock, waiting until every other holder is gone.
pub(crate) fn lock_exclusive(dir: BorrowedFd<'_>) -> std::io::Result<()> {
    retry(|| rustix::fs::flock(dir, FlockOperation::LockExclusive))
}

/// Tries to convert to the exclusive lock without waiting; `false` if others
/// hold the lock.
pub(crate) fn try_lock_exclusive(dir: BorrowedFd<'_>) -> std::io::Result<bool> {
    match rustix::fs::flock(dir, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn retry(mut f: impl FnMut() -> rustix::io::Result<()>) -> std::io::Result<()> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(Into::into),
        }
    }
}
