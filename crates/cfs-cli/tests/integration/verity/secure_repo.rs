//! A secure repository on a filesystem with fs-verity: `init` makes
//! `meta.json` verity-enabled, `create-image` and `oci pull` store every
//! object with fs-verity whose kernel measurement is its name, `fsck` is
//! clean, and `mount` / `oci mount` use `verity=require` and read back the
//! source.

use std::path::{Path, PathBuf};

use cfs_core::verity::{Algorithm, digest_bytes};

use super::{bytes, measured, repo_objects, stderr, verity_tmp};
use crate::mount::Mounted;
use crate::oci_support::{base_tar, gzip, plain, write_layout};
use crate::support::{run, tool};

/// `cfsctl --repo REPO ARGS…`, asserting success; stdout.
pub(crate) fn cfs_ok(repo: &Path, args: &[&str]) -> String {
    let o = run(tool("cfsctl").arg("--repo").arg(repo).args(args));
    assert!(
        o.status.success(),
        "cfsctl {args:?}: exit {:?}\n{}",
        o.status.code(),
        stderr(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A source tree with `usr/`: files below and above the 64-byte inline
/// limit, one of 3 MiB, a symlink; returns (relative path, content) of the
/// regular files.
pub(crate) fn make_source(root: &Path, seed: u64) -> Vec<(PathBuf, Vec<u8>)> {
    let files = [
        ("usr/bin/tool", 20_000),
        ("usr/lib/big.so", 3 << 20),
        ("usr/lib/small", 10),
        ("usr/share/a", 65),
        ("usr/share/b", 4096),
        ("usr/share/c", 9_999),
        ("etc/conf", 700),
    ];
    let mut out = Vec::new();
    for (i, (path, size)) in files.iter().enumerate() {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let content = bytes(*size, seed * 100 + i as u64);
        std::fs::write(&p, &content).unwrap();
        out.push((PathBuf::from(path), content));
    }
    std::os::unix::fs::symlink("tool", root.join("usr/bin/link")).unwrap();
    out
}

/// The id `create-image` printed (`sha512:<hex>` → hex).
pub(crate) fn image_hex(create_image_output: &str) -> String {
    let line = create_image_output.trim();
    line.strip_prefix("sha512:").unwrap_or(line).to_owned()
}

/// The mount line of `mnt` in /proc/self/mounts.
pub(crate) fn mount_line(mnt: &Path) -> String {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(mnt.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not mounted", mnt.display()))
        .to_owned()
}

/// True if the mount at `mnt` has the overlay option `verity=require`.
pub(crate) fn requires_verity(mnt: &Path) -> bool {
    let line = mount_line(mnt);
    let options = line.split(' ').nth(3).unwrap_or_default();
    options.split(',').any(|o| o == "verity=require")
}

/// Asserts that every object of the secure repository has fs-verity
/// enabled with a measurement equal to its name; returns the count.
pub(crate) fn assert_all_objects_verified(repo: &Path) -> usize {
    let objects = repo_objects(repo, Algorithm::Sha512);
    for (path, name) in &objects {
        let m = measured(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            &m,
            name,
            "{}: measured digest differs from its name",
            path.display()
        );
    }
    objects.len()
}

/// Asserts `fsck` (and `fsck --json`) find nothing wrong.
pub(crate) fn assert_fsck_clean(repo: &Path) {
    let json = cfs_ok(repo, &["fsck", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["ok"], true, "{json}");
}

/// A secure repository on a verity filesystem, a source tree (see
/// [`make_source`]) and an empty mountpoint.
pub(crate) struct Secure {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) repo: PathBuf,
    pub(crate) src: PathBuf,
    pub(crate) mnt: PathBuf,
    pub(crate) files: Vec<(PathBuf, Vec<u8>)>,
}

impl Secure {
    /// `None` (skip) where fs-verity is not available; see [`verity_tmp`].
    pub(crate) fn new(test: &str, seed: u64) -> Option<Secure> {
        let tmp = verity_tmp(test)?;
        let (repo, src, mnt) = (
            tmp.path().join("repo"),
            tmp.path().join("src"),
            tmp.path().join("mnt"),
        );
        std::fs::create_dir(&mnt).unwrap();
        let files = make_source(&src, seed);
        cfs_ok(&repo, &["init"]);
        Some(Secure {
            tmp,
            repo,
            src,
            mnt,
            files,
        })
    }

    /// `create-image SRC NAME`; the image id's hex.
    pub(crate) fn create_image(&self, name: &str) -> String {
        image_hex(&cfs_ok(
            &self.repo,
            &["create-image", self.src.to_str().unwrap(), name],
        ))
    }

    /// Mounts image `name`, checks it uses `verity=require` and shows every
    /// source file's content, and unmounts.
    pub(crate) fn assert_mount_reads_source(&self, name: &str) {
        cfs_ok(&self.repo, &["mount", name, self.mnt.to_str().unwrap()]);
        let _guard = Mounted(self.mnt.clone());
        assert!(requires_verity(&self.mnt), "{}", mount_line(&self.mnt));
        for (path, content) in &self.files {
            assert_eq!(
                &std::fs::read(self.mnt.join(path)).unwrap(),
                content,
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn secure_repository_create_image_and_pull_verify_every_object() {
    let Some(f) = Secure::new(
        "secure_repository_create_image_and_pull_verify_every_object",
        1,
    ) else {
        return;
    };
    let repo = &f.repo;
    // meta.json carries fs-verity: the repository is secure.
    let meta = measured(&repo.join("meta.json")).expect("meta.json has fs-verity");
    assert_eq!(meta.algorithm(), Algorithm::Sha512);
    let meta_text = std::fs::read(repo.join("meta.json")).unwrap();
    assert_eq!(meta, digest_bytes(Algorithm::Sha512, &meta_text));

    let hex = f.create_image("img");
    let after_create = assert_all_objects_verified(repo);
    // 6 external files + the image (+ nothing else).
    assert!(after_create >= 7, "{after_create} objects");

    // An OCI image: two layers (plain and gzip), a 2 MiB file among them.
    let layout = f.tmp.path().join("layout");
    let mut l1 = base_tar();
    l1.dir("usr/bin/")
        .file("usr/bin/sh", &bytes(30_000, 7))
        .file("usr/bin/tiny", b"tiny")
        .file("etc/os-release", &bytes(300, 8));
    let mut l2 = base_tar();
    l2.dir("usr/lib/")
        .file("usr/lib/libbig.so", &bytes(2 << 20, 9));
    write_layout(&layout, "v1", &[plain(l1.finish()), gzip(l2.finish())]);
    let source = format!("oci:{}:v1", layout.display());
    cfs_ok(repo, &["oci", "pull", &source, "os"]);
    let after_pull = assert_all_objects_verified(repo);
    assert!(after_pull > after_create, "the pull stored objects");
    assert_fsck_clean(repo);

    // cfsctl mount: verity=require, content equal to the source.
    for name in ["img", hex.as_str()] {
        f.assert_mount_reads_source(name);
    }
    let mnt = &f.mnt;
    cfs_ok(repo, &["mount", "img", mnt.to_str().unwrap()]);
    let guard = Mounted(mnt.clone());
    let line = mount_line(mnt);
    assert!(line.starts_with(&format!("composefs:{hex} ")), "{line}");
    drop(guard);
    // cfsctl oci mount: the same for the pulled image.
    cfs_ok(repo, &["oci", "mount", "os", mnt.to_str().unwrap()]);
    let _guard = Mounted(mnt.clone());
    assert!(requires_verity(mnt), "{}", mount_line(mnt));
    assert_eq!(
        std::fs::read(mnt.join("usr/bin/sh")).unwrap(),
        bytes(30_000, 7)
    );
    assert_eq!(std::fs::read(mnt.join("usr/bin/tiny")).unwrap(), b"tiny");
    assert_eq!(
        std::fs::read(mnt.join("etc/os-release")).unwrap(),
        bytes(300, 8)
    );
    assert_eq!(
        std::fs::read(mnt.join("usr/lib/libbig.so")).unwrap(),
        bytes(2 << 20, 9)
    );
}
