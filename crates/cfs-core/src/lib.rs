//! cfs-core: the synchronous core of cfs, a Rust implementation of composefs.
//!
//! - [`verity`]: fs-verity digests (userspace Merkle tree, kernel ioctls).
//! - [`tree`]: the in-memory filesystem tree images are built from.
//! - [`erofs`]: the composefs EROFS image format.
//!
//! No async runtime; parallel work uses `std::thread::scope`.

pub mod erofs;
pub mod tree;
pub mod verity;
