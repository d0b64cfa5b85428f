//! Reversing the composefs overlay xattr rewrite (erofs-image.md §4 and §12
//! step 7): which stored xattrs are composefs metadata and what a regular
//! file really is.
//!
//! Mapping, in C's order, by full name:
//! - `trusted.overlay.redirect` on a regular file → object path (one leading
//!   `/` stripped, the real stored length); on other inodes dropped;
//! - `trusted.overlay.metacopy` on a regular file → digest; on other inodes
//!   dropped;
//! - `trusted.overlay.overlay.whiteout` on a regular file → the file is a
//!   whiteout (character device 0:0, keeping its permission bits; its data
//!   and other overlay xattrs are ignored, like in C — a user-supplied
//!   `trusted.overlay.whiteout` on any file produces this);
//! - `trusted.overlay.overlay.whiteouts`, `user.overlay.whiteout`,
//!   `user.overlay.whiteouts` → dropped (writer markers);
//! - `trusted.overlay.overlay.X` → `trusted.overlay.X` (one level unescaped);
//! - any other `trusted.overlay.*` (the root's `opaque=y`) → dropped;
//! - everything else kept.
//!
//! Checks beyond C (which silently ignores what it does not understand):
//! - no xattr name occurs twice on an inode (the kernel would only see one);
//! - the metacopy value is empty (no digest) or a valid overlayfs metacopy:
//!   version 0, length byte = value size, flags 0, algorithm SHA-256 (36
//!   bytes) or SHA-512 (68 bytes) — C drops other lengths, which would turn a
//!   verified file into an unverified one;
//! - the redirect is `/` + a non-empty path without NUL;
//! - redirect and metacopy only on chunk-based files (on a file with inline
//!   content overlayfs would serve the object, not the stored bytes), and a
//!   chunk-based file of size > 0 has a metacopy (without one overlayfs would
//!   not follow the redirect).

use super::walk::Budget;
use super::{InodeData, InodeRef, ReadError, XattrRef};
use crate::tree::FileType;
use crate::verity::{Algorithm, Digest};

const REDIRECT: &[u8] = b"trusted.overlay.redirect";
const METACOPY: &[u8] = b"trusted.overlay.metacopy";
const ESCAPED_WHITEOUT: &[u8] = b"trusted.overlay.overlay.whiteout";
const DROPPED: [&[u8]; 3] = [
    b"trusted.overlay.overlay.whiteouts",
    b"user.overlay.whiteout",
    b"user.overlay.whiteouts",
];
const ESCAPE_PREFIX: &[u8] = b"trusted.overlay.overlay.";
const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";

/// Budget units charged per stored xattr examined.
const XATTR_COST: u64 = 64;

/// A user-visible xattr after the mapping.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept<'a> {
    /// The stored entry.
    pub(super) entry: XattrRef<'a>,
    /// For an unescaped `trusted.overlay.overlay.X`: `X`.
    pub(super) unescaped: Option<&'a [u8]>,
}

impl Kept<'_> {
    /// The user-visible full name.
    pub(super) fn name(&self) -> Vec<u8> {
        match self.unescaped {
            Some(rest) => [OVERLAY_PREFIX, rest].concat(),
            None => self.entry.full_name(),
        }
    }
}

/// An inode's xattrs sorted into composefs metadata and user xattrs.
#[derive(Debug, Default)]
pub(super) struct Scanned<'a> {
    pub(super) redirect: Option<XattrRef<'a>>,
    pub(super) metacopy: Option<XattrRef<'a>>,
    pub(super) whiteout: bool,
    /// User-visible xattrs in on-disk order.
    pub(super) kept: Vec<Kept<'a>>,
}

fn name_cmp(a: &XattrRef<'_>, b: &XattrRef<'_>) -> std::cmp::Ordering {
    let a = a.prefix().iter().chain(a.suffix);
    let b = b.prefix().iter().chain(b.suffix);
    a.cmp(b)
}

/// Reads and classifies all xattrs of `inode`.
pub(super) fn scan<'a>(
    inode: &InodeRef<'a>,
    budget: &mut Budget,
) -> Result<Scanned<'a>, ReadError> {
    let mut all = Vec::new();
    for x in inode.xattrs()? {
        budget.charge(XATTR_COST)?;
        all.push(x?);
    }
    if all.len() > 1 {
        let mut sorted = all.clone();
        sorted.sort_unstable_by(name_cmp);
        if let Some(w) = sorted.windows(2).find(|w| name_cmp(&w[0], &w[1]).is_eq()) {
            return Err(ReadError::BadXattr {
                nid: inode.nid,
                offset: w[1].offset,
                reason: format!("duplicate xattr {:?}", w[1].display_name()),
            });
        }
    }
    let regular = inode.file_type == FileType::Regular;
    let mut out = Scanned::default();
    for entry in all {
        if entry.name_is(REDIRECT) {
            if regular {
                out.redirect = Some(entry);
            }
        } else if entry.name_is(METACOPY) {
            if regular {
                out.metacopy = Some(entry);
            }
        } else if regular && entry.name_is(ESCAPED_WHITEOUT) {
            out.whiteout = true;
        } else if DROPPED.iter().any(|n| entry.name_is(n)) {
        } else if let Some(rest) = entry.name_strip_prefix(ESCAPE_PREFIX) {
            out.kept.push(Kept {
                entry,
                unescaped: Some(rest),
            });
        } else if entry.name_strip_prefix(OVERLAY_PREFIX).is_none() {
            out.kept.push(Kept {
                entry,
                unescaped: None,
            });
        }
    }
    Ok(out)
}

/// What a regular file is, once its overlay xattrs are understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RegularKind<'a> {
    /// Content stored in the image (`InodeData::Flat` or empty).
    Inline,
    /// Content in the object store.
    External {
        size: u64,
        payload: Option<&'a [u8]>,
        digest: Option<Digest>,
    },
    /// An escaped whiteout: really a character device 0:0.
    Whiteout,
}

fn overlay_error(inode: &InodeRef<'_>, reason: String) -> ReadError {
    ReadError::BadOverlayXattr {
        nid: inode.nid,
        reason,
    }
}

/// Parses an overlayfs metacopy value.
pub(super) fn parse_metacopy(
    inode: &InodeRef<'_>,
    value: &[u8],
) -> Result<Option<Digest>, ReadError> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| {
        overlay_error(
            inode,
            format!(
                "malformed trusted.overlay.metacopy ({} bytes): {why}",
                value.len()
            ),
        )
    };
    let Some(([version, len, flags, algo], digest)) = value.split_first_chunk::<4>() else {
        return Err(bad("expected 0, 36 (SHA-256) or 68 (SHA-512) bytes"));
    };
    if *version != 0 || usize::from(*len) != value.len() || *flags != 0 {
        return Err(bad(&format!(
            "header {version} {len} {flags} {algo}, expected version 0, length byte = size, flags 0"
        )));
    }
    let algorithm = Algorithm::from_kernel_id(*algo)
        .ok_or_else(|| bad(&format!("unknown fs-verity algorithm {algo}")))?;
    if digest.len() != algorithm.digest_len() {
        return Err(bad(&format!(
            "{algorithm} digest must have {} bytes",
            algorithm.digest_len()
        )));
    }
    Digest::from_bytes(digest)
        .map(Some)
        .ok_or_else(|| bad("bad digest length"))
}

/// Parses an overlayfs redirect value into the object path.
pub(super) fn parse_redirect<'a>(
    inode: &InodeRef<'_>,
    value: &'a [u8],
) -> Result<&'a [u8], ReadError> {
    match value.strip_prefix(b"/") {
        Some(path) if !path.is_empty() && !path.contains(&0) => Ok(path),
        _ => Err(overlay_error(
            inode,
            format!(
                "malformed trusted.overlay.redirect {:?}: expected '/' followed by a path without NUL",
                String::from_utf8_lossy(value)
            ),
        )),
    }
}

/// Decides what the regular file `inode` is.
pub(super) fn regular_kind<'a>(
    inode: &InodeRef<'a>,
    scanned: &Scanned<'a>,
) -> Result<RegularKind<'a>, ReadError> {
    if scanned.whiteout {
        return Ok(RegularKind::Whiteout);
    }
    let overlay = scanned.redirect.is_some() || scanned.metacopy.is_some();
    match inode.data {
        InodeData::Chunked { .. } if inode.size > 0 => {
            let Some(metacopy) = scanned.metacopy else {
                return Err(overlay_error(
                    inode,
                    "chunk-based file without trusted.overlay.metacopy".into(),
                ));
            };
            let digest = parse_metacopy(inode, metacopy.value)?;
            let payload = match scanned.redirect {
                Some(r) => Some(parse_redirect(inode, r.value)?),
                None => None,
            };
            Ok(RegularKind::External {
                size: inode.size,
                payload,
                digest,
            })
        }
        InodeData::Chunked { .. } => Err(overlay_error(
            inode,
            "chunk-based file of size 0 (empty files are flat)".into(),
        )),
        _ if overlay => Err(overlay_error(
            inode,
            "trusted.overlay.redirect/metacopy on a file with inline content".into(),
        )),
        _ => Ok(RegularKind::Inline),
    }
}
