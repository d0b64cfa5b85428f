//! The overlayfs rewrite of the tree, as a per-node view.
//!
//! C `lcfs_write_erofs_to` deep-clones the tree and rewrites the clone
//! (`rewrite_tree_for_erofs`); here the same result is computed for one node
//! at a time from the untouched caller's tree:
//!
//! - escaping (C `add_overlayfs_xattrs`): every user xattr named
//!   `trusted.overlay.<rest>` becomes `trusted.overlay.overlay.<rest>` (one more
//!   level each time; `user.overlay.*` is never touched);
//! - external regular files (size > 0, content in the object store) get
//!   `trusted.overlay.metacopy` = `00 24 00 01` followed by the SHA-256 digest
//!   (`00 44 00 02` and the digest for SHA-512; empty without a digest) and, if
//!   the object path is not empty, `trusted.overlay.redirect` = `/` + path;
//! - a whiteout (character device 0:0) becomes an empty regular file with its
//!   permission bits and `trusted.overlay.overlay.whiteout` = `user.overlay.whiteout`
//!   = ""; the directory holding it (by primary name) gets
//!   `trusted.overlay.overlay.whiteouts` = `user.overlay.whiteouts` = "" and, in
//!   format version 1, `trusted.overlay.overlay.opaque` = `user.overlay.opaque` = "x";
//! - the root gets `trusted.overlay.opaque` = "y" (C `set_overlay_opaque`);
//! - the root's 256 whiteout stubs (C `add_overlay_whiteouts`) are character
//!   devices 0:0 with mode 0644, nlink 1, the root's uid, gid and mtime, and a
//!   copy of the root's `security.selinux` only. They are added after the
//!   whiteout escaping, so they stay real whiteouts.
//!
//! Generated xattrs replace user xattrs of the same name (C
//! `lcfs_node_set_xattr` semantics): a user `user.overlay.opaque` on a directory
//! holding a whiteout is overwritten with "x" in version 1. They are not
//! counted against the per-inode budget: C resets its budget counter when it
//! clones the tree (`lcfs_node_clone` does not copy it), and the generated
//! xattrs alone stay far below the limit.
//!
//! Finally the xattrs of every node are sorted by name (C `cmp_xattr`, a
//! `strcmp` of the full names).

use super::WriteError;
use super::check::path_of;
use super::order::{Node, Order};
use super::xref::{ValueHead, XRef};
use crate::erofs::format::file_type;
use crate::tree::{ExternalFile, FileSystem, InodeKind, Mtime, RegularFile};
use crate::verity::Algorithm;

const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
const METACOPY: &[u8] = b"trusted.overlay.metacopy";
const REDIRECT: &[u8] = b"trusted.overlay.redirect";
const OPAQUE: &[u8] = b"trusted.overlay.opaque";
const SELINUX: &[u8] = b"security.selinux";

const S_IFDIR: u16 = 0o040000;
const S_IFREG: u16 = 0o100000;
const S_IFLNK: u16 = 0o120000;
const S_IFCHR: u16 = 0o020000;
const S_IFBLK: u16 = 0o060000;
const S_IFIFO: u16 = 0o010000;
const S_IFSOCK: u16 = 0o140000;

/// What a node is in the image.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind<'a> {
    /// A directory.
    Directory,
    /// A regular file of size 0.
    Empty,
    /// A regular file whose (non-empty) content is stored in the image.
    Inline(&'a [u8]),
    /// A regular file of `size` > 0 bytes whose content is in the object store.
    External(u64),
    /// A whiteout escaped to an empty regular file.
    Whiteout,
    /// A symlink and its target.
    Symlink(&'a [u8]),
    /// A character (or, with `block`, block) device.
    Device {
        /// Device number.
        rdev: u32,
        /// Block rather than character device.
        block: bool,
    },
    /// A FIFO.
    Fifo,
    /// A socket.
    Socket,
    /// A root whiteout stub (character device 0:0).
    Stub,
}

impl Kind<'_> {
    /// The `S_IFMT` bits of `i_mode`.
    pub(super) fn type_bits(&self) -> u16 {
        match self {
            Kind::Directory => S_IFDIR,
            Kind::Empty | Kind::Inline(_) | Kind::External(_) | Kind::Whiteout => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
            Kind::Device { block: false, .. } | Kind::Stub => S_IFCHR,
            Kind::Device { block: true, .. } => S_IFBLK,
            Kind::Fifo => S_IFIFO,
            Kind::Socket => S_IFSOCK,
        }
    }

    /// The directory entry file type (`EROFS_FT_*`).
    pub(super) fn file_type(&self) -> u8 {
        match self {
            Kind::Directory => file_type::DIR,
            Kind::Empty | Kind::Inline(_) | Kind::External(_) | Kind::Whiteout => {
                file_type::REG_FILE
            }
            Kind::Symlink(_) => file_type::SYMLINK,
            Kind::Device { block: false, .. } | Kind::Stub => file_type::CHRDEV,
            Kind::Device { block: true, .. } => file_type::BLKDEV,
            Kind::Fifo => file_type::FIFO,
            Kind::Socket => file_type::SOCK,
        }
    }

    /// `st_size` of a non-directory (C `node->inode.st_size` after the rewrite).
    pub(super) fn file_size(&self) -> u64 {
        match self {
            Kind::Inline(data) => data.len() as u64,
            Kind::External(size) => *size,
            Kind::Symlink(target) => target.len() as u64,
            _ => 0,
        }
    }
}

/// The inode fields of a node after the rewrite.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    /// Type and data.
    pub(super) kind: Kind<'a>,
    /// Full `st_mode` (type bits | permission bits).
    pub(super) mode: u16,
    /// Owner.
    pub(super) uid: u32,
    /// Group.
    pub(super) gid: u32,
    /// Modification time.
    pub(super) mtime: Mtime,
    /// Link count (recomputed for directories).
    pub(super) nlink: u32,
}

/// The view of `node`. Directories get nlink 2 here; [`Order`] counts their
/// subdirectories.
pub(super) fn view_of(fs: &FileSystem, node: Node) -> View<'_> {
    match node {
        Node::Stub(_) => {
            let root = &fs.inode(fs.root()).stat;
            View {
                kind: Kind::Stub,
                mode: S_IFCHR | 0o644,
                uid: root.uid,
                gid: root.gid,
                mtime: root.mtime,
                nlink: 1,
            }
        }
        Node::Inode(id) => {
            let inode = fs.inode(id);
            let kind = match &inode.kind {
                InodeKind::Directory(_) => Kind::Directory,
                InodeKind::Regular(RegularFile::Inline(data)) if data.is_empty() => Kind::Empty,
                InodeKind::Regular(RegularFile::Inline(data)) => Kind::Inline(data),
                InodeKind::Regular(RegularFile::External(ext)) if ext.size == 0 => Kind::Empty,
                InodeKind::Regular(RegularFile::External(ext)) => Kind::External(ext.size),
                InodeKind::Symlink(target) => Kind::Symlink(target),
                InodeKind::CharDevice(0) => Kind::Whiteout,
                InodeKind::CharDevice(rdev) => Kind::Device {
                    rdev: *rdev,
                    block: false,
                },
                InodeKind::BlockDevice(rdev) => Kind::Device {
                    rdev: *rdev,
                    block: true,
                },
                InodeKind::Fifo => Kind::Fifo,
                InodeKind::Socket => Kind::Socket,
            };
            View {
                kind,
                mode: kind.type_bits() | (inode.stat.mode & 0o7777),
                uid: inode.stat.uid,
                gid: inode.stat.gid,
                mtime: inode.stat.mtime,
                nlink: if matches!(kind, Kind::Directory) {
                    2
                } else {
                    inode.nlink
                },
            }
        }
    }
}

/// What the xattr rewrite needs besides the node itself.
#[derive(Debug)]
pub(super) struct XattrContext<'a, 'o> {
    fs: &'a FileSystem,
    order: &'o Order<'a>,
    version: u32,
    root_selinux: Option<&'a [u8]>,
}

impl<'a, 'o> XattrContext<'a, 'o> {
    /// The context for writing format `version`.
    pub(super) fn new(fs: &'a FileSystem, order: &'o Order<'a>, version: u32) -> Self {
        let root_selinux = fs.inode(fs.root()).stat.xattrs.get(SELINUX);
        XattrContext {
            fs,
            order,
            version,
            root_selinux,
        }
    }

    /// The effective xattrs of BFS node `bfs`, sorted by name, into `out`.
    pub(super) fn collect(&self, bfs: usize, out: &mut Vec<XRef<'a>>) -> Result<(), WriteError> {
        out.clear();
        let id = match self.order.nodes[bfs] {
            Node::Stub(_) => {
                if let Some(label) = self.root_selinux {
                    out.push(XRef::raw(SELINUX, label));
                }
                return Ok(());
            }
            Node::Inode(id) => id,
        };
        let inode = self.fs.inode(id);
        for x in inode.stat.xattrs.iter() {
            out.push(match x.name.strip_prefix(OVERLAY_PREFIX) {
                Some(rest) => XRef::escaped(rest, &x.value),
                None => XRef::raw(&x.name, &x.value),
            });
        }
        let user = out.len();
        // The generated xattrs, in name order (distinct names, so they only
        // ever replace user xattrs).
        let mut generated = Generated::default();
        if bfs == 0 {
            generated.push(XRef::raw(OPAQUE, b"y"));
        }
        match &inode.kind {
            InodeKind::Regular(RegularFile::External(ext)) if ext.size > 0 => {
                generated.push(metacopy(ext));
                if let Some(payload) = ext.payload.as_deref().filter(|p| !p.is_empty()) {
                    generated.push(XRef::with_head(REDIRECT, ValueHead::Slash, payload));
                }
            }
            InodeKind::CharDevice(0) => {
                generated.push(XRef::escaped(b"whiteout", b""));
                generated.push(XRef::raw(b"user.overlay.whiteout", b""));
            }
            InodeKind::Directory(_) if self.order.holds_whiteout[bfs] => {
                if self.version >= 1 {
                    generated.push(XRef::escaped(b"opaque", b"x"));
                }
                generated.push(XRef::escaped(b"whiteouts", b""));
                if self.version >= 1 {
                    generated.push(XRef::raw(b"user.overlay.opaque", b"x"));
                }
                generated.push(XRef::raw(b"user.overlay.whiteouts", b""));
            }
            _ => {}
        }
        for x in generated.as_slice() {
            match out[..user].iter_mut().find(|y| y.same_name(x)) {
                Some(y) => *y = *x,
                None => out.push(*x),
            }
        }
        if user == 0 {
            debug_assert!(out.is_sorted_by(|a, b| a.cmp_name(b).is_lt()));
            return Ok(());
        }
        out.sort_unstable_by(|a, b| a.cmp_name(b));
        if user >= 2
            && let Some(pair) = out.windows(2).find(|w| w[0].same_name(&w[1]))
        {
            let mut name = pair[0].full_name_head().to_vec();
            name.extend_from_slice(pair[0].name);
            return Err(WriteError::DuplicateXattr {
                path: path_of(self.fs, id),
                name: String::from_utf8_lossy(&name).into_owned(),
            });
        }
        Ok(())
    }
}

fn metacopy(ext: &ExternalFile) -> XRef<'_> {
    let (value_head, value) = match &ext.digest {
        Some(d) => (
            match d.algorithm() {
                Algorithm::Sha256 => ValueHead::Meta256,
                Algorithm::Sha512 => ValueHead::Meta512,
            },
            d.as_bytes(),
        ),
        None => (ValueHead::None, &b""[..]),
    };
    XRef::with_head(METACOPY, value_head, value)
}

/// The generated xattrs of one node (at most 5).
#[derive(Debug, Default)]
struct Generated<'a> {
    items: [Option<XRef<'a>>; 5],
    len: usize,
}

impl<'a> Generated<'a> {
    fn push(&mut self, x: XRef<'a>) {
        self.items[self.len] = Some(x);
        self.len += 1;
    }

    fn as_slice(&self) -> impl Iterator<Item = &XRef<'a>> {
        self.items[..self.len].iter().flatten()
    }
}
