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
