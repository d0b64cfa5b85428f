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
//! - `docker-archive:FILE[:REPO:TAG]` — `docker save` output (`manifest.json`;
//!   FILE ends at the first `:`, as in containers-image);
//! - `docker://HOST/REPO[:TAG|@DIGEST]` — a registry (HTTPS, or plain HTTP
//!   for `localhost`, `127.0.0.1`, `[::1]` and registries in
//!   [`SourceOptions::insecure_registries`]); with
//!   [`SourceOptions::registries`], remapped, mirrored, made plain HTTP or
//!   blocked as that containers-registries.conf(5) configuration says.
//!
//! Submodules: `index` (index documents and platform choice, shared by all
//! sources), `oci_layout` (layouts in a directory or in a tar), `archive`
//! (tar member index, `oci-archive:`, `docker-archive:`), `registry`
//! (`docker://` over oci-client), [`registries_conf`]
//! (containers-registries.conf(5)), `mirrored` (trying a reference's
//! mirrors, then its primary location), `auth` (containers-auth.json
//! lookup) and `local_file` (opening layout, archive, credentials and
//! configuration files: regular files only, never blocking on a FIFO,
//! never leaving a layout through a symlink).

mod archive;
mod auth;
#[doc(hidden)]
pub mod fuzz;
mod index;
mod local_file;
mod mirrored;
mod oci_layout;
pub mod registries_conf;
mod registry;
mod registry_auth;
mod registry_http;
/// The workspace's stub registry, for the tests of `registry` and `mirrored`.
#[cfg(test)]
#[path = "../../../../tests/fixtures/stub_registry.rs"]
#[allow(dead_code)]
mod stub_registry;

pub use registries_conf::RegistriesConf;
pub use registry_http::DEFAULT_TIMEOUT;

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

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

impl Platform {
    /// The platform of this machine: `linux` and the Go name of
    /// [`std::env::consts::ARCH`] (`x86_64` → `amd64`, `aarch64` → `arm64`,
    /// little-endian `powerpc64` → `ppc64le`, `x86` → `386`, …), no variant.
    pub fn host() -> Self {
        Self {
            os: "linux".into(),
            architecture: go_arch(std::env::consts::ARCH, cfg!(target_endian = "little")).into(),
            variant: None,
        }
    }

    /// Whether an index entry's platform fits: OS and architecture equal,
    /// and the variant equal when `self` names one.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && self.variant.as_deref().is_none_or(|v| Some(v) == variant)
    }
}

/// Go's `GOARCH` name of a Rust `target_arch`.
fn go_arch(rust_arch: &str, little_endian: bool) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if little_endian => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if little_endian => "mips64le",
        "mips" if little_endian => "mipsle",
        other => other,
    }
}

impl FromStr for Platform {
    type Err = SourceError;

    /// Parses `OS/ARCH[/VARIANT]` (`linux/amd64`, `linux/arm/v7`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| SourceError::InvalidPlatform {
            platform: s.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad("expected OS/ARCH or OS/ARCH/VARIANT"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty component"));
        }
        Ok(Self {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Options of [`open_source`].
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Registries (`host` or `host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Credentials file to use instead of the usual lookup order.
    pub auth_file: Option<PathBuf>,
    /// Idle timeout of registry requests: a registry that sends nothing
    /// for this long fails the request ([`DEFAULT_TIMEOUT`] when `None`).
    pub timeout: Option<std::time::Duration>,
    /// containers-registries.conf(5) for `docker://` references
    /// ([`RegistriesConf::load_default`], or [`RegistriesConf::load`] for
    /// an explicit file); `None` pulls from the reference's registry as
    /// written.
    pub registries: Option<std::sync::Arc<RegistriesConf>>,
}

impl SourceOptions {
    /// The options for pulling `reference` as the container tools would:
    /// for a `docker://` reference, the registries configuration of this
    /// process ([`RegistriesConf::load_default`]), or the file `conf` when
    /// given; local sources need none, so a broken configuration file does
    /// not stop them.
    pub fn for_reference(
        reference: &str,
        conf: Option<&std::path::Path>,
    ) -> Result<Self, SourceError> {
        let registries = if reference.starts_with("docker://") {
            let conf = match conf {
                Some(path) => RegistriesConf::load(path)?,
                None => RegistriesConf::load_default()?,
            };
            Some(std::sync::Arc::new(conf))
        } else {
            None
        };
        Ok(Self {
            registries,
            ..Self::default()
        })
    }
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
    /// A platform string is not `OS/ARCH[/VARIANT]`.
    #[error("invalid platform {platform:?}: {reason}")]
    InvalidPlatform {
        /// The string given.
        platform: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry answered 404 for a manifest or blob: the message names
    /// what was asked for, where, and what the registry has instead.
    #[error("{0}")]
    NotFound(String),
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
///
/// Local sources are read (index, `manifest.json`, tar member offsets) when
/// opened; a registry source only parses the reference and builds its
/// client here, and talks to the registry in [`ImageSource::manifest`].
pub fn open_source(
    reference: &str,
    opts: &SourceOptions,
) -> Result<Box<dyn ImageSource>, SourceError> {
    let invalid = |reason: &str| SourceError::InvalidReference {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    let (transport, rest) = reference.split_once(':').ok_or_else(|| {
        invalid("expected TRANSPORT:… (oci:, oci-archive:, docker-archive:, docker://)")
    })?;
    match transport {
        "oci" => {
            let (path, tag) = split_path_tag(rest);
            if path.is_empty() {
                return Err(invalid("empty directory"));
            }
            Ok(Box::new(oci_layout::OciLayoutSource::open_dir(
                path.into(),
                tag,
            )?))
        }
        "oci-archive" => {
            let (path, tag) = split_path_tag(rest);
            if path.is_empty() {
                return Err(invalid("empty file name"));
            }
            Ok(Box::new(archive::open_oci_archive(path.into(), tag)?))
        }
        "docker-archive" => {
            let (path, name) = archive::split_docker_archive(rest);
            if path.is_empty() {
                return Err(invalid("empty file name"));
            }
            Ok(Box::new(archive::DockerArchiveSource::open(
                path.into(),
                name,
            )?))
        }
        "docker" => {
            let rest = rest
                .strip_prefix("//")
                .ok_or_else(|| invalid("expected docker://HOST/REPO[:TAG|@DIGEST]"))?;
            match &opts.registries {
                Some(conf) => mirrored::open(reference, rest, conf, opts),
                None => Ok(Box::new(registry::RegistrySource::open(rest, opts)?)),
            }
        }
        _ => Err(invalid(
            "unknown transport (expected oci:, oci-archive:, docker-archive: or docker://)",
        )),
    }
}

/// Splits `PATH[:TAG]`: the tag is what follows the last `:` when no `/`
/// follows it (`/a/b:v1` → `/a/b`, `v1`; `/a:b/c` → no tag).
fn split_path_tag(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, (!tag.is_empty()).then_some(tag)),
        _ => (spec, None),
    }
}

/// Media type of an OCI image manifest (the default).
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of a Docker image manifest, schema 2.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    cfs_core::verity::push_hex(&mut out, &Sha256::digest(bytes));
    out
}

/// `sha256:<hex>` of everything `reader` yields, and the byte count.
pub(crate) fn sha256_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    cfs_core::verity::push_hex(&mut out, &hasher.finalize());
    Ok((out, total))
}

/// The hex part of a `sha256:<64 lowercase hex>` digest, `None` otherwise
/// (so a digest can safely become a path component).
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_tag() {
        assert_eq!(split_path_tag("/a/b:v1"), ("/a/b", Some("v1")));
        assert_eq!(split_path_tag("/a/b"), ("/a/b", None));
        assert_eq!(split_path_tag("/a:x/b"), ("/a:x/b", None));
        assert_eq!(split_path_tag("rel:latest"), ("rel", Some("latest")));
        assert_eq!(split_path_tag("/a/b:"), ("/a/b", None));
    }

    #[test]
    fn platform_parse_display() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.os, "linux");
        assert_eq!(p.architecture, "arm64");
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(p.variant, None);
        assert_eq!(p.to_string(), "linux/amd64");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            let err = bad.parse::<Platform>().unwrap_err();
            assert!(err.to_string().contains("invalid platform"), "{bad}: {err}");
        }
    }

    #[test]
    fn platform_matching() {
        let any: Platform = "linux/arm".parse().unwrap();
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert!(any.matches("linux", "arm", Some("v6")));
        assert!(any.matches("linux", "arm", None));
        assert!(v7.matches("linux", "arm", Some("v7")));
        assert!(!v7.matches("linux", "arm", Some("v6")));
        assert!(!v7.matches("linux", "arm", None));
        assert!(!any.matches("windows", "arm", None));
    }

    #[test]
    fn go_arch_names() {
        assert_eq!(go_arch("x86_64", true), "amd64");
        assert_eq!(go_arch("aarch64", true), "arm64");
        assert_eq!(go_arch("powerpc64", true), "ppc64le");
        assert_eq!(go_arch("s390x", false), "s390x");
        assert_eq!(go_arch("riscv64", true), "riscv64");
        assert_eq!(go_arch("x86", true), "386");
        assert_eq!(go_arch("arm", true), "arm");
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(host.variant.is_none());
    }

    #[test]
    fn sha256_hex_checks() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sha256_hex(&d).is_some());
        assert!(sha256_hex("sha256:../../etc/passwd").is_none());
        assert!(sha256_hex("sha512:00").is_none());
        assert_eq!(sha256_reader(&b""[..]).unwrap(), (d, 0));
    }

    #[test]
    fn unknown_transport() {
        let err = open_source("ftp:x", &SourceOptions::default()).unwrap_err();
        assert!(err.to_string().contains("unknown transport"), "{err}");
        let err = open_source("nocolon", &SourceOptions::default()).unwrap_err();
        assert!(err.to_string().contains("TRANSPORT"), "{err}");
    }
}
