//! Writer and reader agree on every limit of [`crate::limits`]: a property
//! test builds trees at, just below and just above each limit; the writer
//! must accept exactly the trees within all limits, and every image it
//! writes must read back to the same tree.

use proptest::prelude::*;

use super::*;
use crate::erofs::reader::{ReadOptions, read_image};
use crate::limits::{MAX_DEPTH, MAX_INLINE, MAX_NAME_LEN, PATH_MAX, XATTR_BUDGET};
use crate::tree::{DirEntry, Directory, Inode, InodeKind, Mtime, RegularFile, Stat, Xattr};

fn stat(mode: u16) -> Stat {
    Stat {
        mode,
        uid: 0,
        gid: 0,
        mtime: Mtime::new(1, 0),
        xattrs: Default::default(),
    }
}

fn add(
    fs: &mut FileSystem,
    dir: crate::tree::InodeId,
    name: &[u8],
    inode: Inode,
) -> crate::tree::InodeId {
    let id = fs.push_inode(inode);
    fs.directory_mut(dir)
        .unwrap()
        .insert(DirEntry {
            name: name.into(),
            inode: id,
            alias: false,
        })
        .unwrap();
    id
}

/// A tree with directories nested `depth` levels (root = 0), a name of
/// `name_len` bytes, a symlink target of `symlink_len`, an inline file of
/// `inline_len` bytes and an xattr using `xattr_budget` budget bytes.
fn tree(
    depth: usize,
    name_len: usize,
    symlink_len: usize,
    inline_len: usize,
    xattr_budget: usize,
) -> FileSystem {
    let mut fs = FileSystem::new(stat(0o40755));
    let mut dir = fs.root();
    for _ in 0..depth {
        dir = add(
            &mut fs,
            dir,
            b"d",
            Inode::new(stat(0o40755), InodeKind::Directory(Directory::default())),
        );
    }
    let root = fs.root();
    add(
        &mut fs,
        root,
        &vec![b'n'; name_len],
        Inode::new(
            stat(0o100644),
            InodeKind::Regular(RegularFile::Inline(Vec::new().into())),
        ),
    );
    add(
        &mut fs,
        root,
        b"link",
        Inode::new(
            stat(0o120777),
            InodeKind::Symlink(vec![b't'; symlink_len].into()),
        ),
    );
    add(
        &mut fs,
        root,
        b"inline",
        Inode::new(
            stat(0o100644),
            InodeKind::Regular(RegularFile::Inline(vec![b'i'; inline_len].into())),
        ),
    );
    let name = b"user.limit";
    let mut x = stat(0o100644);
    // 12 + 7 + name + value = xattr_budget
    x.xattrs.push_unchecked(Xattr {
        name: name.as_slice().into(),
        value: vec![b'v'; xattr_budget - 12 - 7 - name.len()].into(),
    });
    add(
        &mut fs,
        root,
        b"xattr",
        Inode::new(
            x,
            InodeKind::Regular(RegularFile::Inline(Vec::new().into())),
        ),
    );
    fs
}

fn dump(fs: &FileSystem) -> String {
    let mut out = Vec::new();
    crate::dumpfile::write_dumpfile(fs, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn writer_accepts_exactly_what_the_reader_reads(
        depth in (MAX_DEPTH - 1)..=(MAX_DEPTH + 1),
        name_len in (MAX_NAME_LEN - 1)..=(MAX_NAME_LEN + 1),
        symlink_len in (PATH_MAX - 2)..=PATH_MAX,
        inline_len in (MAX_INLINE - 1)..=(MAX_INLINE + 1),
        xattr_budget in (XATTR_BUDGET - 1)..=(XATTR_BUDGET + 1),
    ) {
        let fs = tree(depth, name_len, symlink_len, inline_len, xattr_budget);
        let within = depth <= MAX_DEPTH
            && name_len <= MAX_NAME_LEN
            && symlink_len < PATH_MAX
            && inline_len <= MAX_INLINE
            && xattr_budget <= XATTR_BUDGET;
        let mut image = Vec::new();
        let written = write_image(&fs, &WriteOptions::default(), &mut image);
        prop_assert_eq!(written.is_ok(), within, "{:?}", written.err());
        if within {
            let (back, _) = read_image(&image, &ReadOptions::default())
                .map_err(|e| TestCaseError::fail(format!("reader refused a written image: {e}")))?;
            // What was read back is the same tree: it writes the same image.
            let mut again = Vec::new();
            write_image(&back, &WriteOptions::default(), &mut again)
                .map_err(|e| TestCaseError::fail(format!("rewriting: {e}")))?;
            prop_assert!(again == image, "the image read back writes differently");
            prop_assert_eq!(dump(&back).lines().count(), depth + 5);
        }
    }
}

#[test]
fn too_deep_is_a_clear_write_error() {
    let fs = tree(MAX_DEPTH + 1, 1, 1, 0, 40);
    let e = write_image(&fs, &WriteOptions::default(), &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("nested deeper than 2048"), "{text}");
    assert!(
        text.starts_with(&"/d".repeat(MAX_DEPTH + 1)),
        "{}",
        &text[..80]
    );
}
