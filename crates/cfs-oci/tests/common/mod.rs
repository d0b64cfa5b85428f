//! Helpers shared by the source tests: tool checks, an OCI layout made by
//! `umoci`, image checks, and a local `docker-registry`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cfs_oci::source::{ImageSource, Platform};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Whether every tool is installed; skips (or fails when required) if not.
#[allow(clippy::print_stderr)] // the skip note is for whoever runs the tests
pub(crate) fn have(tools: &[&str]) -> bool {
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

pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for b in Sha256::digest(bytes) {
        s += &format!("{b:02x}");
    }
    s
}

/// An OCI layout `L` with tag `v1`: one layer holding a few files.
pub(crate) fn make_layout(dir: &Path) -> PathBuf {
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

pub(crate) fn read_blob(src: &dyn ImageSource, digest: &str, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    src.open_blob(digest, size)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Reads the manifest, then the config and every layer, checking sizes and
/// digests; returns the manifest document and the layers' bytes.
pub(crate) fn check_image(
    src: &dyn ImageSource,
    media_type: &str,
) -> (Value, Value, Vec<(String, Vec<u8>)>) {
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

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` on 127.0.0.1, killed on drop.
pub(crate) struct Registry {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry; `auth` is its `auth:` section (YAML), if any.
    pub(crate) fn start(auth: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if let Some(auth) = auth {
            config += "auth:\n";
            config += auth;
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
        self.try_get("/v2/")
            .is_some_and(|reply| reply.starts_with("HTTP/1.1 "))
    }

    /// The whole HTTP answer to `GET path`, if the registry answers.
    fn try_get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut reply = String::new();
        s.write_all(request.as_bytes()).ok()?;
        s.read_to_string(&mut reply).ok()?;
        Some(reply)
    }

    /// The whole HTTP answer to `GET path`.
    #[allow(dead_code)] // not every test binary asks
    pub(crate) fn get(&self, path: &str) -> String {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} from the registry failed"))
    }

    pub(crate) fn push(&self, layout: &Path, tag: &str, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/test/img:{tag}", self.port));
        run(&mut cmd);
    }
}
