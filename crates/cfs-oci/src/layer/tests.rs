//! Tests of tar splitting and layer import.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::process::Command;

use cfs_core::repository::{InitOptions, Repository};
use cfs_core::splitstream::{ContentType, SplitStream, SplitStreamWriter};
use cfs_core::verity::{Algorithm, Digest, digest_bytes, push_hex};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

use super::*;

// ---- a small tar writer ------------------------------------------------

/// A ustar header block for `name` with type `typeflag` and `size`.
fn header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    set_checksum(&mut h);
    h
}

fn set_checksum(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// Header, data and padding of one entry.
fn entry(name: &str, typeflag: u8, data: &[u8]) -> Vec<u8> {
    let mut out = header(name, typeflag, data.len() as u64).to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    entry(name, b'0', data)
}

/// A PAX `x` header with `records` (key, value).
fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = format!(" {k}={v}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len}{body}").as_bytes());
    }
    entry("PaxHeaders/x", b'x', &data)
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn diff_id(bytes: &[u8]) -> String {
    let mut s = String::from("sha256:");
    push_hex(&mut s, &Sha256::digest(bytes));
    s
}

// ---- helpers -----------------------------------------------------------

/// A split stream file, its objects, and the stats.
type Split = (Vec<u8>, HashMap<Digest, Vec<u8>>, TarStats);

/// Splits `tar` into memory; returns the stream file, the objects and stats.
fn split_mem(tar: &[u8]) -> Result<Split, LayerError> {
    let mut objects = HashMap::new();
    let mut writer = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    let mut store = |r: &mut dyn Read, size: u64| {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        assert_eq!(v.len() as u64, size);
        let d = digest_bytes(Algorithm::Sha256, &v);
        objects.insert(d, v);
        Ok(d)
    };
    let stats = split_tar(tar, &mut writer, &mut store)?;
    Ok((writer.finish()?, objects, stats))
}

/// Splits in memory, reassembles, and checks the bytes and the external set.
fn check_mem(tar: &[u8], large: &[&[u8]]) -> TarStats {
    let (stream, objects, stats) = split_mem(tar).expect("split");
    let parsed = SplitStream::parse(&stream).unwrap();
    let mut out = Vec::new();
    parsed.cat(&mut out, |d| Ok(objects[d].as_slice())).unwrap();
    assert!(out == tar, "reassembled bytes differ");
    assert_eq!(stats.bytes, tar.len() as u64);
    let refs: BTreeSet<Digest> = parsed.object_refs().collect();
    let expected: BTreeSet<Digest> = large
        .iter()
        .map(|c| digest_bytes(Algorithm::Sha256, c))
        .collect();
    assert_eq!(refs, expected);
    stats
}

fn new_repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        insecure: true,
        ..InitOptions::default()
    };
    let (repo, _) = Repository::init(&dir.path().join("repo"), &opts).unwrap();
    (dir, repo)
}

/// Stream names under `streams/` (not refs).
fn stream_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("repo/streams"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "refs")
                .collect()
        })
        .unwrap_or_default()
}

/// Imports `tar` into a fresh repository, checks the round trip, that
/// exactly the regular files > 64 bytes among `files` are external, and
/// that a wrong diff_id registers nothing.
fn check_repo(tar: &[u8], files: &[Vec<u8>]) {
    let (dir, repo) = new_repo();
    let id = diff_id(tar);
    let import = import_layer(&repo, &id, tar, &LayerOptions::default()).unwrap();
    assert!(!import.existed);
    assert_eq!(import.stream_id, format!("oci-layer-{id}"));
    assert_eq!(import.bytes, tar.len() as u64);
    let mut out = Vec::new();
    repo.cat_stream(&import.stream_id, &mut out).unwrap();
    assert!(out == tar, "cat_stream differs from the tar");
    let (data, _) = repo.read_stream_bytes(&import.stream_id).unwrap();
    let parsed = SplitStream::parse(&data).unwrap();
    assert_eq!(parsed.content_type(), ContentType::OCI_LAYER);
    let refs: BTreeSet<Digest> = parsed.object_refs().collect();
    let alg = repo.algorithm();
    for f in files {
        let d = digest_bytes(alg, f);
        assert_eq!(refs.contains(&d), f.len() > 64, "file of {} bytes", f.len());
    }
    // Already present: not read again.
    let again = import_layer(&repo, &id, std::io::empty(), &LayerOptions::default()).unwrap();
    assert!(again.existed);
    assert_eq!(again.object, import.object);

    let (dir2, repo2) = new_repo();
    let wrong = diff_id(b"something else");
    let err = import_layer(&repo2, &wrong, tar, &LayerOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LayerError::DiffIdMismatch { expected, found } if *expected == wrong && *found == id),
        "{err}"
    );
    assert!(stream_names(dir2.path()).is_empty());
    drop(dir);
}

fn problem(tar: &[u8]) -> TarProblem {
    match split_mem(tar) {
        Err(LayerError::Tar { problem, .. }) => problem,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted"),
    }
}

// ---- hand-built tars ---------------------------------------------------

#[test]
fn empty_layer() {
    let stats = check_mem(b"", &[]);
    assert_eq!(stats, TarStats::default());
    check_repo(b"", &[]);
}

#[test]
fn no_end_blocks_is_clean() {
    let big = content(1, 1000);
    let mut tar = file("big", &big);
    tar.extend(file("small", b"hello"));
    let stats = check_mem(&tar, &[&big]);
    assert_eq!(stats.external_files, 1);
    assert_eq!(stats.entries, 2);
    check_repo(&tar, &[big, b"hello".to_vec()]);
}

#[test]
fn threshold_64_65() {
    let (a, b) = (content(2, 64), content(3, 65));
    let mut tar = file("a", &a);
    tar.extend(file("b", &b));
    tar.extend([0u8; 1024]);
    check_mem(&tar, &[&b]);
    check_repo(&tar, &[a, b]);
}

#[test]
fn trailing_garbage_and_go_style() {
    let big = content(4, 5000);
    // Go's archive/tar: two end blocks, no record padding.
    let mut tar = file("f", &big);
    tar.extend([0u8; 1024]);
    check_mem(&tar, &[&big]);
    tar.extend(b"GARBAGE");
    check_mem(&tar, &[&big]);
    check_repo(&tar, &[big]);
}

#[test]
fn one_zero_block_then_eof_fails() {
    let mut tar = file("f", b"x");
    tar.extend([0u8; 512]);
    assert!(matches!(problem(&tar), TarProblem::EofInHeader));
    // A stray zero block before a header is skipped.
    let mut tar = file("f", b"x");
    tar.extend([0u8; 512]);
    let big = content(5, 300);
    tar.extend(file("g", &big));
    check_mem(&tar, &[&big]);
}

#[test]
fn truncation() {
    let tar = file("f", &content(6, 1000));
    assert!(matches!(problem(&tar[..300]), TarProblem::EofInHeader));
    assert!(matches!(problem(&tar[..900]), TarProblem::EofInEntry));
    assert!(matches!(problem(&tar[..1520]), TarProblem::EofInPadding));
    let small = file("s", b"tiny");
    assert!(matches!(problem(&small[..520]), TarProblem::EofInPadding));
    // An absurd size is a truncation, not an allocation.
    let mut h = header("huge", b'0', 0);
    h[124] = 0x80;
    h[125..128].fill(0);
    h[128..136].fill(0xff);
    set_checksum(&mut h);
    assert!(matches!(problem(&h), TarProblem::EofInEntry));
    let mut h = header("huge", b'5', 0);
    h[124..136].copy_from_slice(b"77777777777\0");
    set_checksum(&mut h);
    assert!(matches!(problem(&h), TarProblem::EofInEntry));
}

#[test]
fn bad_checksum() {
    let mut tar = file("f", b"x");
    tar[0] = b'g';
    let err = split_mem(&tar).unwrap_err();
    assert!(
        matches!(&err, LayerError::Tar { problem: TarProblem::BadChecksum { .. }, path: Some(p), offset: 0 } if p == "g"),
        "{err}"
    );
    assert!(err.to_string().contains("\"g\" at offset 0"), "{err}");
}

#[test]
fn sparse_rejected() {
    let tar = entry("s", b'S', b"");
    assert!(matches!(problem(&tar), TarProblem::Sparse));
    let mut tar = pax(&[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")]);
    tar.extend(file("s", b"x"));
    let err = split_mem(&tar).unwrap_err();
    assert_eq!(
        err.to_string().split(" (").next(),
        Some("sparse tar entries are not supported")
    );
}

#[test]
fn pax_size_override_and_path() {
    let big = content(7, 100);
    let mut tar = pax(&[("path", "a/very/long/name"), ("size", "100")]);
    let mut h = header("short", b'0', 0);
    set_checksum(&mut h);
    tar.extend(h);
    tar.extend(&big);
    tar.resize(tar.len().next_multiple_of(512), 0);
    tar.extend(file("after", b"x"));
    check_mem(&tar, &[&big]);
    check_repo(&tar, &[big]);
    // Truncated overridden content names the PAX path.
    let err = split_mem(&tar[..1024 + 50]).unwrap_err();
    assert!(err.to_string().contains("a/very/long/name"), "{err}");
}

#[test]
fn pax_errors_and_limits() {
    let mut tar = pax(&[("mtime", "-5.25")]);
    tar.extend(file("f", b"x"));
    assert!(matches!(problem(&tar), TarProblem::BadPaxValue { .. }));
    let mut tar = pax(&[("size", "x")]);
    tar.extend(file("f", b"x"));
    assert!(matches!(problem(&tar), TarProblem::BadPaxValue { .. }));
    let mut tar = pax(&[("size", "18446744073709551615")]);
    tar.extend(file("f", b"x"));
    assert!(matches!(problem(&tar), TarProblem::EofInEntry));
    // Too large: rejected from the header, before reading the data.
    let h = header("PaxHeaders/x", b'x', 2 << 20);
    assert!(matches!(problem(&h), TarProblem::MetadataTooLarge { .. }));
    let h = header("././@LongLink", b'L', (1 << 20) + 1);
    assert!(matches!(problem(&h), TarProblem::MetadataTooLarge { .. }));
    let mut tar = Vec::new();
    for _ in 0..=MAX_PENDING_EXTENSIONS {
        tar.extend(pax(&[("comment", "x")]));
    }
    assert!(matches!(problem(&tar), TarProblem::TooManyExtensions));
    let mut tar = entry("PaxHeaders/x", b'x', b"5 a\n");
    tar.extend(file("f", b"x"));
    assert!(matches!(problem(&tar), TarProblem::BadPaxRecord));
}

#[test]
fn gnu_long_name_and_non_regular_data() {
    let name = "n".repeat(150);
    let big = content(8, 700);
    let mut tar = entry("././@LongLink", b'L', format!("{name}\0").as_bytes());
    tar.extend(file("short", &big));
    // A hard link carrying data keeps it inline.
    let linkdata = content(9, 200);
    tar.extend(entry("link", b'1', &linkdata));
    // Contiguous files count as regular.
    let contig = content(10, 90);
    tar.extend(entry("contig", b'7', &contig));
    tar.extend([0u8; 10240 - 512]);
    tar.truncate(tar.len().next_multiple_of(512));
    check_mem(&tar, &[&big, &contig]);
    let err = split_mem(&tar[..1024 + 10]).unwrap_err();
    assert!(err.to_string().contains(&name), "{err}");
}

#[test]
fn invalid_diff_id() {
    let (_dir, repo) = new_repo();
    for bad in [
        "sha256:abc",
        "sha512:00",
        &format!("sha256:{}", "A".repeat(64)),
    ] {
        let err = import_layer(&repo, bad, &b""[..], &LayerOptions::default()).unwrap_err();
        assert!(matches!(err, LayerError::InvalidDiffId(_)), "{err}");
    }
}

// ---- tars from GNU tar ---------------------------------------------------

fn have_tar() -> bool {
    Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A tree with files around the threshold, long names, links, and (when
/// possible) xattrs and devices; returns the regular file contents.
fn make_tree(root: &Path, long_names: bool) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut add = |rel: &str, data: Vec<u8>| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        files.push(data);
    };
    for (i, len) in [0usize, 1, 63, 64, 65, 511, 512, 513, 100 << 10]
        .into_iter()
        .enumerate()
    {
        add(&format!("f{i}"), content(100 + i as u64, len));
    }
    let deep = format!("{}/{}/deep", "d".repeat(60), "e".repeat(60));
    add(&deep, content(200, 3000));
    if long_names {
        add(&"l".repeat(150), content(201, 70));
    }
    std::os::unix::fs::symlink("f1", root.join("sym")).unwrap();
    std::fs::hard_link(root.join("f4"), root.join("hard")).unwrap();
    let _ = Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.test', b'value')",
        ])
        .arg(root.join("f5"))
        .status();
    if is_root() {
        let _ = Command::new("mknod")
            .arg(root.join("null"))
            .args(["c", "1", "3"])
            .status();
        let _ = Command::new("mkfifo").arg(root.join("fifo")).status();
    }
    files
}

#[test]
fn system_tar_formats() {
    if !have_tar() {
        return;
    }
    for format in ["gnu", "posix", "ustar"] {
        let dir = tempfile::tempdir().unwrap();
        let files = make_tree(dir.path(), format != "ustar");
        let out = Command::new("tar")
            .args([&format!("--format={format}"), "--xattrs", "-cf", "-", "-C"])
            .arg(dir.path())
            .arg(".")
            .output()
            .unwrap();
        assert!(out.status.success(), "tar --format={format} failed");
        let large: Vec<&[u8]> = files
            .iter()
            .filter(|f| f.len() > 64)
            .map(Vec::as_slice)
            .collect();
        check_mem(&out.stdout, &large);
        check_repo(&out.stdout, &files);
    }
}

#[test]
fn system_tar_sparse_rejected() {
    if !have_tar() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("sparse")).unwrap();
    f.set_len(1 << 20).unwrap();
    drop(f);
    for format in ["gnu", "posix"] {
        let out = Command::new("tar")
            .args([&format!("--format={format}"), "--sparse", "-cf", "-", "-C"])
            .arg(dir.path())
            .arg("sparse")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            matches!(problem(&out.stdout), TarProblem::Sparse),
            "{format}"
        );
    }
}

// ---- random round trips ------------------------------------------------

fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..130, 500usize..530, 0usize..(200 << 10)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_round_trip(
        sizes in proptest::collection::vec(size_strategy(), 0..8),
        seed in any::<u64>(),
        end in 0usize..4,
    ) {
        let mut tar = Vec::new();
        let mut large = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let data = content(seed ^ i as u64, len);
            tar.extend(file(&format!("file{i}"), &data));
            if len > 64 {
                large.push(data);
            }
        }
        match end {
            0 => {}
            1 => tar.extend([0u8; 1024]),
            2 => {
                tar.extend([0u8; 1024]);
                tar.resize(tar.len().next_multiple_of(10240), 0);
            }
            _ => {
                tar.extend([0u8; 1024]);
                tar.extend(content(seed, 33));
            }
        }
        let refs: Vec<&[u8]> = large.iter().map(Vec::as_slice).collect();
        let stats = check_mem(&tar, &refs);
        prop_assert_eq!(stats.external_files, large.len() as u64);
        prop_assert_eq!(stats.entries, sizes.len() as u64);
    }
}
