//! Directory entries: the dirent blocks of a directory (its full blocks, then
//! its inline tail), each `count` 12-byte dirents followed by the names.
//!
//! Checks, per block:
//! - the first dirent's `nameoff` is a non-zero multiple of 12 smaller than
//!   the block (it gives the dirent count);
//! - every name starts where the previous one ended (nameoffs strictly
//!   increasing) and ends inside the block; the last name ends at the first
//!   NUL byte or at the end of the block (as in the kernel and in C);
//! - names are 1..=255 bytes without `/` or NUL;
//! - the file type is one of the seven known types;
//!
//! and across the whole directory: names strictly increase in byte order
//! (the kernel's lookup is a binary search, so unsorted or duplicate names
//! would make entries unreachable).

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use zerocopy::FromBytes;

use super::{InodeData, InodeRef, ReadError};
use crate::erofs::format::{BLOCK_SIZE, Dirent, file_type};
use crate::tree::{FileType, MAX_NAME_LEN};

const DIRENT: usize = size_of::<Dirent>();

/// One directory entry as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryRef<'a> {
    /// The name (`.` and `..` included).
    pub name: &'a [u8],
    /// The nid it names.
    pub nid: u64,
    /// The file type recorded in the dirent.
    pub file_type: FileType,
}

/// The `EROFS_FT_*` code of a file type.
pub fn dirent_type(t: FileType) -> u8 {
    match t {
        FileType::Regular => file_type::REG_FILE,
        FileType::Directory => file_type::DIR,
        FileType::CharDevice => file_type::CHRDEV,
        FileType::BlockDevice => file_type::BLKDEV,
        FileType::Fifo => file_type::FIFO,
        FileType::Socket => file_type::SOCK,
        FileType::Symlink => file_type::SYMLINK,
    }
}

fn from_dirent_type(t: u8) -> Option<FileType> {
    Some(match t {
        file_type::REG_FILE => FileType::Regular,
        file_type::DIR => FileType::Directory,
        file_type::CHRDEV => FileType::CharDevice,
        file_type::BLKDEV => FileType::BlockDevice,
        file_type::FIFO => FileType::Fifo,
        file_type::SOCK => FileType::Socket,
        file_type::SYMLINK => FileType::Symlink,
        _ => return None,
    })
}

/// Iterator over the entries of a directory, in on-disk (sorted) order.
#[derive(Debug, Clone)]
pub struct DirIter<'a> {
    nid: u64,
    head: &'a [u8],
    head_offset: u64,
    tail: &'a [u8],
    tail_offset: u64,
    /// Offset into `head` of the next block to load.
    next_block: usize,
    tail_done: bool,
    block: &'a [u8],
    block_offset: u64,
    count: usize,
    index: usize,
    prev: Option<&'a [u8]>,
    failed: bool,
}

impl<'a> InodeRef<'a> {
    /// The entries of this directory.
    pub fn dir_entries(&self) -> Result<DirIter<'a>, ReadError> {
        let InodeData::Flat {
            head,
            head_offset,
            tail,
            tail_offset,
        } = self.data
        else {
            return Err(ReadError::BadInode {
                nid: self.nid,
                offset: self.offset,
                reason: "not a directory with flat data".into(),
            });
        };
        if self.file_type != FileType::Directory {
            return Err(ReadError::BadInode {
                nid: self.nid,
                offset: self.offset,
                reason: "not a directory".into(),
            });
        }
        Ok(DirIter {
            nid: self.nid,
            head,
            head_offset,
            tail,
            tail_offset,
            next_block: 0,
            tail_done: false,
            block: &[],
            block_offset: 0,
            count: 0,
            index: 0,
            prev: None,
            failed: false,
        })
    }
}

impl<'a> DirIter<'a> {
    fn bad(&self, offset: u64, reason: String) -> ReadError {
        ReadError::BadDirectory {
            nid: self.nid,
            offset,
            reason,
        }
    }

    /// Loads the next block; `Ok(false)` at the end of the directory.
    fn load_block(&mut self) -> Result<bool, ReadError> {
        let (block, offset) = if let Some(rest) = self.head.get(self.next_block..)
            && !rest.is_empty()
        {
            let len = rest.len().min(BLOCK_SIZE);
            let offset = self.head_offset.saturating_add(self.next_block as u64);
            self.next_block = self.next_block.saturating_add(len);
            (rest.get(..len).unwrap_or_default(), offset)
        } else if !self.tail_done && !self.tail.is_empty() {
            self.tail_done = true;
            (self.tail, self.tail_offset)
        } else {
            return Ok(false);
        };
        self.block = block;
        self.block_offset = offset;
        let (first, _) = Dirent::read_from_prefix(block).map_err(|_| {
            self.bad(
                offset,
                format!("{} bytes cannot hold a dirent", block.len()),
            )
        })?;
        let table = usize::from(first.nameoff.get());
        if table == 0 || table % DIRENT != 0 || table >= block.len() {
            return Err(self.bad(
                offset,
                format!(
                    "first nameoff {table} must be a non-zero multiple of 12 below the block size {}",
                    block.len()
                ),
            ));
        }
        self.count = table / DIRENT;
        self.index = 0;
        Ok(true)
    }

    fn nameoff(&self, index: usize) -> Option<usize> {
        let at = index.checked_mul(DIRENT)?;
        let (d, _) = Dirent::read_from_prefix(self.block.get(at..)?).ok()?;
        Some(d.nameoff.get().into())
    }

    fn parse_entry(&mut self) -> Result<DirEntryRef<'a>, ReadError> {
        let i = self.index;
        self.index = i.saturating_add(1);
        let at = i.saturating_mul(DIRENT);
        let dirent_offset = self.block_offset.saturating_add(at as u64);
        let (dirent, _) = self
            .block
            .get(at..)
            .and_then(|b| Dirent::read_from_prefix(b).ok())
            .ok_or_else(|| self.bad(dirent_offset, "dirent outside the block".into()))?;
        let start = usize::from(dirent.nameoff.get());
        let end = if self.index < self.count {
            self.nameoff(self.index)
                .ok_or_else(|| self.bad(dirent_offset, "dirent outside the block".into()))?
        } else {
            let rest = self.block.get(start..).unwrap_or_default();
            start.saturating_add(rest.iter().position(|&b| b == 0).unwrap_or(rest.len()))
        };
        let name = self
            .block
            .get(start..end)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                self.bad(
                    dirent_offset,
                    format!(
                        "entry {i}: name range {start}..{end} is empty or outside the {}-byte block",
                        self.block.len()
                    ),
                )
            })?;
        let show = || String::from_utf8_lossy(name).into_owned();
        if name.len() > MAX_NAME_LEN || name.iter().any(|&b| b == b'/' || b == 0) {
            return Err(self.bad(
                dirent_offset,
                format!(
                    "entry {i}: invalid name {:?} (1..=255 bytes without '/' or NUL)",
                    show()
                ),
            ));
        }
        let file_type = from_dirent_type(dirent.file_type).ok_or_else(|| {
            self.bad(
                dirent_offset,
                format!("entry {:?}: unknown file type {}", show(), dirent.file_type),
            )
        })?;
        if let Some(prev) = self.prev
            && prev >= name
        {
            return Err(self.bad(
                dirent_offset,
                format!(
                    "entry {:?} does not sort after {:?} (names must be unique and sorted)",
                    show(),
                    String::from_utf8_lossy(prev)
                ),
            ));
        }
        self.prev = Some(name);
        Ok(DirEntryRef {
            name,
            nid: dirent.nid.get(),
            file_type,
        })
    }
}

impl<'a> Iterator for DirIter<'a> {
    type Item = Result<DirEntryRef<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.index >= self.count {
            match self.load_block() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        let item = self.parse_entry();
        self.failed = item.is_err();
        Some(item)
    }
}
