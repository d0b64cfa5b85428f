//! The writer's memory bound: long inline runs are cut at block boundaries,
//! the compressed stream spills to a file, and the bytes of streams with
//! short runs are what the unbounded writer produced.

use std::collections::HashMap;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::*;

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The decompressed chunk stream split into (stream offset, chunk header).
fn chunk_headers(file: &[u8]) -> Vec<(u64, i64)> {
    let info = info_of(file);
    let data = decompress(range_bytes(file, info.stream));
    let (mut at, mut offset, mut out) = (0usize, 0u64, Vec::new());
    while at < data.len() {
        let n = i64::from_le_bytes(data[at..at + 8].try_into().unwrap());
        at += 8;
        out.push((offset, n));
        if n < 0 {
            at += n.unsigned_abs() as usize;
            offset += n.unsigned_abs();
        } else {
            offset += 100; // every external object below is 100 bytes
        }
    }
    out
}

/// Short runs (< [`INLINE_FLUSH_SIZE`]) give the bytes the unbounded writer
/// gave (digest pinned from it), even when the compressed stream spills.
#[test]
fn short_runs_keep_their_bytes() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    for i in 0..12u8 {
        for piece in noise(u64::from(i), 900_000).chunks(512) {
            w.write_inline(piece);
        }
        w.add_external(&sha256(i % 3), 100).unwrap();
    }
    w.add_named_ref("x", &sha256(9)).unwrap();
    assert!(w.compressed_len().1, "spilled to a temporary file");
    let file = w.finish().unwrap();
    let mut hex = String::new();
    crate::verity::push_hex(&mut hex, &Sha256::digest(&file));
    assert_eq!(
        hex,
        "b9b062eef9858740699d1b855e3e7afbb946080fbe3c8215dd3a8265da883b77",
        "bytes differ from the unbounded writer's ({} bytes)",
        file.len()
    );
}

/// A > 8 MiB inline run in tar-like 512-byte writes, one long
/// `write_inline`, one long `write_inline_from`: bounded pending run, cuts
/// only at 512-byte boundaries, exact round trip.
#[test]
fn long_inline_runs_are_cut_and_round_trip() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    let mut expected = Vec::new();
    let mut objects = HashMap::new();
    let run = noise(1, 9 << 20);
    for piece in run.chunks(512) {
        w.write_inline(piece);
        assert!(
            w.pending_len() <= INLINE_FLUSH_SIZE + 512,
            "{}",
            w.pending_len()
        );
    }
    expected.extend_from_slice(&run);
    let object = noise(2, 100);
    let digest = digest_bytes(Algorithm::Sha256, &object);
    objects.insert(digest, object.clone());
    w.add_external(&digest, 100).unwrap();
    expected.extend_from_slice(&object);
    w.write_inline(&[7; 412]);
    expected.extend_from_slice(&[7; 412]);
    let big = noise(3, 2 << 20);
    w.write_inline(&big);
    expected.extend_from_slice(&big);
    let from = noise(4, (3 << 20) + 512);
    w.write_inline_from(&from[..], from.len() as u64).unwrap();
    expected.extend_from_slice(&from);
    assert!(w.pending_len() <= MAX_PENDING_INLINE);
    for piece in run.chunks(512).take(100) {
        w.write_inline(piece);
        expected.extend_from_slice(piece);
    }
    assert!(w.compressed_len().1, "spilled to a temporary file");

    let mut via_reader = Vec::new();
    let reader = {
        let mut w2 = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
        w2.write_inline(b"abc");
        w2.into_reader().unwrap()
    };
    let len = reader.len();
    io::BufReader::new(reader)
        .read_to_end(&mut via_reader)
        .unwrap();
    assert_eq!(via_reader.len() as u64, len);

    let file = w.finish().unwrap();
    let ss = SplitStream::parse(&file).unwrap();
    let mut out = Vec::new();
    ss.cat(&mut out, opener(&objects)).unwrap();
    assert!(out == expected, "round trip differs");

    let headers = chunk_headers(&file);
    for pair in headers.windows(2) {
        let [(_, prev), (offset, n)] = [pair[0], pair[1]];
        if n < 0 && prev < 0 {
            // A cut: composefs-rs reads tar blocks within one chunk.
            assert_eq!(
                offset % 512,
                0,
                "inline run cut at unaligned offset {offset}"
            );
            let len = n.unsigned_abs() as usize;
            assert!(
                len <= INLINE_FLUSH_SIZE + 512 || len == big.len() || len == from.len(),
                "chunk of {len} bytes"
            );
        }
    }
    assert!(headers.len() > 12, "{headers:?}");
}

/// Writes that never end on a block boundary are cut at
/// [`MAX_PENDING_INLINE`].
#[test]
fn unaligned_runs_are_bounded() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha512, ContentType::OCI_BLOB);
    let mut expected = vec![1];
    w.write_inline(&[1]);
    let data = noise(5, 10 << 20);
    for piece in data.chunks(4096) {
        w.write_inline(piece);
        assert!(w.pending_len() <= MAX_PENDING_INLINE);
    }
    expected.extend_from_slice(&data);
    let file = w.finish().unwrap();
    let mut out = Vec::new();
    SplitStream::parse(&file)
        .unwrap()
        .cat(&mut out, opener(&HashMap::new()))
        .unwrap();
    assert!(out == expected);
}

#[test]
fn long_short_input_breaks_the_writer() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    w.write_inline(b"head");
    let err = w
        .write_inline_from(&[0u8; 10][..], (INLINE_FLUSH_SIZE + 1) as u64)
        .unwrap_err();
    assert!(
        matches!(err, SplitStreamError::ShortInput { found: 10, .. }),
        "{err}"
    );
    let err = w.finish().unwrap_err();
    assert!(err.to_string().contains("incomplete"), "{err}");
}

#[test]
fn finish_to_matches_finish() {
    let build = || {
        let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
        w.write_inline(&noise(6, 5 << 20));
        w.add_external(&sha256(1), 100).unwrap();
        w
    };
    let mut out = Vec::new();
    let n = build().finish_to(&mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    assert!(out == build().finish().unwrap());
}

/// `Repository::write_stream` streams a spilled stream into the object
/// store; it reads back bit-exactly.
#[test]
fn repository_stores_spilled_streams() {
    use crate::repository::{InitOptions, Repository};
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        insecure: true,
        ..InitOptions::default()
    };
    let (repo, _) = Repository::init(&dir.path().join("repo"), &opts).unwrap();
    let data = noise(7, 6 << 20);
    let build = || {
        let mut w = SplitStreamWriter::new(repo.algorithm(), ContentType::OCI_BLOB);
        for piece in data.chunks(512) {
            w.write_inline(piece);
        }
        w
    };
    let w = build();
    assert!(w.compressed_len().1 || w.pending_len() > 0);
    let id = repo.write_stream("test-big", w, None).unwrap();
    let stored = repo.read_object(&id, 1 << 30).unwrap();
    assert!(stored == build().finish().unwrap());
    let mut out = Vec::new();
    repo.cat_stream("test-big", &mut out).unwrap();
    assert!(out == data);
}
