//! cfs-oci: OCI container images in a composefs repository.
//!
//! - [`layer`]: a tar layer → a split stream (`oci-layer-<diff_id>`), bit-exact.
//! - [`merge`]: layer split streams → one filesystem tree (whiteouts, opaque
//!   directories, hard links), as composefs-rs 0.9 builds it.
//! - [`source`]: where images come from (OCI layouts, archives, registries).
//! - [`store`]: manifests, configs and tags in the repository; images built
//!   from them.
//! - [`pull`]: source → verified, decompressed layers → repository.

mod json;
pub mod layer;
pub mod merge;
pub mod pull;
pub mod source;
pub mod store;
mod tar_block;
