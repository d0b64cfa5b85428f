//! [`label`]: find the policy inside the tree, load it, apply it — or strip
//! every label when the image has none. This is composefs-rs 0.9.4's
//! `selabel()`, with file contents coming from the tree (inline files) or
//! from the caller (external files).
//!
//! How the tree is searched, as composefs-rs's `Directory` lookups do (no
//! symlink is followed):
//!
//! * `/etc/selinux` missing (or `/etc` missing) → no policy, strip.
//!   `/etc` or `/etc/selinux` present but not a directory → **error**
//!   (composefs-rs's `get_directory_ref_opt` fails with "not a directory").
//! * `/etc/selinux/config` missing → strip. A directory there → error, any
//!   other non-regular file (a symlink, too) → error. An external file whose
//!   reader returns `None` (composefs-rs: a sparse file) counts as missing.
//! * `/etc/selinux/<type>` or its `contexts/files` missing → **error**, not
//!   strip (composefs-rs resolves them with `get_directory_ref`, which fails
//!   on a missing directory); not a directory → error.
//! * The spec and substitution files follow the rules of `config`; a missing
//!   `file_contexts` is an error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use cfs_core::tree::{ExternalFile, FileSystem, InodeId, InodeKind, RegularFile};

use super::error::{SelinuxError, show};
use super::policy::{Loaded, LookupOrder, MAX_POLICY_FILE, Policy};
use super::walk::{LabelStats, apply, strip};

/// Reads an external (object-store) regular file of the tree: called with its
/// image path and its [`ExternalFile`]; `None` means its content is not
/// available (treated as a missing file, as composefs-rs treats sparse
/// files). Inline files are read from the tree without calling it.
pub type ReadExternal<'a> =
    dyn FnMut(&[u8], &ExternalFile) -> Result<Option<Vec<u8>>, SelinuxError> + 'a;

/// Why [`label`] found no policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoPolicy {
    /// `/etc/selinux` does not exist.
    NoEtcSelinux,
    /// `/etc/selinux/config` does not exist.
    NoConfig,
    /// `/etc/selinux/config` has no `SELINUXTYPE=` line.
    NoPolicyType,
}

/// What [`label`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The image's policy was applied.
    Labelled {
        /// Its `SELINUXTYPE`.
        policy_type: String,
        /// Counts.
        stats: LabelStats,
    },
    /// The image has no policy: every `security.selinux` was removed.
    Stripped {
        /// Why there is no policy.
        reason: NoPolicy,
        /// How many inodes had a label.
        removed: usize,
    },
}

/// Labels `fs` with the policy found inside it, in composefs-rs order.
/// See [`label_with`].
pub fn label(fs: &mut FileSystem, read: &mut ReadExternal<'_>) -> Result<Outcome, SelinuxError> {
    label_with(fs, read, LookupOrder::ComposefsRs)
}

/// Labels `fs` with the policy found inside it (see the module docs for the
/// search), `order` deciding which spec wins. An error while finding or
/// loading the policy leaves the tree unchanged.
pub fn label_with(
    fs: &mut FileSystem,
    read: &mut ReadExternal<'_>,
    order: LookupOrder,
) -> Result<Outcome, SelinuxError> {
    if !has_etc_selinux(fs)? {
        let removed = strip(fs);
        return Ok(Outcome::Stripped {
            reason: NoPolicy::NoEtcSelinux,
            removed,
        });
    }
    let loaded = {
        let tree: &FileSystem = fs;
        let mut read_tree = |path: &[u8]| read_tree_file(tree, path, read);
        Policy::load_inner(&mut read_tree, order)?
    };
    let reason = match loaded {
        Loaded::Policy(mut policy) => {
            let stats = apply(fs, &mut policy)?;
            return Ok(Outcome::Labelled {
                policy_type: policy.policy_type().to_owned(),
                stats,
            });
        }
        Loaded::NoConfig => NoPolicy::NoConfig,
        Loaded::NoPolicyType => NoPolicy::NoPolicyType,
    };
    let removed = strip(fs);
    Ok(Outcome::Stripped { reason, removed })
}

/// The entry `name` of directory `dir` (linear: the tree need not be sorted).
fn entry(fs: &FileSystem, dir: InodeId, name: &[u8]) -> Option<InodeId> {
    fs.directory(dir)?
        .entries()
        .iter()
        .find(|e| &*e.name == name)
        .map(|e| e.inode)
        .filter(|&id| fs.get(id).is_some())
}

/// Does `/etc/selinux` exist? Error if it or `/etc` is not a directory.
fn has_etc_selinux(fs: &FileSystem) -> Result<bool, SelinuxError> {
    let mut dir = InodeId::ROOT;
    for path in ["/etc", "/etc/selinux"] {
        let name = path.rsplit('/').next().unwrap_or_default();
        let Some(id) = entry(fs, dir, name.as_bytes()) else {
            return Ok(false);
        };
        if fs.directory(id).is_none() {
            return Err(SelinuxError::NotADirectory {
                path: path.to_owned(),
            });
        }
        dir = id;
    }
    Ok(true)
}

/// Reads the regular file at `path` of the tree: intermediate components must
/// be directories (missing → [`SelinuxError::NotFound`]), the file itself may
/// be missing (`None`) but not be a directory or another non-regular file.
fn read_tree_file(
    fs: &FileSystem,
    path: &[u8],
    read: &mut ReadExternal<'_>,
) -> Result<Option<Vec<u8>>, SelinuxError> {
    let components: Vec<Component<'_>> = Path::new(OsStr::from_bytes(path)).components().collect();
    let mut dir = InodeId::ROOT;
    let mut walked = Vec::with_capacity(path.len());
    let mut file = None;
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let name = match component {
            Component::RootDir => continue,
            Component::Normal(name) => name.as_bytes(),
            // check_policy_type keeps these out; refuse rather than guess.
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(SelinuxError::NotFound { path: show(path) });
            }
        };
        walked.push(b'/');
        walked.extend_from_slice(name);
        let Some(id) = entry(fs, dir, name) else {
            if last {
                return Ok(None);
            }
            return Err(SelinuxError::NotFound {
                path: show(&walked),
            });
        };
        if last {
            file = Some(id);
        } else if fs.directory(id).is_some() {
            dir = id;
        } else {
            return Err(SelinuxError::NotADirectory {
                path: show(&walked),
            });
        }
    }
    let Some(id) = file else {
        return Err(SelinuxError::IsADirectory { path: show(path) });
    };
    match &fs.inode(id).kind {
        InodeKind::Regular(RegularFile::Inline(data)) => Ok(Some(data.to_vec())),
        InodeKind::Regular(RegularFile::External(ext)) => {
            if ext.size > MAX_POLICY_FILE {
                return Err(SelinuxError::TooLarge {
                    path: show(path),
                    size: ext.size,
                    limit: MAX_POLICY_FILE,
                });
            }
            read(path, ext)
        }
        InodeKind::Directory(_) => Err(SelinuxError::IsADirectory { path: show(path) }),
        _ => Err(SelinuxError::NotRegular { path: show(path) }),
    }
}
