//! Every reader error, from hand-made or damaged files.

use std::collections::HashMap;
use std::io;

use zerocopy::IntoBytes;

use super::*;

fn parse_err(ss: &[u8]) -> SplitStreamError {
    SplitStream::parse(ss).unwrap_err()
}

/// A valid stream: 3 inline bytes, object 1 (2 bytes), a named ref.
fn sample() -> Vec<u8> {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    w.write_inline(b"abc");
    w.add_external(&sha256(1), 2).unwrap();
    w.add_named_ref("n", &sha256(2)).unwrap();
    w.finish().unwrap()
}

#[test]
fn header_errors() {
    let ss = sample();
    assert!(matches!(
        parse_err(&ss[..31]),
        SplitStreamError::TooShort { len: 31 }
    ));
    let mut bad = ss.clone();
    bad[0] = b's';
    assert!(matches!(parse_err(&bad), SplitStreamError::BadMagic));
    let mut bad = ss.clone();
    bad[11] = 1;
    assert!(matches!(
        parse_err(&bad),
        SplitStreamError::UnsupportedVersion(1)
    ));
    for alg in [0u8, 3, 255] {
        let mut bad = ss.clone();
        bad[14] = alg;
        assert!(matches!(
            parse_err(&bad),
            SplitStreamError::UnsupportedAlgorithm(a) if a == alg
        ));
    }
    let mut bad = ss.clone();
    bad[15] = 16;
    assert!(matches!(
        parse_err(&bad),
        SplitStreamError::UnsupportedBlockSize(16)
    ));
    // Flags are ignored.
    let mut flagged = ss.clone();
    flagged[12] = 0xff;
    SplitStream::parse(&flagged).unwrap();
    // The old layout's checks apply too.
    let mut old = ss[16..32].to_vec();
    old.extend_from_slice(&[0, 0]);
    old.extend_from_slice(b"SplitStream");
    old.extend_from_slice(&[0, 2, 13]);
    old.extend_from_slice(&ss[32..]);
    assert!(matches!(
        parse_err(&old),
        SplitStreamError::UnsupportedBlockSize(13)
    ));
}

#[test]
fn range_errors() {
    let ss = sample();
    let len = ss.len();
    let set_range = |at: usize, start: u64, end: u64| {
        let mut bad = ss.clone();
        bad[at..at + 16].copy_from_slice(Range::new(start, end).as_bytes());
        bad
    };
    // info range: past the end, reversed, absurd, too short.
    for (start, end) in [(32, len as u64 + 1), (112, 32), (u64::MAX, u64::MAX)] {
        assert!(matches!(
            parse_err(&set_range(16, start, end)),
            SplitStreamError::RangeOutOfBounds { what: "info", start: s, end: e, len: l }
                if s == start && e == end && l == len
        ));
    }
    assert!(matches!(
        parse_err(&set_range(16, 32, 111)),
        SplitStreamError::InfoTooShort { len: 79 }
    ));
    for (at, what) in [
        (32, "stream_refs"),
        (48, "object_refs"),
        (64, "stream"),
        (80, "named_refs"),
    ] {
        for (start, end) in [(0, len as u64 + 1), (100, 99)] {
            let err = parse_err(&set_range(at, start, end));
            assert!(
                matches!(err, SplitStreamError::RangeOutOfBounds { what: w, .. } if w == what),
                "{what}: {err}"
            );
        }
    }
    for (at, what) in [(32, "stream_refs"), (48, "object_refs")] {
        assert!(matches!(
            parse_err(&set_range(at, 112, 112 + 33)),
            SplitStreamError::RefArrayLength { what: w, len: 33, digest_len: 32 } if w == what
        ));
    }
}

fn chunks_err(parts: &Parts) -> SplitStreamError {
    let ss = parts.build();
    let parsed = SplitStream::parse(&ss).unwrap();
    collect_chunks(&parsed).unwrap_err()
}

#[test]
fn chunk_errors() {
    let objects = [sha256(1)];
    // Chunk header cut short.
    let err = chunks_err(&Parts::new(&[0xff; 5], &objects, 10));
    assert!(matches!(
        err,
        SplitStreamError::Truncated {
            what: "chunk header"
        }
    ));
    // Inline data cut short.
    let mut data = inline_header(6).to_vec();
    data.extend_from_slice(b"abc");
    let err = chunks_err(&Parts::new(&data, &objects, 10));
    assert!(matches!(
        err,
        SplitStreamError::Truncated {
            what: "inline chunk"
        }
    ));
    // Inline longer than the declared size (the data is never read).
    let err = chunks_err(&Parts::new(&inline_header(11), &objects, 10));
    assert!(matches!(
        err,
        SplitStreamError::InlineTooLong {
            len: 11,
            remaining: 10
        }
    ));
    let err = chunks_err(&Parts::new(&i64::MIN.to_le_bytes(), &objects, u64::MAX));
    assert!(matches!(err, SplitStreamError::Truncated { .. }));
    let mut two = inline_header(6).to_vec();
    two.extend_from_slice(b"abcdef");
    two.extend_from_slice(&inline_header(5));
    let err = chunks_err(&Parts::new(&two, &objects, 10));
    assert!(matches!(
        err,
        SplitStreamError::InlineTooLong {
            len: 5,
            remaining: 4
        }
    ));
    // Object index out of range.
    let err = chunks_err(&Parts::new(&1i64.to_le_bytes(), &objects, 10));
    assert!(matches!(
        err,
        SplitStreamError::ObjectIndex { index: 1, count: 1 }
    ));
    let err = chunks_err(&Parts::new(&i64::MAX.to_le_bytes(), &[], 10));
    assert!(matches!(
        err,
        SplitStreamError::ObjectIndex { count: 0, .. }
    ));
    // Corrupt and truncated zstd.
    let mut parts = Parts::new(b"", &objects, 0);
    parts.stream = b"not zstd at all".to_vec();
    assert!(matches!(chunks_err(&parts), SplitStreamError::Zstd(_)));
    let mut parts = Parts::new(&[0x55; 4000], &objects, 0);
    parts.stream.truncate(parts.stream.len() - 3);
    assert!(matches!(
        chunks_err(&parts),
        SplitStreamError::Truncated { what: "zstd frame" }
    ));
    // Trailing garbage after the frame.
    let mut parts = Parts::new(&0i64.to_le_bytes(), &objects, 0);
    parts.stream.extend_from_slice(b"junk");
    assert!(collect_chunks(&SplitStream::parse(&parts.build()).unwrap()).is_err());
    // Several frames are fine.
    let mut parts = Parts::new(&0i64.to_le_bytes(), &objects, 0);
    parts
        .stream
        .extend_from_slice(&compress(&0i64.to_le_bytes()));
    let ss = parts.build();
    assert_eq!(
        collect_chunks(&SplitStream::parse(&ss).unwrap())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn chunks_stop_after_an_error() {
    let mut data = inline_header(2).to_vec();
    data.extend_from_slice(b"ab");
    data.extend_from_slice(&7i64.to_le_bytes());
    data.extend_from_slice(&0i64.to_le_bytes());
    let ss = Parts::new(&data, &[sha256(1)], 10).build();
    let parsed = SplitStream::parse(&ss).unwrap();
    let items: Vec<_> = parsed.chunks().unwrap().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(matches!(
        items[1],
        Err(SplitStreamError::ObjectIndex { index: 7, .. })
    ));
}

fn named_err(list: &[u8], stream_refs: usize) -> SplitStreamError {
    let mut parts = Parts::new(b"", &[], 0);
    parts.stream_refs = (0..stream_refs).flat_map(|i| [i as u8; 32]).collect();
    parts.named_refs = compress(list);
    let ss = parts.build();
    SplitStream::parse(&ss).unwrap().named_refs().unwrap_err()
}

#[test]
fn named_ref_errors() {
    let syntax = |list: &[u8], want_offset: usize, want: &str| {
        let err = named_err(list, 2);
        assert!(
            matches!(err, SplitStreamError::NamedRefSyntax { offset, reason }
                if offset == want_offset && reason == want),
            "{list:?}: {err}"
        );
    };
    syntax(b"0:a", 0, "record not NUL-terminated");
    syntax(b"0:a\x001:b", 4, "record not NUL-terminated");
    syntax(b"0:a\x00xyz\x00", 4, "no ':' after the index");
    syntax(b"0:a\x00:b\x00", 4, "index is not a decimal number");
    syntax(b"+1:b\x00", 0, "index is not a decimal number");
    syntax(b"1a:b\x00", 0, "index is not a decimal number");
    syntax(b"0:\xff\x00", 0, "name is not UTF-8");
    assert!(matches!(
        named_err(b"1:a\x002:b\x00", 2),
        SplitStreamError::StreamRefIndex { name, index: 2, count: 2 } if name == "b"
    ));
    syntax(b"99999999999999999999999:a\x00", 0, "index too large");
    let big = vec![b'x'; MAX_NAMED_REFS_SIZE + 1];
    assert!(matches!(
        named_err(&big, 1),
        SplitStreamError::NamedRefsTooLarge { .. }
    ));
    let many = b"0:\0".repeat(MAX_NAMED_REFS + 1);
    assert!(matches!(
        named_err(&many, 1),
        SplitStreamError::TooManyNamedRefs { .. }
    ));
    // Exactly the limit is fine; names may hold colons and be empty.
    let mut parts = Parts::new(b"", &[], 0);
    parts.stream_refs = vec![1; 32];
    parts.named_refs = compress(&b"0:\0".repeat(MAX_NAMED_REFS));
    assert_eq!(
        SplitStream::parse(&parts.build())
            .unwrap()
            .named_refs()
            .unwrap()
            .len(),
        MAX_NAMED_REFS
    );
    parts.named_refs = compress(b"00:a:b\0");
    assert_eq!(
        SplitStream::parse(&parts.build())
            .unwrap()
            .named_refs()
            .unwrap(),
        vec![("a:b".into(), Digest::sha256([1; 32]))]
    );
    parts.named_refs = b"garbage".to_vec();
    assert!(matches!(
        SplitStream::parse(&parts.build()).unwrap().named_refs(),
        Err(SplitStreamError::Zstd(_))
    ));
}

#[test]
fn cat_errors() {
    let ss = sample(); // "abc" + object 1 declared as 2 bytes: stream_size 5
    let parsed = SplitStream::parse(&ss).unwrap();
    let cat_with = |content: &[u8]| {
        let store = HashMap::from([(sha256(1), content.to_vec())]);
        let mut out = Vec::new();
        let result = parsed.cat(&mut out, opener(&store));
        (result, out)
    };
    let (result, out) = cat_with(b"de");
    assert_eq!(result.unwrap(), 5);
    assert_eq!(out, b"abcde");
    let (result, _) = cat_with(b"d");
    assert!(matches!(
        result,
        Err(SplitStreamError::SizeMismatch {
            expected: 5,
            found: 4
        })
    ));
    let (result, out) = cat_with(b"def");
    assert!(matches!(
        result,
        Err(SplitStreamError::StreamOverrun { expected: 5 })
    ));
    assert_eq!(out, b"abc");

    let err = parsed
        .cat(io::sink(), |_| {
            Err::<&[u8], _>(io::ErrorKind::NotFound.into())
        })
        .unwrap_err();
    assert!(matches!(
        err,
        SplitStreamError::Object { digest, ref source }
            if digest == sha256(1) && source.kind() == io::ErrorKind::NotFound
    ));

    struct Full;
    impl io::Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::StorageFull.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    assert!(matches!(
        parsed.cat(Full, |_| Ok(&b"de"[..])),
        Err(SplitStreamError::Io(_))
    ));

    // Inline data past the declared size once externals are counted.
    let mut data = 0i64.to_le_bytes().to_vec();
    data.extend_from_slice(&inline_header(3));
    data.extend_from_slice(b"xyz");
    let ss = Parts::new(&data, &[sha256(1)], 4).build();
    let parsed = SplitStream::parse(&ss).unwrap();
    let store = HashMap::from([(sha256(1), b"ab".to_vec())]);
    assert!(matches!(
        parsed.cat(io::sink(), opener(&store)),
        Err(SplitStreamError::StreamOverrun { expected: 4 })
    ));
}

#[test]
fn error_messages_name_expected_and_found() {
    let e = SplitStreamError::SizeMismatch {
        expected: 5,
        found: 4,
    };
    assert_eq!(e.to_string(), "reassembled stream is 4 bytes, expected 5");
    let e = SplitStreamError::RangeOutOfBounds {
        what: "stream",
        start: 1,
        end: 99,
        len: 50,
    };
    assert_eq!(
        e.to_string(),
        "stream range 1..99 is not within the 50-byte file"
    );
}
