//! `cfsctl` repository commands: where the repository is, how it is opened,
//! and the dispatch to one module per command group.

pub(crate) mod create;
mod fsck;
mod gc;
mod images;
mod init;
pub(crate) mod mount;
pub(crate) mod table;

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use cfs_core::repository::{OpenOptions, Repository, meta};
use cfs_core::verity::{Algorithm, Digest};

use crate::cli::{Command, GlobalOpts};

/// The system repository (default for root).
const SYSTEM_REPO: &str = "/sysroot/composefs";
/// The user repository, under `$HOME` (default otherwise).
const USER_REPO: &str = ".var/lib/composefs";

/// Runs one subcommand.
pub(crate) fn run(global: &GlobalOpts, command: Command) -> Result<()> {
    if global.no_repo
        && !matches!(
            command,
            Command::ComputeId(_) | Command::CreateDumpfile(_) | Command::ComputeKarg(_)
        )
    {
        bail!("--no-repo is only supported for compute-id, compute-karg and create-dumpfile");
    }
    match command {
        Command::Init(args) => init::init(global, &args),
        Command::Transaction => gc::transaction(global),
        Command::Cat { name } => images::cat(global, &name),
        Command::Gc(args) => gc::gc(global, &args),
        Command::ImportImage {
            name,
            allow_missing_objects,
        } => images::import_image(global, &name, allow_missing_objects),
        Command::Images(args) => images::list(global, &args),
        Command::Untag { names } => images::untag(global, &names),
        Command::CreateImage(args) => create::create_image(global, &args),
        Command::ComputeId(args) => create::compute_id(global, &args),
        Command::CreateDumpfile(args) => create::create_dumpfile(global, &args),
        Command::ComputeKarg(args) => create::compute_karg(global, &args),
        Command::ImageObjects { name } => images::image_objects(global, &name),
        Command::Dump { name } => images::dump(global, &name),
        Command::Fsck(args) => fsck::fsck(global, &args),
        Command::Mount(args) => mount::mount(global, &args),
        Command::Umount(args) => mount::umount(&args),
        Command::Oci(command) => crate::cmd::oci::run(global, command),
        Command::Upgrade(args) => init::upgrade(global, &args),
        Command::System(command) => crate::cmd::system::run(command),
        Command::SetupRoot(args) => crate::cmd::setup_root::run(&args),
        Command::Completions { shell } => crate::man::completions(shell),
        Command::Manpages { dir } => crate::man::write_pages(&dir),
    }
}

/// The repository directory named by `--repo`/`--user`/`--system`, or the
/// default: the system repository for root, the user repository otherwise.
pub(crate) fn repo_path(global: &GlobalOpts) -> Result<PathBuf> {
    if let Some(p) = &global.repo {
        return Ok(p.clone());
    }
    let user = global.user || (!global.system && !rustix::process::geteuid().is_root());
    if !user {
        return Ok(PathBuf::from(SYSTEM_REPO));
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(USER_REPO)),
        _ => bail!("$HOME must be set when in user mode"),
    }
}

/// Opens the repository with the global options, for a command that may
/// write (an old repository without `meta.json` is upgraded unless
/// `--no-upgrade`), and checks `--hash`.
pub(crate) fn open_repo(global: &GlobalOpts) -> Result<Repository> {
    open_with(global, false)
}

/// Opens the repository for a command that only reads: nothing is ever
/// written, not even `meta.json` into an old repository.
pub(crate) fn open_repo_read(global: &GlobalOpts) -> Result<Repository> {
    open_with(global, true)
}

fn open_with(global: &GlobalOpts, read_only: bool) -> Result<Repository> {
    let path = repo_path(global)?;
    let opts = OpenOptions {
        require_verity: global.require_verity,
        no_upgrade: global.no_upgrade,
        read_only,
        algorithm: global.hash.map(|h| h.algorithm()),
    };
    let repo = Repository::open(&path, &opts)?;
    check_hash(global, &repo)?;
    Ok(repo)
}

/// `--hash` must agree with the repository's algorithm.
pub(crate) fn check_hash(global: &GlobalOpts, repo: &Repository) -> Result<()> {
    if let Some(hash) = global.hash
        && hash.algorithm() != repo.algorithm()
    {
        bail!(
            "repository is configured for {} (from meta.json) but --hash {} was specified",
            meta::algorithm_name(repo.algorithm()),
            hash.algorithm().name()
        );
    }
    Ok(())
}

/// The digest algorithm for commands that need no repository (compute-id,
/// create-dumpfile): the repository's if one opens (read-only, never
/// upgraded), else `--hash`, else SHA-512.
pub(crate) fn tree_algorithm(global: &GlobalOpts) -> Result<Algorithm> {
    let fallback = global.hash.map_or(Algorithm::Sha512, |h| h.algorithm());
    if global.no_repo {
        return Ok(fallback);
    }
    let Ok(path) = repo_path(global) else {
        return Ok(fallback);
    };
    let opts = OpenOptions {
        require_verity: global.require_verity,
        no_upgrade: true,
        read_only: true,
        algorithm: global.hash.map(|h| h.algorithm()),
    };
    match Repository::open(&path, &opts) {
        Ok(repo) => {
            check_hash(global, &repo)?;
            Ok(repo.algorithm())
        }
        // --require-verity is a request about the repository: keep its error.
        Err(e @ cfs_core::repository::RepoError::VerityRequired { .. }) => Err(e.into()),
        Err(_) => Ok(fallback),
    }
}

/// Worker threads from `-j` (0: one per CPU).
pub(crate) fn threads(global: &GlobalOpts) -> usize {
    global.threads.unwrap_or(0)
}

/// `<alg>:<hex>`, as composefs-rs prints object ids.
pub(crate) fn digest_id(digest: &Digest) -> String {
    format!("{}:{}", digest.algorithm().name(), digest.to_hex())
}

/// Writes `text` to stdout (locked) and flushes.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}
