//! `system install to-disk`: a GPT disk image with an ESP (FAT32, 1 GiB by
//! default) and a root partition (ext4 with the `verity` feature), with an
//! OS installed, made with the standard Debian tools as subprocesses
//! (`sfdisk`, `losetup`, `mkfs.vfat`, `mkfs.ext4`, `blkid`, `mount`, and
//! mtools' `mcopy`/`mmd`) — each missing one named with its package.
//!
//! The disk is a new sparse file, or with `wipe` an existing file or block
//! device (used whole). Partitions are attached as loop devices with an
//! offset (no partition device nodes or udev needed). The root is mounted; the ESP is filled
//! with mtools from a staging directory, so no FAT driver is needed either.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Layout;
use super::install::{InstallOptions, Installed, install};

/// GPT type of an EFI system partition.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type of an x86-64 root partition (Discoverable Partitions Spec).
pub const ROOT_TYPE_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// Options of [`install_to_disk`].
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// Size of the disk image in bytes (created sparse).
    pub size: u64,
    /// Size of the ESP in MiB.
    pub esp_mib: u64,
    /// Allowed to erase an existing disk (a block device, or a file).
    pub wipe: bool,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            size: 8 << 30,
            esp_mib: 1024,
            wipe: false,
        }
    }
}

fn run(cmd: &mut Command, package: &str) -> io::Result<String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            io::Error::other(format!("{name} is needed (Debian package {package}): {e}"))
        } else {
            io::Error::other(format!("{name}: {e}"))
        }
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A loop device detached when dropped.
struct Loop(String);

impl Loop {
    fn attach(disk: &Path, offset: u64, size: u64) -> io::Result<Loop> {
        let dev = run(
            Command::new("losetup")
                .args([
                    "--find",
                    "--show",
                    "--offset",
                    &offset.to_string(),
                    "--sizelimit",
                    &size.to_string(),
                ])
                .arg(disk),
            "mount",
        )?;
        Ok(Loop(dev.trim().to_owned()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Unmounts when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// (start, size) in bytes of each partition, from `sfdisk --json`.
fn partitions(disk: &Path) -> io::Result<Vec<(u64, u64)>> {
    let json = run(Command::new("sfdisk").arg("--json").arg(disk), "fdisk")?;
    let v: serde_json::Value = serde_json::from_str(&json).map_err(io::Error::other)?;
    let sector = v["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    Ok(v["partitiontable"]["partitions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p["start"].as_u64()? * sector, p["size"].as_u64()? * sector)))
                .collect()
        })
        .unwrap_or_default())
}

/// Appends `line` to the fstab at `path` (a symlink there is replaced by
/// a file with its text, never written through).
fn add_fstab_line(path: &Path, line: &str) -> io::Result<()> {
    let mut text = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => std::fs::read_to_string(path)?,
        _ => String::new(),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text)
}

/// Partitions and formats `disk` and installs `opts.image` on it.
pub fn install_to_disk(
    disk: &Path,
    disk_opts: &DiskOptions,
    opts: &InstallOptions,
) -> io::Result<Installed> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(disk) {
        Ok(m) if !disk_opts.wipe => {
            return Err(io::Error::other(format!(
                "{} exists{}; pass --wipe to erase it",
                disk.display(),
                if m.file_type().is_block_device() {
                    " (a block device)"
                } else {
                    ""
                }
            )));
        }
        // A block device is used whole, as it is.
        Ok(m) if m.file_type().is_block_device() => {}
        Ok(m) if !m.is_file() => {
            return Err(io::Error::other(format!(
                "{}: neither a regular file nor a block device",
                disk.display()
            )));
        }
        _ => {
            let file = std::fs::File::create(disk)?;
            file.set_len(0)?;
            file.set_len(disk_opts.size)?;
        }
    }
    let script = format!(
        "label: gpt\n1: size={}MiB, type={ESP_TYPE}, name=\"ESP\"\n2: type={ROOT_TYPE_X86_64}, name=\"root\"\n",
        disk_opts.esp_mib
    );
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(disk)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::other(format!("sfdisk is needed (Debian package fdisk): {e}")))?;
    io::Write::write_all(
        child
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("sfdisk stdin"))?,
        script.as_bytes(),
    )?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "sfdisk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let parts = partitions(disk)?;
    let [(esp_start, esp_size), (root_start, root_size)] = parts[..] else {
        return Err(io::Error::other(format!(
            "expected two partitions, found {parts:?}"
        )));
    };
    let esp = Loop::attach(disk, esp_start, esp_size)?;
    run(
        Command::new("mkfs.vfat").args(["-F", "32", "-n", "ESP", &esp.0]),
        "dosfstools",
    )?;
    let root = Loop::attach(disk, root_start, root_size)?;
    run(
        Command::new("mkfs.ext4").args(["-q", "-O", "verity", "-L", "root", &root.0]),
        "e2fsprogs",
    )?;
    let uuid = run(
        Command::new("blkid").args(["-s", "UUID", "-o", "value", &root.0]),
        "util-linux",
    )?;
    let work = tempfile::tempdir()?;
    let mnt = work.path().join("root");
    let staging = work.path().join("esp");
    std::fs::create_dir_all(&mnt)?;
    std::fs::create_dir_all(&staging)?;
    run(Command::new("mount").arg(&root.0).arg(&mnt), "mount")?;
    let mounted = Mounted(mnt.clone());
    let mut opts = opts.clone();
    if opts.root_karg.is_none() {
        opts.root_karg = Some(format!("root=UUID={}", uuid.trim()));
    }
    let layout = Layout::new(&mnt, Some(&staging));
    let done = install(&layout, &opts)?;
    // The booted system mounts the ESP at /boot, where `system` commands and
    // the finalize unit find the entries: a line in the deployment's
    // /etc/fstab (a local change, kept by every /etc merge).
    let esp_uuid = run(
        Command::new("blkid").args(["-s", "UUID", "-o", "value", &esp.0]),
        "util-linux",
    )?;
    add_fstab_line(
        &layout.state(&done.id).join("etc/fstab"),
        &format!(
            "UUID={} /boot vfat umask=0077,shortname=winnt,nofail 0 2",
            esp_uuid.trim()
        ),
    )?;
    // The ESP: every top-level entry of the staging directory, recursively.
    for item in std::fs::read_dir(&staging)? {
        let item = item?;
        run(
            Command::new("mcopy")
                .args(["-s", "-Q", "-i", &esp.0])
                .arg(item.path())
                .arg("::/"),
            "mtools",
        )?;
    }
    run(Command::new("sync").arg("-f").arg(&mnt), "coreutils")?;
    drop(mounted);
    drop(root);
    drop(esp);
    Ok(done)
}
