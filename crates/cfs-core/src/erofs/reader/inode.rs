//! Inode views: the compact (32-byte) and extended (64-byte) inode, its file
//! type, and where its data lives.
//!
//! Checks done by [`Image::inode`] (so every [`InodeRef`] is usable as is):
//! - the nid addresses a slot after the superblock and inside the image; the
//!   inode and its xattr body (`i_xattr_icount`) lie inside the image;
//! - `i_format` has only the version bit and a supported data layout
//!   (FLAT_PLAIN, FLAT_INLINE, CHUNK_BASED; compressed layouts are rejected);
//! - `i_mode` has one of the seven file types;
//! - layout and size agree with the type: directories are flat and non-empty;
//!   symlinks are flat with a 1..=4095 byte target without NUL; devices, fifos and
//!   sockets are FLAT_PLAIN with size 0; regular files are flat with at most
//!   [`MAX_INLINE`] bytes (C's limit) or chunk based with no chunk-format bits
//!   beyond chunkbits and INDEXES;
//! - flat data is in bounds: the block part at `i_u` lies inside the image,
//!   a FLAT_INLINE tail is non-empty, lies inside the image and does not cross
//!   a block boundary (the kernel rejects such inodes with EFSCORRUPTED).
//!
//! The chunk map of chunk-based files is never read: composefs files get
//! their data from the object store (overlayfs metacopy/redirect), and C
//! itself writes maps of more than 512 chunks to a block the kernel never
//! looks at.

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use zerocopy::FromBytes;

use super::{Image, ReadError};
use crate::erofs::format::{
    BLOCK_SIZE, CHUNK_FORMAT_BLKBITS_MASK, CHUNK_FORMAT_INDEXES, DataLayout, INODE_FORMAT_EXTENDED,
    InodeCompact, InodeExtended, XattrIbodyHeader,
};
use crate::tree::{FileType, Mtime};

/// Largest regular file whose content is stored in the image (C `mkcomposefs`
/// and `composefs-info` limit).
pub const MAX_INLINE: u64 = 5000;
/// Longest symlink target (C: `PATH_MAX - 1`).
pub const MAX_SYMLINK: u64 = 4095;

const BLOCK: u64 = BLOCK_SIZE as u64;
const XATTR_HEADER: u64 = size_of::<XattrIbodyHeader>() as u64;
/// `i_format` bits that are defined: version (bit 0) and data layout (bits 1-3).
const I_FORMAT_KNOWN: u16 = 0x000f;

/// Where an inode's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InodeData<'a> {
    /// Nothing to read: devices, fifos, sockets, empty flat files.
    None,
    /// Flat data: `head` (whole blocks at `i_u`; for FLAT_PLAIN the full
    /// `i_size` bytes) followed by `tail` (FLAT_INLINE only, stored right
    /// after the inode and its xattrs). The content is `head ++ tail`.
    Flat {
        /// Bytes stored in data blocks.
        head: &'a [u8],
        /// Image offset of `head`.
        head_offset: u64,
        /// Bytes stored inline after the inode.
        tail: &'a [u8],
        /// Image offset of `tail`.
        tail_offset: u64,
    },
    /// Chunk-based regular file (content in the object store).
    Chunked {
        /// log2 of the chunk size.
        chunkbits: u32,
    },
}

/// A validated inode.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct InodeRef<'a> {
    /// The nid (byte offset / 32).
    pub nid: u64,
    /// Byte offset of the inode.
    pub offset: u64,
    /// 64-byte extended inode (else 32-byte compact).
    pub extended: bool,
    /// Data layout.
    pub layout: DataLayout,
    /// File type from `i_mode`.
    pub file_type: FileType,
    /// Full `i_mode` (type and permission bits).
    pub mode: u16,
    /// Link count.
    pub nlink: u32,
    /// `i_size`.
    pub size: u64,
    /// `i_u`: block address, device number or chunk format.
    pub i_u: u32,
    /// `i_ino`.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (the image build time for compact inodes).
    pub mtime: Mtime,
    /// Where the data is.
    pub data: InodeData<'a>,
    /// The xattr body (empty if the inode has none).
    pub(super) xattr_body: &'a [u8],
    /// Image offset of the xattr body.
    pub(super) xattr_offset: u64,
    pub(super) image: Image<'a>,
}

impl<'a> InodeRef<'a> {
    /// The device number of a character or block device, else `None`.
    pub fn rdev(&self) -> Option<u32> {
        matches!(self.file_type, FileType::CharDevice | FileType::BlockDevice).then_some(self.i_u)
    }

    /// True for a character device 0:0 (an overlayfs whiteout).
    pub fn is_whiteout(&self) -> bool {
        self.file_type == FileType::CharDevice && self.i_u == 0
    }

    /// Size of the on-disk inode structure (32 or 64).
    pub fn inode_size(&self) -> u64 {
        if self.extended { 64 } else { 32 }
    }
}

struct Raw {
    extended: bool,
    i_format: u16,
    icount: u16,
    mode: u16,
    nlink: u32,
    size: u64,
    i_u: u32,
    ino: u32,
    uid: u32,
    gid: u32,
    mtime: Option<Mtime>,
}

fn read_raw(image: &Image<'_>, offset: u64) -> Result<Raw, ReadError> {
    let first = image.bytes("inode", offset, 32)?;
    let (compact, _) =
        InodeCompact::read_from_prefix(first).map_err(|_| truncated(image, offset))?;
    let i_format = compact.i_format.get();
    if i_format & INODE_FORMAT_EXTENDED == 0 {
        return Ok(Raw {
            extended: false,
            i_format,
            icount: compact.i_xattr_icount.get(),
            mode: compact.i_mode.get(),
            nlink: compact.i_nlink.get().into(),
            size: compact.i_size.get().into(),
            i_u: compact.i_u.get(),
            ino: compact.i_ino.get(),
            uid: compact.i_uid.get().into(),
            gid: compact.i_gid.get().into(),
            mtime: None,
        });
    }
    let bytes = image.bytes("extended inode", offset, 64)?;
    let (e, _) = InodeExtended::read_from_prefix(bytes).map_err(|_| truncated(image, offset))?;
    Ok(Raw {
        extended: true,
        i_format,
        icount: e.i_xattr_icount.get(),
        mode: e.i_mode.get(),
        nlink: e.i_nlink.get(),
        size: e.i_size.get(),
        i_u: e.i_u.get(),
        ino: e.i_ino.get(),
        uid: e.i_uid.get(),
        gid: e.i_gid.get(),
        // Two's complement for times before 1970, as C writes them.
        mtime: Some(Mtime::new(e.i_mtime.get() as i64, e.i_mtime_nsec.get())),
    })
}

/// Unreachable in practice: `Image::bytes` returned enough bytes.
fn truncated(image: &Image<'_>, offset: u64) -> ReadError {
    ReadError::OutOfBounds {
        what: "inode",
        offset,
        len: 64,
        image_len: image.len(),
    }
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "directory",
        FileType::Regular => "regular file",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

fn layout_name(l: DataLayout) -> &'static str {
    match l {
        DataLayout::FlatPlain => "FLAT_PLAIN",
        DataLayout::FlatInline => "FLAT_INLINE",
        DataLayout::ChunkBased => "CHUNK_BASED",
    }
}

impl<'a> Image<'a> {
    /// Reads and validates the inode `nid` (see the module docs for the checks).
    pub fn inode(&self, nid: u64) -> Result<InodeRef<'a>, ReadError> {
        let offset = self.inode_offset(nid)?;
        let raw = read_raw(self, offset)?;
        let bad = |reason: String| ReadError::BadInode {
            nid,
            offset,
            reason,
        };
        if raw.i_format & !I_FORMAT_KNOWN != 0 {
            return Err(bad(format!(
                "i_format {:#06x} has unknown bits (expected only version and layout bits)",
                raw.i_format
            )));
        }
        let layout = DataLayout::from_format(raw.i_format).ok_or_else(|| {
            bad(format!(
                "unsupported data layout {} (expected 0 FLAT_PLAIN, 2 FLAT_INLINE or 4 CHUNK_BASED)",
                (raw.i_format >> 1) & 7
            ))
        })?;
        let file_type = FileType::from_mode(raw.mode.into())
            .ok_or_else(|| bad(format!("mode {:#o} has no valid file type", raw.mode)))?;
        let isize: u64 = if raw.extended { 64 } else { 32 };
        let xattr_size = match raw.icount {
            0 => 0,
            n => XATTR_HEADER.saturating_add(u64::from(n).saturating_sub(1).saturating_mul(4)),
        };
        let xattr_offset = offset.saturating_add(isize);
        let xattr_body = self.bytes("inode xattr body", xattr_offset, xattr_size)?;
        let tail_offset = xattr_offset.saturating_add(xattr_size);

        let size = raw.size;
        let wrong = |why: &str| {
            bad(format!(
                "{} with layout {} and size {size}: {why}",
                type_name(file_type),
                layout_name(layout)
            ))
        };
        match (file_type, layout) {
            (FileType::Directory, DataLayout::ChunkBased) => {
                return Err(wrong("directories must be flat"));
            }
            (FileType::Directory, _) if size == 0 => {
                return Err(wrong("a directory holds at least '.' and '..'"));
            }
            (FileType::Symlink, DataLayout::ChunkBased) => {
                return Err(wrong("symlinks must be flat"));
            }
            (FileType::Symlink, _) if size == 0 || size > MAX_SYMLINK => {
                return Err(wrong("symlink targets have 1..=4095 bytes"));
            }
            (FileType::Regular, DataLayout::ChunkBased) => {}
            (FileType::Regular, _) if size > MAX_INLINE => {
                return Err(wrong("inline content is limited to 5000 bytes"));
            }
            (
                FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket,
                _,
            ) if layout != DataLayout::FlatPlain || size != 0 => {
                return Err(wrong("special files have no data (FLAT_PLAIN, size 0)"));
            }
            _ => {}
        }

        let data = match layout {
            DataLayout::ChunkBased => {
                let format = raw.i_u & 0xffff;
                if format & !(CHUNK_FORMAT_BLKBITS_MASK | CHUNK_FORMAT_INDEXES) != 0 {
                    return Err(bad(format!(
                        "chunk format {format:#06x} has unknown bits (expected chunkbits and INDEXES only)"
                    )));
                }
                InodeData::Chunked {
                    chunkbits: (format & CHUNK_FORMAT_BLKBITS_MASK).saturating_add(12),
                }
            }
            _ if size == 0
                || !matches!(
                    file_type,
                    FileType::Directory | FileType::Regular | FileType::Symlink
                ) =>
            {
                if layout == DataLayout::FlatInline {
                    return Err(wrong("FLAT_INLINE needs a non-empty tail"));
                }
                InodeData::None
            }
            DataLayout::FlatPlain => {
                let head_offset = u64::from(raw.i_u).saturating_mul(BLOCK);
                let head = self.bytes("data blocks", head_offset, size)?;
                InodeData::Flat {
                    head,
                    head_offset,
                    tail: &[],
                    tail_offset,
                }
            }
            DataLayout::FlatInline => {
                let tail_len = size % BLOCK;
                if tail_len == 0 {
                    return Err(wrong(
                        "FLAT_INLINE needs a non-empty tail (size not a multiple of 4096)",
                    ));
                }
                let head_len = size.saturating_sub(tail_len);
                let head_offset = u64::from(raw.i_u).saturating_mul(BLOCK);
                let head = if head_len == 0 {
                    &[][..]
                } else {
                    self.bytes("data blocks", head_offset, head_len)?
                };
                let tail = self.bytes("inline tail", tail_offset, tail_len)?;
                let last = tail_offset.saturating_add(tail_len).saturating_sub(1);
                if tail_offset / BLOCK != last / BLOCK {
                    return Err(bad(format!(
                        "inline tail at offset {tail_offset} ({tail_len} bytes) crosses a block boundary"
                    )));
                }
                InodeData::Flat {
                    head,
                    head_offset,
                    tail,
                    tail_offset,
                }
            }
        };

        if file_type == FileType::Symlink
            && let InodeData::Flat { head, tail, .. } = data
            && (head.contains(&0) || tail.contains(&0))
        {
            return Err(bad("symlink target contains a NUL byte".into()));
        }

        Ok(InodeRef {
            nid,
            offset,
            extended: raw.extended,
            layout,
            file_type,
            mode: raw.mode,
            nlink: raw.nlink,
            size,
            i_u: raw.i_u,
            ino: raw.ino,
            uid: raw.uid,
            gid: raw.gid,
            mtime: raw.mtime.unwrap_or(self.build_time()),
            data,
            xattr_body,
            xattr_offset,
            image: *self,
        })
    }
}
