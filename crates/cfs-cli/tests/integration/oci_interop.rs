//! Interoperability of `cfsctl oci` with composefs-rs 0.9.4 built with its
//! `oci` feature (not installed in CI: skipped when absent). Set
//! `CFS_REFERENCE_OCI_CFSCTL` to its path; the default is
//! `/tmp/cfsctl094oci/bin/cfsctl` (`cargo install composefs-ctl --version
//! 0.9.4 --locked --no-default-features --features pre-6.15,oci --root
//! /tmp/cfsctl094oci`).
//!
//! The same `oci:` layout is pulled by both tools into two repositories,
//! which must then hold the same config and layer streams and give the same
//! image id and dump; each tool reads the other's repository; an image
//! untagged by one tool is collected completely by the other's `gc`; and a
//! mount of our pull by the reference shows the same tree as ours.
//!
//! Not compared: the `verity` line of `oci pull` (the manifest split
//! stream's object id — composefs-rs orders the manifest stream's named
//! refs by a randomly seeded `HashMap`, so its id differs from run to run)
//! and the `streams/oci-manifest-*` link for the same reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::oci_support::{
    Blob, Hdr, base_tar, cfs, exec, gzip, have_tools, init_repo, object_files, ok, plain,
    repeated_layers, write_layout,
};
use crate::oci_tree::{Ignore, OciMount, assert_trees_equal, build_test_image, tree_from_dir};

/// The reference composefs-rs `cfsctl` with the `oci` feature, if installed.
pub(crate) fn reference() -> Option<PathBuf> {
    let path = std::env::var_os("CFS_REFERENCE_OCI_CFSCTL").map_or_else(
        || PathBuf::from("/tmp/cfsctl094oci/bin/cfsctl"),
        PathBuf::from,
    );
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "reference cfsctl (oci) not found at {}: skipped",
            path.display()
        );
        None
    }
}

/// The two tools on two repositories.
struct Pair {
    reference: PathBuf,
    ours: PathBuf,
    theirs: PathBuf,
}

impl Pair {
    /// The reference `cfsctl --repo REPO`, without `RUST_BACKTRACE`.
    fn reference(&self, repo: &Path) -> Command {
        let mut c = Command::new(&self.reference);
        c.env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .arg("--repo")
            .arg(repo);
        c
    }

    /// Runs `args` with the reference on `repo`, asserting success.
    fn them(&self, repo: &Path, args: &[&str]) -> String {
        let what = format!("reference cfsctl {} on {}", args.join(" "), repo.display());
        ok(&what, &exec(self.reference(repo).args(args)))
    }

    /// Runs `args` with our `cfsctl` on `repo`, asserting success.
    fn us(&self, repo: &Path, args: &[&str]) -> String {
        let what = format!("cfsctl {} on {}", args.join(" "), repo.display());
        ok(&what, &exec(cfs(repo).args(args)))
    }

    /// Initialises both repositories and pulls `source` as `t` with each tool.
    fn pull(dir: &Path, reference: PathBuf, source: &str) -> (Pair, String, String) {
        let pair = Pair {
            reference,
            ours: dir.join("ours"),
            theirs: dir.join("theirs"),
        };
        init_repo(&pair.ours);
        let theirs = pair.theirs.to_str().unwrap();
        pair.them(
            &pair.theirs,
            &[
                "init",
                "--insecure",
                "--algorithm",
                "fsverity-sha256-12",
                theirs,
            ],
        );
        let ours_out = pair.us(&pair.ours, &["oci", "pull", source, "t"]);
        let theirs_out = pair.them(&pair.theirs, &["oci", "pull", source, "t"]);
        (pair, ours_out, theirs_out)
    }
}

/// The `oci pull` summary lines that must agree (all but `verity`).
fn pull_summary(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| {
            ["manifest ", "config ", "tagged ", "objects "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

/// `streams/oci-config-*` and `streams/oci-layer-*` → link target.
fn config_and_layer_streams(repo: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo.join("streams")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("oci-config-") || name.starts_with("oci-layer-") {
            out.insert(name, std::fs::read_link(entry.path()).unwrap());
        }
    }
    out
}

/// Asserts two outputs of the same question are equal, naming both sides.
fn same(what: &str, left: (&str, &str), right: (&str, &str)) {
    assert!(
        left.1 == right.1,
        "{what}: {} and {} differ\n--- {}:\n{}\n--- {}:\n{}",
        left.0,
        right.0,
        left.0,
        left.1,
        right.0,
        right.1
    );
}

/// Everything that can be compared without a mount; returns the pair.
fn check_interop(dir: &Path, reference: PathBuf, source: &str, repeated_listings: bool) -> Pair {
    let (p, ours_pull, theirs_pull) = Pair::pull(dir, reference, source);
    let (ours, theirs) = (p.ours.as_path(), p.theirs.as_path());
    let summary = pull_summary(&ours_pull);
    assert_eq!(summary.len(), 4, "oci pull output:\n{ours_pull}");
    let mut expected = pull_summary(&theirs_pull);
    if repeated_listings {
        // composefs-rs imports a layer listed twice twice and counts its
        // objects again as "already present"; cfs imports it once.
        expected.pop();
        assert!(
            summary[3].starts_with("objects  2 new + 0 already present"),
            "{ours_pull}"
        );
    }
    assert_eq!(
        &summary[..expected.len()],
        &expected[..],
        "oci pull {source}: ours:\n{ours_pull}\nreference:\n{theirs_pull}"
    );
    let streams = config_and_layer_streams(ours);
    assert!(streams.len() >= 2, "{streams:?}");
    assert_eq!(streams, config_and_layer_streams(theirs), "streams/ links");

    // Each tool on its own repository.
    for args in [&["oci", "compute-id", "t"][..], &["oci", "dump", "t"]] {
        let what = args.join(" ");
        same(
            &what,
            ("ours", &p.us(ours, args)),
            ("reference", &p.them(theirs, args)),
        );
    }

    // `oci layer --json` and `--dumpfile` of every layer, each tool on its
    // own repository.
    for name in streams.keys() {
        if let Some(diff_id) = name.strip_prefix("oci-layer-") {
            for view in ["--json", "--dumpfile"] {
                let args = ["oci", "layer", diff_id, view];
                same(
                    &args.join(" "),
                    ("ours", &p.us(ours, &args)),
                    ("reference", &p.them(theirs, &args)),
                );
            }
        }
    }

    // Cross reading: every question asked of one repository gets the same
    // answer from both tools.
    for repo in [ours, theirs] {
        for args in [
            &["oci", "images", "--json"][..],
            &["oci", "fsck"],
            &["oci", "compute-id", "t"],
            &["oci", "dump", "t"],
            &["fsck"],
        ] {
            let what = format!("{} on {}", args.join(" "), repo.display());
            let mine = p.us(repo, args);
            let theirs_answer = p.them(repo, args);
            same(&what, ("ours", &mine), ("reference", &theirs_answer));
            if args.ends_with(&["fsck"]) {
                assert!(mine.contains("status: ok"), "{what}:\n{mine}");
            }
        }
    }
    p
}

/// After untagging with one tool, the other's `gc` empties the object
/// store, and both `fsck` clean.
fn check_untag_gc(p: &Pair) {
    p.them(&p.ours, &["oci", "untag", "t"]);
    p.us(&p.ours, &["gc"]);
    p.us(&p.theirs, &["oci", "untag", "t"]);
    p.them(&p.theirs, &["gc"]);
    for repo in [&p.ours, &p.theirs] {
        let left = object_files(repo);
        assert!(
            left.is_empty(),
            "{}: objects left: {left:?}",
            repo.display()
        );
        for out in [p.us(repo, &["fsck"]), p.them(repo, &["fsck"])] {
            assert!(out.contains("status: ok"), "{}:\n{out}", repo.display());
        }
    }
}

/// A hand-made image (no external tools): inline and external files, hard
/// and symbolic links, a device, a whiteout, an opaque directory and a
/// gzip layer.
fn handmade_layout(dir: &Path) -> String {
    let layout = dir.join("H");
    let mut l1 = base_tar();
    l1.dir("usr/bin/")
        .file("usr/bin/small", b"small\n")
        .file("usr/bin/big", &[7u8; 5000])
        .link(b'1', "usr/bin/big2", "usr/bin/big")
        .link(b'2', "usr/bin/sh", "small")
        .dir("etc/conf.d/")
        .file("etc/conf.d/a", &[1u8; 100])
        .file("etc/conf.d/b", b"b")
        .file("etc/gone", &[2u8; 300])
        .dir("run/")
        .file("run/state", &[3u8; 200]);
    l1.entry(
        Hdr {
            path: "usr/null".into(),
            kind: b'3',
            dev: (1, 3),
            ..Hdr::default()
        },
        b"",
    );
    let mut l2 = base_tar();
    l2.file("etc/.wh.gone", b"")
        .dir("etc/conf.d/")
        .file("etc/conf.d/.wh..wh..opq", b"")
        .file("etc/conf.d/c", &[4u8; 70])
        .entry(
            Hdr {
                path: "usr/bin/cap".into(),
                mode: 0o4755,
                uid: 1000,
                gid: 1000,
                pax: vec![("SCHILY.xattr.user.x".into(), b"v".to_vec())],
                ..Hdr::default()
            },
            &[5u8; 65],
        );
    let layers: Vec<Blob> = vec![plain(l1.finish()), gzip(l2.finish())];
    write_layout(&layout, "v1", &layers);
    format!("oci:{}:v1", layout.display())
}

#[test]
fn oci_interop_handmade_layout() {
    let Some(reference) = reference() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let source = handmade_layout(tmp.path());
    let p = check_interop(tmp.path(), reference, &source, false);
    check_untag_gc(&p);
}

/// A layer listed twice and an empty layer listed twice (as in images
/// with repeated empty `RUN` steps): both tools store each diff_id once in
/// the config and manifest streams and apply every listing to the tree.
#[test]
fn oci_interop_repeated_layers() {
    let Some(reference) = reference() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("R");
    write_layout(&layout, "v1", &repeated_layers());
    let p = check_interop(
        tmp.path(),
        reference,
        &format!("oci:{}:v1", layout.display()),
        true,
    );
    check_untag_gc(&p);
}

#[test]
fn oci_interop_umoci_image_and_mount() {
    let Some(reference) = reference() else {
        return;
    };
    if !have_tools("oci_interop_umoci_image_and_mount", &["umoci"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Without the dir→file whiteout quirk, which composefs-rs rejects.
    let img_dir = tmp.path().join("img");
    std::fs::create_dir_all(&img_dir).unwrap();
    let img = build_test_image(&img_dir, false);
    let p = check_interop(tmp.path(), reference, &img.oci_ref(), false);

    // Our pull mounted by the reference and by us: the same tree.
    let (m_ref, m_ours) = (tmp.path().join("m-ref"), tmp.path().join("m-ours"));
    std::fs::create_dir_all(&m_ref).unwrap();
    std::fs::create_dir_all(&m_ours).unwrap();
    p.them(&p.ours, &["oci", "mount", "t", m_ref.to_str().unwrap()]);
    let _ref_mount = OciMount(m_ref.clone());
    p.us(&p.ours, &["oci", "mount", "t", m_ours.to_str().unwrap()]);
    let _our_mount = OciMount(m_ours.clone());
    assert_trees_equal(
        "our pull mounted by the reference vs by cfs",
        &tree_from_dir(&m_ours),
        &tree_from_dir(&m_ref),
        Ignore::default(),
    );
    drop(_ref_mount);
    drop(_our_mount);
    check_untag_gc(&p);
}
