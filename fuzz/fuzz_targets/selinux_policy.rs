//! Fuzzes the SELinux file-contexts loader and matcher (`cfs_deploy::selinux`):
//! policies come from the images being made bootable. The input is split at
//! the first NUL into `file_contexts` and `file_contexts.subs`; loading must
//! never panic, and a loaded policy must answer lookups of every type.

#![no_main]

use cfs_core::tree::FileType;
use cfs_deploy::selinux::{LookupOrder, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (specs, subs) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    for order in [LookupOrder::ComposefsRs, LookupOrder::Libselinux] {
        let mut read = |path: &[u8]| -> Result<Option<Vec<u8>>, cfs_deploy::selinux::SelinuxError> {
            Ok(match path {
                b"/etc/selinux/config" => Some(b"SELINUXTYPE=t\n".to_vec()),
                b"/etc/selinux/t/contexts/files/file_contexts" => Some(specs.to_vec()),
                b"/etc/selinux/t/contexts/files/file_contexts.subs" => subs.map(<[u8]>::to_vec),
                _ => None,
            })
        };
        if let Ok(Some(mut policy)) = Policy::load(&mut read, order) {
            for path in [&b"/"[..], b"/usr/bin/bash", b"/var/run/x", b"/home/u/.ssh", specs] {
                for ft in [FileType::Regular, FileType::Directory, FileType::Symlink, FileType::Fifo] {
                    let _ = policy.lookup(path, ft);
                }
            }
        }
    }
});
