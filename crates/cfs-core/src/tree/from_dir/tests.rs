use super::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

fn names(fs: &FileSystem, dir: InodeId) -> Vec<String> {
    fs.directory(dir)
        .unwrap()
        .entries()
        .iter()
        .map(|e| String::from_utf8(e.name.to_vec()).unwrap())
        .collect()
}

fn sample_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir(root.join("sub")).unwrap();
    fs::create_dir(root.join("sub/deeper")).unwrap();
    fs::write(root.join("b-file"), b"hello").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("sub/deeper/big"), vec![7u8; 10000]).unwrap();
    fs::hard_link(root.join("b-file"), root.join("sub/a-link")).unwrap();
    symlink("../b-file", root.join("sub/sym")).unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        Mode::from_bits_truncate(0o640),
        0,
    )
    .unwrap();
    fs::set_permissions(root.join("b-file"), fs::Permissions::from_mode(0o4751)).unwrap();
    rustix::fs::lsetxattr(
        root.join("b-file").as_path(),
        "user.test",
        b"v=1",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root,
        "user.root-attr",
        b"r",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    tmp
}

#[test]
fn scans_like_c_without_hardlinks() {
    let tmp = sample_tree();
    let scan = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
    let fs = &scan.fs;
    fs.validate().unwrap();
    assert_eq!(names(fs, InodeId::ROOT), ["b-file", "empty", "fifo", "sub"]);
    let sub = fs.lookup(b"/sub").unwrap();
    assert_eq!(names(fs, sub), ["a-link", "deeper", "sym"]);
    // The root's own xattrs are read (not those of a /proc magic link).
    assert_eq!(
        fs.inode(InodeId::ROOT).stat.xattrs.get(b"user.root-attr"),
        Some(&b"r"[..])
    );
    let b = fs.inode(fs.lookup(b"/b-file").unwrap());
    assert_eq!(b.stat.mode, 0o4751);
    assert_eq!(b.nlink, 1);
    assert_eq!(b.stat.xattrs.get(b"user.test"), Some(&b"v=1"[..]));
    // Hard links are broken: two inodes.
    assert_ne!(fs.lookup(b"/b-file"), fs.lookup(b"/sub/a-link"));
    assert!(matches!(
        &fs.inode(fs.lookup(b"/sub/sym").unwrap()).kind,
        InodeKind::Symlink(t) if &**t == b"../b-file"
    ));
    assert!(matches!(
        fs.inode(fs.lookup(b"/fifo").unwrap()).kind,
        InodeKind::Fifo
    ));
    assert!(matches!(
        &fs.inode(fs.lookup(b"/empty").unwrap()).kind,
        InodeKind::Regular(RegularFile::Inline(c)) if c.is_empty()
    ));
    // Files to read, in depth-first name order, with sizes.
    let files: Vec<_> = scan
        .files
        .iter()
        .map(|f| (String::from_utf8(f.path.to_vec()).unwrap(), f.size))
        .collect();
    assert_eq!(
        files,
        [
            ("b-file".to_string(), 5),
            ("sub/a-link".to_string(), 5),
            ("sub/deeper/big".to_string(), 10000)
        ]
    );
    let mut buf = String::new();
    use std::io::Read;
    scan.open(&scan.files[0])
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert_eq!(buf, "hello");
    // mtimes are real unless use_epoch.
    assert_ne!(b.stat.mtime, Mtime::default());
    let epoch = scan_directory(
        tmp.path(),
        &ScanOptions {
            use_epoch: true,
            skip_xattrs: true,
            ..ScanOptions::default()
        },
    )
    .unwrap();
    let b = epoch.fs.inode(epoch.fs.lookup(b"/b-file").unwrap());
    assert_eq!(b.stat.mtime, Mtime::default());
    assert!(b.stat.xattrs.is_empty());
}

#[test]
fn detects_hardlinks_when_asked() {
    let tmp = sample_tree();
    let scan = scan_directory(
        tmp.path(),
        &ScanOptions {
            detect_hardlinks: true,
            ..ScanOptions::default()
        },
    )
    .unwrap();
    let fs = &scan.fs;
    fs.validate().unwrap();
    let a = fs.lookup(b"/b-file").unwrap();
    assert_eq!(fs.lookup(b"/sub/a-link"), Some(a));
    assert_eq!(fs.inode(a).nlink, 2);
    // "/b-file" comes first in depth-first name order, so it is primary.
    assert!(
        !fs.directory(InodeId::ROOT)
            .unwrap()
            .get(b"b-file")
            .unwrap()
            .alias
    );
    let sub = fs.lookup(b"/sub").unwrap();
    assert!(fs.directory(sub).unwrap().get(b"a-link").unwrap().alias);
    assert_eq!(scan.files.len(), 2);
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let err = scan_directory(&missing, &ScanOptions::default()).unwrap_err();
    assert_eq!(err.path, missing);
    assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = scan_directory(&file, &ScanOptions::default()).unwrap_err();
    assert!(err.to_string().contains("file"), "{err}");
    let err = scan_directory(
        tmp.path(),
        &ScanOptions {
            skip_xattrs: true,
            user_xattrs_only: true,
            ..ScanOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.source.raw_os_error(),
        Some(rustix::io::Errno::INVAL.raw_os_error())
    );
}

#[test]
fn normalizes_hardlink_primaries() {
    let mut fs = FileSystem::new(Stat::default());
    let z = fs.push_inode(Inode::new(
        Stat::default(),
        InodeKind::Directory(Directory::new()),
    ));
    let f = fs.push_inode(Inode::new(Stat::default(), InodeKind::Fifo));
    fs.directory_mut(InodeId::ROOT).unwrap().push(DirEntry {
        name: b"a"[..].into(),
        inode: f,
        alias: true,
    });
    fs.directory_mut(InodeId::ROOT).unwrap().push(DirEntry {
        name: b"z"[..].into(),
        inode: z,
        alias: false,
    });
    fs.directory_mut(z).unwrap().push(DirEntry {
        name: b"x"[..].into(),
        inode: f,
        alias: false,
    });
    fs.validate().unwrap();
    fs.normalize_hardlink_primaries();
    fs.validate().unwrap();
    assert!(
        !fs.directory(InodeId::ROOT)
            .unwrap()
            .get(b"a")
            .unwrap()
            .alias
    );
    assert!(fs.directory(z).unwrap().get(b"x").unwrap().alias);
}

#[test]
fn contents_inline_hash_and_store() {
    use crate::tree::{ContentOptions, read_contents};
    use crate::verity::{Algorithm, digest_bytes};
    let tmp = sample_tree();
    let store = tempfile::tempdir().unwrap();
    let store_path = store.path().join("objects");
    let mut scan = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
    read_contents(
        &mut scan,
        &ContentOptions {
            algorithm: Algorithm::Sha256,
            inline_max: 64,
            threads: 2,
            store: Some(store_path.clone()),
        },
    )
    .unwrap();
    let fs = &scan.fs;
    assert!(matches!(
        &fs.inode(fs.lookup(b"/b-file").unwrap()).kind,
        InodeKind::Regular(RegularFile::Inline(c)) if &**c == b"hello"
    ));
    let big = vec![7u8; 10000];
    let expected = digest_bytes(Algorithm::Sha256, &big);
    match &fs.inode(fs.lookup(b"/sub/deeper/big").unwrap()).kind {
        InodeKind::Regular(RegularFile::External(ext)) => {
            assert_eq!(ext.size, 10000);
            assert_eq!(ext.digest, Some(expected));
            assert_eq!(
                ext.payload.as_deref(),
                Some(expected.object_path().as_bytes())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Only the external file is in the store, named by its digest.
    assert_eq!(
        std::fs::read(store_path.join(expected.object_path())).unwrap(),
        big
    );
    let count: usize = std::fs::read_dir(&store_path)
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(count, 1);
}

#[test]
fn contents_detect_a_changed_small_file() {
    use crate::tree::{ContentError, ContentOptions, read_contents};
    let tmp = sample_tree();
    let mut scan = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
    fs::write(tmp.path().join("b-file"), b"hello, longer now").unwrap();
    let err = read_contents(
        &mut scan,
        &ContentOptions {
            algorithm: crate::verity::Algorithm::Sha256,
            inline_max: 64,
            threads: 1,
            store: None,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ContentError::Changed { expected: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("b-file"));
}

#[test]
fn overlapped_build_equals_scan_then_read() {
    use crate::tree::{BuildError, ContentOptions, build_from_directory, read_contents};
    let tmp = sample_tree();
    for i in 0..40 {
        fs::write(tmp.path().join(format!("sub/f{i}")), vec![i as u8; i * 997]).unwrap();
    }
    let opts = ContentOptions {
        algorithm: crate::verity::Algorithm::Sha512,
        inline_max: 64,
        threads: 3,
        store: None,
    };
    let built = build_from_directory(tmp.path(), &ScanOptions::default(), &opts).unwrap();
    let mut scanned = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
    read_contents(&mut scanned, &opts).unwrap();
    assert_eq!(built.fs, scanned.fs);
    assert_eq!(built.files.len(), scanned.files.len());
    // Errors: scan errors and content errors keep their kind.
    let err =
        build_from_directory(&tmp.path().join("nope"), &ScanOptions::default(), &opts).unwrap_err();
    assert!(matches!(err, BuildError::Scan(_)), "{err}");
    assert!(err.to_string().starts_with("error accessing "), "{err}");
}

#[test]
fn contents_detect_a_changed_large_file() {
    use crate::tree::{ContentError, ContentOptions, read_contents};
    let tmp = sample_tree();
    let big = tmp.path().join("sub/huge");
    fs::write(&big, vec![5u8; 3 << 20]).unwrap();
    let opts = ContentOptions {
        algorithm: crate::verity::Algorithm::Sha256,
        inline_max: 64,
        threads: 2,
        store: None,
    };
    // Shrunk and grown after the scan (the mapped and the read paths).
    for new_len in [1 << 20, 4 << 20] {
        let mut scan = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(new_len)
            .unwrap();
        let err = read_contents(&mut scan, &opts).unwrap_err();
        assert!(matches!(err, ContentError::Changed { .. }), "{err}");
        assert!(err.to_string().contains("huge"), "{err}");
        fs::write(&big, vec![5u8; 3 << 20]).unwrap();
    }
    let mut scan = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
    read_contents(&mut scan, &opts).unwrap();
    let id = scan.fs.lookup(b"/sub/huge").unwrap();
    let InodeKind::Regular(RegularFile::External(ext)) = &scan.fs.inode(id).kind else {
        panic!("not external");
    };
    assert_eq!(
        ext.digest,
        Some(crate::verity::digest_bytes(
            crate::verity::Algorithm::Sha256,
            &vec![5u8; 3 << 20]
        ))
    );
}

#[test]
fn contents_of_files_spanning_several_map_windows() {
    use crate::tree::{ContentOptions, read_contents};
    use crate::verity::{Algorithm, digest_bytes};
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(40u32 << 20) + 12345)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    fs::write(tmp.path().join("big"), &data).unwrap();
    let mut scan = scan_directory(tmp.path(), &ScanOptions::default()).unwrap();
    read_contents(
        &mut scan,
        &ContentOptions {
            algorithm: Algorithm::Sha512,
            inline_max: 64,
            threads: 2,
            store: None,
        },
    )
    .unwrap();
    let id = scan.fs.lookup(b"/big").unwrap();
    let InodeKind::Regular(RegularFile::External(ext)) = &scan.fs.inode(id).kind else {
        panic!("not external");
    };
    assert_eq!(ext.digest, Some(digest_bytes(Algorithm::Sha512, &data)));
}
