//! The one place with `unsafe` code: raw ioctls the safe wrappers lack,
//! SIGBUS-guarded file mappings, and the SHA-NI intrinsics of two-way SHA-256.
//! Every block carries a `// SAFETY:` comment naming the kernel structure it matches.
#![allow(unsafe_code)]

pub(crate) mod file_map;
pub(crate) mod sha256_interleaved;
pub(crate) mod sha512_lanes;
pub(crate) mod verity_ioctl;
