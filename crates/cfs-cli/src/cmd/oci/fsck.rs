//! `oci fsck [IMAGE] [--json]`: the repository check, then every tagged
//! image (or one): manifest and config re-hashed against their digests,
//! every layer stream and the linked EROFS images present. Exit status 1 on
//! any problem, in both output modes.

use anyhow::{Result, bail};
use serde::Serialize;

use cfs_core::repository::{FsckOptions, Repository};
use cfs_oci::store::{self, OciImage, layer_stream_id};

use crate::cli::GlobalOpts;
use crate::cmd::repo::{open_repo_read, print, threads};

#[derive(Serialize)]
struct Report<R: Serialize> {
    ok: bool,
    images_checked: usize,
    images_corrupted: usize,
    errors: Vec<String>,
    repo: R,
}

pub(super) fn fsck(global: &GlobalOpts, image: Option<&str>, json: bool) -> Result<()> {
    let repo = open_repo_read(global)?;
    let opts = FsckOptions {
        metadata_only: false,
        threads: threads(global),
    };
    let repo_report = repo.fsck(&opts, None)?;
    let targets: Vec<(String, String)> = match image {
        Some(name) => vec![(name.to_owned(), store::resolve_image_name(&repo, name)?)],
        None => store::list_tags(&repo)?,
    };
    let mut errors = Vec::new();
    let mut corrupted = 0;
    for (tag, digest) in &targets {
        let before = errors.len();
        check_image(&repo, tag, digest, &mut errors);
        if errors.len() > before {
            corrupted += 1;
        }
    }
    let ok = repo_report.ok && errors.is_empty();
    let text = if json {
        let mut t = serde_json::to_string_pretty(&Report {
            ok,
            images_checked: targets.len(),
            images_corrupted: corrupted,
            errors: errors.clone(),
            repo: &repo_report,
        })?;
        t.push('\n');
        t
    } else {
        let mut t = repo_report.to_text();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(&format!(
            "oci images: {}/{} ok\n",
            targets.len() - corrupted,
            targets.len()
        ));
        if !errors.is_empty() {
            t.push_str(&format!("oci errors: {}\n", errors.len()));
            for e in &errors {
                t.push_str(&format!("  - {e}\n"));
            }
        }
        t
    };
    print(&text)?;
    if !ok {
        bail!("OCI integrity check failed");
    }
    Ok(())
}

/// Appends `kind: tag: message` lines for everything wrong with one image.
fn check_image(repo: &Repository, tag: &str, digest: &str, errors: &mut Vec<String>) {
    let image = match OciImage::open_manifest(repo, digest) {
        Ok(i) => i,
        Err(e) => {
            errors.push(format!("image-open-failed: {tag}: {e}"));
            return;
        }
    };
    if image.config.is_none() {
        return;
    }
    match image.layers() {
        Ok(layers) => {
            for (diff_id, object) in layers {
                let id = layer_stream_id(&diff_id);
                match repo.has_stream(&id) {
                    Ok(Some(_)) => {}
                    Ok(None) => errors.push(format!("layer-stream-missing: {tag}: {id}")),
                    Err(e) => errors.push(format!("layer-stream-missing: {tag}: {id}: {e}")),
                }
                if !repo.has_object(&object).unwrap_or(false) {
                    errors.push(format!(
                        "layer-object-missing: {tag}: {diff_id}: object {object}"
                    ));
                }
            }
        }
        Err(e) => errors.push(format!("layer-ref-missing: {tag}: {e}")),
    }
    for v in repo.erofs_versions() {
        match image.linked_image(v) {
            Some(d) => {
                if let Err(e) = repo.open_image(&d.to_hex()) {
                    errors.push(format!("image-missing: {tag}: V{v} image {d}: {e}"));
                }
            }
            None => errors.push(format!(
                "image-ref-missing: {tag}: no {} named ref",
                store::image_ref_name(v)
            )),
        }
    }
}
