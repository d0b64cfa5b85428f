//! Inode order and directory entries of the image.
//!
//! Every directory of the image lists its tree entries plus `.` and `..`
//! (C `rewrite_tree_node_for_erofs` adds them as hard links), and the root also
//! lists the 256 whiteout stubs `00`…`ff` whose names are not taken by a real
//! entry (C `add_overlay_whiteouts`). All of them are kept in one `strcmp`
//! order, so `.` and `..` are not necessarily first (`-x` < `.` < `..` < `00`).
//! The extra entries are not materialised: [`Order::children`] merges them into
//! the tree's sorted entries on the fly.
//!
//! Inodes are numbered breadth-first from the root (C `lcfs_compute_tree`): a
//! FIFO queue, each dequeued directory enqueuing its children in name order,
//! hard links (`alias` entries, `.` and `..`) skipped, stubs included. The
//! BFS index is the inode number `i_ino`; the number of BFS nodes is the
//! superblock's `inos`. Directory link counts are recomputed here as
//! 2 + the number of subdirectories (C `lcfs_compute_tree`).

use super::rewrite::{Kind, View, view_of};
use crate::tree::{DirEntry, FileSystem, InodeId, Mtime};

/// Marker for "no BFS index".
pub(super) const NONE: u32 = u32::MAX;

/// A node of the image: a tree inode or one of the root's whiteout stubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    /// A tree inode.
    Inode(InodeId),
    /// The stub named by the two lowercase hex digits of the byte.
    Stub(u8),
}

/// What a directory entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// The primary name of an inode (it is placed here in BFS).
    Primary(InodeId),
    /// A hard link to an inode placed elsewhere.
    Alias(InodeId),
    /// `.`
    Dot,
    /// `..` (the root's `..` is the root).
    DotDot,
    /// A root whiteout stub.
    Stub(u8),
}

/// One directory entry of the image.
#[derive(Debug, Clone, Copy)]
pub(super) struct Child<'a> {
    /// The entry name.
    pub(super) name: &'a [u8],
    /// What it names.
    pub(super) target: Target,
}

/// An entry that the image has but the tree does not.
#[derive(Debug, Clone, Copy)]
struct Extra {
    name: &'static [u8],
    target: Target,
}

/// The names `00`..`ff`.
static HEX_NAMES: [[u8; 2]; 256] = hex_names();

const fn hex_names() -> [[u8; 2]; 256] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut names = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        names[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    names
}

/// The name of stub `k`.
pub(super) fn stub_name(k: u8) -> &'static [u8] {
    &HEX_NAMES[usize::from(k)]
}

const DOTS: [Extra; 2] = [
    Extra {
        name: b".",
        target: Target::Dot,
    },
    Extra {
        name: b"..",
        target: Target::DotDot,
    },
];

/// The BFS order of the image and the per-node facts found while walking it.
#[derive(Debug)]
pub(super) struct Order<'a> {
    /// Nodes in BFS order; `nodes[0]` is the root.
    pub(super) nodes: Vec<Node>,
    /// BFS index of each node's parent directory (the root's parent is itself).
    pub(super) parent: Vec<u32>,
    /// The inode fields of each node after the rewrite (directory link counts
    /// recomputed), so that later passes read them in order.
    pub(super) views: Vec<View<'a>>,
    /// Whether each node is a directory whose entries include a whiteout
    /// (by primary name); such directories get the overlayfs whiteout markers.
    pub(super) holds_whiteout: Vec<bool>,
    /// BFS index of every tree inode ([`NONE`] if unreachable).
    pub(super) index_of: Vec<u32>,
    /// BFS index of every stub ([`NONE`] if a real root entry has its name).
    pub(super) stub_index: [u32; 256],
    /// Whether any inode reachable by a primary name is a whiteout.
    pub(super) any_whiteout: bool,
    /// The minimum mtime of all nodes (the superblock's build time).
    pub(super) build_time: Mtime,
    /// `.`, `..` and the stubs of the root, sorted.
    root_extras: Vec<Extra>,
}

impl<'a> Order<'a> {
    /// Walks `fs` (which must have passed [`FileSystem::validate`]).
    pub(super) fn build(fs: &'a FileSystem) -> Order<'a> {
        let root_entries = fs.directory(fs.root()).map_or(&[][..], |d| d.entries());
        let mut root_extras = DOTS.to_vec();
        for k in 0..=255u8 {
            let name = stub_name(k);
            if root_entries
                .binary_search_by(|e| (*e.name).cmp(name))
                .is_err()
            {
                root_extras.push(Extra {
                    name,
                    target: Target::Stub(k),
                });
            }
        }

        let mut order = Order {
            nodes: Vec::with_capacity(fs.len() + 256),
            parent: Vec::with_capacity(fs.len() + 256),
            views: Vec::with_capacity(fs.len() + 256),
            holds_whiteout: Vec::with_capacity(fs.len() + 256),
            index_of: vec![NONE; fs.len()],
            stub_index: [NONE; 256],
            any_whiteout: false,
            build_time: fs.inode(fs.root()).stat.mtime,
            root_extras: Vec::new(),
        };
        order.push(fs, Node::Inode(fs.root()), 0);
        let mut head = 0;
        while head < order.nodes.len() {
            if let Node::Inode(id) = order.nodes[head]
                && fs.directory(id).is_some()
            {
                let extras: &[Extra] = if head == 0 { &root_extras } else { &DOTS };
                order.enqueue_children(fs, head, extras);
            }
            head += 1;
        }
        order.root_extras = root_extras;
        order
    }

    fn push(&mut self, fs: &'a FileSystem, node: Node, parent: usize) -> bool {
        let index = self.nodes.len() as u32;
        match node {
            Node::Inode(id) => self.index_of[id.index()] = index,
            Node::Stub(k) => self.stub_index[usize::from(k)] = index,
        }
        let view = view_of(fs, node);
        self.build_time = self.build_time.min(view.mtime);
        self.nodes.push(node);
        self.parent.push(parent as u32);
        self.views.push(view);
        self.holds_whiteout.push(false);
        if matches!(view.kind, Kind::Whiteout) {
            self.any_whiteout = true;
            self.holds_whiteout[parent] = true;
        }
        matches!(view.kind, Kind::Directory)
    }

    fn enqueue_children(&mut self, fs: &'a FileSystem, dir: usize, extras: &[Extra]) {
        let mut subdirs = 0u32;
        let Node::Inode(id) = self.nodes[dir] else {
            return;
        };
        let entries = fs.directory(id).map_or(&[][..], |d| d.entries());
        for child in Merge::new(entries, extras) {
            let node = match child.target {
                Target::Primary(cid) => Node::Inode(cid),
                Target::Stub(k) => Node::Stub(k),
                Target::Alias(_) | Target::Dot | Target::DotDot => continue,
            };
            // A validated tree reaches every inode through one primary name;
            // the guard keeps a malformed one from looping.
            if let Node::Inode(cid) = node
                && self.index_of[cid.index()] != NONE
            {
                continue;
            }
            if self.push(fs, node, dir) {
                subdirs += 1;
            }
        }
        self.views[dir].nlink = 2 + subdirs;
    }

    /// The entries of directory node `dir` in image order. Empty for
    /// non-directories.
    pub(super) fn children<'f>(&self, fs: &'f FileSystem, dir: usize) -> Merge<'f, '_> {
        let Some(Node::Inode(id)) = self.nodes.get(dir).copied() else {
            return Merge::new(&[], &[]);
        };
        let Some(d) = fs.directory(id) else {
            return Merge::new(&[], &[]);
        };
        let extras: &[Extra] = if dir == 0 { &self.root_extras } else { &DOTS };
        Merge::new(d.entries(), extras)
    }

    /// BFS index of what `target`, an entry of directory node `dir`, names.
    pub(super) fn resolve(&self, dir: usize, target: Target) -> u32 {
        match target {
            Target::Primary(id) | Target::Alias(id) => {
                self.index_of.get(id.index()).copied().unwrap_or(NONE)
            }
            Target::Dot => dir as u32,
            Target::DotDot => self.parent.get(dir).copied().unwrap_or(NONE),
            Target::Stub(k) => self.stub_index[usize::from(k)],
        }
    }
}

/// Merges a directory's sorted tree entries with its sorted extra entries.
#[derive(Debug)]
pub(super) struct Merge<'f, 'o> {
    entries: &'f [DirEntry],
    extras: &'o [Extra],
}

impl<'f, 'o> Merge<'f, 'o> {
    fn new(entries: &'f [DirEntry], extras: &'o [Extra]) -> Self {
        Merge { entries, extras }
    }
}

impl<'f> Iterator for Merge<'f, '_> {
    type Item = Child<'f>;

    fn next(&mut self) -> Option<Child<'f>> {
        let take_entry = match (self.entries.first(), self.extras.first()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(e), Some(x)) => *e.name < *x.name,
        };
        if take_entry {
            let (e, rest) = self.entries.split_first()?;
            self.entries = rest;
            let target = if e.alias {
                Target::Alias(e.inode)
            } else {
                Target::Primary(e.inode)
            };
            Some(Child {
                name: &e.name,
                target,
            })
        } else {
            let (x, rest) = self.extras.split_first()?;
            self.extras = rest;
            Some(Child {
                name: x.name,
                target: x.target,
            })
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.entries.len() + self.extras.len();
        (n, Some(n))
    }
}
