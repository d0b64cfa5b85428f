//! Fuzzes the tar member index of `oci-archive:` / `docker-archive:`: the
//! input is the (uncompressed) archive, indexed, then read as an OCI layout
//! and as a Docker archive (see `cfs_oci::source::fuzz::fuzz_archive_index`).
//! Must never panic nor allocate beyond the index's own limits.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cfs_oci::source::fuzz::fuzz_archive_index(data);
});
