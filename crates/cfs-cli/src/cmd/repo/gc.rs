//! `gc` and `transaction`: garbage collection and the lock that holds it off.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use indicatif::HumanBytes;

use cfs_core::repository::GcOptions;

use super::{open_repo, open_repo_read, print};
use crate::cli::{GcArgs, GlobalOpts};
use crate::progress;

/// `gc [-r NAME]… [-n]`. Output in composefs-rs 0.9's shape, with sizes
/// in binary units (as every cfs line and bar) and a dry run in the
/// conditional: `Objects: N removed (1.50 MiB)` and `Pruned symlinks: I
/// images, S streams` when any were pruned; a dry run prints `Dry run (no
/// files deleted):`, `Objects: N would be removed (…)` and `Symlinks that
/// would be pruned: …`.
pub(crate) fn gc(global: &GlobalOpts, args: &GcArgs) -> Result<()> {
    // A dry run only reads: it never upgrades an old repository either.
    let repo = if args.dry_run {
        open_repo_read(global)?
    } else {
        open_repo(global)?
    };
    let opts = GcOptions {
        dry_run: args.dry_run,
        extra_roots: args.roots.clone(),
        on_wait: Some(|path| {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "Waiting for the other users of {} to finish (gc needs the repository to \
                     itself; a `cfsctl transaction` or a running pull holds it)…",
                    path.display()
                );
            }
        }),
    };
    let report = progress::spin_while("Collecting garbage", || repo.gc(&opts))?;
    // The same report, in the conditional for a dry run.
    let (header, removed, pruned) = if args.dry_run {
        (
            "Dry run (no files deleted):\n",
            "would be removed",
            "Symlinks that would be pruned",
        )
    } else {
        ("", "removed", "Pruned symlinks")
    };
    let mut text = format!(
        "{header}Objects: {} {removed} ({})\n",
        report.objects_removed,
        HumanBytes(report.bytes_removed)
    );
    if report.images_pruned > 0 || report.streams_pruned > 0 {
        text.push_str(&format!(
            "{pruned}: {} images, {} streams\n",
            report.images_pruned, report.streams_pruned
        ));
    }
    print(&text)?;
    if report.mounted_images > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "Kept {} mounted image(s) (overlay source composefs:<id>) and everything they reference",
            report.mounted_images
        );
    }
    if !report.unreadable.is_empty() {
        let mut err = std::io::stderr();
        let _ = writeln!(
            err,
            "warning: {} root(s) could not be read, so no object was deleted (what they reference cannot be known):",
            report.unreadable.len()
        );
        for root in &report.unreadable {
            let _ = writeln!(err, "  {root}");
        }
        let _ = writeln!(
            err,
            "Repair them (store the image or stream again) or remove their refs, then run gc again; `cfsctl fsck` shows the details."
        );
    }
    if report.temp_files_removed > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "Removed {} stale temporary file(s) left by interrupted writers",
            report.temp_files_removed
        );
    }
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
