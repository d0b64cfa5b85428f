use super::*;
use std::os::unix::fs::PermissionsExt;

fn digest(byte: u8) -> Digest {
    Digest::sha256([byte; 32])
}

fn source(content: &[u8]) -> (tempfile::NamedTempFile, File) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    let reopened = File::open(f.path()).unwrap();
    (f, reopened)
}

const NOTHING: Finisher<'static> = &|_| Ok(());

#[test]
fn stores_once_with_mode_and_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(&tmp.path().join("a/b/store")).unwrap();
    let content = vec![42u8; 300_000];
    let (_keep, src) = source(&content);
    let d = digest(0xab);
    assert!(!store.contains(&d).unwrap());
    assert_eq!(store.copy_from(&src, &d, NOTHING).unwrap(), Stored::Written);
    assert!(store.contains(&d).unwrap());
    assert_eq!(
        store.copy_from(&src, &d, NOTHING).unwrap(),
        Stored::Existing
    );
    let path = store.path().join(d.object_path());
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(read_object(&store, &d).unwrap(), content);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    let sub = std::fs::metadata(store.path().join("ab")).unwrap();
    assert_eq!(sub.permissions().mode() & 0o7777, 0o755);
    // Nothing but the object in its subdirectory (no temporary files left).
    let names: Vec<_> = std::fs::read_dir(store.path().join("ab"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);
    store.sync().unwrap();
}

#[test]
fn empty_and_small_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(tmp.path()).unwrap();
    for (i, content) in [&b""[..], b"x", &[1u8; 4097]].iter().enumerate() {
        let (_keep, src) = source(content);
        let d = digest(i as u8);
        store.copy_from(&src, &d, NOTHING).unwrap();
        assert_eq!(read_object(&store, &d).unwrap(), *content);
    }
}

#[test]
fn finisher_errors_publish_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(tmp.path()).unwrap();
    let (_keep, src) = source(b"data");
    let d = digest(7);
    let fail: Finisher<'_> = &|_| Err(io::Error::other("refused"));
    assert!(store.copy_from(&src, &d, fail).is_err());
    assert!(!store.contains(&d).unwrap());
    // The finisher sees the complete content, read-only.
    let seen = std::sync::Mutex::new(Vec::new());
    let check: Finisher<'_> = &|f| {
        let mut v = Vec::new();
        let mut f = f;
        f.read_to_end(&mut v)?;
        *seen.lock().unwrap() = v;
        Ok(())
    };
    store.copy_from(&src, &d, check).unwrap();
    assert_eq!(*seen.lock().unwrap(), b"data");
}

#[test]
fn concurrent_writers_of_one_object() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(tmp.path()).unwrap();
    let content = vec![9u8; 1 << 20];
    let (_keep, _) = source(&content);
    let d = digest(0x5a);
    let results: Vec<Stored> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let src = File::open(_keep.path()).unwrap();
                    store.copy_from(&src, &d, NOTHING).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.contains(&Stored::Written));
    assert_eq!(read_object(&store, &d).unwrap(), content);
    let entries = std::fs::read_dir(store.path().join("5a")).unwrap().count();
    assert_eq!(entries, 1);
}

#[test]
fn named_tempfile_fallback_publishes_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(tmp.path()).unwrap();
    let (_keep, src) = source(b"fallback");
    let d = digest(0x11);
    let rel = d.object_path();
    let subdir = store.open_subdir(&rel[..2]).unwrap();
    let r = store
        .publish_named(&src, &subdir, &rel[3..], NOTHING)
        .unwrap();
    assert_eq!(r, Stored::Written);
    assert_eq!(read_object(&store, &d).unwrap(), b"fallback");
    let r = store
        .publish_named(&src, &subdir, &rel[3..], NOTHING)
        .unwrap();
    assert_eq!(r, Stored::Existing);
    let names: Vec<_> = std::fs::read_dir(store.path().join(&rel[..2]))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // The temporary file lived in the store root, never in an XX/ directory,
    // and is gone.
    let root: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(root.len(), 1, "{root:?}");
}
