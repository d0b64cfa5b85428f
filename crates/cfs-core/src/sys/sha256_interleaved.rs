//! SHA-256 of two or four independent 4096-byte blocks at once with the x86 SHA
//! extensions (SHA-NI), for the leaves of fs-verity Merkle trees.
//!
//! One SHA-256 stream cannot keep the SHA-NI units busy: every
//! `sha256rnds2` depends on the previous one. The leaves of a Merkle tree are
//! independent, so two or four of them are hashed in lockstep and the CPU overlaps the
//! dependency chains (the technique Linux uses for fs-verity and
//! dm-verity). The result is the plain SHA-256 of each block (message of
//! exactly 4096 bytes: 64 compressions plus the fixed padding block).
//!
//! Written from FIPS 180-4 and the Intel SHA extensions reference: the state
//! is kept as the (ABEF, CDGH) register pair `sha256rnds2` expects, message
//! words are byte-swapped into big-endian order with `pshufb`, and the message
//! schedule of rounds 16–63 is built four words at a time with
//! `sha256msg1`/`sha256msg2`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Length of one tree block.
const BLOCK: usize = 4096;

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The padding block of a 4096-byte message: 0x80, zeros, bit length 32768.
const PAD: [u8; 64] = {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    b[62] = 0x80; // 32768 = 0x8000, big-endian in the last 8 bytes
    b
};

/// True if this CPU can run [`hash_pair`].
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse4.1")
                && std::arch::is_x86_feature_detected!("ssse3")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// SHA-256 of `a` and of `b` (each exactly 4096 bytes), written to `out_a` and
/// `out_b`. Returns false (and writes nothing) when the CPU lacks SHA-NI.
pub(crate) fn hash_pair(
    a: &[u8; BLOCK],
    b: &[u8; BLOCK],
    out_a: &mut [u8; 32],
    out_b: &mut [u8; 32],
) -> bool {
    hash_many([a, b], [out_a, out_b])
}

/// Like [`hash_pair`] for four blocks.
pub(crate) fn hash_four(blocks: [&[u8; BLOCK]; 4], outs: [&mut [u8; 32]; 4]) -> bool {
    hash_many(blocks, outs)
}

fn hash_many<const N: usize>(blocks: [&[u8; BLOCK]; N], outs: [&mut [u8; 32]; N]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU features `hash_blocks_ni` is compiled for were
        // checked at run time just above; it only reads its input arrays and
        // writes its output arrays through references.
        unsafe { hash_blocks_ni(blocks, outs) };
        return true;
    }
    let _ = (blocks, outs);
    false
}

/// Loads 16 message bytes as four big-endian words.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn load_be(bytes: &[u8], mask: __m128i) -> __m128i {
    debug_assert!(bytes.len() >= 16);
    // SAFETY: `bytes` has at least 16 readable bytes (all callers slice 64-byte
    // chunks into four 16-byte parts); the load is unaligned.
    let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
    _mm_shuffle_epi8(v, mask)
}

/// Round constants `K[4g..4g+4]` as a vector.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn k(g: usize) -> __m128i {
    // SAFETY: `K` has 64 words and `g < 16`, so 16 bytes from `&K[4g]` are in bounds.
    unsafe { _mm_loadu_si128(K[4 * g..].as_ptr().cast()) }
}

/// Two SHA-256 states in the (ABEF, CDGH) layout of `sha256rnds2`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

/// Compresses one 64-byte chunk of each stream into its state.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_n<const N: usize>(s: &mut [State; N], chunks: [&[u8]; N], mask: __m128i) {
    let saved = *s;
    // Message schedule, four words per group, for every stream.
    let mut w = [[_mm_setzero_si128(); 4]; N];
    for (lane, chunk) in chunks.iter().enumerate() {
        for (i, slot) in w[lane].iter_mut().enumerate() {
            *slot = load_be(&chunk[16 * i..16 * i + 16], mask);
        }
    }
    for g in 0..16 {
        let slot = g % 4;
        if g >= 4 {
            for wl in w.iter_mut() {
                // W[t..t+4] from W[t-16..t-12] (slot), W[t-12..t-8], W[t-8..t-4], W[t-4..t].
                let x0 = wl[slot];
                let x1 = wl[(g + 1) % 4];
                let x2 = wl[(g + 2) % 4];
                let x3 = wl[(g + 3) % 4];
                let t = _mm_add_epi32(_mm_sha256msg1_epu32(x0, x1), _mm_alignr_epi8(x3, x2, 4));
                wl[slot] = _mm_sha256msg2_epu32(t, x3);
            }
        }
        for (st, wl) in s.iter_mut().zip(&w) {
            let wk = _mm_add_epi32(wl[slot], k(g));
            st.cdgh = _mm_sha256rnds2_epu32(st.cdgh, st.abef, wk);
            st.abef = _mm_sha256rnds2_epu32(st.abef, st.cdgh, _mm_shuffle_epi32(wk, 0x0e));
        }
    }
    for (st, old) in s.iter_mut().zip(&saved) {
        st.abef = _mm_add_epi32(st.abef, old.abef);
        st.cdgh = _mm_add_epi32(st.cdgh, old.cdgh);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn hash_blocks_ni<const N: usize>(blocks: [&[u8; BLOCK]; N], outs: [&mut [u8; 32]; N]) {
    let mask = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    // (abcd, efgh) → (ABEF, CDGH): ABEF = [f, e, b, a] and CDGH = [h, g, d, c]
    // from the lowest lane up.
    // SAFETY: IV has 8 words; both 16-byte loads are in bounds.
    let (abcd, efgh) = unsafe {
        (
            _mm_loadu_si128(IV.as_ptr().cast()),
            _mm_loadu_si128(IV[4..].as_ptr().cast()),
        )
    };
    let cdab = _mm_shuffle_epi32(abcd, 0xb1);
    let hgfe = _mm_shuffle_epi32(efgh, 0x1b);
    let init = State {
        abef: _mm_alignr_epi8(cdab, hgfe, 8),
        cdgh: _mm_blend_epi16(hgfe, cdab, 0xf0),
    };
    let mut s = [init; N];
    for offset in (0..BLOCK).step_by(64) {
        compress_n(&mut s, blocks.map(|b| &b[offset..offset + 64]), mask);
    }
    compress_n(&mut s, [&PAD[..]; N], mask);
    for (st, out) in s.iter().zip(outs) {
        // Back to (abcd, efgh), then big-endian bytes.
        let feba = _mm_shuffle_epi32(st.abef, 0x1b);
        let dchg = _mm_shuffle_epi32(st.cdgh, 0xb1);
        let abcd = _mm_blend_epi16(feba, dchg, 0xf0);
        let efgh = _mm_alignr_epi8(dchg, feba, 8);
        let mut words = [0u32; 8];
        // SAFETY: `words` has room for two 16-byte stores.
        unsafe {
            _mm_storeu_si128(words.as_mut_ptr().cast(), abcd);
            _mm_storeu_si128(words[4..].as_mut_ptr().cast(), efgh);
        }
        for (dst, w) in out.chunks_exact_mut(4).zip(words) {
            dst.copy_from_slice(&w.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn reference(block: &[u8; BLOCK]) -> [u8; 32] {
        sha2::Sha256::digest(block).into()
    }

    #[test]
    fn matches_sha2_on_patterns() {
        if !available() {
            return; // nothing to compare on this CPU; the fallback is sha2 itself
        }
        let mut a = [0u8; BLOCK];
        let mut b = [0u8; BLOCK];
        for seed in 0..64u32 {
            for (i, (x, y)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                let i = i as u32;
                *x = (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(97)) as u8;
                *y = (i.wrapping_mul(40_503) ^ (seed << 3) ^ 0x5a) as u8;
            }
            let (mut oa, mut ob) = ([0u8; 32], [0u8; 32]);
            assert!(hash_pair(&a, &b, &mut oa, &mut ob));
            assert_eq!(oa, reference(&a), "seed {seed}");
            assert_eq!(ob, reference(&b), "seed {seed}");
        }
        // Identical and all-zero blocks.
        let z = [0u8; BLOCK];
        let (mut oa, mut ob) = ([0u8; 32], [0u8; 32]);
        assert!(hash_pair(&z, &z, &mut oa, &mut ob));
        assert_eq!(oa, reference(&z));
        assert_eq!(oa, ob);
        // Four at once.
        let blocks: Vec<[u8; BLOCK]> = (0..4u8)
            .map(|k| {
                let mut blk = [0u8; BLOCK];
                for (i, x) in blk.iter_mut().enumerate() {
                    *x = (i as u8).wrapping_mul(k + 3) ^ k;
                }
                blk
            })
            .collect();
        let mut outs = [[0u8; 32]; 4];
        let [o0, o1, o2, o3] = &mut outs;
        assert!(hash_four(
            [&blocks[0], &blocks[1], &blocks[2], &blocks[3]],
            [o0, o1, o2, o3]
        ));
        for (blk, out) in blocks.iter().zip(&outs) {
            assert_eq!(*out, reference(blk));
        }
    }
}
