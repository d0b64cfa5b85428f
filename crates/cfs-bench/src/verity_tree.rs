//! `cfs-bench verity-tree`: `digest_files` over every regular file of a
//! directory tree (default `/usr`, the workload of `mkcomposefs DIR`), with
//! all threads against one thread, after a warm-up pass that fills the page
//! cache. Target: ≥ 1.8× on 2 cores.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use cfs_core::verity::{Algorithm, Digest, default_threads, digest_files};

use crate::report::{best_alternating, line, mb_per_s, timed};
use crate::verity::{in_memory_mbs, noise, speedup};

pub(crate) const USAGE: &str = "\
usage: cfs-bench verity-tree [--threads N] [DIR]
  DIR           directory tree to hash (default /usr)
  --threads N   threads for the parallel runs (default: all CPUs)
";

/// Alternating rounds of 1 thread / all threads.
const ROUNDS: usize = 2;

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut threads = default_threads();
    let mut root = PathBuf::from("/usr");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => {
                threads = it
                    .next()
                    .context("--threads needs a value")?
                    .parse()
                    .context("--threads")?;
            }
            s if s.starts_with('-') => bail!("unknown option {s:?}\n{USAGE}"),
            dir => root = PathBuf::from(dir),
        }
    }
    ensure!(threads > 0, "--threads must be positive");
    directory_tree(&root, threads)
}

/// Every regular file under `root` (symlinks not followed), with total size.
fn walk(root: &Path) -> (Vec<PathBuf>, u64) {
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
    (files, total)
}

fn directory_tree(root: &Path, threads: usize) -> Result<()> {
    println!(
        "-- digest_files (SHA-256) over every regular file of {}, 1 vs {threads} threads",
        root.display()
    );
    let (files, total) = walk(root);
    ensure!(
        !files.is_empty(),
        "no regular files under {}",
        root.display()
    );
    line(
        "files, bytes",
        format!("{} files, {:.2} GB", files.len(), total as f64 / 1e9),
    );
    let alg = Algorithm::Sha256;
    let run = |threads: usize| -> Vec<Option<Digest>> {
        let r = digest_files(alg, &files, threads, |p| File::open(p));
        r.into_iter().map(Result::ok).collect()
    };
    let (t0, warm) = timed(|| run(threads));
    line(
        &format!("warm-up pass, {threads} threads"),
        t0.describe(total),
    );
    let failed = warm.iter().filter(|d| d.is_none()).count();
    if failed > 0 {
        line("files that could not be read (skipped)", failed);
    }
    let runs = best_alternating(ROUNDS, &[1, threads], |n| {
        ensure!(run(n) == warm, "digests with {n} threads differ");
        Ok(())
    })?;
    let (t1, tn) = (runs[0].0, runs[1].0);
    line(&format!("1 thread (best of {ROUNDS})"), t1.describe(total));
    line(
        &format!("{threads} threads (best of {ROUNDS})"),
        tn.describe(total),
    );
    speedup(threads, t1, tn);
    let single = in_memory_mbs(alg, &noise(16 << 20), 1);
    line(
        &format!("{threads} threads vs {threads}x in-memory 1-core speed"),
        format!(
            "{:8.3}   (in-memory 1 core: {single:.0} MB/s)",
            mb_per_s(total, tn.wall) / (single * threads as f64)
        ),
    );
    Ok(())
}
