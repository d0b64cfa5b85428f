//! Unit tests of the reader on hand-assembled images: each test builds a small
//! (often hostile) image byte by byte and checks the exact error.

use zerocopy::IntoBytes;
use zerocopy::little_endian::{U16, U32, U64};

use super::*;
use crate::erofs::format::{
    COMPOSEFS_MAGIC, ComposefsHeader, DataLayout, Dirent, EROFS_MAGIC, FEATURE_COMPAT_MTIME,
    InodeCompact, SUPERBLOCK_OFFSET, Superblock, XattrEntry, XattrIbodyHeader, file_type,
};
use crate::tree::InodeKind;

const DIR: u16 = 0o040755;
const REG: u16 = 0o100644;

/// A raw image under construction.
struct Raw(Vec<u8>);

impl Raw {
    /// `blocks` zeroed blocks with a valid header and superblock (root nid 36,
    /// shared xattrs relative to block `xattr_blk`).
    fn new(blocks: u32, xattr_blk: u32) -> Self {
        let mut data = vec![0u8; blocks as usize * 4096];
        let header = ComposefsHeader {
            magic: U32::new(COMPOSEFS_MAGIC),
            version: U32::new(1),
            ..Default::default()
        };
        data[..32].copy_from_slice(header.as_bytes());
        let sb = Superblock {
            magic: U32::new(EROFS_MAGIC),
            feature_compat: U32::new(FEATURE_COMPAT_MTIME),
            blkszbits: 12,
            root_nid: U16::new(36),
            inos: U64::new(1),
            blocks: U32::new(blocks),
            xattr_blkaddr: U32::new(xattr_blk),
            ..Default::default()
        };
        data[SUPERBLOCK_OFFSET..SUPERBLOCK_OFFSET + 128].copy_from_slice(sb.as_bytes());
        Raw(data)
    }

    fn put(&mut self, offset: usize, bytes: &[u8]) {
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// A compact inode at `nid` followed by `xattrs` (a whole body) and `tail`.
    #[allow(clippy::too_many_arguments)]
    fn inode(
        &mut self,
        nid: u64,
        mode: u16,
        nlink: u16,
        layout: DataLayout,
        size: u32,
        i_u: u32,
        xattrs: &[u8],
        tail: &[u8],
    ) {
        assert!(xattrs.is_empty() || (xattrs.len() - 12).is_multiple_of(4));
        let icount = if xattrs.is_empty() {
            0
        } else {
            (xattrs.len() - 12) / 4 + 1
        };
        let inode = InodeCompact {
            i_format: U16::new(layout.format(false)),
            i_xattr_icount: U16::new(icount as u16),
            i_mode: U16::new(mode),
            i_nlink: U16::new(nlink),
            i_size: U32::new(size),
            i_u: U32::new(i_u),
            ..Default::default()
        };
        let at = nid as usize * 32;
        self.put(at, inode.as_bytes());
        self.put(at + 32, xattrs);
        self.put(at + 32 + xattrs.len(), tail);
    }

    /// A directory with an inline tail holding `entries` (sorted by the caller).
    fn dir(&mut self, nid: u64, nlink: u16, entries: &[(&[u8], u64, u8)]) {
        let block = dirents(entries);
        self.inode(
            nid,
            DIR,
            nlink,
            DataLayout::FlatInline,
            block.len() as u32,
            0,
            &[],
            &block,
        );
    }
}

/// A dirent block (no padding).
fn dirents(entries: &[(&[u8], u64, u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut nameoff = entries.len() * 12;
    for (name, nid, ft) in entries {
        let d = Dirent {
            nid: U64::new(*nid),
            nameoff: U16::new(nameoff as u16),
            file_type: *ft,
            reserved: 0,
        };
        out.extend_from_slice(d.as_bytes());
        nameoff += name.len();
    }
    for (name, _, _) in entries {
        out.extend_from_slice(name);
    }
    out
}

/// An xattr body with the given shared ids and inline (index, suffix, value) entries.
fn xattr_body(shared: &[u32], inline: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
    let header = XattrIbodyHeader {
        h_name_filter: U32::new(0),
        h_shared_count: shared.len() as u8,
        h_reserved2: [0; 7],
    };
    let mut out = header.as_bytes().to_vec();
    for id in shared {
        out.extend_from_slice(&id.to_le_bytes());
    }
    for (index, suffix, value) in inline {
        out.extend_from_slice(&entry(*index, suffix, value));
    }
    out
}

fn entry(index: u8, suffix: &[u8], value: &[u8]) -> Vec<u8> {
    let e = XattrEntry {
        e_name_len: suffix.len() as u8,
        e_name_index: index,
        e_value_size: U16::new(value.len() as u16),
    };
    let mut out = e.as_bytes().to_vec();
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

const D: u8 = file_type::DIR;
const R: u8 = file_type::REG_FILE;

/// Root (nid 36) with one regular file `f` (nid 40).
fn simple() -> Raw {
    let mut raw = Raw::new(1, 0);
    raw.dir(36, 2, &[(b".", 36, D), (b"..", 36, D), (b"f", 40, R)]);
    raw.inode(40, REG, 1, DataLayout::FlatInline, 3, 0, &[], b"abc");
    raw
}

fn read(raw: &Raw) -> Result<FileSystem, ReadError> {
    read_image(&raw.0, &ReadOptions::default()).map(|(fs, _)| fs)
}

use crate::tree::FileSystem;

#[test]
fn minimal_image_reads() {
    let fs = read(&simple()).unwrap();
    let f = fs.inode(fs.lookup(b"/f").unwrap());
    assert_eq!(
        f.kind,
        InodeKind::Regular(crate::tree::RegularFile::Inline(b"abc".to_vec().into()))
    );
}

#[test]
fn wrong_dot_and_dotdot() {
    let mut raw = simple();
    raw.dir(36, 2, &[(b".", 40, D), (b"..", 36, D), (b"f", 40, R)]);
    let e = read(&raw).unwrap_err();
    assert!(
        matches!(e.root_cause(), ReadError::BadDirectory { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("'.' names nid 40"), "{e}");

    let mut raw = simple();
    raw.dir(36, 2, &[(b"..", 36, D), (b"f", 40, R)]);
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("missing '.'"), "{e}");
}

#[test]
fn unsorted_and_duplicate_names() {
    let mut raw = simple();
    raw.dir(
        36,
        2,
        &[(b".", 36, D), (b"..", 36, D), (b"g", 40, R), (b"f", 40, R)],
    );
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("does not sort after"), "{e}");

    let mut raw = simple();
    raw.dir(
        36,
        2,
        &[(b".", 36, D), (b"..", 36, D), (b"f", 40, R), (b"f", 40, R)],
    );
    assert!(
        read(&raw)
            .unwrap_err()
            .to_string()
            .contains("does not sort after")
    );
}

#[test]
fn bad_names() {
    for name in [&b"a/b"[..], b"a\0b"] {
        let mut raw = simple();
        raw.dir(
            36,
            2,
            &[(b".", 36, D), (b"..", 36, D), (name, 40, R), (b"z", 40, R)],
        );
        let e = read(&raw).unwrap_err();
        assert!(e.to_string().contains("invalid name"), "{e}");
    }
}

#[test]
fn directory_nlink_is_checked() {
    let mut raw = simple();
    raw.dir(36, 3, &[(b".", 36, D), (b"..", 36, D), (b"f", 40, R)]);
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("nlink is 3, expected 2"), "{e}");
}

#[test]
fn dirent_type_must_match() {
    let mut raw = simple();
    raw.dir(
        36,
        2,
        &[
            (b".", 36, D),
            (b"..", 36, D),
            (b"f", 40, file_type::SYMLINK),
        ],
    );
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("disagrees"), "{e}");
}

#[test]
fn directory_cycle_and_hardlink() {
    // / → a (40) → b (44) → back to a.
    let mut raw = Raw::new(1, 0);
    raw.dir(36, 3, &[(b".", 36, D), (b"..", 36, D), (b"a", 40, D)]);
    raw.dir(40, 3, &[(b".", 40, D), (b"..", 36, D), (b"b", 44, D)]);
    raw.dir(44, 3, &[(b".", 44, D), (b"..", 40, D), (b"x", 40, D)]);
    let e = read(&raw).unwrap_err();
    assert!(
        matches!(e.root_cause(), ReadError::DirectoryLinked { nid: 40 }),
        "{e}"
    );
    assert!(e.to_string().starts_with("/a/b/x: "), "{e}");

    // The root named from below.
    let mut raw = Raw::new(1, 0);
    raw.dir(36, 3, &[(b".", 36, D), (b"..", 36, D), (b"a", 40, D)]);
    raw.dir(40, 3, &[(b".", 40, D), (b"..", 36, D), (b"r", 36, D)]);
    assert!(matches!(
        read(&raw).unwrap_err().root_cause(),
        ReadError::DirectoryLinked { nid: 36 }
    ));
}

#[test]
fn depth_limit() {
    // A chain of `levels` nested directories named "d", 4 slots each.
    let chain = |levels: u64| {
        let blocks = (36 + 4 * (levels + 1)) * 32 / 4096 + 1;
        let mut raw = Raw::new(blocks as u32, 0);
        for level in 0..=levels {
            let nid = 36 + 4 * level;
            let parent = if level == 0 { 36 } else { nid - 4 };
            if level == levels {
                raw.dir(nid, 2, &[(b".", nid, D), (b"..", parent, D)]);
            } else {
                raw.dir(
                    nid,
                    3,
                    &[(b".", nid, D), (b"..", parent, D), (b"d", nid + 4, D)],
                );
            }
        }
        raw
    };
    read(&chain(MAX_DEPTH as u64)).unwrap();
    let e = read(&chain(MAX_DEPTH as u64 + 1)).unwrap_err();
    assert!(matches!(e.root_cause(), ReadError::TooDeep { .. }), "{e}");
}

#[test]
fn whiteouts_are_skipped_but_not_linked() {
    let mut raw = simple();
    raw.dir(
        36,
        2,
        &[
            (b".", 36, D),
            (b"..", 36, D),
            (b"f", 40, R),
            (b"w", 42, file_type::CHRDEV),
        ],
    );
    raw.inode(42, 0o020644, 1, DataLayout::FlatPlain, 0, 0, &[], &[]);
    let fs = read(&raw).unwrap();
    assert!(fs.lookup(b"/w").is_none());

    raw.dir(
        36,
        2,
        &[
            (b".", 36, D),
            (b"..", 36, D),
            (b"v", 42, file_type::CHRDEV),
            (b"w", 42, file_type::CHRDEV),
        ],
    );
    let e = read(&raw).unwrap_err();
    assert!(
        matches!(e.root_cause(), ReadError::WhiteoutLinked { .. }),
        "{e}"
    );
}

#[test]
fn inline_tail_must_not_cross_a_block() {
    let mut raw = Raw::new(2, 0);
    raw.dir(36, 2, &[(b".", 36, D), (b"..", 36, D), (b"f", 126, R)]);
    // nid 126 = offset 4032: inode ends at 4064, 100-byte tail crosses 4096.
    raw.inode(
        126,
        REG,
        1,
        DataLayout::FlatInline,
        100,
        0,
        &[],
        &[b'x'; 100],
    );
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("crosses a block boundary"), "{e}");
}

#[test]
fn overlay_xattrs() {
    let meta = |algo: u8, len: usize| {
        let mut v = vec![0, len as u8, 0, algo];
        v.resize(len, 0xab);
        v
    };
    let external = |xattrs: &[(u8, &[u8], &[u8])]| {
        let mut raw = simple();
        let body = xattr_body(&[], xattrs);
        raw.inode(
            40,
            REG,
            1,
            DataLayout::ChunkBased,
            1000,
            0,
            &body,
            &[0xff; 4],
        );
        read(&raw)
    };
    let m256 = meta(1, 36);
    let fs = external(&[
        (4, b"overlay.metacopy", &m256),
        (4, b"overlay.redirect", b"/ab/cd"),
    ])
    .unwrap();
    let InodeKind::Regular(crate::tree::RegularFile::External(ext)) =
        &fs.inode(fs.lookup(b"/f").unwrap()).kind
    else {
        panic!("not external");
    };
    assert_eq!(ext.payload.as_deref(), Some(&b"ab/cd"[..]));
    assert_eq!(ext.digest.unwrap().as_bytes(), &[0xab; 32]);

    let m512 = meta(2, 68);
    let fs = external(&[(4, b"overlay.metacopy", &m512)]).unwrap();
    let InodeKind::Regular(crate::tree::RegularFile::External(ext)) =
        &fs.inode(fs.lookup(b"/f").unwrap()).kind
    else {
        panic!("not external");
    };
    assert_eq!(
        ext.digest.unwrap().algorithm(),
        crate::verity::Algorithm::Sha512
    );
    assert_eq!(ext.payload, None);

    for bad in [meta(1, 68), meta(3, 36), meta(1, 35), vec![1, 36, 0, 1]] {
        let e = external(&[(4, b"overlay.metacopy", &bad)]).unwrap_err();
        assert!(
            e.to_string().contains("malformed trusted.overlay.metacopy"),
            "{e}"
        );
    }
    let e = external(&[(4, b"overlay.redirect", b"/x")]).unwrap_err();
    assert!(
        e.to_string().contains("without trusted.overlay.metacopy"),
        "{e}"
    );
    let e = external(&[
        (4, b"overlay.metacopy", b""),
        (4, b"overlay.redirect", b"x"),
    ])
    .unwrap_err();
    assert!(
        e.to_string().contains("malformed trusted.overlay.redirect"),
        "{e}"
    );
    let e = external(&[(4, b"overlay.metacopy", b""), (4, b"overlay.metacopy", b"")]).unwrap_err();
    assert!(e.to_string().contains("duplicate xattr"), "{e}");
    // Index 0 names must use their prefix index.
    let e = external(&[(0, b"user.x", b"")]).unwrap_err();
    assert!(e.to_string().contains("without its prefix index"), "{e}");

    // Metacopy on an inline file.
    let mut raw = simple();
    let body = xattr_body(&[], &[(4, b"overlay.metacopy", b"")]);
    raw.inode(40, REG, 1, DataLayout::FlatInline, 3, 0, &body, b"abc");
    assert!(
        read(&raw)
            .unwrap_err()
            .to_string()
            .contains("inline content")
    );

    // Escaped whiteout and unescaping.
    let mut raw = simple();
    let body = xattr_body(
        &[],
        &[
            (4, b"overlay.overlay.whiteout", b""),
            (4, b"overlay.overlay.x", b"1"),
            (1, b"overlay.whiteout", b""),
            (4, b"overlay.opaque", b"y"),
            (1, b"k", b"v"),
        ],
    );
    raw.inode(40, 0o100600, 1, DataLayout::FlatPlain, 0, 0, &body, &[]);
    let fs = read(&raw).unwrap();
    let f = fs.inode(fs.lookup(b"/f").unwrap());
    assert_eq!(f.kind, InodeKind::CharDevice(0));
    assert_eq!(f.stat.mode, 0o600);
    let names: Vec<&[u8]> = f.stat.xattrs.iter().map(|x| &*x.name).collect();
    assert_eq!(names, [&b"trusted.overlay.x"[..], b"user.k"]);
}

#[test]
fn shared_xattrs_and_filter() {
    // Shared table at block 1; the file has one inline and one shared xattr.
    let mut raw = Raw::new(2, 1);
    raw.dir(36, 2, &[(b".", 36, D), (b"..", 36, D), (b"f", 40, R)]);
    let body = xattr_body(&[1], &[(1, b"a", b"1")]);
    raw.inode(40, REG, 1, DataLayout::FlatPlain, 0, 0, &body, &[]);
    raw.put(4096 + 4, &entry(1, b"z", b"2"));
    let fs = read(&raw).unwrap();
    let f = fs.inode(fs.lookup(b"/f").unwrap());
    let got: Vec<(&[u8], &[u8])> = f
        .stat
        .xattrs
        .iter()
        .map(|x| (&*x.name, &*x.value))
        .collect();
    assert_eq!(got, [(&b"user.a"[..], &b"1"[..]), (b"user.z", b"2")]);

    // With the filter feature, a filter claiming "absent" is an error.
    let compat = SUPERBLOCK_OFFSET + 8;
    raw.put(compat, &6u32.to_le_bytes());
    let filter_at = 40 * 32 + 32;
    raw.put(filter_at, &0xffff_ffffu32.to_le_bytes());
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("name filter"), "{e}");
    let good = crate::erofs::xattr::name_filter([(1, &b"a"[..]), (1, b"z")]);
    raw.put(filter_at, &good.to_le_bytes());
    read(&raw).unwrap();

    // A shared id beyond the image.
    let body = xattr_body(&[4096], &[(1, b"a", b"1")]);
    raw.inode(40, REG, 1, DataLayout::FlatPlain, 0, 0, &body, &[]);
    let e = read(&raw).unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");
}

#[test]
fn budget_stops_shared_xattr_amplification() {
    // 64 distinct 4 KiB shared values, referenced by 200 inodes each: every
    // inode would allocate 256 KiB from 1 KiB of image.
    let values = 64u32;
    let value = vec![b'v'; 4092];
    let table_blk = 1u32;
    let inodes = 200u64;
    let first = 3 * 4096 / 32 + 64 * 4096 / 32; // after the table
    let slot = 9; // 32 + 12 + 64*4 = 300 bytes → 10 slots, keep within blocks
    let blocks = (first + inodes * (slot + 1)) * 32 / 4096 + 2;
    let mut raw = Raw::new(blocks as u32, table_blk);
    let mut names: Vec<Vec<u8>> = (0..inodes)
        .map(|i| format!("f{i:04}").into_bytes())
        .collect();
    names.sort();
    let mut entries: Vec<(&[u8], u64, u8)> = vec![(b".", 36, D), (b"..", 36, D)];
    for (i, name) in names.iter().enumerate() {
        entries.push((name, first + i as u64 * (slot + 1), R));
    }
    // Root directory in a data block (too big for a tail).
    let block = dirents(&entries);
    let root_blk = blocks as u32 - 1;
    raw.put(root_blk as usize * 4096, &block);
    raw.inode(36, DIR, 2, DataLayout::FlatPlain, 4096, root_blk, &[], &[]);
    for v in 0..values {
        let e = entry(1, format!("x{v:02}").as_bytes(), &value);
        raw.put(4096 + v as usize * e.len(), &e);
    }
    let ids: Vec<u32> = (0..values).map(|v| v * (4 + 3 + 4092 + 1) / 4).collect();
    let body = xattr_body(&ids, &[]);
    for i in 0..inodes {
        raw.inode(
            first + i * (slot + 1),
            REG,
            1,
            DataLayout::FlatPlain,
            0,
            0,
            &body,
            &[],
        );
    }
    let e = read(&raw).unwrap_err();
    assert!(
        matches!(e.root_cause(), ReadError::BudgetExceeded { .. }),
        "{e}"
    );
    // The object lister allocates nothing per xattr and succeeds.
    let image = Image::open(&raw.0).unwrap();
    assert!(
        referenced_objects(&image, &ReadOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn v2_images_keep_native_whiteouts() {
    let mut raw = simple();
    raw.dir(
        36,
        2,
        &[
            (b".", 36, D),
            (b"..", 36, D),
            (b"f", 40, R),
            (b"w", 42, file_type::CHRDEV),
        ],
    );
    raw.inode(42, 0o020600, 2, DataLayout::FlatPlain, 0, 0, &[], &[]);
    // nlink 2 is fine for a kept whiteout, but fatal for a skipped one.
    let e = read(&raw).unwrap_err();
    assert!(
        matches!(e.root_cause(), ReadError::WhiteoutLinked { nlink: 2, .. }),
        "{e}"
    );
    raw.put(12, &2u32.to_le_bytes());
    let fs = read(&raw).unwrap();
    let w = fs.inode(fs.lookup(b"/w").unwrap());
    assert_eq!(w.kind, InodeKind::CharDevice(0));
    assert_eq!(w.stat.mode, 0o600);
    // Format versions above 2 are not supported (C: ENOTSUP).
    raw.put(12, &3u32.to_le_bytes());
    let e = read(&raw).unwrap_err();
    assert!(
        matches!(e, ReadError::UnsupportedFormatVersion { found: 3 }),
        "{e}"
    );
    assert_eq!(e.errno(), rustix::io::Errno::NOTSUP);
}

#[test]
fn superblock_checks() {
    let ok = simple();
    let cases: [(usize, &[u8], &str); 7] = [
        (SUPERBLOCK_OFFSET, &[0; 4], "not an EROFS image"),
        (SUPERBLOCK_OFFSET + 12, &[9], "blkszbits"),
        (SUPERBLOCK_OFFSET + 8, &[0x10, 0, 0, 0], "feature_compat"),
        (SUPERBLOCK_OFFSET + 80, &[1, 0, 0, 0], "feature_incompat"),
        (
            SUPERBLOCK_OFFSET + 36,
            &[2, 0, 0, 0],
            "superblock says 2 blocks",
        ),
        (SUPERBLOCK_OFFSET + 14, &[1, 0], "invalid nid 1"),
        (8, &[2, 0, 0, 0], "header flags"),
    ];
    for (at, bytes, msg) in cases {
        let mut raw = Raw(ok.0.clone());
        raw.put(at, bytes);
        let e = read(&raw).unwrap_err();
        assert!(e.to_string().contains(msg), "{msg}: {e}");
    }
    // A root nid beyond the image.
    let mut raw = Raw(ok.0.clone());
    raw.put(SUPERBLOCK_OFFSET + 14, &200u16.to_le_bytes());
    assert!(matches!(
        read(&raw).unwrap_err(),
        ReadError::BadNid { nid: 200, .. }
    ));
}

#[test]
fn inode_layout_checks() {
    let cases: [(u16, DataLayout, u32, &str); 5] = [
        (
            0o020644,
            DataLayout::FlatInline,
            3,
            "special files have no data",
        ),
        (0o120777, DataLayout::ChunkBased, 3, "symlinks must be flat"),
        (0o120777, DataLayout::FlatPlain, 0, "1..=4095"),
        (REG, DataLayout::FlatPlain, 5001, "limited to 5000"),
        (0o170644, DataLayout::FlatPlain, 0, "no valid file type"),
    ];
    for (mode, layout, size, msg) in cases {
        let mut raw = simple();
        raw.inode(40, mode, 1, layout, size, 0, &[], b"abc");
        let e = read(&raw).unwrap_err();
        assert!(e.to_string().contains(msg), "{msg}: {e}");
    }
    // Data blocks outside the image.
    let mut raw = simple();
    raw.inode(40, REG, 1, DataLayout::FlatPlain, 3, 7, &[], &[]);
    assert!(read(&raw).unwrap_err().to_string().contains("past the end"));
    // Compressed layout and unknown i_format bits.
    let mut raw = simple();
    raw.put(40 * 32, &(1u16 << 1).to_le_bytes());
    assert!(
        read(&raw)
            .unwrap_err()
            .to_string()
            .contains("unsupported data layout 1")
    );
    raw.put(40 * 32, &0x0104u16.to_le_bytes());
    assert!(read(&raw).unwrap_err().to_string().contains("unknown bits"));
    // A symlink target with NUL.
    let mut raw = simple();
    raw.inode(40, 0o120777, 1, DataLayout::FlatInline, 3, 0, &[], b"a\0b");
    raw.dir(
        36,
        2,
        &[
            (b".", 36, D),
            (b"..", 36, D),
            (b"f", 40, file_type::SYMLINK),
        ],
    );
    assert!(read(&raw).unwrap_err().to_string().contains("NUL"));
}
