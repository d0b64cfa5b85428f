//! Building an image from a directory on disk (`cfsctl create-image` and
//! `compute-id`): scan, store file contents as objects, normalise, write the
//! EROFS image.
//!
//! The tree is read the way composefs-rs reads it: every xattr, hard links
//! shared by `(st_dev, st_ino)`, regular files of more than 64 bytes stored
//! as objects. By default the OCI root normalisation
//! ([`transform_for_oci`]) follows, as in composefs-rs, so the same
//! directory gives the same image digest with either tool.

use std::path::Path;

use crate::erofs::writer::{WriteOptions, write_image};
use crate::tree::{
    ContentOptions, FileSystem, Progress, ScanOptions, Store, XattrFilter,
    build_from_directory_into, transform_for_oci,
};
use crate::verity::{Algorithm, Digest, digest_bytes};

use super::Repository;
use super::error::{RepoError, Result};
use super::images::{image_path, image_ref_path};

/// Regular files up to this size are stored in the image.
pub const INLINE_MAX: u64 = 64;

/// How a directory becomes an image.
#[derive(Debug, Clone)]
pub struct DirImageOptions {
    /// Apply the OCI root normalisation (root from `/usr`, `/run` emptied,
    /// xattr filter). On by default, like composefs-rs.
    pub propagate_usr_to_root: bool,
    /// The xattr filter of the normalisation.
    pub xattrs: XattrFilter,
    /// Worker threads (0: one per CPU).
    pub threads: usize,
    /// Write only this EROFS format instead of the ones `meta.json`
    /// configures (`cfsctl --erofs-version`); `meta.json` is not changed.
    pub erofs_version: Option<u32>,
}

impl Default for DirImageOptions {
    fn default() -> Self {
        DirImageOptions {
            propagate_usr_to_root: true,
            xattrs: XattrFilter::AllowlistOnly,
            threads: 0,
            erofs_version: None,
        }
    }
}

/// Reads `dir` into a tree with external files named by `algorithm`
/// digests, storing them in `store` if given.
pub fn read_directory_tree(
    dir: &Path,
    algorithm: Algorithm,
    opts: &DirImageOptions,
    store: Option<Store<'_>>,
    progress: Option<&Progress>,
) -> Result<FileSystem> {
    let scan = ScanOptions {
        detect_hardlinks: true,
        ..ScanOptions::default()
    };
    let content = ContentOptions {
        algorithm,
        inline_max: INLINE_MAX,
        threads: opts.threads,
        store: None,
    };
    let scanned =
        build_from_directory_into(dir, &scan, &content, store, progress).map_err(|source| {
            RepoError::Build {
                path: dir.to_path_buf(),
                source,
            }
        })?;
    let mut fs = scanned.fs;
    if opts.propagate_usr_to_root {
        transform_for_oci(&mut fs, opts.xattrs).map_err(|source| RepoError::Transform {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(fs)
}

/// The bytes of the EROFS image of `fs` in composefs-rs format `version`
/// (0 and 1: C `mkcomposefs`'s layout; 2: composefs-rs's V2).
pub fn image_bytes(fs: &FileSystem, version: u32) -> Result<Vec<u8>> {
    if version == 2 {
        let mut data = Vec::new();
        crate::erofs::writer::write_image_v2(fs, &mut data)?;
        return Ok(data);
    }
    let opts = match version {
        0 => WriteOptions {
            min_version: 0,
            max_version: 1,
        },
        1 => WriteOptions {
            min_version: 1,
            max_version: 1,
        },
        v => {
            return Err(RepoError::UnsupportedErofsFormat {
                path: "<image>".into(),
                version: v,
            });
        }
    };
    let mut data = Vec::new();
    write_image(fs, &opts, &mut data)?;
    Ok(data)
}

/// The image digest `create-image` would produce for `dir`, without storing
/// anything (`cfsctl compute-id`).
pub fn compute_image_id(
    dir: &Path,
    algorithm: Algorithm,
    erofs_version: u32,
    opts: &DirImageOptions,
) -> Result<Digest> {
    let fs = read_directory_tree(dir, algorithm, opts, None, None)?;
    let data = image_bytes(&fs, erofs_version)?;
    Ok(digest_bytes(algorithm, &data))
}

impl Repository {
    /// Scans `dir`, stores its file contents, writes the image(s) and names
    /// the default one `images/refs/<name>`; returns its digest.
    pub fn create_image_from_dir(
        &self,
        dir: &Path,
        opts: &DirImageOptions,
        name: Option<&str>,
        progress: Option<&Progress>,
    ) -> Result<Digest> {
        self.check_writable()?;
        if let Some(name) = name {
            super::paths::check_name("image ref", name, true)?;
        }
        // Refuse a format we cannot write before storing anything.
        let versions = match opts.erofs_version {
            Some(v) => vec![v],
            None => self.erofs_versions(),
        };
        if let Some(&v) = versions.iter().find(|&&v| v > 2) {
            return Err(RepoError::UnsupportedErofsFormat {
                path: self.path().to_path_buf(),
                version: v,
            });
        }
        let store = Store {
            objects: self.objects(),
            policy: self,
        };
        let fs = read_directory_tree(dir, self.algorithm(), opts, Some(store), progress)?;
        self.write_image_versions(&fs, name, &versions)
    }

    /// Like [`Repository::write_image`], but writes the given EROFS formats
    /// (the first is the one named and returned) instead of the configured
    /// ones.
    pub fn write_image_versions(
        &self,
        fs: &FileSystem,
        name: Option<&str>,
        versions: &[u32],
    ) -> Result<Digest> {
        self.check_writable()?;
        if let Some(name) = name {
            super::paths::check_name("image ref", name, true)?;
        }
        let mut primary = None;
        for &version in versions {
            let data = image_bytes(fs, version).map_err(|e| match e {
                RepoError::UnsupportedErofsFormat { version, .. } => {
                    RepoError::UnsupportedErofsFormat {
                        path: self.path().to_path_buf(),
                        version,
                    }
                }
                e => e,
            })?;
            let digest = self.commit_image_object(&data)?;
            primary.get_or_insert(digest);
        }
        let digest = primary.ok_or_else(|| RepoError::UnsupportedErofsFormat {
            path: self.path().to_path_buf(),
            version: 0,
        })?;
        if let Some(name) = name {
            self.set_link(&image_ref_path(name), &image_path(&digest))?;
        }
        Ok(digest)
    }
}
