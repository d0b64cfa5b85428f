//! Building a split stream: inline bytes, external object references and
//! named references in, the finished file bytes out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U64};

use super::SplitStreamError;
use super::format::{
    ContentType, HEADER_SIZE, Header, INFO_SIZE, Info, LG_BLOCKSIZE, MAGIC, Range, VERSION,
};
use crate::verity::{Algorithm, Digest};

/// zstd level for both frames. composefs-rs asks for level 0, which zstd
/// maps to its default, 3.
const ZSTD_LEVEL: i32 = 3;

/// A pending inline run whose buffer grew past this is given back to the
/// allocator once it has been compressed, instead of being kept for reuse.
const KEEP_BUFFER_CAPACITY: usize = 1 << 20;

type Encoder = zstd::stream::write::Encoder<'static, Vec<u8>>;

/// Builds a split stream in memory.
///
/// Data goes in through [`write_inline`](Self::write_inline) and
/// [`add_external`](Self::add_external) in stream order; references to other
/// streams through [`add_stream_ref`](Self::add_stream_ref) and
/// [`add_named_ref`](Self::add_named_ref) at any time.
/// [`finish`](Self::finish) returns the file.
///
/// Consecutive inline writes form one chunk, so the current run of inline
/// bytes is buffered uncompressed until an external reference or `finish`
/// ends it (its length prefix comes first); each finished chunk is
/// compressed right away. Memory use is therefore the compressed stream plus
/// the longest inline run.
///
/// After an error the writer is unchanged, except after
/// [`SplitStreamError::Zstd`] (a failure of the compressor itself), which
/// leaves a chunk half written: discard the writer then.
pub struct SplitStreamWriter {
    algorithm: Algorithm,
    content_type: ContentType,
    object_refs: Vec<Digest>,
    object_index: HashMap<Digest, usize>,
    stream_refs: Vec<Digest>,
    stream_index: HashMap<Digest, usize>,
    named_refs: BTreeMap<String, usize>,
    /// The inline run not yet written as a chunk.
    pending: Vec<u8>,
    /// The chunk stream compressor, created with the first chunk.
    encoder: Option<Encoder>,
    /// Inline plus external bytes so far; `None` once it overflowed.
    stream_size: Option<u64>,
}

impl fmt::Debug for SplitStreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitStreamWriter")
            .field("algorithm", &self.algorithm)
            .field("content_type", &self.content_type)
            .field("object_refs", &self.object_refs.len())
            .field("stream_refs", &self.stream_refs.len())
            .field("named_refs", &self.named_refs.len())
            .field("pending_inline", &self.pending.len())
            .field("stream_size", &self.stream_size)
            .finish_non_exhaustive()
    }
}

impl SplitStreamWriter {
    /// An empty stream whose digests are all of `algorithm`.
    pub fn new(algorithm: Algorithm, content_type: ContentType) -> Self {
        SplitStreamWriter {
            algorithm,
            content_type,
            object_refs: Vec::new(),
            object_index: HashMap::new(),
            stream_refs: Vec::new(),
            stream_index: HashMap::new(),
            named_refs: BTreeMap::new(),
            pending: Vec::new(),
            encoder: None,
            stream_size: Some(0),
        }
    }

    /// The digest algorithm of the stream.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The content type the stream will be tagged with.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// Length of the reassembled stream so far (`None` if it overflowed 64 bits).
    pub fn stream_size(&self) -> Option<u64> {
        self.stream_size
    }

    /// Appends inline bytes. Adjacent inline writes become one chunk; an
    /// empty write does nothing.
    pub fn write_inline(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        self.grow(data.len() as u64);
    }

    /// Appends exactly `len` inline bytes read from `r`.
    ///
    /// Fails with [`SplitStreamError::ShortInput`] if `r` ends early and
    /// [`SplitStreamError::Io`] if it fails; either way nothing is appended.
    pub fn write_inline_from(&mut self, r: impl Read, len: u64) -> Result<(), SplitStreamError> {
        let before = self.pending.len();
        let result = r.take(len).read_to_end(&mut self.pending);
        let found = match result {
            Ok(n) => n as u64,
            Err(e) => {
                self.pending.truncate(before);
                return Err(SplitStreamError::Io(e));
            }
        };
        if found != len {
            self.pending.truncate(before);
            return Err(SplitStreamError::ShortInput {
                expected: len,
                found,
            });
        }
        self.grow(len);
        Ok(())
    }

    /// Appends an external chunk: the whole content of the object `digest`,
    /// which is `size` bytes long. Object refs are de-duplicated and numbered
    /// in order of first use.
    pub fn add_external(&mut self, digest: &Digest, size: u64) -> Result<(), SplitStreamError> {
        self.check_algorithm(digest)?;
        self.flush_pending()?;
        let index = intern(&mut self.object_refs, &mut self.object_index, digest);
        let header = i64::try_from(index).map_err(|_| SplitStreamError::StreamSizeOverflow)?;
        encoder(&mut self.encoder)?
            .write_all(&header.to_le_bytes())
            .map_err(SplitStreamError::Zstd)?;
        self.grow(size);
        Ok(())
    }

    /// Records a reference to another stream (or any object) that the
    /// stream keeps alive without containing it; returns its index in
    /// `stream_refs`. Adding the same digest again returns the same index.
    pub fn add_stream_ref(&mut self, digest: &Digest) -> Result<usize, SplitStreamError> {
        self.check_algorithm(digest)?;
        Ok(intern(
            &mut self.stream_refs,
            &mut self.stream_index,
            digest,
        ))
    }

    /// Records the named reference `name` → `digest` (the digest becomes a
    /// stream ref). Names must be unique and free of NUL bytes.
    pub fn add_named_ref(&mut self, name: &str, digest: &Digest) -> Result<(), SplitStreamError> {
        if name.as_bytes().contains(&0) {
            return Err(SplitStreamError::NameContainsNul(name.to_owned()));
        }
        if self.named_refs.contains_key(name) {
            return Err(SplitStreamError::DuplicateName(name.to_owned()));
        }
        let index = self.add_stream_ref(digest)?;
        self.named_refs.insert(name.to_owned(), index);
        Ok(())
    }

    /// Ends the stream and returns the split stream file:
    /// `header | info | stream_refs | object_refs | named_refs | stream`.
    pub fn finish(mut self) -> Result<Vec<u8>, SplitStreamError> {
        let stream_size = self
            .stream_size
            .ok_or(SplitStreamError::StreamSizeOverflow)?;
        self.flush_pending()?;
        let stream = match self.encoder.take() {
            Some(encoder) => encoder,
            None => new_encoder()?,
        }
        .finish()
        .map_err(SplitStreamError::Zstd)?;
        let named_refs = self.compress_named_refs()?;
        let stream_refs = digest_array(&self.stream_refs);
        let object_refs = digest_array(&self.object_refs);

        let mut next = (HEADER_SIZE + INFO_SIZE) as u64;
        let mut place = |len: usize| {
            let range = Range::new(next, next + len as u64);
            next += len as u64;
            range
        };
        let info = Info {
            stream_refs: place(stream_refs.len()),
            object_refs: place(object_refs.len()),
            named_refs: place(named_refs.len()),
            stream: place(stream.len()),
            content_type: self.content_type,
            stream_size: U64::new(stream_size),
        };
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            flags: U16::new(0),
            algorithm: self.algorithm.kernel_id(),
            lg_blocksize: LG_BLOCKSIZE,
            info: Range::new(HEADER_SIZE as u64, (HEADER_SIZE + INFO_SIZE) as u64),
        };

        let mut out = Vec::with_capacity(usize::try_from(next).unwrap_or(0));
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(info.as_bytes());
        out.extend_from_slice(&stream_refs);
        out.extend_from_slice(&object_refs);
        out.extend_from_slice(&named_refs);
        out.extend_from_slice(&stream);
        Ok(out)
    }

    fn check_algorithm(&self, digest: &Digest) -> Result<(), SplitStreamError> {
        if digest.algorithm() == self.algorithm {
            Ok(())
        } else {
            Err(SplitStreamError::AlgorithmMismatch {
                expected: self.algorithm,
                found: digest.algorithm(),
            })
        }
    }

    fn grow(&mut self, len: u64) {
        self.stream_size = self.stream_size.and_then(|s| s.checked_add(len));
    }

    /// Writes the pending inline run as one chunk.
    fn flush_pending(&mut self) -> Result<(), SplitStreamError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let len =
            i64::try_from(self.pending.len()).map_err(|_| SplitStreamError::StreamSizeOverflow)?;
        let encoder = encoder(&mut self.encoder)?;
        encoder
            .write_all(&(-len).to_le_bytes())
            .and_then(|()| encoder.write_all(&self.pending))
            .map_err(SplitStreamError::Zstd)?;
        if self.pending.capacity() > KEEP_BUFFER_CAPACITY {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
        Ok(())
    }

    /// The named references as one zstd frame of `"<index>:<name>\0"`
    /// records in name order (an empty frame when there are none).
    fn compress_named_refs(&self) -> Result<Vec<u8>, SplitStreamError> {
        let mut encoder = new_encoder()?;
        for (name, index) in &self.named_refs {
            write!(encoder, "{index}:{name}\0").map_err(SplitStreamError::Zstd)?;
        }
        encoder.finish().map_err(SplitStreamError::Zstd)
    }
}

fn new_encoder() -> Result<Encoder, SplitStreamError> {
    Encoder::new(Vec::new(), ZSTD_LEVEL).map_err(SplitStreamError::Zstd)
}

/// The chunk stream compressor in `slot`, created on first use.
fn encoder(slot: &mut Option<Encoder>) -> Result<&mut Encoder, SplitStreamError> {
    let encoder = match slot.take() {
        Some(encoder) => encoder,
        None => new_encoder()?,
    };
    Ok(slot.insert(encoder))
}

/// Index of `digest` in `list`, appending it if it is new.
fn intern(list: &mut Vec<Digest>, index: &mut HashMap<Digest, usize>, digest: &Digest) -> usize {
    *index.entry(*digest).or_insert_with(|| {
        list.push(*digest);
        list.len() - 1
    })
}

/// The raw bytes of `digests`, concatenated.
fn digest_array(digests: &[Digest]) -> Vec<u8> {
    digests.iter().flat_map(|d| d.as_bytes()).copied().collect()
}
