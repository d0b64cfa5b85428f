//! Image → [`FileSystem`]: the walk of [`super::walk`] building tree inodes.
//!
//! Conventions of the produced tree:
//! - the first name of an inode in depth-first name order is its primary
//!   entry, later names are aliases (hard links);
//! - character devices 0:0 are not in the tree (see [`super::walk`]);
//! - compact inodes get the image build time as mtime;
//! - `Directory.size` is the EROFS `i_size`; `Inode.nlink` is `i_nlink`;
//! - regular files: flat → `Inline`, chunk based → `External` (see
//!   [`super::overlay`] for the xattr mapping); an escaped whiteout becomes
//!   `CharDevice(0)` with its permission bits;
//! - xattrs in on-disk order (inline entries, then shared ones) minus the
//!   composefs metadata.

use super::overlay::{RegularKind, regular_kind, scan};
use super::walk::{Budget, Visitor, walk};
use super::{Image, ImageInfo, InodeData, InodeRef, ReadError, ReadOptions};
use crate::tree::{
    DirEntry, Directory, ExternalFile, FileSystem, FileType, Inode, InodeId, InodeKind,
    RegularFile, Stat, Xattr, Xattrs,
};

/// Reads a whole image into a tree (see the [module docs](super)).
pub fn read_image(image: &[u8], opts: &ReadOptions) -> Result<(FileSystem, ImageInfo), ReadError> {
    let img = Image::open(image)?;
    let mut budget = Budget::for_image(image.len());
    let mut builder = TreeBuilder { fs: None };
    walk(&img, opts.filter.as_deref(), &mut builder, &mut budget)?;
    let fs = builder.fs.ok_or(ReadError::BadNid {
        nid: img.root_nid(),
        reason: "root was not read",
    })?;
    Ok((fs, img.info()))
}

struct TreeBuilder {
    fs: Option<FileSystem>,
}

/// The flat data of an inode as one byte string.
fn flat_bytes(inode: &InodeRef<'_>, budget: &mut Budget) -> Result<Box<[u8]>, ReadError> {
    match inode.data {
        InodeData::Flat { head, tail, .. } => {
            budget.charge(inode.size)?;
            Ok([head, tail].concat().into_boxed_slice())
        }
        _ => Ok(Box::default()),
    }
}

/// Converts one inode (everything but directory entries).
fn convert(inode: &InodeRef<'_>, budget: &mut Budget) -> Result<Inode, ReadError> {
    budget.charge_for::<Inode>(1)?;
    let scanned = scan(inode, budget)?;
    let mut xattrs = Xattrs::new();
    for kept in &scanned.kept {
        let name = kept.name();
        let value = kept.entry.value;
        budget.charge_for::<Xattr>(1)?;
        budget.charge((name.len() as u64).saturating_add(value.len() as u64))?;
        xattrs.push_unchecked(Xattr {
            name: name.into_boxed_slice(),
            value: value.into(),
        });
    }
    let kind = match inode.file_type {
        FileType::Directory => InodeKind::Directory({
            let mut dir = Directory::new();
            dir.size = inode.size;
            dir
        }),
        FileType::Regular => match regular_kind(inode, &scanned)? {
            RegularKind::Inline => {
                InodeKind::Regular(RegularFile::Inline(flat_bytes(inode, budget)?))
            }
            RegularKind::External {
                size,
                payload,
                digest,
            } => {
                let payload = payload.map(Box::<[u8]>::from);
                budget.charge(payload.as_ref().map_or(0, |p| p.len() as u64))?;
                InodeKind::Regular(RegularFile::External(ExternalFile {
                    size,
                    payload,
                    digest,
                }))
            }
            RegularKind::Whiteout => InodeKind::CharDevice(0),
        },
        FileType::Symlink => InodeKind::Symlink(flat_bytes(inode, budget)?),
        FileType::CharDevice => InodeKind::CharDevice(inode.i_u),
        FileType::BlockDevice => InodeKind::BlockDevice(inode.i_u),
        FileType::Fifo => InodeKind::Fifo,
        FileType::Socket => InodeKind::Socket,
    };
    Ok(Inode {
        stat: Stat {
            mode: inode.mode & 0o7777,
            uid: inode.uid,
            gid: inode.gid,
            mtime: inode.mtime,
            xattrs,
        },
        nlink: inode.nlink,
        kind,
    })
}

impl<'a> Visitor<'a> for TreeBuilder {
    type Handle = InodeId;

    fn inode(&mut self, inode: &InodeRef<'a>, budget: &mut Budget) -> Result<InodeId, ReadError> {
        let converted = convert(inode, budget)?;
        match &mut self.fs {
            Some(fs) => Ok(fs.push_inode(converted)),
            None => {
                let mut fs = FileSystem::new(Stat::default());
                *fs.inode_mut(InodeId::ROOT) = converted;
                self.fs = Some(fs);
                Ok(InodeId::ROOT)
            }
        }
    }

    fn entry(
        &mut self,
        parent: InodeId,
        name: &'a [u8],
        child: InodeId,
        alias: bool,
        budget: &mut Budget,
    ) -> Result<(), ReadError> {
        budget.charge_for::<DirEntry>(1)?;
        budget.charge(name.len() as u64)?;
        // The walk only reports entries of directories it created, in
        // strictly increasing name order, so pushing keeps them sorted.
        if let Some(dir) = self.fs.as_mut().and_then(|fs| fs.directory_mut(parent)) {
            dir.push(DirEntry {
                name: name.into(),
                inode: child,
                alias,
            });
        }
        Ok(())
    }
}
