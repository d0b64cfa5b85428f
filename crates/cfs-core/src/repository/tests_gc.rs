//! Tests of [`Repository::gc`]: what is kept and removed, dry runs, link
//! pruning, a property test over random object graphs, and corrupt roots.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::test_util::{image_fs, init, object, object_file, stored_objects, stream};
use super::*;
use crate::verity::Digest;

fn size_of(repo: &Repository, d: &Digest) -> u64 {
    std::fs::metadata(object_file(repo, d)).unwrap().len()
}

/// Every symlink under `images/` and `streams/` (recursively), sorted.
fn all_links(repo: &Repository) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [paths::IMAGES, paths::STREAMS] {
        for e in repo.list_links(dir, true).unwrap() {
            out.push(format!("{dir}/{}", e.name));
        }
    }
    out
}

#[test]
fn keeps_what_roots_reach_and_removes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let obj = |name: &str, len: usize| object(&repo, name.repeat(len).as_bytes());
    let (a, b, c, d, e) = (
        obj("a", 100),
        obj("b", 5000),
        obj("c", 70),
        obj("d", 300),
        obj("e", 80),
    );
    let (f, g, h, i, j) = (
        obj("f", 90),
        obj("g", 65),
        obj("h", 66),
        obj("i", 67),
        obj("j", 68),
    );
    let garbage = obj("x", 1000);

    // An image with a ref keeps itself and its files.
    let image1 = repo.write_image(&image_fs(&[a, b]), Some("img")).unwrap();
    // An image without one goes, with its files (and its images/ link).
    let image2 = repo.write_image(&image_fs(&[c]), None).unwrap();
    // An image kept only because a kept stream names it.
    let image3 = repo.write_image(&image_fs(&[f]), None).unwrap();
    // An image kept only as an extra root.
    let image4 = repo.write_image(&image_fs(&[j]), None).unwrap();

    // A layer kept through the config's named ref (recursively), the config
    // by its ref; a plain object named by the config is kept too.
    let layer = stream(&repo, "layer-1", &[d], &[], None);
    let named = [
        ("layer".to_string(), layer),
        ("composefs.image".to_string(), image3),
        ("blob".to_string(), g.0),
    ];
    let config = stream(&repo, "config-1", &[e], &named, Some("oci/cfg"));
    let orphan = stream(&repo, "orphan", &[h], &[], None);
    let extra = stream(&repo, "extra-1", &[i], &[], None);

    let root = tmp.path();
    std::os::unix::fs::symlink(
        format!("../{}", "0".repeat(64)),
        root.join("images/refs/dead"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../gone", root.join("streams/refs/dead")).unwrap();
    std::fs::write(root.join("objects/.tmp-object-abcdefghijkl"), b"partial").unwrap();

    let live: BTreeSet<Digest> = [
        image1, a.0, b.0, image3, f.0, image4, j.0, layer, d.0, config, e.0, g.0, extra, i.0,
    ]
    .into();
    let dead = [image2, c.0, orphan, h.0, garbage.0];
    let dead_bytes: u64 = dead.iter().map(|x| size_of(&repo, x)).sum();
    assert_eq!(stored_objects(&repo), &live | &dead.into());

    let opts = GcOptions {
        dry_run: true,
        extra_roots: vec!["extra-1".into(), image4.to_hex()],
        ..GcOptions::default()
    };
    let links_before = all_links(&repo);
    let expected = GcReport {
        objects_kept: live.len() as u64,
        objects_removed: dead.len() as u64,
        bytes_removed: dead_bytes,
        // images/<image2>, images/refs/dead; streams/orphan, streams/refs/dead
        images_pruned: 2,
        streams_pruned: 2,
        temp_files_removed: 1,
        unknown_files: 0,
        ..GcReport::default()
    };
    assert_eq!(repo.gc(&opts).unwrap(), expected);
    // A dry run changes nothing.
    assert_eq!(stored_objects(&repo).len(), live.len() + dead.len());
    assert_eq!(all_links(&repo), links_before);
    assert!(root.join("objects/.tmp-object-abcdefghijkl").exists());

    let opts = GcOptions {
        dry_run: false,
        ..opts
    };
    assert_eq!(repo.gc(&opts).unwrap(), expected);
    assert_eq!(stored_objects(&repo), live);
    assert!(!root.join("objects/.tmp-object-abcdefghijkl").exists());
    let image2_link = format!("images/{}", image2.to_hex());
    let links = all_links(&repo);
    for gone in [
        image2_link.as_str(),
        "images/refs/dead",
        "streams/orphan",
        "streams/refs/dead",
    ] {
        assert!(!links.iter().any(|l| l == gone), "{gone} in {links:?}");
    }
    assert_eq!(links.len(), links_before.len() - 4);
    let report = repo.fsck(&FsckOptions::default(), None).unwrap();
    assert!(report.ok, "{}", report.to_text());

    // Nothing more to do; without the extra roots their objects go.
    let again = repo.gc(&opts).unwrap();
    assert_eq!((again.objects_removed, again.images_pruned), (0, 0));
    assert_eq!(again.objects_kept, live.len() as u64);
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.objects_removed, 4, "{report:?}"); // image4, j, extra, i
    assert_eq!((report.images_pruned, report.streams_pruned), (1, 1));
    assert!(repo.fsck(&FsckOptions::default(), None).unwrap().ok);
}

#[test]
fn corrupt_image_root_is_reported_and_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let garbage = object(&repo, b"garbage that nothing references");
    let kept = object(&repo, &[7u8; 100]);
    let image = repo.write_image(&image_fs(&[kept]), Some("good")).unwrap();

    // A ref to an object that is not an EROFS image.
    let (not_image, _) = object(&repo, &[0u8; 8192]);
    repo.set_link(
        &format!("images/{}", not_image.to_hex()),
        &paths::object_path(&not_image),
    )
    .unwrap();
    repo.set_link("images/refs/bad", &format!("images/{}", not_image.to_hex()))
        .unwrap();
    let before = stored_objects(&repo);
    let links = all_links(&repo);
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert!(
        report.unreadable[0].starts_with("images/refs/bad: "),
        "{report:?}"
    );
    assert_eq!(
        (report.objects_removed, report.objects_kept),
        (0, before.len() as u64)
    );
    assert_eq!(stored_objects(&repo), before);
    assert_eq!(all_links(&repo), links);
    assert!(before.contains(&garbage.0));
    repo.remove_link("images/refs/bad").unwrap();

    // An image whose content no longer matches its digest.
    let path = object_file(&repo, &image);
    let mut data = std::fs::read(&path).unwrap();
    data[100] ^= 1;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &data).unwrap();
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert!(report.unreadable[0].contains("mismatch"), "{report:?}");
    assert_eq!(stored_objects(&repo), before);
    // Once the bad ref is gone, the next collection does the work.
    repo.remove_link("images/refs/good").unwrap();
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert!(report.unreadable.is_empty(), "{report:?}");
    assert!(report.objects_removed >= 3, "{report:?}");
    assert!(repo.fsck(&FsckOptions::default(), None).unwrap().ok);
}

#[test]
fn references_to_missing_objects_keep_nothing_and_count_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let absent = crate::verity::digest_bytes(Algorithm::Sha256, b"never stored");
    let s = stream(&repo, "s", &[(absent, 12)], &[], Some("s"));
    let report = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(
        (report.objects_kept, report.objects_removed),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(stored_objects(&repo), [s].into());
}

/// A random repository: objects, images over subsets of them, streams with
/// object refs and named refs (to earlier streams, images and objects),
/// refs and extra roots.
#[derive(Debug, Clone)]
struct Model {
    sizes: Vec<usize>,
    /// Objects used, has a ref, is an extra root.
    images: Vec<(Vec<bool>, bool, bool)>,
    streams: Vec<StreamModel>,
}

#[derive(Debug, Clone)]
struct StreamModel {
    objects: Vec<bool>,
    /// Named refs to earlier streams, images and objects (by index).
    named_streams: Vec<bool>,
    named_images: Vec<bool>,
    named_objects: Vec<bool>,
    has_ref: bool,
    extra_root: bool,
}

const MAX_IMAGES: usize = 4;
const MAX_STREAMS: usize = 6;

fn model() -> impl Strategy<Value = Model> {
    (1usize..10).prop_flat_map(|n| {
        let flags = move || proptest::collection::vec(any::<bool>(), n);
        let picks = move || proptest::collection::vec(proptest::bool::weighted(0.15), n);
        let image = (flags(), any::<bool>(), proptest::bool::weighted(0.2));
        let stream = (
            flags(),
            proptest::collection::vec(proptest::bool::weighted(0.3), MAX_STREAMS),
            proptest::collection::vec(proptest::bool::weighted(0.3), MAX_IMAGES),
            picks(),
            proptest::bool::weighted(0.4),
            proptest::bool::weighted(0.2),
        )
            .prop_map(
                |(objects, named_streams, named_images, named_objects, has_ref, extra_root)| {
                    StreamModel {
                        objects,
                        named_streams,
                        named_images,
                        named_objects,
                        has_ref,
                        extra_root,
                    }
                },
            );
        (
            proptest::collection::vec(1usize..400, n),
            proptest::collection::vec(image, 0..=MAX_IMAGES),
            proptest::collection::vec(stream, 0..=MAX_STREAMS),
        )
            .prop_map(|(sizes, images, streams)| Model {
                sizes,
                images,
                streams,
            })
    })
}

fn chosen<T: Copy>(items: &[T], mask: &[bool]) -> Vec<T> {
    items
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(x, _)| *x)
        .collect()
}

fn check_model(m: &Model) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let objects: Vec<(Digest, u64)> = m
        .sizes
        .iter()
        .enumerate()
        .map(|(i, size)| object(&repo, format!("object {i};").repeat(*size).as_bytes()))
        .collect();
    let mut roots = Vec::new();
    let mut images = Vec::new();
    for (k, (mask, has_ref, extra)) in m.images.iter().enumerate() {
        let name = format!("image-{k}");
        let fs = image_fs(&chosen(&objects, mask));
        let digest = repo
            .write_image(&fs, has_ref.then_some(name.as_str()))
            .unwrap();
        if *extra {
            roots.push(digest.to_hex());
        }
        images.push(digest);
    }
    let mut streams = Vec::new();
    for (j, s) in m.streams.iter().enumerate() {
        let content_id = format!("stream-{j}");
        let mut named = Vec::new();
        for (t, target) in chosen(&streams, &s.named_streams).into_iter().enumerate() {
            named.push((format!("stream {t}"), target));
        }
        for (t, target) in chosen(&images, &s.named_images).into_iter().enumerate() {
            named.push((format!("image {t}"), target));
        }
        let plain: Vec<Digest> = objects.iter().map(|o| o.0).collect();
        for (t, target) in chosen(&plain, &s.named_objects).into_iter().enumerate() {
            named.push((format!("object {t}"), target));
        }
        let name = format!("ref-{j}");
        let own = chosen(&objects, &s.objects);
        let digest = stream(
            &repo,
            &content_id,
            &own,
            &named,
            s.has_ref.then_some(name.as_str()),
        );
        if s.extra_root {
            roots.push(content_id);
        }
        streams.push(digest);
    }

    // The expected live set, by a search over the model.
    let mut live = BTreeSet::new();
    let keep_image = |k: usize, live: &mut BTreeSet<Digest>| {
        live.insert(images[k]);
        for (o, _) in chosen(&objects, &m.images[k].0) {
            live.insert(o);
        }
    };
    let mut todo: Vec<usize> = Vec::new();
    for (k, (_, has_ref, extra)) in m.images.iter().enumerate() {
        if *has_ref || *extra {
            keep_image(k, &mut live);
        }
    }
    for (j, s) in m.streams.iter().enumerate() {
        if s.has_ref || s.extra_root {
            todo.push(j);
        }
    }
    let mut walked = BTreeSet::new();
    while let Some(j) = todo.pop() {
        if !walked.insert(j) {
            continue;
        }
        let s = &m.streams[j];
        live.insert(streams[j]);
        for (o, _) in chosen(&objects, &s.objects) {
            live.insert(o);
        }
        for (t, used) in s.named_streams.iter().enumerate() {
            if *used && t < j {
                todo.push(t);
            }
        }
        for (k, used) in s.named_images.iter().enumerate() {
            if *used && k < images.len() {
                keep_image(k, &mut live);
            }
        }
        for (o, used) in objects.iter().zip(&s.named_objects) {
            if *used {
                live.insert(o.0);
            }
        }
    }

    let all = stored_objects(&repo);
    let opts = GcOptions {
        dry_run: true,
        extra_roots: roots,
        ..GcOptions::default()
    };
    let dry = repo.gc(&opts).unwrap();
    assert_eq!(stored_objects(&repo), all);
    let opts = GcOptions {
        dry_run: false,
        ..opts
    };
    let report = repo.gc(&opts).unwrap();
    assert_eq!(stored_objects(&repo), live, "{m:?}");
    assert_eq!(report, dry);
    assert_eq!(report.objects_kept, live.len() as u64);
    assert_eq!(report.objects_removed, (all.len() - live.len()) as u64);
    let fsck = repo.fsck(&FsckOptions::default(), None).unwrap();
    assert!(fsck.ok, "{}\n{m:?}", fsck.to_text());
    let again = repo.gc(&opts).unwrap();
    assert_eq!(
        (
            again.objects_removed,
            again.images_pruned,
            again.streams_pruned
        ),
        (0, 0, 0)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gc_keeps_exactly_the_reachable_objects(m in model()) {
        check_model(&m);
    }
}

/// A long chain of streams, each naming the next through a named ref, is
/// marked without recursion (a hostile chain cannot overflow the stack).
#[test]
fn long_named_ref_chains_are_followed_iteratively() {
    use crate::splitstream::{ContentType, SplitStreamWriter};
    let tmp = tempfile::tempdir().unwrap();
    let repo = init(tmp.path(), Algorithm::Sha256);
    let (leaf, _) = object(&repo, &[5u8; 1000]);
    let mut next: Option<Digest> = None;
    let mut first = None;
    for i in 0..1500 {
        let mut w = SplitStreamWriter::new(Algorithm::Sha256, ContentType::OCI_BLOB);
        w.write_inline(format!("link {i}").as_bytes());
        if let Some(n) = next {
            w.add_named_ref("next", &n).unwrap();
        } else {
            w.add_external(&leaf, 1000).unwrap();
        }
        let (d, _) = repo.ensure_object_bytes(&w.finish().unwrap()).unwrap();
        // Link without the per-stream sync barrier: only the graph matters here.
        repo.set_link(&format!("streams/s{i}"), &paths::object_path(&d))
            .unwrap();
        next = Some(d);
        first = Some(i);
    }
    let top = first.unwrap();
    repo.set_link("streams/refs/top", &format!("streams/s{top}"))
        .unwrap();
    let (orphan, _) = object(&repo, &[6u8; 1000]);
    // Run on a thread with a small stack, where deep recursion would fail.
    let report = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn_scoped(s, || repo.gc(&GcOptions::default()).unwrap())
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(report.objects_removed, 1);
    assert!(!object_file(&repo, &orphan).exists());
    assert!(object_file(&repo, &leaf).exists());
}
