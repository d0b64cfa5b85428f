//! On-disk structures of a split stream: header (both layouts), range, info
//! section and the content-type tag.
//!
//! All integers are little-endian and every struct is unaligned, so each can
//! be read straight out of any byte offset of a stream object. Sizes and the
//! offsets that other code relies on are pinned by const assertions.

use std::fmt;
use std::mem::offset_of;

use zerocopy::little_endian::{U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The 11 magic bytes `SplitStream`.
pub const MAGIC: [u8; 11] = *b"SplitStream";
/// The only header version defined.
pub const VERSION: u8 = 0;
/// log2 of the fs-verity block size; 12 (4096 bytes) is the only value accepted.
pub const LG_BLOCKSIZE: u8 = 12;
/// Size of either header layout.
pub const HEADER_SIZE: usize = 32;
/// Size of the info section as written; readers accept longer sections.
pub const INFO_SIZE: usize = 80;
/// Offset of the magic in the old header layout ([`OldHeader`]).
pub const OLD_MAGIC_OFFSET: usize = 18;

/// A half-open range `start..end` of absolute offsets in the split stream file.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct Range {
    /// First byte of the range.
    pub start: U64,
    /// One past the last byte of the range.
    pub end: U64,
}

impl Range {
    /// The range `start..end`.
    pub fn new(start: u64, end: u64) -> Self {
        Range {
            start: U64::new(start),
            end: U64::new(end),
        }
    }
}

/// The header as written today (magic first).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 11],
    /// [`VERSION`].
    pub version: u8,
    /// Written as 0, ignored when read.
    pub flags: U16,
    /// fs-verity algorithm of every digest in the file: 1 = SHA-256, 2 = SHA-512
    /// (the kernel's `FS_VERITY_HASH_ALG_*` numbers).
    pub algorithm: u8,
    /// [`LG_BLOCKSIZE`].
    pub lg_blocksize: u8,
    /// Where the [`Info`] section is.
    pub info: Range,
}

/// The header written by bootc ≤ 1.15.x and the composefs-rs of that time:
/// the same fields as [`Header`], reordered (info range first).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct OldHeader {
    /// Where the [`Info`] section is.
    pub info: Range,
    /// Ignored.
    pub flags: U16,
    /// [`MAGIC`], at byte [`OLD_MAGIC_OFFSET`].
    pub magic: [u8; 11],
    /// [`VERSION`].
    pub version: u8,
    /// As [`Header::algorithm`].
    pub algorithm: u8,
    /// [`LG_BLOCKSIZE`].
    pub lg_blocksize: u8,
}

/// The info section: where everything else is, what the stream holds and
/// how long it is once reassembled.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Info {
    /// Flat array of digests of other streams (named-reference targets).
    pub stream_refs: Range,
    /// Flat array of digests of the objects the chunk stream refers to.
    pub object_refs: Range,
    /// The zstd-compressed chunk stream.
    pub stream: Range,
    /// The zstd-compressed named references.
    pub named_refs: Range,
    /// What kind of data the stream holds.
    pub content_type: ContentType,
    /// Length in bytes of the reassembled stream (inline plus external data).
    pub stream_size: U64,
}

const _: () = {
    assert!(size_of::<Range>() == 16);
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(offset_of!(Header, algorithm) == 14);
    assert!(offset_of!(Header, info) == 16);
    assert!(size_of::<OldHeader>() == HEADER_SIZE);
    assert!(offset_of!(OldHeader, magic) == OLD_MAGIC_OFFSET);
    assert!(offset_of!(OldHeader, algorithm) == 30);
    assert!(size_of::<Info>() == INFO_SIZE);
    assert!(offset_of!(Info, named_refs) == 48);
    assert!(offset_of!(Info, content_type) == 64);
    assert!(offset_of!(Info, stream_size) == 72);
};

/// The 8-byte content-type tag of a split stream.
///
/// Most tags are eight ASCII letters; stored as those bytes in order (which is
/// the little-endian encoding of the `u64` composefs-rs uses).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(transparent)]
pub struct ContentType(pub [u8; 8]);

impl ContentType {
    /// An uncompressed OCI layer tar.
    pub const OCI_LAYER: Self = ContentType(*b"ocilayer");
    /// An OCI image config (raw JSON as one external object).
    pub const OCI_CONFIG: Self = ContentType(*b"ociconfg");
    /// An OCI image manifest (raw JSON as one external object).
    pub const OCI_MANIFEST: Self = ContentType(*b"ocimanif");
    /// Any other OCI blob, stored raw.
    pub const OCI_BLOB: Self = ContentType(*b"oci_blob");
    /// An ostree commit.
    pub const OSTREE_COMMIT: Self = Self::from_u64(0xAFE1_38C1_8C46_3EF1);

    /// The tag whose little-endian encoding is `value`.
    pub const fn from_u64(value: u64) -> Self {
        ContentType(value.to_le_bytes())
    }

    /// The tag as the little-endian `u64` composefs-rs uses.
    pub const fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.0)
    }

    /// The eight raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

/// Printable ASCII tags print as text (`ocilayer`), anything else as the
/// hex `u64` (`0xafe138c18c463ef1`).
impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(u8::is_ascii_graphic) {
            self.0
                .iter()
                .try_for_each(|&b| write!(f, "{}", char::from(b)))
        } else {
            write!(f, "{:#018x}", self.to_u64())
        }
    }
}

impl fmt::Debug for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentType({self})")
    }
}
