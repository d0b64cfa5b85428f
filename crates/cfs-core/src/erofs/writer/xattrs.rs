//! Effective xattrs of the image's inodes, their sharing, and the shared table.
//!
//! An xattr is a (full name, value) pair; the effective set of an inode is
//! computed by [`super::rewrite::collect`]. Names and values are views
//! ([`XRef`]) into the tree plus a static head (the escaped-overlay prefix, the
//! metacopy header, the redirect's `/`), so nothing is copied.
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
//! Entry size: `round_up(4 + len(name suffix) + len(value), 4)` where the
//! suffix is the name without its prefix (C `xattr_erofs_entry_size`).

use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::WriteError;
use super::order::Order;
use super::rewrite;
use crate::erofs::xattr::{entry_size, is_acl, split_name};
use crate::tree::FileSystem;

/// Escaped form of `trusted.overlay.`: user overlay xattrs get one more level.
pub(super) const ESCAPED_OVERLAY: &[u8] = b"trusted.overlay.overlay.";
/// The `trusted.` prefix (EROFS name index 4).
const TRUSTED: &[u8] = b"trusted.";
/// Shared references per inode beyond which shared pairs are stored inline.
pub(super) const MAX_SHARED_PER_INODE: usize = 128;

/// Static bytes in front of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameHead {
    /// None: the name is the tail.
    None,
    /// `trusted.overlay.overlay.` + tail.
    Escaped,
}

/// Static bytes in front of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueHead {
    /// None: the value is the tail.
    None,
    /// `/` + tail (an overlayfs redirect).
    Slash,
    /// `00 24 00 01` + tail (a SHA-256 metacopy digest).
    Meta256,
    /// `00 44 00 02` + tail (a SHA-512 metacopy digest).
    Meta512,
}

impl NameHead {
    fn bytes(self) -> &'static [u8] {
        match self {
            NameHead::None => b"",
            NameHead::Escaped => ESCAPED_OVERLAY,
        }
    }
}

impl ValueHead {
    fn bytes(self) -> &'static [u8] {
        match self {
            ValueHead::None => b"",
            ValueHead::Slash => b"/",
            ValueHead::Meta256 => &[0x00, 0x24, 0x00, 0x01],
            ValueHead::Meta512 => &[0x00, 0x44, 0x00, 0x02],
        }
    }
}

/// One xattr: name = head + tail, value = head + tail, with the EROFS prefix
/// index of the name and the length of the prefix it strips from the tail.
#[derive(Debug, Clone, Copy)]
pub(super) struct XRef<'a> {
    name_head: NameHead,
    pub(super) name: &'a [u8],
    value_head: ValueHead,
    value: &'a [u8],
    index: u8,
    prefix: u8,
}

fn cat_len(a: &[u8], b: &[u8]) -> usize {
    a.len() + b.len()
}

fn cat_eq(a: (&[u8], &[u8]), b: (&[u8], &[u8])) -> bool {
    if cat_len(a.0, a.1) != cat_len(b.0, b.1) {
        return false;
    }
    if a.0 == b.0 {
        return a.1 == b.1;
    }
    a.0.iter().chain(a.1).eq(b.0.iter().chain(b.1))
}

fn cat_cmp(a: (&[u8], &[u8]), b: (&[u8], &[u8])) -> Ordering {
    if a.0.is_empty() && b.0.is_empty() {
        return a.1.cmp(b.1);
    }
    a.0.iter().chain(a.1).cmp(b.0.iter().chain(b.1))
}

impl<'a> XRef<'a> {
    /// A plain name/value pair.
    pub(super) fn raw(name: &'a [u8], value: &'a [u8]) -> Self {
        let (index, suffix) = split_name(name);
        XRef {
            name_head: NameHead::None,
            name,
            value_head: ValueHead::None,
            value,
            index,
            prefix: (name.len() - suffix.len()) as u8,
        }
    }

    /// `trusted.overlay.overlay.` + `rest` = `value`.
    pub(super) fn escaped(rest: &'a [u8], value: &'a [u8]) -> Self {
        XRef {
            name_head: NameHead::Escaped,
            name: rest,
            value_head: ValueHead::None,
            value,
            index: 4,
            prefix: 0,
        }
    }

    /// `name` = `head` + `value`.
    pub(super) fn with_head(name: &'a [u8], head: ValueHead, value: &'a [u8]) -> Self {
        XRef {
            value_head: head,
            ..XRef::raw(name, value)
        }
    }

    fn name_parts(&self) -> (&'a [u8], &'a [u8]) {
        (self.name_head.bytes(), self.name)
    }

    fn value_parts(&self) -> (&'a [u8], &'a [u8]) {
        (self.value_head.bytes(), self.value)
    }

    /// The value's two parts (write them in order).
    pub(super) fn value_bytes(&self) -> [&'a [u8]; 2] {
        [self.value_head.bytes(), self.value]
    }

    /// Value length.
    pub(super) fn value_len(&self) -> usize {
        self.value_head.bytes().len() + self.value.len()
    }

    /// Name order (`strcmp` of the full names).
    pub(super) fn cmp_name(&self, other: &Self) -> Ordering {
        if self.name_head == other.name_head {
            return self.name.cmp(other.name);
        }
        cat_cmp(self.name_parts(), other.name_parts())
    }

    /// Value order (`memcmp` of the full values, shorter first on a tie).
    fn cmp_value(&self, other: &Self) -> Ordering {
        if self.value_head == other.value_head {
            return self.value.cmp(other.value);
        }
        cat_cmp(self.value_parts(), other.value_parts())
    }

    /// EROFS prefix index and the name suffix (two parts: write in order).
    pub(super) fn index_suffix(&self) -> (u8, [&'a [u8]; 2]) {
        match self.name_head {
            NameHead::None => (self.index, [b"", &self.name[usize::from(self.prefix)..]]),
            NameHead::Escaped => (self.index, [&ESCAPED_OVERLAY[TRUSTED.len()..], self.name]),
        }
    }

    /// The static head of the full name.
    pub(super) fn full_name_head(&self) -> &'static [u8] {
        self.name_head.bytes()
    }

    /// Whether the full names are equal.
    pub(super) fn same_name(&self, other: &Self) -> bool {
        if self.name_head == other.name_head {
            return self.name == other.name;
        }
        cat_eq(self.name_parts(), other.name_parts())
    }

    /// Size of the on-disk entry.
    pub(super) fn entry_size(&self) -> usize {
        let (_, [a, b]) = self.index_suffix();
        entry_size(a.len() + b.len(), self.value_len())
    }

    /// Shared-table order: descending name, then longer value, then
    /// descending value bytes.
    fn cmp_table(&self, other: &Self) -> Ordering {
        other
            .cmp_name(self)
            .then_with(|| other.value_len().cmp(&self.value_len()))
            .then_with(|| other.cmp_value(self))
    }
}

impl PartialEq for XRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        let value_eq = if self.value_head == other.value_head {
            self.value == other.value
        } else {
            cat_eq(self.value_parts(), other.value_parts())
        };
        value_eq && self.same_name(other)
    }
}

impl Eq for XRef<'_> {}

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
                has_acl |= is_acl_ref(&x);
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

fn is_acl_ref(x: &XRef<'_>) -> bool {
    (x.index == 2 || x.index == 3) && x.name_head == NameHead::None && is_acl(x.name)
}

/// A fast seeded 64-bit hash over a byte stream given in pieces; equal streams
/// hash equally however they are split.
struct StreamHash {
    acc: u64,
    word: u64,
    fill: u32,
    len: u64,
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl StreamHash {
    fn new(seed: u64) -> Self {
        StreamHash {
            acc: seed,
            word: 0,
            fill: 0,
            len: 0,
        }
    }

    fn mix(&mut self, w: u64) {
        self.acc = (self.acc ^ w).wrapping_mul(MUL).rotate_left(31);
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while self.fill != 0 && !bytes.is_empty() {
            self.word |= u64::from(bytes[0]) << (8 * self.fill);
            self.fill = (self.fill + 1) % 8;
            bytes = &bytes[1..];
            if self.fill == 0 {
                let w = self.word;
                self.mix(w);
                self.word = 0;
            }
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.mix(u64::from_le_bytes(b));
        }
        for &b in words.remainder() {
            self.word |= u64::from(b) << (8 * self.fill);
            self.fill += 1;
        }
    }

    fn finish(mut self) -> u64 {
        let (w, len) = (self.word, self.len);
        self.mix(w ^ len.rotate_left(56));
        let mut h = self.acc;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl XRef<'_> {
    /// Seeded hash of the pair (consistent with `==`).
    fn hash(&self, seed: u64) -> u64 {
        let mut h = StreamHash::new(seed);
        h.write(self.name_head.bytes());
        h.write(self.name);
        let name_len = h.len;
        h.write(self.value_head.bytes());
        h.write(self.value);
        h.mix(name_len);
        h.finish()
    }

    /// A total order of pairs by their bytes.
    fn cmp_pair(&self, other: &Self) -> Ordering {
        self.cmp_name(other).then_with(|| self.cmp_value(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_views_compare_as_bytes() {
        let escaped = XRef::escaped(b"opaque", b"x");
        let plain = XRef::raw(b"trusted.overlay.overlay.opaque", b"x");
        assert_eq!(escaped, plain);
        assert_eq!(escaped.hash(9), plain.hash(9));
        assert_eq!(escaped.cmp_name(&plain), Ordering::Equal);
        assert_eq!(escaped.index_suffix().0, 4);
        assert_eq!(escaped.entry_size(), plain.entry_size());
        let redirect = XRef::with_head(b"trusted.overlay.redirect", ValueHead::Slash, b"ab/cd");
        assert_eq!(redirect, XRef::raw(b"trusted.overlay.redirect", b"/ab/cd"));
        assert_ne!(redirect, XRef::raw(b"trusted.overlay.redirect", b"/ab/ce"));
    }

    #[test]
    fn table_order_is_descending() {
        let mut v = [
            XRef::raw(b"user.a", b"1"),
            XRef::raw(b"user.z", b"1"),
            XRef::raw(b"trusted.overlay.metacopy", b""),
            XRef::raw(b"user.b", b"1"),
            XRef::raw(b"trusted.overlay.redirect", b"/x"),
            XRef::raw(b"user.b", b"22"),
            XRef::raw(b"user.b", b"3"),
        ];
        v.sort_by(|a, b| a.cmp_table(b));
        let got: Vec<(&[u8], &[u8])> = v.iter().map(|x| (x.name, x.value)).collect();
        let want: Vec<(&[u8], &[u8])> = vec![
            (b"user.z", b"1"),
            (b"user.b", b"22"),
            (b"user.b", b"3"),
            (b"user.b", b"1"),
            (b"user.a", b"1"),
            (b"trusted.overlay.redirect", b"/x"),
            (b"trusted.overlay.metacopy", b""),
        ];
        assert_eq!(got, want);
    }

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

    #[test]
    fn stream_hash_ignores_splits() {
        let whole = b"trusted.overlay.overlay.whiteouts";
        for cut in 0..whole.len() {
            let mut a = StreamHash::new(5);
            a.write(&whole[..cut]);
            a.write(&whole[cut..]);
            let mut b = StreamHash::new(5);
            b.write(whole);
            assert_eq!(a.finish(), b.finish());
        }
    }
}
