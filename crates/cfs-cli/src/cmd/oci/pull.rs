//! `oci pull SOURCE [TAG]`: progress on stderr (one bar per layer on a
//! terminal, plain lines otherwise), the composefs-rs summary on stdout:
//!
//! ```text
//! manifest sha256:…
//! config   sha256:…
//! verity   <hex of the manifest stream object>
//! tagged   <tag>
//! objects  N new + M already present objects; X stored, Y inlined
//! ```

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use cfs_oci::pull::{PullOptions, PullProgress, pull as pull_image};
use cfs_oci::source::{Platform, SourceOptions, open_source};
use cfs_oci::store::OciImage;

use crate::cli::{GlobalOpts, OciPullArgs, parse_timeout};
use crate::cmd::repo::{open_repo, print, threads};

pub(super) fn pull(global: &GlobalOpts, args: &OciPullArgs) -> Result<()> {
    let repo = open_repo(global)?;
    let platform = match &args.platform {
        Some(p) => Some(
            p.parse::<Platform>()
                .map_err(|e| anyhow::anyhow!("--platform {p}: {e}"))?,
        ),
        None => None,
    };
    let source_opts = SourceOptions {
        insecure_registries: args.insecure_registry.clone(),
        auth_file: args.authfile.clone(),
        timeout: timeout(args)?,
    };
    let source = open_source(&args.source, &source_opts)
        .with_context(|| format!("Opening {}", args.source))?;
    let tag = if args.no_tag {
        None
    } else {
        Some(args.tag.clone().unwrap_or_else(|| args.source.clone()))
    };
    let progress: Arc<dyn PullProgress> = if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines::default())
    };
    let opts = PullOptions {
        platform,
        tag: tag.clone(),
        jobs: threads(global),
        progress: Some(progress),
        max_layer_size: args.max_layer_size,
    };
    let report = pull_image(&repo, source.as_ref(), &opts)
        .with_context(|| format!("Pulling {}", args.source))?;
    let mut out = format!(
        "manifest {}\nconfig   {}\n",
        report.manifest_digest, report.config_digest
    );
    if let Some(v) = &report.manifest_stream {
        out.push_str(&format!("verity   {}\n", v.to_hex()));
    }
    if let Some(t) = &report.tag {
        out.push_str(&format!("tagged   {t}\n"));
    }
    // The composefs image ids (what `cfsctl mount` takes), default format
    // first, also when the pull found everything already present.
    if let Ok(image) = OciImage::open_manifest(&repo, &report.manifest_digest) {
        for version in repo.erofs_versions() {
            if let Some(id) = image.linked_image(version) {
                out.push_str(&format!("image    {} (EROFS V{version})\n", id.to_hex()));
            }
        }
    }
    out.push_str(&format!(
        "objects  {} new + {} already present objects; {} stored, {} inlined\n",
        report.objects_written,
        report.objects_existing,
        HumanBytes(report.bytes_written),
        HumanBytes(report.bytes_inline)
    ));
    if args.bootable {
        out.push_str(&bootable(&repo, &report.manifest_digest, args)?);
    }
    print(&out)
}

/// `--bootable [--expected-digest HEX]`: the boot image lines.
fn bootable(
    repo: &cfs_core::repository::Repository,
    manifest: &str,
    args: &OciPullArgs,
) -> Result<String> {
    use cfs_deploy::boot_image::oci::{ensure_boot_image, find_matching_boot_image};
    let image = cfs_oci::store::OciImage::open_manifest(repo, manifest)
        .with_context(|| format!("Opening the pulled image {manifest}"))?;
    let report = match &args.expected_digest {
        Some(hex) => {
            let expected = cfs_core::verity::Digest::from_hex_with(repo.algorithm(), hex)
                .map_err(|e| anyhow::anyhow!("--expected-digest {hex}: {e}"))?;
            find_matching_boot_image(repo, &image, &expected)
        }
        None => ensure_boot_image(repo, &image, cfs_core::tree::XattrFilter::AllowlistOnly),
    }
    .with_context(|| format!("Building the boot image of {}", args.source))?;
    let mut out = String::new();
    for (v, d) in &report.images {
        if args.expected_digest.is_some() {
            out.push_str(&format!(
                "boot     {} (xattr-mode={}, format=V{v})\n",
                d.to_hex(),
                report.filter.as_str()
            ));
        } else {
            out.push_str(&format!("boot     {} (V{v})\n", d.to_hex()));
        }
    }
    if let Some(t) = report.boot_type {
        out.push_str(&format!("boottype {t}\n"));
    }
    for (name, digest) in &report.kernels {
        out.push_str(&format!("kernel   {name} sha256:{digest}\n"));
    }
    if !report.cached {
        out.push_str(if report.labelled {
            "selinux  labelled from the image's policy\n"
        } else {
            "selinux  no policy in the image: labels removed\n"
        });
    }
    for u in &report.ukis {
        match &u.arg {
            Some(arg) => out.push_str(&format!("sealed   {} {arg}\n", u.path)),
            None => out.push_str(&format!("uki      {} (no composefs argument)\n", u.path)),
        }
    }
    Ok(out)
}

/// `--timeout`, else `CFS_OCI_TIMEOUT`, else the library default.
fn timeout(args: &OciPullArgs) -> Result<Option<std::time::Duration>> {
    if args.timeout.is_some() {
        return Ok(args.timeout);
    }
    match std::env::var("CFS_OCI_TIMEOUT") {
        Ok(text) => parse_timeout(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("CFS_OCI_TIMEOUT: {e}")),
        Err(_) => Ok(None),
    }
}

/// Progress bars (stderr is a terminal).
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<usize, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
        }
    }
}

impl PullProgress for Bars {
    fn message(&self, text: &str) {
        let _ = self.multi.println(text);
    }

    fn layer_start(&self, index: usize, diff_id: &str, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(
            "[eta {eta:>3}] {bar:40.cyan/blue} {decimal_bytes:>9}/{decimal_total_bytes:9} \
             {decimal_bytes_per_sec:>11} {msg}",
        ) {
            bar.set_style(style.progress_chars("##-"));
        }
        let short = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        bar.set_message(short.chars().take(12).collect::<String>());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(index, bar);
        }
    }

    fn layer_progress(&self, index: usize, bytes: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(&index).cloned()) {
            bar.inc(bytes);
        }
    }

    fn layer_done(&self, index: usize, skipped: bool) {
        if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&index)) {
            if skipped {
                bar.finish_with_message(format!("{} skipped", bar.message()));
            } else {
                bar.finish_and_clear();
            }
        }
    }
}

/// Plain lines on stderr (not a terminal).
#[derive(Default)]
struct Lines {
    layers: Mutex<HashMap<usize, (String, u64, std::time::Instant)>>,
}

impl Lines {
    fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }
}

impl PullProgress for Lines {
    fn message(&self, text: &str) {
        self.line(text);
    }

    fn layer_start(&self, index: usize, diff_id: &str, size: u64) {
        if let Ok(mut l) = self.layers.lock() {
            l.insert(index, (diff_id.to_owned(), size, std::time::Instant::now()));
        }
    }

    fn layer_progress(&self, _index: usize, _bytes: u64) {}

    fn layer_done(&self, index: usize, skipped: bool) {
        let Some((diff_id, size, start)) =
            self.layers.lock().ok().and_then(|mut l| l.remove(&index))
        else {
            return;
        };
        if skipped {
            self.line(&format!("layer {diff_id}: already present"));
        } else {
            let secs = start.elapsed().as_secs_f64().max(1e-6);
            self.line(&format!(
                "layer {diff_id}: {} in {secs:.1} s ({}/s)",
                HumanBytes(size),
                HumanBytes((size as f64 / secs) as u64)
            ));
        }
    }
}
