//! `cfs-bench repository`: `cfsctl create-image` of a real tree (default
//! `/usr`) into a repository on a real filesystem, timed and with peak RSS,
//! against references measured in the same run.
//!
//! (a) Into an **empty** insecure repository (`init --insecure`, then
//!     `create-image --no-propagate-usr-to-root TREE`; the command ends with
//!     the `syncfs` barrier, so the data is on disk when it returns). Reference:
//!     `cp -a TREE` to the same filesystem followed by `sync -f`, i.e. the raw
//!     cost of copying the same bytes durably. Target: ≤ 20 s (set for a
//!     5.1 GB /usr on 2 cores; C `mkcomposefs --digest-store` takes ~44 s).
//! (b) Again into the **populated** repository (nothing new to store).
//!     Reference: `compute-id` with the same algorithm (scan and hash only,
//!     no store). Target: ≤ 4 s (C ~8.6 s).
//!
//! Both are run for SHA-512 repositories (the `cfsctl init` default) and
//! SHA-256 ones (what C `mkcomposefs` uses).
//! (c) Peak RSS of every `create-image` run: target ≤ 200 MiB.
//!
//! Every run starts after `sync`, with the source tree in the page cache (an
//! untimed directory-mode run warms it). The scratch directory (default: a
//! fresh directory under `$TMPDIR` or `/var/tmp`) must not be tmpfs: the
//! filesystem type is printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::process::{
    Run, best_of, check_cfsctl, default_cfsctl, measure, run_ok, scratch_dir, verdict_max,
};
use crate::report::{line, load_average};

pub(crate) const USAGE: &str = "\
usage: cfs-bench repository [--tree DIR] [--runs N] [--cfsctl PATH] [--scratch DIR]
  --tree DIR      source tree (default /usr)
  --runs N        timed runs per measurement, best is reported (default 2;
                  each empty-repository run writes the whole tree)
  --cfsctl PATH   the binary to measure (default: cfsctl next to cfs-bench)
  --scratch DIR   where repositories are created (default: under $TMPDIR or
                  /var/tmp; must not be tmpfs)
  --algorithm A   sha512 or sha256 (default: both, sha512 first: the
                  `cfsctl init` default, then the C tools' algorithm)
";

const EMPTY_TARGET_S: f64 = 20.0;
const POPULATED_TARGET_S: f64 = 4.0;
const RSS_TARGET_MIB: f64 = 200.0;

struct Options {
    tree: PathBuf,
    runs: usize,
    cfsctl: PathBuf,
    scratch: Option<PathBuf>,
    algorithms: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        tree: PathBuf::from("/usr"),
        runs: 2,
        cfsctl: default_cfsctl(),
        scratch: None,
        algorithms: vec!["sha512".into(), "sha256".into()],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--tree" => o.tree = PathBuf::from(value()?),
            "--runs" => o.runs = value()?.parse().context("--runs")?,
            "--cfsctl" => o.cfsctl = PathBuf::from(value()?),
            "--scratch" => o.scratch = Some(PathBuf::from(value()?)),
            "--algorithm" => o.algorithms = vec![value()?.clone()],
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    ensure!(o.runs > 0, "--runs must be at least 1");
    check_cfsctl(&o.cfsctl)?;
    Ok(o)
}

fn sync() -> Result<()> {
    run_ok(&mut Command::new("sync")).map(drop)
}

fn remove(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The filesystem type of `path` as `stat -f` names it.
fn fs_type(path: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// (objects, bytes) under `repo/objects`.
fn object_stats(repo: &Path) -> (u64, u64) {
    let mut n = 0;
    let mut bytes = 0;
    if let Ok(dirs) = std::fs::read_dir(repo.join("objects")) {
        for d in dirs.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                for f in files.flatten() {
                    if let Ok(md) = f.metadata() {
                        n += 1;
                        bytes += md.len();
                    }
                }
            }
        }
    }
    (n, bytes)
}

fn describe(run: &Run, cores: usize) -> String {
    format!(
        "{:.2} s (CPU {:.2} s, {:.0}% of {cores} cores, peak RSS {:.1} MiB)",
        run.wall,
        run.cpu,
        100.0 * run.cpu / run.wall / cores as f64,
        run.max_rss_kib as f64 / 1024.0
    )
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let base = scratch_dir(o.scratch.as_deref())?;
    let scratch = base.path();
    let fstype = fs_type(scratch);
    ensure!(
        fstype != "tmpfs",
        "{} is on tmpfs; pass --scratch DIR on a disk filesystem",
        scratch.display()
    );
    let cores = cfs_core::verity::default_threads();
    let cfsctl = o.cfsctl.as_os_str();
    let tree = o.tree.as_os_str();
    let repo = scratch.join("repo");
    let copy = scratch.join("copy");
    let image = scratch.join("dir.cfs");
    line("binary", o.cfsctl.display());
    line("tree", o.tree.display());
    line(
        "scratch filesystem",
        format!("{} ({fstype})", scratch.display()),
    );

    // Warm the page cache with the source tree.
    let warm = measure(
        &[cfsctl, "mkcomposefs".as_ref(), tree, image.as_os_str()],
        scratch,
    )?;
    line(
        "warm-up directory-mode run (untimed)",
        format!("{:.2} s", warm.wall),
    );

    let mut peak_rss = 0u64;
    let mut digests = Vec::new();
    remove(&copy)?;
    sync()?;
    // cp + sync as one measured shell command.
    let script = "cp -a -- \"$1\" \"$2\" && sync -f \"$2\"";
    let copy_run = measure(
        &[
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
            "sh".as_ref(),
            tree,
            copy.as_os_str(),
        ],
        scratch,
    )?;
    remove(&copy)?;
    line(
        "reference: cp -a TREE + sync -f",
        describe(&copy_run, cores),
    );

    let create = |digests: &mut Vec<String>, peak_rss: &mut u64| -> Result<Run> {
        let out = scratch.join("digest.out");
        let r = measure(
            &[
                "sh".as_ref(),
                "-c".as_ref(),
                "\"$@\" > \"$0\"".as_ref(),
                out.as_os_str(),
                cfsctl,
                "--repo".as_ref(),
                repo.as_os_str(),
                "create-image".as_ref(),
                "--no-propagate-usr-to-root".as_ref(),
                tree,
            ],
            scratch,
        )?;
        digests.push(std::fs::read_to_string(&out)?.trim().to_string());
        *peak_rss = (*peak_rss).max(r.max_rss_kib);
        Ok(r)
    };
    for algorithm in &o.algorithms {
        println!("-- {algorithm}: (a) create-image into an empty insecure repository");
        let (empty, _) = best_of(o.runs, || {
            remove(&repo)?;
            sync()?;
            run_ok(
                Command::new(&o.cfsctl)
                    .arg("--repo")
                    .arg(&repo)
                    .args(["init", "--insecure", "--algorithm"])
                    .arg(format!("fsverity-{algorithm}-12")),
            )?;
            create(&mut digests, &mut peak_rss)
        })?;
        let (objects, bytes) = object_stats(&repo);
        line(
            "objects stored",
            format!("{objects} objects, {:.2} GB", bytes as f64 / 1e9),
        );
        line(
            format!(
                "create-image, best of {} (target <= {EMPTY_TARGET_S} s)",
                o.runs
            )
            .as_str(),
            format!(
                "{}   {}",
                describe(&empty, cores),
                verdict_max(empty.wall, EMPTY_TARGET_S)
            ),
        );
        line(
            "create-image / (cp -a + sync)",
            format!("{:.2}", empty.wall / copy_run.wall),
        );

        println!("-- {algorithm}: (b) create-image into the populated repository");
        sync()?;
        let (hash_only, _) = best_of(o.runs.max(3), || {
            measure(
                &[
                    cfsctl,
                    "--no-repo".as_ref(),
                    "--hash".as_ref(),
                    algorithm.as_ref(),
                    "compute-id".as_ref(),
                    "--no-propagate-usr-to-root".as_ref(),
                    tree,
                ],
                scratch,
            )
        })?;
        line(
            "reference: compute-id (scan + hash, no store)",
            describe(&hash_only, cores),
        );
        let (populated, _) = best_of(o.runs.max(3), || create(&mut digests, &mut peak_rss))?;
        let (objects_after, _) = object_stats(&repo);
        line(
            format!(
                "create-image, best of {} (target <= {POPULATED_TARGET_S} s)",
                o.runs.max(3)
            )
            .as_str(),
            format!(
                "{}   {}",
                describe(&populated, cores),
                verdict_max(populated.wall, POPULATED_TARGET_S)
            ),
        );
        line(
            "create-image / compute-id",
            format!("{:.2}", populated.wall / hash_only.wall),
        );
        line(
            "new objects in the populated runs",
            objects_after.saturating_sub(objects),
        );
    }

    println!("-- (c) memory");
    let rss = peak_rss as f64 / 1024.0;
    line(
        format!("peak RSS of all create-image runs (target <= {RSS_TARGET_MIB} MiB)").as_str(),
        format!("{rss:.1} MiB   {}", verdict_max(rss, RSS_TARGET_MIB)),
    );
    digests.dedup();
    line(
        "distinct image digests over all runs",
        format!("{} ({})", digests.len(), digests.join(", ")),
    );
    line("load average after the runs", load_average());
    remove(&repo)?;
    Ok(())
}
