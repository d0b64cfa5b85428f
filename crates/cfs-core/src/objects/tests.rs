use super::*;
use crate::verity::digest_bytes;
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

const NOTHING: &dyn ObjectPolicy = &|_: &File, _: &Digest| Ok(());

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
    let fail = |_: &File, _: &Digest| Err(io::Error::other("refused"));
    assert!(store.copy_from(&src, &d, &fail).is_err());
    assert!(!store.contains(&d).unwrap());
    // The finisher sees the complete content, read-only.
    let seen = std::sync::Mutex::new(Vec::new());
    let check = |f: &File, _: &Digest| {
        let mut v = Vec::new();
        let mut f = f;
        f.read_to_end(&mut v)?;
        *seen.lock().unwrap() = v;
        Ok(())
    };
    store.copy_from(&src, &d, &check).unwrap();
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
    let via_named = || {
        let mut tmp = store.named_temp().unwrap();
        copy_content(&src, tmp.file_mut()).unwrap();
        let sealed = store.seal(tmp, &d, &subdir, NOTHING).unwrap();
        store.publish(sealed, &subdir, &rel[3..], false).unwrap()
    };
    assert_eq!(via_named(), Stored::Written);
    assert_eq!(read_object(&store, &d).unwrap(), b"fallback");
    assert_eq!(via_named(), Stored::Existing);
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

/// A policy that refuses every existing object and counts seals.
struct Distrust {
    seals: std::sync::atomic::AtomicUsize,
    busy_first: bool,
    sealed_inodes: std::sync::Mutex<Vec<u64>>,
}

impl Distrust {
    fn new(busy_first: bool) -> Self {
        Distrust {
            seals: Default::default(),
            busy_first,
            sealed_inodes: Default::default(),
        }
    }
}

impl ObjectPolicy for Distrust {
    fn seal(&self, file: &File, _: &Digest) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        self.sealed_inodes
            .lock()
            .unwrap()
            .push(file.metadata()?.ino());
        let n = self.seals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.busy_first && n == 0 {
            return Err(io::Error::new(io::ErrorKind::ExecutableFileBusy, "busy"));
        }
        Ok(())
    }

    fn judges_existing(&self) -> bool {
        true
    }

    fn existing_is_sound(&self, _: &File, _: &Digest, _: u64) -> io::Result<bool> {
        Ok(false)
    }
}

fn only_entry_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn damaged_existing_objects_are_replaced_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(tmp.path()).unwrap();
    let d = digest(0x42);
    let path = store.path().join(d.object_path());
    // A sound object is kept as it is.
    let (_keep, src) = source(b"good content");
    assert_eq!(store.copy_from(&src, &d, NOTHING).unwrap(), Stored::Written);
    std::fs::write(&path, b"bad").unwrap();
    assert_eq!(
        store.copy_from(&src, &d, NOTHING).unwrap(),
        Stored::Existing
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"bad");
    // A policy that finds it unsound has it replaced, by copy or by writing.
    let distrust = Distrust::new(false);
    assert_eq!(store.check(&d, 12, &distrust).unwrap(), Existing::Damaged);
    assert_eq!(
        store.copy_from(&src, &d, &distrust).unwrap(),
        Stored::Repaired
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"good content");
    std::fs::write(&path, b"bad again").unwrap();
    let d2 = digest_bytes(Algorithm::Sha256, b"good content");
    let path2 = store.path().join(d2.object_path());
    std::fs::create_dir_all(path2.parent().unwrap()).unwrap();
    std::fs::write(&path2, b"wrong").unwrap();
    let (found, stored) = store
        .write_new(&b"good content"[..], Algorithm::Sha256, &distrust)
        .unwrap();
    assert_eq!((found, stored), (d2, Stored::Repaired));
    assert_eq!(std::fs::read(&path2).unwrap(), b"good content");
    // Not a regular file: damaged whatever the policy says (never opened).
    for make in [
        |p: &Path| std::os::unix::fs::symlink("/etc/passwd", p).unwrap(),
        |p: &Path| std::fs::create_dir(p).unwrap(),
        |p: &Path| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                p,
                rustix::fs::FileType::Fifo,
                Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap()
        },
    ] {
        let is_dir;
        {
            std::fs::remove_file(&path).unwrap_or_else(|_| std::fs::remove_dir(&path).unwrap());
            make(&path);
            is_dir = path.is_dir() && !path.is_symlink();
        }
        assert_eq!(store.check(&d, 12, NOTHING).unwrap(), Existing::Damaged);
        if is_dir {
            // Even a non-empty directory squatting the name goes.
            std::fs::write(path.join("inside"), b"junk").unwrap();
        }
        let r = store.copy_from(&src, &d, NOTHING);
        assert_eq!(r.unwrap(), Stored::Repaired, "is_dir: {is_dir}");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(std::fs::read(&path).unwrap(), b"good content");
    }
    // No temporary names are left anywhere.
    assert_eq!(
        only_entry_names(store.path()),
        ["42", &d2.object_path()[..2]]
    );
    assert_eq!(only_entry_names(&store.path().join("42")).len(), 1);
}

#[test]
fn a_busy_file_is_sealed_as_a_fresh_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ObjectDir::create(tmp.path()).unwrap();
    let (_keep, src) = source(&[5u8; 100_000]);
    let d = digest(0x77);
    let policy = Distrust::new(true);
    assert_eq!(store.copy_from(&src, &d, &policy).unwrap(), Stored::Written);
    let inodes = policy.sealed_inodes.lock().unwrap().clone();
    assert_eq!(inodes.len(), 2, "sealed twice");
    assert_ne!(inodes[0], inodes[1], "the second seal is on a copy");
    use std::os::unix::fs::MetadataExt;
    let published = std::fs::metadata(store.path().join(d.object_path()))
        .unwrap()
        .ino();
    assert_eq!(published, inodes[1], "the copy is what gets published");
    assert_eq!(read_object(&store, &d).unwrap(), vec![5u8; 100_000]);
    // The same through write_new.
    let policy = Distrust::new(true);
    let (d2, stored) = store
        .write_new(&[6u8; 5000][..], Algorithm::Sha512, &policy)
        .unwrap();
    assert_eq!(stored, Stored::Written);
    assert_eq!(policy.seals.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(read_object(&store, &d2).unwrap(), vec![6u8; 5000]);
    // A second ETXTBSY (on the copy) is an error, and nothing is published.
    struct AlwaysBusy;
    impl ObjectPolicy for AlwaysBusy {
        fn seal(&self, _: &File, _: &Digest) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::ExecutableFileBusy, "busy"))
        }
    }
    let d3 = digest(0x78);
    let e = store.copy_from(&src, &d3, &AlwaysBusy).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ExecutableFileBusy);
    assert!(!store.contains(&d3).unwrap());
}
