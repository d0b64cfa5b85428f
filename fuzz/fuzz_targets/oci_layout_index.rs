//! Fuzzes OCI `index.json` / nested index / manifest resolution: the first
//! byte selects tag and platform, the rest is split at `0xff` into
//! `index.json` and further documents (see
//! `cfs_oci::source::fuzz::fuzz_layout_index`). Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cfs_oci::source::fuzz::fuzz_layout_index(data);
});
