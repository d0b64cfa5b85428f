//! `cfsctl oci …`: OCI container images in the repository (pull, list,
//! inspect, tag, dump, mount, fsck). Output follows composefs-rs 0.9's
//! `cfsctl oci` where it has the same command.

mod fsck;
mod pull;
mod show;

use std::io::{self, BufWriter, IsTerminal, Write};

use anyhow::{Context, Result, bail};

use cfs_core::dumpfile::{write_dumpfile_rs_links, write_entry_line, write_hardlink_line};
use cfs_core::repository::{MAX_STREAM_LEN, Repository, image_bytes};
use cfs_core::splitstream::SplitStream;
use cfs_core::verity::{Digest, digest_bytes};
use cfs_oci::merge::{Content, EntryKind, for_each_stream_entry};
use cfs_oci::store::{self, OciImage};

use super::repo::mount::{mount_repo_image, open_for_mount};
use super::repo::{open_repo, print};
use crate::cli::{GlobalOpts, OciCommand, OciMountArgs, OciTreeArgs};

/// Runs one `oci` subcommand.
pub(crate) fn run(global: &GlobalOpts, command: OciCommand) -> Result<()> {
    match command {
        OciCommand::Pull(args) => pull::pull(global, &args),
        OciCommand::Images { json, no_trunc } => show::images(global, json, no_trunc),
        OciCommand::Inspect {
            image,
            manifest,
            config,
        } => show::inspect(global, &image, manifest, config),
        OciCommand::Tag {
            manifest_digest,
            name,
        } => {
            let repo = open_repo(global)?;
            store::tag_image(&repo, &manifest_digest, &name)
                .with_context(|| format!("Failed to tag {manifest_digest} as {name}"))?;
            print(&format!("Tagged {manifest_digest} as {name}\n"))
        }
        OciCommand::Untag { name } => {
            let repo = open_repo(global)?;
            if !store::untag_image(&repo, &name)
                .with_context(|| format!("Failed to remove tag {name}"))?
            {
                bail!("Failed to remove tag {name}: no such tag");
            }
            print(&format!("Removed tag {name}\n"))
        }
        OciCommand::Dump(args) => dump(global, &args),
        OciCommand::ComputeId(args) => compute_id(global, &args),
        OciCommand::Layer {
            diff_id,
            json,
            dumpfile,
        } => layer(global, &diff_id, json, dumpfile),
        OciCommand::Mount(args) => mount(global, &args),
        OciCommand::Fsck { image, json } => fsck::fsck(global, image.as_deref(), json),
    }
}

/// Opens the image `name` (tag or manifest digest) with a message naming it.
fn open_image(repo: &Repository, name: &str) -> Result<OciImage> {
    OciImage::open(repo, name).with_context(|| format!("Opening OCI image '{name}'"))
}

/// The merged tree of `image`, boot-transformed with `--bootable`.
fn tree_of(
    repo: &Repository,
    image: &OciImage,
    args: &OciTreeArgs,
) -> Result<cfs_core::tree::FileSystem> {
    if args.bootable {
        let (fs, _) = cfs_deploy::boot_image::oci::boot_tree(repo, image, args.xattrs)
            .with_context(|| format!("Building the boot image tree of '{}'", args.image))?;
        return Ok(fs);
    }
    image
        .build_tree(repo, args.xattrs)
        .with_context(|| format!("Building the tree of '{}'", args.image))
}

/// `oci dump IMAGE`: the merged tree as a dumpfile.
fn dump(global: &GlobalOpts, args: &OciTreeArgs) -> Result<()> {
    let repo = crate::cmd::repo::open_repo_read(global)?;
    let image = open_image(&repo, &args.image)?;
    let mut fs = tree_of(&repo, &image, args)?;
    // Directory link counts and sizes as composefs-rs prints them.
    super::repo::create::directory_counts_as_reference(&mut fs);
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    write_dumpfile_rs_links(&fs, &mut out)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// `oci compute-id IMAGE`: the image id of the merged tree (nothing stored).
fn compute_id(global: &GlobalOpts, args: &OciTreeArgs) -> Result<()> {
    let repo = crate::cmd::repo::open_repo_read(global)?;
    let image = open_image(&repo, &args.image)?;
    let fs = tree_of(&repo, &image, args)?;
    let version = global
        .erofs_version
        .unwrap_or_else(|| repo.erofs_versions().first().copied().unwrap_or(1));
    let data = image_bytes(&fs, version)?;
    print(&format!(
        "{}\n",
        digest_bytes(repo.algorithm(), &data).to_hex()
    ))
}

/// `oci layer DIFF_ID [--json|--dumpfile]`: the layer's tar on stdout, its
/// metadata (composefs-rs's `LayerInfo` JSON), or its entries as dumpfile
/// lines.
fn layer(global: &GlobalOpts, diff_id: &str, json: bool, dumpfile: bool) -> Result<()> {
    if !store::is_sha256_digest(diff_id) {
        bail!("invalid diff_id {diff_id:?}: expected sha256:<64 hex digits>");
    }
    if !json && !dumpfile && io::stdout().is_terminal() {
        bail!(
            "Refusing to write tar data to terminal. Redirect to a file, pipe to tar, \
             or use --json for metadata."
        );
    }
    let repo = crate::cmd::repo::open_repo_read(global)?;
    let id = store::layer_stream_id(diff_id);
    let Some(object) = repo.has_stream(&id)? else {
        bail!("Layer {diff_id} not found");
    };
    if json {
        let info = layer_info(&repo, diff_id, &object)
            .with_context(|| format!("Reading layer {diff_id}"))?;
        let mut text = serde_json::to_string_pretty(&info)?;
        text.push('\n');
        return print(&text);
    }
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    if dumpfile {
        for_each_stream_entry(&repo, &object, &mut |entry| {
            let path = entry_path(&entry.path);
            match (&entry.kind, entry.to_inode()) {
                (EntryKind::Hardlink(target), _) => {
                    write_hardlink_line(&mut out, &path, &entry_path(target))
                }
                (_, Some(inode)) => write_entry_line(&mut out, &path, &inode),
                (_, None) => Ok(()),
            }
            .map_err(Into::into)
        })
        .with_context(|| format!("Listing layer {diff_id}"))?;
    } else {
        repo.cat_stream(&id, &mut out)
            .with_context(|| format!("Reassembling layer {diff_id}"))?;
    }
    out.flush().context("writing to standard output")
}

/// A tar path as composefs-rs lists it: one leading `/` removed, `/`
/// prefixed, trailing `/` removed; the root (`/`, `./` stays `/.`) is empty.
fn entry_path(raw: &[u8]) -> Vec<u8> {
    let rest = raw.strip_prefix(b"/").unwrap_or(raw);
    let mut path = Vec::with_capacity(rest.len() + 1);
    path.push(b'/');
    path.extend_from_slice(rest);
    while path.len() > 1 && path.last() == Some(&b'/') {
        path.pop();
    }
    if path == b"/" {
        path.clear();
    }
    path
}

/// `oci layer --json` (keys and order as composefs-rs prints them).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LayerInfo {
    diff_id: String,
    verity: String,
    size: u64,
    entry_count: u64,
    splitstream: SplitstreamInfo,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SplitstreamInfo {
    external_objects: usize,
    external_size: u64,
    inline_size: u64,
}

/// `oci layer --json`: sizes and counts of a layer stream.
fn layer_info(repo: &Repository, diff_id: &str, object: &Digest) -> Result<LayerInfo> {
    let data = repo.read_object(object, MAX_STREAM_LEN)?;
    let stream = SplitStream::parse(&data)?;
    let size = stream.stream_size();
    let external_objects = stream.object_ref_count();
    let (mut entries, mut external_size) = (0u64, 0u64);
    for_each_stream_entry(repo, object, &mut |entry| {
        entries += 1;
        if let EntryKind::Regular {
            size,
            content: Content::External(_),
        } = entry.kind
        {
            external_size += size;
        }
        Ok(())
    })?;
    Ok(LayerInfo {
        diff_id: diff_id.to_owned(),
        verity: object.to_hex(),
        size,
        entry_count: entries,
        splitstream: SplitstreamInfo {
            external_objects,
            external_size,
            inline_size: size.saturating_sub(external_size),
        },
    })
}

/// `oci mount IMAGE MOUNTPOINT`: the composefs image linked from the config.
fn mount(global: &GlobalOpts, args: &OciMountArgs) -> Result<()> {
    let repo = open_for_mount(global)?;
    let image = open_image(&repo, &args.image)?;
    let version = repo.erofs_versions().first().copied().unwrap_or(1);
    let Some(digest) = image.linked_image(version).copied() else {
        bail!("No composefs EROFS image linked — try re-pulling the image");
    };
    let (file, digest) = repo
        .open_image(&digest.to_hex())
        .with_context(|| format!("Opening the composefs image of '{}'", args.image))?;
    mount_repo_image(
        &repo,
        &file,
        &digest,
        &args.mountpoint,
        &args.overlay,
        &args.image,
    )
}
