//! Split stream tests: layout and writer rules here; reader errors in
//! `errors`, property tests in `props`.

use std::collections::HashMap;
use std::io::{self, Read};

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U64};

use super::format::{HEADER_SIZE, INFO_SIZE, LG_BLOCKSIZE, VERSION};
use super::*;
use crate::verity::{Algorithm, Digest, digest_bytes};

mod bounded;
mod errors;
mod props;

fn sha256(n: u8) -> Digest {
    Digest::sha256([n; 32])
}

fn inline_header(len: usize) -> [u8; 8] {
    (-(len as i64)).to_le_bytes()
}

fn compress(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

fn decompress(data: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(data).unwrap()
}

fn range_bytes(ss: &[u8], r: Range) -> &[u8] {
    &ss[r.start.get() as usize..r.end.get() as usize]
}

fn info_of(ss: &[u8]) -> Info {
    zerocopy::FromBytes::read_from_bytes(&ss[HEADER_SIZE..HEADER_SIZE + INFO_SIZE]).unwrap()
}

/// Parts of a hand-made split stream; `build` lays them out like the writer.
struct Parts {
    algorithm: u8,
    stream_refs: Vec<u8>,
    object_refs: Vec<u8>,
    named_refs: Vec<u8>,
    stream: Vec<u8>,
    stream_size: u64,
}

impl Parts {
    /// A SHA-256 stream with the given decompressed chunk data and object refs.
    fn new(chunks: &[u8], objects: &[Digest], stream_size: u64) -> Self {
        Parts {
            algorithm: 1,
            stream_refs: Vec::new(),
            object_refs: objects.iter().flat_map(|d| d.as_bytes()).copied().collect(),
            named_refs: compress(b""),
            stream: compress(chunks),
            stream_size,
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut at = (HEADER_SIZE + INFO_SIZE) as u64;
        let mut place = |len: usize| {
            let r = Range::new(at, at + len as u64);
            at += len as u64;
            r
        };
        let info = Info {
            stream_refs: place(self.stream_refs.len()),
            object_refs: place(self.object_refs.len()),
            named_refs: place(self.named_refs.len()),
            stream: place(self.stream.len()),
            content_type: ContentType::OCI_BLOB,
            stream_size: U64::new(self.stream_size),
        };
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            flags: U16::new(0),
            algorithm: self.algorithm,
            lg_blocksize: LG_BLOCKSIZE,
            info: Range::new(32, 112),
        };
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(info.as_bytes());
        for part in [
            &self.stream_refs,
            &self.object_refs,
            &self.named_refs,
            &self.stream,
        ] {
            out.extend_from_slice(part);
        }
        out
    }
}

/// `open` for `cat` over an in-memory object store.
fn opener<'s>(
    store: &'s HashMap<Digest, Vec<u8>>,
) -> impl FnMut(&Digest) -> io::Result<&'s [u8]> + 's {
    |d| {
        store
            .get(d)
            .map(Vec::as_slice)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

fn collect_chunks(ss: &SplitStream<'_>) -> Result<Vec<Chunk>, SplitStreamError> {
    ss.chunks()?.collect()
}

// ---------------------------------------------------------------- layout

#[test]
fn layout_matches_the_spec_example() {
    let object = vec![7u8; 100_000];
    let digest = digest_bytes(Algorithm::Sha256, &object);
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    w.write_inline(&[1u8; 512]);
    w.add_external(&digest, object.len() as u64).unwrap();
    w.write_inline(&[0u8; 1024]);
    let ss = w.finish().unwrap();

    assert_eq!(&ss[..11], b"SplitStream");
    assert_eq!(&ss[11..16], &[0, 0, 0, 1, 12]);
    assert_eq!(&ss[16..32], Range::new(0x20, 0x70).as_bytes());
    let info = info_of(&ss);
    assert_eq!(info.stream_refs, Range::new(0x70, 0x70));
    assert_eq!(info.object_refs, Range::new(0x70, 0x90));
    assert_eq!(info.named_refs, Range::new(0x90, 0x99));
    assert_eq!(info.stream, Range::new(0x99, ss.len() as u64));
    assert_eq!(&ss[0x60..0x68], b"ocilayer");
    assert_eq!(info.stream_size.get(), 512 + 100_000 + 1024);
    assert_eq!(&ss[0x70..0x90], digest.as_bytes());
    assert_eq!(decompress(&ss[0x90..0x99]), b"");

    let mut expected = inline_header(512).to_vec();
    expected.extend_from_slice(&[1u8; 512]);
    expected.extend_from_slice(&0i64.to_le_bytes());
    expected.extend_from_slice(&inline_header(1024));
    expected.extend_from_slice(&[0u8; 1024]);
    assert_eq!(decompress(&ss[0x99..]), expected);

    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(parsed.header_layout(), HeaderLayout::Current);
    assert_eq!(parsed.content_type(), ContentType::OCI_LAYER);
    let store = HashMap::from([(digest, object.clone())]);
    let mut out = Vec::new();
    assert_eq!(parsed.cat(&mut out, opener(&store)).unwrap(), 101_536);
    assert_eq!(&out[512..100_512], &object[..]);
}

#[test]
fn empty_stream() {
    let ss = SplitStreamWriter::new(Algorithm::Sha512, ContentType::OCI_CONFIG)
        .finish()
        .unwrap();
    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(parsed.algorithm(), Algorithm::Sha512);
    assert_eq!(parsed.stream_size(), 0);
    assert_eq!(collect_chunks(&parsed).unwrap(), vec![]);
    assert!(parsed.named_refs().unwrap().is_empty());
    assert_eq!(parsed.cat(io::sink(), |_| Ok(io::empty())).unwrap(), 0);
}

#[test]
fn empty_ranges_mean_nothing() {
    let mut parts = Parts::new(b"", &[], 0);
    parts.stream.clear();
    parts.named_refs.clear();
    let ss = parts.build();
    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(collect_chunks(&parsed).unwrap(), vec![]);
    assert!(parsed.named_refs().unwrap().is_empty());
    assert_eq!(parsed.cat(io::sink(), |_| Ok(io::empty())).unwrap(), 0);
}

#[test]
fn old_header_is_read() {
    let new = {
        let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
        w.write_inline(b"hello ");
        w.add_external(&sha256(9), 5).unwrap();
        w.add_named_ref("x", &sha256(3)).unwrap();
        w.finish().unwrap()
    };
    let old = OldHeader {
        info: Range::new(32, 112),
        flags: U16::new(0),
        magic: MAGIC,
        version: 0,
        algorithm: 1,
        lg_blocksize: 12,
    };
    let mut ss = old.as_bytes().to_vec();
    ss.extend_from_slice(&new[32..]);
    assert_eq!(&ss[18..29], b"SplitStream");

    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(parsed.header_layout(), HeaderLayout::Old);
    assert_eq!(parsed.stream_size(), 11);
    assert_eq!(parsed.named_refs().unwrap(), vec![("x".into(), sha256(3))]);
    let store = HashMap::from([(sha256(9), b"world".to_vec())]);
    let mut out = Vec::new();
    parsed.cat(&mut out, opener(&store)).unwrap();
    assert_eq!(out, b"hello world");
}

#[test]
fn longer_info_section_is_accepted() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    w.write_inline(b"abc");
    let written = w.finish().unwrap();
    // Rebuild with 16 extra bytes after the info section, ranges shifted.
    let info = info_of(&written);
    let shift = |r: Range| Range::new(r.start.get() + 16, r.end.get() + 16);
    let info = Info {
        stream_refs: shift(info.stream_refs),
        object_refs: shift(info.object_refs),
        stream: shift(info.stream),
        named_refs: shift(info.named_refs),
        ..info
    };
    let mut ss = written[..16].to_vec();
    ss.extend_from_slice(Range::new(32, 128).as_bytes());
    ss.extend_from_slice(info.as_bytes());
    ss.extend_from_slice(&[0xee; 16]);
    ss.extend_from_slice(&written[112..]);
    let parsed = SplitStream::parse(&ss).unwrap();
    let mut out = Vec::new();
    parsed.cat(&mut out, |_| Ok(io::empty())).unwrap();
    assert_eq!(out, b"abc");
}

#[test]
fn content_type_tags() {
    assert_eq!(ContentType::OCI_LAYER.to_string(), "ocilayer");
    assert_eq!(ContentType::OCI_BLOB.to_string(), "oci_blob");
    assert_eq!(ContentType::OSTREE_COMMIT.to_u64(), 0xAFE1_38C1_8C46_3EF1);
    assert_eq!(ContentType::OSTREE_COMMIT.as_bytes()[0], 0xf1);
    assert_eq!(ContentType::OSTREE_COMMIT.to_string(), "0xafe138c18c463ef1");
    assert_eq!(
        format!("{:?}", ContentType::OCI_MANIFEST),
        "ContentType(ocimanif)"
    );
    assert_eq!(
        ContentType::from_u64(u64::from_le_bytes(*b"ociconfg")),
        ContentType::OCI_CONFIG
    );
}

// ---------------------------------------------------------------- writer

#[test]
fn inline_writes_merge_and_objects_dedup() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    w.write_inline(b"ab");
    w.write_inline(b"");
    w.write_inline_from(&b"cdXX"[..], 2).unwrap();
    w.add_external(&sha256(1), 3).unwrap();
    w.add_external(&sha256(2), 0).unwrap();
    w.add_external(&sha256(1), 3).unwrap();
    w.write_inline(b"");
    assert_eq!(w.stream_size(), Some(10));
    let ss = w.finish().unwrap();

    let info = info_of(&ss);
    let mut expected = inline_header(4).to_vec();
    expected.extend_from_slice(b"abcd");
    for index in [0i64, 1, 0] {
        expected.extend_from_slice(&index.to_le_bytes());
    }
    assert_eq!(decompress(range_bytes(&ss, info.stream)), expected);

    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(
        parsed.object_refs().collect::<Vec<_>>(),
        vec![sha256(1), sha256(2)]
    );
    assert_eq!(
        collect_chunks(&parsed).unwrap(),
        vec![
            Chunk::Inline(b"abcd".to_vec()),
            Chunk::External {
                index: 0,
                digest: sha256(1)
            },
            Chunk::External {
                index: 1,
                digest: sha256(2)
            },
            Chunk::External {
                index: 0,
                digest: sha256(1)
            },
        ]
    );
}

#[test]
fn named_refs_are_sorted_and_stream_refs_dedup() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_CONFIG);
    assert_eq!(w.add_stream_ref(&sha256(5)).unwrap(), 0);
    w.add_named_ref("sha256:bb", &sha256(6)).unwrap();
    w.add_named_ref("composefs.image", &sha256(5)).unwrap();
    w.add_named_ref("sha256:aa", &sha256(7)).unwrap();
    assert_eq!(w.add_stream_ref(&sha256(6)).unwrap(), 1);
    let ss = w.finish().unwrap();

    let info = info_of(&ss);
    assert_eq!(
        decompress(range_bytes(&ss, info.named_refs)),
        b"0:composefs.image\x002:sha256:aa\x001:sha256:bb\x00"
    );
    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(
        parsed.stream_refs().collect::<Vec<_>>(),
        vec![sha256(5), sha256(6), sha256(7)]
    );
    assert_eq!(parsed.stream_ref(2), Some(sha256(7)));
    assert_eq!(parsed.stream_ref(3), None);
    assert_eq!(
        parsed.named_refs().unwrap(),
        vec![
            ("composefs.image".into(), sha256(5)),
            ("sha256:aa".into(), sha256(7)),
            ("sha256:bb".into(), sha256(6)),
        ]
    );
}

#[test]
fn writer_errors() {
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    let sha512 = Digest::sha512([1; 64]);
    assert!(matches!(
        w.add_external(&sha512, 1),
        Err(SplitStreamError::AlgorithmMismatch {
            expected: Algorithm::Sha256,
            found: Algorithm::Sha512
        })
    ));
    assert!(matches!(
        w.add_stream_ref(&sha512),
        Err(SplitStreamError::AlgorithmMismatch { .. })
    ));
    assert!(matches!(
        w.add_named_ref("n", &sha512),
        Err(SplitStreamError::AlgorithmMismatch { .. })
    ));
    assert!(matches!(
        w.add_named_ref("a\0b", &sha256(1)),
        Err(SplitStreamError::NameContainsNul(n)) if n == "a\0b"
    ));
    w.add_named_ref("a", &sha256(1)).unwrap();
    assert!(matches!(
        w.add_named_ref("a", &sha256(2)),
        Err(SplitStreamError::DuplicateName(n)) if n == "a"
    ));

    w.write_inline(b"x");
    assert!(matches!(
        w.write_inline_from(&b"abc"[..], 5),
        Err(SplitStreamError::ShortInput {
            expected: 5,
            found: 3
        })
    ));
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("boom"))
        }
    }
    assert!(matches!(
        w.write_inline_from(Failing, 1),
        Err(SplitStreamError::Io(_))
    ));
    assert_eq!(w.stream_size(), Some(1));

    w.add_external(&sha256(1), u64::MAX).unwrap();
    assert_eq!(w.stream_size(), None);
    assert!(matches!(
        w.finish(),
        Err(SplitStreamError::StreamSizeOverflow)
    ));

    // Nothing from the failed calls made it into the stream.
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    w.write_inline(b"x");
    let _ = w.write_inline_from(&b"abc"[..], 5);
    let _ = w.add_named_ref("a\0", &sha256(1));
    let ss = w.finish().unwrap();
    let parsed = SplitStream::parse(&ss).unwrap();
    assert_eq!(parsed.stream_size(), 1);
    assert_eq!(parsed.stream_ref_count(), 0);
    assert_eq!(
        collect_chunks(&parsed).unwrap(),
        vec![Chunk::Inline(b"x".to_vec())]
    );
}

#[test]
fn long_inline_chunks_come_in_pieces() {
    let data: Vec<u8> = (0..INLINE_PIECE_SIZE * 2 + 10).map(|i| i as u8).collect();
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    w.write_inline(&data);
    let ss = w.finish().unwrap();
    let parsed = SplitStream::parse(&ss).unwrap();
    let chunks = collect_chunks(&parsed).unwrap();
    let lens: Vec<usize> = chunks
        .iter()
        .map(|c| match c {
            Chunk::Inline(d) => d.len(),
            Chunk::External { .. } => panic!("unexpected external chunk"),
        })
        .collect();
    assert_eq!(lens, vec![INLINE_PIECE_SIZE, INLINE_PIECE_SIZE, 10]);
    let joined: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| match c {
            Chunk::Inline(d) => d,
            Chunk::External { .. } => vec![],
        })
        .collect();
    assert_eq!(joined, data);
}

/// Writes seed inputs for the `splitstream_read` fuzz target into the
/// directory named by `CFS_FUZZ_SEEDS` (see `fuzz/README.md`).
#[test]
#[ignore = "writes fuzz seeds when CFS_FUZZ_SEEDS is set"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("CFS_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    for (name, algorithm) in [("sha256", Algorithm::Sha256), ("sha512", Algorithm::Sha512)] {
        let d = |n: u8| digest_bytes(algorithm, &[n]);
        let mut w = SplitStreamWriter::new(algorithm, ContentType::OCI_LAYER);
        w.write_inline(&[b'h'; 512]);
        w.add_external(&d(1), 100).unwrap();
        w.write_inline(&[0; 12]);
        w.add_external(&d(2), 65).unwrap();
        w.add_external(&d(1), 100).unwrap();
        w.write_inline(&[0; 1024]);
        w.add_named_ref("sha256:layer", &d(3)).unwrap();
        w.add_named_ref("composefs.image", &d(4)).unwrap();
        let ss = w.finish().unwrap();
        std::fs::write(dir.join(format!("layer-{name}.ss")), &ss).unwrap();
        let mut old = ss[16..32].to_vec();
        old.extend_from_slice(&[0, 0]);
        old.extend_from_slice(&ss[..12]);
        old.extend_from_slice(&ss[14..16]);
        old.extend_from_slice(&ss[32..]);
        SplitStream::parse(&old).unwrap();
        std::fs::write(dir.join(format!("old-header-{name}.ss")), old).unwrap();
    }
    let empty = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
    std::fs::write(dir.join("empty.ss"), empty.finish().unwrap()).unwrap();
}
