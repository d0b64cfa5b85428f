//! `cfs-bench mkcomposefs`: the real `mkcomposefs` (our `cfsctl` binary) on a
//! real tree, timed and with peak RSS, against references from the same run.
//!
//! (a) `mkcomposefs --from-file` of a dump of the tree (default `/usr`; the dump
//!     is made first with our own tools). Targets: ≤ 0.45 s, ≤ 100 MiB peak RSS.
//! (b) directory mode on the tree with a warm page cache (one untimed warm-up
//!     run first). Reference: the SHA-256 bound, i.e. the bytes that must be
//!     hashed divided by (cores × the `openssl speed -evp sha256` figure
//!     measured in the same run). Target: ≤ 2.6 s (set for a 5.3 GB /usr; the
//!     ratio to the bound is the portable figure).
//!
//! Wall time, CPU time and peak RSS of each run come from GNU time
//! (`/usr/bin/time`, Debian package `time`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use cfs_core::verity::default_threads;

use crate::process::{best_of, check_cfsctl, default_cfsctl, measure, verdict_max};
use crate::report::{line, load_average, openssl_speed};

pub(crate) const USAGE: &str = "\
usage: cfs-bench mkcomposefs [--tree DIR] [--runs N] [--cfsctl PATH]
  --tree DIR     source tree (default /usr)
  --runs N       timed runs per measurement, best is reported (default 3)
  --cfsctl PATH  the binary to measure (default: cfsctl next to cfs-bench;
                 build both with `cargo build --release --workspace`)
";

const FROM_FILE_TARGET_S: f64 = 0.45;
const FROM_FILE_RSS_TARGET_MIB: f64 = 100.0;
const DIR_TARGET_S: f64 = 2.6;
/// Files up to this size are inlined in directory mode and not hashed.
const INLINE_MAX: u64 = 64;

struct Options {
    tree: PathBuf,
    runs: usize,
    cfsctl: PathBuf,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        tree: PathBuf::from("/usr"),
        runs: 3,
        cfsctl: default_cfsctl(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--tree" => o.tree = PathBuf::from(value()?),
            "--runs" => o.runs = value()?.parse().context("--runs")?,
            "--cfsctl" => o.cfsctl = PathBuf::from(value()?),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    ensure!(o.runs > 0, "--runs must be at least 1");
    check_cfsctl(&o.cfsctl)?;
    Ok(o)
}

/// Bytes of regular files larger than the inline limit (what directory mode hashes).
fn hashed_bytes(tree: &Path) -> Result<(u64, u64)> {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && md.len() > INLINE_MAX {
                bytes += md.len();
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let tmp = tempfile::tempdir()?;
    let cfsctl = o.cfsctl.as_os_str();
    let tree = o.tree.as_os_str();
    let image = tmp.path().join("tree.cfs");
    let dump = tmp.path().join("tree.dump");
    let out = tmp.path().join("out.cfs");
    line("binary", o.cfsctl.display());
    line("tree", o.tree.display());

    // Warm-up (also produces the dump for (a)).
    let warm = measure(
        &[cfsctl, "mkcomposefs".as_ref(), tree, image.as_os_str()],
        tmp.path(),
    )?;
    line(
        "warm-up directory-mode run (untimed)",
        format!("{:.2} s", warm.wall),
    );
    let dumped = Command::new(&o.cfsctl)
        .arg("composefs-info")
        .arg("dump")
        .arg(&image)
        .output()?;
    ensure!(dumped.status.success(), "composefs-info dump failed");
    std::fs::write(&dump, &dumped.stdout)?;
    let lines = dumped.stdout.iter().filter(|&&b| b == b'\n').count();

    println!("-- (a) mkcomposefs --from-file of a dump of the tree");
    line(
        "dump",
        format!("{lines} lines, {:.1} MB", dumped.stdout.len() as f64 / 1e6),
    );
    let (best, peak) = best_of(o.runs.max(3), || {
        measure(
            &[
                cfsctl,
                "mkcomposefs".as_ref(),
                "--from-file".as_ref(),
                dump.as_os_str(),
                out.as_os_str(),
            ],
            tmp.path(),
        )
    })?;
    ensure!(
        std::fs::read(&out)? == std::fs::read(&image)?,
        "the image from the dump differs from the directory-mode image"
    );
    line(
        format!(
            "time, best of {} (target <= {FROM_FILE_TARGET_S} s)",
            o.runs.max(3)
        )
        .as_str(),
        format!(
            "{:.3} s (CPU {:.2} s)   {}",
            best.wall,
            best.cpu,
            verdict_max(best.wall, FROM_FILE_TARGET_S)
        ),
    );
    let rss_mib = peak as f64 / 1024.0;
    line(
        format!("peak RSS (target <= {FROM_FILE_RSS_TARGET_MIB} MiB)").as_str(),
        format!(
            "{rss_mib:.1} MiB   {}",
            verdict_max(rss_mib, FROM_FILE_RSS_TARGET_MIB)
        ),
    );
    line("image identical to the directory-mode image", "yes");

    println!("-- (b) directory mode, warm page cache");
    let (bytes, files) = hashed_bytes(&o.tree)?;
    let sha = openssl_speed("sha256", 4096, 3)?;
    let cores = default_threads();
    let bound = bytes as f64 / (sha * cores as f64);
    line(
        "files hashed (> 64 bytes), bytes",
        format!("{files} files, {:.2} GB", bytes as f64 / 1e9),
    );
    line(
        "openssl speed -evp sha256, 4096-byte blocks",
        format!("{:.0} MB/s per core", sha / 1e6),
    );
    line(
        format!("SHA-256 bound: bytes / ({cores} x openssl)").as_str(),
        format!("{bound:.2} s"),
    );
    let (best, peak) = best_of(o.runs, || {
        measure(
            &[cfsctl, "mkcomposefs".as_ref(), tree, out.as_os_str()],
            tmp.path(),
        )
    })?;
    line(
        format!("time, best of {} (target <= {DIR_TARGET_S} s)", o.runs).as_str(),
        format!(
            "{:.3} s (CPU {:.2} s, {:.0}% of {cores} cores)   {}",
            best.wall,
            best.cpu,
            100.0 * best.cpu / best.wall / cores as f64,
            verdict_max(best.wall, DIR_TARGET_S)
        ),
    );
    line("time / SHA-256 bound", format!("{:.2}", best.wall / bound));
    line("peak RSS", format!("{:.1} MiB", peak as f64 / 1024.0));
    line("load average after the runs", load_average());
    Ok(())
}
