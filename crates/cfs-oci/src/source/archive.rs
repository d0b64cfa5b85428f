//! Image archives: `oci-archive:` (a tar of an OCI layout) and
//! `docker-archive:` (`docker save` output).
//!
//! The tar is never extracted. [`TarIndex`] reads the headers once and
//! records where each member's data starts; blobs are then read straight
//! from the file with positioned reads, so several readers can be open at
//! once. A gzip or zstd compressed archive (sniffed by magic) is first
//! decompressed to an anonymous temporary file in `$TMPDIR`; so is an
//! archive given as a pipe or FIFO (read as a stream) — at most
//! 256 GiB either way (`local_file::MAX_SPOOLED_ARCHIVE`) — while devices and
//! sockets are refused (`local_file`). Only regular members (and hard or
//! symbolic links to them, at most 16 hops, resolved inside the archive)
//! are read: a name that is a FIFO, device or directory member is an error
//! saying so.
//!
//! A Docker archive has no manifest blob: `manifest.json` names a config
//! file and layer files, and an OCI image manifest is synthesised from
//! their SHA-256 digests and sizes (layers hashed when the archive is
//! opened; their media type by sniffing: gzip, zstd or plain tar).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::local_file;
use super::oci_layout::{LayoutStore, MAX_DOCUMENT, OciLayoutSource};
use super::{FetchedManifest, ImageSource, OCI_MANIFEST, Platform, SourceError, sha256_digest};
use crate::tar_block::{self, BLOCK};

/// Media type of an OCI image config.
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an uncompressed OCI layer.
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip-compressed OCI layer.
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a zstd-compressed OCI layer.
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Symbolic/hard link hops followed when looking a member up.
const MAX_LINK_HOPS: usize = 16;

/// The compression a file starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Opens an archive; a compressed one is decompressed to an anonymous
/// temporary file first.
fn open_archive(path: &Path) -> Result<File, SourceError> {
    let err = |what: &str, e: io::Error| {
        SourceError::Other(format!("{what} archive {}: {e}", path.display()))
    };
    let file = local_file::open_archive_file(path)
        .map_err(|e| SourceError::Other(format!("archive {e}")))?;
    let mut head = [0u8; 4];
    let n = file.read_at(&mut head, 0).map_err(|e| err("reading", e))?;
    let compression = sniff(&head[..n]);
    if compression == Compression::None {
        return Ok(file);
    }
    let mut out = tempfile::tempfile().map_err(|e| err("creating a temporary file for", e))?;
    let limit = local_file::MAX_SPOOLED_ARCHIVE;
    let copied = match compression {
        Compression::Gzip => {
            cfs_core::limits::copy_bounded(flate2::read::MultiGzDecoder::new(file), &mut out, limit)
        }
        Compression::Zstd => zstd::stream::read::Decoder::new(file)
            .and_then(|d| cfs_core::limits::copy_bounded(d, &mut out, limit)),
        Compression::None => unreachable!("handled above"),
    };
    copied.map_err(|e| err("decompressing", e))?;
    out.seek(SeekFrom::Start(0))
        .map_err(|e| err("rewinding decompressed", e))?;
    Ok(out)
}

/// Where a member's data is, which member it links to, or what other kind
/// of member it is (never read: named in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
    Special(&'static str),
}

/// The members of a tar file, by normalised path.
#[derive(Debug)]
pub(crate) struct TarIndex {
    file: Arc<File>,
    members: HashMap<String, Member>,
    what: String,
}

/// `./a//b/` → `a/b`; `..` pops a component.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl TarIndex {
    /// Reads every header of `file`. `what` names the archive in messages.
    pub(crate) fn build(file: File, what: String) -> Result<Self, SourceError> {
        let len = file
            .metadata()
            .map_err(|e| SourceError::Other(format!("{what}: {e}")))?
            .len();
        let bad = |offset: u64, msg: &str| {
            SourceError::Other(format!("{what}: invalid tar at byte {offset}: {msg}"))
        };
        let mut members = HashMap::new();
        let mut offset = 0u64;
        let (mut long_name, mut long_link) = (None::<String>, None::<String>);
        let (mut pax_path, mut pax_link, mut pax_size) = (None::<String>, None::<String>, None);
        let mut block = [0u8; BLOCK];
        while offset + BLOCK as u64 <= len {
            file.read_exact_at(&mut block, offset)
                .map_err(|e| SourceError::Other(format!("{what}: reading byte {offset}: {e}")))?;
            if tar_block::is_zero_block(&block) {
                break;
            }
            if tar_block::checksum_matches(&block) != Ok(true) {
                return Err(bad(offset, "header checksum mismatch"));
            }
            let header_size = tar_block::parse_number(&block[124..136])
                .ok_or_else(|| bad(offset, "invalid size field"))?;
            let size = pax_size.take().unwrap_or(header_size);
            let data = offset + BLOCK as u64;
            let end = data
                .checked_add(size)
                .filter(|&e| e <= len)
                .ok_or_else(|| bad(offset, "member data beyond the end of the file"))?;
            let read_data = |limit: u64| -> Result<Vec<u8>, SourceError> {
                if size > limit {
                    return Err(bad(offset, "extended header too large"));
                }
                let mut buf = vec![0u8; size as usize];
                file.read_exact_at(&mut buf, data)
                    .map_err(|e| SourceError::Other(format!("{what}: reading byte {data}: {e}")))?;
                Ok(buf)
            };
            let text = |bytes: &[u8]| String::from_utf8_lossy(tar_block::cstr(bytes)).into_owned();
            match block[156] {
                b'L' => long_name = Some(text(&read_data(64 << 10)?)),
                b'K' => long_link = Some(text(&read_data(64 << 10)?)),
                b'x' => {
                    let pax = read_data(1 << 20)?;
                    let records = tar_block::pax_records(&pax).map_err(|msg| bad(offset, msg))?;
                    for (key, value) in records {
                        let value = String::from_utf8_lossy(value).into_owned();
                        match key {
                            b"path" => pax_path = Some(value),
                            b"linkpath" => pax_link = Some(value),
                            b"size" => {
                                pax_size = Some(
                                    tar_block::parse_decimal(value.as_bytes())
                                        .ok_or_else(|| bad(offset, "invalid PAX size"))?,
                                );
                            }
                            _ => {}
                        }
                    }
                }
                b'g' => {}
                kind => {
                    let name = pax_path.take().or(long_name.take()).unwrap_or_else(|| {
                        let name = text(&block[0..100]);
                        let prefix = text(&block[345..500]);
                        if block[257..263] == *b"ustar\0" && !prefix.is_empty() {
                            format!("{prefix}/{name}")
                        } else {
                            name
                        }
                    });
                    let link = pax_link
                        .take()
                        .or(long_link.take())
                        .unwrap_or_else(|| text(&block[157..257]));
                    let name = normalize(&name);
                    match kind {
                        b'0' | 0 | b'7' => {
                            members.insert(name, Member::Data { offset: data, size });
                        }
                        b'1' => {
                            members.insert(name, Member::Link(normalize(&link)));
                        }
                        b'2' => {
                            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                            let target = if link.starts_with('/') {
                                normalize(&link)
                            } else {
                                normalize(&format!("{dir}/{link}"))
                            };
                            members.insert(name, Member::Link(target));
                        }
                        b'3' => _ = members.insert(name, Member::Special("a character device")),
                        b'4' => _ = members.insert(name, Member::Special("a block device")),
                        b'5' => _ = members.insert(name, Member::Special("a directory")),
                        b'6' => _ = members.insert(name, Member::Special("a FIFO")),
                        _ => {}
                    }
                }
            }
            offset = end + tar_block::padding(size);
        }
        Ok(Self {
            file: Arc::new(file),
            members,
            what,
        })
    }

    /// The data range of member `name` (links followed).
    fn find(&self, name: &str) -> Result<(u64, u64), SourceError> {
        let mut current = normalize(name);
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&current) {
                Some(Member::Data { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => current = target.clone(),
                Some(Member::Special(kind)) => {
                    return Err(SourceError::Other(format!(
                        "{}: {current} is {kind}, expected a regular file",
                        self.what
                    )));
                }
                None => {
                    return Err(SourceError::Other(format!(
                        "{}: no file {name} in the archive",
                        self.what
                    )));
                }
            }
        }
        Err(SourceError::Other(format!(
            "{}: {name}: too many levels of links",
            self.what
        )))
    }
}

impl LayoutStore for TarIndex {
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), SourceError> {
        let (offset, size) = self.find(name)?;
        let reader = MemberReader {
            file: Arc::clone(&self.file),
            pos: offset,
            end: offset + size,
        };
        Ok((Box::new(reader), size))
    }

    fn what(&self) -> String {
        self.what.clone()
    }
}

/// Reads one member's data with positioned reads.
#[derive(Debug)]
struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive truncated under a reader",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Opens `oci-archive:FILE[:TAG]`.
pub(crate) fn open_oci_archive(
    path: PathBuf,
    tag: Option<&str>,
) -> Result<OciLayoutSource, SourceError> {
    let file = open_archive(&path)?;
    let index = TarIndex::build(file, format!("OCI archive {}", path.display()))?;
    let describe = match tag {
        Some(tag) => format!("oci-archive:{}:{tag}", path.display()),
        None => format!("oci-archive:{}", path.display()),
    };
    OciLayoutSource::open(Box::new(index), tag, describe)
}

/// Splits `FILE[:REPO:TAG]` at the first `:` (as containers-image does).
pub(crate) fn split_docker_archive(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((path, name)) if !name.is_empty() => (path, Some(name)),
        Some((path, _)) => (path, None),
        None => (spec, None),
    }
}

/// `docker.io/library/busybox` → `busybox:latest`, for comparing names.
fn normalize_name(name: &str) -> String {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A `docker-archive:` source.
#[derive(Debug)]
pub(crate) struct DockerArchiveSource {
    index: TarIndex,
    describe: String,
    manifest: FetchedManifest,
    /// Digest → member name and size.
    blobs: HashMap<String, (String, u64)>,
}

impl DockerArchiveSource {
    /// Opens `docker-archive:FILE[:REPO:TAG]`: reads `manifest.json`, hashes
    /// the config and layers, synthesises the manifest.
    pub(crate) fn open(path: PathBuf, name: Option<&str>) -> Result<Self, SourceError> {
        let describe = match name {
            Some(name) => format!("docker-archive:{}:{name}", path.display()),
            None => format!("docker-archive:{}", path.display()),
        };
        let what = format!("Docker archive {}", path.display());
        let index = TarIndex::build(open_archive(&path)?, what)?;
        Self::from_index(index, describe, name)
    }

    /// Reads `manifest.json` of the archive indexed by `index` and
    /// synthesises the manifest of the image `name` (or the only one).
    pub(crate) fn from_index(
        index: TarIndex,
        describe: String,
        name: Option<&str>,
    ) -> Result<Self, SourceError> {
        let what = index.what();
        let manifest_json = index.read_small("manifest.json", MAX_DOCUMENT)?;
        let entries: Vec<DockerEntry> = crate::json::parse(&manifest_json).map_err(|e| {
            SourceError::Other(format!(
                "{what}: manifest.json is not [{{Config, RepoTags, Layers}}]: {e}"
            ))
        })?;
        let entry = choose_entry(&entries, name, &what)?;
        let (manifest, blobs) = synthesise(&index, entry)?;
        Ok(Self {
            index,
            describe,
            manifest,
            blobs,
        })
    }
}

/// The `manifest.json` entry named `name`, or the only one.
fn choose_entry<'a>(
    entries: &'a [DockerEntry],
    name: Option<&str>,
    what: &str,
) -> Result<&'a DockerEntry, SourceError> {
    let tags = |e: &'a DockerEntry| e.repo_tags.iter().flatten().map(String::as_str);
    match name {
        Some(name) => {
            let wanted = normalize_name(name);
            entries
                .iter()
                .find(|e| tags(e).any(|t| normalize_name(t) == wanted))
                .ok_or_else(|| {
                    let all: Vec<&str> = entries.iter().flat_map(tags).collect();
                    SourceError::Other(format!(
                        "{what}: no image tagged {name} (tags: {})",
                        if all.is_empty() {
                            "none".to_owned()
                        } else {
                            all.join(", ")
                        }
                    ))
                })
        }
        None => match entries {
            [only] => Ok(only),
            [] => Err(SourceError::Other(format!(
                "{what}: manifest.json lists no images"
            ))),
            _ => {
                let all: Vec<&str> = entries.iter().flat_map(tags).collect();
                Err(SourceError::Other(format!(
                    "{what} holds {} images (tags: {}); name one with :REPO:TAG",
                    entries.len(),
                    all.join(", ")
                )))
            }
        },
    }
}

/// Hashes the config and layers of `entry` and builds the OCI manifest.
#[allow(clippy::type_complexity)]
fn synthesise(
    index: &TarIndex,
    entry: &DockerEntry,
) -> Result<(FetchedManifest, HashMap<String, (String, u64)>), SourceError> {
    let what = index.what();
    let hash = |name: &str| -> Result<(String, u64, Compression), SourceError> {
        let (mut reader, _) = index.open(name)?;
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match reader.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Other(format!("{what}: reading {name}: {e}"))),
            }
        }
        let rest = super::sha256_reader(io::Cursor::new(head[..got].to_vec()).chain(reader))
            .map_err(|e| SourceError::Other(format!("{what}: reading {name}: {e}")))?;
        Ok((rest.0, rest.1, sniff(&head[..got])))
    };
    let mut blobs = HashMap::new();
    let (config_digest, config_size, _) = hash(&entry.config)?;
    blobs.insert(config_digest.clone(), (entry.config.clone(), config_size));
    let mut layers = Vec::with_capacity(entry.layers.len());
    for layer in &entry.layers {
        let (digest, size, compression) = hash(layer)?;
        let media_type = match compression {
            Compression::None => LAYER_TAR,
            Compression::Gzip => LAYER_GZIP,
            Compression::Zstd => LAYER_ZSTD,
        };
        layers.push(serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
        }));
        blobs.insert(digest, (layer.clone(), size));
    }
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| SourceError::Other(format!("{what}: serialising the manifest: {e}")))?;
    let manifest = FetchedManifest {
        digest: sha256_digest(&bytes),
        bytes,
        media_type: OCI_MANIFEST.to_owned(),
    };
    Ok((manifest, blobs))
}

impl ImageSource for DockerArchiveSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    /// A Docker archive holds one image per entry; the platform is not
    /// consulted.
    fn manifest(&self, _platform: &Platform) -> Result<FetchedManifest, SourceError> {
        Ok(self.manifest.clone())
    }

    fn open_blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        let (name, actual) = self.blobs.get(digest).ok_or_else(|| {
            SourceError::Other(format!(
                "{}: no blob {digest} (only the config and layers of the image)",
                self.index.what
            ))
        })?;
        if *actual != size {
            return Err(SourceError::Other(format!(
                "{}: blob {digest} ({name}) has {actual} bytes, expected {size}",
                self.index.what
            )));
        }
        Ok(self.index.open(name)?.0)
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
