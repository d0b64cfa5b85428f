//! Errors of the image reader: every variant names where (byte offset, nid or
//! path) and what was expected versus found.

/// Why an image could not be read.
///
/// `composefs-info` compatible tools map [`ReadError::UnsupportedVersion`] and
/// [`ReadError::UnsupportedFormatVersion`] to `ENOTSUP` and everything else to
/// `EINVAL` (see [`ReadError::errno`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Shorter than one block (C: EINVAL).
    #[error("not a composefs image: {len} bytes, expected at least 4096")]
    TooSmall {
        /// Image length.
        len: usize,
    },
    /// Wrong composefs magic at offset 0 (C: EINVAL).
    #[error("not a composefs image: magic {found:#010x} at offset 0, expected 0xd078629a")]
    NotComposefs {
        /// The value found.
        found: u32,
    },
    /// Composefs header version other than 1 (C: ENOTSUP).
    #[error("unsupported composefs header version {found} at offset 4, expected 1")]
    UnsupportedVersion {
        /// The value found.
        found: u32,
    },
    /// Composefs format version (`composefs_version`, offset 12) above 2.
    #[error("unsupported composefs format version {found} at offset 12, expected 0, 1 or 2")]
    UnsupportedFormatVersion {
        /// The value found.
        found: u32,
    },
    /// Wrong EROFS magic at offset 1024 (C: EINVAL).
    #[error("not an EROFS image: magic {found:#010x} at offset 1024, expected 0xe0f5e1e2")]
    BadErofsMagic {
        /// The value found.
        found: u32,
    },
    /// A header or superblock field with an unsupported value.
    #[error("{field} (offset {offset}) is {found:#x}, expected {expected}")]
    BadField {
        /// Field name, e.g. `superblock blkszbits`.
        field: &'static str,
        /// Byte offset of the field in the image.
        offset: usize,
        /// The value found.
        found: u64,
        /// What is accepted.
        expected: &'static str,
    },
    /// The image length disagrees with the superblock block count.
    #[error("image is {len} bytes, but the superblock says {blocks} blocks of 4096 bytes")]
    SizeMismatch {
        /// Image length in bytes.
        len: usize,
        /// Superblock `blocks`.
        blocks: u32,
    },
    /// A byte range that does not lie inside the image.
    #[error(
        "{what} at offset {offset} ({len} bytes) extends past the end of the image ({image_len} bytes)"
    )]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Start offset (may itself be beyond the image).
        offset: u64,
        /// Length of the range.
        len: u64,
        /// Image length.
        image_len: usize,
    },
    /// A nid that does not address an inode slot inside the inode area.
    #[error("invalid nid {nid}: {reason}")]
    BadNid {
        /// The nid.
        nid: u64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A structurally invalid inode (format bits, type, layout, size).
    #[error("inode {nid} (offset {offset}): {reason}")]
    BadInode {
        /// The inode's nid.
        nid: u64,
        /// Byte offset of the inode.
        offset: u64,
        /// What is wrong, with the values found.
        reason: String,
    },
    /// A malformed xattr entry or body.
    #[error("inode {nid}: xattr at offset {offset}: {reason}")]
    BadXattr {
        /// The inode's nid.
        nid: u64,
        /// Byte offset of the xattr entry (or body).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A malformed directory block (dirent table or names).
    #[error("directory inode {nid}: block at offset {offset}: {reason}")]
    BadDirectory {
        /// The directory's nid.
        nid: u64,
        /// Byte offset of the directory block (or of the offending dirent).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The composefs overlay xattrs of an inode do not describe a valid file.
    #[error("inode {nid}: {reason}")]
    BadOverlayXattr {
        /// The inode's nid.
        nid: u64,
        /// What is wrong.
        reason: String,
    },
    /// A directory reachable through more than one name (a directory hard link
    /// or a cycle).
    #[error("directory inode {nid} is reachable more than once (directory hard link or cycle)")]
    DirectoryLinked {
        /// The directory's nid.
        nid: u64,
    },
    /// A skipped whiteout (character device 0:0) with several names.
    #[error("whiteout inode {nid} has more than one name (nlink {nlink})")]
    WhiteoutLinked {
        /// The whiteout's nid.
        nid: u64,
        /// Its link count.
        nlink: u32,
    },
    /// Directories nested deeper than [`super::MAX_DEPTH`].
    #[error("directories nested deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The image would need more memory or work than allowed for its size.
    #[error(
        "image needs more than {limit} bytes of memory/work to load (limit for a {image_len}-byte image)"
    )]
    BudgetExceeded {
        /// The budget.
        limit: u64,
        /// Image length.
        image_len: usize,
    },
    /// An error at a named path (the path of the entry being read).
    #[error("{path}: {source}")]
    InPath {
        /// Absolute path inside the image.
        path: String,
        /// The error.
        source: Box<ReadError>,
    },
}

impl ReadError {
    /// The error without any [`ReadError::InPath`] wrapping.
    pub fn root_cause(&self) -> &ReadError {
        match self {
            ReadError::InPath { source, .. } => source.root_cause(),
            other => other,
        }
    }

    /// The errno C `composefs-info` reports for this kind of failure: `ENOTSUP`
    /// for an unsupported (header or format) version, `EINVAL` otherwise.
    pub fn errno(&self) -> rustix::io::Errno {
        match self.root_cause() {
            ReadError::UnsupportedVersion { .. } | ReadError::UnsupportedFormatVersion { .. } => {
                rustix::io::Errno::NOTSUP
            }
            _ => rustix::io::Errno::INVAL,
        }
    }

    pub(super) fn in_path(self, path: String) -> ReadError {
        match self {
            e @ ReadError::InPath { .. } => e,
            e => ReadError::InPath {
                path,
                source: Box::new(e),
            },
        }
    }
}
