//! `cfsctl system …`: deployments on a physical root (`cfs_deploy::deploy`).

use anyhow::{Context, Result};

use cfs_deploy::deploy::install::{Bootloader, InstallOptions, install};
use cfs_deploy::deploy::manage;
use cfs_deploy::deploy::status::{Deployment, Status, status, to_json};
use cfs_deploy::deploy::upgrade::{self, StageOptions, Staged, finalize};
use cfs_deploy::deploy::{Layout, booted_id, entryset};

use super::repo::print;
use crate::cli::{InstallCommand, SystemCommand, SystemRoot};

/// The boot directory when none is given: `<root>/boot` if it holds the
/// entries, else, on a booted system (root `/sysroot`), the ESP mounted at
/// `/boot` or `/efi`.
fn default_boot_dir(root: &std::path::Path) -> Option<std::path::PathBuf> {
    if root.join("boot/loader").is_dir() || root != std::path::Path::new("/sysroot") {
        return None;
    }
    ["/boot", "/efi"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.join("loader").is_dir())
}

fn layout(root: &SystemRoot) -> Layout {
    let boot = root
        .boot_dir
        .clone()
        .or_else(|| default_boot_dir(&root.root));
    let mut l = Layout::new(&root.root, boot.as_deref());
    if let Some(run) = &root.run_dir {
        l.run = run.clone();
    }
    l
}

/// The layout of a command that writes: a physical root that root setup
/// left read-only (`/sysroot` of a booted system) is remounted read-write in
/// a private mount namespace first, so that it stays read-only for everyone
/// else.
fn layout_rw(root: &SystemRoot) -> Result<Layout> {
    if root.root.exists() {
        cfs_core::mount::writable_privately(&root.root)
            .with_context(|| format!("Making {} writable", root.root.display()))?;
    }
    Ok(layout(root))
}

fn booted(root: &SystemRoot) -> Option<String> {
    root.booted.clone().or_else(booted_id)
}

/// Runs one `system` subcommand.
pub(crate) fn run(command: SystemCommand) -> Result<()> {
    match command {
        SystemCommand::Status { root, json } => {
            let l = layout(&root);
            let s = status(&l, booted(&root).as_deref())
                .with_context(|| format!("Reading the deployments of {}", l.root.display()))?;
            if json {
                let mut text = serde_json::to_string_pretty(&to_json(&s))?;
                text.push('\n');
                print(&text)
            } else {
                print(&human(&s))
            }
        }
        SystemCommand::Install(InstallCommand::ToFilesystem {
            image,
            root,
            boot_dir,
            karg,
            root_karg,
            allow_missing_verity,
            bootloader,
        }) => {
            let l = Layout::new(&root, boot_dir.as_deref());
            let opts = InstallOptions {
                image: image.clone(),
                kargs: karg,
                root_karg,
                allow_missing_verity,
                bootloader: if bootloader == "none" {
                    Bootloader::None
                } else {
                    Bootloader::SystemdBoot
                },
            };
            let done = install(&l, &opts)
                .with_context(|| format!("Installing {image} to {}", root.display()))?;
            print(&format!(
                "Installed {image}\n  deployment {}\n  boot type  {}\n  entry      {}\n",
                done.id, done.boot_type, done.entry
            ))
        }
        SystemCommand::Install(InstallCommand::ToDisk {
            image,
            disk,
            size,
            esp_size,
            wipe,
            karg,
            allow_missing_verity,
            bootloader,
        }) => {
            let opts = InstallOptions {
                image: image.clone(),
                kargs: karg,
                root_karg: None,
                allow_missing_verity,
                bootloader: if bootloader == "none" {
                    Bootloader::None
                } else {
                    Bootloader::SystemdBoot
                },
            };
            let mut disk_opts = cfs_deploy::deploy::disk::DiskOptions {
                esp_mib: esp_size,
                wipe,
                ..Default::default()
            };
            if let Some(s) = size {
                disk_opts.size = s;
            }
            let done = cfs_deploy::deploy::disk::install_to_disk(&disk, &disk_opts, &opts)
                .with_context(|| format!("Installing {image} to {}", disk.display()))?;
            print(&format!(
                "Installed {image} to {}\n  deployment {}\n  boot type  {}\n  entry      {}\n  options    {}\n",
                disk.display(),
                done.id,
                done.boot_type,
                done.entry,
                done.options
            ))
        }
        SystemCommand::Gc { root, dry_run } => {
            let l = if dry_run {
                layout(&root)
            } else {
                layout_rw(&root)?
            };
            let done = cfs_deploy::deploy::gc::gc(&l, booted(&root).as_deref(), dry_run)
                .with_context(|| format!("Collecting {}", l.root.display()))?;
            let verb = if dry_run { "would remove" } else { "removed" };
            let mut out = String::new();
            for p in &done.binaries {
                out.push_str(&format!("{verb} {}\n", p.display()));
            }
            for id in &done.states {
                out.push_str(&format!("{verb} state of {id}\n"));
            }
            for t in &done.tags_removed {
                out.push_str(&format!("{verb} tag {t}\n"));
            }
            for t in &done.tags_added {
                out.push_str(&format!("tagged {t}\n"));
            }
            for p in &done.problems {
                out.push_str(&format!("warning: {p}\n"));
            }
            out.push_str(&format!(
                "{} boot binaries, {} state directories, {} objects ({}) {verb}\n",
                done.binaries.len(),
                done.states.len(),
                done.repo.objects_removed,
                indicatif::HumanBytes(done.repo.bytes_removed)
            ));
            print(&out)
        }
        SystemCommand::Upgrade {
            root, check: true, ..
        } => {
            let l = layout(&root);
            let id = need_booted(&root)?;
            let c = upgrade::check(&l, &id).context("Checking for an update")?;
            if c.available() {
                print(&format!(
                    "Update available: {} is now {} (booted: {})\n",
                    c.image,
                    c.latest,
                    c.current.as_deref().unwrap_or("unknown")
                ))
            } else {
                print(&format!("No update: {} is at {}\n", c.image, c.latest))
            }
        }
        SystemCommand::Upgrade {
            root,
            download_only,
            apply,
            tries,
            ..
        } => stage(&root, None, download_only, apply, tries),
        SystemCommand::Switch {
            image,
            root,
            download_only,
            apply,
            tries,
        } => stage(&root, Some(image), download_only, apply, tries),
        SystemCommand::MarkGood { root } => {
            let l = layout_rw(&root)?;
            let id = need_booted(&root)?;
            match manage::mark_good(&l, &id).context("Marking the boot good")? {
                Some(name) => print(&format!("Marked good: {name}\n")),
                None => print("Nothing to mark: the entry has no boot counter\n"),
            }
        }
        SystemCommand::Finalize { root } => {
            let l = layout_rw(&root)?;
            let id = need_booted(&root)?;
            match finalize(&l, &id).with_context(|| format!("Finalizing {}", l.root.display()))? {
                Some(new) => print(&format!("Finalized {new}: the next boot starts it\n")),
                None => print("Nothing to finalize\n"),
            }
        }
        SystemCommand::DeleteDeployment { id, root } => {
            let l = layout_rw(&root)?;
            manage::delete(&l, booted(&root).as_deref(), &id)
                .with_context(|| format!("Deleting deployment {id}"))?;
            print(&format!("Deleted {id}\n"))
        }
        SystemCommand::Pin { id, unpin, root } => {
            manage::pin(&layout_rw(&root)?, &id, !unpin)
                .with_context(|| format!("Pinning {id}"))?;
            print(&format!(
                "{} {id}\n",
                if unpin { "Unpinned" } else { "Pinned" }
            ))
        }
        SystemCommand::Kargs {
            append,
            delete,
            root,
        } => {
            let l = if append.is_empty() && delete.is_empty() {
                layout(&root)
            } else {
                layout_rw(&root)?
            };
            let options = if append.is_empty() && delete.is_empty() {
                let (live, _) = cfs_deploy::deploy::entries::read_dir(&l.entries())?;
                live.first()
                    .and_then(|e| e.entry.get("options"))
                    .unwrap_or("")
                    .to_owned()
            } else {
                manage::kargs(&l, &append, &delete).context("Editing kernel arguments")?
            };
            print(&format!("{options}\n"))
        }
        SystemCommand::Rollback { root } => {
            let l = layout_rw(&root)?;
            let id = entryset::rollback(&l)
                .with_context(|| format!("Rolling back {}", l.root.display()))?;
            print(&format!("Next boot: {id}\n"))
        }
    }
}

fn line(out: &mut String, what: &str, d: &Deployment) {
    out.push_str(&format!(
        "{what:<9}{}  {}{}{}\n",
        d.id,
        d.image.as_deref().unwrap_or("(no image)"),
        if d.pinned { "  (pinned)" } else { "" },
        match d.tries {
            Some((left, done)) => format!("  (boot tries left {left}, failed {done})"),
            None => String::new(),
        }
    ));
}

/// The status as lines for people.
fn human(s: &Status) -> String {
    let mut out = String::new();
    if let Some(d) = &s.staged {
        line(
            &mut out,
            if d.download_only { "staged*" } else { "staged" },
            d,
        );
    }
    if let Some(d) = &s.booted {
        line(&mut out, "booted", d);
    }
    if let Some(d) = &s.rollback {
        line(&mut out, "rollback", d);
    }
    for d in &s.others {
        line(&mut out, "other", d);
    }
    if s.rollback_queued {
        out.push_str("rollback queued: the next boot starts the rollback deployment\n");
    }
    if out.is_empty() {
        out.push_str("No deployments\n");
    }
    for p in &s.problems {
        out.push_str(&format!("warning: {p}\n"));
    }
    out
}

fn need_booted(root: &SystemRoot) -> Result<String> {
    booted(root).ok_or_else(|| {
        anyhow::anyhow!(
            "not booted from a composefs deployment (the root mount's source is not composefs:<id>)"
        )
    })
}

fn stage(
    root: &SystemRoot,
    image: Option<String>,
    download_only: bool,
    apply: bool,
    tries: Option<u32>,
) -> Result<()> {
    let l = layout_rw(root)?;
    let id = need_booted(root)?;
    let opts = StageOptions {
        image,
        download_only,
        tries,
    };
    match upgrade::stage(&l, &id, &opts)
        .with_context(|| format!("Staging on {}", l.root.display()))?
    {
        Staged::NoChange(id) => print(&format!("No changes: deployment {id} is current\n")),
        Staged::Staged(d) => {
            print(&format!(
                "Staged {}{}\n",
                d.id,
                if download_only {
                    " (download only)"
                } else if apply {
                    ": rebooting into it"
                } else {
                    ": applied at the next shutdown"
                }
            ))?;
            if apply {
                // The finalize unit applies it on the way down.
                let status = std::process::Command::new("systemctl")
                    .arg("reboot")
                    .status()
                    .context("--apply: running `systemctl reboot`")?;
                anyhow::ensure!(
                    status.success(),
                    "--apply: `systemctl reboot` failed ({status}); the deployment stays staged for the next boot"
                );
            }
            Ok(())
        }
    }
}
