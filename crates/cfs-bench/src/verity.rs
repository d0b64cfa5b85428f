//! `cfs-bench verity`: fs-verity digest throughput.
//!
//! (a) single-core fs-verity digests of data in memory (SHA-256 and SHA-512)
//!     against `openssl speed -evp <alg> -bytes 4096`, alternating rounds,
//!     best of each; target for SHA-256: ≥ 0.85 of openssl.
//! (b) `digest_file` of a large page-cached temporary file with all threads
//!     against one thread; target: ≥ 1.8× on 2 cores.
//!
//! The directory-tree benchmark (`digest_files`) is `cfs-bench verity-tree`.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use cfs_core::verity::{Algorithm, default_threads, digest_bytes, digest_file};

use crate::report::{
    Timing, best_alternating, line, load_average, mb_per_s, openssl_speed, repeat_for, verdict,
};

pub(crate) const USAGE: &str = "\
usage: cfs-bench verity [--seconds N] [--rounds N] [--file-mib N] [--threads N]
  --seconds N   time per single-core measurement, ours and openssl's (default 3)
  --rounds N    alternating single-core rounds per algorithm, best kept (default 2)
  --file-mib N  size of the temporary file for the parallel test (default 1024)
  --threads N   threads for the parallel test (default: all CPUs)
";

/// Single-core SHA-256 target, as a fraction of openssl.
const SINGLE_CORE_TARGET: f64 = 0.85;
/// Parallel speed-up target per core (1.8× on 2 cores).
pub(crate) const SPEEDUP_TARGET_PER_CORE: f64 = 0.9;
/// Alternating rounds of 1 thread / all threads in (b).
const FILE_ROUNDS: usize = 5;
/// In-memory buffer hashed repeatedly for (a).
const MEMORY_BUF: usize = 16 << 20;

struct Options {
    seconds: u32,
    rounds: usize,
    file_mib: u64,
    threads: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: 3,
        rounds: 2,
        file_mib: 1024,
        threads: default_threads(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
            "--rounds" => o.rounds = value()?.parse().context("--rounds")?,
            "--file-mib" => o.file_mib = value()?.parse().context("--file-mib")?,
            "--threads" => o.threads = value()?.parse().context("--threads")?,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    ensure!(
        o.seconds > 0 && o.rounds > 0 && o.file_mib > 0 && o.threads > 0,
        "values must be positive"
    );
    Ok(o)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    single_core(&o)?;
    parallel_file(&o)
}

/// Deterministic pseudo-random bytes.
pub(crate) fn noise(len: usize) -> Vec<u8> {
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

/// Single-thread fs-verity throughput over `data` in memory, in MB/s.
pub(crate) fn in_memory_mbs(alg: Algorithm, data: &[u8], seconds: u32) -> f64 {
    let mut last = None;
    let (runs, elapsed) = repeat_for(Duration::from_secs(seconds.into()), || {
        last = Some(digest_bytes(alg, data));
    });
    mb_per_s(runs * data.len() as u64, elapsed)
}

/// (a) single core, ours vs openssl, alternating rounds, best of each.
fn single_core(o: &Options) -> Result<()> {
    println!(
        "-- (a) single core, data in memory, vs `openssl speed -evp ALG -bytes 4096 -seconds {}`, \
         best of {} alternating rounds",
        o.seconds, o.rounds
    );
    let data = noise(MEMORY_BUF);
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let (mut ours, mut openssl) = (0.0f64, 0.0f64);
        for _ in 0..o.rounds {
            ours = ours.max(in_memory_mbs(alg, &data, o.seconds));
            openssl = openssl.max(openssl_speed(alg.name(), 4096, o.seconds)? / 1e6);
        }
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
            line(
                "ratio cfs/openssl (target >= 0.85)",
                format!("{ratio:8.3}   {}", verdict(ratio, SINGLE_CORE_TARGET)),
            );
        } else {
            line("ratio cfs/openssl (information)", format!("{ratio:8.3}"));
        }
    }
    Ok(())
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
    // Otherwise writeback of the fresh dirty pages competes for the CPUs
    // during the measurement.
    tmp.as_file()
        .sync_all()
        .context("fsync of the temporary file")?;
    let file = File::open(tmp.path())?;
    let alg = Algorithm::Sha256;
    let warm = digest_file(alg, &file, o.threads)?; // fills the page cache
    let runs = best_alternating(FILE_ROUNDS, &[1, o.threads], |threads| {
        let d = digest_file(alg, &file, threads)?;
        ensure!(
            d == warm,
            "digest with {threads} threads differs: {d} vs {warm}"
        );
        Ok(())
    })?;
    let (t1, tn) = (runs[0].0, runs[1].0);
    line(
        &format!("1 thread (best of {FILE_ROUNDS})"),
        t1.describe(size),
    );
    line(
        &format!("{} threads (best of {FILE_ROUNDS})", o.threads),
        tn.describe(size),
    );
    speedup(o.threads, t1, tn);
    Ok(())
}

/// Prints the wall-clock speed-up of `tn` over `t1` against the target.
pub(crate) fn speedup(threads: usize, t1: Timing, tn: Timing) {
    let speedup = t1.wall.as_secs_f64() / tn.wall.as_secs_f64();
    let target = SPEEDUP_TARGET_PER_CORE * threads as f64;
    line(
        &format!("speed-up (target >= {target:.1})"),
        format!("{speedup:8.2}x  {}", verdict(speedup, target)),
    );
    line("load average after the runs", load_average());
}
