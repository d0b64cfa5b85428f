//! [`MergeError`]: what can stop a plan or an apply, always naming the tree
//! and the path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::Conflict;

/// Which of the three trees a path was read from or written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The booted image's `/etc` (as shipped).
    Pristine,
    /// The live `/etc` (pristine plus local changes).
    Current,
    /// The new deployment's `/etc` (modified in place).
    New,
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tree::Pristine => "pristine /etc",
            Tree::Current => "current /etc",
            Tree::New => "new /etc",
        })
    }
}

/// A failed plan or apply.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A system call failed on `path` (relative to the tree's root; `.` is
    /// the root itself).
    #[error("{op} {} in the {tree}: {source}", show(path))]
    Io {
        /// The tree `path` belongs to.
        tree: Tree,
        /// The path, relative to the tree's root.
        path: PathBuf,
        /// What was being done (`reading`, `comparing`, `writing`, …).
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A tree holds more entries than the limit.
    #[error("the {tree} has more than {limit} entries; refusing to merge it")]
    TooManyEntries {
        /// The tree.
        tree: Tree,
        /// The limit ([`super::Limits::max_entries`]).
        limit: usize,
    },
    /// A directory is nested deeper than the limit.
    #[error(
        "{} in the {tree} is nested deeper than {limit} directories; refusing to merge it",
        show(path)
    )]
    TooDeep {
        /// The tree.
        tree: Tree,
        /// The first directory found too deep.
        path: PathBuf,
        /// The limit ([`super::Limits::max_depth`]).
        limit: usize,
    },
    /// The plan has conflicts: nothing was changed.
    #[error("merge conflicts found in /etc: {}", list(.0))]
    Conflicts(Vec<Conflict>),
    /// A path is not what the plan found there (the tree changed between
    /// plan and apply).
    #[error(
        "{} in the {tree} changed since the merge was planned: {what}",
        show(path)
    )]
    Changed {
        /// The tree.
        tree: Tree,
        /// The path.
        path: PathBuf,
        /// What was expected.
        what: String,
    },
}

impl MergeError {
    /// An [`MergeError::Io`] builder for `map_err`.
    pub(super) fn io(tree: Tree, path: &Path, op: &'static str) -> impl Fn(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| MergeError::Io {
            tree,
            path: path.clone(),
            op,
            source,
        }
    }
}

/// A relative path for messages: `.` for the root.
pub(super) fn show(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        path.display().to_string()
    }
}

fn list(conflicts: &[Conflict]) -> String {
    let shown: Vec<String> = conflicts.iter().take(10).map(|c| c.to_string()).collect();
    let mut text = shown.join("; ");
    if conflicts.len() > shown.len() {
        text.push_str(&format!("; and {} more", conflicts.len() - shown.len()));
    }
    text
}
