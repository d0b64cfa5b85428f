//! Harness for the `cfsctl oci` acceptance tests: the binary under test, tool
//! checks, a private `docker-registry`, a tiny HTTP client, and writers for
//! hand-made tar layers and OCI layouts (for hostile and corrupt inputs).
//!
//! `CFS_OCI_TEST_CFSCTL=/path/to/cfsctl` runs the tests against another binary;
//! add `CFS_OCI_TEST_REFERENCE=1` when that binary is composefs-rs 0.9.4 (used
//! to develop the harness), which cannot pull `docker://` or Docker v2s2 here and
//! rejects umoci's dir→file whiteout quirk: those parts are then left out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::corpus::sha256_hex;
use crate::support::tools_dir;

/// True when the binary under test is composefs-rs (`CFS_OCI_TEST_REFERENCE`).
pub(crate) fn reference_mode() -> bool {
    std::env::var_os("CFS_OCI_TEST_REFERENCE").is_some()
}

/// `cfsctl --repo REPO`, with the binary from `CFS_OCI_TEST_CFSCTL` if set.
/// `RUST_BACKTRACE` is removed so error output is just the message.
pub(crate) fn cfs(repo: &Path) -> Command {
    let bin = std::env::var_os("CFS_OCI_TEST_CFSCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("cfsctl"));
    let mut c = Command::new(bin);
    c.env_remove("RUST_BACKTRACE")
        .env_remove("CFS_PARSE_STRICT")
        .stdin(Stdio::null())
        .arg("--repo")
        .arg(repo);
    c
}

/// Asserts success and returns stdout (`what` names the command in the message).
pub(crate) fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd`, panicking with the program name if it cannot start.
pub(crate) fn exec(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", cmd.get_program()))
}

/// Runs an external tool and asserts success.
pub(crate) fn sh(program: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut c = Command::new(program);
    for a in args {
        c.arg(a);
    }
    let what = format!(
        "{program} {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    ok(&what, &exec(c.stdin(Stdio::null())))
}

/// Creates an insecure SHA-256 repository at `repo`.
pub(crate) fn init_repo(repo: &Path) {
    ok(
        "init",
        &exec(
            cfs(repo)
                .args(["init", "--insecure", "--algorithm", "fsverity-sha256-12"])
                .arg(repo),
        ),
    );
}

/// True when all `tools` are on `PATH` (and we are root, which umoci unpack of
/// devices and the mounts need). Otherwise skips, or fails with
/// `CFS_TEST_PRIVILEGED=require`.
pub(crate) fn have_tools(test: &str, tools: &[&str]) -> bool {
    if !crate::support::privileged(test) {
        return false;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<_> = tools
        .iter()
        .filter(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require") {
        panic!("{test}: missing tools {missing:?}, and CFS_TEST_PRIVILEGED=require");
    }
    eprintln!("{test}: skipped (missing tools {missing:?})");
    false
}

/// Files (relative paths) below `repo/objects/`.
pub(crate) fn object_files(repo: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let objects = repo.join("objects");
    for (p, md) in crate::mount::walk(&objects) {
        if !md.is_dir() {
            out.insert(p);
        }
    }
    out
}

/// A `docker-registry` (distribution 2.8) on a free 127.0.0.1 port with
/// private storage; killed when dropped.
pub(crate) struct Registry {
    child: Child,
    /// The loopback address it listens on.
    ip: &'static str,
    pub(crate) port: u16,
    /// The storage root directory (`docker/registry/v2/…` below it).
    pub(crate) storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub(crate) fn start() -> Registry {
        Registry::start_on("127.0.0.1")
    }

    /// On another loopback address (`127.0.0.2`): a registry cfs does not
    /// take for a local one, so it is reached over HTTPS unless configured
    /// otherwise.
    pub(crate) fn start_on(ip: &'static str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("data");
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {ip}:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry {
            child,
            ip,
            port,
            storage,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = reg.try_get("/v2/", "application/json") {
                return reg;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry on port {port} did not answer /v2/ within 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// HTTP/1.0 GET (so no chunked encoding): status and body.
    pub(crate) fn try_get(&self, path: &str, accept: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let (status, _, body) = self.request("GET", path, &[("Accept", accept)], b"")?;
        Ok((status, body))
    }

    /// One HTTP/1.0 request: status, raw header block, body.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String, Vec<u8>)> {
        let mut s = TcpStream::connect((self.ip, self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}:{}\r\n",
            self.ip, self.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no end of HTTP headers"))?;
        let head = String::from_utf8_lossy(&resp[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
        Ok((status, head, resp[split + 4..].to_vec()))
    }

    /// Uploads one blob to repository `name` (monolithic POST + PUT).
    fn upload_blob(&self, name: &str, bytes: &[u8]) {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let (status, head, body) = self
            .request("POST", &format!("/v2/{name}/blobs/uploads/"), &[], b"")
            .unwrap();
        assert_eq!(
            status,
            202,
            "starting upload: {}",
            String::from_utf8_lossy(&body)
        );
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_string())
            })
            .expect("upload Location header");
        let location = match location.find("/v2/") {
            Some(i) => location[i..].to_string(),
            None => location,
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let (status, _, body) = self
            .request(
                "PUT",
                &format!("{location}{sep}digest={digest}"),
                &[("Content-Type", "application/octet-stream")],
                bytes,
            )
            .unwrap();
        assert_eq!(
            status,
            201,
            "uploading {digest}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Pushes the image of a layout written by [`write_layout`] as `name:tag`
    /// with its blobs unchanged (skopeo would compress uncompressed layers).
    pub(crate) fn push_layout_raw(&self, layout: &Path, name: &str, tag: &str) {
        let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        self.upload_blob(name, &blob(m["config"]["digest"].as_str().unwrap()));
        for l in m["layers"].as_array().unwrap() {
            self.upload_blob(name, &blob(l["digest"].as_str().unwrap()));
        }
        let (status, _, body) = self
            .request(
                "PUT",
                &format!("/v2/{name}/manifests/{tag}"),
                &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
                &manifest,
            )
            .unwrap();
        assert_eq!(
            status,
            201,
            "putting manifest: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// GET that must answer 200; returns the body.
    pub(crate) fn get(&self, path: &str, accept: &str) -> Vec<u8> {
        let (status, body) = self
            .try_get(path, accept)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// The registry's file for a blob (to corrupt it in place).
    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `skopeo copy [extra…] SRC docker://HOST/DEST` over plain HTTP.
    pub(crate) fn push(&self, src: &str, dest: &str, extra: &[&str]) {
        let dest = format!("docker://{}/{dest}", self.host());
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"copy", &"--dest-tls-verify=false"];
        for e in extra {
            args.push(e);
        }
        args.push(&src);
        args.push(&dest);
        sh("skopeo", &args);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Hand-made tar layers.

/// One tar header's fields; `Default` is a root-owned regular file, mode 0644.
#[derive(Clone, Debug)]
pub(crate) struct Hdr {
    pub(crate) path: String,
    pub(crate) kind: u8,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: u64,
    pub(crate) link: String,
    pub(crate) dev: (u32, u32),
    /// PAX records written in an `x` header before this entry.
    pub(crate) pax: Vec<(String, Vec<u8>)>,
    /// Size field; `None` = the length of the data.
    pub(crate) size: Option<u64>,
    /// GNU magic (`ustar  \0`) instead of POSIX ustar.
    pub(crate) gnu: bool,
}

impl Default for Hdr {
    fn default() -> Hdr {
        Hdr {
            path: String::new(),
            kind: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: String::new(),
            dev: (0, 0),
            pax: Vec::new(),
            size: None,
            gnu: false,
        }
    }
}

fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}", width = field.len() - 1);
    assert!(s.len() < field.len(), "{value} does not fit a tar field");
    field[..s.len()].copy_from_slice(s.as_bytes());
}

fn header_block(h: &Hdr, size: u64) -> [u8; 512] {
    let mut b = [0u8; 512];
    assert!(
        h.path.len() <= 100 && h.link.len() <= 100,
        "use PAX path/linkpath"
    );
    b[..h.path.len()].copy_from_slice(h.path.as_bytes());
    octal(&mut b[100..108], u64::from(h.mode));
    octal(&mut b[108..116], u64::from(h.uid));
    octal(&mut b[116..124], u64::from(h.gid));
    octal(&mut b[124..136], size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.kind;
    b[157..157 + h.link.len()].copy_from_slice(h.link.as_bytes());
    if h.gnu {
        b[257..265].copy_from_slice(b"ustar  \0");
    } else {
        b[257..265].copy_from_slice(b"ustar\x0000");
    }
    octal(&mut b[329..337], u64::from(h.dev.0));
    octal(&mut b[337..345], u64::from(h.dev.1));
    set_checksum(&mut b);
    b
}

/// Writes the header checksum (the header must hold spaces-or-zero there).
pub(crate) fn set_checksum(b: &mut [u8; 512]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
}

fn pax_data(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while format!("{len}").len() + body != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// An uncompressed tar archive built entry by entry.
#[derive(Default, Debug)]
pub(crate) struct Tar(pub(crate) Vec<u8>);

impl Tar {
    /// Appends an entry (PAX header first if `h.pax` is not empty).
    pub(crate) fn entry(&mut self, h: Hdr, data: &[u8]) -> &mut Tar {
        if !h.pax.is_empty() {
            let d = pax_data(&h.pax);
            let ph = Hdr {
                path: "PaxHeaders/x".into(),
                kind: b'x',
                ..Hdr::default()
            };
            self.0.extend_from_slice(&header_block(&ph, d.len() as u64));
            self.0.extend_from_slice(&d);
            pad(&mut self.0);
        }
        let size = h.size.unwrap_or(data.len() as u64);
        self.0.extend_from_slice(&header_block(&h, size));
        self.0.extend_from_slice(data);
        pad(&mut self.0);
        self
    }

    pub(crate) fn dir(&mut self, path: &str) -> &mut Tar {
        self.entry(
            Hdr {
                path: path.into(),
                kind: b'5',
                mode: 0o755,
                ..Hdr::default()
            },
            b"",
        )
    }

    pub(crate) fn file(&mut self, path: &str, data: &[u8]) -> &mut Tar {
        self.entry(
            Hdr {
                path: path.into(),
                ..Hdr::default()
            },
            data,
        )
    }

    /// A link entry (`kind` b'1' hard, b'2' symbolic).
    pub(crate) fn link(&mut self, kind: u8, path: &str, target: &str) -> &mut Tar {
        self.entry(
            Hdr {
                path: path.into(),
                kind,
                mode: 0o777,
                link: target.into(),
                ..Hdr::default()
            },
            b"",
        )
    }

    /// The archive with its two end blocks.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

// ---------------------------------------------------------------------------
// OCI layouts from raw layers.

/// One layer blob as it goes into a layout.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub(crate) bytes: Vec<u8>,
    pub(crate) media_type: &'static str,
    /// The diff_id written to the config.
    pub(crate) diff_id: String,
}

pub(crate) const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An uncompressed layer.
pub(crate) fn plain(tar: Vec<u8>) -> Blob {
    Blob {
        diff_id: format!("sha256:{}", sha256_hex(&tar)),
        bytes: tar,
        media_type: TAR,
    }
}

/// A gzip layer.
pub(crate) fn gzip(tar: Vec<u8>) -> Blob {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&tar).unwrap();
    Blob {
        diff_id: format!("sha256:{}", sha256_hex(&tar)),
        bytes: enc.finish().unwrap(),
        media_type: TAR_GZ,
    }
}

/// The GOARCH name of this machine.
pub(crate) fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(crate) fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    let p = dir.join("blobs/sha256").join(&hex);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    format!("sha256:{hex}")
}

/// Writes an OCI image layout at `dir` with one image tagged `tag` made of
/// `layers` (descriptor digests and sizes always match the blob bytes; the
/// config's diff_ids are the blobs' `diff_id`s). Returns the manifest digest.
pub(crate) fn write_layout(dir: &Path, tag: &str, layers: &[Blob]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    for l in layers {
        let digest = write_blob(dir, &l.bytes);
        descs.push(serde_json::json!({
            "mediaType": l.media_type, "digest": digest, "size": l.bytes.len()
        }));
    }
    let config = serde_json::json!({
        "architecture": goarch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = write_blob(dir, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest, "size": config.len()
        },
        "layers": descs,
    }))
    .unwrap();
    let manifest_digest = write_blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    manifest_digest
}

/// The `usr/` directory every hand-made image starts with (the composefs OCI
/// normalisation copies its metadata onto `/`).
pub(crate) fn base_tar() -> Tar {
    let mut t = Tar::default();
    t.dir("usr/").dir("etc/");
    t
}

/// Five layer listings naming three distinct layers: one layer twice (first
/// and last), an empty layer twice, and one that whites out a file of the
/// first (as images with repeated `RUN` steps have).
pub(crate) fn repeated_layers() -> Vec<Blob> {
    let mut l1 = base_tar();
    l1.file("etc/a", &[1u8; 200]).file("etc/gone", &[2u8; 300]);
    let l1 = l1.finish();
    let mut l2 = base_tar();
    l2.file("etc/.wh.gone", b"").file("etc/b", b"b");
    let empty = Tar::default().finish();
    vec![
        plain(l1.clone()),
        plain(empty.clone()),
        gzip(l2.finish()),
        plain(empty),
        plain(l1),
    ]
}
