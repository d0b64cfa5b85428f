//! fs-verity digests (Linux `Documentation/filesystems/fsverity.rst`).
//!
//! composefs names every object, image and boot argument by an fs-verity
//! digest: the hash of a 256-byte descriptor that embeds the root of a Merkle
//! tree over 4096-byte blocks of the file (no salt). This module holds the
//! digest values ([`Digest`], [`Algorithm`]).

mod digest;

pub use digest::{Algorithm, Digest, DigestParseError, hex_value, push_hex};
