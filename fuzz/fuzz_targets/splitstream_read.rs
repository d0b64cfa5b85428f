//! Fuzzes the split stream reader: any input must parse or fail, and
//! everything a consumer does with a parsed stream (list refs, read named
//! refs, iterate chunks, reassemble) must return a result, never panic.
//!
//! External objects are opened as empty readers, so reassembly of a valid
//! stream with external data ends in a size mismatch; the point is that the
//! chunk decoding and bounds checks run.

#![no_main]

use cfs_core::splitstream::SplitStream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stream) = SplitStream::parse(data) else {
        return;
    };
    let _ = stream.content_type().to_string();
    for (i, digest) in stream.object_refs().enumerate() {
        assert_eq!(stream.object_ref(i), Some(digest));
    }
    assert_eq!(stream.stream_refs().count(), stream.stream_ref_count());
    if let Ok(refs) = stream.named_refs() {
        for (name, digest) in refs {
            assert!(!name.contains('\0'));
            assert!(stream.stream_refs().any(|d| d == digest));
        }
    }
    if let Ok(chunks) = stream.chunks() {
        let mut inline = 0u64;
        for chunk in chunks {
            match chunk {
                Ok(cfs_core::splitstream::Chunk::Inline(bytes)) => {
                    assert!(!bytes.is_empty());
                    inline += bytes.len() as u64;
                }
                Ok(cfs_core::splitstream::Chunk::External { index, digest }) => {
                    assert_eq!(stream.object_ref(index), Some(digest));
                }
                Err(_) => break,
            }
        }
        assert!(inline <= stream.stream_size());
    }
    if let Ok(n) = stream.cat(std::io::sink(), |_| Ok(std::io::empty())) {
        assert_eq!(n, stream.stream_size());
    }
});
