//! cfs-deploy: image-based OS deployments on composefs.
//!
//! - [`cmdline`]: the `composefs=` / `composefs.digest=` kernel arguments.
//! - [`bls`]: Boot Loader Specification Type 1 entries.
//! - [`boot_image`]: the boot transform, boot resources, sealed UKIs, boot
//!   images of OCI images.
//! - [`deploy`]: the physical-root layout, `.origin` files, boot entry sets.
//! - [`etc_merge`]: the three-way `/etc` merge of an upgrade (plan, conflicts,
//!   apply).
//! - [`os_release`]: os-release(5), and the entry names bootc derives from it.
//! - [`uki`]: the sections of a Unified Kernel Image (bounded PE/COFF reader).
//! - [`selinux`]: `security.selinux` labels from the image's own policy
//!   (file contexts), as composefs-rs computes them.
//!
//! - [`setup_root`]: root setup in the initramfs (the deployment the
//!   kernel command line names, mounted as the new root).

pub mod bls;
pub mod boot_image;
pub mod cmdline;
pub mod deploy;
pub mod etc_merge;
pub mod os_release;
pub mod selinux;
pub mod setup_root;
pub mod uki;
