//! Garbage collection: delete every object no ref can reach.
//!
//! **Roots**: every symlink under `images/refs/` and `streams/refs/`, every
//! image that is mounted right now (an overlay with the source
//! `composefs:<hex>` in any mount namespace, see [`super::mounted`]), plus
//! extra roots given by the caller (names of `images/` or `streams/`
//! entries, or refs).
//!
//! **Mark**: an image keeps its own object and every object it references
//! (metacopy digests and redirect paths). A stream keeps its own object,
//! every entry of its `object_refs` array and every entry of its
//! `stream_refs` array (the targets of its named refs); a target that is the
//! object of a registered stream (found by object digest in a map of
//! `streams/`, because named-ref names are not stream names) is walked in
//! turn, and a target that is an image under `images/` is expanded like an
//! image root (composefs-rs keeps such a target as a plain object; keeping
//! its content too never keeps less). Every stream and image is walked once.
//!
//! **One bad root never stops the collection.** A root whose image or
//! stream cannot be read or parsed is reported in
//! [`GcReport::unreadable`]; since the objects it references cannot be
//! known, *no* object is deleted in that run (when in doubt, keep), while
//! everything else (dangling links, temporary files) is still cleaned. An
//! explicitly requested extra root that cannot be read is an error.
//!
//! **Order, for crash consistency.** (1) Every link in `images/`,
//! `streams/` and their `refs/` trees whose target will not survive (not
//! live, or already missing) is unlinked, then one `syncfs` barrier; (2)
//! unmarked objects in `objects/XX/` are unlinked (a directory squatting an
//! object name is removed as a whole); (3) stale temporary files go:
//! `objects/.tmp-object-*`, `.tmp-link-*` in the link directories,
//! `.tmp-meta-*` in the root. A collection killed at any point thus leaves
//! no link to a missing object (`fsck` stays clean) and the next one
//! finishes the work. Names under `objects/XX/` that are not digests of the
//! repository algorithm, and entries of `objects/` that are not `XX`
//! directories, are left alone and counted.
//!
//! **Locking**: the collection holds the repository lock exclusively, so no
//! other handle (cfs or composefs-rs, any process) is open while it runs: a
//! writer that has stored objects but not yet linked them holds the shared
//! lock and so cannot lose them. A dry run needs only the shared lock.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::splitstream::SplitStream;
use crate::verity::Digest;

use super::error::{RepoError, Result};
use super::images::is_hex_digest;
use super::{Repository, paths};

/// Options of [`Repository::gc`].
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
    /// Further roots: `images/` entries (hex digests), `streams/` content
    /// ids, or ref names (`refs/…` under either).
    pub extra_roots: Vec<String>,
    /// Called (with the repository path) before waiting for other users of
    /// the repository to let go of its lock, so the caller can say why
    /// nothing happens; not called when the lock is free.
    pub on_wait: Option<fn(&std::path::Path)>,
}

/// What a collection removed (or would remove, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects kept: those in `objects/` reachable from the roots (all of
    /// them when a root was unreadable).
    pub objects_kept: u64,
    /// Unreachable objects removed.
    pub objects_removed: u64,
    /// Bytes of the removed objects.
    pub bytes_removed: u64,
    /// Dangling symlinks removed from `images/` and `images/refs/`.
    pub images_pruned: u64,
    /// Dangling symlinks removed from `streams/` and `streams/refs/`.
    pub streams_pruned: u64,
    /// Stale temporary files removed (objects, links, `meta.json`).
    pub temp_files_removed: u64,
    /// Files under `objects/XX/` whose names are not digests, and entries
    /// of `objects/` that are not `XX` directories (left alone).
    pub unknown_files: u64,
    /// Images kept because they are mounted.
    pub mounted_images: u64,
    /// Roots that could not be read (`name: error`); while any exists no
    /// object is deleted.
    pub unreadable: Vec<String>,
}

/// The live set under construction.
struct Marker<'r> {
    repo: &'r Repository,
    live: HashSet<Digest>,
    /// Stream object digest → true once walked.
    streams: HashMap<Digest, bool>,
    /// Image digests (from `images/`) → true once walked.
    images: HashMap<Digest, bool>,
    /// Roots that could not be read.
    unreadable: Vec<String>,
}

/// The outcome of marking.
#[derive(Debug)]
pub struct Live {
    /// Every reachable object.
    pub objects: HashSet<Digest>,
    /// Roots that could not be read: nothing may be deleted.
    pub unreadable: Vec<String>,
    /// Images kept because they are mounted.
    pub mounted: u64,
}

impl Live {
    /// True if `d` must be kept.
    fn keeps(&self, d: &Digest) -> bool {
        !self.unreadable.is_empty() || self.objects.contains(d)
    }
}

impl Repository {
    /// Collects garbage (see the module docs).
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _guard = if opts.dry_run {
            None
        } else {
            self.check_writable()?;
            match self.try_lock_exclusive()? {
                Some(guard) => Some(guard),
                None => {
                    if let Some(f) = opts.on_wait {
                        f(self.path());
                    }
                    Some(self.lock_exclusive()?)
                }
            }
        };
        let live = self.live_objects(&opts.extra_roots)?;
        let mut report = GcReport {
            mounted_images: live.mounted,
            unreadable: live.unreadable.clone(),
            ..GcReport::default()
        };
        let pruned = self.prune_links(&live, opts.dry_run, &mut report)?;
        if pruned && !opts.dry_run {
            // The links are gone for good before any object they named is.
            self.sync()?;
        }
        self.sweep(&live, opts.dry_run, &mut report)?;
        self.remove_stale_temps(opts.dry_run, &mut report)?;
        Ok(report)
    }

    /// Every object reachable from the refs, the mounted images and
    /// `extra_roots`.
    pub fn live_objects(&self, extra_roots: &[String]) -> Result<Live> {
        let mut marker = Marker {
            repo: self,
            live: HashSet::new(),
            streams: HashMap::new(),
            images: HashMap::new(),
            unreadable: Vec::new(),
        };
        for entry in self.list_streams()? {
            if let Ok(d) = self.resolve_stream(&entry.name) {
                marker.streams.insert(d, false);
            }
        }
        for entry in self.list_links(paths::IMAGES, false)? {
            if let Ok(d) = self.resolve_image(&entry.name) {
                marker.images.insert(d, false);
            }
        }
        let image_refs = format!("{}/{}", paths::IMAGES, paths::REFS);
        for entry in self.list_links(&image_refs, true)? {
            // A dangling ref keeps nothing (and is pruned).
            let name = format!("refs/{}", entry.name);
            match self.resolve_image_opt(&name) {
                Ok(Some(d)) => marker.image_root(&format!("{image_refs}/{}", entry.name), &d),
                Ok(None) => {}
                Err(e) => marker
                    .unreadable
                    .push(format!("{image_refs}/{}: {e}", entry.name)),
            }
        }
        let mut mounted = 0;
        for hex in super::mounted::mounted_image_ids(2 * self.algorithm().digest_len()) {
            if let Ok(Some(d)) = self.resolve_image_opt(&hex) {
                mounted += 1;
                marker.image_root(&format!("{} (mounted)", paths::IMAGES), &d);
            }
        }
        let stream_refs = format!("{}/{}", paths::STREAMS, paths::REFS);
        for entry in self.list_stream_refs()? {
            match self.resolve_stream_opt(&format!("refs/{}", entry.name)) {
                Ok(Some(d)) => marker.stream(&d),
                Ok(None) => {}
                Err(e) => marker
                    .unreadable
                    .push(format!("{stream_refs}/{}: {e}", entry.name)),
            }
        }
        for root in extra_roots {
            marker.extra_root(root)?;
        }
        Ok(Live {
            objects: marker.live,
            unreadable: marker.unreadable,
            mounted,
        })
    }

    fn resolve_image_opt(&self, name: &str) -> Result<Option<Digest>> {
        match self.resolve_image(name) {
            Ok(d) if self.has_object(&d)? => Ok(Some(d)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn resolve_stream_opt(&self, name: &str) -> Result<Option<Digest>> {
        match self.resolve_stream(name) {
            Ok(d) if self.has_object(&d)? => Ok(Some(d)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn sweep(&self, live: &Live, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let objects_path = self.display(paths::OBJECTS);
        let entries = crate::beneath::read_dir(self.objects().as_fd())
            .map_err(|e| RepoError::io(&objects_path, e))?;
        let mut subdirs = Vec::new();
        for (name, ft) in entries {
            let Ok(name) = name.into_string() else {
                report.unknown_files += 1;
                continue;
            };
            let xx = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if xx && ft == FileType::Directory {
                subdirs.push(name);
            } else if !name.starts_with(crate::objects::TEMP_PREFIX) {
                report.unknown_files += 1;
            }
        }
        subdirs.sort();
        // Unlinking is kernel work (freeing blocks); subdirectories are swept
        // on all CPUs, each worker taking the next unswept one.
        let next = AtomicUsize::new(0);
        let threads = crate::verity::resolve_threads(0).min(subdirs.len()).max(1);
        let results: Vec<Result<GcReport>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = GcReport::default();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(sub) = subdirs.get(i) else {
                                return Ok(mine);
                            };
                            self.sweep_subdir(sub, live, dry_run, &mut mine)?;
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for r in results {
            let r = r?;
            report.objects_kept += r.objects_kept;
            report.objects_removed += r.objects_removed;
            report.bytes_removed += r.bytes_removed;
            report.unknown_files += r.unknown_files;
        }
        Ok(())
    }

    /// Sweeps one `objects/XX/` directory into `report`.
    fn sweep_subdir(
        &self,
        sub: &str,
        live: &Live,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let alg = self.algorithm();
        let sub_path = self.display(paths::OBJECTS).join(sub);
        let dir = rustix::fs::openat(
            self.objects().as_fd(),
            sub,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| RepoError::io(&sub_path, e))?;
        let entries =
            crate::beneath::read_dir(dir.as_fd()).map_err(|e| RepoError::io(&sub_path, e))?;
        for (name, ft) in entries {
            let Ok(name) = name.into_string() else {
                report.unknown_files += 1;
                continue;
            };
            let digest = match Digest::from_object_path(&format!("{sub}/{name}")) {
                Ok(d) if d.algorithm() == alg => d,
                _ => {
                    report.unknown_files += 1;
                    continue;
                }
            };
            if live.keeps(&digest) {
                report.objects_kept += 1;
                continue;
            }
            let size = match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_size as u64,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(RepoError::io(sub_path.join(&name), e)),
            };
            if !dry_run {
                let removed = if ft == FileType::Directory {
                    // A directory squatting an object name: garbage as a whole.
                    crate::beneath::remove_tree(dir.as_fd(), &name)
                } else {
                    match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => Ok(()),
                        Err(e) => Err(e.into()),
                    }
                };
                removed.map_err(|e| RepoError::io(sub_path.join(&name), e))?;
            }
            report.objects_removed += 1;
            report.bytes_removed += size;
        }
        Ok(())
    }

    /// Removes (or, in a dry run, counts) every symlink whose target will
    /// not survive the sweep; true if any was removed.
    fn prune_links(&self, live: &Live, dry_run: bool, report: &mut GcReport) -> Result<bool> {
        let survives = |d: &Digest| live.keeps(d);
        let image_refs = format!("{}/{}", paths::IMAGES, paths::REFS);
        let stream_refs = format!("{}/{}", paths::STREAMS, paths::REFS);
        let before = (report.images_pruned, report.streams_pruned);
        // Refs first (a crash then never leaves a ref to a pruned
        // top-level link), judged as if the top-level links were gone.
        let mut doomed_images = HashSet::new();
        for entry in self.list_links(paths::IMAGES, false)? {
            let link = format!("{}/{}", paths::IMAGES, entry.name);
            if !self.link_target_exists(&link, &HashSet::new(), &survives)? {
                doomed_images.insert(link);
            }
        }
        let mut doomed_streams = HashSet::new();
        for entry in self.list_streams()? {
            let link = format!("{}/{}", paths::STREAMS, entry.name);
            if !self.link_target_exists(&link, &HashSet::new(), &survives)? {
                doomed_streams.insert(link);
            }
        }
        for (refs, doomed, count) in [
            (&image_refs, &doomed_images, &mut report.images_pruned),
            (&stream_refs, &doomed_streams, &mut report.streams_pruned),
        ] {
            for entry in self.list_links(refs, true)? {
                let link = format!("{refs}/{}", entry.name);
                if !self.link_target_exists(&link, doomed, &survives)? {
                    self.prune(&link, dry_run)?;
                    *count += 1;
                }
            }
        }
        for (doomed, count) in [
            (&doomed_images, &mut report.images_pruned),
            (&doomed_streams, &mut report.streams_pruned),
        ] {
            let mut sorted: Vec<&String> = doomed.iter().collect();
            sorted.sort();
            for link in sorted {
                self.prune(link, dry_run)?;
                *count += 1;
            }
        }
        Ok((report.images_pruned, report.streams_pruned) != before)
    }

    fn prune(&self, link: &str, dry_run: bool) -> Result<()> {
        if !dry_run {
            self.remove_link(link)?;
        }
        Ok(())
    }

    /// Removes the temporary files killed writers leave: `.tmp-object-*` in
    /// `objects/`, `.tmp-link-*` anywhere in the link trees, `.tmp-meta-*`
    /// in the root. Only under the exclusive lock (no writer is running).
    fn remove_stale_temps(&self, dry_run: bool, report: &mut GcReport) -> Result<()> {
        // (directory, temporary-name prefix, descend into subdirectories):
        // each directory is opened and listed once.
        let mut pending = vec![
            (".".to_string(), ".tmp-meta-", false),
            (
                paths::OBJECTS.to_string(),
                crate::objects::TEMP_PREFIX,
                false,
            ),
            (paths::IMAGES.to_string(), ".tmp-link-", true),
            (paths::STREAMS.to_string(), ".tmp-link-", true),
        ];
        while let Some((dir, prefix, descend)) = pending.pop() {
            let Some(fd) = self.open_subdir(&dir)? else {
                continue;
            };
            for (name, ft) in crate::beneath::read_dir(fd.as_fd())
                .map_err(|e| RepoError::io(self.display(&dir), e))?
            {
                let Ok(name) = name.into_string() else {
                    continue;
                };
                if ft == FileType::Directory {
                    if descend {
                        pending.push((format!("{dir}/{name}"), prefix, true));
                    }
                    continue;
                }
                if !name.starts_with(prefix) {
                    continue;
                }
                if !dry_run {
                    match rustix::fs::unlinkat(&fd, name.as_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => {
                            return Err(RepoError::io(self.display(&format!("{dir}/{name}")), e));
                        }
                    }
                }
                report.temp_files_removed += 1;
            }
        }
        Ok(())
    }

    /// True if following `link` reaches an existing object that `survives`
    /// the sweep, without passing through a link in `pruned`.
    fn link_target_exists(
        &self,
        link: &str,
        pruned: &HashSet<String>,
        survives: &dyn Fn(&Digest) -> bool,
    ) -> Result<bool> {
        let mut cur = link.to_string();
        for _ in 0..8 {
            if pruned.contains(&cur) {
                return Ok(false);
            }
            let target = match self.resolve_link(&cur) {
                Ok(Some(t)) => t,
                Ok(None) => return Ok(false),
                // A link leaving the repository or otherwise unusable.
                Err(RepoError::Io { source, .. })
                    if source.kind() == io::ErrorKind::InvalidData =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            if let Some(rest) = target.strip_prefix("objects/") {
                return match Digest::from_object_path(rest) {
                    Ok(d) => Ok(survives(&d) && self.has_object(&d)?),
                    Err(_) => Ok(false),
                };
            }
            cur = target;
        }
        Ok(false)
    }
}

impl Marker<'_> {
    /// Marks the image root `what` (`digest`); an image that cannot be read
    /// is recorded as unreadable instead of failing the collection.
    fn image_root(&mut self, what: &str, digest: &Digest) {
        if let Err(e) = self.image(digest) {
            self.unreadable.push(format!("{what}: {e}"));
        }
    }

    fn image(&mut self, digest: &Digest) -> Result<()> {
        if self.images.get(digest) == Some(&true) {
            return Ok(());
        }
        self.images.insert(*digest, true);
        self.live.insert(*digest);
        let (data, _) = self.repo.read_image_bytes(&digest.to_hex())?;
        for d in self.repo.objects_of_image(&data, digest)? {
            self.live.insert(d);
        }
        Ok(())
    }

    /// Marks a stream and everything it reaches. Chains of named refs are
    /// followed with a work list, not recursion, so a hostile chain cannot
    /// exhaust the stack. A stream (or image) on the way that cannot be read
    /// is recorded as unreadable; the walk goes on with the others.
    fn stream(&mut self, digest: &Digest) {
        let mut pending = vec![*digest];
        while let Some(digest) = pending.pop() {
            if self.streams.get(&digest) == Some(&true) {
                continue;
            }
            self.streams.insert(digest, true);
            self.live.insert(digest);
            let path = self.repo.display(&paths::object_path(&digest));
            let data = match self
                .repo
                .read_object(&digest, super::streams::MAX_STREAM_LEN)
            {
                Ok(data) => data,
                Err(e) => {
                    self.unreadable
                        .push(format!("stream {}: {e}", digest.to_hex()));
                    continue;
                }
            };
            let stream = match SplitStream::parse(&data) {
                Ok(stream) => stream,
                Err(source) => {
                    let e = RepoError::Stream { path, source };
                    self.unreadable
                        .push(format!("stream {}: {e}", digest.to_hex()));
                    continue;
                }
            };
            self.live.extend(stream.object_refs());
            for target in stream.stream_refs() {
                self.live.insert(target);
                if self.streams.contains_key(&target) {
                    pending.push(target);
                } else if self.images.contains_key(&target) {
                    self.image_root(&format!("image {}", target.to_hex()), &target);
                }
            }
        }
    }

    fn extra_root(&mut self, root: &str) -> Result<()> {
        let repo = self.repo;
        if is_hex_digest(root, repo.algorithm().digest_len())
            && let Ok(d) = repo.resolve_image(root)
        {
            return self.image(&d);
        }
        if let Some(name) = root.strip_prefix("images/") {
            let d = repo.resolve_image(name)?;
            return self.image(&d);
        }
        if let Some(name) = root.strip_prefix("streams/") {
            let d = repo.resolve_stream(name)?;
            return self.stream_strict(&d);
        }
        match repo.resolve_stream(root) {
            Ok(d) => self.stream_strict(&d),
            Err(e) if e.is_not_found() => {
                let d = repo.resolve_image(root)?;
                self.image(&d)
            }
            Err(e) => Err(e),
        }
    }

    /// [`Marker::stream`] for an explicitly requested root: unreadable
    /// streams on the way are an error.
    fn stream_strict(&mut self, digest: &Digest) -> Result<()> {
        let before = self.unreadable.len();
        self.stream(digest);
        if self.unreadable.len() > before {
            let problems = self.unreadable.split_off(before);
            return Err(RepoError::io(
                self.repo.display(&paths::object_path(digest)),
                io::Error::new(io::ErrorKind::InvalidData, problems.join("; ")),
            ));
        }
        Ok(())
    }
}
