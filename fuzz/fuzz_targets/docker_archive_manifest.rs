//! Fuzzes docker-archive `manifest.json`: the first byte selects the
//! requested name, the rest is `manifest.json` in an archive with a config,
//! layers and links (see
//! `cfs_oci::source::fuzz::fuzz_docker_archive_manifest`). Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cfs_oci::source::fuzz::fuzz_docker_archive_manifest(data);
});
