//! Garbage collection: delete every object no ref can reach.
//!
//! **Roots**: every symlink under `images/refs/` and `streams/refs/`, plus
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
//! An unreadable or corrupt root is an error: nothing is deleted.
//!
//! **Sweep**: every file in `objects/XX/` that is not marked is unlinked;
//! stale `objects/.tmp-object-*` files left by killed writers go too. Names
//! under `objects/XX/` that are not digests of the repository algorithm are
//! left alone and counted. Then dangling symlinks in `images/`, `streams/`
//! and their `refs/` trees are pruned.
//!
//! **Locking**: the collection holds the repository lock exclusively, so no
//! other handle (cfs or composefs-rs, any process) is open while it runs: a
//! writer that has stored objects but not yet linked them holds the shared
//! lock and so cannot lose them. A dry run needs only the shared lock.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
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
}

/// What a collection removed (or would remove, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects kept: those in `objects/` reachable from the roots.
    pub objects_kept: u64,
    /// Unreachable objects removed.
    pub objects_removed: u64,
    /// Bytes of the removed objects.
    pub bytes_removed: u64,
    /// Dangling symlinks removed from `images/` and `images/refs/`.
    pub images_pruned: u64,
    /// Dangling symlinks removed from `streams/` and `streams/refs/`.
    pub streams_pruned: u64,
    /// Stale temporary files removed from `objects/`.
    pub temp_files_removed: u64,
    /// Files under `objects/XX/` whose names are not digests (left alone).
    pub unknown_files: u64,
}

/// The live set under construction.
struct Marker<'r> {
    repo: &'r Repository,
    live: HashSet<Digest>,
    /// Stream object digest → true once walked.
    streams: HashMap<Digest, bool>,
    /// Image digests (from `images/`) → true once walked.
    images: HashMap<Digest, bool>,
}

impl Repository {
    /// Collects garbage (see the module docs).
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _guard = if opts.dry_run {
            None
        } else {
            self.check_writable()?;
            Some(self.lock_exclusive()?)
        };
        let live = self.live_objects(&opts.extra_roots)?;
        let mut report = GcReport::default();
        self.sweep(&live, opts.dry_run, &mut report)?;
        self.prune_links(&live, opts.dry_run, &mut report)?;
        Ok(report)
    }

    /// Every object reachable from the refs and `extra_roots`.
    pub fn live_objects(&self, extra_roots: &[String]) -> Result<HashSet<Digest>> {
        let mut marker = Marker {
            repo: self,
            live: HashSet::new(),
            streams: HashMap::new(),
            images: HashMap::new(),
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
            if let Some(d) = self.resolve_image_opt(&format!("refs/{}", entry.name))? {
                marker.image(&d)?;
            }
        }
        for entry in self.list_stream_refs()? {
            if let Some(d) = self.resolve_stream_opt(&format!("refs/{}", entry.name))? {
                marker.stream(&d)?;
            }
        }
        for root in extra_roots {
            marker.extra_root(root)?;
        }
        Ok(marker.live)
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

    fn sweep(&self, live: &HashSet<Digest>, dry_run: bool, report: &mut GcReport) -> Result<()> {
        let objects = self.objects().as_fd();
        let objects_path = self.display(paths::OBJECTS);
        let entries = match std::fs::read_dir(&objects_path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RepoError::io(objects_path, e)),
        };
        let mut subdirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| RepoError::io(&objects_path, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(crate::objects::TEMP_PREFIX) {
                if !dry_run {
                    match rustix::fs::unlinkat(objects, name, AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(RepoError::io(entry.path(), e)),
                    }
                }
                report.temp_files_removed += 1;
            } else if name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                subdirs.push(name.to_string());
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
        live: &HashSet<Digest>,
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
        let names: Vec<String> = std::fs::read_dir(&sub_path)
            .map_err(|e| RepoError::io(&sub_path, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for name in names {
            let digest = match Digest::from_object_path(&format!("{sub}/{name}")) {
                Ok(d) if d.algorithm() == alg => d,
                _ => {
                    report.unknown_files += 1;
                    continue;
                }
            };
            if live.contains(&digest) {
                report.objects_kept += 1;
                continue;
            }
            let size = match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_size as u64,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(RepoError::io(sub_path.join(&name), e)),
            };
            if !dry_run {
                match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(RepoError::io(sub_path.join(&name), e)),
                }
            }
            report.objects_removed += 1;
            report.bytes_removed += size;
        }
        Ok(())
    }

    /// Removes (or, in a dry run, counts) symlinks whose target is gone. In
    /// a dry run, links into objects about to be swept count as dangling.
    fn prune_links(
        &self,
        live: &HashSet<Digest>,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        // After a real sweep only live objects remain; a dry run must judge
        // links as if the sweep had happened.
        let survives = |d: &Digest| !dry_run || live.contains(d);
        let image_refs = format!("{}/{}", paths::IMAGES, paths::REFS);
        let stream_refs = format!("{}/{}", paths::STREAMS, paths::REFS);
        // Top-level links first, so that refs to them are found dangling too.
        let mut pruned_images = HashSet::new();
        for entry in self.list_links(paths::IMAGES, false)? {
            let link = format!("{}/{}", paths::IMAGES, entry.name);
            if !self.link_target_exists(&link, &pruned_images, &survives)? {
                self.prune(&link, dry_run)?;
                pruned_images.insert(link);
                report.images_pruned += 1;
            }
        }
        for entry in self.list_links(&image_refs, true)? {
            let link = format!("{image_refs}/{}", entry.name);
            if !self.link_target_exists(&link, &pruned_images, &survives)? {
                self.prune(&link, dry_run)?;
                report.images_pruned += 1;
            }
        }
        let mut pruned_streams = HashSet::new();
        for entry in self.list_streams()? {
            let link = format!("{}/{}", paths::STREAMS, entry.name);
            if !self.link_target_exists(&link, &pruned_streams, &survives)? {
                self.prune(&link, dry_run)?;
                pruned_streams.insert(link);
                report.streams_pruned += 1;
            }
        }
        for entry in self.list_links(&stream_refs, true)? {
            let link = format!("{stream_refs}/{}", entry.name);
            if !self.link_target_exists(&link, &pruned_streams, &survives)? {
                self.prune(&link, dry_run)?;
                report.streams_pruned += 1;
            }
        }
        Ok(())
    }

    fn prune(&self, link: &str, dry_run: bool) -> Result<()> {
        if !dry_run {
            self.remove_link(link)?;
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
    /// exhaust the stack.
    fn stream(&mut self, digest: &Digest) -> Result<()> {
        let mut pending = vec![*digest];
        while let Some(digest) = pending.pop() {
            if self.streams.get(&digest) == Some(&true) {
                continue;
            }
            self.streams.insert(digest, true);
            self.live.insert(digest);
            let data = self
                .repo
                .read_object(&digest, super::streams::MAX_STREAM_LEN)?;
            let path = self.repo.display(&paths::object_path(&digest));
            let stream =
                SplitStream::parse(&data).map_err(|source| RepoError::Stream { path, source })?;
            self.live.extend(stream.object_refs());
            for target in stream.stream_refs() {
                self.live.insert(target);
                if self.streams.contains_key(&target) {
                    pending.push(target);
                } else if self.images.contains_key(&target) {
                    self.image(&target)?;
                }
            }
        }
        Ok(())
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
            return self.stream(&d);
        }
        match repo.resolve_stream(root) {
            Ok(d) => self.stream(&d),
            Err(e) if e.is_not_found() => {
                let d = repo.resolve_image(root)?;
                self.image(&d)
            }
            Err(e) => Err(e),
        }
    }
}
