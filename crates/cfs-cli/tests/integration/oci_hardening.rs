//! `cfsctl oci pull` against hostile or unusual sources, end to end: FIFOs
//! in a layout, a registry that stalls (`--timeout`, `CFS_OCI_TIMEOUT`), a
//! decompression bomb (`--max-layer-size`), a manifest with a wrongly typed
//! field, and an image listing the same layers more than once. Every
//! command that could block runs under a deadline.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::oci_support::{
    base_tar, cfs, exec, gzip, init_repo, ok, plain, repeated_layers, write_blob, write_layout,
};
use crate::oci_tree::{Ignore, OciMount, assert_trees_equal, tree_from_dir, tree_from_dump};
use crate::stub_registry::{Reply, StubRegistry};
use crate::support::privileged;

/// Runs `cmd`, killing it after `secs` seconds (then the test fails).
fn run_within(cmd: &mut Command, secs: u64) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {secs} s\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts failure and returns stderr.
fn failed(what: &str, out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

fn pull(repo: &Path, source: &str, extra: &[&str]) -> Command {
    let mut c = cfs(repo);
    c.args(["oci", "pull"]).args(extra).arg(source).arg("t");
    c
}

#[test]
fn oci_pull_refuses_fifos_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let layout = tmp.path().join("L");
    let mut t = base_tar();
    t.file("etc/a", b"a");
    let layer = plain(t.finish());
    let digest = format!("sha256:{}", crate::corpus::sha256_hex(&layer.bytes));
    write_layout(&layout, "v1", &[layer]);
    let blob = layout.join("blobs/sha256").join(&digest[7..]);
    crate::support::replace_with_fifo(&blob);
    let source = format!("oci:{}:v1", layout.display());
    let (out, took) = run_within(&mut pull(&repo, &source, &[]), 60);
    let err = failed("oci pull of a FIFO blob", &out);
    assert!(
        err.contains(&format!(
            "{}: is a FIFO, expected a regular file",
            blob.display()
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    // index.json as a FIFO: refused when the source is opened.
    let index = layout.join("index.json");
    crate::support::replace_with_fifo(&index);
    let (out, _) = run_within(&mut pull(&repo, &source, &[]), 60);
    let err = failed("oci pull of a FIFO index.json", &out);
    assert!(err.contains("index.json: is a FIFO"), "{err}");
}

/// A stub registry whose manifest stalls after a few bytes.
fn stalling_registry() -> StubRegistry {
    let stub = StubRegistry::start();
    stub.route(
        "/v2/test/img/manifests/v1",
        Reply::Stall {
            length: 2000,
            body: br#"{"schemaVersion":2,"#.to_vec(),
        },
    );
    stub
}

#[test]
fn oci_pull_times_out_on_a_stalled_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let stub = stalling_registry();
    let source = stub.reference("test/img:v1");
    for (flag, env) in [(Some("2"), None), (None, Some("2"))] {
        let mut cmd = pull(&repo, &source, &[]);
        if let Some(secs) = flag {
            cmd = pull(&repo, &source, &["--timeout", secs]);
        }
        if let Some(secs) = env {
            cmd.env("CFS_OCI_TIMEOUT", secs);
        }
        let (out, took) = run_within(&mut cmd, 60);
        let err = failed("oci pull from a stalled registry", &out);
        assert!(err.contains("timed out") && err.contains("2 s"), "{err}");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(20),
            "{took:?}"
        );
        // The repository is free again: gc takes its exclusive lock.
        let (out, _) = run_within(cfs(&repo).arg("gc"), 60);
        ok("gc after a timed-out pull", &out);
    }
    let (out, _) = run_within(&mut pull(&repo, &source, &["--timeout", "0"]), 60);
    let err = failed("--timeout 0", &out);
    assert!(err.contains("--timeout"), "{err}");
}

#[test]
fn oci_pull_caps_the_decompressed_layer_size() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let layout = tmp.path().join("bomb");
    let mut t = base_tar();
    t.file("usr/zeros", &vec![0u8; 4 << 20]);
    let layer = gzip(t.finish());
    let digest = format!("sha256:{}", crate::corpus::sha256_hex(&layer.bytes));
    write_layout(&layout, "v1", &[layer]);
    let source = format!("oci:{}:v1", layout.display());
    let (out, _) = run_within(&mut pull(&repo, &source, &["--max-layer-size", "1M"]), 120);
    let err = failed("oci pull over --max-layer-size", &out);
    assert!(
        err.contains(&digest) && err.contains("more than the limit of 1048576 bytes"),
        "{err}"
    );
    let (out, _) = run_within(&mut pull(&repo, &source, &["--max-layer-size", "5M"]), 120);
    ok("oci pull under --max-layer-size", &out);
}

#[test]
fn oci_pull_names_the_bad_manifest_field() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let layout = tmp.path().join("L");
    write_layout(&layout, "v1", &[plain(base_tar().finish())]);
    // Replace the image with a manifest whose layers are a number.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":5}"#;
    let digest = write_blob(&layout, manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let source = format!("oci:{}:v1", layout.display());
    let (out, _) = run_within(&mut pull(&repo, &source, &[]), 60);
    let err = failed("oci pull of a bad manifest", &out);
    assert!(
        err.contains(&format!("manifest {digest}: at `layers`: invalid type")),
        "{err}"
    );
    assert!(!err.contains("serde failed"), "{err}");
}

#[test]
fn oci_pull_repeated_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let layout = tmp.path().join("R");
    write_layout(&layout, "v1", &repeated_layers());
    let source = format!("oci:{}:v1", layout.display());
    let (out, _) = run_within(&mut pull(&repo, &source, &[]), 120);
    ok("oci pull of repeated layers", &out);
    let id = ok(
        "oci compute-id",
        &exec(cfs(&repo).args(["oci", "compute-id", "t"])),
    );
    let images = ok(
        "oci images --json",
        &exec(cfs(&repo).args(["oci", "images", "--json"])),
    );
    let images: serde_json::Value = serde_json::from_str(&images).unwrap();
    assert_eq!(images["images"][0]["layer_count"], 5, "{images}");
    // The last listing re-adds etc/gone, which the middle layer deleted.
    let dump = ok("oci dump", &exec(cfs(&repo).args(["oci", "dump", "t"])));
    assert!(
        dump.contains("/etc/gone ") && dump.contains("/etc/b "),
        "{dump}"
    );
    let fsck = ok("fsck", &exec(cfs(&repo).arg("fsck")));
    assert!(fsck.contains("status: ok"), "{fsck}");
    assert!(
        repo.join("images").join(id.trim()).exists(),
        "image {id} linked"
    );
    if !privileged("oci_pull_repeated_layers (mount)") {
        return;
    }
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(
        "oci mount",
        &exec(cfs(&repo).args(["oci", "mount", "t"]).arg(&mnt)),
    );
    let _m = OciMount(mnt.clone());
    assert_eq!(std::fs::read(mnt.join("etc/gone")).unwrap(), [2u8; 300]);
    assert_eq!(std::fs::read(mnt.join("etc/b")).unwrap(), b"b");
    assert_trees_equal(
        "mount vs oci dump",
        &tree_from_dump(dump.as_bytes(), &repo),
        &tree_from_dir(&mnt),
        Ignore::default(),
    );
}
