//! Tests of [`Repository::fsck`]: a clean repository, then one kind of
//! damage at a time.

use std::sync::atomic::Ordering;

use super::test_util::{image_fs, init, object, object_file, stream, tamper};
use super::*;
use crate::verity::Digest;

/// A repository with every kind of entry: content objects, an image with
/// a ref, a layer stream with object refs and a ref, and a config stream
/// with named refs to the layer stream and the image.
struct Fixture {
    _tmp: tempfile::TempDir,
    repo: Repository,
    a: Digest,
    b: Digest,
    image: Digest,
    layer: Digest,
    config: Digest,
    /// Total bytes of all objects.
    bytes: u64,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let a = object(&repo, &vec![b'a'; 5000]);
    let b = object(&repo, &[b'b'; 70]);
    let c = object(&repo, &[b'c'; 200]);
    let image = repo.write_image(&image_fs(&[a, b]), Some("img")).unwrap();
    let layer = stream(&repo, "layer-1", &[a, c, a], &[], Some("layer"));
    let named = [
        ("layer".to_string(), layer),
        ("composefs.image".to_string(), image),
    ];
    let config = stream(&repo, "config-1", &[], &named, Some("oci/config"));
    let bytes = super::test_util::stored_objects(&repo)
        .iter()
        .map(|d| std::fs::metadata(object_file(&repo, d)).unwrap().len())
        .sum();
    Fixture {
        _tmp: tmp,
        repo,
        a: a.0,
        b: b.0,
        image,
        layer,
        config,
        bytes,
    }
}

fn fsck(repo: &Repository) -> FsckReport {
    repo.fsck(&FsckOptions::default(), None).unwrap()
}

/// The error lines of `kind`.
fn errors_of<'r>(report: &'r FsckReport, kind: &str) -> Vec<&'r str> {
    let prefix = format!("fsck: {kind}: ");
    report
        .errors
        .iter()
        .filter(|e| e.starts_with(&prefix))
        .map(String::as_str)
        .collect()
}

#[test]
fn clean_repository_passes_with_right_counts() {
    let f = fixture();
    let progress = FsckProgress::default();
    for threads in [1, 4] {
        let opts = FsckOptions {
            threads,
            ..Default::default()
        };
        let report = f.repo.fsck(&opts, Some(&progress)).unwrap();
        assert_eq!(
            report,
            FsckReport {
                ok: true,
                has_metadata: true,
                // a, b, c, the image, two streams
                objects_checked: 6,
                streams_checked: 2,
                images_checked: 1,
                ..Default::default()
            },
            "{}",
            report.to_text()
        );
        assert_eq!(
            report.to_text(),
            "meta.json: ok\nobjects: 6/6 ok\nstreams: 2/2 ok\nimages: 1/1 ok\nstatus: ok\n"
        );
    }
    assert_eq!(progress.objects_total.load(Ordering::Relaxed), 6);
    assert_eq!(progress.objects_checked.load(Ordering::Relaxed), 12);
    assert_eq!(progress.bytes_checked.load(Ordering::Relaxed), 2 * f.bytes);

    // Metadata only: no object pass.
    let opts = FsckOptions {
        metadata_only: true,
        ..Default::default()
    };
    let report = f.repo.fsck(&opts, None).unwrap();
    assert!(report.ok, "{}", report.to_text());
    assert_eq!(report.objects_checked, 0);
    assert_eq!((report.streams_checked, report.images_checked), (2, 1));
}

#[test]
fn json_has_the_reference_key_order() {
    let report = FsckReport {
        ok: false,
        has_metadata: true,
        objects_checked: 1,
        objects_corrupted: 2,
        streams_checked: 3,
        streams_corrupted: 4,
        images_checked: 5,
        images_corrupted: 6,
        broken_links: 7,
        missing_objects: 8,
        errors: vec!["fsck: broken-symlink: images/x".into()],
    };
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        r#"{"ok":false,"has_metadata":true,"objects_checked":1,"objects_corrupted":2,"#.to_string()
            + r#""streams_checked":3,"streams_corrupted":4,"images_checked":5,"#
            + r#""images_corrupted":6,"broken_links":7,"missing_objects":8,"#
            + r#""errors":["fsck: broken-symlink: images/x"]}"#
    );
}

#[test]
fn flipped_byte_in_an_object() {
    let f = fixture();
    let path = object_file(&f.repo, &f.a);
    tamper(&path, |data| data[1234] = b'X');
    let report = fsck(&f.repo);
    assert!(!report.ok);
    assert_eq!(report.objects_corrupted, 1);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let want = format!(
        "fsck: object-digest-mismatch: {}: measured sha256:",
        paths::object_path(&f.a)
    );
    assert!(report.errors[0].starts_with(&want), "{:?}", report.errors);
    let text = report.to_text();
    assert!(text.contains("objects: 5/6 ok\n"), "{text}");
    assert!(text.ends_with(&format!("status: 1 error(s)\n  - {}\n", report.errors[0])));
    // Metadata only does not look at content objects.
    let opts = FsckOptions {
        metadata_only: true,
        ..Default::default()
    };
    assert!(f.repo.fsck(&opts, None).unwrap().ok);
}

#[test]
fn missing_object_referenced_by_image_and_stream() {
    let f = fixture();
    std::fs::remove_file(object_file(&f.repo, &f.a)).unwrap();
    let report = fsck(&f.repo);
    assert!(!report.ok);
    let hex = f.a.to_hex();
    assert_eq!(
        errors_of(&report, "missing-object-ref"),
        [format!("fsck: missing-object-ref: streams/layer-1: {hex}")]
    );
    assert_eq!(
        errors_of(&report, "image-missing-object"),
        [format!(
            "fsck: image-missing-object: images/{}: {hex}",
            f.image.to_hex()
        )]
    );
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert_eq!(report.missing_objects, 2);
    // Missing references do not make the stream or image corrupt.
    assert_eq!((report.streams_corrupted, report.images_corrupted), (0, 0));
    assert_eq!(report.objects_checked, 5);
    assert!(report.to_text().contains("missing objects: 2\n"));
}

#[test]
fn missing_named_ref_target() {
    let f = fixture();
    std::fs::remove_file(object_file(&f.repo, &f.image)).unwrap();
    let report = fsck(&f.repo);
    let image = f.image.to_hex();
    assert_eq!(
        report.errors,
        [
            format!("fsck: missing-named-ref: streams/config-1: ref composefs.image: {image}"),
            format!("fsck: broken-symlink: images/{image}"),
            "fsck: broken-symlink: images/refs/img".to_string(),
        ]
    );
    assert_eq!(
        (
            report.missing_objects,
            report.broken_links,
            report.images_corrupted
        ),
        (1, 2, 1)
    );
    assert!(
        report
            .to_text()
            .contains("images: 0/1 ok\nbroken symlinks: 2\n")
    );
}

#[test]
fn dangling_refs_and_unexpected_files() {
    let f = fixture();
    let root = f.repo.path();
    std::os::unix::fs::symlink("../0123", root.join("images/refs/dangling")).unwrap();
    std::fs::create_dir_all(root.join("streams/refs/deep")).unwrap();
    std::os::unix::fs::symlink("../../gone", root.join("streams/refs/deep/x")).unwrap();
    std::fs::write(root.join("images/refs/plain"), b"not a link").unwrap();
    let report = fsck(&f.repo);
    assert_eq!(
        report.errors,
        [
            "fsck: broken-symlink: streams/refs/deep/x",
            "fsck: broken-symlink: images/refs/dangling",
            "fsck: unexpected-file-type: images/refs/plain: RegularFile",
        ]
    );
    assert_eq!(report.broken_links, 2);
    // Refs are not entries: the counts of checked entries do not change.
    assert_eq!((report.streams_checked, report.images_checked), (2, 1));
    assert_eq!((report.streams_corrupted, report.images_corrupted), (0, 0));
}

#[test]
fn entries_that_are_not_symlinks_or_lead_nowhere() {
    let f = fixture();
    let root = f.repo.path();
    std::fs::write(root.join("streams/plain"), b"x").unwrap();
    std::os::unix::fs::symlink("../objects/00/11", root.join("streams/bad-name")).unwrap();
    std::os::unix::fs::symlink("../meta.json", root.join("images/notanobject")).unwrap();
    let report = fsck(&f.repo);
    assert_eq!(
        report.errors,
        [
            "fsck: broken-symlink: streams/bad-name".to_string(),
            "fsck: entry-not-symlink: streams/plain".to_string(),
            "fsck: image-open-failed: images/notanobject: meta.json is not an object".to_string(),
        ]
    );
    assert_eq!((report.streams_checked, report.streams_corrupted), (4, 2));
    assert_eq!((report.images_checked, report.images_corrupted), (2, 1));
    assert_eq!(report.broken_links, 1);
}

#[test]
fn truncated_stream_object() {
    let f = fixture();
    let path = object_file(&f.repo, &f.layer);
    tamper(&path, |data| data.truncate(data.len() - 10));
    let report = fsck(&f.repo);
    assert!(!report.ok);
    let mismatch = errors_of(&report, "object-digest-mismatch");
    assert_eq!(mismatch.len(), 1, "{:?}", report.errors);
    assert!(mismatch[0].contains(&paths::object_path(&f.layer)));
    let open = errors_of(&report, "stream-open-failed");
    assert_eq!(open.len(), 1, "{:?}", report.errors);
    assert!(open[0].starts_with("fsck: stream-open-failed: streams/layer-1: "));
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert_eq!((report.objects_corrupted, report.streams_corrupted), (1, 1));
    // Metadata only still finds the unusable stream.
    let opts = FsckOptions {
        metadata_only: true,
        ..Default::default()
    };
    let report = f.repo.fsck(&opts, None).unwrap();
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(errors_of(&report, "stream-open-failed").len(), 1);
}

/// Byte offset of the `stream` range in the info section of a split stream
/// written by this crate (header 32 bytes, then stream_refs, object_refs).
const STREAM_RANGE: usize = 32 + 32;

#[test]
fn truncated_zstd_stream_and_wrong_stream_size() {
    let f = fixture();
    // A stream whose chunk stream is cut short (with a consistent header:
    // the stream range is the end of the file).
    let mut data = f.repo.read_object(&f.layer, 1 << 20).unwrap();
    let end = u64::from_le_bytes(
        data[STREAM_RANGE + 8..STREAM_RANGE + 16]
            .try_into()
            .unwrap(),
    );
    assert_eq!(end, data.len() as u64);
    data.truncate(data.len() - 3);
    data[STREAM_RANGE + 8..STREAM_RANGE + 16].copy_from_slice(&(end - 3).to_le_bytes());
    let (cut, _) = f.repo.ensure_object_bytes(&data).unwrap();
    f.repo.register_stream("cut", &cut, None).unwrap();

    // A stream whose declared size disagrees with its object sizes.
    let mut w = crate::splitstream::SplitStreamWriter::new(
        Algorithm::Sha256,
        crate::splitstream::ContentType(*b"ocilayer"),
    );
    w.write_inline(b"abc");
    w.add_external(&f.b, 71).unwrap();
    f.repo.write_stream("wrong-size", w, None).unwrap();

    let report = fsck(&f.repo);
    let read = errors_of(&report, "stream-read-failed");
    assert_eq!(read.len(), 2, "{:?}", report.errors);
    assert!(read[0].starts_with("fsck: stream-read-failed: streams/cut: chunk stream: "));
    assert_eq!(
        read[1],
        "fsck: stream-read-failed: streams/wrong-size: stream size mismatch: inline data and \
         referenced objects add up to 73 bytes, the header declares 74"
    );
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert_eq!((report.streams_checked, report.streams_corrupted), (4, 2));
}

#[test]
fn non_digest_names_in_object_directories() {
    let f = fixture();
    let objects = f.repo.path().join("objects");
    // Directly in objects/: stale temporaries and other names are ignored.
    std::fs::write(objects.join(".tmp-object-abcdefghijkl"), b"partial").unwrap();
    std::fs::write(objects.join("README"), b"x").unwrap();
    assert!(fsck(&f.repo).ok);
    std::fs::create_dir_all(objects.join("ab")).unwrap();
    std::fs::write(objects.join("ab/zz"), b"x").unwrap();
    // A SHA-512 name in a SHA-256 repository.
    std::fs::write(objects.join("ab").join("c".repeat(126)), b"x").unwrap();
    let report = fsck(&f.repo);
    let invalid = errors_of(&report, "object-invalid-name");
    assert_eq!(invalid.len(), 2, "{:?}", report.errors);
    assert!(invalid[1].starts_with("fsck: object-invalid-name: objects/ab/zz: "));
    assert!(invalid[0].contains("a sha512 digest in a sha256 repository"));
    assert_eq!(report.errors.len(), 2);
    assert_eq!((report.objects_checked, report.objects_corrupted), (8, 2));
}

#[test]
fn corrupt_image_object() {
    let f = fixture();
    let path = object_file(&f.repo, &f.image);
    tamper(&path, |data| *data = vec![0u8; 4096]);
    let report = fsck(&f.repo);
    let image = f.image.to_hex();
    assert_eq!(errors_of(&report, "object-digest-mismatch").len(), 1);
    let invalid = errors_of(&report, "image-invalid");
    assert_eq!(invalid.len(), 1, "{:?}", report.errors);
    assert!(invalid[0].starts_with(&format!("fsck: image-invalid: images/{image}: ")));
    assert_eq!(report.images_corrupted, 1);
    // Without the object pass the image's digest is checked with the image.
    let opts = FsckOptions {
        metadata_only: true,
        ..Default::default()
    };
    let report = f.repo.fsck(&opts, None).unwrap();
    assert_eq!(
        errors_of(&report, "object-digest-mismatch"),
        [format!(
            "fsck: object-digest-mismatch: {}: measured {}",
            paths::object_path(&f.image),
            crate::verity::digest_bytes(Algorithm::Sha256, &[0u8; 4096]).to_prefixed()
        )]
    );
    assert_eq!((report.images_corrupted, report.objects_corrupted), (1, 0));
}

#[test]
fn invalid_and_missing_meta_json() {
    let f = fixture();
    let meta = f.repo.path().join("meta.json");
    let original = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, b"{ not json").unwrap();
    let report = fsck(&f.repo);
    assert!(!report.ok);
    assert!(!report.has_metadata);
    let parse = errors_of(&report, "metadata-parse-failed");
    assert_eq!(parse.len(), 1, "{:?}", report.errors);
    assert!(parse[0].starts_with("fsck: metadata-parse-failed: meta.json: "));
    assert!(report.to_text().starts_with("meta.json: error\n"));

    std::fs::write(&meta, original.replace("sha256", "sha512")).unwrap();
    let report = fsck(&f.repo);
    assert_eq!(
        report.errors,
        [
            "fsck: metadata-algorithm-mismatch: meta.json: expected fsverity-sha512-12, \
          repository opened as fsverity-sha256-12"
        ]
    );
    assert!(report.has_metadata);

    std::fs::remove_file(&meta).unwrap();
    let report = fsck(&f.repo);
    assert_eq!(
        report.errors,
        [
            "fsck: metadata-parse-failed: meta.json: meta.json not found; expected because \
          repository was opened successfully"
        ]
    );
    assert!(report.to_text().starts_with("meta.json: error\n"));
    let _ = f.config;
}
