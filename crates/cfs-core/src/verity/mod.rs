//! fs-verity digests (Linux `Documentation/filesystems/fsverity.rst`).
//!
//! composefs names every object, image and boot argument by an fs-verity
//! digest. composefs always uses 4096-byte Merkle blocks and no salt; the hash
//! is SHA-256 (kernel id 1) or SHA-512 (kernel id 2).
//!
//! # Format
//!
//! With `H` the hash, `D` its size (32 or 64) and `B = 4096`:
//!
//! 1. The file is cut into `B`-byte data blocks, the last one zero-padded.
//! 2. Tree level 0 is `H(block)` of every data block, concatenated. While a
//!    level holds more than one hash, its concatenation is cut into `B`-byte
//!    blocks (`B / D` = 128 or 64 hashes each, the last block zero-padded) and
//!    the hashes of those blocks form the next level. The single hash of the
//!    top level is the root hash; an empty file has `D` zero bytes as root.
//! 3. The 256-byte descriptor is, little-endian: `version = 1` (u8),
//!    `hash_algorithm` (u8), `log_blocksize = 12` (u8), `salt_size = 0` (u8),
//!    4 reserved zero bytes, `data_size` (u64), `root_hash` (64 bytes, zero
//!    padded), 32 zero salt bytes, 144 reserved zero bytes.
//! 4. The digest is `H(descriptor)`.
//!
//! # Contents
//!
//! - [`Digest`], [`Algorithm`]: digest values, hex and object-store paths.
//! - [`FsVerityHasher`], [`digest_bytes`], [`digest_reader`]: streaming
//!   userspace computation in constant memory.
//! - [`digest_file`], [`digest_files`]: multi-threaded computation for one
//!   large file or many files, with positional reads and bounded memory.
//! - [`enable_verity`], [`measure_verity`], [`measure_or_compute`]: the kernel
//!   ioctls `FS_IOC_ENABLE_VERITY` / `FS_IOC_MEASURE_VERITY`, with
//!   [`VerityError`] naming the errno cases.

mod block;
mod digest;
mod kernel;
mod merkle;
mod parallel;

pub use block::BLOCK_SIZE;
pub use digest::{Algorithm, Digest, DigestParseError, hex_value, push_hex};
pub use kernel::{VerityError, enable_verity, measure_or_compute, measure_verity};
pub use merkle::{FsVerityHasher, digest_bytes, digest_reader};
pub use parallel::{default_threads, digest_file, digest_files, resolve_threads};

#[cfg(test)]
mod tests;
