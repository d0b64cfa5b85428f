//! Opening an image: the composefs header and EROFS superblock checks, and the
//! bounds-checked byte access every other reader module goes through.
//!
//! Checks (all cheap, done once in [`Image::open`]):
//! - at least 4096 bytes, a multiple of 4096, equal to `blocks · 4096`;
//! - composefs magic (else [`ReadError::NotComposefs`]), header version 1
//!   (else [`ReadError::UnsupportedVersion`]), `composefs_version` ≤ 2, no
//!   header flags other than `HAS_ACL`;
//! - EROFS magic, `blkszbits` 12, no superblock extension slots,
//!   `meta_blkaddr` 0 (nids are byte offsets / 32), compat features ⊆
//!   {SB_CHKSUM, MTIME, XATTR_FILTER}, incompat features ⊆ {CHUNKED_FILE}, no
//!   compression, extra devices, dirblkbits, long xattr prefixes or packed
//!   inode;
//! - the root nid addresses an inode slot, the shared xattr base lies inside
//!   the image.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use zerocopy::FromBytes;

use super::ReadError;
use crate::erofs::format::{
    BLOCK_BITS, BLOCK_SIZE, COMPOSEFS_FLAGS_HAS_ACL, COMPOSEFS_HEADER_VERSION, COMPOSEFS_MAGIC,
    ComposefsHeader, EROFS_MAGIC, FEATURE_COMPAT_MTIME, FEATURE_COMPAT_SB_CHKSUM,
    FEATURE_COMPAT_XATTR_FILTER, FEATURE_INCOMPAT_CHUNKED_FILE, INODE_SLOT_SIZE, INODES_START,
    SUPERBLOCK_OFFSET, Superblock,
};
use crate::tree::Mtime;

/// Highest `composefs_version` accepted (2 = composefs-rs "V2").
pub const MAX_READ_FORMAT_VERSION: u32 = 2;

const BLOCK: u64 = BLOCK_SIZE as u64;
const SLOT: u64 = INODE_SLOT_SIZE as u64;

/// Facts from the header and superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageInfo {
    /// Header `composefs_version` (0 or 1 for C images, 2 for composefs-rs V2).
    pub composefs_version: u32,
    /// Header flag: some inode carries a POSIX ACL (mount without `noacl`).
    pub has_acl: bool,
    /// Superblock build time: the mtime of every compact inode.
    pub build_time: Mtime,
    /// Superblock `inos`: number of inodes (including the 256 root stubs).
    pub inodes: u64,
    /// nid of the root directory.
    pub root_nid: u64,
    /// Image size in blocks of 4096 bytes.
    pub blocks: u32,
}

/// A validated view of an image held in memory. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    data: &'a [u8],
    composefs_version: u32,
    has_acl: bool,
    feature_compat: u32,
    build_time: Mtime,
    inodes: u64,
    root_nid: u64,
    blocks: u32,
    xattr_base: u64,
}

fn bad_field(field: &'static str, offset: usize, found: u64, expected: &'static str) -> ReadError {
    ReadError::BadField {
        field,
        offset,
        found,
        expected,
    }
}

fn check_zero(field: &'static str, offset: usize, found: u64) -> Result<(), ReadError> {
    if found == 0 {
        Ok(())
    } else {
        Err(bad_field(field, offset, found, "0"))
    }
}

impl<'a> Image<'a> {
    /// Checks the header and superblock of `data`.
    pub fn open(data: &'a [u8]) -> Result<Self, ReadError> {
        let len = data.len();
        if len < BLOCK_SIZE {
            return Err(ReadError::TooSmall { len });
        }
        // The length check above makes both reads infallible; keep them checked anyway.
        let (header, _) =
            ComposefsHeader::read_from_prefix(data).map_err(|_| ReadError::TooSmall { len })?;
        let magic = header.magic.get();
        if magic != COMPOSEFS_MAGIC {
            return Err(ReadError::NotComposefs { found: magic });
        }
        let version = header.version.get();
        if version != COMPOSEFS_HEADER_VERSION {
            return Err(ReadError::UnsupportedVersion { found: version });
        }
        let composefs_version = header.composefs_version.get();
        if composefs_version > MAX_READ_FORMAT_VERSION {
            return Err(ReadError::UnsupportedFormatVersion {
                found: composefs_version,
            });
        }
        let flags = header.flags.get();
        if flags & !COMPOSEFS_FLAGS_HAS_ACL != 0 {
            return Err(bad_field(
                "composefs header flags",
                8,
                flags.into(),
                "0 or 1 (HAS_ACL)",
            ));
        }

        let sb_bytes = data.get(SUPERBLOCK_OFFSET..).unwrap_or_default();
        let (sb, _) =
            Superblock::read_from_prefix(sb_bytes).map_err(|_| ReadError::TooSmall { len })?;
        let sb_magic = sb.magic.get();
        if sb_magic != EROFS_MAGIC {
            return Err(ReadError::BadErofsMagic { found: sb_magic });
        }
        let sb_field = |rel: usize| SUPERBLOCK_OFFSET.saturating_add(rel);
        if sb.blkszbits != BLOCK_BITS {
            return Err(bad_field(
                "superblock blkszbits",
                sb_field(12),
                sb.blkszbits.into(),
                "12",
            ));
        }
        let compat = sb.feature_compat.get();
        let known_compat =
            FEATURE_COMPAT_SB_CHKSUM | FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER;
        if compat & !known_compat != 0 {
            return Err(bad_field(
                "superblock feature_compat",
                sb_field(8),
                compat.into(),
                "a subset of SB_CHKSUM|MTIME|XATTR_FILTER (0x7)",
            ));
        }
        let incompat = sb.feature_incompat.get();
        if incompat & !FEATURE_INCOMPAT_CHUNKED_FILE != 0 {
            return Err(bad_field(
                "superblock feature_incompat",
                sb_field(80),
                incompat.into(),
                "0 or CHUNKED_FILE (0x4)",
            ));
        }
        check_zero(
            "superblock sb_extslots",
            sb_field(13),
            sb.sb_extslots.into(),
        )?;
        check_zero(
            "superblock meta_blkaddr",
            sb_field(40),
            sb.meta_blkaddr.get().into(),
        )?;
        check_zero(
            "superblock available_compr_algs",
            sb_field(84),
            sb.available_compr_algs.get().into(),
        )?;
        check_zero(
            "superblock extra_devices",
            sb_field(86),
            sb.extra_devices.get().into(),
        )?;
        check_zero("superblock dirblkbits", sb_field(90), sb.dirblkbits.into())?;
        check_zero(
            "superblock xattr_prefix_count",
            sb_field(91),
            sb.xattr_prefix_count.into(),
        )?;
        check_zero("superblock packed_nid", sb_field(96), sb.packed_nid.get())?;

        let blocks = sb.blocks.get();
        let len64 = len as u64;
        if !len.is_multiple_of(BLOCK_SIZE) || u64::from(blocks).checked_mul(BLOCK) != Some(len64) {
            return Err(ReadError::SizeMismatch { len, blocks });
        }
        let xattr_base = u64::from(sb.xattr_blkaddr.get())
            .checked_mul(BLOCK)
            .filter(|&b| b <= len64)
            .ok_or_else(|| {
                bad_field(
                    "superblock xattr_blkaddr",
                    sb_field(44),
                    sb.xattr_blkaddr.get().into(),
                    "a block inside the image",
                )
            })?;

        let image = Image {
            data,
            composefs_version,
            has_acl: flags & COMPOSEFS_FLAGS_HAS_ACL != 0,
            feature_compat: compat,
            // Two's complement, like the C reader's cast.
            build_time: Mtime::new(sb.build_time.get() as i64, sb.build_time_nsec.get()),
            inodes: sb.inos.get(),
            root_nid: sb.root_nid.get().into(),
            blocks,
            xattr_base,
        };
        image.inode_offset(image.root_nid)?;
        Ok(image)
    }

    /// Facts from the header and superblock.
    pub fn info(&self) -> ImageInfo {
        ImageInfo {
            composefs_version: self.composefs_version,
            has_acl: self.has_acl,
            build_time: self.build_time,
            inodes: self.inodes,
            root_nid: self.root_nid,
            blocks: self.blocks,
        }
    }

    /// The whole image.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Image length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Always false: an opened image has at least one block.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Header `composefs_version` (0, 1, or 2 for composefs-rs V2).
    pub fn composefs_version(&self) -> u32 {
        self.composefs_version
    }

    /// nid of the root directory.
    pub fn root_nid(&self) -> u64 {
        self.root_nid
    }

    /// mtime of compact inodes.
    pub fn build_time(&self) -> Mtime {
        self.build_time
    }

    /// True if inodes carry a valid xattr name filter (`XATTR_FILTER` feature).
    pub fn has_xattr_filter(&self) -> bool {
        self.feature_compat & FEATURE_COMPAT_XATTR_FILTER != 0
    }

    /// Byte offset that shared xattr ids are relative to (`xattr_blkaddr · 4096`).
    pub(super) fn xattr_base(&self) -> u64 {
        self.xattr_base
    }

    /// Upper bound (exclusive) of valid nids: slots that fit in the image.
    pub(super) fn nid_limit(&self) -> u64 {
        (self.data.len() as u64) / SLOT
    }

    /// Byte offset of the inode slot `nid`, checking that a 32-byte slot
    /// after the superblock fits in the image.
    pub(super) fn inode_offset(&self, nid: u64) -> Result<u64, ReadError> {
        let offset = nid.checked_mul(SLOT).ok_or(ReadError::BadNid {
            nid,
            reason: "offset overflows",
        })?;
        if offset < INODES_START as u64 {
            return Err(ReadError::BadNid {
                nid,
                reason: "points into the composefs header or superblock (nids start at 36)",
            });
        }
        if nid >= self.nid_limit() {
            return Err(ReadError::BadNid {
                nid,
                reason: "inode slot lies beyond the end of the image",
            });
        }
        Ok(offset)
    }

    /// The bytes `[offset, offset + len)`, or [`ReadError::OutOfBounds`].
    pub fn bytes(&self, what: &'static str, offset: u64, len: u64) -> Result<&'a [u8], ReadError> {
        let oob = || ReadError::OutOfBounds {
            what,
            offset,
            len,
            image_len: self.data.len(),
        };
        let end = offset.checked_add(len).ok_or_else(oob)?;
        let start = usize::try_from(offset).map_err(|_| oob())?;
        let end = usize::try_from(end).map_err(|_| oob())?;
        self.data.get(start..end).ok_or_else(oob)
    }

    /// The bytes from `offset` to the end of the image.
    pub(super) fn rest(&self, what: &'static str, offset: u64) -> Result<&'a [u8], ReadError> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.data.get(o..))
            .ok_or(ReadError::OutOfBounds {
                what,
                offset,
                len: 0,
                image_len: self.data.len(),
            })
    }
}
