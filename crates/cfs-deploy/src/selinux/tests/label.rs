//! Labelling trees: priority, types, `<<none>>`, aliases, hard links,
//! stripping, discovery.

use super::*;

#[test]
fn last_matching_spec_wins() {
    let fc = "\
/.*                     system_u:object_r:default_t:s0
/usr/lib(/.*)?          system_u:object_r:lib_t:s0
/usr/lib/exact          system_u:object_r:exact_t:s0
# a broader pattern later in the file beats both
/usr/l[a-z]*/e.*        system_u:object_r:late_t:s0
/usr(/.*)?              system_u:object_r:usr_t:s0
/usr/lib/other          system_u:object_r:other_t:s0
";
    let mut fs = with_policy(
        &[("file_contexts", fc)],
        &[
            ("/usr/lib/exact", K::File("")),
            ("/usr/lib/other", K::File("")),
            ("/srv/x", K::Dir),
        ],
    );
    let outcome = run(&mut fs);
    let Outcome::Labelled { policy_type, stats } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(policy_type, "t");
    assert_eq!(stats.hardlinks_broken, 0);
    assert_eq!(label_at(&fs, "/"), ctx("default_t"));
    assert_eq!(label_at(&fs, "/usr/lib/exact"), ctx("usr_t"));
    assert_eq!(label_at(&fs, "/usr/lib/other"), ctx("other_t"));
    assert_eq!(label_at(&fs, "/usr/lib"), ctx("usr_t"));
    assert_eq!(label_at(&fs, "/srv/x"), ctx("default_t"));

    // The same policy in libselinux order: an exact path beats every pattern.
    let mut policy = load_from(&[("file_contexts", fc)], LookupOrder::Libselinux);
    assert_eq!(
        policy.lookup(b"/usr/lib/exact", FileType::Regular).unwrap(),
        ctx("exact_t").as_deref()
    );
    assert_eq!(
        policy.lookup(b"/usr/lib/x", FileType::Regular).unwrap(),
        ctx("usr_t").as_deref()
    );
    let spec = policy
        .matching_spec(b"/usr/lib/exact", FileType::Regular)
        .unwrap()
        .unwrap();
    assert_eq!((spec.line, spec.regex), (3, "/usr/lib/exact"));
    assert_eq!(spec.file, "/etc/selinux/t/contexts/files/file_contexts");
}

#[test]
fn file_types_and_none() {
    let fc = "\
/x(/.*)?        system_u:object_r:any_t:s0
/x/.*   --      system_u:object_r:file_t:s0
/x/.*   -d      system_u:object_r:dir_t:s0
/x/.*   -l      system_u:object_r:lnk_t:s0
/x/.*   -p      system_u:object_r:fifo_t:s0
/x/.*   -s      system_u:object_r:sock_t:s0
/x/.*   -b      system_u:object_r:blk_t:s0
/x/.*   -c      system_u:object_r:chr_t:s0
/x/none.*       <<none>>
";
    let mut fs = with_policy(
        &[("file_contexts", fc)],
        &[
            ("/x/f", K::File("")),
            ("/x/d", K::Dir),
            ("/x/l", K::Symlink),
            ("/x/p", K::Fifo),
            ("/x/s", K::Socket),
            ("/x/b", K::Block),
            ("/x/c", K::Char),
            ("/x/none-file", K::File("")),
            ("/x/none-dir", K::Dir),
            ("/y/unmatched", K::File("")),
        ],
    );
    let Outcome::Labelled { stats, .. } = run(&mut fs) else {
        panic!()
    };
    for (path, t) in [
        ("/x", "any_t"),
        ("/x/f", "file_t"),
        ("/x/d", "dir_t"),
        ("/x/l", "lnk_t"),
        ("/x/p", "fifo_t"),
        ("/x/s", "sock_t"),
        ("/x/b", "blk_t"),
        ("/x/c", "chr_t"),
    ] {
        assert_eq!(label_at(&fs, path), ctx(t), "{path}");
    }
    // <<none>> and no match both remove the stale label.
    for path in [
        "/x/none-file",
        "/x/none-dir",
        "/y",
        "/y/unmatched",
        "/",
        "/etc",
    ] {
        assert_eq!(label_at(&fs, path), None, "{path}");
    }
    assert_eq!(stats.labelled, 8);
    assert!(stats.unlabelled >= 6);
}

#[test]
fn substitutions_alias_whole_paths_and_rename_subtrees() {
    let fc = "\
/.*                     system_u:object_r:default_t:s0
/var/www(/.*)?          system_u:object_r:httpd_t:s0
/var/www/cgi(/.*)?      system_u:object_r:cgi_t:s0
/srv/web/cgi(/.*)?      system_u:object_r:never_t:s0
/b/\\./x                system_u:object_r:dot_t:s0
/b/y                    system_u:object_r:plain_t:s0
/b/\\./y                system_u:object_r:doty_t:s0
/opt/dist               system_u:object_r:dist_t:s0
/opt/local              system_u:object_r:local_t:s0
";
    let subs = "/srv/web /var/www\n/a /b/.\n/m /opt/local\n";
    let subs_dist = "# comment\n/m /opt/dist\n/srv/web/cgi/x /nowhere\n";
    let mut fs = with_policy(
        &[
            ("file_contexts", fc),
            ("file_contexts.subs", subs),
            ("file_contexts.subs_dist", subs_dist),
        ],
        &[
            ("/srv/web/index.html", K::File("")),
            ("/srv/web/cgi/run", K::File("")),
            ("/srv/web/cgi/x", K::File("")),
            ("/a/x", K::File("")),
            ("/a/y", K::File("")),
            ("/m", K::File("")),
        ],
    );
    run(&mut fs);
    assert_eq!(label_at(&fs, "/srv/web"), ctx("httpd_t"));
    assert_eq!(label_at(&fs, "/srv/web/index.html"), ctx("httpd_t"));
    // Children of an aliased directory are named from the alias target.
    assert_eq!(label_at(&fs, "/srv/web/cgi"), ctx("cgi_t"));
    assert_eq!(label_at(&fs, "/srv/web/cgi/run"), ctx("cgi_t"));
    // ... so an alias of the unaliased name never applies below it.
    assert_eq!(label_at(&fs, "/srv/web/cgi/x"), ctx("cgi_t"));
    // PathBuf semantics: the first child of "/b/." is "/b/./x", then pop()
    // leaves "/b" and the next child is "/b/y".
    assert_eq!(label_at(&fs, "/a/x"), ctx("dot_t"));
    assert_eq!(label_at(&fs, "/a/y"), ctx("plain_t"));
    // For the same alias, .subs_dist (read last) wins.
    assert_eq!(label_at(&fs, "/m"), ctx("dist_t"));

    let policy = load_from(
        &[("file_contexts", fc), ("file_contexts.subs", subs)],
        LookupOrder::ComposefsRs,
    );
    assert_eq!(policy.alias(b"/srv/web"), Some(&b"/var/www"[..]));
    assert_eq!(policy.alias(b"/srv/web/index.html"), None);
}

#[test]
fn libselinux_substitutes_prefixes_once_per_file() {
    let fc = "\
/.*                 system_u:object_r:default_t:s0
/run/lock(/.*)?     system_u:object_r:run_lock_t:s0
/var/lock(/.*)?     system_u:object_r:var_lock_t:s0
/x(/.*)?            system_u:object_r:x_t:s0
/y(/.*)?            system_u:object_r:y_t:s0
";
    let subs_dist = "/run/lock /var/lock\n/var/run /run\n/top /\n/x /y\n";
    let subs = "/local /x\n";
    let files = [
        ("file_contexts", fc),
        ("file_contexts.subs", subs),
        ("file_contexts.subs_dist", subs_dist),
    ];
    let mut fs = with_policy(
        &files,
        &[("/var/run/lock/f", K::File("")), ("/local/f", K::File(""))],
    );
    run(&mut fs);
    // composefs-rs chains aliases while walking: /var/run → /run, /run/lock → /var/lock.
    assert_eq!(label_at(&fs, "/var/run/lock/f"), ctx("var_lock_t"));
    // ... but a name below an aliased directory is not looked up again.
    assert_eq!(label_at(&fs, "/local/f"), ctx("x_t"));

    let mut fs2 = with_policy(
        &files,
        &[("/var/run/lock/f", K::File("")), ("/local/f", K::File(""))],
    );
    label_with(&mut fs2, &mut no_external, LookupOrder::Libselinux).unwrap();
    // libselinux applies .subs_dist once: /var/run/lock/f → /run/lock/f.
    assert_eq!(label_at(&fs2, "/var/run/lock/f"), ctx("run_lock_t"));
    // .subs (/local → /x), then .subs_dist on the result (/x → /y).
    assert_eq!(label_at(&fs2, "/local/f"), ctx("y_t"));

    let mut p = load_from(&files, LookupOrder::Libselinux);
    let l = |p: &mut Policy, path: &[u8]| {
        p.lookup(path, FileType::Regular)
            .unwrap()
            .map(str::to_owned)
    };
    assert_eq!(l(&mut p, b"//run//lock/"), ctx("var_lock_t"));
    assert_eq!(l(&mut p, b"/run/locked"), ctx("default_t"));
    assert_eq!(l(&mut p, b"/top/y/z"), ctx("y_t"));
    assert_eq!(l(&mut p, b"/top"), ctx("default_t"));
}

#[test]
fn hard_links_are_shared_while_labels_agree_and_split_when_not() {
    let fc = "\
/.*             system_u:object_r:default_t:s0
/etc(/.*)?      system_u:object_r:etc_t:s0
/usr(/.*)?      system_u:object_r:usr_t:s0
";
    let mut fs = with_policy(
        &[("file_contexts", fc)],
        &[
            // Primary name under /usr; /etc/c is reached first (name order).
            ("/usr/bin/a", K::File("x")),
            ("/usr/sbin/b", K::Link("/usr/bin/a")),
            ("/etc/c", K::Link("/usr/bin/a")),
            // All three names agree: stays one inode.
            ("/usr/bin/same1", K::File("y")),
            ("/usr/lib/same2", K::Link("/usr/bin/same1")),
            ("/usr/share/same3", K::Link("/usr/bin/same1")),
        ],
    );
    let original = fs.lookup(b"/usr/bin/a").unwrap();
    assert_eq!(fs.inode(original).nlink, 3);
    let Outcome::Labelled { stats, .. } = run(&mut fs) else {
        panic!()
    };
    assert_eq!(stats.hardlinks_broken, 2);
    fs.validate().unwrap();

    let c = fs.lookup(b"/etc/c").unwrap();
    let a = fs.lookup(b"/usr/bin/a").unwrap();
    let b = fs.lookup(b"/usr/sbin/b").unwrap();
    // The first name keeps the original inode and becomes its primary name.
    assert_eq!(c, original);
    assert_eq!(fs.inode(c).nlink, 1);
    assert!(
        !fs.directory(fs.lookup(b"/etc").unwrap())
            .unwrap()
            .get(b"c")
            .unwrap()
            .alias
    );
    // Each differing name has its own copy (composefs-rs compares with the
    // first label only, so /usr/sbin/b does not share /usr/bin/a's copy).
    assert!(a != c && b != c && a != b);
    for (id, path) in [(a, "/usr/bin/a"), (b, "/usr/sbin/b")] {
        assert_eq!(fs.inode(id).nlink, 1, "{path}");
        assert_eq!(fs.inode(id).kind, fs.inode(c).kind, "{path}");
        let dir = fs
            .lookup(path.rsplit_once('/').unwrap().0.as_bytes())
            .unwrap();
        let name = path.rsplit_once('/').unwrap().1.as_bytes();
        assert!(
            !fs.directory(dir).unwrap().get(name).unwrap().alias,
            "{path}"
        );
    }
    assert_eq!(label_at(&fs, "/etc/c"), ctx("etc_t"));
    assert_eq!(label_at(&fs, "/usr/bin/a"), ctx("usr_t"));
    assert_eq!(label_at(&fs, "/usr/sbin/b"), ctx("usr_t"));

    let same = fs.lookup(b"/usr/bin/same1").unwrap();
    assert_eq!(fs.lookup(b"/usr/lib/same2"), Some(same));
    assert_eq!(fs.lookup(b"/usr/share/same3"), Some(same));
    assert_eq!(fs.inode(same).nlink, 3);
    assert_eq!(label_at(&fs, "/usr/share/same3"), ctx("usr_t"));
}

#[test]
fn no_policy_strips_every_label() {
    fn stale_count(fs: &FileSystem) -> usize {
        fs.inodes()
            .iter()
            .filter(|i| i.stat.xattrs.get(XATTR_NAME).is_some())
            .count()
    }
    let entries = [("/usr/bin/x", K::File("")), ("/etc/hosts", K::File(""))];

    let mut fs = tree(&entries);
    // An inode no name reaches loses its label too.
    fs.push_inode(Inode::new(stat(0o644), InodeKind::Fifo));
    let n = fs.len();
    let outcome = run(&mut fs);
    assert_eq!(
        outcome,
        Outcome::Stripped {
            reason: NoPolicy::NoEtcSelinux,
            removed: n
        }
    );
    assert_eq!(stale_count(&fs), 0);

    let mut fs = tree(&entries);
    add(&mut fs, "/etc/selinux/semanage.conf", K::File(""));
    assert!(matches!(
        run(&mut fs),
        Outcome::Stripped {
            reason: NoPolicy::NoConfig,
            ..
        }
    ));
    assert_eq!(stale_count(&fs), 0);

    let mut fs = tree(&entries);
    add(
        &mut fs,
        "/etc/selinux/config",
        K::File("SELINUX=disabled\n# SELINUXTYPE=t\n"),
    );
    assert!(matches!(
        run(&mut fs),
        Outcome::Stripped {
            reason: NoPolicy::NoPolicyType,
            ..
        }
    ));
    assert_eq!(stale_count(&fs), 0);

    // An external config whose content is unavailable counts as missing.
    let mut fs = tree(&entries);
    add(&mut fs, "/etc/selinux/config", K::Ext(20));
    let mut calls = Vec::new();
    let mut read = |path: &[u8], ext: &ExternalFile| {
        calls.push((path.to_vec(), ext.size));
        Ok(None)
    };
    let outcome = label(&mut fs, &mut read).unwrap();
    assert!(matches!(
        outcome,
        Outcome::Stripped {
            reason: NoPolicy::NoConfig,
            ..
        }
    ));
    assert_eq!(calls, vec![(b"/etc/selinux/config".to_vec(), 20)]);
}

#[test]
fn external_files_come_from_the_reader() {
    let mut fs = tree(&[
        ("/etc/selinux/config", K::Ext(14)),
        ("/etc/selinux/t/contexts/files/file_contexts", K::Ext(40)),
        ("/usr/x", K::File("")),
    ]);
    let mut read = |path: &[u8], _: &ExternalFile| {
        Ok(Some(match path {
            b"/etc/selinux/config" => b"SELINUXTYPE=t\n".to_vec(),
            b"/etc/selinux/t/contexts/files/file_contexts" => {
                b"/usr(/.*)? system_u:object_r:usr_t:s0\n".to_vec()
            }
            _ => return Ok(None),
        }))
    };
    assert!(matches!(
        label(&mut fs, &mut read).unwrap(),
        Outcome::Labelled { .. }
    ));
    assert_eq!(label_at(&fs, "/usr/x"), ctx("usr_t"));
    // Unchanged on error: the stale label is still there.
    let mut fs = tree(&[
        ("/etc/selinux/config", K::Ext(MAX_POLICY_FILE + 1)),
        ("/usr/x", K::File("")),
    ]);
    let err = label(&mut fs, &mut no_external).unwrap_err();
    assert!(matches!(err, SelinuxError::TooLarge { .. }), "{err}");
    assert_eq!(
        label_at(&fs, "/usr/x").as_deref(),
        Some(std::str::from_utf8(STALE).unwrap())
    );
}

#[test]
fn discovery_errors_match_composefs_rs() {
    let config = ("/etc/selinux/config", K::File("SELINUXTYPE=t\n"));
    let fc = (
        "/etc/selinux/t/contexts/files/file_contexts",
        K::File("/ system_u:object_r:root_t:s0\n"),
    );
    assert_eq!(label_err(&[("/etc", K::Symlink)]), "/etc: not a directory");
    assert_eq!(
        label_err(&[("/etc/selinux", K::Symlink)]),
        "/etc/selinux: not a directory"
    );
    assert_eq!(
        label_err(&[("/etc/selinux/config", K::Dir)]),
        "/etc/selinux/config: is a directory, not a regular file"
    );
    assert_eq!(
        label_err(&[("/etc/selinux/config", K::Symlink)]),
        "/etc/selinux/config: not a regular file"
    );
    // A missing policy directory is an error, not "no policy".
    assert_eq!(label_err(&[config]), "/etc/selinux/t: no such directory");
    assert_eq!(
        label_err(&[config, ("/etc/selinux/t/contexts", K::Dir)]),
        "/etc/selinux/t/contexts/files: no such directory"
    );
    assert_eq!(
        label_err(&[config, ("/etc/selinux/t/contexts", K::File(""))]),
        "/etc/selinux/t/contexts: not a directory"
    );
    assert_eq!(
        label_err(&[config, ("/etc/selinux/t/contexts/files", K::Dir)]),
        "/etc/selinux/t/contexts/files/file_contexts: the mandatory file_contexts file is missing"
    );
    assert_eq!(
        label_err(&[
            config,
            fc,
            ("/etc/selinux/t/contexts/files/file_contexts.local", K::Fifo)
        ]),
        "/etc/selinux/t/contexts/files/file_contexts.local: not a regular file"
    );
    for bad in ["..", "../t", "./t", "t/../t", "."] {
        let text = format!("SELINUXTYPE={bad}\n");
        let err = label_err(&[("/etc/selinux/config", K::File(&text)), fc]);
        assert!(
            err.contains("is not a usable policy directory name"),
            "{bad}: {err}"
        );
    }
    // composefs-rs resolves the type as a relative path: "/t", "t/" and "t//" work.
    for good in ["/t", "t/", "t//"] {
        let text = format!("SELINUXTYPE={good}\n");
        let mut fs = tree(&[("/etc/selinux/config", K::File(&text)), fc]);
        assert!(matches!(run(&mut fs), Outcome::Labelled { .. }), "{good}");
        assert_eq!(label_at(&fs, "/"), ctx("root_t"));
    }
}
