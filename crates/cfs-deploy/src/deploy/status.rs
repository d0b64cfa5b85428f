//! Status of the deployments of a physical root (boot-deploy.md §7),
//! derived every time from the boot entries (live and staged), the origins
//! and the booted deployment's id (the root mount source `composefs:<id>`,
//! or a test hook) — never from one file a crash could leave out of step.
//!
//! - **booted**: the deployment whose id is the booted one;
//! - **staged**: the deployment the `/run` marker names, if its entry set is
//!   staged (`downloadOnly` = `finalization_locked`);
//! - **rollback**: the first other deployment in menu order;
//! - **others**: the rest, in menu order (bootc keeps only two; cfs keeps
//!   pinned and extra deployments);
//! - `rollbackQueued`: the first (default) entry is not the booted one.
//!
//! An entry whose state directory or origin is missing is listed in
//! `problems` and skipped, never fatal (bootc #2208, #2224, #2228).

use std::collections::HashSet;
use std::io;

use super::Layout;
use super::entries::{self, BootEntry};

/// One deployment as status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Its id (the boot image's fs-verity digest, hex).
    pub id: String,
    /// The entry file that boots it.
    pub entry_file: String,
    /// The image reference of its origin.
    pub image: Option<String>,
    /// `sha256:…` of its OCI manifest.
    pub manifest_digest: Option<String>,
    /// `bls` or `uki`.
    pub boot_type: Option<String>,
    /// SHA-256 of its kernel and initramfs (or UKI sections).
    pub boot_digest: Option<String>,
    /// Pinned (kept by gc and rotation).
    pub pinned: bool,
    /// Boot counting: (tries left, tries done).
    pub tries: Option<(u32, u32)>,
    /// Staged with `--download-only`.
    pub download_only: bool,
}

/// The status of a physical root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The booted deployment.
    pub booted: Option<Deployment>,
    /// The staged deployment.
    pub staged: Option<Deployment>,
    /// The rollback deployment.
    pub rollback: Option<Deployment>,
    /// Further deployments in menu order.
    pub others: Vec<Deployment>,
    /// The default entry is not the booted deployment.
    pub rollback_queued: bool,
    /// What could not be read (entries skipped), in words.
    pub problems: Vec<String>,
}

/// The staged marker `{"depl_id":"<id>","finalization_locked":<bool>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedMarker {
    /// The staged deployment.
    pub id: String,
    /// Download only: not applied at shutdown.
    pub finalization_locked: bool,
}

impl StagedMarker {
    /// bootc's canonical JSON.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"depl_id\":\"{}\",\"finalization_locked\":{}}}",
            self.id, self.finalization_locked
        )
    }

    /// Parses the marker (a small flat JSON object).
    pub fn parse(text: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(StagedMarker {
            id: v.get("depl_id")?.as_str()?.to_owned(),
            finalization_locked: v.get("finalization_locked")?.as_bool()?,
        })
    }
}

fn deployment(layout: &Layout, e: &BootEntry, problems: &mut Vec<String>) -> Option<Deployment> {
    let id = e.id.clone()?;
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        problems.push(format!("{}: deployment id {id:?} is not hex", e.file_name));
        return None;
    }
    let origin = match layout.read_origin(&id) {
        Ok(o) => o,
        Err(err) => {
            problems.push(format!(
                "entry {} names deployment {id}, but its origin cannot be read: {err}",
                e.file_name
            ));
            return None;
        }
    };
    check_repository(layout, &id, origin.manifest_digest(), problems);
    Some(Deployment {
        entry_file: e.file_name.clone(),
        image: origin.image_ref().map(str::to_owned),
        manifest_digest: origin.manifest_digest().map(str::to_owned),
        boot_type: origin.boot_type().map(str::to_owned),
        boot_digest: origin.boot_digest().map(str::to_owned),
        pinned: origin.pinned(),
        tries: e.tries,
        download_only: false,
        id,
    })
}

/// Reports what of deployment `id` is missing from the repository (its
/// image, its manifest: bootc #2422) — status still lists the deployment.
fn check_repository(layout: &Layout, id: &str, manifest: Option<&str>, problems: &mut Vec<String>) {
    let repo = layout.repo();
    if !repo.join("meta.json").exists() {
        return;
    }
    if !repo.join("images").join(id).exists() {
        problems.push(format!(
            "deployment {id}: its image is missing from the repository (images/{id}); it cannot boot"
        ));
    }
    if let Some(m) = manifest {
        let stream = cfs_oci::store::manifest_stream_id(m);
        if !repo.join("streams").join(&stream).exists() {
            problems.push(format!(
                "deployment {id}: its OCI manifest {m} is missing from the repository (streams/{stream}); \
                 it still boots, but `system upgrade` must pull the image again"
            ));
        }
    }
}

/// Derives the status of `layout`, `booted` being the booted deployment's
/// id (`None`: not booted from this root, e.g. an installer).
pub fn status(layout: &Layout, booted: Option<&str>) -> io::Result<Status> {
    let (live, mut problems) = entries::read_dir(&layout.entries())?;
    let (staged_entries, staged_problems) = entries::read_dir(&layout.staged_entries())?;
    problems.extend(staged_problems);
    let marker = match super::read_small_file(&layout.staged_marker(), 4096) {
        Ok(text) => StagedMarker::parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            problems.push(format!("{}: {e}", layout.staged_marker().display()));
            None
        }
    };
    let mut out = Status::default();
    let mut seen = HashSet::new();
    let mut in_order = Vec::new();
    for e in &live {
        if e.id.as_ref().is_some_and(|id| seen.insert(id.clone()))
            && let Some(d) = deployment(layout, e, &mut problems)
        {
            in_order.push(d);
        }
    }
    out.rollback_queued = match (booted, live.first().and_then(|e| e.id.as_deref())) {
        (Some(b), Some(first)) => b != first,
        _ => false,
    };
    if let Some(m) = &marker {
        let entry = staged_entries
            .iter()
            .find(|e| e.id.as_deref() == Some(&m.id));
        match entry {
            Some(e) => {
                if let Some(mut d) = deployment(layout, e, &mut problems) {
                    d.download_only = m.finalization_locked;
                    out.staged = Some(d);
                }
            }
            None => problems.push(format!(
                "the staged marker names {} but no staged entry boots it",
                m.id
            )),
        }
    }
    for d in in_order {
        if Some(d.id.as_str()) == booted && out.booted.is_none() {
            out.booted = Some(d);
        } else if out.staged.as_ref().is_some_and(|s| s.id == d.id) {
            continue;
        } else if out.rollback.is_none() {
            out.rollback = Some(d);
        } else {
            out.others.push(d);
        }
    }
    if let Some(b) = booted
        && out.booted.is_none()
    {
        problems.push(format!("the booted deployment {b} has no live boot entry"));
    }
    out.problems = problems;
    Ok(out)
}

fn deployment_json(d: &Deployment) -> serde_json::Value {
    serde_json::json!({
        "image": d.image.as_ref().map(|i| serde_json::json!({"image": {"image": i}, "manifestDigest": d.manifest_digest})),
        "pinned": d.pinned,
        "softRebootCapable": false,
        "downloadOnly": d.download_only,
        "composefs": {
            "verity": d.id,
            "bootType": d.boot_type,
            "bootDigest": d.boot_digest,
        },
        "cfs": {
            "entry": d.entry_file,
            "triesLeft": d.tries.map(|t| t.0),
            "triesDone": d.tries.map(|t| t.1),
        },
    })
}

/// The status as JSON in bootc's shape (`status.{booted,staged,rollback,
/// otherDeployments}`, `rollbackQueued`), with cfs's additions under `cfs`.
pub fn to_json(s: &Status) -> serde_json::Value {
    let opt = |d: &Option<Deployment>| d.as_ref().map(deployment_json);
    serde_json::json!({
        "apiVersion": "org.containers.bootc/v1",
        "kind": "BootcHost",
        "spec": {
            "bootOrder": if s.rollback_queued { "rollback" } else { "default" },
        },
        "status": {
            "staged": opt(&s.staged),
            "booted": opt(&s.booted),
            "rollback": opt(&s.rollback),
            "otherDeployments": s.others.iter().map(deployment_json).collect::<Vec<_>>(),
            "rollbackQueued": s.rollback_queued,
            "type": "bootcHost",
            "cfs": { "problems": s.problems },
        },
    })
}

#[cfg(test)]
mod tests;
