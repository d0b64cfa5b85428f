//! The composefs repository: a directory of content-addressed objects, the
//! EROFS images and split streams built from them, and named refs — on-disk
//! compatible with composefs-rs 0.9.
//!
//! ```text
//! <repo>/
//! ├── meta.json                      format version, algorithm, features (see [`meta`])
//! ├── objects/
//! │   ├── 00/ … ff/                  mode 0755, created on demand
//! │   │   └── <rest of hex digest>   one file per object (mode 0644), named by
//! │   │                              its fs-verity digest; fs-verity enabled
//! │   │                              unless the repository is insecure
//! │   └── .tmp-object-*              named temporary files (fallback only)
//! ├── images/
//! │   ├── <hex digest> -> ../objects/XX/<rest>        EROFS images this repository wrote
//! │   └── refs/<name…> -> ../<hex digest>             named images (GC roots)
//! └── streams/
//!     ├── <content id> -> ../objects/XX/<rest>        split streams
//!     └── refs/<name…> -> ../<content id>             named streams (GC roots)
//! ```
//!
//! Everything is an object: file contents, images, split streams. All
//! symlinks are relative (see [`paths`]) and replaced atomically (temporary
//! name, then `rename`). Unknown top-level entries are ignored.
//!
//! **Security mode.** A repository is *secure* when `meta.json` itself has
//! fs-verity enabled; then every object must have fs-verity enabled, and
//! digests are measured by the kernel. Otherwise it is *insecure*: digests are
//! computed in userspace, and mounts cannot require verity.
//!
//! **Durability.** Objects are published atomically (`O_TMPFILE` + `linkat`,
//! or a named temporary file + `renameat2(RENAME_NOREPLACE)`) without a
//! per-object `fsync`; one `syncfs` barrier runs before any symlink that
//! makes new objects reachable is created. So a published image or stream
//! never references an object lost in a crash.
//!
//! **Locking.** Every handle holds a shared `flock` on the repository
//! directory; garbage collection takes it exclusively (see
//! [`Repository::lock_exclusive`]).

mod create;
mod error;
pub mod fsck;
pub mod gc;
mod images;
mod lock;
pub mod meta;
pub mod mounted;
mod objects;
pub mod paths;
mod refs;
mod streams;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

pub use create::{DirImageOptions, INLINE_MAX, compute_image_id, image_bytes, read_directory_tree};
pub use error::{RepoError, Result};
pub use fsck::{FsckOptions, FsckProgress, FsckReport};
pub use gc::{GcOptions, GcReport};
pub use images::{ImageRef, ImportOptions, MAX_IMAGE_LEN};
pub use meta::{Access, Meta};
pub use refs::RefEntry;
pub use streams::MAX_STREAM_LEN;

use crate::objects::ObjectDir;
use crate::verity::{Algorithm, VerityError, enable_verity, measure_verity};

/// Largest `meta.json` read.
const MAX_META_LEN: u64 = 1 << 20;

/// How to open a repository.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Refuse an insecure repository.
    pub require_verity: bool,
    /// Do not write `meta.json` into an old repository that lacks one (it is
    /// then used with the inferred configuration, read-only).
    pub no_upgrade: bool,
    /// Open read-only even if writable (this also never adds `meta.json`
    /// to an old repository).
    pub read_only: bool,
    /// The digest algorithm of an old repository without `meta.json`, as
    /// the user named it; without it the algorithm is inferred from the
    /// object names, and refused when they disagree.
    pub algorithm: Option<Algorithm>,
}

/// How to create a repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The fs-verity digest algorithm (default SHA-512).
    pub algorithm: Algorithm,
    /// Create an insecure repository (no fs-verity).
    pub insecure: bool,
    /// The EROFS format of generated images (default 1).
    pub erofs_version: u32,
    /// Further formats generated beside it (`erofs_formats.extra`).
    pub erofs_extra: Vec<u32>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            algorithm: Algorithm::Sha512,
            insecure: false,
            erofs_version: 1,
            erofs_extra: Vec::new(),
        }
    }
}

/// What [`Repository::init`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initialized {
    /// A new repository was created.
    Created,
    /// The repository already existed with the same configuration.
    Existing,
}

/// An open repository.
#[derive(Debug)]
pub struct Repository {
    path: PathBuf,
    dir: OwnedFd,
    objects: ObjectDir,
    meta: Meta,
    algorithm: Algorithm,
    secure: bool,
    read_only: Option<String>,
}

impl Repository {
    /// Creates a repository at `path` (the directory may exist; it is
    /// created with its parents if missing). An existing repository with the
    /// same configuration is fine; a different one is an error.
    pub fn init(path: &Path, opts: &InitOptions) -> Result<(Repository, Initialized)> {
        if let Some(v) = std::iter::once(&opts.erofs_version)
            .chain(&opts.erofs_extra)
            .find(|&&v| v > 2)
        {
            return Err(RepoError::Meta {
                path: path.join(paths::META_JSON),
                message: format!("unknown EROFS format {v} (expected 0, 1 or 2)"),
            });
        }
        // A failed init leaves nothing behind: what it creates (the
        // directory, missing parents, objects/) is taken away again.
        let created = NewDirs::before_creating(&path.join(paths::OBJECTS));
        mkdir_all(path)?;
        let result = Self::init_in(path, opts);
        if result.is_err() {
            created.remove();
        }
        result
    }

    fn init_in(path: &Path, opts: &InitOptions) -> Result<(Repository, Initialized)> {
        let dir = open_dir(path)?;
        lock::lock_shared(dir.as_fd()).map_err(|e| RepoError::io(path, e))?;
        let wanted = Meta::new(opts.algorithm, opts.erofs_version).with_extra(&opts.erofs_extra);
        if let Some(existing) = read_meta(&dir, path)? {
            let secure = probe_secure(&dir, path, paths::META_JSON)?;
            let same = existing.algorithm() == opts.algorithm
                && existing.erofs_versions() == wanted.erofs_versions()
                && secure != opts.insecure;
            if !same {
                // Worded like composefs-rs ("algorithm: …, erofs_version: V1"),
                // plus the security mode, which cfs also compares.
                let describe = |meta: &Meta, secure: bool| {
                    let versions: Vec<String> = meta
                        .erofs_versions()
                        .iter()
                        .map(|v| format!("V{v}"))
                        .collect();
                    format!(
                        "algorithm: {}, erofs_version: {}, verity: {}",
                        meta.algorithm,
                        versions.join("+"),
                        if secure { "required" } else { "not required" }
                    )
                };
                return Err(RepoError::ConfigMismatch {
                    path: path.to_path_buf(),
                    existing: describe(&existing, secure),
                    requested: describe(&wanted, !opts.insecure),
                });
            }
            drop(dir);
            return Ok((
                Repository::open(path, &OpenOptions::default())?,
                Initialized::Existing,
            ));
        }
        mkdir_at(&dir, path, paths::OBJECTS)?;
        write_meta(&dir, path, &wanted, !opts.insecure, false)?;
        drop(dir);
        Ok((
            Repository::open(path, &OpenOptions::default())?,
            Initialized::Created,
        ))
    }

    /// Removes `streams/`, `images/` and `meta.json` of the repository at
    /// `path`, keeping `objects/` (`cfsctl init --reset-metadata`, the first
    /// step of re-initialising with another configuration; images and
    /// streams must then be re-created). Fails if any other handle has the
    /// repository open. A missing directory is not an error.
    pub fn reset_metadata(path: &Path) -> Result<()> {
        let dir = match open_dir(path) {
            Ok(dir) => dir,
            Err(RepoError::NotInitialized { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !lock::try_lock_exclusive(dir.as_fd()).map_err(|e| RepoError::io(path, e))? {
            return Err(RepoError::io(
                path,
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "repository is in use by another process",
                ),
            ));
        }
        for sub in [paths::STREAMS, paths::IMAGES] {
            // Through the directory's descriptor, never following a symlink:
            // a `streams` that is a symlink is removed itself, not its target.
            crate::beneath::remove_tree(dir.as_fd(), sub)
                .map_err(|e| RepoError::io(path.join(sub), e))?;
        }
        match rustix::fs::unlinkat(&dir, paths::META_JSON, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(RepoError::io(path.join(paths::META_JSON), e)),
        }
        rustix::fs::fsync(&dir).map_err(|e| RepoError::io(path, e))
    }

    /// Opens the repository at `path`, holding the shared lock until dropped.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Repository> {
        let dir = open_dir(path)?;
        lock::lock_shared(dir.as_fd()).map_err(|e| RepoError::io(path, e))?;
        let mut read_only = writability(&dir, path);
        if opts.read_only && read_only.is_none() {
            read_only = Some("opened read-only".into());
        }
        let (meta, secure) = match read_meta(&dir, path)? {
            Some(meta) => {
                let secure = probe_secure(&dir, path, paths::META_JSON)?;
                (meta, secure)
            }
            None => {
                let (meta, secure) = infer_old_format(&dir, path, opts.algorithm)?;
                if opts.no_upgrade {
                    read_only.get_or_insert_with(|| {
                        "repository has no meta.json and upgrading was not allowed".into()
                    });
                } else if read_only.is_none() {
                    write_meta(&dir, path, &meta, secure, false)?;
                }
                (meta, secure)
            }
        };
        match meta.access() {
            Access::ReadWrite => {}
            Access::ReadOnly(flags) => {
                read_only.get_or_insert_with(|| {
                    format!(
                        "meta.json names read-only-compatible features this version does not know: {}",
                        flags.join(", ")
                    )
                });
            }
            Access::Refused(features) => {
                return Err(RepoError::IncompatibleFeatures {
                    path: path.join(paths::META_JSON),
                    features,
                });
            }
        }
        if opts.require_verity && !secure {
            return Err(RepoError::VerityRequired {
                path: path.to_path_buf(),
            });
        }
        let objects_path = path.join(paths::OBJECTS);
        if read_only.is_none() {
            mkdir_at(&dir, path, paths::OBJECTS)?;
        }
        let objects = match crate::beneath::open_dir(dir.as_fd(), paths::OBJECTS) {
            Ok(fd) => ObjectDir::from_fd(fd, objects_path),
            // A read-only repository without objects/: open the root instead;
            // every lookup then simply finds nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let fd = crate::beneath::open_dir(dir.as_fd(), ".")
                    .map_err(|e| RepoError::io(path, e))?;
                ObjectDir::from_fd(fd, path.to_path_buf())
            }
            Err(e) => return Err(layout_error(dir.as_fd(), path, paths::OBJECTS, e)),
        };
        let algorithm = meta.algorithm();
        Ok(Repository {
            path: path.to_path_buf(),
            dir,
            objects,
            meta,
            algorithm,
            secure,
            read_only,
        })
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed `meta.json`.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The fs-verity digest algorithm of object names.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// True if `meta.json` has fs-verity enabled (objects must have it too).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Why the repository is read-only, if it is.
    pub fn read_only_reason(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// The EROFS formats generated on commit, the default first.
    pub fn erofs_versions(&self) -> Vec<u32> {
        self.meta.erofs_versions()
    }

    /// Adds `formats` to the formats generated on commit (`erofs_formats.extra`;
    /// the default stays) by replacing `meta.json` atomically; returns the
    /// formats that were not generated before. Existing images are not
    /// touched: callers build the new formats of what they keep (see
    /// `cfsctl upgrade`).
    pub fn add_erofs_formats(&mut self, formats: &[u32]) -> Result<Vec<u32>> {
        self.check_writable()?;
        if let Some(v) = formats.iter().find(|&&v| v > 2) {
            return Err(RepoError::Meta {
                path: self.path.join(paths::META_JSON),
                message: format!("unknown EROFS format {v} (expected 0, 1 or 2)"),
            });
        }
        let before = self.erofs_versions();
        let added: Vec<u32> = formats
            .iter()
            .copied()
            .filter(|v| !before.contains(v))
            .fold(Vec::new(), |mut acc, v| {
                if !acc.contains(&v) {
                    acc.push(v);
                }
                acc
            });
        if added.is_empty() {
            return Ok(added);
        }
        let mut extra = before[1..].to_vec();
        extra.extend(&added);
        let meta = Meta::new(self.algorithm, before[0]).with_extra(&extra);
        write_meta(&self.dir, &self.path, &meta, self.secure, true)?;
        self.meta = meta;
        Ok(added)
    }

    /// The object directory.
    pub fn objects(&self) -> &ObjectDir {
        &self.objects
    }

    /// The repository directory descriptor.
    pub fn dir_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Fails with [`RepoError::ReadOnly`] unless the repository may be written.
    pub fn check_writable(&self) -> Result<()> {
        match &self.read_only {
            None => Ok(()),
            Some(reason) => Err(RepoError::ReadOnly {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Makes everything written to the repository's filesystem durable: the
    /// barrier before publishing anything that references new objects.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::syncfs(&self.dir).map_err(|e| RepoError::io(&self.path, e))
    }

    /// Waits for exclusive use of the repository (no other handle open in
    /// any process); returns to shared use when the guard is dropped.
    pub fn lock_exclusive(&self) -> Result<ExclusiveGuard<'_>> {
        lock::lock_exclusive(self.dir.as_fd()).map_err(|e| RepoError::io(&self.path, e))?;
        Ok(ExclusiveGuard { repo: self })
    }

    /// Like [`Repository::lock_exclusive`] but fails at once (`None`) if
    /// another handle is open.
    pub fn try_lock_exclusive(&self) -> Result<Option<ExclusiveGuard<'_>>> {
        let ok =
            lock::try_lock_exclusive(self.dir.as_fd()).map_err(|e| RepoError::io(&self.path, e))?;
        Ok(ok.then_some(ExclusiveGuard { repo: self }))
    }

    /// `path` inside the repository, for messages.
    pub(crate) fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens the repository directory `rel` (`"."` for the root) without
    /// following any symlink; `None` if it does not exist. A symlink or a
    /// file in its place is a [`RepoError::Layout`] error.
    pub(crate) fn open_subdir(&self, rel: &str) -> Result<Option<OwnedFd>> {
        match crate::beneath::open_dir(self.dir.as_fd(), rel) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.layout_error(rel, e)),
        }
    }

    /// The error for `e`, met while opening `rel` below the root: a
    /// [`RepoError::Layout`] naming the component that is a symlink or not a
    /// directory, or a plain I/O error.
    pub(crate) fn layout_error(&self, rel: &str, e: io::Error) -> RepoError {
        layout_error(self.dir.as_fd(), &self.path, rel, e)
    }
}

/// See [`Repository::layout_error`].
fn layout_error(
    dir: std::os::fd::BorrowedFd<'_>,
    path: &Path,
    rel: &str,
    e: io::Error,
) -> RepoError {
    let code = e.raw_os_error().map(Errno::from_raw_os_error);
    if matches!(code, Some(Errno::LOOP | Errno::NOTDIR)) {
        // Find the first component that is not a real directory.
        let mut cur = String::new();
        for part in rel.split('/') {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            match crate::beneath::lstat(dir, &cur) {
                Ok(st) => {
                    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                    if ft != rustix::fs::FileType::Directory {
                        return RepoError::Layout {
                            path: path.join(&cur),
                            found: format!("is {}", crate::beneath::describe(ft)),
                        };
                    }
                }
                Err(_) => break,
            }
        }
    }
    RepoError::io(path.join(rel), e)
}

/// The directories that creating a path (with its parents) makes, deepest
/// first, noted before creating it, so that a failed operation can take them
/// away again.
#[derive(Debug)]
pub struct NewDirs(Vec<PathBuf>);

impl NewDirs {
    /// `path` and its ancestors that do not exist yet.
    pub fn before_creating(path: &Path) -> NewDirs {
        NewDirs(
            path.ancestors()
                .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
                .map(Path::to_path_buf)
                .collect(),
        )
    }

    /// Removes them, deepest first; only empty directories go (anything
    /// another process put there meanwhile stays).
    pub fn remove(&self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Exclusive use of a repository; see [`Repository::lock_exclusive`].
#[derive(Debug)]
pub struct ExclusiveGuard<'a> {
    repo: &'a Repository,
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        // Back to shared use; failure would only mean we keep the exclusive lock
        // until the handle closes.
        let _ = lock::lock_shared(self.repo.dir.as_fd());
    }
}

fn mkdir_all(path: &Path) -> Result<()> {
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o755)
        .create(path)
        .map_err(|e| RepoError::io(path, e))
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == Errno::NOENT {
            RepoError::NotInitialized {
                path: path.to_path_buf(),
            }
        } else {
            RepoError::io(path, e)
        }
    })
}

pub(crate) fn mkdir_at(dir: &OwnedFd, path: &Path, rel: &str) -> Result<()> {
    match rustix::fs::mkdirat(dir, rel, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(RepoError::io(path.join(rel), e)),
    }
}

/// Why the repository directory cannot be written, if it cannot.
fn writability(dir: &OwnedFd, path: &Path) -> Option<String> {
    if let Ok(st) = rustix::fs::fstatvfs(dir)
        && st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)
    {
        return Some("the filesystem is mounted read-only".into());
    }
    if rustix::fs::accessat(dir, ".", rustix::fs::Access::WRITE_OK, AtFlags::EACCESS).is_err() {
        return Some(format!("no write permission on {}", path.display()));
    }
    None
}

fn read_meta(dir: &OwnedFd, path: &Path) -> Result<Option<Meta>> {
    let meta_path = path.join(paths::META_JSON);
    let file = match crate::beneath::open_regular(dir.as_fd(), paths::META_JSON) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RepoError::io(meta_path, e)),
    };
    let mut text = Vec::new();
    file.take(MAX_META_LEN + 1)
        .read_to_end(&mut text)
        .map_err(|e| RepoError::io(&meta_path, e))?;
    if text.len() as u64 > MAX_META_LEN {
        return Err(RepoError::Meta {
            path: meta_path,
            message: format!("larger than {MAX_META_LEN} bytes"),
        });
    }
    Meta::parse(&text)
        .map(Some)
        .map_err(|message| RepoError::Meta {
            path: meta_path,
            message,
        })
}

/// True if the file `rel` has fs-verity enabled.
fn probe_secure(dir: &OwnedFd, path: &Path, rel: &str) -> Result<bool> {
    let fd = crate::beneath::open_regular(dir.as_fd(), rel)
        .map_err(|e| RepoError::io(path.join(rel), e))?;
    match measure_verity(fd.as_fd()) {
        Ok(_) => Ok(true),
        Err(e) if e.is_missing() => Ok(false),
        Err(e) => Err(RepoError::io(path.join(rel), e)),
    }
}

/// Objects whose fs-verity is probed when inferring the security mode of an
/// old repository.
const SECURE_PROBES: usize = 64;

/// The configuration of a repository without `meta.json`. The algorithm
/// comes from the names of *all* objects: every regular file in
/// `objects/XX/` named by a hex digest of 31 or 63 more bytes votes; names
/// of both lengths make the algorithm ambiguous, and then only `hint` (an
/// algorithm the user named) decides. Secure only if every probed object
/// (up to [`SECURE_PROBES`]) has fs-verity.
fn infer_old_format(dir: &OwnedFd, path: &Path, hint: Option<Algorithm>) -> Result<(Meta, bool)> {
    let objects = match crate::beneath::open_dir(dir.as_fd(), paths::OBJECTS) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RepoError::NotInitialized {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(layout_error(dir.as_fd(), path, paths::OBJECTS, e)),
    };
    let listing = |fd: std::os::fd::BorrowedFd<'_>, rel: &str| {
        crate::beneath::read_dir(fd).map_err(|e| RepoError::io(path.join(rel), e))
    };
    // Per algorithm (SHA-256, SHA-512): how many names, and the first
    // SECURE_PROBES of them (examples, and the files probed for verity).
    let mut count = [0usize; 2];
    let mut found: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut subdirs: Vec<String> = listing(objects.as_fd(), paths::OBJECTS)?
        .into_iter()
        .filter(|(_, ft)| *ft == rustix::fs::FileType::Directory)
        .filter_map(|(n, _)| n.into_string().ok())
        .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let rel = format!("{}/{sub}", paths::OBJECTS);
        let Ok(fd) = crate::beneath::open_dir(objects.as_fd(), &sub) else {
            continue;
        };
        for (name, ft) in listing(fd.as_fd(), &rel)? {
            let Ok(name) = name.into_string() else {
                continue;
            };
            if ft != rustix::fs::FileType::RegularFile
                || !name.bytes().all(|b| b.is_ascii_hexdigit())
            {
                continue;
            }
            match name.len() {
                62 | 126 => {
                    let i = usize::from(name.len() == 126);
                    count[i] += 1;
                    if found[i].len() < SECURE_PROBES {
                        found[i].push(format!("{rel}/{name}"));
                    }
                }
                _ => {}
            }
        }
    }
    let index = |alg: Algorithm| usize::from(alg != Algorithm::Sha256);
    let alg = match (hint, found[0].is_empty(), found[1].is_empty()) {
        (Some(alg), _, _) if found[index(alg)].is_empty() && !found[1 - index(alg)].is_empty() => {
            return Err(RepoError::Meta {
                path: path.join(paths::META_JSON),
                message: format!(
                    "missing, and {alg} was requested, but all {} objects are named like {} digests (e.g. {})",
                    count[1 - index(alg)],
                    if index(alg) == 0 {
                        "SHA-512"
                    } else {
                        "SHA-256"
                    },
                    found[1 - index(alg)][0]
                ),
            });
        }
        (Some(alg), _, _) => alg,
        // An empty old repository: the default of the reference tool.
        (None, true, true) | (None, true, false) => Algorithm::Sha512,
        (None, false, true) => Algorithm::Sha256,
        (None, false, false) => {
            return Err(RepoError::Meta {
                path: path.join(paths::META_JSON),
                message: format!(
                    "missing, and the objects do not tell the digest algorithm: {} are named like SHA-256 digests and {} like SHA-512 digests (e.g. {} and {}); name the algorithm with --hash to add meta.json",
                    count[0], count[1], found[0][0], found[1][0]
                ),
            });
        }
    };
    let names = &found[index(alg)];
    let mut secure = !names.is_empty();
    for rel in names {
        if !probe_secure(dir, path, rel)? {
            secure = false;
            break;
        }
    }
    Ok((Meta::upgraded(alg), secure))
}

/// Writes `meta.json` atomically: O_TMPFILE (or an exclusive named file),
/// fsync, fs-verity if `secure`, link into place.
/// Writes `meta.json` atomically (fs-verity enabled before it is visible
/// when `secure`); `replace` swaps it for an existing one with a rename.
fn write_meta(dir: &OwnedFd, path: &Path, meta: &Meta, secure: bool, replace: bool) -> Result<()> {
    let meta_path = path.join(paths::META_JSON);
    let io_err = |e: io::Error| RepoError::io(&meta_path, e);
    let text = meta.to_json();
    let tmp = if replace {
        Err(Errno::OPNOTSUPP)
    } else {
        rustix::fs::openat(
            dir,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
    };
    let (file, named) = match tmp {
        Ok(fd) => (File::from(fd), None),
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
            let name = format!(".tmp-meta-{}", std::process::id());
            let fd = rustix::fs::openat(
                dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map_err(|e| io_err(e.into()))?;
            (File::from(fd), Some(name))
        }
        Err(e) => return Err(io_err(e.into())),
    };
    let cleanup = |named: &Option<String>| {
        if let Some(n) = named {
            let _ = rustix::fs::unlinkat(dir, n.as_str(), AtFlags::empty());
        }
    };
    let result = (|| -> Result<()> {
        let mut file = file;
        file.write_all(text.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        let ro = File::from(
            rustix::fs::open(
                proc.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(e.into()))?,
        );
        drop(file);
        if secure {
            match enable_verity(ro.as_fd(), meta.algorithm()) {
                Ok(()) | Err(VerityError::AlreadyEnabled) => {}
                Err(VerityError::NotSupported) => {
                    return Err(RepoError::VerityUnsupported {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) => return Err(io_err(e.into())),
            }
        }
        match &named {
            None => {
                let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ro));
                rustix::fs::linkat(
                    CWD,
                    proc.as_str(),
                    dir,
                    paths::META_JSON,
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(|e| io_err(e.into()))?;
            }
            Some(n) => {
                rustix::fs::renameat_with(
                    dir,
                    n.as_str(),
                    dir,
                    paths::META_JSON,
                    if replace {
                        rustix::fs::RenameFlags::empty()
                    } else {
                        rustix::fs::RenameFlags::NOREPLACE
                    },
                )
                .map_err(|e| io_err(e.into()))?;
            }
        }
        rustix::fs::fsync(dir).map_err(|e| RepoError::io(path, e))?;
        Ok(())
    })();
    if result.is_err() {
        cleanup(&named);
    }
    result
}

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fsck;
#[cfg(test)]
mod tests_gc;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_verity;
