//! Fuzzes the composefs kernel-argument parser (`cfs_deploy::cmdline`), which
//! runs in the initramfs on `/proc/cmdline`. Must never panic; whatever
//! parses must format to an argument that parses back to the same digest.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for arg in cfs_deploy::cmdline::candidates(&text).into_iter().flatten() {
        let again = cfs_deploy::cmdline::candidates(&arg.to_string());
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].as_ref().map(|a| a.digest), Ok(arg.digest));
    }
});
