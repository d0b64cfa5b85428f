//! Turns dump lines into a [`FileSystem`]: field splitting and validation in
//! C's order, path placement with C's slash handling, xattr budget, and
//! deferred hard-link resolution.
//!
//! While parsing, a `@` line's directory entry holds a placeholder id
//! (`LINK_FLAG | index into links`); the placeholders are replaced by the
//! final target inodes in [`Builder::finish`]. Directory entries are appended
//! in input order; a directory whose names arrive out of order gets a hash
//! index for lookups, so unsorted input stays O(n). Everything is sorted at the
//! end.

use std::collections::HashMap;

use super::error::{InField, Tagged};
use super::escape::{c_str, unescape, unescape_optional};
use super::number::{parse_digest_lenient, parse_mtime, parse_u64};
use super::{
    Field, MAX_INLINE_CONTENT, MAX_XATTR_NAME, MAX_XATTR_TEXT, PATH_MAX, ParseErrorKind,
    XATTR_BUDGET,
};
use crate::tree::{
    DirEntry, Directory, ExternalFile, FileSystem, FileType, Inode, InodeId, InodeKind,
    MAX_NAME_LEN, RegularFile, Stat, Xattr, Xattrs,
};

/// Marks a placeholder directory entry of a not yet resolved hard link.
pub(super) const LINK_FLAG: u32 = 1 << 31;

/// Number of fixed fields before the xattrs.
const FIXED_FIELDS: usize = 11;

/// A line split at single spaces, like C `split_at`: missing fields are empty.
struct Fields<'a> {
    fixed: [&'a [u8]; FIXED_FIELDS],
    rest: &'a [u8],
}

/// Splits off the text before the first `sep` (C `split_at`): returns the
/// part and what follows the separator (empty if there was none).
fn split_c(s: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match find_byte(s, sep) {
        Some(p) => {
            let (head, tail) = s.split_at(p);
            (head, tail.get(1..).unwrap_or_default())
        }
        None => (s, &[]),
    }
}

/// Position of the first `needle` in `hay`, eight bytes at a time.
pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = LOW.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes) ^ pattern;
        // The lowest set bit marks the first zero byte of `x` exactly.
        let zero = x.wrapping_sub(LOW) & !x & HIGH;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let rest = hay.get(offset..).unwrap_or_default();
    rest.iter().position(|&b| b == needle).map(|p| offset + p)
}

fn split_fields(mut line: &[u8]) -> Fields<'_> {
    let mut fixed: [&[u8]; FIXED_FIELDS] = [&[]; FIXED_FIELDS];
    for field in &mut fixed {
        let (head, tail) = split_c(line, b' ');
        *field = head;
        line = tail;
    }
    Fields { fixed, rest: line }
}

/// A `@` line waiting for the end of the input.
struct PendingLink {
    /// PAYLOAD (C string), `None` for `-`.
    target: Option<Box<[u8]>>,
    /// Its line, for errors.
    line: u64,
}

/// Reusable decode buffers, one per escaped field alive at the same time.
#[derive(Default)]
struct Scratch {
    path: Vec<u8>,
    payload: Vec<u8>,
    content: Vec<u8>,
    digest: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The tree under construction plus lookup helpers.
#[derive(Default)]
struct Tree {
    fs: Option<FileSystem>,
    links: Vec<PendingLink>,
    /// Name → entry index, for directories whose entries arrived unsorted.
    unsorted: HashMap<u32, HashMap<Box<[u8]>, usize>>,
}

/// Where a new entry goes.
enum Place<'p> {
    Root,
    Child { parent: u32, name: &'p [u8] },
}

impl Tree {
    fn dir(&self, id: u32) -> Option<&Directory> {
        if id & LINK_FLAG != 0 {
            return None;
        }
        self.fs.as_ref()?.directory(InodeId(id))
    }

    /// The raw id (inode or placeholder) named `name` in directory `dir`
    /// (C `lcfs_node_lookup_child`; `None` also when `dir` is no directory).
    fn find_child(&self, dir: u32, name: &[u8]) -> Option<u32> {
        let entries = self.dir(dir)?.entries();
        if !self.unsorted.is_empty()
            && let Some(index) = self.unsorted.get(&dir)
        {
            return index
                .get(name)
                .and_then(|&i| entries.get(i))
                .map(|e| e.inode.0);
        }
        // Sorted so far; in dump order the wanted name is usually the last one.
        let last = entries.last()?;
        match (*last.name).cmp(name) {
            std::cmp::Ordering::Equal => Some(last.inode.0),
            std::cmp::Ordering::Less => None,
            std::cmp::Ordering::Greater => entries
                .binary_search_by(|e| (*e.name).cmp(name))
                .ok()
                .and_then(|i| entries.get(i))
                .map(|e| e.inode.0),
        }
    }

    /// Appends an entry whose name is known to be new in `dir`.
    fn append(&mut self, dir: u32, name: &[u8], id: u32, alias: bool) {
        let Some(fs) = self.fs.as_mut() else { return };
        let Some(d) = fs.directory_mut(InodeId(dir)) else {
            return;
        };
        let entries = d.entries_mut();
        let index = entries.len();
        let in_order = entries.last().is_none_or(|last| *last.name < *name);
        if let Some(map) = self.unsorted.get_mut(&dir) {
            map.insert(name.into(), index);
        } else if !in_order {
            let mut map: HashMap<Box<[u8]>, usize> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name.clone(), i))
                .collect();
            map.insert(name.into(), index);
            self.unsorted.insert(dir, map);
        }
        entries.push(DirEntry {
            name: name.into(),
            inode: InodeId(id),
            alias,
        });
    }

    /// C `tree_add_node` minus the insertion: checks where `path` goes.
    fn place<'p>(&self, path: &'p [u8], ftype: FileType) -> Result<Place<'p>, ParseErrorKind> {
        if path == b"/" {
            if ftype != FileType::Directory {
                return Err(ParseErrorKind::RootNotDirectory);
            }
            if self.fs.is_some() {
                return Err(ParseErrorKind::MultipleRoots);
            }
            return Ok(Place::Root);
        }
        if self.fs.is_none() {
            return Err(ParseErrorKind::RootNotPresent);
        }
        // C lookup_parent_path: skip slashes, then each component but the last
        // must exist (non-directories have no children).
        let mut node = InodeId::ROOT.0;
        let mut rest = path;
        let name = loop {
            rest = trim_slashes(rest);
            let (comp, tail) = split_c(rest, b'/');
            if comp.len() == rest.len() {
                break rest;
            }
            node = self
                .find_child(node, comp)
                .ok_or_else(|| ParseErrorKind::ParentMissing { path: path.into() })?;
            rest = tail;
        };
        if self.dir(node).is_none() {
            return Err(ParseErrorKind::ParentNotDirectory { path: path.into() });
        }
        if name == b"." || name == b".." {
            return Err(ParseErrorKind::DotInPath { path: path.into() });
        }
        if name.is_empty() || name.len() > MAX_NAME_LEN || self.find_child(node, name).is_some() {
            return Err(ParseErrorKind::CantAddChild);
        }
        Ok(Place::Child { parent: node, name })
    }

    /// C `lookup_path`: the raw id named by `path` (skipping slashes).
    fn lookup(&self, path: &[u8]) -> Option<u32> {
        let mut node = InodeId::ROOT.0;
        let mut rest = path;
        loop {
            rest = trim_slashes(rest);
            if rest.is_empty() {
                return Some(node);
            }
            let (comp, tail) = split_c(rest, b'/');
            node = self.find_child(node, comp)?;
            rest = tail;
        }
    }
}

fn trim_slashes(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b'/').count();
    s.get(n..).unwrap_or_default()
}

/// Xattrs of one line with C's per-inode budget (`lcfs_node_set_xattr`).
#[derive(Default)]
struct XattrSet {
    list: Vec<Xattr>,
    /// Name → position, built once the list is long enough to matter.
    index: Option<HashMap<Box<[u8]>, usize>>,
    used: usize,
}

/// Xattr entries on a line before duplicate lookups switch to a hash index.
const XATTR_LINEAR_MAX: usize = 16;

/// Bytes one xattr costs in C's budget (2 × entry header − 1 + name + value).
fn xattr_cost(name: &[u8], value: &[u8]) -> usize {
    7 + name.len() + value.len()
}

/// C `LCFS_XATTR_HEADER_SIZE`, charged once for the first xattr.
const XATTR_HEADER_COST: usize = 12;

impl XattrSet {
    fn position(&self, name: &[u8]) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.list.iter().position(|x| &*x.name == name),
        }
    }

    fn set(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParseErrorKind> {
        if name.is_empty() || name.len() > MAX_XATTR_NAME || value.len() > usize::from(u16::MAX) {
            return Err(ParseErrorKind::CantSetXattr);
        }
        let existing = self.position(name);
        let (others, base) = match existing.and_then(|i| self.list.get(i)) {
            // C removes the old value first (refunding it) and then adds.
            Some(old) if self.list.len() > 1 => {
                (true, self.used.saturating_sub(xattr_cost(name, &old.value)))
            }
            Some(_) => (false, 0),
            None => (!self.list.is_empty(), self.used),
        };
        let cost = xattr_cost(name, value) + if others { 0 } else { XATTR_HEADER_COST };
        if base + cost > XATTR_BUDGET {
            return Err(ParseErrorKind::CantSetXattr);
        }
        self.used = base + cost;
        match existing.and_then(|i| self.list.get_mut(i)) {
            Some(old) => old.value = value.into(),
            None => {
                if let Some(index) = &mut self.index {
                    index.insert(name.into(), self.list.len());
                }
                self.list.push(Xattr {
                    name: name.into(),
                    value: value.into(),
                });
                if self.index.is_none() && self.list.len() > XATTR_LINEAR_MAX {
                    let index = self
                        .list
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (x.name.clone(), i))
                        .collect();
                    self.index = Some(index);
                }
            }
        }
        Ok(())
    }

    /// C `parse_xattr` for each space-separated field of `text`.
    fn parse(
        text: &[u8],
        key_buf: &mut Vec<u8>,
        value_buf: &mut Vec<u8>,
    ) -> Result<Xattrs, Tagged> {
        let mut set = XattrSet::default();
        let mut rest = text;
        let mut n = 0;
        while !rest.is_empty() {
            let (field, tail) = split_c(rest, b' ');
            rest = tail;
            n += 1;
            let at = Field::Xattr(n);
            let Some(eq) = find_byte(field, b'=') else {
                return Err(Tagged(Some(at), ParseErrorKind::MissingXattrEquals));
            };
            let (key, eq_value) = field.split_at(eq);
            let key = c_str(unescape(key, key_buf).in_field(at)?);
            let value = unescape(eq_value.get(1..).unwrap_or_default(), value_buf).in_field(at)?;
            set.set(key, value).in_field(at)?;
        }
        Ok(set.list.into_iter().collect())
    }
}

/// Builds a [`FileSystem`] line by line.
#[derive(Default)]
pub(super) struct Builder {
    strict: bool,
    max_entries: usize,
    tree: Tree,
    scratch: Scratch,
}

impl Builder {
    pub(super) fn new(strict: bool, max_entries: usize) -> Self {
        Builder {
            strict,
            max_entries,
            ..Builder::default()
        }
    }

    fn entries(&self) -> usize {
        self.tree.fs.as_ref().map_or(0, FileSystem::len) + self.tree.links.len()
    }

    /// Parses one line (without its `\n`) into the tree (C `tree_from_dump_line`).
    pub(super) fn add_line(&mut self, line: &[u8], lineno: u64) -> Result<(), Tagged> {
        // `contains` on bytes is a vectorised memchr; find the offset only on error.
        if line.contains(&0) {
            let position = line.iter().position(|&b| b == 0).unwrap_or_default();
            let field = line
                .get(..position)
                .map_or(0, |b| b.iter().filter(|&&c| c == b' ').count());
            return Err(Tagged(
                Some(Field::from_index(field)),
                ParseErrorKind::EmbeddedNul { position },
            ));
        }
        if self.entries() >= self.max_entries {
            return Err(ParseErrorKind::TooManyEntries {
                max: self.max_entries,
            }
            .into());
        }
        let f = split_fields(line);
        let [
            path,
            size,
            mode,
            nlink,
            uid,
            gid,
            rdev,
            mtime,
            payload,
            content,
            digest,
        ] = f.fixed;
        let s = &mut self.scratch;
        let path = c_str(unescape(path, &mut s.path).in_field(Field::Path)?);
        if path.is_empty() {
            return Err(Tagged(Some(Field::Path), ParseErrorKind::EmptyPath));
        }
        let (hardlink, mode) = match mode.split_first() {
            Some((b'@', rest)) => (true, rest),
            _ => (false, mode),
        };
        let mode = parse_u64(mode, 8).in_field(Field::Mode)? as u32;
        let ftype = FileType::from_mode(mode)
            .ok_or(ParseErrorKind::InvalidMode { mode })
            .in_field(Field::Mode)?;
        let place = self.tree.place(path, ftype).in_field(Field::Path)?;

        if hardlink {
            if ftype == FileType::Directory {
                return Err(Tagged(Some(Field::Mode), ParseErrorKind::DirectoryHardlink));
            }
            let target = unescape_optional(payload, &mut s.payload)
                .in_field(Field::Payload)?
                .map(|t| c_str(t).into());
            if let Place::Child { parent, name } = place {
                let id = LINK_FLAG | self.tree.links.len() as u32;
                self.tree.links.push(PendingLink {
                    target,
                    line: lineno,
                });
                self.tree.append(parent, name, id, true);
            }
            return Ok(());
        }

        let size = parse_u64(size, 10).in_field(Field::Size)?;
        let nlink = parse_u64(nlink, 10).in_field(Field::Nlink)?;
        let uid = parse_u64(uid, 10).in_field(Field::Uid)?;
        // C checks the UID's result for these two, so their errors only count
        // when the UID is 0.
        let gid = match parse_u64(gid, 10) {
            Err(e) if uid == 0 => return Err(Tagged(Some(Field::Gid), e)),
            r => r.unwrap_or(0),
        };
        let rdev = match parse_u64(rdev, 10) {
            Err(e) if uid == 0 => return Err(Tagged(Some(Field::Rdev), e)),
            r => r.unwrap_or(0),
        };
        let mtime = parse_mtime(mtime).in_field(Field::Mtime)?;
        let payload = unescape_optional(payload, &mut s.payload)
            .in_field(Field::Payload)?
            .map(c_str);
        let content = unescape_optional(content, &mut s.content).in_field(Field::Content)?;
        let fail = |field, kind| Err(Tagged(Some(field), kind));
        if let Some(c) = content
            && c.len() as u64 != size
        {
            return fail(
                Field::Content,
                ParseErrorKind::ContentSizeMismatch {
                    content: c.len() as i64,
                    size: size as i64,
                },
            );
        }
        let digest = unescape_optional(digest, &mut s.digest)
            .in_field(Field::Digest)?
            .map(c_str);
        let is_device = matches!(ftype, FileType::CharDevice | FileType::BlockDevice);
        if !is_device && self.strict && rdev != 0 {
            return fail(Field::Rdev, ParseErrorKind::DevnumOnNonDevice);
        }
        if ftype == FileType::Symlink {
            let target = payload.unwrap_or_default();
            if target.is_empty() || target.len() >= PATH_MAX {
                return fail(Field::Payload, ParseErrorKind::InvalidSymlink);
            }
            if self.strict {
                if size != target.len() as u64 {
                    return fail(
                        Field::Size,
                        ParseErrorKind::SymlinkSizeMismatch {
                            target: target.len() as i64,
                            size: size as i64,
                        },
                    );
                }
                if content.is_some_and(|c| !c.is_empty()) {
                    return fail(Field::Content, ParseErrorKind::SymlinkContent);
                }
            }
        } else {
            if payload.is_some_and(|p| p.len() >= PATH_MAX) {
                return fail(Field::Payload, ParseErrorKind::InvalidPayload);
            }
            if let Some(c) = content
                && c.len() > MAX_INLINE_CONTENT
            {
                return fail(
                    Field::Content,
                    ParseErrorKind::InlineTooLarge {
                        size: c.len() as i64,
                        max: MAX_INLINE_CONTENT as i64,
                    },
                );
            }
        }
        if f.rest.len() > MAX_XATTR_TEXT {
            return fail(Field::Xattr(1), ParseErrorKind::TooManyXattrs);
        }
        let xattrs = XattrSet::parse(f.rest, &mut s.key, &mut s.value)?;

        let kind = match ftype {
            FileType::Directory => {
                let mut d = Directory::new();
                d.size = size;
                InodeKind::Directory(d)
            }
            FileType::Regular => InodeKind::Regular(match content {
                Some(c) => RegularFile::Inline(c.into()),
                None if size == 0 => RegularFile::Inline(Box::default()),
                None => RegularFile::External(ExternalFile {
                    size,
                    payload: payload.filter(|p| !p.is_empty()).map(Box::from),
                    digest: digest.map(parse_digest_lenient),
                }),
            }),
            FileType::Symlink => InodeKind::Symlink(payload.unwrap_or_default().into()),
            FileType::CharDevice => InodeKind::CharDevice(rdev as u32),
            FileType::BlockDevice => InodeKind::BlockDevice(rdev as u32),
            FileType::Fifo => InodeKind::Fifo,
            FileType::Socket => InodeKind::Socket,
        };
        let stat = Stat {
            mode: (mode & 0o7777) as u16,
            uid: uid as u32,
            gid: gid as u32,
            mtime,
            xattrs,
        };
        let inode = Inode {
            stat,
            nlink: nlink as u32,
            kind,
        };
        match place {
            Place::Root => {
                let mut fs = FileSystem::new(Stat::default());
                *fs.inode_mut(InodeId::ROOT) = inode;
                self.tree.fs = Some(fs);
            }
            Place::Child { parent, name } => {
                if let Some(fs) = self.tree.fs.as_mut() {
                    let id = fs.push_inode(inode);
                    self.tree.append(parent, name, id.0, false);
                }
            }
        }
        Ok(())
    }

    /// Resolves the hard links (C `tree_resolve_hardlinks`, then cfs's own
    /// cycle and directory checks) and sorts every directory.
    pub(super) fn finish(self) -> Result<FileSystem, (Option<u64>, ParseErrorKind)> {
        let tree = self.tree;
        if tree.fs.is_none() {
            return Err((None, ParseErrorKind::NoFiles));
        }
        let n = tree.links.len();
        // C resolves the links in reverse line order and stops at the first error.
        let mut next = vec![0u32; n];
        for (k, link) in tree.links.iter().enumerate().rev() {
            let err = |kind| Err((Some(link.line), kind));
            let Some(target) = link.target.as_deref() else {
                return err(ParseErrorKind::NoHardlinkTarget);
            };
            let Some(id) = tree.lookup(target) else {
                return err(ParseErrorKind::HardlinkTargetMissing {
                    path: target.into(),
                });
            };
            if id == LINK_FLAG | k as u32 {
                return err(ParseErrorKind::SelfHardlink {
                    path: target.into(),
                });
            }
            if let Some(slot) = next.get_mut(k) {
                *slot = id;
            }
        }
        let finals = resolve_chains(&next).map_err(|k| {
            let line = tree.links.get(k).map(|l| l.line);
            (line, ParseErrorKind::HardlinkCycle)
        })?;
        let Tree { fs, links, .. } = tree;
        let Some(mut fs) = fs else {
            return Err((None, ParseErrorKind::NoFiles));
        };
        for (k, link) in links.iter().enumerate().rev() {
            let target = finals.get(k).copied().unwrap_or(0);
            if fs.directory(InodeId(target)).is_some() {
                return Err((Some(link.line), ParseErrorKind::DirectoryHardlink));
            }
        }
        for i in 0..fs.len() {
            if let Some(d) = fs.directory_mut(InodeId(i as u32)) {
                for e in d.entries_mut() {
                    if e.inode.0 & LINK_FLAG != 0 {
                        let k = (e.inode.0 & !LINK_FLAG) as usize;
                        e.inode = InodeId(finals.get(k).copied().unwrap_or(0));
                    }
                }
                d.sort();
            }
        }
        Ok(fs)
    }
}

/// Follows link → link chains to an inode. `next[k]` is the raw id link `k`
/// names. Returns the inode of every link, or the index of a link on a cycle.
fn resolve_chains(next: &[u32]) -> Result<Vec<u32>, usize> {
    const UNSEEN: u32 = u32::MAX;
    const ON_PATH: u32 = u32::MAX - 1;
    let mut finals = vec![UNSEEN; next.len()];
    let mut path = Vec::new();
    for start in (0..next.len()).rev() {
        let mut k = start;
        let result = loop {
            match finals.get(k).copied() {
                Some(UNSEEN) => {}
                Some(ON_PATH) => return Err(start),
                Some(done) => break done,
                None => break 0,
            }
            let id = next.get(k).copied().unwrap_or(0);
            if id & LINK_FLAG == 0 {
                break id;
            }
            if let Some(f) = finals.get_mut(k) {
                *f = ON_PATH;
            }
            path.push(k);
            k = (id & !LINK_FLAG) as usize;
        };
        for j in path.drain(..).chain(std::iter::once(k)) {
            if let Some(f) = finals.get_mut(j)
                && (*f == UNSEEN || *f == ON_PATH)
            {
                *f = result;
            }
        }
    }
    Ok(finals)
}
