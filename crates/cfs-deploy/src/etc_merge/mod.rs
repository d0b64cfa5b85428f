//! The three-way `/etc` merge of an upgrade (`../shared/spec/boot-deploy.md`
//! §6.2 step 5, §6.3 step 3, invariant 10).
//!
//! When a staged deployment is finalized, its `/etc` is computed from three
//! trees: **pristine** (the booted image's `/etc`, as shipped), **current**
//! (the live `/etc`: pristine plus the admin's changes) and **new** (a
//! writable copy of the new image's `/etc`, modified in place). Every local
//! change (current against pristine) is carried into new; everything the
//! admin did not touch takes the new image's version.
//!
//! [`plan`] is a dry run touching nothing: the actions and the conflicts
//! (used before staging, so that conflicts stop an upgrade early).
//! [`apply`] performs a conflict-free plan on new; [`merge`] does both.
//!
//! # What "changed locally" means
//!
//! Two entries are *the same* when they have the same type, the same
//! permission bits (except symlinks), owner, group, extended attributes
//! (all of them: `security.selinux`, `security.capability`, ACLs, `user.*`,
//! …), and the same bytes (regular files), target (symlinks) or device
//! number (devices). Times are never compared. A directory is the same when
//! its own metadata is; its entries are compared one by one. A path is
//! *unchanged* when current and pristine are the same there or both lack
//! it; *added* or *modified* when current has it and it differs; *removed*
//! when pristine has it and current does not.
//!
//! # The rule for every combination
//!
//! `F` is any non-directory (regular file, symlink, FIFO, socket, device),
//! `D` a directory, `—` absent, `*` anything. Rows are tried in order.
//!
//! | # | pristine | current | new | result in new |
//! |---|----------|---------|-----|---------------|
//! | 1 | `*` | same as pristine (`F` or `—`) | `*` | new's entry, untouched (its changes, removal, type change, additions) |
//! | 2 | `F`/`D` | `—` | `*` | removed (a whole subtree; a symlink itself, never its target) |
//! | 3 | `*` | `F`, changed | `*` | current's entry replaces new's, whatever new has (a directory of new's goes) |
//! | 4 | `D` | `D` | `D` | merged: the metadata attributes changed locally (mode, owner, group, each xattr) are applied to new's directory; entries by these rules |
//! | 5 | `D` | `D` | `—` | the new image deleted it: recreated with current's metadata, holding only the locally added/modified entries (with their own parents); nothing if there are none and its metadata is unchanged (bootc #1924) |
//! | 6 | `D` | `D` | `F` | unchanged subtree: new's entry. Any local change inside (or to the directory's metadata): **conflict** (composefs-rs #335) |
//! | 7 | `—`/`F` | `D` | `D` | merged: current's metadata; every entry of current's directory is a local addition and replaces new's; new's other entries stay |
//! | 8 | `—`/`F` | `D` | `—`/`F` | current's directory copied whole, replacing new's entry |
//!
//! Rows 4–6 apply whether or not the directory's own metadata changed
//! locally: with nothing changed anywhere below it, row 4 does nothing,
//! row 5 leaves it absent and row 6 keeps new's entry, exactly as row 1.
//! The roots are row 4.
//!
//! The principle: local edits win over the new image wherever they can be
//! kept (rows 3, 5, 7, 8 keep them even against an upstream type change).
//! Row 6 is the one combination where keeping them would need a directory
//! where the new image put a file or symlink that the admin never touched
//! (e.g. `/etc/ssl/certs` turned into a symlink while the admin added a
//! certificate to it): it is a [`Conflict`] naming the directory and the
//! local changes inside, and [`apply`] refuses a plan with conflicts.
//!
//! # Details
//!
//! - Symlinks are never followed in any tree: directories are opened one
//!   component at a time with `O_NOFOLLOW`, entries are examined with
//!   `fstatat(AT_SYMLINK_NOFOLLOW)`, links are copied as links.
//! - FIFOs, sockets and devices are compared by type, device number and
//!   metadata and re-created as such (`mknodat`).
//! - Hard links are not preserved: each name is copied as an independent
//!   file (the new image's `/etc` has none that matter, and a link between a
//!   locally changed and an unchanged name cannot be kept anyway).
//! - A copied entry keeps current's owner, group, mode, xattrs (exactly its
//!   set: a default ACL or automatic label the copy was born with is
//!   removed) and access/modification times; it is written under a
//!   temporary name in the same directory and renamed into place
//!   (`RENAME_EXCHANGE` where a directory is involved). Written files are
//!   fsynced before the rename, every touched directory at the end.
//! - `.updated` at the top is ignored by the plan and removed from new by
//!   [`apply`], so `ConditionNeedsUpdate=` units run on the first boot.
//! - Bounded: more than [`MAX_ENTRIES`] entries in pristine or current, or
//!   a directory deeper than [`MAX_DEPTH`], is refused ([`Limits`]).
//! - Extended attributes of entries that cannot be opened safely
//!   (symlinks, sockets, devices) are read and written through
//!   `/proc/self/fd/<dir>/<name>` with the `l*xattr` calls, so `/proc` must
//!   be mounted.
//! - The plan records what to do, not the bytes: [`apply`] copies from
//!   current as it is then (at finalize, plan and apply run back to back).
//!   Every action is idempotent, so an interrupted apply can be re-run.

mod apply;
mod error;
mod node;
mod planner;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use error::{MergeError, Tree};

/// Default for [`Limits::max_entries`].
pub const MAX_ENTRIES: usize = 1_000_000;
/// Default for [`Limits::max_depth`].
pub const MAX_DEPTH: usize = 256;

/// Bounds on the trees a merge accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries read from one tree (pristine or current).
    pub max_entries: usize,
    /// Deepest directory (the root is depth 0).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: MAX_ENTRIES,
            max_depth: MAX_DEPTH,
        }
    }
}

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "a regular file",
            EntryKind::Dir => "a directory",
            EntryKind::Symlink => "a symlink",
            EntryKind::Fifo => "a FIFO",
            EntryKind::Socket => "a socket",
            EntryKind::CharDevice => "a character device",
            EntryKind::BlockDevice => "a block device",
        })
    }
}

/// Metadata changes to apply to a directory of new (each `None`/empty field
/// is left as new has it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChange {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// Extended attributes to set.
    pub set_xattrs: Vec<(OsString, Vec<u8>)>,
    /// Extended attributes to remove.
    pub remove_xattrs: Vec<OsString>,
}

impl MetadataChange {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.set_xattrs.is_empty()
            && self.remove_xattrs.is_empty()
    }
}

/// One step of a merge, on a path relative to the `/etc` roots. Actions
/// are ordered: a directory is created before its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Copy current's non-directory entry over new's (row 3).
    Copy {
        /// The path.
        path: PathBuf,
        /// Current's entry type.
        kind: EntryKind,
        /// What new has there now (a directory is removed whole).
        replaces: Option<EntryKind>,
    },
    /// Copy current's directory tree over new's entry (row 8).
    CopyTree {
        /// The path.
        path: PathBuf,
        /// What new has there now.
        replaces: Option<EntryKind>,
    },
    /// Create a directory that new lacks, with current's metadata; its
    /// entries follow as separate actions (row 5).
    CreateDir {
        /// The path.
        path: PathBuf,
    },
    /// Apply local metadata changes to new's directory (rows 4, 7).
    SetDirMetadata {
        /// The path.
        path: PathBuf,
        /// The changes.
        change: MetadataChange,
    },
    /// Remove new's entry (a directory whole) (row 2).
    Remove {
        /// The path.
        path: PathBuf,
        /// What new has there.
        kind: EntryKind,
    },
}

impl Action {
    /// The path the action works on.
    pub fn path(&self) -> &Path {
        match self {
            Action::Copy { path, .. }
            | Action::CopyTree { path, .. }
            | Action::CreateDir { path }
            | Action::SetDirMetadata { path, .. }
            | Action::Remove { path, .. } => path,
        }
    }
}

/// How a path differs between pristine and current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in current.
    Added,
    /// Same type, different content, target or metadata.
    Modified,
    /// A different type.
    TypeChanged,
    /// Only in pristine.
    Removed,
}

/// A path changed locally (a directory added or removed whole is listed
/// once, not its entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalChange {
    /// The path.
    pub path: PathBuf,
    /// How it changed.
    pub kind: ChangeKind,
}

/// A directory the new image turned into a non-directory while the admin
/// changed it or something inside it (row 6): merging would lose either the
/// local changes or the new image's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The directory.
    pub path: PathBuf,
    /// What the new image has there instead.
    pub new_kind: EntryKind,
    /// The local changes at and below `path`.
    pub local_changes: Vec<PathBuf>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is a directory with local changes (",
            error::show(&self.path)
        )?;
        for (i, path) in self.local_changes.iter().take(5).enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{}", error::show(path))?;
        }
        if self.local_changes.len() > 5 {
            write!(f, ", and {} more", self.local_changes.len() - 5)?;
        }
        write!(f, ") but the new image has {} there", self.new_kind)
    }
}

/// The result of [`plan`]: what [`apply`] would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergePlan {
    actions: Vec<Action>,
    conflicts: Vec<Conflict>,
    local_changes: Vec<LocalChange>,
}

impl MergePlan {
    /// The actions, in the order they are applied.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The conflicts; [`apply`] refuses a plan that has any.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// Every path changed locally (current against pristine).
    pub fn local_changes(&self) -> &[LocalChange] {
        &self.local_changes
    }

    /// Whether the plan can be applied.
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Non-directory entries copied from current.
    pub copied: usize,
    /// Directory trees copied from current.
    pub trees_copied: usize,
    /// Directories created (row 5).
    pub dirs_created: usize,
    /// Directories whose metadata was changed.
    pub metadata_updated: usize,
    /// Entries removed from new.
    pub removed: usize,
    /// Whether `.updated` was removed from new.
    pub updated_stamp_removed: bool,
}

/// Plans the merge of the three trees (open directories) with the default
/// [`Limits`], touching nothing.
pub fn plan(
    pristine: impl AsFd,
    current: impl AsFd,
    new: impl AsFd,
) -> Result<MergePlan, MergeError> {
    plan_with_limits(pristine, current, new, &Limits::default())
}

/// [`plan`] with explicit limits.
pub fn plan_with_limits(
    pristine: impl AsFd,
    current: impl AsFd,
    new: impl AsFd,
    limits: &Limits,
) -> Result<MergePlan, MergeError> {
    planner::plan(pristine.as_fd(), current.as_fd(), new.as_fd(), limits)
}

/// Performs `plan` on `new`, copying from `current`; then removes
/// `new/.updated`. Refuses a plan with conflicts (changing nothing).
pub fn apply(
    plan: &MergePlan,
    current: impl AsFd,
    new: impl AsFd,
) -> Result<MergeReport, MergeError> {
    apply::apply(plan, current.as_fd(), new.as_fd(), &Limits::default())
}

/// [`plan`] then [`apply`].
pub fn merge(
    pristine: impl AsFd,
    current: impl AsFd,
    new: impl AsFd,
) -> Result<MergeReport, MergeError> {
    let plan = plan(pristine, current.as_fd(), new.as_fd())?;
    apply(&plan, current, new)
}

/// Opens the directory at `path` (as the caller names it, e.g. the mount of
/// the booted image's `/etc`) for [`plan`] and [`apply`].
pub fn open_tree(path: &Path, tree: Tree) -> Result<OwnedFd, MergeError> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| MergeError::Io {
        tree,
        path: path.to_path_buf(),
        op: "opening",
        source: e.into(),
    })
}
