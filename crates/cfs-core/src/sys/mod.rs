//! The one place with `unsafe` code: raw ioctls the safe wrappers lack, and
//! SIGBUS-guarded file mappings.
//! Every block carries a `// SAFETY:` comment naming the kernel structure it matches.
#![allow(unsafe_code)]

pub(crate) mod file_map;
pub(crate) mod verity_ioctl;
