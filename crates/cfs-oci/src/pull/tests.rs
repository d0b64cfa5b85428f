//! End-to-end pulls from an in-memory source: storage layout, re-pull, GC,
//! and every verification failure leaving no tag behind.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use cfs_core::repository::{GcOptions, InitOptions, Repository};
use cfs_core::verity::Algorithm;

use super::*;
use crate::source::FetchedManifest;
use crate::store::{OciImage, list_tags};

/// A minimal ustar writer.
#[derive(Default, Clone)]
struct Tar(Vec<u8>);

impl Tar {
    fn header(&mut self, name: &str, typeflag: u8, size: u64, mode: u32) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, size);
        octal(&mut h, 136, 12, 1_700_000_000);
        h[156] = typeflag;
        h[257..265].copy_from_slice(b"ustar\x0000");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h, 148, 7, sum);
        self.0.extend_from_slice(&h);
    }
    fn dir(mut self, name: &str) -> Self {
        self.header(name, b'5', 0, 0o755);
        self
    }
    fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.header(name, b'0', data.len() as u64, 0o644);
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An image held in memory: blobs by digest, one manifest.
#[derive(Debug, Clone)]
struct MemSource {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
}

impl ImageSource for MemSource {
    fn describe(&self) -> String {
        "mem:test".into()
    }
    fn manifest(&self, _: &Platform) -> Result<FetchedManifest, SourceError> {
        Ok(FetchedManifest {
            digest: sha256_digest(&self.manifest),
            bytes: self.manifest.clone(),
            media_type: store::OCI_MANIFEST.into(),
        })
    }
    fn open_blob(&self, digest: &str, _size: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        let b = self
            .blobs
            .get(digest)
            .ok_or_else(|| SourceError::Other(format!("no blob {digest}")))?;
        Ok(Box::new(io::Cursor::new(b.clone())))
    }
}

/// Builds an image from (blob, media type, diff_id) layers.
fn image(layers: &[(Vec<u8>, &str, String)]) -> MemSource {
    let mut blobs = HashMap::new();
    let diff_ids: Vec<&String> = layers.iter().map(|(_, _, d)| d).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {}
    }))
    .unwrap();
    let config_digest = sha256_digest(&config);
    let descs: Vec<_> = layers
        .iter()
        .map(|(blob, mt, _)| {
            let d = sha256_digest(blob);
            blobs.insert(d.clone(), blob.clone());
            serde_json::json!({"mediaType": mt, "digest": d, "size": blob.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": store::OCI_MANIFEST,
        "config": {"mediaType": store::OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    blobs.insert(config_digest, config);
    MemSource { manifest, blobs }
}

const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn layers() -> Vec<Vec<u8>> {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    vec![
        Tar::default()
            .dir("usr/")
            .dir("usr/bin/")
            .file("usr/bin/big", &big)
            .file("usr/small", b"tiny")
            .dir("etc/")
            .file("etc/gone", &[7; 100])
            .end(),
        Tar::default()
            .file("etc/.wh.gone", b"")
            .file("etc/new", &[9; 70])
            .end(),
        Tar::default().file("usr/bin/z", &[1; 5000]).end(),
    ]
}

fn standard_image() -> MemSource {
    let l = layers();
    image(&[
        (gzip(&l[0]), GZ, sha256_digest(&l[0])),
        (
            zstd::encode_all(&l[1][..], 3).unwrap(),
            ZST,
            sha256_digest(&l[1]),
        ),
        (l[2].clone(), TAR, sha256_digest(&l[2])),
    ])
}

fn repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        algorithm: Algorithm::Sha256,
        insecure: true,
        ..InitOptions::default()
    };
    let (repo, _) = Repository::init(&dir.path().join("repo"), &opts).unwrap();
    (dir, repo)
}

fn object_files(repo: &Repository) -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(repo.path().join("objects")).unwrap() {
        let d = d.unwrap();
        if d.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(d.path()).unwrap() {
                out.push(f.unwrap().path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn opts(tag: &str) -> PullOptions {
    PullOptions {
        tag: Some(tag.into()),
        jobs: 2,
        ..PullOptions::default()
    }
}

#[test]
fn pull_stores_layers_config_manifest_image_and_tag() {
    let (_d, repo) = repo();
    let src = standard_image();
    let report = pull(&repo, &src, &opts("t:1")).unwrap();
    assert_eq!(report.layers_imported, 3);
    assert_eq!(report.objects_written, 4, "{report:?}"); // big, gone, new, z
    assert_eq!(
        list_tags(&repo).unwrap(),
        vec![("t:1".to_owned(), report.manifest_digest.clone())]
    );
    let img = OciImage::open(&repo, "t:1").unwrap();
    assert_eq!(img.config_digest, report.config_digest);
    let linked = *img.linked_image(1).unwrap();
    assert_eq!(report.images, vec![(1, linked)]);
    // The linked image is the one compute-id gives.
    let fs = img.build_tree(&repo, XattrFilter::AllowlistOnly).unwrap();
    let data = cfs_core::repository::image_bytes(&fs, 1).unwrap();
    assert_eq!(
        cfs_core::verity::digest_bytes(repo.algorithm(), &data),
        linked
    );
    // Layers reassemble bit-exactly.
    for l in layers() {
        let mut out = Vec::new();
        repo.cat_stream(&store::layer_stream_id(&sha256_digest(&l)), &mut out)
            .unwrap();
        assert_eq!(out, l);
    }
    assert!(repo.fsck(&Default::default(), None).unwrap().ok);

    // A second pull stores nothing new.
    let before = object_files(&repo);
    let again = pull(&repo, &src, &opts("t:2")).unwrap();
    assert!(again.already_present);
    assert_eq!(again.objects_written, 0);
    assert_eq!(object_files(&repo), before);

    // Untagging both and collecting leaves nothing.
    assert!(store::untag_image(&repo, "t:1").unwrap());
    assert!(store::untag_image(&repo, "t:2").unwrap());
    repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(object_files(&repo), Vec::<String>::new());
}

#[test]
fn partial_presence_reuses_layers() {
    let (_d, repo) = repo();
    let l = layers();
    let first = image(&[(gzip(&l[0]), GZ, sha256_digest(&l[0]))]);
    pull(&repo, &first, &opts("a")).unwrap();
    let r = pull(&repo, &standard_image(), &opts("b")).unwrap();
    assert_eq!((r.layers_imported, r.layers_skipped), (2, 1));
}

fn assert_failed_cleanly(repo: &Repository, src: &MemSource, needle: &str) {
    let e = pull(repo, src, &opts("bad")).unwrap_err();
    let msg = format!("{e}");
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    assert!(list_tags(repo).unwrap().is_empty());
    assert!(repo.fsck(&Default::default(), None).unwrap().ok);
}

#[test]
fn corrupt_blob_is_rejected() {
    let (_d, repo) = repo();
    let mut src = standard_image();
    let l = layers();
    let d = sha256_digest(&gzip(&l[0]));
    // Same length, one byte changed inside the deflate data: either gzip or
    // the digest check catches it; no tag either way.
    let blob = src.blobs.get_mut(&d).unwrap();
    let n = blob.len();
    blob[n / 2] ^= 0x55;
    let e = pull(&repo, &src, &opts("bad")).unwrap_err().to_string();
    assert!(e.contains(&d), "{e}");
    assert!(list_tags(&repo).unwrap().is_empty());
    // Uncompressed layer with a flipped byte in the padding: only the digest
    // check can see it. (A fresh repository: the first pull stored the
    // intact layers, which would now be skipped.)
    let (_d, repo) = self::repo();
    let mut src = standard_image();
    let d = sha256_digest(&l[2]);
    let blob = src.blobs.get_mut(&d).unwrap();
    let at = blob.len() - 600;
    blob[at] ^= 1;
    assert_failed_cleanly(&repo, &src, "content hashes to sha256:");
}

#[test]
fn wrong_diff_id_is_rejected() {
    let (_d, repo) = repo();
    let l = layers();
    let src = image(&[(gzip(&l[0]), GZ, sha256_digest(b"something else"))]);
    assert_failed_cleanly(&repo, &src, "does not match its diff_id");
    assert!(
        repo.list_streams()
            .unwrap()
            .iter()
            .all(|s| !s.name.starts_with("oci-layer-"))
    );
}

#[test]
fn truncated_layer_is_rejected() {
    let (_d, repo) = repo();
    let l = layers();
    let mut gz = gzip(&l[0]);
    gz.truncate(gz.len() / 2);
    let src = image(&[(gz, GZ, sha256_digest(&l[0]))]);
    assert_failed_cleanly(&repo, &src, "gzip");
    let cut = l[0][..l[0].len() - 2000].to_vec();
    let src = image(&[(cut.clone(), TAR, sha256_digest(&cut))]);
    assert_failed_cleanly(&repo, &src, "unexpected EOF");
}

#[test]
fn hostile_layer_is_rejected() {
    let (_d, repo) = repo();
    let evil = Tar::default().dir("usr/").file("../escape", b"x").end();
    let src = image(&[(evil.clone(), TAR, sha256_digest(&evil))]);
    assert_failed_cleanly(&repo, &src, "invalid filename");
}

#[test]
fn mismatched_layer_counts_are_rejected() {
    let (_d, repo) = repo();
    let l = layers();
    let mut src = image(&[(l[0].clone(), TAR, sha256_digest(&l[0]))]);
    // Rewrite the manifest with no layers.
    let mut m: serde_json::Value = serde_json::from_slice(&src.manifest).unwrap();
    m["layers"] = serde_json::json!([]);
    src.manifest = serde_json::to_vec(&m).unwrap();
    assert_failed_cleanly(&repo, &src, "lists 0 layers but config");
}

/// The dump of an image's merged tree.
fn dump(repo: &Repository, img: &OciImage) -> String {
    let fs = img.build_tree(repo, XattrFilter::AllowlistOnly).unwrap();
    let mut out = Vec::new();
    cfs_core::dumpfile::write_dumpfile(&fs, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn repeated_layers_are_applied_each_time_and_named_once() {
    let (_d, repo) = repo();
    let l = layers();
    let empty = Tar::default().end();
    let gz0 = gzip(&l[0]);
    let (d0, d1, de) = (
        sha256_digest(&l[0]),
        sha256_digest(&l[1]),
        sha256_digest(&empty),
    );
    // l0, empty, l1 (deletes etc/gone), empty, l0 again (brings it back).
    let src = image(&[
        (gz0.clone(), GZ, d0.clone()),
        (empty.clone(), TAR, de.clone()),
        (l[1].clone(), TAR, d1.clone()),
        (empty.clone(), TAR, de.clone()),
        (gz0, GZ, d0.clone()),
    ]);
    let report = pull(&repo, &src, &opts("dup")).unwrap();
    assert_eq!((report.layers_imported, report.layers_skipped), (3, 2));
    let img = OciImage::open(&repo, "dup").unwrap();
    let layers = img.layers().unwrap();
    let ids: Vec<&str> = layers.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(ids, [&d0, &de, &d1, &de, &d0]);
    // Each diff_id is named once in the config and manifest streams.
    let mut names: Vec<&str> = img
        .config_stream
        .named
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    names.sort_unstable();
    let mut expected = vec![d0.as_str(), d1.as_str(), de.as_str(), IMAGE_REF_V1_NAME];
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(img.manifest_stream.named.len(), 4);
    // The last l0 is applied again: etc/gone is back.
    let tree = dump(&repo, &img);
    assert!(tree.contains("/etc/gone "), "{tree}");
    assert!(tree.contains("/etc/new "), "{tree}");
    // The linked image is the one of that tree.
    let fs = img.build_tree(&repo, XattrFilter::AllowlistOnly).unwrap();
    let data = cfs_core::repository::image_bytes(&fs, 1).unwrap();
    assert_eq!(
        cfs_core::verity::digest_bytes(repo.algorithm(), &data),
        *img.linked_image(1).unwrap()
    );
    // Without the repeats the tree differs (etc/gone stays deleted).
    let src2 = image(&[(gzip(&l[0]), GZ, d0), (l[1].clone(), TAR, d1)]);
    pull(&repo, &src2, &opts("once")).unwrap();
    let once = dump(&repo, &OciImage::open(&repo, "once").unwrap());
    assert!(!once.contains("/etc/gone "), "{once}");
    assert!(repo.fsck(&Default::default(), None).unwrap().ok);
    // A second pull finds everything present.
    assert!(pull(&repo, &src, &opts("dup2")).unwrap().already_present);
}

const IMAGE_REF_V1_NAME: &str = store::IMAGE_REF_V1;

#[test]
fn malformed_documents_name_the_field() {
    let (_d, repo) = repo();
    let l = layers();
    let mut src = image(&[(l[2].clone(), TAR, sha256_digest(&l[2]))]);
    let good = src.clone();
    let mut m: serde_json::Value = serde_json::from_slice(&src.manifest).unwrap();
    m["layers"] = serde_json::json!(5);
    src.manifest = serde_json::to_vec(&m).unwrap();
    let digest = sha256_digest(&src.manifest);
    let e = pull(&repo, &src, &opts("bad")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "manifest {digest}: at `layers`: invalid type: integer `5`"
        )),
        "{e}"
    );
    // A config whose diff_ids are not a list: the config digest and the path.
    let mut src = good;
    let m: serde_json::Value = serde_json::from_slice(&src.manifest).unwrap();
    let old = m["config"]["digest"].as_str().unwrap().to_owned();
    let mut config: serde_json::Value =
        serde_json::from_slice(&src.blobs.remove(&old).unwrap()).unwrap();
    config["rootfs"]["diff_ids"] = serde_json::json!({"a": 1});
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = sha256_digest(&config);
    let mut m = m;
    m["config"]["digest"] = serde_json::json!(config_digest);
    m["config"]["size"] = serde_json::json!(config.len());
    src.manifest = serde_json::to_vec(&m).unwrap();
    src.blobs.insert(config_digest.clone(), config);
    let e = pull(&repo, &src, &opts("bad")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "config {config_digest}: at `rootfs.diff_ids`: invalid type"
        )),
        "{e}"
    );
    assert!(list_tags(&repo).unwrap().is_empty());
}

#[test]
fn decompressed_layer_size_is_capped() {
    // 8 MiB of zeros in one file: a few KiB compressed.
    let tar = Tar::default()
        .dir("usr/")
        .file("usr/zeros", &vec![0u8; 8 << 20])
        .end();
    let diff_id = sha256_digest(&tar);
    let gz = gzip(&tar);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    // Compressed, both are far below the 1 MiB cap used here.
    assert!(gz.len() < 256 << 10 && zst.len() < 256 << 10);
    for (blob, media_type) in [(gz, GZ), (zst, ZST), (tar.clone(), TAR)] {
        let (_d, repo) = repo();
        let digest = sha256_digest(&blob);
        let src = image(&[(blob, media_type, diff_id.clone())]);
        let capped = |max: u64| PullOptions {
            max_layer_size: Some(max),
            ..opts("capped")
        };
        let e = pull(&repo, &src, &capped(1 << 20)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("blob {digest}: "))
                && e.contains("decompresses to more than the limit of 1048576 bytes"),
            "{media_type}: {e}"
        );
        assert!(list_tags(&repo).unwrap().is_empty());
        assert!(repo.fsck(&Default::default(), None).unwrap().ok);
        // Exactly the tar's size is allowed.
        pull(&repo, &src, &capped(tar.len() as u64)).unwrap();
    }
}
