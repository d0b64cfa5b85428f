//! Tests of merging layer split streams: same tree as merging the raw tars,
//! no content object opened, composefs-rs reader rules enforced.

use cfs_core::dumpfile::write_dumpfile;
use cfs_core::repository::{InitOptions, Repository};
use cfs_core::splitstream::{ContentType, SplitStream, SplitStreamWriter};
use cfs_core::tree::{FileSystem, XattrFilter};
use cfs_core::verity::{Digest, digest_bytes, digest_reader, push_hex};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

use super::tests::Tar;
use super::*;
use crate::layer::{LayerOptions, import_layer};

fn new_repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        insecure: true,
        ..InitOptions::default()
    };
    let (repo, _) = Repository::init(&dir.path().join("repo"), &opts).unwrap();
    (dir, repo)
}

/// Imports `tar` as a layer; returns the stream object id.
fn import(repo: &Repository, tar: &[u8]) -> Digest {
    let mut diff_id = String::from("sha256:");
    push_hex(&mut diff_id, &Sha256::digest(tar));
    import_layer(repo, &diff_id, tar, &LayerOptions::default())
        .unwrap()
        .object
}

fn dump(fs: &FileSystem) -> String {
    let mut out = Vec::new();
    write_dumpfile(fs, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Merges `layers` both ways and checks the trees are identical; returns
/// the repository (with the streams) and the tree.
fn check_same(layers: &[Vec<u8>]) -> (tempfile::TempDir, Repository, Vec<Digest>, FileSystem) {
    let (dir, repo) = new_repo();
    let streams: Vec<Digest> = layers.iter().map(|l| import(&repo, l)).collect();
    let alg = repo.algorithm();
    let mut store = |r: &mut dyn std::io::Read, _| digest_reader(alg, r);
    let expected = build_tree(layers.iter().map(|l| &l[..]), &mut store).unwrap();
    let found = build_tree_from_streams(&repo, &streams, XattrFilter::AllowlistOnly).unwrap();
    assert_eq!(dump(&found), dump(&expected));
    assert!(found == expected, "trees differ beyond the dumpfile");
    (dir, repo, streams, found)
}

fn layers() -> Vec<Vec<u8>> {
    let big = vec![b'B'; 100_000];
    let l1 = Tar::default()
        .dir("./", 0o755)
        .dir("usr/", 0o755)
        .dir("usr/d/", 0o755)
        .file("usr/empty", b"")
        .file("usr/f64", &[b'x'; 64])
        .file("usr/f65", &[b'y'; 65])
        .file("usr/f512", &[b'z'; 512])
        .file("usr/f513", &[b'w'; 513])
        .file("usr/big", &big)
        .file("usr/d/gone", &[1; 200])
        .file("usr/d/kept", &[2; 300])
        .pax(&[("SCHILY.xattr.security.capability", b"\x01cap")])
        .file("usr/cap", &[3; 70])
        .entry("usr/link", b'1', "usr/big")
        .entry("usr/sym", b'2', "big")
        .entry("usr/fifo", b'6', "")
        .end();
    let l2 = Tar::default()
        .file("usr/d/.wh.gone", b"")
        .file("usr/.wh.f512", b"")
        .file("usr/big", b"now small")
        .dir("usr/o/", 0o700)
        .file("usr/o/.wh..wh..opq", b"")
        .file("usr/o/new", &[4; 1000])
        .entry("usr/link2", b'1', "usr/f65")
        .end();
    let mut l3 = Tar::default().file("usr/f65", &[5; 65]).end();
    l3.extend_from_slice(b"trailing garbage after the end blocks");
    vec![l1, l2, l3]
}

#[test]
fn streams_give_the_same_tree_as_tars() {
    let (_dir, _repo, _, fs) = check_same(&layers());
    // The hard link made in layer 2 keeps layer 1's f65 content.
    let link2 = fs.lookup(b"/usr/link2").unwrap();
    assert_eq!(fs.inode(link2).nlink, 1);
    assert!(fs.lookup(b"/usr/f512").is_none());
    assert!(fs.lookup(b"/usr/d/gone").is_none());
}

#[test]
fn content_objects_are_never_opened() {
    let layers = layers();
    let (_dir, repo, streams, expected) = check_same(&layers);
    let mut removed = 0;
    for s in &streams {
        let data = repo.read_object(s, 1 << 30).unwrap();
        for d in SplitStream::parse(&data).unwrap().object_refs() {
            let path = repo.path().join("objects").join(d.object_path());
            std::fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    assert!(removed >= 6, "{removed}");
    let found = build_tree_from_streams(&repo, &streams, XattrFilter::AllowlistOnly).unwrap();
    assert!(found == expected);
}

#[test]
fn for_each_stream_entry_lists_unmerged_entries() {
    let layers = layers();
    let (_dir, repo) = new_repo();
    let stream = import(&repo, &layers[1]);
    let mut paths = Vec::new();
    for_each_stream_entry(&repo, &stream, &mut |e| {
        paths.push(String::from_utf8(e.path).unwrap());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        paths,
        [
            "usr/d/.wh.gone",
            "usr/.wh.f512",
            "usr/big",
            "usr/o/",
            "usr/o/.wh..wh..opq",
            "usr/o/new",
            "usr/link2"
        ]
    );
}

/// A ustar header block of a regular file of `size` bytes.
fn header(size: u64) -> Vec<u8> {
    let mut t = Tar::default();
    t.header(b"usr/f", b'0', size, 0o644, b"");
    t.0
}

/// Writes a hand-made layer stream and returns its error when read.
fn stream_error(build: impl FnOnce(&mut SplitStreamWriter, &Repository)) -> String {
    let (_dir, repo) = new_repo();
    let mut w = SplitStreamWriter::new(repo.algorithm(), ContentType::OCI_LAYER);
    build(&mut w, &repo);
    let id = repo.write_stream("test-layer", w, None).unwrap();
    let err = for_each_stream_entry(&repo, &id, &mut |_| Ok(())).unwrap_err();
    assert!(
        err.to_string().contains(&id.to_hex()),
        "names the stream: {err}"
    );
    err.to_string()
}

fn object(repo: &Repository, data: &[u8]) -> Digest {
    repo.ensure_object_bytes(data).unwrap().0
}

#[test]
fn malformed_streams_are_rejected() {
    let err = stream_error(|w, repo| {
        w.write_inline(&header(10));
        w.add_external(&object(repo, &[0; 10]), 10).unwrap();
        w.write_inline(&[0; 502]);
    });
    assert!(
        err.contains("split stream stores a small (10 byte) file external"),
        "{err}"
    );

    let err = stream_error(|w, _| {
        w.write_inline(&header(100));
        w.write_inline(&[0; 512]);
    });
    assert!(
        err.contains("split stream stores a large (100 byte) file inline"),
        "{err}"
    );

    let err = stream_error(|w, repo| {
        w.add_external(&object(repo, &[0; 512]), 512).unwrap();
    });
    assert!(err.contains("where a tar header is expected"), "{err}");
    assert!(err.contains("tar offset 0"), "{err}");

    let err = stream_error(|w, repo| {
        w.write_inline(&header(100));
        w.add_external(&object(repo, &[0; 100]), 100).unwrap();
        w.add_external(&object(repo, &[1; 412]), 412).unwrap();
    });
    assert!(err.contains("where tar padding is expected"), "{err}");

    // The object is 100 bytes, the header says 200: the total gives it away.
    let err = stream_error(|w, repo| {
        w.write_inline(&header(200));
        w.add_external(&object(repo, &[0; 100]), 100).unwrap();
        w.write_inline(&[0; 312 + 1024]);
    });
    assert!(err.contains("but the stream declares"), "{err}");

    let err = stream_error(|w, _| {
        w.write_inline(&header(100));
    });
    assert!(err.contains("ends where the content"), "{err}");
}

#[test]
fn other_content_types_are_rejected() {
    let (_dir, repo) = new_repo();
    let mut w = SplitStreamWriter::new(repo.algorithm(), ContentType::OCI_CONFIG);
    w.write_inline(b"{}");
    let id = repo.write_stream("test-config", w, None).unwrap();
    let err = build_tree_from_streams(&repo, &[id], XattrFilter::AllowlistOnly).unwrap_err();
    assert!(err.to_string().contains("expected ocilayer"), "{err}");
    let missing = digest_bytes(repo.algorithm(), b"nothing");
    let err = build_tree_from_streams(&repo, &[missing], XattrFilter::AllowlistOnly).unwrap_err();
    assert!(matches!(err, MergeError::Repo { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Two layers of files with sizes around the inline limit and block
    /// boundaries; the second removes or rewrites some.
    #[test]
    fn random_layers_match(
        sizes in proptest::collection::vec(
            prop_oneof![0usize..=70, 500usize..=530, 1000usize..5000], 1..12),
        changes in proptest::collection::vec(0u8..3, 12),
    ) {
        let mut l1 = Tar::default().dir("usr/", 0o755);
        let mut l2 = Tar::default();
        for (i, size) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..*size).map(|j| (i * 7 + j) as u8).collect();
            l1 = l1.file(&format!("usr/f{i}"), &data);
            l2 = match changes[i] {
                0 => l2,
                1 => l2.file(&format!("usr/.wh.f{i}"), b""),
                _ => l2.file(&format!("usr/f{i}"), &data[..size / 2]),
            };
        }
        check_same(&[l1.end(), l2.end()]);
    }
}
