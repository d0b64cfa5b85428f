//! cfs-oci: OCI container images in a composefs repository.
//!
//! - [`layer`]: a tar layer → a split stream (`oci-layer-<diff_id>`), bit-exact.
//! - [`merge`]: layer split streams → one filesystem tree (whiteouts, opaque
//!   directories, hard links), as composefs-rs 0.9 builds it.

pub mod layer;
pub mod merge;
mod tar_block;
