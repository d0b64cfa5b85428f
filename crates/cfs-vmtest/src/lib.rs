//! cfs-vmtest: runs cfs test binaries inside a QEMU guest whose kernel has
//! fs-verity, EROFS and overlayfs — the kernel features a CI host may lack.
//!
//! Pieces, in the order a run uses them:
//! - [`kernel`]: the newest Debian 6.12 kernel package, fetched with a
//!   private apt configuration into the download [`cache`] and unpacked
//!   there (never installed on the host);
//! - [`modules`]: the modules the guest loads, with their dependencies;
//! - [`cpio`]: the initramfs archive (busybox-static, modules, `init`);
//! - [`disk`]: sparse ext4 data disks, with and without `-O verity`;
//! - [`guest`]: QEMU (KVM when it works, else TCG with one vCPU), the
//!   host's root shared read-only over 9p so that host-built test binaries
//!   run unchanged, suites run in order under a time limit;
//! - [`report`]: what the guest printed on its results port, parsed into
//!   per-test PASS/FAIL, and every reason the run failed;
//! - [`cargo`]: the workspace's test executables, from cargo itself;
//! - [`machine`]: whole-machine UEFI boots (OVMF) of an installed disk, for
//!   the deployment tests, driven step by step through a control disk.
//!
//! The integration test `tests/vm/guest.rs` uses all of it; it is what
//! `cargo test --workspace` runs. See the README's "Guest tests".
#![forbid(unsafe_code)]
#![allow(clippy::print_stderr)]

pub mod cache;
pub mod cargo;
pub mod cpio;
pub mod disk;
pub mod guest;
pub mod kernel;
pub mod machine;
pub mod modules;
mod process;
pub mod report;

pub use guest::{DiskSpec, Guest, Suite};
pub use kernel::Kernel;
pub use process::find_tool;
pub use report::{Accel, GuestReport, Outcome};
