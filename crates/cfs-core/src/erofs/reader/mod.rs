//! EROFS image reader: composefs image bytes → [`FileSystem`](crate::tree::FileSystem) tree, reversing
//! the `mkcomposefs` rewrite the way C `composefs-info` does
//! (erofs-image.md §12), and validating everything it reads.
//!
//! Entry points:
//! - [`read_image`]: the whole tree plus [`ImageInfo`];
//! - [`Image::open`], [`Image::inode`], [`InodeRef::xattrs`],
//!   [`InodeRef::dir_entries`]: a bounds-checked low-level view for code that
//!   needs no tree;
//! - [`referenced_objects`]: the object-store references of an image.
//!
//! # What is read
//!
//! The walk starts at the superblock's root nid and goes depth-first through
//! directories, entries in on-disk (name) order, skipping `.` and `..`. The
//! first name of an inode in that order is its primary name; a nid met again
//! becomes a hard link (alias). Character devices 0:0 — the 256 root stubs
//! `00`..`ff` and any native whiteout — are skipped. Regular files, xattrs and
//! escaped whiteouts are mapped back as described below under `overlay`. With
//! [`ReadOptions::filter`], only the listed root entries are loaded (like
//! `composefs-info --filter`).
//!
//! Deliberate differences from C: the redirect is read with its real stored
//! length (C reads one byte too many); malformed metacopy values are errors
//! (C drops them); symlinks stored out of line are read.
//!
//! # Validation
//!
//! A corrupt or hostile image gives a [`ReadError`] naming the offset, nid or
//! path and what was expected — never a panic, never unbounded memory or
//! time. The checks, by module:
//! - `image`: header, superblock, image size;
//! - `inode`: nid range, inode format, file type, layout vs size, data in
//!   bounds, inline tails inside one block;
//! - `xattrs`: xattr body structure, shared ids, name indexes and names,
//!   the name bloom filter;
//! - `dir`: dirent blocks (nameoffs, names, types) and global name order;
//! - `walk`: `.`/`..`, dirent vs inode type, directories reached once,
//!   depth ≤ [`MAX_DEPTH`], directory nlink, whiteouts with one name;
//! - `overlay`: duplicate xattrs, metacopy/redirect syntax and placement;
//! - all modules: a budget of [`BUDGET_PER_IMAGE_BYTE`] units per image byte
//!   (plus [`BUDGET_BASE`]) covering allocations and per-entry work, so memory
//!   and time stay linear in the image size even when many inodes share the
//!   same shared xattrs or data blocks.
//!
//! Leaf nlink values are not checked (C stores what the dump says), nor are
//! chunk maps (never read by overlayfs for composefs files), `i_ino`,
//! reserved fields or the header's ACL flag.

mod dir;
mod error;
mod image;
mod inode;
mod objects;
mod overlay;
mod to_tree;
mod walk;
mod xattrs;

#[cfg(test)]
mod tests;

pub use dir::{DirEntryRef, DirIter, dirent_type};
pub use error::ReadError;
pub use image::{Image, ImageInfo, MAX_READ_FORMAT_VERSION};
pub use inode::{InodeData, InodeRef, MAX_INLINE, MAX_SYMLINK};
pub use objects::{ObjectRef, referenced_objects};
pub use to_tree::read_image;
pub use walk::{BUDGET_BASE, BUDGET_PER_IMAGE_BYTE, DIRENT_COST, MAX_DEPTH};
pub use xattrs::{XattrIter, XattrRef};

/// Options of [`read_image`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Load only the root entries with these names (`composefs-info
    /// --filter`); `None` loads everything.
    pub filter: Option<Vec<Box<[u8]>>>,
}
