//! An inode's extended attributes: the xattr body (header, shared ids, inline
//! entries) and entries in the shared table.
//!
//! Iteration order is the one C `composefs-info` uses: inline entries first,
//! then the shared ones in id order. Checks:
//! - the body holds its header and `h_shared_count` ids; the inline entries
//!   fill the rest of the body exactly (each entry padded to 4 bytes);
//! - a shared id addresses an entry (`xattr_blkaddr · 4096 + 4 · id`) whose
//!   header, name and value lie inside the image;
//! - the name index is known (0..=6); a name has no NUL byte; an index-0
//!   (full) name is non-empty and does not start with a prefix that has an
//!   index of its own (the kernel could not find it);
//! - with the XATTR_FILTER feature, the inode's name filter does not mark any
//!   of its xattrs as absent (the kernel would hide them).

#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use zerocopy::FromBytes;

use super::{InodeRef, ReadError};
use crate::erofs::format::{XattrEntry, XattrIbodyHeader};
use crate::erofs::xattr::{filter_bit, prefix_for_index, split_name};

const ENTRY_HEADER: usize = size_of::<XattrEntry>();
const BODY_HEADER: usize = size_of::<XattrIbodyHeader>();

/// One xattr as stored: prefix index, name suffix and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XattrRef<'a> {
    /// Name prefix index (`erofs::xattr`).
    pub index: u8,
    /// Name without the prefix.
    pub suffix: &'a [u8],
    /// Value.
    pub value: &'a [u8],
    /// True if it came from the shared table.
    pub shared: bool,
    /// Image offset of the entry.
    pub offset: u64,
}

impl<'a> XattrRef<'a> {
    /// The name prefix of the index.
    pub fn prefix(&self) -> &'static [u8] {
        prefix_for_index(self.index).unwrap_or_default()
    }

    /// True if the full name (prefix + suffix) equals `name`.
    pub fn name_is(&self, name: &[u8]) -> bool {
        name.strip_prefix(self.prefix()) == Some(self.suffix)
    }

    /// If the full name starts with `start`, the rest of the full name.
    /// `start` must cover the stored prefix (e.g. `trusted.overlay.` for a
    /// `trusted.` name); a shorter `start` gives `None`.
    pub fn name_strip_prefix(&self, start: &[u8]) -> Option<&'a [u8]> {
        self.suffix.strip_prefix(start.strip_prefix(self.prefix())?)
    }

    /// The full name.
    pub fn full_name(&self) -> Vec<u8> {
        let mut name = Vec::with_capacity(self.prefix().len().saturating_add(self.suffix.len()));
        name.extend_from_slice(self.prefix());
        name.extend_from_slice(self.suffix);
        name
    }

    /// The full name, lossily decoded for messages.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.full_name()).into_owned()
    }
}

/// Iterator over an inode's xattrs: inline entries, then shared ones.
#[derive(Debug, Clone)]
pub struct XattrIter<'a> {
    inode: InodeRef<'a>,
    filter: Option<u32>,
    inline: &'a [u8],
    inline_offset: u64,
    shared_ids: &'a [u8],
    failed: bool,
}

impl<'a> InodeRef<'a> {
    /// The inode's xattrs (inline entries first, then shared ones).
    pub fn xattrs(&self) -> Result<XattrIter<'a>, ReadError> {
        let mut iter = XattrIter {
            inode: *self,
            filter: None,
            inline: &[],
            inline_offset: self.xattr_offset,
            shared_ids: &[],
            failed: false,
        };
        if self.xattr_body.is_empty() {
            return Ok(iter);
        }
        let bad = |reason: String| ReadError::BadXattr {
            nid: self.nid,
            offset: self.xattr_offset,
            reason,
        };
        let (header, rest) = XattrIbodyHeader::read_from_prefix(self.xattr_body)
            .map_err(|_| bad("xattr body shorter than its 12-byte header".into()))?;
        let ids_len = usize::from(header.h_shared_count).saturating_mul(4);
        let (ids, inline) = rest.split_at_checked(ids_len).ok_or_else(|| {
            bad(format!(
                "{} shared xattr ids do not fit in a {}-byte xattr body",
                header.h_shared_count,
                self.xattr_body.len()
            ))
        })?;
        iter.shared_ids = ids;
        iter.inline = inline;
        iter.inline_offset = self
            .xattr_offset
            .saturating_add((BODY_HEADER.saturating_add(ids_len)) as u64);
        if self.image.has_xattr_filter() {
            iter.filter = Some(header.h_name_filter.get());
        }
        Ok(iter)
    }
}

/// Parses the entry at the start of `region` (at image offset `offset`).
/// Returns the entry and its padded size (which may exceed `region` for the
/// last entry of the shared table).
fn parse_entry<'a>(
    nid: u64,
    region: &'a [u8],
    offset: u64,
    shared: bool,
) -> Result<(XattrRef<'a>, usize), ReadError> {
    let bad = |reason: String| ReadError::BadXattr {
        nid,
        offset,
        reason,
    };
    let (header, rest) = XattrEntry::read_from_prefix(region).map_err(|_| {
        bad(format!(
            "{} bytes left, an entry needs at least 4",
            region.len()
        ))
    })?;
    let name_len = usize::from(header.e_name_len);
    let value_len = usize::from(header.e_value_size.get());
    let (suffix, rest) = rest
        .split_at_checked(name_len)
        .ok_or_else(|| bad(format!("name of {name_len} bytes runs past the end")))?;
    let value = rest
        .get(..value_len)
        .ok_or_else(|| bad(format!("value of {value_len} bytes runs past the end")))?;
    let index = header.e_name_index;
    if prefix_for_index(index).is_none() {
        return Err(bad(format!(
            "unknown name prefix index {index} (expected 0..=6)"
        )));
    }
    if suffix.contains(&0) {
        return Err(bad("name contains a NUL byte".into()));
    }
    if index == 0 {
        if suffix.is_empty() {
            return Err(bad("empty name".into()));
        }
        if split_name(suffix).0 != 0 {
            return Err(bad(format!(
                "name {:?} is stored without its prefix index",
                String::from_utf8_lossy(suffix)
            )));
        }
    }
    let size = ENTRY_HEADER
        .saturating_add(name_len)
        .saturating_add(value_len)
        .next_multiple_of(4);
    let entry = XattrRef {
        index,
        suffix,
        value,
        shared,
        offset,
    };
    Ok((entry, size))
}

impl<'a> XattrIter<'a> {
    fn next_inline(&mut self) -> Option<Result<XattrRef<'a>, ReadError>> {
        if self.inline.is_empty() {
            return None;
        }
        let nid = self.inode.nid;
        let offset = self.inline_offset;
        Some(
            parse_entry(nid, self.inline, offset, false).and_then(|(entry, size)| {
                let rest = self.inline.get(size..).ok_or_else(|| ReadError::BadXattr {
                    nid,
                    offset,
                    reason: format!(
                        "entry of {size} bytes (with padding) overruns the xattr body ({} bytes left)",
                        self.inline.len()
                    ),
                })?;
                self.inline = rest;
                self.inline_offset = offset.saturating_add(size as u64);
                Ok(entry)
            }),
        )
    }

    fn next_shared(&mut self) -> Option<Result<XattrRef<'a>, ReadError>> {
        let (id, rest) = self.shared_ids.split_first_chunk::<4>()?;
        self.shared_ids = rest;
        let id = u32::from_le_bytes(*id);
        let image = self.inode.image;
        let offset = image
            .xattr_base()
            .saturating_add(u64::from(id).saturating_mul(4));
        Some(
            image
                .rest("shared xattr", offset)
                .and_then(|region| parse_entry(self.inode.nid, region, offset, true))
                .map(|(entry, _)| entry),
        )
    }
}

impl<'a> Iterator for XattrIter<'a> {
    type Item = Result<XattrRef<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match self.next_inline() {
            Some(item) => item,
            None => self.next_shared()?,
        };
        let item = item.and_then(|entry| match self.filter {
            Some(filter) if filter & filter_bit(entry.index, entry.suffix) != 0 => {
                Err(ReadError::BadXattr {
                    nid: self.inode.nid,
                    offset: entry.offset,
                    reason: format!(
                        "the inode's name filter {filter:#010x} marks {:?} as absent",
                        entry.display_name()
                    ),
                })
            }
            _ => Ok(entry),
        });
        self.failed = item.is_err();
        Some(item)
    }
}
