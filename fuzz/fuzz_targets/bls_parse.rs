//! Fuzzes the BLS Type 1 entry parser (`cfs_deploy::bls`): entries are read
//! from images and from the ESP. Must never panic; an entry that parses
//! writes out to text that parses back to the same entry.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(entry) = cfs_deploy::bls::Entry::parse(&text) {
        assert_eq!(cfs_deploy::bls::Entry::parse(&entry.to_string()), Ok(entry));
    }
});
