//! `fsck [--json] [--metadata-only]`: the report on stdout (plain text as
//! composefs-rs 0.9 prints it, or JSON), and exit status 1 if any problem
//! was found — in both modes (composefs-rs exits 0 with `--json`).

use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use indicatif::HumanBytes;

use cfs_core::repository::{FsckOptions, FsckProgress};

use super::{open_repo_read, print, threads};
use crate::cli::{FsckArgs, GlobalOpts};
use crate::progress;

pub(crate) fn fsck(global: &GlobalOpts, args: &FsckArgs) -> Result<()> {
    let repo = open_repo_read(global)?;
    let opts = FsckOptions {
        metadata_only: args.metadata_only,
        threads: threads(global),
    };
    let counters = FsckProgress::default();
    let bar = progress::counter("Checking objects");
    let start = std::time::Instant::now();
    let report = progress::poll_while(
        &bar,
        |bar| {
            bar.set_length(counters.objects_total.load(Ordering::Relaxed));
            bar.set_position(counters.objects_checked.load(Ordering::Relaxed));
            bar.set_message(format!(
                "({})",
                HumanBytes(counters.bytes_checked.load(Ordering::Relaxed))
            ));
        },
        || repo.fsck(&opts, Some(&counters)),
    )?;
    progress::summary(&format!(
        "Checked {} ({}) in {:.1} s",
        progress::count(counters.objects_checked.load(Ordering::Relaxed), "object"),
        HumanBytes(counters.bytes_checked.load(Ordering::Relaxed)),
        start.elapsed().as_secs_f64()
    ));
    let mut text = if args.json {
        serde_json::to_string_pretty(&report)?
    } else {
        report.to_text()
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    print(&text)?;
    if !report.ok {
        bail!("repository integrity check failed");
    }
    Ok(())
}
