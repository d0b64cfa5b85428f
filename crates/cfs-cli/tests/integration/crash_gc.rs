//! Crash consistency of `gc` itself: a collection is killed with SIGKILL at
//! its 1st, 2nd, … N-th `unlinkat` (every destructive step of a collection
//! is an `unlinkat`: links, objects, temporary files), by `strace
//! --inject=unlinkat:signal=KILL:when=N`. After every kill `fsck` must be
//! clean, and the next `gc` must finish the work: the repository then holds
//! exactly what an uninterrupted collection leaves.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use crate::support::{run, tool};

/// Most kill points tried (the collection below has fewer unlinks).
const MAX_KILLS: usize = 400;

fn cfsctl(repo: &Path) -> Command {
    let mut c = tool("cfsctl");
    c.arg("--repo").arg(repo);
    c
}

fn ok(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry of the repository with its type (a symlink's target).
fn state(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            let what = if ft.is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else if ft.is_dir() {
                pending.push(p.clone());
                "dir".into()
            } else {
                "file".into()
            };
            out.insert(rel, what);
        }
    }
    out
}

fn make_tree(root: &Path, tag: &str, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("usr/d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!("{tag} file {i} ").repeat(50 + i * 7);
        std::fs::write(dir.join(format!("f{i}")), body).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    ok(
        Command::new("cp").arg("-a").arg(from).arg(to),
        "copying the repository",
    );
}

#[test]
fn gc_killed_at_every_unlink_leaves_fsck_clean() {
    let Some(strace) = find_strace() else {
        if std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require") {
            panic!("strace is needed (apt-get install strace)");
        }
        eprintln!("gc_killed_at_every_unlink_leaves_fsck_clean: skipped (no strace)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    ok(cfsctl(&template).args(["init", "--insecure"]), "init");
    for (name, files) in [("keep", 12), ("drop", 48), ("drop2", 10)] {
        let tree = tmp.path().join(name);
        make_tree(&tree, name, files);
        ok(
            cfsctl(&template)
                .args(["create-image", "--no-propagate-usr-to-root"])
                .arg(&tree)
                .arg(name),
            "create-image",
        );
    }
    // Two images lose their names: they, their links and their files are
    // garbage. A stale temporary link and object file too.
    for name in ["drop", "drop2"] {
        std::fs::remove_file(template.join("images/refs").join(name)).unwrap();
    }
    std::os::unix::fs::symlink("x", template.join("images/.tmp-link-7-7")).unwrap();
    std::fs::write(template.join("objects/.tmp-object-stale"), b"x").unwrap();

    // What an uninterrupted collection leaves.
    let reference = tmp.path().join("reference");
    copy_dir(&template, &reference);
    ok(cfsctl(&reference).arg("gc"), "reference gc");
    let want = state(&reference);
    assert!(
        state(&template).len() > want.len() + 20,
        "enough to collect"
    );

    let mut kills = 0;
    for n in 1..=MAX_KILLS {
        let repo = tmp.path().join(format!("run{n}"));
        copy_dir(&template, &repo);
        let out = run(Command::new(&strace)
            .args(["-f", "-qq", "-o", "/dev/null"])
            .arg(format!("--inject=unlinkat:signal=KILL:when={n}"))
            .arg(crate::support::tools_dir().join("cfsctl"))
            .arg("--repo")
            .arg(&repo)
            .arg("gc"));
        let killed = out.status.signal() == Some(9) || out.status.code() == Some(128 + 9);
        if !killed {
            assert!(
                out.status.success(),
                "gc (kill point {n} not reached): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(state(&repo), want, "an unkilled gc under strace");
            std::fs::remove_dir_all(&repo).unwrap();
            break;
        }
        kills += 1;
        let context = format!("gc killed at unlinkat #{n}");
        ok(cfsctl(&repo).arg("fsck"), &format!("{context}: fsck"));
        ok(cfsctl(&repo).arg("gc"), &format!("{context}: next gc"));
        assert_eq!(
            state(&repo),
            want,
            "{context}: the next gc finishes the work"
        );
        ok(cfsctl(&repo).arg("fsck"), &format!("{context}: final fsck"));
        std::fs::remove_dir_all(&repo).unwrap();
    }
    assert!(kills >= 20, "only {kills} kill points");
    eprintln!("gc killed at {kills} points; fsck clean after each");
}

pub(crate) fn find_strace() -> Option<std::path::PathBuf> {
    ["/usr/bin/strace", "/bin/strace"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}
