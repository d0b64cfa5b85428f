//! Targeted cases: metadata-only changes, subtrees added and removed,
//! symlinks never followed, hard links, special files, odd names.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::Path;

use super::{
    Fx, M, dir, file, is_root, mkfifo, paths, privileged, read, set_xattr, snapshot, xattrs,
};
use crate::etc_merge::{Action, ChangeKind, EntryKind, MetadataChange};

fn write(path: &Path, content: &str, mode: u32) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(path: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 123,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

#[test]
fn file_mode_xattr_and_owner_changes_carry_current_whole() {
    let fx = Fx::new();
    for root in [&fx.p, &fx.c] {
        write(&root.join("mode"), "same", 0o644);
        write(&root.join("attrs"), "same", 0o644);
        write(&root.join("owner"), "same", 0o644);
        set_xattr(&root.join("attrs"), "user.a", b"1");
    }
    write(&fx.n.join("mode"), "same", 0o644);
    write(&fx.n.join("attrs"), "upstream", 0o644);
    write(&fx.n.join("owner"), "upstream", 0o644);
    set_xattr(&fx.n.join("attrs"), "user.a", b"1");
    set_xattr(&fx.n.join("attrs"), "user.up", b"1");
    // Local changes: metadata only.
    fs::set_permissions(fx.c.join("mode"), fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime(&fx.c.join("mode"), 1_000_000_000);
    set_xattr(&fx.c.join("attrs"), "user.a", b"2");
    set_xattr(&fx.c.join("attrs"), "user.b", b"");
    if is_root() {
        lchown(fx.c.join("owner"), Some(1234), Some(5678)).unwrap();
    }
    let plan = fx.plan().unwrap();
    let mut want = vec!["attrs", "mode"];
    if is_root() {
        want.push("owner");
    }
    assert_eq!(paths(plan.actions()), want);
    fx.apply(&plan).unwrap();
    let md = fs::metadata(fx.n.join("mode")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_000_000_000, 123));
    assert_eq!(fs::read(fx.n.join("attrs")).unwrap(), b"same");
    let got = xattrs(&fx.n.join("attrs"));
    assert_eq!(got.get("user.a").map(Vec::as_slice), Some(&b"2"[..]));
    assert_eq!(got.get("user.b").map(Vec::as_slice), Some(&b""[..]));
    // Current's version whole: upstream's extra attribute is not kept.
    assert!(!got.contains_key("user.up"), "{got:?}");
    if is_root() {
        let md = fs::metadata(fx.n.join("owner")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        assert_eq!(fs::read(fx.n.join("owner")).unwrap(), b"same");
    } else {
        assert_eq!(fs::read(fx.n.join("owner")).unwrap(), b"upstream");
    }
}

#[test]
fn root_only_setuid_trusted_and_selinux_attributes_survive_the_copy() {
    if !privileged("root_only_setuid_trusted_and_selinux_attributes_survive_the_copy") {
        return;
    }
    let fx = Fx::new();
    let f = fx.c.join("suid");
    write(&f, "#!/bin/sh\n", 0o755);
    lchown(&f, Some(4321), Some(4321)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
    set_xattr(&f, "trusted.cfs-test", b"t");
    // security.selinux can be set without SELinux on most filesystems.
    let label = b"system_u:object_r:etc_t:s0";
    let selinux = rustix::fs::lsetxattr(
        &f,
        "security.selinux",
        label,
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    fx.merge().unwrap();
    let got = fx.n.join("suid");
    let md = fs::metadata(&got).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o6755, "chown must come before chmod");
    assert_eq!((md.uid(), md.gid()), (4321, 4321));
    let attrs = xattrs(&got);
    assert_eq!(
        attrs.get("trusted.cfs-test").map(Vec::as_slice),
        Some(&b"t"[..])
    );
    if selinux {
        assert_eq!(
            attrs.get("security.selinux").map(Vec::as_slice),
            Some(&label[..])
        );
    }
}

#[test]
fn directory_metadata_merges_per_attribute() {
    let fx = Fx::new();
    for root in [&fx.p, &fx.c, &fx.n] {
        fs::create_dir(root.join("d")).unwrap();
        write(&root.join("d/f"), "f", 0o644);
        fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    set_xattr(&fx.p.join("d"), "user.keep", b"1");
    set_xattr(&fx.p.join("d"), "user.gone", b"1");
    set_xattr(&fx.c.join("d"), "user.keep", b"1");
    set_xattr(&fx.c.join("d"), "user.local", b"1");
    fs::set_permissions(fx.c.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    set_xattr(&fx.n.join("d"), "user.keep", b"2");
    set_xattr(&fx.n.join("d"), "user.gone", b"1");
    set_xattr(&fx.n.join("d"), "user.up", b"1");
    if is_root() {
        lchown(fx.c.join("d"), Some(1000), Some(1000)).unwrap();
    }
    let plan = fx.plan().unwrap();
    let owner = is_root().then_some(1000);
    assert_eq!(
        plan.actions(),
        [Action::SetDirMetadata {
            path: "d".into(),
            change: MetadataChange {
                mode: Some(0o700),
                uid: owner,
                gid: owner,
                set_xattrs: vec![("user.local".into(), b"1".to_vec())],
                remove_xattrs: vec!["user.gone".into()],
            },
        }]
    );
    assert_eq!(plan.local_changes()[0].kind, ChangeKind::Modified);
    let report = fx.apply(&plan).unwrap();
    assert_eq!(report.metadata_updated, 1);
    let md = fs::metadata(fx.n.join("d")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o700);
    if is_root() {
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
    }
    let got: Vec<(String, Vec<u8>)> = xattrs(&fx.n.join("d")).into_iter().collect();
    let want: Vec<(String, Vec<u8>)> = [("user.keep", "2"), ("user.local", "1"), ("user.up", "1")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(got, want, "upstream's relabel survives the local chmod");
}

#[test]
fn an_upstream_mode_change_survives_a_local_xattr_change() {
    let fx = Fx::new();
    for root in [&fx.p, &fx.c, &fx.n] {
        fs::create_dir(root.join("e")).unwrap();
    }
    fs::set_permissions(fx.n.join("e"), fs::Permissions::from_mode(0o750)).unwrap();
    set_xattr(&fx.c.join("e"), "user.local", b"1");
    fx.merge().unwrap();
    let md = fs::metadata(fx.n.join("e")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert_eq!(
        xattrs(&fx.n.join("e")).get("user.local").map(Vec::as_slice),
        Some(&b"1"[..])
    );
}

#[test]
fn a_locally_added_subtree_is_copied_whole_with_metadata() {
    let fx = Fx::new();
    let a = fx.c.join("a");
    fs::create_dir_all(a.join("b/empty")).unwrap();
    write(&a.join("b/conf"), "conf", 0o640);
    set_xattr(&a.join("b/conf"), "user.x", b"y");
    symlink("../b/conf", a.join("b/link")).unwrap();
    mkfifo(&a.join("b/fifo"));
    fs::set_permissions(a.join("b/empty"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(a.join("b"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&a.join("b/conf"), 1_111_111_111);
    set_mtime(&a.join("b/link"), 1_222_222_222);
    set_mtime(&a.join("b"), 1_333_333_333);
    // New also has an entry there now: a file (row 8 replaces it).
    write(&fx.n.join("a"), "upstream file", 0o644);
    let plan = fx.plan().unwrap();
    assert_eq!(
        plan.actions(),
        [Action::CopyTree {
            path: "a".into(),
            replaces: Some(EntryKind::File)
        }]
    );
    assert_eq!(
        plan.local_changes().len(),
        1,
        "an added directory is listed once"
    );
    let report = fx.apply(&plan).unwrap();
    assert_eq!(report.trees_copied, 1);
    // Same subtree: compare snapshots without inode numbers, ctimes and
    // atimes (reading the source moves its atimes).
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| {
                l.split(' ')
                    .filter(|w| {
                        !["ino=", "ctime=", "atime="]
                            .iter()
                            .any(|p| w.starts_with(p))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let want = strip(snapshot(&fx.c.join("a")));
    assert_eq!(strip(snapshot(&fx.n.join("a"))), want);
    assert_eq!(want.len(), 6, "{want:#?}");
    let leftovers: Vec<_> = fs::read_dir(&fx.n)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["a"], "no temporary names left");
}

#[test]
fn a_local_directory_merges_into_an_upstream_directory() {
    // Row 7: pristine had a file, current and new made it a directory.
    let p = dir(&[("x", file("A", 0o644))], 0o755);
    let c = dir(
        &[(
            "x",
            dir(
                &[("mine", file("1", 0o644)), ("both", file("c", 0o644))],
                0o750,
            ),
        )],
        0o755,
    );
    let n = dir(
        &[(
            "x",
            dir(
                &[("theirs", file("2", 0o644)), ("both", file("n", 0o644))],
                0o755,
            ),
        )],
        0o755,
    );
    let fx = Fx::from_models(&p, &c, &n);
    fx.merge().unwrap();
    let want = dir(
        &[
            ("both", file("c", 0o644)),
            ("mine", file("1", 0o644)),
            ("theirs", file("2", 0o644)),
        ],
        0o750,
    );
    assert_eq!(read(&fx.n.join("x")), Some(want));
}

#[test]
fn a_locally_removed_subtree_goes_even_if_upstream_changed_it() {
    let sub = |y: &str| {
        dir(
            &[
                ("x", file("x", 0o644)),
                ("sub", dir(&[("y", file(y, 0o644))], 0o755)),
            ],
            0o755,
        )
    };
    let p = dir(&[("gone", sub("y")), ("stay", file("s", 0o644))], 0o755);
    let c = dir(&[("stay", file("s", 0o644))], 0o755);
    let n = dir(&[("gone", sub("y2")), ("stay", file("s2", 0o644))], 0o755);
    let fx = Fx::from_models(&p, &c, &n);
    let plan = fx.plan().unwrap();
    assert_eq!(
        plan.actions(),
        [Action::Remove {
            path: "gone".into(),
            kind: EntryKind::Dir
        }]
    );
    assert_eq!(plan.local_changes()[0].kind, ChangeKind::Removed);
    assert_eq!(fx.apply(&plan).unwrap().removed, 1);
    assert_eq!(
        read(&fx.n),
        Some(dir(&[("stay", file("s2", 0o644))], 0o755))
    );
}

#[test]
fn upstream_deleting_a_directory_keeps_local_additions_in_it() {
    // bootc #1924: the new image dropped multi-user.target.wants while
    // the admin had enabled a unit in it.
    let wants = |extra: bool| {
        let mut e = vec![(
            "a.service",
            M::Link("/usr/lib/systemd/system/a.service".into()),
        )];
        if extra {
            e.push((
                "machines.target",
                M::Link("/usr/lib/systemd/system/machines.target".into()),
            ));
        }
        dir(
            &[(
                "system",
                dir(&[("multi-user.target.wants", dir(&e, 0o755))], 0o755),
            )],
            0o755,
        )
    };
    let p = dir(&[("systemd", wants(false))], 0o755);
    let c = dir(&[("systemd", wants(true))], 0o755);
    let n = dir(
        &[("systemd", dir(&[("system", dir(&[], 0o755))], 0o755))],
        0o755,
    );
    let fx = Fx::from_models(&p, &c, &n);
    let plan = fx.plan().unwrap();
    assert_eq!(
        paths(plan.actions()),
        [
            "systemd/system/multi-user.target.wants",
            "systemd/system/multi-user.target.wants/machines.target"
        ]
    );
    assert!(matches!(plan.actions()[0], Action::CreateDir { .. }));
    let report = fx.apply(&plan).unwrap();
    assert_eq!((report.dirs_created, report.copied), (1, 1));
    let got = read(&fx.n.join("systemd/system/multi-user.target.wants"));
    let want = dir(
        &[(
            "machines.target",
            M::Link("/usr/lib/systemd/system/machines.target".into()),
        )],
        0o755,
    );
    assert_eq!(got, Some(want));
}

#[test]
fn symlinks_are_copied_and_removed_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    let shadow = outside.path().join("shadow");
    write(&shadow, "SECRET", 0o600);
    fs::create_dir(outside.path().join("dir")).unwrap();
    let before = snapshot(outside.path());
    let fx = Fx::new();
    // Added locally: links to outside (a file and a directory).
    symlink(&shadow, fx.c.join("passwd-link")).unwrap();
    symlink(outside.path().join("dir"), fx.c.join("dir-link")).unwrap();
    // Modified locally where new has a symlink to outside: replaced, not
    // written through.
    for root in [&fx.p, &fx.c] {
        write(&root.join("conf"), "old", 0o644);
    }
    write(&fx.c.join("conf"), "local", 0o644);
    symlink(&shadow, fx.n.join("conf")).unwrap();
    // Removed locally where new has a symlink to outside (bootc #2278).
    write(&fx.p.join("rm-me"), "x", 0o644);
    symlink(&shadow, fx.n.join("rm-me")).unwrap();
    // A local file inside a directory that is a link to outside in new
    // (a conflict is tested elsewhere); here pristine and current have a
    // link there, unchanged: new's link stays, nothing is written through.
    symlink(outside.path().join("dir"), fx.p.join("via")).unwrap();
    symlink(outside.path().join("dir"), fx.c.join("via")).unwrap();
    symlink(outside.path().join("dir"), fx.n.join("via")).unwrap();
    fx.merge().unwrap();
    assert_eq!(
        read(&fx.n.join("passwd-link")),
        Some(M::Link(shadow.to_str().unwrap().into()))
    );
    assert_eq!(
        read(&fx.n.join("dir-link")),
        Some(M::Link(outside.path().join("dir").to_str().unwrap().into()))
    );
    assert_eq!(read(&fx.n.join("conf")), Some(file("local", 0o644)));
    assert_eq!(read(&fx.n.join("rm-me")), None);
    assert!(
        fs::symlink_metadata(fx.n.join("via"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        snapshot(outside.path()),
        before,
        "nothing outside was touched"
    );
}

#[test]
fn hard_links_are_copied_as_independent_files() {
    let fx = Fx::new();
    write(&fx.c.join("h1"), "linked", 0o644);
    fs::hard_link(fx.c.join("h1"), fx.c.join("h2")).unwrap();
    fs::create_dir(fx.c.join("d")).unwrap();
    fs::hard_link(fx.c.join("h1"), fx.c.join("d/h3")).unwrap();
    fx.merge().unwrap();
    let ino = |p: &str| fs::metadata(fx.n.join(p)).unwrap().ino();
    for p in ["h1", "h2", "d/h3"] {
        assert_eq!(fs::read(fx.n.join(p)).unwrap(), b"linked");
        assert_eq!(fs::metadata(fx.n.join(p)).unwrap().nlink(), 1);
    }
    assert_ne!(ino("h1"), ino("h2"));
}

#[test]
fn special_files_are_compared_and_recreated_as_such() {
    let fx = Fx::new();
    // A FIFO whose mode changed locally, and one added.
    for root in [&fx.p, &fx.c, &fx.n] {
        mkfifo(&root.join("pipe"));
    }
    fs::set_permissions(fx.c.join("pipe"), fs::Permissions::from_mode(0o600)).unwrap();
    mkfifo(&fx.c.join("new-pipe"));
    let _sock = std::os::unix::net::UnixListener::bind(fx.c.join("sock")).unwrap();
    let devices = is_root();
    if devices {
        let mk = |name: &str, ft, dev| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                fx.c.join(name),
                ft,
                rustix::fs::Mode::from_raw_mode(0o640),
                dev,
            )
            .unwrap();
        };
        mk(
            "null",
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(1, 3),
        );
        mk(
            "loop",
            rustix::fs::FileType::BlockDevice,
            rustix::fs::makedev(7, 0),
        );
        // Same device type and mode, different number: modified.
        for root in [&fx.p, &fx.n] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                root.join("tty"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o640),
                rustix::fs::makedev(5, 0),
            )
            .unwrap();
        }
        mk(
            "tty",
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(5, 1),
        );
    }
    let plan = fx.plan().unwrap();
    let mut want = vec!["new-pipe", "pipe", "sock"];
    if devices {
        want = vec!["loop", "new-pipe", "null", "pipe", "sock", "tty"];
    }
    assert_eq!(paths(plan.actions()), want);
    fx.apply(&plan).unwrap();
    let md = |p: &str| fs::symlink_metadata(fx.n.join(p)).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(md("pipe").file_type().is_fifo());
    assert_eq!(md("pipe").mode() & 0o7777, 0o600);
    assert!(md("sock").file_type().is_socket());
    if devices {
        assert!(md("null").file_type().is_char_device());
        assert_eq!(md("null").rdev(), rustix::fs::makedev(1, 3));
        assert!(md("loop").file_type().is_block_device());
        assert_eq!(md("tty").rdev(), rustix::fs::makedev(5, 1));
        assert_eq!(md("null").mode() & 0o7777, 0o640);
    }
}

#[test]
fn non_utf8_names_are_merged() {
    let fx = Fx::new();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let gone = std::ffi::OsStr::from_bytes(b"\xff-dir");
    write(&fx.c.join(odd), "x", 0o644);
    for root in [&fx.p, &fx.n] {
        fs::create_dir(root.join(gone)).unwrap();
        write(&root.join(gone).join("f"), "f", 0o644);
    }
    fx.merge().unwrap();
    assert_eq!(fs::read(fx.n.join(odd)).unwrap(), b"x");
    assert!(!fx.n.join(gone).exists());
}
