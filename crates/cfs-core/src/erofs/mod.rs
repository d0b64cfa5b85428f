//! How composefs uses EROFS: metadata-only images whose regular files point into
//! an object store through overlayfs `trusted.overlay.metacopy` (fs-verity
//! digest) and `trusted.overlay.redirect` (object path) xattrs.
//!
//! - [`format`](mod@format): the on-disk structures (the layout specification).
//! - [`xattr`]: name prefixes, entry sizes, the name bloom filter.

pub mod format;
pub mod reader;
pub mod writer;
pub mod xattr;
