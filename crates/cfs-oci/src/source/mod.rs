//! Where images come from: OCI layout directories, OCI and Docker archives,
//! and registries (`docker://`).
//!
//! A source hands out the **manifest** of one platform (indexes are resolved
//! here, by [`Platform`]) with its raw bytes and digest, and readers of
//! **blobs** (config, layers) as stored. Sources do not verify blob digests:
//! the pull pipeline checks every blob's size and SHA-256 while it streams,
//! the same way for every source. Manifest digests *are* checked here, since
//! only the source knows which digest the reference asked for.
//!
//! Reference syntax (as skopeo / containers-image):
//! - `oci:DIR[:TAG]` — an OCI image layout directory; without a tag the
//!   layout must hold exactly one image (after platform selection);
//! - `oci-archive:FILE[:TAG]` — a tar of an OCI layout (optionally gzip or
//!   zstd compressed);
//! - `docker-archive:FILE[:REPO:TAG]` — `docker save` output (`manifest.json`);
//! - `docker://HOST/REPO[:TAG|@DIGEST]` — a registry (HTTPS, or plain HTTP
//!   for `localhost`, `127.0.0.1`, `[::1]` and registries in
//!   [`SourceOptions::insecure_registries`]).

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

/// A manifest fetched from a source (after index resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The raw bytes, exactly as served (never re-serialised).
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes` (verified).
    pub digest: String,
    /// The manifest media type (from the descriptor, the response or the
    /// document's `mediaType`; OCI manifest when none is given).
    pub media_type: String,
}

/// The OS/architecture an image index entry is chosen by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, …
    pub os: String,
    /// Go's `GOARCH` names: `amd64`, `arm64`, `ppc64le`, `s390x`, …
    pub architecture: String,
    /// `v7`, `v8`, … (`None` matches any variant).
    pub variant: Option<String>,
}

/// Options of [`open_source`].
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Registries (`host` or `host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Credentials file to use instead of the usual lookup order.
    pub auth_file: Option<PathBuf>,
}

/// Why a source could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The reference string is not understood.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference given.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Anything else (I/O, registry, JSON), with a message naming what failed.
    #[error("{0}")]
    Other(String),
}

/// An image source.
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// The reference, for messages (`docker://127.0.0.1:5000/test/img:v1`).
    fn describe(&self) -> String;

    /// The manifest for `platform` (an index is resolved to one entry); its
    /// digest is checked against the bytes (and against `@digest` when the
    /// reference has one).
    fn manifest(&self, platform: &Platform) -> Result<FetchedManifest, SourceError>;

    /// A reader of the blob `digest` as stored (`size` bytes as the
    /// descriptor says; compressed layers stay compressed). Not verified.
    fn open_blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, SourceError>;
}

/// Opens the source named by `reference` (see the [module docs](self)).
pub fn open_source(
    reference: &str,
    opts: &SourceOptions,
) -> Result<Box<dyn ImageSource>, SourceError> {
    let _ = opts;
    Err(SourceError::InvalidReference {
        reference: reference.to_owned(),
        reason: "not implemented yet".into(),
    })
}

impl Platform {
    /// The platform of this machine (interim; see the registry work).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64le",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    /// `os/arch[/variant]` (interim).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform {
                    os: os.into(),
                    architecture: arch.into(),
                    variant: variant.map(Into::into),
                })
            }
            _ => Err(format!("expected os/arch[/variant], got {s:?}")),
        }
    }
}
