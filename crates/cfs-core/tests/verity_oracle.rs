//! fs-verity digests compared with the reference CLI `fsverity digest`
//! (fsverity-utils, Debian package `fsverity`) for sizes around every tree
//! level boundary, both algorithms, through the streaming API and the
//! parallel file API. The test fails if the `fsverity` binary is missing.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use cfs_core::verity::{Algorithm, Digest, FsVerityHasher, digest_file, digest_reader};

const B: usize = 4096;

/// Deterministic pseudo-random content (xorshift64*, 8 bytes per step).
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `fsverity digest --compact --hash-alg=ALG PATH`, parsed.
fn oracle(alg: Algorithm, path: &Path) -> Digest {
    let output = match Command::new("fsverity")
        .arg("digest")
        .arg("--compact")
        .arg(format!("--hash-alg={}", alg.name()))
        .arg(path)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run the `fsverity` oracle ({e}); this test needs fsverity-utils: \
             `apt-get install -y fsverity`"
        ),
    };
    assert!(
        output.status.success(),
        "fsverity digest {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("fsverity output is UTF-8");
    Digest::from_hex_with(alg, text.trim())
        .unwrap_or_else(|e| panic!("unexpected fsverity output {text:?}: {e}"))
}

/// Streams the file through `FsVerityHasher` in odd-sized chunks.
fn streamed(alg: Algorithm, path: &Path) -> Digest {
    let mut f = File::open(path).unwrap();
    let mut h = FsVerityHasher::new(alg);
    let mut buf = vec![0u8; 65_537];
    let sizes = [1usize, 4095, 4096, 4097, 10_000, 65_537];
    let mut i = 0;
    loop {
        let want = sizes[i % sizes.len()];
        i += 1;
        let n = f.read(&mut buf[..want]).unwrap();
        if n == 0 {
            break;
        }
        h.write_all(&buf[..n]).unwrap();
    }
    h.finalize()
}

fn check(size: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("data-{size}"));
    std::fs::write(&path, content(seed, size)).unwrap();
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let expected = oracle(alg, &path);
        let what = format!("{alg}, {size} bytes (seed {seed})");
        assert_eq!(streamed(alg, &path), expected, "streaming, {what}");
        let reader = digest_reader(alg, File::open(&path).unwrap()).unwrap();
        assert_eq!(reader, expected, "digest_reader, {what}");
        let file = File::open(&path).unwrap();
        for threads in [1, 2, 4] {
            let d = digest_file(alg, &file, threads).unwrap();
            assert_eq!(d, expected, "digest_file with {threads} threads, {what}");
        }
    }
}

#[test]
fn small_and_block_boundary_sizes() {
    for size in [0, 1, 4095, 4096, 4097] {
        check(size, size as u64);
    }
}

#[test]
fn second_and_third_level_boundaries() {
    for size in [
        64 * B - 1,
        64 * B,
        64 * B + 1,
        128 * B - 1,
        128 * B,
        128 * B + 1,
        129 * B,
        64 * 64 * B + 1,
    ] {
        check(size, size as u64);
    }
}

#[test]
fn fourth_level_boundary_sha256() {
    // 128² leaves: exactly three SHA-256 levels; one more block needs a fourth.
    for size in [128 * 128 * B - 1, 128 * 128 * B, 128 * 128 * B + 1] {
        check(size, size as u64);
    }
}

#[test]
fn random_mebibyte_sizes() {
    // Sizes drawn once from a fixed-seed generator (reproducible), spread
    // over 1..24 MiB with arbitrary low bits.
    let mut x: u64 = 0x00c0_ffee;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = (1 << 20) + (x % (23 << 20)) as usize;
        check(size, x);
    }
}
