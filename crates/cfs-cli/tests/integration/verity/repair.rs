//! Importing content whose object already exists but is damaged repairs the
//! object (atomically, by renaming a verified new file over it) instead of
//! keeping the bad one: wrong bytes with or without fs-verity, the right
//! bytes without fs-verity in a secure repository, a truncated object in an
//! insecure one.

use std::path::Path;

use cfs_core::verity::{Algorithm, digest_bytes};

use super::secure_repo::{
    Secure, assert_all_objects_verified, assert_fsck_clean, cfs_ok, make_source,
};
use super::{bytes, measured, replace_file, verity_tmp};

fn object(repo: &Path, content: &[u8]) -> std::path::PathBuf {
    repo.join("objects")
        .join(digest_bytes(Algorithm::Sha512, content).object_path())
}

#[test]
fn reimport_repairs_damaged_objects_in_a_secure_repository() {
    let Some(f) = Secure::new("reimport_repairs_damaged_objects_in_a_secure_repository", 5) else {
        return;
    };
    let (repo, files) = (&f.repo, &f.files);
    let hex = f.create_image("img");
    // 0: other bytes, no verity; 3: the right bytes, no verity; 4: other
    // bytes with verity; 6: removed (simply stored again).
    replace_file(&object(repo, &files[0].1), &bytes(100, 1), None);
    replace_file(&object(repo, &files[3].1), &files[3].1, None);
    replace_file(
        &object(repo, &files[4].1),
        &bytes(4096, 2),
        Some(Algorithm::Sha512),
    );
    std::fs::remove_file(object(repo, &files[6].1)).unwrap();
    // The image object too: the right bytes without verity.
    let image = repo.join("objects").join(&hex[..2]).join(&hex[2..]);
    let image_bytes = std::fs::read(&image).unwrap();
    replace_file(&image, &image_bytes, None);

    assert_eq!(f.create_image("img"), hex);
    assert_all_objects_verified(repo);
    assert_eq!(measured(&image).unwrap().to_hex(), hex);
    assert_fsck_clean(repo);
    f.assert_mount_reads_source("img");
}

#[test]
fn reimport_repairs_visible_damage_in_an_insecure_repository() {
    let Some(tmp) = verity_tmp("reimport_repairs_visible_damage_in_an_insecure_repository") else {
        return;
    };
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let files = make_source(&src, 6);
    cfs_ok(&repo, &["init", "--insecure"]);
    cfs_ok(&repo, &["create-image", src.to_str().unwrap(), "img"]);
    // Where the filesystem has fs-verity, an insecure repository enables it too.
    assert_all_objects_verified(&repo);
    // Other bytes with verity (the measurement shows it), and a truncated
    // object without verity (the size shows it).
    replace_file(
        &object(&repo, &files[0].1),
        &bytes(5000, 3),
        Some(Algorithm::Sha512),
    );
    let c = &files[5].1;
    replace_file(&object(&repo, c), &c[..c.len() / 2], None);
    cfs_ok(&repo, &["create-image", src.to_str().unwrap(), "img"]);
    assert_all_objects_verified(&repo);
    assert_fsck_clean(&repo);
}
