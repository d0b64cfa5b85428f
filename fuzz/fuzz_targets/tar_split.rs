//! Fuzzes the tar splitter: any input must split or fail, never panic, and
//! an accepted input must reassemble to exactly the same bytes with only
//! contents larger than 64 bytes stored as objects.

#![no_main]

use std::collections::HashMap;
use std::io::Read;

use cfs_core::splitstream::{ContentType, SplitStream, SplitStreamWriter};
use cfs_core::verity::{Algorithm, digest_bytes};
use cfs_oci::layer::{INLINE_CONTENT_MAX, split_tar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut objects = HashMap::new();
    let mut writer = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    let mut store = |r: &mut dyn Read, size: u64| {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        assert_eq!(v.len() as u64, size);
        assert!(size > INLINE_CONTENT_MAX);
        let d = digest_bytes(Algorithm::Sha256, &v);
        objects.insert(d, v);
        Ok(d)
    };
    let Ok(stats) = split_tar(data, &mut writer, &mut store) else {
        return;
    };
    assert_eq!(stats.bytes, data.len() as u64);
    let file = writer.finish().expect("finish");
    let stream = SplitStream::parse(&file).expect("parse");
    let mut out = Vec::new();
    stream
        .cat(&mut out, |d| Ok(objects[d].as_slice()))
        .expect("cat");
    assert!(out == data);
});
