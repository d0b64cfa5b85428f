//! Errors of repository operations.

use std::io;
use std::path::PathBuf;

use crate::erofs::reader::ReadError;
use crate::erofs::writer::WriteError;
use crate::splitstream::SplitStreamError;
use crate::verity::Digest;

/// A failure of a repository operation. Every variant names the repository
/// path (or the entry inside it) it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The directory holds neither `meta.json` nor `objects/`.
    #[error("{}: not a composefs repository (no meta.json or objects/); create one with `cfsctl init`", path.display())]
    NotInitialized {
        /// The repository path.
        path: PathBuf,
    },
    /// An image to import references objects the repository does not have.
    #[error("{}: the image references {count} object(s) this repository does not have (e.g. {example}); store them first, or allow it explicitly (--allow-missing-objects)", path.display())]
    MissingObjects {
        /// The repository path.
        path: PathBuf,
        /// How many are missing.
        count: usize,
        /// One of them.
        example: String,
    },
    /// A directory of the repository is not a real directory inside it (a
    /// symlink, absolute or relative, or another kind of file).
    #[error("{}: {found}, expected a directory of the repository; refusing to follow it (a repository's own directories must be real directories inside it)", path.display())]
    Layout {
        /// The offending path.
        path: PathBuf,
        /// What is there instead ("is a symbolic link", …).
        found: String,
    },
    /// A system call on a repository path failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `meta.json` is not valid.
    #[error("{}: invalid meta.json: {message}", path.display())]
    Meta {
        /// Path of `meta.json`.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The repository names incompatible features this tool does not know.
    #[error("{}: repository uses incompatible features this version of cfs does not support: {}", path.display(), features.join(", "))]
    IncompatibleFeatures {
        /// Path of `meta.json`.
        path: PathBuf,
        /// The unknown features.
        features: Vec<String>,
    },
    /// A write to a repository that is open read-only.
    #[error("{}: repository is read-only: {reason}", path.display())]
    ReadOnly {
        /// The repository path.
        path: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// fs-verity was required but the repository is insecure.
    #[error("{}: repository is insecure (meta.json has no fs-verity) but fs-verity is required", path.display())]
    VerityRequired {
        /// The repository path.
        path: PathBuf,
    },
    /// A secure repository cannot be created on a filesystem without fs-verity.
    #[error("{}: filesystem does not support fs-verity; use --insecure to create a repository without it", path.display())]
    VerityUnsupported {
        /// The repository path.
        path: PathBuf,
    },
    /// The repository exists with a different configuration.
    #[error("{}: repository already initialized with different configuration ({existing}); cannot re-initialize with ({requested})", path.display())]
    ConfigMismatch {
        /// The repository path.
        path: PathBuf,
        /// The existing configuration, in words.
        existing: String,
        /// The requested configuration, in words.
        requested: String,
    },
    /// A named image, stream, ref or object does not exist.
    #[error("{}: no such {what}: {name}", path.display())]
    NotFound {
        /// The repository path.
        path: PathBuf,
        /// `image`, `stream`, `ref`, `object`.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A short id that more than one image or stream id starts with.
    #[error("{}: {prefix} is ambiguous: {} {what} ids start with it: {}", path.display(), matches.len(), matches.join(", "))]
    Ambiguous {
        /// The repository path.
        path: PathBuf,
        /// `image`, `stream`.
        what: &'static str,
        /// The prefix given.
        prefix: String,
        /// Every id it matches.
        matches: Vec<String>,
    },
    /// A name that cannot be used (empty, absolute, `..`, NUL, …).
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `image`, `stream`, `ref`.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An image to import references objects named with another digest
    /// algorithm than the repository's (it could never be mounted from it).
    #[error(
        "{}: the image references {image} objects (e.g. {example}) but this is a {repository} repository; \
         import it into a repository created with the image's algorithm",
        path.display()
    )]
    ImageAlgorithm {
        /// The image (`<input>` for a stream).
        path: PathBuf,
        /// The algorithm of the image's object references.
        image: crate::verity::Algorithm,
        /// The repository's algorithm.
        repository: crate::verity::Algorithm,
        /// One offending reference.
        example: String,
    },
    /// An object's content does not have the digest it is stored under.
    #[error(
        "{}: fs-verity content mismatch: expected {}, found {}",
        path.display(),
        expected.to_prefixed(),
        found.to_prefixed()
    )]
    DigestMismatch {
        /// The object path.
        path: PathBuf,
        /// The digest it should have.
        expected: Box<Digest>,
        /// The digest it has.
        found: Box<Digest>,
    },
    /// The repository's EROFS format cannot be written by cfs.
    #[error("{}: repository is configured for EROFS format V{version}, which cfs cannot write (only V0, V1 and V2)", path.display())]
    UnsupportedErofsFormat {
        /// The repository path.
        path: PathBuf,
        /// The configured format.
        version: u32,
    },
    /// An EROFS image could not be read.
    #[error("{}: {source}", path.display())]
    Image {
        /// The image path.
        path: PathBuf,
        /// The error.
        #[source]
        source: ReadError,
    },
    /// A source directory could not be read into a tree.
    #[error("{}: {source}", path.display())]
    Build {
        /// The source directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: crate::tree::BuildError,
    },
    /// A source tree could not be normalised.
    #[error("{}: {source}", path.display())]
    Transform {
        /// The source directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: crate::tree::TransformError,
    },
    /// An EROFS image could not be written.
    #[error("cannot write image: {0}")]
    ImageWrite(#[from] WriteError),
    /// A split stream could not be read or written.
    #[error("{}: {source}", path.display())]
    Stream {
        /// The stream path or name.
        path: PathBuf,
        /// The error.
        #[source]
        source: SplitStreamError,
    },
}

impl RepoError {
    /// A [`RepoError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        RepoError::Io {
            path: path.into(),
            source: source.into(),
        }
    }

    /// True for [`RepoError::NotFound`] and for I/O errors of kind `NotFound`.
    pub fn is_not_found(&self) -> bool {
        match self {
            RepoError::NotFound { .. } => true,
            RepoError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Result of repository operations.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;
