//! Effective xattrs of the image's inodes, their sharing, and the shared table.
//!
//! An xattr is a (full name, value) pair ([`XRef`]); the effective set of an
//! inode is computed by [`super::rewrite::XattrContext::collect`].
//!
//! Sharing mirrors C `compute_erofs_shared_xattrs`:
//! - every (name, value) pair is counted over all BFS nodes; pairs used by two
//!   or more inodes are *shared*;
//! - the shared table holds them sorted **descending** by name (`strcmp`),
//!   then by value length (longer first), then by value bytes (C
//!   `xattrs_ht_sort`), each entry padded to 4 bytes (C `write_erofs_xattr`);
//! - per inode, walking its xattrs in ascending name order, the first 128
//!   (`EROFS_XATTR_LONG_PREFIX`) shared ones are referenced by id, any further
//!   ones are stored inline.
//!
//! Pairs are counted by sorting (hash, occurrence) keys, not by probing a hash
//! table: memory is read sequentially, and equal hashes are split into equal
//! pairs by comparing bytes, so the worst case stays O(n log n) whatever the
//! collisions.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::WriteError;
use super::order::Order;
use super::rewrite;
use super::xref::XRef;
use crate::tree::FileSystem;

/// Shared references per inode beyond which shared pairs are stored inline.
pub(super) const MAX_SHARED_PER_INODE: usize = 128;

/// Marker for "not shared".
const NONE: u32 = u32::MAX;
/// Size of the xattr body header.
const XATTR_HEADER: usize = 12;

/// One distinct (name, value) pair.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// The first occurrence of the pair.
    first: u32,
    /// Number of inodes carrying the pair.
    count: u32,
    /// Offset in the shared table, or [`NONE`].
    offset: u32,
}

/// The xattrs of one node.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NodeXattrs {
    /// First occurrence.
    start: u32,
    /// Number of xattrs.
    len: u32,
    /// Size of the xattr body (0 without xattrs).
    pub(super) body_size: u32,
    /// Number of shared references.
    pub(super) shared: u8,
}

/// All effective xattrs of the image, by occurrence.
#[derive(Debug)]
pub(super) struct Xattrs<'a> {
    /// Per BFS node.
    pub(super) nodes: Vec<NodeXattrs>,
    /// Occurrences, per node in ascending name order.
    occ: Vec<XRef<'a>>,
    /// Per occurrence, the shared table offset if the node references it
    /// there, else [`NONE`].
    shared_at: Vec<u32>,
    /// The shared pairs in table order.
    pub(super) shared: Vec<XRef<'a>>,
    /// Size of the shared table in bytes.
    pub(super) shared_size: u64,
    /// Whether any inode has a POSIX ACL xattr.
    pub(super) has_acl: bool,
}

/// An xattr of a node as the inode writer needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct NodeXattr<'a> {
    /// The xattr.
    pub(super) x: XRef<'a>,
    /// Its offset in the shared table if the node references it there.
    pub(super) shared_offset: Option<u32>,
}

impl<'a> Xattrs<'a> {
    /// Collects, counts and shares the xattrs of every node.
    ///
    /// Inodes are visited in arena (memory) order. Pairs are counted by
    /// sorting (hash, occurrence) keys rather than probing a hash table, so
    /// memory is touched sequentially; equal hashes are split into equal pairs
    /// by sorting them by their bytes, which keeps the worst case at
    /// O(n log n) whatever the hash collisions.
    pub(super) fn build(
        fs: &'a FileSystem,
        order: &Order<'a>,
        version: u32,
        max_xattrs: usize,
    ) -> Result<Self, WriteError> {
        let n = order.nodes.len();
        let ctx = rewrite::XattrContext::new(fs, order, version);
        let seed = RandomState::new().hash_one(0x636673u64);
        let mut nodes = vec![NodeXattrs::default(); n];
        let mut occ: Vec<XRef<'a>> = Vec::with_capacity(max_xattrs);
        let mut keys: Vec<u64> = Vec::with_capacity(max_xattrs);
        let mut has_acl = false;
        let mut buf = Vec::new();
        let arena = order.index_of.iter().copied();
        for bfs in arena.chain(order.stub_index.iter().copied()) {
            if bfs == NONE {
                continue;
            }
            ctx.collect(bfs as usize, &mut buf)?;
            nodes[bfs as usize].start = occ.len() as u32;
            nodes[bfs as usize].len = buf.len() as u32;
            for &x in &buf {
                has_acl |= x.is_acl();
                keys.push(key(x.hash(seed), occ.len()));
                occ.push(x);
            }
        }
        let (slot_of, mut slots) = count_pairs(&occ, keys);

        let mut shared: Vec<u32> = (0..slots.len() as u32)
            .filter(|&i| slots[i as usize].count >= 2)
            .collect();
        shared.sort_unstable_by(|&a, &b| {
            let xa = occ[slots[a as usize].first as usize];
            let xb = occ[slots[b as usize].first as usize];
            xa.cmp_table(&xb)
        });
        let mut offset = 0u64;
        for &i in &shared {
            let s = &mut slots[i as usize];
            s.offset = offset as u32;
            offset += occ[s.first as usize].entry_size() as u64;
        }
        let shared = shared
            .iter()
            .map(|&i| occ[slots[i as usize].first as usize])
            .collect();

        // Per node, in collection (memory) order: which xattrs are referenced
        // from the shared table (the first 128 shared ones), and the body size.
        let mut shared_at = slot_of;
        let arena = order.index_of.iter().copied();
        for bfs in arena.chain(order.stub_index.iter().copied()) {
            let Some(node) = nodes.get_mut(bfs as usize) else {
                continue;
            };
            let mut n_shared = 0;
            let mut inline = 0;
            let range = node.start as usize..(node.start + node.len) as usize;
            for (x, at) in occ[range.clone()].iter().zip(&mut shared_at[range]) {
                let offset = slots[*at as usize].offset;
                if offset != NONE && n_shared < MAX_SHARED_PER_INODE {
                    n_shared += 1;
                    *at = offset;
                } else {
                    inline += x.entry_size();
                    *at = NONE;
                }
            }
            if node.len > 0 {
                node.shared = n_shared as u8;
                node.body_size = (XATTR_HEADER + 4 * n_shared + inline) as u32;
            }
        }
        Ok(Xattrs {
            nodes,
            occ,
            shared_at,
            shared,
            shared_size: offset,
            has_acl,
        })
    }

    /// The xattrs of node `bfs` in ascending name order, each with its shared
    /// table offset if the node references it there (the first 128 shared
    /// ones).
    pub(super) fn node(&self, bfs: usize) -> impl Iterator<Item = NodeXattr<'a>> + '_ {
        let node = self.nodes[bfs];
        let range = node.start as usize..(node.start + node.len) as usize;
        self.occ[range.clone()]
            .iter()
            .zip(&self.shared_at[range])
            .map(|(&x, &at)| NodeXattr {
                x,
                shared_offset: (at != NONE).then_some(at),
            })
    }
}

/// Sort key of occurrence `occ`: 32 hash bits above the occurrence index.
fn key(hash: u64, occ: usize) -> u64 {
    (hash & 0xffff_ffff_0000_0000) | occ as u64
}

/// The occurrence index of a key.
fn key_occ(key: u64) -> usize {
    key as u32 as usize
}

/// Sorts keys by their hash bits, stably (LSD radix sort, 4 passes of 8 bits),
/// so equal hashes keep ascending occurrence order.
fn sort_keys(keys: &mut Vec<u64>) {
    let mut tmp = vec![0u64; keys.len()];
    for shift in [32, 40, 48, 56] {
        let mut start = [0usize; 256];
        for &k in keys.iter() {
            start[((k >> shift) & 0xff) as usize] += 1;
        }
        let mut sum = 0;
        for c in &mut start {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for &k in keys.iter() {
            let b = &mut start[((k >> shift) & 0xff) as usize];
            tmp[*b] = k;
            *b += 1;
        }
        std::mem::swap(keys, &mut tmp);
    }
}

/// Assigns every occurrence its distinct pair.
fn count_pairs(occ: &[XRef<'_>], mut keys: Vec<u64>) -> (Vec<u32>, Vec<Slot>) {
    sort_keys(&mut keys);
    let mut slot_of = vec![0u32; occ.len()];
    let mut slots = Vec::new();
    let new_slot = |first: usize, count: usize, slots: &mut Vec<Slot>| {
        slots.push(Slot {
            first: first as u32,
            count: count as u32,
            offset: NONE,
        });
        slots.len() as u32 - 1
    };
    let mut rest = &mut keys[..];
    while let Some(&head) = rest.first() {
        let hash = head >> 32;
        let run = rest
            .iter()
            .position(|k| k >> 32 != hash)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at_mut(run);
        rest = tail;
        if let [k] = group {
            slot_of[key_occ(*k)] = new_slot(key_occ(*k), 1, &mut slots);
            continue;
        }
        // Same hash: usually one pair used by several inodes.
        let x = occ[key_occ(group[0])];
        if group.iter().all(|&k| occ[key_occ(k)] == x) {
            let slot = new_slot(key_occ(group[0]), group.len(), &mut slots);
            for &k in group.iter() {
                slot_of[key_occ(k)] = slot;
            }
            continue;
        }
        // A real collision: split the group into runs of equal pairs.
        group.sort_unstable_by(|&a, &b| {
            let (xa, xb) = (occ[key_occ(a)], occ[key_occ(b)]);
            xa.cmp_pair(&xb).then(a.cmp(&b))
        });
        let mut same = &group[..];
        while let Some(&first) = same.first() {
            let x = occ[key_occ(first)];
            let k = same
                .iter()
                .position(|&k| occ[key_occ(k)] != x)
                .unwrap_or(same.len());
            let slot = new_slot(key_occ(first), k, &mut slots);
            for &key in &same[..k] {
                slot_of[key_occ(key)] = slot;
            }
            same = &same[k..];
        }
    }
    (slot_of, slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_counted() {
        let names: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("user.{i}").into_bytes())
            .collect();
        let mut occ = Vec::new();
        for _ in 0..3 {
            for n in &names {
                occ.push(XRef::raw(n, b"v"));
            }
        }
        occ.push(XRef::raw(b"user.x", b"1"));
        occ.push(XRef::raw(b"user.x", b"2"));
        // A constant hash: every pair collides and must still be told apart.
        for seed in [Some(1), None] {
            let keys = occ
                .iter()
                .enumerate()
                .map(|(i, x)| key(seed.map_or(7 << 32, |s| x.hash(s)), i))
                .collect();
            let (slot_of, slots) = count_pairs(&occ, keys);
            assert_eq!(slots.len(), 1002);
            for i in 0..1000 {
                assert_eq!(slot_of[i], slot_of[i + 1000]);
                assert_eq!(slots[slot_of[i] as usize].count, 3);
            }
            assert_ne!(slot_of[3000], slot_of[3001]);
            assert_eq!(slots[slot_of[3000] as usize].count, 1);
        }
    }
}
