//! Random trees for the write → read property test, and the normaliser that
//! maps a tree to what an image can carry back.
//!
//! Normalisation (applied to both trees before comparing; see [`canon`]):
//! - hard links: the first name in depth-first name order is the primary one
//!   (the reader's rule), whatever the input said;
//! - directories: `size` dropped (the image's size is layout-dependent),
//!   nlink = 2 + subdirectories (the writer recomputes it);
//! - xattrs sorted by name (the reader gives on-disk order);
//! - an external file of size 0 is an empty inline file, an empty payload is
//!   no payload (the writer stores neither);
//! - overlay markers (only in the expected tree): `user.overlay.whiteout`,
//!   `user.overlay.whiteouts` and `trusted.overlay.whiteouts` are dropped; a
//!   regular file with `trusted.overlay.whiteout` becomes a whiteout (char
//!   device 0:0), and no whiteout keeps that xattr; in a version 1 image every directory
//!   that holds a whiteout (by its primary name) gets
//!   `trusted.overlay.opaque=x` and `user.overlay.opaque=x`.

use std::collections::{HashMap, HashSet};

use cfs_core::tree::{
    DirEntry, Directory, ExternalFile, FileSystem, Inode, InodeId, InodeKind, Mtime, RegularFile,
    Stat, Xattrs,
};
use cfs_core::verity::Digest;
use proptest::prelude::*;

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Dir,
    Inline(Vec<u8>),
    External {
        size: u64,
        payload: Option<Vec<u8>>,
        digest: Option<(bool, u8)>,
    },
    Symlink(Vec<u8>),
    Chr(u32),
    Blk(u32),
    Fifo,
    Socket,
    Link(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct Spec {
    parent: usize,
    name: Vec<u8>,
    kind: Kind,
    stat: (u16, u32, u32, i64, u32),
    nlink: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"abz09.-_".to_vec()),
        1 => any::<u8>().prop_filter("no slash or NUL", |b| *b != b'/' && *b != 0),
    ];
    prop::collection::vec(byte, 1..10).prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn xattr() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let prefix = prop::sample::select(vec![
        &b"user."[..],
        b"user.overlay.",
        b"trusted.",
        b"trusted.overlay.",
        b"trusted.overlay.overlay.",
        b"security.",
        b"lustre.",
        b"system.posix_acl_access",
        b"system.posix_acl_default",
        b"system.other",
    ]);
    let suffix = prop_oneof![
        3 => prop::collection::vec(prop::sample::select(b"abxy.".to_vec()), 0..6),
        1 => prop::sample::select(vec![
            b"whiteout".to_vec(),
            b"whiteouts".to_vec(),
            b"opaque".to_vec(),
            b"redirect".to_vec(),
            b"metacopy".to_vec(),
        ]),
    ];
    let value = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..12),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ];
    (prefix, suffix, value)
        .prop_map(|(p, s, v)| ([p, &s[..]].concat(), v))
        .prop_filter("names need a suffix unless whole", |(n, _)| {
            !n.ends_with(b".")
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::Dir),
        3 => prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..80),
            1 => prop::collection::vec(any::<u8>(), 2000..5001),
        ]
        .prop_map(Kind::Inline),
        3 => (
            prop_oneof![Just(0u64), 1u64..10_000, 1u64..(1 << 50)],
            prop::option::of(prop_oneof![
                4 => prop::collection::vec(prop::sample::select(b"0123456789abcdef/".to_vec()), 0..70),
                1 => prop::collection::vec(1u8..=255, 1..20),
            ]),
            prop::option::of((any::<bool>(), any::<u8>())),
        )
            .prop_map(|(size, payload, digest)| Kind::External { size, payload, digest }),
        2 => prop_oneof![
            4 => prop::collection::vec(1u8..=255, 1..40),
            1 => prop::collection::vec(1u8..=255, 3990..4096),
        ]
        .prop_map(Kind::Symlink),
        1 => prop_oneof![Just(0u32), any::<u32>()].prop_map(Kind::Chr),
        1 => any::<u32>().prop_map(Kind::Blk),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::Socket),
        2 => any::<usize>().prop_map(Kind::Link),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let stat = (
        0u16..0o10000,
        prop_oneof![0u32..3, 65530u32..65540, any::<u32>()],
        prop_oneof![0u32..3, any::<u32>()],
        prop_oneof![
            Just(0i64),
            -3i64..3,
            1_000_000_000i64..1_000_000_003,
            any::<i64>()
        ],
        prop_oneof![Just(0u32), 0u32..1_000_000_000, any::<u32>()],
    );
    (
        any::<usize>(),
        name(),
        kind(),
        stat,
        prop_oneof![Just(1u32), 0u32..5, 65530u32..70000],
        prop::collection::vec(xattr(), 0..4),
    )
        .prop_map(|(parent, name, kind, stat, nlink, xattrs)| Spec {
            parent,
            name,
            kind,
            stat,
            nlink,
            xattrs,
        })
}

fn to_stat(
    (mode, uid, gid, sec, nsec): (u16, u32, u32, i64, u32),
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> Stat {
    let mut x = Xattrs::new();
    for (n, v) in xattrs {
        x.set(n, v);
    }
    Stat {
        mode,
        uid,
        gid,
        mtime: Mtime::new(sec, nsec),
        xattrs: x,
    }
}

/// A random valid tree.
pub(crate) fn tree() -> impl Strategy<Value = FileSystem> {
    (spec(), prop::collection::vec(spec(), 0..40)).prop_map(|(root, specs)| {
        let mut fs = FileSystem::new(to_stat(root.stat, &root.xattrs));
        let mut dirs = vec![fs.root()];
        let mut others: Vec<InodeId> = Vec::new();
        let mut taken: HashSet<(InodeId, Vec<u8>)> = HashSet::new();
        for s in specs {
            let parent = dirs[s.parent % dirs.len()];
            if !taken.insert((parent, s.name.clone())) {
                continue;
            }
            let (child, alias) = match s.kind {
                Kind::Link(i) if !others.is_empty() => (others[i % others.len()], true),
                Kind::Link(_) => continue,
                kind => {
                    let kind = match kind {
                        Kind::Dir => InodeKind::Directory(Directory::new()),
                        Kind::Inline(c) => InodeKind::Regular(RegularFile::Inline(c.into())),
                        Kind::External {
                            size,
                            payload,
                            digest,
                        } => InodeKind::Regular(RegularFile::External(ExternalFile {
                            size,
                            payload: payload.map(Into::into),
                            digest: digest.map(|(sha512, fill)| {
                                if sha512 {
                                    Digest::sha512([fill; 64])
                                } else {
                                    Digest::sha256([fill; 32])
                                }
                            }),
                        })),
                        Kind::Symlink(t) => InodeKind::Symlink(t.into()),
                        Kind::Chr(r) => InodeKind::CharDevice(r),
                        Kind::Blk(r) => InodeKind::BlockDevice(r),
                        Kind::Fifo => InodeKind::Fifo,
                        Kind::Socket => InodeKind::Socket,
                        Kind::Link(_) => unreachable!(),
                    };
                    let is_dir = matches!(kind, InodeKind::Directory(_));
                    let mut inode = Inode::new(to_stat(s.stat, &s.xattrs), kind);
                    inode.nlink = s.nlink;
                    let id = fs.push_inode(inode);
                    if is_dir {
                        dirs.push(id);
                    } else {
                        others.push(id);
                    }
                    (id, false)
                }
            };
            fs.directory_mut(parent).unwrap().push(DirEntry {
                name: s.name.into(),
                inode: child,
                alias,
            });
        }
        fs.sort_directories();
        fs
    })
}

/// One name of the canonical form: path, primary path if a later name, and
/// the normalised inode.
pub(crate) type Record = (Vec<u8>, Option<Vec<u8>>, Inode);

const DROPPED: [&[u8]; 3] = [
    b"user.overlay.whiteout",
    b"user.overlay.whiteouts",
    b"trusted.overlay.whiteouts",
];

fn normalise_inode(fs: &FileSystem, inode: &Inode, markers: bool, expected: bool) -> Inode {
    let mut inode = inode.clone();
    if expected {
        inode.stat.xattrs.retain(|x| !DROPPED.contains(&&*x.name));
        if matches!(inode.kind, InodeKind::Regular(_))
            && inode.stat.xattrs.get(b"trusted.overlay.whiteout").is_some()
        {
            inode.kind = InodeKind::CharDevice(0);
        }
        if inode.kind.is_whiteout() {
            inode.stat.xattrs.remove(b"trusted.overlay.whiteout");
        }
        if markers {
            inode.stat.xattrs.set(b"trusted.overlay.opaque", b"x");
            inode.stat.xattrs.set(b"user.overlay.opaque", b"x");
        }
    }
    inode.stat.xattrs.sort();
    match &mut inode.kind {
        InodeKind::Directory(d) => {
            let subdirs = d
                .entries()
                .iter()
                .filter(|e| fs.directory(e.inode).is_some())
                .count();
            inode.nlink = 2 + subdirs as u32;
            inode.kind = InodeKind::Directory(Directory::new());
        }
        InodeKind::Regular(RegularFile::External(e)) if e.size == 0 => {
            inode.kind = InodeKind::Regular(RegularFile::Inline(Box::default()));
        }
        InodeKind::Regular(RegularFile::External(e)) if e.payload.as_deref() == Some(b"") => {
            e.payload = None;
        }
        _ => {}
    }
    inode
}

/// The canonical form of a tree; `expected` applies the overlay-marker
/// normalisation for an image of format `version`.
pub(crate) fn canon(fs: &FileSystem, expected: bool, version: u32) -> Vec<Record> {
    // Directories holding a whiteout by a primary name.
    let mut marked: HashSet<InodeId> = HashSet::new();
    if expected && version >= 1 {
        for (i, inode) in fs.inodes().iter().enumerate() {
            if let Some(d) = inode.as_directory()
                && d.entries()
                    .iter()
                    .any(|e| !e.alias && fs.inode(e.inode).kind.is_whiteout())
            {
                marked.insert(InodeId(i as u32));
            }
        }
    }
    let mut first: HashMap<InodeId, Vec<u8>> = HashMap::new();
    let root = normalise_inode(
        fs,
        fs.inode(fs.root()),
        marked.contains(&fs.root()),
        expected,
    );
    let mut out = vec![(b"/".to_vec(), None, root)];
    fs.walk(|path, e| {
        let primary = first.get(&e.inode).cloned();
        if primary.is_none() {
            first.insert(e.inode, path.to_vec());
        }
        let inode = normalise_inode(fs, fs.inode(e.inode), marked.contains(&e.inode), expected);
        out.push((path.to_vec(), primary, inode));
    });
    out
}

/// Checks that the alias flags follow the reader's rule (first name primary).
pub(crate) fn aliases_follow_first_name(fs: &FileSystem) -> bool {
    let mut seen = HashSet::new();
    let mut ok = true;
    fs.walk(|_, e| ok &= e.alias != seen.insert(e.inode));
    ok
}
