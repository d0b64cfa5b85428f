//! `cfsctl init [--algorithm A] [--insecure] [--reset-metadata] [--ensure]
//! [--erofs-version N] [PATH]`.
//!
//! Messages as composefs-rs 0.9 prints them:
//! - new: `Initialized composefs repository at <path>`, `  algorithm: …`,
//!   `  verity:    required` / `  verity:    not required (insecure)`;
//! - same configuration: `Repository already initialized at <path>`;
//! - `--ensure` on any existing repository of the requested algorithm:
//!   `… (existing configuration preserved)`; on an old repository without
//!   `meta.json`: `Upgraded legacy repository at <path>`.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use cfs_core::repository::{
    InitOptions, Initialized, NewDirs, OpenOptions, Repository, meta, paths,
};
use cfs_core::verity::Algorithm;

use super::{print, repo_path};
use crate::cli::{GlobalOpts, InitArgs};

/// Whether `a` and `b` name the same directory (compared resolved when
/// both exist, else as written, without a trailing `/`).
fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.components().eq(b.components()),
    }
}

pub(crate) fn init(global: &GlobalOpts, args: &InitArgs) -> Result<()> {
    let path = match (&args.path, &global.repo) {
        (Some(p), Some(r)) if !same_path(p, r) => bail!(
            "init: two different repositories given: --repo {} and PATH {} (give one of them)",
            r.display(),
            p.display()
        ),
        (Some(p), _) => p.clone(),
        (None, _) => repo_path(global)?,
    };
    let algorithm = match (args.algorithm, global.hash.map(|h| h.algorithm())) {
        (Some(a), Some(h)) if a != h => bail!(
            "init: --algorithm {} and --hash {} disagree (give one of them)",
            meta::algorithm_name(a),
            meta::algorithm_name(h)
        ),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => Algorithm::Sha512,
    };
    let shown = path.display().to_string();
    let opts = InitOptions {
        algorithm,
        insecure: args.insecure || global.insecure,
        erofs_version: match &args.erofs {
            Some(list) => list.0.first().copied().unwrap_or(1),
            None => global.erofs_version.unwrap_or(1),
        },
        erofs_extra: args
            .erofs
            .as_ref()
            .map(|l| l.0.iter().skip(1).copied().collect())
            .unwrap_or_default(),
    };
    if args.reset_metadata {
        Repository::reset_metadata(&path)
            .with_context(|| format!("Resetting metadata of repository at {shown}"))?;
    }
    // A failed init leaves nothing behind: the directories it creates are
    // removed again (only while empty).
    let created = NewDirs::before_creating(&path);
    let result = (|| {
        create_repo_dir(&path).with_context(|| format!("Initializing repository at {shown}"))?;
        if args.ensure
            && let Some(message) = ensure_existing(global, &path, algorithm)
                .with_context(|| format!("Ensuring repository at {shown}"))?
        {
            return Ok(Outcome::Ensured(message));
        }
        Repository::init(&path, &opts)
            .map(|(_repo, what)| Outcome::Initialized(what))
            .with_context(|| format!("Initializing repository at {shown}"))
    })();
    if result.is_err() {
        created.remove();
    }
    let what = match result? {
        Outcome::Initialized(what) => what,
        Outcome::Ensured(message) => return print(&format!("{message}\n")),
    };
    match what {
        Initialized::Created => print(&format!(
            "Initialized composefs repository at {shown}\n  algorithm: {}\n  verity:    {}\n",
            meta::algorithm_name(opts.algorithm),
            if opts.insecure {
                "not required (insecure)"
            } else {
                "required"
            }
        )),
        Initialized::Existing => print(&format!("Repository already initialized at {shown}\n")),
    }
}

/// What `init` did: initialised (or found) a repository, or `--ensure`
/// accepted an existing one (with the message to print).
enum Outcome {
    Initialized(Initialized),
    Ensured(String),
}

/// Creates the repository directory (mode 0700) and its parents.
fn create_repo_dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// `--ensure` on an existing repository: opens it as it is (upgrading one
/// without `meta.json`) and returns the message to print; `None` when there
/// is nothing yet, so a new repository is created.
fn ensure_existing(global: &GlobalOpts, path: &Path, wanted: Algorithm) -> Result<Option<String>> {
    let has_meta = path.join(paths::META_JSON).exists();
    let has_objects = path.join(paths::OBJECTS).is_dir();
    if !has_meta && !has_objects {
        return Ok(None);
    }
    if !has_meta && global.no_upgrade {
        bail!(
            "meta.json not found in {}; --no-upgrade forbids upgrading the old repository",
            path.display()
        );
    }
    let opts = OpenOptions {
        require_verity: global.require_verity,
        no_upgrade: global.no_upgrade,
        read_only: false,
        algorithm: Some(wanted),
    };
    let repo = Repository::open(path, &opts)?;
    if repo.algorithm() != wanted {
        bail!(
            "repository algorithm {} does not match expected {}",
            meta::algorithm_name(repo.algorithm()),
            meta::algorithm_name(wanted)
        );
    }
    let shown = path.display();
    Ok(Some(if has_meta {
        format!("Repository already initialized at {shown} (existing configuration preserved)")
    } else {
        format!("Upgraded legacy repository at {shown}")
    }))
}

/// `upgrade --add-erofs LIST`: adds formats to meta.json, then builds them
/// for every tagged OCI image.
pub(crate) fn upgrade(global: &GlobalOpts, args: &crate::cli::UpgradeArgs) -> Result<()> {
    let Some(formats) = &args.add_erofs else {
        bail!("nothing to do: pass --add-erofs LIST (e.g. --add-erofs v2)");
    };
    let mut repo = super::open_repo(global)?;
    let added = repo
        .add_erofs_formats(&formats.0)
        .context("Updating meta.json")?;
    let mut out = String::new();
    if added.is_empty() {
        out.push_str("EROFS formats unchanged\n");
    } else {
        out.push_str(&format!("EROFS formats now {}\n", repo.meta().describe()));
    }
    let versions = repo.erofs_versions();
    for img in cfs_deploy::boot_image::oci::add_formats(&repo, &versions)
        .context("Building the new formats of the tagged images")?
    {
        for (name, digest) in &img.added {
            out.push_str(&format!("{}: {name} {}\n", img.tag, digest.to_hex()));
        }
    }
    print(&out)
}
