//! The dry run: walks pristine ∪ current (and looks up new at the same
//! paths) and turns the rules of the module table into [`Action`]s and
//! [`Conflict`]s. Directories are opened afresh from the roots for each
//! level, so the descriptors held stay constant whatever the depth.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::node::{self, Node};
use super::{
    Action, ChangeKind, Conflict, Limits, LocalChange, MergeError, MergePlan, MetadataChange, Tree,
};

const TREES: [Tree; 3] = [Tree::Pristine, Tree::Current, Tree::New];

pub(super) fn plan(
    pristine: BorrowedFd<'_>,
    current: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    limits: &Limits,
) -> Result<MergePlan, MergeError> {
    let root = PathBuf::new();
    let dot = OsStr::new(".");
    let read = |i: usize, fd: BorrowedFd<'_>| {
        node::read_node(fd, dot)
            .map_err(MergeError::io(TREES[i], &root, "reading"))?
            .ok_or_else(|| MergeError::Changed {
                tree: TREES[i],
                path: root.clone(),
                what: "the root vanished".to_owned(),
            })
    };
    let (p, c, n) = (read(0, pristine)?, read(1, current)?, read(2, new)?);
    let same = node::same_node(pristine, &p, current, &c, dot).map_err(MergeError::io(
        Tree::Current,
        &root,
        "comparing",
    ))?;
    let mut planner = Planner {
        roots: [pristine, current, new],
        limits,
        counts: [0; 2],
        quiet: 0,
    };
    let mut out = Out::default();
    if !same {
        out.record(&planner, &root, ChangeKind::Modified);
    }
    planner.both_dirs(root, 0, &p, &c, Some(&n), same, &mut out)?;
    Ok(MergePlan {
        actions: out.actions,
        conflicts: out.conflicts,
        local_changes: out.changes,
    })
}

struct Planner<'a> {
    /// Pristine, current, new.
    roots: [BorrowedFd<'a>; 3],
    limits: &'a Limits,
    /// Entries read from pristine and current.
    counts: [usize; 2],
    /// Inside a directory added locally: its entries are not listed as
    /// local changes (the directory is).
    quiet: usize,
}

#[derive(Default)]
struct Out {
    actions: Vec<Action>,
    conflicts: Vec<Conflict>,
    changes: Vec<LocalChange>,
}

impl Out {
    fn record(&mut self, planner: &Planner<'_>, path: &Path, kind: ChangeKind) {
        if planner.quiet == 0 {
            self.changes.push(LocalChange {
                path: path.to_path_buf(),
                kind,
            });
        }
    }
}

/// One name of a directory, as the three trees have it.
struct Child {
    name: OsString,
    p: Option<Node>,
    c: Option<Node>,
    n: Option<Node>,
    /// Current and pristine are the same entry (or both absent).
    same: bool,
}

impl Planner<'_> {
    /// Plans every name of pristine ∪ current in the directory `rel`;
    /// `has` says which trees have a directory there.
    fn dir(
        &mut self,
        rel: &Path,
        depth: usize,
        has: [bool; 3],
        out: &mut Out,
    ) -> Result<(), MergeError> {
        if depth > self.limits.max_depth {
            let tree = TREES[has.iter().position(|&h| h).unwrap_or(1)];
            return Err(MergeError::TooDeep {
                tree,
                path: rel.to_path_buf(),
                limit: self.limits.max_depth,
            });
        }
        let mut fds: [Option<OwnedFd>; 3] = [None, None, None];
        for (i, fd) in fds.iter_mut().enumerate() {
            if has[i] {
                *fd = Some(
                    node::open_dir(self.roots[i], rel)
                        .map_err(MergeError::io(TREES[i], rel, "opening"))?,
                );
            }
        }
        let mut names: Vec<OsString> = Vec::new();
        for i in 0..2 {
            if let Some(fd) = &fds[i] {
                let listed =
                    node::list_dir(fd.as_fd()).map_err(MergeError::io(TREES[i], rel, "listing"))?;
                self.count(i, listed.len())?;
                names.extend(listed);
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names.dedup();
        if depth == 0 {
            names.retain(|n| n.as_bytes() != b".updated");
        }
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            let path = rel.join(&name);
            let mut nodes: [Option<Node>; 3] = [None, None, None];
            for (i, slot) in nodes.iter_mut().enumerate() {
                if let Some(fd) = &fds[i] {
                    *slot = node::read_node(fd.as_fd(), &name)
                        .map_err(MergeError::io(TREES[i], &path, "reading"))?;
                }
            }
            let [p, c, n] = nodes;
            let same = match (&p, &c, &fds[0], &fds[1]) {
                (Some(pn), Some(cn), Some(pfd), Some(cfd)) => {
                    node::same_node(pfd.as_fd(), pn, cfd.as_fd(), cn, &name)
                        .map_err(MergeError::io(Tree::Current, &path, "comparing"))?
                }
                (None, None, _, _) => true,
                _ => false,
            };
            children.push(Child {
                name,
                p,
                c,
                n,
                same,
            });
        }
        drop(fds);
        for child in children {
            let path = rel.join(&child.name);
            self.entry(path, depth + 1, child, out)?;
        }
        Ok(())
    }

    fn count(&mut self, tree: usize, more: usize) -> Result<(), MergeError> {
        self.counts[tree] += more;
        if self.counts[tree] > self.limits.max_entries {
            return Err(MergeError::TooManyEntries {
                tree: TREES[tree],
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// The rules of the module table for one path (`depth` is its own).
    fn entry(
        &mut self,
        path: PathBuf,
        depth: usize,
        child: Child,
        out: &mut Out,
    ) -> Result<(), MergeError> {
        let Child { p, c, n, same, .. } = child;
        let replaces = n.as_ref().map(|n| n.kind);
        match (p, c) {
            (None, None) => {}
            // Row 2: removed locally.
            (Some(_), None) => {
                out.record(self, &path, ChangeKind::Removed);
                if let Some(kind) = replaces {
                    out.actions.push(Action::Remove { path, kind });
                }
            }
            // Row 1, or a directory whose entries decide.
            (Some(p), Some(c)) if same => {
                if c.is_dir() {
                    self.both_dirs(path, depth, &p, &c, n.as_ref(), true, out)?;
                }
            }
            // Row 3: a changed non-directory wins.
            (p, Some(c)) if !c.is_dir() => {
                let kind = match &p {
                    None => ChangeKind::Added,
                    Some(p) if p.kind != c.kind => ChangeKind::TypeChanged,
                    Some(_) => ChangeKind::Modified,
                };
                out.record(self, &path, kind);
                out.actions.push(Action::Copy {
                    path,
                    kind: c.kind,
                    replaces,
                });
            }
            // Rows 4–6 with the directory's own metadata changed.
            (Some(p), Some(c)) if p.is_dir() => {
                out.record(self, &path, ChangeKind::Modified);
                self.both_dirs(path, depth, &p, &c, n.as_ref(), false, out)?;
            }
            // Rows 7–8: a directory new locally.
            (p, Some(c)) => {
                let kind = if p.is_none() {
                    ChangeKind::Added
                } else {
                    ChangeKind::TypeChanged
                };
                out.record(self, &path, kind);
                match n {
                    Some(n) if n.is_dir() => {
                        let change = metadata_change(None, &c, &n);
                        if !change.is_empty() {
                            out.actions.push(Action::SetDirMetadata {
                                path: path.clone(),
                                change,
                            });
                        }
                        self.quiet += 1;
                        let done = self.dir(&path, depth, [false, true, true], out);
                        self.quiet -= 1;
                        done?;
                    }
                    _ => {
                        self.count_tree(&path, depth)?;
                        out.actions.push(Action::CopyTree { path, replaces });
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows 4–6: pristine and current both have a directory at `path`
    /// (`same`: with the same metadata).
    #[allow(clippy::too_many_arguments)]
    fn both_dirs(
        &mut self,
        path: PathBuf,
        depth: usize,
        p: &Node,
        c: &Node,
        n: Option<&Node>,
        same: bool,
        out: &mut Out,
    ) -> Result<(), MergeError> {
        match n {
            Some(n) if n.is_dir() => {
                if !same {
                    let change = metadata_change(Some(p), c, n);
                    if !change.is_empty() {
                        out.actions.push(Action::SetDirMetadata {
                            path: path.clone(),
                            change,
                        });
                    }
                }
                self.dir(&path, depth, [true, true, true], out)
            }
            None => {
                let mut sub = Out::default();
                self.dir(&path, depth, [true, true, false], &mut sub)?;
                if !same || !sub.actions.is_empty() {
                    out.actions.push(Action::CreateDir { path });
                }
                out.actions.append(&mut sub.actions);
                out.changes.append(&mut sub.changes);
                Ok(())
            }
            Some(n) => {
                let mut sub = Out::default();
                self.dir(&path, depth, [true, true, false], &mut sub)?;
                let mut local: Vec<PathBuf> = Vec::new();
                if !same {
                    local.push(path.clone());
                }
                local.extend(sub.changes.iter().map(|c| c.path.clone()));
                if !local.is_empty() {
                    out.conflicts.push(Conflict {
                        path,
                        new_kind: n.kind,
                        local_changes: local,
                    });
                }
                out.changes.append(&mut sub.changes);
                Ok(())
            }
        }
    }

    /// Counts the entries of current's directory `rel` (to be copied
    /// whole), enforcing the limits before anything is written.
    fn count_tree(&mut self, rel: &Path, depth: usize) -> Result<(), MergeError> {
        if depth > self.limits.max_depth {
            return Err(MergeError::TooDeep {
                tree: Tree::Current,
                path: rel.to_path_buf(),
                limit: self.limits.max_depth,
            });
        }
        let fd = node::open_dir(self.roots[1], rel).map_err(MergeError::io(
            Tree::Current,
            rel,
            "opening",
        ))?;
        let entries = cfs_core::beneath::read_dir(fd.as_fd()).map_err(MergeError::io(
            Tree::Current,
            rel,
            "listing",
        ))?;
        drop(fd);
        self.count(1, entries.len())?;
        for (name, ft) in entries {
            if ft == rustix::fs::FileType::Directory {
                self.count_tree(&rel.join(name), depth + 1)?;
            }
        }
        Ok(())
    }
}

/// The metadata changes current's directory `c` makes to new's `n`:
/// with pristine's `p`, only the attributes changed locally (so a new
/// label or mode from the image survives a local change of another
/// attribute); without it, every attribute of `c`.
fn metadata_change(p: Option<&Node>, c: &Node, n: &Node) -> MetadataChange {
    fn pick<T: PartialEq + Copy>(local: bool, c: T, n: T) -> Option<T> {
        (local && c != n).then_some(c)
    }
    let changed = |f: fn(&Node) -> u32| p.is_none_or(|p| f(p) != f(c));
    let set_xattrs = c
        .xattrs
        .iter()
        .filter(|(k, v)| {
            p.is_none_or(|p| p.xattrs.get(*k) != Some(v)) && n.xattrs.get(*k) != Some(v)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove_xattrs = n
        .xattrs
        .keys()
        .filter(|k| !c.xattrs.contains_key(*k) && p.is_none_or(|p| p.xattrs.contains_key(*k)))
        .cloned()
        .collect();
    MetadataChange {
        mode: pick(changed(|x| x.mode), c.mode, n.mode),
        uid: pick(changed(|x| x.uid), c.uid, n.uid),
        gid: pick(changed(|x| x.gid), c.gid, n.gid),
        set_xattrs,
        remove_xattrs,
    }
}
