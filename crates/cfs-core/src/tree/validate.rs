//! Structural invariants of a [`FileSystem`], checked before an image is written.

use super::{FileSystem, InodeId, InodeKind};

/// Maximum length of one name component (EROFS and Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = crate::limits::MAX_NAME_LEN;

/// A violated tree invariant. Paths are absolute, as far as they can be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// Inode 0 is not a directory.
    #[error("the root inode is not a directory")]
    RootNotDirectory,
    /// An entry names an inode id outside the arena.
    #[error("{path}: entry refers to inode {inode}, but the tree has only {len} inodes")]
    DanglingEntry {
        /// Path of the entry.
        path: String,
        /// The bad id.
        inode: u32,
        /// Arena size.
        len: usize,
    },
    /// An invalid name: empty, too long, `.`/`..`, or containing `/` or NUL.
    #[error("{path}: invalid name (must be 1..=255 bytes without '/' or NUL, not '.' or '..')")]
    BadName {
        /// Path of the parent directory plus the name.
        path: String,
    },
    /// Directory entries not strictly increasing by name.
    #[error("{path}: directory entries are not sorted or not unique at {name:?}")]
    Unsorted {
        /// Directory path.
        path: String,
        /// The first out-of-order name.
        name: String,
    },
    /// An inode reachable by more than one primary (non-alias) name, or the root
    /// named by an entry.
    #[error("{path}: inode already has a primary name (hard links must be marked as aliases)")]
    MultiplePrimary {
        /// Path of the second primary name.
        path: String,
    },
    /// A hard link (alias) whose inode has no primary name in the tree.
    #[error("{path}: hard link target is not in the tree")]
    AliasWithoutTarget {
        /// Path of the alias.
        path: String,
    },
    /// A hard link to a directory.
    #[error("{path}: directories can't be hard-linked")]
    DirectoryHardlink {
        /// Path of the alias.
        path: String,
    },
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

impl FileSystem {
    /// Checks the invariants every consumer relies on:
    /// - the root is a directory and no entry names it;
    /// - names are valid and each directory's entries are strictly sorted;
    /// - every reachable non-root inode has exactly one primary name, aliases
    ///   point to inodes that have one, and no alias names a directory.
    ///
    /// Iterative, so arbitrarily deep trees do not overflow the stack.
    pub fn validate(&self) -> Result<(), TreeError> {
        if !matches!(self.inode(self.root()).kind, InodeKind::Directory(_)) {
            return Err(TreeError::RootNotDirectory);
        }
        let len = self.len();
        let mut primary = vec![false; len];
        primary[0] = true;
        let mut aliases: Vec<(Vec<u8>, InodeId)> = Vec::new();
        // Depth-first with an explicit stack of (directory, path); a directory is
        // entered only through its first primary name, so cycles cannot loop.
        let mut stack: Vec<(InodeId, Vec<u8>)> = vec![(self.root(), Vec::new())];
        while let Some((id, dir_path)) = stack.pop() {
            let Some(dir) = self.directory(id) else {
                continue;
            };
            let mut prev: Option<&[u8]> = None;
            for entry in dir.entries() {
                let name = &*entry.name;
                // Paths are built only where they are kept or reported.
                let path = || {
                    let mut path = Vec::with_capacity(dir_path.len() + 1 + name.len());
                    path.extend_from_slice(&dir_path);
                    path.push(b'/');
                    path.extend_from_slice(name);
                    path
                };
                if name.is_empty()
                    || name.len() > MAX_NAME_LEN
                    || name == b"."
                    || name == b".."
                    || name.iter().any(|&b| b == b'/' || b == 0)
                {
                    return Err(TreeError::BadName {
                        path: show(&path()),
                    });
                }
                if prev.is_some_and(|p| p >= name) {
                    return Err(TreeError::Unsorted {
                        path: show(if dir_path.is_empty() { b"/" } else { &dir_path }),
                        name: show(name),
                    });
                }
                prev = Some(name);
                if entry.inode.index() >= len {
                    return Err(TreeError::DanglingEntry {
                        path: show(&path()),
                        inode: entry.inode.0,
                        len,
                    });
                }
                if entry.alias {
                    aliases.push((path(), entry.inode));
                    continue;
                }
                let seen = &mut primary[entry.inode.index()];
                if *seen {
                    return Err(TreeError::MultiplePrimary {
                        path: show(&path()),
                    });
                }
                *seen = true;
                if self.directory(entry.inode).is_some() {
                    stack.push((entry.inode, path()));
                }
            }
        }
        for (path, id) in aliases {
            if matches!(self.inode(id).kind, InodeKind::Directory(_)) {
                return Err(TreeError::DirectoryHardlink { path: show(&path) });
            }
            if !primary[id.index()] {
                return Err(TreeError::AliasWithoutTarget { path: show(&path) });
            }
        }
        Ok(())
    }
}
