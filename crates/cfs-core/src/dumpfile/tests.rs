//! Unit tests of the composefs-dump parser and printers: every C error, the C
//! quirks, the limits, and hard-link resolution.

use std::io::Cursor;

use super::parse::parse_with_limits;
use super::*;
use crate::tree::{FileSystem, InodeId, InodeKind, Mtime, RegularFile};

const ROOT: &str = "/ 4096 40755 2 0 0 0 0.0 - - -\n";

fn parse_opts(text: &[u8], strict: bool) -> Result<FileSystem, ParseError> {
    parse_dumpfile(Cursor::new(text), &ParseOptions { strict })
}

fn parse(text: &str) -> FileSystem {
    let fs = parse_opts(text.as_bytes(), false).unwrap_or_else(|e| panic!("{e}"));
    fs.validate().expect("valid tree");
    fs
}

/// `(line, C message)` of a failing parse of `text`.
fn fail_opts(text: &[u8], strict: bool) -> (Option<u64>, String) {
    match parse_opts(text, strict) {
        Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(text)),
        Err(e) => (e.line(), e.c_message()),
    }
}

fn fail(text: &str) -> (Option<u64>, String) {
    fail_opts(text.as_bytes(), false)
}

/// The error of `ROOT` + `line` (which is line 2).
fn fail_line(line: &str) -> String {
    let (n, msg) = fail(&format!("{ROOT}{line}\n"));
    assert_eq!(n, Some(2), "{msg}");
    msg
}

fn inode<'a>(fs: &'a FileSystem, path: &str) -> &'a crate::tree::Inode {
    fs.inode(
        fs.lookup(path.as_bytes())
            .unwrap_or_else(|| panic!("{path} missing")),
    )
}

#[test]
fn find_byte_matches_position() {
    use super::build::find_byte;
    let hay: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    for start in 0..20 {
        for end in start..hay.len() {
            let h = &hay[start..end];
            for needle in [0u8, 1, 37, 0x80, 0xff, b' '] {
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "{start}..{end} {needle}"
                );
            }
        }
    }
    assert_eq!(find_byte(b"\x80\x80\x80\x80\x80\x80\x80\x01", 1), Some(7));
    assert_eq!(find_byte(b"", 0), None);
}

#[test]
fn line_level_errors() {
    assert_eq!(fail(""), (None, "No files in dump file".into()));
    assert_eq!(fail("\n"), (Some(1), "Invalid empty path".into()));
    assert_eq!(fail_line(""), "Invalid empty path");
    assert_eq!(
        fail_line(r"\x00 0 100644 1 0 0 0 0.0 - - -"),
        "Invalid empty path"
    );
    assert_eq!(
        fail_opts(b"/ 4096 40755 2 0 0 0 0.0 - - -\n/a\0b", false),
        (
            Some(2),
            "Invalid embedded NUL character at position 2".into()
        )
    );
    assert_eq!(
        fail("/a 0 100644 1 0 0 0 0.0 - - -\n"),
        (Some(1), "Root node not present".into())
    );
    assert_eq!(
        fail("/ 0 100644 1 0 0 0 0.0 - - -\n"),
        (Some(1), "Root must be a directory".into())
    );
    assert_eq!(
        fail_line("/ 4096 40755 2 0 0 0 0.0 - - -"),
        "Can't have multiple roots"
    );
    // Placement is checked before the hard-link mode.
    assert_eq!(
        fail_line("/ 4096 @40755 2 0 0 0 0.0 - - -"),
        "Can't have multiple roots"
    );
    assert_eq!(
        fail("/ 4096 @40755 2 0 0 0 0.0 - - -\n"),
        (Some(1), "Directories can't be hardlinked".into())
    );
    assert_eq!(
        fail("/ 4096 @100644 2 0 0 0 0.0 - - -\n"),
        (Some(1), "Root must be a directory".into())
    );
}

#[test]
fn path_errors() {
    assert_eq!(
        fail_line("/d/f 0 100644 1 0 0 0 0.0 - - -"),
        "Parent directory missing for /d/f"
    );
    assert_eq!(
        fail_line("/a/ 4096 40755 2 0 0 0 0.0 - - -"),
        "Parent directory missing for /a/"
    );
    assert_eq!(
        fail_line("/. 0 100644 1 0 0 0 0.0 - - -"),
        "Invalid . or .. in path: /."
    );
    assert_eq!(
        fail_line("/.. 0 100644 1 0 0 0 0.0 - - -"),
        "Invalid . or .. in path: /.."
    );
    assert_eq!(
        fail_line("/./a 0 100644 1 0 0 0 0.0 - - -"),
        "Parent directory missing for /./a"
    );
    assert_eq!(
        fail_line("// 0 100644 1 0 0 0 0.0 - - -"),
        "Can't add child"
    );
    let long = "n".repeat(256);
    assert_eq!(
        fail_line(&format!("/{long} 0 100644 1 0 0 0 0.0 - - -")),
        "Can't add child"
    );
    // Through a file: the last parent is "not a directory", deeper is "missing".
    let base = format!("{ROOT}/f 0 100644 1 0 0 0 0.0 - - -\n");
    assert_eq!(
        fail(&format!("{base}/f/x 0 100644 1 0 0 0 0.0 - - -\n")),
        (Some(3), "Parent must be a directory for /f/x".into())
    );
    assert_eq!(
        fail(&format!("{base}/f/x/y 0 100644 1 0 0 0 0.0 - - -\n")).1,
        "Parent directory missing for /f/x/y"
    );
    // Duplicates, sorted or not.
    let d = format!("{ROOT}/b 0 100644 1 0 0 0 0.0 - - -\n");
    assert_eq!(
        fail(&format!("{d}/b 0 100644 1 0 0 0 0.0 - - -\n")).1,
        "Can't add child"
    );
    let d2 = format!("{d}/a 0 100644 1 0 0 0 0.0 - - -\n");
    assert_eq!(
        fail(&format!("{d2}/b 0 100644 1 0 0 0 0.0 - - -\n")),
        (Some(4), "Can't add child".into())
    );
    assert_eq!(
        fail(&format!("{d2}/a 0 100644 1 0 0 0 0.0 - - -\n")).1,
        "Can't add child"
    );
    // The message shows the path up to an escaped NUL, like C.
    assert_eq!(
        fail_line(r"/x/y\x00z 0 100644 1 0 0 0 0.0 - - -"),
        "Parent directory missing for /x/y"
    );
}

#[test]
fn c_path_resolution_skips_slashes() {
    let fs = parse(&format!(
        "{ROOT}d 4096 40755 2 0 0 0 0.0 - - -\n//d///e 0 100644 1 0 0 0 0.0 - - -\n\
         /d/f\\x00ignored 0 100644 1 0 0 0 0.0 - - -\n"
    ));
    assert!(fs.lookup(b"/d/e").is_some());
    assert!(fs.lookup(b"/d/f").is_some());
    assert_eq!(fs.directory(fs.lookup(b"/d").unwrap()).unwrap().len(), 2);
}

#[test]
fn number_and_mode_errors() {
    assert_eq!(
        fail_line("/a abc 100644 1 0 0 0 0.0 - - -"),
        "Invalid integer abc"
    );
    assert_eq!(
        fail_line("/a 0 100648 1 0 0 0 0.0 - - -"),
        "Invalid integer 100648"
    );
    assert_eq!(
        fail_line("/a 0 @rw 1 0 0 0 0.0 - - -"),
        "Invalid integer rw"
    );
    assert_eq!(fail_line("/a 0 0 1 0 0 0 0.0 - - -"), "Invalid mode 0");
    assert_eq!(fail_line("/a 0 @0 1 0 0 0 0.0 /x - -"), "Invalid mode 0");
    assert_eq!(fail_line("/a 0 644 1 0 0 0 0.0 - - -"), "Invalid mode 644");
    assert_eq!(
        fail_line("/a 0 170644 1 0 0 0 0.0 - - -"),
        "Invalid mode 170644"
    );
    assert_eq!(
        fail_line("/a  0 100644 1 0 0 0 0.0 - - -"),
        "Invalid mode 0"
    );
    assert_eq!(
        fail_line("/a 0 100644 x 0 0 0 0.0 - - -"),
        "Invalid integer x"
    );
    assert_eq!(
        fail_line("/a 0 100644 1 u 0 0 0.0 - - -"),
        "Invalid integer u"
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 g 0 0.0 - - -"),
        "Invalid integer g"
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 0 r 0.0 - - -"),
        "Invalid integer r"
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 0 0 10 - - -"),
        "Invalid integer "
    );
    assert_eq!(fail_line("/a 0 100644 1 0 0"), "Invalid integer ");
}

#[test]
fn c_number_quirks() {
    let fs = parse(&format!(
        "{ROOT}/a 0 1100644 1 -1 4294967296 0 -10.5 - - -\n\
         /b 0 0100600 1 007 +8 0 10.0000005 - - -\n\
         /c 0 20644 1 0 0 17592186044416 0.0 - - -\n\
         /d 0 20644 1 0 0 18446744073709551616 10.1000000000 - - -\n\
         /e 0 60644 1 0 0 2049 0.0 - - -\n"
    ));
    let a = inode(&fs, "/a");
    assert_eq!((a.stat.mode, a.stat.uid, a.stat.gid), (0o644, u32::MAX, 0));
    assert_eq!(a.stat.mtime, Mtime::new(-10, 5));
    let b = inode(&fs, "/b");
    assert_eq!((b.stat.mode, b.stat.uid, b.stat.gid), (0o600, 7, 8));
    assert_eq!(b.stat.mtime, Mtime::new(10, 5));
    assert_eq!(inode(&fs, "/c").kind, InodeKind::CharDevice(0));
    assert!(inode(&fs, "/c").kind.is_whiteout());
    let d = inode(&fs, "/d");
    assert_eq!(d.kind, InodeKind::CharDevice(u32::MAX));
    assert_eq!(d.stat.mtime, Mtime::new(10, 1_000_000_000));
    assert_eq!(inode(&fs, "/e").kind, InodeKind::BlockDevice(2049));
}

#[test]
fn gid_and_rdev_errors_ignored_for_nonzero_uid() {
    let fs = parse(&format!("{ROOT}/a 0 100644 1 5 bad worse 0.0 - - -\n"));
    let a = inode(&fs, "/a");
    assert_eq!((a.stat.uid, a.stat.gid), (5, 0));
    // uid 2^32 is 0 once stored, but C tests the unstored value.
    let fs = parse(&format!("{ROOT}/a 0 100644 1 4294967296 bad 0 0.0 - - -\n"));
    assert_eq!(inode(&fs, "/a").stat.uid, 0);
    assert_eq!(
        fail_line("/a 0 100644 1 0 bad 0 0.0 - - -"),
        "Invalid integer bad"
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 0 bad 0.0 - - -"),
        "Invalid integer bad"
    );
}

#[test]
fn content_and_payload_errors() {
    assert_eq!(
        fail_line("/a 3 100644 1 0 0 0 0.0 - abcd -"),
        "Invalid content size 4, must match size 3"
    );
    assert_eq!(
        fail_line("/a -1 100644 1 0 0 0 0.0 - abc -"),
        "Invalid content size 3, must match size -1"
    );
    // The size check applies to every type, even directories.
    assert_eq!(
        fail_line("/d 4096 40755 2 0 0 0 0.0 - abc -"),
        "Invalid content size 3, must match size 4096"
    );
    let big = "x".repeat(5001);
    assert_eq!(
        fail_line(&format!("/a 5001 100644 1 0 0 0 0.0 - {big} -")),
        "Inline content size 5001 exceeds maximum 5000"
    );
    let long = "p".repeat(4096);
    assert_eq!(
        fail_line(&format!("/a 1 100644 1 0 0 0 0.0 {long} - -")),
        "Invalid payload"
    );
    assert_eq!(
        fail_line(&format!("/d 0 40755 1 0 0 0 0.0 {long} - -")),
        "Invalid payload"
    );
    // Field escapes fail in field order.
    assert_eq!(
        fail_line(r"/a 1 100644 1 0 0 0 0.0 \q \z -"),
        "Unsupported escape type q"
    );
    assert_eq!(
        fail_line(r"/a 1 100644 1 0 0 0 0.0 - a\ -"),
        "No character after escape"
    );
    assert_eq!(
        fail_line(r"/a 1 100644 1 0 0 0 0.0 - - \xZZ"),
        "Invalid hex characters after hex escape"
    );
    assert_eq!(
        fail_line(r"/a\x4 1 100644 1 0 0 0 0.0 - - -"),
        "No hex characters after hex escape"
    );
}

#[test]
fn symlinks_and_strict_mode() {
    assert_eq!(
        fail_line("/l 0 120777 1 0 0 0 0.0 - - -"),
        "Invalid symlink"
    );
    assert_eq!(
        fail_line("/l 0 120777 1 0 0 0 0.0 \\x00x - -"),
        "Invalid symlink"
    );
    let long = "t".repeat(4096);
    assert_eq!(
        fail_line(&format!("/l 4096 120777 1 0 0 0 0.0 {long} - -")),
        "Invalid symlink"
    );
    let ok = "t".repeat(4095);
    let fs = parse(&format!("{ROOT}/l 4095 120777 1 0 0 0 0.0 {ok} - -\n"));
    assert_eq!(inode(&fs, "/l").size(), 4095);

    let mismatch = format!("{ROOT}/l 5 120777 1 0 0 0 0.0 abc - -\n");
    assert_eq!(
        inode(&parse(&mismatch), "/l").kind,
        InodeKind::Symlink(b"abc"[..].into())
    );
    assert_eq!(
        fail_opts(mismatch.as_bytes(), true),
        (Some(2), "Invalid symlink size 3, must match size 5".into())
    );
    let content = format!("{ROOT}/l 3 120777 1 0 0 0 0.0 abc xyz -\n");
    parse(&content);
    assert_eq!(
        fail_opts(content.as_bytes(), true).1,
        "Symlink cannot have content"
    );
    let rdev = format!("{ROOT}/a 0 100644 1 0 0 5 0.0 - - -\n");
    assert_eq!(
        inode(&parse(&rdev), "/a").kind,
        InodeKind::Regular(RegularFile::Inline(Box::default()))
    );
    assert_eq!(
        fail_opts(rdev.as_bytes(), true).1,
        "Non-zero devnum on non-device"
    );
    // Devices keep their rdev in strict mode.
    parse_opts(
        format!("{ROOT}/c 0 20644 1 0 0 5 0.0 - - -\n").as_bytes(),
        true,
    )
    .unwrap();

    let unterminated = format!("{ROOT}/a 0 100644 1 0 0 0 0.0 - - -");
    parse(&unterminated);
    assert_eq!(
        fail_opts(unterminated.as_bytes(), true),
        (Some(2), "Missing trailing newline".into())
    );
    // Strict: a bad unterminated last line is reported as the missing newline.
    assert_eq!(
        fail_opts(format!("{ROOT}garbage").as_bytes(), true).1,
        "Missing trailing newline"
    );
}

#[test]
fn file_kinds() {
    let digest = "0b6aeb8072e1260ee430edff44a4939b9a306ff4d0fd58d8b3ec40abf3ea7636";
    let fs = parse(&format!(
        "{ROOT}/empty 0 100644 1 0 0 0 0.0 ab/cd - {digest}\n\
         /inline 3 100644 1 0 0 0 0.0 ab/cd abc {digest}\n\
         /ext 10 100644 1 0 0 0 0.0 0b/6aeb - {digest}\n\
         /sparse 10 100644 1 0 0 0 0.0 - - -\n\
         /nopayload 10 100644 1 0 0 0 0.0 \\x00 - \n\
         /fifo 0 10644 1 0 0 0 0.0 - - -\n\
         /sock 0 140644 1 0 0 0 0.0 - - -\n\
         /dir 77 40700 9 0 0 0 0.0 - - -\n"
    ));
    let reg = |p| match &inode(&fs, p).kind {
        InodeKind::Regular(r) => r.clone(),
        k => panic!("{p}: {k:?}"),
    };
    assert_eq!(reg("/empty"), RegularFile::Inline(Box::default()));
    assert_eq!(reg("/inline"), RegularFile::Inline(b"abc"[..].into()));
    let RegularFile::External(ext) = reg("/ext") else {
        panic!()
    };
    assert_eq!(
        (ext.size, ext.payload.as_deref()),
        (10, Some(&b"0b/6aeb"[..]))
    );
    assert_eq!(ext.digest.unwrap().to_hex(), digest);
    let RegularFile::External(ext) = reg("/sparse") else {
        panic!()
    };
    assert_eq!((ext.payload, ext.digest), (None, None));
    // An empty payload is no payload; a 10-field line has an all-zero digest.
    let RegularFile::External(ext) = reg("/nopayload") else {
        panic!()
    };
    assert_eq!(ext.payload, None);
    assert_eq!(ext.digest.unwrap().as_bytes(), &[0; 32]);
    assert_eq!(inode(&fs, "/fifo").kind, InodeKind::Fifo);
    assert_eq!(inode(&fs, "/sock").kind, InodeKind::Socket);
    let dir = inode(&fs, "/dir");
    assert_eq!((dir.size(), dir.nlink, dir.stat.mode), (77, 9, 0o700));
}

#[test]
fn field_count_spaces_and_crlf() {
    // 10 fields, one trailing space, a trailing space after xattrs: accepted.
    let fs = parse(&format!(
        "{ROOT}/a 0 100644 1 0 0 0 0.0 - -\n/b 0 100644 1 0 0 0 0.0 - - - \n\
         /c 0 100644 1 0 0 0 0.0 - - - user.a=b \n/d 1 100644 1 0 0 0 0.0 - - -\r\n\
         /e 0 100644 1 0 0 0 0.0 - - - user.a=b\r\n"
    ));
    assert_eq!(inode(&fs, "/c").stat.xattrs.get(b"user.a"), Some(&b"b"[..]));
    let RegularFile::External(d) = (match &inode(&fs, "/d").kind {
        InodeKind::Regular(r) => r.clone(),
        _ => panic!(),
    }) else {
        panic!()
    };
    assert_eq!(d.digest.unwrap().as_bytes(), &[0; 32]);
    assert_eq!(
        inode(&fs, "/e").stat.xattrs.get(b"user.a"),
        Some(&b"b\r"[..])
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 0 0 0.0 - - -  "),
        "Missing = in xattr"
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 0 0 0.0 - - - user.a"),
        "Missing = in xattr"
    );
}

#[test]
fn xattrs() {
    let fs = parse(&format!(
        "{ROOT}/a 0 100644 1 0 0 0 0.0 - - - user.b=1 user.a=x=y user.b=2 user.\\x3d=\\x00 user.e=\n"
    ));
    let x: Vec<(&[u8], &[u8])> = inode(&fs, "/a")
        .stat
        .xattrs
        .iter()
        .map(|x| (&*x.name, &*x.value))
        .collect();
    assert_eq!(
        x,
        [
            (&b"user.b"[..], &b"2"[..]),
            (b"user.a", b"x=y"),
            (b"user.=", b"\0"),
            (b"user.e", b""),
        ]
    );
    assert_eq!(
        fail_line("/a 0 100644 1 0 0 0 0.0 - - - =v"),
        "Can't set xattr"
    );
    assert_eq!(
        fail_line(r"/a 0 100644 1 0 0 0 0.0 - - - \x00k=v"),
        "Can't set xattr"
    );
    let long = "n".repeat(251);
    assert_eq!(
        fail_line(&format!("/a 0 100644 1 0 0 0 0.0 - - - user.{long}=v")),
        "Can't set xattr"
    );
    parse(&format!(
        "{ROOT}/a 0 100644 1 0 0 0 0.0 - - - user.{}=v\n",
        "n".repeat(250)
    ));
    assert_eq!(
        fail_line(r"/a 0 100644 1 0 0 0 0.0 - - - user.a=\q"),
        "Unsupported escape type q"
    );
    assert_eq!(
        fail_line(r"/a 0 100644 1 0 0 0 0.0 - - - \q=v"),
        "Unsupported escape type q"
    );
}

#[test]
fn xattr_budget() {
    // 12 + (7 + 6 + 32742) = 32767: exactly the budget.
    let v = "v".repeat(32742);
    parse(&format!("{ROOT}/a 0 100644 1 0 0 0 0.0 - - - user.a={v}\n"));
    assert_eq!(
        fail_line(&format!("/a 0 100644 1 0 0 0 0.0 - - - user.a={v}v")),
        "Can't set xattr"
    );
    // Replacing refunds the old value, also for the only xattr.
    let half = "v".repeat(20000);
    parse(&format!(
        "{ROOT}/a 0 100644 1 0 0 0 0.0 - - - user.a={half} user.a={half}\n"
    ));
    let small = "v".repeat(10000);
    parse(&format!(
        "{ROOT}/a 0 100644 1 0 0 0 0.0 - - - user.b=1 user.a={half} user.a={half} user.c={small}\n"
    ));
    assert_eq!(
        fail_line(&format!(
            "/a 0 100644 1 0 0 0 0.0 - - - user.a={half} user.b={half}"
        )),
        "Can't set xattr"
    );
    // Many small xattrs (the hash-indexed path) with a duplicate.
    let mut line = String::from("/a 0 100644 1 0 0 0 0.0 - - -");
    for i in 0..100 {
        line.push_str(&format!(" user.k{i}=v"));
    }
    line.push_str(" user.k7=w");
    let fs = parse(&format!("{ROOT}{line}\n"));
    let a = inode(&fs, "/a");
    assert_eq!(a.stat.xattrs.len(), 100);
    assert_eq!(a.stat.xattrs.get(b"user.k7"), Some(&b"w"[..]));
}

#[test]
fn too_many_xattrs() {
    let v = "v".repeat(65535 - 7);
    // 65535 bytes of xattr text pass the length check (and then fail the budget).
    assert_eq!(
        fail_line(&format!("/a 0 100644 1 0 0 0 0.0 - - - user.a={v}")),
        "Can't set xattr"
    );
    assert_eq!(
        fail_line(&format!("/a 0 100644 1 0 0 0 0.0 - - - user.a={v}v")),
        "Too many xattrs"
    );
    // Hard-link lines ignore their xattrs altogether.
    parse(&format!(
        "{ROOT}/a 0 100644 1 0 0 0 0.0 - - -\n/b 0 @100644 1 0 0 0 0.0 /a - - user.a={v}v\n"
    ));
}

#[test]
fn hardlinks() {
    let fs = parse(&format!(
        "{ROOT}/l1 junk @100644 x y z w nonsense /f \\q zz user\n\
         /f 3 100644 2 0 0 0 0.0 - abc -\n\
         /d 0 40755 2 0 0 0 0.0 - - -\n\
         /d/l2 0 @120777 0 0 0 0 0.0 f - -\n\
         /l3 0 @100644 0 0 0 0 0.0 //d/l2/ - -\n"
    ));
    let f = fs.lookup(b"/f").unwrap();
    assert_eq!(fs.inode(f).nlink, 2);
    for name in ["/l1", "/d/l2", "/l3"] {
        assert_eq!(fs.lookup(name.as_bytes()), Some(f), "{name}");
    }
    let root = fs.directory(InodeId::ROOT).unwrap();
    let names: Vec<(&[u8], bool)> = root.entries().iter().map(|e| (&*e.name, e.alias)).collect();
    assert_eq!(
        names,
        [
            (&b"d"[..], false),
            (b"f", false),
            (b"l1", true),
            (b"l3", true)
        ]
    );
    assert_eq!(fs.len(), 3);
}

#[test]
fn hardlink_errors() {
    let f = format!("{ROOT}/f 0 100644 1 0 0 0 0.0 - - -\n/d 0 40755 2 0 0 0 0.0 - - -\n");
    let with = |links: &str| fail(&format!("{f}{links}"));
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 - - -\n"),
        (Some(4), "No target path for the hardlink".into())
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /x - -\n"),
        (Some(4), "No target at /x for hardlink".into())
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /f/x - -\n").1,
        "No target at /f/x for hardlink"
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /d/./f - -\n").1,
        "No target at /d/./f for hardlink"
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /l - -\n"),
        (Some(4), "Self-referential hardlink /l".into())
    );
    // Errors of later lines win, and links are resolved last to first.
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /x - -\n/m 0 @100644 1 0 0 0 0.0 /y - -\n"),
        (Some(5), "No target at /y for hardlink".into())
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /x - -\n/m 0 @40755 1 0 0 0 0.0 /y - -\n"),
        (Some(5), "Directories can't be hardlinked".into())
    );
    // Accepted by C, rejected here: directory targets and cycles.
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /d - -\n"),
        (Some(4), "Directories can't be hardlinked".into())
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 / - -\n").1,
        "Directories can't be hardlinked"
    );
    assert_eq!(
        with("/m 0 @100644 1 0 0 0 0.0 /l - -\n/l 0 @100644 1 0 0 0 0.0 /d - -\n").1,
        "Directories can't be hardlinked"
    );
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /m - -\n/m 0 @100644 1 0 0 0 0.0 /l - -\n").1,
        "cannot write file: Too many levels of symbolic links"
    );
    assert_eq!(
        with(
            "/k 0 @100644 1 0 0 0 0.0 /l - -\n/l 0 @100644 1 0 0 0 0.0 /m - -\n\
             /m 0 @100644 1 0 0 0 0.0 /n - -\n/n 0 @100644 1 0 0 0 0.0 /l - -\n"
        )
        .1,
        "cannot write file: Too many levels of symbolic links"
    );
    // A path through a link is not a directory.
    assert_eq!(
        with("/l 0 @100644 1 0 0 0 0.0 /f - -\n/l/x 0 100644 1 0 0 0 0.0 - - -\n"),
        (Some(5), "Parent must be a directory for /l/x".into())
    );
}

#[test]
fn unsorted_input_is_sorted_and_deduplicated() {
    let mut text = String::from(ROOT);
    text.push_str("/d 0 40755 2 0 0 0 0.0 - - -\n");
    for i in (0..500).rev() {
        text.push_str(&format!("/d/f{i:03} 0 100644 1 0 0 0 0.0 - - -\n"));
    }
    text.push_str("/d/f250/x 0 100644 1 0 0 0 0.0 - - -\n");
    assert_eq!(
        fail(&text),
        (Some(503), "Parent must be a directory for /d/f250/x".into())
    );
    text.truncate(text.len() - "/d/f250/x 0 100644 1 0 0 0 0.0 - - -\n".len());
    text.push_str("/c 0 100644 1 0 0 0 0.0 - - -\n/l 0 @100644 1 0 0 0 0.0 /d/f123 - -\n");
    let fs = parse(&text);
    let d = fs.directory(fs.lookup(b"/d").unwrap()).unwrap();
    assert_eq!(d.len(), 500);
    assert!(d.entries().windows(2).all(|w| w[0].name < w[1].name));
    assert_eq!(fs.lookup(b"/l"), fs.lookup(b"/d/f123"));
    text.push_str("/d/f007 0 100644 1 0 0 0 0.0 - - -\n");
    assert_eq!(fail(&text), (Some(505), "Can't add child".into()));
}

#[test]
fn limits() {
    let opts = ParseOptions::default();
    let text = format!("{ROOT}/a 0 100644 1 0 0 0 0.0 - - -\n");
    let run = |max_line, max_entries| {
        parse_with_limits(Cursor::new(text.as_bytes()), &opts, max_line, max_entries)
            .map(|_| ())
            .map_err(|e| (e.line(), e.c_message()))
    };
    assert_eq!(run(30, 10), Ok(()));
    assert_eq!(
        run(29, 10),
        Err((Some(1), "Line too long (more than 29 bytes)".into()))
    );
    assert_eq!(run(100, 2), Ok(()));
    assert_eq!(
        run(100, 1),
        Err((Some(2), "Too many entries (more than 1)".into()))
    );
    // An unterminated over-long last line is too long, not unterminated.
    let long = format!("{ROOT}{}", "x".repeat(40));
    let r = parse_with_limits(Cursor::new(long.as_bytes()), &opts, 30, 10);
    assert_eq!(
        r.unwrap_err().c_message(),
        "Line too long (more than 30 bytes)"
    );
}

#[test]
fn read_errors() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("boom"))
        }
    }
    let e = parse_dumpfile(std::io::BufReader::new(Broken), &ParseOptions::default()).unwrap_err();
    assert_eq!(e.c_message(), "Error reading from file");
    assert!(matches!(e.kind(), ParseErrorKind::Io(_)));
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn error_display_and_bytes() {
    let bytes = |parts: &[&[u8]]| parts.concat();
    let text = bytes(&[ROOT.as_bytes(), b"/a\xff/b 0 100644 1 0 0 0 0.0 - - -\n"]);
    let e = parse_opts(&text, false).unwrap_err();
    assert_eq!(
        e.c_message_bytes(),
        b"Parent directory missing for /a\xff/b"
    );
    assert_eq!(
        e.to_string(),
        "line 2, field PATH: Parent directory missing for /a\u{fffd}/b"
    );
    assert_eq!(e.field(), Some(Field::Path));
    let text = bytes(&[ROOT.as_bytes(), b"/a 0 100644 1 0 0 0 0.0 \\\xfe - -\n"]);
    let e = parse_opts(&text, false).unwrap_err();
    assert_eq!(e.c_message_bytes(), b"Unsupported escape type \xfe");
    let e = parse_opts(b"", false).unwrap_err();
    assert_eq!(
        (e.line(), e.to_string()),
        (None, "No files in dump file".into())
    );
}

#[test]
fn from_env_tests_presence_only() {
    // Only the presence matters; this test does not touch the environment
    // (other tests run in parallel), it checks the default is not strict.
    assert!(!ParseOptions::default().strict);
    assert_eq!(
        ParseOptions::from_env().strict,
        std::env::var_os("CFS_PARSE_STRICT").is_some()
    );
}

#[test]
fn errors_name_the_field() {
    let cases: &[(&str, Field)] = &[
        ("/a x 100644 1 0 0 0 0.0 - - -", Field::Size),
        ("/a 0 644 1 0 0 0 0.0 - - -", Field::Mode),
        ("/a 0 100644 y 0 0 0 0.0 - - -", Field::Nlink),
        ("/a 0 100644 1 z 0 0 0.0 - - -", Field::Uid),
        ("/a 0 100644 1 0 g 0 0.0 - - -", Field::Gid),
        ("/a 0 100644 1 0 0 r 0.0 - - -", Field::Rdev),
        ("/a 0 100644 1 0 0 0 0 - - -", Field::Mtime),
        ("/a 0 100644 1 0 0 0 0.0 \\q - -", Field::Payload),
        ("/a 3 100644 1 0 0 0 0.0 - ab -", Field::Content),
        ("/a 0 100644 1 0 0 0 0.0 - - \\q", Field::Digest),
        (
            "/a 0 100644 1 0 0 0 0.0 - - - user.a=1 nokey",
            Field::Xattr(2),
        ),
        ("/a\\q 0 100644 1 0 0 0 0.0 - - -", Field::Path),
        ("/l 0 120777 1 0 0 0 0.0 - - -", Field::Payload),
    ];
    for (line, field) in cases {
        let text = format!("{ROOT}{line}\n");
        let e = parse_opts(text.as_bytes(), false).unwrap_err();
        assert_eq!(e.line(), Some(2), "{line}");
        assert_eq!(e.field(), Some(*field), "{line}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("line 2, field {field}: ")),
            "{e}"
        );
    }
    // A raw NUL names the field it is in.
    let e = parse_opts(b"/ 4096 40755 2 0 0 0 0.0 - - - user.a=\0\n", false).unwrap_err();
    assert_eq!(e.field(), Some(Field::Xattr(1)));
    // A dangling hard link names its PAYLOAD on the @ line.
    let text = format!("{ROOT}/b 0 @100644 1 0 0 0 0.0 /nope - -\n");
    let e = parse_opts(text.as_bytes(), false).unwrap_err();
    assert_eq!((e.line(), e.field()), (Some(2), Some(Field::Payload)));
}
