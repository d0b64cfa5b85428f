//! The EROFS writer against the C `mkcomposefs` corpus.
//!
//! Every `fromfile` row of `tests/fixtures/compat/manifest.tsv` and every
//! `shouldfail` row that C accepted (exit code 0) is parsed with the
//! C-compatible dump parser and written; the image's SHA-256, size and header
//! version must equal the manifest's. Rows where C failed must fail here too,
//! and where C failed while writing (`cannot write file: …`) with the same
//! message. A sample of the images is checked with `fsck.erofs`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cfs_core::dumpfile::{ParseOptions, parse_dumpfile};
use cfs_core::erofs::reader::{ReadOptions, read_image};
use cfs_core::erofs::writer::{WriteOptions, write_image};
use cfs_core::tree::{FileSystem, InodeKind, RegularFile};
use sha2::{Digest as _, Sha256};

#[path = "../../../tests/fixtures/corpus.rs"]
mod corpus;

use corpus::{Row, manifest};

fn corpus() -> PathBuf {
    corpus::dir()
}

fn options(row: &Row) -> (ParseOptions, WriteOptions) {
    let strict = row.kind == "shouldfail" && row.variant == "strict";
    let write = match (row.kind.as_str(), row.variant.as_str()) {
        // `--min-version=1` alone: the other bound defaults to 0 and is raised.
        ("fromfile", "minv1") => WriteOptions {
            min_version: 1,
            max_version: 0,
        },
        _ => WriteOptions::default(),
    };
    (ParseOptions { strict }, write)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An image built from a corpus row.
#[derive(Debug)]
struct Built {
    image: Vec<u8>,
    version: u32,
    huge_file: bool,
}

/// Builds the image of a row, or fails with the message C prints.
fn build(row: &Row) -> Result<Built, String> {
    let (parse, write) = options(row);
    let input = fs::read(corpus().join(format!("{}.dump", row.case))).expect("dump file");
    let tree = parse_dumpfile(&input[..], &parse).map_err(|e| e.c_message())?;
    let mut image = Vec::new();
    let summary =
        write_image(&tree, &write, &mut image).map_err(|e| format!("cannot write file: {e}"))?;
    assert_eq!(summary.size, image.len() as u64);
    Ok(Built {
        image,
        version: summary.composefs_version,
        huge_file: has_huge_file(&tree),
    })
}

/// Where `image` first differs from the shipped C image, if there is one.
fn first_difference(row: &Row, image: &[u8]) -> String {
    let path = corpus().join(format!("{}.{}.cfs", row.case, row.variant));
    let Ok(c) = fs::read(&path) else {
        return String::new();
    };
    match image.iter().zip(&c).position(|(a, b)| a != b) {
        Some(off) => format!(
            " (first difference from the C image at {off:#x}: nid {} / block {})",
            off / 32,
            off / 4096
        ),
        None => format!(" (C image {} bytes, ours {})", c.len(), image.len()),
    }
}

/// Whether `fs` has a file whose chunk map may not fit inline (more than
/// 512 chunks of 2^43 bytes). C then writes the map to a data block, where
/// readers do not look for it, and `fsck.erofs --extract` rejects the image
/// (it does so for C's own images too).
fn has_huge_file(fs: &FileSystem) -> bool {
    fs.inodes().iter().any(
        |i| matches!(&i.kind, InodeKind::Regular(RegularFile::External(e)) if e.size > 1 << 52),
    )
}

/// Runs `fsck.erofs` on `path` with a time limit; with `extract`, it also
/// reads every directory and file (`--extract` without a destination).
fn fsck(path: &Path, extract: bool) -> Result<(), String> {
    let mut cmd = Command::new("fsck.erofs");
    if extract {
        cmd.arg("--extract");
    }
    let mut child = cmd
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fsck.erofs is required (apt-get install erofs-utils): {e}"))?;
    let start = Instant::now();
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "fsck.erofs {} did not finish in 60 s",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "fsck.erofs {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether the image of a row is checked with `fsck.erofs`.
fn fsck_sample(row: &Row) -> bool {
    if row.variant != "default" && row.variant != "strict" {
        return false;
    }
    // A file of 2^64 - 1 bytes without chunk map (C's chunk count wraps to
    // 0): fsck.erofs 1.5 walks its 2^64 bytes and never finishes.
    if row.case == "sf-negative-size" {
        return false;
    }
    if row.case.starts_with("edge-") || row.case.starts_with("quirk-") || row.kind == "shouldfail" {
        return true;
    }
    row.case
        .strip_prefix("rand-")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n % 10 == 0)
}

#[test]
fn corpus_images_are_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut fscked = 0;
    let mut failures = Vec::new();
    for row in manifest() {
        let accepted = row.exit_code == 0;
        if row.kind == "dir" || (row.kind == "shouldfail" && !accepted) {
            continue;
        }
        assert_eq!(row.exit_code, 0, "{row:?}");
        checked += 1;
        let id = format!("{} {}", row.case, row.variant);
        let Built {
            image,
            version,
            huge_file,
        } = match build(&row) {
            Ok(built) => built,
            Err(e) => {
                failures.push(format!("{id}: C wrote an image, we failed: {e}"));
                continue;
            }
        };
        let sha = hex(&Sha256::digest(&image));
        if sha != row.sha256 || Some(image.len() as u64) != row.size {
            failures.push(format!(
                "{id}: sha256 {sha} size {} (want {} size {}){}",
                image.len(),
                row.sha256,
                row.size.unwrap_or_default(),
                first_difference(&row, &image)
            ));
            continue;
        }
        if Some(version) != row.version {
            failures.push(format!("{id}: version {version}, want {:?}", row.version));
        }
        if fsck_sample(&row) {
            let path = tmp.path().join(format!("{}.{}.img", row.case, row.variant));
            fs::write(&path, &image).unwrap();
            if let Err(e) = fsck(&path, !huge_file) {
                failures.push(format!("{id}: {e}"));
            }
            fscked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 255 fromfile cases × 2 variants + 19 accepted should-fail rows.
    assert_eq!(checked, 529, "rows checked");
    assert!(
        fscked >= 100,
        "only {fscked} images checked with fsck.erofs"
    );
}

#[test]
fn corpus_failures_fail() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in manifest() {
        if row.kind != "shouldfail" || row.exit_code == 0 {
            continue;
        }
        checked += 1;
        let id = format!("{} {}", row.case, row.variant);
        let stderr_path = corpus().join(format!("{}.{}.stderr", row.case, row.variant));
        let c_err = fs::read_to_string(&stderr_path).unwrap_or_default();
        let c_err = c_err
            .trim_end()
            .strip_prefix("mkcomposefs: ")
            .unwrap_or(&c_err);
        match build(&row) {
            Ok(_) => failures.push(format!("{id}: C failed ({c_err}), we wrote an image")),
            // Only errors C reports while writing are the writer's business.
            Err(e) if c_err.starts_with("cannot write file: ") && e != c_err => {
                failures.push(format!("{id}: error {e:?}, C said {c_err:?}"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 97, "rows checked");
}

#[test]
fn too_big_file_fails_like_c() {
    for variant in ["default", "strict"] {
        let row = manifest()
            .into_iter()
            .find(|r| r.case == "sf-too-big" && r.variant == variant)
            .expect("sf-too-big row");
        assert_eq!(row.exit_code, 1);
        assert_eq!(
            build(&row).unwrap_err(),
            "cannot write file: File too large"
        );
    }
}

// ---------------------------------------------------------------------------
// Random trees: properties that hold for every tree the writer accepts.

mod random {
    use cfs_core::tree::{
        DirEntry, Directory, ExternalFile, FileSystem, Inode, InodeId, InodeKind, Mtime,
        RegularFile, Stat, Xattrs,
    };
    use cfs_core::verity::Digest;

    /// xorshift64*.
    pub(super) struct Rng(u64);

    impl Rng {
        pub(super) fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }

        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub(super) fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len() as u64) as usize]
        }
    }

    const XATTR_NAMES: &[&[u8]] = &[
        b"user.a",
        b"user.mime",
        b"user.overlay.opaque",
        b"user.overlay.whiteouts",
        b"trusted.overlay.opaque",
        b"trusted.overlay.redirect",
        b"trusted.overlay.overlay.x",
        b"trusted.foo",
        b"security.selinux",
        b"security.capability",
        b"system.posix_acl_access",
        b"system.posix_acl_default",
        b"lustre.x",
        b"other.ns",
    ];
    const VALUES: &[&[u8]] = &[b"", b"x", b"y", b"system_u:object_r:usr_t:s0", b"a=b c"];
    const TIMES: &[(i64, u32)] = &[(0, 0), (1_700_000_000, 0), (1_700_000_000, 5), (-10, 5)];

    fn stat(rng: &mut Rng, mode: u16) -> Stat {
        let mut xattrs = Xattrs::new();
        for _ in 0..rng.below(4) {
            let name = rng.pick(XATTR_NAMES);
            let value = if rng.chance(80) {
                rng.pick(VALUES).to_vec()
            } else {
                let len = rng.below(300) as usize;
                rng.bytes(len)
            };
            xattrs.set(name, &value);
        }
        let (sec, nsec) = *rng.pick(TIMES);
        let big = |rng: &mut Rng| {
            if rng.chance(10) {
                70_000 + rng.below(1 << 31) as u32
            } else {
                rng.below(3) as u32
            }
        };
        Stat {
            mode,
            uid: big(rng),
            gid: big(rng),
            mtime: Mtime::new(sec, nsec),
            xattrs,
        }
    }

    fn name(rng: &mut Rng) -> Vec<u8> {
        let names: &[&[u8]] = &[
            b"a",
            b"-x",
            b"00",
            b"0f",
            b"ff",
            b"f",
            b"zz",
            b"\xff\x01",
            b"etc",
        ];
        let mut n = rng.pick(names).to_vec();
        if rng.chance(70) {
            n.extend_from_slice(format!("{}", rng.below(1000)).as_bytes());
        }
        if rng.chance(5) {
            n.resize(255, b'n');
        }
        n
    }

    fn digest(rng: &mut Rng, sha512: bool) -> Digest {
        let bytes = rng.bytes(if sha512 { 64 } else { 32 });
        Digest::from_bytes(&bytes).expect("digest length")
    }

    fn kind(rng: &mut Rng, sha512: bool, digests: &mut Vec<Digest>) -> (u16, InodeKind) {
        match rng.below(12) {
            0..=2 => {
                let len = match rng.below(6) {
                    0 => 0,
                    1 => 2048 + rng.below(3) as usize,
                    2 => 4096,
                    3 => 4097 + rng.below(903) as usize,
                    _ => rng.below(100) as usize,
                };
                (
                    0o644,
                    InodeKind::Regular(RegularFile::Inline(rng.bytes(len).into())),
                )
            }
            3..=6 => {
                let size = match rng.below(64) {
                    0 => 1 << 53,
                    1 => 9_000_000_000_000_000,
                    2..=5 => (1 << 32) + rng.below(100),
                    6..=10 => (1 << 43) * (1 + rng.below(500)),
                    _ => 1 + rng.below(1 << 30),
                };
                let d = if !digests.is_empty() && rng.chance(30) {
                    *rng.pick(digests)
                } else {
                    let long = sha512 && rng.chance(50);
                    let d = digest(rng, long);
                    digests.push(d);
                    d
                };
                let payload = rng.chance(85).then(|| d.object_path().into_bytes().into());
                let digest = rng.chance(85).then_some(d);
                let ext = ExternalFile {
                    size,
                    payload,
                    digest,
                };
                (0o644, InodeKind::Regular(RegularFile::External(ext)))
            }
            7 => {
                let len = match rng.below(5) {
                    0 => 4095,
                    1 => 3000 + rng.below(1095) as usize,
                    _ => 1 + rng.below(60) as usize,
                };
                let target: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                (0o777, InodeKind::Symlink(target.into()))
            }
            8 => (0o600, InodeKind::CharDevice(0)),
            9 => (0o666, InodeKind::CharDevice(rng.below(1 << 20) as u32 + 1)),
            10 => (0o660, InodeKind::BlockDevice(rng.below(1 << 20) as u32)),
            _ => {
                if rng.chance(50) {
                    (0o644, InodeKind::Fifo)
                } else {
                    (0o755, InodeKind::Socket)
                }
            }
        }
    }

    /// A random tree of about `size` entries. With `sha512`, some digests are
    /// SHA-512 (which composefs-dump cannot carry). Hard links always come
    /// after their primary name in depth-first name order.
    pub(super) fn tree(seed: u64, size: usize, sha512: bool) -> FileSystem {
        let mut rng = Rng::new(seed);
        let root_stat = stat(&mut rng, 0o755);
        let mut fs = FileSystem::new(root_stat);
        let mut dirs = vec![fs.root()];
        let mut files: Vec<(InodeId, InodeId, Vec<u8>)> = Vec::new();
        let mut digests = Vec::new();
        let big_dir = rng.chance(20);
        for i in 0..size {
            let parent = if big_dir { fs.root() } else { *rng.pick(&dirs) };
            let mut n = name(&mut rng);
            if big_dir {
                n.splice(0..0, format!("{i}-").bytes());
                n.truncate(255);
            }
            if fs.directory(parent).expect("dir").get(&n).is_some() {
                continue;
            }
            let (mode, kind) = if rng.chance(25) {
                (0o755, InodeKind::Directory(Directory::new()))
            } else {
                kind(&mut rng, sha512, &mut digests)
            };
            let is_dir = matches!(kind, InodeKind::Directory(_));
            let st = stat(&mut rng, mode);
            let mut inode = Inode::new(st, kind);
            inode.nlink = 1 + rng.below(3) as u32;
            let id = fs.push_inode(inode);
            let entry = DirEntry {
                name: n.clone().into(),
                inode: id,
                alias: false,
            };
            fs.directory_mut(parent)
                .expect("dir")
                .insert(entry)
                .expect("new name");
            if is_dir {
                dirs.push(id);
            } else {
                files.push((parent, id, n));
            }
        }
        // Hard links: a later name in the same directory.
        for _ in 0..rng.below(files.len() as u64 / 4 + 1) {
            let Some((parent, id, n)) = files.get(rng.below(files.len() as u64) as usize) else {
                break;
            };
            let mut link = n.clone();
            link.extend_from_slice(b"~link");
            link.truncate(255);
            let entry = DirEntry {
                name: link.into(),
                inode: *id,
                alias: true,
            };
            let _ = fs.directory_mut(*parent).expect("dir").insert(entry);
        }
        fs
    }
}

fn u32_at(image: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(image[off..off + 4].try_into().unwrap())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Every accepted tree gives a well-formed, deterministic image that
    /// passes fsck.erofs, and the same image after a round trip through
    /// composefs-dump (which carries exactly what the image depends on).
    #[test]
    fn random_trees(seed: u64, size in 0usize..120, max_version in 0u32..2) {
        let fs = random::tree(seed, size, false);
        let opts = WriteOptions { min_version: 0, max_version };
        let mut image = Vec::new();
        let summary = write_image(&fs, &opts, &mut image).unwrap();
        proptest::prop_assert_eq!(summary.size, image.len() as u64);
        proptest::prop_assert_eq!(image.len() % 4096, 0);
        proptest::prop_assert_eq!(u32_at(&image, 0), 0xd078_629a);
        proptest::prop_assert_eq!(u32_at(&image, 12), summary.composefs_version);
        proptest::prop_assert_eq!(u32_at(&image, 1024), 0xe0f5_e1e2);
        proptest::prop_assert_eq!(u32_at(&image, 1024 + 36) as usize * 4096, image.len());
        let whiteouts = fs.inodes().iter().any(|i| i.kind.is_whiteout());
        proptest::prop_assert_eq!(summary.composefs_version, u32::from(whiteouts && max_version == 1));

        let mut again = Vec::new();
        write_image(&fs, &opts, &mut again).unwrap();
        proptest::prop_assert!(again == image, "not deterministic");

        // The validating reader accepts it (dirent types match inodes, tails
        // stay in their blocks, xattrs and chunk maps are well formed, ...).
        read_image(&image, &ReadOptions::default())
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;

        let mut dump = Vec::new();
        cfs_core::dumpfile::write_dumpfile(&fs, &mut dump).unwrap();
        let reparsed = parse_dumpfile(&dump[..], &ParseOptions::default()).unwrap();
        let mut via_dump = Vec::new();
        write_image(&reparsed, &opts, &mut via_dump).unwrap();
        proptest::prop_assert!(via_dump == image, "dump round trip changed the image");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        fs::write(&path, &image).unwrap();
        fsck(&path, !has_huge_file(&fs)).map_err(proptest::test_runner::TestCaseError::fail)?;
    }

    /// SHA-512 digests (repositories): metacopy `00 44 00 02` + 64 bytes.
    #[test]
    fn random_trees_sha512(seed: u64, size in 0usize..60) {
        let fs = random::tree(seed, size, true);
        let mut image = Vec::new();
        write_image(&fs, &WriteOptions::default(), &mut image).unwrap();
        read_image(&image, &ReadOptions::default())
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        fs::write(&path, &image).unwrap();
        fsck(&path, !has_huge_file(&fs)).map_err(proptest::test_runner::TestCaseError::fail)?;
    }
}
