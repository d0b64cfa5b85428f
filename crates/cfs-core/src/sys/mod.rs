//! The one place with `unsafe` code: raw ioctls the safe wrappers lack
//! (fs-verity, loop devices), the `mount_setattr` syscall, `unshare`,
//! SIGBUS-guarded file mappings, the SHA-NI intrinsics of two-way SHA-256 and
//! the AVX2/AVX-512 intrinsics of multi-lane SHA-512.
//! Every block carries a `// SAFETY:` comment naming the kernel structure it matches.
#![allow(unsafe_code)]

pub(crate) mod file_map;
pub(crate) mod loop_dev;
pub(crate) mod mount_setattr;
pub(crate) mod namespace;
pub(crate) mod sha256_interleaved;
pub(crate) mod sha512_lanes;
pub(crate) mod verity_ioctl;
