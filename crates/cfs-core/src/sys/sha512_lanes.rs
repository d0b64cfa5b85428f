//! SHA-512 of four or eight independent 4096-byte blocks at once, one block
//! per 64-bit SIMD lane, for the leaves of fs-verity Merkle trees: four lanes
//! in 256-bit vectors (AVX-512 VL instructions where present, else AVX2), eight
//! in 512-bit vectors (AVX-512).
//!
//! x86 has no SHA-512 instructions (before the SHA512 extension), and one
//! SHA-512 stream is a long chain of dependent 64-bit additions and rotations
//! that scalar code runs at a few bytes per cycle. The leaves of a Merkle tree
//! are independent messages of the same length, so the same round can be
//! applied to several of them at once: vector register `a` holds the working
//! variable `a` of block 0 in lane 0, of block 1 in lane 1, and so on. The
//! lanes never exchange data; every operation of FIPS 180-4 §6.4 (additions
//! mod 2^64, the Σ/σ rotations and shifts of §4.1.3, `Ch`, `Maj`) becomes one
//! lane-wise vector operation (AVX-512) or a handful of them (AVX2, which has
//! no 64-bit rotate: `x >> n | x << (64 - n)`). AVX-512 (also on 256-bit
//! vectors, with VL) has `vprorq` and folds the three-input XORs and the
//! `Ch`/`Maj` selections into one `vpternlogq` each, a third of the AVX2
//! instruction count; on CPUs that split 512-bit operations in two halves the
//! four-lane VL path is then nearly as fast as the eight-lane one.
//!
//! Message words are big-endian: each 128-byte chunk of each block is loaded
//! with full-width vector loads, byte-swapped within every 64-bit word with
//! `vpshufb`, and the 4×4 (or 8×8) matrix of words is transposed so that
//! vector `W[t]` holds word `t` of every block. The 16-word message schedule
//! window is updated in place as the rounds advance.
//!
//! Every lane computes the plain SHA-512 of its 4096-byte message: 32
//! compressions of the data plus one fixed padding block (`0x80`, zeros,
//! 128-bit big-endian bit length 32768). That block is the same for every
//! lane and every leaf, so its whole 80-word schedule plus round constants is
//! computed once at compile time ([`PAD_WK`]) and broadcast.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Length of one tree block.
const BLOCK: usize = 4096;

/// Length of one SHA-512 message block.
const CHUNK: usize = 128;

/// SHA-512 round constants (FIPS 180-4 §4.2.3).
const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// SHA-512 initial hash value (FIPS 180-4 §5.3.5).
const IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// `W[t] + K[t]` for all 80 rounds of the padding block of a 4096-byte
/// message (`W[0] = 0x80 << 56`, `W[15] = 32768`, other words zero, then the
/// §6.4.2 schedule).
const PAD_WK: [u64; 80] = {
    let mut w = [0u64; 80];
    w[0] = 0x80 << 56;
    w[15] = (BLOCK as u64) * 8;
    let mut t = 16;
    while t < 80 {
        let (x, y) = (w[t - 15], w[t - 2]);
        let s0 = x.rotate_right(1) ^ x.rotate_right(8) ^ (x >> 7);
        let s1 = y.rotate_right(19) ^ y.rotate_right(61) ^ (y >> 6);
        w[t] = s1
            .wrapping_add(w[t - 7])
            .wrapping_add(s0)
            .wrapping_add(w[t - 16]);
        t += 1;
    }
    let mut t = 0;
    while t < 80 {
        w[t] = w[t].wrapping_add(K[t]);
        t += 1;
    }
    w
};

/// True if this CPU can run [`hash_four`] (AVX2).
pub(crate) fn available_avx2() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// True if this CPU can run [`hash_eight`] (AVX-512 F, BW and VL).
pub(crate) fn available_avx512() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// SHA-512 of four 4096-byte blocks, `blocks[i]` into `outs[i]`, with the
/// AVX-512 VL instructions on 256-bit vectors or else AVX2. Returns false (and
/// writes nothing) when the CPU has neither.
pub(crate) fn hash_four(blocks: [&[u8; BLOCK]; 4], outs: [&mut [u8; 64]; 4]) -> bool {
    if available_avx512() {
        hash_four_avx512vl(blocks, outs)
    } else {
        hash_four_avx2(blocks, outs)
    }
}

/// [`hash_four`] with AVX2 only; false when the CPU lacks it.
fn hash_four_avx2(blocks: [&[u8; BLOCK]; 4], outs: [&mut [u8; 64]; 4]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if available_avx2() {
        // SAFETY: AVX2, the only feature `avx2::hash` is compiled for, was
        // checked at run time just above; the function only reads its input
        // arrays and writes its output arrays through references.
        unsafe { avx2::hash(blocks, outs) };
        return true;
    }
    let _ = (blocks, outs);
    false
}

/// [`hash_four`] with AVX-512 VL; false when the CPU lacks it.
fn hash_four_avx512vl(blocks: [&[u8; BLOCK]; 4], outs: [&mut [u8; 64]; 4]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if available_avx512() && available_avx2() {
        // SAFETY: AVX2 and AVX-512 F/VL, the features `avx512vl::hash` is
        // compiled for, were checked at run time just above; the function
        // only reads its input arrays and writes its output arrays through
        // references.
        unsafe { avx512vl::hash(blocks, outs) };
        return true;
    }
    let _ = (blocks, outs);
    false
}

/// SHA-512 of eight 4096-byte blocks with AVX-512, `blocks[i]` into `outs[i]`.
/// Returns false (and writes nothing) when the CPU lacks AVX-512 F/BW.
pub(crate) fn hash_eight(blocks: [&[u8; BLOCK]; 8], outs: [&mut [u8; 64]; 8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if available_avx512() {
        // SAFETY: AVX-512 F and BW, the features `avx512::hash` is compiled
        // for, were checked at run time just above; the function only reads
        // its input arrays and writes its output arrays through references.
        unsafe { avx512::hash(blocks, outs) };
        return true;
    }
    let _ = (blocks, outs);
    false
}

/// The 80 rounds of one compression (FIPS 180-4 §6.4.2 steps 2–4) over
/// vectors of lanes, written once for both instruction sets. The invoking
/// module provides `add`, `splat`, `big_sigma0`, `big_sigma1`,
/// `small_sigma0`, `small_sigma1`, `ch` and `maj` for its vector type.
///
/// `$state` is the `[V; 8]` hash value (updated), `$w` the `[V; 16]` first
/// message words. With `pad` instead of `$w`, the broadcast constant
/// schedule of the padding block ([`PAD_WK`]) is used.
#[cfg(target_arch = "x86_64")]
macro_rules! compress {
    (@round $v:ident, $wk:expr) => {{
        let [a, b, c, d, e, f, g, h] = $v;
        let t1 = add(add(add(h, big_sigma1(e)), ch(e, f, g)), $wk);
        let t2 = add(big_sigma0(a), maj(a, b, c));
        $v = [add(t1, t2), a, b, c, add(d, t1), e, f, g];
    }};
    ($state:ident, pad) => {{
        let mut v = *$state;
        for r in 0..10 {
            for j in 0..8 {
                compress!(@round v, splat(PAD_WK[8 * r + j]));
            }
        }
        for (s, x) in $state.iter_mut().zip(v) {
            *s = add(*s, x);
        }
    }};
    ($state:ident, $w:ident) => {{
        let mut v = *$state;
        // Rounds 0–15 use the message words as loaded.
        macro_rules! plain {
            ($r:ident, $j:literal) => {
                compress!(@round v, add($w[$j], splat(K[$j])));
            };
        }
        // Rounds 16–79: W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]
        // in a ring of 16 where slot j holds W[t-16] before the update.
        macro_rules! scheduled {
            ($r:ident, $j:literal) => {
                $w[$j] = add(
                    add(small_sigma1($w[($j + 14) % 16]), $w[($j + 9) % 16]),
                    add(small_sigma0($w[($j + 1) % 16]), $w[$j]),
                );
                compress!(@round v, add($w[$j], splat(K[16 * $r + $j])));
            };
        }
        compress!(@sixteen plain, _r);
        for r in 1..5 {
            compress!(@sixteen scheduled, r);
        }
        for (s, x) in $state.iter_mut().zip(v) {
            *s = add(*s, x);
        }
    }};
    (@sixteen $m:ident, $r:ident) => {
        $m!($r, 0); $m!($r, 1); $m!($r, 2); $m!($r, 3);
        $m!($r, 4); $m!($r, 5); $m!($r, 6); $m!($r, 7);
        $m!($r, 8); $m!($r, 9); $m!($r, 10); $m!($r, 11);
        $m!($r, 12); $m!($r, 13); $m!($r, 14); $m!($r, 15);
    };
}

/// Four lanes in `__m256i` (AVX2).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(x: __m256i, y: __m256i) -> __m256i {
        _mm256_add_epi64(x, y)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn splat(k: u64) -> __m256i {
        _mm256_set1_epi64x(k as i64)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(x, y), z)
    }

    /// Rotate every lane right by `N` (`M` = 64 − `N`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rotr<const N: i32, const M: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi64::<N>(x), _mm256_slli_epi64::<M>(x))
    }

    /// Σ0(x) = ROTR28 ⊕ ROTR34 ⊕ ROTR39.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn big_sigma0(x: __m256i) -> __m256i {
        xor3(rotr::<28, 36>(x), rotr::<34, 30>(x), rotr::<39, 25>(x))
    }

    /// Σ1(x) = ROTR14 ⊕ ROTR18 ⊕ ROTR41.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn big_sigma1(x: __m256i) -> __m256i {
        xor3(rotr::<14, 50>(x), rotr::<18, 46>(x), rotr::<41, 23>(x))
    }

    /// σ0(x) = ROTR1 ⊕ ROTR8 ⊕ SHR7.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma0(x: __m256i) -> __m256i {
        xor3(
            rotr::<1, 63>(x),
            rotr::<8, 56>(x),
            _mm256_srli_epi64::<7>(x),
        )
    }

    /// σ1(x) = ROTR19 ⊕ ROTR61 ⊕ SHR6.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma1(x: __m256i) -> __m256i {
        xor3(
            rotr::<19, 45>(x),
            rotr::<61, 3>(x),
            _mm256_srli_epi64::<6>(x),
        )
    }

    /// Ch(e, f, g) = (e ∧ f) ⊕ (¬e ∧ g), computed as ((f ⊕ g) ∧ e) ⊕ g.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(f, g), e), g)
    }

    /// Maj(a, b, c) = (a ∧ b) ⊕ (a ∧ c) ⊕ (b ∧ c), computed as
    /// ((a ⊕ b) ∧ (b ⊕ c)) ⊕ b.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_and_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(b, c)),
            b,
        )
    }

    /// Loads the 16 message words of the 128-byte chunk at `offset` of each
    /// block: `w[t]` lane `i` = big-endian word `t` of `blocks[i]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn load(blocks: &[&[u8; BLOCK]; 4], offset: usize) -> [__m256i; 16] {
        let bswap = _mm256_set_epi64x(
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
        );
        let mut w = [_mm256_setzero_si256(); 16];
        for q in 0..4 {
            // Words 4q..4q+4 of each block, byte-swapped.
            let rows = blocks.map(|b| {
                let bytes = &b[offset + 32 * q..offset + 32 * q + 32];
                // SAFETY: `bytes` is 32 readable bytes (bounds-checked
                // slice); the load is unaligned.
                let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) };
                _mm256_shuffle_epi8(v, bswap)
            });
            // 4×4 transpose of 64-bit words.
            let t0 = _mm256_unpacklo_epi64(rows[0], rows[1]); // r0[0] r1[0] r0[2] r1[2]
            let t1 = _mm256_unpackhi_epi64(rows[0], rows[1]); // r0[1] r1[1] r0[3] r1[3]
            let t2 = _mm256_unpacklo_epi64(rows[2], rows[3]);
            let t3 = _mm256_unpackhi_epi64(rows[2], rows[3]);
            w[4 * q] = _mm256_permute2x128_si256::<0x20>(t0, t2);
            w[4 * q + 1] = _mm256_permute2x128_si256::<0x20>(t1, t3);
            w[4 * q + 2] = _mm256_permute2x128_si256::<0x31>(t0, t2);
            w[4 * q + 3] = _mm256_permute2x128_si256::<0x31>(t1, t3);
        }
        w
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn compress(state: &mut [__m256i; 8], w: &mut [__m256i; 16]) {
        compress!(state, w);
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn compress_pad(state: &mut [__m256i; 8]) {
        compress!(state, pad);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn hash(blocks: [&[u8; BLOCK]; 4], outs: [&mut [u8; 64]; 4]) {
        let mut state = IV.map(|k| splat(k));
        for offset in (0..BLOCK).step_by(CHUNK) {
            let mut w = load(&blocks, offset);
            compress(&mut state, &mut w);
        }
        compress_pad(&mut state);
        store(&state, outs);
    }

    /// Writes lane `i` of the final hash value to `outs[i]` (big-endian).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn store(state: &[__m256i; 8], outs: [&mut [u8; 64]; 4]) {
        let mut words = [[0u64; 4]; 8];
        for (dst, s) in words.iter_mut().zip(state) {
            // SAFETY: `dst` has room for one 32-byte store.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), *s) };
        }
        for (lane, out) in outs.into_iter().enumerate() {
            for (dst, word) in out.chunks_exact_mut(8).zip(&words) {
                dst.copy_from_slice(&word[lane].to_be_bytes());
            }
        }
    }
}

/// Four lanes in `__m256i` with the AVX-512 VL forms of rotate and
/// three-input logic: a third of the AVX2 instruction count per round, for
/// groups too small for eight lanes.
///
/// (The AVX-512 intrinsics are stable since Rust 1.89, the workspace's
/// `rust-version`.)
#[cfg(target_arch = "x86_64")]
mod avx512vl {
    use super::avx512::{CHOOSE, MAJORITY, XOR3};
    use super::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(x: __m256i, y: __m256i) -> __m256i {
        _mm256_add_epi64(x, y)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn splat(k: u64) -> __m256i {
        _mm256_set1_epi64x(k as i64)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn xor3(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
        _mm256_ternarylogic_epi64::<XOR3>(x, y, z)
    }

    /// Σ0(x) = ROTR28 ⊕ ROTR34 ⊕ ROTR39.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn big_sigma0(x: __m256i) -> __m256i {
        xor3(
            _mm256_ror_epi64::<28>(x),
            _mm256_ror_epi64::<34>(x),
            _mm256_ror_epi64::<39>(x),
        )
    }

    /// Σ1(x) = ROTR14 ⊕ ROTR18 ⊕ ROTR41.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn big_sigma1(x: __m256i) -> __m256i {
        xor3(
            _mm256_ror_epi64::<14>(x),
            _mm256_ror_epi64::<18>(x),
            _mm256_ror_epi64::<41>(x),
        )
    }

    /// σ0(x) = ROTR1 ⊕ ROTR8 ⊕ SHR7.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn small_sigma0(x: __m256i) -> __m256i {
        xor3(
            _mm256_ror_epi64::<1>(x),
            _mm256_ror_epi64::<8>(x),
            _mm256_srli_epi64::<7>(x),
        )
    }

    /// σ1(x) = ROTR19 ⊕ ROTR61 ⊕ SHR6.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn small_sigma1(x: __m256i) -> __m256i {
        xor3(
            _mm256_ror_epi64::<19>(x),
            _mm256_ror_epi64::<61>(x),
            _mm256_srli_epi64::<6>(x),
        )
    }

    /// Ch(e, f, g) = e ? f : g, bit by bit.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_ternarylogic_epi64::<CHOOSE>(e, f, g)
    }

    /// Maj(a, b, c): the majority of each bit.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_ternarylogic_epi64::<MAJORITY>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    fn compress(state: &mut [__m256i; 8], w: &mut [__m256i; 16]) {
        compress!(state, w);
    }

    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    fn compress_pad(state: &mut [__m256i; 8]) {
        compress!(state, pad);
    }

    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    pub(super) fn hash(blocks: [&[u8; BLOCK]; 4], outs: [&mut [u8; 64]; 4]) {
        let mut state = IV.map(|k| splat(k));
        for offset in (0..BLOCK).step_by(CHUNK) {
            let mut w = avx2::load(&blocks, offset);
            compress(&mut state, &mut w);
        }
        compress_pad(&mut state);
        avx2::store(&state, outs);
    }
}

/// Eight lanes in `__m512i` (AVX-512 F for the arithmetic, BW for `vpshufb`).
///
/// (The AVX-512 intrinsics are stable since Rust 1.89, the workspace's
/// `rust-version`.)
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    /// `vpternlogq` truth tables, indexed by (x << 2 | y << 1 | z).
    pub(super) const XOR3: i32 = 0x96;
    /// x ? y : z.
    pub(super) const CHOOSE: i32 = 0xca;
    /// At least two of x, y, z.
    pub(super) const MAJORITY: i32 = 0xe8;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(x: __m512i, y: __m512i) -> __m512i {
        _mm512_add_epi64(x, y)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(k: u64) -> __m512i {
        _mm512_set1_epi64(k as i64)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(x: __m512i, y: __m512i, z: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<XOR3>(x, y, z)
    }

    /// Σ0(x) = ROTR28 ⊕ ROTR34 ⊕ ROTR39.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn big_sigma0(x: __m512i) -> __m512i {
        xor3(
            _mm512_ror_epi64::<28>(x),
            _mm512_ror_epi64::<34>(x),
            _mm512_ror_epi64::<39>(x),
        )
    }

    /// Σ1(x) = ROTR14 ⊕ ROTR18 ⊕ ROTR41.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn big_sigma1(x: __m512i) -> __m512i {
        xor3(
            _mm512_ror_epi64::<14>(x),
            _mm512_ror_epi64::<18>(x),
            _mm512_ror_epi64::<41>(x),
        )
    }

    /// σ0(x) = ROTR1 ⊕ ROTR8 ⊕ SHR7.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn small_sigma0(x: __m512i) -> __m512i {
        xor3(
            _mm512_ror_epi64::<1>(x),
            _mm512_ror_epi64::<8>(x),
            _mm512_srli_epi64::<7>(x),
        )
    }

    /// σ1(x) = ROTR19 ⊕ ROTR61 ⊕ SHR6.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn small_sigma1(x: __m512i) -> __m512i {
        xor3(
            _mm512_ror_epi64::<19>(x),
            _mm512_ror_epi64::<61>(x),
            _mm512_srli_epi64::<6>(x),
        )
    }

    /// Ch(e, f, g) = e ? f : g, bit by bit.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn ch(e: __m512i, f: __m512i, g: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<CHOOSE>(e, f, g)
    }

    /// Maj(a, b, c): the majority of each bit.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn maj(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<MAJORITY>(a, b, c)
    }

    /// Loads the 16 message words of the 128-byte chunk at `offset` of each
    /// block: `w[t]` lane `i` = big-endian word `t` of `blocks[i]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn load(blocks: &[&[u8; BLOCK]; 8], offset: usize) -> [__m512i; 16] {
        let bswap = _mm512_set_epi64(
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
        );
        let mut w = [_mm512_setzero_si512(); 16];
        for half in 0..2 {
            // Words 8·half..8·half+8 of each block, byte-swapped.
            let r = blocks.map(|b| {
                let bytes = &b[offset + 64 * half..offset + 64 * half + 64];
                // SAFETY: `bytes` is 64 readable bytes (bounds-checked
                // slice); the load is unaligned.
                let v = unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) };
                _mm512_shuffle_epi8(v, bswap)
            });
            // 8×8 transpose of 64-bit words in three steps: pairs of words,
            // then 128-bit and 256-bit halves of the row pairs.
            let t = [
                _mm512_unpacklo_epi64(r[0], r[1]), // r0[0] r1[0] r0[2] r1[2] r0[4] r1[4] r0[6] r1[6]
                _mm512_unpackhi_epi64(r[0], r[1]), // r0[1] r1[1] r0[3] r1[3] …
                _mm512_unpacklo_epi64(r[2], r[3]),
                _mm512_unpackhi_epi64(r[2], r[3]),
                _mm512_unpacklo_epi64(r[4], r[5]),
                _mm512_unpackhi_epi64(r[4], r[5]),
                _mm512_unpacklo_epi64(r[6], r[7]),
                _mm512_unpackhi_epi64(r[6], r[7]),
            ];
            // u[0] = r0[0] r1[0] r0[4] r1[4] r2[0] r3[0] r2[4] r3[4], etc.
            let u = [
                _mm512_shuffle_i64x2::<0x88>(t[0], t[2]),
                _mm512_shuffle_i64x2::<0x88>(t[1], t[3]),
                _mm512_shuffle_i64x2::<0xdd>(t[0], t[2]),
                _mm512_shuffle_i64x2::<0xdd>(t[1], t[3]),
                _mm512_shuffle_i64x2::<0x88>(t[4], t[6]),
                _mm512_shuffle_i64x2::<0x88>(t[5], t[7]),
                _mm512_shuffle_i64x2::<0xdd>(t[4], t[6]),
                _mm512_shuffle_i64x2::<0xdd>(t[5], t[7]),
            ];
            let base = 8 * half;
            w[base] = _mm512_shuffle_i64x2::<0x88>(u[0], u[4]);
            w[base + 1] = _mm512_shuffle_i64x2::<0x88>(u[1], u[5]);
            w[base + 2] = _mm512_shuffle_i64x2::<0x88>(u[2], u[6]);
            w[base + 3] = _mm512_shuffle_i64x2::<0x88>(u[3], u[7]);
            w[base + 4] = _mm512_shuffle_i64x2::<0xdd>(u[0], u[4]);
            w[base + 5] = _mm512_shuffle_i64x2::<0xdd>(u[1], u[5]);
            w[base + 6] = _mm512_shuffle_i64x2::<0xdd>(u[2], u[6]);
            w[base + 7] = _mm512_shuffle_i64x2::<0xdd>(u[3], u[7]);
        }
        w
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress(state: &mut [__m512i; 8], w: &mut [__m512i; 16]) {
        compress!(state, w);
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress_pad(state: &mut [__m512i; 8]) {
        compress!(state, pad);
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn hash(blocks: [&[u8; BLOCK]; 8], outs: [&mut [u8; 64]; 8]) {
        let mut state = IV.map(|k| splat(k));
        for offset in (0..BLOCK).step_by(CHUNK) {
            let mut w = load(&blocks, offset);
            compress(&mut state, &mut w);
        }
        compress_pad(&mut state);
        let mut words = [[0u64; 8]; 8];
        for (dst, s) in words.iter_mut().zip(state) {
            // SAFETY: `dst` has room for one 64-byte store.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), s) };
        }
        for (lane, out) in outs.into_iter().enumerate() {
            for (dst, word) in out.chunks_exact_mut(8).zip(&words) {
                dst.copy_from_slice(&word[lane].to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests;
