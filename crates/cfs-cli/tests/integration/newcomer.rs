//! What a new user trips over (issue 15), one test per finding: ids printed
//! by cfs are accepted back, global options anywhere, `untag`, `oci images
//! --no-trunc`, `init` refusing conflicting options.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::oci_support::{base_tar, cfs, exec, gzip, ok, write_layout};

fn err(what: &str, out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{what} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An insecure SHA-512 repository with one image made from a small tree,
/// named `NAME`; returns what create-image printed (`sha512:<hex>`).
fn repo_with_image(repo: &Path, tree: &Path, name: &str) -> String {
    if !repo.join("meta.json").exists() {
        ok("init", &exec(cfs(repo).args(["init", "--insecure"])));
    }
    std::fs::create_dir_all(tree.join("usr/share")).unwrap();
    std::fs::write(tree.join("usr/share/file"), name.as_bytes()).unwrap();
    ok(
        "create-image",
        &exec(cfs(repo).arg("create-image").arg(tree).arg(name)),
    )
    .trim()
    .to_owned()
}

#[test]
fn every_printed_id_is_accepted_back() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let id = repo_with_image(&repo, &tmp.path().join("t1"), "one");
    let hex = id
        .strip_prefix("sha512:")
        .unwrap_or_else(|| panic!("create-image printed {id}"));
    let dump_of = |name: &str| {
        ok(
            &format!("dump {name}"),
            &exec(cfs(&repo).args(["dump", name])),
        )
    };
    let by_name = dump_of("one");
    // As printed, bare, and as short as `images` shows it.
    assert_eq!(dump_of(&id), by_name);
    assert_eq!(dump_of(hex), by_name);
    let listing = ok("images", &exec(cfs(&repo).arg("images")));
    let short = &hex[..12];
    assert!(listing.contains(short), "{listing}");
    assert_eq!(dump_of(short), by_name);
    assert_eq!(dump_of(&hex[..6].to_ascii_uppercase()), by_name);
    // The other algorithm's prefix is named as such.
    let e = err(
        "dump sha256:…",
        &exec(cfs(&repo).args(["dump", &format!("sha256:{}", &hex[..64])])),
    );
    assert!(
        e.contains("a sha256 id; this repository's ids are sha512"),
        "{e}"
    );
    // An unknown short id is "no such image".
    let unknown = if hex.starts_with("0000") {
        "ffff"
    } else {
        "0000"
    };
    let e = err("dump unknown", &exec(cfs(&repo).args(["dump", unknown])));
    assert!(e.contains(&format!("no such image: {unknown}")), "{e}");
}

#[test]
fn an_ambiguous_short_id_lists_the_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let id = repo_with_image(&repo, &tmp.path().join("t"), "one");
    let a = id.strip_prefix("sha512:").unwrap().to_owned();
    // A second image id sharing all but the last digit (a link to the same
    // object: sharing 12 digits by chance would take ~2^48 images).
    let last = if a.ends_with('0') { '1' } else { '0' };
    let b = format!("{}{last}", &a[..a.len() - 1]);
    let target = std::fs::read_link(repo.join("images").join(&a)).unwrap();
    std::os::unix::fs::symlink(&target, repo.join("images").join(&b)).unwrap();
    let e = err("dump ambiguous", &exec(cfs(&repo).args(["dump", &a[..12]])));
    assert!(
        e.contains(&format!(
            "{} is ambiguous: 2 image ids start with it",
            &a[..12]
        )) && e.contains(&a)
            && e.contains(&b),
        "{e}"
    );
    // Fewer than 4 digits is a name, not a prefix.
    let e = err("dump 3 digits", &exec(cfs(&repo).args(["dump", &a[..3]])));
    assert!(e.contains("no such image"), "{e}");
    // A ref whose name looks like a prefix wins over the prefix.
    std::fs::create_dir_all(tmp.path().join("u/usr")).unwrap();
    ok(
        "create-image named like a prefix",
        &exec(
            cfs(&repo)
                .arg("create-image")
                .arg(tmp.path().join("u"))
                .arg(&a[..12]),
        ),
    );
    let by_ref = ok("dump ref", &exec(cfs(&repo).args(["dump", &a[..12]])));
    assert!(!by_ref.contains("/usr/share/file"), "{by_ref}");
}

#[test]
fn global_options_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    repo_with_image(&repo, &tmp.path().join("t"), "one");
    let bin = crate::support::tools_dir().join("cfsctl");
    let out = exec(
        std::process::Command::new(&bin)
            .args(["images", "--repo"])
            .arg(&repo),
    );
    assert!(ok("images --repo", &out).contains("one"));
    let out = exec(
        std::process::Command::new(&bin)
            .args(["oci", "images", "--repo"])
            .arg(&repo),
    );
    ok("oci images --repo", &out);
    for sub in [
        &["images"][..],
        &["oci", "pull"],
        &["system", "status"],
        &["gc"],
    ] {
        let help = ok(
            "help",
            &exec(std::process::Command::new(&bin).args(sub).arg("--help")),
        );
        assert!(
            help.contains("--repo <PATH>") && help.contains("--hash <HASH>"),
            "{sub:?} --help:\n{help}"
        );
    }
}

#[test]
fn untag_removes_names_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    repo_with_image(&repo, &tmp.path().join("a"), "a");
    repo_with_image(&repo, &tmp.path().join("b"), "b");
    // A missing name among several: nothing is removed.
    let e = err("untag a zzz", &exec(cfs(&repo).args(["untag", "a", "zzz"])));
    assert!(
        e.contains("no image named zzz") && e.contains("nothing removed"),
        "{e}"
    );
    let listing = ok("images", &exec(cfs(&repo).arg("images")));
    assert!(listing.lines().any(|l| l.starts_with("a ")), "{listing}");
    let out = ok("untag a", &exec(cfs(&repo).args(["untag", "a"])));
    assert!(out.contains("Untagged a"), "{out}");
    let out = ok("rm b", &exec(cfs(&repo).args(["rm", "b"])));
    assert!(out.contains("Untagged b"), "{out}");
    let listing = ok("images", &exec(cfs(&repo).arg("images")));
    assert_eq!(listing.trim(), "No images found", "{listing}");
    // Nothing names them now: gc removes both images.
    let image_links = || {
        std::fs::read_dir(repo.join("images"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().len() == 128)
            .count()
    };
    assert_eq!(image_links(), 2);
    ok("gc", &exec(cfs(&repo).arg("gc")));
    assert_eq!(image_links(), 0);
}

#[test]
fn init_refuses_conflicting_options() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let e = err("init two paths", &exec(cfs(&a).arg("init").arg(&b)));
    assert!(e.contains("two different repositories"), "{e}");
    assert!(!a.exists() && !b.exists());
    // The same path twice is fine.
    ok(
        "init same path",
        &exec(cfs(&a).args(["init", "--insecure"]).arg(&a)),
    );
    let e = err(
        "init --hash/--algorithm",
        &exec(cfs(&b).args([
            "init",
            "--hash",
            "sha256",
            "--algorithm",
            "fsverity-sha512-12",
        ])),
    );
    assert!(e.contains("disagree"), "{e}");
    // One spelling for both: --hash for init, --algorithm with sha256.
    ok(
        "init --hash",
        &exec(cfs(&b).args(["init", "--insecure", "--hash", "sha256"])),
    );
    let meta = std::fs::read_to_string(b.join("meta.json")).unwrap();
    assert!(meta.contains("sha256"), "{meta}");
    let c = tmp.path().join("c");
    ok(
        "init --algorithm sha256",
        &exec(cfs(&c).args(["init", "--insecure", "--algorithm", "sha256"])),
    );
    assert!(
        std::fs::read_to_string(c.join("meta.json"))
            .unwrap()
            .contains("sha256")
    );
    let d = tmp.path().join("d");
    ok(
        "--hash fsverity-sha256-12",
        &exec(cfs(&d).args(["--hash", "fsverity-sha256-12", "init", "--insecure"])),
    );
}

/// An insecure repository and an OCI layout with one image tagged `v1`
/// (`/usr/hello`); returns the directory holding both, their paths and the
/// manifest digest.
fn repo_and_layout() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok("init", &exec(cfs(&repo).args(["init", "--insecure"])));
    let mut t = base_tar();
    t.file("usr/hello", b"hello");
    let layout = tmp.path().join("layout");
    let manifest = write_layout(&layout, "v1", &[gzip(t.finish())]);
    (tmp, repo, layout, manifest)
}

#[test]
fn oci_pull_prints_the_mountable_id_and_short_digests_resolve() {
    let (_tmp, repo, layout, manifest) = repo_and_layout();
    let src = format!("oci:{}:v1", layout.display());
    let out = ok(
        "oci pull",
        &exec(cfs(&repo).args(["oci", "pull", &src, "app"])),
    );
    let image = out
        .lines()
        .find_map(|l| l.strip_prefix("image    "))
        .unwrap_or_else(|| panic!("no image line:\n{out}"));
    let id = image.split_whitespace().next().unwrap();
    assert!(image.ends_with("(EROFS V1)"), "{out}");
    // The id is what `mount` takes: the same name resolution, shown with dump.
    let dump = ok("dump id", &exec(cfs(&repo).args(["dump", id])));
    assert!(dump.contains("/usr/hello"), "{dump}");
    // oci images: 12 digits, or all with --no-trunc; both resolve back.
    let hex = manifest.strip_prefix("sha256:").unwrap();
    let listing = ok("oci images", &exec(cfs(&repo).args(["oci", "images"])));
    assert!(
        listing.contains(&hex[..12]) && !listing.contains(hex),
        "{listing}"
    );
    let full = ok(
        "oci images --no-trunc",
        &exec(cfs(&repo).args(["oci", "images", "--no-trunc"])),
    );
    assert!(full.contains(&manifest), "{full}");
    let by_tag = ok(
        "oci inspect app",
        &exec(cfs(&repo).args(["oci", "inspect", "app"])),
    );
    assert!(by_tag.contains(id), "{by_tag}");
    for name in [&hex[..12], &manifest[..20], &manifest] {
        let inspect = ok(
            &format!("oci inspect {name}"),
            &exec(cfs(&repo).args(["oci", "inspect", name])),
        );
        assert_eq!(inspect, by_tag, "{name}");
    }
    // Not a tag, not a digest of any: the error says so.
    let e = err(
        "oci inspect ffff0000",
        &exec(cfs(&repo).args(["oci", "inspect", "ffff0000"])),
    );
    assert!(e.contains("no image tagged \"ffff0000\""), "{e}");
}

#[test]
fn mount_and_umount_errors_in_plain_words() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    repo_with_image(&repo, &tmp.path().join("t"), "one");
    let missing = tmp.path().join("missing");
    let e = err(
        "mount on missing",
        &exec(cfs(&repo).arg("mount").arg("one").arg(&missing)),
    );
    assert!(
        e.contains(&format!("mount point {} does not exist", missing.display())),
        "{e}"
    );
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let e = err(
        "mount on a file",
        &exec(cfs(&repo).arg("mount").arg("one").arg(&file)),
    );
    assert!(e.contains("is not a directory"), "{e}");
    let dir = tmp.path().join("mnt");
    std::fs::create_dir(&dir).unwrap();
    let e = err(
        "umount unmounted",
        &exec(cfs(&repo).arg("umount").arg(&dir)),
    );
    assert!(e.contains("is not mounted"), "{e}");
    let e = err(
        "umount missing",
        &exec(cfs(&repo).arg("umount").arg(&missing)),
    );
    assert!(e.contains("does not exist"), "{e}");
    // Without CAP_SYS_ADMIN (root's dropped from the bounding set).
    if !crate::support::privileged("mount_and_umount_errors_in_plain_words")
        || !crate::oci_support::have_tools("mount_and_umount_errors_in_plain_words", &["setpriv"])
    {
        return;
    }
    let bin = crate::support::tools_dir().join("cfsctl");
    let out = exec(
        std::process::Command::new("setpriv")
            .args(["--bounding-set", "-sys_admin", "--inh-caps", "-all", "--"])
            .arg(&bin)
            .arg("--repo")
            .arg(&repo)
            .args(["mount", "one"])
            .arg(&dir),
    );
    let e = err("mount without CAP_SYS_ADMIN", &out);
    assert!(e.contains("mounting needs root (CAP_SYS_ADMIN)"), "{e}");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("t");
    for i in 0..2000 {
        let d = tree.join(format!("usr/d{}", i % 40));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("file-with-a-long-name-{i}")), i.to_string()).unwrap();
    }
    repo_with_image(&repo, &tree, "big");
    // `cfsctl dump big | head -n1`, the shell way.
    let bin = crate::support::tools_dir().join("cfsctl");
    let out = exec(std::process::Command::new("sh").arg("-c").arg(format!(
        "'{}' --repo '{}' dump big | head -n 1",
        bin.display(),
        repo.display()
    )));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Broken pipe") && !stderr.contains("Error"),
        "stderr: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    // An output error that is not a closed pipe is still reported.
    let full = exec(
        cfs(&repo).args(["dump", "big"]).stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        ),
    );
    let e = err("dump > /dev/full", &full);
    assert!(e.contains("No space left on device"), "{e}");
}

#[test]
fn an_application_image_without_usr_is_pulled() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok("init", &exec(cfs(&repo).args(["init", "--insecure"])));
    // A distroless-style image: /app and /etc, no /usr.
    let mut t = crate::oci_support::Tar::default();
    t.dir("app/")
        .dir("etc/")
        .file("app/server", b"#!/bin/true\n");
    let layout = tmp.path().join("layout");
    write_layout(&layout, "app", &[gzip(t.finish())]);
    let src = format!("oci:{}:app", layout.display());
    let out = ok(
        "oci pull",
        &exec(cfs(&repo).args(["oci", "pull", &src, "app"])),
    );
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("image    "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no image line:\n{out}"))
        .to_owned();
    let dump = ok("dump", &exec(cfs(&repo).args(["dump", &id])));
    assert!(dump.contains("/app/server"), "{dump}");
}

#[test]
fn oci_sources_say_what_they_have() {
    let (_tmp, repo, layout, _) = repo_and_layout();
    // A tag the layout does not have: its tags are listed.
    let src = format!("oci:{}:v9", layout.display());
    let e = err("pull v9", &exec(cfs(&repo).args(["oci", "pull", &src])));
    assert!(
        e.contains("tag v9 not found in") && e.contains("(its tags: v1)"),
        "{e}"
    );
    // An explicit platform the (single-platform) image is not for: refused,
    // nothing pulled.
    let other = if crate::oci_support::goarch() == "s390x" {
        "linux/amd64"
    } else {
        "linux/s390x"
    };
    let src = format!("oci:{}:v1", layout.display());
    let e = err(
        "pull --platform",
        &exec(cfs(&repo).args(["oci", "pull", "--platform", other, &src, "x"])),
    );
    assert!(
        e.contains(&format!(
            "the image is for linux/{}, not the requested platform {other}",
            crate::oci_support::goarch()
        )),
        "{e}"
    );
    let listing = ok("oci images", &exec(cfs(&repo).args(["oci", "images"])));
    assert_eq!(listing.trim(), "No images found", "{listing}");
    // The matching platform is pulled.
    let host = format!("linux/{}", crate::oci_support::goarch());
    ok(
        "pull --platform host",
        &exec(cfs(&repo).args(["oci", "pull", "--platform", &host, &src, "x"])),
    );
}

#[test]
fn a_registry_says_which_tags_it_has() {
    if !crate::oci_support::have_tools("a_registry_says_which_tags_it_has", &["docker-registry"]) {
        return;
    }
    let (_tmp, repo, layout, _) = repo_and_layout();
    let reg = crate::oci_support::Registry::start();
    reg.push_layout_raw(&layout, "test/img", "v1");
    reg.push_layout_raw(&layout, "test/img", "v2");
    let host = reg.host();
    let src = format!("docker://{host}/test/img:v9");
    let e = err("pull :v9", &exec(cfs(&repo).args(["oci", "pull", &src])));
    assert!(
        e.contains(&format!(
            "tag v9 not found in {host}/test/img; it has tags: v1, v2"
        )),
        "{e}"
    );
    // The registry's own words stay at the end.
    assert!(e.contains("MANIFEST_UNKNOWN"), "{e}");
    let src = format!("docker://{host}/other/img:v1");
    let e = err("pull other", &exec(cfs(&repo).args(["oci", "pull", &src])));
    assert!(
        e.contains(&format!("repository other/img not found on {host}")),
        "{e}"
    );
    // Without NAME, the image is tagged with the repository and tag only.
    let src = format!("docker://{host}/test/img:v2");
    let out = ok("pull :v2", &exec(cfs(&repo).args(["oci", "pull", &src])));
    assert!(out.contains("tagged   test/img:v2\n"), "{out}");
}

#[test]
fn oci_pull_without_name_tags_the_short_name() {
    let (_tmp, repo, layout, _) = repo_and_layout();
    let src = format!("oci:{}:v1", layout.display());
    let out = ok("pull", &exec(cfs(&repo).args(["oci", "pull", &src])));
    assert!(out.contains("tagged   layout:v1\n"), "{out}");
    let listing = ok("oci images", &exec(cfs(&repo).args(["oci", "images"])));
    assert!(listing.contains("layout:v1"), "{listing}");
    ok(
        "inspect by short name",
        &exec(cfs(&repo).args(["oci", "inspect", "layout:v1"])),
    );
}

/// A stub registry serving `layout`'s image as `test/img:v1`, with the blob
/// of the last layer stalling after a few bytes; returns the stub and the
/// number of layers.
fn registry_stalling_on_the_last_layer(layout: &Path) -> crate::stub_registry::StubRegistry {
    use crate::stub_registry::{Reply, StubRegistry};
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let manifest = blob(&manifest_digest);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let stub = StubRegistry::start();
    stub.route(
        "/v2/test/img/manifests/v1",
        Reply::ok("application/vnd.oci.image.manifest.v1+json", &manifest),
    );
    let config = m["config"]["digest"].as_str().unwrap();
    stub.route(
        &format!("/v2/test/img/blobs/{config}"),
        Reply::ok("application/octet-stream", &blob(config)),
    );
    let layers = m["layers"].as_array().unwrap();
    for (i, l) in layers.iter().enumerate() {
        let digest = l["digest"].as_str().unwrap();
        let bytes = blob(digest);
        let reply = if i + 1 == layers.len() {
            Reply::Stall {
                length: bytes.len() as u64,
                body: bytes[..100].to_vec(),
            }
        } else {
            Reply::ok("application/octet-stream", &bytes)
        };
        stub.route(&format!("/v2/test/img/blobs/{digest}"), reply);
    }
    stub
}

#[test]
fn an_interrupted_pull_says_what_it_left() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok("init", &exec(cfs(&repo).args(["init", "--insecure"])));
    let layout = tmp.path().join("layout");
    let mut first = base_tar();
    first.file("usr/big", &[7u8; 100_000]);
    let mut second = base_tar();
    second.file("usr/other", &[9u8; 100_000]);
    write_layout(
        &layout,
        "v1",
        &[
            gzip(first.finish()),
            crate::oci_support::plain(second.finish()),
        ],
    );
    let stub = registry_stalling_on_the_last_layer(&layout);
    let src = stub.reference("test/img:v1");

    // A registry that stops sending: the error, then what was left.
    let e = err(
        "pull from a stalling registry",
        &exec(cfs(&repo).args(["--threads", "2", "oci", "pull", "--timeout", "2", &src, "x"])),
    );
    assert!(e.contains("timed out"), "{e}");
    assert!(
        e.contains("The pull stopped after storing 1 of the 2 layers it started")
            && e.contains("Pulling again reuses them; `cfsctl gc` reclaims them"),
        "{e}"
    );

    // SIGINT in the middle: the same account, exit status 130.
    let mut child = cfs(&repo)
        .args(["--threads", "2", "oci", "pull", &src, "x"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The first layer is already present from the timed-out pull: wait
    // for the pull to be under way.
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("pull ended before it was interrupted:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("already present") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("Interrupted (SIGINT).") && rest.contains("`cfsctl gc` reclaims them"),
        "{rest}"
    );
    // Nothing was tagged, and gc reclaims the first layer's objects.
    let listing = ok("oci images", &exec(cfs(&repo).args(["oci", "images"])));
    assert_eq!(listing.trim(), "No images found", "{listing}");
    let gc = ok("gc", &exec(cfs(&repo).arg("gc")));
    assert!(!gc.starts_with("Objects: 0 removed"), "{gc}");
    assert!(gc.contains("KiB)") || gc.contains("MiB)"), "{gc}");
}

#[test]
fn long_commands_end_with_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let tree = tmp.path().join("t");
    std::fs::create_dir_all(tree.join("usr")).unwrap();
    std::fs::write(tree.join("usr/big"), vec![1u8; 3 << 20]).unwrap();
    ok("init", &exec(cfs(&repo).args(["init", "--insecure"])));
    let out = exec(cfs(&repo).arg("create-image").arg(&tree).arg("img"));
    ok("create-image", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: 1 file (3.00 MiB) read, 1 new object stored (3.00 MiB) in ",
            tree.display()
        )),
        "{stderr}"
    );
    let out = exec(cfs(&repo).arg("fsck"));
    ok("fsck", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Checked 2 objects ("), "{stderr}");
    // The dry run speaks in the conditional.
    ok("untag", &exec(cfs(&repo).args(["untag", "img"])));
    let dry = ok("gc -n", &exec(cfs(&repo).args(["gc", "--dry-run"])));
    assert!(dry.contains("Objects: 2 would be removed ("), "{dry}");
}

#[test]
fn version_completions_and_manual_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        ok(
            &args.join(" "),
            &exec(cfs(&tmp.path().join("r")).args(args)),
        )
    };
    // --version names the commit the binary was built from.
    let version = run(&["--version"]);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match commit {
        Some(c) => assert_eq!(
            version.trim(),
            format!("cfsctl {} (git {c})", env!("CARGO_PKG_VERSION"))
        ),
        None => assert!(version.starts_with("cfsctl "), "{version}"),
    }
    // Completions for every subcommand level.
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F _cfsctl") && bash.contains("cfsctl__subcmd__oci__subcmd__pull"),
        "{}",
        &bash[..bash.len().min(500)]
    );
    for shell in ["zsh", "fish"] {
        assert!(
            run(&["completions", shell]).contains("create-image"),
            "{shell}"
        );
    }
    // Manual pages: cfsctl and every visible subcommand, and the drop-in tools
    // with the options their usage texts list.
    let dir = tmp.path().join("man");
    let listing = run(&["manpages", dir.to_str().unwrap()]);
    for page in [
        "man1/cfsctl.1",
        "man1/cfsctl-oci-pull.1",
        "man1/cfsctl-system-install-to-disk.1",
        "man1/mkcomposefs.1",
        "man1/composefs-info.1",
        "man8/mount.composefs.8",
    ] {
        assert!(listing.contains(page), "{page} not in:\n{listing}");
    }
    assert!(
        !listing.contains("manpages"),
        "the hidden command has a page"
    );
    let mk = std::fs::read_to_string(dir.join("man1/mkcomposefs.1")).unwrap();
    assert!(mk.contains(".B \\-\\-digest\\-store=PATH"), "{mk}");
    let mount = std::fs::read_to_string(dir.join("man8/mount.composefs.8")).unwrap();
    assert!(mount.contains(".B basedir=PATH[:PATH...]"), "{mount}");
}

#[test]
fn registries_conf_rewrites_mirrors_blocks_and_allows_http() {
    if !crate::oci_support::have_tools(
        "registries_conf_rewrites_mirrors_blocks_and_allows_http",
        &["docker-registry"],
    ) {
        return;
    }
    let (tmp, repo, layout, _) = repo_and_layout();
    // On 127.0.0.2, which cfs does not take for a local registry: HTTPS
    // unless registries.conf says it is insecure.
    let reg = crate::oci_support::Registry::start_on("127.0.0.2");
    reg.push_layout_raw(&layout, "test/img", "v1");
    let host = reg.host();
    let empty = tmp.path().join("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let pull = |conf: &Path, src: &str| {
        exec(
            cfs(&repo)
                .env("CONTAINERS_REGISTRIES_CONF", conf)
                .args(["oci", "pull", src]),
        )
    };
    let e = err(
        "pull over HTTPS from a plain-HTTP registry",
        &pull(&empty, &format!("docker://{host}/test/img:v1")),
    );
    assert!(e.contains(&format!("docker://{host}/test/img:v1")), "{e}");

    let conf = tmp.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"unqualified-search-registries = ["docker.io"]

[[registry]]
location = "{host}"
insecure = true

[[registry]]
prefix = "example.invalid/app"
location = "{host}/test/img"
insecure = true

[[registry]]
location = "127.0.0.1:9/test"
[[registry.mirror]]
location = "{host}/test"
insecure = true

[[registry]]
prefix = "blocked.invalid"
location = "blocked.invalid"
blocked = true
"#
        ),
    )
    .unwrap();
    // Insecure: plain HTTP.
    let out = ok(
        "pull, insecure",
        &pull(&conf, &format!("docker://{host}/test/img:v1")),
    );
    assert!(out.contains("tagged   test/img:v1\n"), "{out}");
    // A rewritten location (the short name is the user's, not the location's).
    let out = ok(
        "pull, rewritten",
        &pull(&conf, "docker://example.invalid/app:v1"),
    );
    assert!(out.contains("tagged   app:v1\n"), "{out}");
    // A dead primary (port 9, discard) with a mirror that has the image.
    let out = ok(
        "pull, mirror",
        &pull(&conf, "docker://127.0.0.1:9/test/img:v1"),
    );
    assert!(out.contains("tagged   test/img:v1\n"), "{out}");
    // Blocked: refused, naming the file.
    let e = err(
        "pull, blocked",
        &pull(&conf, "docker://blocked.invalid/x:1"),
    );
    assert!(
        e.contains("blocked") && e.contains(&conf.display().to_string()),
        "{e}"
    );
    // --registries-conf wins over the environment.
    let out = ok(
        "pull --registries-conf",
        &exec(
            cfs(&repo)
                .env("CONTAINERS_REGISTRIES_CONF", &empty)
                .args(["oci", "pull", "--registries-conf"])
                .arg(&conf)
                .arg("docker://example.invalid/app:v1"),
        ),
    );
    assert!(out.contains("tagged   app:v1\n"), "{out}");
}
