//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/<hex>`),
//! in a directory (`oci:`) or inside a tar (`oci-archive:`, through
//! [`LayoutStore`] implemented by the archive's member index).
//!
//! Limits: `oci-layout` at most 64 KiB, `index.json` and every manifest or
//! nested index at most [`MAX_DOCUMENT`] (4 MiB; the size is checked before
//! reading and the read is capped). Only regular files are read; in a
//! directory a symlink may not lead outside the layout (see `local_file`),
//! in a tar only regular members (and links to them) are.

use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::index::{Descriptor, finish_manifest, resolve_layout};
use super::local_file::{open_beneath, open_dir};
use super::{FetchedManifest, ImageSource, Platform, SourceError, sha256_digest, sha256_hex};

/// The largest index or manifest document read into memory.
pub(crate) const MAX_DOCUMENT: u64 = 4 << 20;

/// Where the files of a layout live.
pub(crate) trait LayoutStore: Send + Sync + fmt::Debug {
    /// A reader of the file `name` (relative to the layout root) and its size.
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), SourceError>;

    /// The layout root in messages (`OCI layout /a/b`).
    fn what(&self) -> String;

    /// The whole file `name`, at most `limit` bytes.
    fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let (reader, size) = self.open(name)?;
        if size > limit {
            return Err(SourceError::Other(format!(
                "{}: {name} has {size} bytes, more than the {limit} accepted",
                self.what()
            )));
        }
        let mut out = Vec::with_capacity(size as usize);
        reader
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| SourceError::Other(format!("{}: reading {name}: {e}", self.what())))?;
        Ok(out)
    }
}

/// The `oci-layout` file.
#[derive(serde::Deserialize)]
struct LayoutMarker {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

/// A layout in a directory (files opened beneath it, regular files only:
/// see [`local_file`](super::local_file)).
#[derive(Debug)]
pub(crate) struct DirStore {
    dir: PathBuf,
    fd: OwnedFd,
}

impl LayoutStore for DirStore {
    fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), SourceError> {
        let path = self.dir.join(name);
        let (file, size) = open_beneath(&self.fd, name, &path)
            .map_err(|e| SourceError::Other(format!("{}: {e}", self.what())))?;
        Ok((Box::new(file), size))
    }

    fn what(&self) -> String {
        format!("OCI layout {}", self.dir.display())
    }
}

/// An OCI layout source (directory or archive).
#[derive(Debug)]
pub(crate) struct OciLayoutSource {
    store: Box<dyn LayoutStore>,
    tag: Option<String>,
    describe: String,
    index_json: Vec<u8>,
}

impl OciLayoutSource {
    /// Opens the layout directory `dir` (`oci:DIR[:TAG]`).
    pub(crate) fn open_dir(dir: PathBuf, tag: Option<&str>) -> Result<Self, SourceError> {
        let describe = match tag {
            Some(tag) => format!("oci:{}:{tag}", dir.display()),
            None => format!("oci:{}", dir.display()),
        };
        let fd = open_dir(&dir)
            .map_err(|e| SourceError::Other(format!("OCI layout {}: {e}", dir.display())))?;
        Self::open(Box::new(DirStore { dir, fd }), tag, describe)
    }

    /// Opens a layout in `store`: checks `oci-layout` and reads `index.json`.
    pub(crate) fn open(
        store: Box<dyn LayoutStore>,
        tag: Option<&str>,
        describe: String,
    ) -> Result<Self, SourceError> {
        let what = store.what();
        let marker = store.read_small("oci-layout", 64 << 10)?;
        let version = crate::json::parse::<LayoutMarker>(&marker)
            .map_err(|e| {
                SourceError::Other(format!(
                    "{what}: oci-layout is not {{\"imageLayoutVersion\": \"1.x\"}}: {e}"
                ))
            })?
            .image_layout_version;
        if !version.starts_with("1.") {
            return Err(SourceError::Other(format!(
                "{what}: unsupported imageLayoutVersion {version:?} (expected 1.x)"
            )));
        }
        let index_json = store.read_small("index.json", MAX_DOCUMENT)?;
        Ok(Self {
            store,
            tag: tag.map(str::to_owned),
            describe,
            index_json,
        })
    }

    /// The bytes of the blob `desc` (a document), checked against its digest.
    fn fetch_document(&self, desc: &Descriptor) -> Result<Vec<u8>, SourceError> {
        let what = self.store.what();
        let name = blob_name(&desc.digest, &what)?;
        let bytes = self.store.read_small(&name, MAX_DOCUMENT)?;
        let digest = sha256_digest(&bytes);
        if digest != desc.digest {
            return Err(SourceError::Other(format!(
                "{what}: {name} has digest {digest}, expected {}",
                desc.digest
            )));
        }
        Ok(bytes)
    }
}

/// `blobs/sha256/<hex>` of a digest, rejecting anything else.
fn blob_name(digest: &str, what: &str) -> Result<String, SourceError> {
    let hex = sha256_hex(digest).ok_or_else(|| {
        SourceError::Other(format!(
            "{what}: unsupported digest {digest:?} (expected sha256:<64 hex digits>)"
        ))
    })?;
    Ok(format!("blobs/sha256/{hex}"))
}

impl ImageSource for OciLayoutSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn manifest(&self, platform: &Platform) -> Result<FetchedManifest, SourceError> {
        let what = self.store.what();
        let desc = resolve_layout(
            &self.index_json,
            self.tag.as_deref(),
            platform,
            &what,
            &mut |d| self.fetch_document(d),
        )?;
        let bytes = self.fetch_document(&desc)?;
        if bytes.len() as u64 != desc.size {
            return Err(SourceError::Other(format!(
                "{what}: manifest {} has {} bytes, the index says {}",
                desc.digest,
                bytes.len(),
                desc.size
            )));
        }
        finish_manifest(
            bytes,
            &desc.digest,
            desc.media_type.as_deref(),
            &format!("{what}: manifest {}", desc.digest),
        )
    }

    fn open_blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        let what = self.store.what();
        let name = blob_name(digest, &what)?;
        let (reader, actual) = self.store.open(&name)?;
        if actual != size {
            return Err(SourceError::Other(format!(
                "{what}: blob {digest} has {actual} bytes, expected {size}"
            )));
        }
        Ok(reader)
    }
}

#[cfg(test)]
#[path = "oci_layout_tests.rs"]
mod tests;
