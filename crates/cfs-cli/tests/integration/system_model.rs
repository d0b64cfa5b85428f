//! Model-based crash test of `cfsctl system`: seeded random sequences of
//! install, upgrade/switch, finalize, reboot, rollback, delete, pin, kargs
//! and gc on a physical-root directory, many of them killed with SIGKILL at
//! a random system call (`strace --inject=…:signal=KILL:when=N` on writes,
//! renames, links, unlinks, fsyncs and mkdirs). After every step:
//!
//! - `system status` works and shows the booted deployment;
//! - the booted deployment's entry, boot binary, state, origin and image
//!   are intact;
//! - the repository passes `fsck`;
//! - after a completed `gc`: no boot binary and no state directory that no
//!   entry names.
//!
//! The images are small synthetic OS images (several versions, some with
//! the same kernel) so that 1,000 steps fit in CI. `CFS_MODEL_STEPS` and
//! `CFS_MODEL_SEED` override the defaults; the seed is printed.

use std::path::Path;
use std::process::{Command, Stdio};

use cfs_deploy::deploy::Layout;
use cfs_deploy::deploy::entries::{self, Boots};
use cfs_deploy::deploy::status::status;

use crate::boot_interop::Rng;
use crate::oci_support::{Hdr, Tar, plain, write_layout};

/// A small OS image, version `v` (kernels change every third version).
pub(crate) fn os_layout(dir: &Path, v: u32) -> String {
    let mut t = Tar::default();
    for d in [
        "usr/",
        "usr/bin/",
        "usr/lib/",
        "usr/lib/modules/",
        "usr/lib/systemd/",
        "usr/lib/systemd/boot/",
        "usr/lib/systemd/boot/efi/",
        "etc/",
        "boot/",
        "sysroot/",
        "var/",
        "var/lib/",
    ] {
        t.dir(d);
    }
    let kver = format!("6.{}.0", v / 3);
    t.dir(&format!("usr/lib/modules/{kver}/"));
    t.file(
        &format!("usr/lib/modules/{kver}/vmlinuz"),
        &vec![b'K' + (v / 3) as u8; 3000],
    );
    t.file(
        &format!("usr/lib/modules/{kver}/initramfs.img"),
        &vec![b'I'; 2000],
    );
    t.file("usr/lib/systemd/boot/efi/systemd-bootx64.efi", &[b'M'; 500]);
    t.file(
        "usr/lib/os-release",
        format!("ID=testos\nVERSION_ID={v}\nPRETTY_NAME=\"Test OS {v}\"\n").as_bytes(),
    );
    t.file(
        "usr/bin/tool",
        format!("tool version {v} {}", "x".repeat(100)).as_bytes(),
    );
    t.file("etc/hostname", b"testos\n");
    t.file("etc/os-config", format!("version={v}\n").as_bytes());
    t.entry(
        Hdr {
            path: "etc/app.conf".into(),
            mode: 0o600,
            ..Hdr::default()
        },
        format!("setting={}\n", v % 2).as_bytes(),
    );
    t.file("var/lib/seed", b"seeded once\n");
    let layout = dir.join(format!("os{v}"));
    write_layout(&layout, "latest", &[plain(t.finish())]);
    format!("oci:{}:latest", layout.display())
}

fn cfs(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cfsctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `args`, killed at the `when`-th matching system call if given;
/// returns whether it completed successfully.
fn run(strace: Option<&Path>, when: Option<u64>, args: &[&str]) -> bool {
    match (strace, when) {
        (Some(s), Some(n)) => Command::new(s)
            .args(["-f", "-o", "/dev/null", &format!(
                "--inject=write,fsync,rename,renameat,renameat2,unlinkat,linkat,mkdirat,mkdir:signal=KILL:when={n}"
            )])
            .arg(env!("CARGO_BIN_EXE_cfsctl"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        _ => {
            let out = cfs(args);
            if !out.status.success() && std::env::var_os("CFS_MODEL_TRACE").is_some() {
                eprintln!("  {}", String::from_utf8_lossy(&out.stderr).replace('\n', "\n  "));
            }
            out.status.success()
        }
    }
}

/// The invariants after a step (see the module docs).
fn check(l: &Layout, booted: &str, after_gc: bool, what: &str) {
    let s = status(l, Some(booted)).unwrap_or_else(|e| panic!("{what}: status failed: {e}"));
    let b = s.booted.as_ref().unwrap_or_else(|| {
        panic!(
            "{what}: the booted deployment {booted} is gone: {:?}",
            s.problems
        )
    });
    assert!(
        l.origin(&b.id).is_file(),
        "{what}: origin of the booted deployment"
    );
    assert!(
        l.state(&b.id).join("etc").is_dir(),
        "{what}: /etc of the booted deployment"
    );
    let (live, _) = entries::read_dir(&l.entries()).unwrap();
    let e = live
        .iter()
        .find(|e| e.id.as_deref() == Some(booted))
        .unwrap();
    if let Some(Boots::Kernel(dir)) = &e.boots {
        assert!(
            l.boot.join("EFI/Linux").join(dir).join("vmlinuz").is_file(),
            "{what}: kernel {dir}"
        );
    }
    assert!(
        l.repo().join("images").join(booted).exists(),
        "{what}: image of the booted deployment"
    );
    let fsck = cfs(&["--repo", l.repo().to_str().unwrap(), "fsck"]);
    let text = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && text.contains("status: ok"),
        "{what}: fsck:\n{text}"
    );
    if after_gc {
        let (staged, _) = entries::read_dir(&l.staged_entries()).unwrap();
        let named: Vec<String> = live
            .iter()
            .chain(&staged)
            .filter_map(|e| e.id.clone())
            .collect();
        for st in std::fs::read_dir(l.root.join("state/deploy")).unwrap() {
            let id = st.unwrap().file_name().to_string_lossy().into_owned();
            assert!(named.contains(&id), "{what}: orphan state {id} after gc");
        }
        let left = cfs_deploy::deploy::binaries::gc(l, Some(booted), true).unwrap();
        assert!(
            left.removed.is_empty(),
            "{what}: unreferenced binaries after gc: {:?}",
            left.removed
        );
    }
}

#[test]
fn random_operations_with_crashes_keep_the_invariants() {
    if !crate::support::privileged("random_operations_with_crashes_keep_the_invariants") {
        return;
    }
    let strace = crate::crash_gc::find_strace();
    let steps: usize = std::env::var("CFS_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("CFS_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("model test: {steps} steps, CFS_MODEL_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let images: Vec<String> = (0..5).map(|v| os_layout(tmp.path(), v)).collect();
    let root = tmp.path().join("root");
    let esp = tmp.path().join("esp");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&root).unwrap();
    let mut layout = Layout::new(&root, Some(&esp));
    layout.run = run_dir.clone();
    let (r, e, rd) = (
        root.to_str().unwrap(),
        esp.to_str().unwrap(),
        run_dir.to_str().unwrap(),
    );
    assert!(run(
        None,
        None,
        &[
            "system",
            "install",
            "to-filesystem",
            "--allow-missing-verity",
            "--boot-dir",
            e,
            &images[0],
            r
        ]
    ));
    let mut booted = status(&layout, None).unwrap().rollback.unwrap().id;
    let mut kills = 0;
    for step in 0..steps {
        let op = rng.below(10);
        let kill = strace.is_some() && rng.below(3) == 0;
        let when = kill.then(|| 1 + rng.below(40));
        let sys = |cmd: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = ["system"]
                .iter()
                .chain(cmd)
                .map(|s| s.to_string())
                .collect();
            v.extend(
                [
                    "--root",
                    r,
                    "--boot-dir",
                    e,
                    "--run-dir",
                    rd,
                    "--booted",
                    &booted,
                ]
                .map(String::from),
            );
            v
        };
        let args: Vec<String> = match op {
            0 | 1 => sys(&["switch", &images[rng.below(5) as usize]]),
            2 => sys(&["upgrade"]),
            3 => sys(&["finalize"]),
            4 => {
                // Reboot: finalize at shutdown (never killed: a crash there is
                // a crash of finalize, covered by op 3), then boot the default.
                run(
                    None,
                    None,
                    &sys(&["finalize"])
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                );
                let (live, _) = entries::read_dir(&layout.entries()).unwrap();
                if let Some(id) = live.first().and_then(|e| e.id.clone())
                    && layout.origin(&id).is_file()
                {
                    booted = id;
                }
                let _ = std::fs::remove_file(layout.staged_marker());
                check(
                    &layout,
                    &booted,
                    false,
                    &format!("seed {seed} step {step} reboot"),
                );
                continue;
            }
            5 => sys(&["rollback"]),
            6 => {
                let (live, _) = entries::read_dir(&layout.entries()).unwrap();
                let other: Vec<String> = live
                    .iter()
                    .filter_map(|e| e.id.clone())
                    .filter(|i| *i != booted)
                    .collect();
                if other.is_empty() {
                    continue;
                }
                let id = other[rng.below(other.len() as u64) as usize].clone();
                let mut v = sys(&["pin"]);
                v.insert(2, id);
                if rng.below(2) == 0 {
                    v.push("--unpin".into());
                }
                v
            }
            7 => {
                let (live, _) = entries::read_dir(&layout.entries()).unwrap();
                let other: Vec<String> = live
                    .iter()
                    .filter_map(|e| e.id.clone())
                    .filter(|i| *i != booted)
                    .collect();
                if other.is_empty() {
                    continue;
                }
                let mut v = sys(&["delete-deployment"]);
                v.insert(2, other[rng.below(other.len() as u64) as usize].clone());
                v
            }
            8 => sys(&["kargs", "--append", &format!("model.step={step}")]),
            _ => sys(&["gc"]),
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let ok = run(strace.as_deref(), when, &argv);
        if std::env::var_os("CFS_MODEL_TRACE").is_some() {
            eprintln!(
                "step {step}: {} {:?} kill@{when:?} ok={ok} booted={}",
                argv[1],
                &argv[2..argv.len().min(3)],
                &booted[..8]
            );
        }
        if !ok && when.is_some() {
            kills += 1;
        }
        if std::env::var("CFS_MODEL_STOP")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            == Some(step)
        {
            let keep = tmp.keep();
            panic!(
                "stopped after step {step}; state kept in {}",
                keep.display()
            );
        }
        let what = format!(
            "seed {seed} step {step}: {}{}",
            argv[1],
            if when.is_some() { " (killed?)" } else { "" }
        );
        check(&layout, &booted, ok && op == 9, &what);
    }
    eprintln!("model test: {steps} steps, {kills} ended by SIGKILL, seed {seed}: invariants held");
}
