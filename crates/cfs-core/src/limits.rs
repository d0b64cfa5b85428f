//! The limits of a composefs tree, shared by every writer and every reader,
//! so that whatever one side accepts, the other accepts too.
//!
//! | limit | value | writers refuse (at write time) | readers refuse |
//! |---|---|---|---|
//! | [`MAX_DEPTH`] directory nesting (root = 0) | 2048 | `WriteError::TooDeep` | `ReadError::TooDeep` |
//! | [`MAX_NAME_LEN`] bytes per name | 255 | tree validation | directory parsing |
//! | [`PATH_MAX`] symlink target / object path, exclusive | 4096 | `BadSymlink`, `BadPayload` | inode parsing |
//! | [`MAX_INLINE`] inline file content | 5000 | `InlineTooLarge` | inode parsing |
//! | [`MAX_XATTR_NAME`] / [`MAX_XATTR_VALUE`] | 255 / 65535 | `BadXattrName`, `XattrValueTooLarge` | xattr parsing |
//! | [`XATTR_BUDGET`] 12 + Σ(7 + name + value) per inode | 32767 | `XattrBudget` | (the inode's xattr size field) |
//!
//! The depth limit follows from C's `PATH_MAX`: every level adds at least
//! two bytes (`/` and a name) to a path, so no C tool handles deeper trees.
//! The OCI import, `create-image` and `mkcomposefs` all build images through
//! the one writer, so a tree one of them accepts can always be read back —
//! by `gc`, `fsck`, `composefs-info` and the kernel.

/// Largest EROFS image any reader loads (`composefs-info`, `import-image`,
/// the repository's image reads), enforced while reading: a pipe or device
/// that never ends is cut off there, not buffered until memory runs out.
/// Composefs images hold metadata only; 4 GiB describes tens of millions of
/// files.
pub const MAX_IMAGE_LEN: u64 = 4 << 30;

/// Reads all of `src` into memory, refusing more than `limit` bytes (the
/// error names the limit; at most `limit + 1` bytes are ever read).
pub fn read_bounded(src: impl std::io::Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    copy_bounded(src, &mut data, limit)?;
    Ok(data)
}

/// Copies all of `src` to `out`, refusing more than `limit` bytes (at most
/// `limit + 1` are read); returns the count. For inputs spooled to disk.
pub fn copy_bounded(
    src: impl std::io::Read,
    out: &mut impl std::io::Write,
    limit: u64,
) -> std::io::Result<u64> {
    let n = std::io::copy(&mut src.take(limit.saturating_add(1)), out)?;
    if n > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {limit} bytes (the limit for this input)"),
        ));
    }
    Ok(n)
}

/// Deepest directory nesting (the root is level 0).
pub const MAX_DEPTH: usize = 2048;
/// Longest name of a directory entry (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// Symlink targets and object paths are shorter than this (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Largest inline file content (`LCFS_INLINE_CONTENT_MAX`).
pub const MAX_INLINE: usize = 5000;
/// Longest xattr name (`XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = 255;
/// Largest xattr value.
pub const MAX_XATTR_VALUE: usize = u16::MAX as usize;
/// Per-inode xattr budget (`LCFS_INODE_EXTERNAL_XATTR_MAX`).
pub const XATTR_BUDGET: usize = u16::MAX as usize / 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_input_is_cut_off_at_the_limit() {
        let e = read_bounded(std::io::repeat(0), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("more than 1048576 bytes"), "{e}");
        assert_eq!(read_bounded(&[1u8; 10][..], 10).unwrap().len(), 10);
    }
}
