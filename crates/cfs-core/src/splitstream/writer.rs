//! Building a split stream: inline bytes, external object references and
//! named references in, the finished file bytes out.
//!
//! Memory stays bounded whatever the stream size: the pending inline run is
//! at most [`MAX_PENDING_INLINE`] bytes and the compressed chunk stream goes
//! to a [`Spill`] buffer (a temporary file past [`SPILL_SIZE`](super::SPILL_SIZE)).
//!
//! # Where long inline runs are cut
//!
//! The format allows adjacent inline chunks, but the composefs-rs 0.9 tar
//! reader reads each header block and each entry's data plus padding from a
//! single chunk. A run is therefore only cut at write boundaries where the
//! stream offset is a multiple of 512 (tar block boundaries for the layer
//! splitter), once it is [`INLINE_FLUSH_SIZE`] long. Runs shorter than that
//! give the same bytes as a writer that never cuts (composefs-rs does not
//! cut at all, so longer runs differ from its output but read the same).
//! A single write longer than [`INLINE_FLUSH_SIZE`] becomes a chunk of its
//! own, streamed straight to the compressor; a run that reaches
//! [`MAX_PENDING_INLINE`] without a block boundary is cut anyway.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Read, Write};

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U64};

use super::SplitStreamError;
use super::format::{
    ContentType, HEADER_SIZE, Header, INFO_SIZE, Info, LG_BLOCKSIZE, MAGIC, Range, VERSION,
};
use super::spill::{Spill, SpillReader};
use crate::verity::{Algorithm, Digest};

/// zstd level for both frames. composefs-rs asks for level 0, which zstd
/// maps to its default, 3.
const ZSTD_LEVEL: i32 = 3;

/// A pending inline run whose buffer grew past this is given back to the
/// allocator once it has been compressed, instead of being kept for reuse.
const KEEP_BUFFER_CAPACITY: usize = 2 * MAX_PENDING_INLINE;

/// A pending inline run this long is written as a chunk at the next write
/// that ends on a 512-byte boundary of the stream; a single write longer
/// than this is a chunk of its own.
pub const INLINE_FLUSH_SIZE: usize = 1 << 20;

/// The pending inline run never grows past this many bytes.
pub const MAX_PENDING_INLINE: usize = 4 << 20;

/// Tar block size: runs are cut only at multiples of it (see the module docs).
const CUT_ALIGN: u64 = 512;

/// Buffer for streaming a long inline write into the compressor.
const COPY_BUFFER: usize = 64 << 10;

type Encoder = zstd::stream::write::Encoder<'static, Spill>;

/// Builds a split stream with bounded memory (see the module docs).
///
/// Data goes in through [`write_inline`](Self::write_inline) and
/// [`add_external`](Self::add_external) in stream order; references to other
/// streams through [`add_stream_ref`](Self::add_stream_ref) and
/// [`add_named_ref`](Self::add_named_ref) at any time.
/// [`finish`](Self::finish) returns the file.
///
/// Consecutive inline writes form one chunk, so the current run of inline
/// bytes is buffered uncompressed until an external reference, `finish` or
/// the cutting rules of the module docs end it (its length prefix comes
/// first); each finished chunk is compressed right away into a buffer that
/// moves to a temporary file when it grows.
///
/// After an error the writer is unchanged, except after
/// [`SplitStreamError::Zstd`] (a failure of the compressor or of its
/// temporary file) and after a failed [`write_inline_from`] of more than
/// [`INLINE_FLUSH_SIZE`] bytes, which leave a chunk half written: discard
/// the writer then. A compressor failure in the infallible
/// [`write_inline`] is reported by the next fallible call.
///
/// [`write_inline`]: Self::write_inline
/// [`write_inline_from`]: Self::write_inline_from
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
    /// A failure not reported yet (from an infallible call), or the reason
    /// the chunk stream is broken.
    failed: Option<io::Error>,
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
            .field(
                "compressed",
                &self.encoder.as_ref().map(|e| e.get_ref().len()),
            )
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
            failed: None,
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

    /// Bytes of the pending (not yet compressed) inline run; never more
    /// than [`MAX_PENDING_INLINE`].
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Compressed chunk bytes produced so far, and whether they have moved
    /// to a temporary file.
    pub fn compressed_len(&self) -> (u64, bool) {
        self.encoder
            .as_ref()
            .map_or((0, false), |e| (e.get_ref().len(), e.get_ref().spilled()))
    }

    /// Appends inline bytes. Adjacent inline writes become one chunk (up to
    /// the cutting rules of the module docs); an empty write does nothing.
    pub fn write_inline(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if data.len() > INLINE_FLUSH_SIZE {
            let result = self
                .flush_pending()
                .and_then(|()| self.write_chunk(data))
                .map_err(|e| match e {
                    SplitStreamError::Zstd(e) => e,
                    other => io::Error::other(other.to_string()),
                });
            if let Err(e) = result {
                self.failed.get_or_insert(e);
            }
            self.grow(data.len() as u64);
            return;
        }
        self.make_room(data.len());
        self.pending.extend_from_slice(data);
        self.grow(data.len() as u64);
        self.maybe_cut();
    }

    /// Appends exactly `len` inline bytes read from `r`.
    ///
    /// Fails with [`SplitStreamError::ShortInput`] if `r` ends early and
    /// [`SplitStreamError::Io`] if it fails; either way nothing is appended.
    pub fn write_inline_from(
        &mut self,
        mut r: impl Read,
        len: u64,
    ) -> Result<(), SplitStreamError> {
        if len > INLINE_FLUSH_SIZE as u64 {
            return self.stream_inline_from(&mut r, len);
        }
        self.make_room(len as usize);
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
        self.maybe_cut();
        Ok(())
    }

    /// Writes `len` (> [`INLINE_FLUSH_SIZE`]) bytes from `r` as one inline
    /// chunk straight into the compressor.
    fn stream_inline_from(&mut self, r: &mut dyn Read, len: u64) -> Result<(), SplitStreamError> {
        self.flush_pending()?;
        let header = i64::try_from(len).map_err(|_| SplitStreamError::StreamSizeOverflow)?;
        encoder(&mut self.encoder)?
            .write_all(&(-header).to_le_bytes())
            .map_err(SplitStreamError::Zstd)?;
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut done = 0u64;
        let result = loop {
            if done == len {
                break Ok(());
            }
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = match r.read(&mut buf[..want]) {
                Ok(0) => {
                    break Err(SplitStreamError::ShortInput {
                        expected: len,
                        found: done,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(SplitStreamError::Io(e)),
            };
            if let Err(e) = encoder(&mut self.encoder)?.write_all(&buf[..n]) {
                break Err(SplitStreamError::Zstd(e));
            }
            done += n as u64;
        };
        if let Err(e) = &result {
            self.failed.get_or_insert_with(|| {
                io::Error::other(format!("an inline chunk was left incomplete: {e}"))
            });
        }
        result?;
        self.grow(len);
        Ok(())
    }

    /// Appends an external chunk: the whole content of the object `digest`,
    /// which is `size` bytes long. Object refs are de-duplicated and numbered
    /// in order of first use.
    pub fn add_external(&mut self, digest: &Digest, size: u64) -> Result<(), SplitStreamError> {
        self.check_algorithm(digest)?;
        self.check_failed()?;
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
    /// `header | info | stream_refs | object_refs | named_refs | stream`
    /// (in memory: for small streams; see [`finish_to`](Self::finish_to)).
    pub fn finish(self) -> Result<Vec<u8>, SplitStreamError> {
        let mut out = Vec::new();
        self.finish_to(&mut out)?;
        Ok(out)
    }

    /// Ends the stream and writes the split stream file to `out`; returns
    /// its length. Errors writing `out` are [`SplitStreamError::Io`].
    pub fn finish_to(self, out: &mut dyn Write) -> Result<u64, SplitStreamError> {
        let mut reader = self.into_reader()?;
        io::copy(&mut reader, out).map_err(SplitStreamError::Io)
    }

    /// Ends the stream and returns a reader of the split stream file (the
    /// chunk stream is read back from memory or the temporary file).
    pub fn into_reader(mut self) -> Result<FinishedStream, SplitStreamError> {
        let stream_size = self
            .stream_size
            .ok_or(SplitStreamError::StreamSizeOverflow)?;
        self.check_failed()?;
        self.flush_pending()?;
        let spill = match self.encoder.take() {
            Some(encoder) => encoder,
            None => new_encoder()?,
        }
        .finish()
        .map_err(SplitStreamError::Zstd)?;
        let stream_len = spill.len();
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
            stream: place(stream_len as usize),
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

        let head_len = usize::try_from(next - stream_len).unwrap_or(0);
        let mut head = Vec::with_capacity(head_len);
        head.extend_from_slice(header.as_bytes());
        head.extend_from_slice(info.as_bytes());
        head.extend_from_slice(&stream_refs);
        head.extend_from_slice(&object_refs);
        head.extend_from_slice(&named_refs);
        Ok(FinishedStream {
            len: next,
            head: io::Cursor::new(head),
            stream: spill.into_reader().map_err(SplitStreamError::Zstd)?,
        })
    }

    /// Reports a failure left by an infallible call or a broken chunk.
    fn check_failed(&mut self) -> Result<(), SplitStreamError> {
        match &self.failed {
            None => Ok(()),
            Some(e) => Err(SplitStreamError::Zstd(io::Error::new(
                e.kind(),
                e.to_string(),
            ))),
        }
    }

    /// Before appending `len` bytes to the run: cuts it if it would pass
    /// [`MAX_PENDING_INLINE`].
    fn make_room(&mut self, len: usize) {
        if self.pending.len() + len > MAX_PENDING_INLINE {
            self.flush_deferred();
        }
    }

    /// After appending: cuts a run of [`INLINE_FLUSH_SIZE`] bytes or more
    /// if the stream offset is on a block boundary.
    fn maybe_cut(&mut self) {
        if self.pending.len() >= INLINE_FLUSH_SIZE
            && self.stream_size.is_some_and(|s| s % CUT_ALIGN == 0)
        {
            self.flush_deferred();
        }
    }

    /// [`flush_pending`](Self::flush_pending), keeping an error for later.
    fn flush_deferred(&mut self) {
        if let Err(e) = self.flush_pending() {
            let e = match e {
                SplitStreamError::Zstd(e) => e,
                other => io::Error::other(other.to_string()),
            };
            self.failed.get_or_insert(e);
        }
    }

    /// Writes `data` as one inline chunk.
    fn write_chunk(&mut self, data: &[u8]) -> Result<(), SplitStreamError> {
        let len = i64::try_from(data.len()).map_err(|_| SplitStreamError::StreamSizeOverflow)?;
        let encoder = encoder(&mut self.encoder)?;
        encoder
            .write_all(&(-len).to_le_bytes())
            .and_then(|()| encoder.write_all(data))
            .map_err(SplitStreamError::Zstd)
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
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_chunk(&pending);
        self.pending = pending;
        result?;
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
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)
            .map_err(SplitStreamError::Zstd)?;
        for (name, index) in &self.named_refs {
            write!(encoder, "{index}:{name}\0").map_err(SplitStreamError::Zstd)?;
        }
        encoder.finish().map_err(SplitStreamError::Zstd)
    }
}

/// A finished split stream file, read from its start; see
/// [`SplitStreamWriter::into_reader`].
#[derive(Debug)]
pub struct FinishedStream {
    len: u64,
    head: io::Cursor<Vec<u8>>,
    stream: SpillReader,
}

impl FinishedStream {
    /// Total length of the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for FinishedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.head.read(buf)? {
            0 => self.stream.read(buf),
            n => Ok(n),
        }
    }
}

fn new_encoder() -> Result<Encoder, SplitStreamError> {
    Encoder::new(Spill::default(), ZSTD_LEVEL).map_err(SplitStreamError::Zstd)
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
