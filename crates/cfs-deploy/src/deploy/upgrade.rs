//! Upgrade / switch (staging) and finalize (boot-deploy.md §6.2–6.3).
//!
//! **Stage**: the image (the booted deployment's, or the one switched to) is
//! pulled and deployed beside the booted one; an id equal to an existing
//! deployment stages nothing ("no changes" for an upgrade, an error for a
//! switch: a state directory seeded from another image must not be reused).
//! The three-way `/etc` merge is planned first: conflicts stop the upgrade
//! before any entry is written and the new state is removed. The new entry
//! set (the new deployment first, the booted one second, pinned ones after,
//! foreign entries kept) is written to `loader/entries.staged`; the kernel
//! command line is the booted entry's with only the composefs argument
//! replaced; the `/run` marker names the staged deployment
//! (`finalization_locked` = download only).
//!
//! **Finalize** (at shutdown): the `/etc` merge (pristine = the booted image's
//! `/etc`, current = the live one, `state/deploy/<booted>/etc`, new = the
//! staged deployment's), then the entry sets are exchanged atomically, the
//! marker removed, and boot binaries no entry names collected.

use std::io;
use std::path::{Path, PathBuf};

use cfs_core::erofs::reader::{ReadOptions, read_image};
use cfs_core::repository::{OpenOptions, Repository};

use super::entries::{self, BootEntry};
use super::install::{Bootloader, Deployed, deploy_image};
use super::status::StagedMarker;
use super::{Layout, binaries, checkout, entryset, other, read_small_file};
use crate::cmdline::ComposefsArg;
use crate::etc_merge::{self, Tree};

/// What [`stage`] did.
#[derive(Debug, Clone)]
pub enum Staged {
    /// The image gives the booted (or another existing) deployment.
    NoChange(String),
    /// A new deployment is staged.
    Staged(Box<Deployed>),
}

/// Options of [`stage`].
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    /// Switch to this image (default: the booted deployment's image).
    pub image: Option<String>,
    /// Download only: finalize leaves it staged.
    pub download_only: bool,
    /// Boot counting: the new entry gets this many tries (systemd-boot's
    /// `+N` counter); without `mark-good` it falls back by itself.
    pub tries: Option<u32>,
}

/// The booted entry's options with the composefs argument replaced by `arg`.
fn with_arg(options: &str, arg: &ComposefsArg) -> String {
    let mut out: Vec<String> = crate::cmdline::split(options)
        .filter(|w| !w.starts_with("composefs=") && !w.starts_with("composefs.digest="))
        .map(str::to_owned)
        .collect();
    let pos = out
        .iter()
        .position(|w| w == "rw" || w == "ro")
        .map_or(out.len(), |p| p + 1);
    out.insert(pos, arg.to_string());
    out.join(" ")
}

fn live_entry(layout: &Layout, id: &str) -> io::Result<(Vec<BootEntry>, BootEntry)> {
    let (live, problems) = entries::read_dir(&layout.entries())?;
    let found = live.iter().find(|e| e.id.as_deref() == Some(id)).cloned();
    match found {
        Some(e) => Ok((live, e)),
        None => Err(other(format!(
            "the booted deployment {id} has no boot entry in {}{}",
            layout.entries().display(),
            if problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", problems.join("; "))
            }
        ))),
    }
}

/// Checks out the `/etc` of deployment `id`'s image (the pristine tree).
fn pristine_etc(layout: &Layout, repo: &Repository, id: &str) -> io::Result<PathBuf> {
    let (bytes, _) = repo.read_image_bytes(id).map_err(other)?;
    let (fs, _) = read_image(&bytes, &ReadOptions::default()).map_err(other)?;
    let tmp = layout
        .root
        .join(format!("state/.tmp-pristine-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    checkout::checkout(&fs, repo, b"/etc", &tmp.join("etc"))?;
    Ok(tmp)
}

fn plan_merge(
    layout: &Layout,
    repo: &Repository,
    booted: &str,
    new: &str,
) -> io::Result<(PathBuf, etc_merge::MergePlan)> {
    let tmp = pristine_etc(layout, repo, booted)?;
    let open = |p: &Path, t| etc_merge::open_tree(p, t).map_err(other);
    let plan = etc_merge::plan(
        open(&tmp.join("etc"), Tree::Pristine)?,
        open(&layout.state(booted).join("etc"), Tree::Current)?,
        open(&layout.state(new).join("etc"), Tree::New)?,
    )
    .map_err(other)?;
    Ok((tmp, plan))
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The booted deployment's image.
    pub image: String,
    /// Its manifest digest when it was deployed (from the origin).
    pub current: Option<String>,
    /// The manifest digest the image has now.
    pub latest: String,
}

impl Check {
    /// The image has a manifest the booted deployment was not made from.
    pub fn available(&self) -> bool {
        self.current.as_deref() != Some(self.latest.as_str())
    }
}

/// `upgrade --check`: fetches only the manifest of the booted deployment's
/// image and compares it with the one it was deployed from.
pub fn check(layout: &Layout, booted: &str) -> io::Result<Check> {
    use cfs_oci::source::{Platform, SourceOptions, open_source};
    let origin = layout.read_origin(booted)?;
    let image = origin
        .image_ref()
        .ok_or_else(|| other("the booted deployment's origin names no image"))?
        .to_owned();
    let opts = SourceOptions::for_reference(&image, None).map_err(other)?;
    let source = open_source(&image, &opts).map_err(other)?;
    let latest = source.manifest(&Platform::host()).map_err(other)?.digest;
    Ok(Check {
        image,
        current: origin.manifest_digest().map(str::to_owned),
        latest,
    })
}

/// Stages an upgrade or switch (see the module docs).
pub fn stage(layout: &Layout, booted: &str, opts: &StageOptions) -> io::Result<Staged> {
    let repo = Repository::open(&layout.repo(), &OpenOptions::default()).map_err(other)?;
    let origin = layout.read_origin(booted)?;
    let image = match &opts.image {
        Some(i) => i.clone(),
        None => origin
            .image_ref()
            .ok_or_else(|| other("the booted deployment's origin names no image"))?
            .to_owned(),
    };
    let (live, booted_entry) = live_entry(layout, booted)?;
    let booted_options = booted_entry.entry.get("options").unwrap_or("rw").to_owned();
    let build = |_: &cfs_core::tree::FileSystem,
                 _: &dyn crate::boot_image::Contents,
                 arg: &ComposefsArg| { Ok(with_arg(&booted_options, arg)) };
    let deployed = match deploy_image(layout, &repo, &image, &build, Bootloader::None, false) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let id = e
                .to_string()
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            if opts.image.is_some() {
                return Err(other(format!(
                    "{image} gives deployment {id}, which exists already: nothing to switch to"
                )));
            }
            return Ok(Staged::NoChange(id));
        }
        Err(e) => return Err(e),
    };
    let (tmp, plan) = plan_merge(layout, &repo, booted, &deployed.id)?;
    let _ = std::fs::remove_dir_all(&tmp);
    if !plan.is_clean() {
        let _ = std::fs::remove_dir_all(layout.state(&deployed.id));
        let list: Vec<String> = plan
            .conflicts()
            .iter()
            .map(|c| {
                format!(
                    "/etc/{} (locally changed: {})",
                    c.path.display(),
                    c.local_changes
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        return Err(other(format!(
            "Merge conflicts found in /etc, nothing staged:\n  {}",
            list.join("\n  ")
        )));
    }
    // The new set: new, booted, pinned others; foreign entries kept.
    let new_entry = BootEntry {
        file_name: deployed.name.clone(),
        base_name: deployed.name.trim_end_matches(".conf").to_owned(),
        tries: opts.tries.map(|t| (t, 0)),
        entry: deployed.entry.clone(),
        id: Some(deployed.id.clone()),
        boots: entries::deployment_of(&deployed.entry).1,
    };
    let mut order = vec![new_entry, booted_entry];
    for e in live {
        let id = e.id.clone().unwrap_or_default();
        if id == booted || id == deployed.id {
            continue;
        }
        let pinned = layout.read_origin(&id).is_ok_and(|o| o.pinned());
        if pinned {
            order.push(e);
        }
    }
    let mut set = entryset::renumber(&order)?;
    set.extend(entryset::foreign(layout)?);
    entryset::stage(layout, &set)?;
    std::fs::create_dir_all(&layout.run)?;
    let marker = StagedMarker {
        id: deployed.id.clone(),
        finalization_locked: opts.download_only,
    };
    super::write_atomic(&layout.staged_marker(), marker.to_json().as_bytes())?;
    Ok(Staged::Staged(Box::new(deployed)))
}

/// Finalizes a staged deployment (see the module docs); returns its id, or
/// `None` when nothing is staged or it is download-only.
pub fn finalize(layout: &Layout, booted: &str) -> io::Result<Option<String>> {
    let marker = match read_small_file(&layout.staged_marker(), 4096) {
        Ok(t) => StagedMarker::parse(&t).ok_or_else(|| other("malformed staged marker"))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if marker.finalization_locked {
        return Ok(None);
    }
    // The staged set must boot the marker's deployment; if the live set
    // already does, an earlier finalize was interrupted after the exchange:
    // only its cleanup is left.
    let (staged, _) = entries::read_dir(&layout.staged_entries())?;
    if !staged
        .iter()
        .any(|e| e.id.as_deref() == Some(marker.id.as_str()))
    {
        let (live, _) = entries::read_dir(&layout.entries())?;
        if live
            .iter()
            .any(|e| e.id.as_deref() == Some(marker.id.as_str()))
        {
            if layout.staged_entries().exists() {
                std::fs::remove_dir_all(layout.staged_entries())?;
            }
            std::fs::remove_file(layout.staged_marker())?;
            entryset::clean_leftovers(layout)?;
            binaries::gc(layout, Some(booted), false)?;
            return Ok(Some(marker.id));
        }
        return Err(other(format!(
            "the staged marker names {} but no entry set boots it; run `system gc` to drop the stale marker",
            marker.id
        )));
    }
    let repo = Repository::open(&layout.repo(), &OpenOptions::default()).map_err(other)?;
    let (tmp, plan) = plan_merge(layout, &repo, booted, &marker.id)?;
    let result = etc_merge::apply(
        &plan,
        etc_merge::open_tree(&layout.state(booted).join("etc"), Tree::Current).map_err(other)?,
        etc_merge::open_tree(&layout.state(&marker.id).join("etc"), Tree::New).map_err(other)?,
    );
    let _ = std::fs::remove_dir_all(&tmp);
    result.map_err(other)?;
    entryset::exchange(layout)?;
    std::fs::remove_file(layout.staged_marker())?;
    entryset::clean_leftovers(layout)?;
    binaries::gc(layout, Some(booted), false)?;
    Ok(Some(marker.id))
}
