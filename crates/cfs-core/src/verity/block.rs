//! Hashing primitives of the fs-verity Merkle tree: one 4096-byte block → one
//! hash, and the 256-byte descriptor → the file digest.
//!
//! Every tree hash (leaf or interior) covers exactly [`BLOCK_SIZE`] bytes, so
//! the SHA padding of a block is always the same. [`hash_block`] therefore runs
//! the raw compression function over the block in place (no copy into a
//! hasher buffer) followed by one precomputed padding block.
//!
//! Descriptor layout (little-endian, 256 bytes): `version = 1` (u8),
//! `hash_algorithm` (u8, 1 = SHA-256, 2 = SHA-512), `log_blocksize = 12` (u8),
//! `salt_size = 0` (u8), 4 reserved bytes, `data_size` (u64), `root_hash`
//! (64 bytes, zero-padded), `salt` (32 zero bytes), 144 reserved zero bytes.
//! The digest is the hash of the descriptor with the tree's hash function.

use sha2::Digest as _;
use sha2::block_api::{compress256, compress512};

use super::digest::{Algorithm, Digest};
use crate::sys::{sha256_interleaved as sha256, sha512_lanes as sha512};

/// Merkle tree block size used by composefs (`log_blocksize = 12`).
pub const BLOCK_SIZE: usize = 4096;

/// `log2(BLOCK_SIZE)`, as stored in the descriptor.
const LOG_BLOCK_SIZE: u8 = 12;

/// Size of the fs-verity descriptor.
const DESCRIPTOR_SIZE: usize = 256;

/// Largest digest size (SHA-512).
pub(crate) const MAX_DIGEST: usize = 64;

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-512 initial hash value (FIPS 180-4 §5.3.5).
const SHA512_IV: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// Bit length of one block, as appended by the SHA padding.
const BLOCK_BITS: u64 = (BLOCK_SIZE as u64) * 8;

/// The SHA-256 padding block of a message of exactly `BLOCK_SIZE` bytes:
/// `0x80`, zeros, 64-bit big-endian bit length.
const SHA256_PAD: [[u8; 64]; 1] = {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    let len = BLOCK_BITS.to_be_bytes();
    let mut i = 0;
    while i < 8 {
        b[56 + i] = len[i];
        i += 1;
    }
    [b]
};

/// The SHA-512 padding block of a message of exactly `BLOCK_SIZE` bytes:
/// `0x80`, zeros, 128-bit big-endian bit length.
const SHA512_PAD: [[u8; 128]; 1] = {
    let mut b = [0u8; 128];
    b[0] = 0x80;
    let len = (BLOCK_BITS as u128).to_be_bytes();
    let mut i = 0;
    while i < 16 {
        b[112 + i] = len[i];
        i += 1;
    }
    [b]
};

/// Number of hashes that fit in one tree block (128 for SHA-256, 64 for SHA-512).
pub(crate) const fn hashes_per_block(alg: Algorithm) -> usize {
    BLOCK_SIZE / alg.digest_len()
}

/// Hashes exactly one 4096-byte block into `out[..alg.digest_len()]`.
///
/// `out` must be at least `alg.digest_len()` bytes long (panics otherwise;
/// all callers pass internal buffers of the right size).
#[inline]
pub(crate) fn hash_block(alg: Algorithm, block: &[u8; BLOCK_SIZE], out: &mut [u8]) {
    match alg {
        Algorithm::Sha256 => {
            let blocks: &[[u8; 64]; BLOCK_SIZE / 64] = zerocopy::transmute_ref!(block);
            let mut state = SHA256_IV;
            compress256(&mut state, blocks);
            compress256(&mut state, &SHA256_PAD);
            for (dst, word) in out[..32].chunks_exact_mut(4).zip(state) {
                dst.copy_from_slice(&word.to_be_bytes());
            }
        }
        Algorithm::Sha512 => {
            let blocks: &[[u8; 128]; BLOCK_SIZE / 128] = zerocopy::transmute_ref!(block);
            let mut state = SHA512_IV;
            compress512(&mut state, blocks);
            compress512(&mut state, &SHA512_PAD);
            for (dst, word) in out[..64].chunks_exact_mut(8).zip(state) {
                dst.copy_from_slice(&word.to_be_bytes());
            }
        }
    }
}

/// Hashes many independent blocks: `out` receives [`hash_block`] of each, one
/// digest after the other (`out.len() == blocks.len() * alg.digest_len()`).
/// Leaves go through multi-stream primitives where the CPU has them: SHA-256
/// four (then two) interleaved SHA-NI streams, SHA-512 eight (then four, then
/// a padded four for two or three) SIMD lanes; the rest one block at a time.
pub(crate) fn hash_blocks(alg: Algorithm, blocks: &[[u8; BLOCK_SIZE]], out: &mut [u8]) {
    let d = alg.digest_len();
    let done = match alg {
        Algorithm::Sha256 => {
            let four = in_groups::<4, 32>(blocks, out, sha256::hash_four);
            four + in_groups::<2, 32>(
                &blocks[four..],
                &mut out[four * 32..],
                |[x, y], [ox, oy]| sha256::hash_pair(x, y, ox, oy),
            )
        }
        Algorithm::Sha512 => {
            let eight = in_groups::<8, 64>(blocks, out, sha512::hash_eight);
            let four = eight
                + in_groups::<4, 64>(&blocks[eight..], &mut out[eight * 64..], sha512::hash_four);
            four + sha512_tail(&blocks[four..], &mut out[four * 64..])
        }
    };
    for (block, slot) in blocks[done..]
        .iter()
        .zip(out[done * d..].chunks_exact_mut(d))
    {
        hash_block(alg, block, slot);
    }
}

/// An `N`-stream hash primitive: `N` blocks into `N` digests of `D` bytes, or
/// false (nothing written) when the CPU lacks its instructions.
type Streams<const N: usize, const D: usize> =
    fn([&[u8; BLOCK_SIZE]; N], [&mut [u8; D]; N]) -> bool;

/// Hashes the leading whole groups of `N` blocks with `hash`. Returns how many
/// blocks were hashed (their digests fill the start of `out`).
fn in_groups<const N: usize, const D: usize>(
    blocks: &[[u8; BLOCK_SIZE]],
    out: &mut [u8],
    hash: Streams<N, D>,
) -> usize {
    use zerocopy::FromBytes as _;
    let mut done = 0;
    for (group, dst) in blocks.chunks_exact(N).zip(out.chunks_exact_mut(N * D)) {
        // Cannot fail: the chunks hold exactly `N` blocks and `N` digests.
        let (Some(group), Some(dst)) = (
            group.first_chunk::<N>(),
            <[[u8; D]]>::mut_from_bytes(dst)
                .ok()
                .and_then(|d| d.first_chunk_mut::<N>()),
        ) else {
            break;
        };
        if !hash(group.each_ref(), dst.each_mut()) {
            break;
        }
        done += N;
    }
    done
}

/// Hashes two or three remaining SHA-512 blocks with one four-lane call whose
/// spare lanes repeat the last block: the call costs about as much as one
/// block through `sha2`, so it pays from two blocks on. Returns how many
/// blocks were hashed (0 for other counts or without the instructions).
fn sha512_tail(blocks: &[[u8; BLOCK_SIZE]], out: &mut [u8]) -> usize {
    let n = blocks.len();
    let mut outs = [[0u8; 64]; 4];
    if !(2..4).contains(&n)
        || !sha512::hash_four(
            std::array::from_fn(|i| &blocks[i.min(n - 1)]),
            outs.each_mut(),
        )
    {
        return 0;
    }
    for (dst, h) in out.chunks_exact_mut(64).zip(&outs[..n]) {
        dst.copy_from_slice(h);
    }
    n
}

/// Splits `data` into whole blocks (borrowed in place) and the remainder.
#[inline]
pub(crate) fn split_blocks(data: &[u8]) -> (&[[u8; BLOCK_SIZE]], &[u8]) {
    use zerocopy::FromBytes as _;
    let n = data.len() / BLOCK_SIZE;
    // Cannot fail: `[u8; N]` has alignment 1 and `n` blocks fit in `data`.
    <[[u8; BLOCK_SIZE]]>::ref_from_prefix_with_elems(data, n).unwrap_or((&[], data))
}

/// Builds the 256-byte fs-verity descriptor for a file of `data_size` bytes
/// whose Merkle root hash is `root` (`alg.digest_len()` bytes).
pub(crate) fn descriptor(alg: Algorithm, data_size: u64, root: &[u8]) -> [u8; DESCRIPTOR_SIZE] {
    let mut d = [0u8; DESCRIPTOR_SIZE];
    d[0] = 1; // version
    d[1] = alg.kernel_id();
    d[2] = LOG_BLOCK_SIZE;
    d[3] = 0; // salt_size
    d[8..16].copy_from_slice(&data_size.to_le_bytes());
    let len = alg.digest_len();
    d[16..16 + len].copy_from_slice(&root[..len]);
    d
}

/// The fs-verity digest of a file of `data_size` bytes with Merkle root `root`.
pub(crate) fn descriptor_digest(alg: Algorithm, data_size: u64, root: &[u8]) -> Digest {
    let desc = descriptor(alg, data_size, root);
    match alg {
        Algorithm::Sha256 => Digest::sha256(sha2::Sha256::digest(desc).into()),
        Algorithm::Sha512 => Digest::sha512(sha2::Sha512::digest(desc).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> [u8; BLOCK_SIZE] {
        let mut b = [0u8; BLOCK_SIZE];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i * 31 + 7) as u8;
        }
        b
    }

    #[test]
    fn block_hash_matches_generic_sha() {
        let block = pattern();
        let mut out = [0u8; MAX_DIGEST];
        hash_block(Algorithm::Sha256, &block, &mut out);
        assert_eq!(out[..32], sha2::Sha256::digest(block)[..]);
        hash_block(Algorithm::Sha512, &block, &mut out);
        assert_eq!(out[..64], sha2::Sha512::digest(block)[..]);
    }

    #[test]
    fn sha512_batches_of_every_size_match_sha2() {
        // Random blocks; every count up to one 8-lane group, one 4-lane group
        // and a remainder, so each lane position of both paths is covered.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let blocks: Vec<[u8; BLOCK_SIZE]> = (0..9)
            .map(|_| {
                let mut b = [0u8; BLOCK_SIZE];
                for word in b.chunks_exact_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    word.copy_from_slice(&x.to_le_bytes());
                }
                b
            })
            .collect();
        for n in 0..=9 {
            let mut out = vec![0u8; n * 64];
            hash_blocks(Algorithm::Sha512, &blocks[..n], &mut out);
            for (k, (block, got)) in blocks.iter().zip(out.chunks_exact(64)).enumerate() {
                assert_eq!(got, &sha2::Sha512::digest(block)[..], "n={n} k={k}");
            }
        }
        for n in [12, 13] {
            let blocks: Vec<_> = blocks.iter().cycle().take(n).copied().collect();
            let mut out = vec![0u8; n * 64];
            hash_blocks(Algorithm::Sha512, &blocks, &mut out);
            for (k, (block, got)) in blocks.iter().zip(out.chunks_exact(64)).enumerate() {
                assert_eq!(got, &sha2::Sha512::digest(block)[..], "n={n} k={k}");
            }
        }
    }

    #[test]
    fn descriptor_layout_of_hello_world() {
        // fsverity.md §3: root hash of "hello world" (SHA-256).
        let mut block = [0u8; BLOCK_SIZE];
        block[..11].copy_from_slice(b"hello world");
        let mut root = [0u8; MAX_DIGEST];
        hash_block(Algorithm::Sha256, &block, &mut root);
        let d = descriptor(Algorithm::Sha256, 11, &root);
        assert_eq!(d[..8], [1, 1, 12, 0, 0, 0, 0, 0]);
        assert_eq!(d[8..16], 11u64.to_le_bytes());
        let hex: String = d[16..48].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "4a987f8501cbbc0691a9e2d4156c27f9cdb95e85d7d92efb16608f3020b22fd8"
        );
        assert!(d[48..].iter().all(|&b| b == 0));
    }
}
