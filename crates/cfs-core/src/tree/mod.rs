//! The in-memory filesystem tree that images are built from and read into.
//!
//! A [`FileSystem`] is an arena of [`Inode`]s addressed by [`InodeId`]; inode 0
//! is the root directory. Directories hold [`DirEntry`]s (name → inode). A hard
//! link is simply a second entry naming the same inode; exactly one entry of
//! every non-root inode is its *primary* name (`alias == false`), and that name
//! decides where the inode is placed in an EROFS image (C `mkcomposefs` puts a
//! hardlinked inode where its non-`@` dump line is; images read back make the
//! first name in depth-first name order the primary).
//!
//! Regular files are either inline (content stored in the image) or external
//! (content in the object store, named by `payload`, optionally with its
//! fs-verity digest). A whiteout is a character device with rdev 0.
//!
//! Invariants are checked by [`FileSystem::validate`]; producers may build the
//! tree in any order and call [`FileSystem::sort_directories`] at the end.

mod contents;
mod from_dir;
mod transform;
mod validate;

pub use contents::{
    BuildError, ContentError, ContentOptions, Progress, Store, build_from_directory,
    build_from_directory_into, read_contents,
};
pub use from_dir::{FileRef, ScanError, ScanOptions, ScannedTree, scan_directory};
pub use transform::{Normalised, TransformError, XattrFilter, recount_links, transform_for_oci};
pub use validate::{MAX_NAME_LEN, TreeError};

use crate::verity::Digest;

/// Index of an inode in a [`FileSystem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeId(pub u32);

impl InodeId {
    /// The root directory.
    pub const ROOT: InodeId = InodeId(0);

    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A modification time: seconds since the epoch (may be negative) and nanoseconds.
///
/// `nsec` is not range-checked (C `mkcomposefs` stores values ≥ 10⁹ as given).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mtime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: u32,
}

impl Mtime {
    /// A time from seconds and nanoseconds.
    pub const fn new(sec: i64, nsec: u32) -> Self {
        Mtime { sec, nsec }
    }
}

/// One extended attribute: raw name (`user.foo`) and raw value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xattr {
    /// Full name including the namespace prefix.
    pub name: Box<[u8]>,
    /// Value bytes (may be empty).
    pub value: Box<[u8]>,
}

/// The extended attributes of an inode, in insertion order (writers sort).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xattrs(Vec<Xattr>);

impl Xattrs {
    /// No attributes.
    pub const fn new() -> Self {
        Xattrs(Vec::new())
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The attributes in their current order.
    pub fn iter(&self) -> std::slice::Iter<'_, Xattr> {
        self.0.iter()
    }

    /// The attributes as a slice.
    pub fn as_slice(&self) -> &[Xattr] {
        &self.0
    }

    /// Value of the attribute `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0.iter().find(|x| &*x.name == name).map(|x| &*x.value)
    }

    /// Sets `name` to `value`, replacing an existing value in place; returns the old value.
    pub fn set(&mut self, name: &[u8], value: &[u8]) -> Option<Box<[u8]>> {
        if let Some(x) = self.0.iter_mut().find(|x| &*x.name == name) {
            return Some(std::mem::replace(&mut x.value, value.into()));
        }
        self.0.push(Xattr {
            name: name.into(),
            value: value.into(),
        });
        None
    }

    /// Appends without checking for an existing attribute of the same name.
    /// Used by readers that validate uniqueness themselves.
    pub fn push_unchecked(&mut self, xattr: Xattr) {
        self.0.push(xattr);
    }

    /// Removes `name`; returns its value.
    pub fn remove(&mut self, name: &[u8]) -> Option<Box<[u8]>> {
        let i = self.0.iter().position(|x| &*x.name == name)?;
        Some(self.0.remove(i).value)
    }

    /// Keeps only the attributes for which `keep` returns true.
    pub fn retain(&mut self, keep: impl FnMut(&Xattr) -> bool) {
        self.0.retain(keep);
    }

    /// Sorts by name in byte order (`strcmp`).
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

impl<'a> IntoIterator for &'a Xattrs {
    type Item = &'a Xattr;
    type IntoIter = std::slice::Iter<'a, Xattr>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Xattr> for Xattrs {
    fn from_iter<I: IntoIterator<Item = Xattr>>(iter: I) -> Self {
        Xattrs(iter.into_iter().collect())
    }
}

/// Metadata common to all inodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`); the file
    /// type lives in [`InodeKind`].
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Mtime,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

/// File type, as encoded in the `S_IFMT` bits of `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `S_IFDIR`
    Directory,
    /// `S_IFREG`
    Regular,
    /// `S_IFLNK`
    Symlink,
    /// `S_IFCHR`
    CharDevice,
    /// `S_IFBLK`
    BlockDevice,
    /// `S_IFIFO`
    Fifo,
    /// `S_IFSOCK`
    Socket,
}

impl FileType {
    /// Mask of the type bits in `st_mode`.
    pub const S_IFMT: u32 = 0o170000;

    /// The `S_IF*` bits of this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::Directory => 0o040000,
            FileType::Regular => 0o100000,
            FileType::Symlink => 0o120000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }

    /// The type encoded in `mode`, if it is one of the seven known types.
    pub const fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & Self::S_IFMT {
            0o040000 => FileType::Directory,
            0o100000 => FileType::Regular,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => return None,
        })
    }
}

/// A file whose content lives outside the image (in an object store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalFile {
    /// File size in bytes.
    pub size: u64,
    /// Path of the backing object relative to the store (`xx/yyyy…`); becomes the
    /// overlayfs redirect. `None` for an unbacked ("sparse") file.
    pub payload: Option<Box<[u8]>>,
    /// fs-verity digest of the content; becomes the overlayfs metacopy digest.
    pub digest: Option<Digest>,
}

/// The content of a regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegularFile {
    /// Content stored in the image itself (an empty file is `Inline` of length 0).
    Inline(Box<[u8]>),
    /// Content in the object store.
    External(ExternalFile),
}

impl RegularFile {
    /// File size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            RegularFile::Inline(data) => data.len() as u64,
            RegularFile::External(ext) => ext.size,
        }
    }
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name: 1..=255 bytes, no `/` or NUL, not `.` or `..`.
    pub name: Box<[u8]>,
    /// The inode it names.
    pub inode: InodeId,
    /// True for an additional hard link; the inode is placed at its primary name.
    pub alias: bool,
}

/// A directory: its entries, kept sorted by name (byte order) once built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    entries: Vec<DirEntry>,
    /// Size as recorded by the producer (an image's directory size, a dump's SIZE
    /// field). Informational: writers compute the real size from the entries.
    pub size: u64,
}

impl Directory {
    /// An empty directory.
    pub const fn new() -> Self {
        Directory {
            entries: Vec::new(),
            size: 0,
        }
    }

    /// The entries (sorted by name after [`Directory::sort`]).
    pub fn entries(&self) -> &[DirEntry] {
        &self.entries
    }

    /// Mutable access to the entries; the caller keeps names unique.
    pub fn entries_mut(&mut self) -> &mut Vec<DirEntry> {
        &mut self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the directory has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry without ordering or uniqueness checks (call
    /// [`Directory::sort`] before use if names may arrive out of order).
    pub fn push(&mut self, entry: DirEntry) {
        self.entries.push(entry);
    }

    /// Inserts keeping the entries sorted; fails if the name exists. Appending
    /// in name order costs O(1).
    pub fn insert(&mut self, entry: DirEntry) -> Result<(), DirEntry> {
        match self.entries.last() {
            None => self.entries.push(entry),
            Some(last) if *last.name < *entry.name => self.entries.push(entry),
            _ => match self.position(&entry.name) {
                Ok(_) => return Err(entry),
                Err(i) => self.entries.insert(i, entry),
            },
        }
        Ok(())
    }

    /// Looks a name up (the entries must be sorted).
    pub fn get(&self, name: &[u8]) -> Option<&DirEntry> {
        self.position(name).ok().map(|i| &self.entries[i])
    }

    /// Removes the entry `name` (the entries must be sorted).
    pub fn remove(&mut self, name: &[u8]) -> Option<DirEntry> {
        let i = self.position(name).ok()?;
        Some(self.entries.remove(i))
    }

    fn position(&self, name: &[u8]) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.name).cmp(name))
    }

    /// Sorts the entries by name (byte order, like `strcmp`).
    pub fn sort(&mut self) {
        self.entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    }
}

/// What an inode is, with its type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InodeKind {
    /// A directory.
    Directory(Directory),
    /// A regular file.
    Regular(RegularFile),
    /// A symbolic link and its target (1..4095 bytes for C compatibility).
    Symlink(Box<[u8]>),
    /// A character device; rdev 0 is an overlayfs whiteout. The device number is
    /// the low 32 bits of the glibc `dev_t` (what EROFS stores).
    CharDevice(u32),
    /// A block device (rdev as for `CharDevice`).
    BlockDevice(u32),
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

impl InodeKind {
    /// The file type.
    pub fn file_type(&self) -> FileType {
        match self {
            InodeKind::Directory(_) => FileType::Directory,
            InodeKind::Regular(_) => FileType::Regular,
            InodeKind::Symlink(_) => FileType::Symlink,
            InodeKind::CharDevice(_) => FileType::CharDevice,
            InodeKind::BlockDevice(_) => FileType::BlockDevice,
            InodeKind::Fifo => FileType::Fifo,
            InodeKind::Socket => FileType::Socket,
        }
    }

    /// True for an overlayfs whiteout (character device 0:0).
    pub fn is_whiteout(&self) -> bool {
        matches!(self, InodeKind::CharDevice(0))
    }
}

/// An inode: metadata, link count and type-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Mode bits, ownership, mtime, xattrs.
    pub stat: Stat,
    /// Link count as given by the producer. Writers recompute it for directories
    /// (2 + subdirectories); for other inodes it is stored as given.
    pub nlink: u32,
    /// Type and data.
    pub kind: InodeKind,
}

impl Inode {
    /// A new inode with nlink 1.
    pub fn new(stat: Stat, kind: InodeKind) -> Self {
        Inode {
            stat,
            nlink: 1,
            kind,
        }
    }

    /// The full `st_mode` (type bits | permission bits).
    pub fn st_mode(&self) -> u32 {
        self.kind.file_type().mode_bits() | u32::from(self.stat.mode & 0o7777)
    }

    /// The directory data, if this is a directory.
    pub fn as_directory(&self) -> Option<&Directory> {
        match &self.kind {
            InodeKind::Directory(d) => Some(d),
            _ => None,
        }
    }

    /// Mutable directory data, if this is a directory.
    pub fn as_directory_mut(&mut self) -> Option<&mut Directory> {
        match &mut self.kind {
            InodeKind::Directory(d) => Some(d),
            _ => None,
        }
    }

    /// The size as `stat` would report it: content length for files, target
    /// length for symlinks, the recorded size for directories, 0 otherwise.
    pub fn size(&self) -> u64 {
        match &self.kind {
            InodeKind::Directory(d) => d.size,
            InodeKind::Regular(f) => f.size(),
            InodeKind::Symlink(t) => t.len() as u64,
            _ => 0,
        }
    }
}

/// A filesystem tree: an arena of inodes whose element 0 is the root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSystem {
    inodes: Vec<Inode>,
}

impl FileSystem {
    /// A tree holding only an empty root directory with the given metadata.
    pub fn new(root: Stat) -> Self {
        let mut inode = Inode::new(root, InodeKind::Directory(Directory::new()));
        inode.nlink = 2;
        FileSystem {
            inodes: vec![inode],
        }
    }

    /// The root directory's id.
    pub fn root(&self) -> InodeId {
        InodeId::ROOT
    }

    /// Number of inodes in the arena.
    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    /// Always false: there is at least the root.
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    /// All inodes, indexed by [`InodeId::index`].
    pub fn inodes(&self) -> &[Inode] {
        &self.inodes
    }

    /// The inode `id`. Panics if `id` was not returned by this tree.
    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id.index()]
    }

    /// Mutable access to inode `id`. Panics if `id` was not returned by this tree.
    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        &mut self.inodes[id.index()]
    }

    /// The inode `id`, or `None` if out of range.
    pub fn get(&self, id: InodeId) -> Option<&Inode> {
        self.inodes.get(id.index())
    }

    /// Adds an inode to the arena (not yet linked into any directory).
    pub fn push_inode(&mut self, inode: Inode) -> InodeId {
        let id = InodeId(u32::try_from(self.inodes.len()).expect("more than 2^32 inodes"));
        self.inodes.push(inode);
        id
    }

    /// The directory `id`, if it is one.
    pub fn directory(&self, id: InodeId) -> Option<&Directory> {
        self.get(id).and_then(Inode::as_directory)
    }

    /// Mutable directory `id`, if it is one.
    pub fn directory_mut(&mut self, id: InodeId) -> Option<&mut Directory> {
        self.inodes
            .get_mut(id.index())
            .and_then(Inode::as_directory_mut)
    }

    /// Sorts the entries of every directory by name.
    pub fn sort_directories(&mut self) {
        for inode in &mut self.inodes {
            if let InodeKind::Directory(d) = &mut inode.kind {
                d.sort();
            }
        }
    }

    /// Looks up an absolute or relative path (components separated by `/`,
    /// empty components ignored), following directory entries only.
    pub fn lookup(&self, path: &[u8]) -> Option<InodeId> {
        let mut cur = self.root();
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            cur = self.directory(cur)?.get(comp)?.inode;
        }
        Some(cur)
    }

    /// Visits every name depth-first, children in stored (name) order, calling
    /// `f(path, entry)` with the absolute path. The root itself is not visited.
    /// Descends into a directory only through primary names and only once, so
    /// it terminates even on a tree that [`FileSystem::validate`] would reject.
    pub fn walk(&self, mut f: impl FnMut(&[u8], &DirEntry)) {
        let mut entered = vec![false; self.len()];
        entered[0] = true;
        let mut path = Vec::new();
        // Stack of (directory, next index, path length before this directory's names).
        let mut stack: Vec<(InodeId, usize, usize)> = vec![(self.root(), 0, 0)];
        while let Some((dir, idx, base)) = stack.last_mut() {
            let entries = match self.directory(*dir) {
                Some(d) => d.entries(),
                None => &[],
            };
            let Some(entry) = entries.get(*idx) else {
                stack.pop();
                continue;
            };
            *idx += 1;
            let base = *base;
            path.truncate(base);
            path.push(b'/');
            path.extend_from_slice(&entry.name);
            f(&path, entry);
            if !entry.alias
                && self.directory(entry.inode).is_some()
                && !std::mem::replace(&mut entered[entry.inode.index()], true)
            {
                let len = path.len();
                stack.push((entry.inode, 0, len));
            }
        }
    }
}

#[cfg(test)]
mod tests;
