//! Split streams: a byte stream (usually an uncompressed tar layer) kept as
//! inline bytes plus references to objects in the repository, so that the
//! exact original bytes can be put back together.
//!
//! A split stream file is itself a repository object, named by its fs-verity
//! digest. This module is the specification of the format as cfs reads and
//! writes it (compatible with composefs-rs); the structs in [`format`](mod@format) are
//! the authoritative layout and their sizes are pinned by const assertions.
//!
//! # Layout
//!
//! Integers are little-endian. A *range* ([`Range`]) is two `u64`s,
//! `start` and `end`, absolute byte offsets into the file, half-open.
//!
//! ## Header: 32 bytes at offset 0 ([`Header`])
//!
//! | offset | size | field | value |
//! |---:|---:|---|---|
//! | 0  | 11 | `magic` | the ASCII bytes `SplitStream` ([`MAGIC`]) |
//! | 11 | 1  | `version` | 0 |
//! | 12 | 2  | `flags` | 0 when written; not interpreted when read |
//! | 14 | 1  | `algorithm` | fs-verity hash of every digest in the file: 1 = SHA-256 (32-byte digests), 2 = SHA-512 (64-byte digests) |
//! | 15 | 1  | `lg_blocksize` | 12 (the only accepted value) |
//! | 16 | 16 | `info` | range of the info section |
//!
//! ## Info section: 80 bytes ([`Info`])
//!
//! Offsets are relative to the start of the section. A reader takes the
//! first 80 bytes of the `info` range and ignores any more (room for future
//! fields); a shorter range is an error.
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0  | 16 | `stream_refs` | range of the stream-reference digest array |
//! | 16 | 16 | `object_refs` | range of the object-reference digest array |
//! | 32 | 16 | `stream` | range of the compressed chunk stream |
//! | 48 | 16 | `named_refs` | range of the compressed named references |
//! | 64 | 8  | `content_type` | [`ContentType`] tag |
//! | 72 | 8  | `stream_size` | length of the reassembled stream, inline and external bytes together |
//!
//! ## File order
//!
//! [`SplitStreamWriter`] lays the file out as
//!
//! ```text
//! 0     header (32)
//! 32    info (80)
//! 112   stream_refs   digests, uncompressed
//!       object_refs   digests, uncompressed
//!       named_refs    one zstd frame
//!       stream        one zstd frame
//! ```
//!
//! with each part starting where the previous one ends. Readers go by the
//! ranges only and assume no order.
//!
//! ## Reference arrays
//!
//! `stream_refs` and `object_refs` are plain concatenations of raw digests
//! of the header's algorithm, so their lengths are multiples of 32 or 64;
//! they stay uncompressed so that garbage collection can list what a stream
//! keeps alive without decompressing anything. Neither holds a digest twice.
//! `object_refs` lists the objects of external chunks in the order the chunk
//! stream first uses them; `stream_refs` lists other streams (or objects)
//! that this one refers to by name, in the order they were first added.
//!
//! ## Chunk stream
//!
//! The `stream` range holds zstd-compressed data (one frame as written; any
//! sequence of valid frames is accepted) that decompresses to a sequence of
//! chunks, each starting with a signed 64-bit count `n`:
//!
//! - `n < 0`: an inline chunk; `-n` bytes of data follow. The writer never
//!   emits an empty one and merges back-to-back inline writes into one chunk,
//!   except that runs of [`INLINE_FLUSH_SIZE`] bytes or more are cut at
//!   512-byte stream offsets to bound memory (see [`SplitStreamWriter`]).
//!   Readers treat adjacent inline chunks as one run.
//! - `n >= 0`: an external chunk, standing for the whole content of the
//!   object `object_refs[n]`. Nothing follows.
//!
//! The decompressed data ends exactly after the last chunk. Concatenating
//! the inline bytes and the referenced objects' contents in order gives the
//! original stream, which must be `stream_size` bytes long. The format does
//! not record object sizes: only the total is checked.
//!
//! ## Named references
//!
//! The `named_refs` range holds a zstd frame that decompresses to records
//! `<index>:<name>\0`: the index into `stream_refs` in decimal ASCII, a
//! colon, the name (UTF-8, no NUL, may contain colons) and a NUL that ends
//! every record including the last. The writer sorts records by name bytes
//! and always writes the frame, even for no records (an empty frame);
//! readers accept any order and also an empty range. A config stream, for
//! example, names its layers' streams by diff id (`sha256:…` → stream
//! digest) and its EROFS images by `composefs.image`.
//!
//! ## Compression
//!
//! cfs compresses both frames with zstd level 3 (what composefs-rs gets by
//! asking for level 0) through the `zstd` crate's streaming encoder, with
//! no dictionary and no checksum (the empty named-refs frame is then the 9
//! bytes `28 b5 2f fd 20 00 01 00 00`). The same zstd version and settings
//! as composefs-rs likely give identical bytes, but that is not promised
//! and not needed: readers only need valid frames.
//!
//! ## Content types
//!
//! | tag | stream |
//! |---|---|
//! | `ocilayer` ([`ContentType::OCI_LAYER`]) | an uncompressed OCI layer tar |
//! | `ociconfg` ([`ContentType::OCI_CONFIG`]) | an OCI image config |
//! | `ocimanif` ([`ContentType::OCI_MANIFEST`]) | an OCI image manifest |
//! | `oci_blob` ([`ContentType::OCI_BLOB`]) | any other OCI blob, raw |
//! | `0xAFE138C18C463EF1` as a little-endian `u64` ([`ContentType::OSTREE_COMMIT`]) | an ostree commit |
//!
//! ## Old header layout ([`OldHeader`])
//!
//! Streams written by bootc up to 1.15.x (and composefs-rs of that time)
//! have the same header fields in another order; the info section and
//! everything after it are unchanged. A reader falls back to this layout
//! when the magic is not at offset 0.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0  | 16 | `info` range |
//! | 16 | 2  | `flags` |
//! | 18 | 11 | `magic` |
//! | 29 | 1  | `version` |
//! | 30 | 1  | `algorithm` |
//! | 31 | 1  | `lg_blocksize` |
//!
//! # Reading hostile files
//!
//! [`SplitStream::parse`] checks the header, that every range lies within
//! the file with `start <= end`, and that the digest arrays have whole
//! digests. Decompression happens lazily and is bounded: an inline chunk
//! may not be longer than what is left of `stream_size`, its data is read
//! in pieces of at most [`INLINE_PIECE_SIZE`], an object index must be in
//! `object_refs`, and the named references may decompress to at most
//! [`MAX_NAMED_REFS_SIZE`] bytes and [`MAX_NAMED_REFS`] records.
//! [`SplitStream::cat`] stops as soon as the output would pass
//! `stream_size`.
//!
//! # Contents
//!
//! - [`SplitStreamWriter`]: builds a stream with bounded memory
//!   ([`FinishedStream`] reads the result back for storing).
//! - [`SplitStream`]: parses one; [`Chunks`] iterates its chunks.
//! - [`format`](mod@format): the on-disk structures and [`ContentType`].
//! - [`SplitStreamError`]: everything that can go wrong.

mod error;
pub mod format;
mod reader;
mod spill;
mod writer;

pub use error::SplitStreamError;
pub use format::{ContentType, Header, Info, MAGIC, OldHeader, Range};
pub use reader::{
    Chunk, Chunks, HeaderLayout, INLINE_PIECE_SIZE, MAX_NAMED_REFS, MAX_NAMED_REFS_SIZE,
    SplitStream,
};
pub use spill::SPILL_SIZE;
pub use writer::{FinishedStream, INLINE_FLUSH_SIZE, MAX_PENDING_INLINE, SplitStreamWriter};

#[cfg(test)]
mod tests;
