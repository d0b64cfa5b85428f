//! Merging OCI layers into one filesystem tree, as composefs-rs 0.9 does.
//!
//! - [`LayerEntry`]: one format-neutral layer entry (path, type, metadata);
//! - [`LayerMerger`]: applies entries in order to a [`FileSystem`]: whiteouts
//!   (`.wh.NAME`), opaque markers (`.wh..wh..opq`), directory-onto-directory
//!   merges, replacements and hard links (see `shared/spec/oci.md` §3);
//! - [`TarEntries`]: reads a tar byte stream into [`LayerEntry`]s;
//! - [`build_tree`]: all layers → merged tree → [`transform_for_oci`];
//! - [`build_tree_from_streams`]: the same from layer split streams in a
//!   repository, taking large file digests from the streams' object refs.

mod apply;
mod stream;
mod tar;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_stream;

use std::io::{self, Read};

use cfs_core::repository::RepoError;
use cfs_core::splitstream::SplitStreamError;
use cfs_core::tree::{FileSystem, Mtime, TransformError, XattrFilter, transform_for_oci};
use cfs_core::verity::Digest;

pub use apply::LayerMerger;
pub use stream::{build_tree_from_streams, for_each_stream_entry};
pub use tar::{MAX_EXTENSION_SIZE, TarEntries};

/// Regular files up to this size are stored inline in the image; larger ones
/// are external objects.
pub const INLINE_MAX: u64 = 64;

/// The content of a regular file entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The bytes themselves (at most [`INLINE_MAX`]).
    Inline(Vec<u8>),
    /// The fs-verity digest of the content, stored as an object.
    External(Digest),
}

/// The type of a layer entry, with its type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    Regular {
        /// Size in bytes.
        size: u64,
        /// Content.
        content: Content,
    },
    /// A directory.
    Directory,
    /// A symbolic link and its target (verbatim).
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry, named by its (unnormalised) path.
    Hardlink(Vec<u8>),
    /// A character device and its device number (low 32 bits of `makedev`).
    CharDevice(u32),
    /// A block device and its device number.
    BlockDevice(u32),
    /// A named pipe.
    Fifo,
}

/// One entry of a layer, independent of the archive format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// The path as stored in the layer (normalised when applied).
    pub path: Vec<u8>,
    /// Type and data.
    pub kind: EntryKind,
    /// The mode field as stored (permission bits are kept, `& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Extended attributes in the order found (later duplicates win).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a layer could not be read or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Reading the layer failed.
    #[error("reading layer: {0}")]
    Io(#[from] io::Error),
    /// The tar stream is malformed or uses an unsupported feature.
    #[error("tar entry at byte {offset}: {message}")]
    Tar {
        /// Offset of the entry's (first) header in the stream.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// An entry could not be applied to the tree.
    #[error("error unpacking container layer file {path:?}: {reason}")]
    Apply {
        /// The entry's normalised path.
        path: String,
        /// What went wrong.
        reason: ApplyError,
    },
    /// The merged tree could not be normalised (e.g. no `/usr`).
    #[error("{0}")]
    Transform(#[from] TransformError),
    /// A layer split stream could not be read from the repository.
    #[error("reading layer split stream {stream}: {source}")]
    Repo {
        /// The stream object's digest.
        stream: String,
        /// The error.
        #[source]
        source: Box<RepoError>,
    },
    /// A layer split stream is not a valid split stream.
    #[error("layer split stream {stream}: {source}")]
    SplitStream {
        /// The stream object's digest.
        stream: String,
        /// The error.
        #[source]
        source: SplitStreamError,
    },
    /// The chunks of a layer split stream do not fit the tar they hold
    /// (composefs-rs reader rules: large regular files external, nothing
    /// else external).
    #[error("layer split stream {stream}, tar offset {offset}: {message}")]
    Stream {
        /// The stream object's digest.
        stream: String,
        /// Offset in the reassembled tar.
        offset: u64,
        /// What is wrong.
        message: String,
    },
}

/// Why one entry could not be applied (wrapped in [`MergeError::Apply`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A path component does not exist.
    #[error("directory entry {0:?} does not exist")]
    NotFound(String),
    /// A path component is not a directory.
    #[error("directory entry {0:?} is not a subdirectory")]
    NotADirectory(String),
    /// A hard link names a directory.
    #[error("directory entry {0:?} is a directory")]
    IsADirectory(String),
    /// A `..` component.
    #[error("invalid filename {0:?}")]
    InvalidFilename(String),
    /// A root entry (`./`, `/`) that is not a directory.
    #[error("filename {0:?} must be a directory")]
    RootNotDirectory(String),
}

/// Merges the tar `layers` (uncompressed, in order) into one tree and applies
/// [`transform_for_oci`] with [`XattrFilter::AllowlistOnly`], giving the tree
/// composefs-rs 0.9 writes as the image of an OCI image.
///
/// `store(content, size)` is called for every regular file larger than
/// [`INLINE_MAX`] with a reader of exactly `size` bytes (reading past a
/// truncated layer fails with `UnexpectedEof`); it must return the fs-verity
/// digest (with the repository's algorithm) of the bytes it reads and may
/// store them as an object.
pub fn build_tree<R: Read>(
    layers: impl IntoIterator<Item = R>,
    store: &mut dyn FnMut(&mut dyn Read, u64) -> io::Result<Digest>,
) -> Result<FileSystem, MergeError> {
    let mut merger = LayerMerger::new();
    for layer in layers {
        let mut entries = TarEntries::new(layer);
        while let Some(entry) = entries.next_entry(store)? {
            merger.apply(entry)?;
        }
    }
    let mut fs = merger.finish()?;
    transform_for_oci(&mut fs, XattrFilter::AllowlistOnly)?;
    Ok(fs)
}
