//! Applying a [`Policy`] to a tree ([`apply`]) and removing every label
//! ([`strip`]).
//!
//! The walk is composefs-rs 0.9.4's `relabel_dir`, depth first, children in
//! name order, with an explicit stack instead of recursion:
//!
//! * The root is looked up as `/`, type `d`.
//! * A child's path is its parent's path with the name pushed the way
//!   `std::path::PathBuf::push` and `pop` do it (an alias target ending in
//!   `/` does not get a second `/`; after the first child, the parent's path
//!   has lost such a trailing `/` or `/.`). composefs-rs builds paths with
//!   `PathBuf`, so this walk does too, byte for byte.
//! * If the whole path is an alias (`file_contexts.subs*`), the original is
//!   looked up instead and, for a directory, becomes the path its children
//!   are named from. ([`LookupOrder::Libselinux`](super::LookupOrder)
//!   substitutes prefixes in the lookup instead.)
//! * A directory is labelled, then its children; it is entered only through
//!   its primary name and only once (a valid tree has no other way in).
//! * A non-directory reached for the first time gets its label. Reached
//!   again (a hard link), it keeps being shared if the label is the one it
//!   got first; otherwise that name gets its own copy of the inode (new
//!   [`InodeId`], `nlink` 1, the original's `nlink` one less) carrying the
//!   new label. Every such name gets its own copy, as in composefs-rs (which
//!   compares with the first label only). If the name that moved to a copy
//!   was the inode's primary name, the first name reached becomes primary.
//! * No label (no spec matches, or `<<none>>`) removes `security.selinux`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cfs_core::tree::{Directory, FileSystem, FileType, InodeId, Stat};

use super::XATTR_NAME;
use super::error::SelinuxError;
use super::policy::Policy;

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelStats {
    /// Names (and the root) that got a label.
    pub labelled: usize,
    /// Names (and the root) left without one.
    pub unlabelled: usize,
    /// Hard links turned into separate inodes because their labels differ.
    pub hardlinks_broken: usize,
}

/// A directory being walked.
struct Frame {
    dir: InodeId,
    /// Entry indices in name order.
    order: Vec<usize>,
    next: usize,
    path: PathBuf,
}

impl Frame {
    fn new(fs: &FileSystem, dir: InodeId, path: PathBuf) -> Frame {
        let order = fs.directory(dir).map(name_order).unwrap_or_default();
        Frame {
            dir,
            order,
            next: 0,
            path,
        }
    }
}

/// Entry indices sorted by name (identity for a sorted directory).
fn name_order(d: &Directory) -> Vec<usize> {
    let entries = d.entries();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    if !entries.windows(2).all(|w| w[0].name <= w[1].name) {
        order.sort_by(|&a, &b| entries[a].name.cmp(&entries[b].name));
    }
    order
}

/// The first time a non-directory was reached.
#[derive(Clone, Copy)]
enum Seen {
    Not,
    First {
        label: Option<u32>,
        dir: InodeId,
        index: usize,
    },
}

fn set_label(stat: &mut Stat, label: Option<&str>) {
    match label {
        Some(l) => {
            stat.xattrs.set(XATTR_NAME, l.as_bytes());
        }
        None => {
            stat.xattrs.remove(XATTR_NAME);
        }
    }
}

/// Labels every name of `fs` reachable from the root with `policy`.
pub fn apply(fs: &mut FileSystem, policy: &mut Policy) -> Result<LabelStats, SelinuxError> {
    let original_len = fs.len();
    let mut stats = LabelStats::default();
    let mut seen = vec![Seen::Not; original_len];
    let mut entered = vec![false; original_len];
    let mut lost_primary = Vec::new();
    let count = |stats: &mut LabelStats, label: Option<u32>| match label {
        Some(_) => stats.labelled += 1,
        None => stats.unlabelled += 1,
    };

    let root_path = PathBuf::from("/");
    let label = policy.lookup_id(root_path.as_os_str().as_bytes(), FileType::Directory)?;
    set_label(
        &mut fs.inode_mut(InodeId::ROOT).stat,
        label.and_then(|id| policy.context(id)),
    );
    count(&mut stats, label);
    if let Some(e) = entered.get_mut(InodeId::ROOT.index()) {
        *e = true;
    }
    let mut stack = vec![Frame::new(fs, InodeId::ROOT, root_path)];

    while let Some(frame) = stack.last_mut() {
        let Some(&index) = frame.order.get(frame.next) else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let dir = frame.dir;
        let Some(entry) = fs.directory(dir).and_then(|d| d.entries().get(index)) else {
            continue;
        };
        let (child, alias) = (entry.inode, entry.alias);
        let file_type = match fs.get(child) {
            Some(inode) if child.index() < original_len => inode.kind.file_type(),
            // A dangling entry (an invalid tree): nothing to label.
            _ => continue,
        };
        frame.path.push(OsStr::from_bytes(&entry.name));
        let aliased = policy
            .walk_alias(frame.path.as_os_str().as_bytes())
            .map(|a| PathBuf::from(OsStr::from_bytes(a)));
        let effective: &Path = aliased.as_deref().unwrap_or(&frame.path);

        if file_type == FileType::Directory {
            let first_entry = !alias && !entered[child.index()];
            if !first_entry {
                frame.path.pop();
                continue;
            }
            entered[child.index()] = true;
            let sub_path = effective.to_path_buf();
            frame.path.pop();
            let label = policy.lookup_id(sub_path.as_os_str().as_bytes(), file_type)?;
            set_label(
                &mut fs.inode_mut(child).stat,
                label.and_then(|id| policy.context(id)),
            );
            count(&mut stats, label);
            stack.push(Frame::new(fs, child, sub_path));
            continue;
        }

        let label = policy.lookup_id(effective.as_os_str().as_bytes(), file_type)?;
        frame.path.pop();
        count(&mut stats, label);
        let context = label.and_then(|id| policy.context(id));
        match seen[child.index()] {
            Seen::Not => {
                seen[child.index()] = Seen::First { label, dir, index };
                set_label(&mut fs.inode_mut(child).stat, context);
            }
            Seen::First { label: first, .. } if first == label => {}
            Seen::First { .. } => {
                let mut copy = fs.inode(child).clone();
                copy.nlink = 1;
                set_label(&mut copy.stat, context);
                let copy_id = fs.push_inode(copy);
                let original = fs.inode_mut(child);
                original.nlink = original.nlink.saturating_sub(1);
                if let Some(e) = fs
                    .directory_mut(dir)
                    .and_then(|d| d.entries_mut().get_mut(index))
                {
                    if !e.alias {
                        lost_primary.push(child);
                    }
                    e.inode = copy_id;
                    e.alias = false;
                }
                stats.hardlinks_broken += 1;
            }
        }
    }

    for inode in lost_primary {
        if let Seen::First { dir, index, .. } = seen[inode.index()]
            && let Some(e) = fs
                .directory_mut(dir)
                .and_then(|d| d.entries_mut().get_mut(index))
        {
            e.alias = false;
        }
    }
    Ok(stats)
}

/// Removes `security.selinux` from every inode of `fs` (reachable or not);
/// returns how many had one.
pub fn strip(fs: &mut FileSystem) -> usize {
    let mut removed = 0;
    for i in 0..fs.len() {
        let Ok(id) = u32::try_from(i) else { break };
        if fs
            .inode_mut(InodeId(id))
            .stat
            .xattrs
            .remove(XATTR_NAME)
            .is_some()
        {
            removed += 1;
        }
    }
    removed
}
