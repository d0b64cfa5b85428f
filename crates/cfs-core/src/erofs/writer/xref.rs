//! One extended attribute of the image as a borrowed view.
//!
//! The rewrite (see [`super::rewrite`]) never copies names or values: an
//! [`XRef`] is a name and a value, each a static *head* followed by bytes
//! borrowed from the tree:
//!
//! | head | bytes | used for |
//! |---|---|---|
//! | `trusted.overlay.overlay.` | rest of the user's `trusted.overlay.<rest>` | escaped user overlay xattrs |
//! | `/` | object path | `trusted.overlay.redirect` |
//! | `00 24 00 01` / `00 44 00 02` | SHA-256 / SHA-512 digest | `trusted.overlay.metacopy` |
//!
//! Equality, ordering and hashing are those of the concatenated bytes, so a
//! pair compares the same however it is split. Names sort like C `strcmp`.
//! The EROFS prefix index and suffix of a name follow C
//! `xattr_erofs_entry_index` (see [`crate::erofs::xattr::split_name`]); the
//! on-disk entry is `round_up(4 + len(suffix) + len(value), 4)` bytes (C
//! `xattr_erofs_entry_size`).

use std::cmp::Ordering;

use crate::erofs::xattr::{entry_size, is_acl, split_name};

/// Escaped form of `trusted.overlay.`: user overlay xattrs get one more level.
pub(super) const ESCAPED_OVERLAY: &[u8] = b"trusted.overlay.overlay.";
/// The `trusted.` prefix (EROFS name index 4).
const TRUSTED: &[u8] = b"trusted.";

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
    pub(super) fn cmp_table(&self, other: &Self) -> Ordering {
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
    /// Whether this is a POSIX ACL xattr (sets the header's ACL flag).
    pub(super) fn is_acl(&self) -> bool {
        (self.index == 2 || self.index == 3)
            && self.name_head == NameHead::None
            && is_acl(self.name)
    }

    /// Seeded hash of the pair (consistent with `==`).
    pub(super) fn hash(&self, seed: u64) -> u64 {
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
    pub(super) fn cmp_pair(&self, other: &Self) -> Ordering {
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
