//! Images from directories: `create-image`, `compute-id`, `create-dumpfile`.
//!
//! All three read the tree the same way (composefs-rs rules: every xattr,
//! hard links, files over 64 bytes external) and, unless
//! `--no-propagate-usr-to-root`, normalise it for OCI (root metadata from
//! `/usr`, `/run` emptied, xattr filter).

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{HumanBytes, ProgressBar};

use cfs_core::dumpfile::write_dumpfile_rs_links;
use cfs_core::repository::{DirImageOptions, RepoError, image_bytes, read_directory_tree};
use cfs_core::tree::{FileSystem, InodeId, Progress, TransformError};
use cfs_core::verity::digest_bytes;

use super::{digest_id, open_repo, print, threads, tree_algorithm};
use crate::cli::{CreateImageArgs, GlobalOpts, KargArgs, TreeArgs, TreeOpts};
use crate::progress;

/// The library options for a tree read.
fn dir_options(global: &GlobalOpts, tree: &TreeOpts) -> DirImageOptions {
    DirImageOptions {
        propagate_usr_to_root: !tree.no_propagate_usr_to_root,
        xattrs: tree.xattrs,
        threads: threads(global),
        erofs_version: global.erofs_version,
    }
}

/// Shows the content-pass counters (with the objects stored if `storing`).
fn show(bar: &ProgressBar, p: &Progress, storing: bool) {
    let mut message = format!(
        "{} files, {} read",
        p.files.load(Ordering::Relaxed),
        HumanBytes(p.bytes.load(Ordering::Relaxed)),
    );
    if storing {
        message.push_str(&format!(
            ", {} new objects stored ({})",
            p.stored.load(Ordering::Relaxed),
            HumanBytes(p.stored_bytes.load(Ordering::Relaxed)),
        ));
    }
    bar.set_message(message);
}

/// What can be known before scanning (and storing) anything: `path` is a
/// directory, and its `usr` is a directory or absent. Absent, the tree is
/// taken as an application image (a note says so): its root keeps its own
/// metadata instead of taking `/usr`'s.
fn check_tree_root(path: &Path, tree: &TreeOpts) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("Reading the tree {}", path.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", path.display());
    }
    if tree.no_propagate_usr_to_root {
        return Ok(());
    }
    match std::fs::symlink_metadata(path.join("usr")) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{}/usr is not a directory, so the root cannot take its metadata\n\
             hint: to build an image of this tree as it is, pass --no-propagate-usr-to-root",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "note: {} has no usr/: building an application image (its root keeps its own \
                     metadata; composefs-rs refuses such trees)",
                    path.display()
                );
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("Reading {}/usr", path.display())),
    }
}

/// Adds a hint to the error of a tree without `/usr`.
fn with_hint(e: RepoError) -> anyhow::Error {
    match &e {
        RepoError::Transform {
            source: TransformError::Missing("usr") | TransformError::NotADirectory("usr"),
            ..
        } => anyhow!(
            "{e}\nhint: to build an image of a tree without /usr, pass --no-propagate-usr-to-root"
        ),
        _ => e.into(),
    }
}

/// `create-image [--no-propagate-usr-to-root] [--xattrs MODE] PATH [NAME]`:
/// prints `<alg>:<hex>`.
pub(crate) fn create_image(global: &GlobalOpts, args: &CreateImageArgs) -> Result<()> {
    let repo = open_repo(global)?;
    if let Some(version) = global.erofs_version.filter(|&v| v > 2) {
        return Err(unsupported_version(version));
    }
    check_tree_root(&args.path, &args.tree)?;
    let opts = dir_options(global, &args.tree);
    let counters = Progress::default();
    let bar = progress::spinner("Scanning");
    let start = std::time::Instant::now();
    let digest = progress::poll_while(
        &bar,
        |bar| show(bar, &counters, true),
        || repo.create_image_from_dir(&args.path, &opts, args.name.as_deref(), Some(&counters)),
    )
    .map_err(with_hint)?;
    progress::summary(&format!(
        "{}: {} ({}) read, {} stored ({}) in {:.1} s",
        args.path.display(),
        progress::count(counters.files.load(Ordering::Relaxed), "file"),
        HumanBytes(counters.bytes.load(Ordering::Relaxed)),
        progress::count(counters.stored.load(Ordering::Relaxed), "new object"),
        HumanBytes(counters.stored_bytes.load(Ordering::Relaxed)),
        start.elapsed().as_secs_f64()
    ));
    print(&format!("{}\n", digest_id(&digest)))
}

/// `compute-id [options] PATH`: prints the bare hex id, storing nothing.
/// The EROFS format is `--erofs-version` or 1 (not the repository's, like
/// composefs-rs).
pub(crate) fn compute_id(global: &GlobalOpts, args: &TreeArgs) -> Result<()> {
    let algorithm = tree_algorithm(global)?;
    let version = global.erofs_version.unwrap_or(1);
    if version > 2 {
        return Err(unsupported_version(version));
    }
    let fs = read_tree(global, &args.tree, &args.path, algorithm)?;
    let data = image_bytes(&fs, version)?;
    print(&format!("{}\n", digest_bytes(algorithm, &data).to_hex()))
}

/// `compute-karg [--no-propagate-usr-to-root] [--insecure] PATH`: the kernel
/// argument of the boot image of `PATH` (composefs-rs `compute-karg`).
pub(crate) fn compute_karg(global: &GlobalOpts, args: &KargArgs) -> Result<()> {
    use cfs_deploy::boot_image::{DirContents, transform_for_boot};
    use cfs_deploy::cmdline::{ComposefsArg, Epoch};
    let algorithm = tree_algorithm(global)?;
    let version = global.erofs_version.unwrap_or(1);
    if version > 2 {
        return Err(unsupported_version(version));
    }
    let tree = TreeOpts {
        no_propagate_usr_to_root: args.no_propagate_usr_to_root,
        xattrs: cfs_core::tree::XattrFilter::AllowlistOnly,
    };
    let mut fs = read_tree(global, &tree, &args.path, algorithm)?;
    let root = rustix::fs::open(
        &args.path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("Opening {}", args.path.display()))?;
    transform_for_boot(&mut fs, &DirContents(root), false)
        .with_context(|| format!("Boot transform of {}", args.path.display()))?;
    let data = image_bytes(&fs, version)?;
    let digest = digest_bytes(algorithm, &data);
    let arg = if version == 2 {
        ComposefsArg::short(digest, args.insecure)
    } else {
        ComposefsArg::self_describing(Epoch::V1, digest, args.insecure)
    };
    print(&format!("{arg}\n"))
}

/// `create-dumpfile [options] PATH`: the tree's dumpfile on stdout.
pub(crate) fn create_dumpfile(global: &GlobalOpts, args: &TreeArgs) -> Result<()> {
    let algorithm = tree_algorithm(global)?;
    let mut fs = read_tree(global, &args.tree, &args.path, algorithm)?;
    directory_counts_as_reference(&mut fs);
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    write_dumpfile_rs_links(&fs, &mut out)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

/// Reads `path` into a tree without storing anything, with progress.
fn read_tree(
    global: &GlobalOpts,
    tree: &TreeOpts,
    path: &Path,
    algorithm: cfs_core::verity::Algorithm,
) -> Result<FileSystem> {
    check_tree_root(path, tree)?;
    let opts = dir_options(global, tree);
    let counters = Progress::default();
    let bar = progress::spinner("Scanning");
    progress::poll_while(
        &bar,
        |bar| show(bar, &counters, false),
        || read_directory_tree(path, algorithm, &opts, None, Some(&counters)),
    )
    .map_err(with_hint)
}

/// Directory lines as composefs-rs prints them: size 0 (the on-disk size
/// means nothing in an image) and nlink 2 + subdirectories.
pub(crate) fn directory_counts_as_reference(fs: &mut FileSystem) {
    for index in 0..fs.len() {
        let Ok(raw) = u32::try_from(index) else { break };
        let id = InodeId(raw);
        let subdirs = fs.directory(id).map(|d| {
            d.entries()
                .iter()
                .filter(|e| fs.directory(e.inode).is_some())
                .count()
        });
        if let Some(subdirs) = subdirs {
            let inode = fs.inode_mut(id);
            inode.nlink = u32::try_from(subdirs).map_or(u32::MAX, |n| n.saturating_add(2));
            if let Some(d) = inode.as_directory_mut() {
                d.size = 0;
            }
        }
    }
}

fn unsupported_version(version: u32) -> anyhow::Error {
    anyhow!("--erofs-version {version}: cfs writes EROFS formats 0, 1 and 2 only")
}
