//! composefs-dump parser and printers against the C compatibility corpus
//! (`tests/fixtures/compat`), plus round-trip property tests and a speed probe.

use std::fs;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use cfs_core::dumpfile::{
    ParseError, ParseOptions, parse_dumpfile, write_dumpfile, write_ls, write_objects,
};
use cfs_core::tree::FileSystem;

#[path = "../../../tests/fixtures/corpus.rs"]
mod corpus;

use corpus::manifest;

fn corpus() -> PathBuf {
    corpus::dir()
}

fn read(name: &str) -> Vec<u8> {
    fs::read(corpus().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Reads a C output file. Outputs identical to another variant's are stored
/// as relative symlinks; in checkouts without symlink support they are plain
/// files holding the target's name, which is followed here.
fn read_output(name: &str) -> Vec<u8> {
    let bytes = read(name);
    let is_pointer = bytes.len() < 256
        && !bytes.is_empty()
        && !bytes.contains(&b'\n')
        && !bytes.contains(&b'/')
        && bytes.starts_with(name.split('.').next().unwrap_or_default().as_bytes())
        && corpus().join(show(&bytes)).is_file();
    if is_pointer {
        read(&show(&bytes))
    } else {
        bytes
    }
}

fn parse(bytes: &[u8], strict: bool) -> Result<FileSystem, ParseError> {
    parse_dumpfile(Cursor::new(bytes), &ParseOptions { strict })
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every should-fail row: same verdict and same message as C.
#[test]
fn shouldfail_rows_match_c() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in manifest().iter().filter(|r| r.kind == "shouldfail") {
        let input = read(&format!("{}.dump", row.case));
        let strict = match row.variant.as_str() {
            "default" => false,
            "strict" => true,
            v => panic!("unknown variant {v}"),
        };
        let result = parse(&input, strict);
        let stderr = read(&format!("{}.{}.stderr", row.case, row.variant));
        let stderr = show(&stderr);
        let stderr = stderr.strip_suffix('\n').unwrap_or(&stderr).to_owned();
        let writer_failure = stderr.starts_with("mkcomposefs: cannot write file:");
        checked += 1;
        match (row.exit_code, result) {
            (0, Ok(fs)) => fs.validate().expect("valid tree"),
            (1, Ok(_)) if writer_failure => {}
            (1, Err(e)) if !writer_failure => {
                let ours = format!("mkcomposefs: {}", show(&e.c_message_bytes()));
                if ours != stderr {
                    failures.push(format!(
                        "{} {}: {ours:?} != {stderr:?}",
                        row.case, row.variant
                    ));
                }
            }
            (code, r) => failures.push(format!(
                "{} {}: C exit {code} ({stderr:?}), ours {:?}",
                row.case,
                row.variant,
                r.err().map(|e| e.to_string())
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 116, "should-fail rows checked");
}

/// Inputs that C accepts only without `CFS_PARSE_STRICT`, and why strict fails.
/// (`rand-*` and `edge-*` are recorded as strict-clean in the corpus README;
/// these two quirks are the non-strict-only behaviours of `sf-rdev-on-file-strict`
/// and `sf-symlink-size-mismatch-strict`.)
const NOT_STRICT: [(&str, &str); 3] = [
    ("edge-no-trailing-newline", "Missing trailing newline"),
    (
        "quirk-rdev-on-regular-file",
        "Non-zero devnum on non-device",
    ),
    (
        "quirk-symlink-size-mismatch",
        "Invalid symlink size 3, must match size 5",
    ),
];

/// Every from-file input parses, in both modes (except [`NOT_STRICT`]).
#[test]
fn fromfile_inputs_parse() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in manifest()
        .iter()
        .filter(|r| r.kind == "fromfile" && r.variant == "default")
    {
        let input = read(&format!("{}.dump", row.case));
        for strict in [false, true] {
            let result = parse(&input, strict);
            let strict_error = NOT_STRICT.iter().find(|(c, _)| strict && *c == row.case);
            checked += 1;
            match result {
                Ok(fs) if strict_error.is_none() => {
                    if let Err(e) = fs.validate() {
                        failures.push(format!("{} strict={strict}: invalid tree: {e}", row.case));
                    }
                }
                Err(e) if strict_error.is_some_and(|(_, m)| e.c_message() == *m) => {}
                r => failures.push(format!(
                    "{} strict={strict}: {:?}",
                    row.case,
                    r.err().map(|e| e.to_string())
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 2 * 255, "inputs checked");
}

/// C's own `dump`/`ls`/`objects` outputs are canonical: parsing the dump and
/// printing it again reproduces all three byte for byte.
#[test]
fn c_outputs_round_trip() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in manifest().iter().filter(|r| r.exit_code == 0) {
        let stem = format!("{}.{}", row.case, row.variant);
        let dump = read_output(&format!("{stem}.dump"));
        let fs = match parse(&dump, true) {
            Ok(fs) => fs,
            Err(e) => {
                failures.push(format!("{stem}: parse: {e}"));
                continue;
            }
        };
        fs.validate().expect("valid tree");
        let mut out = Vec::new();
        write_dumpfile(&fs, &mut out).expect("dump");
        let mut ls = Vec::new();
        write_ls(&fs, &mut ls).expect("ls");
        let mut objects = Vec::new();
        write_objects(&fs, &mut objects).expect("objects");
        for (what, ours, theirs) in [
            ("dump", out, dump),
            ("ls", ls, read_output(&format!("{stem}.ls"))),
            ("objects", objects, read_output(&format!("{stem}.objects"))),
        ] {
            if ours != theirs {
                let line = ours
                    .split(|&b| b == b'\n')
                    .zip(theirs.split(|&b| b == b'\n'))
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("\n  ours:   {}\n  theirs: {}", show(a), show(b)))
                    .unwrap_or_else(|| " (length differs)".into());
                failures.push(format!("{stem}.{what} differs{line}"));
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 510 fromfile + 90 dir + 19 accepted should-fail rows.
    assert_eq!(checked, 619, "C outputs checked");
}

/// Parsing from a buffered file works like parsing from memory.
#[test]
fn parses_from_bufreader() {
    let path = corpus().join("edge-hardlink-kinds.dump");
    let file = fs::File::open(path).expect("open");
    let fs = parse_dumpfile(BufReader::new(file), &ParseOptions::default()).expect("parse");
    // The root and five inodes, each with a second name.
    assert_eq!(fs.len(), 1 + 5);
}

// ---------------------------------------------------------------------------
// Round-trip properties over random trees.

mod random_tree {
    use std::collections::{HashMap, HashSet};

    use cfs_core::tree::{
        DirEntry, Directory, ExternalFile, FileSystem, Inode, InodeId, InodeKind, Mtime,
        RegularFile, Stat, Xattr,
    };
    use cfs_core::verity::Digest;

    /// splitmix64: a tiny deterministic generator driven by the proptest seed.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed)
        }

        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }

        /// Bytes of length `min..=max`, avoiding `forbidden`; biased towards
        /// the characters the escaper treats specially.
        fn bytes(&mut self, min: usize, max: usize, forbidden: &[u8]) -> Vec<u8> {
            const SPECIAL: &[u8] = b"\\\n\r\t =-@.\x7f\x80\xff\x00\x01/";
            let len = min + self.below(max - min + 1);
            let mut v = Vec::with_capacity(len);
            while v.len() < len {
                let b = match self.below(4) {
                    0 => SPECIAL[self.below(SPECIAL.len())],
                    1 => self.next() as u8,
                    _ => b'a' + self.below(26) as u8,
                };
                if !forbidden.contains(&b) {
                    v.push(b);
                }
            }
            v
        }

        fn number(&mut self) -> u64 {
            match self.below(4) {
                0 => self.below(3) as u64,
                1 => self.next(),
                2 => u64::from(self.next() as u32),
                _ => self.below(70000) as u64,
            }
        }
    }

    fn stat(rng: &mut Rng) -> Stat {
        let mut names = HashSet::new();
        let mut xattrs = Vec::new();
        for _ in 0..rng.below(5) {
            let name = rng.bytes(1, 30, b"\0");
            if names.insert(name.clone()) {
                let value = rng.bytes(0, 40, b"");
                xattrs.push(Xattr {
                    name: name.into(),
                    value: value.into(),
                });
            }
        }
        Stat {
            mode: (rng.next() & 0o7777) as u16,
            uid: rng.number() as u32,
            gid: rng.number() as u32,
            mtime: Mtime::new(rng.next() as i64 >> rng.below(64), rng.number() as u32),
            xattrs: xattrs.into_iter().collect(),
        }
    }

    fn name(rng: &mut Rng) -> Vec<u8> {
        loop {
            let n = if rng.chance(3) {
                rng.bytes(255, 255, b"/\0")
            } else {
                rng.bytes(1, 12, b"/\0")
            };
            if n != b"." && n != b".." {
                return n;
            }
        }
    }

    fn kind(rng: &mut Rng) -> InodeKind {
        match rng.below(9) {
            0 | 1 => InodeKind::Directory({
                let mut d = Directory::new();
                d.size = rng.number();
                d
            }),
            2 => {
                let len = if rng.chance(5) { 5000 } else { rng.below(80) };
                InodeKind::Regular(RegularFile::Inline(rng.bytes(len, len, b"").into()))
            }
            3 => InodeKind::Regular(RegularFile::External(ExternalFile {
                size: rng.number().max(1),
                payload: rng.chance(70).then(|| rng.bytes(1, 130, b"\0").into()),
                digest: rng.chance(70).then(|| {
                    let mut d = [0u8; 32];
                    d.iter_mut().for_each(|b| *b = rng.next() as u8);
                    Digest::sha256(d)
                }),
            })),
            4 => InodeKind::Symlink(if rng.chance(5) {
                rng.bytes(4095, 4095, b"\0").into()
            } else {
                rng.bytes(1, 40, b"\0").into()
            }),
            5 => InodeKind::CharDevice(if rng.chance(30) {
                0
            } else {
                rng.number() as u32
            }),
            6 => InodeKind::BlockDevice(rng.number() as u32),
            7 => InodeKind::Fifo,
            _ => InodeKind::Socket,
        }
    }

    /// A random valid tree whose primary names are the first in depth-first
    /// name order (what a dump can express).
    pub(crate) fn generate(seed: u64) -> FileSystem {
        let mut rng = Rng::new(seed);
        let mut fs = FileSystem::new(stat(&mut rng));
        fs.inode_mut(InodeId::ROOT).nlink = rng.number() as u32;
        let mut dirs = vec![InodeId::ROOT];
        let mut files = Vec::new();
        let mut taken: HashSet<(InodeId, Vec<u8>)> = HashSet::new();
        for _ in 0..rng.below(60) {
            let parent = dirs[rng.below(dirs.len())];
            let name = name(&mut rng);
            if !taken.insert((parent, name.clone())) {
                continue;
            }
            let (id, alias) = if !files.is_empty() && rng.chance(15) {
                (files[rng.below(files.len())], true)
            } else {
                let mut inode = Inode::new(stat(&mut rng), kind(&mut rng));
                inode.nlink = rng.number() as u32;
                let is_dir = matches!(inode.kind, InodeKind::Directory(_));
                let id = fs.push_inode(inode);
                if is_dir {
                    dirs.push(id)
                } else {
                    files.push(id)
                }
                (id, false)
            };
            fs.directory_mut(parent).expect("dir").push(DirEntry {
                name: name.into(),
                inode: id,
                alias,
            });
        }
        fs.sort_directories();
        make_first_name_primary(&mut fs);
        fs.validate().expect("generated tree is valid");
        fs
    }

    /// Marks the first name of every inode in depth-first name order as its
    /// primary name and the others as aliases (the order dumps express).
    fn make_first_name_primary(fs: &mut FileSystem) {
        let mut seen = HashSet::new();
        let mut flags = Vec::new();
        let mut stack = vec![(InodeId::ROOT, 0usize)];
        while let Some((dir, idx)) = stack.pop() {
            let entries = fs.directory(dir).expect("dir").entries();
            let Some(e) = entries.get(idx) else { continue };
            stack.push((dir, idx + 1));
            flags.push((dir, idx, !seen.insert(e.inode)));
            if fs.directory(e.inode).is_some() {
                stack.push((e.inode, 0));
            }
        }
        for (dir, idx, alias) in flags {
            fs.directory_mut(dir).expect("dir").entries_mut()[idx].alias = alias;
        }
    }

    /// What a dump carries, in depth-first order: path, alias flag, the
    /// first path of the inode, and the inode without its entries.
    pub(crate) fn canonical(fs: &FileSystem) -> Vec<(Vec<u8>, bool, Vec<u8>, String)> {
        let describe = |inode: &Inode| {
            let mut inode = inode.clone();
            if let InodeKind::Directory(d) = &inode.kind {
                let mut empty = Directory::new();
                empty.size = d.size;
                inode.kind = InodeKind::Directory(empty);
            }
            format!("{inode:?}")
        };
        let mut first: HashMap<InodeId, Vec<u8>> = HashMap::new();
        let mut out = vec![(
            b"/".to_vec(),
            false,
            b"/".to_vec(),
            describe(fs.inode(InodeId::ROOT)),
        )];
        let mut stack = vec![(InodeId::ROOT, 0usize, Vec::new())];
        while let Some((dir, idx, prefix)) = stack.pop() {
            let Some(e) = fs.directory(dir).expect("dir").entries().get(idx) else {
                continue;
            };
            let mut path = prefix.clone();
            path.push(b'/');
            path.extend_from_slice(&e.name);
            stack.push((dir, idx + 1, prefix));
            let first_path = first.entry(e.inode).or_insert_with(|| path.clone()).clone();
            out.push((
                path.clone(),
                e.alias,
                first_path,
                describe(fs.inode(e.inode)),
            ));
            if !e.alias && fs.directory(e.inode).is_some() {
                stack.push((e.inode, 0, path));
            }
        }
        out
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn dump(fs: &FileSystem) -> Vec<u8> {
        let mut out = Vec::new();
        write_dumpfile(fs, &mut out).expect("dump");
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// random tree → dump → parse gives the same tree, in strict mode too.
        #[test]
        fn dump_parse_round_trip(seed in any::<u64>()) {
            let tree = random_tree::generate(seed);
            let text = dump(&tree);
            let parsed = match parse(&text, true) {
                Ok(fs) => fs,
                Err(e) => return Err(TestCaseError::fail(format!("{e}\n{}", show(&text)))),
            };
            parsed.validate().expect("valid");
            prop_assert_eq!(random_tree::canonical(&parsed), random_tree::canonical(&tree));
            prop_assert_eq!(dump(&parsed), text);
        }

        /// Arbitrary lines built from dump-like tokens never make the parser
        /// panic, and whatever it accepts prints and re-parses identically.
        #[test]
        fn parser_never_panics(tokens in proptest::collection::vec(0usize..40, 0..300), seed in any::<u64>()) {
            const TOKENS: [&[u8]; 40] = [
                b"/", b"a", b"b", b"/a", b"/a/b", b"//", b".", b"..", b" ", b" ", b" ", b"\n",
                b"\n", b"0", b"1", b"-1", b"4096", b"100644", b"40755", b"@100644", b"120777",
                b"20000", b"0.0", b"-", b"\\x00", b"\\", b"\\q", b"\\x4", b"user.a=", b"=",
                b"x", b"\r", b"\0", b"abcdef0123", b"@40755", b"10644", b"18446744073709551616",
                b"/ 4096 40755 2 0 0 0 0.0 - - -\n", b"\t", b"\xff",
            ];
            let mut rng = random_tree::Rng::new(seed);
            let text: Vec<u8> = tokens.iter().flat_map(|&t| {
                let t = TOKENS[t];
                if rng.below(10) == 0 { t.iter().rev().copied().collect::<Vec<_>>() } else { t.to_vec() }
            }).collect();
            for strict in [false, true] {
                if let Ok(fs) = parse(&text, strict) {
                    fs.validate().expect("accepted trees are valid");
                    let printed = dump(&fs);
                    let again = parse(&printed, true).expect("printed dumps re-parse");
                    prop_assert_eq!(dump(&again), printed);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Speed probe: `cargo test --release -p cfs-core --test dumpfile_compat -- --ignored --nocapture`

/// Writes a synthetic dump shaped like Debian's /usr: ~135k entries, ~28 MB.
fn synthetic_usr_dump(path: &Path) -> usize {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(fs::File::create(path).expect("create"));
    let mut rng = random_tree::Rng::new(42);
    let mut lines = 0;
    let hex = |rng: &mut random_tree::Rng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[rng.below(16)]))
            .collect()
    };
    writeln!(
        out,
        "/ 4096 40755 12 0 0 0 1700000000.0 - - - security.selinux=system_u:object_r:usr_t:s0\\x00"
    )
    .unwrap();
    lines += 1;
    // 8 top dirs × 30 subdirs × 20 subsubdirs × ~28 files ≈ 135k entries.
    for a in 0..8 {
        let pa = format!("/usr-{a}-share");
        writeln!(out, "{pa} 4096 40755 2 0 0 0 1700000000.0 - - -").unwrap();
        lines += 1;
        for b in 0..30 {
            let pb = format!("{pa}/package-name-{b:03}");
            writeln!(out, "{pb} 4096 40755 2 0 0 0 1700000000.123 - - -").unwrap();
            lines += 1;
            for c in 0..20 {
                let pc = format!("{pb}/subdirectory-{c:02}");
                writeln!(
                    out,
                    "{pc} 4096 40755 2 0 0 0 1700000000.0 - - - user.mime=text/plain"
                )
                .unwrap();
                lines += 1;
                for f in 0..27 {
                    let p = format!("{pc}/some-file-name-{f:02}.txt");
                    match rng.below(10) {
                        0 => writeln!(
                            out,
                            "{p} 22 120777 1 0 0 0 1700000000.5 ../../other/target-name - -"
                        )
                        .unwrap(),
                        1 => writeln!(
                            out,
                            "{p} 40 100644 1 0 0 0 1700000000.5 - {} -",
                            hex(&mut rng, 40)
                        )
                        .unwrap(),
                        _ => {
                            let d = hex(&mut rng, 64);
                            writeln!(
                                out,
                                "{p} {} 100644 1 0 0 0 1700000000.5 {}/{} - {d}",
                                1000 + rng.below(1 << 20),
                                &d[..2],
                                &d[2..]
                            )
                            .unwrap()
                        }
                    }
                    lines += 1;
                }
            }
        }
    }
    out.flush().unwrap();
    lines
}

#[test]
#[ignore = "speed probe; run in release with --ignored --nocapture"]
#[expect(clippy::print_stdout, reason = "the probe reports its measurements")]
fn parse_speed_usr_like() {
    let path = std::env::temp_dir().join("cfs-dumpfile-bench-usr.dump");
    let lines = synthetic_usr_dump(&path);
    let size = fs::metadata(&path).expect("stat").len();
    // Peak RSS of one parse: reset the kernel's high-water mark first.
    let status = |key: &str| -> u64 {
        let text = fs::read_to_string("/proc/self/status").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    let _ = fs::write("/proc/self/clear_refs", "5");
    let before = status("VmRSS:");
    let file = fs::File::open(&path).expect("open");
    let tree = parse_dumpfile(BufReader::new(file), &ParseOptions::default()).expect("parse");
    let peak = status("VmHWM:");
    drop(tree);
    let mut best = f64::MAX;
    let mut entries = 0;
    for _ in 0..5 {
        let file = fs::File::open(&path).expect("open");
        let start = std::time::Instant::now();
        let fs = parse_dumpfile(
            BufReader::with_capacity(1 << 16, file),
            &ParseOptions::default(),
        )
        .expect("parse");
        best = best.min(start.elapsed().as_secs_f64());
        entries = fs.len();
    }
    let mut sink = Vec::with_capacity(size as usize);
    let file = fs::File::open(&path).expect("open");
    let fs = parse_dumpfile(BufReader::new(file), &ParseOptions::default()).expect("parse");
    let start = std::time::Instant::now();
    write_dumpfile(&fs, &mut sink).expect("dump");
    let print = start.elapsed().as_secs_f64();
    println!(
        "{lines} lines, {:.1} MB, {entries} inodes: parse {:.3} s ({:.0} MB/s), \
         dump {:.3} s; RSS {:.1} MiB before, peak {:.1} MiB during a parse",
        size as f64 / 1e6,
        best,
        size as f64 / 1e6 / best,
        print,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    let _ = fs::remove_file(&path);
}
