//! EROFS image writer, byte-identical to C `mkcomposefs` (composefs 1.0.8) for
//! format versions 0 and 1.
//!
//! The image layout is the one of [`crate::erofs::format`]: composefs header,
//! superblock, inodes in breadth-first order (each followed by its xattr body
//! and inline tail), the shared xattr table, then whole data blocks.
//!
//! The C writer (`lcfs_write_erofs_to` in `lcfs-writer-erofs.c`) deep-clones the
//! tree, rewrites the clone for overlayfs and then lays it out. This writer does
//! not clone: the rewrite is a per-inode *view* of the caller's tree
//! (`rewrite`), evaluated whenever a pass needs it. The passes are:
//!
//! 1. `check`: version bounds (C `lcfs_write_to`), tree invariants and the
//!    limits C enforces while building a tree (`lcfs_node_validate`,
//!    `lcfs_node_set_xattr`, `lcfs_node_set_symlink_payload`, ...);
//! 2. `order`: breadth-first inode order with the root's 256 whiteout stubs
//!    and the `.`/`..` entries (C `lcfs_compute_tree`, `add_overlay_whiteouts`);
//! 3. `xattrs`: the effective xattrs of every inode, their use counts and the
//!    shared xattr table (C `compute_erofs_shared_xattrs`);
//! 4. `layout`: inode sizes, tails, padding, nids and block addresses (C
//!    `compute_erofs_inodes`);
//! 5. `emit`: one sequential pass writing the bytes (C
//!    `write_erofs_inodes`, `write_erofs_shared_xattrs`, `write_erofs_data_blocks`).
//!
//! Nothing is written before passes 1–4 have succeeded, so every error leaves
//! the output untouched.
//!
//! # Errors
//!
//! Where C fails while writing, [`WriteError`] displays C's `strerror` text:
//! `Invalid argument` for a version bound above 1 or a hard link whose target
//! has no primary name, `File too large` for an external file of more than
//! 1024 chunks (> 2^53 bytes; a size near 2^64 wraps C's chunk count to 0 and
//! is written without a chunk map, as C does). Trees that C could never hold
//! are rejected with a message naming the path: empty, over-long or
//! NUL-containing symlink targets, object paths and xattr names, xattr values
//! over 65535 bytes, duplicate xattr names, inline content over 5000 bytes,
//! and user xattrs over C's per-inode budget of 32767 (12 + Σ(7 + name +
//! value)). The xattrs the rewrite adds are not charged to that budget: C's
//! deep clone (`lcfs_node_clone`) does not copy the budget counter, so they
//! never fail there either.
//!
//! # Cost
//!
//! Memory is a few dozen bytes per inode and xattr (views of the tree, no
//! copies of names, values or contents); time is linear apart from sorting
//! the xattr pairs. A /usr-sized tree (131k entries, 245k xattrs) takes about
//! 0.1 s on one core of a 2-core machine.

mod check;
mod emit;
mod layout;
mod order;
mod rewrite;
mod xattrs;
mod xref;

pub mod v2;
pub use v2::write_image_v2;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;

use std::io::{self, Write};

use crate::erofs::format::MAX_FORMAT_VERSION;
use crate::tree::{FileSystem, TreeError};

/// Format version bounds, as `mkcomposefs --min-version/--max-version`.
///
/// The image gets version `min_version`, raised to 1 when the tree holds a
/// whiteout (character device 0:0) and `max_version` allows it. A
/// `max_version` below `min_version` is raised to it; values above 1 are
/// rejected with [`WriteError::InvalidVersion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Lowest format version (default 0).
    pub min_version: u32,
    /// Highest version the automatic raise may choose (default 1).
    pub max_version: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            min_version: 0,
            max_version: 1,
        }
    }
}

/// Facts about a written image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageSummary {
    /// Image size in bytes (a multiple of 4096).
    pub size: u64,
    /// The format version in the composefs header (0 or 1).
    pub composefs_version: u32,
    /// Number of inodes (superblock `inos`: tree inodes plus the root's stubs).
    pub inodes: u64,
    /// Whether the header's ACL flag is set.
    pub has_acl: bool,
}

/// Why an image could not be written.
///
/// Where C `mkcomposefs` fails at write time, the message is exactly its
/// `strerror` text (the CLI prints `cannot write file: <message>`); the
/// details are in the fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A version bound above 1 (C: EINVAL from `lcfs_write_to`).
    #[error("Invalid argument")]
    InvalidVersion {
        /// Requested minimum.
        min_version: u32,
        /// Requested maximum.
        max_version: u32,
    },
    /// A hard link whose target has no primary name in the tree (C: EINVAL
    /// from `lcfs_compute_tree`, "link to inode outside tree").
    #[error("Invalid argument")]
    AliasTargetMissing {
        /// Path of the hard link.
        path: String,
    },
    /// An external file needing more than 1024 chunks, i.e. larger than 2^53
    /// bytes (C: EFBIG from `lcfs_node_validate`).
    #[error("File too large")]
    FileTooLarge {
        /// Path of the file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The tree violates a structural invariant.
    #[error(transparent)]
    Tree(TreeError),
    /// A symlink target that is empty, 4096 bytes or longer, or contains NUL
    /// (C rejects these when the tree is built: `Invalid symlink`).
    #[error("{path}: symlink target must be 1..=4095 bytes without NUL, found {len} bytes")]
    BadSymlink {
        /// Path of the symlink.
        path: String,
        /// Target length.
        len: usize,
    },
    /// An object path (redirect payload) of 4096 bytes or longer, or with NUL.
    #[error("{path}: object path must be shorter than 4096 bytes without NUL, found {len} bytes")]
    BadPayload {
        /// Path of the file.
        path: String,
        /// Payload length.
        len: usize,
    },
    /// Inline content above the 5000-byte maximum (`LCFS_INLINE_CONTENT_MAX`).
    #[error("{path}: inline content of {len} bytes exceeds the maximum of 5000 bytes")]
    InlineTooLarge {
        /// Path of the file.
        path: String,
        /// Content length.
        len: usize,
    },
    /// An xattr name that is empty, longer than 255 bytes or contains NUL.
    #[error("{path}: invalid xattr name {name:?} (must be 1..=255 bytes without NUL)")]
    BadXattrName {
        /// Path of the inode.
        path: String,
        /// The name (lossy UTF-8).
        name: String,
    },
    /// An xattr value longer than 65535 bytes.
    #[error("{path}: value of xattr {name:?} has {len} bytes, more than 65535")]
    XattrValueTooLarge {
        /// Path of the inode.
        path: String,
        /// The name (lossy UTF-8).
        name: String,
        /// Value length.
        len: usize,
    },
    /// The same xattr name twice on one inode.
    #[error("{path}: duplicate xattr {name:?}")]
    DuplicateXattr {
        /// Path of the inode.
        path: String,
        /// The name (lossy UTF-8).
        name: String,
    },
    /// The inode's xattrs exceed the per-inode budget of C `lcfs_node_set_xattr`:
    /// 12 + Σ(7 + name + value) ≤ 32767 bytes.
    #[error("{path}: xattrs need {used} budget bytes, more than the maximum of {max}")]
    XattrBudget {
        /// Path of the inode.
        path: String,
        /// Budget bytes needed.
        used: usize,
        /// The limit (32767).
        max: usize,
    },
    /// Directories nested deeper than [`crate::limits::MAX_DEPTH`] levels,
    /// which no reader (nor C tool) accepts.
    #[error(
        "{path}: directories nested deeper than {limit} levels (the limit every composefs reader enforces)"
    )]
    TooDeep {
        /// Path of the first directory too deep.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A hard-linked whiteout, which no V2 reader can represent.
    #[error("{path}: a whiteout (character device 0:0) cannot be hard-linked")]
    HardlinkedWhiteout {
        /// Path of the whiteout.
        path: String,
    },
    /// An inline tail (V2: inline content, symlink target, directory tail)
    /// that does not fit in one block together with its inode and xattrs.
    #[error("{path}: {len} bytes of inline data do not fit in one 4096-byte block with the inode")]
    TailTooLarge {
        /// Path of the inode.
        path: String,
        /// Tail length.
        len: usize,
    },
    /// The image would exceed the 2^32-block limit of EROFS.
    #[error("image too large: {blocks} blocks of 4096 bytes exceed the EROFS limit of 2^32")]
    ImageTooLarge {
        /// Number of blocks needed.
        blocks: u64,
    },
    /// Writing the output failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes the composefs EROFS image of `fs` to `out` in one sequential pass
/// and returns its size and version.
///
/// The layout is computed first (memory proportional to the number of
/// inodes), so an error is reported before any byte is written. `out` is
/// written in large chunks; wrap it in nothing.
pub fn write_image<W: Write>(
    fs: &FileSystem,
    opts: &WriteOptions,
    out: W,
) -> Result<ImageSummary, WriteError> {
    let bounds = check::version_bounds(opts)?;
    check::tree(fs)?;
    check::depth(fs)?;
    let order = order::Order::build(fs);
    let version = if bounds.min < MAX_FORMAT_VERSION
        && bounds.max >= MAX_FORMAT_VERSION
        && order.any_whiteout
    {
        MAX_FORMAT_VERSION
    } else {
        bounds.min
    };
    let max_xattrs = check::inodes(fs, &order)?;
    let xattrs = xattrs::Xattrs::build(fs, &order, version, max_xattrs)?;
    let layout = layout::Layout::compute(fs, &order, &xattrs)?;
    let size = emit::write(fs, &order, &xattrs, &layout, version, out)?;
    Ok(ImageSummary {
        size,
        composefs_version: version,
        inodes: order.nodes.len() as u64,
        has_acl: xattrs.has_acl,
    })
}
