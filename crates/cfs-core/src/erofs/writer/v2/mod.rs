//! EROFS image writer for composefs-rs's format **V2** (`composefs_version` 2),
//! byte-identical to composefs-rs 0.9.4 for the same tree.
//!
//! V2 is composefs-rs's original layout, still what existing bootc systems
//! boot by (`composefs=<hex>`). It shares the header, superblock, xattr entry
//! and directory encodings with V0/V1 (see [`crate::erofs::format`]) and
//! differs in everything else:
//!
//! | aspect | V2 |
//! |---|---|
//! | header | `composefs_version` 2, flags 0 |
//! | superblock | `build_time` 0, `xattr_blkaddr` 0, `feature_incompat` 0 |
//! | inodes | always extended (64 bytes), `i_ino` = nid, `i_mtime_nsec` 0 |
//! | order | depth-first pre-order: a directory, then each entry in name order, a subdirectory's whole subtree before the next entry; a hard-linked inode at its first occurrence |
//! | directory entries | `.` and `..` sorted among the names by bytes; up to 4096 bytes per block, a remainder over 2048 bytes gets a block of its own, the rest is the inline tail |
//! | root | no whiteout stubs, no `opaque` xattr; `..` of the root is the root |
//! | whiteouts | stored as they are (character device 0:0) |
//! | xattrs | prefixes matched from the highest index down (`lustre.` = 5 is used); `trusted.overlay.*` escaped to `trusted.overlay.overlay.*`; external files get `trusted.overlay.metacopy` then `trusted.overlay.redirect` first, then the inode's own xattrs in name order |
//! | shared xattrs | every (prefix, suffix, value) used more than once, table ascending by (prefix index, suffix, value); ids are absolute byte offsets ÷ 4; an inode lists its shared ids in the order its xattrs were added, the unshared ones stay inline in that order |
//! | file data | inline content and symlink targets are stored whole as the inline tail (`FLAT_INLINE`); external files are `CHUNK_BASED` with `i_u` = 31 and one null chunk index (none when the file has no digest) |
//! | tail padding | when the last metadata byte and the byte after the tail (`start + size % 4096`) fall in different blocks, zeros up to the end of the metadata's block are inserted before the inode, then the position is realigned to 32 |
//! | data blocks | only directory blocks, after the shared xattr table, block aligned, in inode order |
//!
//! Unlike composefs-rs, trees whose V2 image would be unreadable are refused:
//! an inline tail that does not fit in one block with its inode, and
//! hard-linked whiteouts.

mod emit;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Write;

use super::check;
use super::{ImageSummary, WriteError};
use crate::erofs::format::XATTR_FILTER_SEED;
use crate::erofs::format::{BLOCK_SIZE, file_type};
use crate::erofs::xattr::xxh32;
use crate::tree::{FileSystem, InodeId, InodeKind, RegularFile};

/// Prefixes in the order composefs-rs V2 tries them (highest index first).
const PREFIXES: [(u8, &[u8]); 6] = [
    (6, b"security."),
    (5, b"lustre."),
    (4, b"trusted."),
    (3, b"system.posix_acl_default"),
    (2, b"system.posix_acl_access"),
    (1, b"user."),
];

const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
const OVERLAY_ESCAPED: &[u8] = b"trusted.overlay.overlay.";

/// Size of the inline part of an extended inode.
const INODE_SIZE: usize = 64;

/// Writes the V2 image of `fs` to `out`; returns its size and inode count.
///
/// Everything is laid out before the first byte is written, so an error
/// leaves `out` untouched.
pub fn write_image_v2<W: Write>(fs: &FileSystem, out: W) -> Result<ImageSummary, WriteError> {
    check::tree(fs)?;
    check::depth(fs)?;
    let plan = Plan::build(fs)?;
    let size = emit::write(fs, &plan, out)?;
    Ok(ImageSummary {
        size,
        composefs_version: 2,
        inodes: plan.nodes.len() as u64,
        has_acl: false,
    })
}

/// One xattr as stored: prefix index, name suffix, value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Attr {
    index: u8,
    suffix: Box<[u8]>,
    value: Box<[u8]>,
}

impl Attr {
    fn new(name: &[u8], value: &[u8]) -> Self {
        let (index, suffix) = PREFIXES
            .iter()
            .find_map(|&(i, p)| name.strip_prefix(p).map(|s| (i, s)))
            .unwrap_or((0, name));
        Attr {
            index,
            suffix: suffix.into(),
            value: value.into(),
        }
    }

    /// Size on disk: entry header, suffix, value, padded to 4.
    fn size(&self) -> usize {
        (4 + self.suffix.len() + self.value.len()).next_multiple_of(4)
    }
}

/// A directory entry of the image.
#[derive(Debug)]
pub(super) struct Dirent<'a> {
    name: &'a [u8],
    node: usize,
    file_type: u8,
}

/// The content of a directory split into whole blocks and an inline tail.
#[derive(Debug, Default)]
pub(super) struct DirLayout<'a> {
    blocks: Vec<Vec<Dirent<'a>>>,
    inline: Vec<Dirent<'a>>,
    /// Bytes of the inline tail.
    inline_len: usize,
}

/// One inode of the image, in image order.
#[derive(Debug)]
pub(super) struct Node<'a> {
    id: InodeId,
    nlink: u32,
    dir: Option<DirLayout<'a>>,
    /// Shared xattr ids (indexes into `Plan::shared`), then inline xattrs.
    shared: Vec<usize>,
    local: Vec<Attr>,
    has_xattrs: bool,
    filter: u32,
}

impl Node<'_> {
    /// Size of the xattr body (0 without xattrs).
    fn xattr_size(&self) -> usize {
        if !self.has_xattrs {
            return 0;
        }
        12 + 4 * self.shared.len() + self.local.iter().map(Attr::size).sum::<usize>()
    }
}

/// The image's inodes and shared xattr table.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    nodes: Vec<Node<'a>>,
    shared: Vec<Attr>,
}

fn entry_type(kind: &InodeKind) -> u8 {
    match kind {
        InodeKind::Directory(_) => file_type::DIR,
        InodeKind::Regular(_) => file_type::REG_FILE,
        InodeKind::Symlink(_) => file_type::SYMLINK,
        InodeKind::CharDevice(_) => file_type::CHRDEV,
        InodeKind::BlockDevice(_) => file_type::BLKDEV,
        InodeKind::Fifo => file_type::FIFO,
        InodeKind::Socket => file_type::SOCK,
    }
}

impl<'a> Plan<'a> {
    fn build(fs: &'a FileSystem) -> Result<Self, WriteError> {
        let links = link_counts(fs);
        let mut plan = Plan {
            nodes: Vec::with_capacity(fs.len()),
            shared: Vec::new(),
        };
        let mut node_of: Vec<Option<usize>> = vec![None; fs.len()];
        plan.collect(fs, &links, &mut node_of)?;
        plan.share();
        Ok(plan)
    }

    /// Depth-first pre-order, with an explicit stack (trees may be 2048 deep).
    fn collect(
        &mut self,
        fs: &'a FileSystem,
        links: &[u32],
        node_of: &mut [Option<usize>],
    ) -> Result<(), WriteError> {
        struct Frame<'a> {
            dir: InodeId,
            me: usize,
            parent: usize,
            next: usize,
            entries: Vec<Dirent<'a>>,
        }
        let root = self.push(fs, fs.root(), 2)?;
        node_of[fs.root().index()] = Some(root);
        let mut stack = vec![Frame {
            dir: fs.root(),
            me: root,
            parent: root,
            next: 0,
            entries: Vec::new(),
        }];
        while let Some(frame) = stack.last_mut() {
            let entries = fs.directory(frame.dir).map_or(&[][..], |d| d.entries());
            let Some(entry) = entries.get(frame.next) else {
                let Some(done) = stack.pop() else { break };
                let mut list = done.entries;
                list.push(Dirent {
                    name: b".",
                    node: done.me,
                    file_type: file_type::DIR,
                });
                list.push(Dirent {
                    name: b"..",
                    node: done.parent,
                    file_type: file_type::DIR,
                });
                list.sort_unstable_by(|a, b| a.name.cmp(b.name));
                let nlink = list
                    .iter()
                    .filter(|e| e.file_type == file_type::DIR)
                    .count();
                let node = &mut self.nodes[done.me];
                node.nlink = u32::try_from(nlink).unwrap_or(u32::MAX);
                node.dir = Some(split_entries(list));
                continue;
            };
            frame.next += 1;
            let child = fs.inode(entry.inode);
            let ft = entry_type(&child.kind);
            if child.kind.is_whiteout() && links[entry.inode.index()] > 1 {
                return Err(WriteError::HardlinkedWhiteout {
                    path: check::path_of(fs, entry.inode),
                });
            }
            let idx = match node_of[entry.inode.index()] {
                Some(i) => i,
                None => {
                    let i = self.push(fs, entry.inode, links[entry.inode.index()])?;
                    node_of[entry.inode.index()] = Some(i);
                    if matches!(child.kind, InodeKind::Directory(_)) {
                        let me = frame.me;
                        let name: &'a [u8] = &entry.name;
                        frame.entries.push(Dirent {
                            name,
                            node: i,
                            file_type: ft,
                        });
                        stack.push(Frame {
                            dir: entry.inode,
                            me: i,
                            parent: me,
                            next: 0,
                            entries: Vec::new(),
                        });
                        continue;
                    }
                    i
                }
            };
            frame.entries.push(Dirent {
                name: &entry.name,
                node: idx,
                file_type: ft,
            });
        }
        Ok(())
    }

    /// Appends the node of inode `id` with its xattrs, all inline for now.
    fn push(&mut self, fs: &FileSystem, id: InodeId, nlink: u32) -> Result<usize, WriteError> {
        let inode = fs.inode(id);
        let mut local = Vec::new();
        if let InodeKind::Regular(RegularFile::External(ext)) = &inode.kind {
            match &ext.digest {
                Some(d) => {
                    let mut value = vec![0u8, (4 + d.as_bytes().len()) as u8, 0];
                    value.push(d.algorithm().kernel_id());
                    value.extend_from_slice(d.as_bytes());
                    local.push(Attr::new(b"trusted.overlay.metacopy", &value));
                    let redirect = format!("/{}", d.object_path());
                    local.push(Attr::new(b"trusted.overlay.redirect", redirect.as_bytes()));
                }
                None => {
                    local.push(Attr::new(b"trusted.overlay.metacopy", b""));
                    if let Some(p) = &ext.payload {
                        let mut redirect = b"/".to_vec();
                        redirect.extend_from_slice(p);
                        local.push(Attr::new(b"trusted.overlay.redirect", &redirect));
                    }
                }
            }
        }
        let mut own: Vec<_> = inode.stat.xattrs.iter().collect();
        own.sort_by(|a, b| a.name.cmp(&b.name));
        for x in own {
            if let Some(rest) = x.name.strip_prefix(OVERLAY_PREFIX) {
                let mut name = OVERLAY_ESCAPED.to_vec();
                name.extend_from_slice(rest);
                local.push(Attr::new(&name, &x.value));
            } else {
                local.push(Attr::new(&x.name, &x.value));
            }
        }
        for a in &local {
            if a.suffix.len() > 255 || a.value.len() > usize::from(u16::MAX) {
                return Err(WriteError::BadXattrName {
                    path: check::path_of(fs, id),
                    name: String::from_utf8_lossy(&a.suffix).into_owned(),
                });
            }
        }
        let filter = local.iter().fold(0u32, |f, a| {
            f | 1
                << (xxh32(
                    &a.suffix,
                    XATTR_FILTER_SEED.wrapping_add(u32::from(a.index)),
                ) % 32)
        });
        self.nodes.push(Node {
            id,
            nlink,
            dir: None,
            shared: Vec::new(),
            has_xattrs: !local.is_empty(),
            local,
            filter,
        });
        Ok(self.nodes.len() - 1)
    }

    /// Moves every xattr used more than once into the shared table.
    fn share(&mut self) {
        let mut counts: HashMap<&Attr, usize> = HashMap::new();
        for node in &self.nodes {
            for a in &node.local {
                *counts.entry(a).or_default() += 1;
            }
        }
        let mut shared: Vec<Attr> = counts
            .into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(a, _)| a.clone())
            .collect();
        shared.sort_unstable();
        if shared.is_empty() {
            return;
        }
        let index: HashMap<&Attr, usize> = shared.iter().enumerate().map(|(i, a)| (a, i)).collect();
        for node in &mut self.nodes {
            let mut ids = Vec::new();
            node.local.retain(|a| match index.get(a) {
                Some(&i) => {
                    ids.push(i);
                    false
                }
                None => true,
            });
            node.shared = ids;
        }
        drop(index);
        self.shared = shared;
    }
}

/// Number of directory entries naming each inode (the root counts once).
fn link_counts(fs: &FileSystem) -> Vec<u32> {
    let mut links = vec![0u32; fs.len()];
    links[fs.root().index()] = 1;
    for inode in fs.inodes() {
        if let InodeKind::Directory(d) = &inode.kind {
            for e in d.entries() {
                links[e.inode.index()] = links[e.inode.index()].saturating_add(1);
            }
        }
    }
    links
}

/// Splits sorted entries into 4096-byte blocks and an inline tail of at most
/// 2048 bytes (composefs-rs's rule).
fn split_entries(list: Vec<Dirent<'_>>) -> DirLayout<'_> {
    let mut out = DirLayout::default();
    let mut rest = Vec::new();
    let mut bytes = 0usize;
    for e in list {
        let size = 12 + e.name.len();
        bytes += size;
        if bytes <= BLOCK_SIZE {
            rest.push(e);
        } else {
            out.blocks.push(std::mem::take(&mut rest));
            rest.push(e);
            bytes = size;
        }
    }
    if bytes > BLOCK_SIZE / 2 {
        out.blocks.push(rest);
    } else {
        out.inline = rest;
        out.inline_len = bytes;
    }
    out
}
