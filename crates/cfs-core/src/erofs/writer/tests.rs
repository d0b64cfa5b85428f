//! Worked examples of the specification, built by hand.

use sha2::{Digest as _, Sha256};

use super::*;
use crate::tree::{
    DirEntry, Directory, ExternalFile, Inode, InodeId, InodeKind, Mtime, RegularFile, Stat, Xattr,
};
use crate::verity::Digest;

fn stat(mode: u16, uid: u32, gid: u32, sec: i64, nsec: u32) -> Stat {
    Stat {
        mode,
        uid,
        gid,
        mtime: Mtime::new(sec, nsec),
        xattrs: Default::default(),
    }
}

fn add(fs: &mut FileSystem, dir: InodeId, name: &str, inode: Inode) -> InodeId {
    let id = fs.push_inode(inode);
    link(fs, dir, name, id, false);
    id
}

fn link(fs: &mut FileSystem, dir: InodeId, name: &str, id: InodeId, alias: bool) {
    fs.directory_mut(dir)
        .unwrap()
        .insert(DirEntry {
            name: name.as_bytes().into(),
            inode: id,
            alias,
        })
        .unwrap();
}

fn write(fs: &FileSystem, opts: &WriteOptions) -> (Vec<u8>, ImageSummary) {
    let mut out = Vec::new();
    let summary = write_image(fs, opts, &mut out).unwrap();
    assert_eq!(summary.size, out.len() as u64);
    (out, summary)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// erofs-image.md §13.1.
pub(super) fn minimal_tree() -> FileSystem {
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let digest =
        Digest::from_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
            .unwrap();
    let file = Inode::new(
        stat(0o644, 0, 0, 0, 0),
        InodeKind::Regular(RegularFile::External(ExternalFile {
            size: 100,
            payload: Some((*b"ab/cd").into()),
            digest: Some(digest),
        })),
    );
    let r = fs.root();
    add(&mut fs, r, "f", file);
    fs
}

#[test]
fn minimal_image() {
    let (img, summary) = write(&minimal_tree(), &WriteOptions::default());
    assert_eq!(img.len(), 16384);
    assert_eq!(summary.composefs_version, 0);
    assert_eq!(summary.inodes, 258);
    // Spot checks from the spec's hex dump.
    assert_eq!(
        &img[0x480..0x490],
        b"\x00\x00\x06\x00\xed\x41\x02\x00\x00\x10\x00\x00\x00\x00\x00\x00"
    );
    assert_eq!(&img[0x22c0..0x22c8], b"\x08\x00\x16\x00\xa4\x81\x01\x00");
    assert_eq!(&img[0x2340..0x2344], b"\xff\xff\xff\xff");
    assert_eq!(
        sha256_hex(&img),
        "99a894ec678caed3a56d88a1e7846f6a5f30886f548fa497871b75bb165424ed"
    );
}

/// dumpfile.md §11 / erofs-image.md §13.2.
pub(super) fn rich_tree() -> FileSystem {
    let t0 = 1_700_000_000;
    let mut root = stat(0o755, 0, 0, t0, 0);
    root.xattrs
        .set(b"security.selinux", b"system_u:object_r:root_t:s0\0");
    let mut fs = FileSystem::new(root);
    let r = fs.root();
    add(
        &mut fs,
        r,
        "bin",
        Inode::new(
            stat(0o777, 0, 0, t0, 0),
            InodeKind::Symlink((*b"usr/bin").into()),
        ),
    );
    let dev = add(
        &mut fs,
        r,
        "dev",
        Inode::new(
            stat(0o755, 0, 0, t0, 0),
            InodeKind::Directory(Directory::new()),
        ),
    );
    add(
        &mut fs,
        dev,
        "fifo",
        Inode::new(stat(0o644, 0, 0, t0, 0), InodeKind::Fifo),
    );
    add(
        &mut fs,
        dev,
        "null",
        Inode::new(stat(0o666, 0, 0, t0, 0), InodeKind::CharDevice(259)),
    );
    add(
        &mut fs,
        dev,
        "sda1",
        Inode::new(stat(0o660, 0, 6, t0, 0), InodeKind::BlockDevice(2049)),
    );
    let etc = add(
        &mut fs,
        r,
        "etc",
        Inode::new(
            stat(0o755, 0, 0, t0, 5),
            InodeKind::Directory(Directory::new()),
        ),
    );
    let mut hs = stat(0o644, 0, 0, t0 + 1, 123_456_789);
    hs.xattrs.set(b"user.note", b"a=b");
    let mut hostname = Inode::new(
        hs,
        InodeKind::Regular(RegularFile::Inline((*b"myhost\n\0 ").into())),
    );
    hostname.nlink = 2;
    let h = add(&mut fs, etc, "hostname", hostname);
    link(&mut fs, etc, "hostname-link", h, true);
    let hex = "0b6aeb8072e1260ee430edff44a4939b9a306ff4d0fd58d8b3ec40abf3ea7636";
    let mut os = stat(0o644, 0, 0, t0 + 2, 0);
    os.xattrs.push_unchecked(Xattr {
        name: (*b"trusted.overlay.redirect").into(),
        value: (*b"/evil").into(),
    });
    os.xattrs.set(b"user.x", b"");
    add(
        &mut fs,
        etc,
        "os release",
        Inode::new(
            os,
            InodeKind::Regular(RegularFile::External(ExternalFile {
                size: 1_048_576,
                payload: Some(format!("0b/{}", &hex[2..]).into_bytes().into()),
                digest: Some(Digest::from_hex(hex).unwrap()),
            })),
        ),
    );
    add(
        &mut fs,
        etc,
        "removed",
        Inode::new(stat(0, 0, 0, t0, 0), InodeKind::CharDevice(0)),
    );
    fs
}

#[test]
fn rich_image() {
    let (img, summary) = write(&rich_tree(), &WriteOptions::default());
    assert_eq!(
        summary.composefs_version, 1,
        "the whiteout raises the version"
    );
    assert_eq!(summary.inodes, 266);
    assert_eq!(img.len(), 24576);
    assert_eq!(
        sha256_hex(&img),
        "6bbc024ad3cae7f4b9091fbf0dee24f81660c41228ae44b791fe252b53549a5f"
    );
}

#[test]
fn version_bounds() {
    let fs = minimal_tree();
    let mut sink = Vec::new();
    for (min, max) in [(2, 1), (0, 2), (5, 5)] {
        let err = write_image(
            &fs,
            &WriteOptions {
                min_version: min,
                max_version: max,
            },
            &mut sink,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Invalid argument");
    }
    assert!(sink.is_empty());
    // max < min is raised; v0 and v1 of a tree without whiteouts differ only
    // in the header's version field.
    let (v1, s1) = write(
        &fs,
        &WriteOptions {
            min_version: 1,
            max_version: 0,
        },
    );
    let (v0, s0) = write(&fs, &WriteOptions::default());
    assert_eq!((s0.composefs_version, s1.composefs_version), (0, 1));
    assert_eq!(v0[..12], v1[..12]);
    assert_eq!(v0[16..], v1[16..]);
    // A whiteout with max 0 stays v0.
    let (_, s) = write(
        &rich_tree(),
        &WriteOptions {
            min_version: 0,
            max_version: 0,
        },
    );
    assert_eq!(s.composefs_version, 0);
}

#[test]
fn file_too_large() {
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let r = fs.root();
    let big = |size| {
        Inode::new(
            stat(0o644, 0, 0, 0, 0),
            InodeKind::Regular(RegularFile::External(ExternalFile {
                size,
                payload: None,
                digest: None,
            })),
        )
    };
    add(&mut fs, r, "ok", big(1 << 53));
    let mut sink = Vec::new();
    write_image(&fs, &WriteOptions::default(), &mut sink).unwrap();
    add(&mut fs, r, "z", big((1 << 53) + 1));
    let err = write_image(&fs, &WriteOptions::default(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "File too large");
    assert!(matches!(err, WriteError::FileTooLarge { ref path, .. } if path == "/z"));
}

#[test]
fn limits_of_other_producers() {
    type Case = (InodeKind, Vec<(Vec<u8>, Vec<u8>)>, &'static str);
    let cases: Vec<Case> = vec![
        (InodeKind::Symlink(Box::new([])), vec![], "symlink target"),
        (
            InodeKind::Symlink(vec![b'a'; 4096].into()),
            vec![],
            "symlink target",
        ),
        (
            InodeKind::Regular(RegularFile::Inline(vec![0; 5001].into())),
            vec![],
            "inline content",
        ),
        (
            InodeKind::Fifo,
            vec![(vec![b'u'; 256], vec![])],
            "invalid xattr name",
        ),
        (
            InodeKind::Fifo,
            vec![(b"user.a".to_vec(), vec![0; 65536])],
            "more than 65535",
        ),
        (
            InodeKind::Fifo,
            vec![(b"user.a".to_vec(), vec![0; 32743])],
            "budget bytes",
        ),
    ];
    for (kind, xattrs, want) in cases {
        let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
        let mut st = stat(0o644, 0, 0, 0, 0);
        for (n, v) in xattrs {
            st.xattrs.set(&n, &v);
        }
        let r = fs.root();
        add(&mut fs, r, "x", Inode::new(st, kind));
        let err = write_image(&fs, &WriteOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains(want),
            "{err} should mention {want}"
        );
        assert!(err.to_string().starts_with("/x: "), "{err}");
    }
    // The exact budget is accepted: 12 + 7 + 6 + 32742 = 32767.
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let mut st = stat(0o644, 0, 0, 0, 0);
    st.xattrs.set(b"user.a", &[0; 32742]);
    let r = fs.root();
    add(&mut fs, r, "x", Inode::new(st, InodeKind::Fifo));
    write_image(&fs, &WriteOptions::default(), &mut Vec::new()).unwrap();
}

#[test]
fn alias_without_target() {
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let orphan = fs.push_inode(Inode::new(stat(0o644, 0, 0, 0, 0), InodeKind::Fifo));
    let r = fs.root();
    link(&mut fs, r, "l", orphan, true);
    let err = write_image(&fs, &WriteOptions::default(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "Invalid argument");
    assert!(matches!(err, WriteError::AliasTargetMissing { ref path } if path == "/l"));
}

#[test]
fn sha512_metacopy() {
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let d = Digest::sha512([7; 64]);
    let file = Inode::new(
        stat(0o644, 0, 0, 0, 0),
        InodeKind::Regular(RegularFile::External(ExternalFile {
            size: 10,
            payload: None,
            digest: Some(d),
        })),
    );
    let r = fs.root();
    add(&mut fs, r, "f", file);
    let (img, _) = write(&fs, &WriteOptions::default());
    let mut want = b"\x10\x04\x44\x00overlay.metacopy\x00\x44\x00\x02".to_vec();
    want.extend_from_slice(&[7; 64]);
    assert!(img.windows(want.len()).any(|w| w == want));
}

#[test]
fn entry_order_and_stubs() {
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let r = fs.root();
    for name in ["zz", "0f", "-a", "f", "ff0"] {
        add(
            &mut fs,
            r,
            name,
            Inode::new(stat(0o644, 0, 0, 0, 0), InodeKind::Fifo),
        );
    }
    let order = order::Order::build(&fs);
    let names: Vec<&[u8]> = order.children(&fs, 0).map(|c| c.name).collect();
    // `-a` < `.` < `..` < `00` … with the real `0f` instead of a stub, `f`
    // between `ef` and `f0`, `ff0` after `ff`.
    assert_eq!(&names[..5], [&b"-a"[..], b".", b"..", b"00", b"01"]);
    let pos = |n: &[u8]| names.iter().position(|&x| x == n).unwrap();
    assert_eq!(pos(b"0f") + 1, pos(b"10"));
    assert_eq!((pos(b"ef") + 1, pos(b"f") + 1), (pos(b"f"), pos(b"f0")));
    assert_eq!((pos(b"ff") + 1, pos(b"ff0") + 1), (pos(b"ff0"), pos(b"zz")));
    assert_eq!(names.len(), 5 + 2 + 255);
    // BFS: the root, then its non-alias children in name order.
    assert_eq!(order.nodes.len(), 1 + 5 + 255);
    assert_eq!(order.views[0].nlink, 2);
}

#[test]
fn rewritten_xattrs() {
    let mut fs = FileSystem::new(stat(0o755, 0, 0, 0, 0));
    let r = fs.root();
    let mut ds = stat(0o755, 0, 0, 0, 0);
    ds.xattrs.set(b"user.overlay.opaque", b"mine");
    ds.xattrs.set(b"trusted.overlay.overlay.x", b"1");
    let d = add(
        &mut fs,
        r,
        "d",
        Inode::new(ds, InodeKind::Directory(Directory::new())),
    );
    let mut ws = stat(0o640, 0, 0, 0, 0);
    ws.xattrs.set(b"trusted.overlay.whiteout", b"user's");
    add(&mut fs, d, "w", Inode::new(ws, InodeKind::CharDevice(0)));
    let order = order::Order::build(&fs);
    let names = |version: u32, path: &[u8]| -> Vec<(Vec<u8>, Vec<u8>)> {
        let ctx = rewrite::XattrContext::new(&fs, &order, version);
        let bfs = order.index_of[fs.lookup(path).unwrap().index()] as usize;
        let mut out = Vec::new();
        ctx.collect(bfs, &mut out).unwrap();
        out.iter()
            .map(|x| {
                let mut full = x.full_name_head().to_vec();
                full.extend_from_slice(x.name);
                (full, x.value_bytes().concat())
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        v.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    assert_eq!(
        names(1, b"/d"),
        pairs(&[
            ("trusted.overlay.overlay.opaque", "x"),
            ("trusted.overlay.overlay.overlay.x", "1"),
            ("trusted.overlay.overlay.whiteouts", ""),
            ("user.overlay.opaque", "x"),
            ("user.overlay.whiteouts", ""),
        ])
    );
    assert_eq!(
        names(0, b"/d"),
        pairs(&[
            ("trusted.overlay.overlay.overlay.x", "1"),
            ("trusted.overlay.overlay.whiteouts", ""),
            ("user.overlay.opaque", "mine"),
            ("user.overlay.whiteouts", ""),
        ])
    );
    assert_eq!(
        names(0, b"/d/w"),
        pairs(&[
            ("trusted.overlay.overlay.whiteout", ""),
            ("user.overlay.whiteout", ""),
        ])
    );
    assert_eq!(names(0, b"/"), pairs(&[("trusted.overlay.opaque", "y")]));
    let w = fs.lookup(b"/d/w").unwrap();
    let view = order.views[order.index_of[w.index()] as usize];
    assert_eq!(view.mode, 0o100640, "a whiteout is an empty regular file");
    assert_eq!(
        view.kind.file_type(),
        crate::erofs::format::file_type::REG_FILE
    );
}
