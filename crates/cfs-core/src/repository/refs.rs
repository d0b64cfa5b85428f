//! Symlinks: `images/<digest>`, `streams/<id>` and the refs trees under
//! `images/refs/` and `streams/refs/`. All relative (see
//! [`paths::relative_target`]) and replaced atomically: the new link is
//! created under a temporary name in the same directory and renamed over
//! the old one.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use rustix::fs::{AtFlags, Mode};
use rustix::io::Errno;

use super::error::{RepoError, Result};
use super::{Repository, paths};

/// One symlink found by [`Repository::list_links`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    /// The name, relative to the listed directory (`a/b/c` for nested refs).
    pub name: String,
    /// The raw symlink target.
    pub target: String,
}

impl Repository {
    /// Creates or atomically replaces the symlink `link` (repository-relative)
    /// so that it points at `target` (repository-relative), creating parent
    /// directories. Afterwards the containing directory is synced, so the
    /// link survives a crash once this returns.
    pub fn set_link(&self, link: &str, target: &str) -> Result<()> {
        self.check_writable()?;
        let (parent, name) = crate::beneath::split_parent(link);
        // Created (and opened) one component at a time, never through a
        // symlink: a planted `images/refs -> /elsewhere` is refused.
        let parent_fd =
            crate::beneath::mkdir_all(self.dir_fd(), parent, Mode::from_raw_mode(0o755))
                .map_err(|e| self.layout_error(parent, e))?;
        let value = paths::relative_target(link, target);
        // Fast path: a link that already has the right value stays as it is.
        if let Ok(existing) = rustix::fs::readlinkat(&parent_fd, name, Vec::new())
            && existing.as_bytes() == value.as_bytes()
        {
            return Ok(());
        }
        let tmp = format!(".tmp-link-{}-{}", std::process::id(), unique());
        rustix::fs::symlinkat(value.as_str(), &parent_fd, tmp.as_str())
            .map_err(|e| RepoError::io(self.display(link), e))?;
        if let Err(e) = rustix::fs::renameat(&parent_fd, tmp.as_str(), &parent_fd, name) {
            let _ = rustix::fs::unlinkat(&parent_fd, tmp.as_str(), AtFlags::empty());
            return Err(RepoError::io(self.display(link), e));
        }
        rustix::fs::fsync(&parent_fd).map_err(|e| RepoError::io(self.display(parent), e))?;
        Ok(())
    }

    /// Removes the symlink `link`; `false` if it did not exist.
    pub fn remove_link(&self, link: &str) -> Result<bool> {
        self.check_writable()?;
        let (parent, name) = crate::beneath::split_parent(link);
        let Some(parent_fd) = self.open_subdir(parent)? else {
            return Ok(false);
        };
        match rustix::fs::unlinkat(&parent_fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(RepoError::io(self.display(link), e)),
        }
    }

    /// The raw target of the symlink `link`, or `None` if it does not exist.
    pub fn read_link(&self, link: &str) -> Result<Option<String>> {
        let (parent, name) = crate::beneath::split_parent(link);
        let Some(parent_fd) = self.open_subdir(parent)? else {
            return Ok(None);
        };
        match rustix::fs::readlinkat(&parent_fd, name, Vec::new()) {
            Ok(t) => Ok(Some(String::from_utf8_lossy(t.as_bytes()).into_owned())),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(RepoError::io(self.display(link), e)),
        }
    }

    /// Resolves the symlink `link` to a repository-relative path (lexically:
    /// `..` components are applied to the link's directory). `None` if the
    /// link does not exist; an error if it leaves the repository.
    pub fn resolve_link(&self, link: &str) -> Result<Option<String>> {
        let Some(target) = self.read_link(link)? else {
            return Ok(None);
        };
        let mut parts: Vec<&str> = link.split('/').collect();
        parts.pop();
        if target.starts_with('/') {
            return Err(RepoError::io(
                self.display(link),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("absolute symlink target {target:?}"),
                ),
            ));
        }
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(RepoError::io(
                            self.display(link),
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("symlink target {target:?} leaves the repository"),
                            ),
                        ));
                    }
                }
                p => parts.push(p),
            }
        }
        Ok(Some(parts.join("/")))
    }

    /// Every symlink under the directory `dir` (repository-relative),
    /// recursively, sorted by name. A missing directory lists nothing.
    /// Entries that are not symlinks or directories are skipped, and so are
    /// temporary names (`.tmp-*`). Directories are opened below the
    /// repository root without following symlinks (a symlink in the place of
    /// `dir` is a [`RepoError::Layout`] error; symlinks inside are entries).
    pub fn list_links(&self, dir: &str, recursive: bool) -> Result<Vec<RefEntry>> {
        let mut out = Vec::new();
        // Work list of directories still to read, relative to `dir`.
        let mut pending = vec![String::new()];
        while let Some(prefix) = pending.pop() {
            let dir_rel = if prefix.is_empty() {
                dir.to_string()
            } else {
                format!("{dir}/{prefix}")
            };
            let Some(fd) = self.open_subdir(&dir_rel)? else {
                continue;
            };
            let entries = crate::beneath::read_dir(fd.as_fd())
                .map_err(|e| RepoError::io(self.display(&dir_rel), e))?;
            for (name, ft) in entries {
                let Ok(name) = name.into_string() else {
                    continue;
                };
                if name.starts_with(".tmp-") {
                    continue;
                }
                let rel = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                if ft == rustix::fs::FileType::Symlink {
                    let target =
                        rustix::fs::readlinkat(&fd, name.as_str(), Vec::new()).map_err(|e| {
                            RepoError::io(self.display(&format!("{dir_rel}/{name}")), e)
                        })?;
                    out.push(RefEntry {
                        name: rel,
                        target: String::from_utf8_lossy(target.as_bytes()).into_owned(),
                    });
                } else if ft == rustix::fs::FileType::Directory && recursive {
                    pending.push(rel);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Absolute path of a repository-relative path.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.path.join(Path::new(OsStr::from_bytes(rel.as_bytes())))
    }
}

/// A process-unique counter for temporary names.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
