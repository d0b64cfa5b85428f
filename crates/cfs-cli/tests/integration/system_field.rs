//! Field bugs of bootc's composefs backend, as passing tests on real Debian
//! images (the booted deployment simulated with `--booted`):
//!
//! - bootc #1887: the rollback deployment booted (picked in the menu, or
//!   after `rollback`), then an upgrade/switch: the booted entry is found,
//!   the new set is new + booted;
//! - bootc #2422: a live deployment's manifest stream missing after
//!   switching tags: status and gc still work and name what is missing;
//! - bootc #2334: a UKI sealed for the V2 image in a repository that
//!   generates V1: the deployment is the image the UKI mounts; a UKI
//!   sealed for an image that is not this one is refused at install time,
//!   before anything is deployed.
//!
//! And `upgrade --check` / `--apply` against a tag that moves.

use std::path::{Path, PathBuf};

use crate::boot::{us, us_fails};

/// A physical root with its ESP and `/run` directory.
struct System {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    esp: PathBuf,
    run: PathBuf,
}

impl System {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (root, esp, run) = (
            tmp.path().join("root"),
            tmp.path().join("esp"),
            tmp.path().join("run"),
        );
        std::fs::create_dir_all(&root).unwrap();
        System {
            _tmp: tmp,
            root,
            esp,
            run,
        }
    }

    /// `cfsctl system CMD… --root … --booted BOOTED`.
    fn args(&self, cmd: &[&str], booted: &str) -> Vec<String> {
        let mut v: Vec<String> = ["system"]
            .iter()
            .chain(cmd)
            .map(|s| s.to_string())
            .collect();
        for (k, p) in [
            ("--root", &self.root),
            ("--boot-dir", &self.esp),
            ("--run-dir", &self.run),
        ] {
            v.push(k.into());
            v.push(p.to_str().unwrap().into());
        }
        v.push("--booted".into());
        v.push(booted.into());
        v
    }

    fn sys(&self, cmd: &[&str], booted: &str) -> String {
        let args = self.args(cmd, booted);
        us(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn install(&self, image: &str) -> String {
        let out = us(&[
            "system",
            "install",
            "to-filesystem",
            "--allow-missing-verity",
            "--boot-dir",
            self.esp.to_str().unwrap(),
            image,
            self.root.to_str().unwrap(),
        ]);
        out.lines()
            .find_map(|l| l.trim().strip_prefix("deployment "))
            .unwrap_or_else(|| panic!("{out}"))
            .trim()
            .to_owned()
    }

    /// Stages `image` from `booted` and returns the staged id.
    fn switch(&self, image: &str, booted: &str) -> String {
        let out = self.sys(&["switch", image], booted);
        out.trim()
            .strip_prefix("Staged ")
            .and_then(|s| s.split(':').next())
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned()
    }

    fn status(&self, booted: &str) -> serde_json::Value {
        serde_json::from_str(&self.sys(&["status", "--json"], booted)).unwrap()
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.esp.join("loader/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn repo(&self) -> PathBuf {
        self.root.join("composefs")
    }
}

fn verity(v: &serde_json::Value, slot: &str) -> Option<String> {
    v["status"][slot]["composefs"]["verity"]
        .as_str()
        .map(str::to_owned)
}

fn src(os: &Path) -> String {
    format!("oci:{}:latest", os.join("oci").display())
}

#[test]
fn booted_rollback_then_upgrade_and_a_missing_manifest() {
    let test = "booted_rollback_then_upgrade_and_a_missing_manifest";
    if !crate::support::privileged(test) {
        return;
    }
    let (Some(plain), Some(selinux)) = (
        crate::debian_os::build("plain", None),
        crate::debian_os::build("selinux", None),
    ) else {
        return;
    };
    let s = System::new();
    let layouts = tempfile::tempdir().unwrap();
    let third = crate::debian_os::derive(
        &plain,
        &layouts.path().join("c"),
        &[("usr/share/doc/cfs-test-version", b"c\n")],
    );
    let a = s.install(&src(&plain));
    let b = s.switch(&src(&selinux), &a);
    s.sys(&["finalize"], &a);
    // bootc #1887, first form: the user picks a (the rollback) in the menu;
    // the default stays b.
    let st = s.status(&a);
    assert_eq!(verity(&st, "booted").as_deref(), Some(a.as_str()));
    assert_eq!(verity(&st, "rollback").as_deref(), Some(b.as_str()));
    assert_eq!(st["status"]["rollbackQueued"], true);
    // Switching from there finds a's entry; the new set is c then a.
    let c = s.switch(&third, &a);
    let st = s.status(&a);
    assert_eq!(verity(&st, "staged").as_deref(), Some(c.as_str()));
    assert_eq!(verity(&st, "booted").as_deref(), Some(a.as_str()));
    assert_eq!(verity(&st, "rollback").as_deref(), Some(b.as_str()));
    assert_eq!(
        s.sys(&["finalize"], &a),
        format!("Finalized {c}: the next boot starts it\n")
    );
    let st = s.status(&a);
    assert_eq!(verity(&st, "booted").as_deref(), Some(a.as_str()));
    assert_eq!(verity(&st, "rollback").as_deref(), Some(c.as_str()));
    assert!(
        st["status"]["otherDeployments"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.entries().len(), 2, "{:?}", s.entries());
    // b has no entry any more: gc takes its binaries, state and tag.
    let gc = s.sys(&["gc"], &a);
    assert!(gc.contains("1 state directories"), "{gc}");
    assert!(!s.root.join("state/deploy").join(&b).exists());
    assert!(s.root.join("state/deploy").join(&a).exists());

    // Second form: boot c, `rollback` (a is the default again), boot a,
    // switch: a's entry is found although a is not c's successor.
    let st = s.status(&c);
    assert_eq!(verity(&st, "booted").as_deref(), Some(c.as_str()));
    assert_eq!(s.sys(&["rollback"], &c), format!("Next boot: {a}\n"));
    let st = s.status(&a);
    assert_eq!(verity(&st, "booted").as_deref(), Some(a.as_str()));
    assert_eq!(verity(&st, "rollback").as_deref(), Some(c.as_str()));
    assert_eq!(st["status"]["rollbackQueued"], false);
    assert_eq!(
        s.sys(&["upgrade"], &a),
        format!("No changes: deployment {a} is current\n")
    );
    let b2 = s.switch(&src(&selinux), &a);
    assert_eq!(b2, b, "the same image gives the same deployment id");
    s.sys(&["finalize"], &a);
    let st = s.status(&a);
    assert_eq!(verity(&st, "booted").as_deref(), Some(a.as_str()));
    assert_eq!(verity(&st, "rollback").as_deref(), Some(b.as_str()));
    assert_eq!(st["status"]["rollbackQueued"], true);
    let gc = s.sys(&["gc"], &a);
    assert!(gc.contains("1 state directories"), "{gc}");
    let text = s.sys(&["status"], &a);
    assert!(!text.contains("warning"), "{text}");

    // bootc #2422: b's manifest stream (and with it its tag's target) is
    // gone, e.g. after an interrupted switch between tags.
    let origin = std::fs::read_to_string(
        s.root
            .join("state/deploy")
            .join(&b)
            .join(format!("{b}.origin")),
    )
    .unwrap();
    let manifest = origin
        .lines()
        .find_map(|l| l.trim().strip_prefix("manifest_digest = "))
        .unwrap()
        .to_owned();
    let stream = s
        .repo()
        .join("streams")
        .join(format!("oci-manifest-{manifest}"));
    std::fs::remove_file(&stream).unwrap();
    let text = s.sys(&["status"], &a);
    assert!(
        text.starts_with(&format!("booted   {a}")) && text.contains(&format!("rollback {b}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: deployment {b}: its OCI manifest {manifest} is missing from the repository"
        )),
        "{text}"
    );
    let gc = s.sys(&["gc"], &a);
    assert!(
        gc.contains(&format!(
            "warning: deployment {b}: its OCI manifest {manifest} is missing"
        )),
        "{gc}"
    );
    // Nothing of either live deployment went.
    for id in [&a, &b] {
        assert!(s.repo().join("images").join(id).exists(), "image {id}");
        assert!(s.root.join("state/deploy").join(id).is_dir(), "state {id}");
    }
    assert_eq!(s.entries().len(), 2);
    // Switching to b's image pulls the manifest again (and stages nothing:
    // b exists); all is well again.
    let args = s.args(&["switch", &src(&selinux)], &a);
    let err = crate::boot::us_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains(&format!("gives deployment {b}, which exists already")),
        "{err}"
    );
    assert!(stream.exists(), "the manifest stream was pulled again");
    let text = s.sys(&["status"], &a);
    assert!(!text.contains("warning"), "{text}");
    let fsck = us(&["--repo", s.repo().to_str().unwrap(), "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");
}

#[test]
fn a_uki_sealed_for_v2_deploys_the_v2_image() {
    let test = "a_uki_sealed_for_v2_deploys_the_v2_image";
    if !crate::support::privileged(test) || !crate::oci_support::have_tools(test, &["objcopy"]) {
        return;
    }
    let Some(plain) = crate::debian_os::build("plain", None) else {
        return;
    };
    let rootfs = plain.join("rootfs");
    let karg = |extra: &[&str]| {
        let mut args = vec!["--no-repo", "--hash", "sha512"];
        args.extend(extra);
        args.extend(["compute-karg", rootfs.to_str().unwrap()]);
        us(&args).trim().to_owned()
    };
    let (v1_karg, v2_karg) = (karg(&[]), karg(&["--erofs-version", "2"]));
    let v1 = v1_karg.rsplit(':').next().unwrap().to_owned();
    let v2 = v2_karg.strip_prefix("composefs=").unwrap().to_owned();
    // An image sealed by an older tool for V2, then one sealed for V1.
    let (Some(old), Some(new)) = (
        crate::debian_os::build("uki", Some(&format!("{v2_karg} rw"))),
        crate::debian_os::build("uki", Some(&format!("{v1_karg} rw"))),
    ) else {
        return;
    };
    let s = System::new();
    let id = s.install(&src(&old));
    assert_eq!(id, v2, "the deployment is the image the UKI mounts");
    let meta = std::fs::read_to_string(s.repo().join("meta.json")).unwrap();
    assert!(!meta.contains("\"extra\""), "a V1-only repository: {meta}");
    assert!(s.repo().join("images").join(&v2).exists());
    assert!(
        s.esp
            .join(format!("EFI/Linux/bootc/bootc_composefs-{v2}.efi"))
            .is_file()
    );
    let st = s.status(&v2);
    assert_eq!(verity(&st, "booted").as_deref(), Some(v2.as_str()));
    assert_eq!(st["status"]["booted"]["composefs"]["bootType"], "uki");
    // Upgrading to the V1-sealed image: a new deployment, named V1.
    let staged = s.switch(&src(&new), &v2);
    assert_eq!(staged, v1);
    s.sys(&["finalize"], &v2);
    let st = s.status(&v1);
    assert_eq!(verity(&st, "booted").as_deref(), Some(v1.as_str()));
    assert_eq!(verity(&st, "rollback").as_deref(), Some(v2.as_str()));
    assert_eq!(st["status"]["rollbackQueued"], false);
    // gc keeps both images (the V2 one is not a format of the repository,
    // it is kept as the live deployment it is).
    let gc = s.sys(&["gc"], &v1);
    assert!(gc.contains("0 boot binaries, 0 state directories"), "{gc}");
    for id in [&v1, &v2] {
        assert!(s.repo().join("images").join(id).exists(), "image {id}");
        assert!(
            s.esp
                .join(format!("EFI/Linux/bootc/bootc_composefs-{id}.efi"))
                .is_file()
        );
    }
    let fsck = us(&["--repo", s.repo().to_str().unwrap(), "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");
}

#[test]
fn install_refuses_a_uki_sealed_for_another_image() {
    let test = "install_refuses_a_uki_sealed_for_another_image";
    if !crate::support::privileged(test) || !crate::oci_support::have_tools(test, &["objcopy"]) {
        return;
    }
    let wrong = "cd".repeat(64);
    let Some(bad) = crate::debian_os::build(
        "uki",
        Some(&format!("composefs.digest=v1-sha512-12:{wrong} rw")),
    ) else {
        return;
    };
    let s = System::new();
    let err = us_fails(&[
        "system",
        "install",
        "to-filesystem",
        "--allow-missing-verity",
        "--boot-dir",
        s.esp.to_str().unwrap(),
        &src(&bad),
        s.root.to_str().unwrap(),
    ]);
    assert!(
        err.contains(&format!("sealed for composefs image {wrong}")),
        "{err}"
    );
    // Nothing deployed: no state, no entries, no UKI on the ESP.
    let deploy = s.root.join("state/deploy");
    let states = std::fs::read_dir(&deploy).map(|d| d.count()).unwrap_or(0);
    assert_eq!(states, 0, "a state directory left in {}", deploy.display());
    for dir in ["loader/entries", "EFI/Linux"] {
        let n = walk_files(&s.esp.join(dir));
        assert!(n.is_empty(), "{dir}: {n:?}");
    }
}

/// Every file under `dir` (none if it does not exist).
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn upgrade_check_and_apply() {
    let test = "upgrade_check_and_apply";
    if !crate::support::privileged(test) {
        return;
    }
    let Some(plain) = crate::debian_os::build("plain", None) else {
        return;
    };
    let s = System::new();
    let layouts = tempfile::tempdir().unwrap();
    let live = layouts.path().join("os");
    let image = crate::debian_os::derive(&plain, &live, &[("usr/share/doc/cfs-v", b"1\n")]);
    let a = s.install(&image);
    let out = s.sys(&["upgrade", "--check"], &a);
    assert!(
        out.starts_with(&format!("No update: {image} is at sha256:")),
        "{out}"
    );
    // The registry (here: the layout) gets a new version of the tag.
    let next = layouts.path().join("next");
    crate::debian_os::derive(&plain, &next, &[("usr/share/doc/cfs-v", b"2\n")]);
    std::fs::remove_dir_all(&live).unwrap();
    std::fs::rename(&next, &live).unwrap();
    let out = s.sys(&["upgrade", "--check"], &a);
    assert!(
        out.starts_with(&format!("Update available: {image} is now sha256:"))
            && out.contains("(booted: sha256:"),
        "{out}"
    );
    assert!(
        !s.esp.join("loader/entries.staged").exists(),
        "--check stages nothing"
    );
    // --apply reboots once staged (a stand-in systemctl records the call).
    let bin = layouts.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = layouts.path().join("systemctl.log");
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = crate::oci_support::exec(
        std::process::Command::new(env!("CARGO_BIN_EXE_cfsctl"))
            .args(s.args(&["upgrade", "--apply"], &a))
            .env("PATH", &path),
    );
    let text = crate::oci_support::ok("cfsctl system upgrade --apply", &out);
    let b = text
        .strip_prefix("Staged ")
        .and_then(|t| t.strip_suffix(": rebooting into it\n"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert_ne!(a, b);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "reboot\n");
    let st = s.status(&a);
    assert_eq!(verity(&st, "staged").as_deref(), Some(b.as_str()));
    // --check stages nothing and takes no staging options.
    let args = s.args(&["upgrade", "--check", "--download-only"], &a);
    let err = crate::boot::us_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("cannot be used with"), "{err}");
}
