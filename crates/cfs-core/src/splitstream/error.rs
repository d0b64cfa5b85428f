//! The error type of split stream reading and writing.

use std::io;

use crate::verity::{Algorithm, Digest};

/// What went wrong reading or writing a split stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitStreamError {
    /// The file is shorter than the 32-byte header.
    #[error("split stream is {len} bytes, shorter than the 32-byte header")]
    TooShort {
        /// Length of the file.
        len: usize,
    },
    /// Neither header layout has the `SplitStream` magic.
    #[error("no SplitStream magic at offset 0 or 18")]
    BadMagic,
    /// The header version is not 0.
    #[error("unsupported split stream version {0}, expected 0")]
    UnsupportedVersion(u8),
    /// The header algorithm is not 1 (SHA-256) or 2 (SHA-512).
    #[error("unsupported split stream algorithm {0}, expected 1 (sha256) or 2 (sha512)")]
    UnsupportedAlgorithm(u8),
    /// The header block size is not 2^12.
    #[error("unsupported split stream lg_blocksize {0}, expected 12")]
    UnsupportedBlockSize(u8),
    /// A range has `start > end` or ends past the end of the file.
    #[error("{what} range {start}..{end} is not within the {len}-byte file")]
    RangeOutOfBounds {
        /// Which range (`info`, `stream_refs`, `object_refs`, `stream`, `named_refs`).
        what: &'static str,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// Length of the file.
        len: usize,
    },
    /// The info section is shorter than 80 bytes.
    #[error("split stream info section is {len} bytes, expected at least 80")]
    InfoTooShort {
        /// Its length.
        len: u64,
    },
    /// A digest array whose length is not a multiple of the digest size.
    #[error("{what} array is {len} bytes, not a multiple of the {digest_len}-byte digest size")]
    RefArrayLength {
        /// Which array (`stream_refs` or `object_refs`).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The digest size of the header algorithm.
        digest_len: usize,
    },
    /// Decompressed data ended in the middle of something.
    #[error("split stream truncated: incomplete {what}")]
    Truncated {
        /// What was cut short (`chunk header`, `inline chunk`, …).
        what: &'static str,
    },
    /// An inline chunk is longer than what is left of the declared stream size.
    #[error("inline chunk of {len} bytes exceeds the {remaining} bytes left of the stream size")]
    InlineTooLong {
        /// Length claimed by the chunk header.
        len: u64,
        /// Declared stream size minus the inline bytes before the chunk.
        remaining: u64,
    },
    /// An external chunk names an object index past the end of `object_refs`.
    #[error("external chunk refers to object {index}, but there are {count} object refs")]
    ObjectIndex {
        /// The index in the chunk header.
        index: u64,
        /// The number of object refs.
        count: usize,
    },
    /// A named reference names an index past the end of `stream_refs`.
    #[error("named reference {name:?} refers to stream {index}, but there are {count} stream refs")]
    StreamRefIndex {
        /// The name of the reference.
        name: String,
        /// The index in the record.
        index: u64,
        /// The number of stream refs.
        count: usize,
    },
    /// The decompressed named references exceed the reader's limit.
    #[error("named references decompress to more than {limit} bytes")]
    NamedRefsTooLarge {
        /// The limit ([`MAX_NAMED_REFS_SIZE`](super::MAX_NAMED_REFS_SIZE)).
        limit: usize,
    },
    /// There are more named references than the reader accepts.
    #[error("more than {limit} named references")]
    TooManyNamedRefs {
        /// The limit ([`MAX_NAMED_REFS`](super::MAX_NAMED_REFS)).
        limit: usize,
    },
    /// A named reference record that is not `<decimal index>:<UTF-8 name>\0`.
    #[error("malformed named reference at byte {offset} of the decompressed list: {reason}")]
    NamedRefSyntax {
        /// Offset of the record in the decompressed list.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The reassembled stream is shorter or longer than the declared size.
    #[error("reassembled stream is {found} bytes, expected {expected}")]
    SizeMismatch {
        /// The declared `stream_size`.
        expected: u64,
        /// The number of bytes produced.
        found: u64,
    },
    /// The reassembled stream grew past the declared size (reassembly stopped there).
    #[error("reassembled stream exceeds the declared {expected} bytes")]
    StreamOverrun {
        /// The declared `stream_size`.
        expected: u64,
    },
    /// The zstd data is corrupt (or could not be produced when writing).
    #[error("zstd: {0}")]
    Zstd(#[source] io::Error),
    /// Opening or reading an external object failed.
    #[error("object {digest:?}: {source}")]
    Object {
        /// The object's digest.
        digest: Digest,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing the reassembled stream, or reading inline input, failed.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
    /// A reader given to the writer ended before the promised length.
    #[error("inline input ended after {found} of {expected} bytes")]
    ShortInput {
        /// The length promised.
        expected: u64,
        /// The bytes actually read.
        found: u64,
    },
    /// A digest given to the writer is of a different algorithm than the stream.
    #[error("digest algorithm {found} does not match the stream's {expected}")]
    AlgorithmMismatch {
        /// The stream's algorithm.
        expected: Algorithm,
        /// The digest's algorithm.
        found: Algorithm,
    },
    /// A named reference name containing a NUL byte.
    #[error("named reference name {0:?} contains a NUL byte")]
    NameContainsNul(String),
    /// The same name given to two named references.
    #[error("duplicate named reference {0:?}")]
    DuplicateName(String),
    /// The total of inline and external sizes does not fit in 64 bits.
    #[error("stream size overflows 64 bits")]
    StreamSizeOverflow,
}
