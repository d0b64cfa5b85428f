//! Tar layers as split streams (`streams/oci-layer-<diff_id>`, content type
//! `ocilayer`), bit-exact and compatible with composefs-rs 0.9.
//!
//! The input is the **decompressed** layer tar. It is read once, in 512-byte
//! blocks, and every byte goes into the split stream in order:
//!
//! - every header block is inline: ustar/GNU headers, GNU long-name (`L`)
//!   and long-link (`K`) records, PAX extended (`x`) and global (`g`)
//!   headers, together with their data and its padding;
//! - the content of a regular entry (type `0`, NUL or contiguous `7`) whose
//!   size is greater than [`INLINE_CONTENT_MAX`] (64) bytes becomes an
//!   external object (the content only); the padding to 512 bytes after it
//!   is inline. The content of every other entry (small files, hard links
//!   or directories that carry data) and its padding are inline;
//! - a PAX `size` record overrides the header size of the next entry;
//! - two zero blocks end the archive: they, and **everything after them up
//!   to EOF** (record padding or trailing garbage), are inline, unparsed;
//! - EOF at a header boundary is a clean end, even without end blocks, and
//!   an empty (0-byte) layer is valid. One zero block followed by EOF is an
//!   error; one zero block followed by a header is a stray block (inline)
//!   and scanning goes on;
//! - header checksums are verified (unsigned or signed byte sums);
//! - sparse entries (GNU type `S`, PAX `GNU.sparse.*` records) are rejected
//!   with "sparse tar entries are not supported".
//!
//! Hostile input is bounded: the data of one PAX header is at most
//! [`MAX_PAX_HEADER`] bytes, a GNU long name or link at most
//! [`MAX_LONG_NAME`], the extension data of one entry at most
//! [`MAX_METADATA`] in total over at most [`MAX_PENDING_EXTENSIONS`]
//! headers; nothing is allocated from a length before it has been checked,
//! and sizes beyond the end of the input are reported as truncation.
//! Errors name the entry path (when known) and the byte offset.
//!
//! [`import_layer`] additionally hashes the input and registers the stream
//! only if its SHA-256 equals the layer's diff_id.

mod header;
mod split;
#[cfg(test)]
mod tests;

use std::io::{self, Read};

use cfs_core::objects::Stored;
use cfs_core::repository::{RepoError, Repository};
use cfs_core::splitstream::{ContentType, SplitStreamError, SplitStreamWriter};
use cfs_core::verity::{Digest, push_hex};
use sha2::{Digest as _, Sha256};

/// Regular files up to this many bytes stay inline (composefs-rs
/// `INLINE_CONTENT_MAX_V0`). Changing it is a format break.
pub const INLINE_CONTENT_MAX: u64 = 64;
/// Largest accepted data of one PAX extended header (`x` or `g`).
pub const MAX_PAX_HEADER: u64 = 1 << 20;
/// Largest accepted GNU long name or long link record (`L`/`K`).
pub const MAX_LONG_NAME: u64 = 1 << 20;
/// Largest total extension data (PAX `x`, GNU `L`/`K`) before one entry.
pub const MAX_METADATA: u64 = 1 << 20;
/// Most extension headers before one entry.
pub const MAX_PENDING_EXTENSIONS: usize = 16;

/// Content up to this size is hashed in memory before anything is written.
const SMALL_OBJECT: u64 = 1 << 20;

/// Options of [`import_layer`].
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    /// Also create the stream ref `streams/refs/<name>` for the new stream.
    pub ref_name: Option<String>,
}

/// The result of [`import_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerImport {
    /// The stream name, `oci-layer-<diff_id>`.
    pub stream_id: String,
    /// The object id of the split stream.
    pub object: Digest,
    /// Bytes of tar read (0 when the stream existed).
    pub bytes: u64,
    /// Entries stored as external objects (0 when the stream existed).
    pub external_files: u64,
    /// External objects newly written.
    pub objects_written: u64,
    /// External objects that were already in the repository.
    pub objects_existing: u64,
    /// Bytes of newly written external objects.
    pub bytes_written: u64,
    /// Bytes of tar kept inline in the stream (headers, small files, padding).
    pub bytes_inline: u64,
    /// The stream was already present; the input was not read.
    pub existed: bool,
}

/// Counters of [`split_tar`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarStats {
    /// Bytes of input, end blocks and trailing bytes included.
    pub bytes: u64,
    /// Entries other than extension headers (PAX, GNU long names).
    pub entries: u64,
    /// Entries whose content became an external object.
    pub external_files: u64,
    /// Bytes of external content.
    pub external_bytes: u64,
}

/// What is wrong with a tar stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarProblem {
    /// The input ends inside a header or after a single zero block.
    #[error("unexpected EOF in tar stream")]
    EofInHeader,
    /// The input ends inside the data of an entry.
    #[error("unexpected EOF reading tar entry")]
    EofInEntry,
    /// The input ends inside the padding after an entry's data.
    #[error("unexpected EOF reading tar padding")]
    EofInPadding,
    /// A GNU sparse entry or PAX sparse records.
    #[error("sparse tar entries are not supported")]
    Sparse,
    /// The header checksum does not match.
    #[error("header checksum mismatch: stored {stored}, computed {computed}")]
    BadChecksum {
        /// The value in the header.
        stored: u64,
        /// The unsigned byte sum.
        computed: u64,
    },
    /// A numeric header field is not valid octal or base-256.
    #[error("invalid {field} field in tar header")]
    BadNumber {
        /// The field name.
        field: &'static str,
    },
    /// Extension data beyond the limits.
    #[error("metadata exceeds limit: {size} bytes > {limit} bytes")]
    MetadataTooLarge {
        /// The size found.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More than [`MAX_PENDING_EXTENSIONS`] extension headers in a row.
    #[error("more than {MAX_PENDING_EXTENSIONS} extension headers before one entry")]
    TooManyExtensions,
    /// A PAX record is not `"<len> <key>=<value>\n"`.
    #[error("malformed PAX extended header record")]
    BadPaxRecord,
    /// A PAX numeric value is invalid.
    #[error("invalid PAX {key} value: {value:?}")]
    BadPaxValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// A failure of [`split_tar`] or [`import_layer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The tar stream is invalid or truncated.
    #[error("{problem} ({})", location(path.as_deref(), *offset))]
    Tar {
        /// Byte offset of the header or data concerned.
        offset: u64,
        /// The entry path, when known.
        path: Option<String>,
        /// What is wrong.
        problem: TarProblem,
    },
    /// Reading the input failed.
    #[error("reading tar at offset {offset}: {source}")]
    Read {
        /// Bytes read so far.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Storing the content of an entry failed.
    #[error("storing content of tar entry {path:?} (offset {offset}): {source}")]
    Store {
        /// The entry path.
        path: String,
        /// Offset of the content.
        offset: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The store callback returned without reading the whole content.
    #[error("object store read {consumed} of {size} bytes of tar entry {path:?} (offset {offset})")]
    StoreShortRead {
        /// The entry path.
        path: String,
        /// Offset of the content.
        offset: u64,
        /// Bytes read.
        consumed: u64,
        /// The content size.
        size: u64,
    },
    /// The diff_id is not `sha256:<64 lowercase hex digits>`.
    #[error("invalid diff_id {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDiffId(String),
    /// The tar's SHA-256 is not its diff_id; no stream was registered.
    #[error("layer content does not match its diff_id: expected {expected}, found {found}")]
    DiffIdMismatch {
        /// The diff_id given.
        expected: String,
        /// `sha256:<hex>` of the bytes read.
        found: String,
    },
    /// Building the split stream failed.
    #[error("building split stream: {0}")]
    SplitStream(#[from] SplitStreamError),
    /// A repository operation failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// `tar entry "p" at offset N` or `tar stream at offset N`.
fn location(path: Option<&str>, offset: u64) -> String {
    match path {
        Some(p) => format!("tar entry {p:?} at offset {offset}"),
        None => format!("tar stream at offset {offset}"),
    }
}

/// Splits a decompressed tar stream into `writer` following the rules in
/// the [module docs](self), reading it to EOF.
///
/// `store(reader, size)` receives the content of each large regular file
/// (exactly `size` bytes; reading past a truncated input fails with
/// `UnexpectedEof`) and returns the digest of the object it stored. It
/// must read the reader to its end.
pub fn split_tar(
    tar: impl Read,
    writer: &mut SplitStreamWriter,
    store: &mut dyn FnMut(&mut dyn Read, u64) -> io::Result<Digest>,
) -> Result<TarStats, LayerError> {
    split::split(tar, writer, store)
}

/// Imports the decompressed layer `tar` whose diff_id is `diff_id`
/// (`sha256:<hex>`) as the stream `oci-layer-<diff_id>`.
///
/// If that stream exists it is returned without reading `tar`. Otherwise
/// the tar is read once: large file contents go to objects as they stream
/// by, all bytes are hashed, and only if the SHA-256 equals `diff_id` is the
/// stream written and linked (after a sync). On a mismatch nothing is
/// linked; objects already written are left for garbage collection.
pub fn import_layer(
    repo: &Repository,
    diff_id: &str,
    tar: impl Read,
    opts: &LayerOptions,
) -> Result<LayerImport, LayerError> {
    check_diff_id(diff_id)?;
    let stream_id = format!("oci-layer-{diff_id}");
    if let Some(object) = repo.has_stream(&stream_id)? {
        return Ok(LayerImport {
            stream_id,
            object,
            bytes: 0,
            external_files: 0,
            objects_written: 0,
            objects_existing: 0,
            bytes_written: 0,
            bytes_inline: 0,
            existed: true,
        });
    }
    let mut input = Hashing {
        inner: tar,
        hasher: Sha256::new(),
    };
    let mut writer = SplitStreamWriter::new(repo.algorithm(), ContentType::OCI_LAYER);
    let (mut written, mut existing, mut bytes_written) = (0u64, 0u64, 0u64);
    // Files up to SMALL_OBJECT bytes are hashed in memory first and written
    // only if missing: a duplicate then costs no temporary file (creating and
    // discarding one per duplicate is slow, e.g. on ext4 without a journal,
    // whose inode allocator skips recently freed inodes one by one).
    let mut small = Vec::new();
    let mut store = |r: &mut dyn Read, size: u64| {
        let (digest, stored) = if size <= SMALL_OBJECT {
            small.clear();
            r.take(size).read_to_end(&mut small)?;
            if small.len() as u64 != size {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            repo.ensure_object_bytes(&small)
        } else {
            repo.ensure_object_from_reader(r)
        }
        .map_err(io::Error::other)?;
        match stored {
            Stored::Written | Stored::Repaired => {
                written += 1;
                bytes_written += size;
            }
            Stored::Existing => existing += 1,
        }
        Ok(digest)
    };
    let stats = split_tar(&mut input, &mut writer, &mut store)?;
    let mut found = String::from("sha256:");
    push_hex(&mut found, &input.hasher.finalize());
    if found != diff_id {
        return Err(LayerError::DiffIdMismatch {
            expected: diff_id.to_owned(),
            found,
        });
    }
    let object = repo.write_stream(&stream_id, writer, opts.ref_name.as_deref())?;
    Ok(LayerImport {
        stream_id,
        object,
        bytes: stats.bytes,
        external_files: stats.external_files,
        objects_written: written,
        objects_existing: existing,
        bytes_written,
        bytes_inline: stats.bytes - stats.external_bytes,
        existed: false,
    })
}

/// Accepts `sha256:` followed by 64 lowercase hex digits.
fn check_diff_id(diff_id: &str) -> Result<(), LayerError> {
    let ok = diff_id.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(LayerError::InvalidDiffId(diff_id.to_owned()))
    }
}

/// Hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
