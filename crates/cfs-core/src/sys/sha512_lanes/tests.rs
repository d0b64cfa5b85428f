use super::*;
use sha2::Digest as _;

/// [`hash_four`] or [`hash_eight`].
type Lanes<const N: usize> = fn([&[u8; BLOCK]; N], [&mut [u8; 64]; N]) -> bool;

fn reference(block: &[u8; BLOCK]) -> [u8; 64] {
    sha2::Sha512::digest(block).into()
}

/// `n` pseudo-random blocks (xorshift64), distinct for every `seed`.
fn random_blocks(n: usize, seed: u64) -> Vec<[u8; BLOCK]> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            let mut b = [0u8; BLOCK];
            for word in b.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            b
        })
        .collect()
}

/// Hashes `blocks` through `hash` and compares every lane with `sha2`.
fn check<const N: usize>(blocks: &[[u8; BLOCK]], hash: Lanes<N>) -> bool {
    let inputs: [&[u8; BLOCK]; N] = std::array::from_fn(|i| &blocks[i]);
    let mut outs = [[0u8; 64]; N];
    if !hash(inputs, outs.each_mut()) {
        return false;
    }
    for (lane, (block, out)) in blocks.iter().zip(&outs).enumerate() {
        assert_eq!(out[..], reference(block)[..], "lane {lane} of {N}");
    }
    true
}

/// Random blocks in every lane; then a distinctive block (all zeros,
/// all ones) in each lane position among random ones, so a mix-up of
/// lanes or of words within the transpose cannot go unnoticed.
fn exercise<const N: usize>(hash: Lanes<N>, available: bool) {
    for seed in 1..=16 {
        // Without the instructions `hash` declines and writes nothing.
        assert_eq!(check::<N>(&random_blocks(N, seed), hash), available);
    }
    if !available {
        return;
    }
    for special in [[0u8; BLOCK], [0xff; BLOCK]] {
        for pos in 0..N {
            let mut blocks = random_blocks(N, 100 + pos as u64);
            blocks[pos] = special;
            assert!(check::<N>(&blocks, hash));
        }
    }
    // The same block in every lane.
    let one = random_blocks(1, 7)[0];
    assert!(check::<N>(&vec![one; N], hash));
}

#[test]
fn four_lanes_match_sha2() {
    exercise::<4>(hash_four_avx2, available_avx2());
    exercise::<4>(hash_four_avx512vl, available_avx512() && available_avx2());
    exercise::<4>(hash_four, available_avx2() || available_avx512());
}

#[test]
fn eight_lanes_match_sha2() {
    exercise::<8>(hash_eight, available_avx512());
}
