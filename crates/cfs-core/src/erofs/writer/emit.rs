//! Streaming output of a laid-out image, in file order (C `lcfs_write_erofs_to`).
//!
//! 1. composefs header (magic, header version 1, ACL flag, format version) and
//!    zeros up to the superblock at 1024;
//! 2. the superblock: `feature_compat` MTIME | XATTR_FILTER, block size 4096,
//!    root nid, `inos`, build time (minimum mtime), block count, `xattr_blkaddr`
//!    = block of `inodes_end`; `meta_blkaddr` and `feature_incompat` 0;
//! 3. per BFS node (C `write_erofs_inode_data`): zero padding, the compact or
//!    extended inode, the xattr body (name filter of all its xattrs as C
//!    `compute_erofs_xattr_filter`, shared ids, inline entries, both in
//!    ascending name order), the inline tail;
//! 4. zero padding to `inodes_end`, the shared xattr table (C
//!    `write_erofs_shared_xattrs`), zero padding to a block boundary;
//! 5. per BFS node (C `write_erofs_data_blocks`): full directory blocks, the
//!    first content block of an inline file, an out-of-line symlink target, or
//!    a block of 1024 null chunk indexes for a chunk map that did not fit
//!    inline (C `write_erofs_file_content`), each zero-padded to 4096.
//!
//! Field rules: `i_format` = layout << 1 | extended; layout FLAT_INLINE iff a
//! tail is stored, else FLAT_PLAIN, and CHUNK_BASED for external files with
//! `i_u` low 16 bits = chunk bits − 12 (over the block address when the chunk
//! map is out of line); devices store rdev in `i_u`. Shared xattr ids are
//! `((inodes_end mod 4096) + table offset) / 4`. Directory chunks (C
//! `write_erofs_dentries_chunk`) are `count` dirents then the names;
//! `nameoff` counts from the chunk start; dirents carry the nid and file type
//! of the entry's target, so `.`, `..` and hard links point at the real inode.

use std::io::{self, Write};

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

use super::WriteError;
use super::check::chunk_bits;
use super::layout::{DIRENT_SIZE, Layout};
use super::order::{NONE, Order};
use super::rewrite::{Kind, View};
use super::xattrs::{NodeXattr, Xattrs};
use super::xref::XRef;
use crate::erofs::format::{
    BLOCK_BITS, BLOCK_SIZE, COMPOSEFS_FLAGS_HAS_ACL, COMPOSEFS_HEADER_VERSION, COMPOSEFS_MAGIC,
    ComposefsHeader, DataLayout, Dirent, EROFS_MAGIC, FEATURE_COMPAT_MTIME,
    FEATURE_COMPAT_XATTR_FILTER, InodeCompact, InodeExtended, NULL_ADDR, SUPERBLOCK_OFFSET,
    Superblock, XattrEntry, XattrIbodyHeader,
};
use crate::erofs::xattr::filter_bit;
use crate::tree::FileSystem;

const BLK: u64 = BLOCK_SIZE as u64;
/// Output buffer size.
const BUF_SIZE: usize = 256 * 1024;
/// Chunk indexes in an out-of-line chunk map block.
const CHUNKS_PER_BLOCK: u64 = BLK / 4;

/// A buffered sequential writer that counts its position.
struct Out<W: Write> {
    w: W,
    buf: Vec<u8>,
    pos: u64,
}

impl<W: Write> Out<W> {
    fn new(w: W) -> Self {
        Out {
            w,
            buf: Vec::with_capacity(BUF_SIZE),
            pos: 0,
        }
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > BUF_SIZE {
            return self.put_slow(bytes);
        }
        self.pos += bytes.len() as u64;
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    #[cold]
    fn put_slow(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pos += bytes.len() as u64;
        self.flush_buf()?;
        if bytes.len() >= BUF_SIZE {
            return self.w.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn fill(&mut self, byte: u8, mut n: u64) -> io::Result<()> {
        self.pos += n;
        while n > 0 {
            if self.buf.len() == BUF_SIZE {
                self.flush_buf()?;
            }
            let k = (BUF_SIZE - self.buf.len()).min(usize::try_from(n).unwrap_or(usize::MAX));
            self.buf.resize(self.buf.len() + k, byte);
            n -= k as u64;
        }
        Ok(())
    }

    /// Zero padding up to absolute offset `to`.
    fn pad_to(&mut self, to: u64) -> io::Result<()> {
        debug_assert!(to >= self.pos, "padding backwards: {} -> {to}", self.pos);
        self.fill(0, to.saturating_sub(self.pos))
    }

    /// Zero padding to the next multiple of `align`.
    fn align(&mut self, align: u64) -> io::Result<()> {
        self.pad_to(self.pos.next_multiple_of(align))
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        self.flush_buf()?;
        self.w.flush()?;
        Ok(self.pos)
    }
}

/// A directory entry ready to be written.
#[derive(Debug, Clone, Copy)]
struct DirOut<'a> {
    name: &'a [u8],
    nid: u64,
    file_type: u8,
}

/// Everything the per-node writers need.
struct Emitter<'a, 'p, W: Write> {
    fs: &'a FileSystem,
    order: &'p Order<'a>,
    xattrs: &'p Xattrs<'a>,
    layout: &'p Layout,
    out: Out<W>,
    dbuf: Vec<DirOut<'a>>,
    xbuf: Vec<NodeXattr<'a>>,
    scratch: Vec<u8>,
}

/// Writes the image; returns its size.
pub(super) fn write<'a, W: Write>(
    fs: &'a FileSystem,
    order: &Order<'a>,
    xattrs: &Xattrs<'a>,
    layout: &Layout,
    version: u32,
    out: W,
) -> Result<u64, WriteError> {
    let mut e = Emitter {
        fs,
        order,
        xattrs,
        layout,
        out: Out::new(out),
        dbuf: Vec::new(),
        xbuf: Vec::new(),
        scratch: Vec::new(),
    };
    e.header(version)?;
    for bfs in 0..order.nodes.len() {
        e.inode(bfs)?;
    }
    e.out.pad_to(layout.inodes_end)?;
    for x in &xattrs.shared {
        e.entry(x)?;
    }
    e.out.pad_to(layout.data_start)?;
    for bfs in 0..order.nodes.len() {
        e.data(bfs)?;
    }
    let size = e.out.finish()?;
    debug_assert_eq!(size, layout.size);
    Ok(size)
}

impl<'a, W: Write> Emitter<'a, '_, W> {
    fn header(&mut self, version: u32) -> Result<(), WriteError> {
        let header = ComposefsHeader {
            magic: U32::new(COMPOSEFS_MAGIC),
            version: U32::new(COMPOSEFS_HEADER_VERSION),
            flags: U32::new(if self.xattrs.has_acl {
                COMPOSEFS_FLAGS_HAS_ACL
            } else {
                0
            }),
            composefs_version: U32::new(version),
            unused: Default::default(),
        };
        self.out.put(header.as_bytes())?;
        self.out.pad_to(SUPERBLOCK_OFFSET as u64)?;
        let l = self.layout;
        let sb = Superblock {
            magic: U32::new(EROFS_MAGIC),
            feature_compat: U32::new(FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER),
            blkszbits: BLOCK_BITS,
            root_nid: U16::new(l.nodes[0].nid() as u16),
            inos: U64::new(self.order.nodes.len() as u64),
            build_time: U64::new(l.build_time.sec as u64),
            build_time_nsec: U32::new(l.build_time.nsec),
            blocks: U32::new((l.size / BLK) as u32),
            xattr_blkaddr: U32::new((l.inodes_end / BLK) as u32),
            ..Default::default()
        };
        self.out.put(sb.as_bytes())?;
        Ok(())
    }

    fn inode(&mut self, bfs: usize) -> Result<(), WriteError> {
        let p = self.layout.nodes[bfs];
        let v = self.order.views[bfs];
        self.out.pad_to(p.pos)?;
        let n_blocks = u64::from(p.n_blocks);
        let mut layout = if p.tail > 0 {
            DataLayout::FlatInline
        } else {
            DataLayout::FlatPlain
        };
        let block = if p.n_blocks > 0 {
            self.layout.block_addr(bfs)
        } else {
            0
        };
        let (size, i_u) = match v.kind {
            Kind::Directory => (n_blocks * BLK + u64::from(p.tail), block),
            Kind::Device { rdev, .. } => (0, rdev),
            Kind::Stub | Kind::Fifo | Kind::Socket => (0, 0),
            Kind::External(size) => {
                layout = DataLayout::ChunkBased;
                let format = chunk_bits(size) - u32::from(BLOCK_BITS);
                (size, (block & 0xffff_0000) | format)
            }
            k => (k.file_size(), block),
        };
        self.inode_record(&v, bfs, layout, size, i_u)?;
        if p.xattr_size > 0 {
            self.xattr_body(bfs)?;
        }
        if p.tail > 0 {
            match v.kind {
                Kind::Directory => self.dir(bfs, false)?,
                Kind::Symlink(target) => self.out.put(target)?,
                Kind::Inline(data) => self.out.put(&data[data.len() - p.tail as usize..])?,
                Kind::External(_) => self.null_chunks(u64::from(p.tail) / 4)?,
                _ => {}
            }
        }
        debug_assert_eq!(
            self.out.pos,
            p.pos + p.inode_size() + u64::from(p.xattr_size) + u64::from(p.tail)
        );
        Ok(())
    }

    fn inode_record(
        &mut self,
        v: &View<'_>,
        bfs: usize,
        layout: DataLayout,
        size: u64,
        i_u: u32,
    ) -> Result<(), WriteError> {
        let p = self.layout.nodes[bfs];
        let icount = if p.xattr_size == 0 {
            0
        } else {
            (p.xattr_size - 12) / 4 + 1
        };
        let icount = U16::new(icount as u16);
        if p.compact {
            let i = InodeCompact {
                i_format: U16::new(layout.format(false)),
                i_xattr_icount: icount,
                i_mode: U16::new(v.mode),
                i_nlink: U16::new(v.nlink as u16),
                i_size: U32::new(size as u32),
                i_u: U32::new(i_u),
                i_ino: U32::new(bfs as u32),
                i_uid: U16::new(v.uid as u16),
                i_gid: U16::new(v.gid as u16),
                ..Default::default()
            };
            self.out.put(i.as_bytes())?;
        } else {
            let i = InodeExtended {
                i_format: U16::new(layout.format(true)),
                i_xattr_icount: icount,
                i_mode: U16::new(v.mode),
                i_size: U64::new(size),
                i_u: U32::new(i_u),
                i_ino: U32::new(bfs as u32),
                i_uid: U32::new(v.uid),
                i_gid: U32::new(v.gid),
                i_mtime: U64::new(v.mtime.sec as u64),
                i_mtime_nsec: U32::new(v.mtime.nsec),
                i_nlink: U32::new(v.nlink),
                ..Default::default()
            };
            self.out.put(i.as_bytes())?;
        }
        Ok(())
    }

    fn xattr_body(&mut self, bfs: usize) -> Result<(), WriteError> {
        let mut xs = std::mem::take(&mut self.xbuf);
        xs.clear();
        xs.extend(self.xattrs.node(bfs));
        let mut mask = 0u32;
        for o in &xs {
            let (index, [a, b]) = o.x.index_suffix();
            mask |= if a.is_empty() {
                filter_bit(index, b)
            } else {
                self.scratch.clear();
                self.scratch.extend_from_slice(a);
                self.scratch.extend_from_slice(b);
                filter_bit(index, &self.scratch)
            };
        }
        let header = XattrIbodyHeader {
            h_name_filter: U32::new(!mask),
            h_shared_count: self.xattrs.nodes[bfs].shared,
            ..Default::default()
        };
        self.out.put(header.as_bytes())?;
        // Shared references first, then the inline entries, both in name order.
        let base = self.layout.inodes_end % BLK;
        for o in &xs {
            if let Some(off) = o.shared_offset {
                let id = (base + u64::from(off)) / 4;
                self.out.put(&(id as u32).to_le_bytes())?;
            }
        }
        for o in &xs {
            if o.shared_offset.is_none() {
                self.entry(&o.x)?;
            }
        }
        self.xbuf = xs;
        Ok(())
    }

    /// One xattr entry (C `write_erofs_xattr`).
    fn entry(&mut self, x: &XRef<'_>) -> Result<(), WriteError> {
        let (index, [a, b]) = x.index_suffix();
        let e = XattrEntry {
            e_name_len: (a.len() + b.len()) as u8,
            e_name_index: index,
            e_value_size: U16::new(x.value_len() as u16),
        };
        self.out.put(e.as_bytes())?;
        self.out.put(a)?;
        self.out.put(b)?;
        for part in x.value_bytes() {
            self.out.put(part)?;
        }
        self.out.align(4)?;
        Ok(())
    }

    /// Writes directory `bfs`'s full blocks (`blocks`) or its inline tail.
    /// Chunking as C `write_erofs_dentries`.
    fn dir(&mut self, bfs: usize, blocks: bool) -> Result<(), WriteError> {
        let mut entries = std::mem::take(&mut self.dbuf);
        entries.clear();
        for c in self.order.children(self.fs, bfs) {
            let target = self.order.resolve(bfs, c.target);
            let placed = self
                .layout
                .nodes
                .get(target as usize)
                .filter(|_| target != NONE);
            let Some(placed) = placed else {
                debug_assert!(false, "dirent target not placed");
                continue;
            };
            entries.push(DirOut {
                name: c.name,
                nid: placed.nid(),
                file_type: placed.file_type,
            });
        }
        let n_blocks = self.layout.nodes[bfs].n_blocks as usize;
        let mut block = 0;
        let mut written = 0;
        let mut first = 0;
        for (i, e) in entries.iter().enumerate() {
            let len = DIRENT_SIZE + e.name.len();
            if block + len > BLOCK_SIZE {
                if blocks {
                    self.dir_chunk(&entries[first..i], true)?;
                }
                written += 1;
                block = 0;
                first = i;
            }
            block += len;
        }
        if written < n_blocks {
            if blocks {
                self.dir_chunk(&entries[first..], true)?;
            }
            block = 0;
            first = entries.len();
        }
        if !blocks && block > 0 {
            self.dir_chunk(&entries[first..], false)?;
        }
        self.dbuf = entries;
        Ok(())
    }

    fn dir_chunk(&mut self, entries: &[DirOut<'_>], full_block: bool) -> Result<(), WriteError> {
        let mut nameoff = entries.len() * DIRENT_SIZE;
        for e in entries {
            let d = Dirent {
                nid: U64::new(e.nid),
                nameoff: U16::new(nameoff as u16),
                file_type: e.file_type,
                reserved: 0,
            };
            self.out.put(d.as_bytes())?;
            nameoff += e.name.len();
        }
        for e in entries {
            self.out.put(e.name)?;
        }
        if full_block {
            self.out.align(BLK)?;
        }
        Ok(())
    }

    /// `n` chunk indexes without data (`EROFS_NULL_ADDR`, all bits set).
    fn null_chunks(&mut self, n: u64) -> Result<(), WriteError> {
        const _: () = assert!(NULL_ADDR == u32::MAX);
        self.out.fill(0xff, n * 4)?;
        Ok(())
    }

    fn data(&mut self, bfs: usize) -> Result<(), WriteError> {
        let p = self.layout.nodes[bfs];
        if p.n_blocks == 0 {
            return Ok(());
        }
        debug_assert_eq!(self.out.pos, self.layout.block_addr(bfs) as u64 * BLK);
        match self.order.views[bfs].kind {
            Kind::Directory => self.dir(bfs, true)?,
            // C writes only the first block (inline content is ≤ 5000 bytes).
            Kind::Inline(data) => {
                self.out.put(&data[..data.len().min(BLOCK_SIZE)])?;
                self.out.align(BLK)?;
            }
            Kind::Symlink(target) => {
                self.out.put(target)?;
                self.out.align(BLK)?;
            }
            Kind::External(_) => self.null_chunks(CHUNKS_PER_BLOCK)?,
            _ => {}
        }
        Ok(())
    }
}
