//! `docker://HOST[:PORT]/REPO[:TAG|@sha256:…]`: a registry, with a
//! private tokio runtime (two worker threads) owned by the source, so
//! callers stay synchronous.
//!
//! - Plain HTTP for `localhost`, `127.0.0.1`, `[::1]` (any port), the
//!   registries in `SourceOptions::insecure_registries` (`host:port`, or
//!   `host` for any port) and the endpoints registries.conf marks
//!   `insecure` ([`mirrored`](super::mirrored)); HTTPS otherwise (rustls,
//!   ring provider).
//! - Credentials from [`auth`](super::auth); bearer-token challenges are
//!   answered by oci-client, the content requests are made by
//!   [`registry_http`](super::registry_http), which bounds every wait (idle
//!   timeout, `SourceOptions::timeout`) and every buffered body (manifests
//!   at most 4 MiB).
//! - Manifests are requested with an Accept of the OCI manifest and index
//!   and the Docker schema 2 manifest and list (without it registries may
//!   answer with schema 1, which is rejected). Their SHA-256 is computed
//!   here and compared with the `@digest` of the reference or the index
//!   entry; an index is resolved by platform and the chosen manifest
//!   fetched by digest.
//! - A blob is a blocking reader over the HTTP body, one piece at a time,
//!   so memory stays bounded; it fails when the server sends more or fewer
//!   bytes than the descriptor's size, or nothing for the idle timeout.

use std::fmt;
use std::io::Read;
use std::sync::{Arc, Once};

use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use tokio::runtime::Runtime;

use super::auth::{self, AuthEnv};
use super::index::{MAX_DEPTH, choose_platform, doc_info, finish_manifest, index_entries};
use super::registry_http::{BlobReader, Body, DEFAULT_TIMEOUT, Http};
use super::{
    DOCKER_LIST, DOCKER_MANIFEST, FetchedManifest, ImageSource, OCI_INDEX, OCI_MANIFEST, Platform,
    SourceError, SourceOptions, sha256_digest,
};

/// The manifest types asked for.
const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A registry source.
pub(crate) struct RegistrySource {
    runtime: Arc<Runtime>,
    http: Http,
    reference: Reference,
    auth: RegistryAuth,
    describe: String,
}

impl fmt::Debug for RegistrySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrySource")
            .field("reference", &self.reference.whole())
            // Never the credentials themselves.
            .field("auth", &auth_kind(&self.auth))
            .finish_non_exhaustive()
    }
}

/// How a request authenticates, for debug output (no secrets).
fn auth_kind(auth: &RegistryAuth) -> &'static str {
    match auth {
        RegistryAuth::Anonymous => "anonymous",
        RegistryAuth::Basic(..) => "basic",
        RegistryAuth::Bearer(..) => "bearer",
    }
}

/// The host of `host[:port]` (`[::1]:5000` → `[::1]`).
pub(super) fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |end| &registry[..=end]);
    }
    registry.split_once(':').map_or(registry, |(host, _)| host)
}

/// Whether `registry` (`host[:port]`) is reached over plain HTTP.
fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        || insecure
            .iter()
            .any(|entry| entry == registry || (entry == host && !entry.contains(':')))
}

/// Installs the ring crypto provider as rustls' default once (oci-client's
/// TLS setup panics without one). "Already installed" is fine.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl RegistrySource {
    /// Parses `HOST/REPO[:TAG|@DIGEST]` (after `docker://`), looks up the
    /// credentials and builds the client and runtime. No network access.
    pub(crate) fn open(spec: &str, opts: &SourceOptions) -> Result<Self, SourceError> {
        Self::open_endpoint(spec, format!("docker://{spec}"), false, opts)
    }

    /// [`open`](Self::open) for `spec` as a registries.conf endpoint:
    /// `describe` names the source in messages (the user's reference, or
    /// the mirror's), and `insecure` asks for plain HTTP on top of the
    /// usual rules.
    pub(crate) fn open_endpoint(
        spec: &str,
        describe: String,
        insecure: bool,
        opts: &SourceOptions,
    ) -> Result<Self, SourceError> {
        let reference: Reference = spec.parse().map_err(|e| SourceError::InvalidReference {
            reference: describe.clone(),
            reason: format!("{e}"),
        })?;
        let auth_env = AuthEnv::from_process(opts.auth_file.clone());
        let auth = auth::lookup(&auth_env, reference.registry(), reference.repository())?;
        let registry = reference.resolve_registry().to_owned();
        let insecure = insecure || is_insecure(&registry, &opts.insecure_registries);
        let timeout = opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
        install_crypto_provider();
        let http = Http::new(auth.clone(), insecure, timeout)
            .map_err(|e| SourceError::Other(format!("{describe}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cfs-registry")
            .enable_all()
            .build()
            .map_err(|e| SourceError::Other(format!("{describe}: starting the runtime: {e}")))?;
        Ok(Self {
            runtime: Arc::new(runtime),
            http,
            reference,
            auth,
            describe,
        })
    }

    /// The raw manifest named by `reference` (tag or digest), at most
    /// 4 MiB.
    fn fetch(&self, reference: &Reference) -> Result<Vec<u8>, SourceError> {
        let what = format!("docker://{}: fetching the manifest", reference.whole());
        let url = self.http.manifest_url(reference);
        self.runtime.block_on(
            self.http
                .document(reference, &url, &ACCEPT.join(", "), &what),
        )
    }
}

impl RegistrySource {
    /// The plain-words error for a 404 on the reference's manifest: which
    /// tag (or digest) is missing from which repository, and the tags the
    /// repository has (or that the repository itself is unknown). `detail`
    /// is the registry's own answer, kept at the end.
    fn not_found(&self, detail: &str) -> SourceError {
        // The registry's own answer, without the request prefix.
        let detail = detail.find("HTTP ").map_or(detail, |at| &detail[at..]);
        let reference = &self.reference;
        let place = format!("{}/{}", reference.registry(), reference.repository());
        let missing = match (reference.digest(), reference.tag()) {
            (Some(digest), _) => format!("manifest {digest}"),
            (None, tag) => format!("tag {}", tag.unwrap_or("latest")),
        };
        let tags = self.runtime.block_on(self.http.tags(reference));
        let known = match tags {
            Ok(None) => {
                return SourceError::NotFound(format!(
                    "{}: repository {} not found on {} (the registry answered {detail})",
                    self.describe,
                    reference.repository(),
                    reference.registry()
                ));
            }
            Ok(Some(tags)) if tags.is_empty() => "; it has no tags".to_owned(),
            Ok(Some(mut tags)) => {
                tags.sort();
                let shown = tags.len().min(MAX_TAGS_SHOWN);
                let more = if tags.len() > shown {
                    format!(" and {} more", tags.len() - shown)
                } else {
                    String::new()
                };
                format!("; it has tags: {}{more}", tags[..shown].join(", "))
            }
            // The listing is a courtesy: a registry that refuses it still
            // gets the plain message.
            Err(_) => String::new(),
        };
        SourceError::NotFound(format!(
            "{}: {missing} not found in {place}{known} (the registry answered {detail})",
            self.describe
        ))
    }
}

/// Tags listed in a "not found" message at most.
const MAX_TAGS_SHOWN: usize = 20;

impl ImageSource for RegistrySource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn manifest(&self, platform: &Platform) -> Result<FetchedManifest, SourceError> {
        let what = &self.describe;
        let mut bytes = match self.fetch(&self.reference) {
            Err(SourceError::NotFound(detail)) => return Err(self.not_found(&detail)),
            other => other?,
        };
        let mut expected = self
            .reference
            .digest()
            .map_or_else(|| sha256_digest(&bytes), str::to_owned);
        let mut descriptor_type = None;
        for _ in 0..=MAX_DEPTH {
            let found = sha256_digest(&bytes);
            if found != expected {
                return Err(SourceError::Other(format!(
                    "{what}: manifest digest mismatch: expected {expected}, got {found}"
                )));
            }
            if !doc_info(&bytes, what)?.is_index {
                return finish_manifest(bytes, &expected, descriptor_type.as_deref(), what);
            }
            let entries = index_entries(&bytes, what)?;
            let chosen = choose_platform(&entries, platform, what)?;
            expected = chosen.digest.clone();
            descriptor_type = chosen.media_type.clone();
            bytes = self.fetch(&self.reference.clone_with_digest(expected.clone()))?;
        }
        Err(SourceError::Other(format!(
            "{what}: image indexes nested more than {MAX_DEPTH} levels deep"
        )))
    }

    fn open_blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        let what = format!("{}: blob {digest}", self.describe);
        let url = self.http.blob_url(&self.reference, digest);
        let response = self
            .runtime
            .block_on(self.http.get(&self.reference, &url, None, &what))?;
        if let Some(length) = response.content_length()
            && length != size
        {
            return Err(SourceError::Other(format!(
                "{what}: the registry announces {length} bytes, expected {size}"
            )));
        }
        Ok(Box::new(BlobReader {
            runtime: Arc::clone(&self.runtime),
            body: Body::Http(response),
            chunk: Vec::new(),
            pos: 0,
            received: 0,
            size,
            done: false,
            timeout: self.http.timeout(),
            what,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_hosts() {
        assert!(is_insecure("localhost", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("127.0.0.1:41234", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("example.com", &[]));
        let list = vec!["reg.lan:5000".to_owned(), "other.lan".to_owned()];
        assert!(is_insecure("reg.lan:5000", &list));
        assert!(!is_insecure("reg.lan:5001", &list));
        assert!(is_insecure("other.lan:8080", &list));
        assert!(is_insecure("other.lan", &list));
        assert_eq!(host_of("[::1]:5000"), "[::1]");
        assert_eq!(host_of("h:1"), "h");
    }

    #[test]
    fn reference_errors() {
        let err = RegistrySource::open("UPPER/Case", &SourceOptions::default()).unwrap_err();
        assert!(err.to_string().contains("docker://UPPER/Case"), "{err}");
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod stub_tests;
