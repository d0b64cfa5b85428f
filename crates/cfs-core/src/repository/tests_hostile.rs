//! Hostile repository layouts: directories of the repository replaced by
//! symlinks (absolute and relative) must never lead gc, fsck, prune or any
//! write outside; special files are reported, not waited on; read-only
//! opens never write; algorithm detection does not guess.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::test_util::{image_fs, init, object, stream};
use super::*;
use crate::verity::Digest;

/// Every path below `dir` with its type (and a symlink's target, a file's
/// length): what must not change outside the repository.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            let what = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                pending.push(p.clone());
                "dir".to_string()
            } else {
                format!("file {}", e.metadata().unwrap().len())
            };
            out.insert(rel, what);
        }
    }
    out
}

/// A repository with a named image, an unnamed (collectable) image, a named
/// stream, an orphan stream, garbage objects and stale temporary links.
fn populated(path: &Path) -> Repository {
    let repo = init(path, Algorithm::Sha256);
    let kept = object(&repo, &[1u8; 3000]);
    let doomed = object(&repo, &[2u8; 3000]);
    object(&repo, b"garbage");
    repo.write_image(&image_fs(&[kept]), Some("good")).unwrap();
    repo.write_image(&image_fs(&[doomed]), None).unwrap();
    stream(&repo, "named", &[kept], &[], Some("tag"));
    stream(&repo, "orphan", &[doomed], &[], None);
    repo.set_link("images/refs/nested/deep", "images/refs/good")
        .unwrap();
    std::os::unix::fs::symlink("x", path.join("images/.tmp-link-1-1")).unwrap();
    std::os::unix::fs::symlink("x", path.join("streams/refs/.tmp-link-1-2")).unwrap();
    repo
}

/// The directories a repository must own, and what a planted symlink in
/// their place may make fail.
const OWN_DIRS: &[&str] = &[
    "objects",
    "images",
    "streams",
    "images/refs",
    "streams/refs",
    "images/refs/nested",
];

#[test]
fn symlinked_directories_never_lead_outside() {
    for rel in OWN_DIRS
        .iter()
        .copied()
        .chain(["objects/XX-live", "objects/XX-dead"])
    {
        for absolute in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("repo");
            let outside = tmp.path().join("outside");
            let repo = populated(&root);
            // The `XX` of the named image (live), or of an object only
            // garbage lives in.
            let live = repo.resolve_image("good").unwrap().object_path()[..2].to_string();
            let dead = crate::verity::digest_bytes(Algorithm::Sha256, b"garbage").object_path()
                [..2]
                .to_string();
            drop(repo);
            // The real directory moves outside; a symlink takes its place.
            let rel = match rel {
                "objects/XX-live" => format!("objects/{live}"),
                "objects/XX-dead" => format!("objects/{dead}"),
                _ => rel.to_string(),
            };
            let link = root.join(&rel);
            std::fs::rename(&link, &outside).unwrap();
            let depth = rel.matches('/').count();
            let target = if absolute {
                outside.clone()
            } else {
                Path::new(&"../".repeat(depth + 1)).join("outside")
            };
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert!(link.join(".").exists(), "{rel}: the planted link resolves");
            let before = snapshot(&outside);
            let case = format!("{rel} -> {}", target.display());

            match Repository::open(&root, &OpenOptions::default()) {
                Err(e) => {
                    // Only objects/ is needed to open at all.
                    assert_eq!(rel, "objects", "{case}: {e}");
                    assert!(matches!(e, RepoError::Layout { .. }), "{case}: {e}");
                    assert!(e.to_string().contains("is a symlink"), "{case}: {e}");
                }
                Ok(repo) => {
                    let dry = repo.gc(&GcOptions {
                        dry_run: true,
                        ..GcOptions::default()
                    });
                    let gc = repo.gc(&GcOptions::default());
                    for r in [&dry, &gc] {
                        if let Err(e) = r {
                            assert!(matches!(e, RepoError::Layout { .. }), "{case}: {e}");
                        }
                    }
                    let fsck = repo.fsck(&FsckOptions::default(), None).unwrap();
                    if rel == "images/refs/nested" {
                        // Inside a refs tree a symlink is a ref: one leading
                        // out is dangling, and gc pruned it (the link itself).
                        assert!(gc.is_ok(), "{case}: {gc:?}");
                        assert!(!link.exists() && !link.is_symlink(), "{case}");
                        assert_eq!(snapshot(&outside), before, "{case}: outside changed");
                        continue;
                    }
                    assert!(!fsck.ok, "{case}: fsck must report the planted link");
                    assert!(
                        fsck.errors
                            .iter()
                            .any(|e| e.contains("a symlink") || e.contains("Symlink")),
                        "{case}: {:?}",
                        fsck.errors
                    );
                    // Writes through every kind of link and object.
                    let new = repo.ensure_object_bytes(b"new content");
                    let image = repo.write_image(&image_fs(&[]), Some("nested/other"));
                    let _ = repo.remove_link("images/refs/nested/deep");
                    let _ = repo.remove_link("streams/refs/tag");
                    let _ = repo.set_link("streams/refs/x", "streams/named");
                    let _ = repo.list_images();
                    let _ = repo.image_objects("good");
                    if rel.starts_with("objects/") {
                        // Objects under the planted XX cannot be stored or
                        // opened; the others can.
                        let _ = new;
                    } else {
                        new.unwrap();
                    }
                    if rel == "images" || rel == "images/refs" {
                        let e = image.unwrap_err();
                        assert!(matches!(e, RepoError::Layout { .. }), "{case}: {e}");
                    }
                }
            }
            assert_eq!(snapshot(&outside), before, "{case}: outside changed");
        }
    }
}

#[test]
fn special_files_in_the_repository_are_reported_not_waited_on() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = populated(tmp.path());
    let (d, _) = object(&repo, &[9u8; 5000]);
    let path = repo.abs(&paths::object_path(&d));
    std::fs::remove_file(&path).unwrap();
    let fifo = |p: &Path| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap()
    };
    fifo(&path);
    let started = Instant::now();
    let e = repo.open_object(&d).unwrap_err();
    assert!(e.to_string().contains("is a FIFO"), "{e}");
    let report = repo.fsck(&FsckOptions::default(), None).unwrap();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("not a regular file")),
        "{:?}",
        report.errors
    );
    // Storing the same content again repairs it.
    assert_eq!(
        repo.ensure_object_bytes(&[9u8; 5000]).unwrap().1,
        crate::objects::Stored::Repaired
    );
    drop(repo);
    // A FIFO as meta.json: a clear error, at once.
    std::fs::remove_file(tmp.path().join("meta.json")).unwrap();
    fifo(&tmp.path().join("meta.json"));
    let e = Repository::open(tmp.path(), &OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("is a FIFO"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn read_only_opens_never_write_and_detection_does_not_guess() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha512);
    let (d, _) = object(&repo, b"content");
    drop(repo);
    std::fs::remove_file(tmp.path().join("meta.json")).unwrap();
    let ro = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let repo = Repository::open(tmp.path(), &ro).unwrap();
    assert_eq!(repo.algorithm(), Algorithm::Sha512);
    repo.fsck(&FsckOptions::default(), None).unwrap();
    repo.gc(&GcOptions {
        dry_run: true,
        ..GcOptions::default()
    })
    .unwrap();
    drop(repo);
    assert!(!tmp.path().join("meta.json").exists());

    // One stray SHA-256-named file among SHA-512 objects: no guessing.
    let stray = Digest::from_hex_with(Algorithm::Sha256, &"ab".repeat(32)).unwrap();
    let stray_path = tmp.path().join("objects").join(stray.object_path());
    std::fs::create_dir_all(stray_path.parent().unwrap()).unwrap();
    std::fs::write(&stray_path, b"stray").unwrap();
    let e = Repository::open(tmp.path(), &ro).unwrap_err();
    assert!(
        e.to_string().contains("do not tell the digest algorithm"),
        "{e}"
    );
    // Named by the user, the algorithm decides; a contradicting one is refused.
    let named = |alg| OpenOptions {
        algorithm: Some(alg),
        ..OpenOptions::default()
    };
    let repo = Repository::open(tmp.path(), &named(Algorithm::Sha512)).unwrap();
    assert!(repo.has_object(&d).unwrap());
    assert_eq!(repo.algorithm(), Algorithm::Sha512);
    drop(repo);
    assert!(tmp.path().join("meta.json").exists());
    std::fs::remove_file(tmp.path().join("meta.json")).unwrap();
    std::fs::remove_file(&stray_path).unwrap();
    let e = Repository::open(tmp.path(), &named(Algorithm::Sha256)).unwrap_err();
    assert!(e.to_string().contains("named like SHA-512"), "{e}");
}

#[test]
fn malformed_object_directories_are_reported_and_survive_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = populated(tmp.path());
    std::fs::write(tmp.path().join("objects/zz"), b"").unwrap();
    // An `XX` name that is a file, where a directory must be.
    let free = (0..=255u8)
        .map(|b| format!("{b:02x}"))
        .find(|n| !tmp.path().join("objects").join(n).exists())
        .unwrap();
    std::fs::write(tmp.path().join("objects").join(&free), b"junk").unwrap();
    let report = repo.fsck(&FsckOptions::default(), None).unwrap();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains(&format!("objects/{free}")) && e.contains("a regular file")),
        "{:?}",
        report.errors
    );
    let gc = repo.gc(&GcOptions::default()).unwrap();
    assert!(gc.unknown_files >= 2, "{gc:?}");
    assert!(tmp.path().join("objects").join(&free).exists());
    // The stale temporary links went, the garbage too.
    assert!(gc.temp_files_removed >= 2, "{gc:?}");
    assert!(!tmp.path().join("images/.tmp-link-1-1").exists());
    assert!(gc.objects_removed >= 3, "{gc:?}");
}
