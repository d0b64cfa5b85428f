//! Reading a split stream: a bounds-checked view of the file, reference
//! enumeration (for GC), named references, chunk iteration and reassembly.
//!
//! Everything here treats the file as hostile: every range is checked
//! against the file, lengths from the decompressed chunk stream are checked
//! against the declared stream size before anything is read for them, and
//! memory for inline data is allocated in bounded pieces as it arrives.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::io::{self, Read, Write};

use zerocopy::FromBytes;

use super::SplitStreamError;
use super::format::{
    ContentType, HEADER_SIZE, Header, INFO_SIZE, Info, LG_BLOCKSIZE, MAGIC, OldHeader, Range,
    VERSION,
};
use crate::verity::{Algorithm, Digest};

/// Largest decompressed size of the named-reference list a reader accepts.
pub const MAX_NAMED_REFS_SIZE: usize = 16 << 20;
/// Largest number of named references a reader accepts.
pub const MAX_NAMED_REFS: usize = 1 << 16;
/// Largest [`Chunk::Inline`] piece [`Chunks`] yields; longer inline chunks
/// come as several consecutive pieces.
pub const INLINE_PIECE_SIZE: usize = 1 << 20;
/// Buffer size [`SplitStream::cat`] copies with.
const CAT_BUFFER_SIZE: usize = 128 << 10;

type ZstdDecoder<'a> = zstd::stream::read::Decoder<'static, &'a [u8]>;

/// Which of the two header layouts a stream was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderLayout {
    /// [`Header`](super::format::Header): magic at offset 0 (what is written today).
    Current,
    /// [`OldHeader`](super::format::OldHeader): magic at offset 18 (bootc ≤ 1.15.x).
    Old,
}

/// A parsed split stream borrowing the file bytes.
///
/// [`parse`](Self::parse) checks the header and that every range lies in the
/// file; the compressed parts are only decompressed by
/// [`named_refs`](Self::named_refs), [`chunks`](Self::chunks) and
/// [`cat`](Self::cat), which check what they decompress.
#[derive(Clone, Copy, Debug)]
pub struct SplitStream<'a> {
    layout: HeaderLayout,
    algorithm: Algorithm,
    content_type: ContentType,
    stream_size: u64,
    stream_refs: &'a [u8],
    object_refs: &'a [u8],
    stream: &'a [u8],
    named_refs: &'a [u8],
}

/// One piece of the reassembled stream, as yielded by [`Chunks`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Inline bytes (never empty; at most [`INLINE_PIECE_SIZE`], an inline
    /// chunk longer than that comes as several pieces).
    Inline(Vec<u8>),
    /// The whole content of an external object.
    External {
        /// Index of the object in the stream's object refs.
        index: usize,
        /// The object's digest.
        digest: Digest,
    },
}

impl<'a> SplitStream<'a> {
    /// Parses the header and info section of `data` and checks every range.
    pub fn parse(data: &'a [u8]) -> Result<Self, SplitStreamError> {
        let (layout, version, algorithm, lg_blocksize, info_range) = parse_header(data)?;
        if version != VERSION {
            return Err(SplitStreamError::UnsupportedVersion(version));
        }
        let algorithm = Algorithm::from_kernel_id(algorithm)
            .ok_or(SplitStreamError::UnsupportedAlgorithm(algorithm))?;
        if lg_blocksize != LG_BLOCKSIZE {
            return Err(SplitStreamError::UnsupportedBlockSize(lg_blocksize));
        }
        let info_bytes = slice(data, "info", info_range)?;
        let (info, _extra) =
            Info::read_from_prefix(info_bytes).map_err(|_| SplitStreamError::InfoTooShort {
                len: info_bytes.len() as u64,
            })?;
        let digest_len = algorithm.digest_len();
        let ref_array = |what, range| {
            let bytes = slice(data, what, range)?;
            if bytes.len().checked_rem(digest_len) == Some(0) {
                Ok(bytes)
            } else {
                Err(SplitStreamError::RefArrayLength {
                    what,
                    len: bytes.len(),
                    digest_len,
                })
            }
        };
        Ok(SplitStream {
            layout,
            algorithm,
            content_type: info.content_type,
            stream_size: info.stream_size.get(),
            stream_refs: ref_array("stream_refs", info.stream_refs)?,
            object_refs: ref_array("object_refs", info.object_refs)?,
            stream: slice(data, "stream", info.stream)?,
            named_refs: slice(data, "named_refs", info.named_refs)?,
        })
    }

    /// Which header layout the file has.
    pub fn header_layout(&self) -> HeaderLayout {
        self.layout
    }

    /// The algorithm of every digest in the stream.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The content-type tag.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// The declared length of the reassembled stream.
    pub fn stream_size(&self) -> u64 {
        self.stream_size
    }

    /// Number of object refs (distinct external objects of the chunk stream).
    pub fn object_ref_count(&self) -> usize {
        digest_count(self.object_refs, self.algorithm)
    }

    /// The object ref at `index`.
    pub fn object_ref(&self, index: usize) -> Option<Digest> {
        digest_at(self.object_refs, self.algorithm, index)
    }

    /// The object refs in file order: every object the chunk stream uses,
    /// each once. Read from the file without decompressing anything.
    pub fn object_refs(&self) -> impl Iterator<Item = Digest> + 'a {
        digests(self.object_refs, self.algorithm)
    }

    /// Number of stream refs.
    pub fn stream_ref_count(&self) -> usize {
        digest_count(self.stream_refs, self.algorithm)
    }

    /// The stream ref at `index`.
    pub fn stream_ref(&self, index: usize) -> Option<Digest> {
        digest_at(self.stream_refs, self.algorithm, index)
    }

    /// The stream refs in file order: other streams or objects this stream
    /// keeps alive (the targets of named references), each once. Read from
    /// the file without decompressing anything.
    pub fn stream_refs(&self) -> impl Iterator<Item = Digest> + 'a {
        digests(self.stream_refs, self.algorithm)
    }

    /// Decompresses and parses the named references, in file order.
    ///
    /// Fails if the list decompresses to more than [`MAX_NAMED_REFS_SIZE`]
    /// bytes or holds more than [`MAX_NAMED_REFS`] records, if a record is
    /// not `<decimal index>:<UTF-8 name>\0`, or if an index is past the end
    /// of the stream refs. Duplicate names are returned as they are.
    pub fn named_refs(&self) -> Result<Vec<(String, Digest)>, SplitStreamError> {
        if self.named_refs.is_empty() {
            return Ok(Vec::new());
        }
        let decoder = ZstdDecoder::with_buffer(self.named_refs).map_err(SplitStreamError::Zstd)?;
        let mut list = Vec::new();
        decoder
            .take((MAX_NAMED_REFS_SIZE as u64).saturating_add(1))
            .read_to_end(&mut list)
            .map_err(zstd_error)?;
        if list.len() > MAX_NAMED_REFS_SIZE {
            return Err(SplitStreamError::NamedRefsTooLarge {
                limit: MAX_NAMED_REFS_SIZE,
            });
        }
        self.parse_named_refs(&list)
    }

    fn parse_named_refs(&self, list: &[u8]) -> Result<Vec<(String, Digest)>, SplitStreamError> {
        let Some(body) = list.strip_suffix(b"\0") else {
            if list.is_empty() {
                return Ok(Vec::new());
            }
            let last = list
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |i| i.saturating_add(1));
            return Err(SplitStreamError::NamedRefSyntax {
                offset: last,
                reason: "record not NUL-terminated",
            });
        };
        let mut refs = Vec::new();
        let mut offset = 0usize;
        for record in body.split(|&b| b == 0) {
            if refs.len() == MAX_NAMED_REFS {
                return Err(SplitStreamError::TooManyNamedRefs {
                    limit: MAX_NAMED_REFS,
                });
            }
            let syntax = |reason| SplitStreamError::NamedRefSyntax { offset, reason };
            let colon = record
                .iter()
                .position(|&b| b == b':')
                .ok_or_else(|| syntax("no ':' after the index"))?;
            let (digits, rest) = record.split_at(colon);
            let name = rest.get(1..).unwrap_or_default();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(syntax("index is not a decimal number"));
            }
            let index = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or_else(|| syntax("index too large"))?;
            let name = std::str::from_utf8(name).map_err(|_| syntax("name is not UTF-8"))?;
            let digest = usize::try_from(index)
                .ok()
                .and_then(|i| self.stream_ref(i))
                .ok_or_else(|| SplitStreamError::StreamRefIndex {
                    name: name.to_owned(),
                    index,
                    count: self.stream_ref_count(),
                })?;
            refs.push((name.to_owned(), digest));
            offset = offset.saturating_add(record.len()).saturating_add(1);
        }
        Ok(refs)
    }

    /// Iterates over the chunk stream, decompressing as it goes.
    ///
    /// Inline chunks come in pieces of at most [`INLINE_PIECE_SIZE`] bytes;
    /// an inline chunk longer than what is left of [`stream_size`]
    /// (counting inline bytes only) fails before any of it is read. The
    /// iterator ends after the first error.
    ///
    /// [`stream_size`]: Self::stream_size
    pub fn chunks(&self) -> Result<Chunks<'a>, SplitStreamError> {
        Ok(Chunks {
            decoder: ChunkDecoder::new(self)?,
            inline_left: 0,
            done: false,
        })
    }

    /// Reassembles the stream into `out`, reading external objects from the
    /// readers `open` returns for their digests; returns the byte count.
    ///
    /// Fails with [`SplitStreamError::StreamOverrun`] as soon as the output
    /// would exceed [`stream_size`](Self::stream_size) (nothing past it is
    /// written) and with [`SplitStreamError::SizeMismatch`] if it ends short.
    /// Errors of `open` and of reading objects are
    /// [`SplitStreamError::Object`]; errors writing `out` are
    /// [`SplitStreamError::Io`].
    pub fn cat<R: Read>(
        &self,
        mut out: impl Write,
        mut open: impl FnMut(&Digest) -> io::Result<R>,
    ) -> Result<u64, SplitStreamError> {
        let mut decoder = ChunkDecoder::new(self)?;
        let mut buf = vec![0u8; CAT_BUFFER_SIZE];
        let mut written = 0u64;
        let overrun = SplitStreamError::StreamOverrun {
            expected: self.stream_size,
        };
        while let Some(chunk) = decoder.next_chunk()? {
            let mut left = self.stream_size.saturating_sub(written);
            match chunk {
                RawChunk::Inline(len) => {
                    if len > left {
                        return Err(overrun);
                    }
                    let mut todo = len;
                    while todo > 0 {
                        let piece = take_piece(&mut buf, todo);
                        decoder.read_inline(piece)?;
                        out.write_all(piece).map_err(SplitStreamError::Io)?;
                        todo = todo.saturating_sub(piece.len() as u64);
                    }
                    left = left.saturating_sub(len);
                }
                RawChunk::External { digest, .. } => {
                    let object_error = |source| SplitStreamError::Object { digest, source };
                    let mut object = open(&digest).map_err(object_error)?;
                    loop {
                        let n = match object.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(object_error(e)),
                        };
                        let data = buf.get(..n).unwrap_or_default();
                        if data.len() as u64 > left {
                            return Err(overrun);
                        }
                        out.write_all(data).map_err(SplitStreamError::Io)?;
                        left = left.saturating_sub(data.len() as u64);
                    }
                }
            }
            written = self.stream_size.saturating_sub(left);
        }
        if written != self.stream_size {
            return Err(SplitStreamError::SizeMismatch {
                expected: self.stream_size,
                found: written,
            });
        }
        Ok(written)
    }
}

/// Iterator over the chunks of a split stream; see [`SplitStream::chunks`].
#[derive(Debug)]
pub struct Chunks<'a> {
    decoder: ChunkDecoder<'a>,
    /// Bytes of the current inline chunk not yet yielded.
    inline_left: u64,
    done: bool,
}

impl Iterator for Chunks<'_> {
    type Item = Result<Chunk, SplitStreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.advance();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result.transpose()
    }
}

impl Chunks<'_> {
    fn advance(&mut self) -> Result<Option<Chunk>, SplitStreamError> {
        if self.inline_left == 0 {
            match self.decoder.next_chunk()? {
                None => return Ok(None),
                Some(RawChunk::External { index, digest }) => {
                    return Ok(Some(Chunk::External { index, digest }));
                }
                Some(RawChunk::Inline(len)) => self.inline_left = len,
            }
        }
        let len = piece_len(self.inline_left, INLINE_PIECE_SIZE);
        let mut piece = vec![0u8; len];
        self.decoder.read_inline(&mut piece)?;
        self.inline_left = self.inline_left.saturating_sub(len as u64);
        Ok(Some(Chunk::Inline(piece)))
    }
}

/// A chunk header as decoded, before any inline data is read.
enum RawChunk {
    Inline(u64),
    External { index: usize, digest: Digest },
}

/// The decompressed chunk stream with the checks every chunk needs.
struct ChunkDecoder<'a> {
    /// `None` for an empty `stream` range (no chunks at all).
    zstd: Option<ZstdDecoder<'a>>,
    object_refs: &'a [u8],
    algorithm: Algorithm,
    stream_size: u64,
    /// Sum of the inline chunk lengths seen so far (never above `stream_size`).
    inline_total: u64,
}

impl std::fmt::Debug for ChunkDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkDecoder")
            .field("stream_size", &self.stream_size)
            .field("inline_total", &self.inline_total)
            .finish_non_exhaustive()
    }
}

impl<'a> ChunkDecoder<'a> {
    fn new(stream: &SplitStream<'a>) -> Result<Self, SplitStreamError> {
        let zstd = if stream.stream.is_empty() {
            None
        } else {
            Some(ZstdDecoder::with_buffer(stream.stream).map_err(SplitStreamError::Zstd)?)
        };
        Ok(ChunkDecoder {
            zstd,
            object_refs: stream.object_refs,
            algorithm: stream.algorithm,
            stream_size: stream.stream_size,
            inline_total: 0,
        })
    }

    /// Decodes the next chunk header; `None` at the end of the stream. The
    /// data of an inline chunk must then be read with `read_inline`.
    fn next_chunk(&mut self) -> Result<Option<RawChunk>, SplitStreamError> {
        let Some(zstd) = self.zstd.as_mut() else {
            return Ok(None);
        };
        let mut header = [0u8; 8];
        match read_full(zstd, &mut header)? {
            0 => return Ok(None),
            8 => {}
            _ => {
                return Err(SplitStreamError::Truncated {
                    what: "chunk header",
                });
            }
        }
        let value = i64::from_le_bytes(header);
        if value < 0 {
            let len = value.unsigned_abs();
            let remaining = self.stream_size.saturating_sub(self.inline_total);
            if len > remaining {
                return Err(SplitStreamError::InlineTooLong { len, remaining });
            }
            self.inline_total = self.inline_total.saturating_add(len);
            return Ok(Some(RawChunk::Inline(len)));
        }
        let index = value.unsigned_abs();
        let count = digest_count(self.object_refs, self.algorithm);
        usize::try_from(index)
            .ok()
            .and_then(|i| Some((i, digest_at(self.object_refs, self.algorithm, i)?)))
            .map(|(index, digest)| Some(RawChunk::External { index, digest }))
            .ok_or(SplitStreamError::ObjectIndex { index, count })
    }

    /// Reads exactly `buf.len()` bytes of the current inline chunk.
    fn read_inline(&mut self, buf: &mut [u8]) -> Result<(), SplitStreamError> {
        let zstd = self.zstd.as_mut().ok_or(SplitStreamError::Truncated {
            what: "inline chunk",
        })?;
        if read_full(zstd, buf)? == buf.len() {
            Ok(())
        } else {
            Err(SplitStreamError::Truncated {
                what: "inline chunk",
            })
        }
    }
}

/// The header fields both layouts share: layout, version, algorithm,
/// lg_blocksize, info range.
fn parse_header(data: &[u8]) -> Result<(HeaderLayout, u8, u8, u8, Range), SplitStreamError> {
    let too_short = || SplitStreamError::TooShort { len: data.len() };
    let (header, _) = Header::read_from_prefix(data).map_err(|_| too_short())?;
    if header.magic == MAGIC {
        return Ok((
            HeaderLayout::Current,
            header.version,
            header.algorithm,
            header.lg_blocksize,
            header.info,
        ));
    }
    let (old, _) = OldHeader::read_from_prefix(data).map_err(|_| too_short())?;
    if old.magic == MAGIC {
        return Ok((
            HeaderLayout::Old,
            old.version,
            old.algorithm,
            old.lg_blocksize,
            old.info,
        ));
    }
    Err(SplitStreamError::BadMagic)
}

const _: () = assert!(HEADER_SIZE == size_of::<Header>() && INFO_SIZE == size_of::<Info>());

/// The bytes of `range`, if it lies within `data`.
fn slice<'a>(
    data: &'a [u8],
    what: &'static str,
    range: Range,
) -> Result<&'a [u8], SplitStreamError> {
    let (start, end) = (range.start.get(), range.end.get());
    let bad = || SplitStreamError::RangeOutOfBounds {
        what,
        start,
        end,
        len: data.len(),
    };
    let start_at = usize::try_from(start).map_err(|_| bad())?;
    let end_at = usize::try_from(end).map_err(|_| bad())?;
    data.get(start_at..end_at).ok_or_else(bad)
}

/// The digests of a flat array (whose length is a multiple of the digest size).
fn digests(array: &[u8], algorithm: Algorithm) -> impl Iterator<Item = Digest> + '_ {
    array
        .chunks_exact(algorithm.digest_len())
        .filter_map(Digest::from_bytes)
}

/// The number of digests in a flat array.
fn digest_count(array: &[u8], algorithm: Algorithm) -> usize {
    array.len().checked_div(algorithm.digest_len()).unwrap_or(0)
}

/// The digest at `index` of a flat array.
fn digest_at(array: &[u8], algorithm: Algorithm, index: usize) -> Option<Digest> {
    let len = algorithm.digest_len();
    let start = index.checked_mul(len)?;
    array
        .get(start..start.checked_add(len)?)
        .and_then(Digest::from_bytes)
}

/// `min(left, cap)` as a `usize`.
fn piece_len(left: u64, cap: usize) -> usize {
    usize::try_from(left).map_or(cap, |left| left.min(cap))
}

/// The first `min(left, buf.len())` bytes of `buf`.
fn take_piece(buf: &mut [u8], left: u64) -> &mut [u8] {
    let len = piece_len(left, buf.len());
    buf.get_mut(..len).unwrap_or_default()
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, SplitStreamError> {
    let mut filled = 0usize;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(zstd_error(e)),
        }
    }
    Ok(filled)
}

/// A decompression error: a frame cut short is truncation, anything else
/// corrupt data.
fn zstd_error(e: io::Error) -> SplitStreamError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SplitStreamError::Truncated { what: "zstd frame" }
    } else {
        SplitStreamError::Zstd(e)
    }
}
