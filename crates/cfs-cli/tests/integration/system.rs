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
}
