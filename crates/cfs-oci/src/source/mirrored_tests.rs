//! Mirrors against stub registries on 127.0.0.1: a mirror that answers 404
//! or is not there at all, then the primary; a mirror that has the image;
//! everything failing. The user's reference names a registry that does not
//! exist (`registry.invalid`): only the configured locations are contacted.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::source::registries_conf::RegistriesConf;
use crate::source::stub_registry::{Reply, StubRegistry};
use crate::source::{
    OCI_MANIFEST, Platform, SourceError, SourceOptions, open_source, sha256_digest,
};

const REFERENCE: &str = "docker://registry.invalid/test/img:v1";
const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;

/// Options with `conf` and no credentials from this machine's files.
fn opts(conf: &str) -> SourceOptions {
    static AUTH: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = AUTH.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("auth.json"), r#"{"auths":{}}"#).unwrap();
        dir
    });
    let conf = RegistriesConf::parse(conf, Path::new("/test/registries.conf")).unwrap();
    SourceOptions {
        timeout: Some(Duration::from_secs(10)),
        auth_file: Some(dir.path().join("auth.json")),
        registries: Some(Arc::new(conf)),
        ..SourceOptions::default()
    }
}

/// `registry.invalid/test` is served by `primary`, with `mirrors` tried
/// first (`HOST:PORT` each).
fn conf(primary: &str, mirrors: &[&str]) -> String {
    let mut text = format!(
        "[[registry]]\nprefix = \"registry.invalid/test\"\nlocation = \"{primary}/test\"\n"
    );
    for mirror in mirrors {
        text.push_str(&format!(
            "[[registry.mirror]]\nlocation = \"{mirror}/test\"\n"
        ));
    }
    text
}

/// A stub serving `test/img:v1` (a manifest and its config blob); the
/// manifest's digest.
fn serve_image(stub: &StubRegistry) -> String {
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        sha256_digest(CONFIG),
        CONFIG.len()
    );
    stub.route(
        "/v2/test/img/manifests/v1",
        Reply::ok(OCI_MANIFEST, manifest.as_bytes()),
    );
    stub.route(
        &format!("/v2/test/img/blobs/{}", sha256_digest(CONFIG)),
        Reply::ok("application/octet-stream", CONFIG),
    );
    sha256_digest(manifest.as_bytes())
}

/// `HOST:PORT` of a stub.
fn host(stub: &StubRegistry) -> String {
    format!("127.0.0.1:{}", stub.port)
}

/// `HOST:PORT` where nothing listens.
fn dead_host() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("127.0.0.1:{port}")
}

/// The manifest digest of `REFERENCE` under `conf`, and the config blob
/// read through the same source.
fn pull(conf: &str) -> Result<(String, Vec<u8>), SourceError> {
    let src = open_source(REFERENCE, &opts(conf))?;
    assert_eq!(src.describe(), REFERENCE);
    let manifest = src.manifest(&Platform::host())?;
    let mut config = Vec::new();
    src.open_blob(&sha256_digest(CONFIG), CONFIG.len() as u64)?
        .read_to_end(&mut config)
        .unwrap();
    Ok((manifest.digest, config))
}

#[test]
fn a_mirror_without_the_image_falls_back_to_the_primary() {
    let (mirror, primary) = (StubRegistry::start(), StubRegistry::start());
    let digest = serve_image(&primary);
    let got = pull(&conf(&host(&primary), &[&host(&mirror)])).unwrap();
    assert_eq!(got, (digest, CONFIG.to_vec()));
}

#[test]
fn an_unreachable_mirror_falls_back_to_the_primary() {
    let primary = StubRegistry::start();
    let digest = serve_image(&primary);
    let got = pull(&conf(&host(&primary), &[&dead_host()])).unwrap();
    assert_eq!(got, (digest, CONFIG.to_vec()));
}

#[test]
fn a_mirror_with_the_image_serves_everything() {
    let (empty, mirror) = (StubRegistry::start(), StubRegistry::start());
    let digest = serve_image(&mirror);
    // The primary is never contacted.
    let got = pull(&conf(&dead_host(), &[&host(&empty), &host(&mirror)])).unwrap();
    assert_eq!(got, (digest, CONFIG.to_vec()));
}

#[test]
fn without_mirrors_the_location_is_used_directly() {
    let primary = StubRegistry::start();
    let digest = serve_image(&primary);
    let conf = conf(&host(&primary), &[]);
    let src = open_source(REFERENCE, &opts(&conf)).unwrap();
    assert!(format!("{src:?}").starts_with("RegistrySource"), "{src:?}");
    assert_eq!(pull(&conf).unwrap(), (digest, CONFIG.to_vec()));
}

#[test]
fn when_everything_fails_every_error_is_reported() {
    let (mirror, primary) = (StubRegistry::start(), StubRegistry::start());
    let dead = dead_host();
    let conf = conf(&host(&primary), &[&dead, &host(&mirror)]);
    let src = open_source(REFERENCE, &opts(&conf)).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err();
    assert!(matches!(err, SourceError::NotFound(_)), "{err:?}");
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // The primary's error first, in the user's terms.
    assert!(
        lines[0].starts_with(&format!(
            "{REFERENCE}: repository test/img not found on {}",
            host(&primary)
        )),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "  mirror docker://{dead}/test/img:v1: fetching the manifest: "
        )) && lines[1].contains("onnection refused"),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "  mirror docker://{}/test/img:v1: repository test/img not found",
            host(&mirror)
        )),
        "{text}"
    );
}

#[test]
fn blocked_references_are_not_opened() {
    let conf = "[[registry]]\nprefix = \"registry.invalid\"\nblocked = true\n";
    let err = open_source(REFERENCE, &opts(conf)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{REFERENCE}: pulls from registry.invalid are blocked by /test/registries.conf")
    );
}
