//! `gc` and `transaction`: garbage collection and the lock that holds it off.

use std::io::{IsTerminal, Write};

use anyhow::Result;

use cfs_core::repository::GcOptions;

use super::{open_repo, print};
use crate::cli::{GcArgs, GlobalOpts};
use crate::progress;

/// `gc [-r NAME]… [-n]`. Output as composefs-rs 0.9:
/// `Dry run (no files deleted):` (dry run only), `Objects: N removed (B
/// bytes)`, and `Pruned symlinks: I images, S streams` when any were pruned.
pub(crate) fn gc(global: &GlobalOpts, args: &GcArgs) -> Result<()> {
    let repo = open_repo(global)?;
    let opts = GcOptions {
        dry_run: args.dry_run,
        extra_roots: args.roots.clone(),
    };
    let report = progress::spin_while("Collecting garbage", || repo.gc(&opts))?;
    let mut text = String::new();
    if args.dry_run {
        text.push_str("Dry run (no files deleted):\n");
    }
    text.push_str(&format!(
        "Objects: {} removed ({} bytes)\n",
        report.objects_removed, report.bytes_removed
    ));
    if report.images_pruned > 0 || report.streams_pruned > 0 {
        text.push_str(&format!(
            "Pruned symlinks: {} images, {} streams\n",
            report.images_pruned, report.streams_pruned
        ));
    }
    print(&text)?;
    if report.unknown_files > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "warning: {} files under objects/ are not named like objects of this repository; left alone",
            report.unknown_files
        );
    }
    Ok(())
}

/// `transaction`: holds the shared repository lock until killed, so no
/// garbage collection can run meanwhile.
pub(crate) fn transaction(global: &GlobalOpts) -> Result<()> {
    let repo = open_repo(global)?;
    if std::io::stderr().is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "Holding the lock on {}; interrupt to release it.",
            repo.path().display()
        );
    }
    loop {
        std::thread::park();
    }
}
