//! Applying [`LayerEntry`]s to a tree (composefs-rs `process_entry`).

use std::collections::HashMap;

use cfs_core::tree::{
    DirEntry, Directory, ExternalFile, FileSystem, Inode, InodeId, InodeKind, RegularFile, Stat,
    Xattrs,
};

use super::{ApplyError, Content, EntryKind, LayerEntry, MergeError};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Applies layer entries, in order, to a tree that starts as an empty root
/// with uninitialised (all-zero) metadata.
///
/// Replaced and whited-out inodes stay in the arena until [`LayerMerger::finish`]
/// drops everything unreachable.
#[derive(Debug)]
pub struct LayerMerger {
    fs: FileSystem,
}

impl Default for LayerMerger {
    fn default() -> Self {
        Self::new()
    }
}

/// A normalised entry path: its components (no `.`, no empty ones).
struct NormPath<'a> {
    parts: Vec<&'a [u8]>,
}

impl<'a> NormPath<'a> {
    fn new(path: &'a [u8]) -> Self {
        let path = path.strip_prefix(b"/").unwrap_or(path);
        let parts = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        NormPath { parts }
    }

    /// The absolute path of the first `n` components, for messages.
    fn display(&self, n: usize) -> String {
        let mut s = String::new();
        for p in &self.parts[..n] {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(p));
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    /// A root entry: no file name (`/`, `./`, or ending in `..`).
    fn is_root(&self) -> bool {
        self.parts.last().is_none_or(|p| *p == b"..")
    }
}

impl LayerMerger {
    /// An empty tree.
    pub fn new() -> Self {
        LayerMerger {
            fs: FileSystem::new(Stat::default()),
        }
    }

    /// The tree built so far (may hold unreachable inodes).
    pub fn filesystem(&self) -> &FileSystem {
        &self.fs
    }

    /// Applies one entry.
    pub fn apply(&mut self, entry: LayerEntry) -> Result<(), MergeError> {
        let path = NormPath::new(&entry.path);
        let err = |reason| MergeError::Apply {
            path: path.display(path.parts.len()),
            reason,
        };
        if path.is_root() {
            if entry.kind != EntryKind::Directory {
                return Err(err(ApplyError::RootNotDirectory(
                    path.display(path.parts.len()),
                )));
            }
            self.fs.inode_mut(InodeId::ROOT).stat = stat_of(&entry);
            return Ok(());
        }
        // The inode (or the hard link target) is resolved before the parent.
        let (inode, alias) = match &entry.kind {
            EntryKind::Hardlink(target) => (self.link_target(target).map_err(err)?, true),
            _ => (None, false),
        };
        let n = path.parts.len();
        let name = path.parts[n - 1];
        let whiteout = name == OPAQUE_MARKER || name.starts_with(WHITEOUT_PREFIX);
        let parent = match self.resolve_dir(&path, n - 1) {
            Ok(p) => p,
            // A whiteout below something that is no longer a directory (umoci
            // writes `x/.wh.y` after replacing the directory `x` by a file)
            // has nothing to hide: ignore it, as `umoci unpack` does.
            // composefs-rs 0.9 rejects such layers (docs/spec-deviations.md).
            Err(ApplyError::NotFound(_) | ApplyError::NotADirectory(_)) if whiteout => {
                return Ok(());
            }
            Err(e) => return Err(err(e)),
        };
        let dir = self.dir_mut(parent);
        if name == OPAQUE_MARKER {
            dir.entries_mut().clear();
            return Ok(());
        }
        if let Some(victim) = name.strip_prefix(WHITEOUT_PREFIX) {
            dir.remove(victim);
            return Ok(());
        }
        let existing = dir.get(name).map(|e| e.inode);
        if entry.kind == EntryKind::Directory
            && let Some(id) = existing
            && let InodeKind::Directory(_) = self.fs.inode(id).kind
        {
            self.fs.inode_mut(id).stat = stat_of(&entry);
            return Ok(());
        }
        let id = match inode {
            Some(id) => id,
            None => {
                let stat = stat_of(&entry);
                let kind = kind_of(entry.kind);
                self.fs.push_inode(Inode::new(stat, kind))
            }
        };
        let dir = self.dir_mut(parent);
        dir.remove(name);
        dir.insert(DirEntry {
            name: name.into(),
            inode: id,
            alias,
        })
        .expect("name was just removed");
        Ok(())
    }

    /// Drops unreachable inodes, sets link counts to the number of names and
    /// makes every hard-linked inode's first name in depth-first order its
    /// primary one. The root keeps its metadata (all zero if no layer had a
    /// root entry).
    pub fn finish(self) -> Result<FileSystem, MergeError> {
        let mut fs = compact(self.fs);
        let mut names: HashMap<InodeId, u32> = HashMap::new();
        let mut any_alias = false;
        for inode in fs.inodes() {
            if let Some(d) = inode.as_directory() {
                for e in d.entries() {
                    any_alias |= e.alias;
                    *names.entry(e.inode).or_default() += 1;
                }
            }
        }
        for (id, n) in names {
            let inode = fs.inode_mut(id);
            if inode.as_directory().is_none() {
                inode.nlink = n;
            }
        }
        if any_alias {
            fs.normalize_hardlink_primaries();
        }
        Ok(fs)
    }

    fn dir_mut(&mut self, id: InodeId) -> &mut Directory {
        self.fs.directory_mut(id).expect("resolved to a directory")
    }

    /// Walks the first `n` components, each of which must be a directory
    /// (symlinks are never followed).
    fn resolve_dir(&self, path: &NormPath<'_>, n: usize) -> Result<InodeId, ApplyError> {
        let mut cur = InodeId::ROOT;
        for (i, part) in path.parts[..n].iter().enumerate() {
            if *part == b".." {
                return Err(ApplyError::InvalidFilename(path.display(i + 1)));
            }
            let dir = self.fs.directory(cur).expect("cur is a directory");
            let lossy = || String::from_utf8_lossy(part).into_owned();
            let entry = dir.get(part).ok_or_else(|| ApplyError::NotFound(lossy()))?;
            cur = entry.inode;
            if self.fs.directory(cur).is_none() {
                return Err(ApplyError::NotADirectory(lossy()));
            }
        }
        Ok(cur)
    }

    /// The inode a hard link target names: it must exist and not be a directory.
    fn link_target(&self, target: &[u8]) -> Result<Option<InodeId>, ApplyError> {
        let path = NormPath::new(target);
        if path.is_root() {
            return Err(ApplyError::IsADirectory(path.display(path.parts.len())));
        }
        let n = path.parts.len();
        let parent = self.resolve_dir(&path, n - 1)?;
        let name = path.parts[n - 1];
        let lossy = || String::from_utf8_lossy(name).into_owned();
        let dir = self.fs.directory(parent).expect("resolved to a directory");
        let entry = dir.get(name).ok_or_else(|| ApplyError::NotFound(lossy()))?;
        if self.fs.directory(entry.inode).is_some() {
            return Err(ApplyError::IsADirectory(lossy()));
        }
        Ok(Some(entry.inode))
    }
}

impl LayerEntry {
    /// The inode this entry describes on its own (`nlink` 1); `None` for a
    /// hard link, which has no inode of its own.
    pub fn to_inode(&self) -> Option<Inode> {
        match self.kind {
            EntryKind::Hardlink(_) => None,
            _ => Some(Inode::new(stat_of(self), kind_of(self.kind.clone()))),
        }
    }
}

fn stat_of(entry: &LayerEntry) -> Stat {
    let mut xattrs = Xattrs::new();
    for (name, value) in &entry.xattrs {
        xattrs.set(name, value);
    }
    xattrs.sort();
    Stat {
        mode: (entry.mode & 0o7777) as u16,
        uid: entry.uid,
        gid: entry.gid,
        mtime: entry.mtime,
        xattrs,
    }
}

fn kind_of(kind: EntryKind) -> InodeKind {
    match kind {
        EntryKind::Regular { size, content } => InodeKind::Regular(match content {
            Content::Inline(data) => RegularFile::Inline(data.into()),
            Content::External(digest) => RegularFile::External(ExternalFile {
                size,
                payload: Some(digest.object_path().into_bytes().into()),
                digest: Some(digest),
            }),
        }),
        EntryKind::Directory => InodeKind::Directory(Directory::new()),
        EntryKind::Symlink(target) => InodeKind::Symlink(target.into()),
        EntryKind::CharDevice(rdev) => InodeKind::CharDevice(rdev),
        EntryKind::BlockDevice(rdev) => InodeKind::BlockDevice(rdev),
        EntryKind::Fifo => InodeKind::Fifo,
        EntryKind::Hardlink(_) => unreachable!("hard links share their target's inode"),
    }
}

/// A copy of `fs` holding only the inodes reachable from the root, in
/// breadth-first order.
fn compact(mut fs: FileSystem) -> FileSystem {
    let mut new_id: Vec<Option<InodeId>> = vec![None; fs.len()];
    new_id[0] = Some(InodeId::ROOT);
    let mut order = vec![InodeId::ROOT];
    let mut i = 0;
    while i < order.len() {
        if let Some(d) = fs.directory(order[i]) {
            for e in d.entries() {
                if new_id[e.inode.index()].is_none() {
                    new_id[e.inode.index()] = Some(InodeId(order.len() as u32));
                    order.push(e.inode);
                }
            }
        }
        i += 1;
    }
    let take = |fs: &mut FileSystem, id: InodeId| {
        let mut inode = std::mem::replace(
            fs.inode_mut(id),
            Inode::new(Stat::default(), InodeKind::Fifo),
        );
        if let InodeKind::Directory(d) = &mut inode.kind {
            for e in d.entries_mut() {
                e.inode = new_id[e.inode.index()].expect("reachable");
            }
        }
        inode
    };
    let root = take(&mut fs, InodeId::ROOT);
    let mut out = FileSystem::new(Stat::default());
    *out.inode_mut(InodeId::ROOT) = root;
    for &id in &order[1..] {
        let inode = take(&mut fs, id);
        out.push_inode(inode);
    }
    out
}
