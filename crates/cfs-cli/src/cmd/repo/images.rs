//! Images and streams already in the repository: `import-image`, `images`,
//! `image-objects`, `dump`, `cat`.

use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result};
use serde::Serialize;

use cfs_core::dumpfile::write_dumpfile;
use cfs_core::erofs::reader::{ReadOptions, read_image};
use cfs_core::repository::{RepoError, paths};

use super::{digest_id, open_repo, open_repo_read, print, table};
use crate::cli::{GlobalOpts, ImagesArgs};

/// Digest characters shown by `images` without `--no-trunc`.
const SHORT_DIGEST: usize = 12;

/// `import-image NAME` (image on stdin): prints `<alg>:<hex>`. Unlike
/// composefs-rs the image is checked before it is stored.
pub(crate) fn import_image(global: &GlobalOpts, name: &str, allow_missing: bool) -> Result<()> {
    let repo = open_repo(global)?;
    let opts = cfs_core::repository::ImportOptions {
        allow_missing_objects: allow_missing,
    };
    let digest = repo
        .import_image_with(io::stdin().lock(), Some(name), &opts)
        .with_context(|| format!("Importing image '{name}'"))?;
    print(&format!("{}\n", digest_id(&digest)))
}

/// `untag NAME…` (alias `rm`): removes `images/refs/NAME` of each; every
/// name is checked first, so a missing one removes nothing.
pub(crate) fn untag(global: &GlobalOpts, names: &[String]) -> Result<()> {
    let repo = open_repo(global)?;
    let mut missing = Vec::new();
    for name in names {
        paths::check_name("image", name, true).with_context(|| format!("untag {name}"))?;
        let link = format!("{}/{}/{name}", paths::IMAGES, paths::REFS);
        if repo.read_link(&link)?.is_none() {
            missing.push(name.as_str());
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no image named {} in {} (see `cfsctl images`); nothing removed",
            missing.join(", "),
            repo.path().display()
        );
    }
    let mut out = String::new();
    for name in names {
        let link = format!("{}/{}/{name}", paths::IMAGES, paths::REFS);
        repo.remove_link(&link)
            .with_context(|| format!("Removing image name {name}"))?;
        out.push_str(&format!("Untagged {name}\n"));
    }
    out.push_str("(`cfsctl gc` removes what no other name keeps alive)\n");
    print(&out)
}

#[derive(Serialize)]
struct ImageList {
    images: Vec<ImageEntry>,
}

#[derive(Serialize)]
struct ImageEntry {
    name: String,
    digest: String,
}

/// `images [--json] [--no-trunc]`: the refs under `images/refs/`, sorted by
/// name.
pub(crate) fn list(global: &GlobalOpts, args: &ImagesArgs) -> Result<()> {
    let repo = open_repo_read(global)?;
    let mut images = Vec::new();
    for image in repo.list_images()? {
        let digest = match image.digest {
            Some(d) => d.to_hex(),
            // A dangling ref: show what it points at, like composefs-rs (the
            // last component of the link target).
            None => {
                let link = format!("{}/{}/{}", paths::IMAGES, paths::REFS, image.name);
                let target = repo.read_link(&link)?.unwrap_or_default();
                target.rsplit('/').next().unwrap_or_default().to_string()
            }
        };
        images.push(ImageEntry {
            name: image.name,
            digest,
        });
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    if args.json {
        let mut text = serde_json::to_string_pretty(&ImageList { images })?;
        text.push('\n');
        return print(&text);
    }
    if images.is_empty() {
        return print("No images found\n");
    }
    let rows: Vec<Vec<String>> = images
        .into_iter()
        .map(|i| {
            let digest = if args.no_trunc {
                i.digest
            } else {
                i.digest.chars().take(SHORT_DIGEST).collect()
            };
            vec![i.name, digest]
        })
        .collect();
    print(&table::render_for_stdout(&["NAME", "DIGEST"], &rows))
}

/// `image-objects NAME`: every object the image references, `<alg>:<hex>`
/// per line, sorted.
pub(crate) fn image_objects(global: &GlobalOpts, name: &str) -> Result<()> {
    let repo = open_repo_read(global)?;
    let objects = repo
        .image_objects(name)
        .with_context(|| format!("Collecting objects for image '{name}'"))?;
    let mut out = BufWriter::new(io::stdout().lock());
    for object in &objects {
        writeln!(out, "{}", digest_id(object)).context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")
}

/// `dump NAME`: the image as a dumpfile.
pub(crate) fn dump(global: &GlobalOpts, name: &str) -> Result<()> {
    let repo = open_repo_read(global)?;
    let (data, digest) = repo
        .read_image_bytes(name)
        .with_context(|| format!("Opening image '{name}'"))?;
    let (fs, _) = read_image(&data, &ReadOptions::default())
        .map_err(|source| RepoError::Image {
            path: repo.path().join(paths::object_path(&digest)),
            source,
        })
        .with_context(|| format!("Reading image '{name}'"))?;
    drop(data);
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    write_dumpfile(&fs, &mut out)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// `cat NAME`: the stream's original bytes on stdout.
pub(crate) fn cat(global: &GlobalOpts, name: &str) -> Result<()> {
    let repo = open_repo_read(global)?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    repo.cat_stream(name, &mut out)
        .with_context(|| format!("Merging splitstream '{name}'"))?;
    out.flush().context("writing to standard output")
}
