//! Tests of the tar member index, `oci-archive:` and `docker-archive:`
//! over hand-built tars.

use std::io::Write;

use super::*;
use crate::source::{OCI_INDEX, sha256_digest};

/// A minimal tar writer: ustar headers, PAX `path` records for long names.
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Self {
        Self(Vec::new())
    }

    fn header(&mut self, name: &str, kind: u8, size: usize, link: &str) -> &mut Self {
        let h = crate::source::fuzz::ustar_header(name, kind, size, link);
        self.0.extend_from_slice(&h);
        self
    }

    fn data(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        let pad = tar_block::padding(data.len() as u64) as usize;
        self.0.extend(std::iter::repeat_n(0, pad));
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        if name.len() > 99 {
            let record = format!("path={name}\n");
            let mut len = record.len() + 2;
            while format!("{len} {record}").len() != len {
                len += 1;
            }
            let pax = format!("{len} {record}");
            self.header("PaxHeaders/x", b'x', pax.len(), "");
            self.data(pax.as_bytes());
            self.header("placeholder", b'0', data.len(), "");
        } else {
            self.header(name, b'0', data.len(), "");
        }
        self.data(data);
        self
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name, b'2', 0, target);
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 2 * BLOCK]);
        std::mem::take(&mut self.0)
    }
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn names_normalise() {
    assert_eq!(normalize("./a//b/"), "a/b");
    assert_eq!(normalize("/x/../y"), "y");
    assert_eq!(
        split_docker_archive("/d.tar:test/img:v1"),
        ("/d.tar", Some("test/img:v1"))
    );
    assert_eq!(split_docker_archive("/d.tar"), ("/d.tar", None));
    assert_eq!(
        normalize_name("docker.io/library/busybox"),
        "busybox:latest"
    );
    assert_eq!(
        normalize_name("localhost:5000/a/b"),
        "localhost:5000/a/b:latest"
    );
    assert_eq!(normalize_name("test/img:v1"), "test/img:v1");
}

#[test]
fn member_index_reads_in_place() {
    let long = format!("dir/{}", "n".repeat(150));
    let tar = Tar::new()
        .file("./a.txt", b"hello")
        .file(&long, &[7u8; 1000])
        .symlink("dir/link", "../a.txt")
        .finish();
    let f = write_temp(&tar);
    let index = TarIndex::build(File::open(f.path()).unwrap(), "T".into()).unwrap();
    let (r, size) = index.open("a.txt").unwrap();
    assert_eq!((read_all(r), size), (b"hello".to_vec(), 5));
    assert_eq!(read_all(index.open(&long).unwrap().0), vec![7u8; 1000]);
    assert_eq!(read_all(index.open("dir/link").unwrap().0), b"hello");
    let err = index.open("missing").err().unwrap().to_string();
    assert_eq!(err, "T: no file missing in the archive");

    let mut corrupt = tar.clone();
    corrupt[0] = b'b';
    let f = write_temp(&corrupt);
    let err = TarIndex::build(File::open(f.path()).unwrap(), "T".into()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

fn oci_layout_tar() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let layer = b"layer bytes".to_vec();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":11}},"layers":[]}}"#,
        sha256_digest(&layer)
    )
    .into_bytes();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
        sha256_digest(&manifest),
        manifest.len()
    );
    let hex = |b: &[u8]| sha256_digest(b)[7..].to_owned();
    let tar = Tar::new()
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", index.as_bytes())
        .file(&format!("blobs/sha256/{}", hex(&manifest)), &manifest)
        .file(&format!("blobs/sha256/{}", hex(&layer)), &layer)
        .finish();
    (tar, manifest, layer)
}

#[test]
fn oci_archive_plain_gzip_zstd() {
    let (tar, manifest, layer) = oci_layout_tar();
    let platform = Platform::host();
    for bytes in [
        tar.clone(),
        gzip(&tar),
        zstd::encode_all(&tar[..], 1).unwrap(),
    ] {
        let f = write_temp(&bytes);
        let src = open_oci_archive(f.path().into(), Some("v1")).unwrap();
        let m = src.manifest(&platform).unwrap();
        assert_eq!(m.bytes, manifest);
        assert_eq!(m.digest, sha256_digest(&manifest));
        assert_eq!(m.media_type, OCI_MANIFEST);
        let blob = src.open_blob(&sha256_digest(&layer), 11).unwrap();
        assert_eq!(read_all(blob), layer);
        assert!(src.open_blob(&sha256_digest(&layer), 12).is_err());
        let src = open_oci_archive(f.path().into(), Some("v2")).unwrap();
        let err = src.manifest(&platform).unwrap_err().to_string();
        assert!(err.starts_with("tag v2 not found in OCI archive"), "{err}");
    }
}

#[test]
fn docker_archive_synthesis() {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let plain = Tar::new().file("etc/hello", b"hi").finish();
    let gz = gzip(&plain);
    let zst = zstd::encode_all(&plain[..], 1).unwrap();
    let manifest_json = br#"[{"Config":"cfg.json","RepoTags":["test/img:v1","other:latest"],"Layers":["l1/layer.tar","l2/layer.tar","l3.tar.zst","l4/layer.tar"]}]"#;
    let tar = Tar::new()
        .file("manifest.json", manifest_json)
        .file("cfg.json", config)
        .file("l1/layer.tar", &plain)
        .file("l2/layer.tar", &gz)
        .file("l3.tar.zst", &zst)
        .symlink("l4/layer.tar", "../l1/layer.tar")
        .finish();
    let f = write_temp(&tar);
    let path = f.path().to_path_buf();
    for name in [None, Some("test/img:v1"), Some("docker.io/library/other")] {
        let src = DockerArchiveSource::open(path.clone(), name).unwrap();
        let m = src.manifest(&Platform::host()).unwrap();
        assert_eq!(m.digest, sha256_digest(&m.bytes));
        assert_eq!(m.media_type, OCI_MANIFEST);
        let doc: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(doc["schemaVersion"], 2);
        assert_eq!(doc["mediaType"], OCI_MANIFEST);
        assert_eq!(doc["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(doc["config"]["digest"], sha256_digest(config));
        assert_eq!(doc["config"]["size"], config.len());
        let layers = doc["layers"].as_array().unwrap();
        let expect = [
            (LAYER_TAR, &plain),
            (LAYER_GZIP, &gz),
            (LAYER_ZSTD, &zst),
            (LAYER_TAR, &plain),
        ];
        assert_eq!(layers.len(), expect.len());
        for (layer, (media_type, bytes)) in layers.iter().zip(expect) {
            assert_eq!(layer["mediaType"], media_type);
            assert_eq!(layer["digest"], sha256_digest(bytes));
            assert_eq!(layer["size"], bytes.len());
            let r = src
                .open_blob(&sha256_digest(bytes), bytes.len() as u64)
                .unwrap();
            assert_eq!(&read_all(r), bytes);
        }
        let r = src
            .open_blob(&sha256_digest(config), config.len() as u64)
            .unwrap();
        assert_eq!(read_all(r), config);
        assert!(src.open_blob(&sha256_digest(b"x"), 1).is_err());
    }
    let err = DockerArchiveSource::open(path, Some("nope:v1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no image tagged nope:v1") && err.contains("test/img:v1"),
        "{err}"
    );
}

#[test]
fn docker_archive_needs_a_name_when_several() {
    let tar = Tar::new()
        .file(
            "manifest.json",
            br#"[{"Config":"c","RepoTags":["a:1"],"Layers":[]},{"Config":"c","RepoTags":["b:2"],"Layers":[]}]"#,
        )
        .file("c", b"{}")
        .finish();
    let f = write_temp(&tar);
    let err = DockerArchiveSource::open(f.path().into(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 2 images (tags: a:1, b:2)"), "{err}");
    let src = DockerArchiveSource::open(f.path().into(), Some("b:2")).unwrap();
    assert!(src.manifest(&Platform::host()).is_ok());
}

/// Runs `f` in a thread and fails the test if it takes more than `secs`
/// seconds (a read blocked on a FIFO would otherwise hang the suite).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("no answer within {secs} s (blocked?)"))
}

#[test]
fn special_members_are_named_not_read() {
    let (tar, manifest, _) = oci_layout_tar();
    // The same layout with index.json as a FIFO member, then as a directory.
    let mut t = Tar::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t.header("index.json", b'6', 0, "");
    let fifo = write_temp(&t.finish());
    let path = fifo.path().to_path_buf();
    let err = within(10, move || {
        open_oci_archive(path, None).unwrap_err().to_string()
    });
    assert!(
        err.ends_with(": index.json is a FIFO, expected a regular file"),
        "{err}"
    );
    let mut t = Tar::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t.header("index.json/", b'5', 0, "");
    let dir = write_temp(&t.finish());
    let err = open_oci_archive(dir.path().into(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("index.json is a directory, expected a regular file"),
        "{err}"
    );
    // A symlink to a device member: the device is named.
    let mut t = Tar::new();
    t.file(
        "manifest.json",
        br#"[{"Config":"c","RepoTags":["a:1"],"Layers":["l"]}]"#,
    )
    .file("c", b"{}")
    .symlink("l", "dev/null");
    t.header("dev/null", b'3', 0, "");
    let dev = write_temp(&t.finish());
    let err = DockerArchiveSource::open(dev.path().into(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("dev/null is a character device, expected a regular file"),
        "{err}"
    );
    // The intact layout still reads (the helper's tar is fine).
    let ok = write_temp(&tar);
    let src = open_oci_archive(ok.path().into(), Some("v1")).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap().bytes, manifest);
}

#[test]
fn archive_from_a_pipe_is_streamed() {
    let (tar, manifest, _) = oci_layout_tar();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("archive.fifo");
    crate::source::local_file::mkfifo(&fifo);
    // No writer: an error at once, not a wait.
    let path = fifo.clone();
    let err = within(10, move || {
        open_oci_archive(path, None).unwrap_err().to_string()
    });
    assert!(err.contains("gave no data"), "{err}");
    // With a writer (gzip-compressed, to go through both temporary files).
    let data = gzip(&tar);
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // open() blocks until the reader below opens its end; a reader that
        // saw no writer yet and left makes the write fail (EPIPE): again.
        loop {
            let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            if w.write_all(&data).is_ok() {
                return;
            }
        }
    });
    let path = fifo.clone();
    let got = within(30, move || {
        // The writer may not have opened yet: retry while the pipe is empty.
        loop {
            match open_oci_archive(path.clone(), Some("v1")) {
                Ok(src) => return src.manifest(&Platform::host()).unwrap().bytes,
                Err(e) if e.to_string().contains("gave no data") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
    writer.join().unwrap();
    assert_eq!(got, manifest);
}
