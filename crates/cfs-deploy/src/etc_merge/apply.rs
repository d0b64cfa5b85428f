//! Performing a [`MergePlan`] on new: copies from current under temporary
//! names then renamed into place, removals, directory metadata, and the
//! final fsyncs.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use super::node::{self, split};
use super::{Action, EntryKind, Limits, MergeError, MergePlan, MergeReport, Tree};

pub(super) fn apply(
    plan: &MergePlan,
    current: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    limits: &Limits,
) -> Result<MergeReport, MergeError> {
    if !plan.conflicts.is_empty() {
        return Err(MergeError::Conflicts(plan.conflicts.clone()));
    }
    let mut applier = Applier {
        current,
        new,
        limits,
        report: MergeReport::default(),
        sync: BTreeSet::new(),
        created: Vec::new(),
        seq: 0,
    };
    for action in &plan.actions {
        match action {
            Action::Copy { path, .. } => applier.copy(path, false)?,
            Action::CopyTree { path, .. } => applier.copy(path, true)?,
            Action::CreateDir { path } => applier.create_dir(path)?,
            Action::SetDirMetadata { path, change } => {
                let e = MergeError::io(Tree::New, path, "changing the metadata of");
                let dir = node::open_dir(new, path).map_err(&e)?;
                let dot = OsStr::new(".");
                (|| -> io::Result<()> {
                    if change.uid.is_some() || change.gid.is_some() {
                        rustix::fs::fchown(
                            &dir,
                            change.uid.map(Uid::from_raw),
                            change.gid.map(Gid::from_raw),
                        )?;
                    }
                    if let Some(mode) = change.mode {
                        rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
                    }
                    let set = change.set_xattrs.iter();
                    node::set_xattrs(dir.as_fd(), dot, set.map(|(k, v)| (k.as_os_str(), &v[..])))?;
                    let remove = change.remove_xattrs.iter().map(OsString::as_os_str);
                    node::remove_xattrs(dir.as_fd(), dot, remove)
                })()
                .map_err(e)?;
                applier.report.metadata_updated += 1;
                applier.sync.insert(path.clone());
            }
            Action::Remove { path, .. } => applier.remove(path)?,
        }
    }
    applier.report.updated_stamp_removed = applier.remove_entry(Path::new(".updated"))?;
    // Entries were added to created directories after their creation:
    // their times are set last.
    for path in applier.created.iter().rev() {
        applier.copy_dir_times(path)?;
    }
    for path in &applier.sync {
        let dir = node::open_dir(new, path).map_err(MergeError::io(Tree::New, path, "opening"))?;
        rustix::fs::fsync(&dir)
            .map_err(|e| MergeError::io(Tree::New, path, "syncing")(e.into()))?;
    }
    Ok(applier.report)
}

struct Applier<'a> {
    current: BorrowedFd<'a>,
    new: BorrowedFd<'a>,
    limits: &'a Limits,
    report: MergeReport,
    /// Directories of new to fsync at the end.
    sync: BTreeSet<PathBuf>,
    /// Directories created by [`Action::CreateDir`].
    created: Vec<PathBuf>,
    /// Makes temporary names unique.
    seq: u32,
}

impl Applier<'_> {
    /// Copies current's entry at `path` (a directory tree when `tree`)
    /// over new's, via a temporary name in the same directory.
    fn copy(&mut self, path: &Path, tree: bool) -> Result<(), MergeError> {
        let (parent, name) = split(path);
        let src = node::open_dir(self.current, parent).map_err(MergeError::io(
            Tree::Current,
            parent,
            "opening",
        ))?;
        let dst = node::open_dir(self.new, parent).map_err(MergeError::io(
            Tree::New,
            parent,
            "opening",
        ))?;
        let st = node::stat(src.as_fd(), name)
            .map_err(MergeError::io(Tree::Current, path, "reading"))?
            .ok_or_else(|| changed(Tree::Current, path, "it vanished"))?;
        let kind =
            node::kind_of_stat(&st).map_err(MergeError::io(Tree::Current, path, "reading"))?;
        if tree != (kind == EntryKind::Dir) {
            return Err(changed(Tree::Current, path, &format!("it is now {kind}")));
        }
        let tmp = self.temp_copy(src.as_fd(), name, &st, kind, dst.as_fd(), path)?;
        if let Err(e) = install(dst.as_fd(), &tmp, name, tree) {
            let _ = remove_any(dst.as_fd(), &tmp);
            return Err(MergeError::io(Tree::New, path, "renaming into place")(e));
        }
        if tree {
            self.report.trees_copied += 1;
        } else {
            self.report.copied += 1;
        }
        self.sync.insert(parent.to_path_buf());
        Ok(())
    }

    /// Creates a copy of `name` in `src` as a fresh temporary name in
    /// `dst`, returned.
    fn temp_copy(
        &mut self,
        src: BorrowedFd<'_>,
        name: &OsStr,
        st: &rustix::fs::Stat,
        kind: EntryKind,
        dst: BorrowedFd<'_>,
        path: &Path,
    ) -> Result<OsString, MergeError> {
        loop {
            self.seq += 1;
            let tmp = node::temp_name(self.seq);
            match create(src, name, st, kind, dst, &tmp) {
                Err(e) if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) => {
                    if self.seq > 100_000 {
                        return Err(MergeError::io(
                            Tree::New,
                            path,
                            "creating a temporary copy of",
                        )(e));
                    }
                }
                Err(e) => return Err(MergeError::io(Tree::New, path, "creating a copy of")(e)),
                Ok(file) => {
                    let done = self.fill(src, name, st, kind, dst, &tmp, file, path, 0);
                    if done.is_err() {
                        let _ = remove_any(dst, &tmp);
                    }
                    return done.map(|()| tmp);
                }
            }
        }
    }

    /// Gives the just-created `dst_name` in `dst` the content and metadata
    /// of `name` in `src` (`path`, for messages); directories recursively.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        src: BorrowedFd<'_>,
        name: &OsStr,
        st: &rustix::fs::Stat,
        kind: EntryKind,
        dst: BorrowedFd<'_>,
        dst_name: &OsStr,
        file: Option<File>,
        path: &Path,
        depth: usize,
    ) -> Result<(), MergeError> {
        let xattrs =
            node::read_xattrs(src, name).map_err(MergeError::io(Tree::Current, path, "reading"))?;
        let write = MergeError::io(Tree::New, path, "writing");
        match kind {
            EntryKind::File => {
                let mut out = file.ok_or_else(|| write(io::Error::other("no file")))?;
                let mut input = node::open_file(src, name).map_err(MergeError::io(
                    Tree::Current,
                    path,
                    "reading",
                ))?;
                let write = MergeError::io(Tree::New, path, "writing");
                io::copy(&mut input, &mut out).map_err(&write)?;
                (|| -> io::Result<()> {
                    rustix::fs::fchown(&out, owner(st).0, owner(st).1)?;
                    rustix::fs::fchmod(&out, Mode::from_raw_mode(st.st_mode & 0o7777))?;
                    node::replace_xattrs(dst, dst_name, &xattrs)?;
                    rustix::fs::futimens(&out, &times(st))?;
                    out.sync_all()
                })()
                .map_err(write)
            }
            EntryKind::Dir => {
                if depth > self.limits.max_depth {
                    return Err(MergeError::TooDeep {
                        tree: Tree::Current,
                        path: path.to_path_buf(),
                        limit: self.limits.max_depth,
                    });
                }
                self.fill_dir(src, name, dst, dst_name, path, depth)?;
                let dir = node::open_dir(dst, Path::new(dst_name)).map_err(&write)?;
                (|| -> io::Result<()> {
                    rustix::fs::fchown(&dir, owner(st).0, owner(st).1)?;
                    rustix::fs::fchmod(&dir, Mode::from_raw_mode(st.st_mode & 0o7777))?;
                    node::replace_xattrs(dir.as_fd(), OsStr::new("."), &xattrs)?;
                    rustix::fs::futimens(&dir, &times(st))?;
                    rustix::fs::fsync(&dir)?;
                    Ok(())
                })()
                .map_err(write)
            }
            _ => (|| -> io::Result<()> {
                let (uid, gid) = owner(st);
                rustix::fs::chownat(dst, dst_name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
                if kind != EntryKind::Symlink {
                    // Not a symlink (just created as `kind`): nothing to follow.
                    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
                    rustix::fs::chmodat(dst, dst_name, mode, AtFlags::empty())?;
                }
                node::replace_xattrs(dst, dst_name, &xattrs)?;
                rustix::fs::utimensat(dst, dst_name, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
                Ok(())
            })()
            .map_err(write),
        }
    }

    /// Copies the entries of the directory `name` in `src` into the new
    /// directory `dst_name` in `dst`, one level at a time (descriptors are
    /// not held across levels).
    fn fill_dir(
        &mut self,
        src: BorrowedFd<'_>,
        name: &OsStr,
        dst: BorrowedFd<'_>,
        dst_name: &OsStr,
        path: &Path,
        depth: usize,
    ) -> Result<(), MergeError> {
        let src_dir = node::open_dir(src, Path::new(name)).map_err(MergeError::io(
            Tree::Current,
            path,
            "opening",
        ))?;
        let dst_dir = node::open_dir(dst, Path::new(dst_name)).map_err(MergeError::io(
            Tree::New,
            path,
            "opening",
        ))?;
        let names = node::list_dir(src_dir.as_fd()).map_err(MergeError::io(
            Tree::Current,
            path,
            "listing",
        ))?;
        for child in names {
            let child_path = path.join(&child);
            let st = node::stat(src_dir.as_fd(), &child).map_err(MergeError::io(
                Tree::Current,
                &child_path,
                "reading",
            ))?;
            let Some(st) = st else { continue };
            let kind = node::kind_of_stat(&st).map_err(MergeError::io(
                Tree::Current,
                &child_path,
                "reading",
            ))?;
            let file = create(src_dir.as_fd(), &child, &st, kind, dst_dir.as_fd(), &child)
                .map_err(MergeError::io(Tree::New, &child_path, "creating"))?;
            self.fill(
                src_dir.as_fd(),
                &child,
                &st,
                kind,
                dst_dir.as_fd(),
                &child,
                file,
                &child_path,
                depth + 1,
            )?;
        }
        Ok(())
    }

    /// Row 5: creates the directory `path` in new with current's metadata
    /// (an existing directory, from an interrupted earlier apply, is kept).
    fn create_dir(&mut self, path: &Path) -> Result<(), MergeError> {
        let (parent, name) = split(path);
        let src = node::open_dir(self.current, parent).map_err(MergeError::io(
            Tree::Current,
            parent,
            "opening",
        ))?;
        let st = node::stat(src.as_fd(), name)
            .map_err(MergeError::io(Tree::Current, path, "reading"))?
            .ok_or_else(|| changed(Tree::Current, path, "it vanished"))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(changed(Tree::Current, path, "it is no longer a directory"));
        }
        let xattrs = node::read_xattrs(src.as_fd(), name).map_err(MergeError::io(
            Tree::Current,
            path,
            "reading",
        ))?;
        let dst = node::open_dir(self.new, parent).map_err(MergeError::io(
            Tree::New,
            parent,
            "opening",
        ))?;
        let e = MergeError::io(Tree::New, path, "creating");
        match rustix::fs::mkdirat(&dst, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(err) => return Err(e(err.into())),
        }
        let dir = node::open_dir(dst.as_fd(), Path::new(name)).map_err(&e)?;
        (|| -> io::Result<()> {
            rustix::fs::fchown(&dir, owner(&st).0, owner(&st).1)?;
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(st.st_mode & 0o7777))?;
            node::replace_xattrs(dir.as_fd(), OsStr::new("."), &xattrs)
        })()
        .map_err(e)?;
        self.report.dirs_created += 1;
        self.created.push(path.to_path_buf());
        self.sync.insert(parent.to_path_buf());
        self.sync.insert(path.to_path_buf());
        Ok(())
    }

    /// Sets the times of new's directory `path` to current's.
    fn copy_dir_times(&self, path: &Path) -> Result<(), MergeError> {
        let (parent, name) = split(path);
        let src = node::open_dir(self.current, parent).map_err(MergeError::io(
            Tree::Current,
            parent,
            "opening",
        ))?;
        let st = node::stat(src.as_fd(), name)
            .map_err(MergeError::io(Tree::Current, path, "reading"))?
            .ok_or_else(|| changed(Tree::Current, path, "it vanished"))?;
        let e = MergeError::io(Tree::New, path, "setting the times of");
        let dir = node::open_dir(self.new, path).map_err(&e)?;
        rustix::fs::futimens(&dir, &times(&st)).map_err(|err| e(err.into()))
    }

    fn remove(&mut self, path: &Path) -> Result<(), MergeError> {
        if self.remove_entry(path)? {
            self.report.removed += 1;
        }
        self.sync.insert(split(path).0.to_path_buf());
        Ok(())
    }

    /// Removes new's `path` (a directory whole, a symlink itself); whether
    /// there was one.
    fn remove_entry(&mut self, path: &Path) -> Result<bool, MergeError> {
        let (parent, name) = split(path);
        let e = MergeError::io(Tree::New, path, "removing");
        let dir = node::open_dir(self.new, parent).map_err(&e)?;
        let Some(st) = node::stat(dir.as_fd(), name).map_err(&e)? else {
            return Ok(false);
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => return Ok(true),
                Err(err) => return Err(e(err.into())),
            }
        }
        // Renamed away first (the name goes at once, and the temporary
        // name is plain UTF-8 for `remove_tree`).
        loop {
            self.seq += 1;
            let tmp = node::temp_name(self.seq);
            match rustix::fs::renameat_with(&dir, name, &dir, &tmp, RenameFlags::NOREPLACE) {
                Ok(()) => {
                    remove_any(dir.as_fd(), &tmp).map_err(&e)?;
                    return Ok(true);
                }
                Err(Errno::EXIST) if self.seq < 100_000 => {}
                Err(err) => return Err(e(err.into())),
            }
        }
    }
}

fn changed(tree: Tree, path: &Path, what: &str) -> MergeError {
    MergeError::Changed {
        tree,
        path: path.to_path_buf(),
        what: what.to_owned(),
    }
}

/// Creates `name` in `dir` as an entry of `kind` like `src_name` in `src`
/// (whose stat is `st`): private mode, metadata comes later; a regular file
/// is returned open for writing. Fails with `EEXIST` if the name is taken.
fn create(
    src: BorrowedFd<'_>,
    src_name: &OsStr,
    st: &rustix::fs::Stat,
    kind: EntryKind,
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<Option<File>> {
    let private = Mode::from_raw_mode(0o600);
    match kind {
        EntryKind::File => {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            let fd = rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, private)?;
            return Ok(Some(File::from(fd)));
        }
        EntryKind::Dir => rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?,
        EntryKind::Symlink => {
            let target = rustix::fs::readlinkat(src, src_name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dir, name)?;
        }
        _ => {
            let ft = FileType::from_raw_mode(st.st_mode);
            rustix::fs::mknodat(dir, name, ft, private, st.st_rdev)?;
        }
    }
    Ok(None)
}

/// The owner and group of `st`.
fn owner(st: &rustix::fs::Stat) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
}

/// The access and modification times of `st`.
#[allow(clippy::unnecessary_cast)]
fn times(st: &rustix::fs::Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as i64,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as i64,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Puts the temporary entry `tmp` at `name` in `dir`: a plain rename over a
/// non-directory; an exchange where a directory is involved (then the old
/// entry, now at `tmp`, is removed), with remove-then-rename as the
/// fallback on filesystems without `RENAME_EXCHANGE`.
fn install(dir: BorrowedFd<'_>, tmp: &OsStr, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let old = node::stat(dir, name)?;
    let old_is_dir =
        old.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
    if old.is_none() || (!is_dir && !old_is_dir) {
        return Ok(rustix::fs::renameat(dir, tmp, dir, name)?);
    }
    match rustix::fs::renameat_with(dir, tmp, dir, name, RenameFlags::EXCHANGE) {
        Ok(()) => remove_any(dir, tmp),
        Err(Errno::INVAL | Errno::NOTSUP) => {
            let mut old_tmp = tmp.to_owned();
            old_tmp.push(".old");
            rustix::fs::renameat(dir, name, dir, &old_tmp)?;
            rustix::fs::renameat(dir, tmp, dir, name)?;
            remove_any(dir, &old_tmp)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` (UTF-8: one of our temporary names, or `.updated`) from
/// `dir`, a directory whole, never following a symlink.
fn remove_any(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let name = name
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a temporary name"))?;
    cfs_core::beneath::remove_tree(dir, name)
}
