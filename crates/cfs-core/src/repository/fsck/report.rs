//! The report of [`Repository::fsck`](crate::repository::Repository::fsck):
//! counters, the findings as text lines, and the plain-text layout.

use serde::Serialize;

/// The result of a check. Serialised (with `--json`) with exactly these
/// keys, in this order, like composefs-rs 0.9.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// No problem found.
    pub ok: bool,
    /// `meta.json` exists and parses.
    pub has_metadata: bool,
    /// Objects measured.
    pub objects_checked: u64,
    /// Objects whose content does not match their name (or unreadable).
    pub objects_corrupted: u64,
    /// Entries of `streams/` checked.
    pub streams_checked: u64,
    /// Broken or invalid streams.
    pub streams_corrupted: u64,
    /// Entries of `images/` checked.
    pub images_checked: u64,
    /// Broken or invalid images.
    pub images_corrupted: u64,
    /// Dangling symlinks (including refs).
    pub broken_links: u64,
    /// References to objects that do not exist.
    pub missing_objects: u64,
    /// One line per problem: `fsck: <kind>: <path>: <detail>`.
    pub errors: Vec<String>,
}

/// One finding; its `Display` is the line recorded in [`FsckReport::errors`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Problem {
    #[error("fsck: object-invalid-name: {path}: {detail}")]
    ObjectInvalidName { path: String, detail: String },
    #[error("fsck: object-open-failed: {path}: {detail}")]
    ObjectOpenFailed { path: String, detail: String },
    #[error("fsck: object-digest-mismatch: {path}: measured {measured}")]
    ObjectDigestMismatch { path: String, measured: String },
    #[error("fsck: object-verity-failed: {path}: {detail}")]
    ObjectVerityFailed { path: String, detail: String },
    #[error("fsck: object-verity-missing: {path}")]
    ObjectVerityMissing { path: String },
    #[error("fsck: entry-not-symlink: {path}")]
    EntryNotSymlink { path: String },
    #[error("fsck: broken-symlink: {path}")]
    BrokenSymlink { path: String },
    #[error("fsck: stat-failed: {path}: {detail}")]
    StatFailed { path: String, detail: String },
    #[error("fsck: unexpected-file-type: {path}: {detail}")]
    UnexpectedFileType { path: String, detail: String },
    #[error("fsck: stream-open-failed: {path}: {detail}")]
    StreamOpenFailed { path: String, detail: String },
    #[error("fsck: missing-object-ref: {path}: {object_id}")]
    MissingObjectRef { path: String, object_id: String },
    #[error("fsck: stream-read-failed: {path}: {detail}")]
    StreamReadFailed { path: String, detail: String },
    #[error("fsck: missing-named-ref: {path}: ref {ref_name}: {object_id}")]
    MissingNamedRef {
        path: String,
        ref_name: String,
        object_id: String,
    },
    #[error("fsck: object-check-failed: {path}: {object_id}: {detail}")]
    ObjectCheckFailed {
        path: String,
        object_id: String,
        detail: String,
    },
    #[error("fsck: image-open-failed: {path}: {detail}")]
    ImageOpenFailed { path: String, detail: String },
    #[error("fsck: image-read-failed: {path}: {detail}")]
    ImageReadFailed { path: String, detail: String },
    #[error("fsck: image-invalid: {path}: {detail}")]
    ImageInvalid { path: String, detail: String },
    #[error("fsck: image-missing-object: {path}: {object_id}")]
    ImageMissingObject { path: String, object_id: String },
    #[error("fsck: metadata-parse-failed: meta.json: {detail}")]
    MetadataParseFailed { detail: String },
    #[error(
        "fsck: metadata-algorithm-mismatch: meta.json: expected {expected}, repository opened as {actual}"
    )]
    MetadataAlgorithmMismatch { expected: String, actual: String },
}

impl FsckReport {
    pub(super) fn push(&mut self, problem: Problem) {
        self.errors.push(problem.to_string());
    }
}

impl FsckReport {
    /// The plain-text report of `cfsctl fsck` (one line each, composefs-rs
    /// 0.9 layout, every line ending in a newline):
    ///
    /// ```text
    /// meta.json: ok                (or "error", or "absent")
    /// objects: 4/6 ok              (good / checked)
    /// streams: 0/0 ok
    /// images: 4/6 ok
    /// broken symlinks: 2           (only if not 0)
    /// missing objects: 3           (only if not 0)
    /// status: 5 error(s)           (or "status: ok")
    ///   - fsck: object-digest-mismatch: objects/ac/b630…: measured adf2…
    /// ```
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let metadata_error = self.errors.iter().any(|e| e.starts_with("fsck: metadata-"));
        let meta = if metadata_error {
            "error"
        } else if self.has_metadata {
            "ok"
        } else {
            "absent"
        };
        let _ = writeln!(out, "meta.json: {meta}");
        for (what, checked, corrupted) in [
            ("objects", self.objects_checked, self.objects_corrupted),
            ("streams", self.streams_checked, self.streams_corrupted),
            ("images", self.images_checked, self.images_corrupted),
        ] {
            let good = checked.saturating_sub(corrupted);
            let _ = writeln!(out, "{what}: {good}/{checked} ok");
        }
        if self.broken_links > 0 {
            let _ = writeln!(out, "broken symlinks: {}", self.broken_links);
        }
        if self.missing_objects > 0 {
            let _ = writeln!(out, "missing objects: {}", self.missing_objects);
        }
        if self.errors.is_empty() {
            out.push_str("status: ok\n");
        } else {
            let _ = writeln!(out, "status: {} error(s)", self.errors.len());
            for e in &self.errors {
                let _ = writeln!(out, "  - {e}");
            }
        }
        out
    }
}
