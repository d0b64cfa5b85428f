//! EROFS xattr name prefixes, entry sizes and the per-inode name bloom filter.
//!
//! A name is stored as a prefix index plus the remaining suffix:
//!
//! | index | prefix                      | notes                                  |
//! |-------|-----------------------------|----------------------------------------|
//! | 1     | `user.`                     |                                        |
//! | 2     | `system.posix_acl_access`   | whole name, empty suffix               |
//! | 3     | `system.posix_acl_default`  | whole name, empty suffix               |
//! | 4     | `trusted.`                  |                                        |
//! | 5     | `lustre.`                   | read only: C writes index 0 instead     |
//! | 6     | `security.`                 |                                        |
//! | 0     | (none)                      | the full name is stored                |
//!
//! The name filter is a 32-bit bloom filter: for every xattr of the inode the
//! bit `xxh32(suffix, XATTR_FILTER_SEED + index) & 31` is set in a mask, and the
//! stored value is `!mask` (a set bit means "certainly absent").

use super::format::XATTR_FILTER_SEED;

/// Prefixes in match order for writing (C `mkcomposefs` never uses `lustre.`).
const WRITE_PREFIXES: [(u8, &[u8]); 5] = [
    (1, b"user."),
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (4, b"trusted."),
    (6, b"security."),
];

/// The prefix for an index when reading, or `None` for an unknown index.
pub fn prefix_for_index(index: u8) -> Option<&'static [u8]> {
    Some(match index {
        0 => b"",
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        5 => b"lustre.",
        6 => b"security.",
        _ => return None,
    })
}

/// Splits a full xattr name into (prefix index, suffix) the way C `mkcomposefs` does.
pub fn split_name(name: &[u8]) -> (u8, &[u8]) {
    for (index, prefix) in WRITE_PREFIXES {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (index, rest);
        }
    }
    (0, name)
}

/// Size of one xattr entry on disk: header, suffix and value, padded to 4 bytes.
pub fn entry_size(suffix_len: usize, value_len: usize) -> usize {
    (4 + suffix_len + value_len).next_multiple_of(4)
}

/// True if `name` is a POSIX ACL xattr (sets the header's ACL flag).
pub fn is_acl(name: &[u8]) -> bool {
    name == b"system.posix_acl_access" || name == b"system.posix_acl_default"
}

/// The filter bit of one xattr name (given as prefix index and suffix).
pub fn filter_bit(index: u8, suffix: &[u8]) -> u32 {
    1 << (xxh32(suffix, XATTR_FILTER_SEED.wrapping_add(u32::from(index))) & 31)
}

/// The `h_name_filter` value for a set of (index, suffix) names.
pub fn name_filter<'a>(names: impl IntoIterator<Item = (u8, &'a [u8])>) -> u32 {
    !names.into_iter().fold(0u32, |mask, (index, suffix)| {
        mask | filter_bit(index, suffix)
    })
}

const PRIME32_1: u32 = 0x9e37_79b1;
const PRIME32_2: u32 = 0x85eb_ca77;
const PRIME32_3: u32 = 0xc2b2_ae3d;
const PRIME32_4: u32 = 0x27d4_eb2f;
const PRIME32_5: u32 = 0x1656_67b1;

fn read_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(bytes);
    u32::from_le_bytes(b)
}

fn round(acc: u32, input: u32) -> u32 {
    acc.wrapping_add(input.wrapping_mul(PRIME32_2))
        .rotate_left(13)
        .wrapping_mul(PRIME32_1)
}

/// The 32-bit xxHash (XXH32) of `data` with `seed`.
pub fn xxh32(data: &[u8], seed: u32) -> u32 {
    let mut stripes = data.chunks_exact(16);
    let mut h = if data.len() >= 16 {
        let mut v = [
            seed.wrapping_add(PRIME32_1).wrapping_add(PRIME32_2),
            seed.wrapping_add(PRIME32_2),
            seed,
            seed.wrapping_sub(PRIME32_1),
        ];
        for stripe in &mut stripes {
            for (lane, word) in v.iter_mut().zip(stripe.chunks_exact(4)) {
                *lane = round(*lane, read_u32(word));
            }
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(PRIME32_5)
    };
    // The length is added modulo 2^32, as in the reference implementation.
    h = h.wrapping_add(data.len() as u32);
    let rest = stripes.remainder();
    let mut words = rest.chunks_exact(4);
    for word in &mut words {
        h = h
            .wrapping_add(read_u32(word).wrapping_mul(PRIME32_3))
            .rotate_left(17)
            .wrapping_mul(PRIME32_4);
    }
    for &byte in words.remainder() {
        h = h
            .wrapping_add(u32::from(byte).wrapping_mul(PRIME32_5))
            .rotate_left(11)
            .wrapping_mul(PRIME32_1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(PRIME32_2);
    h ^= h >> 13;
    h = h.wrapping_mul(PRIME32_3);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh32_reference_vectors() {
        // Values of the reference XXH32 implementation.
        assert_eq!(xxh32(b"", 0), 0x02cc_5d05);
        assert_eq!(xxh32(b"a", 0), 0x550d_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32d1_53ff);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xe229_3b2f
        );
        assert_eq!(xxh32(b"", 1), 0x0b2c_b792);
    }

    #[test]
    fn filters_from_the_spec() {
        // trusted.overlay.opaque alone.
        let (i, s) = split_name(b"trusted.overlay.opaque");
        assert_eq!((i, s), (4, &b"overlay.opaque"[..]));
        assert_eq!(name_filter([(i, s)]), 0xffef_ffff);
        // metacopy + redirect.
        let names = [
            split_name(b"trusted.overlay.metacopy"),
            split_name(b"trusted.overlay.redirect"),
        ];
        assert_eq!(name_filter(names), 0x7ffd_ffff);
    }

    #[test]
    fn prefixes() {
        assert_eq!(split_name(b"user.x"), (1, &b"x"[..]));
        assert_eq!(split_name(b"system.posix_acl_access"), (2, &b""[..]));
        assert_eq!(split_name(b"system.posix_acl_default"), (3, &b""[..]));
        assert_eq!(split_name(b"security.selinux"), (6, &b"selinux"[..]));
        assert_eq!(split_name(b"lustre.x"), (0, &b"lustre.x"[..]));
        assert_eq!(split_name(b"system.other"), (0, &b"system.other"[..]));
        assert_eq!(prefix_for_index(5), Some(&b"lustre."[..]));
        assert_eq!(prefix_for_index(7), None);
        assert_eq!(entry_size(14, 1), 20);
        assert_eq!(entry_size(16, 36), 56);
    }
}
