//! Pulling an image: source → verified blobs → layer streams, config and
//! manifest streams, EROFS image, tag.
//!
//! Order of work, so that nothing is ever published under a tag unless all
//! of it was verified:
//!
//! 1. the manifest (digest checked by the source, re-checked here), then the
//!    config blob (size and SHA-256 checked);
//! 2. every layer whose `oci-layer-<diff_id>` stream is missing, largest
//!    first, `jobs` at a time. Per layer two threads work as a pipeline: one
//!    reads the blob, checks its size and SHA-256 as it streams and
//!    decompresses it by media type (tar, gzip, zstd), at most
//!    `PullOptions::max_layer_size` bytes ([`DEFAULT_MAX_LAYER_SIZE`],
//!    64 GiB; more fails the pull naming the blob digest and the limit, as
//!    soon as the excess is decompressed); the other splits the
//!    tar into objects and the split stream ([`crate::layer::import_layer`]),
//!    hashing it for the diff_id. The blob digest is settled before the tar
//!    reader sees its end, and the layer stream is linked only if the diff_id
//!    matches; memory per layer is a few 256 KiB buffers whatever its size;
//! 3. the layers are merged and the EROFS image(s) written (one per format
//!    the repository generates);
//! 4. the config stream (with the layer and image named refs), then the
//!    manifest stream, which is tagged in the same step.
//!
//! A layer already present is not fetched again; an image whose manifest,
//! config, layers and EROFS images are all present is only (re)tagged.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use cfs_core::repository::Repository;
use cfs_core::splitstream::ContentType;
use cfs_core::tree::XattrFilter;
use cfs_core::verity::Digest;
use oci_spec::image::Descriptor;

use crate::layer::{LayerError, LayerOptions, import_layer};
use crate::merge::build_tree_from_streams;
use crate::source::{ImageSource, Platform, SourceError};
use crate::store::{
    self, IMAGE_REF_V2, MAX_JSON_SIZE, OciImage, StoreError, config_stream_id, image_ref_name,
    is_image_config, is_sha256_digest, layer_stream_id, manifest_stream_id, sha256_digest, tag_ref,
};

/// Size of the pieces passed from the decompressing thread to the splitter.
const PIPE_CHUNK: usize = 256 << 10;
/// Pieces in flight per layer.
const PIPE_DEPTH: usize = 4;
/// Default bound on layers imported at once.
const MAX_DEFAULT_JOBS: usize = 8;

/// Receives progress events; called from worker threads.
pub trait PullProgress: Send + Sync {
    /// A message line (`Fetching config …`).
    fn message(&self, text: &str);
    /// Layer `index` (of the manifest) starts: `size` compressed bytes.
    fn layer_start(&self, index: usize, diff_id: &str, size: u64);
    /// `bytes` more compressed bytes of layer `index` were read.
    fn layer_progress(&self, index: usize, bytes: u64);
    /// Layer `index` is done (`skipped`: it was already present). Not
    /// called for a layer that failed.
    fn layer_done(&self, index: usize, skipped: bool);
}

/// Options of [`pull`].
#[derive(Clone, Default)]
pub struct PullOptions {
    /// The platform chosen from an image index (default: the host's).
    pub platform: Option<Platform>,
    /// Tag the image with this name (`streams/refs/oci/<encoded>`).
    pub tag: Option<String>,
    /// Layers imported at once (0: the number of CPUs).
    pub jobs: usize,
    /// Progress receiver.
    pub progress: Option<Arc<dyn PullProgress>>,
    /// The largest decompressed (tar) size of one layer, checked while
    /// decompressing ([`DEFAULT_MAX_LAYER_SIZE`] when `None`).
    pub max_layer_size: Option<u64>,
}

/// The default bound on one layer's decompressed size (64 GiB): far above
/// real layers, low enough to stop a decompression bomb before it fills
/// the repository's file system.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("tag", &self.tag)
            .field("jobs", &self.jobs)
            .field("max_layer_size", &self.max_layer_size)
            .finish_non_exhaustive()
    }
}

/// What [`pull`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// The manifest digest.
    pub manifest_digest: String,
    /// The config digest.
    pub config_digest: String,
    /// The manifest stream object (the image's "verity").
    pub manifest_stream: Option<Digest>,
    /// The EROFS images written, by format version.
    pub images: Vec<(u32, Digest)>,
    /// The tag set, if any.
    pub tag: Option<String>,
    /// Layers fetched and imported.
    pub layers_imported: usize,
    /// Layers already present.
    pub layers_skipped: usize,
    /// Compressed bytes downloaded for layers.
    pub bytes_fetched: u64,
    /// Uncompressed tar bytes imported.
    pub bytes_imported: u64,
    /// New content objects.
    pub objects_written: u64,
    /// Content objects already present.
    pub objects_existing: u64,
    /// Bytes of new content objects.
    pub bytes_written: u64,
    /// Tar bytes stored inline in layer streams.
    pub bytes_inline: u64,
    /// Nothing needed to be imported; the image was only tagged.
    pub already_present: bool,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Storing or reading repository data failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob is not what its descriptor says.
    #[error("blob {digest}: {message}")]
    Blob {
        /// The blob digest.
        digest: String,
        /// What is wrong.
        message: String,
    },
    /// A layer could not be imported.
    #[error("layer {diff_id} (blob {digest}): {source}")]
    Layer {
        /// The layer's diff_id.
        diff_id: String,
        /// The blob digest.
        digest: String,
        /// The error.
        #[source]
        source: Box<LayerError>,
    },
    /// The image cannot be pulled (unsupported media type, inconsistent
    /// manifest and config, …).
    #[error("{0}")]
    Invalid(String),
    /// Another layer failed first.
    #[error("cancelled")]
    Cancelled,
}

/// Pulls the image from `source` into `repo`.
pub fn pull(
    repo: &Repository,
    source: &dyn ImageSource,
    opts: &PullOptions,
) -> Result<PullReport, PullError> {
    repo.check_writable().map_err(StoreError::from)?;
    if let Some(tag) = &opts.tag {
        store::check_tag(tag)?;
    }
    let progress = opts.progress.as_deref();
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let fetched = source.manifest(&platform)?;
    let manifest_digest = sha256_digest(&fetched.bytes);
    if manifest_digest != fetched.digest {
        return Err(PullError::Blob {
            digest: fetched.digest,
            message: format!("the manifest hashes to {manifest_digest}"),
        });
    }
    if fetched.media_type.contains("index") || fetched.media_type.contains("manifest.list") {
        return Err(PullError::Invalid(format!(
            "{}: got an image index ({}) where a manifest was expected",
            source.describe(),
            fetched.media_type
        )));
    }
    let mut report = PullReport {
        manifest_digest: manifest_digest.clone(),
        tag: opts.tag.clone(),
        ..PullReport::default()
    };
    if let Some(done) = already_pulled(repo, &manifest_digest)? {
        if let (Some(want), Some(config)) = (&opts.platform, &done.config) {
            check_platform(&source.describe(), want, config)?;
        }
        report.config_digest = done.config_digest.clone();
        report.manifest_stream = Some(done.manifest_stream.object);
        report.already_present = true;
        report.layers_skipped = done.manifest.layers().len();
        for v in repo.erofs_versions() {
            if let Some(d) = done.linked_image(v) {
                report.images.push((v, *d));
            }
        }
        if let Some(tag) = &opts.tag {
            store::tag_image(repo, &manifest_digest, tag)?;
        }
        return Ok(report);
    }

    let manifest = store::parse_manifest(&fetched.bytes, &manifest_digest)?;
    let config_desc = manifest.config();
    let config_media = config_desc.media_type().to_string();
    if !is_image_config(&config_media) {
        return Err(PullError::Invalid(format!(
            "{}: config media type {config_media} is not a container image config \
             (artifacts are not supported)",
            source.describe()
        )));
    }
    let config_digest = config_desc.digest().to_string();
    report.config_digest = config_digest.clone();
    if let Some(p) = progress {
        p.message(&format!("Fetching config {config_digest}"));
    }
    let config_bytes = fetch_small_blob(source, &config_digest, config_desc.size())?;
    let config = store::parse_config(&config_bytes, &config_digest)?;
    if let Some(want) = &opts.platform {
        check_platform(&source.describe(), want, &config)?;
    }
    let diff_ids = config.rootfs().diff_ids();
    let layers = manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(PullError::Invalid(format!(
            "manifest {manifest_digest} lists {} layers but config {config_digest} has {} diff_ids",
            layers.len(),
            diff_ids.len()
        )));
    }
    for d in diff_ids {
        if !is_sha256_digest(d) {
            return Err(PullError::Invalid(format!(
                "config {config_digest}: invalid diff_id {d:?} (expected sha256:<64 hex digits>)"
            )));
        }
    }

    import_layers(repo, source, layers, diff_ids, opts, &mut report)?;

    let mut layer_objects = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let id = layer_stream_id(diff_id);
        let object = repo
            .has_stream(&id)
            .map_err(StoreError::from)?
            .ok_or_else(|| StoreError::NotFound(format!("layer stream {id} vanished")))?;
        layer_objects.push((diff_id.clone(), object));
    }

    if let Some(p) = progress {
        p.message("Building composefs image");
    }
    let objects: Vec<Digest> = layer_objects.iter().map(|(_, d)| *d).collect();
    let fs = build_tree_from_streams(repo, &objects, XattrFilter::AllowlistOnly)
        .map_err(StoreError::from)?;
    // A diff_id listed more than once (repeated empty layers are common) is
    // merged once per listing above, but named once in the streams: named
    // refs are a map, as in composefs-rs, whose streams hold each name once.
    let mut named = std::collections::HashSet::new();
    let layer_refs: Vec<(String, Digest)> = layer_objects
        .iter()
        .filter(|(diff_id, _)| named.insert(diff_id.as_str()))
        .cloned()
        .collect();
    let mut config_refs = layer_refs.clone();
    let mut image_refs = Vec::new();
    for v in repo.erofs_versions() {
        let digest = repo
            .write_image_versions(&fs, None, &[v])
            .map_err(StoreError::from)?;
        image_refs.push((image_ref_name(v).to_owned(), digest));
        report.images.push((v, digest));
    }
    drop(fs);
    // composefs-rs names the V2 image first, then the V1 one.
    image_refs.sort_by_key(|(name, _)| name != IMAGE_REF_V2);
    image_refs.dedup_by(|a, b| a.0 == b.0);
    config_refs.extend(image_refs);

    if let Some(p) = progress {
        p.message("Storing manifest");
    }
    let config_stream = store::write_blob_stream(
        repo,
        &config_stream_id(&config_digest),
        ContentType::OCI_CONFIG,
        &config_bytes,
        &config_refs,
        None,
    )?;
    let mut manifest_refs = vec![(format!("config:{config_digest}"), config_stream)];
    manifest_refs.extend(layer_refs);
    let tag = opts.tag.as_deref().map(tag_ref);
    let manifest_stream = store::write_blob_stream(
        repo,
        &manifest_stream_id(&manifest_digest),
        ContentType::OCI_MANIFEST,
        &fetched.bytes,
        &manifest_refs,
        tag.as_deref(),
    )?;
    report.manifest_stream = Some(manifest_stream);
    Ok(report)
}

/// An explicit `--platform` must be the image's own: a single-platform
/// image (no index to choose from) of another platform is refused instead
/// of pulled.
fn check_platform(
    what: &str,
    want: &Platform,
    config: &oci_spec::image::ImageConfiguration,
) -> Result<(), PullError> {
    let (os, arch) = (config.os().to_string(), config.architecture().to_string());
    if want.matches(&os, &arch, config.variant().as_deref()) {
        return Ok(());
    }
    let variant = config
        .variant()
        .as_ref()
        .map(|v| format!("/{v}"))
        .unwrap_or_default();
    Err(PullError::Invalid(format!(
        "{what}: the image is for {os}/{arch}{variant}, not the requested platform {want}"
    )))
}

/// The stored image if manifest, config, layers and every EROFS image the
/// repository generates are all present.
fn already_pulled(repo: &Repository, digest: &str) -> Result<Option<OciImage>, PullError> {
    if repo
        .has_stream(&manifest_stream_id(digest))
        .map_err(StoreError::from)?
        .is_none()
    {
        return Ok(None);
    }
    let Ok(image) = OciImage::open_manifest(repo, digest) else {
        return Ok(None);
    };
    let Ok(layers) = image.layers() else {
        return Ok(None);
    };
    for (diff_id, _) in &layers {
        if repo
            .has_stream(&layer_stream_id(diff_id))
            .map_err(StoreError::from)?
            .is_none()
        {
            return Ok(None);
        }
    }
    for v in repo.erofs_versions() {
        // The object and its images/ link (an interrupted gc may have
        // pruned the link of an object that is reachable again).
        match image.linked_image(v) {
            Some(d)
                if repo.has_object(d).map_err(StoreError::from)?
                    && repo.resolve_image(&d.to_hex()).is_ok_and(|r| r == *d) => {}
            _ => return Ok(None),
        }
    }
    Ok(Some(image))
}

/// Reads a small blob (config) completely and checks size and digest.
fn fetch_small_blob(
    source: &dyn ImageSource,
    digest: &str,
    size: u64,
) -> Result<Vec<u8>, PullError> {
    let blob_err = |message: String| PullError::Blob {
        digest: digest.to_owned(),
        message,
    };
    if !is_sha256_digest(digest) {
        return Err(blob_err(
            "unsupported digest (expected sha256:<64 hex digits>)".into(),
        ));
    }
    if size > MAX_JSON_SIZE {
        return Err(blob_err(format!(
            "descriptor size {size} exceeds the limit of {MAX_JSON_SIZE} bytes"
        )));
    }
    let reader = source.open_blob(digest, size)?;
    let mut bytes = Vec::with_capacity(size as usize);
    let mut verified = Verified::new(reader, digest, size, None, 0);
    verified
        .read_to_end(&mut bytes)
        .map_err(|e| blob_err(e.to_string()))?;
    Ok(bytes)
}

/// One layer to import.
struct Job<'a> {
    index: usize,
    diff_id: &'a str,
    desc: &'a Descriptor,
}

/// Imports the missing layers in parallel.
fn import_layers(
    repo: &Repository,
    source: &dyn ImageSource,
    layers: &[Descriptor],
    diff_ids: &[String],
    opts: &PullOptions,
    report: &mut PullReport,
) -> Result<(), PullError> {
    let progress = opts.progress.as_deref();
    let mut jobs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, (desc, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        let present = repo
            .has_stream(&layer_stream_id(diff_id))
            .map_err(StoreError::from)?
            .is_some();
        if present || !seen.insert(diff_id.as_str()) {
            report.layers_skipped += 1;
            if let Some(p) = progress {
                p.layer_start(index, diff_id, desc.size());
                p.layer_done(index, true);
            }
            continue;
        }
        jobs.push(Job {
            index,
            diff_id,
            desc,
        });
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.desc.size()));
    // By default every layer runs at once (each is a two-stage pipeline, so
    // a lone layer still keeps two cores busy), up to twice the CPU count
    // and at most MAX_DEFAULT_JOBS (memory is a few MiB per layer).
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = match opts.jobs {
        0 => (2 * cpus).min(MAX_DEFAULT_JOBS),
        n => n,
    }
    .min(jobs.len())
    .max(1);
    let queue = Mutex::new(jobs.into_iter());
    let cancel = AtomicBool::new(false);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(job) = queue.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                        return;
                    };
                    let r = import_one(repo, source, &job, opts, &cancel);
                    if r.is_err() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                }
            });
        }
    });
    let mut first_err = None;
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Ok(done) => {
                report.layers_imported += 1;
                report.bytes_fetched += done.fetched;
                report.bytes_imported += done.import.bytes;
                report.objects_written += done.import.objects_written;
                report.objects_existing += done.import.objects_existing;
                report.bytes_written += done.import.bytes_written;
                report.bytes_inline += done.import.bytes_inline;
            }
            Err(PullError::Cancelled) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if cancel.load(Ordering::Relaxed) => Err(PullError::Cancelled),
        None => Ok(()),
    }
}

/// The outcome of one layer.
struct Imported {
    fetched: u64,
    import: crate::layer::LayerImport,
}

/// Fetch, verify, decompress and import one layer.
fn import_one(
    repo: &Repository,
    source: &dyn ImageSource,
    job: &Job<'_>,
    opts: &PullOptions,
    cancel: &AtomicBool,
) -> Result<Imported, PullError> {
    let progress = opts.progress.as_deref();
    let max_size = opts.max_layer_size.unwrap_or(DEFAULT_MAX_LAYER_SIZE);
    let digest = job.desc.digest().to_string();
    let size = job.desc.size();
    let media_type = job.desc.media_type().to_string();
    let blob_err = |message: String| PullError::Blob {
        digest: digest.clone(),
        message,
    };
    if !is_sha256_digest(&digest) {
        return Err(blob_err(
            "unsupported digest (expected sha256:<64 hex digits>)".into(),
        ));
    }
    let compression = Compression::from_media_type(&media_type).ok_or_else(|| {
        PullError::Invalid(format!(
            "layer {digest}: unsupported media type {media_type}"
        ))
    })?;
    if let Some(p) = progress {
        p.layer_start(job.index, job.diff_id, size);
    }
    let raw = source.open_blob(&digest, size)?;
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(PIPE_DEPTH);
    // Emptied buffers go back to the producer (no allocation or zeroing per piece).
    let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(PIPE_DEPTH + 2);
    let blob_error: Mutex<Option<String>> = Mutex::new(None);
    let fetched = std::thread::scope(|s| {
        let (digest, blob_error) = (&digest, &blob_error);
        let producer = s.spawn(move || {
            let verified = Verified::new(raw, digest, size, progress, job.index);
            let counter = verified.counter();
            if let Err(e) = produce(verified, compression, &tx, &recycle_rx, cancel, max_size) {
                *blob_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                let _ = tx.send(Err(e));
            }
            drop(tx);
            counter.load(Ordering::Relaxed)
        });
        let reader = ChannelReader {
            rx,
            recycle: recycle_tx,
            buf: Vec::new(),
            pos: 0,
        };
        let r = import_layer(repo, job.diff_id, reader, &LayerOptions::default());
        let fetched = producer.join().unwrap_or(0);
        r.map(|import| (import, fetched))
    });
    match fetched {
        Ok((import, fetched)) => {
            if let Some(p) = progress {
                p.layer_done(job.index, false);
            }
            Ok(Imported { fetched, import })
        }
        Err(source) => {
            if let Some(msg) = blob_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
                if msg == CANCELLED {
                    return Err(PullError::Cancelled);
                }
                return Err(blob_err(msg));
            }
            Err(PullError::Layer {
                diff_id: job.diff_id.to_owned(),
                digest: digest.clone(),
                source: Box::new(source),
            })
        }
    }
}

mod pipe;

pub use pipe::Compression;
use pipe::{CANCELLED, ChannelReader, Verified, produce};
#[cfg(test)]
mod tests;
