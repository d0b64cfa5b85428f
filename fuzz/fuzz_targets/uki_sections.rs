//! Fuzzes the UKI section reader (`cfs_deploy::uki`): UKIs come from
//! images. The input is a PE file (in a memfd); opening, listing and
//! reading every section must never panic and never read past the file.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fd = rustix::fs::memfd_create("uki", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let mut file = std::fs::File::from(fd);
    file.write_all(data).unwrap();
    let Ok(uki) = cfs_deploy::uki::Uki::open(file) else {
        return;
    };
    let names: Vec<String> = uki.sections().iter().map(|s| s.name.clone()).collect();
    for name in names {
        let section = uki.section(&name).unwrap();
        assert!(section.offset + section.size <= data.len() as u64);
        let _ = uki.read(&name, 1 << 20);
        let _ = uki.text(&name);
    }
});
