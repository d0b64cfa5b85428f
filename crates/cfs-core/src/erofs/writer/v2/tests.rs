//! V2 writer: hand-checked layout facts and a round trip through the reader.

use proptest::prelude::*;

use super::*;
use crate::erofs::format::{ComposefsHeader, InodeExtended, SUPERBLOCK_OFFSET, Superblock};
use crate::erofs::reader::{Image, ReadOptions, read_image};
use crate::tree::{DirEntry, Directory, ExternalFile, Inode, Mtime, Stat};
use crate::verity::Digest;
use zerocopy::FromBytes;

fn stat(mode: u16, sec: i64) -> Stat {
    Stat {
        mode,
        uid: 0,
        gid: 0,
        mtime: Mtime::new(sec, 0),
        xattrs: Default::default(),
    }
}

fn add(fs: &mut FileSystem, dir: InodeId, name: &[u8], inode: Inode) -> InodeId {
    let id = fs.push_inode(inode);
    link(fs, dir, name, id);
    id
}

fn link(fs: &mut FileSystem, dir: InodeId, name: &[u8], id: InodeId) {
    let alias = (0..fs.len()).any(|i| {
        fs.directory(InodeId(i as u32))
            .is_some_and(|d| d.entries().iter().any(|e| e.inode == id))
    });
    fs.directory_mut(dir)
        .unwrap()
        .insert(DirEntry {
            name: name.into(),
            inode: id,
            alias,
        })
        .unwrap();
}

fn v2(fs: &FileSystem) -> Vec<u8> {
    let mut out = Vec::new();
    let s = write_image_v2(fs, &mut out).unwrap();
    assert_eq!(s.size, out.len() as u64);
    assert_eq!(out.len() % BLOCK_SIZE, 0);
    out
}

fn external(byte: u8, size: u64) -> InodeKind {
    let d = Digest::sha256([byte; 32]);
    InodeKind::Regular(RegularFile::External(ExternalFile {
        size,
        payload: Some(d.object_path().into_bytes().into()),
        digest: Some(d),
    }))
}

#[test]
fn header_superblock_and_root() {
    let mut fs = FileSystem::new(stat(0o755, 100));
    add(
        &mut fs,
        InodeId::ROOT,
        b"f",
        Inode::new(stat(0o644, 7), external(1, 5000)),
    );
    let img = v2(&fs);
    let (h, _) = ComposefsHeader::read_from_prefix(&img).unwrap();
    assert_eq!(h.composefs_version.get(), 2);
    assert_eq!(h.flags.get(), 0);
    let (sb, _) = Superblock::read_from_prefix(&img[SUPERBLOCK_OFFSET..]).unwrap();
    assert_eq!(sb.build_time.get(), 0);
    assert_eq!(sb.xattr_blkaddr.get(), 0);
    assert_eq!(sb.inos.get(), 2);
    assert_eq!(
        sb.root_nid.get(),
        36,
        "the root is the first inode, at 1152"
    );
    assert_eq!(sb.blocks.get(), 1);
    let (root, _) = InodeExtended::read_from_prefix(&img[1152..]).unwrap();
    assert_eq!(root.i_format.get() & 1, 1, "extended");
    assert_eq!(root.i_ino.get(), 36, "i_ino is the nid");
    assert_eq!(root.i_nlink.get(), 2);
    assert_eq!(root.i_mtime.get(), 100);
    // The image reads back: one external file with its digest.
    let image = Image::open(&img).unwrap();
    assert_eq!(image.info().composefs_version, 2);
    let (back, _) = read_image(&img, &ReadOptions::default()).unwrap();
    let f = back.lookup(b"/f").unwrap();
    assert_eq!(back.inode(f).kind, external(1, 5000));
}

#[test]
fn dfs_order_dot_entries_sorted_and_nids() {
    // "+x" sorts before ".", "a" after "..": V2 sorts the dot entries with the names.
    let mut fs = FileSystem::new(stat(0o755, 1));
    let a = add(
        &mut fs,
        InodeId::ROOT,
        b"a",
        Inode::new(stat(0o755, 1), InodeKind::Directory(Directory::new())),
    );
    add(
        &mut fs,
        a,
        b"deep",
        Inode::new(stat(0o644, 1), InodeKind::Fifo),
    );
    add(
        &mut fs,
        InodeId::ROOT,
        b"+x",
        Inode::new(stat(0o644, 1), InodeKind::Socket),
    );
    add(
        &mut fs,
        InodeId::ROOT,
        b"b",
        Inode::new(stat(0o644, 1), InodeKind::Fifo),
    );
    let plan = Plan::build(&fs).unwrap();
    let order: Vec<InodeId> = plan.nodes.iter().map(|n| n.id).collect();
    // root, "+x", "a", "a/deep", "b": the subtree of a before b.
    let ids = |p: &[u8]| fs.lookup(p).unwrap();
    assert_eq!(
        order,
        vec![
            InodeId::ROOT,
            ids(b"/+x"),
            ids(b"/a"),
            ids(b"/a/deep"),
            ids(b"/b")
        ]
    );
    let names: Vec<&[u8]> = plan.nodes[0]
        .dir
        .as_ref()
        .unwrap()
        .inline
        .iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![&b"+x"[..], b".", b"..", b"a", b"b"]);
    assert_eq!(plan.nodes[0].nlink, 3);
}

#[test]
fn shared_xattrs_ascending_by_prefix_index() {
    let mut fs = FileSystem::new(stat(0o755, 1));
    for name in [&b"p"[..], b"q"] {
        let mut s = stat(0o644, 1);
        s.xattrs.set(b"user.b", b"1");
        s.xattrs.set(b"security.selinux", b"x");
        s.xattrs.set(b"trusted.overlay.opaque", b"y");
        s.xattrs.set(b"lustre.l", b"z");
        add(&mut fs, InodeId::ROOT, name, Inode::new(s, InodeKind::Fifo));
    }
    let plan = Plan::build(&fs).unwrap();
    let keys: Vec<(u8, &[u8])> = plan.shared.iter().map(|a| (a.index, &*a.suffix)).collect();
    assert_eq!(
        keys,
        vec![
            (1, &b"b"[..]),
            (4, b"overlay.overlay.opaque"),
            (5, b"l"),
            (6, b"selinux")
        ]
    );
    // Each inode lists its ids in the order its xattrs were added (name order).
    // Names in byte order: lustre.l, security.selinux, trusted.overlay.opaque, user.b.
    assert_eq!(plan.nodes[1].shared, vec![2, 3, 1, 0]);
    assert!(plan.nodes[1].local.is_empty());
}

#[test]
fn refuses_what_no_reader_could_read() {
    let mut fs = FileSystem::new(stat(0o755, 1));
    let target = vec![b'a'; 4050];
    add(
        &mut fs,
        InodeId::ROOT,
        b"l",
        Inode::new(stat(0o777, 1), InodeKind::Symlink(target.into())),
    );
    let e = write_image_v2(&fs, &mut Vec::new()).unwrap_err();
    assert!(
        e.to_string().contains("/l: 4050 bytes of inline data"),
        "{e}"
    );

    let mut fs = FileSystem::new(stat(0o755, 1));
    let w = add(
        &mut fs,
        InodeId::ROOT,
        b"w",
        Inode::new(stat(0o644, 1), InodeKind::CharDevice(0)),
    );
    link(&mut fs, InodeId::ROOT, b"w2", w);
    let e = write_image_v2(&fs, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("cannot be hard-linked"), "{e}");
}

/// A random tree: entries (parent choice, name, kind) applied in order.
#[derive(Debug, Clone)]
enum Kind {
    Dir,
    Inline(Vec<u8>),
    External(u8, u64),
    Symlink(Vec<u8>),
    Device(bool, u32),
    Fifo,
    Link(usize),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Dir),
        2 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Kind::Inline),
        3 => (any::<u8>(), 1u64..1 << 40).prop_map(|(b, s)| Kind::External(b, s)),
        2 => proptest::collection::vec(1u8..=255, 1..300)
            .prop_map(|v| Kind::Symlink(v.into_iter().map(|b| if b == b'/' { b'x' } else { b }).collect())),
        1 => (any::<bool>(), 1u32..).prop_map(|(c, r)| Kind::Device(c, r)),
        1 => Just(Kind::Fifo),
        2 => any::<usize>().prop_map(Kind::Link),
    ]
}

const XATTRS: [(&[u8], &[u8]); 7] = [
    (b"user.a", b"1"),
    (b"user.a", b"2"),
    (b"security.selinux", b"system_u:object_r:usr_t:s0"),
    (b"trusted.overlay.origin", b"o"),
    (b"lustre.lov", b"l"),
    (b"system.posix_acl_access", b"\x02\x00\x00\x00"),
    (b"unknown.prefix", b"u"),
];

fn build(spec: &[(usize, String, Kind, u8, i64)]) -> FileSystem {
    let mut fs = FileSystem::new(stat(0o755, 10));
    let mut dirs = vec![InodeId::ROOT];
    let mut files: Vec<InodeId> = Vec::new();
    for (parent, name, kind, xmask, mtime) in spec {
        let dir = dirs[parent % dirs.len()];
        if fs.directory(dir).unwrap().get(name.as_bytes()).is_some() {
            continue;
        }
        let mut s = stat(0o640, *mtime);
        s.uid = u32::from(*xmask) * 1000;
        for (i, (n, v)) in XATTRS.iter().enumerate() {
            if xmask & (1 << i) != 0 {
                s.xattrs.set(n, v);
            }
        }
        let inode = |k| Inode::new(s.clone(), k);
        match kind {
            Kind::Dir => {
                let id = add(
                    &mut fs,
                    dir,
                    name.as_bytes(),
                    inode(InodeKind::Directory(Directory::new())),
                );
                dirs.push(id);
            }
            Kind::Link(i) if !files.is_empty() => {
                let id = files[i % files.len()];
                link(&mut fs, dir, name.as_bytes(), id);
            }
            Kind::Link(_) => {}
            other => {
                let k = match other {
                    Kind::Inline(d) => InodeKind::Regular(RegularFile::Inline(d.clone().into())),
                    Kind::External(b, size) => external(*b, *size),
                    Kind::Symlink(t) => InodeKind::Symlink(t.clone().into()),
                    Kind::Device(true, r) => InodeKind::CharDevice(*r),
                    Kind::Device(false, r) => InodeKind::BlockDevice(*r),
                    _ => InodeKind::Fifo,
                };
                files.push(add(&mut fs, dir, name.as_bytes(), inode(k)));
            }
        }
    }
    fs
}

/// The tree as the reader gives it back: sorted xattrs, directory sizes
/// and link counts as V2 stores them.
fn normalized(fs: &FileSystem) -> String {
    let mut fs = fs.clone();
    let links = link_counts(&fs);
    for (i, &count) in links.iter().enumerate() {
        let id = InodeId(i as u32);
        let subdirs = fs.directory(id).map(|d| {
            d.entries()
                .iter()
                .filter(|e| fs.directory(e.inode).is_some())
                .count() as u32
        });
        let inode = fs.inode_mut(id);
        inode.stat.xattrs.sort();
        match &mut inode.kind {
            InodeKind::Directory(d) => {
                d.size = 0;
                inode.nlink = 2 + subdirs.unwrap_or(0);
            }
            _ => inode.nlink = count,
        }
    }
    let mut out = Vec::new();
    crate::dumpfile::write_dumpfile(&fs, &mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random tree → V2 image → reader → the same tree; and the tree read
    /// back writes the same bytes.
    #[test]
    fn v2_round_trip(spec in proptest::collection::vec(
        (any::<usize>(), "[a-z.+_-]{1,40}", kind(), any::<u8>(), -5i64..5_000_000_000),
        0..120,
    )) {
        let spec: Vec<_> = spec
            .into_iter()
            .filter(|(_, n, ..)| n != "." && n != "..")
            .collect();
        let fs = build(&spec);
        let mut img = Vec::new();
        write_image_v2(&fs, &mut img).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (back, info) = read_image(&img, &ReadOptions::default())
            .map_err(|e| TestCaseError::fail(format!("reader refused: {e}")))?;
        prop_assert_eq!(info.composefs_version, 2);
        prop_assert_eq!(normalized(&fs), normalized(&back));
        let mut again = Vec::new();
        write_image_v2(&back, &mut again).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(again == img, "the tree read back writes a different image");
    }
}

/// Directories large enough for whole blocks, and tails that straddle blocks.
#[test]
fn big_directories_and_straddling_tails() {
    let mut fs = FileSystem::new(stat(0o755, 1));
    for i in 0..600 {
        let name = format!("entry-with-a-longish-name-{i:04}");
        let mut s = stat(0o644, 1);
        if i % 7 == 0 {
            s.xattrs.set(b"user.note", format!("{i}").as_bytes());
        }
        let kind = if i % 3 == 0 {
            InodeKind::Symlink(vec![b'x'; 100 + i % 900].into())
        } else {
            InodeKind::Regular(RegularFile::Inline(vec![b'y'; i % 300].into()))
        };
        add(&mut fs, InodeId::ROOT, name.as_bytes(), Inode::new(s, kind));
    }
    let img = v2(&fs);
    let (back, _) = read_image(&img, &ReadOptions::default()).unwrap();
    assert_eq!(normalized(&fs), normalized(&back));
    let root = plan_dir_blocks(&fs);
    assert!(root > 0, "the root needs whole blocks");
}

fn plan_dir_blocks(fs: &FileSystem) -> usize {
    Plan::build(fs).unwrap().nodes[0]
        .dir
        .as_ref()
        .unwrap()
        .blocks
        .len()
}
