//! Tampering with a secure repository's objects: through a `verity=require`
//! mount a replaced object fails to read with EIO (whether the new file has
//! other bytes without verity, other bytes with verity, or the right bytes
//! without verity), untouched files still read, and `fsck` names exactly the
//! damaged objects. A replaced image object makes `mount` refuse, naming
//! the image.

use cfs_core::verity::{Algorithm, digest_bytes};

use super::secure_repo::{Secure, cfs_ok, image_hex, make_source};
use super::{EIO, bytes, read_errno, replace_file, stderr, verity_tmp};
use crate::mount::Mounted;
use crate::support::{run, tool};

#[test]
fn tampered_objects_fail_with_eio_and_fsck_names_them() {
    let Some(f) = Secure::new("tampered_objects_fail_with_eio_and_fsck_names_them", 2) else {
        return;
    };
    let (repo, mnt, files) = (&f.repo, &f.mnt, &f.files);
    f.create_image("img");
    let object = |i: usize| {
        let d = digest_bytes(Algorithm::Sha512, &files[i].1);
        (repo.join("objects").join(d.object_path()), d)
    };
    // files: 0 tool, 1 big.so, 2 small (inline), 3 a, 4 b, 5 c, 6 conf.
    let (tool_obj, tool_d) = object(0);
    let (b_obj, b_d) = object(4);
    let (c_obj, c_d) = object(5);
    let other = bytes(files[0].1.len(), 99);
    replace_file(&tool_obj, &other, None); // other bytes, no verity
    replace_file(&b_obj, &bytes(4096, 98), Some(Algorithm::Sha512)); // other bytes, verity
    replace_file(&c_obj, &files[5].1, None); // right bytes, no verity

    cfs_ok(repo, &["mount", "img", mnt.to_str().unwrap()]);
    let guard = Mounted(mnt.clone());
    for i in [0, 4, 5] {
        assert_eq!(
            read_errno(&mnt.join(&files[i].0)),
            Some(EIO),
            "{} must not be readable",
            files[i].0.display()
        );
    }
    for i in [1, 2, 3, 6] {
        assert_eq!(std::fs::read(mnt.join(&files[i].0)).unwrap(), files[i].1);
    }
    drop(guard);

    let o = run(tool("cfsctl").arg("--repo").arg(repo).arg("fsck"));
    assert_ne!(o.status.code(), Some(0), "fsck must fail");
    let report = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    for d in [&tool_d, &b_d, &c_d] {
        assert!(
            report.contains(&d.object_path()),
            "fsck must name objects/{}:\n{report}",
            d.object_path()
        );
    }
    let (_, ok_d) = object(1);
    assert!(!report.contains(&ok_d.object_path()), "{report}");
    // The verity-less right-content object is reported as missing verity,
    // the others as digest mismatches.
    assert!(report.contains("object-verity-missing"), "{report}");
    assert!(report.contains("object-digest-mismatch"), "{report}");
}

#[test]
fn tampered_image_object_refuses_the_mount() {
    let Some(tmp) = verity_tmp("tampered_image_object_refuses_the_mount") else {
        return;
    };
    let (repo, mnt) = (tmp.path().join("repo"), tmp.path().join("mnt"));
    std::fs::create_dir(&mnt).unwrap();
    let (src1, src2) = (tmp.path().join("src1"), tmp.path().join("src2"));
    make_source(&src1, 3);
    make_source(&src2, 4);
    cfs_ok(&repo, &["init"]);
    let hex1 = image_hex(&cfs_ok(
        &repo,
        &["create-image", src1.to_str().unwrap(), "one"],
    ));
    let hex2 = image_hex(&cfs_ok(
        &repo,
        &["create-image", src2.to_str().unwrap(), "two"],
    ));
    let path = |hex: &str| repo.join("objects").join(&hex[..2]).join(&hex[2..]);
    let image2 = std::fs::read(path(&hex2)).unwrap();
    let image1 = std::fs::read(path(&hex1)).unwrap();

    // Another valid image's bytes, with fs-verity: the measurement differs.
    replace_file(&path(&hex1), &image2, Some(Algorithm::Sha512));
    for name in ["one", hex1.as_str()] {
        let o = run(tool("cfsctl")
            .arg("--repo")
            .arg(&repo)
            .arg("mount")
            .arg(name)
            .arg(&mnt));
        assert_eq!(o.status.code(), Some(1), "mount {name} must fail");
        let e = stderr(&o);
        // Named by digest, opening the image measures it; named by ref, the
        // mount's own check does: either way the message says what differs.
        assert!(
            e.contains(&format!("expected sha512:{hex1}, found sha512:{hex2}")),
            "the message names both digests: {e}"
        );
        assert!(
            e.contains("fs-verity content mismatch") || e.contains("wrong fs-verity digest"),
            "{e}"
        );
        assert!(!mnt.join("usr").exists(), "nothing mounted");
    }
    // The right bytes without fs-verity: refused too (secure repository).
    replace_file(&path(&hex1), &image1, None);
    let o = run(tool("cfsctl")
        .arg("--repo")
        .arg(&repo)
        .arg("mount")
        .arg("one")
        .arg(&mnt));
    assert_eq!(
        o.status.code(),
        Some(1),
        "mount without verity on the image must fail"
    );
    let e = stderr(&o);
    assert!(
        e.contains("image has no fs-verity") || e.contains("fs-verity is not enabled"),
        "{e}"
    );
    // The intact image still mounts.
    cfs_ok(&repo, &["mount", "two", mnt.to_str().unwrap()]);
    let _g = Mounted(mnt.clone());
}
