//! The printers of `composefs-info`: `dump`, `ls` and `objects`.
//!
//! All walk the tree depth-first with an explicit stack, children in stored
//! (byte) order. The first name of an inode met in that order is its "real"
//! name (like the C image reader); later names are hard links, printed by
//! `dump` as `@` lines with the first name in the PAYLOAD column and by `ls`
//! as a bare path. A directory is only entered at its first name, so invalid
//! trees (directory aliases, cycles) cannot loop.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};

use super::escape::{Style, write_escaped, write_optional};
use crate::tree::{ExternalFile, FileSystem, Inode, InodeId, InodeKind, RegularFile};

/// One name visited by [`walk`].
struct Visit<'fs, 'p> {
    path: &'p [u8],
    inode: &'fs Inode,
    /// For a later name of an inode: the first name's path.
    link_to: Option<&'p [u8]>,
}

fn dangling(id: InodeId) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("directory entry refers to missing inode {}", id.0),
    )
}

/// Visits every name below the root depth-first.
fn walk<'fs>(
    fs: &'fs FileSystem,
    mut visit: impl FnMut(Visit<'fs, '_>) -> io::Result<()>,
) -> io::Result<()> {
    // Names per inode (saturating); the root counts its own "/".
    let mut names = vec![0u8; fs.len()];
    if let Some(root) = names.get_mut(0) {
        *root = 1;
    }
    for inode in fs.inodes() {
        if let InodeKind::Directory(d) = &inode.kind {
            for e in d.entries() {
                if let Some(n) = names.get_mut(e.inode.index()) {
                    *n = n.saturating_add(1);
                }
            }
        }
    }
    // First path of every inode with more than one name.
    let mut first: HashMap<InodeId, Box<[u8]>> = HashMap::new();
    if names.first().is_some_and(|&n| n > 1) {
        first.insert(InodeId::ROOT, Box::from(&b"/"[..]));
    }
    let mut path = Vec::new();
    // (directory, next entry, path length before its entries' names)
    let mut stack = vec![(fs.root(), 0usize, 0usize)];
    while let Some((dir, next, base)) = stack.last_mut() {
        let entry = fs.directory(*dir).and_then(|d| d.entries().get(*next));
        let Some(entry) = entry else {
            stack.pop();
            continue;
        };
        *next += 1;
        path.truncate(*base);
        path.push(b'/');
        path.extend_from_slice(&entry.name);
        let id = entry.inode;
        let inode = fs.get(id).ok_or_else(|| dangling(id))?;
        if let Some(target) = first.get(&id) {
            visit(Visit {
                path: &path,
                inode,
                link_to: Some(target),
            })?;
            continue;
        }
        if names.get(id.index()).is_some_and(|&n| n > 1) {
            first.insert(id, path.as_slice().into());
        }
        visit(Visit {
            path: &path,
            inode,
            link_to: None,
        })?;
        if matches!(inode.kind, InodeKind::Directory(_)) {
            let len = path.len();
            stack.push((id, 0, len));
        }
    }
    Ok(())
}

/// Appends the decimal form of `v` (avoids `fmt` in the per-line hot path).
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        if let Some(slot) = tmp.get_mut(i) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.extend_from_slice(tmp.get(i..).unwrap_or_default());
}

fn push_octal(buf: &mut Vec<u8>, mut v: u32) {
    let mut tmp = [0u8; 11];
    let mut i = tmp.len();
    loop {
        i -= 1;
        if let Some(slot) = tmp.get_mut(i) {
            *slot = b'0' + (v & 7) as u8;
        }
        v >>= 3;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.extend_from_slice(tmp.get(i..).unwrap_or_default());
}

fn external(inode: &Inode) -> Option<&ExternalFile> {
    match &inode.kind {
        InodeKind::Regular(RegularFile::External(ext)) => Some(ext),
        _ => None,
    }
}

/// One `composefs-info dump` line (C `dump_node`).
fn write_dump_line<W: Write>(
    out: &mut W,
    num: &mut Vec<u8>,
    path: &[u8],
    inode: &Inode,
    link_to: Option<&[u8]>,
) -> io::Result<()> {
    write_escaped(out, path, Style::Standard)?;
    let rdev = match inode.kind {
        InodeKind::CharDevice(r) | InodeKind::BlockDevice(r) => u64::from(r),
        _ => 0,
    };
    let mtime = inode.stat.mtime;
    num.clear();
    num.push(b' ');
    push_u64(num, inode.size());
    num.push(b' ');
    if link_to.is_some() {
        num.push(b'@');
    }
    push_octal(num, inode.st_mode());
    for v in [
        u64::from(inode.nlink),
        u64::from(inode.stat.uid),
        u64::from(inode.stat.gid),
        rdev,
    ] {
        num.push(b' ');
        push_u64(num, v);
    }
    num.push(b' ');
    if mtime.sec < 0 {
        num.push(b'-');
    }
    push_u64(num, mtime.sec.unsigned_abs());
    num.push(b'.');
    push_u64(num, u64::from(mtime.nsec));
    num.push(b' ');
    out.write_all(num)?;

    let payload = match (&inode.kind, link_to) {
        (_, Some(target)) => Some(target),
        (InodeKind::Symlink(target), None) => Some(&**target),
        (_, None) => external(inode).and_then(|e| e.payload.as_deref()),
    };
    write_optional(out, payload)?;
    out.write_all(b" ")?;
    let content = match &inode.kind {
        InodeKind::Regular(RegularFile::Inline(c)) if !c.is_empty() => Some(&**c),
        _ => None,
    };
    write_optional(out, content)?;
    out.write_all(b" ")?;
    match external(inode).and_then(|e| e.digest) {
        Some(d) => out.write_all(d.to_hex().as_bytes())?,
        None => out.write_all(b"-")?,
    }
    for x in inode.stat.xattrs.iter() {
        out.write_all(b" ")?;
        write_escaped(out, &x.name, Style::Xattr)?;
        out.write_all(b"=")?;
        write_escaped(out, &x.value, Style::Xattr)?;
    }
    out.write_all(b"\n")
}

/// Writes `fs` in the `composefs-info dump` format: the root, then every name
/// depth-first in stored order, hard links after the first name as `@` lines.
pub fn write_dumpfile<W: Write>(fs: &FileSystem, out: W) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut num = Vec::with_capacity(128);
    let root = fs.get(fs.root()).ok_or_else(|| dangling(fs.root()))?;
    write_dump_line(&mut out, &mut num, b"/", root, None)?;
    walk(fs, |v| {
        write_dump_line(&mut out, &mut num, v.path, v.inode, v.link_to)
    })?;
    out.flush()
}

/// Writes `fs` as composefs-rs's `cfsctl` prints dumpfiles: like
/// [`write_dumpfile`], except that a later name of a hard-linked inode is a
/// bare link line, `PATH 0 @120000 - - - - 0.0 FIRST-NAME - -` (the
/// dumpfile format accepts both).
pub fn write_dumpfile_rs_links<W: Write>(fs: &FileSystem, out: W) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut num = Vec::with_capacity(128);
    let root = fs.get(fs.root()).ok_or_else(|| dangling(fs.root()))?;
    write_dump_line(&mut out, &mut num, b"/", root, None)?;
    walk(fs, |v| match v.link_to {
        Some(target) => write_hardlink_line(&mut out, v.path, target),
        None => write_dump_line(&mut out, &mut num, v.path, v.inode, None),
    })?;
    out.flush()
}

/// Writes one dumpfile line for `inode` at `path`, as it stands (its own
/// `nlink`, no tree around it): the per-entry listing of a layer. An empty
/// path is written as `-`.
pub fn write_entry_line<W: Write>(out: &mut W, path: &[u8], inode: &Inode) -> io::Result<()> {
    if path.is_empty() {
        // write_dump_line escapes the path; an empty one must still be a field.
        let mut line = Vec::with_capacity(128);
        write_dump_line(&mut line, &mut Vec::new(), b"/", inode, None)?;
        out.write_all(b"-")?;
        return out.write_all(line.get(1..).unwrap_or_default());
    }
    write_dump_line(out, &mut Vec::with_capacity(128), path, inode, None)
}

/// Writes the composefs-rs hard-link line `PATH 0 @120000 - - - - 0.0
/// TARGET - -`.
pub fn write_hardlink_line<W: Write>(out: &mut W, path: &[u8], target: &[u8]) -> io::Result<()> {
    write_escaped(out, path, Style::Standard)?;
    out.write_all(b" 0 @120000 - - - - 0.0 ")?;
    write_optional(out, Some(target))?;
    out.write_all(b" - -\n")
}

/// Writes `fs` in the `composefs-info ls` format: every name below the root,
/// with `/` + TAB after directories, TAB `-> target` after symlinks and TAB
/// `@ payload` after backed regular files; later hard-link names bare.
pub fn write_ls<W: Write>(fs: &FileSystem, out: W) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    walk(fs, |v| {
        write_escaped(&mut out, v.path, Style::Ls)?;
        if v.link_to.is_none() {
            match &v.inode.kind {
                InodeKind::Directory(_) => out.write_all(b"/\t")?,
                InodeKind::Symlink(target) => {
                    out.write_all(b"\t-> ")?;
                    write_escaped(&mut out, target, Style::Standard)?;
                }
                _ => {
                    if let Some(p) = external(v.inode).and_then(|e| e.payload.as_deref()) {
                        out.write_all(b"\t@ ")?;
                        write_escaped(&mut out, p, Style::Standard)?;
                    }
                }
            }
        }
        out.write_all(b"\n")
    })?;
    out.flush()
}

/// The payloads (object paths) of all reachable regular files, sorted by
/// bytes and without duplicates (`composefs-info objects`, whose list of
/// several images is the sorted, de-duplicated union of these).
pub fn object_paths(fs: &FileSystem) -> Vec<&[u8]> {
    let mut paths: Vec<&[u8]> = Vec::new();
    // The callback never fails; a dangling entry (invalid tree) ends the walk.
    let _ = walk(fs, |v| {
        if v.link_to.is_none()
            && let Some(p) = external(v.inode).and_then(|e| e.payload.as_deref())
        {
            paths.push(p);
        }
        Ok(())
    });
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// Writes [`object_paths`], one per line, unescaped (`composefs-info objects`).
pub fn write_objects<W: Write>(fs: &FileSystem, out: W) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    for p in object_paths(fs) {
        out.write_all(p)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
#[path = "print_tests.rs"]
mod tests;
