//! Data disks for the guest: sparse raw ext4 images.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::{find_tool, run_checked};

/// Creates `path` as a sparse `size`-byte ext4 image, with the `verity`
/// feature when `verity` is true. The block size is forced to 4096: small
/// images otherwise get 1 KiB blocks, and the kernel then refuses
/// `FS_IOC_ENABLE_VERITY` with 4096-byte Merkle blocks (EINVAL).
pub fn make_ext4(path: &Path, size: u64, verity: bool) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.set_len(size)
        .with_context(|| format!("sizing {}", path.display()))?;
    drop(file);
    let mkfs = find_tool("mkfs.ext4").context("mkfs.ext4 not found (Debian package e2fsprogs)")?;
    let mut cmd = Command::new(mkfs);
    cmd.args(["-q", "-F", "-b", "4096", "-E", "root_owner=0:0"]);
    if verity {
        cmd.args(["-O", "verity"]);
    }
    cmd.arg(path);
    run_checked(&mut cmd).with_context(|| format!("making the ext4 image {}", path.display()))
}
