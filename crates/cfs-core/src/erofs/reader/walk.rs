//! The validated depth-first walk over an image's directory graph, shared by
//! the tree builder and the object lister.
//!
//! Starting at the root, directories are entered depth-first with their
//! entries in on-disk (name) order. Checks:
//! - the root is a directory; every directory has `.` naming itself and `..`
//!   naming its parent (the root's `..` is the root), both of type DIR;
//! - a dirent's file type equals the type of the inode it names;
//! - no directory is reached twice (a directory hard link or a cycle);
//! - directories are nested at most [`MAX_DEPTH`] levels;
//! - a directory's nlink is 2 + the number of its subdirectories (C
//!   recomputes it when writing, so every C image satisfies it);
//! - character devices 0:0 (the 256 root stubs `00`..`ff` and any native
//!   whiteout) are skipped like C does; one with nlink > 1 or reached through
//!   two names is an error. Exception: composefs-rs V2 images
//!   (`composefs_version` 2) have no stubs and store user whiteouts as real
//!   character devices 0:0, so there they are kept like any device;
//! - every dirent processed costs [`DIRENT_COST`] units of the [`Budget`],
//!   which bounds the work a hostile image can cause (directories cannot
//!   share blocks: their `.` entries would disagree).

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use super::{DirEntryRef, DirIter, Image, InodeRef, ReadError};
use crate::tree::FileType;

/// Deepest directory nesting accepted (C paths are limited to 4096 bytes, so
/// no C tool can handle deeper trees: each level needs at least 2 bytes).
pub const MAX_DEPTH: usize = crate::limits::MAX_DEPTH;

/// Budget units charged for each directory entry processed.
pub const DIRENT_COST: u64 = 64;
/// Budget units per image byte: memory and work allowed are at most this
/// multiple of the image size, plus [`BUDGET_BASE`].
pub const BUDGET_PER_IMAGE_BYTE: u64 = 16;
/// Budget units allowed regardless of the image size.
pub const BUDGET_BASE: u64 = 1 << 20;

/// A bound on the memory and work spent on one image.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: u64,
    limit: u64,
    image_len: usize,
}

impl Budget {
    /// The budget for an image of `image_len` bytes.
    pub(crate) fn for_image(image_len: usize) -> Self {
        let limit = (image_len as u64)
            .saturating_mul(BUDGET_PER_IMAGE_BYTE)
            .saturating_add(BUDGET_BASE);
        Budget {
            remaining: limit,
            limit,
            image_len,
        }
    }

    /// Spends `units`; fails once the budget is exhausted.
    pub(crate) fn charge(&mut self, units: u64) -> Result<(), ReadError> {
        match self.remaining.checked_sub(units) {
            Some(rest) => {
                self.remaining = rest;
                Ok(())
            }
            None => Err(ReadError::BudgetExceeded {
                limit: self.limit,
                image_len: self.image_len,
            }),
        }
    }

    /// Charges the size of `n` values of type `T`.
    pub(crate) fn charge_for<T>(&mut self, n: usize) -> Result<(), ReadError> {
        self.charge((size_of::<T>() as u64).saturating_mul(n as u64))
    }
}

/// What the walk reports. `Handle` identifies a visited inode (e.g. a tree
/// inode id) and is passed back for its entries.
pub(super) trait Visitor<'a> {
    /// Identifies a visited inode.
    type Handle: Copy;

    /// A newly reached inode (the root first). Directories are entered
    /// afterwards.
    fn inode(
        &mut self,
        inode: &InodeRef<'a>,
        budget: &mut Budget,
    ) -> Result<Self::Handle, ReadError>;

    /// An entry of directory `parent` naming `child`; `alias` is true when
    /// `child` was already reached through an earlier name (a hard link).
    fn entry(
        &mut self,
        parent: Self::Handle,
        name: &'a [u8],
        child: Self::Handle,
        alias: bool,
        budget: &mut Budget,
    ) -> Result<(), ReadError>;
}

/// What has been seen of a nid.
#[derive(Debug, Clone, Copy)]
enum Seen<H> {
    Unseen,
    Directory,
    SkippedWhiteout(u32),
    Other(H, FileType),
}

struct Frame<'a, H> {
    nid: u64,
    parent_nid: u64,
    nlink: u32,
    handle: H,
    name: &'a [u8],
    entries: DirIter<'a>,
    subdirs: u32,
    dot: bool,
    dotdot: bool,
}

/// Absolute path of `name` below the directories on `stack`.
fn path_of<H>(stack: &[Frame<'_, H>], name: Option<&[u8]>) -> String {
    let mut path = Vec::new();
    for frame in stack.iter().skip(1) {
        path.push(b'/');
        path.extend_from_slice(frame.name);
    }
    if let Some(name) = name {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    String::from_utf8_lossy(&path).into_owned()
}

/// Walks the image from its root. With `filter`, only root entries whose
/// names are listed are visited (the root's own entries are still all
/// validated).
pub(super) fn walk<'a, V: Visitor<'a>>(
    image: &Image<'a>,
    filter: Option<&[Box<[u8]>]>,
    visitor: &mut V,
    budget: &mut Budget,
) -> Result<(), ReadError> {
    let nid_limit = usize::try_from(image.nid_limit()).unwrap_or(usize::MAX);
    budget.charge_for::<Seen<V::Handle>>(nid_limit)?;
    let mut seen: Vec<Seen<V::Handle>> = vec![Seen::Unseen; nid_limit];

    let root_nid = image.root_nid();
    let root = image.inode(root_nid).map_err(|e| e.in_path("/".into()))?;
    if root.file_type != FileType::Directory {
        return Err(ReadError::BadInode {
            nid: root_nid,
            offset: root.offset,
            reason: "the root inode is not a directory".into(),
        }
        .in_path("/".into()));
    }
    let handle = visitor
        .inode(&root, budget)
        .map_err(|e| e.in_path("/".into()))?;
    mark(&mut seen, root_nid, Seen::Directory);
    let mut stack = vec![Frame {
        nid: root_nid,
        parent_nid: root_nid,
        nlink: root.nlink,
        handle,
        name: b"",
        entries: root.dir_entries().map_err(|e| e.in_path("/".into()))?,
        subdirs: 0,
        dot: false,
        dotdot: false,
    }];

    while let Some(frame) = stack.last_mut() {
        let Some(entry) = frame.entries.next() else {
            finish(&mut stack)?;
            continue;
        };
        let entry = entry.map_err(|e| e.in_path(path_of(&stack, None)))?;
        budget.charge(DIRENT_COST)?;
        step(image, filter, visitor, budget, &mut seen, &mut stack, entry)
            .map_err(|e| e.in_path(path_of(&stack, Some(entry.name))))?;
    }
    Ok(())
}

fn mark<H>(seen: &mut [Seen<H>], nid: u64, state: Seen<H>) {
    if let Some(slot) = usize::try_from(nid).ok().and_then(|i| seen.get_mut(i)) {
        *slot = state;
    }
}

/// Pops the finished directory after its final checks.
fn finish<H>(stack: &mut Vec<Frame<'_, H>>) -> Result<(), ReadError> {
    let path = path_of(stack, None);
    let Some(frame) = stack.pop() else {
        return Ok(());
    };
    let bad = |reason: String| {
        ReadError::BadDirectory {
            nid: frame.nid,
            offset: frame.nid.saturating_mul(32),
            reason,
        }
        .in_path(path.clone())
    };
    if !frame.dot || !frame.dotdot {
        return Err(bad("missing '.' or '..' entry".into()));
    }
    let expected = frame.subdirs.saturating_add(2);
    if frame.nlink != expected {
        return Err(bad(format!(
            "nlink is {}, expected {expected} (2 + {} subdirectories)",
            frame.nlink, frame.subdirs
        )));
    }
    Ok(())
}

/// Handles one entry of the directory on top of the stack.
fn step<'a, V: Visitor<'a>>(
    image: &Image<'a>,
    filter: Option<&[Box<[u8]>]>,
    visitor: &mut V,
    budget: &mut Budget,
    seen: &mut [Seen<V::Handle>],
    stack: &mut Vec<Frame<'a, V::Handle>>,
    entry: DirEntryRef<'a>,
) -> Result<(), ReadError> {
    let depth = stack.len();
    let Some(frame) = stack.last_mut() else {
        return Ok(());
    };
    let (dir_nid, parent_nid, parent) = (frame.nid, frame.parent_nid, frame.handle);
    let dot_target = match entry.name {
        b"." => Some((dir_nid, &mut frame.dot)),
        b".." => Some((parent_nid, &mut frame.dotdot)),
        _ => None,
    };
    if let Some((expected, flag)) = dot_target {
        if entry.nid != expected || entry.file_type != FileType::Directory {
            return Err(ReadError::BadDirectory {
                nid: dir_nid,
                offset: dir_nid.saturating_mul(32),
                reason: format!(
                    "'{}' names nid {} of type {:?}, expected directory nid {expected}",
                    String::from_utf8_lossy(entry.name),
                    entry.nid,
                    entry.file_type
                ),
            });
        }
        *flag = true;
        return Ok(());
    }
    if entry.file_type == FileType::Directory {
        frame.subdirs = frame.subdirs.saturating_add(1);
    }
    if depth == 1
        && let Some(names) = filter
        && !names.iter().any(|n| **n == *entry.name)
    {
        return Ok(());
    }

    let index = usize::try_from(entry.nid).unwrap_or(usize::MAX);
    let state = match seen.get(index) {
        Some(state) => *state,
        None => {
            return Err(image.inode(entry.nid).err().unwrap_or(ReadError::BadNid {
                nid: entry.nid,
                reason: "inode slot lies beyond the end of the image",
            }));
        }
    };
    let type_mismatch = |found: FileType| ReadError::BadDirectory {
        nid: dir_nid,
        offset: dir_nid.saturating_mul(32),
        reason: format!(
            "dirent type {:?} disagrees with inode {} of type {found:?}",
            entry.file_type, entry.nid
        ),
    };
    match state {
        Seen::Directory => Err(ReadError::DirectoryLinked { nid: entry.nid }),
        Seen::SkippedWhiteout(nlink) => Err(ReadError::WhiteoutLinked {
            nid: entry.nid,
            nlink,
        }),
        Seen::Other(child, file_type) => {
            // Hard link: the type must agree here too.
            if file_type != entry.file_type {
                return Err(type_mismatch(file_type));
            }
            visitor.entry(parent, entry.name, child, true, budget)
        }
        Seen::Unseen => {
            let inode = image.inode(entry.nid)?;
            if inode.file_type != entry.file_type {
                return Err(type_mismatch(inode.file_type));
            }
            if inode.is_whiteout() && image.composefs_version() < 2 {
                if inode.nlink > 1 {
                    return Err(ReadError::WhiteoutLinked {
                        nid: entry.nid,
                        nlink: inode.nlink,
                    });
                }
                mark(seen, entry.nid, Seen::SkippedWhiteout(inode.nlink));
                return Ok(());
            }
            let is_dir = inode.file_type == FileType::Directory;
            if is_dir && depth > MAX_DEPTH {
                return Err(ReadError::TooDeep { limit: MAX_DEPTH });
            }
            let child = visitor.inode(&inode, budget)?;
            visitor.entry(parent, entry.name, child, false, budget)?;
            if is_dir {
                mark(seen, entry.nid, Seen::Directory);
                budget.charge_for::<Frame<'a, V::Handle>>(1)?;
                stack.push(Frame {
                    nid: entry.nid,
                    parent_nid: dir_nid,
                    nlink: inode.nlink,
                    handle: child,
                    name: entry.name,
                    entries: inode.dir_entries()?,
                    subdirs: 0,
                    dot: false,
                    dotdot: false,
                });
            } else {
                mark(seen, entry.nid, Seen::Other(child, inode.file_type));
            }
            Ok(())
        }
    }
}
