//! Tests of the `/etc` merge: an abstract tree model with an oracle of the
//! rules (written from the module table, not from the code), the
//! combination tables, targeted cases and a property test.

mod limits;
mod prop;
mod table;
mod targeted;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode};

use super::{MergeError, MergePlan, MergeReport};

/// An entry of a test tree (what the model compares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum M {
    File(String, u32),
    Dir(BTreeMap<String, M>, u32),
    Link(String),
    Fifo(u32),
}

pub(super) fn file(content: &str, mode: u32) -> M {
    M::File(content.to_owned(), mode)
}

pub(super) fn dir(entries: &[(&str, M)], mode: u32) -> M {
    M::Dir(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        mode,
    )
}

/// Creates `m` at `path`.
pub(super) fn build(path: &Path, m: &M) {
    match m {
        M::File(content, mode) => {
            fs::write(path, content).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
        }
        M::Dir(entries, mode) => {
            fs::create_dir(path).unwrap();
            for (name, child) in entries {
                build(&path.join(name), child);
            }
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
        }
        M::Link(target) => symlink(target, path).unwrap(),
        M::Fifo(mode) => {
            mkfifo(path);
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
}

pub(super) fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// Reads the model of `path` back; `None` if absent.
pub(super) fn read(path: &Path) -> Option<M> {
    let md = fs::symlink_metadata(path).ok()?;
    let mode = md.mode() & 0o7777;
    let ft = md.file_type();
    Some(if ft.is_symlink() {
        M::Link(fs::read_link(path).unwrap().to_str().unwrap().to_owned())
    } else if ft.is_dir() {
        let mut entries = BTreeMap::new();
        for e in fs::read_dir(path).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_str().unwrap().to_owned();
            entries.insert(name, read(&e.path()).unwrap());
        }
        M::Dir(entries, mode)
    } else if ft.is_file() {
        M::File(String::from_utf8(fs::read(path).unwrap()).unwrap(), mode)
    } else {
        M::Fifo(mode)
    })
}

/// The expected result at one path, from the rules of the module table;
/// conflicting directories are added to `conflicts` (and new's entry is
/// kept, as nothing is applied).
pub(super) fn oracle(
    p: Option<&M>,
    c: Option<&M>,
    n: Option<&M>,
    path: &str,
    conflicts: &mut Vec<String>,
) -> Option<M> {
    // Unchanged locally (the whole subtree): new's.
    if p == c {
        return n.cloned();
    }
    // Removed locally.
    let c = c?;
    match (p, c, n) {
        (Some(M::Dir(pe, pm)), M::Dir(ce, cm), Some(M::Dir(ne, nm))) => {
            let mode = if cm != pm { *cm } else { *nm };
            Some(M::Dir(merge(Some(pe), ce, Some(ne), path, conflicts), mode))
        }
        (Some(M::Dir(pe, pm)), M::Dir(ce, cm), None) => {
            let entries = merge(Some(pe), ce, None, path, conflicts);
            (cm != pm || !entries.is_empty()).then_some(M::Dir(entries, *cm))
        }
        (Some(M::Dir(..)), M::Dir(..), Some(other)) => {
            conflicts.push(path.to_owned());
            Some(other.clone())
        }
        (_, M::Dir(ce, cm), Some(M::Dir(ne, _))) => {
            Some(M::Dir(merge(None, ce, Some(ne), path, conflicts), *cm))
        }
        // Added or modified locally: current's, whatever new has.
        _ => Some(c.clone()),
    }
}

fn merge(
    p: Option<&BTreeMap<String, M>>,
    c: &BTreeMap<String, M>,
    n: Option<&BTreeMap<String, M>>,
    path: &str,
    conflicts: &mut Vec<String>,
) -> BTreeMap<String, M> {
    let mut names: Vec<&String> = c.keys().collect();
    names.extend(p.into_iter().flat_map(|p| p.keys()));
    names.extend(n.into_iter().flat_map(|n| n.keys()));
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    for name in names {
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}/{name}")
        };
        let (pv, nv) = (p.and_then(|m| m.get(name)), n.and_then(|m| m.get(name)));
        if let Some(v) = oracle(pv, c.get(name), nv, &child, conflicts) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Three sibling trees `p`, `c`, `n` in a temporary directory.
pub(super) struct Fx {
    _tmp: tempfile::TempDir,
    pub(super) p: PathBuf,
    pub(super) c: PathBuf,
    pub(super) n: PathBuf,
}

impl Fx {
    pub(super) fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let [p, c, n] = ["pristine", "current", "new"].map(|d| tmp.path().join(d));
        for d in [&p, &c, &n] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fx { _tmp: tmp, p, c, n }
    }

    /// Builds the same entries from `root` (a directory model) in the
    /// three trees.
    pub(super) fn from_models(p: &M, c: &M, n: &M) -> Fx {
        let fx = Fx::new();
        for (root, m) in [(&fx.p, p), (&fx.c, c), (&fx.n, n)] {
            let M::Dir(entries, _) = m else {
                panic!("roots are directories")
            };
            for (name, child) in entries {
                build(&root.join(name), child);
            }
        }
        fx
    }

    pub(super) fn fds(&self) -> [OwnedFd; 3] {
        [&self.p, &self.c, &self.n].map(|d| open(d))
    }

    pub(super) fn plan(&self) -> Result<MergePlan, MergeError> {
        let [p, c, n] = self.fds();
        super::plan(&p, &c, &n)
    }

    pub(super) fn apply(&self, plan: &MergePlan) -> Result<MergeReport, MergeError> {
        let [_, c, n] = self.fds();
        super::apply(plan, &c, &n)
    }

    pub(super) fn merge(&self) -> Result<MergeReport, MergeError> {
        let [p, c, n] = self.fds();
        super::merge(&p, &c, &n)
    }
}

pub(super) fn open(path: &Path) -> OwnedFd {
    super::open_tree(path, super::Tree::New).unwrap()
}

/// Everything about a tree that a merge could change: per entry its type,
/// inode, mode, owner, size, mtime and ctime (any change of an inode moves
/// its ctime), rdev, content, target and extended attributes. Not atimes:
/// taking the snapshot reads the files.
pub(super) fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk_snapshot(root, Path::new(""), &mut out);
    out
}

fn walk_snapshot(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let path = root.join(rel);
    let md = fs::symlink_metadata(&path).unwrap();
    let mut line = format!(
        "{} ino={} mode={:o} {}:{} size={} mtime={}.{} ctime={}.{} rdev={} xattrs={:?}",
        rel.display(),
        md.ino(),
        md.mode(),
        md.uid(),
        md.gid(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
        md.rdev(),
        xattrs(&path),
    );
    if md.file_type().is_symlink() {
        line.push_str(&format!(" -> {:?}", fs::read_link(&path).unwrap()));
    } else if md.is_file() {
        line.push_str(&format!(" content={:?}", fs::read(&path).unwrap()));
    }
    out.push(line);
    if md.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            walk_snapshot(root, &rel.join(name), out);
        }
    }
}

/// The extended attributes of `path` (not following it), sorted.
pub(super) fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut buf[..]).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, OsStr::from_bytes(name), &mut value[..]).unwrap();
        value.truncate(len);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

pub(super) fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting {name} on {}: {e}", path.display()));
}

pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether a root-only test can run; without root it is skipped, unless
/// `CFS_TEST_PRIVILEGED=require` (then it fails).
pub(super) fn privileged(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CFS_TEST_PRIVILEGED").as_deref() != Ok("require"),
        "{test}: needs root, and CFS_TEST_PRIVILEGED=require"
    );
    false
}

pub(super) fn paths(items: &[super::Action]) -> Vec<String> {
    items
        .iter()
        .map(|a| a.path().to_str().unwrap().to_owned())
        .collect()
}
