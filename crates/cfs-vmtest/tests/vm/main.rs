//! The tests that run QEMU machines, in one test binary so that libtest
//! runs them side by side (two at a time on two cores, in name order):
//! the VM boot test (`boot`) beside the guest tests (`guest`), one after
//! the other. The boot test leaves a core idle for minutes (its long
//! chain of boots of one machine), which the guests use; as two binaries
//! the two halves ran one after the other.
//!
//! Both halves run under the same rules: skipped without their tools
//! unless `CFS_TEST_PRIVILEGED=require`, and shared caches (images,
//! kernel) locked with `flock`, so two tests preparing the same thing at
//! once wait for each other.

use std::path::{Path, PathBuf};

mod boot;
mod guest;

/// The workspace root (both halves build and find binaries there).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
