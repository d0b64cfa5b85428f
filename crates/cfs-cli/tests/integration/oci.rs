//! Acceptance tests of `cfsctl oci`: pulls from a local registry (gzip, zstd,
//! Docker v2s2), OCI layouts and archives, compared with `umoci unpack` (after
//! the composefs transforms) through `oci dump` and a real mount; re-pulls,
//! untag + gc, and corrupt or hostile images, which must fail without a tag.

use std::path::Path;

use crate::corpus::sha256_hex;
use crate::oci_support::{
    Hdr, Registry, Tar, base_tar, cfs, exec, goarch, gzip, have_tools, init_repo, object_files, ok,
    plain, reference_mode, sh, write_layout,
};
use crate::oci_tree::{
    Ignore, OciMount, TestImage, assert_trees_equal, expected_tree, test_image, tree_from_dir,
    tree_from_dump,
};

const TOOLS: &[&str] = &["umoci", "skopeo"];

/// The five lines `oci pull` prints.
#[derive(Debug)]
struct Pulled {
    manifest: String,
    config: String,
    verity: String,
    objects: String,
}

fn pull(repo: &Path, source: &str, tag: &str, extra: &[&str]) -> Pulled {
    let out = ok(
        &format!("oci pull {source}"),
        &exec(
            cfs(repo)
                .args(["oci", "pull"])
                .args(extra)
                .arg(source)
                .arg(tag),
        ),
    );
    // manifest, config, verity, tagged, image (the composefs id `mount`
    // takes), objects.
    // (one `image` line per EROFS format of the repository).
    let images = out.lines().filter(|l| l.starts_with("image    ")).count();
    assert!(images >= 1, "oci pull {source} output:\n{out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("image    "))
        .collect();
    assert_eq!(lines.len(), 5, "oci pull {source} output:\n{out}");
    let field = |i: usize, key: &str| {
        let rest = lines[i]
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("line {i} of oci pull output is not {key:?}:\n{out}"));
        rest.trim_start().to_string()
    };
    let p = Pulled {
        manifest: field(0, "manifest"),
        config: field(1, "config"),
        verity: field(2, "verity"),
        objects: field(4, "objects"),
    };
    assert_eq!(field(3, "tagged"), tag, "{out}");
    assert!(
        p.manifest.starts_with("sha256:") && p.manifest.len() == 71,
        "{out}"
    );
    assert!(
        p.config.starts_with("sha256:") && p.config.len() == 71,
        "{out}"
    );
    assert!(
        p.verity.len() == 64 && p.verity.bytes().all(|b| b.is_ascii_hexdigit()),
        "{out}"
    );
    assert!(
        p.objects.contains(" new + ") && p.objects.contains(" inlined"),
        "{out}"
    );
    p
}

fn new_repo(tmp: &Path, name: &str) -> std::path::PathBuf {
    let repo = tmp.join(name);
    init_repo(&repo);
    repo
}

/// Names in `repo/images/` (the linked EROFS images).
fn image_links(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("images"))
        .map(|d| {
            d.map(|e| e.unwrap())
                .filter(|e| !e.file_type().unwrap().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn compute_id(repo: &Path, tag: &str) -> String {
    ok(
        "oci compute-id",
        &exec(cfs(repo).args(["oci", "compute-id", tag])),
    )
    .trim()
    .to_string()
}

/// `oci images --json` entries.
fn images_json(repo: &Path) -> Vec<serde_json::Value> {
    let out = ok(
        "oci images --json",
        &exec(cfs(repo).args(["oci", "images", "--json"])),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("oci images --json is JSON");
    v["images"].as_array().expect("images array").clone()
}

/// `fsck` and `oci fsck --json` both find nothing wrong.
fn fsck_clean(repo: &Path) {
    ok("fsck", &exec(cfs(repo).arg("fsck")));
    let out = ok(
        "oci fsck --json",
        &exec(cfs(repo).args(["oci", "fsck", "--json"])),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("oci fsck --json is JSON");
    assert_eq!(v["ok"], true, "oci fsck --json: {out}");
}

/// `oci dump TAG` equals the umoci unpack of the test image (transformed).
fn check_dump(repo: &Path, tag: &str, img: &TestImage) {
    let out = exec(cfs(repo).args(["oci", "dump", tag]));
    ok("oci dump", &out);
    let actual = tree_from_dump(&out.stdout, repo);
    assert_trees_equal(
        &format!("oci dump {tag} vs umoci unpack"),
        &expected_tree(img),
        &actual,
        Ignore::default(),
    );
}

/// Everything a pulled test image must satisfy; returns its image id.
fn check_pulled(repo: &Path, tag: &str, pulled: &Pulled, img: &TestImage, mount: bool) -> String {
    check_dump(repo, tag, img);
    let id = compute_id(repo, tag);
    assert!(
        image_links(repo).contains(&id),
        "oci compute-id {tag} = {id} is not linked in images/: {:?}",
        image_links(repo)
    );
    let images = images_json(repo);
    let entry = images
        .iter()
        .find(|e| e["name"] == tag)
        .unwrap_or_else(|| panic!("{tag} not in oci images --json: {images:?}"));
    assert_eq!(
        entry["manifest_digest"],
        pulled.manifest.as_str(),
        "{entry}"
    );
    assert_eq!(entry["is_container"], true, "{entry}");
    assert_eq!(entry["architecture"], goarch(), "{entry}");
    assert_eq!(entry["os"], "linux", "{entry}");
    assert_eq!(entry["layer_count"], 4, "{entry}");
    let manifest = exec(cfs(repo).args(["oci", "inspect", tag, "--manifest"]));
    ok("oci inspect --manifest", &manifest);
    let raw = manifest
        .stdout
        .strip_suffix(b"\n")
        .expect("trailing newline");
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw)),
        pulled.manifest,
        "manifest bytes"
    );
    let config = exec(cfs(repo).args(["oci", "inspect", tag, "--config"]));
    ok("oci inspect --config", &config);
    let raw = config.stdout.strip_suffix(b"\n").expect("trailing newline");
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw)),
        pulled.config,
        "config bytes"
    );
    // Every layer reassembles to the tar its diff_id names.
    let config: serde_json::Value = serde_json::from_slice(raw).unwrap();
    for diff_id in config["rootfs"]["diff_ids"].as_array().unwrap() {
        let diff_id = diff_id.as_str().unwrap();
        let out = exec(cfs(repo).args(["oci", "layer", diff_id]));
        ok("oci layer", &out);
        assert_eq!(
            format!("sha256:{}", sha256_hex(&out.stdout)),
            diff_id,
            "oci layer"
        );
        // --json: composefs-rs's LayerInfo, consistent with the tar.
        let info = exec(cfs(repo).args(["oci", "layer", diff_id, "--json"]));
        ok("oci layer --json", &info);
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["diffId"], diff_id);
        assert_eq!(info["size"], out.stdout.len() as u64, "{info}");
        let split = &info["splitstream"];
        assert_eq!(
            split["externalSize"].as_u64().unwrap() + split["inlineSize"].as_u64().unwrap(),
            out.stdout.len() as u64,
            "{info}"
        );
        assert_eq!(info["verity"].as_str().unwrap().len(), 64, "{info}");
        assert!(
            (out.stdout.len() < 1024) == (info["entryCount"] == 0u64),
            "{info}"
        );
        // --dumpfile: one line per tar entry.
        let lines = exec(cfs(repo).args(["oci", "layer", diff_id, "--dumpfile"]));
        ok("oci layer --dumpfile", &lines);
        assert_eq!(
            lines.stdout.iter().filter(|&&b| b == b'\n').count() as u64,
            info["entryCount"].as_u64().unwrap(),
            "{}",
            String::from_utf8_lossy(&lines.stdout)
        );
    }
    if mount {
        let mnt = repo
            .parent()
            .unwrap()
            .join(format!("mnt-{}", tag.replace('/', "_")));
        std::fs::create_dir_all(&mnt).unwrap();
        ok(
            "oci mount",
            &exec(cfs(repo).args(["oci", "mount", tag]).arg(&mnt)),
        );
        let _guard = OciMount(mnt.clone());
        assert_trees_equal(
            &format!("mount of {tag} vs umoci unpack"),
            &expected_tree(img),
            &tree_from_dir(&mnt),
            Ignore::default(),
        );
    }
    id
}

#[test]
fn oci_local_sources_match_umoci() {
    if !have_tools("oci_local_sources_match_umoci", TOOLS) {
        return;
    }
    let img = test_image();
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path(), "repo");
    let p = pull(&repo, &img.oci_ref(), "local", &[]);
    let id = check_pulled(&repo, "local", &p, img, true);
    // Without TAG the tag is the layout's name and the tag (not the whole
    // source string, as composefs-rs).
    let out = ok(
        "oci pull without TAG",
        &exec(cfs(&repo).args(["oci", "pull", &img.oci_ref()])),
    );
    let short = format!(
        "{}:{}",
        img.layout.file_name().unwrap().to_string_lossy(),
        img.tag
    );
    assert!(out.contains(&format!("tagged   {short}\n")), "{out}");
    assert_eq!(compute_id(&repo, &short), id);
    // A tag missing from the layout: exit 1, no new tag.
    let missing = format!("oci:{}:nosuch", img.layout.display());
    pull_fails(&repo, &missing, &["nosuch"]);

    let oa = tmp.path().join("oa.tar");
    let da = tmp.path().join("da.tar");
    sh(
        "skopeo",
        &[
            &"copy",
            &img.oci_ref(),
            &format!("oci-archive:{}:v1", oa.display()),
        ],
    );
    sh(
        "skopeo",
        &[
            &"copy",
            &img.oci_ref(),
            &format!("docker-archive:{}:test/img:v1", da.display()),
        ],
    );
    let mut sources = vec![format!("oci-archive:{}:v1", oa.display())];
    if !reference_mode() {
        // composefs-rs 0.9.4 needs skopeo's v2s2 conversion, which fails here.
        sources.push(format!("docker-archive:{}", da.display()));
    }
    for (i, src) in sources.iter().enumerate() {
        let r = new_repo(tmp.path(), &format!("repo{i}"));
        let p = pull(&r, src, "t", &[]);
        check_dump(&r, "t", img);
        assert_eq!(compute_id(&r, "t"), id, "image id from {src}");
        assert_eq!(
            image_links(&r),
            vec![id.clone()],
            "images/ after pulling {src}"
        );
        // Also into the first repository: layers are shared, nothing new stored
        // for the layers (diff_ids are identical).
        let q = pull(&repo, src, &format!("again{i}"), &[]);
        assert_eq!(compute_id(&repo, &format!("again{i}")), id, "{src}");
        if src.starts_with("oci-archive:") {
            assert_eq!(
                q.manifest, p.manifest,
                "{src}: same manifest as its own repo"
            );
        }
    }
    fsck_clean(&repo);
}

#[test]
fn oci_repull_untag_gc() {
    if !have_tools("oci_repull_untag_gc", TOOLS) {
        return;
    }
    let img = test_image();
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path(), "repo");
    let first = pull(&repo, &img.oci_ref(), "img", &[]);
    assert!(!first.objects.starts_with("0 new"), "{first:?}");
    let before = object_files(&repo);
    let second = pull(&repo, &img.oci_ref(), "img", &[]);
    assert_eq!(second.manifest, first.manifest);
    assert_eq!(second.config, first.config);
    assert!(
        second
            .objects
            .starts_with("0 new + 0 already present objects"),
        "re-pull: {second:?}"
    );
    assert_eq!(object_files(&repo), before, "re-pull stored new objects");
    fsck_clean(&repo);

    // A second tag for the same manifest, by digest.
    ok(
        "oci tag",
        &exec(cfs(&repo).args(["oci", "tag", &first.manifest, "other"])),
    );
    let names: Vec<_> = images_json(&repo)
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert!(
        names.contains(&"img".into()) && names.contains(&"other".into()),
        "{names:?}"
    );
    for t in ["img", "other"] {
        ok("oci untag", &exec(cfs(&repo).args(["oci", "untag", t])));
    }
    assert!(images_json(&repo).is_empty());
    ok("gc", &exec(cfs(&repo).arg("gc")));
    assert_eq!(
        object_files(&repo),
        Default::default(),
        "objects left after untag + gc"
    );
    assert!(
        image_links(&repo).is_empty(),
        "images left: {:?}",
        image_links(&repo)
    );
    fsck_clean(&repo);
    let out = exec(cfs(&repo).args(["oci", "untag", "img"]));
    assert_eq!(out.status.code(), Some(1), "untag of a missing tag");
}

/// Pushes the test image to `reg` as `test/img:gz`, `test/img:v2s2` and
/// `test/imgzstd:zstd` (checking through the registry API that the zstd
/// push really has zstd layers).
fn push_variants(reg: &Registry, img: &TestImage, tmp: &Path) {
    reg.push(&img.oci_ref(), "test/img:gz", &[]);
    reg.push(&img.oci_ref(), "test/img:v2s2", &["--format", "v2s2"]);
    let lz = format!("oci:{}:v1", tmp.join("Lz").display());
    sh(
        "skopeo",
        &[
            &"copy",
            &"--dest-compress",
            &"--dest-compress-format",
            &"zstd",
            &img.oci_ref(),
            &lz,
        ],
    );
    reg.push(&lz, "test/imgzstd:zstd", &[]);
    let m = reg.get(
        "/v2/test/imgzstd/manifests/zstd",
        "application/vnd.oci.image.manifest.v1+json",
    );
    let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
    let types: Vec<_> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect();
    let zstd = types.iter().filter(|t| t.ends_with("+zstd")).count();
    // The 0-byte layer may stay gzip (skopeo reuses the known blob).
    assert!(zstd >= 3, "zstd push has layers {types:?}");
    let m = reg.get(
        "/v2/test/img/manifests/v2s2",
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(
        m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{m}"
    );
}

#[test]
fn oci_registry_pulls_match_umoci() {
    if !have_tools(
        "oci_registry_pulls_match_umoci",
        &["umoci", "skopeo", "docker-registry"],
    ) {
        return;
    }
    if reference_mode() {
        eprintln!("oci_registry_pulls_match_umoci: skipped for the reference binary");
        return;
    }
    let img = test_image();
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start();
    push_variants(&reg, img, tmp.path());

    // The layout's own manifest (skopeo pushes the gzip blobs unchanged).
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.layout.join("index.json")).unwrap()).unwrap();
    let layout_manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    let host = reg.host();
    for (name, reference) in [
        ("gz", format!("docker://{host}/test/img:gz")),
        ("zstd", format!("docker://{host}/test/imgzstd:zstd")),
        ("v2s2", format!("docker://{host}/test/img:v2s2")),
    ] {
        let repo = new_repo(tmp.path(), name);
        let p = pull(
            &repo,
            &reference,
            name,
            &["--platform", &format!("linux/{}", goarch())],
        );
        ids.push((name, check_pulled(&repo, name, &p, img, true)));
        if name == "gz" {
            assert_eq!(p.manifest, layout_manifest, "gz manifest digest");
        }
        // Pulling by digest gives the same manifest.
        let by_digest = format!("docker://{host}/test/img@{}", p.manifest);
        if name != "zstd" {
            let q = pull(&repo, &by_digest, "bydigest", &[]);
            assert_eq!(q.manifest, p.manifest, "{by_digest}");
        }
        fsck_clean(&repo);
    }
    // The diff_ids are the same, so is the image id.
    assert!(
        ids.iter().all(|(_, id)| *id == ids[0].1),
        "image ids: {ids:?}"
    );

    // A corrupted blob in the registry's storage: the pull must fail on the digest.
    let tar = {
        let mut t = base_tar();
        t.file("usr/payload", &crate::repo::data(5000, 7));
        t.finish()
    };
    let layout = tmp.path().join("small");
    write_layout(&layout, "v1", &[plain(tar.clone())]);
    reg.push_layout_raw(&layout, "test/corrupt", "v1");
    let digest = plain(tar).diff_id;
    let blob = reg.blob_file(&digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1536 + 100] ^= 0xff; // inside usr/payload's content: still a valid tar
    std::fs::write(&blob, bytes).unwrap();
    let repo = new_repo(tmp.path(), "corrupt");
    pull_fails(
        &repo,
        &format!("docker://{host}/test/corrupt:v1"),
        &["digest", "hashes to"],
    );
}

/// Asserts that pulling `source` fails with exit 1, an `Error:` message that
/// contains one of `phrases` (case-insensitive), no new tag, and a clean fsck.
fn pull_fails(repo: &Path, source: &str, phrases: &[&str]) {
    let before: Vec<_> = images_json(repo)
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    let out = exec(cfs(repo).args(["oci", "pull", source, "bad"]));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "oci pull {source}: stdout {}\nstderr {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Progress lines may come first.
    assert!(
        stderr.lines().any(|l| l.starts_with("Error:")),
        "oci pull {source}: stderr {stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        phrases.iter().any(|p| lower.contains(&p.to_lowercase())),
        "oci pull {source}: expected one of {phrases:?} in: {stderr}"
    );
    let after: Vec<_> = images_json(repo)
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(after, before, "oci pull {source} changed the tags");
    fsck_clean(repo);
}

/// A layout with a base layer (`usr/`) and `hostile` as the second layer.
fn hostile_layout(dir: &Path, hostile: Tar) -> String {
    let mut hostile = hostile;
    write_layout(
        dir,
        "v1",
        &[plain(base_tar().finish()), plain(hostile.finish())],
    );
    format!("oci:{}:v1", dir.display())
}

fn with(f: impl FnOnce(&mut Tar)) -> Tar {
    let mut t = Tar::default();
    f(&mut t);
    t
}

#[test]
fn oci_rejects_corrupt_and_hostile_images() {
    if !have_tools("oci_rejects_corrupt_and_hostile_images", TOOLS) {
        return;
    }
    let img = test_image();
    let tmp = tempfile::tempdir().unwrap();
    let repo = new_repo(tmp.path(), "repo");
    // A good image first: the failures must leave it (and only it) tagged.
    pull(&repo, &img.oci_ref(), "good", &[]);

    // 1. A flipped byte in the biggest gzip layer of the umoci layout (same size).
    let copy = tmp.path().join("Lcopy");
    sh("cp", &[&"-a", &img.layout, &copy]);
    let blobs = copy.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&biggest, bytes).unwrap();
    // (Into a fresh repository: a repository that has the layer's diff_id
    // skips the blob, rightly.)
    let fresh = new_repo(tmp.path(), "fresh");
    pull_fails(
        &fresh,
        &format!("oci:{}:v1", copy.display()),
        &["digest", "checksum", "gzip", "corrupt", "invalid"],
    );

    // 2. A flipped byte inside file content of an uncompressed layer: the tar
    //    stays valid, only the blob digest check can notice.
    // Each case has its own layer content, so no case can skip a layer that
    // an earlier case stored.
    let good_tar = |seed: u8| {
        with(|t| {
            t.dir("usr/").file("usr/f", &crate::repo::data(3000, seed));
        })
        .finish()
    };
    let dir = tmp.path().join("flip");
    let manifest_digest = write_layout(&dir, "v1", &[plain(good_tar(1))]);
    let layer = dir
        .join("blobs/sha256")
        .join(&plain(good_tar(1)).diff_id[7..]);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[1024 + 10] ^= 1; // inside usr/f's content
    std::fs::write(&layer, bytes).unwrap();
    assert!(manifest_digest.starts_with("sha256:"));
    pull_fails(
        &repo,
        &format!("oci:{}:v1", dir.display()),
        &["digest", "hashes to"],
    );

    // 3. A wrong diff_id in the config (blob digests all consistent).
    let dir = tmp.path().join("diffid");
    let mut blob = plain(good_tar(2));
    blob.diff_id = format!("sha256:{}", "0".repeat(64));
    write_layout(&dir, "v1", &[blob]);
    pull_fails(
        &repo,
        &format!("oci:{}:v1", dir.display()),
        &["diff_id", "diffid"],
    );

    // 4. A truncated gzip layer whose descriptor matches the truncated bytes.
    let dir = tmp.path().join("trunc");
    let mut blob = gzip(good_tar(3));
    blob.bytes.truncate(blob.bytes.len() / 2);
    write_layout(&dir, "v1", &[blob]);
    pull_fails(
        &repo,
        &format!("oci:{}:v1", dir.display()),
        &["eof", "truncated", "end of", "incomplete"],
    );

    // 5. Hostile tars.
    let cases: Vec<(&str, Tar, &[&str])> = vec![
        (
            "dotdot",
            with(|t| {
                t.file("usr/../../escape", b"x");
            }),
            &["invalid filename", ".."],
        ),
        (
            "symlink-parent",
            with(|t| {
                t.link(b'2', "usr/link", "/etc")
                    .file("usr/link/passwd", b"x");
            }),
            &["not a subdirectory"],
        ),
        (
            "hardlink-escape",
            with(|t| {
                t.link(b'1', "usr/hl", "../../etc/shadow");
            }),
            &["invalid filename", "does not exist", ".."],
        ),
        (
            "huge-pax-size",
            with(|t| {
                t.entry(
                    Hdr {
                        path: "usr/huge".into(),
                        pax: vec![("size".into(), b"18446744073709551615".to_vec())],
                        ..Hdr::default()
                    },
                    b"small",
                );
            }),
            &["eof", "size"],
        ),
        ("sparse", sparse_entry(), &["sparse"]),
    ];
    for (name, tar, phrases) in cases {
        let source = hostile_layout(&tmp.path().join(name), tar);
        pull_fails(&repo, &source, phrases);
    }
    // Nothing escaped the repository, and the good image is intact.
    let names: Vec<_> = images_json(&repo)
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, vec![serde_json::Value::from("good")]);
    check_dump(&repo, "good", img);
    ok("gc", &exec(cfs(&repo).arg("gc")));
    fsck_clean(&repo);
}

/// A GNU sparse (`S`) entry: 512 bytes of data at offset 0 of a 4096-byte file.
fn sparse_entry() -> Tar {
    let mut t = Tar::default();
    t.entry(
        Hdr {
            path: "usr/sparse".into(),
            kind: b'S',
            gnu: true,
            ..Hdr::default()
        },
        &[7u8; 512],
    );
    // Fill in the old-GNU sparse map: offset 0, 512 bytes; real size 4096.
    let start = t.0.len() - 1024;
    let h: &mut [u8; 512] = (&mut t.0[start..start + 512]).try_into().unwrap();
    h[386..397].copy_from_slice(b"00000000000");
    h[398..409].copy_from_slice(b"00000001000");
    h[483..494].copy_from_slice(b"00000010000");
    crate::oci_support::set_checksum(h);
    t
}
