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
use cfs_core::erofs::writer::{WriteOptions, write_image};
use sha2::{Digest as _, Sha256};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/compat")
}

#[derive(Debug)]
struct Row {
    case: String,
    kind: String,
    variant: String,
    sha256: String,
    size: String,
    version: String,
    exit_code: String,
}

fn manifest() -> Vec<Row> {
    let text = fs::read_to_string(corpus().join("manifest.tsv")).expect("manifest.tsv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "case\tkind\tvariant\timage_sha256\tverity_digest\tsize\tcomposefs_version\texit_code"
        )
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "manifest line {l:?}");
            Row {
                case: f[0].into(),
                kind: f[1].into(),
                variant: f[2].into(),
                sha256: f[3].into(),
                size: f[5].into(),
                version: f[6].into(),
                exit_code: f[7].into(),
            }
        })
        .collect()
}

/// Parser and writer options of a row, as `mkcomposefs` derives them from
/// the command line of the corpus README.
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

/// Builds the image of a row: `Ok(image)` or `Err(message as C prints it)`.
fn build(row: &Row) -> Result<(Vec<u8>, u32), String> {
    let (parse, write) = options(row);
    let input = fs::read(corpus().join(format!("{}.dump", row.case))).expect("dump file");
    let tree = parse_dumpfile(&input[..], &parse).map_err(|e| e.c_message())?;
    let mut image = Vec::new();
    let summary =
        write_image(&tree, &write, &mut image).map_err(|e| format!("cannot write file: {e}"))?;
    assert_eq!(summary.size, image.len() as u64);
    Ok((image, summary.composefs_version))
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

/// Runs `fsck.erofs` on `path` with a time limit.
fn fsck(path: &Path) -> Result<(), String> {
    let mut child = Command::new("fsck.erofs")
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
        let accepted = row.exit_code == "0";
        if row.kind == "dir" || (row.kind == "shouldfail" && !accepted) {
            continue;
        }
        assert_eq!(row.exit_code, "0", "{row:?}");
        checked += 1;
        let id = format!("{} {}", row.case, row.variant);
        let (image, version) = match build(&row) {
            Ok(built) => built,
            Err(e) => {
                failures.push(format!("{id}: C wrote an image, we failed: {e}"));
                continue;
            }
        };
        let sha = hex(&Sha256::digest(&image));
        if sha != row.sha256 || image.len().to_string() != row.size {
            failures.push(format!(
                "{id}: sha256 {sha} size {} (want {} size {}){}",
                image.len(),
                row.sha256,
                row.size,
                first_difference(&row, &image)
            ));
            continue;
        }
        if version.to_string() != row.version {
            failures.push(format!("{id}: version {version}, want {}", row.version));
        }
        if fsck_sample(&row) {
            let path = tmp.path().join(format!("{}.{}.img", row.case, row.variant));
            fs::write(&path, &image).unwrap();
            if let Err(e) = fsck(&path) {
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
        if row.kind != "shouldfail" || row.exit_code == "0" {
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
        assert_eq!(row.exit_code, "1");
        assert_eq!(
            build(&row).unwrap_err(),
            "cannot write file: File too large"
        );
    }
}
