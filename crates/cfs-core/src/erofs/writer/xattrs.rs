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
use std::hash::{BuildHasher, Hash, Hasher};

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

/// One xattr: name = head + tail, value = head + tail.
#[derive(Debug, Clone, Copy)]
pub(super) struct XRef<'a> {
    pub(super) name_head: NameHead,
    pub(super) name: &'a [u8],
    pub(super) value_head: ValueHead,
    pub(super) value: &'a [u8],
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
        XRef {
            name_head: NameHead::None,
            name,
            value_head: ValueHead::None,
            value,
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
        cat_cmp(self.name_parts(), other.name_parts())
    }

    /// EROFS prefix index and the name suffix (two parts: write in order).
    pub(super) fn index_suffix(&self) -> (u8, [&'a [u8]; 2]) {
        match self.name_head {
            NameHead::None => {
                let (index, suffix) = split_name(self.name);
                (index, [b"", suffix])
            }
            NameHead::Escaped => (4, [&ESCAPED_OVERLAY[TRUSTED.len()..], self.name]),
        }
    }

    /// Size of the on-disk entry.
    pub(super) fn entry_size(&self) -> usize {
        let (_, [a, b]) = self.index_suffix();
        entry_size(a.len() + b.len(), self.value_len())
    }

    /// Shared-table order: descending name, then longer value, then
    /// descending value bytes.
    fn cmp_table(&self, other: &Self) -> Ordering {
        cat_cmp(other.name_parts(), self.name_parts())
            .then_with(|| other.value_len().cmp(&self.value_len()))
            .then_with(|| cat_cmp(other.value_parts(), self.value_parts()))
    }
}

impl PartialEq for XRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        cat_eq(self.name_parts(), other.name_parts())
            && cat_eq(self.value_parts(), other.value_parts())
    }
}

impl Eq for XRef<'_> {}

impl Hash for XRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Streaming writes: the hash of the concatenation, whatever the split.
        let (a, b) = self.name_parts();
        state.write(a);
        state.write(b);
        state.write_u8(0xff);
        let (a, b) = self.value_parts();
        state.write(a);
        state.write(b);
    }
}

/// Per distinct pair: entry size and shared-table offset.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// On-disk entry size.
    pub(super) size: u32,
    /// Offset in the shared table, if shared.
    pub(super) offset: Option<u32>,
}

impl Slot {
    /// Whether the pair lives in the shared table.
    pub(super) fn shared(&self) -> bool {
        self.offset.is_some()
    }
}

/// All effective xattrs of the image, by occurrence.
#[derive(Debug)]
pub(super) struct Xattrs<'a> {
    /// Per BFS node, the range of its occurrences in `occ`.
    starts: Vec<u32>,
    /// Slot of each occurrence, per node in ascending name order.
    occ: Vec<u32>,
    /// Per distinct pair.
    pub(super) slots: Vec<Slot>,
    /// The shared pairs in table order.
    pub(super) shared: Vec<XRef<'a>>,
    /// Size of the shared table in bytes.
    pub(super) shared_size: u64,
    /// Whether any inode has a POSIX ACL xattr.
    pub(super) has_acl: bool,
    /// The format version the xattrs were generated for.
    pub(super) version: u32,
}

impl<'a> Xattrs<'a> {
    /// Collects, counts and shares the xattrs of every node.
    pub(super) fn build(
        fs: &'a FileSystem,
        order: &Order,
        version: u32,
    ) -> Result<Self, WriteError> {
        let n = order.nodes.len();
        let mut table = PairTable::with_capacity(n * 2);
        let mut starts = Vec::with_capacity(n + 1);
        let mut occ = Vec::with_capacity(n * 2);
        let mut has_acl = false;
        let mut buf = Vec::new();
        let ctx = rewrite::XattrContext::new(fs, order, version);
        for bfs in 0..n {
            starts.push(occ.len() as u32);
            ctx.collect(bfs, &mut buf)?;
            for x in &buf {
                has_acl |= is_acl_ref(x);
                occ.push(table.insert(*x));
            }
        }
        starts.push(occ.len() as u32);

        let mut shared: Vec<(XRef<'a>, u32)> = table
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.count >= 2)
            .map(|(i, e)| (e.key, i as u32))
            .collect();
        shared.sort_unstable_by(|a, b| a.0.cmp_table(&b.0));
        let mut slots: Vec<Slot> = table
            .entries
            .iter()
            .map(|e| Slot {
                size: e.size,
                offset: None,
            })
            .collect();
        let mut offset = 0u64;
        for (_, slot) in &shared {
            let s = &mut slots[*slot as usize];
            s.offset = Some(offset as u32);
            offset += u64::from(s.size);
        }
        Ok(Xattrs {
            starts,
            occ,
            slots,
            shared: shared.into_iter().map(|(x, _)| x).collect(),
            shared_size: offset,
            has_acl,
            version,
        })
    }

    /// The slots of node `bfs`'s xattrs, in ascending name order.
    pub(super) fn node_slots(&self, bfs: usize) -> &[u32] {
        let start = self.starts[bfs] as usize;
        let end = self.starts[bfs + 1] as usize;
        &self.occ[start..end]
    }

    /// For node `bfs`: (number of shared references, total inline entry size).
    pub(super) fn node_sizes(&self, bfs: usize) -> (usize, usize) {
        let mut shared = 0;
        let mut inline = 0;
        for &slot in self.node_slots(bfs) {
            let s = &self.slots[slot as usize];
            if s.shared() && shared < MAX_SHARED_PER_INODE {
                shared += 1;
            } else {
                inline += s.size as usize;
            }
        }
        (shared, inline)
    }
}

fn is_acl_ref(x: &XRef<'_>) -> bool {
    x.name_head == NameHead::None && is_acl(x.name)
}

#[derive(Debug)]
struct PairEntry<'a> {
    key: XRef<'a>,
    hash: u64,
    count: u32,
    size: u32,
}

/// An open-addressing set of distinct pairs (linear probing over `u32`
/// indexes into `entries`), keyed with a per-process random SipHash so hostile
/// inputs cannot force collisions.
#[derive(Debug)]
struct PairTable<'a> {
    state: RandomState,
    buckets: Vec<u32>,
    entries: Vec<PairEntry<'a>>,
}

const EMPTY: u32 = u32::MAX;

impl<'a> PairTable<'a> {
    fn with_capacity(n: usize) -> Self {
        let buckets = (n.max(8) * 2).next_power_of_two();
        PairTable {
            state: RandomState::new(),
            buckets: vec![EMPTY; buckets],
            entries: Vec::new(),
        }
    }

    /// Counts one use of `key`; returns its slot.
    fn insert(&mut self, key: XRef<'a>) -> u32 {
        let hash = self.state.hash_one(key);
        let mask = self.buckets.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let b = self.buckets[i];
            if b == EMPTY {
                break;
            }
            let e = &mut self.entries[b as usize];
            if e.hash == hash && e.key == key {
                e.count += 1;
                return b;
            }
            i = (i + 1) & mask;
        }
        let slot = self.entries.len() as u32;
        self.entries.push(PairEntry {
            key,
            hash,
            count: 1,
            size: key.entry_size() as u32,
        });
        self.buckets[i] = slot;
        if self.entries.len() * 2 > self.buckets.len() {
            self.grow();
        }
        slot
    }

    fn grow(&mut self) {
        let len = self.buckets.len() * 2;
        let mask = len - 1;
        self.buckets.clear();
        self.buckets.resize(len, EMPTY);
        for (slot, e) in self.entries.iter().enumerate() {
            let mut i = e.hash as usize & mask;
            while self.buckets[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.buckets[i] = slot as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_views_compare_as_bytes() {
        let escaped = XRef {
            name_head: NameHead::Escaped,
            name: b"opaque",
            value_head: ValueHead::None,
            value: b"x",
        };
        let plain = XRef::raw(b"trusted.overlay.overlay.opaque", b"x");
        assert_eq!(escaped, plain);
        let state = RandomState::new();
        assert_eq!(state.hash_one(escaped), state.hash_one(plain));
        assert_eq!(escaped.cmp_name(&plain), Ordering::Equal);
        assert_eq!(escaped.index_suffix().0, 4);
        assert_eq!(escaped.entry_size(), plain.entry_size());
        let redirect = XRef {
            name_head: NameHead::None,
            name: b"trusted.overlay.redirect",
            value_head: ValueHead::Slash,
            value: b"ab/cd",
        };
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
    fn pair_table_counts_and_grows() {
        let names: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("user.{i}").into_bytes())
            .collect();
        let mut t = PairTable::with_capacity(1);
        for round in 0..3 {
            for (i, n) in names.iter().enumerate() {
                assert_eq!(t.insert(XRef::raw(n, b"v")), i as u32, "round {round}");
            }
        }
        assert!(t.entries.iter().all(|e| e.count == 3));
    }
}
