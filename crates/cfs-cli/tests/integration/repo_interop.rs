//! Optional interoperability test against a reference composefs-rs 0.9
//! `cfsctl` (not installed in CI: skipped when absent). Set
//! `CFS_REFERENCE_CFSCTL` to its path; the default is
//! `/tmp/cfsctl094/bin/cfsctl`. Built with `cargo install composefs-ctl
//! --version 0.9.4 --locked --no-default-features --features pre-6.15,oci
//! --root /tmp/cfsctl094` (the `oci` feature enables the split stream test).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::repo::{cfsctl, data, init, make_tree, ok};
use crate::support::run;

/// The reference composefs-rs 0.9 `cfsctl`, if installed (not in CI).
fn reference() -> Option<PathBuf> {
    let path = std::env::var_os("CFS_REFERENCE_CFSCTL")
        .map_or_else(|| PathBuf::from("/tmp/cfsctl094/bin/cfsctl"), PathBuf::from);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("reference cfsctl not found at {}: skipped", path.display());
        None
    }
}

#[test]
fn interop_with_reference_cfsctl() {
    let Some(reference) = reference() else {
        return;
    };
    let theirs = |repo: &Path| {
        let mut c = Command::new(&reference);
        c.arg("--repo").arg(repo).stdin(Stdio::null());
        c
    };
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, 13, true);
    std::fs::create_dir_all(tree.join("run/state")).unwrap();
    std::fs::write(tree.join("run/state/pid"), data(100, 1)).unwrap();
    std::fs::hard_link(tree.join("usr/bin/tool"), tree.join("usr/bin/tool2")).unwrap();

    // A repository made by cfs, used by the reference.
    let ours_repo = tmp.path().join("ours");
    init(&ours_repo, "fsverity-sha512-12");
    let ours_id = ok(&run(cfsctl(&ours_repo)
        .arg("create-image")
        .arg(&tree)
        .arg("img")));
    let ours_plain = ok(&run(cfsctl(&ours_repo)
        .args(["create-image", "--no-propagate-usr-to-root"])
        .arg(&tree)
        .arg("plain")));
    // composefs-rs draws its box table in pipes too; cfs prints plain
    // columns there (docs/spec-deviations.md): the cells must agree.
    assert_eq!(
        table_cells(&ok(&run(theirs(&ours_repo).arg("images")))),
        table_cells(&ok(&run(cfsctl(&ours_repo).arg("images"))))
    );
    // The /run file's object is unreferenced in both tools (stored during the scan).
    let dry = ok(&run(theirs(&ours_repo).args(["gc", "--dry-run"])));
    assert_eq!(
        in_our_words(&dry),
        ok(&run(cfsctl(&ours_repo).args(["gc", "--dry-run"])))
    );
    let fsck = ok(&run(theirs(&ours_repo).arg("fsck")));
    assert!(fsck.ends_with("status: ok\n"), "{fsck}");
    assert_eq!(
        ok(&run(theirs(&ours_repo).args(["image-objects", "img"])))
            .lines()
            .collect::<std::collections::BTreeSet<_>>(),
        ok(&run(cfsctl(&ours_repo).args(["image-objects", "img"])))
            .lines()
            .collect()
    );

    // A repository made by the reference, used by cfs.
    let their_repo = tmp.path().join("theirs");
    ok(&run(theirs(&their_repo).args(["init", "--insecure"])));
    assert_eq!(
        std::fs::read(their_repo.join("meta.json")).unwrap(),
        std::fs::read(ours_repo.join("meta.json")).unwrap()
    );
    let their_id = ok(&run(theirs(&their_repo)
        .arg("create-image")
        .arg(&tree)
        .arg("img")));
    let their_plain = ok(&run(theirs(&their_repo)
        .args(["create-image", "--no-propagate-usr-to-root"])
        .arg(&tree)
        .arg("plain")));
    assert_eq!(ours_id, their_id);
    assert_eq!(ours_plain, their_plain);
    assert_eq!(
        table_cells(&ok(&run(cfsctl(&their_repo).arg("images")))),
        table_cells(&ok(&run(theirs(&their_repo).arg("images"))))
    );
    assert_eq!(
        ok(&run(cfsctl(&their_repo).args(["gc", "--dry-run"]))),
        in_our_words(&ok(&run(theirs(&their_repo).args(["gc", "--dry-run"]))))
    );
    ok(&run(cfsctl(&their_repo).arg("fsck")));
    assert_eq!(
        ok(&run(cfsctl(&their_repo).args(["dump", "img"]))),
        ok(&run(cfsctl(&ours_repo).args(["dump", "img"])))
    );
    // compute-id agrees too.
    assert_eq!(
        ok(&run(theirs(&their_repo).arg("compute-id").arg(&tree))),
        ok(&run(cfsctl(&their_repo).arg("compute-id").arg(&tree)))
    );
    // gc by cfs, then the reference finds a consistent repository.
    ok(&run(cfsctl(&their_repo).arg("gc")));
    let fsck = ok(&run(theirs(&their_repo).arg("fsck")));
    assert!(fsck.ends_with("status: ok\n"), "{fsck}");
    // And the other way round.
    ok(&run(theirs(&ours_repo).arg("gc")));
    ok(&run(cfsctl(&ours_repo).arg("fsck")));
    ok(&run(cfsctl(&ours_repo).args(["dump", "img"])));
}

/// A split stream written by the reference (`oci import-layer`, only in
/// builds with its `oci` feature) is reassembled bit-exactly by our `cat`,
/// passes our fsck, is kept by our gc while referenced and collected once
/// its ref is gone.
#[test]
fn reference_split_streams_read_by_cfs() {
    let Some(reference) = reference() else {
        return;
    };
    let probe = run(Command::new(&reference).args(["oci", "--help"]));
    if !probe.status.success() {
        eprintln!("reference cfsctl built without `oci`: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, 9, true);
    let tar = tmp.path().join("layer.tar");
    let out = run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    assert!(out.status.success());
    let bytes = std::fs::read(&tar).unwrap();
    let diff_id = format!("sha256:{}", crate::support::sha256_file(&tar));
    let repo = tmp.path().join("repo");
    init(&repo, "fsverity-sha256-12");
    let out = Command::new(&reference)
        .arg("--repo")
        .arg(&repo)
        .args(["oci", "import-layer", &diff_id, "layer"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["refs/layer", "layer", &format!("oci-layer-{diff_id}")] {
        let out = run(cfsctl(&repo).arg("cat").arg(name));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == bytes,
            "{name}: reassembled bytes differ from the tar"
        );
    }
    assert!(ok(&run(cfsctl(&repo).arg("fsck"))).ends_with("status: ok\n"));
    assert_eq!(
        ok(&run(cfsctl(&repo).arg("gc"))),
        "Objects: 0 removed (0 B)\n"
    );
    std::fs::remove_file(repo.join("streams/refs/layer")).unwrap();
    let gc = ok(&run(cfsctl(&repo).arg("gc")));
    assert!(gc.contains("Pruned symlinks: 0 images, 1 streams"), "{gc}");
    let fsck = ok(&run(Command::new(&reference)
        .arg("--repo")
        .arg(&repo)
        .arg("fsck")));
    assert!(fsck.ends_with("status: ok\n"), "{fsck}");
}

/// composefs-rs's `gc --dry-run` report as cfs words it (the same counts;
/// sizes in binary units, the dry run in the conditional; see
/// docs/spec-deviations.md).
fn in_our_words(theirs: &str) -> String {
    theirs
        .lines()
        .map(|line| {
            if let Some(rest) = line.strip_prefix("Objects: ") {
                let (count, rest) = rest.split_once(" removed (").unwrap();
                let bytes: u64 = rest.strip_suffix(" bytes)").unwrap().parse().unwrap();
                format!(
                    "Objects: {count} would be removed ({})\n",
                    indicatif::HumanBytes(bytes)
                )
            } else if let Some(rest) = line.strip_prefix("Pruned symlinks: ") {
                format!("Symlinks that would be pruned: {rest}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

/// The cells of a table, box-drawn or plain (rule lines skipped).
fn table_cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with(['┌', '╞', '├', '└']))
        .map(|l| {
            let l = l.trim_matches('│');
            if l.contains('┆') {
                l.split('┆').map(|c| c.trim().to_owned()).collect()
            } else {
                l.split_whitespace().map(str::to_owned).collect()
            }
        })
        .collect()
}
