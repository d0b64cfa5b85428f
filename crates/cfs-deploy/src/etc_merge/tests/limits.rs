//! The dry run, conflicts, `.updated`, re-running, and the limits.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::{Fx, M, dir, file, read, snapshot};
use crate::etc_merge::{self, EntryKind, Limits, MergeError};

/// A scenario with every kind of action.
fn busy() -> Fx {
    let d = |inner: &str| dir(&[("inner", file(inner, 0o644))], 0o755);
    let p = dir(
        &[
            ("modified", file("a", 0o644)),
            ("removed", d("r")),
            ("meta", d("m")),
            ("deleted-upstream", d("x")),
            ("same", file("s", 0o644)),
        ],
        0o755,
    );
    let c = dir(
        &[
            ("modified", file("b", 0o644)),
            ("meta", dir(&[("inner", file("m", 0o644))], 0o700)),
            ("deleted-upstream", d("y")),
            ("added", d("new")),
            ("same", file("s", 0o644)),
            ("link", M::Link("/nowhere".into())),
        ],
        0o755,
    );
    let n = dir(
        &[
            ("modified", file("upstream", 0o644)),
            ("removed", d("r2")),
            ("meta", d("m2")),
            ("same", file("s2", 0o644)),
            ("upstream-new", file("u", 0o644)),
        ],
        0o755,
    );
    Fx::from_models(&p, &c, &n)
}

#[test]
fn the_dry_run_touches_nothing() {
    let fx = busy();
    fs::write(fx.n.join(".updated"), "stamp").unwrap();
    let before = [snapshot(&fx.p), snapshot(&fx.c), snapshot(&fx.n)];
    let plan = fx.plan().unwrap();
    assert_eq!(plan.actions().len(), 7, "{plan:#?}");
    assert!(plan.is_clean());
    assert_eq!([snapshot(&fx.p), snapshot(&fx.c), snapshot(&fx.n)], before);
    let report = fx.apply(&plan).unwrap();
    assert!(report.updated_stamp_removed);
    assert_eq!(
        (
            report.copied,
            report.trees_copied,
            report.dirs_created,
            report.metadata_updated,
            report.removed
        ),
        (3, 1, 1, 1, 1)
    );
    assert_eq!(
        [snapshot(&fx.p), snapshot(&fx.c)],
        [before[0].clone(), before[1].clone()]
    );
    let d = |inner: &str| dir(&[("inner", file(inner, 0o644))], 0o755);
    let want = dir(
        &[
            ("modified", file("b", 0o644)),
            ("meta", dir(&[("inner", file("m2", 0o644))], 0o700)),
            ("deleted-upstream", d("y")),
            ("added", d("new")),
            ("same", file("s2", 0o644)),
            ("link", M::Link("/nowhere".into())),
            ("upstream-new", file("u", 0o644)),
        ],
        0o755,
    );
    assert_eq!(read(&fx.n), Some(want));
}

#[test]
fn applying_twice_gives_the_same_result() {
    let fx = busy();
    let plan = fx.plan().unwrap();
    fx.apply(&plan).unwrap();
    let once = read(&fx.n);
    fx.apply(&plan).unwrap();
    assert_eq!(read(&fx.n), once);
}

#[test]
fn updated_stamp_is_ignored_by_the_plan_and_removed() {
    let fx = Fx::new();
    fs::write(fx.c.join(".updated"), "local stamp").unwrap();
    fs::write(fx.n.join(".updated"), "image stamp").unwrap();
    let plan = fx.plan().unwrap();
    assert!(
        plan.actions().is_empty() && plan.local_changes().is_empty(),
        "{plan:?}"
    );
    assert!(fx.apply(&plan).unwrap().updated_stamp_removed);
    assert!(!fx.n.join(".updated").exists());
    assert!(fx.c.join(".updated").exists());
    assert!(!fx.apply(&plan).unwrap().updated_stamp_removed);
}

#[test]
fn a_nested_conflict_names_the_directory_and_the_local_changes() {
    let c_dir = |f: &str, extra: bool| {
        let mut e = vec![("f", file(f, 0o644))];
        if extra {
            e.push(("g", file("g", 0o644)));
        }
        dir(&[("b", dir(&[("c", dir(&e, 0o755))], 0o755))], 0o755)
    };
    let p = dir(&[("a", c_dir("1", false)), ("ok", file("o", 0o644))], 0o755);
    let c = dir(
        &[("a", c_dir("2", true)), ("ok", file("local", 0o644))],
        0o755,
    );
    let n = dir(
        &[(
            "a",
            dir(
                &[("b", dir(&[("c", M::Link("../elsewhere".into()))], 0o755))],
                0o755,
            ),
        )],
        0o755,
    );
    let fx = Fx::from_models(&p, &c, &n);
    let before = snapshot(&fx.n);
    let plan = fx.plan().unwrap();
    assert!(!plan.is_clean());
    let conflict = &plan.conflicts()[0];
    assert_eq!(plan.conflicts().len(), 1);
    assert_eq!(conflict.path.to_str(), Some("a/b/c"));
    assert_eq!(conflict.new_kind, EntryKind::Symlink);
    let locals: Vec<_> = conflict
        .local_changes
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect();
    assert_eq!(locals, ["a/b/c/f", "a/b/c/g"]);
    let err = fx.apply(&plan).unwrap_err();
    assert!(matches!(err, MergeError::Conflicts(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("a/b/c is a directory with local changes (a/b/c/f, a/b/c/g) but the new image has a symlink there"),
        "{msg}"
    );
    assert_eq!(snapshot(&fx.n), before, "a refused plan changes nothing");
    assert!(fx.merge().is_err());
    assert_eq!(snapshot(&fx.n), before);
}

#[test]
fn a_metadata_change_on_a_directory_that_became_a_file_conflicts() {
    let fx = Fx::new();
    for root in [&fx.p, &fx.c] {
        fs::create_dir(root.join("d")).unwrap();
    }
    fs::set_permissions(fx.c.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(fx.n.join("d"), "now a file").unwrap();
    let plan = fx.plan().unwrap();
    assert_eq!(plan.conflicts().len(), 1);
    assert_eq!(plan.conflicts()[0].new_kind, EntryKind::File);
    assert_eq!(
        plan.conflicts()[0].local_changes,
        [std::path::PathBuf::from("d")]
    );
}

#[test]
fn a_symlinked_directory_in_new_is_never_written_through() {
    // composefs-rs #335: /etc/ssl/certs became a symlink; the admin had
    // added a certificate.
    let outside = tempfile::tempdir().unwrap();
    let fx = Fx::new();
    for root in [&fx.p, &fx.c] {
        fs::create_dir_all(root.join("ssl/certs")).unwrap();
        fs::write(root.join("ssl/certs/ca.pem"), "ca").unwrap();
    }
    fs::write(fx.c.join("ssl/certs/local.pem"), "mine").unwrap();
    fs::create_dir(fx.n.join("ssl")).unwrap();
    symlink(outside.path(), fx.n.join("ssl/certs")).unwrap();
    let plan = fx.plan().unwrap();
    assert_eq!(plan.conflicts()[0].path.to_str(), Some("ssl/certs"));
    assert!(fx.apply(&plan).is_err());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    // Without the local certificate the image's symlink is simply kept.
    fs::remove_file(fx.c.join("ssl/certs/local.pem")).unwrap();
    fx.merge().unwrap();
    assert!(
        fs::symlink_metadata(fx.n.join("ssl/certs"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

fn nest(root: &std::path::Path, levels: usize) {
    let mut path = root.to_path_buf();
    for _ in 0..levels {
        path.push("d");
    }
    fs::create_dir_all(path).unwrap();
}

#[test]
fn deeper_than_256_directories_is_refused() {
    // In pristine and current (walked), and added locally (counted).
    let fx = Fx::new();
    nest(&fx.p, 257);
    nest(&fx.c, 257);
    let err = fx.plan().unwrap_err();
    assert!(
        matches!(err, MergeError::TooDeep { limit: 256, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nested deeper than 256"), "{err}");
    let fx = Fx::new();
    nest(&fx.c, 257);
    let err = fx.plan().unwrap_err();
    assert!(matches!(err, MergeError::TooDeep { .. }), "{err}");
    // 256 is fine.
    let fx = Fx::new();
    nest(&fx.p, 256);
    nest(&fx.c, 256);
    fs::write(fx.c.join(["d"; 256].join("/")).join("f"), "deep").unwrap();
    fx.merge().unwrap();
    assert!(fx.n.join(["d"; 256].join("/")).join("f").exists());
}

#[test]
fn more_entries_than_the_limit_is_refused() {
    let fx = Fx::new();
    for i in 0..11 {
        fs::write(fx.c.join(format!("f{i}")), "x").unwrap();
    }
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let [p, c, n] = fx.fds();
    let err = etc_merge::plan_with_limits(&p, &c, &n, &limits).unwrap_err();
    assert!(
        matches!(err, MergeError::TooManyEntries { limit: 10, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the current /etc has more than 10 entries; refusing to merge it"
    );
    let limits = Limits {
        max_entries: 11,
        ..Limits::default()
    };
    assert!(etc_merge::plan_with_limits(&p, &c, &n, &limits).is_ok());
    assert_eq!(Limits::default().max_entries, 1_000_000);
}

#[test]
fn io_errors_name_the_tree_and_the_path() {
    let fx = Fx::new();
    let plan = {
        fs::write(fx.c.join("f"), "x").unwrap();
        fx.plan().unwrap()
    };
    // Current changed between plan and apply.
    fs::remove_file(fx.c.join("f")).unwrap();
    let err = fx.apply(&plan).unwrap_err();
    assert_eq!(
        err.to_string(),
        "f in the current /etc changed since the merge was planned: it vanished"
    );
}
