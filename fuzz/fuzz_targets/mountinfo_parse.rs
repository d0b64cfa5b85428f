//! Fuzzes the mount-table parser GC uses to find mounted images
//! (`cfs_core::repository::mounted::image_ids`): mount sources can be chosen
//! by unprivileged users in their own namespaces. Must never panic, and
//! every id it returns must be lowercase hex of the asked length.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for len in [64, 128] {
        for id in cfs_core::repository::mounted::image_ids(&text, len) {
            assert_eq!(id.len(), len);
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }
});
