//! cfs-core: the synchronous core of cfs, a Rust implementation of composefs.
//!
//! - [`verity`]: fs-verity digests (userspace Merkle tree, kernel ioctls).
//! - [`tree`]: the in-memory filesystem tree images are built from.
//! - [`dumpfile`]: the composefs-dump text format.
//! - [`erofs`]: the composefs EROFS image format (writer and reader).
//! - [`splitstream`]: split streams (a byte stream as inline data + object references).
//! - [`limits`]: the tree limits every writer enforces and every reader accepts.
//! - [`beneath`]: opening paths below a directory without following symlinks.
//! - [`mount`]: mounting composefs images (EROFS + overlayfs).
//! - [`repository`]: the composefs-rs compatible repository (objects, images, streams, refs, GC, fsck).
//!
//! No async runtime; parallel work uses `std::thread::scope`.

pub mod beneath;
pub mod dumpfile;
pub mod erofs;
pub mod limits;
pub mod mount;
pub mod objects;
pub mod repository;
pub mod splitstream;
mod sys;
pub mod tree;
pub mod verity;
