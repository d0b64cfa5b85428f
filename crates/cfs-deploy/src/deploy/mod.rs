//! Deployments on a physical root (boot-deploy.md §4), in bootc's layout so
//! that cfs manages systems bootc installed and the other way round:
//!
//! ```text
//! <root>/composefs/                      the repository (SHA-512)
//! <root>/state/deploy/<id>/etc/          the deployment's /etc
//! <root>/state/deploy/<id>/var -> ../../os/default/var
//! <root>/state/deploy/<id>/<id>.origin   see [`origin`]
//! <root>/state/os/default/var/           /var shared by every deployment
//! <boot>/loader/entries/*.conf           the live entry set (see [`entries`])
//! <boot>/loader/entries.staged/*.conf    a set waiting for finalize
//! <boot>/EFI/Linux/bootc_composefs-<id>/{vmlinuz,initrd}
//! <boot>/EFI/Linux/bootc/bootc_composefs-<id>.efi[.extra.d/]
//! /run/composefs/staged-deployment       {"depl_id":"<id>","finalization_locked":false}
//! ```
//!
//! `<boot>` is the ESP (systemd-boot) or `<root>/boot`.

pub mod binaries;
pub mod checkout;
pub mod disk;
pub mod entries;
pub mod entryset;
pub mod gc;
pub mod install;
pub mod manage;
pub mod origin;
pub mod status;
pub mod upgrade;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The places of one physical root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The physical root (`/sysroot` on a booted system).
    pub root: PathBuf,
    /// The boot directory: the ESP or `<root>/boot`.
    pub boot: PathBuf,
    /// Where the staged marker lives (`/run/composefs`).
    pub run: PathBuf,
}

impl Layout {
    /// The layout of `root` with `boot` (default `<root>/boot`) and the
    /// system's `/run/composefs`.
    pub fn new(root: &Path, boot: Option<&Path>) -> Self {
        Layout {
            root: root.to_path_buf(),
            boot: boot.map_or_else(|| root.join("boot"), Path::to_path_buf),
            run: PathBuf::from("/run/composefs"),
        }
    }

    /// `<root>/composefs`.
    pub fn repo(&self) -> PathBuf {
        self.root.join("composefs")
    }

    /// `<root>/state/deploy/<id>`.
    pub fn state(&self, id: &str) -> PathBuf {
        self.root.join("state/deploy").join(id)
    }

    /// `<root>/state/deploy/<id>/<id>.origin`.
    pub fn origin(&self, id: &str) -> PathBuf {
        self.state(id).join(format!("{id}.origin"))
    }

    /// `<root>/state/os/default/var`.
    pub fn shared_var(&self) -> PathBuf {
        self.root.join("state/os/default/var")
    }

    /// `<boot>/loader/entries`.
    pub fn entries(&self) -> PathBuf {
        self.boot.join("loader/entries")
    }

    /// `<boot>/loader/entries.staged`.
    pub fn staged_entries(&self) -> PathBuf {
        self.boot.join("loader/entries.staged")
    }

    /// `<boot>/EFI/Linux/bootc_composefs-<id>` (a kernel directory).
    pub fn kernel_dir(&self, id: &str) -> PathBuf {
        self.boot
            .join("EFI/Linux")
            .join(format!("{}{id}", entries::ARTIFACT_PREFIX))
    }

    /// `<boot>/EFI/Linux/bootc/bootc_composefs-<id>.efi`.
    pub fn uki(&self, id: &str) -> PathBuf {
        self.boot
            .join("EFI/Linux/bootc")
            .join(format!("{}{id}.efi", entries::ARTIFACT_PREFIX))
    }

    /// `/run/composefs/staged-deployment`.
    pub fn staged_marker(&self) -> PathBuf {
        self.run.join("staged-deployment")
    }
}

/// An `io::Error` carrying another error's message.
pub(crate) fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes `data` to `path` atomically: a temporary file beside it, synced,
/// renamed over it.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| other(format!("{}: no file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, data)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Layout {
    /// The parsed origin of deployment `id`.
    pub fn read_origin(&self, id: &str) -> io::Result<origin::Origin> {
        let path = self.origin(id);
        let text = read_small_file(&path, origin::MAX_ORIGIN_LEN as u64)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        origin::Origin::parse(&text).map_err(|e| other(format!("{}: {e}", path.display())))
    }

    /// Writes the origin of deployment `id` atomically.
    pub fn write_origin(&self, id: &str, origin: &origin::Origin) -> io::Result<()> {
        write_atomic(&self.origin(id), origin.to_string().as_bytes())
    }
}

/// The booted deployment: the `composefs:<hex>` source of the mount on `/`
/// in a mount table (`/proc/self/mountinfo`); the last such mount wins.
pub fn booted_id_from(mountinfo: &str) -> Option<String> {
    let mut found = None;
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        if before.split(' ').nth(4) != Some("/") {
            continue;
        }
        let Some(source) = after.split(' ').nth(1) else {
            continue;
        };
        if let Some(hex) = source.strip_prefix("composefs:")
            && matches!(hex.len(), 64 | 128)
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            found = Some(hex.to_ascii_lowercase());
        }
    }
    found
}

/// The booted deployment of this system, if its root is a composefs mount.
pub fn booted_id() -> Option<String> {
    read_small_file(Path::new("/proc/self/mountinfo"), 16 << 20)
        .ok()
        .and_then(|t| booted_id_from(&t))
}

/// Reads a small regular file as UTF-8 text, at most `limit` bytes; a
/// symlink or any other non-regular file is an error.
pub fn read_small_file(path: &Path, limit: u64) -> io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow() | libc_o_nonblock())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(text)
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn libc_o_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let l = Layout::new(Path::new("/r"), Some(Path::new("/esp")));
        assert_eq!(l.origin("ab"), Path::new("/r/state/deploy/ab/ab.origin"));
        assert_eq!(
            l.kernel_dir("ab"),
            Path::new("/esp/EFI/Linux/bootc_composefs-ab")
        );
        assert_eq!(
            l.uki("ab"),
            Path::new("/esp/EFI/Linux/bootc/bootc_composefs-ab.efi")
        );
        assert_eq!(
            Layout::new(Path::new("/r"), None).entries(),
            Path::new("/r/boot/loader/entries")
        );
    }

    #[test]
    fn booted_id_from_the_root_mount() {
        let id = "ab".repeat(64);
        let table = format!(
            "21 1 0:20 / /sysroot ro - ext4 /dev/vda2 ro\n30 1 0:31 / / ro,relatime - overlay composefs:{id} ro,lowerdir=x\n31 30 0:32 / /usr/x ro - overlay composefs:{} ro\n",
            "cd".repeat(64)
        );
        assert_eq!(booted_id_from(&table), Some(id));
        assert_eq!(
            booted_id_from("junk\n1 0 0:1 / / rw - ext4 /dev/sda1 rw\n"),
            None
        );
        assert_eq!(
            booted_id_from(&format!("junk\n{table}")),
            booted_id_from(&table)
        );
    }

    #[test]
    fn small_files_only_regular() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "hello").unwrap();
        assert_eq!(read_small_file(&f, 5).unwrap(), "hello");
        assert!(read_small_file(&f, 4).is_err());
        std::os::unix::fs::symlink(&f, dir.path().join("l")).unwrap();
        assert!(read_small_file(&dir.path().join("l"), 10).is_err());
        assert!(read_small_file(dir.path(), 10).is_err());
    }
}
