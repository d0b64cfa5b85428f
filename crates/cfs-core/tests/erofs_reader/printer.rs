//! A minimal `composefs-info dump/ls/objects` printer for the reader tests
//! (dumpfile.md §10 and cli-compat.md §3), independent of `cfs_core::dumpfile`.

use std::collections::HashMap;
use std::io::Write;

use cfs_core::tree::{FileSystem, Inode, InodeId, InodeKind, RegularFile};

fn escape(out: &mut Vec<u8>, bytes: &[u8], xattr: bool, keep_print: bool) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'=' if xattr => out.extend_from_slice(b"\\x3d"),
            0x21..=0x7e => out.push(b),
            b' ' if keep_print => out.push(b),
            _ => write!(out, "\\x{b:02x}").unwrap(),
        }
    }
}

fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None | Some(b"") => out.push(b'-'),
        Some(b"-") => out.extend_from_slice(b"\\x2d"),
        Some(b) => escape(out, b, false, false),
    }
}

fn line(out: &mut Vec<u8>, path: &[u8], inode: &Inode, link_target: Option<&[u8]>) {
    escape(out, path, false, false);
    let rdev = match inode.kind {
        InodeKind::CharDevice(r) | InodeKind::BlockDevice(r) => r,
        _ => 0,
    };
    let at = if link_target.is_some() { "@" } else { "" };
    write!(
        out,
        " {} {at}{:o} {} {} {} {rdev} {}.{} ",
        inode.size(),
        inode.st_mode(),
        inode.nlink,
        inode.stat.uid,
        inode.stat.gid,
        inode.stat.mtime.sec,
        inode.stat.mtime.nsec
    )
    .unwrap();
    let (payload, content, digest) = match &inode.kind {
        InodeKind::Symlink(t) => (Some(&**t), None, None),
        InodeKind::Regular(RegularFile::Inline(c)) => (None, Some(&**c), None),
        InodeKind::Regular(RegularFile::External(e)) => (e.payload.as_deref(), None, e.digest),
        _ => (None, None, None),
    };
    optional(out, link_target.or(payload));
    out.push(b' ');
    optional(out, content);
    out.push(b' ');
    match digest {
        Some(d) => out.extend_from_slice(d.to_hex().as_bytes()),
        None => out.push(b'-'),
    }
    for x in inode.stat.xattrs.iter() {
        out.push(b' ');
        escape(out, &x.name, true, false);
        out.push(b'=');
        escape(out, &x.value, true, false);
    }
    out.push(b'\n');
}

/// `composefs-info dump`.
pub(crate) fn dump(fs: &FileSystem) -> Vec<u8> {
    let mut out = Vec::new();
    line(&mut out, b"/", fs.inode(fs.root()), None);
    let mut primary: HashMap<InodeId, Vec<u8>> = HashMap::new();
    fs.walk(|path, e| {
        let inode = fs.inode(e.inode);
        if e.alias {
            line(&mut out, path, inode, Some(&primary[&e.inode]));
        } else {
            primary.insert(e.inode, path.to_vec());
            line(&mut out, path, inode, None);
        }
    });
    out
}

/// `composefs-info ls`.
pub(crate) fn ls(fs: &FileSystem) -> Vec<u8> {
    let mut out = Vec::new();
    fs.walk(|path, e| {
        escape(&mut out, path, false, true);
        match &fs.inode(e.inode).kind {
            // C prints hard links (later names) as the bare path.
            _ if e.alias => {}
            InodeKind::Directory(_) => out.extend_from_slice(b"/\t"),
            InodeKind::Symlink(t) => {
                out.extend_from_slice(b"\t-> ");
                escape(&mut out, t, false, true);
            }
            InodeKind::Regular(RegularFile::External(x)) if x.payload.is_some() => {
                out.extend_from_slice(b"\t@ ");
                escape(&mut out, x.payload.as_deref().unwrap(), false, true);
            }
            _ => {}
        }
        out.push(b'\n');
    });
    out
}

/// `composefs-info objects`.
pub(crate) fn objects(fs: &FileSystem) -> Vec<u8> {
    let mut all: Vec<&[u8]> = fs
        .inodes()
        .iter()
        .filter_map(|i| match &i.kind {
            InodeKind::Regular(RegularFile::External(x)) => x.payload.as_deref(),
            _ => None,
        })
        .collect();
    all.sort();
    all.dedup();
    let mut out = Vec::new();
    for p in all {
        out.extend_from_slice(p);
        out.push(b'\n');
    }
    out
}
