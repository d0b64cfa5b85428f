//! Boot images of OCI images in a repository (repository.md §12.2): built
//! from the layers with an xattr mode, boot-transformed, written in every
//! EROFS format the repository generates and named in the config stream as
//! `composefs.image.boot` (V2) / `composefs.image.boot.v1` (V1), with
//! `.xattrs=<mode>` appended for a mode other than the default.

use cfs_core::repository::{Repository, image_bytes};
use cfs_core::tree::{FileSystem, XattrFilter};
use cfs_core::verity::{Digest, digest_bytes};
use cfs_oci::store::{OciImage, StoreError, boot_ref_name, link_config_refs};

use super::sealed::{self, BootIds, SealedUki};
use super::{BootError, BootTree, RepoContents, transform_for_boot};

/// The formats a sealed UKI may name (composefs-rs `BOOT_VERSIONS`).
pub const BOOT_VERSIONS: [u32; 2] = [1, 2];

/// Errors of boot images in a repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciBootError {
    /// The boot transform failed.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The OCI image could not be read or updated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an image failed.
    #[error(transparent)]
    Repo(#[from] cfs_core::repository::RepoError),
    /// No xattr mode × format gave the expected digest.
    #[error(
        "no boot image configuration matched the expected digest {expected} (tried {tried} xattr-mode/format combinations: {modes} × V1, V2)"
    )]
    NoMatch {
        /// The digest searched for.
        expected: String,
        /// Combinations tried.
        tried: usize,
        /// The modes tried.
        modes: String,
    },
}

/// The OCI tree of `img` with xattr mode `filter`, boot-transformed.
pub fn boot_tree(
    repo: &Repository,
    img: &OciImage,
    filter: XattrFilter,
) -> Result<(FileSystem, BootTree), OciBootError> {
    let mut fs = img.build_tree(repo, filter)?;
    let tree = transform_for_boot(&mut fs, &RepoContents(repo), true)?;
    Ok((fs, tree))
}

/// What [`ensure_boot_image`] did.
#[derive(Debug, Clone)]
pub struct BootImageReport {
    /// The boot images in the repository's formats (default first), or the
    /// one that matched the expected digest.
    pub images: Vec<(u32, Digest)>,
    /// The xattr mode they were built with.
    pub filter: XattrFilter,
    /// The UKIs of the image and their composefs arguments.
    pub ukis: Vec<SealedUki>,
    /// Whether the image's SELinux policy labelled it.
    pub labelled: bool,
    /// True if nothing was built (the refs existed).
    pub cached: bool,
    /// The boot type (`None` also when cached).
    pub boot_type: Option<super::BootType>,
    /// Each kernel (`/usr/lib/modules/<kver>`) or UKI (its path) with its
    /// boot digest.
    pub kernels: Vec<(String, String)>,
}

/// A boot type and (kernel or UKI, boot digest) pairs.
type Kernels = (Option<super::BootType>, Vec<(String, String)>);

/// The boot type and the boot digest of every kernel and UKI.
fn kernels(
    fs: &FileSystem,
    repo: &Repository,
    resources: &[super::Resource],
) -> Result<Kernels, BootError> {
    use super::resources::{boot_digest, boot_type};
    let mut out = Vec::new();
    for r in resources {
        let name = match r {
            super::Resource::Kernel { kver, .. } => format!("/usr/lib/modules/{kver}"),
            super::Resource::Uki { path, .. } => String::from_utf8_lossy(path).into_owned(),
            super::Resource::Type1 { .. } => continue,
        };
        if let Some(d) = boot_digest(fs, &RepoContents(repo), r)? {
            out.push((name, d));
        }
    }
    Ok((boot_type(resources), out))
}

/// Builds (or finds) the boot image of `img` with xattr mode `filter` in
/// every format the repository generates, checks sealed UKIs against it
/// and names the images in the config stream.
pub fn ensure_boot_image(
    repo: &Repository,
    img: &OciImage,
    filter: XattrFilter,
) -> Result<BootImageReport, OciBootError> {
    if let Some(report) = cached_boot_image(repo, img, filter) {
        return Ok(report);
    }
    let (fs, tree) = boot_tree(repo, img, filter)?;
    commit_boot_tree(repo, img, filter, &fs, &tree)
}

/// The boot images of `img` for `filter` in every repository format, if all
/// are named in its config and linked under `images/` (an interrupted gc
/// may have pruned the link of an object that became reachable again).
pub fn cached_boot_image(
    repo: &Repository,
    img: &OciImage,
    filter: XattrFilter,
) -> Option<BootImageReport> {
    let images: Vec<(u32, Digest)> = repo
        .erofs_versions()
        .iter()
        .map(|&v| {
            img.boot_image(v, filter)
                .filter(|d| repo.resolve_image(&d.to_hex()).is_ok_and(|r| r == **d))
                .map(|d| (v, *d))
        })
        .collect::<Option<_>>()?;
    Some(BootImageReport {
        images,
        filter,
        ukis: Vec::new(),
        labelled: false,
        cached: true,
        boot_type: None,
        kernels: Vec::new(),
    })
}

/// Writes the boot images of the boot-transformed tree `fs` (see
/// [`boot_tree`]) in every repository format, after checking sealed UKIs
/// against them, and names them in the config stream of `img`.
pub fn commit_boot_tree(
    repo: &Repository,
    img: &OciImage,
    filter: XattrFilter,
    fs: &FileSystem,
    tree: &BootTree,
) -> Result<BootImageReport, OciBootError> {
    let versions = repo.erofs_versions();
    let alg = repo.algorithm();
    let mut bytes = Vec::new();
    for v in BOOT_VERSIONS.iter().chain(&versions) {
        if !bytes.iter().any(|(w, _)| w == v) {
            bytes.push((*v, image_bytes(fs, *v)?));
        }
    }
    let id_of = |v: u32| {
        bytes
            .iter()
            .find(|(w, _)| *w == v)
            .map(|(_, b)| digest_bytes(alg, b))
    };
    let ids = BootIds {
        v1: id_of(1).unwrap_or_else(|| digest_bytes(alg, b"")),
        v2: id_of(2).unwrap_or_else(|| digest_bytes(alg, b"")),
    };
    let ukis = sealed::check(fs, &RepoContents(repo), &tree.resources, &ids)?;
    let mut images = Vec::new();
    let mut refs = Vec::new();
    // Only the repository's formats, as composefs-rs writes them (the config
    // stream stays byte-identical); deploying a UKI sealed for another format
    // stores that one too (`sealed_boot_image`).
    for v in versions {
        let Some((_, data)) = bytes.iter().find(|(w, _)| *w == v) else {
            continue;
        };
        let digest = repo.commit_image_object(data)?;
        refs.push((boot_ref_name(v, filter), digest));
        images.push((v, digest));
    }
    link_config_refs(repo, img, &refs)?;
    let (boot_type, kernels) = kernels(fs, repo, &tree.resources)?;
    Ok(BootImageReport {
        images,
        filter,
        ukis,
        labelled: tree.labelled,
        cached: false,
        boot_type,
        kernels,
    })
}

/// The boot image a sealed UKI of `tree` boots (the UKI at `uki`, or the
/// first sealed one): the image whose id its `.cmdline` names, in whichever
/// format (V1 or V2) has that id — not necessarily one the repository
/// generates by default. An older tool may have sealed the UKI for V2 while
/// the repository now defaults to V1 (bootc #2334): the deployment must be
/// named by, and keep, the image the UKI will mount. The image is stored and
/// named in the config stream if it is not yet. `None`: no sealed UKI.
pub fn sealed_boot_image(
    repo: &Repository,
    img: &OciImage,
    filter: XattrFilter,
    fs: &FileSystem,
    tree: &BootTree,
    uki: Option<&[u8]>,
) -> Result<Option<(u32, Digest)>, OciBootError> {
    let ukis = sealed::uki_args(fs, &RepoContents(repo), &tree.resources)?;
    let chosen = match uki {
        Some(path) => ukis
            .iter()
            .find(|u| u.path.as_bytes() == path)
            .and_then(|u| u.arg.as_ref()),
        None => ukis.iter().find_map(|u| u.arg.as_ref()),
    };
    let Some(arg) = chosen else {
        return Ok(None);
    };
    let want = arg.digest;
    for v in BOOT_VERSIONS {
        if img.boot_image(v, filter) == Some(&want)
            && repo.resolve_image(&want.to_hex()).is_ok_and(|r| r == want)
        {
            return Ok(Some((v, want)));
        }
    }
    let mut ids = Vec::new();
    for v in BOOT_VERSIONS {
        let data = image_bytes(fs, v)?;
        let id = digest_bytes(repo.algorithm(), &data);
        if id == want {
            let digest = repo.commit_image_object(&data)?;
            link_config_refs(repo, img, &[(boot_ref_name(v, filter), digest)])?;
            return Ok(Some((v, digest)));
        }
        ids.push(format!("{} (V{v})", id.to_hex()));
    }
    Err(BootError::Invalid(format!(
        "the UKI is sealed for composefs image {} ({arg}), but this image's boot image is {}",
        want.to_hex(),
        ids.join(" or ")
    ))
    .into())
}

/// Recovery search (`oci pull --bootable --expected-digest`): tries every
/// xattr mode × {V1, V2} — named refs first, then building — until the boot
/// image has the digest `expected`; stores and names that image.
pub fn find_matching_boot_image(
    repo: &Repository,
    img: &OciImage,
    expected: &Digest,
) -> Result<BootImageReport, OciBootError> {
    let mut tried = 0;
    for filter in XattrFilter::ALL {
        let mut missing = Vec::new();
        for v in BOOT_VERSIONS {
            match img.boot_image(v, filter) {
                Some(d) if d == expected => {
                    return Ok(BootImageReport {
                        images: vec![(v, *d)],
                        filter,
                        ukis: Vec::new(),
                        labelled: false,
                        cached: true,
                        boot_type: None,
                        kernels: Vec::new(),
                    });
                }
                Some(_) => tried += 1,
                None => missing.push(v),
            }
        }
        if missing.is_empty() {
            continue;
        }
        let (fs, tree) = boot_tree(repo, img, filter)?;
        for v in missing {
            tried += 1;
            let data = image_bytes(&fs, v)?;
            if digest_bytes(repo.algorithm(), &data) != *expected {
                continue;
            }
            let digest = repo.commit_image_object(&data)?;
            link_config_refs(repo, img, &[(boot_ref_name(v, filter), digest)])?;
            let ukis = sealed::uki_args(&fs, &RepoContents(repo), &tree.resources)?;
            let (boot_type, kernels) = kernels(&fs, repo, &tree.resources)?;
            return Ok(BootImageReport {
                images: vec![(v, digest)],
                filter,
                ukis,
                labelled: tree.labelled,
                cached: false,
                boot_type,
                kernels,
            });
        }
    }
    Err(OciBootError::NoMatch {
        expected: expected.to_hex(),
        tried,
        modes: XattrFilter::ALL
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The id the boot image of `img` would have in format `version` with
/// xattr mode `filter` (nothing is stored).
pub fn compute_boot_id(
    repo: &Repository,
    img: &OciImage,
    filter: XattrFilter,
    version: u32,
) -> Result<Digest, OciBootError> {
    let (fs, _) = boot_tree(repo, img, filter)?;
    Ok(digest_bytes(repo.algorithm(), &image_bytes(&fs, version)?))
}

/// What [`add_formats`] built for one tagged image.
#[derive(Debug, Clone)]
pub struct UpgradedImage {
    /// The tag.
    pub tag: String,
    /// Named refs added (`composefs.image…` → image).
    pub added: Vec<(String, Digest)>,
}

/// Builds the images of `versions` that each tagged OCI image lacks — its
/// plain image, and its boot image in every xattr mode it already has one
/// for — and names them in its config stream (the migration path after
/// [`Repository::add_erofs_formats`]).
pub fn add_formats(
    repo: &Repository,
    versions: &[u32],
) -> Result<Vec<UpgradedImage>, OciBootError> {
    let mut out = Vec::new();
    for (tag, _) in cfs_oci::store::list_tags(repo)? {
        let img = OciImage::open(repo, &tag)?;
        if img.config.is_none() {
            continue;
        }
        let mut added = Vec::new();
        if versions.iter().any(|&v| img.linked_image(v).is_none()) {
            let fs = img.build_tree(repo, XattrFilter::AllowlistOnly)?;
            for &v in versions {
                if img.linked_image(v).is_none() {
                    let digest = repo.commit_image_object(&image_bytes(&fs, v)?)?;
                    added.push((cfs_oci::store::image_ref_name(v).to_owned(), digest));
                }
            }
        }
        for filter in XattrFilter::ALL {
            let has_boot = repo
                .erofs_versions()
                .iter()
                .any(|&v| img.boot_image(v, filter).is_some());
            if !has_boot
                || versions
                    .iter()
                    .all(|&v| img.boot_image(v, filter).is_some())
            {
                continue;
            }
            let (fs, _) = boot_tree(repo, &img, filter)?;
            for &v in versions {
                if img.boot_image(v, filter).is_none() {
                    let digest = repo.commit_image_object(&image_bytes(&fs, v)?)?;
                    added.push((boot_ref_name(v, filter), digest));
                }
            }
        }
        if !added.is_empty() {
            link_config_refs(repo, &img, &added)?;
            out.push(UpgradedImage { tag, added });
        }
    }
    Ok(out)
}
