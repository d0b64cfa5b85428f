//! `cfs-bench verity`: fs-verity digest throughput.
//!
//! (a) single-core fs-verity digests of data in memory (SHA-256 and SHA-512)
//!     against `openssl speed -evp <alg> -bytes 4096`; target for SHA-256:
//!     ≥ 0.85 of openssl.
//! (b) `digest_file` of a large page-cached temporary file with all threads
//!     against one thread; target: ≥ 1.8× on 2 cores.
//! (c) `digest_files` over every regular file of a directory tree (default
//!     `/usr`) with all threads against one thread, after a warm-up pass.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use cfs_core::verity::{
    Algorithm, Digest, default_threads, digest_bytes, digest_file, digest_files,
};

use crate::report::{
    Timing, best_of, line, load_average, mb_per_s, openssl_speed, repeat_for, timed, verdict,
};

pub(crate) const USAGE: &str = "\
usage: cfs-bench verity [--seconds N] [--file-mib N] [--threads N] [--tree DIR | --no-tree]
  --seconds N   measuring time per single-core figure, ours and openssl's (default 3)
  --file-mib N  size of the temporary file for the parallel test (default 1024)
  --threads N   threads for the parallel tests (default: all CPUs)
  --tree DIR    directory tree hashed with digest_files (default /usr)
  --no-tree     skip the directory-tree test
";

/// Single-core SHA-256 target, as a fraction of openssl.
const SINGLE_CORE_TARGET: f64 = 0.85;
/// Parallel speed-up target per core (1.8× on 2 cores).
const SPEEDUP_TARGET_PER_CORE: f64 = 0.9;
/// In-memory buffer hashed repeatedly for (a).
const MEMORY_BUF: usize = 16 << 20;

struct Options {
    seconds: u32,
    file_mib: u64,
    threads: usize,
    tree: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: 3,
        file_mib: 1024,
        threads: default_threads(),
        tree: Some(PathBuf::from("/usr")),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
            "--file-mib" => o.file_mib = value()?.parse().context("--file-mib")?,
            "--threads" => o.threads = value()?.parse().context("--threads")?,
            "--tree" => o.tree = Some(PathBuf::from(value()?)),
            "--no-tree" => o.tree = None,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    ensure!(
        o.seconds > 0 && o.file_mib > 0 && o.threads > 0,
        "values must be positive"
    );
    Ok(o)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let sha256_mbs = single_core(&o)?;
    parallel_file(&o)?;
    if let Some(tree) = &o.tree {
        directory_tree(&o, tree, sha256_mbs)?;
    }
    Ok(())
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x0123_4567_89ab_cdef;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// (a) Returns our single-core SHA-256 figure in MB/s.
fn single_core(o: &Options) -> Result<f64> {
    println!("-- (a) single core, data in memory, vs openssl speed -evp ALG -bytes 4096");
    let data = noise(MEMORY_BUF);
    let mut sha256_mbs = 0.0;
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let mut last = None;
        let (runs, elapsed) = repeat_for(Duration::from_secs(o.seconds.into()), || {
            last = Some(digest_bytes(alg, &data));
        });
        ensure!(last.is_some(), "no digest computed");
        let ours = mb_per_s(runs * MEMORY_BUF as u64, elapsed);
        let openssl = openssl_speed(alg.name(), 4096, o.seconds)? / 1e6;
        let ratio = ours / openssl;
        line(
            &format!("{alg} fs-verity (cfs, 1 thread)"),
            format!("{ours:8.0} MB/s"),
        );
        line(
            &format!("{alg} openssl speed, 4096-byte blocks"),
            format!("{openssl:8.0} MB/s"),
        );
        if alg == Algorithm::Sha256 {
            sha256_mbs = ours;
            line(
                "ratio cfs/openssl (target >= 0.85)",
                format!("{ratio:8.3}   {}", verdict(ratio, SINGLE_CORE_TARGET)),
            );
        } else {
            line("ratio cfs/openssl (information)", format!("{ratio:8.3}"));
        }
    }
    Ok(sha256_mbs)
}

/// (b) digest_file on a large page-cached file, 1 thread vs all.
fn parallel_file(o: &Options) -> Result<()> {
    let size = o.file_mib << 20;
    println!(
        "-- (b) digest_file on a {} MiB page-cached temporary file, 1 vs {} threads",
        o.file_mib, o.threads
    );
    let mut tmp = tempfile::NamedTempFile::new().context("creating temporary file")?;
    let chunk = noise(4 << 20);
    let mut written = 0u64;
    while written < size {
        let n = (size - written).min(chunk.len() as u64) as usize;
        tmp.write_all(&chunk[..n])?;
        written += n as u64;
    }
    tmp.flush()?;
    let file = File::open(tmp.path())?;
    let alg = Algorithm::Sha256;
    let warm = digest_file(alg, &file, o.threads)?; // fills the page cache
    let (t1, d1) = best_of(3, || Ok(digest_file(alg, &file, 1)?))?;
    let (tn, dn) = best_of(3, || Ok(digest_file(alg, &file, o.threads)?))?;
    ensure!(
        d1 == warm && dn == warm,
        "digests differ between runs: {d1} {dn} {warm}"
    );
    line("1 thread (best of 3)", t1.describe(size));
    line(
        &format!("{} threads (best of 3)", o.threads),
        tn.describe(size),
    );
    speedup(o.threads, t1, tn);
    Ok(())
}

/// Prints the wall-clock speed-up of `tn` over `t1` against the target.
fn speedup(threads: usize, t1: Timing, tn: Timing) {
    let speedup = t1.wall.as_secs_f64() / tn.wall.as_secs_f64();
    let target = SPEEDUP_TARGET_PER_CORE * threads as f64;
    line(
        &format!("speed-up (target >= {target:.1})"),
        format!("{speedup:8.2}x  {}", verdict(speedup, target)),
    );
    line("load average after the runs", load_average());
}

/// Every regular file under `root` (symlinks not followed), with total size.
fn walk(root: &Path) -> Result<(Vec<PathBuf>, u64)> {
    let mut files = Vec::new();
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // unreadable directory: skip, like a permission error
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                dirs.push(e.path());
            } else if ft.is_file() {
                total += e.metadata().map_or(0, |m| m.len());
                files.push(e.path());
            }
        }
    }
    files.sort();
    Ok((files, total))
}

/// (c) digest_files over a directory tree, 1 thread vs all.
fn directory_tree(o: &Options, root: &Path, sha256_mbs: f64) -> Result<()> {
    println!(
        "-- (c) digest_files over every regular file of {}, 1 vs {} threads",
        root.display(),
        o.threads
    );
    let (files, total) = walk(root)?;
    line(
        "files, bytes",
        format!("{} files, {:.2} GB", files.len(), total as f64 / 1e9),
    );
    let alg = Algorithm::Sha256;
    let run = |threads: usize| -> (Timing, Vec<Option<Digest>>) {
        timed(|| {
            let r = digest_files(alg, &files, threads, |p| File::open(p));
            r.into_iter().map(Result::ok).collect()
        })
    };
    let (t0, warm) = run(o.threads);
    let failed = warm.iter().filter(|d| d.is_none()).count();
    line(
        &format!("warm-up pass, {} threads", o.threads),
        t0.describe(total),
    );
    if failed > 0 {
        line("files that could not be read (skipped)", failed);
    }
    let (t1, d1) = run(1);
    let (tn, dn) = run(o.threads);
    ensure!(d1 == warm && dn == warm, "digests differ between runs");
    line("1 thread", t1.describe(total));
    line(&format!("{} threads", o.threads), tn.describe(total));
    speedup(o.threads, t1, tn);
    let ideal = sha256_mbs * o.threads as f64;
    line(
        &format!(
            "{} threads vs {}x in-memory 1-core speed",
            o.threads, o.threads
        ),
        format!("{:8.3}", mb_per_s(total, tn.wall) / ideal),
    );
    Ok(())
}
