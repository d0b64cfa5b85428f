//! EROFS image reader: composefs image bytes → [`FileSystem`](crate::tree::FileSystem) tree,
//! reversing the `mkcomposefs` rewrite the way C `composefs-info` does
//! (erofs-image.md §12), and validating everything it reads.
//!
//! Entry points:
//! - [`read_image`]: the whole tree plus [`ImageInfo`];
//! - [`Image::open`], [`Image::inode`], [`InodeRef::xattrs`],
//!   [`InodeRef::dir_entries`]: a bounds-checked low-level view for code that
//!   needs no tree;
//! - [`referenced_objects`]: the object-store references of an image, from
//!   the same validated walk but without building a tree.
//!
//! # What is read
//!
//! The walk starts at the superblock's root nid and goes depth-first through
//! directories, entries in on-disk (name) order, skipping `.` and `..`. The
//! first name of an inode in that order is its primary name; a nid met again
//! becomes a hard link (alias). Character devices 0:0 — the 256 root stubs
//! `00`..`ff` and any native whiteout — are skipped (except in composefs-rs
//! V2 images, which have no stubs and store whiteouts natively). Compact
//! inodes get the build time as mtime; `Directory.size` is `i_size`. With
//! [`ReadOptions::filter`], only the listed root entries are loaded (like
//! `composefs-info --filter`).
//!
//! Xattrs come in on-disk order (inline entries, then shared ones), mapped
//! like C does: `trusted.overlay.redirect` (object path, one leading `/`
//! stripped) and `trusted.overlay.metacopy` (digest) are consumed on regular
//! files and dropped elsewhere; `trusted.overlay.overlay.whiteout` on a
//! regular file makes it a whiteout (`CharDevice(0)`, permission bits kept);
//! `trusted.overlay.overlay.whiteouts`, `user.overlay.whiteout` and
//! `user.overlay.whiteouts` are dropped; `trusted.overlay.overlay.X` becomes
//! `trusted.overlay.X`; other `trusted.overlay.*` are dropped; the rest is
//! kept. Flat regular files become `Inline`, chunk-based ones `External`.
//!
//! Deliberate differences from C: the redirect is read with its real stored
//! length (C reads one byte too many and prints garbage for payloads of
//! length ≡ 3 mod 4); malformed metacopy values are errors (C silently drops
//! any value that is not 36 bytes, losing SHA-512 digests); everything below
//! is checked.
//!
//! # Validation
//!
//! A corrupt or hostile image gives a [`ReadError`] naming the offset, nid or
//! path and what was expected — never a panic, never unbounded memory or
//! time. Checks:
//!
//! - image: ≥ 4096 bytes, a multiple of 4096 and equal to the superblock's
//!   `blocks`; composefs magic ([`ReadError::NotComposefs`], C EINVAL),
//!   header version 1 ([`ReadError::UnsupportedVersion`], C ENOTSUP),
//!   `composefs_version` ≤ 2, header flags ⊆ {HAS_ACL}; EROFS magic,
//!   `blkszbits` 12, compat features ⊆ {SB_CHKSUM, MTIME, XATTR_FILTER},
//!   incompat features ⊆ {CHUNKED_FILE}, and zero `sb_extslots`,
//!   `meta_blkaddr`, compression, extra devices, `dirblkbits`, long xattr
//!   prefixes and packed nid; root nid and shared xattr base in bounds.
//! - inodes: the nid addresses a 32-byte slot after the superblock; inode
//!   and xattr body lie in the image; `i_format` has only known bits and a
//!   flat or chunk-based layout; the mode has a known file type; directories
//!   are flat and non-empty; symlinks are flat, 1..=4095 bytes, no NUL;
//!   devices, fifos and sockets are FLAT_PLAIN with size 0; flat regular
//!   files hold at most [`MAX_INLINE`] bytes; chunk formats have no unknown
//!   bits; data blocks lie in the image; a FLAT_INLINE tail is non-empty, in
//!   the image and inside one block (else the kernel reports EFSCORRUPTED).
//! - xattrs: the body holds its header and shared ids and the inline entries
//!   fill it exactly; shared entries lie in the image; name indexes are
//!   known, names have no NUL, index-0 names are non-empty and do not start
//!   with a prefix that has its own index; with XATTR_FILTER, the name
//!   filter marks no present xattr as absent; no name occurs twice.
//! - overlay data: a metacopy is empty or a valid overlayfs metacopy
//!   (version 0, length byte = size, flags 0, SHA-256/36 or SHA-512/68
//!   bytes); a redirect is `/` + a non-empty path without NUL; redirect and
//!   metacopy only on chunk-based files; a chunk-based file has size > 0 and
//!   a metacopy.
//! - directories: each block's first `nameoff` is a non-zero multiple of 12
//!   below the block size; names start where the previous one ended and end
//!   in the block (the last at the first NUL or the block end); names are
//!   1..=255 bytes without `/` or NUL and strictly increase across the whole
//!   directory; file types are known and equal the target inode's type;
//!   `.` names the directory and `..` its parent (the root's `..` the root),
//!   both present; nlink = 2 + subdirectories.
//! - graph: no directory is reached twice (directory hard link or cycle,
//!   [`ReadError::DirectoryLinked`]); nesting ≤ [`MAX_DEPTH`]; a skipped
//!   whiteout has nlink ≤ 1 and one name.
//! - resources: a budget of [`BUDGET_PER_IMAGE_BYTE`] units per image byte
//!   plus [`BUDGET_BASE`] pays for every allocation of the tree and
//!   [`DIRENT_COST`] / 64 units per directory entry / xattr examined, so
//!   memory and time stay linear in the image size even when many inodes
//!   share the same shared xattrs or data blocks. The walk is iterative (no
//!   recursion), every directory is read once, every inode parsed once.
//!
//! Not checked: leaf nlink values (C stores what the dump says), chunk maps
//! (overlayfs never reads them for composefs files, and C writes maps of
//! more than 512 chunks where the kernel does not look), `i_ino`, reserved
//! and padding bytes, and the header's ACL flag.

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
