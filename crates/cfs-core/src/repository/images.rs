//! EROFS images in a repository: `images/<hex digest>` links to the image
//! object, `images/refs/<name…>` names an image.
//!
//! Only images this repository wrote (or imported on explicit request) are
//! linked under `images/`: mounting goes through `images/` only, so the
//! kernel's EROFS parser never sees arbitrary object content. An image is
//! named by
//! - a hex digest, or `<algorithm>:<hex>` as ids are printed → `images/<hex>`;
//!   its content is verified against the digest (kernel measurement in
//!   secure repositories, userspace otherwise);
//! - a unique prefix of at least [`MIN_ID_PREFIX`] hex digits of an image
//!   id, unless a ref has that name → `images/<hex>` (several matches: an
//!   error listing them);
//! - a name containing `/` (such as `refs/foo`) → `images/<name>`;
//! - any other name → `images/refs/<name>`.

use std::fs::File;
use std::io::Read;

use crate::erofs::reader::{Image, ObjectRef, ReadOptions, referenced_objects};
use crate::tree::FileSystem;
use crate::verity::{Digest, digest_bytes};

use super::error::{RepoError, Result};
use super::{Repository, paths};

/// Largest image read into memory (by [`Repository::image_objects`] etc.).
pub const MAX_IMAGE_LEN: u64 = crate::limits::MAX_IMAGE_LEN;

/// Options of [`Repository::import_image_with`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Store the image even if objects it references are not in the
    /// repository (they may be added later).
    pub allow_missing_objects: bool,
}

/// An image named in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The name under `images/refs/`.
    pub name: String,
    /// The image digest it resolves to, or `None` for a dangling ref.
    pub digest: Option<Digest>,
}

impl Repository {
    /// Writes the EROFS image of `fs` in every format the repository
    /// generates, links each as `images/<hex>`, points `images/refs/<name>`
    /// at the default format's image, and returns that image's digest.
    pub fn write_image(&self, fs: &FileSystem, name: Option<&str>) -> Result<Digest> {
        self.write_image_versions(fs, name, &self.erofs_versions())
    }

    /// Stores an EROFS image given as bytes (after checking that it is a
    /// well-formed composefs image whose objects are all in the repository),
    /// links it as `images/<hex>` and, with a name, `images/refs/<name>`.
    pub fn import_image(&self, src: impl Read, name: Option<&str>) -> Result<Digest> {
        self.import_image_with(src, name, &ImportOptions::default())
    }

    /// [`Repository::import_image`] with options.
    pub fn import_image_with(
        &self,
        mut src: impl Read,
        name: Option<&str>,
        opts: &ImportOptions,
    ) -> Result<Digest> {
        self.check_writable()?;
        if let Some(name) = name {
            paths::check_name("image ref", name, true)?;
        }
        let data = crate::limits::read_bounded(&mut src, MAX_IMAGE_LEN)
            .map_err(|e| RepoError::io("<input>", e))?;
        let image = Image::open(&data).map_err(|source| RepoError::Image {
            path: "<input>".into(),
            source,
        })?;
        let refs = referenced_objects(&image, &ReadOptions::default()).map_err(|source| {
            RepoError::Image {
                path: "<input>".into(),
                source,
            }
        })?;
        self.check_reference_algorithms(&refs)?;
        if !opts.allow_missing_objects {
            self.check_references_present(&data)?;
        }
        let digest = self.commit_image_object(&data)?;
        if let Some(name) = name {
            self.set_link(&image_ref_path(name), &image_path(&digest))?;
        }
        Ok(digest)
    }

    /// Refuses an image whose objects are not all stored: mounted, its
    /// files would fail to read.
    fn check_references_present(&self, data: &[u8]) -> Result<()> {
        let digest = digest_bytes(self.algorithm(), data);
        let mut missing = Vec::new();
        for d in self.objects_of_image(data, &digest)? {
            if !self.has_object(&d)? {
                missing.push(d);
            }
        }
        match missing.first() {
            None => Ok(()),
            Some(first) => Err(RepoError::MissingObjects {
                path: self.path().to_path_buf(),
                count: missing.len(),
                example: first.to_prefixed(),
            }),
        }
    }

    /// Refuses references whose digest (metacopy) or object name (redirect)
    /// belongs to another algorithm than the repository's.
    fn check_reference_algorithms(&self, refs: &[ObjectRef<'_>]) -> Result<()> {
        for r in refs {
            let from_name = r
                .payload
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| Digest::from_object_path(p).ok());
            for (digest, shown) in [
                (r.digest, r.digest.map(|d| d.to_prefixed())),
                (
                    from_name,
                    r.payload.map(|p| String::from_utf8_lossy(p).into_owned()),
                ),
            ] {
                if let (Some(d), Some(shown)) = (digest, shown)
                    && d.algorithm() != self.algorithm()
                {
                    return Err(RepoError::ImageAlgorithm {
                        path: "<input>".into(),
                        image: d.algorithm(),
                        repository: self.algorithm(),
                        example: shown,
                    });
                }
            }
        }
        Ok(())
    }

    /// Stores image bytes as an object, syncs (the barrier for the objects
    /// the image references), and links `images/<hex>`.
    pub fn commit_image_object(&self, data: &[u8]) -> Result<Digest> {
        let (digest, _) = self.ensure_object_bytes(data)?;
        self.sync()?;
        self.set_link(&image_path(&digest), &paths::object_path(&digest))?;
        Ok(digest)
    }

    /// Resolves an image name (see the module docs) to its digest, without
    /// verifying content.
    pub fn resolve_image(&self, name: &str) -> Result<Digest> {
        let link = self.image_link(name)?;
        let target = self
            .resolve_link(&link)?
            .ok_or_else(|| RepoError::NotFound {
                path: self.path().to_path_buf(),
                what: "image",
                name: name.to_string(),
            })?;
        // images/refs/x -> images/<hex> -> objects/XX/rest: resolve one more level.
        let object = if target.starts_with("images/") {
            self.resolve_link(&target)?
                .ok_or_else(|| RepoError::NotFound {
                    path: self.path().to_path_buf(),
                    what: "image",
                    name: format!("{name} (dangling link {target})"),
                })?
        } else {
            target
        };
        let rest = object
            .strip_prefix("objects/")
            .ok_or_else(|| RepoError::NotFound {
                path: self.path().to_path_buf(),
                what: "image",
                name: format!("{name} (link does not point into objects/: {object})"),
            })?;
        Digest::from_object_path(rest).map_err(|e| RepoError::NotFound {
            path: self.path().to_path_buf(),
            what: "image",
            name: format!("{name} ({e})"),
        })
    }

    /// Opens an image by name and verifies its content against its digest.
    pub fn open_image(&self, name: &str) -> Result<(File, Digest)> {
        let digest = self.resolve_image(name)?;
        let file = self.open_object(&digest)?;
        if !self.is_secure() {
            // No kernel measurement to rely on: images are small, hash them.
            let found = crate::verity::digest_file(self.algorithm(), &file, 0)
                .map_err(|e| RepoError::io(self.display(&paths::object_path(&digest)), e))?;
            if found != digest {
                return Err(RepoError::DigestMismatch {
                    path: self.display(&paths::object_path(&digest)),
                    expected: Box::new(digest),
                    found: Box::new(found),
                });
            }
        }
        Ok((file, digest))
    }

    /// Reads an image by name into memory, verified against its digest.
    pub fn read_image_bytes(&self, name: &str) -> Result<(Vec<u8>, Digest)> {
        let digest = self.resolve_image(name)?;
        let data = self.read_object(&digest, MAX_IMAGE_LEN)?;
        let found = digest_bytes(self.algorithm(), &data);
        if found != digest {
            return Err(RepoError::DigestMismatch {
                path: self.display(&paths::object_path(&digest)),
                expected: Box::new(digest),
                found: Box::new(found),
            });
        }
        Ok((data, digest))
    }

    /// The objects an image references (metacopy digests and redirect
    /// paths), sorted, without duplicates.
    pub fn image_objects(&self, name: &str) -> Result<Vec<Digest>> {
        let (data, digest) = self.read_image_bytes(name)?;
        self.objects_of_image(&data, &digest)
    }

    /// The objects referenced by the image bytes `data` (of image `digest`).
    pub(crate) fn objects_of_image(&self, data: &[u8], digest: &Digest) -> Result<Vec<Digest>> {
        let path = self.display(&paths::object_path(digest));
        let err = |source| RepoError::Image {
            path: path.clone(),
            source,
        };
        let image = Image::open(data).map_err(err)?;
        let refs = referenced_objects(&image, &ReadOptions::default()).map_err(err)?;
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            if let Some(d) = r.digest {
                out.push(d);
            }
            if let Some(payload) = r.payload {
                let text = String::from_utf8_lossy(payload);
                if let Ok(d) = Digest::from_object_path(text.trim_start_matches('/')) {
                    out.push(d);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every image ref (`images/refs/**`) with the digest it resolves to.
    pub fn list_images(&self) -> Result<Vec<ImageRef>> {
        let base = format!("{}/{}", paths::IMAGES, paths::REFS);
        let mut out = Vec::new();
        for entry in self.list_links(&base, true)? {
            let digest = self.resolve_image(&format!("refs/{}", entry.name)).ok();
            out.push(ImageRef {
                name: entry.name,
                digest,
            });
        }
        Ok(out)
    }

    /// The repository-relative link for an image name.
    fn image_link(&self, name: &str) -> Result<String> {
        let hex_len = 2 * self.algorithm().digest_len();
        // `sha512:<hex>`, as create-image and import-image print ids.
        let name = match name.split_once(':') {
            Some((alg @ ("sha256" | "sha512"), hex)) => {
                if alg != self.algorithm().name() {
                    return Err(RepoError::NotFound {
                        path: self.path().to_path_buf(),
                        what: "image",
                        name: format!(
                            "{name} (a {alg} id; this repository's ids are {})",
                            self.algorithm().name()
                        ),
                    });
                }
                hex
            }
            _ => name,
        };
        if name.contains('/') {
            paths::check_name("image", name, true)?;
            Ok(format!("{}/{name}", paths::IMAGES))
        } else if is_hex_digest(name, self.algorithm().digest_len()) {
            Ok(format!("{}/{}", paths::IMAGES, name.to_ascii_lowercase()))
        } else {
            paths::check_name("image", name, true)?;
            let by_name = image_ref_path(name);
            if name.len() < MIN_ID_PREFIX
                || name.len() >= hex_len
                || !name.bytes().all(|b| b.is_ascii_hexdigit())
                || self.read_link(&by_name)?.is_some()
            {
                return Ok(by_name);
            }
            // A short id, as `images` shows them (a ref of that name wins).
            let prefix = name.to_ascii_lowercase();
            let matches: Vec<String> = self
                .list_links(paths::IMAGES, false)?
                .into_iter()
                .map(|e| e.name)
                .filter(|n| n.len() == hex_len && n.starts_with(&prefix))
                .collect();
            match matches.as_slice() {
                [] => Ok(by_name),
                [one] => Ok(format!("{}/{one}", paths::IMAGES)),
                _ => Err(RepoError::Ambiguous {
                    path: self.path().to_path_buf(),
                    what: "image",
                    prefix: name.to_string(),
                    matches,
                }),
            }
        }
    }
}

/// Fewest hex digits taken as a short image id.
pub(crate) const MIN_ID_PREFIX: usize = 4;

/// `images/<hex>`.
pub(crate) fn image_path(digest: &Digest) -> String {
    format!("{}/{}", paths::IMAGES, digest.to_hex())
}

/// `images/refs/<name>`.
pub(crate) fn image_ref_path(name: &str) -> String {
    format!("{}/{}/{name}", paths::IMAGES, paths::REFS)
}

pub(crate) fn is_hex_digest(name: &str, len: usize) -> bool {
    name.len() == 2 * len && name.bytes().all(|b| b.is_ascii_hexdigit())
}
