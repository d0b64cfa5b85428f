//! Deployments booted for real (issue 14): a Debian 12 OS built from Debian
//! packages (`tests/os/build-vm-images.sh`: systemd, a 6.12 kernel, dracut
//! with cfs's module, systemd-boot, this build's `cfsctl`) is installed by
//! `cfsctl system install to-disk` inside the fs-verity guest (so that the
//! repository is secure), then booted through OVMF and the installed
//! systemd-boot, with its root mounted from composefs and fs-verity
//! enforced, and taken through upgrade, rollback, gc and boot counting
//! across reboots. A second disk boots a sealed UKI.
//!
//! Each boot runs one step script through the image's test agent (see
//! [`cfs_vmtest::machine`]); the step prints `@@ KEY VALUE` lines that the
//! test checks. Needs root and the tools in [`TOOLS`]; skipped without them
//! unless `CFS_TEST_PRIVILEGED=require` (`CFS_TEST_VM=skip` skips it
//! explicitly, not in CI). `CFS_VM_KEEP=1` keeps the work directory (disks,
//! consoles).
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::workspace;
use cfs_vmtest::machine::{BootRun, Machine, tail};
use cfs_vmtest::{DiskSpec, Guest, Suite, find_tool};

/// Host tools the test runs (beyond those of the guest harness).
const TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "busybox",
    "mkfs.ext4",
    "debugfs",
    "depmod",
    "dpkg-deb",
    "apt-get",
    "xz",
    "mmdebstrap",
    "objcopy",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "losetup",
    "fsverity",
];

/// Whether the test can run here (else it is skipped, or fails under
/// `CFS_TEST_PRIVILEGED=require`).
fn can_run(test: &str) -> bool {
    let require = std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require");
    if std::env::var("CFS_TEST_VM").as_deref() == Ok("skip") {
        assert!(
            !require,
            "{test}: CFS_TEST_VM=skip with CFS_TEST_PRIVILEGED=require"
        );
        eprintln!("{test}: skipped (CFS_TEST_VM=skip)");
        return false;
    }
    let mut missing: Vec<String> = TOOLS
        .iter()
        .filter(|t| find_tool(t).is_none())
        .map(|t| (*t).to_owned())
        .collect();
    for f in [
        cfs_vmtest::machine::OVMF_CODE,
        cfs_vmtest::machine::OVMF_VARS,
    ] {
        if !Path::new(f).is_file() {
            missing.push(format!("{f} (ovmf)"));
        }
    }
    if !rustix::process::geteuid().is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        !require,
        "{test}: missing {missing:?}, and CFS_TEST_PRIVILEGED=require"
    );
    eprintln!("{test}: skipped (missing {missing:?}; .ci/run installs them)");
    false
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `@@ KEY VALUE` lines of a step's output (the last of each key).
fn facts(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("@@ "))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Boots once and returns the step's facts, failing with the output and
/// the console when the step did not run or failed.
fn boot(
    m: &mut Machine,
    what: &str,
    step: &str,
    log: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let script = format!("{PRELUDE}\n{step}\n");
    let r: BootRun = m.boot(&script).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let line = format!(
        "boot {} ({what}): {:.0} s{}",
        r.number,
        r.wall.as_secs_f64(),
        if r.timed_out { ", TIMED OUT" } else { "" }
    );
    eprintln!("{line}");
    log.push(line);
    let out = r
        .out()
        .unwrap_or_else(|e| panic!("{what}: {e:#}"))
        .to_owned();
    assert_eq!(
        r.status,
        Some(0),
        "{what}: the step failed:\n{out}\nconsole (end):\n{}",
        tail(&r.console, 40)
    );
    facts(&out)
}

/// Every step starts by reporting what is booted.
const PRELUDE: &str = r#"set -eu
say() { echo "@@ $*"; }
say status "$(cfsctl system status --json | tr -d '\n')"
say root "$(findmnt -n -o FSTYPE,SOURCE,OPTIONS /)"
say version "$(cat /usr/share/cfs-vmtest/version)"
say setting "$(cat /etc/cfs-vmtest.conf)"
say cmdline "$(cat /proc/cmdline)"
say complete "$(systemctl is-active boot-complete.target || true)"
mkdir -p /run/cfs-images
mount -o ro /dev/disk/by-label/CFSIMAGES /run/cfs-images 2>/dev/null || true
"#;

fn status_json(f: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::from_str(&f["status"])
        .unwrap_or_else(|e| panic!("status JSON: {e}: {}", f["status"]))
}

fn slot(f: &BTreeMap<String, String>, slot: &str) -> Option<String> {
    status_json(f)["status"][slot]["composefs"]["verity"]
        .as_str()
        .map(str::to_owned)
}

/// The root is composefs with fs-verity enforced, booted from `id`.
fn check_root(f: &BTreeMap<String, String>, id: &str, what: &str) {
    let root = &f["root"];
    assert!(
        root.starts_with(&format!("overlay composefs:{id} ")),
        "{what}: root is {root}"
    );
    assert!(root.contains("verity=require"), "{what}: root is {root}");
    assert!(
        root.split([' ', ',']).any(|o| o == "ro"),
        "{what}: root is {root}"
    );
    assert_eq!(
        slot(f, "booted").as_deref(),
        Some(id),
        "{what}: {}",
        f["status"]
    );
}

/// A combined OCI layout with the tags `latest` (= v2), `v2` and `v3`, on
/// an ext4 image labelled CFSIMAGES: what the machine upgrades from.
fn images_disk(images: &Path, work: &Path) -> PathBuf {
    let stage = work.join("images-stage");
    let oci = stage.join("oci");
    std::fs::create_dir_all(oci.join("blobs/sha256")).unwrap();
    let mut manifests = Vec::new();
    for (tag, v) in [("latest", "v2"), ("v2", "v2"), ("v3", "v3")] {
        let src = images.join(v).join("oci");
        for b in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
            let b = b.unwrap();
            let dest = oci.join("blobs/sha256").join(b.file_name());
            if !dest.exists() {
                std::fs::hard_link(b.path(), &dest)
                    .or_else(|_| std::fs::copy(b.path(), &dest).map(|_| ()))
                    .unwrap();
            }
        }
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(src.join("index.json")).unwrap()).unwrap();
        let mut m = index["manifests"][0].clone();
        m["annotations"]["org.opencontainers.image.ref.name"] = tag.into();
        manifests.push(m);
    }
    std::fs::copy(images.join("v2/oci/oci-layout"), oci.join("oci-layout")).unwrap();
    std::fs::write(
        oci.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap(),
    )
    .unwrap();
    let disk = work.join("images.img");
    let f = std::fs::File::create(&disk).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-L", "CFSIMAGES", "-d"])
        .arg(&stage)
        .arg(&disk));
    std::fs::remove_dir_all(&stage).unwrap();
    disk
}

/// Installs `image` (an OCI layout directory) onto `disk` inside an
/// fs-verity guest of its own, as `oci:/run/cfs-images/oci:latest` (the
/// path the machine later upgrades from). Returns the deployment id.
fn install(
    kernel: &cfs_vmtest::kernel::Kernel,
    cfsctl: &Path,
    image: &Path,
    disk: &Path,
) -> String {
    let name = format!(
        "install-{}",
        image.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut guest = Guest::new(&name, kernel.clone());
    guest.timeout = Duration::from_secs(1200);
    let f = std::fs::File::create(disk).unwrap();
    f.set_len(6 << 30).unwrap();
    drop(f);
    guest.disks.push(DiskSpec::raw(disk));
    // After the harness's two disks (vda: fs-verity scratch, vdb: plain).
    let dev = "/dev/vdc";
    let script = format!(
        "set -e\nmkdir -p /run/cfs-images\nmount --bind {} /run/cfs-images\n{} system install to-disk --wipe --karg console=ttyS0 oci:/run/cfs-images/oci:latest {dev}\numount /run/cfs-images\n",
        cfs_vmtest::guest::quote(&image.display().to_string()),
        cfs_vmtest::guest::quote(&cfsctl.display().to_string()),
    );
    guest.suites.push(Suite {
        name: name.clone(),
        cwd: PathBuf::from("/"),
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        env: Vec::new(),
        timeout: Duration::from_secs(900),
    });
    let report = guest
        .run()
        .unwrap_or_else(|e| panic!("{name} guest: {e:#}"));
    let failures = report.failures();
    let output: String = report.suites.iter().map(|s| s.output.clone()).collect();
    assert!(
        failures.is_empty(),
        "{name} guest failed: {failures:?}\n{output}\nconsole (end):\n{}",
        tail(&report.console, 40)
    );
    eprintln!("{}", report.summary());
    assert!(
        !output.contains("composefs.digest=?"),
        "an insecure install:\n{output}"
    );
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("deployment "))
        .unwrap_or_else(|| panic!("no deployment in:\n{output}"))
        .trim()
        .to_owned()
}

/// The ESP of `disk` (its first partition) as an mtools image spec.
fn esp_spec(disk: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(disk))).unwrap();
    let start = json["partitiontable"]["partitions"][0]["start"]
        .as_u64()
        .unwrap();
    format!("{}@@{}", disk.display(), start * 512)
}

/// The test machines skip systemd-boot's menu: `timeout 0` in the
/// installed `loader/loader.conf` (written on the ESP with mtools).
fn no_menu_timeout(disk: &Path, work: &Path) {
    let spec = esp_spec(disk);
    let conf = run(Command::new("mtype").args(["-i", &spec, "::loader/loader.conf"]));
    assert!(conf.contains("timeout"), "loader.conf: {conf}");
    let text: String = conf
        .lines()
        .filter(|l| !l.starts_with("timeout"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "timeout 0\n";
    let f = work.join("loader.conf");
    std::fs::write(&f, text).unwrap();
    run(Command::new("mcopy")
        .args(["-o", "-i", &spec])
        .arg(&f)
        .arg("::loader/loader.conf"));
}

/// Overwrites the first block of `path` (inside the root partition of
/// `disk`) with other bytes, below the filesystem: fs-verity must catch it.
fn tamper(disk: &Path, path: &str) {
    let json: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(disk))).unwrap();
    let root = &json["partitiontable"]["partitions"][1];
    let (start, size) = (
        root["start"].as_u64().unwrap() * 512,
        root["size"].as_u64().unwrap() * 512,
    );
    let dev = run(Command::new("losetup")
        .args([
            "--find",
            "--show",
            "--offset",
            &start.to_string(),
            "--sizelimit",
            &size.to_string(),
        ])
        .arg(disk))
    .trim()
    .to_owned();
    let blocks = run(Command::new("debugfs").args(["-R", &format!("blocks {path}"), &dev]));
    let block: u64 = blocks
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("debugfs blocks {path}: {blocks:?}"));
    let f = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[b'X'; 4096], block * 4096).unwrap();
    f.sync_all().unwrap();
    drop(f);
    run(Command::new("losetup").args(["-d", &dev]));
}

/// The object path of a file's contents in a SHA-512 repository.
fn object_path(contents: &[u8], work: &Path) -> String {
    let f = work.join("payload");
    std::fs::write(&f, contents).unwrap();
    let out = run(Command::new("fsverity")
        .args(["digest", "--hash-alg=sha512", "--block-size=4096"])
        .arg(&f));
    let hex = out
        .split_whitespace()
        .next()
        .and_then(|d| d.strip_prefix("sha512:"))
        .unwrap_or_else(|| panic!("fsverity digest: {out}"))
        .to_owned();
    format!("/composefs/objects/{}/{}", &hex[..2], &hex[2..])
}

fn payload(version: u32) -> Vec<u8> {
    let line = format!("cfs vm test payload v{version}\n");
    line.as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(65536)
        .collect()
}

/// The UKI machine: boots the disk with the sealed UKI once.
fn uki_boot(disk: &Path, work: &Path, id: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut u = Machine::new("uki", disk, work).unwrap();
    let f = boot(
        &mut u,
        "UKI v1",
        r#"say volatile "$(readlink /run/systemd/volatile-root || true)""#,
        &mut log,
    );
    check_root(&f, id, "UKI boot");
    assert!(
        f["volatile"].starts_with("/dev/block/"),
        "gpt-auto found the root: the booted system is told where it is: {:?}",
        f["volatile"]
    );
    assert_eq!(
        status_json(&f)["status"]["booted"]["composefs"]["bootType"],
        "uki"
    );
    assert!(
        !f["cmdline"].contains("root="),
        "the UKI finds its root itself: {}",
        f["cmdline"]
    );
    log
}

#[test]
fn debian_installed_upgraded_rolled_back_and_counted() {
    let test = "debian_installed_upgraded_rolled_back_and_counted";
    if !can_run(test) {
        return;
    }
    let t0 = Instant::now();
    let mut log = Vec::new();
    let cfsctl = cfs_vmtest::cargo::cfsctl(&workspace()).unwrap_or_else(|e| panic!("{e:#}"));
    let script = workspace().join("tests/os/build-vm-images.sh");
    let out = run(Command::new("bash").arg(&script).arg(&cfsctl));
    let images = PathBuf::from(out.lines().last().unwrap().trim());
    let kernel =
        cfs_vmtest::kernel::debian_6_12().unwrap_or_else(|e| panic!("guest kernel: {e:#}"));
    log.push(format!(
        "images and guest kernel ready after {:.0} s: {}",
        t0.elapsed().as_secs_f64(),
        images.display()
    ));
    let work = tempfile::Builder::new()
        .prefix("cfs-boot-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let w = work.path();
    let (disk, uki_disk) = (w.join("disk.raw"), w.join("uki.raw"));

    // Both installs at once (one core each), inside fs-verity guests.
    let t = Instant::now();
    let (v1, uki) = std::thread::scope(|s| {
        let a = s.spawn(|| install(&kernel, &cfsctl, &images.join("v1"), &disk));
        let b = s.spawn(|| install(&kernel, &cfsctl, &images.join("uki1"), &uki_disk));
        let join = |h: std::thread::ScopedJoinHandle<'_, String>| {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        (join(a), join(b))
    });
    log.push(format!(
        "install guests (two, in parallel): {:.0} s",
        t.elapsed().as_secs_f64()
    ));
    let v1_id = std::fs::read_to_string(images.join("v1-id")).unwrap();
    assert_eq!(
        uki,
        v1_id.trim(),
        "the UKI deployment is the image its .cmdline names"
    );
    assert_eq!(
        v1, uki,
        "/boot is not part of the boot image: v1 and v1+UKI are one image"
    );
    no_menu_timeout(&disk, w);
    no_menu_timeout(&uki_disk, w);

    // The UKI machine boots on the other core meanwhile.
    let uki_work = w.join("uki-machine");
    let uki_log = std::thread::scope(|s| {
        let uki_thread = s.spawn(|| uki_boot(&uki_disk, &uki_work, &uki));
        deployment_boots(&disk, w, &images, &v1, &mut log);
        uki_thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    log.extend(uki_log);

    log.push(format!("total {:.0} s", t0.elapsed().as_secs_f64()));
    eprintln!("{test}:\n  {}", log.join("\n  "));
    if std::env::var_os("CFS_VM_KEEP").is_some() {
        eprintln!("kept {}", work.keep().display());
    }
}

/// The BLS machine, from v1 through upgrade, tampering, rollback, gc and a
/// v3 that never completes its boot.
fn deployment_boots(disk: &Path, w: &Path, images: &Path, v1: &str, log: &mut Vec<String>) {
    let mut m = Machine::new("deploy", disk, &w.join("machine")).unwrap();
    m.extra_disks.push(images_disk(images, w));

    // 1. v1 boots: composefs root, verity enforced, every file of /usr
    //    reads; a local /etc change; upgrade to v2 (staged).
    let f = boot(
        &mut m,
        "v1; upgrade",
        r#"if find /usr -xdev -type f -print0 | xargs -0 cat >/dev/null; then say usr ok; else say usr FAILED; fi
echo mine >/etc/cfs-local.conf
cfsctl system upgrade
say staged "$(cfsctl system status --json | tr -d '\n')""#,
        log,
    );
    check_root(&f, v1, "boot 1");
    assert_eq!(f["version"], "1");
    assert_eq!(f["usr"], "ok");
    assert_eq!(f["complete"], "active");
    assert!(
        f["cmdline"].contains(&format!("composefs.digest=v1-sha512-12:{v1}")),
        "{}",
        f["cmdline"]
    );
    let staged: serde_json::Value = serde_json::from_str(&f["staged"]).unwrap();
    let v2 = staged["status"]["staged"]["composefs"]["verity"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing staged: {staged}"))
        .to_owned();
    let v2 = v2.as_str();

    // 2. An object of v2 tampered with on disk before it boots: reading
    //    that file gives EIO, the rest runs. The local /etc change survived
    //    the merge, v1 is the rollback.
    tamper(disk, &object_path(&payload(2), w));
    let f = boot(
        &mut m,
        "v2, tampered; rollback",
        r#"if cat /usr/share/cfs-vmtest/payload >/dev/null 2>/run/err; then say payload read; else say payload "$(cat /run/err)"; fi
say local "$(cat /etc/cfs-local.conf)"
say new "$(cat /usr/share/cfs-vmtest/new-in-v2)"
cfsctl system rollback"#,
        log,
    );
    check_root(&f, v2, "boot 2");
    assert_eq!(f["version"], "2");
    assert!(
        f["payload"].contains("Input/output error"),
        "payload: {}",
        f["payload"]
    );
    assert_eq!(f["complete"], "active", "the rest of the system runs");
    assert_eq!(f["setting"], "setting=two", "the new image's default");
    assert_eq!(f["local"], "mine", "the local change kept");
    assert_eq!(f["new"], "only in v2 and later");
    assert_eq!(slot(&f, "rollback").as_deref(), Some(v1));

    // 3. Rolled back to v1; gc leaves only the live deployments' files;
    //    rollback again (v2 the default).
    let f = boot(
        &mut m,
        "v1 again; gc; rollback",
        r#"cfsctl system gc
say entries "$(ls /boot/loader/entries | tr '\n' ' ')"
say kernels "$(ls /boot/EFI/Linux | tr '\n' ' ')"
cfsctl system rollback"#,
        log,
    );
    check_root(&f, v1, "boot 3");
    assert_eq!(f["version"], "1");
    assert_eq!(f["setting"], "setting=one");
    assert_eq!(slot(&f, "rollback").as_deref(), Some(v2));
    assert_eq!(
        f["entries"].split_whitespace().count(),
        2,
        "{}",
        f["entries"]
    );
    for k in f["kernels"].split_whitespace() {
        let id = k.strip_prefix("bootc_composefs-").unwrap_or(k);
        assert!(
            id == v1 || id == v2,
            "a kernel directory of no live deployment: {k}"
        );
    }

    // 4. v2 again; stage v3 (whose boot never completes) with one try.
    let f = boot(
        &mut m,
        "v2; switch to v3 with --tries 1",
        "cfsctl system switch --tries 1 oci:/run/cfs-images/oci:v3",
        log,
    );
    check_root(&f, v2, "boot 4");
    // 5. v3 boots once, boot-complete.target fails, it is not marked good.
    let f = boot(
        &mut m,
        "v3 (failing)",
        "say entries \"$(ls /boot/loader/entries | tr '\\n' ' ')\"",
        log,
    );
    assert_eq!(f["version"], "3");
    assert_ne!(f["complete"], "active");
    assert!(f["entries"].contains("+0-1.conf"), "{}", f["entries"]);
    // 6. Its tries used up, the machine is back on v2 by itself.
    let f = boot(&mut m, "fallback to v2", "cfsctl system status", log);
    check_root(&f, v2, "boot 6");
    assert_eq!(f["version"], "2");
}
