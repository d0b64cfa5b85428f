//! Property tests: random streams round trip exactly, and damaged or random
//! files never make the reader panic.

use std::collections::HashMap;
use std::io;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Piece {
    Inline(Vec<u8>),
    External(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Piece::Inline),
        // Few distinct contents, so objects repeat.
        (0u8..4, 0usize..200).prop_map(|(b, n)| Piece::External(vec![b; n])),
    ]
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9:.=-]{0,12}"
}

/// Writes `pieces` and `names`; returns the stream, the expected bytes and
/// the object store.
fn write_stream(
    algorithm: Algorithm,
    pieces: &[Piece],
    names: &[(String, u8)],
) -> (Vec<u8>, Vec<u8>, HashMap<Digest, Vec<u8>>) {
    let mut w = SplitStreamWriter::new(algorithm, ContentType::OCI_LAYER);
    let mut expected = Vec::new();
    let mut store = HashMap::new();
    for piece in pieces {
        match piece {
            Piece::Inline(data) => w.write_inline(data),
            Piece::External(data) => {
                let digest = digest_bytes(algorithm, data);
                w.add_external(&digest, data.len() as u64).unwrap();
                store.insert(digest, data.clone());
            }
        }
        let (Piece::Inline(data) | Piece::External(data)) = piece;
        expected.extend_from_slice(data);
    }
    for (i, (name, seed)) in names.iter().enumerate() {
        let digest = digest_bytes(algorithm, &[*seed]);
        let result = w.add_named_ref(name, &digest);
        let first = names.iter().position(|(n, _)| n == name) == Some(i);
        assert_eq!(result.is_ok(), first, "{name:?}");
    }
    (w.finish().unwrap(), expected, store)
}

/// Everything a consumer might do with a parsed stream; must not panic.
fn exercise(ss: &[u8]) {
    let Ok(parsed) = SplitStream::parse(ss) else {
        return;
    };
    let _ = parsed.object_refs().count();
    let _ = parsed.stream_refs().count();
    let _ = parsed.named_refs();
    if let Ok(chunks) = parsed.chunks() {
        for chunk in chunks.take(10_000) {
            if chunk.is_err() {
                break;
            }
        }
    }
    let _ = parsed.cat(io::sink(), |_| Ok(io::empty()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip(
        algorithm in algorithm(),
        pieces in proptest::collection::vec(piece(), 0..20),
        names in proptest::collection::vec((name(), any::<u8>()), 0..6),
    ) {
        let (ss, expected, store) = write_stream(algorithm, &pieces, &names);
        let parsed = SplitStream::parse(&ss).unwrap();
        prop_assert_eq!(parsed.algorithm(), algorithm);
        prop_assert_eq!(parsed.stream_size(), expected.len() as u64);

        let mut out = Vec::new();
        prop_assert_eq!(parsed.cat(&mut out, opener(&store)).unwrap(), expected.len() as u64);
        prop_assert_eq!(&out, &expected);

        // The chunks give the same bytes; inline chunks are never adjacent.
        let mut joined = Vec::new();
        let mut last_inline = false;
        for chunk in parsed.chunks().unwrap() {
            match chunk.unwrap() {
                Chunk::Inline(data) => {
                    prop_assert!(!data.is_empty() && !last_inline);
                    last_inline = true;
                    joined.extend_from_slice(&data);
                }
                Chunk::External { index, digest } => {
                    last_inline = false;
                    prop_assert_eq!(parsed.object_ref(index), Some(digest));
                    joined.extend_from_slice(&store[&digest]);
                }
            }
        }
        prop_assert_eq!(&joined, &expected);

        // Object refs: each distinct object once, in order of first use.
        let mut first_use = Vec::new();
        for piece in &pieces {
            if let Piece::External(data) = piece {
                let d = digest_bytes(algorithm, data);
                if !first_use.contains(&d) {
                    first_use.push(d);
                }
            }
        }
        prop_assert_eq!(parsed.object_refs().collect::<Vec<_>>(), first_use);

        // Named refs: first definition of each name wins, sorted by name.
        let mut want: Vec<(String, Digest)> = Vec::new();
        for (name, seed) in &names {
            if !want.iter().any(|(n, _)| n == name) {
                want.push((name.clone(), digest_bytes(algorithm, &[*seed])));
            }
        }
        want.sort();
        prop_assert_eq!(parsed.named_refs().unwrap(), want);
    }

    #[test]
    fn damaged_streams_never_panic(
        pieces in proptest::collection::vec(piece(), 0..8),
        names in proptest::collection::vec((name(), any::<u8>()), 0..3),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        writes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        let (ss, _, _) = write_stream(Algorithm::Sha256, &pieces, &names);
        let mut damaged = ss.clone();
        for (at, bit) in &flips {
            let i = at.index(damaged.len());
            damaged[i] ^= 1 << bit;
        }
        for (at, byte) in &writes {
            let i = at.index(damaged.len());
            damaged[i] = *byte;
        }
        exercise(&damaged);
        exercise(&damaged[..cut.index(damaged.len() + 1)]);
        exercise(&ss[..cut.index(ss.len() + 1)]);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
        let mut with_magic = b"SplitStream\0\0\0\x01\x0c".to_vec();
        with_magic.extend_from_slice(&bytes);
        exercise(&with_magic);
    }
}
