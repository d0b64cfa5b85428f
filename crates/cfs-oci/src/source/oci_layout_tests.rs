//! Layout directories holding special files or escaping symlinks: every
//! open fails at once with the path and what was found, nothing blocks.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::source::{OCI_INDEX, OCI_MANIFEST, open_source};

/// Runs `f` in a thread; fails if it takes more than `secs` seconds.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("no answer within {secs} s (blocked on a FIFO?)"))
}

fn mkfifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    crate::source::local_file::mkfifo(path);
}

/// A layout with one image (tag `v1`, one layer blob); returns the paths
/// of the manifest and layer blobs.
fn layout(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer = b"layer".to_vec();
    let layer_digest = sha256_digest(&layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{layer_digest}","size":5}},"layers":[]}}"#
    );
    let manifest_digest = sha256_digest(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), index).unwrap();
    let m = blobs.join(&manifest_digest[7..]);
    std::fs::write(&m, manifest).unwrap();
    let l = blobs.join(&layer_digest[7..]);
    std::fs::write(&l, layer).unwrap();
    (m, l, layer_digest)
}

fn reference(dir: &Path) -> String {
    format!("oci:{}:v1", dir.display())
}

#[test]
fn intact_layout_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, layer) = layout(tmp.path());
    let src = open_source(&reference(tmp.path()), &Default::default()).unwrap();
    src.manifest(&Platform::host()).unwrap();
    let mut out = Vec::new();
    src.open_blob(&layer, 5)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, b"layer");
}

#[test]
fn fifo_marker_or_index_fails_at_once() {
    for name in ["oci-layout", "index.json"] {
        let tmp = tempfile::tempdir().unwrap();
        layout(tmp.path());
        let path = tmp.path().join(name);
        mkfifo(&path);
        let r = reference(tmp.path());
        let start = Instant::now();
        let err = within(10, move || {
            open_source(&r, &Default::default())
                .unwrap_err()
                .to_string()
        });
        assert!(
            err.ends_with(&format!(
                "{}: is a FIFO, expected a regular file",
                path.display()
            )),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn fifo_blobs_fail_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (manifest, layer_path, layer) = layout(tmp.path());
    mkfifo(&layer_path);
    let src = open_source(&reference(tmp.path()), &Default::default()).unwrap();
    let err = within(10, move || {
        src.open_blob(&layer, 5).err().unwrap().to_string()
    });
    assert!(
        err.contains(&format!(
            "{}: is a FIFO, expected a regular file",
            layer_path.display()
        )),
        "{err}"
    );
    mkfifo(&manifest);
    let src = open_source(&reference(tmp.path()), &Default::default()).unwrap();
    let err = within(10, move || {
        src.manifest(&Platform::host()).unwrap_err().to_string()
    });
    assert!(err.contains("is a FIFO, expected a regular file"), "{err}");
}

#[test]
fn sockets_devices_and_escapes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("L");
    std::fs::create_dir(&dir).unwrap();
    let (manifest, layer_path, layer) = layout(&dir);
    // The layer blob: a socket.
    std::fs::remove_file(&layer_path).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(&layer_path).unwrap();
    let src = open_source(&reference(&dir), &Default::default()).unwrap();
    let err = src.open_blob(&layer, 5).err().unwrap().to_string();
    assert!(
        err.contains("is a socket, expected a regular file"),
        "{err}"
    );
    // The manifest blob: a symlink to a copy outside the layout, then to
    // a device.
    let outside = tmp.path().join("outside");
    std::fs::rename(&manifest, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &manifest).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err().to_string();
    assert!(
        err.contains("outside the layout") || err.contains("is a symlink"),
        "{err}"
    );
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../../dev/zero", &manifest).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err().to_string();
    assert!(
        err.contains("outside the layout") || err.contains("is a symlink"),
        "{err}"
    );
    // A relative symlink that stays inside is followed (or, without
    // openat2, refused as a symlink).
    std::fs::remove_file(&manifest).unwrap();
    let inside = dir.join("blobs/manifest-copy");
    std::fs::rename(&outside, &inside).unwrap();
    std::os::unix::fs::symlink("../manifest-copy", &manifest).unwrap();
    match src.manifest(&Platform::host()) {
        Ok(m) => assert!(m.bytes.starts_with(b"{\"schemaVersion\":2")),
        Err(e) => assert!(e.to_string().contains("is a symlink"), "{e}"),
    }
}
