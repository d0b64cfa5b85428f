//! `cfsctl` repository commands, run through the real binary: init,
//! create-image / compute-id / create-dumpfile, images, image-objects, dump,
//! import-image, cat, gc, fsck, transaction, global options and errors.
//! Repositories are insecure (the test filesystem may lack fs-verity).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cfs_core::repository::{OpenOptions, Repository};
use cfs_core::splitstream::{ContentType, SplitStreamWriter};

use crate::support::{run, tool};

/// `cfsctl --repo REPO`.
pub(crate) fn cfsctl(repo: &Path) -> Command {
    let mut c = tool("cfsctl");
    c.arg("--repo").arg(repo);
    c
}

/// Asserts success; returns stdout.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts exit status `code`; returns stderr.
fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Deterministic bytes.
pub(crate) fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Regular files of the generated tree: (path, size). Files over 64 bytes
/// become objects.
pub(crate) const FILES: &[(&str, usize)] = &[
    ("usr/bin/tool", 1000),
    ("usr/lib/exact64", 64),
    ("usr/lib/f65", 65),
    ("usr/share/doc/readme", 300),
    ("etc/conf", 10),
    ("etc/empty", 0),
];

/// A small tree with (optionally) a `usr/` directory and no hard links.
pub(crate) fn make_tree(root: &Path, seed: u8, with_usr: bool) {
    for (i, (path, size)) in FILES.iter().enumerate() {
        if !with_usr && path.starts_with("usr/") {
            continue;
        }
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data(*size, seed.wrapping_add(i as u8))).unwrap();
    }
    if with_usr {
        std::os::unix::fs::symlink("tool", root.join("usr/bin/link")).unwrap();
    } else {
        std::fs::create_dir_all(root.join("opt")).unwrap();
        std::fs::write(root.join("opt/big"), data(500, seed)).unwrap();
    }
}

/// Creates an insecure repository with `algorithm` (`fsverity-sha256-12`…).
pub(crate) fn init(repo: &Path, algorithm: &str) {
    ok(&run(cfsctl(repo).args([
        "init",
        "--insecure",
        "--algorithm",
        algorithm,
    ])));
}

/// `objects/XX/rest` for a hex digest.
fn object(repo: &Path, hex: &str) -> PathBuf {
    repo.join("objects").join(&hex[..2]).join(&hex[2..])
}

/// The SHA-256 fs-verity digest of a file (`composefs-info measure-file`).
fn measure(path: &Path) -> String {
    ok(&run(tool("composefs-info").arg("measure-file").arg(path)))
        .trim()
        .to_string()
}

fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_string_lossy()
        .into_owned()
}

const META_SHA512_V1: &str = "{
  \"version\": 1,
  \"algorithm\": \"fsverity-sha512-12\",
  \"features\": {
    \"compatible\": [],
    \"read-only-compatible\": [
      \"v1_erofs\"
    ],
    \"incompatible\": []
  },
  \"erofs_formats\": {
    \"default\": 1
  }
}
";

#[test]
fn init_new_existing_mismatch_ensure_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("parent/repo");
    let out = ok(&run(cfsctl(&repo).args(["init", "--insecure"])));
    assert_eq!(
        out,
        format!(
            "Initialized composefs repository at {}\n  algorithm: fsverity-sha512-12\n  verity:    not required (insecure)\n",
            repo.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("meta.json")).unwrap(),
        META_SHA512_V1
    );
    let mode = std::fs::metadata(&repo).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // Same configuration again.
    let out = ok(&run(cfsctl(&repo).args(["init", "--insecure"])));
    assert_eq!(
        out,
        format!("Repository already initialized at {}\n", repo.display())
    );
    // A different configuration (the path operand instead of --repo).
    let err = fails(
        &run(tool("cfsctl")
            .args(["init", "--insecure", "--erofs-version", "0"])
            .arg(&repo)),
        1,
    );
    assert!(
        err.starts_with(&format!(
            "Error: Initializing repository at {}\n\nCaused by:\n",
            repo.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("already initialized with different configuration"),
        "{err}"
    );
    assert!(err.contains("erofs_version: V1") && err.contains("erofs_version: V0"));

    // A secure repository asked for where an insecure one exists: refused
    // (composefs-rs would answer "already initialized").
    let err = fails(&run(cfsctl(&repo).arg("init")), 1);
    assert!(
        err.contains("verity: not required") && err.contains("verity: required"),
        "{err}"
    );

    // --ensure keeps a differing configuration, but not a different algorithm.
    let out = ok(&run(cfsctl(&repo).args([
        "init",
        "--insecure",
        "--ensure",
        "--erofs-version",
        "0",
    ])));
    assert_eq!(
        out,
        format!(
            "Repository already initialized at {} (existing configuration preserved)\n",
            repo.display()
        )
    );
    let err = fails(
        &run(cfsctl(&repo).args([
            "init",
            "--insecure",
            "--ensure",
            "--algorithm",
            "fsverity-sha256-12",
        ])),
        1,
    );
    assert!(err.starts_with("Error: Ensuring repository at"), "{err}");
    assert!(
        err.contains(
            "repository algorithm fsverity-sha512-12 does not match expected fsverity-sha256-12"
        ),
        "{err}"
    );
    // --ensure on nothing creates.
    let fresh = tmp.path().join("fresh");
    let out = ok(&run(cfsctl(&fresh).args([
        "init",
        "--insecure",
        "--ensure",
    ])));
    assert!(
        out.starts_with("Initialized composefs repository at"),
        "{out}"
    );

    // --reset-metadata: images and meta.json go, objects stay; new algorithm.
    let tree = tmp.path().join("tree");
    make_tree(&tree, 1, true);
    ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("img")));
    let objects_before = count_files(&repo.join("objects"));
    assert!(objects_before > 0);
    let out = ok(&run(cfsctl(&repo).args([
        "init",
        "--insecure",
        "--reset-metadata",
        "--algorithm",
        "fsverity-sha256-12",
    ])));
    assert!(out.contains("algorithm: fsverity-sha256-12"), "{out}");
    assert!(!repo.join("images").exists());
    assert_eq!(count_files(&repo.join("objects")), objects_before);
    let meta = std::fs::read_to_string(repo.join("meta.json")).unwrap();
    assert_eq!(
        meta,
        META_SHA512_V1.replace("fsverity-sha512-12", "fsverity-sha256-12")
    );

    // Bad algorithm names are usage errors.
    for (alg, needle) in [
        ("fsverity-sha1-12", "unsupported hash algorithm 'sha1'"),
        ("fsverity-sha256-16", "unsupported lg_blocksize 16"),
    ] {
        let err = fails(&run(cfsctl(&fresh).args(["init", "--algorithm", alg])), 2);
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn failed_secure_init_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    if crate::verity::supports_verity(tmp.path()) {
        // Secure init succeeds here; the guest's `verity::enable` tests
        // check the refusal on a filesystem without fs-verity.
        eprintln!(
            "failed_secure_init_leaves_nothing: {} has fs-verity: skipped",
            tmp.path().display()
        );
        return;
    }
    let repo = tmp.path().join("a/b/repo");
    let err = fails(&run(cfsctl(&repo).arg("init")), 1);
    assert!(err.contains("--insecure"), "{err}");
    assert!(!tmp.path().join("a").exists(), "init left a/ behind");
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    fails(&run(cfsctl(&existing).arg("init")), 1);
    assert_eq!(count_files(&existing), 0);
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn create_image_links_objects_and_compute_id() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    make_tree(&tree, 7, true);
    init(&repo, "fsverity-sha256-12");

    let out = ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("a/b/c")));
    let hex = out
        .strip_prefix("sha256:")
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(hex.len(), 64);
    assert_eq!(
        link_target(&repo.join("images").join(hex)),
        format!("../objects/{}/{}", &hex[..2], &hex[2..])
    );
    assert_eq!(
        link_target(&repo.join("images/refs/a/b/c")),
        format!("../../../{hex}")
    );
    assert_eq!(measure(&object(&repo, hex)), hex);
    ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("top")));
    assert_eq!(
        link_target(&repo.join("images/refs/top")),
        format!("../{hex}")
    );

    // Files over 64 bytes are objects, the others are not.
    for (path, size) in FILES {
        let digest = measure(&tree.join(path));
        assert_eq!(
            object(&repo, &digest).is_file(),
            *size > 64,
            "{path} ({size} bytes)"
        );
    }

    // compute-id: the same digest, bare hex, nothing stored.
    let id = ok(&run(cfsctl(&repo).arg("compute-id").arg(&tree)));
    assert_eq!(id, format!("{hex}\n"));
    let id = ok(&run(tool("cfsctl")
        .args(["--no-repo", "--hash", "sha256", "compute-id"])
        .arg(&tree)));
    assert_eq!(id, format!("{hex}\n"));
    // Without a repository the default is SHA-512.
    let id = ok(&run(tool("cfsctl")
        .args(["--no-repo", "compute-id"])
        .arg(&tree)));
    assert_eq!(id.trim().len(), 128);

    // image-objects: sorted <alg>:<hex> of the external files.
    let mut expected: Vec<String> = FILES
        .iter()
        .filter(|(_, size)| *size > 64)
        .map(|(p, _)| format!("sha256:{}", measure(&tree.join(p))))
        .collect();
    expected.sort();
    let listed = ok(&run(cfsctl(&repo).args(["image-objects", "top"])));
    assert_eq!(listed, expected.join("\n") + "\n");
    let err = fails(&run(cfsctl(&repo).args(["image-objects", "nope"])), 1);
    assert!(
        err.starts_with("Error: Collecting objects for image 'nope'"),
        "{err}"
    );

    // dump: the image as composefs-info dumps it. A name with a slash is
    // relative to images/ (so refs/…), as in composefs-rs.
    let dump = ok(&run(cfsctl(&repo).args(["dump", "refs/a/b/c"])));
    assert_eq!(dump, ok(&run(cfsctl(&repo).args(["dump", hex]))));
    fails(&run(cfsctl(&repo).args(["dump", "a/b/c"])), 1);
    let info = ok(&run(tool("composefs-info")
        .arg("dump")
        .arg(object(&repo, hex))));
    assert_eq!(dump, info);
    assert!(dump.contains("/usr/bin/tool 1000 100644"), "{dump}");

    // create-dumpfile describes the same tree.
    let created = ok(&run(cfsctl(&repo).arg("create-dumpfile").arg(&tree)));
    assert!(created.starts_with("/ 0 40755 4 "), "{created}");
    assert!(created.contains("/usr/bin/link 4 120777 1 "), "{created}");
}

#[test]
fn create_image_without_usr() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    make_tree(&tree, 3, false);
    init(&repo, "fsverity-sha512-12");
    // An application image: built, with a note, the root as it is.
    let out = run(cfsctl(&repo).arg("create-image").arg(&tree).arg("app"));
    let id = ok(&out);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("has no usr/: building an application image"),
        "{note}"
    );
    assert!(id.starts_with("sha512:") && id.len() == 7 + 128 + 1, "{id}");
    let computed = ok(&run(cfsctl(&repo).arg("compute-id").arg(&tree)));
    assert_eq!(format!("sha512:{computed}"), id);
    let dump = ok(&run(cfsctl(&repo).args(["dump", "app"])));
    let root_mode = std::fs::metadata(&tree).unwrap().permissions().mode() & 0o7777;
    assert!(
        dump.lines()
            .next()
            .unwrap()
            .contains(&format!(" 4{root_mode:04o} ")),
        "the root keeps its own mode {root_mode:o}: {dump}"
    );

    // A usr that is not a directory: refused before anything is scanned or stored.
    std::fs::write(tree.join("usr"), b"not a dir").unwrap();
    let objects_before = count_files(&repo.join("objects"));
    let err = fails(&run(cfsctl(&repo).arg("create-image").arg(&tree)), 1);
    assert!(err.contains("/usr is not a directory"), "{err}");
    assert!(err.contains("--no-propagate-usr-to-root"), "{err}");
    assert_eq!(count_files(&repo.join("objects")), objects_before);

    let out = ok(&run(cfsctl(&repo)
        .args(["create-image", "--no-propagate-usr-to-root"])
        .arg(&tree)));
    assert!(
        out.starts_with("sha512:") && out.len() == 7 + 128 + 1,
        "{out}"
    );
    let id = ok(&run(cfsctl(&repo)
        .args(["compute-id", "--no-propagate-usr-to-root"])
        .arg(&tree)));
    assert_eq!(format!("sha512:{id}"), out);
}

#[test]
fn create_image_equals_mkcomposefs_v1() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    let store = tmp.path().join("store");
    let image = tmp.path().join("out.img");
    make_tree(&tree, 11, true);
    init(&repo, "fsverity-sha256-12");
    let out = ok(&run(cfsctl(&repo)
        .args(["create-image", "--no-propagate-usr-to-root"])
        .arg(&tree)));
    ok(&run(tool("cfsctl")
        .args(["mkcomposefs", "--min-version=1"])
        .arg(format!("--digest-store={}", store.display()))
        .arg(&tree)
        .arg(&image)));
    assert_eq!(out, format!("sha256:{}\n", measure(&image)));
    // The digest store holds exactly the repository's file objects.
    for (path, size) in FILES.iter().filter(|(_, s)| *s > 64) {
        let digest = measure(&tree.join(path));
        let rel = format!("{}/{}", &digest[..2], &digest[2..]);
        assert!(store.join(&rel).is_file(), "{path} ({size})");
        assert!(repo.join("objects").join(&rel).is_file(), "{path}");
    }
    // --erofs-version 0 writes a V0 image, as mkcomposefs does by default.
    let out0 = ok(&run(cfsctl(&repo)
        .args([
            "--erofs-version",
            "0",
            "create-image",
            "--no-propagate-usr-to-root",
        ])
        .arg(&tree)));
    let image0 = tmp.path().join("out0.img");
    ok(&run(tool("mkcomposefs").arg(&tree).arg(&image0)));
    assert_eq!(out0, format!("sha256:{}\n", measure(&image0)));
    // --erofs-version 2 writes composefs-rs's V2 layout, a different image.
    let out2 = ok(&run(cfsctl(&repo)
        .args([
            "--erofs-version",
            "2",
            "create-image",
            "--no-propagate-usr-to-root",
        ])
        .arg(&tree)));
    assert_ne!(out2, out0);
    let hex2 = out2.trim().trim_start_matches("sha256:");
    let image2 = std::fs::read(repo.join("images").join(hex2)).unwrap();
    assert_eq!(
        u32::from_le_bytes(image2[12..16].try_into().unwrap()),
        2,
        "composefs_version"
    );
    let err = fails(
        &run(cfsctl(&repo)
            .args(["--erofs-version", "3", "create-image"])
            .arg(&tree)),
        2,
    );
    assert!(err.contains("3"), "{err}");
}

#[test]
fn images_listing_table_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    make_tree(&tree, 5, true);
    init(&repo, "fsverity-sha512-12");
    assert_eq!(ok(&run(cfsctl(&repo).arg("images"))), "No images found\n");
    assert_eq!(
        ok(&run(cfsctl(&repo).args(["images", "--json"]))),
        "{\n  \"images\": []\n}\n"
    );
    let out = ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("zeta")));
    let hex = out.trim().strip_prefix("sha512:").unwrap().to_string();
    ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("nested/alpha")));
    let short = &hex[..12];
    // Not a terminal: plain columns.
    let table = ok(&run(cfsctl(&repo).arg("list-images")));
    assert_eq!(
        table,
        format!("NAME          DIGEST\nnested/alpha  {short}\nzeta          {short}\n")
    );
    let wide = ok(&run(cfsctl(&repo).args(["images", "--no-trunc"])));
    assert!(wide.contains(&format!("zeta          {hex}\n")), "{wide}");
    // On a terminal (script(1) gives it one): composefs-rs's box table.
    let bin = crate::support::tools_dir().join("cfsctl");
    let on_tty = run(std::process::Command::new("script").args([
        "-qec",
        &format!("'{}' --repo '{}' images", bin.display(), repo.display()),
        "/dev/null",
    ]));
    if on_tty.status.success() {
        let text = String::from_utf8_lossy(&on_tty.stdout).replace("\r\n", "\n");
        assert!(
            text.contains(&format!("│ nested/alpha ┆ {short} │\n"))
                && text.contains("╞══════════════╪══════════════╡"),
            "{text}"
        );
    }
    let json = ok(&run(cfsctl(&repo).args(["images", "--json"])));
    assert_eq!(
        json,
        format!(
            "{{\n  \"images\": [\n    {{\n      \"name\": \"nested/alpha\",\n      \"digest\": \"{hex}\"\n    }},\n    {{\n      \"name\": \"zeta\",\n      \"digest\": \"{hex}\"\n    }}\n  ]\n}}\n"
        )
    );
}

#[test]
fn import_image_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let tree = tmp.path().join("tree");
    make_tree(&tree, 9, true);
    init(&one, "fsverity-sha512-12");
    init(&two, "fsverity-sha512-12");
    let id = ok(&run(cfsctl(&one).arg("create-image").arg(&tree).arg("img")));
    let hex = id.trim().strip_prefix("sha512:").unwrap();
    let bytes = std::fs::read(object(&one, hex)).unwrap();

    // Its files are not in `two`: refused unless allowed.
    let refused = run_with_stdin(cfsctl(&two).args(["import-image", "copy"]), &bytes);
    let err = fails(&refused, 1);
    assert!(
        err.contains("object(s) this repository does not have"),
        "{err}"
    );
    assert!(!two.join("images/refs/copy").exists());
    let imported = run_with_stdin(
        cfsctl(&two).args(["import-image", "--allow-missing-objects", "copy"]),
        &bytes,
    );
    assert_eq!(ok(&imported), id);
    assert_eq!(
        link_target(&two.join("images/refs/copy")),
        format!("../{hex}")
    );
    assert_eq!(std::fs::read(object(&two, hex)).unwrap(), bytes);
    assert_eq!(
        ok(&run(cfsctl(&two).args(["dump", "copy"]))),
        ok(&run(cfsctl(&one).args(["dump", "img"])))
    );
    // Not an image: refused (composefs-rs would store it).
    let garbage = run_with_stdin(cfsctl(&two).args(["import-image", "bad"]), b"garbage");
    let err = fails(&garbage, 1);
    assert!(err.starts_with("Error: Importing image 'bad'"), "{err}");
    assert!(!two.join("images/refs/bad").exists());
    // An image of another algorithm (mkcomposefs writes SHA-256 references):
    // refused, naming both algorithms; nothing stored.
    let c_image = tmp.path().join("c.cfs");
    ok(&run(tool("mkcomposefs").arg(&tree).arg(&c_image)));
    let objects_before = walk_files(&two.join("objects"));
    let other = run_with_stdin(
        cfsctl(&two).args(["import-image", "c"]),
        &std::fs::read(&c_image).unwrap(),
    );
    let err = fails(&other, 1);
    assert!(
        err.contains("references sha256 objects") && err.contains("sha512 repository"),
        "{err}"
    );
    assert!(!two.join("images/refs/c").exists());
    assert_eq!(walk_files(&two.join("objects")), objects_before);
}

/// Every file below `dir` (relative paths, sorted).
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn gc_removes_unreferenced_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let (keep, drop_) = (tmp.path().join("keep"), tmp.path().join("drop"));
    make_tree(&keep, 1, true);
    make_tree(&drop_, 2, true);
    init(&repo, "fsverity-sha256-12");
    ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&keep)
        .arg("keep")));
    let id = ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&drop_)
        .arg("drop")));
    let hex = id.trim().strip_prefix("sha256:").unwrap().to_string();
    assert_eq!(
        ok(&run(cfsctl(&repo).arg("gc"))),
        "Objects: 0 removed (0 B)\n"
    );

    // What goes when "drop" is untagged: its image and its file objects.
    let image_size = std::fs::metadata(object(&repo, &hex)).unwrap().len();
    let big: Vec<usize> = FILES.iter().map(|f| f.1).filter(|&s| s > 64).collect();
    let count = big.len() + 1;
    let bytes = big.iter().sum::<usize>() as u64 + image_size;
    std::fs::remove_file(repo.join("images/refs/drop")).unwrap();

    let dry = ok(&run(cfsctl(&repo).args(["gc", "--dry-run"])));
    assert_eq!(
        dry,
        format!(
            "Dry run (no files deleted):\nObjects: {count} would be removed ({})\nSymlinks that would be pruned: 1 images, 0 streams\n",
            indicatif::HumanBytes(bytes)
        )
    );
    assert!(object(&repo, &hex).is_file());
    // An extra root keeps it.
    let rooted = ok(&run(cfsctl(&repo).args(["gc", "-n", "--root", &hex])));
    assert_eq!(
        rooted,
        "Dry run (no files deleted):\nObjects: 0 would be removed (0 B)\n"
    );

    let out = ok(&run(cfsctl(&repo).arg("gc")));
    assert_eq!(
        out,
        format!(
            "Objects: {count} removed ({})\nPruned symlinks: 1 images, 0 streams\n",
            indicatif::HumanBytes(bytes)
        )
    );
    assert!(!object(&repo, &hex).exists());
    assert!(repo.join("images").join(&hex).symlink_metadata().is_err());
    // The kept image is whole.
    ok(&run(cfsctl(&repo).args(["dump", "keep"])));
    assert_eq!(
        ok(&run(cfsctl(&repo).arg("gc"))),
        "Objects: 0 removed (0 B)\n"
    );
}

#[test]
fn transaction_holds_off_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, "fsverity-sha256-12");
    let mut holder = cfsctl(&repo)
        .arg("transaction")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the holder has the lock: a dry run (shared) still works.
    std::thread::sleep(Duration::from_millis(300));
    let mut gc = cfsctl(&repo)
        .arg("gc")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        gc.try_wait().unwrap().is_none(),
        "gc ran during a transaction"
    );
    ok(&run(cfsctl(&repo).args(["gc", "--dry-run"])));
    // Nor can the metadata be reset under it.
    let err = fails(
        &run(cfsctl(&repo).args(["init", "--insecure", "--reset-metadata"])),
        1,
    );
    assert!(err.contains("in use"), "{err}");
    assert!(repo.join("meta.json").is_file());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = gc.wait_with_output().unwrap();
    assert_eq!(ok(&out), "Objects: 0 removed (0 B)\n");
    // It said why it waited.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Waiting for the other users of"),
        "{stderr}"
    );
}

#[test]
fn cat_reassembles_a_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_path = tmp.path().join("repo");
    init(&repo_path, "fsverity-sha256-12");
    let payload = data(5000, 42);
    {
        let repo = Repository::open(&repo_path, &OpenOptions::default()).unwrap();
        let (digest, _) = repo.ensure_object_bytes(&payload).unwrap();
        let mut w = SplitStreamWriter::new(repo.algorithm(), ContentType::OCI_LAYER);
        w.write_inline(b"header");
        w.add_external(&digest, payload.len() as u64).unwrap();
        w.write_inline(b"trailer");
        repo.write_stream("test-stream", w, Some("mystream"))
            .unwrap();
    }
    let mut expected = b"header".to_vec();
    expected.extend_from_slice(&payload);
    expected.extend_from_slice(b"trailer");
    for name in ["test-stream", "refs/mystream", "mystream"] {
        let out = run(cfsctl(&repo_path).args(["cat", name]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, expected, "{name}");
    }
    let err = fails(&run(cfsctl(&repo_path).args(["cat", "missing"])), 1);
    assert!(
        err.starts_with("Error: Merging splitstream 'missing'"),
        "{err}"
    );
}

#[test]
fn fsck_on_a_clean_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    make_tree(&tree, 4, true);
    init(&repo, "fsverity-sha512-12");
    ok(&run(cfsctl(&repo)
        .arg("create-image")
        .arg(&tree)
        .arg("img")));
    ok(&run(cfsctl(&repo).arg("fsck")));
    ok(&run(cfsctl(&repo).args(["fsck", "--metadata-only"])));
    let json = ok(&run(cfsctl(&repo).args(["fsck", "--json"])));
    let keys = [
        "ok",
        "has_metadata",
        "objects_checked",
        "objects_corrupted",
        "streams_checked",
        "streams_corrupted",
        "images_checked",
        "images_corrupted",
        "broken_links",
        "missing_objects",
        "errors",
    ];
    let mut last = 0;
    for key in keys {
        let at = json
            .find(&format!("\n  \"{key}\": "))
            .unwrap_or_else(|| panic!("{key} missing: {json}"));
        assert!(at > last, "{key} out of order: {json}");
        last = at;
    }
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["ok"], true);
    assert_eq!(value["has_metadata"], true);
    assert!(json.ends_with("}\n"));
}

#[test]
fn repository_options_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("tree");
    make_tree(&tree, 6, true);
    init(&repo, "fsverity-sha512-12");

    // Not a repository: the path is named.
    let missing = tmp.path().join("missing");
    let err = fails(&run(cfsctl(&missing).arg("images")), 1);
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // --require-verity on an insecure repository.
    let err = fails(&run(cfsctl(&repo).args(["--require-verity", "images"])), 1);
    assert!(err.contains("fs-verity"), "{err}");
    assert!(err.contains(&repo.display().to_string()), "{err}");

    // --hash must agree with meta.json.
    let err = fails(&run(cfsctl(&repo).args(["--hash", "sha256", "images"])), 1);
    assert!(
        err.contains("configured for fsverity-sha512-12 (from meta.json) but --hash sha256"),
        "{err}"
    );
    ok(&run(cfsctl(&repo).args(["--hash", "sha512", "images"])));
    let err = fails(
        &run(cfsctl(&repo)
            .args(["--hash", "sha256", "compute-id"])
            .arg(&tree)),
        1,
    );
    assert!(err.contains("but --hash sha256 was specified"), "{err}");

    // --no-repo only for compute-id and create-dumpfile.
    let err = fails(&run(cfsctl(&repo).args(["--no-repo", "images"])), 1);
    assert!(err.contains("--no-repo is only supported"), "{err}");
    ok(&run(tool("cfsctl")
        .args(["--no-repo", "create-dumpfile"])
        .arg(&tree)));

    // Global options after the subcommand work too (issue 15); usage
    // errors exit 2: conflicts, bad values.
    ok(&run(tool("cfsctl").arg("images").arg("--repo").arg(&repo)));
    fails(
        &run(tool("cfsctl").args(["--user", "--system", "images"])),
        2,
    );
    let err = fails(
        &run(cfsctl(&repo)
            .args(["compute-id", "--xattrs", "bogus"])
            .arg(&tree)),
        2,
    );
    assert!(
        err.contains("invalid xattr filtering mode \"bogus\""),
        "{err}"
    );
    fails(&run(tool("cfsctl").arg("no-such-command")), 2);

    // An unknown incompatible feature refuses the repository.
    let meta = std::fs::read_to_string(repo.join("meta.json")).unwrap();
    let meta = meta.replace(
        "\"incompatible\": []",
        "\"incompatible\": [\"future_feature\"]",
    );
    std::fs::write(repo.join("meta.json"), meta).unwrap();
    let err = fails(&run(cfsctl(&repo).arg("images")), 1);
    assert!(err.contains("future_feature"), "{err}");
    let err = fails(&run(cfsctl(&repo).arg("create-image").arg(&tree)), 1);
    assert!(err.contains("future_feature"), "{err}");
}

#[test]
fn help_and_version() {
    let out = ok(&run(tool("cfsctl").arg("--help")));
    for word in ["create-image", "images", "gc", "fsck", "mkcomposefs"] {
        assert!(out.contains(word), "{word}: {out}");
    }
    let out = ok(&run(tool("cfsctl").arg("--version")));
    assert!(out.starts_with("cfsctl "), "{out}");
    // The C-compatible tools keep their own parsers.
    let err = fails(&run(tool("cfsctl").args(["mkcomposefs", "--bogus"])), 1);
    assert!(!err.is_empty());
}
