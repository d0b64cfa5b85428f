//! `system gc` (boot-deploy.md §8): everything the live deployments (the
//! deployments of the live and staged entry sets) do not need.
//!
//! 1. boot binaries no entry names ([`super::binaries::gc`]);
//! 2. orphan state directories (no entry: an interrupted deploy or a
//!    deleted deployment) and temporary leftovers under `state/`;
//! 3. tags: `localhost/bootc-<manifest digest>` of a manifest no live origin
//!    names are removed, missing ones of live deployments re-created;
//! 4. the repository, with every live deployment's image as an extra root.
//!
//! The booted deployment is never touched: if it has no entry, or its state
//! or binary would go, gc stops with "inconsistent state" first.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::PathBuf;

use cfs_core::repository::{GcOptions, GcReport, OpenOptions, Repository};
use cfs_oci::store::{list_tags, tag_image, untag_image};

use super::status::StagedMarker;
use super::{Layout, binaries, entries, other, read_small_file};

/// The prefix of the tags deployments keep their images with.
pub const TAG_PREFIX: &str = "localhost/bootc-";

/// What [`gc`] did (or would do).
#[derive(Debug, Clone, Default)]
pub struct SystemGc {
    /// Boot binaries removed.
    pub binaries: Vec<PathBuf>,
    /// Orphan state directories (deployment ids) removed.
    pub states: Vec<String>,
    /// Tags removed.
    pub tags_removed: Vec<String>,
    /// Tags re-created for live deployments.
    pub tags_added: Vec<String>,
    /// The repository collection.
    pub repo: GcReport,
    /// What is missing (e.g. a live deployment's manifest: bootc #2422),
    /// reported, not fatal.
    pub problems: Vec<String>,
}

/// Collects (see the module docs).
pub fn gc(layout: &Layout, booted: Option<&str>, dry_run: bool) -> io::Result<SystemGc> {
    let (live, p1) = entries::read_dir(&layout.entries())?;
    let (staged, p2) = entries::read_dir(&layout.staged_entries())?;
    if let Some(p) = p1.iter().chain(&p2).next() {
        return Err(other(format!(
            "not collecting: an entry cannot be read ({p})"
        )));
    }
    let ids: HashSet<String> = live
        .iter()
        .chain(&staged)
        .filter_map(|e| e.id.clone())
        .collect();
    // A marker naming a deployment no entry names (an interrupted stage)
    // is stale: it goes with the orphan state.
    let stale_marker = read_small_file(&layout.staged_marker(), 4096)
        .ok()
        .and_then(|t| StagedMarker::parse(&t))
        .is_some_and(|m| !ids.contains(&m.id));
    if let Some(b) = booted
        && !ids.contains(b)
    {
        return Err(other(format!(
            "inconsistent state: the booted deployment {b} has no boot entry; nothing removed"
        )));
    }
    if !dry_run {
        super::entryset::clean_leftovers(layout)?;
    }
    let mut out = SystemGc {
        binaries: binaries::gc(layout, booted, dry_run)?.removed,
        ..SystemGc::default()
    };
    // Orphan state directories and leftovers.
    let state_root = layout.root.join("state/deploy");
    if let Ok(list) = std::fs::read_dir(&state_root) {
        for item in list {
            let name = item?.file_name().to_string_lossy().into_owned();
            if ids.contains(&name) {
                continue;
            }
            if !dry_run {
                std::fs::remove_dir_all(state_root.join(&name))?;
            }
            out.states.push(name);
        }
    }
    if stale_marker && !dry_run {
        std::fs::remove_file(layout.staged_marker())?;
    }
    if !dry_run && let Ok(list) = std::fs::read_dir(layout.root.join("state")) {
        for item in list {
            let item = item?;
            if item.file_name().to_string_lossy().starts_with(".tmp-") {
                std::fs::remove_dir_all(item.path())?;
            }
        }
    }
    // Tags and the repository.
    let repo_path = layout.repo();
    if !repo_path.join("meta.json").exists() {
        return Ok(out);
    }
    let repo = Repository::open(&repo_path, &OpenOptions::default()).map_err(other)?;
    let mut manifests = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    for id in sorted {
        let Some(digest) = layout
            .read_origin(id)
            .ok()
            .and_then(|o| o.manifest_digest().map(str::to_owned))
        else {
            continue;
        };
        let stream = cfs_oci::store::manifest_stream_id(&digest);
        if !repo_path.join("streams").join(&stream).exists() {
            // bootc #2422: say what is missing, keep going; the deployment's
            // image stays (it is a root by id), its tag stays too.
            out.problems.push(format!(
                "deployment {id}: its OCI manifest {digest} is missing from the repository \
                 (streams/{stream}); its image and state are kept, `system upgrade` pulls it again"
            ));
            missing.insert(digest.clone());
        }
        manifests.insert(digest);
    }
    let tags = list_tags(&repo).map_err(other)?;
    for (tag, _) in &tags {
        if let Some(digest) = tag.strip_prefix(TAG_PREFIX)
            && !manifests.contains(digest)
        {
            if !dry_run {
                untag_image(&repo, tag).map_err(other)?;
            }
            out.tags_removed.push(tag.clone());
        }
    }
    for digest in &manifests {
        let tag = format!("{TAG_PREFIX}{digest}");
        if !missing.contains(digest) && !tags.iter().any(|(t, _)| *t == tag) {
            if !dry_run && let Err(e) = tag_image(&repo, digest, &tag) {
                out.problems.push(format!(
                    "cannot tag {digest} for a live deployment (its manifest is missing from the repository?): {e}"
                ));
                continue;
            }
            out.tags_added.push(tag);
        }
    }
    out.repo = repo
        .gc(&GcOptions {
            dry_run,
            extra_roots: ids.into_iter().collect(),
            ..GcOptions::default()
        })
        .map_err(other)?;
    Ok(out)
}
