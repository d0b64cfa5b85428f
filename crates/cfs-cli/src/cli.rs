//! The `cfsctl` command line (clap): global options, subcommands, and the
//! error report printed on failure.
//!
//! Global options may be given anywhere (`cfsctl --repo R images` and
//! `cfsctl images --repo R` alike) and are listed in every subcommand's help.
//! Usage errors exit with 2 (clap), failures with 1 after an
//! `Error: <message>` report with its `Caused by:` chain.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use cfs_core::tree::XattrFilter;
use cfs_core::verity::Algorithm;

use crate::cmd::repo;

const AFTER_HELP: &str = "\
The binary also acts as `mkcomposefs`, `composefs-info` and `mount.composefs`
(C-compatible options) when called by those names or as
`cfsctl mkcomposefs …` / `cfsctl composefs-info …` / `cfsctl mount.composefs …`.";

/// The version and the git commit of the build (`0.1.0 (git 8a99f19abcde)`).
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("CFS_GIT_COMMIT"),
    ")"
);

/// Manage composefs repositories and images.
#[derive(Debug, Parser)]
#[command(name = "cfsctl", version = VERSION, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalOpts,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options of every subcommand (accepted before or after it).
#[derive(Debug, Args)]
pub(crate) struct GlobalOpts {
    /// The repository directory.
    #[arg(long, global = true, value_name = "PATH", conflicts_with_all = ["user", "system"])]
    pub(crate) repo: Option<PathBuf>,
    /// Use the per-user repository, $HOME/.var/lib/composefs.
    ///
    /// This is the default unless running as root.
    #[arg(long, global = true, conflicts_with = "system")]
    pub(crate) user: bool,
    /// Use the system repository, /sysroot/composefs.
    ///
    /// This is the default when running as root.
    #[arg(long, global = true)]
    pub(crate) system: bool,
    /// Digest algorithm: sha256 or sha512 (also spelled fsverity-sha256-12,
    /// fsverity-sha512-12); checked against the repository's meta.json.
    ///
    /// For init, the new repository's algorithm (the same as init
    /// --algorithm). Without a repository it selects the digest of
    /// compute-id and create-dumpfile (default sha512).
    #[arg(long, global = true, value_enum, value_name = "HASH")]
    pub(crate) hash: Option<HashArg>,
    /// EROFS format to write (create-image, compute-id, init).
    ///
    /// Overrides the repository's configured format for this invocation
    /// (meta.json is not changed); for init, the default format of the new
    /// repository: 0 and 1 (C mkcomposefs layout) or 2 (composefs-rs V2).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=2))]
    pub(crate) erofs_version: Option<u32>,
    /// Fail unless the repository has fs-verity (is not insecure).
    #[arg(long, global = true)]
    pub(crate) require_verity: bool,
    /// Do not add meta.json to an old repository that lacks one.
    ///
    /// Such a repository is then used read-only.
    #[arg(long, global = true)]
    pub(crate) no_upgrade: bool,
    /// Do not open a repository (compute-id and create-dumpfile only).
    #[arg(long, global = true)]
    pub(crate) no_repo: bool,
    /// Worker threads for hashing and storing (default: one per CPU).
    #[arg(short = 'j', long, global = true, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Deprecated spelling of `init --insecure`.
    #[arg(long, hide = true)]
    pub(crate) insecure: bool,
}

/// `--hash` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HashArg {
    /// SHA-256 fs-verity digests.
    #[value(alias = "fsverity-sha256-12")]
    Sha256,
    /// SHA-512 fs-verity digests.
    #[value(alias = "fsverity-sha512-12")]
    Sha512,
}

impl HashArg {
    pub(crate) fn algorithm(self) -> Algorithm {
        match self {
            HashArg::Sha256 => Algorithm::Sha256,
            HashArg::Sha512 => Algorithm::Sha512,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a repository (directory and meta.json).
    Init(InitArgs),
    /// Hold the repository's shared lock until killed (keeps gc from running).
    Transaction,
    /// Write a split stream's original bytes to stdout.
    Cat {
        /// A stream content id, or refs/NAME.
        name: String,
    },
    /// Delete objects that no image or stream ref reaches.
    Gc(GcArgs),
    /// Store the EROFS image read from stdin (it is checked first).
    ImportImage {
        /// The name of the image (images/refs/NAME).
        name: String,
        /// Store it even if objects it references are missing.
        #[arg(long)]
        allow_missing_objects: bool,
    },
    /// List named images.
    #[command(visible_alias = "list-images")]
    Images(ImagesArgs),
    /// Remove image names (images/refs/NAME); gc then collects what only they kept alive.
    #[command(visible_alias = "rm")]
    Untag {
        /// The names to remove.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Store a directory's files and its composefs image; print the image id.
    CreateImage(CreateImageArgs),
    /// Print the image id create-image would produce, storing nothing.
    ComputeId(TreeArgs),
    /// Print the dumpfile of a directory tree, storing nothing.
    CreateDumpfile(TreeArgs),
    /// Print the kernel argument naming the boot image of a directory tree.
    ///
    /// The boot transform is applied (/boot and /sysroot emptied, SELinux
    /// labels from the tree's own policy). --erofs-version 0/1 (default 1)
    /// gives `composefs.digest=v1-<hash>-12:<hex>`, 2 gives `composefs=<hex>`.
    ComputeKarg(KargArgs),
    /// List the objects an image references.
    ImageObjects {
        /// Image name, refs/NAME, or hex digest.
        name: String,
    },
    /// Print an image of the repository as a dumpfile.
    Dump {
        /// Image name, refs/NAME, or hex digest.
        name: String,
    },
    /// Check the repository's integrity.
    Fsck(FsckArgs),
    /// Mount an image (composefs overlay; objects/ as the data layer).
    Mount(MountArgs),
    /// Unmount a mounted image.
    Umount(UmountArgs),
    /// OCI container images: pull, list, inspect, mount, ….
    #[command(subcommand)]
    Oci(OciCommand),
    /// Migrate the repository: add EROFS formats (see --add-erofs).
    Upgrade(UpgradeArgs),
    /// Image-based OS deployments on a physical root (bootc's layout).
    #[command(subcommand)]
    System(SystemCommand),
    /// In the initramfs: mount the deployment the kernel command line names as the new root
    /// (also as `composefs-setup-root`).
    SetupRoot(SetupRootArgs),
    /// Print the shell completion script for SHELL.
    ///
    /// For example `cfsctl completions bash > /usr/share/bash-completion/completions/cfsctl`
    /// (the Debian package installs them for bash, zsh and fish).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages into DIR (man1/, man8/).
    ///
    /// cfsctl and each subcommand, mkcomposefs(1), composefs-info(1) and
    /// mount.composefs(8), from the same text as --help.
    #[command(hide = true)]
    Manpages {
        /// The directory (created if missing).
        dir: PathBuf,
    },
}

/// `setup-root` options (the defaults are the initramfs's).
#[derive(Debug, Args)]
pub(crate) struct SetupRootArgs {
    /// The kernel command line (default: /proc/cmdline).
    #[arg(long, value_name = "TEXT")]
    pub(crate) cmdline: Option<String>,
    /// The physical root, mounted (default /sysroot).
    #[arg(long, value_name = "DIR", default_value = "/sysroot")]
    pub(crate) sysroot: PathBuf,
    /// Mount the new root here instead of over the sysroot (tests).
    #[arg(long, value_name = "DIR")]
    pub(crate) target: Option<PathBuf>,
    /// The configuration (default: /usr/lib/composefs/setup-root-conf.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Directory for temporary mounts (default /run).
    #[arg(long, value_name = "DIR", default_value = "/run")]
    pub(crate) run_dir: PathBuf,
}

/// `oci` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum OciCommand {
    /// Pull an image into the repository and build its composefs image.
    ///
    /// SOURCE is `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE[:REPO:TAG]` or `docker://HOST/REPO[:TAG|@DIGEST]`.
    Pull(OciPullArgs),
    /// List the tagged images.
    Images {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show whole manifest digests (default: the first 12 hex digits).
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show an image's manifest, config and composefs images (JSON).
    Inspect {
        /// A tag, or @sha256:MANIFEST-DIGEST.
        image: String,
        /// Print only the raw manifest.
        #[arg(long, conflicts_with = "config")]
        manifest: bool,
        /// Print only the raw config.
        #[arg(long)]
        config: bool,
    },
    /// Tag a stored manifest.
    Tag {
        /// sha256:MANIFEST-DIGEST.
        manifest_digest: String,
        /// The new tag.
        name: String,
    },
    /// Remove a tag (gc then collects what only it kept alive).
    Untag {
        /// The tag.
        name: String,
    },
    /// Print the merged filesystem tree of an image as a dumpfile.
    Dump(OciTreeArgs),
    /// Print the composefs image id an image's layers give.
    ComputeId(OciTreeArgs),
    /// Write a layer's original tar to stdout.
    Layer {
        /// The layer's diff_id (sha256:HEX).
        diff_id: String,
        /// Print the layer's metadata as JSON instead of the tar.
        #[arg(long, conflicts_with = "dumpfile")]
        json: bool,
        /// Print one dumpfile line per tar entry (unmerged) instead of the tar.
        #[arg(long)]
        dumpfile: bool,
    },
    /// Mount an image's composefs image.
    Mount(OciMountArgs),
    /// Check the repository and every tagged image.
    Fsck {
        /// Check only this image (a tag or @sha256:MANIFEST-DIGEST).
        image: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `oci pull` arguments.
#[derive(Debug, Args)]
pub(crate) struct OciPullArgs {
    /// The image to pull.
    pub(crate) source: String,
    /// Tag to store it under (default: the source's repository and tag, e.g.
    /// `debian:12` for docker://docker.io/library/debian:12).
    pub(crate) tag: Option<String>,
    /// Platform to choose from an image index (os/arch[/variant]; default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    /// Registry (`host[:port]`) to reach over plain HTTP; may be repeated.
    ///
    /// localhost, 127.0.0.1 and `[::1]` always use plain HTTP.
    #[arg(long, value_name = "HOST")]
    pub(crate) insecure_registry: Vec<String>,
    /// Credentials file (containers-auth.json format) instead of the usual locations.
    #[arg(long, value_name = "FILE")]
    pub(crate) authfile: Option<PathBuf>,
    /// containers-registries.conf(5) file to use (mirrors, insecure and
    /// blocked registries, rewritten locations) instead of
    /// $CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf or
    /// /etc/containers/registries.conf and their .d drop-ins.
    #[arg(long, value_name = "FILE")]
    pub(crate) registries_conf: Option<PathBuf>,
    /// Idle timeout of registry requests in seconds: a registry that sends
    /// nothing for this long fails the pull (default 120, or CFS_OCI_TIMEOUT).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<std::time::Duration>,
    /// The largest decompressed size of one layer: bytes, or with a K, M, G
    /// or T suffix (powers of 1024). A layer that decompresses to more
    /// fails the pull (default 64G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_layer_size: Option<u64>,
    /// Do not tag the image.
    #[arg(long, conflicts_with = "tag")]
    pub(crate) no_tag: bool,
    /// Also build the boot image (boot transform: /boot and /sysroot
    /// emptied, SELinux labels from the image's policy) in every format the
    /// repository generates; a sealed UKI in the image must name it.
    #[arg(long)]
    pub(crate) bootable: bool,
    /// Find the xattr mode and EROFS format whose boot image has this digest
    /// (hex, e.g. from a sealed UKI built by another tool) and store it.
    #[arg(long, value_name = "HEX", requires = "bootable")]
    pub(crate) expected_digest: Option<String>,
}

/// `compute-karg` arguments.
#[derive(Debug, Args)]
pub(crate) struct KargArgs {
    /// The root directory of the OS tree.
    pub(crate) path: PathBuf,
    /// Keep the tree as it is (no OCI normalisation of the root).
    #[arg(long)]
    pub(crate) no_propagate_usr_to_root: bool,
    /// Write `?` (fs-verity optional at boot).
    #[arg(long)]
    pub(crate) insecure: bool,
}

/// `oci dump` / `oci compute-id` arguments.
#[derive(Debug, Args)]
pub(crate) struct OciTreeArgs {
    /// A tag, or @sha256:MANIFEST-DIGEST.
    pub(crate) image: String,
    /// Which extended attributes to keep: allowlist-only or keep-user-xattrs.
    #[arg(long, value_name = "MODE", default_value = "allowlist-only", value_parser = parse_xattr_filter)]
    pub(crate) xattrs: XattrFilter,
    /// Apply the boot transform (the tree of the image's boot image).
    #[arg(long)]
    pub(crate) bootable: bool,
}

/// `oci mount` arguments.
#[derive(Debug, Args)]
pub(crate) struct OciMountArgs {
    /// A tag, or @sha256:MANIFEST-DIGEST.
    pub(crate) image: String,
    /// Where to mount it.
    pub(crate) mountpoint: PathBuf,
    #[command(flatten)]
    pub(crate) overlay: OverlayArgs,
}

/// The writable-overlay options of `mount` and `oci mount`.
#[derive(Debug, Args)]
pub(crate) struct OverlayArgs {
    /// Writable upper directory (needs --workdir).
    #[arg(long, value_name = "DIR", requires = "workdir")]
    pub(crate) upperdir: Option<PathBuf>,
    /// overlayfs work directory, on the upper directory's filesystem.
    #[arg(long, value_name = "DIR", requires = "upperdir")]
    pub(crate) workdir: Option<PathBuf>,
    /// Mount read-write (default read-only; writes need --upperdir).
    #[arg(long)]
    pub(crate) read_write: bool,
}

/// `mount` arguments.
#[derive(Debug, Args)]
pub(crate) struct MountArgs {
    /// Image name, refs/NAME, or hex digest (images/ only).
    pub(crate) name: String,
    /// Where to mount it.
    pub(crate) mountpoint: PathBuf,
    #[command(flatten)]
    pub(crate) overlay: OverlayArgs,
}

/// `umount` arguments.
#[derive(Debug, Args)]
pub(crate) struct UmountArgs {
    /// The mountpoint.
    pub(crate) mountpoint: PathBuf,
    /// Detach now, clean up when no longer busy (MNT_DETACH).
    #[arg(long)]
    pub(crate) lazy: bool,
}

/// `init` options.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Where to create the repository (default: the global location).
    pub(crate) path: Option<PathBuf>,
    /// Object digest algorithm: fsverity-sha512-12 (default) or
    /// fsverity-sha256-12, also spelled sha512 / sha256 as --hash is.
    #[arg(long, value_name = "ALGORITHM", value_parser = parse_init_algorithm)]
    pub(crate) algorithm: Option<Algorithm>,
    /// Create the repository without fs-verity (for filesystems without it).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// First remove streams/, images/ and meta.json (objects/ is kept).
    #[arg(long)]
    pub(crate) reset_metadata: bool,
    /// Accept an existing repository as it is.
    ///
    /// Only its algorithm must match; an old repository without meta.json
    /// is upgraded.
    #[arg(long)]
    pub(crate) ensure: bool,
    /// EROFS formats generated for every image, the default first: e.g.
    /// `v1`, `v2` or `v1,v2` (both; a V1 default keeps the `v1_erofs` flag).
    /// Without it, the one format --erofs-version names (default 1).
    #[arg(long, value_name = "LIST", value_parser = parse_erofs_list, conflicts_with = "erofs_version")]
    pub(crate) erofs: Option<ErofsList>,
}

/// A list of EROFS formats, the first being the default.
#[derive(Debug, Clone)]
pub(crate) struct ErofsList(pub(crate) Vec<u32>);

/// `v1,v2` / `1,2` → [1, 2].
pub(crate) fn parse_erofs_list(text: &str) -> Result<ErofsList, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let p = part.trim();
        let n = p.strip_prefix(['v', 'V']).unwrap_or(p);
        match n.parse::<u32>() {
            Ok(v) if v <= 2 => {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            _ => return Err(format!("{p:?}: expected an EROFS format v0, v1 or v2")),
        }
    }
    Ok(ErofsList(out))
}

/// Where `system` commands operate.
#[derive(Debug, Args)]
pub(crate) struct SystemRoot {
    /// The physical root (default: the booted system's, /sysroot).
    #[arg(long, value_name = "DIR", default_value = "/sysroot")]
    pub(crate) root: PathBuf,
    /// The boot directory: the ESP or /boot (default: ROOT/boot; on a booted system the ESP at /boot or /efi).
    #[arg(long, value_name = "DIR")]
    pub(crate) boot_dir: Option<PathBuf>,
    /// Where the staged marker lives (default /run/composefs).
    #[arg(long, value_name = "DIR", hide = true)]
    pub(crate) run_dir: Option<PathBuf>,
    /// Act as if deployment ID were booted (tests; default: the root mount's
    /// `composefs:<id>` source).
    #[arg(long, value_name = "ID", hide = true)]
    pub(crate) booted: Option<String>,
}

/// `system` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SystemCommand {
    /// Show the booted, staged, rollback and other deployments.
    Status {
        #[command(flatten)]
        root: SystemRoot,
        /// Print JSON (bootc's field names, ours under `cfs`).
        #[arg(long)]
        json: bool,
    },
    /// Make the previous deployment the default (again: undo).
    Rollback {
        #[command(flatten)]
        root: SystemRoot,
    },
    /// Install an OS image.
    #[command(subcommand)]
    Install(InstallCommand),
    /// Stage the booted image's newest version for the next boot.
    Upgrade {
        #[command(flatten)]
        root: SystemRoot,
        /// Only check whether the image has a new version (fetches its manifest; stages nothing).
        #[arg(long, conflicts_with_all = ["download_only", "apply", "tries"])]
        check: bool,
        /// Download and stage, but do not apply at shutdown.
        #[arg(long, conflicts_with = "apply")]
        download_only: bool,
        /// Reboot into the new deployment once it is staged (`systemctl reboot`).
        #[arg(long)]
        apply: bool,
        /// Boot counting: tries before systemd-boot falls back (see mark-good).
        #[arg(long, value_name = "N")]
        tries: Option<u32>,
    },
    /// Stage another image for the next boot.
    Switch {
        /// The image (any source `oci pull` takes).
        image: String,
        #[command(flatten)]
        root: SystemRoot,
        /// Download and stage, but do not apply at shutdown.
        #[arg(long, conflicts_with = "apply")]
        download_only: bool,
        /// Reboot into the new deployment once it is staged (`systemctl reboot`).
        #[arg(long)]
        apply: bool,
        /// Boot counting: tries before systemd-boot falls back (see mark-good).
        #[arg(long, value_name = "N")]
        tries: Option<u32>,
    },
    /// Boot counting: the booted deployment booted well (run by boot-complete.target).
    MarkGood {
        #[command(flatten)]
        root: SystemRoot,
    },
    /// Apply the staged deployment: merge /etc, swap the entry sets (run at shutdown).
    Finalize {
        #[command(flatten)]
        root: SystemRoot,
    },
    /// Remove a deployment (never the booted one).
    DeleteDeployment {
        /// The deployment id.
        id: String,
        #[command(flatten)]
        root: SystemRoot,
    },
    /// Keep a deployment across upgrades (--unpin: stop keeping it).
    Pin {
        /// The deployment id.
        id: String,
        /// Unpin instead.
        #[arg(long)]
        unpin: bool,
        #[command(flatten)]
        root: SystemRoot,
    },
    /// Edit the kernel arguments of the default deployment (kept across upgrades).
    Kargs {
        /// An argument to add (replaces one with the same key=).
        #[arg(long, value_name = "ARG")]
        append: Vec<String>,
        /// An argument to remove (exact, or every KEY= with `--delete KEY=`).
        #[arg(long, value_name = "ARG")]
        delete: Vec<String>,
        #[command(flatten)]
        root: SystemRoot,
    },
    /// Remove what no live deployment needs: boot binaries, state, tags, repository objects.
    Gc {
        #[command(flatten)]
        root: SystemRoot,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `system install` targets.
#[derive(Debug, Subcommand)]
pub(crate) enum InstallCommand {
    /// Partition and format a new disk image (GPT: ESP + ext4 root) and install onto it.
    ToDisk {
        /// The image (any source `oci pull` takes).
        image: String,
        /// The disk image file to create (or, with --wipe, a block device).
        disk: PathBuf,
        /// Size of the disk image (bytes, or K/M/G/T; default 8G, sparse).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        size: Option<u64>,
        /// Size of the ESP in MiB (default 1024).
        #[arg(long, value_name = "MIB", default_value_t = 1024)]
        esp_size: u64,
        /// Erase DISK if it exists (a disk image file, or a block device used whole).
        #[arg(long)]
        wipe: bool,
        /// A kernel argument to add (may be repeated).
        #[arg(long, value_name = "ARG")]
        karg: Vec<String>,
        /// Install on a filesystem without fs-verity (files not verified at boot).
        #[arg(long)]
        allow_missing_verity: bool,
        /// systemd-boot (from the image) or none (entries only).
        #[arg(long, value_name = "NAME", default_value = "systemd-boot", value_parser = ["systemd-boot", "none"])]
        bootloader: String,
    },
    /// Install onto a mounted filesystem (ROOT) and a boot directory.
    ToFilesystem {
        /// The image (any source `oci pull` takes).
        image: String,
        /// The physical root to install to.
        root: PathBuf,
        /// The boot directory: the ESP or /boot (default: ROOT/boot).
        #[arg(long, value_name = "DIR")]
        boot_dir: Option<PathBuf>,
        /// A kernel argument to add (may be repeated).
        #[arg(long, value_name = "ARG")]
        karg: Vec<String>,
        /// The root= argument the initramfs needs (e.g. root=UUID=…).
        #[arg(long, value_name = "ARG")]
        root_karg: Option<String>,
        /// Install on a filesystem without fs-verity (files not verified at boot).
        #[arg(long)]
        allow_missing_verity: bool,
        /// systemd-boot (from the image) or none (entries only).
        #[arg(long, value_name = "NAME", default_value = "systemd-boot", value_parser = ["systemd-boot", "none"])]
        bootloader: String,
    },
}

/// `upgrade` arguments.
#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    /// Also generate these EROFS formats (e.g. `v2` or `v1,v2`) from now on,
    /// and build them for every tagged OCI image (plain and boot images).
    #[arg(long, value_name = "LIST", value_parser = parse_erofs_list)]
    pub(crate) add_erofs: Option<ErofsList>,
}

/// How a directory tree is read (create-image, compute-id, create-dumpfile).
#[derive(Debug, Args)]
pub(crate) struct TreeOpts {
    /// Keep the tree as it is (no OCI normalisation).
    ///
    /// By default the root directory takes /usr's metadata, /run is
    /// emptied and xattrs are filtered (see --xattrs); this turns all of it
    /// off.
    #[arg(long)]
    pub(crate) no_propagate_usr_to_root: bool,
    /// Xattrs the normalisation keeps: allowlist-only or keep-user-xattrs.
    ///
    /// allowlist-only keeps security.capability; keep-user-xattrs also
    /// keeps user.*.
    #[arg(long, value_name = "MODE", default_value = "allowlist-only", value_parser = parse_xattr_filter)]
    pub(crate) xattrs: XattrFilter,
}

/// `compute-id` / `create-dumpfile` arguments.
#[derive(Debug, Args)]
pub(crate) struct TreeArgs {
    #[command(flatten)]
    pub(crate) tree: TreeOpts,
    /// The directory.
    pub(crate) path: PathBuf,
}

/// `create-image` arguments.
#[derive(Debug, Args)]
pub(crate) struct CreateImageArgs {
    #[command(flatten)]
    pub(crate) tree: TreeOpts,
    /// The directory.
    pub(crate) path: PathBuf,
    /// Name the image (images/refs/NAME).
    pub(crate) name: Option<String>,
}

/// `images` options.
#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {
    /// Print JSON: {"images": [{"name", "digest"}, …]}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print whole digests.
    #[arg(long)]
    pub(crate) no_trunc: bool,
}

/// `gc` options.
#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Keep this image (hex digest) or stream (content id) too; repeatable.
    #[arg(short = 'r', long = "root", value_name = "NAME")]
    pub(crate) roots: Vec<String>,
    /// Only report what would be removed.
    #[arg(short = 'n', long)]
    pub(crate) dry_run: bool,
}

/// `fsck` options.
#[derive(Debug, Args)]
pub(crate) struct FsckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Skip re-hashing the objects.
    #[arg(long)]
    pub(crate) metadata_only: bool,
}

/// `fsverity-<hash>-<lg block size>` as accepted by `init --algorithm`,
/// or the bare `sha256` / `sha512` of `--hash`.
fn parse_init_algorithm(text: &str) -> Result<Algorithm, String> {
    match text {
        "sha256" => return Ok(Algorithm::Sha256),
        "sha512" => return Ok(Algorithm::Sha512),
        _ => {}
    }
    let rest = text
        .strip_prefix("fsverity-")
        .ok_or_else(|| format!("expected fsverity-<hash>-<lg_blocksize>, found '{text}'"))?;
    let (hash, lg) = rest
        .rsplit_once('-')
        .ok_or_else(|| format!("expected fsverity-<hash>-<lg_blocksize>, found '{text}'"))?;
    let alg = match hash {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        other => {
            return Err(format!(
                "unsupported hash algorithm '{other}' (expected sha256 or sha512)"
            ));
        }
    };
    if lg != "12" {
        return Err(format!(
            "unsupported lg_blocksize {lg} (only 12 is currently supported)"
        ));
    }
    Ok(alg)
}

fn parse_xattr_filter(text: &str) -> Result<XattrFilter, String> {
    XattrFilter::parse(text).ok_or_else(|| {
        format!(
            "invalid xattr filtering mode \"{text}\" (expected \"allowlist-only\" or \"keep-user-xattrs\")"
        )
    })
}

/// Runs `cfsctl` with `args` (without `argv[0]`).
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from("cfsctl")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match repo::run(&cli.global, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`cfsctl dump … | head`): stop quietly, as
        // tools killed by SIGPIPE do, without an error report.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = io::stdout().flush();
            let mut err = io::stderr().lock();
            let _ = err.write_all(report(&e).as_bytes());
            ExitCode::FAILURE
        }
    }
}

/// Whether `e` comes from writing to standard output after its reader
/// closed it (an `EPIPE` in the chain, and stdout a pipe with no reader).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let epipe = e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    });
    epipe && stdout_widowed()
}

/// stdout is a pipe whose read end is closed (poll reports `POLLERR`).
fn stdout_widowed() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

/// The failure report: `Error: <message>`, then, if the error has causes, a
/// blank line, `Caused by:` and the causes (numbered when more than one),
/// like an `anyhow` error returned from `main`. A cause whose text the
/// previous message already ends with is left out: repository errors print
/// their source as part of their own message.
fn report(e: &anyhow::Error) -> String {
    let mut messages: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if messages.last().is_some_and(|prev| prev.ends_with(&text)) {
            continue;
        }
        messages.push(text);
    }
    let mut out = format!("Error: {}\n", messages.first().map_or("", String::as_str));
    let causes = messages.get(1..).unwrap_or_default();
    if !causes.is_empty() {
        out.push_str("\nCaused by:\n");
        for (i, cause) in causes.iter().enumerate() {
            let (prefix, indent) = if causes.len() == 1 {
                ("    ".to_string(), "\n    ")
            } else {
                (format!("{i:5}: "), "\n       ")
            };
            let indented = cause.replace('\n', indent);
            out.push_str(&format!("{prefix}{indented}\n"));
        }
    }
    out
}

/// `--timeout SECS`: a positive number of seconds (fractions allowed).
pub(crate) fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{text:?}: expected more than 0 and at most 86400 seconds"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `--max-layer-size SIZE`: bytes, or a number with a K, M, G or T suffix
/// (powers of 1024; `KiB`, `MiB`, … accepted too).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits);
    let shift = match suffix.trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => {
            return Err(format!(
                "{text:?}: expected bytes, or a number with K, M, G or T"
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected bytes, or a number with K, M, G or T"))?;
    n.checked_mul(1 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{text:?}: expected a size above 0 and below 2^64"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes_and_timeouts_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("64G"), Ok(64 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        for bad in ["", "G", "1X", "-1", "0", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout("2"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(
            parse_timeout("0.5"),
            Ok(std::time::Duration::from_millis(500))
        );
        for bad in ["0", "-3", "x", "1e9"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            parse_init_algorithm("fsverity-sha256-12"),
            Ok(Algorithm::Sha256)
        );
        assert_eq!(
            parse_init_algorithm("fsverity-sha1-12").unwrap_err(),
            "unsupported hash algorithm 'sha1' (expected sha256 or sha512)"
        );
        assert_eq!(
            parse_init_algorithm("fsverity-sha512-16").unwrap_err(),
            "unsupported lg_blocksize 16 (only 12 is currently supported)"
        );
        // --hash's spelling is accepted too.
        assert_eq!(parse_init_algorithm("sha512"), Ok(Algorithm::Sha512));
        assert!(parse_init_algorithm("sha1").is_err());
    }

    #[test]
    fn error_report_layout() {
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(report(&e), "Error: outer\n\nCaused by:\n    inner\n");
        let e = anyhow::anyhow!("c").context("b").context("a");
        assert_eq!(report(&e), "Error: a\n\nCaused by:\n    0: b\n    1: c\n");
        // A source repeated at the end of its parent's message is dropped.
        let io = std::io::Error::from_raw_os_error(2);
        let e = cfs_core::repository::RepoError::io("/r", io);
        assert_eq!(
            report(&anyhow::Error::new(e)),
            "Error: /r: No such file or directory (os error 2)\n"
        );
    }
}
