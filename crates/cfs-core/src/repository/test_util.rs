//! Helpers shared by the fsck and GC tests: repositories, images with
//! external files, split streams with object and named refs.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::{InitOptions, Repository, paths};
use crate::dumpfile::{ParseOptions, parse_dumpfile};
use crate::splitstream::{ContentType, SplitStreamWriter};
use crate::tree::FileSystem;
use crate::verity::{Algorithm, Digest};

/// A new insecure repository (this kernel may lack fs-verity).
pub(super) fn init(path: &Path, alg: Algorithm) -> Repository {
    let opts = InitOptions {
        algorithm: alg,
        insecure: true,
        erofs_version: 1,
        erofs_extra: Vec::new(),
    };
    Repository::init(path, &opts).unwrap().0
}

/// Changes an object's content the way a disk error or an attacker could:
/// the bytes are read, changed by `change`, and written to a new file that
/// replaces the object. (Objects with fs-verity are immutable, so changing
/// them in place fails with EPERM on filesystems with verity support; a
/// replacement works on every filesystem.)
pub(super) fn tamper(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut data = std::fs::read(path).unwrap();
    change(&mut data);
    let tmp = path.with_extension("tampered");
    std::fs::write(&tmp, &data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Stores `data` as an object; returns its digest and size.
pub(super) fn object(repo: &Repository, data: &[u8]) -> (Digest, u64) {
    (repo.ensure_object_bytes(data).unwrap().0, data.len() as u64)
}

/// A tree with one external file `/fN` per object (and an inline file).
pub(super) fn image_fs(files: &[(Digest, u64)]) -> FileSystem {
    let mut text = String::from("/ 4096 40755 2 0 0 0 0.0 - - -\n");
    text.push_str("/inline 5 100644 1 0 0 0 0.0 - hello -\n");
    for (i, (digest, size)) in files.iter().enumerate() {
        text.push_str(&format!(
            "/f{i} {size} 100644 1 0 0 0 0.0 {} - {}\n",
            digest.object_path(),
            digest.to_hex()
        ));
    }
    parse_dumpfile(Cursor::new(text.as_bytes()), &ParseOptions::default()).unwrap()
}

/// Writes `streams/<content_id>`: inline bytes, then each object as an
/// external chunk (each separated by more inline bytes), and the named refs.
pub(super) fn stream(
    repo: &Repository,
    content_id: &str,
    objects: &[(Digest, u64)],
    named: &[(String, Digest)],
    ref_name: Option<&str>,
) -> Digest {
    let mut w = SplitStreamWriter::new(repo.algorithm(), ContentType(*b"ocilayer"));
    w.write_inline(content_id.as_bytes());
    for (digest, size) in objects {
        w.add_external(digest, *size).unwrap();
        w.write_inline(b"--");
    }
    for (name, digest) in named {
        w.add_named_ref(name, digest).unwrap();
    }
    repo.write_stream(content_id, w, ref_name).unwrap()
}

/// The absolute path of an object.
pub(super) fn object_file(repo: &Repository, digest: &Digest) -> PathBuf {
    repo.abs(&paths::object_path(digest))
}

/// Every object in `objects/XX/` (panics on a non-digest name).
pub(super) fn stored_objects(repo: &Repository) -> BTreeSet<Digest> {
    let mut out = BTreeSet::new();
    let objects = repo.abs(paths::OBJECTS);
    for sub in std::fs::read_dir(&objects).unwrap() {
        let sub = sub.unwrap();
        if !sub.file_type().unwrap().is_dir() {
            continue;
        }
        let sub_name = sub.file_name().into_string().unwrap();
        for f in std::fs::read_dir(sub.path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            out.insert(Digest::from_object_path(&format!("{sub_name}/{name}")).unwrap());
        }
    }
    out
}
