//! Fuzzes the layer merge: the input is a layer tar given to
//! `cfs_oci::merge::build_tree` once alone and once as two layers, with a
//! store that hashes. Must return a result, never panic; every stored
//! object is exactly its announced size.

#![no_main]

use std::io::Read;

use cfs_core::verity::{Algorithm, Digest, digest_bytes};
use cfs_oci::merge::build_tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut store = |r: &mut dyn Read, size: u64| -> std::io::Result<Digest> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        assert_eq!(v.len() as u64, size);
        Ok(digest_bytes(Algorithm::Sha256, &v))
    };
    let _ = build_tree([data], &mut store);
    let _ = build_tree([data, data], &mut store);
});
