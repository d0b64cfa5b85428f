//! Tests that need fs-verity for real: a kernel with `CONFIG_FS_VERITY`,
//! root, and a `TMPDIR` on a filesystem with verity support (ext4 made with
//! `-O verity`). They decide from what the machine offers: elsewhere they
//! are skipped, unless `CFS_TEST_VERITY=require`, which turns a missing
//! capability into a failure. The guest harness (`cfs-vmtest`'s
//! `guest_verity_and_core`) runs them with `CFS_TEST_VERITY=require` on a
//! Debian 6.12 kernel, with `CFS_TEST_NOVERITY_DIR` naming an ext4 mount
//! without the `verity` feature.

mod drop_in;
mod enable;
mod measure;
mod repair;
mod secure_repo;
mod tamper;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Output;

use cfs_core::verity::{Algorithm, Digest, enable_verity, measure_verity};

/// A temporary directory on a filesystem where fs-verity works, or `None`
/// (skip) when the machine cannot provide one.
pub(crate) fn verity_tmp(test: &str) -> Option<tempfile::TempDir> {
    let require = std::env::var("CFS_TEST_VERITY").as_deref() == Ok("require");
    let skip = |why: &str| {
        assert!(!require, "{test}: {why}, and CFS_TEST_VERITY=require");
        eprintln!("{test}: skipped ({why}; set CFS_TEST_VERITY=require to fail instead)");
        None
    };
    if !rustix::process::geteuid().is_root() {
        return skip("needs root");
    }
    let tmp = tempfile::tempdir().unwrap();
    if !supports_verity(tmp.path()) {
        return skip(&format!(
            "{} has no fs-verity support",
            std::env::temp_dir().display()
        ));
    }
    Some(tmp)
}

/// True if a file created in `dir` can get fs-verity enabled.
pub(crate) fn supports_verity(dir: &Path) -> bool {
    let probe = dir.join(".verity-probe");
    std::fs::write(&probe, b"probe").unwrap();
    let ok = enable_verity(File::open(&probe).unwrap().as_fd(), Algorithm::Sha256).is_ok();
    std::fs::remove_file(&probe).unwrap();
    ok
}

/// A directory on a filesystem without fs-verity support:
/// `$CFS_TEST_NOVERITY_DIR` (the guest's ext4 without `-O verity`), else a
/// tmpfs mounted for the test (unmounted when the guard drops).
pub(crate) struct NoVerityDir {
    pub(crate) path: PathBuf,
    _tmp: tempfile::TempDir,
    mounted: bool,
}

impl NoVerityDir {
    pub(crate) fn new() -> NoVerityDir {
        if let Some(base) = std::env::var_os("CFS_TEST_NOVERITY_DIR") {
            let tmp = tempfile::tempdir_in(base).unwrap();
            assert!(
                !supports_verity(tmp.path()),
                "CFS_TEST_NOVERITY_DIR supports fs-verity"
            );
            return NoVerityDir {
                path: tmp.path().to_path_buf(),
                _tmp: tmp,
                mounted: false,
            };
        }
        let tmp = tempfile::tempdir().unwrap();
        rustix::mount::mount(
            "tmpfs",
            tmp.path(),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        NoVerityDir {
            path: tmp.path().to_path_buf(),
            _tmp: tmp,
            mounted: true,
        }
    }
}

impl Drop for NoVerityDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The kernel's fs-verity digest of `path`.
pub(crate) fn measured(path: &Path) -> Result<Digest, cfs_core::verity::VerityError> {
    measure_verity(File::open(path).unwrap().as_fd())
}

/// Enables fs-verity on `path` (SHA-512 or SHA-256).
pub(crate) fn enable(path: &Path, alg: Algorithm) {
    enable_verity(File::open(path).unwrap().as_fd(), alg)
        .unwrap_or_else(|e| panic!("enabling verity on {}: {e}", path.display()));
}

/// Every object file of a repository (`objects/XX/rest`), with its digest.
pub(crate) fn repo_objects(repo: &Path, alg: Algorithm) -> Vec<(PathBuf, Digest)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(repo.join("objects")).unwrap() {
        let sub = sub.unwrap();
        let name = sub.file_name().into_string().unwrap();
        if name.len() != 2 {
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap() {
            let f = f.unwrap();
            let rest = f.file_name().into_string().unwrap();
            let d = Digest::from_hex_with(alg, &format!("{name}{rest}")).unwrap();
            out.push((f.path(), d));
        }
    }
    out.sort();
    out
}

/// Replaces the file at `path` atomically with `content` (a new inode, as an
/// attacker with write access to the directory would), with fs-verity
/// enabled on the new file when `alg` is given.
pub(crate) fn replace_file(path: &Path, content: &[u8], verity: Option<Algorithm>) {
    let tmp = path.with_extension("tampered");
    std::fs::write(&tmp, content).unwrap();
    if let Some(alg) = verity {
        enable(&tmp, alg);
    }
    std::fs::rename(&tmp, path).unwrap();
}

/// The errno of opening and reading `path` completely, `None` if it worked.
pub(crate) fn read_errno(path: &Path) -> Option<i32> {
    match std::fs::read(path) {
        Ok(_) => None,
        Err(e) => Some(e.raw_os_error().unwrap_or(-1)),
    }
}

pub(crate) const EIO: i32 = 5;

/// stderr as text.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
