//! `oci images` and `oci inspect`.

use anyhow::{Context, Result};
use serde::Serialize;

use cfs_oci::store::{self, OciImage};

use super::open_image;
use crate::cli::GlobalOpts;
use crate::cmd::repo::{open_repo_read, print, table};

/// One row of `oci images --json`.
#[derive(Serialize)]
struct ImageRow {
    name: String,
    manifest_digest: String,
    is_container: bool,
    architecture: String,
    os: String,
    created: Option<String>,
    layer_count: usize,
    referrer_count: usize,
}

/// `oci images [--json] [--no-trunc]`.
pub(super) fn images(global: &GlobalOpts, json: bool, no_trunc: bool) -> Result<()> {
    let repo = open_repo_read(global)?;
    let mut rows = Vec::new();
    for (tag, digest) in store::list_tags(&repo)? {
        let image = match OciImage::open_manifest(&repo, &digest) {
            Ok(i) => i,
            Err(e) => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("warning: skipping image {tag}: {e}");
                }
                continue;
            }
        };
        let (architecture, os, created) = match &image.config {
            Some(c) => (
                c.architecture().to_string(),
                c.os().to_string(),
                c.created().clone(),
            ),
            None => (String::new(), String::new(), None),
        };
        rows.push(ImageRow {
            name: tag,
            manifest_digest: digest,
            is_container: image.config.is_some(),
            architecture,
            os,
            created,
            layer_count: image.manifest.layers().len(),
            referrer_count: 0,
        });
    }
    if json {
        #[derive(Serialize)]
        struct Out {
            images: Vec<ImageRow>,
        }
        let mut text = serde_json::to_string_pretty(&Out { images: rows })?;
        text.push('\n');
        return print(&text);
    }
    if rows.is_empty() {
        return print("No images found\n");
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let hex = r
                .manifest_digest
                .strip_prefix("sha256:")
                .unwrap_or(&r.manifest_digest);
            vec![
                r.name.clone(),
                if no_trunc {
                    r.manifest_digest.clone()
                } else {
                    hex.chars().take(12).collect()
                },
                if r.is_container {
                    r.architecture.clone()
                } else {
                    "artifact".into()
                },
                r.layer_count.to_string(),
                r.referrer_count.to_string(),
            ]
        })
        .collect();
    print(&table::render_for_stdout(
        &["NAME", "DIGEST", "ARCH", "LAYERS", "REFS"],
        &body,
    ))
}

/// `oci inspect IMAGE [--manifest|--config]`.
pub(super) fn inspect(global: &GlobalOpts, name: &str, manifest: bool, config: bool) -> Result<()> {
    let repo = open_repo_read(global)?;
    let image = open_image(&repo, name)?;
    let raw = |bytes: &[u8]| -> Result<()> {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        text.push('\n');
        print(&text)
    };
    if manifest {
        return raw(&image.manifest_stream.bytes);
    }
    if config {
        return raw(&image.config_stream.bytes);
    }
    let version = repo.erofs_versions().first().copied().unwrap_or(1);
    let out = serde_json::json!({
        "manifest": String::from_utf8_lossy(&image.manifest_stream.bytes),
        "config": String::from_utf8_lossy(&image.config_stream.bytes),
        "referrers": Vec::<String>::new(),
        "composefs_erofs": image.linked_image(version).map(|d| d.to_hex()),
        "composefs_boot_erofs": image
            .boot_image(version, cfs_core::tree::XattrFilter::AllowlistOnly)
            .map(|d| d.to_hex()),
    });
    let mut text = serde_json::to_string_pretty(&out).context("serialising")?;
    text.push('\n');
    print(&text)
}
