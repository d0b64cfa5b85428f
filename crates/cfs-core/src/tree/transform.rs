//! The root normalisation composefs-rs applies to OCI images and, by
//! default, to `cfsctl create-image` (its `transform_for_oci`), so that the
//! same tree gives the same image digest with either tool:
//!
//! 1. the root directory takes `/usr`'s mode, owner, mtime and xattrs
//!    (layer tars often lack a root entry, and runtimes ignore it); a tree
//!    without `/usr` (an application image) keeps its root as it is (0755
//!    if nothing described it), where composefs-rs fails
//!    ([`Normalised::WithoutUsr`]);
//! 2. `/run`, if present, is emptied and takes `/usr`'s mtime (bind-mount
//!    stubs of `RUN --mount` build steps are dropped);
//! 3. xattrs are filtered on every inode: only `security.capability` is kept
//!    ([`XattrFilter::AllowlistOnly`]), plus `user.*` with
//!    [`XattrFilter::KeepUserXattrs`];
//! 4. link counts are recomputed (names removed with `/run` no longer count)
//!    and every hard-linked inode's first remaining name becomes its primary.

use std::collections::HashMap;

use super::{FileSystem, InodeId, InodeKind};

/// Which xattrs [`transform_for_oci`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrFilter {
    /// Only `security.capability` (the composefs-rs default).
    #[default]
    AllowlistOnly,
    /// `security.capability` and every `user.*` xattr.
    KeepUserXattrs,
}

impl XattrFilter {
    /// Parses the command-line spelling (`allowlist-only`, `keep-user-xattrs`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allowlist-only" => Some(XattrFilter::AllowlistOnly),
            "keep-user-xattrs" => Some(XattrFilter::KeepUserXattrs),
            _ => None,
        }
    }

    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            XattrFilter::AllowlistOnly => "allowlist-only",
            XattrFilter::KeepUserXattrs => "keep-user-xattrs",
        }
    }

    /// Every mode, the default first (the order recovery searches them).
    pub const ALL: [XattrFilter; 2] = [XattrFilter::AllowlistOnly, XattrFilter::KeepUserXattrs];

    /// True if the xattr `name` is kept.
    pub fn keeps(self, name: &[u8]) -> bool {
        name == b"security.capability"
            || (self == XattrFilter::KeepUserXattrs && name.starts_with(b"user."))
    }
}

/// A tree that cannot be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// A required top-level directory is missing.
    #[error("directory entry {0:?} does not exist")]
    Missing(&'static str),
    /// A top-level entry that must be a directory is not one.
    #[error("directory entry {0:?} is not a subdirectory")]
    NotADirectory(&'static str),
}

/// What [`transform_for_oci`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalised {
    /// All four steps (the tree has `/usr`): composefs-rs's ids.
    Full,
    /// The tree has no `/usr` (an application image, not an OS): the root
    /// kept its own metadata and `/run` (emptied) its mtime; steps 3 and 4
    /// applied. composefs-rs refuses such trees.
    WithoutUsr,
}

/// Applies the normalisation (see the module docs); a tree without `/usr`
/// gets [`Normalised::WithoutUsr`] instead of an error.
pub fn transform_for_oci(
    fs: &mut FileSystem,
    filter: XattrFilter,
) -> Result<Normalised, TransformError> {
    let usr_stat = top_level_dir(fs, "usr")?.map(|usr| fs.inode(usr).stat.clone());
    match &usr_stat {
        Some(stat) => fs.inode_mut(InodeId::ROOT).stat = stat.clone(),
        // A root nothing described (OCI layers without a `./` entry): 0755,
        // as runtimes make it, rather than mode 0.
        None if fs.inode(InodeId::ROOT).stat == super::Stat::default() => {
            fs.inode_mut(InodeId::ROOT).stat.mode = 0o755;
        }
        None => {}
    }
    if let Some(run) = top_level_dir(fs, "run")? {
        let inode = fs.inode_mut(run);
        if let Some(stat) = &usr_stat {
            inode.stat.mtime = stat.mtime;
        }
        if let Some(d) = inode.as_directory_mut() {
            d.entries_mut().clear();
        }
    }
    for inode in reachable(fs) {
        fs.inode_mut(inode)
            .stat
            .xattrs
            .retain(|x| filter.keeps(&x.name));
    }
    recount_links(fs);
    Ok(if usr_stat.is_some() {
        Normalised::Full
    } else {
        Normalised::WithoutUsr
    })
}

fn top_level_dir(fs: &FileSystem, name: &'static str) -> Result<Option<InodeId>, TransformError> {
    let Some(entry) = fs
        .directory(InodeId::ROOT)
        .and_then(|d| d.get(name.as_bytes()))
    else {
        return Ok(None);
    };
    match fs.inode(entry.inode).kind {
        InodeKind::Directory(_) => Ok(Some(entry.inode)),
        _ => Err(TransformError::NotADirectory(name)),
    }
}

/// Every inode reachable from the root, each once.
fn reachable(fs: &FileSystem) -> Vec<InodeId> {
    let mut seen = vec![false; fs.len()];
    let mut out = vec![InodeId::ROOT];
    seen[InodeId::ROOT.index()] = true;
    let mut i = 0;
    while i < out.len() {
        if let Some(d) = fs.directory(out[i]) {
            for e in d.entries() {
                if !std::mem::replace(&mut seen[e.inode.index()], true) {
                    out.push(e.inode);
                }
            }
        }
        i += 1;
    }
    out
}

/// Sets each non-directory's link count to its number of names and makes the
/// first remaining name of every hard-linked inode its primary one.
pub fn recount_links(fs: &mut FileSystem) {
    let mut names: HashMap<InodeId, u32> = HashMap::new();
    for id in reachable(fs) {
        if let Some(d) = fs.directory(id) {
            for e in d.entries() {
                *names.entry(e.inode).or_default() += 1;
            }
        }
    }
    let mut had_alias = false;
    for (id, n) in names {
        let inode = fs.inode_mut(id);
        if inode.as_directory().is_none() {
            had_alias |= n > 1 || inode.nlink > 1;
            inode.nlink = n;
        }
    }
    if had_alias {
        fs.normalize_hardlink_primaries();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{DirEntry, Directory, Inode, Mtime, RegularFile, Stat, Xattr};

    fn stat(mode: u16, sec: i64, xattrs: &[(&str, &str)]) -> Stat {
        Stat {
            mode,
            uid: u32::from(mode),
            gid: 7,
            mtime: Mtime { sec, nsec: 5 },
            xattrs: xattrs
                .iter()
                .map(|(k, v)| Xattr {
                    name: k.as_bytes().into(),
                    value: v.as_bytes().into(),
                })
                .collect(),
        }
    }

    fn add(fs: &mut FileSystem, dir: InodeId, name: &str, inode: InodeId, alias: bool) {
        fs.directory_mut(dir)
            .unwrap()
            .insert(DirEntry {
                name: name.as_bytes().into(),
                inode,
                alias,
            })
            .unwrap();
    }

    fn dir(fs: &mut FileSystem, parent: InodeId, name: &str, st: Stat) -> InodeId {
        let id = fs.push_inode(Inode::new(st, InodeKind::Directory(Directory::default())));
        add(fs, parent, name, id, false);
        id
    }

    #[test]
    fn root_takes_usr_metadata_run_is_emptied_xattrs_filtered_links_recounted() {
        let mut fs = FileSystem::new(stat(0o700, 1, &[("security.selinux", "root_t")]));
        let usr = dir(
            &mut fs,
            InodeId::ROOT,
            "usr",
            stat(
                0o755,
                100,
                &[("user.a", "1"), ("security.selinux", "usr_t")],
            ),
        );
        let run = dir(
            &mut fs,
            InodeId::ROOT,
            "run",
            stat(0o711, 3, &[("user.r", "x")]),
        );
        let file = fs.push_inode(Inode::new(
            stat(
                0o644,
                4,
                &[("security.capability", "cap"), ("trusted.x", "t")],
            ),
            InodeKind::Regular(RegularFile::Inline(Box::from(&b"hi"[..]))),
        ));
        fs.inode_mut(file).nlink = 2;
        // The primary name lives under /run and disappears with it.
        add(&mut fs, run, "a", file, false);
        add(&mut fs, usr, "b", file, true);

        transform_for_oci(&mut fs, XattrFilter::AllowlistOnly).unwrap();
        let root = fs.inode(InodeId::ROOT);
        assert_eq!(root.stat.mode, 0o755);
        assert_eq!(root.stat.mtime, Mtime { sec: 100, nsec: 5 });
        assert!(root.stat.xattrs.is_empty());
        let run_inode = fs.inode(run);
        assert!(run_inode.as_directory().unwrap().is_empty());
        assert_eq!(run_inode.stat.mtime, Mtime { sec: 100, nsec: 5 });
        assert_eq!(run_inode.stat.mode, 0o711);
        assert!(run_inode.stat.xattrs.is_empty());
        let f = fs.inode(file);
        assert_eq!(f.nlink, 1);
        assert_eq!(f.stat.xattrs.len(), 1);
        assert_eq!(f.stat.xattrs.get(b"security.capability"), Some(&b"cap"[..]));
        assert!(!fs.directory(usr).unwrap().get(b"b").unwrap().alias);
    }

    #[test]
    fn keep_user_xattrs_and_errors() {
        // No /usr: an application image; the root keeps its metadata,
        // xattrs are still filtered.
        let mut fs = FileSystem::new(stat(0o700, 1, &[("trusted.t", "v")]));
        assert_eq!(
            transform_for_oci(&mut fs, XattrFilter::AllowlistOnly),
            Ok(Normalised::WithoutUsr)
        );
        assert_eq!(fs.inode(InodeId::ROOT).stat.mode & 0o7777, 0o700);
        assert!(fs.inode(InodeId::ROOT).stat.xattrs.is_empty());
        let usr = dir(
            &mut fs,
            InodeId::ROOT,
            "usr",
            stat(0o755, 2, &[("user.k", "v"), ("trusted.t", "v")]),
        );
        transform_for_oci(&mut fs, XattrFilter::KeepUserXattrs).unwrap();
        assert_eq!(fs.inode(usr).stat.xattrs.len(), 1);
        assert_eq!(
            fs.inode(InodeId::ROOT).stat.xattrs.get(b"user.k"),
            Some(&b"v"[..])
        );
        let f = fs.push_inode(Inode::new(
            stat(0o644, 1, &[]),
            InodeKind::Regular(RegularFile::Inline(Box::default())),
        ));
        add(&mut fs, InodeId::ROOT, "run", f, false);
        assert_eq!(
            transform_for_oci(&mut fs, XattrFilter::AllowlistOnly),
            Err(TransformError::NotADirectory("run"))
        );
        assert_eq!(
            XattrFilter::parse("keep-user-xattrs"),
            Some(XattrFilter::KeepUserXattrs)
        );
        assert_eq!(XattrFilter::parse("bogus"), None);
    }
}
