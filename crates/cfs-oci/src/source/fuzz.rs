//! Fuzzing hooks — not a stable API.
//!
//! Entry points through which the cargo-fuzz targets in `fuzz/` (and the
//! tests that replay hand-picked inputs, `tests/fuzz_hooks.rs`) reach the
//! crate-private parsers of untrusted source input: OCI `index.json` and
//! manifests, the tar member index of archives, and docker-archive
//! `manifest.json`. Each hook takes arbitrary bytes, ignores errors and
//! returns; a panic (or unbounded allocation) is a bug in the parser.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::archive::{DockerArchiveSource, TarIndex};
use super::index::{
    Descriptor, choose_platform, doc_info, finish_manifest, index_entries, resolve_layout,
};
use super::oci_layout::{LayoutStore, OciLayoutSource};
use super::{ImageSource, Platform, SourceError, sha256_digest, sha256_hex};
use crate::tar_block::{self, BLOCK};

/// The most bytes a hook reads from any one blob.
const READ_LIMIT: u64 = 1 << 20;

/// Tag and platform chosen by a selector byte.
fn select(selector: u8) -> (Option<&'static str>, Platform) {
    let tag = match selector & 3 {
        0 => None,
        1 => Some("v1"),
        2 => Some("latest"),
        _ => Some(""),
    };
    let platform = match (selector >> 2) & 3 {
        0 => "linux/amd64",
        1 => "linux/arm64/v8",
        2 => "linux/arm",
        _ => "windows/amd64",
    };
    let platform = platform.parse().expect("fixed platform parses");
    (tag, platform)
}

/// An OCI layout held in memory.
#[derive(Debug)]
struct MemStore(HashMap<String, Vec<u8>>);

impl LayoutStore for MemStore {
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), SourceError> {
        let bytes = self
            .0
            .get(name)
            .ok_or_else(|| SourceError::Other(format!("fuzz layout: no file {name}")))?;
        Ok((
            Box::new(std::io::Cursor::new(bytes.clone())),
            bytes.len() as u64,
        ))
    }

    fn what(&self) -> String {
        "fuzz layout".into()
    }
}

/// `index.json` and nested documents (each also parsed as a manifest and
/// a config, and summarised as a registry error body): the first byte
/// selects tag and platform; the rest is split at `0xff` bytes (never valid in JSON) into
/// `index.json` and further documents. Nested descriptors are resolved to
/// document `1 + size % (count - 1)` (the digest is not checked, so the
/// fuzzer reaches the nested index logic), and the chosen manifest is
/// finished against its real digest. The same documents are also served as
/// an in-memory layout, blobs under their digests.
pub fn fuzz_layout_index(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (tag, platform) = select(selector);
    let docs: Vec<&[u8]> = rest.split(|&b| b == 0xff).collect();
    let pick = |desc: &Descriptor| -> &[u8] {
        match docs.len() {
            0 | 1 => docs[0],
            n => docs[1 + (desc.size % (n as u64 - 1)) as usize],
        }
    };
    for doc in &docs {
        let _ = doc_info(doc, "fuzz");
        if let Ok(entries) = index_entries(doc, "fuzz") {
            let _ = choose_platform(&entries, &platform, "fuzz");
        }
        // The typed parsers of the pull (field paths in their errors), the
        // registry's error-body summary and its authentication challenge.
        let _ = crate::store::parse_manifest(doc, "fuzz");
        let _ = crate::store::parse_config(doc, "fuzz");
        let _ = super::registry_http::error_message(doc);
        let _ = super::registry_auth::parse_challenge(&String::from_utf8_lossy(doc));
    }
    let resolved = resolve_layout(docs[0], tag, &platform, "fuzz", &mut |d| {
        Ok(pick(d).to_vec())
    });
    if let Ok(desc) = resolved {
        let doc = pick(&desc);
        let _ = finish_manifest(
            doc.to_vec(),
            &sha256_digest(doc),
            desc.media_type.as_deref(),
            "fuzz",
        );
    }

    let mut files = HashMap::new();
    files.insert(
        "oci-layout".to_owned(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".to_owned(), docs[0].to_vec());
    for doc in &docs {
        let digest = sha256_digest(doc);
        let hex = sha256_hex(&digest).expect("sha256_digest gives sha256:<hex>");
        files.insert(format!("blobs/sha256/{hex}"), doc.to_vec());
    }
    let source = OciLayoutSource::open(Box::new(MemStore(files)), tag, "fuzz".into());
    if let Ok(source) = source {
        let _ = source.manifest(&platform);
    }
}

/// A temporary file holding `data`.
fn temp_file(data: &[u8]) -> std::fs::File {
    let mut file = tempfile::tempfile().expect("fuzz hook: creating a temporary file");
    file.write_all(data)
        .expect("fuzz hook: writing a temporary file");
    file
}

/// Reads the image of `source` the way a pull does: the manifest, then
/// every blob it names (at most [`READ_LIMIT`] bytes each).
fn read_image(source: &dyn ImageSource, platform: &Platform) {
    let Ok(manifest) = source.manifest(platform) else {
        return;
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&manifest.bytes) else {
        return;
    };
    let config = doc.get("config").into_iter();
    let layers = doc.get("layers").and_then(|l| l.as_array()).into_iter();
    for desc in config.chain(layers.flatten()) {
        let digest = desc.get("digest").and_then(|d| d.as_str());
        let size = desc.get("size").and_then(|s| s.as_u64());
        if let (Some(digest), Some(size)) = (digest, size)
            && let Ok(reader) = source.open_blob(digest, size)
        {
            let _ = std::io::copy(&mut reader.take(READ_LIMIT), &mut std::io::sink());
        }
    }
}

/// An archive: the bytes are indexed as a tar, the well-known members
/// read, and the tar opened both as an OCI layout (`oci-archive:`) and as
/// a Docker archive (whose `manifest.json` names members by path, so the
/// whole synthesis path is reachable).
pub fn fuzz_archive_index(data: &[u8]) {
    let platform = Platform::host();
    let Ok(index) = TarIndex::build(temp_file(data), "fuzz archive".into()) else {
        return;
    };
    for name in ["oci-layout", "index.json", "manifest.json", "./a/../b"] {
        let _ = index.read_small(name, READ_LIMIT);
    }
    if let Ok(source) = OciLayoutSource::open(Box::new(index), None, "fuzz".into()) {
        read_image(&source, &platform);
    }
    let Ok(index) = TarIndex::build(temp_file(data), "fuzz archive".into()) else {
        return;
    };
    if let Ok(source) = DockerArchiveSource::from_index(index, "fuzz".into(), None) {
        read_image(&source, &platform);
    }
}

/// A ustar header block (mode 0644, mtime 0, valid checksum) for `name`
/// with `size` bytes of data; also used by tests to build archives.
pub fn ustar_header(name: &str, kind: u8, size: usize, link: &str) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// Appends one ustar member (header, data, padding) to `tar`.
pub fn tar_member(tar: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    tar.extend_from_slice(&ustar_header(name, kind, data.len(), link));
    tar.extend_from_slice(data);
    let pad = tar_block::padding(data.len() as u64) as usize;
    tar.extend(std::iter::repeat_n(0, pad));
}

/// A docker-archive `manifest.json`: the first byte selects the requested
/// name (none, `busybox`, `test/img:v1`, `docker.io/library/x:latest`);
/// the rest is `manifest.json` in an archive that also holds `config.json`,
/// `layer.tar`, a gzip-looking `layer.tar.gz`, a zstd-looking `layer.zst`,
/// symbolic links `sub/layer` (→ `../layer.tar`) and `loop` (→ itself) and
/// a hard link `hard` (→ `layer.tar`). The image is then read.
pub fn fuzz_docker_archive_manifest(data: &[u8]) {
    let Some((&selector, manifest)) = data.split_first() else {
        return;
    };
    let name = match selector & 3 {
        0 => None,
        1 => Some("busybox"),
        2 => Some("test/img:v1"),
        _ => Some("docker.io/library/x:latest"),
    };
    let mut tar = Vec::new();
    tar_member(&mut tar, "manifest.json", b'0', "", manifest);
    tar_member(
        &mut tar,
        "config.json",
        b'0',
        "",
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    tar_member(&mut tar, "layer.tar", b'0', "", &[0u8; 2 * BLOCK]);
    tar_member(&mut tar, "layer.tar.gz", b'0', "", &[0x1f, 0x8b, 8, 0]);
    tar_member(&mut tar, "layer.zst", b'0', "", &[0x28, 0xb5, 0x2f, 0xfd]);
    tar_member(&mut tar, "sub/layer", b'2', "../layer.tar", &[]);
    tar_member(&mut tar, "loop", b'2', "loop", &[]);
    tar_member(&mut tar, "hard", b'1', "layer.tar", &[]);
    tar.extend_from_slice(&[0u8; 2 * BLOCK]);
    let index = TarIndex::build(temp_file(&tar), "fuzz docker archive".into())
        .expect("fuzz hook: the hook's own tar indexes");
    if let Ok(source) = DockerArchiveSource::from_index(index, "fuzz".into(), name) {
        read_image(&source, &Platform::host());
    }
}
