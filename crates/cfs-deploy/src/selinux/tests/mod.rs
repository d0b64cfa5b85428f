//! Unit tests: small hand-written policies in small trees. Helpers here;
//! `label.rs` has the tree tests, `policy.rs` the loading and hostile-input ones.

mod label;
mod policy;

use cfs_core::tree::{
    DirEntry, Directory, ExternalFile, FileSystem, FileType, Inode, InodeId, InodeKind,
    RegularFile, Stat, Xattr,
};

use super::*;

/// What to put at a path.
#[derive(Clone, Copy)]
enum K<'a> {
    Dir,
    /// Inline regular file.
    File(&'a str),
    /// External regular file of this size.
    Ext(u64),
    Symlink,
    Fifo,
    Socket,
    Block,
    Char,
    /// Another name for the inode at this path.
    Link(&'a str),
}

const STALE: &[u8] = b"stale_u:object_r:stale_t:s0";

/// Every inode starts with a stale label, to see it replaced or removed.
fn stat(mode: u16) -> Stat {
    Stat {
        mode,
        xattrs: [Xattr {
            name: XATTR_NAME.into(),
            value: STALE.into(),
        }]
        .into_iter()
        .collect(),
        ..Stat::default()
    }
}

fn ensure_dir(fs: &mut FileSystem, path: &str) -> InodeId {
    let mut cur = InodeId::ROOT;
    for name in path.split('/').filter(|c| !c.is_empty()) {
        cur = match fs.directory(cur).unwrap().get(name.as_bytes()) {
            Some(e) => e.inode,
            None => {
                let id = fs.push_inode(Inode::new(
                    stat(0o755),
                    InodeKind::Directory(Directory::new()),
                ));
                link(fs, cur, name, id, false);
                id
            }
        };
    }
    cur
}

fn link(fs: &mut FileSystem, dir: InodeId, name: &str, inode: InodeId, alias: bool) {
    fs.directory_mut(dir)
        .unwrap()
        .insert(DirEntry {
            name: name.as_bytes().into(),
            inode,
            alias,
        })
        .unwrap();
}

fn add(fs: &mut FileSystem, path: &str, kind: K<'_>) {
    if let K::Dir = kind {
        ensure_dir(fs, path);
        return;
    }
    let (parent, name) = path.rsplit_once('/').unwrap();
    let dir = ensure_dir(fs, parent);
    let new = |fs: &mut FileSystem, kind| fs.push_inode(Inode::new(stat(0o644), kind));
    let (inode, alias) = match kind {
        K::Dir => unreachable!(),
        K::File(text) => (
            new(
                fs,
                InodeKind::Regular(RegularFile::Inline(text.as_bytes().into())),
            ),
            false,
        ),
        K::Ext(size) => {
            let ext = ExternalFile {
                size,
                payload: Some(b"ab/cdef".as_slice().into()),
                digest: None,
            };
            (
                new(fs, InodeKind::Regular(RegularFile::External(ext))),
                false,
            )
        }
        K::Symlink => (
            new(fs, InodeKind::Symlink(b"target".as_slice().into())),
            false,
        ),
        K::Fifo => (new(fs, InodeKind::Fifo), false),
        K::Socket => (new(fs, InodeKind::Socket), false),
        K::Block => (new(fs, InodeKind::BlockDevice(0x0801)), false),
        K::Char => (new(fs, InodeKind::CharDevice(0x0103)), false),
        K::Link(target) => {
            let id = fs.lookup(target.as_bytes()).unwrap();
            fs.inode_mut(id).nlink += 1;
            (id, true)
        }
    };
    link(fs, dir, name, inode, alias);
}

fn tree(entries: &[(&str, K<'_>)]) -> FileSystem {
    let mut fs = FileSystem::new(stat(0o755));
    for &(path, kind) in entries {
        add(&mut fs, path, kind);
    }
    fs
}

/// A tree holding a policy `t` with these files (name → text) plus `entries`.
fn with_policy(files: &[(&str, &str)], entries: &[(&str, K<'_>)]) -> FileSystem {
    let mut fs = tree(&[(
        "/etc/selinux/config",
        K::File("SELINUX=enforcing\nSELINUXTYPE=t\n"),
    )]);
    for (name, text) in files {
        add(
            &mut fs,
            &format!("/etc/selinux/t/contexts/files/{name}"),
            K::File(text),
        );
    }
    for &(path, kind) in entries {
        add(&mut fs, path, kind);
    }
    fs
}

fn no_external(path: &[u8], _: &ExternalFile) -> Result<Option<Vec<u8>>, SelinuxError> {
    panic!("unexpected read of {}", String::from_utf8_lossy(path))
}

fn run(fs: &mut FileSystem) -> Outcome {
    label(fs, &mut no_external).unwrap()
}

fn label_at(fs: &FileSystem, path: &str) -> Option<String> {
    let id = fs
        .lookup(path.as_bytes())
        .unwrap_or_else(|| panic!("{path} missing"));
    fs.inode(id)
        .stat
        .xattrs
        .get(XATTR_NAME)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn ctx(t: &str) -> Option<String> {
    Some(format!("system_u:object_r:{t}:s0"))
}

/// A policy loaded through a plain [`ReadFile`] over in-memory files.
fn load_from(files: &[(&str, &str)], order: LookupOrder) -> Policy {
    let mut read = |path: &[u8]| -> Result<Option<Vec<u8>>, SelinuxError> {
        let path = std::str::from_utf8(path).unwrap();
        if path == CONFIG_PATH {
            return Ok(Some(b"SELINUXTYPE=t\n".to_vec()));
        }
        let name = path.strip_prefix("/etc/selinux/t/contexts/files/").unwrap();
        Ok(files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_bytes().to_vec()))
    };
    Policy::load(&mut read, order).unwrap().unwrap()
}

fn label_err(entries: &[(&str, K<'_>)]) -> String {
    let mut fs = tree(entries);
    label(&mut fs, &mut no_external).unwrap_err().to_string()
}
