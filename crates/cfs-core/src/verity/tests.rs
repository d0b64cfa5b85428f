//! Unit tests of the userspace fs-verity implementations: the fsverity.md §3
//! vectors, a naive level-by-level reference, chunking and threading
//! invariance, and the kernel ioctl error mapping on this host.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::AsFd;

use proptest::prelude::*;
use sha2::Digest as _;

use super::parallel::{Tuning, digest_file_tuned, digest_files_tuned};
use super::*;

/// Production segment size (4 MiB).
const SEGMENT: usize = 1024 * BLOCK_SIZE;

/// Small segments (one SHA-256 level-1 block, two SHA-512 ones) so that
/// debug-build tests cross many segment boundaries cheaply.
const SMALL_SEGMENT: usize = 128 * BLOCK_SIZE;

fn small(window: u64) -> Tuning {
    Tuning {
        segment_bytes: SMALL_SEGMENT,
        window,
    }
}

/// fsverity.md §3: (content, SHA-256 digest, SHA-512 digest).
fn vectors() -> Vec<(Vec<u8>, &'static str, &'static str)> {
    let pattern: Vec<u8> = (0..1_048_576usize).map(|i| (7 * i + 3) as u8).collect();
    vec![
        (
            vec![],
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
            "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d10adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf",
        ),
        (
            b"hello world\n".to_vec(),
            "37061ef2ac4c21bec68489b56138c5780306a4ad7fe6676236ecdf2c9027cd92",
            "4098b052d2427dc9029c85062215dd6e6c41667bfae09f5ce90a49f7e01fca295c89b16a4d2703ac5b0593f476ca174675ee51829c2f1fd07c4133a87041c1d7",
        ),
        (
            b"hello world".to_vec(),
            "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64",
            "18430270729d162d4e469daca123ae61893db4b0583d8f7081e3bf4f92b88ba514e7982f10733fb6aa895195c5ae8fd2eb2c47a8be05513ce5a0c51a6f570409",
        ),
        (
            b"foo bar baz\n".to_vec(),
            "91e7d88cb7bc9cf6d8db3b0ecf89af4abf204bef5b3ade5113d5b62ef374e70b",
            "932b02ae1d26b7a97a917b8114964a7a950ccdff99bd196f2a6f337ec3282cda06d68ba53cabc3e23af532b629f6313340b26f690a0ad44470ccd846cef93b8c",
        ),
        (
            vec![0; 4096],
            "babc284ee4ffe7f449377fbf6692715b43aec7bc39c094a95878904d34bac97e",
            "928922686c4caf32175f5236a7f964e9925d10a74dc6d8344a8bd08b23c228ff5792573987d7895f628f39c4f4ebe39a7367d7aeb16aaa0cd324ac1d53664e61",
        ),
        (
            vec![0; 4097],
            "093756e4ea9683329106d4a16982682ed182c14bf076463a9e7f97305cbac743",
            "4339f5da3788e60fa6857bd7040fadccd6f125b2c2334777eb14ed55179ad887d9131e9ce78485afc23051392b71e015528abbb7be07ed7073c56480b15cedf1",
        ),
        (
            vec![0; 262_145],
            "164d358d7b02095f335083aac4540c713258b57c578c9ee71880aea531ec27ce",
            "66570da2a4960575d353f2bdd01693f622bc276d2c128b1316475e2affee50c3cc302dca24723f6a3abd44a04411b0588f6dc3d425cccd2430e6b0512d5b1be8",
        ),
        (
            vec![0; 524_288],
            "2d15bd7832895de85aa3d5bdfb57251e27bbec75ff467408340ab3eba858a2e1",
            "80e3a9dbfb94da75ef90a5c477aa857df25af49e207425cad099421d02a0b783fb36b11d6f3f7a2ddf8b2cd2ec6c0d7d173dd7d1b51c448bfb134b506d910123",
        ),
        (
            vec![0; 524_289],
            "e4143a5705610b7ad2eb85482cfc033c7062a89b9faf9118603f592d53fd10e0",
            "7d26d3e731675b1ecf081c10277a5fd42e9abd456eee3b8a8c3c8a2d5e1711b7a28027eaa104fc01080df1c37ca1dc9a186bbf7d2decd13de170d5ec9c350584",
        ),
        (
            pattern,
            "0b6aeb8072e1260ee430edff44a4939b9a306ff4d0fd58d8b3ec40abf3ea7636",
            "8f711a4389d834a186bc9e6ee6af42cd67a6797bf732dcb30027f99bbb40cc8b83c062b61888e418842058d8776e7eac876e7540d64c9732b8643d6464509ee3",
        ),
    ]
}

/// Naive reference: whole levels in memory, generic SHA API, descriptor built
/// byte by byte from fsverity.md §2.
fn reference(alg: Algorithm, data: &[u8]) -> Vec<u8> {
    let h = |bytes: &[u8]| -> Vec<u8> {
        match alg {
            Algorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
            Algorithm::Sha512 => sha2::Sha512::digest(bytes).to_vec(),
        }
    };
    let hash_padded = |chunk: &[u8]| {
        let mut block = chunk.to_vec();
        block.resize(4096, 0);
        h(&block)
    };
    let root = if data.is_empty() {
        vec![0; alg.digest_len()]
    } else {
        let mut level: Vec<Vec<u8>> = data.chunks(4096).map(hash_padded).collect();
        while level.len() > 1 {
            level = level.concat().chunks(4096).map(hash_padded).collect();
        }
        level.remove(0)
    };
    let mut desc = vec![1u8, alg.kernel_id(), 12, 0, 0, 0, 0, 0];
    desc.extend_from_slice(&(data.len() as u64).to_le_bytes());
    desc.extend_from_slice(&root);
    desc.resize(256, 0);
    h(&desc)
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn temp_file(data: &[u8]) -> File {
    let mut f = tempfile::tempfile().expect("create temp file");
    f.write_all(data).expect("write temp file");
    f
}

const ALGS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

#[test]
fn spec_vectors_one_shot_streaming_and_reader() {
    for (data, hex256, hex512) in vectors() {
        for (alg, hex) in [(Algorithm::Sha256, hex256), (Algorithm::Sha512, hex512)] {
            let what = format!("{alg} of {} bytes", data.len());
            assert_eq!(digest_bytes(alg, &data).to_hex(), hex, "one-shot {what}");
            let mut h = FsVerityHasher::new(alg);
            for chunk in data.chunks(1000) {
                h.write_all(chunk).unwrap();
            }
            assert_eq!(h.len(), data.len() as u64);
            assert_eq!(h.finalize().to_hex(), hex, "streaming {what}");
            let d = digest_reader(alg, &data[..]).unwrap();
            assert_eq!(d.to_hex(), hex, "reader {what}");
            assert_eq!(d.algorithm(), alg);
        }
    }
}

#[test]
fn spec_vectors_from_files() {
    for (data, hex256, hex512) in vectors() {
        let f = temp_file(&data);
        for (alg, hex) in [(Algorithm::Sha256, hex256), (Algorithm::Sha512, hex512)] {
            for threads in [1, 2] {
                let d = digest_file(alg, &f, threads).unwrap();
                assert_eq!(d.to_hex(), hex, "{alg} file of {} bytes", data.len());
            }
        }
    }
}

#[test]
fn reference_agrees_with_spec_vectors() {
    // Guards the reference itself before it is used as an oracle below.
    for (data, hex256, hex512) in vectors() {
        let to_hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(to_hex(reference(Algorithm::Sha256, &data)), hex256);
        assert_eq!(to_hex(reference(Algorithm::Sha512, &data)), hex512);
    }
}

#[test]
fn level_boundaries_match_reference() {
    // Sizes around the 2nd and 3rd level for both algorithms.
    let sizes = [
        1,
        4095,
        64 * 4096 - 1,
        64 * 4096,
        64 * 4096 + 1,
        128 * 4096 - 1,
        128 * 4096,
        128 * 4096 + 1,
        64 * 64 * 4096 + 1,
    ];
    for &size in &sizes {
        let data = noise(size as u64, size);
        for alg in ALGS {
            assert_eq!(
                digest_bytes(alg, &data).as_bytes(),
                &reference(alg, &data)[..],
                "{alg}, {size} bytes"
            );
        }
    }
}

fn chunked_case() -> impl Strategy<Value = (usize, u64, Vec<usize>)> {
    (
        prop_oneof![0usize..9000, 0usize..600_000],
        any::<u64>(),
        prop::collection::vec(
            prop_oneof![1usize..64, 1usize..10_000, 4096usize..4097],
            1..40,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chunked_equals_one_shot_and_reference((size, seed, chunks) in chunked_case()) {
        let data = noise(seed, size);
        for alg in ALGS {
            let mut h = FsVerityHasher::new(alg);
            let mut rest = &data[..];
            let mut sizes = chunks.iter().cycle();
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap_or(&1)).min(rest.len());
                let (head, tail) = rest.split_at(n);
                h.update(head);
                rest = tail;
            }
            let streamed = h.finalize();
            prop_assert_eq!(streamed, digest_bytes(alg, &data));
            prop_assert_eq!(streamed.as_bytes(), &reference(alg, &data)[..]);
        }
    }
}

#[test]
fn parallel_file_equals_sequential_around_segment_boundaries() {
    let s = SMALL_SEGMENT;
    let sizes = [
        s - 1,
        s,
        s + 1,
        s + 4096,
        s + 64 * 4096 + 1,
        2 * s - 1,
        2 * s,
        2 * s + 1,
        3 * s + 64 * 4096,
        7 * s + 7,
        9 * s + 4097,
    ];
    for &size in &sizes {
        let data = noise(size as u64 ^ 0x5eed, size);
        let f = temp_file(&data);
        for alg in ALGS {
            let expected = digest_bytes(alg, &data);
            for threads in 1..=4 {
                // A window of one segment forces workers to wait for each
                // other; results must not change.
                for window in [1, 2, 64] {
                    assert_eq!(
                        digest_file_tuned(alg, &f, threads, small(window)).unwrap(),
                        expected,
                        "{alg}, {size} bytes, {threads} threads, window {window}"
                    );
                }
            }
        }
    }
}

#[test]
fn parallel_file_with_production_segments() {
    for size in [SEGMENT + 1, 2 * SEGMENT + 128 * 4096 + 1] {
        let data = noise(size as u64, size);
        let f = temp_file(&data);
        for alg in ALGS {
            assert_eq!(
                digest_file(alg, &f, 2).unwrap(),
                digest_bytes(alg, &data),
                "{alg}, {size} bytes"
            );
        }
    }
}

#[test]
fn digest_file_ignores_file_position() {
    use std::io::{Seek, SeekFrom};
    let data = noise(9, 3 * SEGMENT + 5);
    let mut f = temp_file(&data);
    f.seek(SeekFrom::Start(12345)).unwrap();
    let expected = digest_bytes(Algorithm::Sha256, &data);
    assert_eq!(digest_file(Algorithm::Sha256, &f, 1).unwrap(), expected);
    assert_eq!(digest_file(Algorithm::Sha256, &f, 2).unwrap(), expected);
}

#[test]
fn digest_files_mixed_sizes_in_order_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = SMALL_SEGMENT;
    let mut sizes: Vec<usize> = vec![0, 1, 4095, 4096, 4097, 9 * s + 1, 100_000];
    sizes.extend((0..60).map(|i| (i * 7919) % 20_000));
    sizes.extend([2 * s + 3, 5 * s, s + 1, s, 3 * s - 1]);
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let data = noise(i as u64 + 1, size);
        let path = dir.path().join(format!("f{i}"));
        std::fs::write(&path, &data).unwrap();
        items.push(path);
        expected.push(Some(data));
        if i % 17 == 3 {
            items.push(dir.path().join(format!("missing{i}")));
            expected.push(None);
        }
    }
    for alg in ALGS {
        for (threads, window) in [(1, 2), (2, 1), (2, 64), (3, 2), (4, 1)] {
            let tuning = small(window);
            let results = digest_files_tuned(alg, &items, threads, |p| File::open(p), tuning);
            assert_eq!(results.len(), items.len());
            for ((r, want), path) in results.iter().zip(&expected).zip(&items) {
                match (r, want) {
                    (Ok(d), Some(data)) => {
                        assert_eq!(*d, digest_bytes(alg, data), "{path:?}, {threads} threads")
                    }
                    (Err(e), None) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
                    (r, _) => panic!("{path:?}: unexpected {r:?} with {threads} threads"),
                }
            }
        }
    }
    let big = noise(5, SEGMENT + 4097);
    let path = dir.path().join("big");
    std::fs::write(&path, &big).unwrap();
    let results = digest_files(Algorithm::Sha256, &[&path, &path], 2, |p| File::open(p));
    for r in results {
        assert_eq!(r.unwrap(), digest_bytes(Algorithm::Sha256, &big));
    }
    // One large item, more threads than items: all threads share its segments.
    for window in [1, 3] {
        let one = digest_files_tuned(
            Algorithm::Sha512,
            &[&path],
            4,
            |p| File::open(p),
            small(window),
        );
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].as_ref().unwrap(),
            &digest_bytes(Algorithm::Sha512, &big)
        );
    }
    let none: [std::path::PathBuf; 0] = [];
    assert!(digest_files(Algorithm::Sha256, &none, 2, |p| File::open(p)).is_empty());
}

/// On this host (no `CONFIG_FS_VERITY`) every ioctl reports `NotSupported`;
/// on a verity-capable filesystem a fresh file is `NotEnabled` and enabling
/// must produce the userspace digest.
#[test]
fn kernel_ioctls_on_temp_file() {
    let data = noise(3, 10_000);
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, &data).unwrap();
    let f = File::open(&path).unwrap();
    let expected = digest_bytes(Algorithm::Sha256, &data);
    match measure_verity(f.as_fd()) {
        Err(VerityError::NotSupported) => {
            let e = enable_verity(f.as_fd(), Algorithm::Sha256).unwrap_err();
            assert!(matches!(e, VerityError::NotSupported), "{e:?}");
            assert_eq!(
                e.to_string(),
                "filesystem or kernel does not support fs-verity"
            );
        }
        Err(VerityError::NotEnabled) => {
            enable_verity(f.as_fd(), Algorithm::Sha256).unwrap();
            assert_eq!(measure_verity(f.as_fd()).unwrap(), expected);
            let again = enable_verity(f.as_fd(), Algorithm::Sha256).unwrap_err();
            assert!(matches!(again, VerityError::AlreadyEnabled), "{again:?}");
        }
        other => panic!("unexpected measure result on a fresh file: {other:?}"),
    }
    for alg in ALGS {
        assert_eq!(
            measure_or_compute(&f, alg).unwrap(),
            digest_bytes(alg, &data),
            "{alg}"
        );
    }
}

/// tmpfs never implements fs-verity (ENOTTY), whatever the kernel config.
#[test]
fn kernel_ioctls_on_tmpfs() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return; // no tmpfs mounted here; the /tmp test covers the mapping
    };
    let path = dir.path().join("f");
    std::fs::write(&path, b"hello world").unwrap();
    let f = File::open(&path).unwrap();
    assert!(matches!(
        measure_verity(f.as_fd()),
        Err(VerityError::NotSupported)
    ));
    assert!(matches!(
        enable_verity(f.as_fd(), Algorithm::Sha512),
        Err(VerityError::NotSupported)
    ));
    assert_eq!(
        measure_or_compute(&f, Algorithm::Sha256).unwrap().to_hex(),
        "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64"
    );
    let io_err: io::Error = VerityError::NotSupported.into();
    assert_eq!(io_err.kind(), io::ErrorKind::Unsupported);
}

#[test]
fn batched_leaf_hashing_equals_one_at_a_time() {
    use super::block::{hash_block, hash_blocks};
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let d = alg.digest_len();
        // Every remainder modulo 4, plus a few full batches.
        for n in 0..=13usize {
            let blocks: Vec<[u8; BLOCK_SIZE]> = (0..n)
                .map(|k| {
                    let mut b = [0u8; BLOCK_SIZE];
                    for (i, x) in b.iter_mut().enumerate() {
                        *x = (i as u32)
                            .wrapping_mul(2_654_435_761)
                            .wrapping_add(k as u32 * 7919) as u8;
                    }
                    b
                })
                .collect();
            let mut batched = vec![0u8; n * d];
            hash_blocks(alg, &blocks, &mut batched);
            for (k, block) in blocks.iter().enumerate() {
                let mut one = [0u8; 64];
                hash_block(alg, block, &mut one);
                assert_eq!(&batched[k * d..(k + 1) * d], &one[..d], "{alg} n={n} k={k}");
                assert_eq!(
                    &one[..d],
                    &reference_hash(alg, block)[..],
                    "{alg} n={n} k={k}"
                );
            }
        }
    }
}

fn reference_hash(alg: Algorithm, data: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        Algorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}
