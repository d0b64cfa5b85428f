//! The objects an image refers to, without building a tree: the same
//! validated walk as [`super::read_image`], collecting only external files.

use super::overlay::{RegularKind, regular_kind, scan};
use super::walk::{Budget, Visitor, walk};
use super::{Image, InodeRef, ReadError, ReadOptions};
use crate::tree::FileType;
use crate::verity::Digest;

/// An object-store reference of an external regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef<'a> {
    /// Object path relative to the store (`xx/yyyy…`), from the redirect;
    /// `None` for a file without one.
    pub payload: Option<&'a [u8]>,
    /// fs-verity digest from the metacopy xattr, if any.
    pub digest: Option<Digest>,
}

/// All distinct (payload, digest) pairs of the external files of `image`,
/// sorted (by payload in byte order, then digest). `composefs-info objects`
/// prints the payloads of this list.
pub fn referenced_objects<'a>(
    image: &Image<'a>,
    opts: &ReadOptions,
) -> Result<Vec<ObjectRef<'a>>, ReadError> {
    let mut budget = Budget::for_image(image.len());
    let mut lister = Lister(Vec::new());
    walk(image, opts.filter.as_deref(), &mut lister, &mut budget)?;
    let mut objects = lister.0;
    objects.sort_unstable();
    objects.dedup();
    Ok(objects)
}

struct Lister<'a>(Vec<ObjectRef<'a>>);

impl<'a> Visitor<'a> for Lister<'a> {
    type Handle = ();

    fn inode(&mut self, inode: &InodeRef<'a>, budget: &mut Budget) -> Result<(), ReadError> {
        // Scan every inode so that the same xattr checks apply as when reading a tree.
        let scanned = scan(inode, budget)?;
        if inode.file_type == FileType::Regular
            && let RegularKind::External {
                payload, digest, ..
            } = regular_kind(inode, &scanned)?
        {
            budget.charge_for::<ObjectRef<'a>>(1)?;
            self.0.push(ObjectRef { payload, digest });
        }
        Ok(())
    }

    fn entry(
        &mut self,
        _parent: (),
        _name: &'a [u8],
        _child: (),
        _alias: bool,
        _budget: &mut Budget,
    ) -> Result<(), ReadError> {
        Ok(())
    }
}
