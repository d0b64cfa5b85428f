//! Repository behaviour that needs fs-verity for real: a kernel with
//! `CONFIG_FS_VERITY`, and `TMPDIR` on a filesystem with verity support (the
//! guest harness runs these; elsewhere they are skipped unless
//! `CFS_TEST_VERITY=require`).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Mutex;

use super::*;
use crate::objects::{ObjectPolicy, Stored};
use crate::verity::{Digest, digest_bytes};

/// A temporary directory where fs-verity works, or `None` (skip).
fn verity_tmp(test: &str) -> Option<tempfile::TempDir> {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    let ok = enable_verity(File::open(&probe).unwrap().as_fd(), Algorithm::Sha256).is_ok();
    std::fs::remove_file(&probe).unwrap();
    if ok {
        return Some(tmp);
    }
    assert!(
        std::env::var("CFS_TEST_VERITY").as_deref() != Ok("require"),
        "{test}: no fs-verity on {}, and CFS_TEST_VERITY=require",
        std::env::temp_dir().display()
    );
    None
}

fn secure(path: &std::path::Path) -> Repository {
    let (repo, _) = Repository::init(path, &InitOptions::default()).unwrap();
    assert!(repo.is_secure());
    repo
}

/// The repository's policy, but the first sealed file gets a writable
/// descriptor opened on it first (as a child forked at the wrong moment
/// would hold), kept open until the test ends.
struct LeakyWriter<'a> {
    repo: &'a Repository,
    leaked: Mutex<Vec<File>>,
}

impl ObjectPolicy for LeakyWriter<'_> {
    fn seal(&self, file: &File, digest: &Digest) -> std::io::Result<()> {
        let mut leaked = self.leaked.lock().unwrap();
        if leaked.is_empty() {
            let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
            leaked.push(File::options().write(true).open(proc)?);
        }
        drop(leaked);
        self.repo.finish_object(file, digest)
    }

    fn judges_existing(&self) -> bool {
        true
    }

    fn existing_is_sound(&self, file: &File, digest: &Digest, size: u64) -> std::io::Result<bool> {
        self.repo.object_is_sound(file, digest, size)
    }
}

#[test]
fn a_leaked_writer_does_not_stop_sealing() {
    let Some(tmp) = verity_tmp("a_leaked_writer_does_not_stop_sealing") else {
        return;
    };
    let repo = secure(&tmp.path().join("r"));
    // The kernel refuses while a writer exists, and finish_object says so.
    let path = tmp.path().join("held");
    std::fs::write(&path, b"content").unwrap();
    let mut writer = File::options().append(true).open(&path).unwrap();
    let ro = File::open(&path).unwrap();
    let d = digest_bytes(Algorithm::Sha512, b"content");
    let e = repo.finish_object(&ro, &d).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ExecutableFileBusy, "{e}");
    writer.write_all(b"!").unwrap();

    // Through the store, the object is sealed as a fresh copy instead.
    for (i, data) in [vec![1u8; 100_000], vec![2u8; 10]].into_iter().enumerate() {
        let leaky = LeakyWriter {
            repo: &repo,
            leaked: Mutex::new(Vec::new()),
        };
        let (digest, stored) = if i == 0 {
            repo.objects()
                .write_new(&data[..], Algorithm::Sha512, &leaky)
                .unwrap()
        } else {
            let src = tmp.path().join("src");
            std::fs::write(&src, &data).unwrap();
            let d = digest_bytes(Algorithm::Sha512, &data);
            let s = repo
                .objects()
                .copy_from(&File::open(&src).unwrap(), &d, &leaky)
                .unwrap();
            (d, s)
        };
        assert_eq!(stored, Stored::Written);
        assert_eq!(leaky.leaked.lock().unwrap().len(), 1, "a writer was held");
        let object = repo.open_object(&digest).unwrap();
        assert_eq!(measure_verity(object.as_fd()).unwrap(), digest);
        assert_eq!(repo.read_object(&digest, 1 << 20).unwrap(), data);
    }
}

#[test]
fn damaged_objects_are_repaired_on_store() {
    let Some(tmp) = verity_tmp("damaged_objects_are_repaired_on_store") else {
        return;
    };
    let root = tmp.path().join("r");
    let repo = secure(&root);
    let data = vec![3u8; 50_000];
    let (d, stored) = repo.ensure_object_bytes(&data).unwrap();
    assert_eq!(stored, Stored::Written);
    assert_eq!(repo.ensure_object_bytes(&data).unwrap().1, Stored::Existing);
    let path = root.join(paths::object_path(&d));
    // The right bytes without verity; other bytes with verity; other bytes
    // without; a symlink to the right content elsewhere.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::write(&elsewhere, &data).unwrap();
    let damage: [&dyn Fn(); 4] = [
        &|| replace(&path, &data, false),
        &|| replace(&path, &[4u8; 50_000], true),
        &|| replace(&path, &[5u8; 7], false),
        &|| {
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        },
    ];
    for (i, damage) in damage.iter().enumerate() {
        damage();
        assert!(repo.open_object(&d).is_err(), "case {i}: damage is visible");
        let stored = match i % 2 {
            0 => repo.ensure_object_bytes(&data).unwrap().1,
            _ => repo.ensure_object_from_reader(&data[..]).unwrap().1,
        };
        assert_eq!(stored, Stored::Repaired, "case {i}");
        let object = repo.open_object(&d).unwrap();
        assert_eq!(measure_verity(object.as_fd()).unwrap(), d, "case {i}");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    }
    // No temporary files are left in objects/.
    let leftovers: Vec<_> = std::fs::read_dir(root.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.len() != 2)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn replace(path: &std::path::Path, content: &[u8], verity: bool) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    if verity {
        enable_verity(File::open(&tmp).unwrap().as_fd(), Algorithm::Sha512).unwrap();
    }
    std::fs::rename(&tmp, path).unwrap();
}
