//! The download cache, outside the checkout so that it survives clean
//! checkouts and `cargo clean`: `$CFS_VM_CACHE`, else
//! `$XDG_CACHE_HOME/cfs-vm`, else `$HOME/.cache/cfs-vm`, else
//! `/var/tmp/cfs-vm-cache`. Deleting it only costs a download.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The cache directory (created if missing).
pub fn root() -> Result<PathBuf> {
    let env = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let dir = env("CFS_VM_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("cfs-vm")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/cfs-vm")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp/cfs-vm-cache"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the cache directory {}", dir.display()))?;
    Ok(dir)
}

/// An exclusive `flock` on `DIR/.lock`, held until dropped: test processes
/// running at the same time fill the cache one at a time.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for the lock on `dir`.
    pub fn exclusive(dir: &Path) -> Result<Lock> {
        let path = dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Lock { _file: file })
    }
}
