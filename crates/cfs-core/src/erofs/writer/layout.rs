//! Placement of inodes, tails and data blocks (C `compute_erofs_inodes`).
//!
//! Per node, in BFS order:
//! - **tail and blocks** (C `compute_erofs_inode_size`): directories pack
//!   12-byte dirents plus names greedily into 4096-byte chunks, and a last
//!   chunk above 2048 bytes becomes a block (C `compute_erofs_dir_size`);
//!   inline files keep `size mod 4096` as tail unless it exceeds 2048 bytes;
//!   symlinks keep the whole target as tail; external files keep a chunk map
//!   of 4 bytes per chunk (C `erofs_compute_chunking`);
//! - **compact or extended** (C `lcfs_fits_in_erofs_compact`): compact iff the
//!   mtime equals the build time (the minimum mtime), nlink, uid and gid fit in
//!   16 bits and the size in 32 bits;
//! - **xattr body**: 12 bytes + 4 per shared reference + the inline entries;
//! - **padding** (C `compute_erofs_inode_padding_for_tail`): the inode starts
//!   at a 32-byte slot. A symlink whose inode + xattrs + target reach 4096 bytes
//!   moves the target to a block of its own; independently, if that total
//!   (before the move) would cross a block boundary, the inode moves to the next
//!   block. Any other tail that does not fit in the rest of the block gets the
//!   rest of the block rounded up to 32 as padding; if it still does not fit
//!   (only chunk maps of more than ~1000 chunks), it becomes a block and the
//!   inode moves to the next block;
//! - data blocks are numbered in BFS order, each node's blocks contiguous.
//!
//! After the inodes: `inodes_end` = end rounded to 32; the shared xattr table
//! follows directly; data blocks start at the next 4096 boundary.

use super::WriteError;
use super::check::chunk_count;
use super::order::Order;
use super::rewrite::Kind;
use super::xattrs::Xattrs;
use crate::erofs::format::{BLOCK_SIZE, INODE_SLOT_SIZE, INODES_START};
use crate::tree::{FileSystem, Mtime};

const BLK: u64 = BLOCK_SIZE as u64;
const SLOT: u64 = INODE_SLOT_SIZE as u64;
/// Size of one directory entry record.
pub(super) const DIRENT_SIZE: usize = 12;
/// Tails larger than this become blocks ("never inline more than half a block").
const MAX_TAIL: u64 = BLK / 2;

/// Where one node goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    /// Byte offset of the inode (nid = pos / 32).
    pub(super) pos: u64,
    /// Full data blocks.
    pub(super) n_blocks: u32,
    /// Inline tail size.
    pub(super) tail: u32,
    /// Xattr body size (0 without xattrs).
    pub(super) xattr_size: u32,
    /// Relative index of the first data block.
    pub(super) first_block: u32,
    /// Compact (32-byte) inode.
    pub(super) compact: bool,
    /// Directory entry file type of the node.
    pub(super) file_type: u8,
}

impl Placed {
    /// The inode's nid.
    pub(super) fn nid(&self) -> u64 {
        self.pos / SLOT
    }

    /// Inode record size.
    pub(super) fn inode_size(&self) -> u64 {
        if self.compact { 32 } else { 64 }
    }
}

/// The image layout.
#[derive(Debug)]
pub(super) struct Layout {
    /// Per BFS node.
    pub(super) nodes: Vec<Placed>,
    /// End of the inode area (start of the shared xattr table).
    pub(super) inodes_end: u64,
    /// Start of the data blocks.
    pub(super) data_start: u64,
    /// Image size.
    pub(super) size: u64,
    /// Minimum mtime of all nodes.
    pub(super) build_time: Mtime,
}

/// Blocks and tail of a directory whose entry names have the given lengths
/// (C `compute_erofs_dir_size`).
pub(super) fn dir_size(name_lens: impl Iterator<Item = usize>) -> (u64, u64) {
    let mut n_blocks = 0;
    let mut block = 0u64;
    for len in name_lens {
        let len = (DIRENT_SIZE + len) as u64;
        if block + len > BLK {
            n_blocks += 1;
            block = 0;
        }
        block += len;
    }
    if block > MAX_TAIL {
        n_blocks += 1;
        block = 0;
    }
    (n_blocks, block)
}

/// Padding before an inode at slot-aligned `pos`, and the possibly changed
/// (blocks, tail) (C `compute_erofs_inode_padding_for_tail`).
pub(super) fn pad_for_tail(
    pos: u64,
    non_tail: u64,
    n_blocks: u64,
    tail: u64,
    symlink: bool,
) -> (u64, u64, u64) {
    let to_block = pos.next_multiple_of(BLK) - pos;
    if symlink {
        let total = non_tail + tail;
        let (n_blocks, tail) = if total >= BLK {
            (n_blocks + 1, 0)
        } else {
            (n_blocks, tail)
        };
        let pad = if pos / BLK != (pos + total - 1) / BLK {
            to_block
        } else {
            0
        };
        return (pad, n_blocks, tail);
    }
    let rem = BLK - (pos + non_tail) % BLK;
    if rem >= tail {
        return (0, n_blocks, tail);
    }
    let extra = rem.next_multiple_of(SLOT);
    let rem = BLK - (pos + non_tail + extra) % BLK;
    if tail <= rem {
        (extra, n_blocks, tail)
    } else {
        (to_block, n_blocks + 1, 0)
    }
}

impl Layout {
    /// Lays out every node of `order`.
    pub(super) fn compute(
        fs: &FileSystem,
        order: &Order<'_>,
        xattrs: &Xattrs<'_>,
    ) -> Result<Self, WriteError> {
        let n = order.nodes.len();
        let build_time = order.build_time;
        let mut nodes = Vec::with_capacity(n);
        let mut pos = INODES_START as u64;
        let mut blocks = 0u64;
        for bfs in 0..n {
            let v = &order.views[bfs];
            let (n_blocks, tail) = match v.kind {
                Kind::Directory => dir_size(order.children(fs, bfs).map(|c| c.name.len())),
                Kind::Inline(data) => {
                    let len = data.len() as u64;
                    match (len / BLK, len % BLK) {
                        (b, t) if t > MAX_TAIL => (b + 1, 0),
                        bt => bt,
                    }
                }
                Kind::External(size) => (0, chunk_count(size) * 4),
                Kind::Symlink(target) => (0, target.len() as u64),
                _ => (0, 0),
            };
            let size = match v.kind {
                Kind::Directory => n_blocks * BLK + tail,
                k => k.file_size(),
            };
            let compact = v.mtime == build_time
                && v.nlink <= u32::from(u16::MAX)
                && v.uid <= u32::from(u16::MAX)
                && v.gid <= u32::from(u16::MAX)
                && size <= u64::from(u32::MAX);
            let inode_size = if compact { 32 } else { 64 };
            let x = &xattrs.nodes[bfs];
            let xattr_size = u64::from(x.body_size);
            pos = pos.next_multiple_of(SLOT);
            let symlink = matches!(v.kind, Kind::Symlink(_));
            let (pad, n_blocks, tail) =
                pad_for_tail(pos, inode_size + xattr_size, n_blocks, tail, symlink);
            pos += pad;
            nodes.push(Placed {
                pos,
                n_blocks: n_blocks as u32,
                tail: tail as u32,
                xattr_size: xattr_size as u32,
                first_block: blocks as u32,
                compact,
                file_type: v.kind.file_type(),
            });
            blocks += n_blocks;
            pos += inode_size + xattr_size + tail;
        }
        let inodes_end = pos.next_multiple_of(SLOT);
        let data_start = (inodes_end + xattrs.shared_size).next_multiple_of(BLK);
        let total_blocks = data_start / BLK + blocks;
        if total_blocks > u64::from(u32::MAX) {
            return Err(WriteError::ImageTooLarge {
                blocks: total_blocks,
            });
        }
        Ok(Layout {
            nodes,
            inodes_end,
            data_start,
            size: total_blocks * BLK,
            build_time,
        })
    }

    /// Absolute block address of node `bfs`'s first data block.
    pub(super) fn block_addr(&self, bfs: usize) -> u32 {
        (self.data_start / BLK) as u32 + self.nodes[bfs].first_block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_sizes() {
        // `.`, `..` and 256 two-byte names plus one one-byte name: one block.
        let lens = [1usize, 2]
            .into_iter()
            .chain(std::iter::repeat_n(2, 256))
            .chain([1]);
        assert_eq!(dir_size(lens), (1, 0));
        assert_eq!(dir_size([1, 2, 3].into_iter()), (0, 42));
        // Exactly 2048 bytes stays a tail, one more byte makes a block.
        assert_eq!(dir_size(std::iter::repeat_n(4, 128)), (0, 2048));
        assert_eq!(dir_size(std::iter::repeat_n(4, 127).chain([5])), (1, 0));
        // A full first block and a small tail.
        assert_eq!(dir_size(std::iter::repeat_n(4, 256).chain([1])), (1, 13));
    }

    #[test]
    fn tail_padding() {
        // Fits: no padding.
        assert_eq!(pad_for_tail(1152, 32, 0, 100, false), (0, 0, 100));
        // Does not fit in the rest of the block: pad to the next slot boundary
        // past the block end.
        assert_eq!(pad_for_tail(4000, 64, 0, 100, false), (32, 0, 100));
        assert_eq!(pad_for_tail(4000, 68, 0, 100, false), (32, 0, 100));
        // A 4096-byte chunk map at an unaligned spot becomes a block and the
        // inode moves to the next block.
        assert_eq!(pad_for_tail(4160, 68, 0, 4096, false), (4032, 1, 0));
        // Symlinks: crossing moves the inode to the next block.
        assert_eq!(pad_for_tail(4064, 32, 0, 100, true), (32, 0, 100));
        // A target that cannot fit with its inode goes out of line; the
        // original total still decides the padding.
        assert_eq!(pad_for_tail(4096, 32, 0, 4095, true), (0, 1, 0));
        assert_eq!(pad_for_tail(4128, 32, 0, 4095, true), (4064, 1, 0));
    }
}
