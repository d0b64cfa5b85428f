//! `mount NAME MOUNTPOINT` and `umount MOUNTPOINT`: a repository image as a
//! composefs overlay, with the repository's `objects/` as the data layer.
//!
//! Only images linked under `images/` are mounted. Verity follows the
//! repository, never how the image was named: a secure repository mounts
//! with `verity=require` and the image's own fs-verity digest checked by the
//! kernel; an insecure one without verity (its image was hashed in userspace
//! when opened). The overlay source is `composefs:<hex digest>`.

use anyhow::{Context, Result};
use rustix::mount::UnmountFlags;

use cfs_core::mount::{MountOptions, VerityMode, mount_image};
use cfs_core::repository::{OpenOptions, Repository};

use super::{check_hash, repo_path};
use std::path::Path;

use cfs_core::verity::Digest;

use crate::cli::{GlobalOpts, MountArgs, OverlayArgs, UmountArgs};

/// `mount NAME|DIGEST MOUNTPOINT [--upperdir D --workdir D] [--read-write]`.
pub(crate) fn mount(global: &GlobalOpts, args: &MountArgs) -> Result<()> {
    let repo = open_for_mount(global)?;
    let (image, digest) = repo
        .open_image(&args.name)
        .with_context(|| format!("Opening image '{}'", args.name))?;
    mount_repo_image(
        &repo,
        &image,
        &digest,
        &args.mountpoint,
        &args.overlay,
        &args.name,
    )
}

/// Mounts the repository image `image` (whose digest is `digest`) with the
/// repository's objects as the data layer; verity follows the repository
/// mode. `what` names the image in messages.
pub(crate) fn mount_repo_image(
    repo: &Repository,
    image: &std::fs::File,
    digest: &Digest,
    mountpoint: &Path,
    overlay: &OverlayArgs,
    what: &str,
) -> Result<()> {
    let secure = repo.is_secure();
    let options = MountOptions {
        basedirs: vec![repo.objects().path().to_path_buf()],
        upperdir: overlay.upperdir.clone(),
        workdir: overlay.workdir.clone(),
        read_only: !overlay.read_write,
        verity: if secure {
            VerityMode::Require
        } else {
            VerityMode::Off
        },
        source: format!("composefs:{}", digest.to_hex()),
        expected_digest: secure.then_some(*digest),
        ..MountOptions::default()
    };
    check_mountpoint(mountpoint)?;
    mount_image(image, mountpoint, &options)
        .map_err(|e| {
            if e.errno() == rustix::io::Errno::PERM {
                anyhow::Error::new(e).context("mounting needs root (CAP_SYS_ADMIN); run it as root")
            } else {
                anyhow::Error::new(e)
            }
        })
        .with_context(|| format!("Mounting image '{what}' on {}", mountpoint.display()))
}

/// The mount point exists and is a directory (else a message saying so,
/// before anything is opened in the kernel).
pub(crate) fn check_mountpoint(mountpoint: &Path) -> Result<()> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("mount point {} is not a directory", mountpoint.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "mount point {} does not exist (create it with mkdir -p)",
            mountpoint.display()
        ),
        Err(e) => Err(e).with_context(|| format!("mount point {}", mountpoint.display())),
    }
}

/// Opens the repository read-only for mounting, with the global options.
pub(crate) fn open_for_mount(global: &GlobalOpts) -> Result<Repository> {
    let path = repo_path(global)?;
    let opts = OpenOptions {
        require_verity: global.require_verity,
        no_upgrade: global.no_upgrade,
        read_only: true,
        algorithm: global.hash.map(|h| h.algorithm()),
    };
    let repo = Repository::open(&path, &opts)?;
    check_hash(global, &repo)?;
    Ok(repo)
}

/// `umount MOUNTPOINT`.
pub(crate) fn umount(args: &UmountArgs) -> Result<()> {
    let flags = if args.lazy {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    let shown = args.mountpoint.display();
    match rustix::mount::unmount(&args.mountpoint, flags) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) => {
            anyhow::bail!("{shown} is not mounted (nothing to unmount)")
        }
        Err(rustix::io::Errno::NOENT) => anyhow::bail!("{shown} does not exist"),
        Err(rustix::io::Errno::PERM) => {
            anyhow::bail!("unmounting needs root (CAP_SYS_ADMIN); run it as root")
        }
        Err(rustix::io::Errno::BUSY) => {
            anyhow::bail!("{shown} is busy (a process uses it); stop it, or unmount with --lazy")
        }
        Err(e) => Err(std::io::Error::from(e)).with_context(|| format!("Unmounting {shown}")),
    }
}
