use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::objects::Stored;

fn init(dir: &Path, alg: Algorithm) -> Repository {
    let opts = InitOptions {
        algorithm: alg,
        insecure: true,
        erofs_version: 1,
        erofs_extra: Vec::new(),
    };
    Repository::init(dir, &opts).unwrap().0
}

#[test]
fn init_writes_meta_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    let (repo, how) = Repository::init(
        &path,
        &InitOptions {
            insecure: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(how, Initialized::Created);
    assert_eq!(repo.algorithm(), Algorithm::Sha512);
    assert!(!repo.is_secure());
    assert_eq!(repo.erofs_versions(), [1]);
    let text = std::fs::read_to_string(path.join("meta.json")).unwrap();
    assert!(text.contains("\"v1_erofs\""), "{text}");
    assert!(path.join("objects").is_dir());
    drop(repo);
    // Same configuration again: fine.
    let (_, how) = Repository::init(
        &path,
        &InitOptions {
            insecure: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(how, Initialized::Existing);
    // Different configuration: refused, naming both.
    let err = Repository::init(
        &path,
        &InitOptions {
            algorithm: Algorithm::Sha256,
            insecure: true,
            erofs_version: 1,
            erofs_extra: Vec::new(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, RepoError::ConfigMismatch { .. }), "{err}");
    assert!(err.to_string().contains("fsverity-sha256-12"), "{err}");
}

#[test]
fn dual_formats_at_init_and_added_later() {
    let dir = tempfile::tempdir().unwrap();
    let dual = dir.path().join("dual");
    let (repo, _) = Repository::init(
        &dual,
        &InitOptions {
            insecure: true,
            erofs_extra: vec![2, 1, 2],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(repo.erofs_versions(), vec![1, 2]);
    let text = std::fs::read_to_string(dual.join("meta.json")).unwrap();
    assert!(text.contains("\"v1_erofs\""), "{text}");
    assert!(text.contains("\"extra\": [\n      2\n    ]"), "{text}");

    // A V2 repository gains V1: V2 stays the default, no v1_erofs flag.
    let v2 = dir.path().join("v2");
    Repository::init(
        &v2,
        &InitOptions {
            insecure: true,
            erofs_version: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut repo = Repository::open(&v2, &OpenOptions::default()).unwrap();
    assert_eq!(repo.add_erofs_formats(&[1, 2]).unwrap(), vec![1]);
    assert_eq!(repo.add_erofs_formats(&[1]).unwrap(), Vec::<u32>::new());
    assert!(repo.add_erofs_formats(&[3]).is_err());
    let reopened = Repository::open(&v2, &OpenOptions::default()).unwrap();
    assert_eq!(reopened.erofs_versions(), vec![2, 1]);
    let text = std::fs::read_to_string(v2.join("meta.json")).unwrap();
    assert!(!text.contains("v1_erofs"), "{text}");
    assert!(
        std::fs::read_dir(&v2).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp")),
        "no temporary file left"
    );
}

#[test]
fn secure_init_without_kernel_verity_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    let f = File::open(&probe).unwrap();
    if enable_verity(f.as_fd(), Algorithm::Sha256).is_ok() {
        return; // this filesystem has fs-verity: nothing to test here
    }
    let err = Repository::init(&tmp.path().join("r"), &InitOptions::default()).unwrap_err();
    assert!(matches!(err, RepoError::VerityUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("--insecure"), "{err}");
    // Nothing is left behind: not the directory, nor its missing parents…
    assert!(!tmp.path().join("r").exists());
    let err = Repository::init(&tmp.path().join("a/b/r"), &InitOptions::default()).unwrap_err();
    assert!(matches!(err, RepoError::VerityUnsupported { .. }), "{err}");
    assert!(!tmp.path().join("a").exists());
    // …and an existing directory stays as it was (empty).
    std::fs::create_dir(tmp.path().join("e")).unwrap();
    Repository::init(&tmp.path().join("e"), &InitOptions::default()).unwrap_err();
    assert_eq!(std::fs::read_dir(tmp.path().join("e")).unwrap().count(), 0);
}

#[test]
fn unknown_incompatible_feature_refuses_and_ro_compat_opens_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    drop(repo);
    let meta_path = tmp.path().join("meta.json");
    let original = std::fs::read_to_string(&meta_path).unwrap();

    let ro = original.replace("\"v1_erofs\"", "\"v1_erofs\", \"frobnicated_refs\"");
    std::fs::write(&meta_path, &ro).unwrap();
    let repo = Repository::open(tmp.path(), &OpenOptions::default()).unwrap();
    let reason = repo.read_only_reason().unwrap().to_string();
    assert!(reason.contains("frobnicated_refs"), "{reason}");
    let err = repo.ensure_object_bytes(b"data").unwrap_err();
    assert!(matches!(err, RepoError::ReadOnly { .. }), "{err}");
    drop(repo);

    let incompat = original.replace(
        "\"incompatible\": []",
        "\"incompatible\": [\"quantum_objects\"]",
    );
    std::fs::write(&meta_path, &incompat).unwrap();
    let err = Repository::open(tmp.path(), &OpenOptions::default()).unwrap_err();
    assert!(
        matches!(err, RepoError::IncompatibleFeatures { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("quantum_objects"), "{err}");
}

#[test]
fn missing_directory_is_not_initialized() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Repository::open(&tmp.path().join("nope"), &OpenOptions::default()).unwrap_err();
    assert!(matches!(err, RepoError::NotInitialized { .. }), "{err}");
    let err = Repository::open(tmp.path(), &OpenOptions::default()).unwrap_err();
    assert!(matches!(err, RepoError::NotInitialized { .. }), "{err}");
}

#[test]
fn require_verity_refuses_insecure() {
    let tmp = tempfile::tempdir().unwrap();
    drop(init(tmp.path(), Algorithm::Sha256));
    let err = Repository::open(
        tmp.path(),
        &OpenOptions {
            require_verity: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, RepoError::VerityRequired { .. }), "{err}");
}

#[test]
fn old_repository_is_upgraded_with_inferred_algorithm() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let (d, _) = repo.ensure_object_bytes(b"some content").unwrap();
    drop(repo);
    std::fs::remove_file(tmp.path().join("meta.json")).unwrap();
    // Without upgrading: usable read-only with the inferred configuration.
    let repo = Repository::open(
        tmp.path(),
        &OpenOptions {
            no_upgrade: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(repo.algorithm(), Algorithm::Sha256);
    assert!(repo.read_only_reason().is_some());
    assert!(!tmp.path().join("meta.json").exists());
    drop(repo);
    let repo = Repository::open(tmp.path(), &OpenOptions::default()).unwrap();
    assert_eq!(repo.algorithm(), Algorithm::Sha256);
    assert_eq!(repo.erofs_versions(), [1]);
    assert!(repo.has_object(&d).unwrap());
    let meta = Meta::parse(&std::fs::read(tmp.path().join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta, Meta::upgraded(Algorithm::Sha256));
}

#[test]
fn objects_dedup_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha512);
    let data = vec![7u8; 100_000];
    let (d1, s1) = repo.ensure_object_bytes(&data).unwrap();
    let (d2, s2) = repo.ensure_object_from_reader(&data[..]).unwrap();
    let src = tmp.path().join("src");
    std::fs::write(&src, &data).unwrap();
    let (d3, s3) = repo
        .ensure_object_from_file(&File::open(&src).unwrap())
        .unwrap();
    assert_eq!((d1, d1), (d2, d3));
    assert_eq!(
        (s1, s2, s3),
        (Stored::Written, Stored::Existing, Stored::Existing)
    );
    assert_eq!(d1, crate::verity::digest_bytes(Algorithm::Sha512, &data));
    let path = tmp.path().join(paths::object_path(&d1));
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_eq!(repo.read_object(&d1, 1 << 20).unwrap(), data);
    // Only the object (and its XX directory) are in objects/: no temporaries.
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn concurrent_writers_of_one_object() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| repo.ensure_object_from_reader(&data[..]).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let written = results
        .iter()
        .filter(|(_, s)| *s == Stored::Written)
        .count();
    assert_eq!(written, 1, "{results:?}");
    assert!(results.iter().all(|(d, _)| *d == results[0].0));
    assert_eq!(repo.read_object(&results[0].0, 1 << 20).unwrap(), data);
}

#[test]
fn links_are_relative_and_replaced_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    repo.set_link("streams/refs/oci/a%2Fb", "streams/x")
        .unwrap();
    assert_eq!(
        std::fs::read_link(tmp.path().join("streams/refs/oci/a%2Fb"))
            .unwrap()
            .to_str(),
        Some("../../x")
    );
    repo.set_link("streams/refs/oci/a%2Fb", "streams/y")
        .unwrap();
    assert_eq!(
        repo.resolve_link("streams/refs/oci/a%2Fb")
            .unwrap()
            .as_deref(),
        Some("streams/y")
    );
    let listed = repo.list_links("streams/refs", true).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "oci/a%2Fb");
    // No temporary links left behind.
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("streams/refs/oci"))
        .unwrap()
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn read_only_filesystem_permissions_make_repository_read_only() {
    if rustix::process::geteuid().is_root() {
        return; // root ignores permission bits
    }
    let tmp = tempfile::tempdir().unwrap();
    drop(init(tmp.path(), Algorithm::Sha256));
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let repo = Repository::open(tmp.path(), &OpenOptions::default()).unwrap();
    assert!(repo.read_only_reason().is_some());
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn streams_round_trip_through_the_repository() {
    use crate::splitstream::{ContentType, SplitStreamWriter};
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let big = vec![0xabu8; 10_000];
    let (obj, _) = repo.ensure_object_bytes(&big).unwrap();
    let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_LAYER);
    w.write_inline(b"header");
    w.add_external(&obj, big.len() as u64).unwrap();
    w.write_inline(b"trailer");
    let layer = repo
        .write_stream("oci-layer-sha256:1234", w, Some("mylayer"))
        .unwrap();
    assert_eq!(
        std::fs::read_link(tmp.path().join("streams/oci-layer-sha256:1234")).unwrap(),
        Path::new("..").join(paths::object_path(&layer))
    );
    assert_eq!(
        std::fs::read_link(tmp.path().join("streams/refs/mylayer")).unwrap(),
        Path::new("../oci-layer-sha256:1234")
    );
    let mut expected = b"header".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"trailer");
    for name in ["oci-layer-sha256:1234", "refs/mylayer", "mylayer"] {
        let mut out = Vec::new();
        repo.cat_stream(name, &mut out).unwrap();
        assert_eq!(out, expected, "{name}");
    }
    assert_eq!(
        repo.has_stream("oci-layer-sha256:1234").unwrap(),
        Some(layer)
    );
    assert_eq!(repo.has_stream("oci-layer-sha256:9999").unwrap(), None);
    let err = repo.cat_stream("nope", &mut Vec::new()).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // A missing external object is named in the error.
    std::fs::remove_file(tmp.path().join(paths::object_path(&obj))).unwrap();
    let err = repo.cat_stream("mylayer", &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains(&obj.to_hex()), "{err}");
}

#[test]
fn images_are_written_named_resolved_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha512);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(src.join("usr/bin/tool"), vec![1u8; 5000]).unwrap();
    std::fs::write(src.join("usr/small"), b"tiny").unwrap();
    let opts = DirImageOptions::default();
    let digest = repo
        .create_image_from_dir(&src, &opts, Some("a/b"), None)
        .unwrap();
    let again = compute_image_id(&src, Algorithm::Sha512, 1, &opts).unwrap();
    assert_eq!(digest, again);
    assert_eq!(
        std::fs::read_link(tmp.path().join("images/refs/a/b")).unwrap(),
        Path::new("../..").join(digest.to_hex())
    );
    // A name with a slash is relative to images/, as in composefs-rs.
    assert!(repo.resolve_image("a/b").unwrap_err().is_not_found());
    assert_eq!(repo.resolve_image("refs/a/b").unwrap(), digest);
    assert_eq!(repo.resolve_image(&digest.to_hex()).unwrap(), digest);
    let (file, d) = repo.open_image(&digest.to_hex()).unwrap();
    assert_eq!(d, digest);
    assert!(file.metadata().unwrap().len() > 0);
    let objects = repo.image_objects("refs/a/b").unwrap();
    let tool = crate::verity::digest_bytes(Algorithm::Sha512, &[1u8; 5000]);
    assert_eq!(objects, [tool]);
    assert!(repo.has_object(&tool).unwrap());
    let listed = repo.list_images().unwrap();
    assert_eq!(
        listed,
        [ImageRef {
            name: "a/b".into(),
            digest: Some(digest)
        }]
    );
    // A corrupted image object is refused when opened by digest.
    let obj = tmp.path().join(paths::object_path(&digest));
    super::test_util::tamper(&obj, |data| data[100] ^= 1);
    let err = repo.open_image(&digest.to_hex()).unwrap_err();
    assert!(matches!(err, RepoError::DigestMismatch { .. }), "{err}");
}

#[test]
fn import_image_validates_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let err = repo
        .import_image(&b"not an image"[..], Some("bad"))
        .unwrap_err();
    assert!(matches!(err, RepoError::Image { .. }), "{err}");
    assert!(!tmp.path().join("images/refs/bad").exists());
    let fs = crate::tree::FileSystem::new(crate::tree::Stat {
        mode: 0o755,
        ..Default::default()
    });
    let data = image_bytes(&fs, 1).unwrap();
    let d = repo.import_image(&data[..], Some("empty")).unwrap();
    assert_eq!(repo.resolve_image("empty").unwrap(), d);
    // Objects the repository does not have: refused unless allowed.
    let (present, _) = repo.ensure_object_bytes(&[3u8; 9000]).unwrap();
    let absent = crate::verity::digest_bytes(Algorithm::Sha256, &[4u8; 9000]);
    let fs = super::test_util::image_fs(&[(present, 9000), (absent, 9000)]);
    let data = image_bytes(&fs, 1).unwrap();
    let err = repo.import_image(&data[..], Some("partial")).unwrap_err();
    assert!(
        matches!(err, RepoError::MissingObjects { count: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&absent.to_prefixed()), "{err}");
    assert!(!tmp.path().join("images/refs/partial").exists());
    let opts = ImportOptions {
        allow_missing_objects: true,
    };
    repo.import_image_with(&data[..], Some("partial"), &opts)
        .unwrap();
    // An image whose references use SHA-512 names, into this SHA-256 repository.
    let other = super::test_util::image_fs(&[(crate::verity::Digest::sha512([7; 64]), 100)]);
    let data = image_bytes(&other, 1).unwrap();
    let err = repo.import_image(&data[..], Some("other")).unwrap_err();
    assert!(matches!(err, RepoError::ImageAlgorithm { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("references sha512 objects (e.g. sha512:0707"),
        "{msg}"
    );
    assert!(msg.contains("this is a sha256 repository"), "{msg}");
    assert!(!tmp.path().join("images/refs/other").exists());
}
