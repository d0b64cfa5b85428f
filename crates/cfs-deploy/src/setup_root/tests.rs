//! Choosing the image; the mounts themselves are tested as root by the CLI
//! integration tests (`setup_root.rs`).

use super::*;

fn repo_with(images: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("composefs");
    std::fs::create_dir_all(repo.join("images")).unwrap();
    std::fs::write(repo.join("meta.json"), "{}").unwrap();
    for i in images {
        std::fs::write(repo.join("images").join(i), "x").unwrap();
    }
    dir
}

#[test]
fn the_first_candidate_that_exists_wins() {
    let (a, b) = ("aa".repeat(64), "bb".repeat(64));
    let dir = repo_with(&[&b]);
    let repo = dir.path().join("composefs");
    // composefs.digest= comes first, but its image is missing: composefs= is used.
    let cmdline = format!("root=UUID=x composefs=?{b} composefs.digest=v1-sha512-12:{a} rw");
    let (arg, id) = pick(&cmdline, &repo).unwrap();
    assert_eq!(id, b);
    assert!(arg.insecure);
    std::fs::write(repo.join("images").join(&a), "x").unwrap();
    let (arg, id) = pick(&cmdline, &repo).unwrap();
    assert_eq!(id, a);
    assert!(!arg.insecure);
}

#[test]
fn errors_say_what_was_asked_and_what_exists() {
    let (a, b) = ("aa".repeat(64), "cd".repeat(64));
    let dir = repo_with(&[&b]);
    let repo = dir.path().join("composefs");
    let e = pick(&format!("composefs={a}"), &repo)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "composefs image {a} (from composefs={a}) not found"
        )) && e.contains("has 1 image(s): ")
            && e.contains(&b),
        "{e}"
    );
    let e = pick("root=/dev/vda2 rw", &repo).unwrap_err().to_string();
    assert!(
        e.contains("no composefs= or composefs.digest= argument"),
        "{e}"
    );
    let e = pick("composefs=xyz", &repo).unwrap_err().to_string();
    assert!(e.contains("composefs=xyz"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = pick(&format!("composefs={a}"), &empty.path().join("composefs"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no composefs repository"), "{e}");
}

#[test]
fn volatile_state_is_recognised() {
    assert!(volatile_state("ro systemd.volatile=state quiet"));
    assert!(volatile_state("systemd.volatile=overlay"));
    assert!(!volatile_state("systemd.volatile=yes"));
    assert!(!volatile_state("rw"));
}
