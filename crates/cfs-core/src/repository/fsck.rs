//! Repository integrity check (`cfsctl fsck`), with the findings, counters
//! and report layout of composefs-rs 0.9.
//!
//! The check runs in phases; each problem found becomes one line of
//! [`FsckReport::errors`], `fsck: <kind>: <path>: <detail>`, with paths
//! relative to the repository:
//!
//! 1. **`meta.json`** is read again and validated: absent or unparseable →
//!    `metadata-parse-failed`; an algorithm other than the one the
//!    repository was opened with, or unknown incompatible features →
//!    `metadata-algorithm-mismatch`.
//! 2. **Objects** (skipped with [`FsckOptions::metadata_only`]): every file
//!    in `objects/XX/` must be named by a digest of the repository algorithm
//!    (else `object-invalid-name`), be a readable regular file (else
//!    `object-open-failed`) and have that digest as its fs-verity digest
//!    (else `object-digest-mismatch`). The kernel's measurement is used where
//!    verity is enabled; in a secure repository an object without it is
//!    `object-verity-missing`, in an insecure one the digest is computed in
//!    userspace (a read error is `object-verity-failed`). Objects are
//!    measured in parallel, each streamed from disk by one thread. Files
//!    directly in `objects/` (such as stale `.tmp-object-*` files) are not
//!    objects and are ignored.
//! 3. **Streams**: every `streams/<id>` must be a symlink
//!    (`entry-not-symlink`) leading to an existing object (`broken-symlink`);
//!    the split stream must parse (`stream-open-failed`); every object ref
//!    must exist (`missing-object-ref`) and every named ref's target too
//!    (`missing-named-ref`). Beyond composefs-rs, the whole chunk stream is
//!    decompressed, and the inline bytes plus the sizes of the referenced
//!    objects must add up to the declared stream size (`stream-read-failed`).
//!    Then every symlink under `streams/refs/` must lead to an existing
//!    object (`broken-symlink`); other files there are
//!    `unexpected-file-type`.
//! 4. **Images**: the same for `images/<hex>` (`image-open-failed`,
//!    `image-read-failed`); the EROFS image must parse and its inodes must
//!    pass the composefs checks (`image-invalid`); every object it
//!    references (metacopy digest or redirect path) must exist
//!    (`image-missing-object`). When the object pass is skipped, the image
//!    object's own digest is checked here (`object-digest-mismatch`). Then
//!    `images/refs/` as for streams.
//!
//! Counters: object problems count in `objects_corrupted`; an unusable
//! `streams/` or `images/` entry in `*_corrupted` (at most once per entry);
//! dangling links in `broken_links` (top-level ones also in `*_corrupted`);
//! missing referenced objects in `missing_objects`. Directories are listed
//! in name order, so the report is deterministic.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::erofs::reader::{Image, ReadOptions, referenced_objects};
use crate::splitstream::{Chunk, SplitStream};
use crate::verity::{Digest, digest_bytes, digest_file, measure_verity, resolve_threads};

use super::error::{RepoError, Result};
use super::images::MAX_IMAGE_LEN;
use super::meta::{Access, algorithm_name};
use super::streams::MAX_STREAM_LEN;
use super::{Repository, paths};

mod report;

pub use report::FsckReport;
use report::Problem;

/// Options of [`Repository::fsck`].
#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// Skip re-measuring every object (check only `meta.json`, streams,
    /// images and refs).
    pub metadata_only: bool,
    /// Threads for object measurement (0: one per CPU).
    pub threads: usize,
}

/// Counters updated while [`Repository::fsck`] runs, for progress display.
#[derive(Debug, Default)]
pub struct FsckProgress {
    /// Objects found so far (the total once the listing is complete).
    pub objects_total: AtomicU64,
    /// Objects checked so far.
    pub objects_checked: AtomicU64,
    /// Bytes of objects checked so far.
    pub bytes_checked: AtomicU64,
}

/// `streams/` or `images/`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Category {
    Streams,
    Images,
}

impl Category {
    fn dir(self) -> &'static str {
        match self {
            Category::Streams => paths::STREAMS,
            Category::Images => paths::IMAGES,
        }
    }

    fn count_checked(self, report: &mut FsckReport) {
        match self {
            Category::Streams => report.streams_checked += 1,
            Category::Images => report.images_checked += 1,
        }
    }

    fn count_corrupted(self, report: &mut FsckReport) {
        match self {
            Category::Streams => report.streams_corrupted += 1,
            Category::Images => report.images_corrupted += 1,
        }
    }

    fn open_failed(self, path: String, detail: String) -> Problem {
        match self {
            Category::Streams => Problem::StreamOpenFailed { path, detail },
            Category::Images => Problem::ImageOpenFailed { path, detail },
        }
    }
}

/// Where a symlink (followed through further symlinks) ends.
enum LinkEnd {
    /// At an existing object.
    Object(Digest),
    /// At nothing: a link in the chain or the final object does not exist.
    Missing,
    /// Somewhere that is not an object (the reason).
    Invalid(String),
}

/// Most symlinks followed from one entry (`refs/x` → `<id>` → object is 2).
const MAX_LINK_HOPS: usize = 8;

/// One file of `objects/XX/` to measure.
struct ObjectItem {
    /// `objects/XX/<name>`.
    rel: String,
    /// The digest its name gives, or why the name is not one.
    expected: std::result::Result<Digest, String>,
}

impl Repository {
    /// Checks the repository (see the module docs). Problems are reported
    /// in the returned [`FsckReport`]; `Err` only when the check itself could
    /// not run (a directory of the repository cannot be listed).
    pub fn fsck(&self, opts: &FsckOptions, progress: Option<&FsckProgress>) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        self.fsck_meta(&mut report);
        if !opts.metadata_only {
            self.fsck_objects(opts, progress, &mut report)?;
        }
        for category in [Category::Streams, Category::Images] {
            self.fsck_category(category, opts.metadata_only, &mut report)?;
            let refs = format!("{}/{}", category.dir(), paths::REFS);
            self.fsck_refs(&refs, &mut report)?;
        }
        report.ok = report.errors.is_empty();
        Ok(report)
    }

    fn fsck_meta(&self, report: &mut FsckReport) {
        match super::read_meta(&self.dir, &self.path) {
            Ok(Some(meta)) => {
                report.has_metadata = true;
                let refused = matches!(meta.access(), Access::Refused(_));
                if meta.algorithm() != self.algorithm() || refused {
                    report.push(Problem::MetadataAlgorithmMismatch {
                        expected: meta.algorithm.clone(),
                        actual: algorithm_name(self.algorithm()).to_string(),
                    });
                }
            }
            Ok(None) => report.push(Problem::MetadataParseFailed {
                detail: format!(
                    "{} not found; expected because repository was opened successfully",
                    paths::META_JSON
                ),
            }),
            Err(RepoError::Meta { message, .. }) => {
                report.push(Problem::MetadataParseFailed { detail: message });
            }
            Err(RepoError::Io { source, .. }) => report.push(Problem::MetadataParseFailed {
                detail: source.to_string(),
            }),
            Err(e) => report.push(Problem::MetadataParseFailed {
                detail: e.to_string(),
            }),
        }
    }

    /// Phase 2: measure every object, in parallel.
    fn fsck_objects(
        &self,
        opts: &FsckOptions,
        progress: Option<&FsckProgress>,
        report: &mut FsckReport,
    ) -> Result<()> {
        let items = self.list_objects(report)?;
        if let Some(p) = progress {
            p.objects_total.store(items.len() as u64, Ordering::Relaxed);
        }
        let workers = resolve_threads(opts.threads).clamp(1, items.len().max(1));
        let next = AtomicUsize::new(0);
        let work = || {
            let mut found = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else {
                    return found;
                };
                let (size, problem) = self.fsck_object(item);
                if let Some(p) = progress {
                    p.objects_checked.fetch_add(1, Ordering::Relaxed);
                    p.bytes_checked.fetch_add(size, Ordering::Relaxed);
                }
                if let Some(problem) = problem {
                    found.push((index, problem));
                }
            }
        };
        let mut problems: Vec<(usize, Problem)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
            let mut all = work();
            for handle in handles {
                match handle.join() {
                    Ok(found) => all.extend(found),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        });
        problems.sort_by_key(|(index, _)| *index);
        report.objects_checked += items.len() as u64;
        report.objects_corrupted += problems.len() as u64;
        for (_, problem) in problems {
            report.push(problem);
        }
        Ok(())
    }

    /// Every file in `objects/XX/`, in name order. An `XX` entry that is not
    /// a directory (a file, or a symlink that must not be followed) is
    /// reported as `unexpected-file-type`: `gc` leaves it alone, writers
    /// refuse it.
    fn list_objects(&self, report: &mut FsckReport) -> Result<Vec<ObjectItem>> {
        let mut subdirs = Vec::new();
        for (name, ft) in self.list_dir(paths::OBJECTS)? {
            let is_subdir = name.len() == 2
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if is_subdir && ft == Some(FileType::Directory) {
                subdirs.push(name);
            } else if is_subdir {
                report.objects_corrupted += 1;
                report.push(Problem::UnexpectedFileType {
                    path: format!("{}/{name}", paths::OBJECTS),
                    detail: format!(
                        "{} where a directory of objects must be",
                        ft.map_or("a file of unknown type", crate::beneath::describe)
                    ),
                });
            }
        }
        let alg = self.algorithm();
        let mut items = Vec::new();
        for sub in subdirs {
            for (name, _) in self.list_dir(&format!("{}/{sub}", paths::OBJECTS))? {
                let expected = match Digest::from_object_path(&format!("{sub}/{name}")) {
                    Ok(d) if d.algorithm() == alg => Ok(d),
                    Ok(d) => Err(format!("a {} digest in a {alg} repository", d.algorithm())),
                    Err(_) if name.len() != 2 * alg.digest_len() - 2 => Err(format!(
                        "not a {alg} digest: expected {} hex characters after the directory name, found {}",
                        2 * alg.digest_len() - 2,
                        name.len()
                    )),
                    Err(_) => Err(format!("not a {alg} digest: not hexadecimal")),
                };
                items.push(ObjectItem {
                    rel: format!("{}/{sub}/{name}", paths::OBJECTS),
                    expected,
                });
            }
        }
        Ok(items)
    }

    /// Measures one object: its size (for progress) and the problem, if any.
    fn fsck_object(&self, item: &ObjectItem) -> (u64, Option<Problem>) {
        let expected = match &item.expected {
            Ok(d) => d,
            Err(detail) => {
                let problem = Problem::ObjectInvalidName {
                    path: item.rel.clone(),
                    detail: detail.clone(),
                };
                return (0, Some(problem));
            }
        };
        let open_failed = |detail: String| Problem::ObjectOpenFailed {
            path: item.rel.clone(),
            detail,
        };
        let file = match crate::beneath::openat(
            self.dir_fd(),
            item.rel.as_str(),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => File::from(fd),
            Err(e) => return (0, Some(open_failed(e.to_string()))),
        };
        let size = match rustix::fs::fstat(&file) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                st.st_size as u64
            }
            Ok(st) => {
                let ft = FileType::from_raw_mode(st.st_mode);
                return (0, Some(open_failed(format!("not a regular file ({ft:?})"))));
            }
            Err(e) => return (0, Some(open_failed(e.to_string()))),
        };
        let path = format!("{}/{}", paths::OBJECTS, expected.object_path());
        let measured = match measure_verity(file.as_fd()) {
            Ok(d) => d,
            Err(e) if self.is_secure() => {
                let problem = if e.is_missing() {
                    Problem::ObjectVerityMissing { path }
                } else {
                    Problem::ObjectVerityFailed {
                        path,
                        detail: e.to_string(),
                    }
                };
                return (size, Some(problem));
            }
            Err(_) => match digest_file(self.algorithm(), &file, 1) {
                Ok(d) => d,
                Err(e) => {
                    let detail = e.to_string();
                    return (size, Some(Problem::ObjectVerityFailed { path, detail }));
                }
            },
        };
        if measured == *expected {
            (size, None)
        } else {
            let measured = measured.to_prefixed();
            (size, Some(Problem::ObjectDigestMismatch { path, measured }))
        }
    }

    /// Phase 3/4: the top-level entries of `streams/` or `images/`.
    fn fsck_category(
        &self,
        category: Category,
        metadata_only: bool,
        report: &mut FsckReport,
    ) -> Result<()> {
        for (name, ft) in self.list_dir_reporting(category.dir(), Some(report))? {
            if name == paths::REFS {
                continue;
            }
            category.count_checked(report);
            let path = format!("{}/{name}", category.dir());
            if ft != Some(FileType::Symlink) {
                category.count_corrupted(report);
                report.push(Problem::EntryNotSymlink { path });
                continue;
            }
            let digest = match self.follow_to_object(&path) {
                LinkEnd::Object(d) => d,
                LinkEnd::Missing => {
                    report.broken_links += 1;
                    category.count_corrupted(report);
                    report.push(Problem::BrokenSymlink { path });
                    continue;
                }
                LinkEnd::Invalid(detail) => {
                    category.count_corrupted(report);
                    report.push(category.open_failed(path, detail));
                    continue;
                }
            };
            let corrupted = match category {
                Category::Streams => self.fsck_stream(&path, &digest, report),
                Category::Images => self.fsck_image(&name, &path, &digest, metadata_only, report),
            };
            if corrupted {
                category.count_corrupted(report);
            }
        }
        Ok(())
    }

    /// Checks one split stream; true if it is unusable.
    fn fsck_stream(&self, path: &str, digest: &Digest, report: &mut FsckReport) -> bool {
        let open_failed = |detail: String| Problem::StreamOpenFailed {
            path: path.to_string(),
            detail,
        };
        let read_failed = |detail: String| Problem::StreamReadFailed {
            path: path.to_string(),
            detail,
        };
        let data = match self.read_object_raw(digest, MAX_STREAM_LEN) {
            Ok(data) => data,
            Err(e) => {
                report.push(open_failed(e.to_string()));
                return true;
            }
        };
        let stream = match SplitStream::parse(&data) {
            Ok(s) => s,
            Err(e) => {
                report.push(open_failed(e.to_string()));
                return true;
            }
        };
        if stream.algorithm() != self.algorithm() {
            report.push(open_failed(format!(
                "the stream holds {} digests, the repository uses {}",
                stream.algorithm(),
                self.algorithm()
            )));
            return true;
        }
        let mut corrupted = false;
        // Sizes of the referenced objects that exist.
        let mut sizes = HashMap::new();
        for object in stream.object_refs() {
            let missing = || Problem::MissingObjectRef {
                path: path.to_string(),
                object_id: object.to_hex(),
            };
            if let Some(size) = self.require_object(report, path, &object, missing) {
                sizes.insert(object, size);
            }
        }
        let named = stream.named_refs().unwrap_or_else(|e| {
            corrupted = true;
            report.push(read_failed(format!("named references: {e}")));
            Vec::new()
        });
        let mut seen = HashSet::new();
        for (name, target) in &named {
            seen.insert(*target);
            let missing = || Problem::MissingNamedRef {
                path: path.to_string(),
                ref_name: name.clone(),
                object_id: target.to_hex(),
            };
            self.require_object(report, path, target, missing);
        }
        // Stream refs without a name keep their target alive all the same.
        for target in stream.stream_refs() {
            if !seen.insert(target) {
                continue;
            }
            let missing = || Problem::MissingObjectRef {
                path: path.to_string(),
                object_id: target.to_hex(),
            };
            self.require_object(report, path, &target, missing);
        }
        if let Err(detail) = check_chunks(&stream, &sizes) {
            report.push(read_failed(detail));
            corrupted = true;
        }
        corrupted
    }

    /// Checks one EROFS image; true if it is unusable.
    fn fsck_image(
        &self,
        name: &str,
        path: &str,
        digest: &Digest,
        metadata_only: bool,
        report: &mut FsckReport,
    ) -> bool {
        let invalid = |detail: String| Problem::ImageInvalid {
            path: path.to_string(),
            detail,
        };
        if super::images::is_hex_digest(name, self.algorithm().digest_len())
            && !name.eq_ignore_ascii_case(&digest.to_hex())
        {
            report.push(invalid(format!(
                "links to object {}, not to the object it is named after",
                digest.to_hex()
            )));
            return true;
        }
        let file = match self.objects().open_object(digest) {
            Ok(f) => f,
            Err(e) => {
                report.push(Problem::ImageOpenFailed {
                    path: path.to_string(),
                    detail: e.to_string(),
                });
                return true;
            }
        };
        let data = match crate::limits::read_bounded(file, MAX_IMAGE_LEN) {
            Ok(data) => data,
            Err(e) => {
                report.push(Problem::ImageReadFailed {
                    path: path.to_string(),
                    detail: e.to_string(),
                });
                return true;
            }
        };
        if metadata_only {
            // The object pass did not run: check the image's own digest here.
            let measured = digest_bytes(self.algorithm(), &data);
            if measured != *digest {
                report.push(Problem::ObjectDigestMismatch {
                    path: paths::object_path(digest),
                    measured: measured.to_prefixed(),
                });
                return true;
            }
        }
        let refs = match Image::open(&data)
            .and_then(|image| referenced_objects(&image, &ReadOptions::default()))
        {
            Ok(refs) => refs,
            Err(e) => {
                report.push(invalid(e.to_string()));
                return true;
            }
        };
        let mut objects = Vec::new();
        for r in refs {
            objects.extend(r.digest);
            if let Some(payload) = r.payload {
                let text = String::from_utf8_lossy(payload);
                if let Ok(d) = Digest::from_object_path(text.trim_start_matches('/')) {
                    objects.push(d);
                }
            }
        }
        objects.sort_unstable();
        objects.dedup();
        for object in objects {
            let missing = || Problem::ImageMissingObject {
                path: path.to_string(),
                object_id: object.to_hex(),
            };
            self.require_object(report, path, &object, missing);
        }
        false
    }

    /// Checks a refs tree (`images/refs` or `streams/refs`), recursively.
    fn fsck_refs(&self, dir: &str, report: &mut FsckReport) -> Result<()> {
        for (name, ft) in self.list_dir_reporting(dir, Some(report))? {
            let path = format!("{dir}/{name}");
            match ft {
                Some(FileType::Directory) => self.fsck_refs(&path, report)?,
                Some(FileType::Symlink) => match self.follow_to_object(&path) {
                    LinkEnd::Object(_) => {}
                    LinkEnd::Missing | LinkEnd::Invalid(_) => {
                        report.broken_links += 1;
                        report.push(Problem::BrokenSymlink { path });
                    }
                },
                Some(other) => report.push(Problem::UnexpectedFileType {
                    path,
                    detail: format!("{other:?}"),
                }),
                None => report.push(Problem::StatFailed {
                    path,
                    detail: "cannot determine the file type".into(),
                }),
            }
        }
        Ok(())
    }

    /// The entries of the repository directory `rel` in name order, with
    /// their types (not following symlinks). A missing directory lists
    /// nothing; names that are not UTF-8, and the temporary names of
    /// [`Repository::set_link`], are skipped.
    fn list_dir(&self, rel: &str) -> Result<Vec<(String, Option<FileType>)>> {
        self.list_dir_reporting(rel, None)
    }

    /// [`Repository::list_dir`]; with a report, a directory that is a
    /// symlink or not a directory at all is reported there
    /// (`unexpected-file-type`) and lists nothing, instead of stopping the
    /// check.
    fn list_dir_reporting(
        &self,
        rel: &str,
        report: Option<&mut FsckReport>,
    ) -> Result<Vec<(String, Option<FileType>)>> {
        let fd = match (self.open_subdir(rel), report) {
            (Ok(Some(fd)), _) => fd,
            (Ok(None), _) => return Ok(Vec::new()),
            (Err(RepoError::Layout { path, found }), Some(report)) => {
                let shown = path
                    .strip_prefix(self.path())
                    .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
                report.push(Problem::UnexpectedFileType {
                    path: shown,
                    detail: format!("{found}, expected a directory; not followed"),
                });
                return Ok(Vec::new());
            }
            (Err(e), _) => return Err(e),
        };
        let entries = crate::beneath::read_dir(fd.as_fd())
            .map_err(|e| RepoError::io(self.display(rel), e))?;
        let mut out = Vec::new();
        for (name, ft) in entries {
            let Ok(name) = name.into_string() else {
                continue;
            };
            if name.starts_with(".tmp-link-") {
                continue;
            }
            out.push((name, Some(ft)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Follows the symlink `link` (and any symlinks it leads to) to an
    /// object.
    fn follow_to_object(&self, link: &str) -> LinkEnd {
        let mut cur = link.to_string();
        for _ in 0..MAX_LINK_HOPS {
            let target = match self.resolve_link(&cur) {
                Ok(Some(target)) => target,
                Ok(None) => return LinkEnd::Missing,
                Err(e) if e.is_not_found() => return LinkEnd::Missing,
                Err(RepoError::Io { source, .. })
                    if source.kind() == io::ErrorKind::InvalidInput =>
                {
                    // readlink(EINVAL): an existing file that is not a symlink.
                    return LinkEnd::Invalid(format!("{cur} is not an object"));
                }
                Err(RepoError::Io { source, .. }) => {
                    return LinkEnd::Invalid(format!("{cur}: {source}"));
                }
                Err(e) => return LinkEnd::Invalid(e.to_string()),
            };
            if let Some(rest) = target.strip_prefix("objects/") {
                let Ok(digest) = Digest::from_object_path(rest) else {
                    return match crate::beneath::lstat(self.dir_fd(), target.as_str()) {
                        Err(e)
                            if e.kind() == io::ErrorKind::NotFound
                                || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) =>
                        {
                            LinkEnd::Missing
                        }
                        _ => LinkEnd::Invalid(format!("{target} is not an object")),
                    };
                };
                return match self.object_size(&digest) {
                    Ok(Some(_)) => LinkEnd::Object(digest),
                    Ok(None) => LinkEnd::Missing,
                    Err(e) => LinkEnd::Invalid(format!("{target}: {e}")),
                };
            }
            cur = target;
        }
        LinkEnd::Invalid(format!(
            "more than {MAX_LINK_HOPS} symbolic links from {link}"
        ))
    }

    /// The size of the object `digest`, `None` if it does not exist.
    /// Checks that an object referenced from `path` exists; returns its size.
    /// A missing object is reported with `missing()` and counted.
    fn require_object(
        &self,
        report: &mut FsckReport,
        path: &str,
        object: &Digest,
        missing: impl FnOnce() -> Problem,
    ) -> Option<u64> {
        match self.object_size(object) {
            Ok(Some(size)) => Some(size),
            Ok(None) => {
                report.missing_objects += 1;
                report.push(missing());
                None
            }
            Err(e) => {
                report.push(Problem::ObjectCheckFailed {
                    path: path.to_string(),
                    object_id: object.to_hex(),
                    detail: e.to_string(),
                });
                None
            }
        }
    }

    fn object_size(&self, digest: &Digest) -> io::Result<Option<u64>> {
        if digest.algorithm() != self.algorithm() {
            return Ok(None);
        }
        match crate::beneath::lstat(self.dir_fd(), paths::object_path(digest).as_str()) {
            Ok(st) => Ok(Some(st.st_size as u64)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The content of the object `digest` (not verified: the object pass
    /// does that), refusing more than `limit` bytes.
    fn read_object_raw(&self, digest: &Digest, limit: u64) -> io::Result<Vec<u8>> {
        crate::limits::read_bounded(self.objects().open_object(digest)?, limit)
    }
}

/// Decompresses the whole chunk stream of `stream` and checks that the
/// inline bytes plus the sizes of the external objects add up to the
/// declared stream size (skipped when a referenced object is missing:
/// `sizes` has the sizes of those that exist).
fn check_chunks(
    stream: &SplitStream<'_>,
    sizes: &HashMap<Digest, u64>,
) -> std::result::Result<(), String> {
    let mut total: u64 = 0;
    let mut all_known = true;
    let chunks = stream.chunks().map_err(|e| format!("chunk stream: {e}"))?;
    for chunk in chunks {
        match chunk.map_err(|e| format!("chunk stream: {e}"))? {
            Chunk::Inline(data) => total = total.saturating_add(data.len() as u64),
            Chunk::External { digest, .. } => match sizes.get(&digest) {
                Some(size) => total = total.saturating_add(*size),
                None => all_known = false,
            },
        }
    }
    if all_known && total != stream.stream_size() {
        return Err(format!(
            "stream size mismatch: inline data and referenced objects add up to {total} bytes, the header declares {}",
            stream.stream_size()
        ));
    }
    Ok(())
}
