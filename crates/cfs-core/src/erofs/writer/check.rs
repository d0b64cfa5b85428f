//! Checks done before anything is laid out.
//!
//! - Version bounds as C `lcfs_write_to`: a bound above 1 is EINVAL, a maximum
//!   below the minimum is raised to it.
//! - Tree invariants ([`FileSystem::validate`]); a hard link to an inode that has
//!   no primary name is EINVAL as in C `lcfs_compute_tree`.
//! - Per reachable inode, the limits C enforces while a tree is built, so that
//!   trees from other producers cannot yield images C could never write:
//!   - an external file needing more than 1024 chunks (> 2^53 bytes) is EFBIG
//!     (C `lcfs_node_validate`, with the chunk count of
//!     `erofs_compute_chunking`, whose `DIV_ROUND_UP` wraps: a size of 2^64−1
//!     gives 0 chunks and is accepted);
//!   - symlink targets of 1..=4095 bytes without NUL (C
//!     `lcfs_node_set_symlink_payload`), object paths shorter than 4096 bytes
//!     without NUL (C `lcfs_node_set_payload`), inline content of at most 5000
//!     bytes (C `lcfs_node_set_content`);
//!   - xattr names of 1..=255 bytes without NUL, values of at most 65535 bytes,
//!     and the per-inode budget 12 + Σ(7 + name + value) ≤ 32767 of C
//!     `lcfs_node_set_xattr_internal` (`LCFS_INODE_EXTERNAL_XATTR_MAX`).

use super::WriteError;
use super::order::{NONE, Order};
use crate::erofs::format::MAX_FORMAT_VERSION;
use crate::tree::{FileSystem, InodeId, InodeKind, RegularFile, TreeError};

use crate::limits::{
    MAX_DEPTH, MAX_INLINE as INLINE_CONTENT_MAX, MAX_XATTR_NAME as XATTR_NAME_MAX,
    MAX_XATTR_VALUE as XATTR_VALUE_MAX, PATH_MAX, XATTR_BUDGET,
};
/// Budget cost of the xattr body header, charged with the first xattr.
const XATTR_BUDGET_HEADER: usize = 12;
/// Budget cost of one xattr besides its name and value.
const XATTR_BUDGET_ENTRY: usize = 7;
/// Most chunks an external file may have (`LCFS_MAX_NONINLINE_CHUNKS`).
pub(super) const MAX_CHUNKS: u64 = 1024;

/// The effective version bounds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) min: u32,
    pub(super) max: u32,
}

/// C `lcfs_write_to`'s version checks.
pub(super) fn version_bounds(opts: &super::WriteOptions) -> Result<Bounds, WriteError> {
    if opts.min_version > MAX_FORMAT_VERSION || opts.max_version > MAX_FORMAT_VERSION {
        return Err(WriteError::InvalidVersion {
            min_version: opts.min_version,
            max_version: opts.max_version,
        });
    }
    Ok(Bounds {
        min: opts.min_version,
        max: opts.max_version.max(opts.min_version),
    })
}

/// Tree invariants.
pub(super) fn tree(fs: &FileSystem) -> Result<(), WriteError> {
    fs.validate().map_err(|e| match e {
        TreeError::AliasWithoutTarget { path } => WriteError::AliasTargetMissing { path },
        e => WriteError::Tree(e),
    })
}

/// Directory nesting: no directory deeper than [`MAX_DEPTH`] (the root is
/// level 0), the limit every reader enforces.
pub(super) fn depth(fs: &FileSystem) -> Result<(), WriteError> {
    let mut level = vec![0usize; fs.len()];
    let mut entered = vec![false; fs.len()];
    entered[fs.root().index()] = true;
    let mut pending = vec![fs.root()];
    while let Some(dir) = pending.pop() {
        let Some(d) = fs.directory(dir) else { continue };
        for entry in d.entries() {
            if entry.alias || fs.directory(entry.inode).is_none() {
                continue;
            }
            if std::mem::replace(&mut entered[entry.inode.index()], true) {
                continue;
            }
            let l = level[dir.index()] + 1;
            if l > MAX_DEPTH {
                return Err(WriteError::TooDeep {
                    path: path_of(fs, entry.inode),
                    limit: MAX_DEPTH,
                });
            }
            level[entry.inode.index()] = l;
            pending.push(entry.inode);
        }
    }
    Ok(())
}

/// Chunk size bits of an external file of `size` bytes (C
/// `erofs_compute_chunk_bitsize`): the bit length of `size − 1`, clamped to
/// 12..=43.
pub(super) fn chunk_bits(size: u64) -> u32 {
    let bits = u64::BITS - size.wrapping_sub(1).leading_zeros();
    bits.clamp(12, 12 + 31)
}

/// Chunk count of an external file (C `DIV_ROUND_UP` in 64 bits, wrapping).
pub(super) fn chunk_count(size: u64) -> u64 {
    let chunk = 1u64 << chunk_bits(size);
    size.wrapping_add(chunk - 1) / chunk
}

/// Per-inode limits, for every inode reachable by a primary name (visited in
/// arena order, which is memory order). Returns an upper bound of the number
/// of xattrs the image will have.
pub(super) fn inodes(fs: &FileSystem, order: &Order<'_>) -> Result<usize, WriteError> {
    // The stubs' copies of the root's SELinux label and the root's opaque=y.
    let mut xattrs = 256 + 1;
    for (i, &bfs) in order.index_of.iter().enumerate() {
        if bfs != NONE {
            xattrs += inode(fs, InodeId(i as u32))?;
            // A directory holding a whiteout gets up to four markers.
            xattrs += if order.holds_whiteout[bfs as usize] {
                4
            } else {
                0
            };
        }
    }
    Ok(xattrs)
}

/// Checks one inode; returns an upper bound of its xattrs in the image.
fn inode(fs: &FileSystem, id: InodeId) -> Result<usize, WriteError> {
    let inode = fs.inode(id);
    match &inode.kind {
        InodeKind::Symlink(target)
            if target.is_empty() || target.len() >= PATH_MAX || target.contains(&0) =>
        {
            return Err(WriteError::BadSymlink {
                path: path_of(fs, id),
                len: target.len(),
            });
        }
        InodeKind::Regular(RegularFile::Inline(data)) if data.len() > INLINE_CONTENT_MAX => {
            return Err(WriteError::InlineTooLarge {
                path: path_of(fs, id),
                len: data.len(),
            });
        }
        InodeKind::Regular(RegularFile::External(ext)) if ext.size > 0 => {
            if chunk_count(ext.size) > MAX_CHUNKS {
                return Err(WriteError::FileTooLarge {
                    path: path_of(fs, id),
                    size: ext.size,
                });
            }
            if let Some(p) = &ext.payload
                && (p.len() >= PATH_MAX || p.contains(&0))
            {
                return Err(WriteError::BadPayload {
                    path: path_of(fs, id),
                    len: p.len(),
                });
            }
        }
        _ => {}
    }
    let xattrs = &inode.stat.xattrs;
    let generated = match &inode.kind {
        InodeKind::Regular(RegularFile::External(_)) | InodeKind::CharDevice(0) => 2,
        _ => 0,
    };
    if xattrs.is_empty() {
        return Ok(generated);
    }
    let mut used = XATTR_BUDGET_HEADER;
    for x in xattrs {
        if x.name.is_empty() || x.name.len() > XATTR_NAME_MAX || x.name.contains(&0) {
            return Err(WriteError::BadXattrName {
                path: path_of(fs, id),
                name: String::from_utf8_lossy(&x.name).into_owned(),
            });
        }
        if x.value.len() > XATTR_VALUE_MAX {
            return Err(WriteError::XattrValueTooLarge {
                path: path_of(fs, id),
                name: String::from_utf8_lossy(&x.name).into_owned(),
                len: x.value.len(),
            });
        }
        used += XATTR_BUDGET_ENTRY + x.name.len() + x.value.len();
    }
    if used > XATTR_BUDGET {
        return Err(WriteError::XattrBudget {
            path: path_of(fs, id),
            used,
            max: XATTR_BUDGET,
        });
    }
    Ok(xattrs.len() + generated)
}

/// The absolute path of inode `id` by its primary name (for error messages;
/// walks the tree).
pub(super) fn path_of(fs: &FileSystem, id: InodeId) -> String {
    if id == fs.root() {
        return "/".to_owned();
    }
    let mut found = None;
    fs.walk(|path, entry| {
        if found.is_none() && entry.inode == id && !entry.alias {
            found = Some(String::from_utf8_lossy(path).into_owned());
        }
    });
    found.unwrap_or_else(|| format!("<inode {}>", id.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_math() {
        assert_eq!(chunk_bits(1), 12);
        assert_eq!(chunk_bits(100), 12);
        assert_eq!(chunk_bits(4096), 12);
        assert_eq!(chunk_bits(4097), 13);
        assert_eq!(chunk_bits(123_456), 17);
        assert_eq!(chunk_bits(1 << 20), 20);
        assert_eq!(chunk_bits(u64::MAX), 43);
        assert_eq!(chunk_count(100), 1);
        assert_eq!(chunk_count(1 << 43), 1);
        assert_eq!(chunk_count((1 << 43) + 1), 2);
        assert_eq!(chunk_count(9_000_000_000_000_000), 1024);
        assert_eq!(chunk_count(1 << 53), 1024);
        assert_eq!(chunk_count((1 << 53) + 1), 1025);
        assert_eq!(chunk_count(9_500_000_000_000_000), 1081);
        // C's DIV_ROUND_UP wraps for sizes near 2^64.
        assert_eq!(chunk_count(u64::MAX), 0);
    }
}
