use super::*;

fn stat(mode: u16) -> Stat {
    Stat {
        mode,
        ..Stat::default()
    }
}

fn add(fs: &mut FileSystem, parent: InodeId, name: &str, kind: InodeKind) -> InodeId {
    let id = fs.push_inode(Inode::new(stat(0o644), kind));
    fs.directory_mut(parent)
        .unwrap()
        .insert(DirEntry {
            name: name.as_bytes().into(),
            inode: id,
            alias: false,
        })
        .unwrap();
    id
}

fn link(fs: &mut FileSystem, parent: InodeId, name: &str, target: InodeId) {
    fs.directory_mut(parent)
        .unwrap()
        .insert(DirEntry {
            name: name.as_bytes().into(),
            inode: target,
            alias: true,
        })
        .unwrap();
}

fn sample() -> (FileSystem, InodeId, InodeId) {
    let mut fs = FileSystem::new(stat(0o755));
    let etc = add(
        &mut fs,
        InodeId::ROOT,
        "etc",
        InodeKind::Directory(Directory::new()),
    );
    let f = add(
        &mut fs,
        etc,
        "hostname",
        InodeKind::Regular(RegularFile::Inline(b"host\n"[..].into())),
    );
    add(
        &mut fs,
        InodeId::ROOT,
        "bin",
        InodeKind::Symlink(b"usr/bin"[..].into()),
    );
    (fs, etc, f)
}

#[test]
fn insert_keeps_order_and_rejects_duplicates() {
    let mut d = Directory::new();
    for name in ["b", "d", "a", "c"] {
        d.insert(DirEntry {
            name: name.as_bytes().into(),
            inode: InodeId(1),
            alias: false,
        })
        .unwrap();
    }
    let names: Vec<_> = d.entries().iter().map(|e| e.name.to_vec()).collect();
    assert_eq!(names, [b"a", b"b", b"c", b"d"]);
    assert!(
        d.insert(DirEntry {
            name: b"c"[..].into(),
            inode: InodeId(2),
            alias: false
        })
        .is_err()
    );
    assert_eq!(d.get(b"c").unwrap().inode, InodeId(1));
    assert!(d.remove(b"c").is_some());
    assert!(d.get(b"c").is_none());
}

#[test]
fn walk_is_depth_first_in_name_order() {
    let (mut fs, etc, f) = sample();
    link(&mut fs, etc, "hosts-link", f);
    let mut seen = Vec::new();
    fs.walk(|p, e| seen.push((String::from_utf8(p.to_vec()).unwrap(), e.alias)));
    assert_eq!(
        seen,
        [
            ("/bin".to_string(), false),
            ("/etc".to_string(), false),
            ("/etc/hostname".to_string(), false),
            ("/etc/hosts-link".to_string(), true),
        ]
    );
    assert_eq!(fs.lookup(b"/etc//hostname"), Some(f));
    assert_eq!(fs.lookup(b"/"), Some(InodeId::ROOT));
    assert_eq!(fs.lookup(b"/nope"), None);
    fs.validate().unwrap();
}

#[test]
fn validate_rejects_broken_trees() {
    let (mut fs, _, f) = sample();
    // Second primary name.
    fs.directory_mut(InodeId::ROOT).unwrap().push(DirEntry {
        name: b"z"[..].into(),
        inode: f,
        alias: false,
    });
    assert!(matches!(
        fs.validate(),
        Err(TreeError::MultiplePrimary { .. })
    ));

    let (mut fs, etc2, _) = sample();
    link(&mut fs, InodeId::ROOT, "etc-link", etc2);
    assert!(matches!(
        fs.validate(),
        Err(TreeError::DirectoryHardlink { .. })
    ));

    let (mut fs, _, _) = sample();
    let orphan = fs.push_inode(Inode::new(stat(0), InodeKind::Fifo));
    link(&mut fs, InodeId::ROOT, "l", orphan);
    assert!(matches!(
        fs.validate(),
        Err(TreeError::AliasWithoutTarget { .. })
    ));

    let (mut fs, _, _) = sample();
    fs.directory_mut(InodeId::ROOT).unwrap().push(DirEntry {
        name: b"a"[..].into(),
        inode: InodeId(99),
        alias: false,
    });
    assert!(matches!(fs.validate(), Err(TreeError::Unsorted { .. })));
    fs.sort_directories();
    assert!(matches!(
        fs.validate(),
        Err(TreeError::DanglingEntry { .. })
    ));

    for bad in [&b".."[..], b"", b"a/b", &[b'x'; 256]] {
        let (mut fs, _, _) = sample();
        let id = fs.push_inode(Inode::new(stat(0), InodeKind::Fifo));
        fs.directory_mut(InodeId::ROOT).unwrap().push(DirEntry {
            name: bad.into(),
            inode: id,
            alias: false,
        });
        fs.sort_directories();
        assert!(
            matches!(fs.validate(), Err(TreeError::BadName { .. })),
            "{bad:?}"
        );
    }

    // A cycle through primary names terminates and is rejected.
    let (mut fs, etc, _) = sample();
    fs.directory_mut(etc).unwrap().push(DirEntry {
        name: b"zz"[..].into(),
        inode: etc,
        alias: false,
    });
    assert!(matches!(
        fs.validate(),
        Err(TreeError::MultiplePrimary { .. })
    ));
    let mut n = 0;
    fs.walk(|_, _| n += 1);
    assert_eq!(n, 4);
}

#[test]
fn xattrs_replace_in_place() {
    let mut x = Xattrs::new();
    x.set(b"user.b", b"1");
    x.set(b"user.a", b"2");
    assert_eq!(x.set(b"user.b", b"3").as_deref(), Some(&b"1"[..]));
    let names: Vec<_> = x.iter().map(|x| x.name.to_vec()).collect();
    assert_eq!(names, [b"user.b", b"user.a"]);
    x.sort();
    assert_eq!(&*x.as_slice()[0].name, b"user.a");
    assert_eq!(x.get(b"user.b"), Some(&b"3"[..]));
    assert_eq!(x.remove(b"user.a").as_deref(), Some(&b"2"[..]));
    assert_eq!(x.len(), 1);
}

#[test]
fn file_types_and_modes() {
    for t in [
        FileType::Directory,
        FileType::Regular,
        FileType::Symlink,
        FileType::CharDevice,
        FileType::BlockDevice,
        FileType::Fifo,
        FileType::Socket,
    ] {
        assert_eq!(FileType::from_mode(t.mode_bits() | 0o755), Some(t));
    }
    assert_eq!(FileType::from_mode(0o644), None);
    assert_eq!(FileType::from_mode(0o170644), None);
    let i = Inode::new(stat(0o4755), InodeKind::CharDevice(0));
    assert_eq!(i.st_mode(), 0o024755);
    assert!(i.kind.is_whiteout());
}
