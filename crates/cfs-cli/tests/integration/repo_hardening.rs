//! The repository hardening seen from the command line: read-only commands
//! never write, a planted symlink directory is refused with a clear error
//! and nothing outside changes, a FIFO in the repository is reported at
//! once.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::repo::{cfsctl, ok};
use crate::support::run;

fn repo_with_image(tmp: &Path) -> std::path::PathBuf {
    let repo = tmp.join("repo");
    let tree = tmp.join("tree");
    std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
    std::fs::write(tree.join("usr/lib/data"), vec![7u8; 20_000]).unwrap();
    ok(&run(cfsctl(&repo).args(["init", "--insecure"])));
    ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("img")));
    repo
}

#[test]
fn read_only_commands_never_upgrade_an_old_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_image(tmp.path());
    std::fs::remove_file(repo.join("meta.json")).unwrap();
    for args in [
        &["images"][..],
        &["images", "--json"],
        &["dump", "img"],
        &["image-objects", "img"],
        &["fsck"],
        &["gc", "--dry-run"],
        &["oci", "images"],
    ] {
        let out = run(cfsctl(&repo).args(args));
        // fsck reports the missing meta.json; the others succeed.
        if args != ["fsck"] {
            ok(&out);
        }
        assert!(!repo.join("meta.json").exists(), "{args:?} wrote meta.json");
    }
    // A writing command upgrades, as composefs-rs does.
    ok(&run(cfsctl(&repo).arg("gc")));
    assert!(repo.join("meta.json").is_file());
}

#[test]
fn planted_symlink_directories_are_refused_and_nothing_outside_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_image(tmp.path());
    // images/ moved outside, a symlink in its place; the outside copy has
    // an unnamed image link gc would prune if it followed the symlink.
    let outside = tmp.path().join("outside");
    std::fs::rename(repo.join("images"), &outside).unwrap();
    std::fs::remove_file(outside.join("refs/img")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("images")).unwrap();
    let before: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let out = run(cfsctl(&repo).arg("gc"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("images: is a symlink, expected a directory of the repository"),
        "{err}"
    );
    let after: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    let out = run(cfsctl(&repo).arg("fsck"));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unexpected-file-type: images"), "{text}");
}

#[test]
fn a_fifo_in_the_repository_is_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_image(tmp.path());
    let objects = ok(&run(cfsctl(&repo).args(["image-objects", "img"])));
    let hex = objects.lines().next().unwrap().rsplit(':').next().unwrap();
    let path = repo.join("objects").join(&hex[..2]).join(&hex[2..]);
    crate::support::replace_with_fifo(&path);
    let started = Instant::now();
    let out = run(cfsctl(&repo).arg("fsck"));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not a regular file (Fifo)") || text.contains("is a FIFO"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
