//! Unit tests of the `composefs-info` printers.

use std::io::Cursor;

use super::super::{ParseOptions, parse_dumpfile};
use super::*;
use crate::tree::{FileSystem, InodeId, InodeKind, RegularFile};

const ROOT: &str = "/ 4096 40755 2 0 0 0 0.0 - - -\n";

fn parse(text: &str) -> FileSystem {
    let fs = parse_dumpfile(Cursor::new(text.as_bytes()), &ParseOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    fs.validate().expect("valid tree");
    fs
}

fn dump(fs: &FileSystem) -> String {
    let mut out = Vec::new();
    write_dumpfile(fs, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn decimal_and_octal() {
    let mut v = Vec::new();
    for n in [0, 7, 10, 4096, u64::MAX] {
        v.clear();
        push_u64(&mut v, n);
        assert_eq!(v, n.to_string().as_bytes());
    }
    for n in [0, 0o7, 0o10, 0o100644, u32::MAX] {
        v.clear();
        push_octal(&mut v, n);
        assert_eq!(v, format!("{n:o}").as_bytes());
    }
}

#[test]
fn printers() {
    let digest = "0b6aeb8072e1260ee430edff44a4939b9a306ff4d0fd58d8b3ec40abf3ea7636";
    let text = format!(
        "/ 4096 40755 3 0 0 0 1700000000.0 - - - security.selinux=a\\x3db\\x00\n\
         /bin 7 120777 1 0 0 0 1700000000.0 usr/bin - -\n\
         /dev 75 40755 2 0 0 0 1700000000.0 - - -\n\
         /dev/null 0 20666 1 0 0 259 1700000000.0 - - -\n\
         /etc 113 40755 2 0 0 0 -5.5 - - -\n\
         /etc/dash 1 100644 1 0 0 0 1.1 - \\x2d -\n\
         /etc/h\\x20x 9 100644 2 0 0 0 1700000001.123456789 - my\\nhost\\x00\\x20 - user.n=a\\x3db\n\
         /etc/l 0 @100644 0 0 0 0 0.0 /etc/h\\x20x - -\n\
         /etc/os 1048576 100644 1 0 0 0 2.0 0b/6aeb - {digest} user.x=\n"
    );
    let fs = parse(&text);
    assert_eq!(
        dump(&fs),
        format!(
            "/ 4096 40755 3 0 0 0 1700000000.0 - - - security.selinux=a\\x3db\\x00\n\
             /bin 7 120777 1 0 0 0 1700000000.0 usr/bin - -\n\
             /dev 75 40755 2 0 0 0 1700000000.0 - - -\n\
             /dev/null 0 20666 1 0 0 259 1700000000.0 - - -\n\
             /etc 113 40755 2 0 0 0 -5.5 - - -\n\
             /etc/dash 1 100644 1 0 0 0 1.1 - \\x2d -\n\
             /etc/h\\x20x 9 100644 2 0 0 0 1700000001.123456789 - my\\nhost\\x00\\x20 - user.n=a\\x3db\n\
             /etc/l 9 @100644 2 0 0 0 1700000001.123456789 /etc/h\\x20x my\\nhost\\x00\\x20 - user.n=a\\x3db\n\
             /etc/os 1048576 100644 1 0 0 0 2.0 0b/6aeb - {digest} user.x=\n"
        )
    );
    let mut ls = Vec::new();
    write_ls(&fs, &mut ls).unwrap();
    assert_eq!(
        String::from_utf8(ls).unwrap(),
        "/bin\t-> usr/bin\n/dev/\t\n/dev/null\n/etc/\t\n/etc/dash\n/etc/h x\n/etc/l\n\
         /etc/os\t@ 0b/6aeb\n"
    );
    let mut objects = Vec::new();
    write_objects(&fs, &mut objects).unwrap();
    assert_eq!(objects, b"0b/6aeb\n");
}

#[test]
fn printer_uses_first_name_and_sha512() {
    // The primary (non-@) name comes later in depth-first order here.
    let d512 = "ab".repeat(64);
    let fs = parse(&format!(
        "{ROOT}/z 5 100644 2 0 0 0 0.0 xx/yy - -\n/a 0 @100644 0 0 0 0 0.0 /z - -\n"
    ));
    assert_eq!(
        dump(&fs),
        format!("{ROOT}/a 5 100644 2 0 0 0 0.0 xx/yy - -\n/z 5 @100644 2 0 0 0 0.0 /a - -\n")
    );
    let mut fs = fs;
    let z = fs.lookup(b"/z").unwrap();
    if let InodeKind::Regular(RegularFile::External(ext)) = &mut fs.inode_mut(z).kind {
        ext.digest = Some(crate::verity::Digest::from_hex(&d512).unwrap());
    }
    assert!(dump(&fs).contains(&format!(" - {d512}\n")));
    assert_eq!(object_paths(&fs), [&b"xx/yy"[..]]);
}

#[test]
fn printers_survive_invalid_trees() {
    use crate::tree::{DirEntry, Stat};
    let mut fs = FileSystem::new(Stat::default());
    let d = fs.push_inode(crate::tree::Inode::new(
        Stat::default(),
        InodeKind::Directory(crate::tree::Directory::new()),
    ));
    let entry = |name: &[u8], inode, alias| DirEntry {
        name: name.into(),
        inode,
        alias,
    };
    fs.directory_mut(InodeId::ROOT)
        .unwrap()
        .push(entry(b"d", d, false));
    // A loop back to the root and a second primary name of /d.
    fs.directory_mut(d)
        .unwrap()
        .push(entry(b"up", InodeId::ROOT, false));
    fs.directory_mut(d).unwrap().push(entry(b"again", d, false));
    fs.directory_mut(d).unwrap().sort();
    let out = dump(&fs);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains("/d/up 0 @40000 2 0 0 0 0.0 / - -"), "{out}");
    // A dangling entry is an error, not a panic.
    fs.directory_mut(d)
        .unwrap()
        .push(entry(b"zz", InodeId(99), false));
    assert!(write_dumpfile(&fs, Vec::new()).is_err());
    assert!(write_ls(&fs, Vec::new()).is_err());
}

#[test]
fn deep_trees_do_not_recurse() {
    use crate::tree::{DirEntry, Directory, ExternalFile, Inode, Stat};
    // 200k nested directories: a recursive walk would overflow the test
    // thread's stack. (Printing paths would be quadratic, so only the walk
    // of `object_paths` runs here.)
    let mut fs = FileSystem::new(Stat::default());
    let mut dir = InodeId::ROOT;
    for _ in 0..200_000 {
        let child = fs.push_inode(Inode::new(
            Stat::default(),
            InodeKind::Directory(Directory::new()),
        ));
        fs.directory_mut(dir).unwrap().push(DirEntry {
            name: b"d"[..].into(),
            inode: child,
            alias: false,
        });
        dir = child;
    }
    let file = fs.push_inode(Inode::new(
        Stat::default(),
        InodeKind::Regular(RegularFile::External(ExternalFile {
            size: 1,
            payload: Some(b"ab/cd"[..].into()),
            digest: None,
        })),
    ));
    fs.directory_mut(dir).unwrap().push(DirEntry {
        name: b"f"[..].into(),
        inode: file,
        alias: false,
    });
    assert_eq!(object_paths(&fs), [&b"ab/cd"[..]]);
}

#[test]
fn rs_style_prints_later_hard_link_names_as_bare_links() {
    let text = format!(
        "{ROOT}/a 5 100644 2 1 2 0 7.5 - hello -\n/b 5 @100644 2 1 2 0 7.5 /a hello -\n/c\\x20d 0 @120000 - - - - 0.0 /a - -\n"
    );
    let fs = parse(&text);
    let mut out = Vec::new();
    write_dumpfile_rs_links(&fs, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        format!(
            "/ 4096 40755 2 0 0 0 0.0 - - -\n/a 5 100644 2 1 2 0 7.5 - hello -\n/b 0 @120000 - - - - 0.0 /a - -\n/c\\x20d 0 @120000 - - - - 0.0 /a - -\n"
        )
    );
    // Both styles describe the same tree.
    assert_eq!(dump(&parse(&out)), dump(&fs));
}

#[test]
fn entry_and_hardlink_lines_stand_alone() {
    let fs = parse(&format!("{ROOT}/d 0 40700 2 5 6 0 9.25 - - - user.a=b\n"));
    let dir = fs.inode(fs.directory(fs.root()).unwrap().entries()[0].inode);
    let mut out = Vec::new();
    write_entry_line(&mut out, b"/d x", dir).unwrap();
    write_entry_line(&mut out, b"", dir).unwrap();
    write_hardlink_line(&mut out, b"/l", b"/d x").unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "/d\\x20x 0 40700 2 5 6 0 9.25 - - - user.a=b\n- 0 40700 2 5 6 0 9.25 - - - user.a=b\n/l 0 @120000 - - - - 0.0 /d\\x20x - -\n"
    );
}
