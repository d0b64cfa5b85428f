//! The multi-layer test image (built with umoci plus one hand-made layer) and
//! the tree comparator: `cfsctl oci dump` output and a mounted image against
//! `umoci unpack`'s rootfs after the composefs OCI transforms.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cfs_core::dumpfile::{ParseOptions, parse_dumpfile};
use cfs_core::tree::{InodeId, InodeKind, RegularFile};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::corpus::sha256_hex;
use crate::oci_support::{Hdr, Tar, reference_mode, sh};
use crate::repo::data;

/// The umoci-built test image: layout directory and tag.
#[derive(Debug)]
pub(crate) struct TestImage {
    pub(crate) layout: PathBuf,
    pub(crate) tag: &'static str,
    /// `umoci unpack` of the image (the oracle), `rootfs` inside.
    pub(crate) bundle: PathBuf,
}

impl TestImage {
    /// `oci:LAYOUT:TAG`.
    pub(crate) fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }
}

/// The shared test image, built once per test binary (a few seconds).
pub(crate) fn test_image() -> &'static TestImage {
    static IMG: OnceLock<(tempfile::TempDir, TestImage)> = OnceLock::new();
    &IMG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = build_test_image(dir.path(), !reference_mode());
        (dir, img)
    })
    .1
}

fn xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("{}: setxattr {name}: {e}", p.display()));
}

fn mtime(p: &Path, sec: i64) {
    let ts = Timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A valid VFS_CAP_REVISION_2 `security.capability` value (cap_net_raw=ep).
const CAPABILITY: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Fills `r` (the rootfs of a fresh bundle) with the base layer's content.
fn base_layer(r: &Path, quirk: bool) {
    for d in [
        "usr/bin",
        "usr/lib",
        "usr/share/opq/sub",
        "usr/share/gonedir/deeper",
        "usr/share/f2d-parent",
        "etc",
        "run/sub",
        "dev",
        "var/tmp",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let w = |p: &str, d: &[u8]| std::fs::write(r.join(p), d).unwrap();
    w("usr/lib/empty", b"");
    w("usr/lib/f64", &data(64, 1));
    w("usr/lib/f65", &data(65, 2));
    w("usr/lib/big", &data(3 << 20, 3));
    w("usr/bin/suid", &data(100, 4));
    chmod(&r.join("usr/bin/suid"), 0o4755);
    w("usr/bin/sgid", &data(10, 5));
    chmod(&r.join("usr/bin/sgid"), 0o2711);
    chmod(&r.join("var/tmp"), 0o1777);
    w("usr/bin/cap", &data(70, 6));
    xattr(&r.join("usr/bin/cap"), "security.capability", CAPABILITY);
    xattr(&r.join("usr/bin/cap"), "user.note", b"kept-by-umoci");
    w("usr/lib/xattrs", &data(30, 7));
    xattr(&r.join("usr/lib/xattrs"), "user.foo", b"bar");
    xattr(&r.join("usr/lib/xattrs"), "trusted.secret", b"t");
    xattr(&r.join("usr/share"), "user.dir", b"on a directory");
    symlink("suid", r.join("usr/bin/short")).unwrap();
    let long = format!("/{}/target", "long-component".repeat(12));
    symlink(&long, r.join("usr/lib/long-link")).unwrap();
    symlink("/nonexistent/dangling", r.join("usr/lib/dangling")).unwrap();
    // Hard links in one layer: a large file and a small one.
    w("usr/lib/hl-big", &data(200, 8));
    std::fs::hard_link(r.join("usr/lib/hl-big"), r.join("usr/bin/hl-big2")).unwrap();
    w("usr/lib/hl-small", b"tiny");
    std::fs::hard_link(r.join("usr/lib/hl-small"), r.join("etc/hl-small2")).unwrap();
    let dev = |p: &str, ft: FileType, rdev: u64| {
        rustix::fs::mknodat(CWD, r.join(p), ft, Mode::from_raw_mode(0o640), rdev).unwrap()
    };
    dev(
        "dev/chr",
        FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    dev("dev/blk", FileType::BlockDevice, rustix::fs::makedev(7, 0));
    dev("dev/fifo", FileType::Fifo, 0);
    w("run/foo", b"run content");
    w("run/sub/bar", &data(100, 9));
    w("usr/lib/owned", b"owned");
    rustix::fs::chownat(
        CWD,
        r.join("usr/lib/owned"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
        AtFlags::empty(),
    )
    .unwrap();
    w(&format!("usr/share/{}", "n".repeat(150)), b"long name");
    w("etc/gone", b"deleted in layer 2");
    w("usr/share/gonedir/deeper/x", b"deleted with its directory");
    w("usr/share/opq/a", b"hidden by the opaque marker");
    w("usr/share/opq/sub/b", &data(90, 10));
    w("usr/share/f2d", b"file, then a directory, then a file");
    // A directory that becomes a file in layer 2. With children, umoci writes
    // a whiteout *below* the new file (the quirk cfs accepts, composefs-rs not).
    std::fs::create_dir(r.join("usr/share/d2f")).unwrap();
    if quirk {
        w(
            "usr/share/d2f/child",
            b"child of a directory that becomes a file",
        );
    }
    w("etc/modified", b"version 1");
    for (i, p) in ["usr/lib/f64", "usr/lib/big", "etc/gone", "usr/share/f2d"]
        .iter()
        .enumerate()
    {
        mtime(&r.join(p), 1_500_000_000 + i as i64 * 1000);
    }
}

/// Layer 2 (umoci diff): deletions, type changes, a cross-layer hard link.
fn second_layer(r: &Path) {
    std::fs::remove_file(r.join("etc/gone")).unwrap();
    std::fs::remove_dir_all(r.join("usr/share/gonedir")).unwrap();
    std::fs::remove_dir_all(r.join("usr/share/d2f")).unwrap();
    std::fs::write(r.join("usr/share/d2f"), b"now a file").unwrap();
    std::fs::remove_file(r.join("usr/share/f2d")).unwrap();
    std::fs::create_dir(r.join("usr/share/f2d")).unwrap();
    std::fs::write(r.join("usr/share/f2d/inner"), data(80, 11)).unwrap();
    std::fs::hard_link(r.join("usr/lib/f65"), r.join("usr/bin/f65-link")).unwrap();
    std::fs::write(r.join("etc/modified"), b"version 2, longer").unwrap();
    chmod(&r.join("usr/lib"), 0o750);
    std::fs::write(r.join("run/layer2"), b"more run content").unwrap();
    xattr(&r.join("usr/lib/f64"), "security.capability", CAPABILITY);
}

/// Layer 3, hand-made: an opaque directory, a directory turned back into a
/// file, PAX nanosecond mtimes, PAX xattrs.
fn third_layer() -> Vec<u8> {
    let mut t = Tar::default();
    t.file("usr/share/opq/.wh..wh..opq", b"")
        .file("usr/share/opq/new", b"after the opaque marker")
        // umoci unpack replaces a directory by a file of the same name.
        .file("usr/share/f2d", b"a file again")
        .entry(
            Hdr {
                path: "usr/lib/nsec".into(),
                mode: 0o600,
                pax: vec![
                    ("mtime".into(), b"1700000000.123456789".to_vec()),
                    ("SCHILY.xattr.user.pax".into(), b"pax value".to_vec()),
                    (
                        "SCHILY.xattr.security.capability".into(),
                        CAPABILITY.to_vec(),
                    ),
                ],
                ..Hdr::default()
            },
            &data(100, 12),
        )
        .entry(
            Hdr {
                path: "usr/lib/nsec-dir".into(),
                kind: b'5',
                mode: 0o711,
                uid: 42,
                gid: 43,
                pax: vec![("mtime".into(), b"1650000000.5".to_vec())],
                ..Hdr::default()
            },
            b"",
        )
        .file("run/layer3", b"run again");
    t.finish()
}

fn unpack(layout: &Path, tag: &str, bundle: &Path) {
    let image = format!("{}:{tag}", layout.display());
    sh("umoci", &[&"unpack", &"--image", &image, &bundle]);
}

/// Builds the layout `dir/L` (tag `v1`, four layers: umoci base, umoci diff,
/// hand-made tar, 0-byte) and its `umoci unpack` in `dir/oracle`.
pub(crate) fn build_test_image(dir: &Path, quirk: bool) -> TestImage {
    let layout = dir.join("L");
    let image = format!("{}:v1", layout.display());
    let bundle = dir.join("B");
    sh("umoci", &[&"init", &"--layout", &layout]);
    sh("umoci", &[&"new", &"--image", &image]);
    unpack(&layout, "v1", &bundle);
    base_layer(&bundle.join("rootfs"), quirk);
    sh("umoci", &[&"repack", &"--image", &image, &bundle]);
    // A fresh unpack before the next layer (repacking again gives a full layer).
    std::fs::remove_dir_all(&bundle).unwrap();
    unpack(&layout, "v1", &bundle);
    second_layer(&bundle.join("rootfs"));
    sh("umoci", &[&"repack", &"--image", &image, &bundle]);
    std::fs::remove_dir_all(&bundle).unwrap();
    let tar = dir.join("layer3.tar");
    std::fs::write(&tar, third_layer()).unwrap();
    sh("umoci", &[&"raw", &"add-layer", &"--image", &image, &tar]);
    sh(
        "umoci",
        &[&"raw", &"add-layer", &"--image", &image, &"/dev/null"],
    );
    let oracle = dir.join("oracle");
    unpack(&layout, "v1", &oracle);
    check_oracle(&oracle.join("rootfs"), quirk);
    TestImage {
        layout,
        tag: "v1",
        bundle: oracle,
    }
}

/// The oracle really shows what the layers are meant to exercise (so the
/// comparison is not vacuous).
fn check_oracle(r: &Path, quirk: bool) {
    let t = tree_from_dir(r);
    let node = |p: &str| {
        t.nodes
            .get(p.as_bytes())
            .unwrap_or_else(|| panic!("umoci unpack lacks {p}"))
    };
    for gone in [
        "/etc/gone",
        "/usr/share/gonedir",
        "/usr/share/opq/a",
        "/usr/share/opq/sub",
        "/usr/share/f2d/inner",
        "/usr/share/d2f/child",
    ] {
        assert!(
            !t.nodes.contains_key(gone.as_bytes()),
            "umoci unpack has {gone}"
        );
    }
    assert_eq!(node("/usr/share/f2d").mode & 0o170000, 0o100000);
    assert_eq!(node("/usr/share/d2f").mode & 0o170000, 0o100000);
    assert!(node("/usr/share/opq/new").content.is_some());
    assert_eq!(node("/usr/lib/nsec").mtime, (1_700_000_000, 123_456_789));
    assert_eq!(
        node("/usr/lib/nsec-dir").mtime,
        (1_650_000_000, 500_000_000)
    );
    assert_eq!(node("/usr/bin/suid").mode, 0o104755);
    assert_eq!(node("/var/tmp").mode, 0o41777);
    assert_eq!(node("/dev/chr").rdev, Some(rustix::fs::makedev(1, 3)));
    assert!(
        node("/usr/lib/xattrs")
            .xattrs
            .contains_key(b"trusted.secret".as_slice())
    );
    assert!(
        node("/usr/bin/cap")
            .xattrs
            .contains_key(b"security.capability".as_slice())
    );
    assert_eq!(node("/usr/lib/big").content.as_ref().unwrap().0, 3 << 20);
    assert!(node("/run/sub/bar").content.is_some());
    assert!(t.links.len() >= 2, "hard links: {:?}", t.links);
    let _ = quirk;
}

// ---------------------------------------------------------------------------
// Comparator.

/// What is compared for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Full `st_mode` (type and permission bits, setuid/setgid/sticky).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// `(sec, nsec)`.
    pub(crate) mtime: (i64, u32),
    /// Regular files: size and SHA-256 of the content.
    pub(crate) content: Option<(u64, String)>,
    pub(crate) target: Option<Vec<u8>>,
    /// Devices: the device number.
    pub(crate) rdev: Option<u64>,
    pub(crate) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Absolute path (`/` for the root) → node, plus the hard-link groups (sets of
/// two or more paths naming one non-directory inode).
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub(crate) nodes: BTreeMap<Vec<u8>, Node>,
    pub(crate) links: BTreeSet<Vec<Vec<u8>>>,
}

/// Parses `oci dump` output; external file content is read from `repo/objects/`.
pub(crate) fn tree_from_dump(dump: &[u8], repo: &Path) -> Tree {
    let fs = parse_dumpfile(dump, &ParseOptions { strict: false })
        .unwrap_or_else(|e| panic!("parsing oci dump output: {e}"));
    let node = |id: InodeId| {
        let inode = fs.inode(id);
        let mut n = Node {
            mode: inode.st_mode(),
            uid: inode.stat.uid,
            gid: inode.stat.gid,
            mtime: (inode.stat.mtime.sec, inode.stat.mtime.nsec),
            content: None,
            target: None,
            rdev: None,
            xattrs: inode
                .stat
                .xattrs
                .iter()
                .map(|x| (x.name.to_vec(), x.value.to_vec()))
                .collect(),
        };
        match &inode.kind {
            InodeKind::Regular(RegularFile::Inline(d)) => {
                n.content = Some((d.len() as u64, sha256_hex(d)));
            }
            InodeKind::Regular(RegularFile::External(e)) => {
                let payload = e.payload.as_ref().expect("external file without payload");
                let obj = repo.join("objects").join(OsStr::from_bytes(payload));
                let bytes = std::fs::read(&obj)
                    .unwrap_or_else(|err| panic!("reading object {}: {err}", obj.display()));
                assert_eq!(bytes.len() as u64, e.size, "object {} size", obj.display());
                n.content = Some((e.size, sha256_hex(&bytes)));
            }
            InodeKind::Symlink(t) => n.target = Some(t.to_vec()),
            InodeKind::CharDevice(r) | InodeKind::BlockDevice(r) => n.rdev = Some(u64::from(*r)),
            _ => {}
        }
        n
    };
    let mut tree = Tree::default();
    tree.nodes.insert(b"/".to_vec(), node(fs.root()));
    let mut groups: HashMap<InodeId, Vec<Vec<u8>>> = HashMap::new();
    fs.walk(|path, e| {
        tree.nodes.insert(path.to_vec(), node(e.inode));
        if fs.directory(e.inode).is_none() {
            groups.entry(e.inode).or_default().push(path.to_vec());
        }
    });
    tree.links = link_groups(groups.into_values());
    tree
}

fn link_groups(groups: impl Iterator<Item = Vec<Vec<u8>>>) -> BTreeSet<Vec<Vec<u8>>> {
    groups
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect()
}

/// Walks a real directory (umoci rootfs or a mounted image) with lstat.
pub(crate) fn tree_from_dir(root: &Path) -> Tree {
    let mut tree = Tree::default();
    let mut groups: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    let mut add = |abs: Vec<u8>, p: &Path| {
        let md = std::fs::symlink_metadata(p).unwrap();
        let ft = md.file_type();
        let mut n = Node {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: (md.mtime(), md.mtime_nsec() as u32),
            content: None,
            target: None,
            rdev: None,
            xattrs: crate::mount::xattrs(p),
        };
        use std::os::unix::fs::FileTypeExt;
        if ft.is_file() {
            let bytes = std::fs::read(p).unwrap();
            n.content = Some((md.len(), sha256_hex(&bytes)));
        } else if ft.is_symlink() {
            n.target = Some(
                std::fs::read_link(p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            );
        } else if ft.is_char_device() || ft.is_block_device() {
            n.rdev = Some(md.rdev());
        }
        if !ft.is_dir() {
            groups
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(abs.clone());
        }
        tree.nodes.insert(abs, n);
    };
    add(b"/".to_vec(), root);
    for (rel, _) in crate::mount::walk(root) {
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(rel.as_os_str().as_bytes());
        add(abs, &root.join(&rel));
    }
    tree.links = link_groups(groups.into_values());
    tree
}

/// The composefs OCI normalisation, applied to an unpacked (umoci) tree so it
/// can be compared with `oci dump` / a mount:
/// 1. `/` takes `/usr`'s mode, owner, mtime and xattrs (composefs-rs
///    `transform_for_oci`: the root entry of a layer is not trusted);
/// 2. `/run` loses all its content and gets `/usr`'s mtime (its content is
///    runtime state, not image content);
/// 3. extended attributes other than `security.capability` are dropped
///    (default `allowlist-only` xattr mode: `user.*`, `trusted.*`,
///    `security.selinux` do not reach the image).
pub(crate) fn composefs_transform(tree: &mut Tree) {
    let usr = tree.nodes[b"/usr".as_slice()].clone();
    let root = tree.nodes.get_mut(b"/".as_slice()).unwrap();
    root.mode = usr.mode;
    root.uid = usr.uid;
    root.gid = usr.gid;
    root.mtime = usr.mtime;
    root.xattrs = usr.xattrs.clone();
    if let Some(run) = tree.nodes.get_mut(b"/run".as_slice()) {
        run.mtime = usr.mtime;
        tree.nodes.retain(|p, _| !p.starts_with(b"/run/"));
        tree.links = std::mem::take(&mut tree.links)
            .into_iter()
            .filter_map(|g| {
                let g: Vec<_> = g.into_iter().filter(|p| !p.starts_with(b"/run/")).collect();
                (g.len() > 1).then_some(g)
            })
            .collect();
    }
    for n in tree.nodes.values_mut() {
        n.xattrs.retain(|k, _| k == b"security.capability");
    }
}

/// The umoci oracle, transformed.
pub(crate) fn expected_tree(img: &TestImage) -> Tree {
    let mut t = tree_from_dir(&img.bundle.join("rootfs"));
    composefs_transform(&mut t);
    t
}

/// What to ignore when comparing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ignore {
    /// Directory mtimes (changed by umoci while applying later layers).
    pub(crate) dir_mtimes: bool,
    /// Hard-link groups (a mount may not expose shared inode numbers).
    pub(crate) links: bool,
}

/// Asserts that `actual` equals `expected`, listing every difference.
pub(crate) fn assert_trees_equal(what: &str, expected: &Tree, actual: &Tree, ignore: Ignore) {
    let mut diffs = Vec::new();
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    for (p, e) in &expected.nodes {
        let Some(a) = actual.nodes.get(p) else {
            diffs.push(format!("missing {}", show(p)));
            continue;
        };
        let mut a = a.clone();
        if ignore.dir_mtimes && e.mode & 0o170000 == 0o040000 {
            a.mtime = e.mtime;
        }
        if &a != e {
            diffs.push(format!("{}:\n  expected {e:?}\n  actual   {a:?}", show(p)));
        }
    }
    for p in actual.nodes.keys() {
        if !expected.nodes.contains_key(p) {
            diffs.push(format!("unexpected {}", show(p)));
        }
    }
    if !ignore.links && expected.links != actual.links {
        let fmt = |s: &BTreeSet<Vec<Vec<u8>>>| {
            s.iter()
                .map(|g| g.iter().map(|p| show(p)).collect::<Vec<_>>().join(" = "))
                .collect::<Vec<_>>()
        };
        diffs.push(format!(
            "hard links: expected {:?}, actual {:?}",
            fmt(&expected.links),
            fmt(&actual.links)
        ));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// A mounted image, lazily unmounted when dropped.
pub(crate) struct OciMount(pub(crate) PathBuf);

impl Drop for OciMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .output();
    }
}
