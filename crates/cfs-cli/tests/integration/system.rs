//! `cfsctl system status|rollback` on a physical-root directory (the booted
//! deployment simulated with `--booted`).

use std::path::Path;

use crate::boot::us;

fn deployment(root: &Path, esp: &Path, id: &str, version: &str, prio: u8) {
    let state = root.join("state/deploy").join(id);
    std::fs::create_dir_all(state.join("etc")).unwrap();
    std::fs::write(
        state.join(format!("{id}.origin")),
        format!(
            "[origin]\ncontainer-image-reference = ostree-unverified-image:oci:/srv/os:{version}\n\n[boot]\nboot_type = bls\ndigest = 00\n\n[image]\nmanifest_digest = sha256:11\n"
        ),
    )
    .unwrap();
    let entries = esp.join("loader/entries");
    std::fs::create_dir_all(&entries).unwrap();
    std::fs::write(
        entries.join(format!("bootc_debian-{version}-{prio}.conf")),
        format!(
            "title Debian\nversion {version}\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\ninitrd /EFI/Linux/bootc_composefs-{id}/initrd\noptions rw composefs.digest=v1-sha512-12:{id}\nsort-key bootc-debian-{}\n",
            1 - prio
        ),
    )
    .unwrap();
}

#[test]
fn status_and_rollback_on_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, esp, run) = (
        tmp.path().join("root"),
        tmp.path().join("esp"),
        tmp.path().join("run"),
    );
    let (a, b) = ("a".repeat(128), "b".repeat(128));
    deployment(&root, &esp, &a, "12", 1);
    deployment(&root, &esp, &b, "11", 0);
    std::fs::write(esp.join("loader/entries/memtest.conf"), "not ours\n").unwrap();
    let args = |cmd: &str, json: bool| -> Vec<String> {
        let mut v: Vec<String> = ["system", cmd, "--root"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(root.display().to_string());
        v.extend(["--boot-dir".into(), esp.display().to_string()]);
        v.extend(["--run-dir".into(), run.display().to_string()]);
        if cmd == "status" {
            v.extend(["--booted".into(), a.clone()]);
        }
        if json {
            v.push("--json".into());
        }
        v
    };
    let run_us = |v: Vec<String>| us(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let text = run_us(args("status", false));
    assert_eq!(
        text,
        format!("booted   {a}  oci:/srv/os:12\nrollback {b}  oci:/srv/os:11\n"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run_us(args("status", true))).unwrap();
    assert_eq!(json["status"]["booted"]["composefs"]["verity"], a.as_str());
    assert_eq!(
        json["status"]["rollback"]["composefs"]["verity"],
        b.as_str()
    );
    assert_eq!(json["status"]["rollbackQueued"], false);

    assert_eq!(run_us(args("rollback", false)), format!("Next boot: {b}\n"));
    let json: serde_json::Value = serde_json::from_str(&run_us(args("status", true))).unwrap();
    assert_eq!(json["status"]["rollbackQueued"], true);
    assert_eq!(json["spec"]["bootOrder"], "rollback");
    assert!(esp.join("loader/entries/memtest.conf").exists());
    assert_eq!(run_us(args("rollback", false)), format!("Next boot: {a}\n"));
    let json: serde_json::Value = serde_json::from_str(&run_us(args("status", true))).unwrap();
    assert_eq!(json["status"]["rollbackQueued"], false);

    // Kernel arguments, pinning, deletion.
    let with = |mut v: Vec<String>, extra: &[&str]| {
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let out = run_us(with(
        args("kargs", false),
        &["--append", "console=ttyS0", "--delete", "rw"],
    ));
    assert_eq!(
        out,
        format!("composefs.digest=v1-sha512-12:{a} console=ttyS0\n")
    );
    assert_eq!(run_us(args("kargs", false)), out);
    assert_eq!(
        run_us(with(args("pin", false), &[&b])),
        format!("Pinned {b}\n")
    );
    let json: serde_json::Value = serde_json::from_str(&run_us(args("status", true))).unwrap();
    assert_eq!(json["status"]["rollback"]["pinned"], true);
    let mut del = with(args("delete-deployment", false), &[&a]);
    del.extend(["--booted".to_string(), a.clone()]);
    let refused = crate::boot::us_fails(&del.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(refused.contains("booted deployment"), "{refused}");
    let mut del = with(args("delete-deployment", false), &[&b]);
    del.extend(["--booted".to_string(), a.clone()]);
    assert_eq!(run_us(del), format!("Deleted {b}\n"));
    let text = run_us(args("status", false));
    assert_eq!(text, format!("booted   {a}  oci:/srv/os:12\n"), "{text}");
    assert!(!root.join("state/deploy").join(&b).exists());
}

#[test]
fn install_a_debian_image_to_a_filesystem() {
    if !crate::support::privileged("install_a_debian_image_to_a_filesystem") {
        return;
    }
    let Some(os) = crate::debian_os::build("plain", None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (root, esp) = (tmp.path().join("root"), tmp.path().join("esp"));
    std::fs::create_dir_all(&root).unwrap();
    let image = format!("oci:{}:latest", os.join("oci").display());
    let out = us(&[
        "system",
        "install",
        "to-filesystem",
        "--allow-missing-verity",
        "--boot-dir",
        esp.to_str().unwrap(),
        "--root-karg",
        "root=LABEL=root",
        "--karg",
        "console=ttyS0",
        &image,
        root.to_str().unwrap(),
    ]);
    let id = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("deployment "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_owned();
    assert!(out.contains("boot type  bls"), "{out}");
    // The deployment id is the V1 boot image, as compute-karg gives it.
    let karg = us(&[
        "--no-repo",
        "--hash",
        "sha512",
        "compute-karg",
        os.join("rootfs").to_str().unwrap(),
    ]);
    assert_eq!(karg.trim(), format!("composefs.digest=v1-sha512-12:{id}"));
    // Layout: repository, state, shared var, origin, kernel, entry, systemd-boot.
    assert!(root.join("composefs/meta.json").is_file());
    let state = root.join("state/deploy").join(&id);
    assert_eq!(
        std::fs::read_link(state.join("var")).unwrap(),
        Path::new("../../os/default/var")
    );
    assert!(state.join("etc/passwd").is_file());
    assert!(root.join("state/os/default/var/lib").is_dir());
    let origin = std::fs::read_to_string(state.join(format!("{id}.origin"))).unwrap();
    assert!(
        origin.contains(&format!(
            "container-image-reference = ostree-unverified-image:{image}"
        )),
        "{origin}"
    );
    assert!(origin.contains("boot_type = bls"), "{origin}");
    let kdir = esp.join("EFI/Linux").join(format!("bootc_composefs-{id}"));
    let kver = std::fs::read_to_string(os.join("kver")).unwrap();
    assert_eq!(
        std::fs::read(kdir.join("vmlinuz")).unwrap(),
        std::fs::read(
            os.join("rootfs/usr/lib/modules")
                .join(kver.trim())
                .join("vmlinuz")
        )
        .unwrap()
    );
    assert!(esp.join("EFI/BOOT/BOOTX64.EFI").is_file());
    assert!(esp.join("EFI/systemd/systemd-bootx64.efi").is_file());
    let entry = std::fs::read_to_string(esp.join("loader/entries/bootc_debian-12-1.conf")).unwrap();
    // `?` (verity optional at boot) exactly when the repository is insecure.
    let secure = std::process::Command::new("fsverity")
        .arg("measure")
        .arg(root.join("composefs/meta.json"))
        .output()
        .is_ok_and(|o| o.status.success());
    let q = if secure { "" } else { "?" };
    assert!(
        entry.contains(&format!(
            "options root=LABEL=root rw composefs.digest={q}v1-sha512-12:{id} console=ttyS0\n"
        )),
        "{entry}"
    );
    assert!(entry.contains("sort-key bootc-debian-0"), "{entry}");
    // Status reads it back; gc finds nothing to remove; one entry: no rollback.
    let status = us(&[
        "system",
        "status",
        "--root",
        root.to_str().unwrap(),
        "--boot-dir",
        esp.to_str().unwrap(),
        "--booted",
        &id,
    ]);
    assert!(
        status.starts_with(&format!("booted   {id}  {image}")),
        "{status}"
    );
    let gc = us(&[
        "system",
        "gc",
        "--root",
        root.to_str().unwrap(),
        "--boot-dir",
        esp.to_str().unwrap(),
        "--booted",
        &id,
    ]);
    assert!(
        gc.contains("0 boot binaries, 0 state directories, ") && !gc.contains("removed tag"),
        "{gc}"
    );
    let fsck = us(&["--repo", root.join("composefs").to_str().unwrap(), "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");
}

#[test]
fn switch_finalize_and_rollback_keep_local_etc_changes() {
    if !crate::support::privileged("switch_finalize_and_rollback_keep_local_etc_changes") {
        return;
    }
    let (Some(v1), Some(v2)) = (
        crate::debian_os::build("plain", None),
        crate::debian_os::build("selinux", None),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (root, esp, run) = (
        tmp.path().join("root"),
        tmp.path().join("esp"),
        tmp.path().join("run"),
    );
    std::fs::create_dir_all(&root).unwrap();
    let src = |os: &Path| format!("oci:{}:latest", os.join("oci").display());
    let (r, e, rn) = (
        root.to_str().unwrap(),
        esp.to_str().unwrap(),
        run.to_str().unwrap(),
    );
    let out = us(&[
        "system",
        "install",
        "to-filesystem",
        "--allow-missing-verity",
        "--boot-dir",
        e,
        &src(&v1),
        r,
    ]);
    let a = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("deployment "))
        .unwrap()
        .trim()
        .to_owned();
    let sys = |cmd: &[&str], booted: &str| -> String {
        let mut v = vec!["system"];
        v.extend(cmd);
        v.extend([
            "--root",
            r,
            "--boot-dir",
            e,
            "--run-dir",
            rn,
            "--booted",
            booted,
        ]);
        us(&v)
    };
    // The same image again: nothing to stage.
    assert_eq!(
        sys(&["upgrade"], &a),
        format!("No changes: deployment {a} is current\n")
    );
    // A local change on the booted deployment's /etc.
    let etc_a = root.join("state/deploy").join(&a).join("etc");
    std::fs::write(etc_a.join("hostname"), "edited-locally\n").unwrap();
    std::fs::write(etc_a.join("local-only.conf"), "mine\n").unwrap();
    let staged = sys(&["switch", &src(&v2), "--tries", "3"], &a);
    let b = staged
        .trim()
        .strip_prefix("Staged ")
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(a, b);
    let status: serde_json::Value = serde_json::from_str(&sys(&["status", "--json"], &a)).unwrap();
    assert_eq!(
        status["status"]["staged"]["composefs"]["verity"],
        b.as_str()
    );
    assert_eq!(
        status["status"]["booted"]["composefs"]["verity"],
        a.as_str()
    );
    assert!(esp.join("loader/entries.staged").is_dir());
    assert_eq!(
        sys(&["finalize"], &a),
        format!("Finalized {b}: the next boot starts it\n")
    );
    assert!(!esp.join("loader/entries.staged").exists());
    assert_eq!(sys(&["finalize"], &a), "Nothing to finalize\n");
    // The merged /etc of the new deployment keeps the local changes.
    let etc_b = root.join("state/deploy").join(&b).join("etc");
    assert_eq!(
        std::fs::read_to_string(etc_b.join("hostname")).unwrap(),
        "edited-locally\n"
    );
    assert_eq!(
        std::fs::read_to_string(etc_b.join("local-only.conf")).unwrap(),
        "mine\n"
    );
    assert!(
        etc_b.join("selinux/config").is_file(),
        "the new image's own /etc is there"
    );
    // Boot counting: the new entry has 3 tries until it is marked good.
    assert!(
        esp.join("loader/entries/bootc_debian-12-1+3.conf")
            .is_file()
    );
    let text = sys(&["status"], &b);
    assert!(text.contains("(boot tries left 3, failed 0)"), "{text}");
    assert_eq!(
        sys(&["mark-good"], &b),
        "Marked good: bootc_debian-12-1.conf\n"
    );
    assert_eq!(
        sys(&["mark-good"], &b),
        "Nothing to mark: the entry has no boot counter\n"
    );
    // "Reboot" into b: a is the rollback; rollback makes a the default again.
    let text = sys(&["status"], &b);
    assert!(
        text.starts_with(&format!("booted   {b}")) && text.contains(&format!("rollback {a}")),
        "{text}"
    );
    assert_eq!(sys(&["rollback"], &b), format!("Next boot: {a}\n"));
    let status: serde_json::Value = serde_json::from_str(&sys(&["status", "--json"], &b)).unwrap();
    assert_eq!(status["status"]["rollbackQueued"], true);
    // Both deployments are live: gc keeps their binaries, states and tags
    // (only the streams superseded when boot images were named go).
    let gc = sys(&["gc"], &b);
    assert!(
        gc.contains("0 boot binaries, 0 state directories, ") && !gc.contains("removed tag"),
        "{gc}"
    );
    // Delete a (the queued default: the default becomes b again), then gc
    // drops a's tag and its objects; the repository stays consistent.
    assert_eq!(
        sys(&["delete-deployment", &a], &b),
        format!("Deleted {a}\n")
    );
    let gc = sys(&["gc"], &b);
    assert!(gc.contains("removed tag localhost/bootc-sha256:"), "{gc}");
    assert!(!gc.contains(" 0 objects"), "{gc}");
    let text = sys(&["status"], &b);
    assert_eq!(text.lines().count(), 1, "{text}");
    let repo = root.join("composefs");
    let fsck = us(&["--repo", repo.to_str().unwrap(), "fsck"]);
    assert!(fsck.contains("status: ok"), "{fsck}");
    let images = us(&["--repo", repo.to_str().unwrap(), "oci", "images"]);
    assert_eq!(
        images
            .lines()
            .filter(|l| l.contains("localhost/bootc-"))
            .count(),
        1,
        "{images}"
    );
}

#[test]
fn install_to_disk_and_read_it_back() {
    if !crate::support::privileged("install_to_disk_and_read_it_back")
        || !crate::oci_support::have_tools(
            "install_to_disk_and_read_it_back",
            &["sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "losetup"],
        )
    {
        return;
    }
    let Some(os) = crate::debian_os::build("plain", None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk.raw");
    let image = format!("oci:{}:latest", os.join("oci").display());
    let out = us(&[
        "system",
        "install",
        "to-disk",
        "--size",
        "3G",
        "--allow-missing-verity",
        &image,
        disk.to_str().unwrap(),
    ]);
    let id = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("deployment "))
        .unwrap()
        .trim()
        .to_owned();
    // Partition table: a 1 GiB ESP and an x86-64 root.
    let json: serde_json::Value = serde_json::from_slice(
        &std::process::Command::new("sfdisk")
            .arg("--json")
            .arg(&disk)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let parts = json["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(json["partitiontable"]["label"], "gpt");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(parts[0]["size"].as_u64().unwrap() * 512, 1 << 30);
    assert_eq!(parts[1]["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    let (esp_off, root_off, root_size) = (
        parts[0]["start"].as_u64().unwrap() * 512,
        parts[1]["start"].as_u64().unwrap() * 512,
        parts[1]["size"].as_u64().unwrap() * 512,
    );
    // The ESP, read with mtools.
    let esp = tmp.path().join("esp");
    std::fs::create_dir(&esp).unwrap();
    let fat = format!("{}@@{esp_off}", disk.display());
    for dir in ["::/loader", "::/EFI"] {
        let st = std::process::Command::new("mcopy")
            .args(["-s", "-n", "-i", &fat, dir])
            .arg(&esp)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mdir = std::process::Command::new("mdir")
        .args(["-i", &fat, "-/", "-b", "::/"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&mdir.stdout);
    for want in [
        "::/loader/entries/bootc_debian-12-1.conf".to_owned(),
        "::/loader/loader.conf".to_owned(),
        "::/EFI/BOOT/BOOTX64.EFI".to_owned(),
        "::/EFI/systemd/systemd-bootx64.efi".to_owned(),
        format!("::/EFI/Linux/bootc_composefs-{id}/vmlinuz"),
        format!("::/EFI/Linux/bootc_composefs-{id}/initrd"),
    ] {
        assert!(
            listing.lines().any(|l| l.eq_ignore_ascii_case(&want)),
            "{want} not on the ESP:\n{listing}"
        );
    }
    let entry = std::fs::read_to_string(esp.join("loader/entries/bootc_debian-12-1.conf")).unwrap();
    assert!(entry.contains("options root=UUID="), "{entry}");
    assert!(esp.join("EFI/BOOT/BOOTX64.EFI").is_file());
    assert!(
        esp.join(format!("EFI/Linux/bootc_composefs-{id}/vmlinuz"))
            .is_file()
    );
    // The root partition, mounted: status reads the deployment back.
    let dev = String::from_utf8(
        std::process::Command::new("losetup")
            .args([
                "--find",
                "--show",
                "--offset",
                &root_off.to_string(),
                "--sizelimit",
                &root_size.to_string(),
            ])
            .arg(&disk)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let dev = dev.trim().to_owned();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(
        std::process::Command::new("mount")
            .args(["-o", "ro", &dev])
            .arg(&mnt)
            .status()
            .unwrap()
            .success()
    );
    // The root filesystem: ext4 with the verity feature; state/ as the spec has it.
    let features = std::process::Command::new("dumpe2fs")
        .args(["-h", &dev])
        .output()
        .unwrap();
    let features = String::from_utf8_lossy(&features.stdout);
    let on_root = |p: &str| mnt.join(p);
    let state = on_root(&format!("state/deploy/{id}"));
    let layout_ok = [
        features
            .lines()
            .any(|l| l.starts_with("Filesystem features:") && l.contains(" verity")),
        on_root("composefs/meta.json").is_file(),
        on_root(&format!("composefs/images/{id}")).exists(),
        state.join(format!("{id}.origin")).is_file(),
        state.join("etc/passwd").is_file(),
        std::fs::read_link(state.join("var")).ok().as_deref()
            == Some(Path::new("../../os/default/var")),
        on_root("state/os/default/var").is_dir(),
    ];
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cfsctl"))
        .args(["system", "status", "--root"])
        .arg(&mnt)
        .arg("--boot-dir")
        .arg(&esp)
        .args(["--booted", &id])
        .output()
        .unwrap();
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    let _ = std::process::Command::new("losetup")
        .args(["-d", &dev])
        .status();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.starts_with(&format!("booted   {id}  {image}")),
        "{text}"
    );
    assert_eq!(
        layout_ok, [true; 7],
        "features, meta, image, origin, etc, var link, shared var\n{features}"
    );
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn install_without_systemd_boot_and_kargs_d() {
    use crate::oci_support::{Tar, plain, write_layout};
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Tar::default();
    for d in [
        "usr/",
        "usr/lib/",
        "usr/lib/modules/",
        "usr/lib/modules/6.1.0/",
        "usr/lib/bootc/",
        "usr/lib/bootc/kargs.d/",
        "etc/",
        "boot/",
        "sysroot/",
    ] {
        t.dir(d);
    }
    t.file("usr/lib/modules/6.1.0/vmlinuz", &[b'K'; 1000]);
    t.file("usr/lib/modules/6.1.0/initramfs.img", &[b'I'; 1000]);
    t.file("usr/lib/os-release", b"ID=mini\nVERSION_ID=1\n");
    t.file(
        "usr/lib/bootc/kargs.d/20-console.toml",
        b"kargs = [\"console=ttyS0,115200\", \"quiet\"]\n",
    );
    t.file(
        "usr/lib/bootc/kargs.d/10-first.toml",
        b"# first by name\nkargs = [\"first=1\"]\n",
    );
    t.file(
        "usr/lib/bootc/kargs.d/30-other-arch.toml",
        b"kargs = [\"never\"]\nmatch-architectures = [\"s390x\"]\n",
    );
    t.file("etc/hostname", b"mini\n");
    let layout = tmp.path().join("os");
    write_layout(&layout, "latest", &[plain(t.finish())]);
    let image = format!("oci:{}:latest", layout.display());
    let (root, esp) = (tmp.path().join("root"), tmp.path().join("esp"));
    std::fs::create_dir_all(&root).unwrap();
    let install = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<&str> = vec![
            "system",
            "install",
            "to-filesystem",
            "--allow-missing-verity",
            "--boot-dir",
            esp.to_str().unwrap(),
            "--karg",
            "last=2",
        ];
        v.extend(extra);
        v.extend([image.as_str(), root.to_str().unwrap()]);
        v.into_iter().map(str::to_owned).collect()
    };
    let err = crate::boot::us_fails(&strs(&install(&[])));
    assert!(
        err.contains("the image has no systemd-boot") && err.contains("--bootloader none"),
        "{err}"
    );
    let states = std::fs::read_dir(root.join("state/deploy")).map_or(0, |d| d.count());
    assert_eq!(states, 0, "a refused install leaves no deployment behind");
    let out = us(&strs(&install(&["--bootloader", "none"])));
    let id = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("deployment "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_owned();
    assert!(!esp.join("EFI/BOOT").exists(), "no bootloader installed");
    let entry = std::fs::read_to_string(esp.join("loader/entries/bootc_mini-1-1.conf")).unwrap();
    let options = entry
        .lines()
        .find_map(|l| l.strip_prefix("options "))
        .unwrap();
    let words: Vec<&str> = options.split(' ').collect();
    let pos = |w: &str| words.iter().position(|x| *x == w);
    assert!(words.iter().any(|w| w.ends_with(&id)), "{options}");
    assert!(!words.contains(&"never"), "{options}");
    assert!(
        pos("first=1") < pos("console=ttyS0,115200")
            && pos("console=ttyS0,115200") < pos("quiet")
            && pos("quiet") < pos("last=2")
            && pos("first=1").is_some(),
        "kargs.d in file-name order, then --karg: {options}"
    );
}
