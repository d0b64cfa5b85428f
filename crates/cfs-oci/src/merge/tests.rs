//! Tests of the layer merge, with layers made by a tiny tar writer.

use std::io::Read;

use cfs_core::tree::{FileSystem, InodeKind, Mtime, RegularFile};
use cfs_core::verity::{Algorithm, digest_reader};

use super::*;

/// A minimal ustar writer.
#[derive(Default)]
pub(super) struct Tar(pub(super) Vec<u8>);

impl Tar {
    pub(super) fn header(&mut self, name: &[u8], typeflag: u8, size: u64, mode: u32, link: &[u8]) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 1000);
        octal(&mut h, 116, 8, 100);
        octal(&mut h, 124, 12, size);
        octal(&mut h, 136, 12, 1_700_000_000);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..265].copy_from_slice(b"ustar\x0000");
        octal(&mut h, 329, 8, 0);
        octal(&mut h, 337, 8, 0);
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h, 148, 7, sum);
        self.0.extend_from_slice(&h);
    }

    pub(super) fn data(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
    }

    pub(super) fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.header(name.as_bytes(), b'0', data.len() as u64, 0o644, b"");
        self.data(data);
        self
    }

    pub(super) fn dir(mut self, name: &str, mode: u32) -> Self {
        self.header(name.as_bytes(), b'5', 0, mode, b"");
        self
    }

    pub(super) fn entry(mut self, name: &str, typeflag: u8, link: &str) -> Self {
        self.header(name.as_bytes(), typeflag, 0, 0o644, link.as_bytes());
        self
    }

    pub(super) fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = [k.as_bytes(), b"=", v, b"\n"].concat();
            let mut len = body.len() + 2;
            while format!("{len} ").len() + body.len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} ").as_bytes());
            data.extend_from_slice(&body);
        }
        self.header(b"PaxHeaders/x", b'x', data.len() as u64, 0o644, b"");
        self.data(&data);
        self
    }

    pub(super) fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

pub(super) fn store(r: &mut dyn Read, _size: u64) -> std::io::Result<cfs_core::verity::Digest> {
    digest_reader(Algorithm::Sha256, r)
}

fn merge(layers: &[Vec<u8>]) -> Result<FileSystem, MergeError> {
    let mut merger = LayerMerger::new();
    for layer in layers {
        let mut entries = TarEntries::new(&layer[..]);
        while let Some(e) = entries.next_entry(&mut store)? {
            merger.apply(e)?;
        }
    }
    let fs = merger.finish()?;
    fs.validate().expect("valid tree");
    Ok(fs)
}

/// `path type` lines of the whole tree, depth-first.
fn listing(fs: &FileSystem) -> Vec<String> {
    let mut out = Vec::new();
    fs.walk(|path, e| {
        let inode = fs.inode(e.inode);
        let t = match &inode.kind {
            InodeKind::Directory(_) => "d",
            InodeKind::Regular(_) => "f",
            InodeKind::Symlink(_) => "l",
            InodeKind::CharDevice(_) => "c",
            InodeKind::BlockDevice(_) => "b",
            InodeKind::Fifo => "p",
            InodeKind::Socket => "s",
        };
        out.push(format!("{} {t}", String::from_utf8_lossy(path)));
    });
    out
}

fn apply_err(layers: &[Vec<u8>]) -> (String, ApplyError) {
    match merge(layers) {
        Err(MergeError::Apply { path, reason }) => (path, reason),
        other => panic!("expected an apply error, got {other:?}"),
    }
}

fn base() -> Tar {
    Tar::default()
        .dir("usr/", 0o755)
        .dir("usr/d/", 0o755)
        .file("usr/d/a", b"a")
        .dir("usr/d/sub/", 0o700)
        .file("usr/d/sub/b", b"b")
        .file("usr/f", b"f")
}

#[test]
fn whiteout_removes_file_and_directory_recursively() {
    let l2 = Tar::default()
        .file("usr/.wh.f", b"")
        .file("usr/d/.wh.sub", b"")
        .file("usr/.wh.absent", b"")
        .end();
    let fs = merge(&[base().end(), l2]).unwrap();
    assert_eq!(listing(&fs), ["/usr d", "/usr/d d", "/usr/d/a f"]);
    assert_eq!(fs.len(), 4, "removed inodes are compacted away");
}

#[test]
fn opaque_marker_clears_lower_and_same_layer_entries() {
    let l2 = Tar::default()
        .file("usr/d/new", b"n")
        .file("usr/d/.wh..wh..opq", b"")
        .file("usr/d/after", b"x")
        .end();
    let fs = merge(&[base().end(), l2]).unwrap();
    assert_eq!(
        listing(&fs),
        ["/usr d", "/usr/d d", "/usr/d/after f", "/usr/f f"]
    );
}

#[test]
fn directory_onto_directory_keeps_children_and_takes_metadata() {
    let l2 = Tar::default()
        .pax(&[("SCHILY.xattr.user.x", b"1")])
        .dir("usr/d", 0o711)
        .end();
    let fs = merge(&[base().end(), l2]).unwrap();
    let d = fs.lookup(b"/usr/d").unwrap();
    assert_eq!(fs.inode(d).stat.mode, 0o711);
    assert_eq!(fs.inode(d).stat.xattrs.get(b"user.x"), Some(&b"1"[..]));
    assert_eq!(fs.directory(d).unwrap().len(), 2);
}

#[test]
fn file_replaces_directory_and_directory_replaces_file() {
    let l2 = Tar::default()
        .file("usr/d", b"now a file")
        .dir("usr/f", 0o755)
        .end();
    let fs = merge(&[base().end(), l2]).unwrap();
    assert_eq!(listing(&fs), ["/usr d", "/usr/d f", "/usr/f d"]);
}

#[test]
fn hardlinks_share_the_inode_captured_at_link_time() {
    let l1 = base()
        .pax(&[("mtime", b"5")])
        .entry("usr/h", b'1', "/usr/f")
        .file("usr/f", b"replaced")
        .entry("usr/d/h2", b'1', "usr/h")
        .end();
    let fs = merge(&[l1]).unwrap();
    let h = fs.lookup(b"usr/h").unwrap();
    assert_eq!(fs.lookup(b"usr/d/h2"), Some(h));
    assert_ne!(fs.lookup(b"usr/f"), Some(h));
    let inode = fs.inode(h);
    assert_eq!(inode.nlink, 2);
    assert_eq!(
        inode.kind,
        InodeKind::Regular(RegularFile::Inline((*b"f").into()))
    );
    // The link entry's own metadata is discarded.
    assert_eq!(inode.stat.mtime, Mtime::new(1_700_000_000, 0));
    // The first name in depth-first order is the primary.
    let d = fs.lookup(b"usr/d").unwrap();
    assert!(!fs.directory(d).unwrap().get(b"h2").unwrap().alias);
}

#[test]
fn whiteout_of_one_hardlink_name_keeps_the_other() {
    let l1 = base().entry("usr/h", b'1', "usr/f").end();
    let l2 = Tar::default().file("usr/.wh.f", b"").end();
    let fs = merge(&[l1, l2]).unwrap();
    let h = fs.lookup(b"usr/h").unwrap();
    assert_eq!(fs.inode(h).nlink, 1);
}

#[test]
fn hardlink_errors() {
    let (path, reason) = apply_err(&[base().entry("usr/h", b'1', "usr/d").end()]);
    assert_eq!(
        (path.as_str(), reason),
        ("/usr/h", ApplyError::IsADirectory("d".into()))
    );
    let (_, reason) = apply_err(&[base().entry("usr/h", b'1', "usr/missing").end()]);
    assert_eq!(reason, ApplyError::NotFound("missing".into()));
}

#[test]
fn missing_parent_non_directory_parent_and_dotdot() {
    let (path, reason) = apply_err(&[Tar::default().file("usr/x", b"").end()]);
    assert_eq!(
        (path.as_str(), reason),
        ("/usr/x", ApplyError::NotFound("usr".into()))
    );
    let (_, reason) = apply_err(&[base().file("usr/f/x", b"").end()]);
    assert_eq!(reason, ApplyError::NotADirectory("f".into()));
    let (_, reason) = apply_err(&[base().file("usr/../x", b"").end()]);
    assert_eq!(reason, ApplyError::InvalidFilename("/usr/..".into()));
    // A whiteout below a file or a missing directory hides nothing and is
    // ignored (umoci writes one when a directory becomes a file; composefs-rs
    // 0.9 rejects it: a documented deviation). `..` is still an error.
    let l2 = Tar::default()
        .file("usr/f/.wh.x", b"")
        .file("usr/missing/.wh.y", b"")
        .file("usr/f/.wh..wh..opq", b"")
        .end();
    let fs = merge(&[base().end(), l2]).unwrap();
    assert_eq!(listing(&fs), listing(&merge(&[base().end()]).unwrap()));
    let (_, reason) = apply_err(&[base().file("usr/../.wh.x", b"").end()]);
    assert_eq!(reason, ApplyError::InvalidFilename("/usr/..".into()));
}

#[test]
fn root_entry_sets_root_metadata() {
    let fs = merge(&[base().end()]).unwrap();
    assert_eq!(
        fs.inode(fs.root()).stat,
        Default::default(),
        "uninitialised"
    );
    let fs = merge(&[Tar::default().dir("./", 0o750).end()]).unwrap();
    assert_eq!(fs.inode(fs.root()).stat.mode, 0o750);
    assert_eq!(fs.inode(fs.root()).stat.uid, 1000);
    let (path, reason) = apply_err(&[Tar::default().file("/.", b"").end()]);
    assert_eq!(
        (path.as_str(), reason),
        ("/", ApplyError::RootNotDirectory("/".into()))
    );
}

#[test]
fn pax_metadata_and_xattrs() {
    let l1 = base()
        .pax(&[
            ("mtime", b"1234.5"),
            ("uid", b"4294967297"),
            ("gid", b"7"),
            ("SCHILY.xattr.security.capability", b"\x01\x00cap"),
            ("LIBARCHIVE.xattr.user.a", b"ignored"),
            ("SCHILY.xattr.user.b", b"first"),
            ("SCHILY.xattr.user.b", b"second"),
            ("path", b"usr/long-name-from-pax"),
        ])
        .file("usr/short", b"x")
        .end();
    let fs = merge(&[l1]).unwrap();
    assert!(fs.lookup(b"usr/short").is_none());
    let stat = &fs.inode(fs.lookup(b"usr/long-name-from-pax").unwrap()).stat;
    assert_eq!(stat.mtime, Mtime::new(1234, 500_000_000));
    assert_eq!((stat.uid, stat.gid), (1, 7));
    let names: Vec<_> = stat.xattrs.iter().map(|x| x.name.to_vec()).collect();
    assert_eq!(names, [&b"security.capability"[..], b"user.b"]);
    assert_eq!(stat.xattrs.get(b"user.b"), Some(&b"second"[..]));
}

#[test]
fn devices_fifos_symlinks_and_large_files() {
    let big = vec![7u8; 65];
    let l1 = base()
        .entry("usr/c", b'3', "")
        .entry("usr/p", b'6', "")
        .entry("usr/l", b'2', "../target")
        .file("usr/big", &big)
        .file("usr/small", &big[..64])
        .end();
    let fs = merge(&[l1]).unwrap();
    let kind = |p: &[u8]| &fs.inode(fs.lookup(p).unwrap()).kind;
    assert_eq!(kind(b"usr/c"), &InodeKind::CharDevice(0));
    assert_eq!(kind(b"usr/p"), &InodeKind::Fifo);
    assert_eq!(kind(b"usr/l"), &InodeKind::Symlink((*b"../target").into()));
    assert!(
        matches!(kind(b"usr/small"), InodeKind::Regular(RegularFile::Inline(d)) if d.len() == 64)
    );
    let InodeKind::Regular(RegularFile::External(ext)) = kind(b"usr/big") else {
        panic!("big file is external");
    };
    assert_eq!(ext.size, 65);
    assert_eq!(
        ext.digest,
        Some(cfs_core::verity::digest_bytes(Algorithm::Sha256, &big))
    );
}

#[test]
fn sparse_and_unknown_types_are_rejected() {
    for (t, msg) in [
        (b'S', "sparse tar entries are not supported"),
        (b'Z', "Unsupported entry type 'Z'"),
    ] {
        let err = merge(&[base().entry("usr/s", t, "").end()]).unwrap_err();
        assert!(err.to_string().contains(msg), "{err}");
    }
}

#[test]
fn build_tree_applies_the_oci_transform() {
    let l1 = Tar::default()
        .dir("./", 0o700)
        .pax(&[("SCHILY.xattr.user.x", b"1")])
        .dir("usr/", 0o755)
        .dir("run/", 0o755)
        .file("run/stub", b"")
        .end();
    let fs = build_tree([&l1[..]], &mut store).unwrap();
    assert_eq!(fs.inode(fs.root()).stat.mode, 0o755);
    assert!(fs.inode(fs.root()).stat.xattrs.is_empty());
    assert_eq!(listing(&fs), ["/run d", "/usr d"]);
    // No /usr: an application image, its root as the layers left it
    // (0755 when no layer has a root entry).
    let fs = build_tree([&Tar::default().end()[..]], &mut store).unwrap();
    assert_eq!(fs.inode(fs.root()).stat.mode, 0o755);
}

#[test]
fn gnu_long_names_and_links() {
    let long = format!("usr/{}", "n".repeat(150));
    let mut t = base();
    for (flag, text) in [(b'L', long.as_bytes()), (b'K', b"usr/f".as_slice())] {
        let data = [text, b"\0"].concat();
        t.header(b"././@LongLink", flag, data.len() as u64, 0o644, b"");
        t.data(&data);
    }
    let fs = merge(&[t.entry("usr/short", b'1', "usr/other").end()]).unwrap();
    assert_eq!(fs.lookup(long.as_bytes()), fs.lookup(b"usr/f"));
}

/// Fuzz-found (`merge_tar_entries`): a large file cut short by the end of
/// the layer reached the store as a complete, shorter file. The store now
/// reads exactly `size` bytes or gets `UnexpectedEof`.
#[test]
fn truncated_large_file_fails_inside_the_store() {
    let tar = Tar::default()
        .dir("usr/", 0o755)
        .file("usr/big", &[9u8; 300]);
    let cut = &tar.0[..tar.0.len() - 24 - 212];
    let mut seen = Vec::new();
    let mut strict = |r: &mut dyn Read, size: u64| {
        let mut v = Vec::new();
        let read = r.read_to_end(&mut v);
        seen.push((v.len(), size));
        read?;
        assert_eq!(v.len() as u64, size);
        Ok(cfs_core::verity::digest_bytes(Algorithm::Sha256, &v))
    };
    let err = build_tree([cut], &mut strict).unwrap_err();
    assert!(
        matches!(&err, MergeError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{err}"
    );
    assert_eq!(seen, [(276, 300)]);
}
