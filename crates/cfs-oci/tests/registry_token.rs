//! Bearer-token authentication against a real `docker-registry`, the flow
//! of Docker Hub, quay.io and ghcr.io: the registry answers 401 with a
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge, the
//! client gets a token from the realm (with Basic credentials when it has
//! them) and retries with `Authorization: Bearer <token>`.
//!
//! The realm is a small token server in a test thread. Its tokens are JWTs
//! signed RS256 with an RSA key made by the `openssl` CLI; the header
//! carries the self-signed certificate (`x5c`) that the registry trusts as
//! its `rootcertbundle`.
//!
//! A missing tool skips the test with a note, unless
//! `CFS_TEST_PRIVILEGED=require` is set, which turns it into a failure.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cfs_oci::source::{Platform, SourceOptions, open_source};
use common::{OCI_MANIFEST, Registry, check_image, have, make_layout, run};
use serde_json::json;

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";
const USER: &str = "cfs";
const PASSWORD: &str = "s3cret";

/// An RSA key and its self-signed certificate, made by `openssl`.
struct Signer {
    key: PathBuf,
    cert: PathBuf,
    /// The certificate, DER in standard base64: the JWT header's `x5c`.
    cert_der_b64: String,
}

impl Signer {
    fn new(dir: &Path) -> Self {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let der = dir.join("token-cert.der");
        run(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=cfs-test-token",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]));
        run(Command::new("openssl").args([
            "x509",
            "-in",
            cert.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]));
        let cert_der_b64 = STANDARD.encode(fs::read(&der).unwrap());
        Self {
            key,
            cert,
            cert_der_b64,
        }
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (JWT `RS256`) of `input`.
    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", self.key.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting openssl dgst");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "openssl dgst -sign failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A token for `subject` granting `access` (repository, actions).
    fn token(&self, subject: &str, access: &[(String, Vec<String>)], id: u64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]});
        let access: Vec<_> = access
            .iter()
            .map(|(name, actions)| json!({"type": "repository", "name": name, "actions": actions}))
            .collect();
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("cfs-test-{id}"),
            "access": access,
        });
        let encode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let input = format!("{}.{}", encode(&header), encode(&claims));
        let signature = URL_SAFE_NO_PAD.encode(self.sign(input.as_bytes()));
        format!("{input}.{signature}")
    }
}

/// Who gets a token.
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    /// Only `USER:PASSWORD` (Basic), for any requested action.
    CredentialsRequired,
    /// Also anonymous requests, for `pull` only.
    AnonymousPull,
}

/// One request the token server answered.
#[derive(Clone, Debug)]
struct Seen {
    /// The `Authorization` header, if any.
    authorization: Option<String>,
    /// The requested scopes.
    scopes: Vec<String>,
    /// Whether a token was issued.
    granted: bool,
}

/// The token server: `GET /token?service=…&scope=…` on 127.0.0.1, in a
/// thread stopped on drop.
struct TokenServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl TokenServer {
    fn start(signer: Signer, policy: Policy) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            let signer = Arc::new(signer);
            let ids = Arc::new(AtomicU64::new(0));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (seen, signer, ids) =
                        (Arc::clone(&seen), Arc::clone(&signer), Arc::clone(&ids));
                    std::thread::spawn(move || {
                        let id = ids.fetch_add(1, Ordering::SeqCst);
                        answer(conn, &signer, policy, id, &seen);
                    });
                }
            })
        };
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

/// `%XX` and `+` decoding of a query component.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).expect("bad %-escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The access granted for `repository:NAME:ACTIONS` scopes: all the
/// actions asked for, or only `pull` for an anonymous request.
fn grant(scopes: &[String], anonymous: bool) -> Vec<(String, Vec<String>)> {
    scopes
        .iter()
        .filter_map(|scope| {
            let (what, actions) = scope.rsplit_once(':')?;
            let name = what.strip_prefix("repository:")?;
            let actions = actions
                .split(',')
                .filter(|a| !anonymous || *a == "pull")
                .map(str::to_owned)
                .collect();
            Some((name.to_owned(), actions))
        })
        .collect()
}

/// Reads one request from `conn`, records it in `seen` (before answering,
/// so a test that has its answer also finds the record) and answers it;
/// `None` for a request that is not a token request (the wake-up connection
/// of drop).
fn answer(
    conn: TcpStream,
    signer: &Signer,
    policy: Policy,
    id: u64,
    seen: &Mutex<Vec<Seen>>,
) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.strip_prefix("GET ")?.split(' ').next()?.to_owned();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let query = target.strip_prefix("/token")?.trim_start_matches('?');
    let mut scopes = Vec::new();
    let mut service = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "scope" => scopes.extend(url_decode(value).split(' ').map(str::to_owned)),
            "service" => service = Some(url_decode(value)),
            _ => {}
        }
    }
    let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let user = match &authorization {
        None if policy == Policy::AnonymousPull => Some(""),
        Some(a) if *a == expected => Some(USER),
        _ => None,
    };
    let user = user.filter(|_| service.as_deref() == Some(SERVICE));
    let (status, body) = match user {
        Some(user) => {
            let token = signer.token(user, &grant(&scopes, user.is_empty()), id);
            (
                "200 OK",
                json!({"token": token, "access_token": token, "expires_in": 300}).to_string(),
            )
        }
        None => (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                .to_owned(),
        ),
    };
    seen.lock().unwrap().push(Seen {
        authorization,
        scopes,
        granted: user.is_some(),
    });
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.shutdown(Shutdown::Write);
    Some(())
}

/// A registry using `server` as its token realm, holding `test/img:v1`
/// (pushed by skopeo through the token flow with `USER:PASSWORD`).
struct Setup {
    registry: Registry,
    server: TokenServer,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(policy: Policy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = make_layout(dir.path());
        let signer = Signer::new(dir.path());
        let cert = signer.cert.clone();
        let server = TokenServer::start(signer, policy);
        let registry = Registry::start(Some(&format!(
            "  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            server.realm(),
            cert.display()
        )));
        let challenge = registry.get("/v2/");
        assert!(
            challenge
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer realm="),
            "the registry does not ask for a token: {challenge}"
        );
        registry.push(
            &layout,
            "v1",
            &["--dest-creds", &format!("{USER}:{PASSWORD}")],
        );
        Self {
            registry,
            server,
            dir,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.registry.port)
    }

    fn reference(&self) -> String {
        format!("docker://{}/test/img:v1", self.host())
    }

    /// Options reading credentials only from an auth file holding `auths`.
    fn options(&self, auths: &str) -> SourceOptions {
        let auth_file = self.dir.path().join("auth.json");
        fs::write(&auth_file, format!(r#"{{"auths":{{{auths}}}}}"#)).unwrap();
        SourceOptions {
            auth_file: Some(auth_file),
            ..SourceOptions::default()
        }
    }

    /// The token requests since the last call, skopeo's push included.
    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.server.seen.lock().unwrap())
    }
}

const PULL_SCOPE: &str = "repository:test/img:pull";

#[test]
fn token_with_credentials_from_auth_file() {
    if !have(&["umoci", "skopeo", "docker-registry", "openssl"]) {
        return;
    }
    let setup = Setup::new(Policy::CredentialsRequired);
    let pushed = setup.take_seen();
    assert!(
        pushed.iter().any(|s| s.granted
            && s.scopes
                .iter()
                .any(|scope| scope.contains("test/img") && scope.contains("push"))),
        "skopeo got no push token: {pushed:?}"
    );
    let basic = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let opts = setup.options(&format!(r#""{}":{{"auth":"{basic}"}}"#, setup.host()));
    let src = open_source(&setup.reference(), &opts).unwrap();
    check_image(src.as_ref(), OCI_MANIFEST);
    let seen = setup.take_seen();
    assert!(!seen.is_empty(), "no token request");
    for s in &seen {
        assert!(s.granted, "{s:?}");
        assert_eq!(s.authorization, Some(format!("Basic {basic}")), "{s:?}");
        assert_eq!(s.scopes, [PULL_SCOPE], "{s:?}");
    }
}

#[test]
fn token_refused_without_credentials() {
    if !have(&["umoci", "skopeo", "docker-registry", "openssl"]) {
        return;
    }
    let setup = Setup::new(Policy::CredentialsRequired);
    let reference = setup.reference();
    let wrong = STANDARD.encode(format!("{USER}:wrong"));
    for auths in [
        String::new(),
        format!(r#""{}":{{"auth":"{wrong}"}}"#, setup.host()),
    ] {
        setup.take_seen();
        let src = open_source(&reference, &setup.options(&auths)).unwrap();
        let err = src.manifest(&Platform::host()).unwrap_err().to_string();
        assert!(err.contains(&reference), "{err}");
        assert!(err.contains("fetching the manifest"), "{err}");
        assert!(err.contains("Not authorized"), "{err}");
        // Without credentials the message says so; with wrong ones it does not.
        assert_eq!(
            err.contains("no credentials for"),
            auths.is_empty(),
            "{err}"
        );
        let seen = setup.take_seen();
        assert!(
            !seen.is_empty() && seen.iter().all(|s| !s.granted),
            "{seen:?}"
        );
    }
}

#[test]
fn anonymous_token() {
    if !have(&["umoci", "skopeo", "docker-registry", "openssl"]) {
        return;
    }
    let setup = Setup::new(Policy::AnonymousPull);
    setup.take_seen();
    let src = open_source(&setup.reference(), &setup.options("")).unwrap();
    check_image(src.as_ref(), OCI_MANIFEST);
    let seen = setup.take_seen();
    assert!(!seen.is_empty(), "no token request");
    for s in &seen {
        assert!(s.granted && s.authorization.is_none(), "{s:?}");
        assert_eq!(s.scopes, [PULL_SCOPE], "{s:?}");
    }
}
