//! OCI images in a repository (repository.md §12): manifest and config
//! streams, tags under `streams/refs/oci/`, images built from the layers.
//!
//! Layout (names are stream content ids under `streams/`):
//!
//! - `oci-layer-<diff_id>` (`ocilayer`): the layer tar, split ([`crate::layer`]);
//! - `oci-config-<config digest>` (`ociconfg`): one external chunk holding the
//!   raw config JSON; named refs `<diff_id>` → layer stream object, one per
//!   `rootfs.diff_ids` entry (added in that order), then `composefs.image`
//!   (V2 image) and/or `composefs.image.v1` (V1 image) → the EROFS image;
//! - `oci-manifest-<manifest digest>` (`ocimanif`): one external chunk holding
//!   the raw manifest; named refs `config:<config digest>` → config stream
//!   object (first), then `<diff_id>` → layer stream object for each layer;
//! - tags: `streams/refs/oci/<encoded tag>` → `streams/oci-manifest-…`, where
//!   the tag is encoded by replacing `%` with `%25`, then `/` with `%2F`.
//!
//! Raw manifest and config bytes are kept exactly as fetched, so their
//! digests stay verifiable; they are re-hashed whenever they are read.

use std::fmt;

use cfs_core::repository::{RepoError, Repository};
use cfs_core::splitstream::{Chunk, ContentType, SplitStream, SplitStreamError, SplitStreamWriter};
use cfs_core::tree::{FileSystem, XattrFilter};
use cfs_core::verity::{Digest, push_hex};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use sha2::{Digest as _, Sha256};

use crate::merge::{MergeError, build_tree_from_streams};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker v2 schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Largest manifest or config accepted (4 MiB).
pub const MAX_JSON_SIZE: u64 = 4 << 20;
/// Named ref of the V2 EROFS image in a config stream.
pub const IMAGE_REF_V2: &str = "composefs.image";
/// Named ref of the V1 EROFS image in a config stream.
pub const IMAGE_REF_V1: &str = "composefs.image.v1";
/// Directory of tags below `streams/refs/`.
pub const TAG_DIR: &str = "oci";

/// Why an OCI image could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A stored stream is malformed.
    #[error("stream {name}: {source}")]
    Stream {
        /// The stream content id.
        name: String,
        /// The error.
        #[source]
        source: SplitStreamError,
    },
    /// Something stored is not what it should be.
    #[error("{0}")]
    Corrupt(String),
    /// A tag or image name is invalid or unknown.
    #[error("{0}")]
    NotFound(String),
    /// A tag name is not acceptable.
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The tag.
        tag: String,
        /// Why.
        reason: &'static str,
    },
    /// A manifest or config is not valid JSON of the expected kind.
    #[error("{what} {digest}: {message}")]
    Json {
        /// `manifest` or `config`.
        what: &'static str,
        /// Its digest.
        digest: String,
        /// The parser's message.
        message: String,
    },
    /// Building the merged tree failed.
    #[error("building the image tree: {0}")]
    Merge(#[from] MergeError),
}

type Result<T> = std::result::Result<T, StoreError>;

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let mut s = String::from("sha256:");
    push_hex(&mut s, &Sha256::digest(data));
    s
}

/// Accepts `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The stream content id of a layer.
pub fn layer_stream_id(diff_id: &str) -> String {
    format!("oci-layer-{diff_id}")
}

/// The stream content id of a config.
pub fn config_stream_id(digest: &str) -> String {
    format!("oci-config-{digest}")
}

/// The stream content id of a manifest.
pub fn manifest_stream_id(digest: &str) -> String {
    format!("oci-manifest-{digest}")
}

/// Named ref of the V2 boot image (default xattr mode) in a config stream.
pub const BOOT_REF_V2: &str = "composefs.image.boot";
/// Named ref of the V1 boot image (default xattr mode) in a config stream.
pub const BOOT_REF_V1: &str = "composefs.image.boot.v1";

/// The named ref of the EROFS image of `version` in a config stream
/// (V0 and V1 share the C layout and the `.v1` name, as in composefs-rs).
pub fn image_ref_name(version: u32) -> &'static str {
    if version == 2 {
        IMAGE_REF_V2
    } else {
        IMAGE_REF_V1
    }
}

/// The named ref of the boot image of `version` built with xattr mode
/// `filter`: `composefs.image.boot[.v1]`, plus `.xattrs=<mode>` for a mode
/// other than the default.
pub fn boot_ref_name(version: u32, filter: XattrFilter) -> String {
    let base = if version == 2 {
        BOOT_REF_V2
    } else {
        BOOT_REF_V1
    };
    match filter {
        XattrFilter::AllowlistOnly => base.to_owned(),
        other => format!("{base}.xattrs={}", other.as_str()),
    }
}

/// Order of a config stream's named refs: layers (in `diff_ids` order),
/// `composefs.image`, `composefs.image.v1`, then the rest by name.
fn config_ref_order(diff_ids: &[String], name: &str) -> (usize, usize) {
    if let Some(i) = diff_ids.iter().position(|d| d == name) {
        (0, i)
    } else if name == IMAGE_REF_V2 {
        (1, 0)
    } else if name == IMAGE_REF_V1 {
        (2, 0)
    } else {
        (3, 0)
    }
}

/// Rewrites the config stream of `img` with `add` merged into its named
/// refs (replacing refs of the same name), then its manifest stream, whose
/// `config:` ref changes with it; tags follow (they name the stream).
/// Returns the image as now stored.
pub fn link_config_refs(
    repo: &Repository,
    img: &OciImage,
    add: &[(String, Digest)],
) -> Result<OciImage> {
    let diff_ids: Vec<String> = img.layers()?.into_iter().map(|(d, _)| d).collect();
    let mut refs: Vec<(String, Digest)> = img
        .config_stream
        .named
        .iter()
        .filter(|(n, _)| !add.iter().any(|(a, _)| a == n))
        .cloned()
        .collect();
    refs.extend(add.iter().cloned());
    refs.sort_by(|(a, _), (b, _)| {
        config_ref_order(&diff_ids, a)
            .cmp(&config_ref_order(&diff_ids, b))
            .then_with(|| a.cmp(b))
    });
    let config_object = write_blob_stream(
        repo,
        &config_stream_id(&img.config_digest),
        ContentType::OCI_CONFIG,
        &img.config_stream.bytes,
        &refs,
        None,
    )?;
    let mut manifest_refs = vec![(format!("config:{}", img.config_digest), config_object)];
    let mut named = std::collections::HashSet::new();
    for (diff_id, layer) in img.layers()? {
        if named.insert(diff_id.clone()) {
            manifest_refs.push((diff_id, layer));
        }
    }
    write_blob_stream(
        repo,
        &manifest_stream_id(&img.manifest_digest),
        ContentType::OCI_MANIFEST,
        &img.manifest_stream.bytes,
        &manifest_refs,
        None,
    )?;
    OciImage::open_manifest(repo, &img.manifest_digest)
}

/// Encodes a tag for use as a file name: `%` → `%25`, then `/` → `%2F`.
pub fn encode_tag(tag: &str) -> String {
    tag.replace('%', "%25").replace('/', "%2F")
}

/// Decodes [`encode_tag`] output in one left-to-right pass (`%2F` → `/`,
/// `%25` → `%`, anything else kept).
pub fn decode_tag(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("%25") {
            out.push('%');
            rest = t;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Checks that `tag` can be stored.
pub fn check_tag(tag: &str) -> Result<()> {
    let bad = |reason| {
        Err(StoreError::InvalidTag {
            tag: tag.to_owned(),
            reason,
        })
    };
    if tag.is_empty() {
        return bad("empty");
    }
    if tag.starts_with('@') {
        return bad("a leading '@' is reserved for digest references");
    }
    if tag.contains('\0') {
        return bad("contains NUL");
    }
    let enc = encode_tag(tag);
    if enc.len() > 255 {
        return bad("longer than 255 bytes once encoded");
    }
    if enc == "." || enc == ".." || enc.starts_with(".tmp-") {
        return bad("reserved name");
    }
    Ok(())
}

/// The stream ref path (below `streams/refs/`) of a tag.
pub fn tag_ref(tag: &str) -> String {
    format!("{TAG_DIR}/{}", encode_tag(tag))
}

/// Writes a stream holding `bytes` as one external object, with `named` refs
/// (in order), linked as `streams/<content_id>` and optionally tagged.
pub fn write_blob_stream(
    repo: &Repository,
    content_id: &str,
    content_type: ContentType,
    bytes: &[u8],
    named: &[(String, Digest)],
    ref_name: Option<&str>,
) -> Result<Digest> {
    let (object, _) = repo.ensure_object_bytes(bytes)?;
    let stream_err = |source| StoreError::Stream {
        name: content_id.to_owned(),
        source,
    };
    let mut writer = SplitStreamWriter::new(repo.algorithm(), content_type);
    writer
        .add_external(&object, bytes.len() as u64)
        .map_err(stream_err)?;
    for (name, digest) in named {
        writer.add_named_ref(name, digest).map_err(stream_err)?;
    }
    Ok(repo.write_stream(content_id, writer, ref_name)?)
}

/// A stream holding one blob: its bytes and named refs.
#[derive(Debug, Clone)]
pub struct BlobStream {
    /// The stream object's digest.
    pub object: Digest,
    /// The blob bytes.
    pub bytes: Vec<u8>,
    /// The named refs, sorted by name.
    pub named: Vec<(String, Digest)>,
}

impl BlobStream {
    /// The named ref `name`.
    pub fn named_ref(&self, name: &str) -> Option<&Digest> {
        self.named.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }
}

/// Reads the stream `streams/<content_id>` written by [`write_blob_stream`]
/// (the content must be one external chunk of at most [`MAX_JSON_SIZE`]).
pub fn read_blob_stream(
    repo: &Repository,
    content_id: &str,
    content_type: ContentType,
) -> Result<BlobStream> {
    let (data, object) = repo.read_stream_bytes(content_id)?;
    let stream_err = |source| StoreError::Stream {
        name: content_id.to_owned(),
        source,
    };
    let stream = SplitStream::parse(&data).map_err(stream_err)?;
    if stream.content_type() != content_type {
        return Err(StoreError::Corrupt(format!(
            "stream {content_id}: content type {:?}, expected {:?}",
            stream.content_type(),
            content_type
        )));
    }
    let mut bytes = Vec::new();
    for chunk in stream.chunks().map_err(stream_err)? {
        match chunk.map_err(stream_err)? {
            Chunk::Inline(piece) => bytes.extend_from_slice(&piece),
            Chunk::External { digest, .. } => {
                let blob = repo.read_object(&digest, MAX_JSON_SIZE)?;
                bytes.extend_from_slice(&blob);
            }
        }
        if bytes.len() as u64 > MAX_JSON_SIZE {
            return Err(StoreError::Corrupt(format!(
                "stream {content_id}: more than {MAX_JSON_SIZE} bytes"
            )));
        }
    }
    let named = stream.named_refs().map_err(stream_err)?;
    Ok(BlobStream {
        object,
        bytes,
        named,
    })
}

/// Parses a manifest (OCI or Docker v2s2).
pub fn parse_manifest(bytes: &[u8], digest: &str) -> Result<ImageManifest> {
    let m: ImageManifest = crate::json::parse(bytes).map_err(|message| StoreError::Json {
        what: "manifest",
        digest: digest.to_owned(),
        message,
    })?;
    if m.schema_version() != 2 {
        return Err(StoreError::Json {
            what: "manifest",
            digest: digest.to_owned(),
            message: format!("schemaVersion {} (expected 2)", m.schema_version()),
        });
    }
    Ok(m)
}

/// Parses an image config (OCI or Docker).
pub fn parse_config(bytes: &[u8], digest: &str) -> Result<ImageConfiguration> {
    crate::json::parse(bytes).map_err(|message| StoreError::Json {
        what: "config",
        digest: digest.to_owned(),
        message,
    })
}

/// True for the config media types of container images (OCI and Docker).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// An OCI image stored in a repository.
#[derive(Clone)]
pub struct OciImage {
    /// The manifest digest (`sha256:…`).
    pub manifest_digest: String,
    /// The manifest stream.
    pub manifest_stream: BlobStream,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The config digest.
    pub config_digest: String,
    /// The config stream.
    pub config_stream: BlobStream,
    /// The parsed config (`None` for artifacts).
    pub config: Option<ImageConfiguration>,
}

impl fmt::Debug for OciImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciImage")
            .field("manifest_digest", &self.manifest_digest)
            .field("config_digest", &self.config_digest)
            .finish_non_exhaustive()
    }
}

impl OciImage {
    /// Opens the image named `name`: a tag, or a manifest digest
    /// (`sha256:…` or `@sha256:…`). Manifest and config are re-hashed.
    pub fn open(repo: &Repository, name: &str) -> Result<OciImage> {
        let digest = resolve_image_name(repo, name)?;
        Self::open_manifest(repo, &digest)
    }

    /// Opens the image whose manifest digest is `digest`.
    pub fn open_manifest(repo: &Repository, digest: &str) -> Result<OciImage> {
        let id = manifest_stream_id(digest);
        let manifest_stream = read_blob_stream(repo, &id, ContentType::OCI_MANIFEST)
            .map_err(|e| not_found_as(e, format!("no manifest {digest} in the repository")))?;
        let found = sha256_digest(&manifest_stream.bytes);
        if found != digest {
            return Err(StoreError::Corrupt(format!(
                "stream {id}: the manifest hashes to {found}"
            )));
        }
        let manifest = parse_manifest(&manifest_stream.bytes, digest)?;
        let config_digest = manifest.config().digest().to_string();
        let config_id = config_stream_id(&config_digest);
        let config_stream = read_blob_stream(repo, &config_id, ContentType::OCI_CONFIG)?;
        let found = sha256_digest(&config_stream.bytes);
        if found != config_digest {
            return Err(StoreError::Corrupt(format!(
                "stream {config_id}: the config hashes to {found}"
            )));
        }
        let config = if is_image_config(manifest.config().media_type().as_ref()) {
            Some(parse_config(&config_stream.bytes, &config_digest)?)
        } else {
            None
        };
        Ok(OciImage {
            manifest_digest: digest.to_owned(),
            manifest_stream,
            manifest,
            config_digest,
            config_stream,
            config,
        })
    }

    /// The diff_ids with their layer stream objects, in config order.
    pub fn layers(&self) -> Result<Vec<(String, Digest)>> {
        let Some(config) = &self.config else {
            return Err(StoreError::NotFound(format!(
                "{} is not a container image (config media type {})",
                self.manifest_digest,
                self.manifest.config().media_type()
            )));
        };
        config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|diff_id| {
                self.config_stream
                    .named_ref(diff_id)
                    .map(|d| (diff_id.clone(), *d))
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "config stream {} has no named ref to layer {diff_id}",
                            config_stream_id(&self.config_digest)
                        ))
                    })
            })
            .collect()
    }

    /// The EROFS image of `version` linked from the config, if any.
    pub fn linked_image(&self, version: u32) -> Option<&Digest> {
        self.config_stream.named_ref(image_ref_name(version))
    }

    /// The boot image of `version` built with xattr mode `filter`, if any.
    pub fn boot_image(&self, version: u32, filter: XattrFilter) -> Option<&Digest> {
        self.config_stream
            .named_ref(&boot_ref_name(version, filter))
    }

    /// Merges the layers into the composefs tree (nothing is stored).
    pub fn build_tree(&self, repo: &Repository, filter: XattrFilter) -> Result<FileSystem> {
        let layers: Vec<Digest> = self.layers()?.into_iter().map(|(_, d)| d).collect();
        Ok(build_tree_from_streams(repo, &layers, filter)?)
    }
}

fn not_found_as(e: StoreError, message: String) -> StoreError {
    match e {
        StoreError::Repo(r) if r.is_not_found() => StoreError::NotFound(message),
        e => e,
    }
}

/// Resolves a tag, a manifest digest (`sha256:<hex>`, `@` optional) or a
/// unique short manifest digest (4+ hex digits, as `oci images` shows them)
/// to a manifest digest.
pub fn resolve_image_name(repo: &Repository, name: &str) -> Result<String> {
    let bare = name.strip_prefix('@').unwrap_or(name);
    if is_sha256_digest(bare) {
        return Ok(bare.to_owned());
    }
    check_tag(name)?;
    if let Some(digest) = resolve_tag(repo, name)? {
        return Ok(digest);
    }
    // A short manifest digest, as `oci images` shows them.
    let hex = bare.strip_prefix("sha256:").unwrap_or(bare);
    if hex.len() >= 4 && hex.len() < 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = format!("sha256:{}", hex.to_ascii_lowercase());
        let mut matches: Vec<String> = list_tags(repo)?
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| d.starts_with(&prefix))
            .collect();
        matches.sort();
        matches.dedup();
        match matches.len() {
            0 => {}
            1 => return Ok(matches.remove(0)),
            n => {
                return Err(StoreError::NotFound(format!(
                    "{name} is ambiguous: {n} manifest digests start with it: {}",
                    matches.join(", ")
                )));
            }
        }
    }
    Err(StoreError::NotFound(format!("no image tagged {name:?}")))
}

/// The manifest digest a tag points to, if the tag exists.
pub fn resolve_tag(repo: &Repository, tag: &str) -> Result<Option<String>> {
    let link = format!("streams/refs/{}", tag_ref(tag));
    let Some(target) = repo.read_link(&link)? else {
        return Ok(None);
    };
    let last = target.rsplit('/').next().unwrap_or(&target);
    match last.strip_prefix("oci-manifest-") {
        Some(d) if is_sha256_digest(d) => Ok(Some(d.to_owned())),
        _ => Err(StoreError::Corrupt(format!(
            "tag {tag:?} points to {target:?}, not a manifest stream"
        ))),
    }
}

/// Points `tag` at the stored manifest `digest`.
pub fn tag_image(repo: &Repository, digest: &str, tag: &str) -> Result<()> {
    check_tag(tag)?;
    if !is_sha256_digest(digest) {
        return Err(StoreError::NotFound(format!(
            "{digest:?} is not a manifest digest (sha256:<64 hex digits>)"
        )));
    }
    let id = manifest_stream_id(digest);
    if repo.has_stream(&id)?.is_none() {
        return Err(StoreError::NotFound(format!(
            "no manifest {digest} in the repository"
        )));
    }
    repo.set_stream_ref(&tag_ref(tag), &id)?;
    Ok(())
}

/// Removes `tag`; false if it did not exist.
pub fn untag_image(repo: &Repository, tag: &str) -> Result<bool> {
    check_tag(tag)?;
    Ok(repo.remove_link(&format!("streams/refs/{}", tag_ref(tag)))?)
}

/// Every tag with the manifest digest it points to, sorted by tag.
pub fn list_tags(repo: &Repository) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in repo.list_links(&format!("streams/refs/{TAG_DIR}"), false)? {
        let tag = decode_tag(&entry.name);
        let last = entry.target.rsplit('/').next().unwrap_or(&entry.target);
        if let Some(d) = last.strip_prefix("oci-manifest-") {
            out.push((tag, d.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_encoding_round_trips() {
        for (tag, enc) in [
            ("my/img:v%1", "my%2Fimg:v%251"),
            ("oci:/tmp/L:v1", "oci:%2Ftmp%2FL:v1"),
            ("plain", "plain"),
            ("%2F", "%252F"),
        ] {
            assert_eq!(encode_tag(tag), enc);
            assert_eq!(decode_tag(enc), tag);
        }
        assert_eq!(decode_tag("a%b%2"), "a%b%2");
    }

    #[test]
    fn tags_are_checked() {
        assert!(check_tag("@sha256:00").is_err());
        assert!(check_tag("").is_err());
        assert!(check_tag(&"x".repeat(300)).is_err());
        assert!(check_tag("docker://127.0.0.1:5000/a/b:c").is_ok());
    }

    #[test]
    fn digests_are_recognised() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256_digest(&d));
        assert!(!is_sha256_digest("sha256:E3B0"));
    }
}
