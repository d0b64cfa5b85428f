//! The content pass of directory mode: inline small files, compute the
//! fs-verity digest of the others (in parallel), optionally copy them into an
//! object directory.
//!
//! Mirrors C `mkcomposefs` directory mode: a regular file of at most
//! [`ContentOptions::inline_max`] bytes (64 in C) is stored in the image; every
//! larger one becomes an external file whose payload is its object path
//! `XX/<rest>` and whose metacopy digest is its fs-verity digest.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ExternalFile, FileRef, InodeKind, RegularFile, ScannedTree};
use crate::objects::ObjectDir;
use crate::verity::{Algorithm, Digest, digest_files, enable_verity};

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

/// Fills in the content of every file of `scan.files` (see the module docs).
pub fn read_contents(scan: &mut ScannedTree, opts: &ContentOptions) -> Result<(), ContentError> {
    let (inline, external): (Vec<FileRef>, Vec<FileRef>) = std::mem::take(&mut scan.files)
        .into_iter()
        .partition(|f| f.size <= opts.inline_max);

    for f in &inline {
        let content = read_small(scan, f)?;
        if let InodeKind::Regular(r) = &mut scan.fs.inode_mut(f.inode).kind {
            *r = RegularFile::Inline(content.into_boxed_slice());
        }
    }

    let digests = digest_files(opts.algorithm, &external, opts.threads, |f| scan.open(f));
    let mut hashed = Vec::with_capacity(external.len());
    for (f, result) in external.iter().zip(digests) {
        let digest = result.map_err(|source| ContentError::Read {
            path: scan.display_path(f),
            source,
        })?;
        if let InodeKind::Regular(r) = &mut scan.fs.inode_mut(f.inode).kind {
            *r = RegularFile::External(ExternalFile {
                size: f.size,
                payload: Some(digest.object_path().into_bytes().into_boxed_slice()),
                digest: Some(digest),
            });
        }
        hashed.push((f, digest));
    }

    if let Some(store) = &opts.store {
        fill_store(scan, store, &hashed, opts)?;
    }
    scan.files = inline.into_iter().chain(external).collect();
    Ok(())
}

fn read_small(scan: &ScannedTree, f: &FileRef) -> Result<Vec<u8>, ContentError> {
    let path = || scan.display_path(f);
    let file = scan.open(f).map_err(|source| ContentError::Read {
        path: path(),
        source,
    })?;
    let mut content = Vec::with_capacity(f.size as usize);
    file.take(f.size + 1)
        .read_to_end(&mut content)
        .map_err(|source| ContentError::Read {
            path: path(),
            source,
        })?;
    if content.len() as u64 != f.size {
        return Err(ContentError::Changed {
            path: path(),
            expected: f.size,
        });
    }
    Ok(content)
}

/// Copies the external files into `store` in parallel, enabling fs-verity on
/// each new object where the filesystem supports it (errors ignored, as C
/// does), then makes them durable with one `syncfs`.
fn fill_store(
    scan: &ScannedTree,
    store: &std::path::Path,
    files: &[(&FileRef, Digest)],
    opts: &ContentOptions,
) -> Result<(), ContentError> {
    let store_err = |source| ContentError::Store {
        path: store.to_path_buf(),
        source,
    };
    let dir = ObjectDir::create(store).map_err(store_err)?;
    let alg = opts.algorithm;
    let finish = move |f: &std::fs::File| {
        let _ = enable_verity(std::os::fd::AsFd::as_fd(f), alg);
        Ok(())
    };
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<ContentError>> = Mutex::new(None);
    let threads = if opts.threads == 0 {
        crate::verity::default_threads()
    } else {
        opts.threads
    };
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, files.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((f, digest)) = files.get(i) else {
                        break;
                    };
                    if failure.lock().map(|g| g.is_some()).unwrap_or(true) {
                        break;
                    }
                    let result = scan
                        .open(f)
                        .and_then(|src| dir.copy_from(&src, digest, &finish));
                    if let Err(source) = result {
                        let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(ContentError::Store {
                            path: scan.display_path(f),
                            source,
                        });
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    dir.sync().map_err(store_err)
}
