//! Running a command under GNU time (`/usr/bin/time`, Debian package
//! `time`): wall time, CPU time and peak RSS of whole processes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` to completion; fails with its stderr unless it succeeds.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// A fresh scratch directory in `dir`, or under `$TMPDIR` (else `/var/tmp`).
pub(crate) fn scratch_dir(dir: Option<&Path>) -> Result<tempfile::TempDir> {
    let parent = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp")),
    };
    tempfile::tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))
}

use anyhow::{Context, Result, bail, ensure};

/// One measured process run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) wall: f64,
    pub(crate) cpu: f64,
    pub(crate) max_rss_kib: u64,
}

/// Runs `cmd` under GNU time; fails if the command fails.
pub(crate) fn measure(cmd: &[&std::ffi::OsStr], tmp: &Path) -> Result<Run> {
    let report = tmp.join("time.out");
    let out = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&report)
        .args(["-f", "%e %U %S %M"])
        .args(cmd)
        .output()
        .context("running /usr/bin/time (Debian package `time`)")?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = std::fs::read_to_string(&report)?;
    let f: Vec<&str> = text.split_whitespace().collect();
    ensure!(f.len() >= 4, "unexpected GNU time output {text:?}");
    Ok(Run {
        wall: f[0].parse()?,
        cpu: f[1].parse::<f64>()? + f[2].parse::<f64>()?,
        max_rss_kib: f[3].parse()?,
    })
}

pub(crate) fn best_of(runs: usize, mut f: impl FnMut() -> Result<Run>) -> Result<(Run, u64)> {
    let mut best: Option<Run> = None;
    let mut peak = 0;
    for _ in 0..runs {
        let r = f()?;
        peak = peak.max(r.max_rss_kib);
        if best.is_none_or(|b| r.wall < b.wall) {
            best = Some(r);
        }
    }
    Ok((best.context("no run")?, peak))
}

/// Verdict text for a measured value against an upper bound.
pub(crate) fn verdict_max(value: f64, target: f64) -> &'static str {
    if value <= target {
        "PASS"
    } else {
        "ABOVE TARGET"
    }
}

/// The `cfsctl` next to the running benchmark binary (both come from
/// `cargo build --release --workspace`).
pub(crate) fn default_cfsctl() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("cfsctl")))
        .unwrap_or_else(|| PathBuf::from("cfsctl"))
}

/// Fails with a hint unless the binary to measure exists.
pub(crate) fn check_cfsctl(cfsctl: &Path) -> Result<()> {
    ensure!(
        cfsctl.exists(),
        "{} not found: build it with `cargo build --release --workspace` or pass --cfsctl",
        cfsctl.display()
    );
    Ok(())
}
