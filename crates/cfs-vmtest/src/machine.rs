//! Whole-machine boots for the deployment tests: QEMU with OVMF (UEFI)
//! booting a disk image through the bootloader installed on it, exactly as
//! a real machine would — no `-kernel`, no host root.
//!
//! ```text
//! /dev/vda   the installed disk (ESP + root), kept across boots
//! /dev/vdb   the control disk, ext4 labelled CFSCONTROL, made fresh per boot with step.sh;
//!            the image's agent runs it once the boot is over, writes out.log, powers off
//! /dev/vdc…  extra disks (e.g. one with OCI layouts to upgrade from), read-only
//! ```
//!
//! The UEFI variable store (`vars.fd`, from `OVMF_VARS_4M.fd`) persists
//! between boots like a machine's NVRAM. The console is a serial port
//! captured to a file; `out.log` is read back from the control disk with
//! `debugfs` (no mount on the host).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{find_tool, run_checked};
use crate::report::Accel;

/// OVMF's firmware code and variable template (Debian package `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// See [`OVMF_CODE`].
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A machine: its disk, firmware variables and work directory.
#[derive(Debug)]
pub struct Machine {
    /// Name, for messages.
    pub name: String,
    /// The system disk.
    pub disk: PathBuf,
    /// Extra disks attached read-only after the control disk.
    pub extra_disks: Vec<PathBuf>,
    /// Where console logs, the control disk and the variables live.
    pub work: PathBuf,
    /// Guest memory.
    pub memory_mib: u32,
    /// Limit on one boot (firmware to power-off).
    pub timeout: Duration,
    boots: u32,
}

/// What one boot left.
#[derive(Debug, Clone)]
pub struct BootRun {
    /// 1, 2, … per machine.
    pub number: u32,
    /// The serial console.
    pub console: String,
    /// The step's output (`out.log` of the control disk), if it ran.
    pub out: Option<String>,
    /// The step's exit status, if it ran to the end.
    pub status: Option<i32>,
    /// Firmware to power-off.
    pub wall: Duration,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// How it ran.
    pub accel: Accel,
}

impl BootRun {
    /// The step's output, or an error with the end of the console.
    pub fn out(&self) -> Result<&str> {
        match &self.out {
            Some(o) => Ok(o),
            None => bail!(
                "boot {}: the step did not run{}; console (end):\n{}",
                self.number,
                if self.timed_out { " (time limit)" } else { "" },
                tail(&self.console, 60)
            ),
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Machine {
    /// A machine booting `disk`, with fresh UEFI variables in `work`.
    pub fn new(name: &str, disk: &Path, work: &Path) -> Result<Machine> {
        std::fs::create_dir_all(work)?;
        std::fs::copy(OVMF_VARS, work.join("vars.fd"))
            .with_context(|| format!("copying {OVMF_VARS} (Debian package ovmf)"))?;
        Ok(Machine {
            name: name.to_owned(),
            disk: disk.to_path_buf(),
            extra_disks: Vec::new(),
            work: work.to_path_buf(),
            memory_mib: 1536,
            timeout: Duration::from_secs(600),
            boots: 0,
        })
    }

    /// Boots once with `step` (a shell script) on the control disk and
    /// waits for the machine to power off.
    pub fn boot(&mut self, step: &str) -> Result<BootRun> {
        self.boots += 1;
        let n = self.boots;
        let qemu = find_tool("qemu-system-x86_64")
            .context("qemu-system-x86_64 not found (Debian package qemu-system-x86)")?;
        let control_dir = self.work.join(format!("control-{n}"));
        std::fs::create_dir_all(&control_dir)?;
        std::fs::write(control_dir.join("step.sh"), step)?;
        let control = self.work.join(format!("control-{n}.img"));
        let f = File::create(&control)?;
        f.set_len(64 << 20)?;
        drop(f);
        let mkfs = find_tool("mkfs.ext4").context("mkfs.ext4 not found (e2fsprogs)")?;
        run_checked(
            Command::new(mkfs)
                .args([
                    "-q",
                    "-F",
                    "-b",
                    "4096",
                    "-L",
                    "CFSCONTROL",
                    "-E",
                    "root_owner=0:0",
                    "-d",
                ])
                .arg(&control_dir)
                .arg(&control),
        )?;
        let console = self.work.join(format!("console-{n}.log"));
        // As the guests chose: KVM only where it was seen to work (it hangs on
        // some nested machines, mount.md §8), so run a guest first.
        let accel = crate::guest::choose_accel();
        let mut cmd = Command::new(qemu);
        cmd.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        cmd.args(["-machine", "q35"]);
        match accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
        };
        cmd.args(["-smp", "1", "-m", &self.memory_mib.to_string()]);
        cmd.arg("-drive")
            .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
        cmd.arg("-drive").arg(format!(
            "if=pflash,format=raw,file={}",
            escape(&self.work.join("vars.fd"))
        ));
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe",
            escape(&self.disk)
        ));
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe",
            escape(&control)
        ));
        for d in &self.extra_disks {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,readonly=on",
                escape(d)
            ));
        }
        cmd.arg("-serial")
            .arg(format!("file:{}", console.display()));
        let qemu_log = self.work.join(format!("qemu-{n}.log"));
        let log = File::create(&qemu_log)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let start = Instant::now();
        let mut child = cmd.spawn().context("starting qemu")?;
        let mut timed_out = false;
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let wall = start.elapsed();
        let mut console_text = std::fs::read(&console)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let qemu_text = std::fs::read_to_string(&qemu_log).unwrap_or_default();
        if !qemu_text.trim().is_empty() {
            console_text.push_str("\n--- qemu ---\n");
            console_text.push_str(&qemu_text);
        }
        let out = read_from_ext4(&control, "out.log");
        let status = out.as_deref().and_then(|o| {
            o.lines()
                .rev()
                .find_map(|l| l.strip_prefix("@@exit "))
                .and_then(|s| s.trim().parse().ok())
        });
        Ok(BootRun {
            number: n,
            console: console_text,
            out,
            status,
            wall,
            timed_out,
            accel,
        })
    }
}

/// A file of an ext4 image, read with `debugfs` (`None` if absent).
fn read_from_ext4(image: &Path, name: &str) -> Option<String> {
    let debugfs = find_tool("debugfs")?;
    let out = Command::new(debugfs)
        .arg("-R")
        .arg(format!("cat /{name}"))
        .arg(image)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() || out.stdout.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A path in a QEMU option value (commas doubled).
fn escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}
