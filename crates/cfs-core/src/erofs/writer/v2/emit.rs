//! Offsets and bytes of a V2 image: header and superblock, the inodes (each
//! with its xattr body and inline tail), the shared xattr table, then the
//! directory blocks.

use std::io::{self, Write};

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

use super::{Attr, DirLayout, Dirent, INODE_SIZE, Node, Plan};
use crate::erofs::format::{
    BLOCK_SIZE, COMPOSEFS_HEADER_VERSION, COMPOSEFS_MAGIC, ComposefsHeader, DataLayout,
    EROFS_MAGIC, FEATURE_COMPAT_MTIME, FEATURE_COMPAT_XATTR_FILTER, INODE_SLOT_SIZE, INODES_START,
    InodeExtended, SUPERBLOCK_OFFSET, Superblock, XattrEntry, XattrIbodyHeader,
};
use crate::erofs::writer::{WriteError, check};
use crate::limits::MAX_IMAGE_LEN;
use crate::tree::{FileSystem, InodeKind, RegularFile};

/// What follows an inode's xattr body.
enum Tail<'p> {
    None,
    Bytes(&'p [u8]),
    Dirents(&'p [Dirent<'p>]),
    NullChunk,
}

impl Tail<'_> {
    fn len(&self) -> usize {
        match self {
            Tail::None => 0,
            Tail::Bytes(b) => b.len(),
            Tail::Dirents(d) => d.iter().map(|e| 12 + e.name.len()).sum(),
            Tail::NullChunk => 4,
        }
    }
}

/// Layout facts of one node.
struct Shape<'p> {
    layout: DataLayout,
    size: u64,
    /// `i_u` except a block address, which is added once known.
    u: u32,
    /// Whether `i_u` is the node's first block address.
    u_is_blkaddr: bool,
    tail: Tail<'p>,
    mode_bits: u16,
}

fn shape<'p>(fs: &'p FileSystem, node: &'p Node<'p>) -> Shape<'p> {
    let inode = fs.inode(node.id);
    let mode_bits = inode.kind.file_type().mode_bits() as u16;
    let flat = |layout, size, u, tail| Shape {
        layout,
        size,
        u,
        u_is_blkaddr: false,
        tail,
        mode_bits,
    };
    match &inode.kind {
        InodeKind::Directory(_) => {
            let dir = node.dir.as_ref().map_or(&EMPTY_DIR, |d| d);
            let size = (dir.blocks.len() * BLOCK_SIZE + dir.inline_len) as u64;
            let (layout, u_is_blkaddr) = if dir.inline.is_empty() {
                (DataLayout::FlatPlain, true)
            } else {
                (DataLayout::FlatInline, !dir.blocks.is_empty())
            };
            Shape {
                layout,
                size,
                u: 0,
                u_is_blkaddr,
                tail: Tail::Dirents(&dir.inline),
                mode_bits,
            }
        }
        InodeKind::Regular(RegularFile::Inline(data)) if data.is_empty() => {
            flat(DataLayout::FlatPlain, 0, 0, Tail::None)
        }
        InodeKind::Regular(RegularFile::Inline(data)) => flat(
            DataLayout::FlatInline,
            data.len() as u64,
            0,
            Tail::Bytes(data),
        ),
        InodeKind::Regular(RegularFile::External(ext)) => flat(
            DataLayout::ChunkBased,
            ext.size,
            31,
            if ext.digest.is_some() {
                Tail::NullChunk
            } else {
                Tail::None
            },
        ),
        InodeKind::Symlink(target) => flat(
            DataLayout::FlatInline,
            target.len() as u64,
            0,
            Tail::Bytes(target),
        ),
        InodeKind::CharDevice(rdev) | InodeKind::BlockDevice(rdev) => {
            flat(DataLayout::FlatPlain, 0, *rdev, Tail::None)
        }
        InodeKind::Fifo | InodeKind::Socket => flat(DataLayout::FlatPlain, 0, 0, Tail::None),
    }
}

static EMPTY_DIR: DirLayout<'static> = DirLayout {
    blocks: Vec::new(),
    inline: Vec::new(),
    inline_len: 0,
};

/// Byte positions of everything.
struct Offsets {
    /// Zero padding inserted before each inode (the tail rule).
    pad_before: Vec<usize>,
    inode: Vec<usize>,
    inodes_end: usize,
    shared: Vec<usize>,
    /// First data block of each node (its position when blocks are written).
    block: Vec<usize>,
    end: usize,
}

fn compute(fs: &FileSystem, plan: &Plan<'_>) -> Result<Offsets, WriteError> {
    let n = plan.nodes.len();
    let mut off = Offsets {
        pad_before: Vec::with_capacity(n),
        inode: Vec::with_capacity(n),
        inodes_end: 0,
        shared: Vec::with_capacity(plan.shared.len()),
        block: Vec::with_capacity(n),
        end: 0,
    };
    let mut pos = INODES_START;
    for node in &plan.nodes {
        let s = shape(fs, node);
        pos = pos.next_multiple_of(INODE_SLOT_SIZE);
        let meta = INODE_SIZE + node.xattr_size();
        let tail = s.tail.len();
        if meta + tail > BLOCK_SIZE && s.layout == DataLayout::FlatInline {
            return Err(WriteError::TailTooLarge {
                path: check::path_of(fs, node.id),
                len: tail,
            });
        }
        let mut pad = 0;
        if s.layout == DataLayout::FlatInline {
            let inline_start = pos + meta;
            let last_meta = inline_start - 1;
            let inline_end = inline_start + (s.size as usize % BLOCK_SIZE);
            if last_meta / BLOCK_SIZE != inline_end / BLOCK_SIZE {
                let padded =
                    (pos + BLOCK_SIZE - last_meta % BLOCK_SIZE).next_multiple_of(INODE_SLOT_SIZE);
                pad = padded - pos;
                pos = padded;
            }
        }
        off.pad_before.push(pad);
        off.inode.push(pos);
        pos = (pos + meta + tail).next_multiple_of(INODE_SLOT_SIZE);
    }
    pos = pos.next_multiple_of(INODE_SLOT_SIZE);
    off.inodes_end = pos;
    for attr in &plan.shared {
        off.shared.push(pos);
        pos += attr.size();
    }
    pos = pos.next_multiple_of(BLOCK_SIZE);
    for node in &plan.nodes {
        off.block.push(pos);
        if let Some(dir) = &node.dir {
            pos += dir.blocks.len() * BLOCK_SIZE;
        }
    }
    off.end = pos;
    if off.end as u64 > MAX_IMAGE_LEN {
        return Err(WriteError::ImageTooLarge {
            blocks: (off.end / BLOCK_SIZE) as u64,
        });
    }
    Ok(off)
}

/// A writer that knows its position and pads with zeros.
struct Sink<W: Write> {
    out: io::BufWriter<W>,
    pos: usize,
}

impl<W: Write> Sink<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len();
        Ok(())
    }

    fn zeros(&mut self, mut n: usize) -> io::Result<()> {
        const Z: [u8; 256] = [0; 256];
        while n > 0 {
            let k = n.min(Z.len());
            self.put(&Z[..k])?;
            n -= k;
        }
        Ok(())
    }

    fn align(&mut self, to: usize) -> io::Result<()> {
        self.zeros(self.pos.next_multiple_of(to) - self.pos)
    }
}

fn nid(off: &Offsets, node: usize) -> u64 {
    (off.inode[node] / INODE_SLOT_SIZE) as u64
}

fn put_attr<W: Write>(sink: &mut Sink<W>, a: &Attr) -> io::Result<()> {
    let head = XattrEntry {
        e_name_len: a.suffix.len() as u8,
        e_name_index: a.index,
        e_value_size: U16::new(a.value.len() as u16),
    };
    sink.put(head.as_bytes())?;
    sink.put(&a.suffix)?;
    sink.put(&a.value)?;
    sink.align(4)
}

fn put_dirents<W: Write>(sink: &mut Sink<W>, off: &Offsets, list: &[Dirent<'_>]) -> io::Result<()> {
    let mut nameoff = 12 * list.len();
    for e in list {
        let d = crate::erofs::format::Dirent {
            nid: U64::new(nid(off, e.node)),
            nameoff: U16::new(nameoff as u16),
            file_type: e.file_type,
            reserved: 0,
        };
        sink.put(d.as_bytes())?;
        nameoff += e.name.len();
    }
    for e in list {
        sink.put(e.name)?;
    }
    Ok(())
}

/// Writes the image; returns its size.
pub(super) fn write<W: Write>(fs: &FileSystem, plan: &Plan<'_>, out: W) -> Result<u64, WriteError> {
    let off = compute(fs, plan)?;
    let mut sink = Sink {
        out: io::BufWriter::with_capacity(1 << 20, out),
        pos: 0,
    };
    let header = ComposefsHeader {
        magic: U32::new(COMPOSEFS_MAGIC),
        version: U32::new(COMPOSEFS_HEADER_VERSION),
        flags: U32::new(0),
        composefs_version: U32::new(2),
        unused: Default::default(),
    };
    sink.put(header.as_bytes())?;
    sink.zeros(SUPERBLOCK_OFFSET - sink.pos)?;
    let sb = Superblock {
        magic: U32::new(EROFS_MAGIC),
        feature_compat: U32::new(FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER),
        blkszbits: crate::erofs::format::BLOCK_BITS,
        root_nid: U16::new(nid(&off, 0) as u16),
        inos: U64::new(plan.nodes.len() as u64),
        blocks: U32::new((off.end / BLOCK_SIZE) as u32),
        ..Default::default()
    };
    sink.put(sb.as_bytes())?;

    for (i, node) in plan.nodes.iter().enumerate() {
        sink.align(INODE_SLOT_SIZE)?;
        sink.zeros(off.pad_before[i])?;
        debug_assert_eq!(sink.pos, off.inode[i]);
        let inode = fs.inode(node.id);
        let s = shape(fs, node);
        let u = if s.u_is_blkaddr {
            (off.block[i] / BLOCK_SIZE) as u32
        } else {
            s.u
        };
        let xattr_size = node.xattr_size();
        let icount = if xattr_size == 0 {
            0
        } else {
            (xattr_size - 12) / 4 + 1
        };
        let ext = InodeExtended {
            i_format: U16::new(s.layout.format(true)),
            i_xattr_icount: U16::new(icount as u16),
            i_mode: U16::new(s.mode_bits | inode.stat.mode),
            i_size: U64::new(s.size),
            i_u: U32::new(u),
            i_ino: U32::new(nid(&off, i) as u32),
            i_uid: U32::new(inode.stat.uid),
            i_gid: U32::new(inode.stat.gid),
            i_mtime: U64::new(inode.stat.mtime.sec as u64),
            i_mtime_nsec: U32::new(0),
            i_nlink: U32::new(node.nlink),
            ..Default::default()
        };
        sink.put(ext.as_bytes())?;
        if node.has_xattrs {
            let h = XattrIbodyHeader {
                h_name_filter: U32::new(!node.filter),
                h_shared_count: node.shared.len() as u8,
                h_reserved2: [0; 7],
            };
            sink.put(h.as_bytes())?;
            for &id in &node.shared {
                sink.put(&((off.shared[id] / 4) as u32).to_le_bytes())?;
            }
            for a in &node.local {
                put_attr(&mut sink, a)?;
            }
        }
        match s.tail {
            Tail::None => {}
            Tail::Bytes(b) => sink.put(b)?,
            Tail::Dirents(list) => put_dirents(&mut sink, &off, list)?,
            Tail::NullChunk => sink.put(&[0xff; 4])?,
        }
    }
    sink.align(INODE_SLOT_SIZE)?;
    debug_assert_eq!(sink.pos, off.inodes_end);
    for a in &plan.shared {
        put_attr(&mut sink, a)?;
    }
    sink.align(BLOCK_SIZE)?;
    for node in &plan.nodes {
        if let Some(dir) = &node.dir {
            for block in &dir.blocks {
                put_dirents(&mut sink, &off, block)?;
                sink.align(BLOCK_SIZE)?;
            }
        }
    }
    debug_assert_eq!(sink.pos, off.end);
    sink.out.flush()?;
    Ok(sink.pos as u64)
}
