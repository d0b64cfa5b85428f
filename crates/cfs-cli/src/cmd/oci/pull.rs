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
//!
//! Without a NAME the image is tagged with the short name of the source:
//! its repository and tag (`debian:12` for `docker://docker.io/library/debian:12`,
//! `layout:v1` for `oci:/srv/layout:v1`), not the whole source string.
//!
//! A pull that fails or is interrupted (SIGINT, SIGTERM) says on stderr
//! what it left: the layers already stored stay in the repository, a new
//! pull reuses them, and `cfsctl gc` reclaims them otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
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
        ..SourceOptions::for_reference(&args.source, args.registries_conf.as_deref())?
    };
    let source = open_source(&args.source, &source_opts)
        .with_context(|| format!("Opening {}", args.source))?;
    let tag = if args.no_tag {
        None
    } else {
        Some(
            args.tag
                .clone()
                .unwrap_or_else(|| default_tag(&args.source)),
        )
    };
    let display: Arc<dyn PullProgress> = if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines::default())
    };
    let tally = Arc::new(Tally::default());
    let progress = Arc::new(Counted {
        inner: display,
        tally: Arc::clone(&tally),
    });
    on_interrupt(Arc::clone(&tally), repo.path().to_owned());
    let opts = PullOptions {
        platform,
        tag: tag.clone(),
        jobs: threads(global),
        progress: Some(progress),
        max_layer_size: args.max_layer_size,
    };
    let report = pull_image(&repo, source.as_ref(), &opts)
        .map_err(|e| {
            let left = tally.left_behind(repo.path());
            anyhow::Error::new(e)
                .context(format!("Pulling {}", args.source))
                .context(left)
        })
        .map_err(swap_context)?;
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

/// The short default tag of `source`: the repository's last path
/// components and the tag (or digest) of a registry reference; the
/// directory or archive name and the tag of a local one.
fn default_tag(source: &str) -> String {
    if let Some(spec) = source.strip_prefix("docker://") {
        // Drop the registry host (a first component with a dot, a colon or
        // `localhost`), and docker.io's `library/`.
        let (name, suffix) = match spec.find('@') {
            Some(at) => (&spec[..at], &spec[at..]),
            None => match spec.rfind(':').filter(|&c| !spec[c..].contains('/')) {
                Some(c) => (&spec[..c], &spec[c..]),
                None => (spec, ":latest"),
            },
        };
        let mut parts: Vec<&str> = name.split('/').collect();
        if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
            parts.remove(0);
        }
        if parts.len() > 1 && parts[0] == "library" {
            parts.remove(0);
        }
        return format!("{}{suffix}", parts.join("/"));
    }
    for prefix in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = source.strip_prefix(prefix) {
            let (path, tag) = match rest.rsplit_once(':') {
                Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
                _ => (rest, None),
            };
            let file = std::path::Path::new(path)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.to_owned());
            let stem = file.strip_suffix(".tar").map(str::to_owned).unwrap_or(file);
            return match tag {
                Some(tag) => format!("{stem}:{tag}"),
                None => stem,
            };
        }
    }
    source.to_owned()
}

/// What a pull has done so far, for the message of a failed or
/// interrupted one.
#[derive(Default)]
struct Tally {
    /// Layers started (including those found already present).
    started: AtomicU64,
    /// Layers fully stored.
    stored: AtomicU64,
    /// Layers already present.
    present: AtomicU64,
    /// Compressed bytes read.
    bytes: AtomicU64,
}

impl Tally {
    /// One paragraph: what stays in the repository and what to do.
    fn left_behind(&self, repo: &std::path::Path) -> String {
        let started = self
            .started
            .load(Ordering::Relaxed)
            .saturating_sub(self.present.load(Ordering::Relaxed));
        let stored = self.stored.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        if started == 0 {
            return "No new layer had been stored.".to_owned();
        }
        format!(
            "The pull stopped after storing {stored} of the {started} layers it started \
             ({} read); their files stay in {}. Pulling again reuses them; `cfsctl gc` \
             reclaims them if you do not pull again.",
            HumanBytes(bytes),
            repo.display()
        )
    }
}

/// Moves the "what was left" paragraph after the error chain, where a
/// reader looks last (anyhow prints the outermost context first).
fn swap_context(e: anyhow::Error) -> anyhow::Error {
    let mut chain = e.chain();
    let left = chain.next().map(ToString::to_string).unwrap_or_default();
    let rest: Vec<String> = chain.map(ToString::to_string).collect();
    let mut text = rest.join(": ");
    text.push('\n');
    text.push_str(&left);
    anyhow::anyhow!(text)
}

/// A SIGINT or SIGTERM during the pull: say what was left, then exit with
/// the usual 128 + signal status. (Objects and refs are published
/// atomically, so stopping anywhere leaves a consistent repository; stale
/// temporary files are removed by the next `gc`.)
fn on_interrupt(tally: Arc<Tally>, repo: std::path::PathBuf) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("cfs-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "\nInterrupted ({name}). {}", tally.left_behind(&repo));
                std::process::exit(128 + signal);
            }
        });
}

/// Counts what passes to the display, for [`Tally`].
struct Counted {
    inner: Arc<dyn PullProgress>,
    tally: Arc<Tally>,
}

impl PullProgress for Counted {
    fn message(&self, text: &str) {
        self.inner.message(text);
    }

    fn layer_start(&self, index: usize, diff_id: &str, size: u64) {
        self.tally.started.fetch_add(1, Ordering::Relaxed);
        self.inner.layer_start(index, diff_id, size);
    }

    fn layer_progress(&self, index: usize, bytes: u64) {
        if bytes > 0 {
            self.tally.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        self.inner.layer_progress(index, bytes);
    }

    fn layer_done(&self, index: usize, skipped: bool) {
        if skipped {
            self.tally.present.fetch_add(1, Ordering::Relaxed);
        } else {
            self.tally.stored.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.layer_done(index, skipped);
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
            "[eta {eta:>3}] {bar:40.cyan/blue} {binary_bytes:>10}/{binary_total_bytes:10} \
             {binary_bytes_per_sec:>12} {msg}",
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

#[cfg(test)]
mod tests {
    use super::default_tag;

    #[test]
    fn default_tags_are_short() {
        for (source, tag) in [
            ("docker://docker.io/library/debian:12", "debian:12"),
            (
                "docker://quay.io/fedora/fedora-bootc:42",
                "fedora/fedora-bootc:42",
            ),
            ("docker://127.0.0.1:5000/test/img:v1", "test/img:v1"),
            ("docker://localhost/app", "app:latest"),
            ("docker://ghcr.io/o/app@sha256:abcd", "o/app@sha256:abcd"),
            ("oci:/srv/layouts/debian:v1", "debian:v1"),
            ("oci:/srv/layouts/debian", "debian"),
            ("oci-archive:/tmp/app.tar:2", "app:2"),
            ("docker-archive:/tmp/app.tar", "app"),
        ] {
            assert_eq!(default_tag(source), tag, "{source}");
        }
    }
}
