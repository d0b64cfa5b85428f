//! The registry source against a stub registry that misbehaves: stalls in
//! the middle of a manifest or blob (idle timeout), sends manifests that are
//! too large or never end (size cap while reading).

use std::time::{Duration, Instant};

use crate::source::stub_registry::{Reply, StubRegistry};

use crate::source::{OCI_MANIFEST, Platform, SourceOptions, open_source, sha256_digest};

fn opts(secs: u64) -> SourceOptions {
    // No credentials from this machine's files.
    static AUTH: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = AUTH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("auth.json"), r#"{"auths":{}}"#).unwrap();
        dir
    });
    SourceOptions {
        timeout: Some(Duration::from_secs(secs)),
        auth_file: Some(dir.path().join("auth.json")),
        ..SourceOptions::default()
    }
}

/// Runs `f` in a thread; fails if it takes more than `secs` seconds.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("no answer within {secs} s"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the test thread failed"),
    }
}

/// The manifest error of `reference` with an idle timeout of `secs`, and
/// how long it took.
fn manifest_error(reference: String, secs: u64) -> (String, Duration) {
    within(60, move || {
        let src = open_source(&reference, &opts(secs)).unwrap();
        let start = Instant::now();
        let err = src.manifest(&Platform::host()).unwrap_err().to_string();
        (err, start.elapsed())
    })
}

#[test]
fn manifest_stall_times_out() {
    let stub = StubRegistry::start();
    stub.route(
        "/v2/test/img/manifests/v1",
        Reply::Stall {
            length: 1000,
            body: br#"{"schemaVersion":2,"#.to_vec(),
        },
    );
    let (err, took) = manifest_error(stub.reference("test/img:v1"), 2);
    assert!(
        err.contains("fetching the manifest") && err.contains("timed out"),
        "{err}"
    );
    assert!(err.contains("2 s"), "{err}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn oversized_manifests_are_refused_while_reading() {
    let stub = StubRegistry::start();
    let big = vec![b' '; 5 << 20];
    stub.route("/v2/test/img/manifests/big", Reply::ok(OCI_MANIFEST, &big));
    stub.route(
        "/v2/test/img/manifests/endless",
        Reply::Endless {
            content_type: OCI_MANIFEST.into(),
            fill: vec![b' '; 64 << 10],
        },
    );
    let (err, _) = manifest_error(stub.reference("test/img:big"), 10);
    assert!(
        err.contains("announces 5242880 bytes, more than the 4194304 accepted"),
        "{err}"
    );
    let (err, took) = manifest_error(stub.reference("test/img:endless"), 10);
    assert!(
        err.contains("larger than the 4194304 bytes accepted"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn error_bodies_are_reported() {
    let stub = StubRegistry::start();
    let (err, _) = manifest_error(stub.reference("test/img:gone"), 10);
    assert!(
        err.contains("HTTP 404") && err.contains("NAME_UNKNOWN: not here"),
        "{err}"
    );
}

/// An image whose layer blob stalls half way: the pull fails after the idle
/// timeout, naming the blob, and leaves no tag.
#[test]
fn blob_stall_fails_the_pull() {
    use cfs_core::repository::{InitOptions, Repository};

    let stub = StubRegistry::start();
    let layer = vec![7u8; 10_000];
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},"config":{}}"#;
    let (layer_digest, config_digest) = (sha256_digest(&layer), sha256_digest(config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    stub.route(
        "/v2/test/img/manifests/v1",
        Reply::ok(OCI_MANIFEST, manifest.as_bytes()),
    );
    stub.route(
        &format!("/v2/test/img/blobs/{config_digest}"),
        Reply::ok("application/octet-stream", config),
    );
    stub.route(
        &format!("/v2/test/img/blobs/{layer_digest}"),
        Reply::Stall {
            length: layer.len() as u64,
            body: layer[..4000].to_vec(),
        },
    );
    let reference = stub.reference("test/img:v1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let init = InitOptions {
        insecure: true,
        ..InitOptions::default()
    };
    Repository::init(&path, &init).unwrap();
    let (err, took) = within(60, move || {
        let repo = Repository::open(&path, &Default::default()).unwrap();
        let src = open_source(&reference, &opts(2)).unwrap();
        let start = Instant::now();
        let opts = crate::pull::PullOptions {
            tag: Some("t".into()),
            ..Default::default()
        };
        let err = crate::pull::pull(&repo, src.as_ref(), &opts)
            .unwrap_err()
            .to_string();
        assert!(crate::store::list_tags(&repo).unwrap().is_empty());
        // Nothing holds the repository: an exclusive lock is free.
        drop(repo);
        let again = Repository::open(&path, &Default::default()).unwrap();
        assert!(again.try_lock_exclusive().unwrap().is_some());
        (err, start.elapsed())
    });
    assert!(
        err.contains(&layer_digest) && err.contains("timed out"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn token_responses_are_read_within_a_limit() {
    let stub = StubRegistry::start();
    stub.route("/v2/", stub_challenge(stub.port));
    // The stub cannot check tokens: the manifest always asks for one, so
    // the error reports what the token request did.
    let challenge = stub_challenge(stub.port);
    stub.route("/v2/test/img/manifests/v1", challenge);
    stub.route(
        "/token",
        Reply::Endless {
            content_type: "application/json".into(),
            fill: b"{\"token\":\"aaaaaaaaaaaaaaaa".to_vec(),
        },
    );
    let (err, took) = manifest_error(stub.reference("test/img:v1"), 30);
    assert!(
        err.contains("larger than the 1048576 bytes accepted"),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    // A token service that answers properly: the token is used.
    stub.route(
        "/token",
        Reply::ok("application/json", br#"{"token":"t0k3n"}"#),
    );
    let (err, _) = manifest_error(stub.reference("test/img:v1"), 30);
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("token request"), "{err}");
}

fn stub_challenge(port: u16) -> Reply {
    Reply::Challenge {
        www_authenticate: format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="stub""#),
    }
}
