//! The composefs EROFS image layout: on-disk structures and constants.
//!
//! All integers are little-endian; the structs below are the specification
//! (their sizes and field offsets are pinned by const assertions).
//!
//! ```text
//! offset        size   content
//! 0             32     ComposefsHeader (magic 0xd078629a, version 1, flags, composefs_version)
//! 32            992    zeros
//! 1024          128    Superblock (EROFS magic 0xE0F5E1E2, 4096-byte blocks)
//! 1152          ...    inodes in BFS order, each at a 32-byte slot (nid = offset / 32):
//!                      InodeCompact (32) or InodeExtended (64),
//!                      then, if the inode has xattrs, XattrIbodyHeader (12),
//!                      shared xattr ids (u32 each) and inline XattrEntry records,
//!                      then the inline tail (directory entries, file content,
//!                      symlink target or chunk map)
//! inodes_end    ...    shared xattr table (XattrEntry records), not block aligned
//! B = k·4096    ...    data blocks: directory blocks, file content blocks,
//!                      out-of-line symlinks and chunk maps, in inode order
//! ```
//!
//! An XattrEntry is `{u8 name_len, u8 name_index, u16 value_size}`, the name
//! suffix, the value, zero padding to 4 bytes. A directory block is `count`
//! [`Dirent`]s followed by the names without NUL terminators; `nameoff` is the
//! offset of the name within the block.
//!
//! Format versions (header `composefs_version`): 0 and 1 are identical except
//! that version 1 marks directories that contain whiteouts as overlayfs
//! "xwhiteouts" directories (`trusted.overlay.overlay.opaque=x`). Version 2 is
//! composefs-rs's own older layout (read only).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic number of the composefs header (`LCFS_EROFS_MAGIC`).
pub const COMPOSEFS_MAGIC: u32 = 0xd078_629a;
/// Header version (`LCFS_EROFS_VERSION`); readers reject other values.
pub const COMPOSEFS_HEADER_VERSION: u32 = 1;
/// Header flag: some inode carries a POSIX ACL xattr (mount without `noacl`).
pub const COMPOSEFS_FLAGS_HAS_ACL: u32 = 1;
/// Highest composefs format version the C tools write.
pub const MAX_FORMAT_VERSION: u32 = 1;

/// Byte offset of the EROFS superblock.
pub const SUPERBLOCK_OFFSET: usize = 1024;
/// EROFS superblock magic.
pub const EROFS_MAGIC: u32 = 0xe0f5_e1e2;
/// log2 of the block size.
pub const BLOCK_BITS: u8 = 12;
/// Block size in bytes.
pub const BLOCK_SIZE: usize = 1 << BLOCK_BITS;
/// Inode slot size: nids count 32-byte units from `meta_blkaddr` (always 0).
pub const INODE_SLOT_SIZE: usize = 32;
/// Offset of the first inode (right after the superblock).
pub const INODES_START: usize = SUPERBLOCK_OFFSET + size_of::<Superblock>();
/// `EROFS_NULL_ADDR`: a chunk without backing data.
pub const NULL_ADDR: u32 = 0xffff_ffff;

/// `EROFS_FEATURE_COMPAT_SB_CHKSUM`
pub const FEATURE_COMPAT_SB_CHKSUM: u32 = 0x1;
/// `EROFS_FEATURE_COMPAT_MTIME`: extended inodes carry their own mtime.
pub const FEATURE_COMPAT_MTIME: u32 = 0x2;
/// `EROFS_FEATURE_COMPAT_XATTR_FILTER`: inodes carry an xattr-name bloom filter.
pub const FEATURE_COMPAT_XATTR_FILTER: u32 = 0x4;
/// `EROFS_FEATURE_INCOMPAT_CHUNKED_FILE` (C never sets it although it uses chunks).
pub const FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x4;

/// Seed of the xattr name filter hash (`EROFS_XATTR_FILTER_SEED`).
pub const XATTR_FILTER_SEED: u32 = 0x25bb_e08f;

/// `i_format` bit 0: extended (64-byte) inode.
pub const INODE_FORMAT_EXTENDED: u16 = 1;

/// Inode data layouts (`i_format >> 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DataLayout {
    /// Data in whole blocks starting at `i_u`.
    FlatPlain = 0,
    /// Whole blocks, then a tail stored right after the inode and its xattrs.
    FlatInline = 2,
    /// Chunk map after the inode; `i_u` low bits = chunkbits − 12.
    ChunkBased = 4,
}

impl DataLayout {
    /// The layout encoded in an `i_format`, if supported (compressed layouts are not).
    pub fn from_format(i_format: u16) -> Option<Self> {
        match (i_format >> 1) & 0x7 {
            0 => Some(DataLayout::FlatPlain),
            2 => Some(DataLayout::FlatInline),
            4 => Some(DataLayout::ChunkBased),
            _ => None,
        }
    }

    /// `i_format` for this layout.
    pub const fn format(self, extended: bool) -> u16 {
        ((self as u16) << 1) | if extended { INODE_FORMAT_EXTENDED } else { 0 }
    }
}

/// Chunk-based `i_u`: mask of the chunkbits field (`EROFS_CHUNK_FORMAT_BLKBITS_MASK`).
pub const CHUNK_FORMAT_BLKBITS_MASK: u32 = 0x1f;
/// Chunk-based `i_u`: chunk indexes instead of a block map (`EROFS_CHUNK_FORMAT_INDEXES`).
pub const CHUNK_FORMAT_INDEXES: u32 = 0x20;

/// Directory entry file types (`EROFS_FT_*`).
pub mod file_type {
    /// Unknown.
    pub const UNKNOWN: u8 = 0;
    /// Regular file.
    pub const REG_FILE: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHRDEV: u8 = 3;
    /// Block device.
    pub const BLKDEV: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symbolic link.
    pub const SYMLINK: u8 = 7;
}

/// The composefs header at offset 0.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct ComposefsHeader {
    /// [`COMPOSEFS_MAGIC`]
    pub magic: U32,
    /// [`COMPOSEFS_HEADER_VERSION`]
    pub version: U32,
    /// [`COMPOSEFS_FLAGS_HAS_ACL`]
    pub flags: U32,
    /// Format version 0 or 1 (2 for composefs-rs V2 images).
    pub composefs_version: U32,
    /// Zero.
    pub unused: [U32; 4],
}

/// The EROFS superblock at offset 1024.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Superblock {
    /// [`EROFS_MAGIC`]
    pub magic: U32,
    /// Superblock checksum (0: not used).
    pub checksum: U32,
    /// `FEATURE_COMPAT_*` bits.
    pub feature_compat: U32,
    /// log2 block size (12).
    pub blkszbits: u8,
    /// Superblock extension slots (0).
    pub sb_extslots: u8,
    /// nid of the root directory.
    pub root_nid: U16,
    /// Number of inodes.
    pub inos: U64,
    /// Default mtime (seconds) for compact inodes.
    pub build_time: U64,
    /// Default mtime nanoseconds for compact inodes.
    pub build_time_nsec: U32,
    /// Image size in blocks.
    pub blocks: U32,
    /// Start block of the metadata area (0).
    pub meta_blkaddr: U32,
    /// Block of the shared xattr table's base.
    pub xattr_blkaddr: U32,
    /// Filesystem UUID (zero).
    pub uuid: [u8; 16],
    /// Volume name (zero).
    pub volume_name: [u8; 16],
    /// `FEATURE_INCOMPAT_*` bits.
    pub feature_incompat: U32,
    /// Compression algorithms / lz4 max distance (0).
    pub available_compr_algs: U16,
    /// Extra devices (0).
    pub extra_devices: U16,
    /// Device table slot offset (0).
    pub devt_slotoff: U16,
    /// Directory block size bits beyond the block size (0).
    pub dirblkbits: u8,
    /// Long xattr name prefixes (0).
    pub xattr_prefix_count: u8,
    /// Start of the long prefix table (0).
    pub xattr_prefix_start: U32,
    /// nid of the packed inode (0).
    pub packed_nid: U64,
    /// Reserved for the xattr filter (0).
    pub xattr_filter_reserved: u8,
    /// Zero.
    pub reserved: [u8; 23],
}

/// The 32-byte compact inode.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct InodeCompact {
    /// Layout and format bit.
    pub i_format: U16,
    /// Xattr body size: 0, or `(body_size - 12) / 4 + 1`.
    pub i_xattr_icount: U16,
    /// `st_mode`.
    pub i_mode: U16,
    /// Link count.
    pub i_nlink: U16,
    /// Size in bytes.
    pub i_size: U32,
    /// Zero.
    pub i_reserved: U32,
    /// Block address, rdev or chunk format.
    pub i_u: U32,
    /// Inode number.
    pub i_ino: U32,
    /// Owner.
    pub i_uid: U16,
    /// Group.
    pub i_gid: U16,
    /// Zero.
    pub i_reserved2: U32,
}

/// The 64-byte extended inode.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct InodeExtended {
    /// Layout and format bit.
    pub i_format: U16,
    /// Xattr body size: 0, or `(body_size - 12) / 4 + 1`.
    pub i_xattr_icount: U16,
    /// `st_mode`.
    pub i_mode: U16,
    /// Zero.
    pub i_reserved: U16,
    /// Size in bytes.
    pub i_size: U64,
    /// Block address, rdev or chunk format.
    pub i_u: U32,
    /// Inode number.
    pub i_ino: U32,
    /// Owner.
    pub i_uid: U32,
    /// Group.
    pub i_gid: U32,
    /// mtime seconds (two's complement for negative times).
    pub i_mtime: U64,
    /// mtime nanoseconds.
    pub i_mtime_nsec: U32,
    /// Link count.
    pub i_nlink: U32,
    /// Zero.
    pub i_reserved2: [u8; 16],
}

/// Header of an inode's xattr body.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrIbodyHeader {
    /// Bloom filter of the names: a set bit means "not present".
    pub h_name_filter: U32,
    /// Number of shared xattr ids that follow.
    pub h_shared_count: u8,
    /// Zero.
    pub h_reserved2: [u8; 7],
}

/// Header of one xattr entry (inline or in the shared table).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct XattrEntry {
    /// Length of the name suffix.
    pub e_name_len: u8,
    /// Prefix index (see `erofs::xattr`).
    pub e_name_index: u8,
    /// Value length.
    pub e_value_size: U16,
}

/// A directory entry.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Dirent {
    /// Target inode.
    pub nid: U64,
    /// Offset of the name within the directory block.
    pub nameoff: U16,
    /// `file_type::*`
    pub file_type: u8,
    /// Zero.
    pub reserved: u8,
}

const _: () = {
    assert!(size_of::<ComposefsHeader>() == 32);
    assert!(size_of::<Superblock>() == 128);
    assert!(size_of::<InodeCompact>() == 32);
    assert!(size_of::<InodeExtended>() == 64);
    assert!(size_of::<XattrIbodyHeader>() == 12);
    assert!(size_of::<XattrEntry>() == 4);
    assert!(size_of::<Dirent>() == 12);
    assert!(std::mem::offset_of!(ComposefsHeader, composefs_version) == 12);
    assert!(std::mem::offset_of!(Superblock, root_nid) == 14);
    assert!(std::mem::offset_of!(Superblock, inos) == 16);
    assert!(std::mem::offset_of!(Superblock, build_time_nsec) == 32);
    assert!(std::mem::offset_of!(Superblock, blocks) == 36);
    assert!(std::mem::offset_of!(Superblock, xattr_blkaddr) == 44);
    assert!(std::mem::offset_of!(Superblock, feature_incompat) == 80);
    assert!(std::mem::offset_of!(Superblock, packed_nid) == 96);
    assert!(std::mem::offset_of!(InodeCompact, i_u) == 16);
    assert!(std::mem::offset_of!(InodeExtended, i_mtime) == 32);
    assert!(std::mem::offset_of!(InodeExtended, i_nlink) == 44);
    assert!(INODES_START == 1152);
};
