//! The kernel's `FS_IOC_MEASURE_VERITY` equals our userspace fs-verity
//! digest, for both algorithms and sizes that cover every Merkle tree shape
//! (empty, one partial block, exactly one block, two levels, three levels),
//! and `composefs-info measure-file` and `fsverity measure` agree.

use std::fs::File;

use cfs_core::verity::{Algorithm, digest_bytes, digest_file, measure_or_compute};

use super::{bytes, enable, measured, verity_tmp};
use crate::support::{run, tool};

/// Sizes: 0, 1, a block less one, a block, a block plus one, 128 hashes of
/// SHA-256 (one full first-level block) plus one, 64 SHA-512 hashes plus
/// one, 1 MiB + 7, and 17 MiB (three levels for SHA-512, whose blocks hold
/// 64 hashes: 4 KiB · 64 · 64 = 16 MiB).
const SIZES: &[usize] = &[
    0,
    1,
    4095,
    4096,
    4097,
    128 * 4096 + 1,
    64 * 4096 + 1,
    (1 << 20) + 7,
    17 << 20,
];

#[test]
fn kernel_measurement_equals_userspace_digest() {
    let Some(tmp) = verity_tmp("kernel_measurement_equals_userspace_digest") else {
        return;
    };
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        for (i, &size) in SIZES.iter().enumerate() {
            let path = tmp.path().join(format!("{alg}-{size}"));
            let content = bytes(size, i as u64 + 1);
            std::fs::write(&path, &content).unwrap();
            let ours = digest_bytes(alg, &content);
            assert_eq!(
                digest_file(alg, &File::open(&path).unwrap(), 2).unwrap(),
                ours,
                "{alg} {size}: digest_file"
            );
            enable(&path, alg);
            let kernel = measured(&path).unwrap();
            assert_eq!(kernel, ours, "{alg}, {size} bytes: kernel vs userspace");
            assert_eq!(kernel.algorithm(), alg);
            // measure_or_compute takes the kernel's value now.
            assert_eq!(
                measure_or_compute(&File::open(&path).unwrap(), alg).unwrap(),
                ours
            );
            // The fsverity tool reads the same measurement.
            let out = run(std::process::Command::new("fsverity")
                .arg("measure")
                .arg(&path));
            assert!(out.status.success(), "fsverity measure: {out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                text.split_whitespace().next(),
                Some(format!("{alg}:{}", ours.to_hex()).as_str()),
                "fsverity measure {size}"
            );
            if alg == Algorithm::Sha256 {
                // composefs-info measure-file prints the SHA-256 digest (from the kernel).
                let out = run(tool("composefs-info").arg("measure-file").arg(&path));
                assert!(out.status.success());
                assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), ours.to_hex());
            }
        }
    }
}
