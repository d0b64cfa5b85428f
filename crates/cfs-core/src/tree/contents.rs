//! The content pass of directory mode: inline small files, compute the
//! fs-verity digest of the others, optionally copy them into an object
//! directory — on worker threads, overlapped with the directory scan.
//!
//! Mirrors C `mkcomposefs` directory mode: a regular file of at most
//! [`ContentOptions::inline_max`] bytes (64 in C) is stored in the image; every
//! larger one becomes an external file whose payload is its object path
//! `XX/<rest>` and whose metacopy digest is its fs-verity digest.
//!
//! [`build_from_directory`] runs the scan on the calling thread; every regular
//! file it finds is opened there and handed through a bounded queue (so memory
//! and open descriptors stay bounded) to [`ContentOptions::threads`] workers.
//! A file that changed size between the scan and the read is an error rather
//! than an image whose sizes and digests disagree.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{Mode, OFlags};

use super::from_dir::{Opened, scan_directory_with};
use super::{
    ExternalFile, FileRef, InodeId, InodeKind, RegularFile, ScanError, ScanOptions, ScannedTree,
};
use crate::objects::{ObjectDir, ObjectPolicy};
use crate::sys::file_map::FileMap;
use crate::verity::{Algorithm, Digest, FsVerityHasher, enable_verity, resolve_threads};

/// Read buffer of each worker.
const READ_BUFFER: usize = 1 << 20;
/// Files at least this large are hashed through a memory map.
const MAP_THRESHOLD: u64 = 1 << 20;
/// Bytes mapped at a time (a multiple of the page size).
const MAP_WINDOW: usize = 16 << 20;
/// Files queued between the scanner and the workers (each holds a descriptor).
const QUEUE_DEPTH: usize = 256;

/// How to read contents.
#[derive(Debug, Clone)]
pub struct ContentOptions {
    /// Digest algorithm of payloads and metacopy xattrs.
    pub algorithm: Algorithm,
    /// Files up to this size are stored inline in the image.
    pub inline_max: u64,
    /// Worker threads (0: one per CPU).
    pub threads: usize,
    /// Copy external files into this object directory (created if missing).
    pub store: Option<PathBuf>,
}

/// A failure of the content pass, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// A file could not be read or hashed.
    #[error("error computing digest: {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A file changed size between the scan and the read.
    #[error("error computing digest: {}: file changed while reading (size {expected} when scanned)", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// The size found by the scan.
        expected: u64,
    },
    /// An object could not be stored.
    #[error("cannot fill store: {}: {source}", path.display())]
    Store {
        /// The file or store path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A failure of [`build_from_directory`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The scan failed (C: `error accessing PATH`).
    #[error("error accessing {0}")]
    Scan(#[from] ScanError),
    /// Reading, hashing or storing a file failed.
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// Where [`build_from_directory_into`] stores external files, and the
/// policy that seals each new object before it is published (e.g. enabling
/// fs-verity) and judges existing ones.
#[derive(Clone, Copy)]
pub struct Store<'a> {
    /// The object directory.
    pub objects: &'a ObjectDir,
    /// Seals new objects, judges existing ones.
    pub policy: &'a dyn ObjectPolicy,
}

impl std::fmt::Debug for Store<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("objects", &self.objects.path())
            .finish()
    }
}

/// Counters of the content pass, updated as files are processed (for
/// progress display from another thread).
#[derive(Debug, Default)]
pub struct Progress {
    /// Regular files processed.
    pub files: AtomicU64,
    /// Bytes of regular files processed.
    pub bytes: AtomicU64,
    /// Objects newly written to the store.
    pub stored: AtomicU64,
    /// Bytes of objects newly written to the store.
    pub stored_bytes: AtomicU64,
}

/// One file for a worker.
struct Job {
    inode: InodeId,
    path: PathBuf,
    size: u64,
    file: File,
}

enum Outcome {
    Inline(Box<[u8]>),
    External(Digest),
}

/// Scans `root` and reads every file's content in one overlapped pass.
pub fn build_from_directory(
    root: &Path,
    scan: &ScanOptions,
    opts: &ContentOptions,
) -> Result<ScannedTree, BuildError> {
    let store = open_store(opts)?;
    let finish = best_effort_verity(opts.algorithm);
    let store_ref = store.as_ref().map(|objects| Store {
        objects,
        policy: &finish,
    });
    build_from_directory_into(root, scan, opts, store_ref, None)
}

/// [`build_from_directory`] storing external files into `store` (instead of
/// [`ContentOptions::store`]) and counting progress.
pub fn build_from_directory_into(
    root: &Path,
    scan: &ScanOptions,
    opts: &ContentOptions,
    store: Option<Store<'_>>,
    progress: Option<&Progress>,
) -> Result<ScannedTree, BuildError> {
    let mut scanned = None;
    let outcomes = run_pool(opts, store, progress, |send| {
        let mut on_file = |f: &FileRef, how: Opened<'_>| -> Result<(), BuildError> {
            let path = root.join(OsStr::from_bytes(&f.path));
            let file = match how {
                Opened::File(fd) => fd,
                // Never blocks on a FIFO or device swapped in since the scan.
                Opened::At(dir, name) => rustix::fs::openat(
                    dir,
                    OsStr::from_bytes(name),
                    OFlags::RDONLY
                        | OFlags::CLOEXEC
                        | OFlags::NOFOLLOW
                        | OFlags::NONBLOCK
                        | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .map_err(std::io::Error::from)
                .and_then(|fd| {
                    crate::beneath::check_regular(&fd)?;
                    Ok(fd)
                })
                .map_err(|e| ContentError::Read {
                    path: path.clone(),
                    source: e,
                })?,
            };
            send(Job {
                inode: f.inode,
                path,
                size: f.size,
                file: File::from(file),
            });
            Ok(())
        };
        scanned = Some(scan_directory_with(root, scan, &mut on_file)?);
        Ok::<(), BuildError>(())
    })?;
    let mut scanned = scanned.ok_or_else(|| {
        BuildError::Content(ContentError::Read {
            path: root.to_path_buf(),
            source: io::Error::other("scan did not complete"),
        })
    })?;
    apply(&mut scanned, outcomes);
    if let Some(store) = &store {
        store.objects.sync().map_err(|source| ContentError::Store {
            path: store.objects.path().to_path_buf(),
            source,
        })?;
    }
    Ok(scanned)
}

/// Fills in the content of every file of an already scanned tree (see the
/// module docs).
pub fn read_contents(scan: &mut ScannedTree, opts: &ContentOptions) -> Result<(), ContentError> {
    let store = open_store(opts)?;
    let finish = best_effort_verity(opts.algorithm);
    let store_ref = store.as_ref().map(|objects| Store {
        objects,
        policy: &finish,
    });
    let files = std::mem::take(&mut scan.files);
    let result = run_pool(opts, store_ref, None, |send| {
        for f in &files {
            let path = scan.display_path(f);
            let file = scan.open(f).map_err(|source| ContentError::Read {
                path: path.clone(),
                source,
            })?;
            send(Job {
                inode: f.inode,
                path,
                size: f.size,
                file,
            });
        }
        Ok::<(), ContentError>(())
    });
    scan.files = files;
    apply(scan, result?);
    if let Some(store) = &store {
        store.sync().map_err(|source| ContentError::Store {
            path: store.path().to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// The finisher of `mkcomposefs --digest-store`: enable fs-verity where the
/// filesystem supports it, like C; never an error.
fn best_effort_verity(alg: Algorithm) -> impl Fn(&File, &Digest) -> io::Result<()> + Sync {
    move |f: &File, _: &Digest| {
        let _ = enable_verity(std::os::fd::AsFd::as_fd(f), alg);
        Ok(())
    }
}

fn open_store(opts: &ContentOptions) -> Result<Option<ObjectDir>, ContentError> {
    opts.store
        .as_deref()
        .map(|p| {
            ObjectDir::create(p).map_err(|source| ContentError::Store {
                path: p.to_path_buf(),
                source,
            })
        })
        .transpose()
}

fn apply(scan: &mut ScannedTree, outcomes: Vec<(InodeId, Outcome)>) {
    for (inode, outcome) in outcomes {
        let InodeKind::Regular(r) = &mut scan.fs.inode_mut(inode).kind else {
            continue;
        };
        *r = match outcome {
            Outcome::Inline(content) => RegularFile::Inline(content),
            Outcome::External(digest) => RegularFile::External(ExternalFile {
                size: r.size(),
                payload: Some(digest.object_path().into_bytes().into_boxed_slice()),
                digest: Some(digest),
            }),
        };
    }
}

/// Runs `produce` on this thread, feeding jobs to worker threads; returns every
/// outcome, or the producer's error, or the first worker error.
fn run_pool<E: From<ContentError>>(
    opts: &ContentOptions,
    store: Option<Store<'_>>,
    progress: Option<&Progress>,
    produce: impl FnOnce(&mut dyn FnMut(Job)) -> Result<(), E>,
) -> Result<Vec<(InodeId, Outcome)>, E> {
    let threads = resolve_threads(opts.threads);
    let (tx, rx): (SyncSender<Job>, Receiver<Job>) = sync_channel(QUEUE_DEPTH);
    let rx = Mutex::new(rx);
    let failed = AtomicBool::new(false);
    let failure: Mutex<Option<ContentError>> = Mutex::new(None);
    let outcomes: Mutex<Vec<(InodeId, Outcome)>> = Mutex::new(Vec::new());
    let produced = std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; READ_BUFFER];
                let mut mine = Vec::new();
                loop {
                    let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = job else { break };
                    if failed.load(Ordering::Relaxed) {
                        continue; // drain without work after a failure
                    }
                    match process(&job, opts, store, progress, &mut buf) {
                        Ok(outcome) => mine.push((job.inode, outcome)),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            failure
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert(e);
                        }
                    }
                }
                outcomes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .append(&mut mine);
            });
        }
        let mut send = |job: Job| {
            // Fails only if every worker is gone, which happens only on panic.
            let _ = tx.send(job);
        };
        let produced = produce(&mut send);
        drop(tx);
        produced
    });
    produced?;
    if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e.into());
    }
    Ok(outcomes
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner))
}

fn process(
    job: &Job,
    opts: &ContentOptions,
    store: Option<Store<'_>>,
    progress: Option<&Progress>,
    buf: &mut [u8],
) -> Result<Outcome, ContentError> {
    let read_err = |source| ContentError::Read {
        path: job.path.clone(),
        source,
    };
    if job.size <= opts.inline_max {
        // Read one byte more than expected to notice a file that grew.
        let want = (job.size as usize + 1).min(buf.len());
        let mut len = 0;
        while len < want {
            let n = read_at(&job.file, &mut buf[len..want], len as u64).map_err(read_err)?;
            if n == 0 {
                break;
            }
            len += n;
        }
        if len as u64 != job.size {
            return Err(ContentError::Changed {
                path: job.path.clone(),
                expected: job.size,
            });
        }
        if let Some(p) = progress {
            p.files.fetch_add(1, Ordering::Relaxed);
            p.bytes.fetch_add(job.size, Ordering::Relaxed);
        }
        return Ok(Outcome::Inline(buf[..len].into()));
    }
    let digest = hash_file(job, opts.algorithm, buf)
        .map_err(read_err)?
        .ok_or_else(|| ContentError::Changed {
            path: job.path.clone(),
            expected: job.size,
        })?;
    if let Some(store) = store {
        let stored = store
            .objects
            .copy_from(&job.file, &digest, store.policy)
            .map_err(|source| ContentError::Store {
                path: job.path.clone(),
                source,
            })?;
        if let Some(p) = progress.filter(|_| stored.wrote()) {
            p.stored.fetch_add(1, Ordering::Relaxed);
            p.stored_bytes.fetch_add(job.size, Ordering::Relaxed);
        }
    }
    if let Some(p) = progress {
        p.files.fetch_add(1, Ordering::Relaxed);
        p.bytes.fetch_add(job.size, Ordering::Relaxed);
    }
    Ok(Outcome::External(digest))
}

/// The fs-verity digest of a job's file, or `None` if its size is no longer
/// the scanned one. Large files are hashed straight from the page cache
/// through a sliding mapping (no copy; at most [`MAP_WINDOW`] bytes mapped at a
/// time, so resident memory stays small); small ones, or when mapping is
/// unavailable, through `pread`.
fn hash_file(job: &Job, alg: Algorithm, buf: &mut [u8]) -> io::Result<Option<Digest>> {
    let mut hasher = FsVerityHasher::new(alg);
    let mut offset = 0u64;
    if job.size >= MAP_THRESHOLD {
        while offset < job.size {
            let len = (job.size - offset).min(MAP_WINDOW as u64) as usize;
            let Ok(map) = FileMap::new(&job.file, offset, len) else {
                break; // fall back to reading from here on
            };
            hasher.update(map.bytes());
            if map.truncated() {
                return Ok(None);
            }
            offset += len as u64;
        }
        if offset == job.size {
            // Any change of size during the mapping shows here or as `truncated`.
            return Ok((job.file.metadata()?.len() == job.size).then(|| hasher.finalize()));
        }
    }
    loop {
        let n = read_at(&job.file, buf, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok((offset == job.size).then(|| hasher.finalize()))
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
