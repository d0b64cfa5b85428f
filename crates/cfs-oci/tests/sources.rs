//! Image sources against images made by real tools: `umoci` builds an OCI
//! layout, `skopeo` copies it into archives and into a local
//! `docker-registry` (plain and with Basic auth, `htpasswd` from
//! apache2-utils).
//!
//! A missing tool skips the test with a note, unless
//! `CFS_TEST_PRIVILEGED=require` is set, which turns it into a failure.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cfs_oci::source::{ImageSource, Platform, SourceOptions, open_source};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Whether every tool is installed; skips (or fails when required) if not.
#[allow(clippy::print_stderr)] // the skip note is for whoever runs the tests
fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require") {
        panic!("required tools missing: {}", missing.join(", "));
    }
    eprintln!("skipping: tools missing: {}", missing.join(", "));
    false
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256(bytes: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for b in Sha256::digest(bytes) {
        s += &format!("{b:02x}");
    }
    s
}

/// An OCI layout `L` with tag `v1`: one layer holding a few files.
fn make_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let content = dir.join("content");
    fs::create_dir_all(content.join("etc/sub")).unwrap();
    fs::write(content.join("etc/hello"), "hello world\n").unwrap();
    fs::write(content.join("etc/sub/big"), vec![b'x'; 100_000]).unwrap();
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", l]));
    run(Command::new("umoci").args(["new", "--image", &format!("{l}:v1")]));
    run(Command::new("umoci").args([
        "insert",
        "--image",
        &format!("{l}:v1"),
        content.join("etc").to_str().unwrap(),
        "/etc",
    ]));
    layout
}

/// Adds tag `v2` (v1 with another config) and tag `multi`, an image index
/// holding v1 as linux/amd64 and v2 as linux/arm64/v8; returns the
/// manifest digests of v1 and v2.
fn add_multi_platform_tag(layout: &Path) -> (String, String) {
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:v1"),
        "--tag",
        "v2",
        "--config.env",
        "CFS=v2",
    ]));
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let find = |tag: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone()
    };
    let (v1, v2) = (find("v1"), find("v2"));
    let entry = |m: &Value, platform: Value| {
        serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": m["digest"],
            "size": m["size"],
            "platform": platform,
        })
    };
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&v1, serde_json::json!({"os": "linux", "architecture": "amd64"})),
            entry(&v2, serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
        ],
    }))
    .unwrap();
    let digest = sha256(&nested);
    fs::write(layout.join("blobs/sha256").join(&digest[7..]), &nested).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let digest_of = |m: &Value| m["digest"].as_str().unwrap().to_owned();
    (digest_of(&v1), digest_of(&v2))
}

/// `reference` resolves to `amd64` for linux/amd64 and to `arm64` for
/// linux/arm64 (with or without variant); s390x has no image.
fn check_platforms(reference: &str, opts: &SourceOptions, amd64: &str, arm64: &str) {
    let src = open_source(reference, opts).unwrap();
    let digest = |p: &str| src.manifest(&p.parse().unwrap()).map(|m| m.digest);
    assert_eq!(digest("linux/amd64").unwrap(), amd64, "{reference}");
    assert_eq!(digest("linux/arm64").unwrap(), arm64, "{reference}");
    assert_eq!(digest("linux/arm64/v8").unwrap(), arm64, "{reference}");
    let err = digest("linux/s390x").unwrap_err().to_string();
    assert!(
        err.contains("no manifest for platform linux/s390x"),
        "{err}"
    );
}

fn read_blob(src: &dyn ImageSource, digest: &str, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    src.open_blob(digest, size)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Reads the manifest, then the config and every layer, checking sizes and
/// digests; returns the manifest document and the layers' bytes.
fn check_image(src: &dyn ImageSource, media_type: &str) -> (Value, Value, Vec<(String, Vec<u8>)>) {
    let m = src.manifest(&Platform::host()).unwrap();
    assert_eq!(m.digest, sha256(&m.bytes), "{}", src.describe());
    assert_eq!(m.media_type, media_type, "{}", src.describe());
    let doc: Value = serde_json::from_slice(&m.bytes).unwrap();
    let blob = |d: &Value| {
        let digest = d["digest"].as_str().unwrap();
        let size = d["size"].as_u64().unwrap();
        let bytes = read_blob(src, digest, size);
        assert_eq!(bytes.len() as u64, size, "{digest}");
        assert_eq!(sha256(&bytes), digest, "{}", src.describe());
        bytes
    };
    let config: Value = serde_json::from_slice(&blob(&doc["config"])).unwrap();
    let layers: Vec<_> = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["mediaType"].as_str().unwrap().to_owned(), blob(l)))
        .collect();
    assert!(!layers.is_empty());
    (doc, config, layers)
}

/// The layers, decompressed by media type, hash to the config's diff_ids.
fn check_diff_ids(config: &Value, layers: &[(String, Vec<u8>)]) {
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(diff_ids.len(), layers.len());
    for ((media_type, bytes), diff_id) in layers.iter().zip(diff_ids) {
        let plain = if media_type.ends_with("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else if media_type.ends_with("zstd") {
            zstd::decode_all(&bytes[..]).unwrap()
        } else {
            bytes.clone()
        };
        assert_eq!(sha256(&plain), diff_id, "{media_type}");
    }
}

#[test]
fn oci_layout_directory() {
    if !have(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v1")
        .unwrap();
    let opts = SourceOptions::default();
    let reference = format!("oci:{}:v1", layout.display());
    let src = open_source(&reference, &opts).unwrap();
    assert_eq!(src.describe(), reference);
    let m = src.manifest(&Platform::host()).unwrap();
    assert_eq!(m.digest, entry["digest"].as_str().unwrap());
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);

    // the only image: no tag needed
    let src = open_source(&format!("oci:{}", layout.display()), &opts).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap().digest, m.digest);
    let src = open_source(&format!("oci:{}:nope", layout.display()), &opts).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("tag nope not found in OCI layout {}", layout.display())
    );

    let (amd64, arm64) = add_multi_platform_tag(&layout);
    check_platforms(
        &format!("oci:{}:multi", layout.display()),
        &opts,
        &amd64,
        &arm64,
    );
    // without a tag: entries without platform (v1, v2) only count when
    // alone, so the index is the one match for amd64; none for s390x
    let src = open_source(&format!("oci:{}", layout.display()), &opts).unwrap();
    let amd = src.manifest(&"linux/amd64".parse().unwrap()).unwrap();
    assert_eq!(amd.digest, amd64);
    let err = src
        .manifest(&"linux/s390x".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tag v1") && err.contains("tag v2") && err.contains("tag multi"),
        "{err}"
    );
}

#[test]
fn oci_and_docker_archives() {
    if !have(&["umoci", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let from = format!("oci:{}:v1", layout.display());
    let oci_archive = dir.path().join("a.tar");
    let docker_archive = dir.path().join("d.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &from,
        &format!("oci-archive:{}:v1", oci_archive.display()),
    ]));
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &from,
        &format!("docker-archive:{}:test/img:v1", docker_archive.display()),
    ]));
    let opts = SourceOptions::default();
    let direct = open_source(&from, &opts)
        .unwrap()
        .manifest(&Platform::host())
        .unwrap();

    let src = open_source(&format!("oci-archive:{}:v1", oci_archive.display()), &opts).unwrap();
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);
    assert_eq!(src.manifest(&Platform::host()).unwrap(), direct);

    // the same archive gzip-compressed
    let gz = dir.path().join("a.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&fs::read(&oci_archive).unwrap()).unwrap();
    enc.finish().unwrap();
    let src = open_source(&format!("oci-archive:{}", gz.display()), &opts).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap(), direct);
    check_image(src.as_ref(), OCI_MANIFEST);

    for reference in [
        format!("docker-archive:{}:test/img:v1", docker_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
    ] {
        let src = open_source(&reference, &opts).unwrap();
        let (doc, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
        assert_eq!(doc["schemaVersion"], 2);
        assert_eq!(
            doc["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        check_diff_ids(&config, &layers);
    }
    let src = open_source(
        &format!("docker-archive:{}:test/img:v2", docker_archive.display()),
        &opts,
    );
    let err = src.err().unwrap().to_string();
    assert!(err.contains("no image tagged test/img:v2"), "{err}");
}

/// A `docker-registry` on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry; `htpasswd` enables Basic auth with that file.
    fn start(htpasswd: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some(file) = htpasswd {
            config += &format!(
                "auth:\n  htpasswd:\n    realm: cfs-test\n    path: {}\n",
                file.display()
            );
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !registry.answers() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Whether `GET /v2/` gets an HTTP answer.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut reply = String::new();
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.starts_with("HTTP/1.1 ")
    }

    fn push(&self, layout: &Path, tag: &str, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/test/img:{tag}", self.port));
        run(&mut cmd);
    }
}

#[test]
fn registry_pull() {
    if !have(&["umoci", "skopeo", "docker-registry"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let registry = Registry::start(None);
    registry.push(&layout, "gz", &[]);
    registry.push(&layout, "v2s2", &["--format", "v2s2"]);
    // no credentials from this machine's files
    let auth_file = dir.path().join("empty-auth.json");
    fs::write(&auth_file, r#"{"auths":{}}"#).unwrap();
    let opts = SourceOptions {
        auth_file: Some(auth_file),
        ..SourceOptions::default()
    };
    let base = format!("docker://127.0.0.1:{}/test/img", registry.port);

    let src = open_source(&format!("{base}:gz"), &opts).unwrap();
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);
    let gz = src.manifest(&Platform::host()).unwrap();

    let src = open_source(&format!("{base}:v2s2"), &opts).unwrap();
    let (doc, config, layers) = check_image(src.as_ref(), DOCKER_MANIFEST);
    assert_eq!(doc["mediaType"], DOCKER_MANIFEST);
    check_diff_ids(&config, &layers);

    // by digest
    let src = open_source(&format!("{base}@{}", gz.digest), &opts).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap(), gz);
    let wrong = sha256(b"not the manifest");
    let src = open_source(&format!("{base}@{wrong}"), &opts).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err().to_string();
    assert!(err.contains(&wrong), "{err}");

    // a multi-platform index, pushed as is
    let (amd64, arm64) = add_multi_platform_tag(&layout);
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://127.0.0.1:{}/test/img:multi", registry.port),
    ]));
    check_platforms(&format!("{base}:multi"), &opts, &amd64, &arm64);

    // a blob announced with another size than the descriptor's is refused
    let (digest, size) = first_layer(&gz.bytes);
    let err = src.open_blob(&digest, size + 1).err().unwrap().to_string();
    assert!(err.contains("expected"), "{err}");
}

/// Digest and size of the first layer of a manifest.
fn first_layer(manifest: &[u8]) -> (String, u64) {
    let doc: Value = serde_json::from_slice(manifest).unwrap();
    let l = &doc["layers"][0];
    (
        l["digest"].as_str().unwrap().to_owned(),
        l["size"].as_u64().unwrap(),
    )
}

#[test]
fn registry_basic_auth() {
    if !have(&["umoci", "skopeo", "docker-registry", "htpasswd"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let htpasswd = dir.path().join("htpasswd");
    run(Command::new("htpasswd").args(["-Bbc", htpasswd.to_str().unwrap(), "cfs", "s3cret"]));
    let registry = Registry::start(Some(&htpasswd));
    registry.push(&layout, "v1", &["--dest-creds", "cfs:s3cret"]);
    let host = format!("127.0.0.1:{}", registry.port);
    let reference = format!("docker://{host}/test/img:v1");

    let auth_file = dir.path().join("auth.json");
    let token = base64::engine::general_purpose::STANDARD.encode("cfs:s3cret");
    fs::write(
        &auth_file,
        format!(r#"{{"auths":{{"{host}/test":{{"auth":"{token}"}}}}}}"#),
    )
    .unwrap();
    let opts = SourceOptions {
        auth_file: Some(auth_file.clone()),
        ..SourceOptions::default()
    };
    let src = open_source(&reference, &opts).unwrap();
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);

    // without credentials (or with wrong ones) the registry refuses
    for auths in [
        r#"{"auths":{}}"#.to_owned(),
        format!(r#"{{"auths":{{"{host}":{{"username":"cfs","password":"wrong"}}}}}}"#),
    ] {
        fs::write(&auth_file, auths).unwrap();
        let src = open_source(&reference, &opts).unwrap();
        let err = src.manifest(&Platform::host()).unwrap_err().to_string();
        assert!(err.contains(&reference), "{err}");
    }
}
