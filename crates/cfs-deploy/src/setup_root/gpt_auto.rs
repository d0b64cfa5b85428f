//! The hint systemd's GPT auto-discovery needs once the root is composefs.
//!
//! When the root partition was found by `systemd-gpt-auto-generator` (no
//! `root=` on the command line, e.g. a sealed UKI), the initramfs has
//! `/dev/gpt-auto-root`. After switch-root the root is an overlay with no
//! backing block device, so the generator in the booted system cannot tell
//! which disk to search for the other partitions (systemd#35017) unless
//! `/run/systemd/volatile-root` names the physical root:
//!
//! ```text
//! /run/systemd/volatile-root -> /dev/block/<major>:<minor>   (of /dev/gpt-auto-root)
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where systemd's udev rules put the discovered root partition.
pub const GPT_AUTO_ROOT: &str = "/dev/gpt-auto-root";

/// If `device` (normally [`GPT_AUTO_ROOT`]) exists, points
/// `<run_dir>/systemd/volatile-root` at its `/dev/block/MAJ:MIN` node and
/// returns the link; `Ok(None)` when there is no such device.
pub fn write_volatile_root_hint(device: &Path, run_dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let meta = match std::fs::metadata(device) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let rdev = meta.rdev();
    let target = format!(
        "/dev/block/{}:{}",
        rustix::fs::major(rdev),
        rustix::fs::minor(rdev)
    );
    let dir = run_dir.join("systemd");
    std::fs::create_dir_all(&dir)?;
    let link = dir.join("volatile-root");
    match std::fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(&target, &link)?;
    Ok(Some(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_names_the_device_numbers() {
        let run = tempfile::tempdir().unwrap();
        // /dev/null is 1:3 on Linux; any device node will do.
        let link = write_volatile_root_hint(Path::new("/dev/null"), run.path())
            .unwrap()
            .unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("/dev/block/1:3")
        );
        // Written again (a second run of the unit) it is replaced.
        write_volatile_root_hint(Path::new("/dev/null"), run.path()).unwrap();
        assert!(link.is_symlink());
    }

    #[test]
    fn no_device_no_hint() {
        let run = tempfile::tempdir().unwrap();
        let got = write_volatile_root_hint(&run.path().join("gpt-auto-root"), run.path()).unwrap();
        assert_eq!(got, None);
        assert!(!run.path().join("systemd").exists());
    }
}
