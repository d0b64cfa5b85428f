//! `mount.composefs` with a kernel that has fs-verity: `digest=` with the
//! image's right digest mounts (and implies `verity=require`), a wrong one
//! fails with C's message and exit status 1, an image without fs-verity
//! fails likewise; `-o verity` with an object lacking fs-verity gives EIO
//! for that one file only.

use std::path::{Path, PathBuf};
use std::process::Output;

use cfs_core::verity::Algorithm;

use super::secure_repo::{mount_line, requires_verity};
use super::{EIO, enable, measured, read_errno, replace_file, stderr, verity_tmp};
use crate::mount::{Mounted, build_source, walk};
use crate::support::{run, tool};

struct Fixture {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    store: PathBuf,
    image: PathBuf,
    mnt: PathBuf,
}

fn fixture(test: &str) -> Option<Fixture> {
    let tmp = verity_tmp(test)?;
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build_source(&src);
    let (store, image, mnt) = (
        tmp.path().join("store"),
        tmp.path().join("image.cfs"),
        tmp.path().join("mnt"),
    );
    std::fs::create_dir(&mnt).unwrap();
    let o = run(tool("mkcomposefs")
        .arg(format!("--digest-store={}", store.display()))
        .arg(&src)
        .arg(&image));
    assert!(o.status.success(), "{}", stderr(&o));
    Some(Fixture {
        _tmp: tmp,
        src,
        store,
        image,
        mnt,
    })
}

impl Fixture {
    fn mount(&self, image: &Path, options: &str) -> Output {
        run(tool("mount.composefs")
            .arg("-o")
            .arg(options)
            .arg(image)
            .arg(&self.mnt))
    }

    /// Regular files of the source with more than 64 bytes (served from objects).
    fn external_files(&self) -> Vec<PathBuf> {
        walk(&self.src)
            .into_iter()
            .filter(|(_, md)| md.is_file() && md.len() > 64)
            .map(|(p, _)| p)
            .collect()
    }
}

#[test]
fn mount_composefs_digest_option() {
    let Some(f) = fixture("mount_composefs_digest_option") else {
        return;
    };
    // mkcomposefs enables fs-verity on the objects it stores, where it can.
    for (p, md) in walk(&f.store) {
        if md.is_file() {
            measured(&f.store.join(&p)).expect("objects get fs-verity");
        }
    }
    let unverified = f.image.with_extension("plain");
    std::fs::copy(&f.image, &unverified).unwrap();
    enable(&f.image, Algorithm::Sha256);
    let digest = measured(&f.image).unwrap().to_hex();
    let base = format!("basedir={}", f.store.display());

    let o = f.mount(&f.image, &format!("{base},digest={digest}"));
    assert!(o.status.success(), "{}", stderr(&o));
    let guard = Mounted(f.mnt.clone());
    assert!(requires_verity(&f.mnt), "{}", mount_line(&f.mnt));
    for p in f.external_files() {
        assert_eq!(
            std::fs::read(f.mnt.join(&p)).unwrap(),
            std::fs::read(f.src.join(&p)).unwrap(),
            "{}",
            p.display()
        );
    }
    drop(guard);

    let wrong = format!(
        "{}{}",
        &digest[..63],
        if digest.ends_with('0') { '1' } else { '0' }
    );
    let o = f.mount(&f.image, &format!("{base},digest={wrong}"));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "mount.composefs: Failed to mount composefs {}: Image has wrong fs-verity\n\n",
            f.image.display()
        )
    );
    assert!(!f.mnt.join("dir").exists(), "nothing mounted");

    let o = f.mount(&unverified, &format!("{base},digest={digest}"));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "mount.composefs: Failed to mount composefs {}: Image has no fs-verity\n\n",
            unverified.display()
        )
    );
}

#[test]
fn verity_option_fails_only_the_object_without_verity() {
    let Some(f) = fixture("verity_option_fails_only_the_object_without_verity") else {
        return;
    };
    let files = f.external_files();
    assert!(files.len() >= 2, "{files:?}");
    let victim = &files[0];
    let hex = String::from_utf8(
        run(tool("composefs-info")
            .arg("measure-file")
            .arg(f.src.join(victim)))
        .stdout,
    )
    .unwrap();
    let object = f.store.join(&hex.trim()[..2]).join(&hex.trim()[2..]);
    // The same bytes, but without fs-verity.
    replace_file(&object, &std::fs::read(f.src.join(victim)).unwrap(), None);
    assert!(measured(&object).unwrap_err().is_missing());

    for option in ["verity", "tryverity"] {
        let o = f.mount(&f.image, &format!("basedir={},{option}", f.store.display()));
        assert!(o.status.success(), "{option}: {}", stderr(&o));
        let _guard = Mounted(f.mnt.clone());
        assert_eq!(read_errno(&f.mnt.join(victim)), Some(EIO), "{option}");
        for p in &files[1..] {
            assert_eq!(
                std::fs::read(f.mnt.join(p)).unwrap(),
                std::fs::read(f.src.join(p)).unwrap(),
                "{option}: {}",
                p.display()
            );
        }
    }
    // Without verity the copy reads fine.
    let o = f.mount(&f.image, &format!("basedir={}", f.store.display()));
    assert!(o.status.success(), "{}", stderr(&o));
    let _guard = Mounted(f.mnt.clone());
    assert_eq!(
        std::fs::read(f.mnt.join(victim)).unwrap(),
        std::fs::read(f.src.join(victim)).unwrap()
    );
}
