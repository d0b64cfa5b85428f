//! A guest run: initramfs + data disks + QEMU, with the test suites to run
//! inside and the report they produce.
//!
//! The guest boots the Debian kernel with a busybox initramfs. Stage 1
//! (`init.sh`) loads the modules the tests need and builds the guest's root:
//! the host's `/` shared read-only over 9p, under an overlay whose upper
//! layer is a tmpfs — so host-built test binaries, `CARGO_BIN_EXE_*` paths,
//! fixtures and tools such as `fsck.erofs` or `skopeo` are found at their
//! host paths with nothing copied, and tests may write anywhere (`/sbin`,
//! `/var/tmp`) without touching the host. The data disks are mounted in it
//! (by default an ext4 with the `verity` feature at [`VERITY_DIR`], the
//! suites' `TMPDIR`, and one without at [`PLAIN_DIR`]) — on new directories,
//! never over host paths, which may hold the checkout (e.g. under `/tmp`) —
//! and `switch_root` makes it the real root (user namespaces are
//! refused in a chroot). Stage 2 (`plan.sh` plus the generated suites) runs
//! each suite under `timeout`, reports on a virtio port and powers off. The
//! host kills a guest that exceeds its time limit.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cpio::Archive;
use crate::kernel::Kernel;
use crate::modules::{DepTable, read_module};
use crate::process::find_tool;
use crate::report::{Accel, GuestReport};

/// Modules the guest loads (with their dependencies): ext4 for the data
/// disks (crc32c for its checksums), EROFS and overlayfs for composefs,
/// virtio-blk for the disks, loop for the loop-device mount path, 9p for
/// the host root.
pub const MODULES: &[&str] = &[
    "crc32c_generic",
    "ext4",
    "erofs",
    "overlay",
    "virtio_blk",
    "loop",
    "9pnet_virtio",
    "9p",
];

/// Mount point of the default ext4 disk with the `verity` feature. (Not
/// named "verity": tests look for that word in messages that name paths.)
pub const VERITY_DIR: &str = "/cfs-vm/fsv";
/// Mount point of the default ext4 disk without it.
pub const PLAIN_DIR: &str = "/cfs-vm/plain";

/// The guest's `PATH`: the host's usual one.
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Set once a KVM guest failed to start: later guests go straight to TCG.
static KVM_BROKEN: AtomicBool = AtomicBool::new(false);

/// One test program run inside the guest.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Name in the report.
    pub name: String,
    /// Working directory (a host path, seen through the shared root).
    pub cwd: PathBuf,
    /// Program and arguments (host paths).
    pub argv: Vec<String>,
    /// Extra environment (on top of the guest's defaults).
    pub env: Vec<(String, String)>,
    /// Killed after this long.
    pub timeout: Duration,
}

/// A data disk.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// Sparse size in bytes.
    pub size: u64,
    /// ext4 with the `verity` feature.
    pub verity: bool,
    /// Where it is mounted in the guest (created if missing).
    pub mount_at: String,
    /// An existing disk image attached as it is (neither formatted nor
    /// mounted; `size`, `verity` and `mount_at` are ignored), e.g. the
    /// target of an installation.
    pub raw: Option<PathBuf>,
}

impl DiskSpec {
    /// The existing disk image `path`, attached as it is.
    pub fn raw(path: &Path) -> DiskSpec {
        DiskSpec {
            size: 0,
            verity: false,
            mount_at: String::new(),
            raw: Some(path.to_path_buf()),
        }
    }
}

/// A guest to run.
#[derive(Debug, Clone)]
pub struct Guest {
    /// Name, for messages and the work directory.
    pub name: String,
    /// The kernel.
    pub kernel: Kernel,
    /// Data disks, `/dev/vda` first.
    pub disks: Vec<DiskSpec>,
    /// The suites, run in order.
    pub suites: Vec<Suite>,
    /// Environment of every suite.
    pub env: Vec<(String, String)>,
    /// The suites' `TMPDIR` (default [`VERITY_DIR`]).
    pub tmpdir: String,
    /// Guest memory.
    pub memory_mib: u32,
    /// Limit on the whole run (boot included).
    pub timeout: Duration,
}

impl Guest {
    /// A guest with the default disks: a 4 GiB ext4 with `verity` at
    /// [`VERITY_DIR`] and a 1 GiB ext4 without it at [`PLAIN_DIR`] (both
    /// sparse).
    pub fn new(name: &str, kernel: Kernel) -> Guest {
        Guest {
            name: name.to_owned(),
            kernel,
            disks: vec![
                DiskSpec {
                    size: 4 << 30,
                    verity: true,
                    mount_at: VERITY_DIR.into(),
                    raw: None,
                },
                DiskSpec {
                    size: 1 << 30,
                    verity: false,
                    mount_at: PLAIN_DIR.into(),
                    raw: None,
                },
            ],
            suites: Vec::new(),
            env: Vec::new(),
            tmpdir: VERITY_DIR.into(),
            memory_mib: 2048,
            timeout: Duration::from_secs(1200),
        }
    }

    /// Runs the guest and returns what it reported. `Err` means the run
    /// could not be set up on the host; everything that went wrong inside
    /// is in the report's [`GuestReport::failures`].
    pub fn run(&self) -> Result<GuestReport> {
        let qemu = find_tool("qemu-system-x86_64")
            .context("qemu-system-x86_64 not found (Debian package qemu-system-x86)")?;
        let work = tempfile::Builder::new()
            .prefix(&format!("cfs-vm-{}-", self.name))
            .tempdir()
            .context("creating the guest work directory")?;
        let initrd = work.path().join("initrd.cpio");
        std::fs::write(&initrd, self.initramfs()?.to_bytes())
            .with_context(|| format!("writing {}", initrd.display()))?;
        let mut disks = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            if let Some(raw) = &d.raw {
                disks.push(raw.clone());
                continue;
            }
            let path = work.path().join(format!("disk{i}.img"));
            crate::disk::make_ext4(&path, d.size, d.verity)?;
            disks.push(path);
        }
        let mut accel = choose_accel();
        let report = loop {
            let outcome = self.boot(&qemu, work.path(), &initrd, &disks, accel)?;
            match outcome {
                Boot::NotStarted(why) if accel == Accel::Kvm => {
                    eprintln!(
                        "cfs-vmtest: {}: KVM guest failed ({why}); using TCG",
                        self.name
                    );
                    KVM_BROKEN.store(true, Ordering::Relaxed);
                    remember_kvm_broken();
                    accel = Accel::Tcg;
                    for (d, path) in self.disks.iter().zip(&disks) {
                        if d.raw.is_none() {
                            crate::disk::make_ext4(path, d.size, d.verity)?;
                        }
                    }
                }
                Boot::NotStarted(why) => bail!("{}: guest did not start: {why}", self.name),
                Boot::Done(r) => break r,
            }
        };
        if std::env::var_os("CFS_VM_KEEP").is_some() {
            eprintln!("cfs-vmtest: kept {}", work.keep().display());
        }
        Ok(report)
    }

    fn initramfs(&self) -> Result<Archive> {
        let busybox =
            find_tool("busybox").context("busybox not found (Debian package busybox-static)")?;
        let busybox_bytes =
            std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
        if has_interpreter(&busybox_bytes) {
            bail!(
                "{} is dynamically linked; the initramfs needs busybox-static",
                busybox.display()
            );
        }
        let modules_dir = self.kernel.modules_dir();
        let modules = DepTable::load(&modules_dir)?.closure(MODULES)?;
        let mut a = Archive::new();
        for d in [
            "bin",
            "dev",
            "proc",
            "sys",
            "etc",
            "etc/cfs-vm",
            "lib",
            "lib/modules",
            "newroot",
        ] {
            a.dir(d, 0o755);
        }
        a.file("bin/busybox", 0o755, busybox_bytes);
        let mut list = String::new();
        for m in &modules {
            a.file(
                &format!("lib/modules/{}.ko", m.name),
                0o644,
                read_module(&modules_dir, m)?,
            );
            list.push_str(&m.name);
            list.push('\n');
        }
        a.file("etc/cfs-vm/modules", 0o644, list.into_bytes());
        a.file("etc/cfs-vm/disks", 0o644, self.disk_list().into_bytes());
        a.file("etc/cfs-vm/plan.sh", 0o644, self.plan_script().into_bytes());
        a.file("init", 0o755, include_bytes!("init.sh").to_vec());
        Ok(a)
    }

    /// `/etc/cfs-vm/disks`: `DEVICE MOUNTPOINT` per data disk.
    pub fn disk_list(&self) -> String {
        let mut s = String::new();
        for (i, d) in self.disks.iter().enumerate() {
            if d.raw.is_some() {
                continue;
            }
            let dev = format!("/dev/vd{}", char::from(b'a' + i as u8));
            s.push_str(&format!("{dev} {}\n", d.mount_at));
        }
        s
    }

    /// Stage 2 of the guest: `plan.sh` followed by this guest's suites.
    pub fn plan_script(&self) -> String {
        let mut s = include_str!("plan.sh").to_owned();
        for suite in &self.suites {
            let mut env: Vec<(String, String)> = vec![
                ("PATH".into(), GUEST_PATH.into()),
                ("HOME".into(), "/root".into()),
                ("TMPDIR".into(), self.tmpdir.clone()),
                ("USER".into(), "root".into()),
                ("RUST_BACKTRACE".into(), "1".into()),
                ("CARGO_MANIFEST_DIR".into(), suite.cwd.display().to_string()),
            ];
            env.extend(self.env.iter().cloned());
            env.extend(suite.env.iter().cloned());
            let mut line = format!(
                "suite {} {} {} /usr/bin/env -i",
                quote(&suite.name),
                suite.timeout.as_secs().max(1),
                quote(&suite.cwd.display().to_string())
            );
            for (k, v) in env {
                line.push(' ');
                line.push_str(&quote(&format!("{k}={v}")));
            }
            for a in &suite.argv {
                line.push(' ');
                line.push_str(&quote(a));
            }
            s.push_str(&line);
            s.push('\n');
        }
        s.push_str("finish\n");
        s
    }

    fn boot(
        &self,
        qemu: &Path,
        work: &Path,
        initrd: &Path,
        disks: &[PathBuf],
        accel: Accel,
    ) -> Result<Boot> {
        let console = work.join("console.log");
        let results = work.join("results.log");
        let mut cmd = Command::new(qemu);
        cmd.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        match accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            // One vCPU: under TCG, -smp 2 panicked in one boot of two
            // (mount.md §8).
            Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
        };
        cmd.args(["-smp", "1", "-m", &self.memory_mib.to_string()]);
        cmd.arg("-kernel").arg(self.kernel.vmlinuz());
        cmd.arg("-initrd").arg(initrd);
        cmd.args(["-append", "console=ttyS0 panic=-1 quiet loglevel=4"]);
        cmd.arg("-serial")
            .arg(format!("file:{}", console.display()));
        cmd.args(["-device", "virtio-serial-pci"]);
        cmd.arg("-chardev")
            .arg(format!("file,id=results,path={}", qemu_escape(&results)));
        cmd.args(["-device", "virtserialport,chardev=results,name=cfs-results"]);
        for d in disks {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=virtio,cache=unsafe",
                qemu_escape(d)
            ));
        }
        cmd.args([
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ]);
        let qemu_log = work.join("qemu.log");
        let log = File::create(&qemu_log)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", qemu.display()))?;
        // A KVM guest is up in a few seconds even on a loaded host; one that
        // is not up after 20 s hangs (as on hosts whose KVM is unusable),
        // and the run falls back to TCG.
        let boot_limit = match accel {
            Accel::Kvm => Duration::from_secs(20),
            Accel::Tcg => Duration::from_secs(300),
        };
        let mut booted = false;
        let mut killed = None;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if !booted {
                booted = std::fs::read(&results)
                    .map(|b| b.windows(16).any(|w| w == b"@@cfs-vm booted "))
                    .unwrap_or(false);
            }
            let elapsed = start.elapsed();
            if !booted && elapsed > boot_limit {
                killed = Some(format!("not booted after {} s", boot_limit.as_secs()));
            } else if elapsed > self.timeout {
                killed = Some(format!(
                    "time limit of {} s reached",
                    self.timeout.as_secs()
                ));
            }
            if killed.is_some() {
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let wall = start.elapsed();
        let read = |p: &Path| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let results_text = read(&results);
        let qemu_text = read(&qemu_log);
        if accel == Accel::Kvm && !results_text.contains("@@cfs-vm booted ") {
            let why = killed
                .unwrap_or_else(|| format!("qemu exited with {status}: {}", last_line(&qemu_text)));
            return Ok(Boot::NotStarted(why));
        }
        if !results_text.contains("@@cfs-vm booted ") && killed.is_none() && !status.success() {
            return Ok(Boot::NotStarted(format!(
                "qemu exited with {status}: {}",
                last_line(&qemu_text)
            )));
        }
        let mut console_text = read(&console);
        if !qemu_text.trim().is_empty() {
            console_text.push_str("\n--- qemu ---\n");
            console_text.push_str(&qemu_text);
        }
        let mut report = GuestReport::parse(accel, wall, &results_text, console_text);
        report.killed = killed;
        Ok(Boot::Done(report))
    }
}

enum Boot {
    NotStarted(String),
    Done(GuestReport),
}

/// KVM when `/dev/kvm` can be opened and no KVM guest failed yet, in this
/// process or since the host booted (or `CFS_VM_ACCEL=kvm|tcg` says
/// otherwise).
pub fn choose_accel() -> Accel {
    match std::env::var("CFS_VM_ACCEL").as_deref() {
        Ok("tcg") => return Accel::Tcg,
        Ok("kvm") => return Accel::Kvm,
        _ => {}
    }
    if KVM_BROKEN.load(Ordering::Relaxed) || kvm_seen_broken() {
        return Accel::Tcg;
    }
    match File::options().read(true).write(true).open("/dev/kvm") {
        Ok(_) => Accel::Kvm,
        Err(_) => Accel::Tcg,
    }
}

/// Where a KVM failure is remembered: the cache's `kvm-broken`, holding the
/// host's boot id (a failed KVM start costs a minute; the test binaries
/// after the first need not pay it again until the host reboots).
fn kvm_broken_marker() -> Option<(PathBuf, String)> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some((
        crate::cache::root().ok()?.join("kvm-broken"),
        boot_id.trim().to_owned(),
    ))
}

fn kvm_seen_broken() -> bool {
    kvm_broken_marker()
        .is_some_and(|(path, id)| std::fs::read_to_string(path).is_ok_and(|text| text.trim() == id))
}

fn remember_kvm_broken() {
    if let Some((path, id)) = kvm_broken_marker() {
        let _ = std::fs::write(path, format!("{id}\n"));
    }
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// A word for `sh`, single-quoted.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path inside a QEMU option value (`,` doubled).
fn qemu_escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// True if an ELF file has a `PT_INTERP` program header (is dynamically linked).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .and_then(|off| u32_at(off + i * usize::from(phentsize)))
            == Some(3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "it's", "a b", "$HOME", "x'\"y", ""] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn interpreter_detection() {
        let sh = std::fs::read("/bin/sh").unwrap();
        assert!(
            has_interpreter(&sh),
            "/bin/sh is dynamically linked on Debian"
        );
        assert!(!has_interpreter(b"not an elf"));
        if let Ok(b) = std::fs::read("/bin/busybox")
            && std::process::Command::new("dpkg")
                .args(["-s", "busybox-static"])
                .output()
                .is_ok_and(|o| o.status.success())
        {
            assert!(!has_interpreter(&b));
        }
    }

    #[test]
    fn plan_runs_the_suites_in_order() {
        let kernel = Kernel {
            release: "r".into(),
            package_version: "v".into(),
            root: "/nonexistent".into(),
        };
        let mut g = Guest::new("t", kernel);
        g.env.push(("CFS_TEST_VERITY".into(), "require".into()));
        g.suites.push(Suite {
            name: "one".into(),
            cwd: "/w/crates/x".into(),
            argv: vec![
                "/w/target/debug/deps/x-1".into(),
                "--exact".into(),
                "it's".into(),
            ],
            env: vec![("A".into(), "b c".into())],
            timeout: Duration::from_secs(60),
        });
        assert_eq!(
            g.disk_list(),
            "/dev/vda /cfs-vm/fsv\n/dev/vdb /cfs-vm/plain\n"
        );
        let s = g.plan_script();
        let plan = &s[s.find("# --- plan ---").unwrap()..];
        assert_eq!(
            plan.lines().collect::<Vec<_>>(),
            [
                "# --- plan ---",
                "suite 'one' 60 '/w/crates/x' /usr/bin/env -i 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                 'HOME=/root' 'TMPDIR=/cfs-vm/fsv' 'USER=root' 'RUST_BACKTRACE=1' 'CARGO_MANIFEST_DIR=/w/crates/x' \
                 'CFS_TEST_VERITY=require' 'A=b c' '/w/target/debug/deps/x-1' '--exact' 'it'\\''s'",
                "finish"
            ]
        );
    }
}
