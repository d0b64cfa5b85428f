//! Multi-threaded fs-verity digests of files (same tree as [`super::merkle`]).
//!
//! A large file is cut into segments of [`SEGMENT_LEAVES`] data blocks
//! (4 MiB). The segment size is a multiple of the number of hashes per tree
//! block (128 for SHA-256, 64 for SHA-512), so every segment but the last
//! yields whole level-1 hashes. Workers claim segments in file order, read them
//! with positional reads (`pread`), hash leaves and level-1 blocks, and hand
//! the few resulting hashes back; they are folded into the upper tree levels
//! strictly in order. A worker may run at most [`WINDOW`] segments ahead of
//! the oldest unfinished one, so memory stays bounded: one segment buffer per
//! worker plus at most `WINDOW` small results per file, whatever the file size.
//!
//! [`digest_files`] schedules many files over a fixed set of threads: each
//! worker takes the next file; a large file becomes a segmented job that every
//! idle worker helps with before taking further files.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use super::block::{
    BLOCK_SIZE, MAX_DIGEST, descriptor_digest, hash_block, hash_blocks, hashes_per_block,
    split_blocks,
};
use super::digest::{Algorithm, Digest};
use super::merkle::{FsVerityHasher, TreeBuilder};

/// Data blocks per segment: a multiple of 128 and 64 (whole level-1 blocks).
const SEGMENT_LEAVES: usize = 1024;

/// Bytes per segment (4 MiB); also the read buffer size of each worker.
const SEGMENT_BYTES: usize = SEGMENT_LEAVES * BLOCK_SIZE;

/// How many segments may be claimed beyond the oldest one not yet folded in.
const WINDOW: u64 = 64;

/// Segment size and look-ahead window (tests shrink both).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Bytes per segment: a multiple of `128 * BLOCK_SIZE`.
    pub(crate) segment_bytes: usize,
    /// Segments that may be claimed beyond the oldest one not yet folded in.
    pub(crate) window: u64,
}

impl Tuning {
    pub(crate) const DEFAULT: Tuning = Tuning {
        segment_bytes: SEGMENT_BYTES,
        window: WINDOW,
    };

    fn checked(self) -> Tuning {
        let group = 128 * BLOCK_SIZE;
        Tuning {
            segment_bytes: self.segment_bytes.next_multiple_of(group).max(group),
            window: self.window.max(1),
        }
    }
}

/// How long an idle worker sleeps before rechecking for work it may have
/// missed a wake-up for.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// Number of threads to use when the caller passes 0: the available parallelism.
pub fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// A thread-count option: `0` means [`default_threads`].
pub fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        default_threads()
    } else {
        threads
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Hashes of one segment: level-1 hashes of its full groups of leaves, and the
/// leaf hashes of a trailing partial group (only in the file's last segment).
#[derive(Debug)]
struct SegmentHashes {
    groups: Vec<u8>,
    tail: Vec<u8>,
}

/// Hashes `data` (a whole number of blocks) as consecutive leaves starting at
/// a group boundary.
fn hash_segment(alg: Algorithm, data: &[u8]) -> SegmentHashes {
    let d = alg.digest_len();
    let per = hashes_per_block(alg);
    let (blocks, _) = split_blocks(data);
    let mut out = SegmentHashes {
        groups: Vec::with_capacity(blocks.len() / per * d),
        tail: Vec::new(),
    };
    let mut group = [0u8; BLOCK_SIZE];
    let mut level1 = [0u8; MAX_DIGEST];
    for chunk in blocks.chunks(per) {
        hash_blocks(alg, chunk, &mut group[..chunk.len() * d]);
        if chunk.len() == per {
            hash_block(alg, &group, &mut level1);
            out.groups.extend_from_slice(&level1[..d]);
        } else {
            out.tail.extend_from_slice(&group[..chunk.len() * d]);
        }
    }
    out
}

/// Digest of a file read sequentially from offset 0 to end of file with
/// positional reads into `buf`.
fn digest_sequential(alg: Algorithm, file: &File, buf: &mut [u8]) -> io::Result<Digest> {
    let mut h = FsVerityHasher::new(alg);
    let mut offset = 0u64;
    loop {
        match file.read_at(buf, offset) {
            Ok(0) => return Ok(h.finalize()),
            Ok(n) => {
                h.update(&buf[..n]);
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

enum Claim {
    Segment(u64),
    /// Too far ahead of the oldest unfinished segment; wait for progress.
    Wait,
    /// Nothing left to claim (all claimed, or the job failed).
    Done,
}

#[derive(Debug)]
struct JobState {
    next_claim: u64,
    next_feed: u64,
    ready: BTreeMap<u64, SegmentHashes>,
    tree: Option<TreeBuilder>,
    failed: bool,
}

/// One large file hashed by several workers. `F` is `&File` or `File`.
#[derive(Debug)]
struct SegmentJob<F> {
    alg: Algorithm,
    file: F,
    /// Index of the file in the caller's list ([`digest_files`]).
    item: usize,
    size: u64,
    segments: u64,
    tuning: Tuning,
    state: Mutex<JobState>,
    progress: Condvar,
}

impl<F: Borrow<File>> SegmentJob<F> {
    fn new(alg: Algorithm, file: F, item: usize, size: u64, tuning: Tuning) -> Self {
        SegmentJob {
            alg,
            file,
            item,
            size,
            segments: size.div_ceil(tuning.segment_bytes as u64),
            tuning,
            state: Mutex::new(JobState {
                next_claim: 0,
                next_feed: 0,
                ready: BTreeMap::new(),
                tree: Some(TreeBuilder::new(alg)),
                failed: false,
            }),
            progress: Condvar::new(),
        }
    }

    fn claimable(&self, s: &JobState) -> Claim {
        if s.failed || s.next_claim >= self.segments {
            Claim::Done
        } else if s.next_claim >= s.next_feed + self.tuning.window {
            Claim::Wait
        } else {
            Claim::Segment(s.next_claim)
        }
    }

    fn try_claim(&self) -> Claim {
        let mut s = lock(&self.state);
        let claim = self.claimable(&s);
        if matches!(claim, Claim::Segment(_)) {
            s.next_claim += 1;
        }
        claim
    }

    /// Blocks until the window moves (or for at most [`IDLE_WAIT`]).
    fn wait_progress(&self) {
        let s = lock(&self.state);
        if matches!(self.claimable(&s), Claim::Wait) {
            drop(self.progress.wait_timeout(s, IDLE_WAIT));
        }
    }

    fn read_and_hash(&self, index: u64, buf: &mut [u8]) -> io::Result<SegmentHashes> {
        let seg = self.tuning.segment_bytes;
        let offset = index * seg as u64;
        let len = (self.size - offset).min(seg as u64) as usize;
        let padded = len.next_multiple_of(BLOCK_SIZE);
        self.file
            .borrow()
            .read_exact_at(&mut buf[..len], offset)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "file shrank while computing its fs-verity digest: \
                             expected {} bytes, end of file before offset {}",
                            self.size,
                            offset + len as u64
                        ),
                    )
                } else {
                    e
                }
            })?;
        buf[len..padded].fill(0);
        Ok(hash_segment(self.alg, &buf[..padded]))
    }

    /// Reads, hashes and folds in segment `index`. Returns the job's result if
    /// this call finished it: the digest, or the first error.
    fn run_segment(&self, index: u64, buf: &mut [u8]) -> Option<io::Result<Digest>> {
        let hashes = self.read_and_hash(index, buf);
        let mut s = lock(&self.state);
        if s.failed {
            return None;
        }
        let hashes = match hashes {
            Ok(h) => h,
            Err(e) => {
                s.failed = true;
                self.progress.notify_all();
                return Some(Err(e));
            }
        };
        s.ready.insert(index, hashes);
        let s = &mut *s;
        let before = s.next_feed;
        let tree = s.tree.as_mut()?;
        let d = self.alg.digest_len();
        while let Some(h) = s.ready.remove(&s.next_feed) {
            h.groups.chunks_exact(d).for_each(|g| tree.push_group(g));
            h.tail.chunks_exact(d).for_each(|l| tree.push(0, l));
            s.next_feed += 1;
        }
        if s.next_feed != before {
            self.progress.notify_all();
        }
        if s.next_feed < self.segments {
            return None;
        }
        let mut root = [0u8; MAX_DIGEST];
        s.tree.take()?.finish(&mut root);
        Some(Ok(descriptor_digest(self.alg, self.size, &root)))
    }

    /// Works on this job until nothing is left to claim; the finishing call's
    /// result goes to `result`.
    fn work(&self, result: &Mutex<Option<io::Result<Digest>>>) {
        let mut buf = vec![0u8; self.tuning.segment_bytes];
        loop {
            match self.try_claim() {
                Claim::Segment(i) => {
                    if let Some(r) = self.run_segment(i, &mut buf) {
                        *lock(result) = Some(r);
                    }
                }
                Claim::Wait => self.wait_progress(),
                Claim::Done => return,
            }
        }
    }
}

/// The fs-verity digest of `file`, read from offset 0 with positional reads
/// (the file position is not used or changed).
///
/// Regular files larger than one 4 MiB segment are hashed by `threads`
/// threads (0 = [`default_threads`]); the size is taken from `fstat` at the
/// start and the file must not shrink meanwhile (error otherwise). Other files
/// are read sequentially to end of file. Memory use is bounded (one 4 MiB
/// buffer per thread) whatever the file size.
pub fn digest_file(alg: Algorithm, file: &File, threads: usize) -> io::Result<Digest> {
    digest_file_tuned(alg, file, threads, Tuning::DEFAULT)
}

/// [`digest_file`] with given segment size and window.
pub(crate) fn digest_file_tuned(
    alg: Algorithm,
    file: &File,
    threads: usize,
    tuning: Tuning,
) -> io::Result<Digest> {
    let tuning = tuning.checked();
    let threads = resolve_threads(threads);
    let meta = file.metadata()?;
    let size = meta.len();
    if threads <= 1 || !meta.is_file() || size <= tuning.segment_bytes as u64 {
        let mut buf = vec![0u8; tuning.segment_bytes];
        return digest_sequential(alg, file, &mut buf);
    }
    let job = SegmentJob::new(alg, file, 0, size, tuning);
    let workers = (threads as u64).min(job.segments) as usize;
    let result = Mutex::new(None);
    thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(|| job.work(&result));
        }
        job.work(&result);
    });
    result
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or_else(|| {
            Err(io::Error::other(
                "fs-verity digest job ended without result",
            ))
        })
}

/// Shared state of [`digest_files`].
struct Scheduler<'a, P, O> {
    alg: Algorithm,
    threads: usize,
    tuning: Tuning,
    items: &'a [P],
    open: &'a O,
    next: AtomicUsize,
    /// Workers between claiming an item and registering it (see `work`).
    starting: AtomicUsize,
    active: Mutex<Vec<Arc<SegmentJob<File>>>>,
    changed: Condvar,
}

/// What a worker found among the active large-file jobs.
enum ActiveClaim {
    Segment(Arc<SegmentJob<File>>, u64),
    Blocked(Arc<SegmentJob<File>>),
    Nothing,
}

type ItemResult = (usize, io::Result<Digest>);

impl<P, O> Scheduler<'_, P, O>
where
    O: Fn(&P) -> io::Result<File>,
{
    fn claim_active(&self) -> ActiveClaim {
        let mut active = lock(&self.active);
        let mut blocked = None;
        let mut found = None;
        active.retain(|job| {
            if found.is_some() {
                return true;
            }
            match job.try_claim() {
                Claim::Segment(i) => {
                    found = Some((Arc::clone(job), i));
                    true
                }
                Claim::Wait => {
                    blocked.get_or_insert_with(|| Arc::clone(job));
                    true
                }
                Claim::Done => false,
            }
        });
        match (found, blocked) {
            (Some((job, i)), _) => ActiveClaim::Segment(job, i),
            (None, Some(job)) => ActiveClaim::Blocked(job),
            (None, None) => ActiveClaim::Nothing,
        }
    }

    /// Opens item `index`; hashes it at once if small, else registers a job.
    fn start(&self, index: usize, buf: &mut [u8]) -> Option<io::Result<Digest>> {
        let item = self.items.get(index)?;
        let file = match (self.open)(item) {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        if self.threads > 1 && meta.is_file() && meta.len() > self.tuning.segment_bytes as u64 {
            let job = SegmentJob::new(self.alg, file, index, meta.len(), self.tuning);
            lock(&self.active).push(Arc::new(job));
            None
        } else {
            Some(digest_sequential(self.alg, &file, buf))
        }
    }

    fn work(&self) -> Vec<ItemResult> {
        let mut done = Vec::new();
        let mut buf = vec![0u8; self.tuning.segment_bytes];
        loop {
            let blocked = match self.claim_active() {
                ActiveClaim::Segment(job, i) => {
                    if let Some(r) = job.run_segment(i, &mut buf) {
                        done.push((job.item, r));
                    }
                    continue;
                }
                ActiveClaim::Blocked(job) => Some(job),
                ActiveClaim::Nothing => None,
            };
            // `starting` is raised before the claim and lowered under the
            // `active` lock after registering, so a worker that finds the
            // list exhausted also sees any large file still being opened.
            self.starting.fetch_add(1, Ordering::SeqCst);
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            if index < self.items.len() {
                let r = self.start(index, &mut buf);
                let guard = lock(&self.active);
                self.starting.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                self.changed.notify_all();
                if let Some(r) = r {
                    done.push((index, r));
                }
                continue;
            }
            let active = lock(&self.active);
            self.starting.fetch_sub(1, Ordering::SeqCst);
            if let Some(job) = blocked {
                drop(active);
                job.wait_progress();
            } else if active.is_empty() && self.starting.load(Ordering::SeqCst) == 0 {
                return done;
            } else {
                drop(self.changed.wait_timeout(active, IDLE_WAIT));
            }
        }
    }
}

/// fs-verity digests of many files, in the order of `items`.
///
/// `open` turns an item into an open file (add the path to its errors: the
/// results carry no other context). `threads` workers (0 =
/// [`default_threads`]) take files one by one; a file larger than 4 MiB is
/// split into segments that all idle workers help with, so a mix of many
/// small files and a few huge ones keeps every thread busy. Memory is bounded
/// by one 4 MiB buffer per thread and a few small per-file states.
pub fn digest_files<P, O>(
    alg: Algorithm,
    items: &[P],
    threads: usize,
    open: O,
) -> Vec<io::Result<Digest>>
where
    P: Sync,
    O: Fn(&P) -> io::Result<File> + Sync,
{
    digest_files_tuned(alg, items, threads, open, Tuning::DEFAULT)
}

/// [`digest_files`] with given segment size and window.
pub(crate) fn digest_files_tuned<P, O>(
    alg: Algorithm,
    items: &[P],
    threads: usize,
    open: O,
    tuning: Tuning,
) -> Vec<io::Result<Digest>>
where
    P: Sync,
    O: Fn(&P) -> io::Result<File> + Sync,
{
    let threads = resolve_threads(threads);
    let sched = Scheduler {
        alg,
        threads,
        tuning: tuning.checked(),
        items,
        open: &open,
        next: AtomicUsize::new(0),
        starting: AtomicUsize::new(0),
        active: Mutex::new(Vec::new()),
        changed: Condvar::new(),
    };
    // Even with fewer items than threads, every thread may help on a large file.
    let workers = if items.is_empty() { 1 } else { threads.max(1) };
    let per_worker: Vec<Vec<ItemResult>> = thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(|| sched.work())).collect();
        let mut all = vec![sched.work()];
        for h in handles {
            all.push(
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        all
    });
    let mut results: Vec<Option<io::Result<Digest>>> = (0..items.len()).map(|_| None).collect();
    for (index, r) in per_worker.into_iter().flatten() {
        if let Some(slot) = results.get_mut(index) {
            *slot = Some(r);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("file was not hashed"))))
        .collect()
}
