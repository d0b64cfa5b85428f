//! The boot transform: an OCI OS tree → the tree of its **boot image**, the
//! composefs image a machine boots by digest (boot-deploy.md §2–3).
//!
//! Steps, in composefs-rs 0.9.4's order (its ids must come out equal):
//! 1. the boot resources are collected ([`resources::find`]) while `/boot`
//!    still holds them;
//! 2. `/boot` and `/sysroot` (both must exist as directories) are emptied
//!    and get `/usr`'s mtime — a sealed UKI in `/boot` carries the image's
//!    digest, so it cannot be part of the image;
//! 3. link counts are recounted (names removed with `/boot` no longer count);
//! 4. every inode is labelled from the image's own SELinux policy
//!    ([`crate::selinux`]), or `security.selinux` is stripped everywhere
//!    when the image has none.
//!
//! [`sealed`] checks the digest a UKI's `.cmdline` carries against the boot
//! image computed here.

pub mod oci;
pub mod resources;
pub mod sealed;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};

use cfs_core::beneath;
use cfs_core::repository::Repository;
use cfs_core::tree::{ExternalFile, FileSystem, InodeId, InodeKind, RegularFile, recount_links};

pub use resources::{BootType, PeKind, Resource};

/// Why a boot image could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// The image lacks something a bootable image must have.
    #[error("not a bootable image: {0}")]
    NotBootable(String),
    /// A boot resource or policy file is malformed.
    #[error("{0}")]
    Invalid(String),
    /// SELinux labelling failed.
    #[error(transparent)]
    Selinux(#[from] crate::selinux::SelinuxError),
    /// Reading a file of the image failed.
    #[error("reading {path} of the image: {source}")]
    Read {
        /// Image path.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Access to the contents of the image's files.
pub trait Contents {
    /// Opens the content of the external file at image path `path`.
    fn open_external(&self, path: &[u8], ext: &ExternalFile) -> Result<File, BootError>;

    /// Opens the regular file at image path `path` (inode `id` of `fs`).
    fn open(&self, fs: &FileSystem, path: &[u8], id: InodeId) -> Result<File, BootError> {
        match &fs.inode(id).kind {
            InodeKind::Regular(RegularFile::Inline(data)) => anonymous(path, data),
            InodeKind::Regular(RegularFile::External(ext)) => self.open_external(path, ext),
            _ => Err(read_error(path, io::Error::other("not a regular file"))),
        }
    }

    /// Reads at most `limit` bytes of it (more is an error).
    fn read(
        &self,
        fs: &FileSystem,
        path: &[u8],
        id: InodeId,
        limit: u64,
    ) -> Result<Vec<u8>, BootError> {
        if let InodeKind::Regular(RegularFile::Inline(data)) = &fs.inode(id).kind {
            return Ok(data.to_vec());
        }
        read_limited(self.open(fs, path, id)?, path, limit)
    }
}

fn read_limited(file: File, path: &[u8], limit: u64) -> Result<Vec<u8>, BootError> {
    let mut out = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| read_error(path, source))?;
    if out.len() as u64 > limit {
        return Err(BootError::Invalid(format!(
            "{}: larger than the {limit} bytes allowed",
            String::from_utf8_lossy(path)
        )));
    }
    Ok(out)
}

fn read_error(path: &[u8], source: io::Error) -> BootError {
    BootError::Read {
        path: String::from_utf8_lossy(path).into_owned(),
        source,
    }
}

/// An anonymous file holding `data` (for inline content).
fn anonymous(path: &[u8], data: &[u8]) -> Result<File, BootError> {
    let mut f = tempfile::tempfile().map_err(|e| read_error(path, e))?;
    f.write_all(data)
        .and_then(|()| f.rewind())
        .map_err(|e| read_error(path, e))?;
    Ok(f)
}

/// Contents from a repository's object store.
#[derive(Debug)]
pub struct RepoContents<'a>(pub &'a Repository);

impl Contents for RepoContents<'_> {
    fn open_external(&self, path: &[u8], ext: &ExternalFile) -> Result<File, BootError> {
        let digest = ext
            .digest
            .as_ref()
            .ok_or_else(|| read_error(path, io::Error::other("external file without a digest")))?;
        self.0
            .open_object(digest)
            .map_err(|e| read_error(path, io::Error::other(e.to_string())))
    }
}

/// Contents from the directory the tree was read from (symlinks are never
/// followed, nothing outside it is opened).
#[derive(Debug)]
pub struct DirContents(pub OwnedFd);

impl Contents for DirContents {
    fn open_external(&self, path: &[u8], _ext: &ExternalFile) -> Result<File, BootError> {
        let rel = std::str::from_utf8(path.strip_prefix(b"/").unwrap_or(path))
            .map_err(|_| read_error(path, io::Error::other("path is not UTF-8")))?;
        beneath::open_regular(self.0.as_fd(), rel).map_err(|e| read_error(path, e))
    }
}

/// What [`transform_for_boot`] found and did.
#[derive(Debug)]
pub struct BootTree {
    /// Boot resources found before `/boot` was emptied.
    pub resources: Vec<Resource>,
    /// True if the image's SELinux policy labelled the tree (false: labels
    /// stripped).
    pub labelled: bool,
}

/// Top-level directories emptied by the transform.
const EMPTIED: [&[u8]; 2] = [b"boot", b"sysroot"];

/// Applies the boot transform to `fs` (an OCI-normalised tree; see the
/// module docs). `find_resources` is false for computing an id only.
pub fn transform_for_boot(
    fs: &mut FileSystem,
    contents: &dyn Contents,
    find_resources: bool,
) -> Result<BootTree, BootError> {
    let resources = if find_resources {
        resources::find(fs, contents)?
    } else {
        Vec::new()
    };
    let root = fs
        .directory(InodeId::ROOT)
        .ok_or_else(|| BootError::NotBootable("no root directory".into()))?;
    let top = |name: &[u8]| -> Result<InodeId, BootError> {
        root.get(name)
            .map(|e| e.inode)
            .filter(|&id| fs.directory(id).is_some())
            .ok_or_else(|| {
                BootError::NotBootable(format!(
                    "/{} is missing or not a directory (a bootable image has /usr, /boot and /sysroot)",
                    String::from_utf8_lossy(name)
                ))
            })
    };
    let usr = top(b"usr")?;
    let emptied = [top(EMPTIED[0])?, top(EMPTIED[1])?];
    let mtime = fs.inode(usr).stat.mtime;
    for id in emptied {
        let inode = fs.inode_mut(id);
        inode.stat.mtime = mtime;
        if let Some(d) = inode.as_directory_mut() {
            d.entries_mut().clear();
        }
    }
    recount_links(fs);
    let labelled = label(fs, contents)?;
    recount_links(fs);
    Ok(BootTree {
        resources,
        labelled,
    })
}

/// Labels `fs` from its own SELinux policy (composefs-rs order), or strips
/// `security.selinux` everywhere when it has none; true if labelled.
fn label(fs: &mut FileSystem, contents: &dyn Contents) -> Result<bool, BootError> {
    use crate::selinux::{MAX_POLICY_FILE, Outcome, SelinuxError};
    let mut read = |path: &[u8], ext: &ExternalFile| -> Result<Option<Vec<u8>>, SelinuxError> {
        let shown = || String::from_utf8_lossy(path).into_owned();
        let file = contents
            .open_external(path, ext)
            .map_err(|e| SelinuxError::Io {
                path: shown(),
                source: io::Error::other(e.to_string()),
            })?;
        read_limited(file, path, MAX_POLICY_FILE.saturating_add(1))
            .map(Some)
            .map_err(|e| SelinuxError::Io {
                path: shown(),
                source: io::Error::other(e.to_string()),
            })
    };
    Ok(matches!(
        crate::selinux::label(fs, &mut read)?,
        Outcome::Labelled { .. }
    ))
}
