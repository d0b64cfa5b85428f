//! Reading layer split streams as tar entries without re-hashing external
//! objects (their digests are in the stream).
//!
//! (Interim version: reassembles each layer and hashes large files again.)

use std::io;

use cfs_core::repository::Repository;
use cfs_core::tree::{FileSystem, XattrFilter, transform_for_oci};
use cfs_core::verity::{Digest, digest_reader};

use super::{LayerMerger, MergeError, TarEntries};

/// Merges the layer streams (object ids, in diff_ids order) and applies
/// [`transform_for_oci`] with `filter`.
pub fn build_tree_from_streams(
    repo: &Repository,
    layers: &[Digest],
    filter: XattrFilter,
) -> Result<FileSystem, MergeError> {
    let mut merger = LayerMerger::new();
    let alg = repo.algorithm();
    for layer in layers {
        let data = repo
            .read_object(layer, cfs_core::repository::MAX_STREAM_LEN)
            .map_err(io::Error::other)?;
        let stream = cfs_core::splitstream::SplitStream::parse(&data).map_err(io::Error::other)?;
        let mut tar = Vec::new();
        stream
            .cat(&mut tar, |d: &Digest| {
                repo.open_object(d).map_err(io::Error::other)
            })
            .map_err(io::Error::other)?;
        let mut entries = TarEntries::new(&tar[..]);
        let mut store = |r: &mut dyn io::Read, _size: u64| digest_reader(alg, r);
        while let Some(entry) = entries.next_entry(&mut store)? {
            merger.apply(entry)?;
        }
    }
    let mut fs = merger.finish()?;
    transform_for_oci(&mut fs, filter)?;
    Ok(fs)
}
