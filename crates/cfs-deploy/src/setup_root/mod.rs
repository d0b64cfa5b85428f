//! Root setup in the initramfs (boot-deploy.md §9): mounts the deployment
//! the kernel command line names as the new root, before switch-root.
//!
//! ```text
//! <target>            overlay composefs:<id>, read-only (verity=require unless `?`)
//! │                   [transient root: overlay transient:composefs=<id> with a tmpfs upper]
//! ├── sysroot/        the physical root (a clone of <sysroot>), read-only
//! ├── etc/            bind of <sysroot>/state/deploy/<id>/etc   (or overlay | transient | none)
//! └── var/            bind of <sysroot>/state/deploy/<id>/var → state/os/default/var (or none)
//! ```
//!
//! Sequence ([`setup_root`]):
//! 1. The candidates of the command line ([`crate::cmdline::candidates`]:
//!    every `composefs.digest=` first, then `composefs=`); the first whose
//!    `composefs/images/<id>` exists is mounted. None: an error naming what
//!    was asked for and listing what the repository has.
//! 2. Detached clones (`open_tree(OPEN_TREE_CLONE)`) of the physical root,
//!    of the deployment's `etc` and of its `var` are taken first, since the
//!    new root may be mounted over `<sysroot>` itself.
//! 3. The image is mounted on the target ([`cfs_core::mount::mount_image`]:
//!    objects from `composefs/objects`, read-only, source `composefs:<id>`;
//!    unless the argument has `?`: `verity=require` and the image file's own
//!    fs-verity digest checked against the id by the kernel).
//! 4. Transient root (`[root] transient = true`): an overlay over it with a
//!    tmpfs upper layer, source `transient:composefs=<id>`.
//! 5. The physical root clone goes on `<target>/sysroot` (if the image has
//!    that directory) and is made read-only.
//! 6. `/etc` and `/var` as configured ([`config`]); `systemd.volatile=state`
//!    or `=overlay` on the command line skips the `/var` bind unless `[var]`
//!    is configured.
//!
//! Before all that, [`gpt_auto::write_volatile_root_hint`] tells systemd's
//! GPT auto-discovery in the booted system where the physical root is.
//!
//! The target defaults to `<sysroot>` (the image stacked on the physical
//! root, which systemd then switches into); tests give `--target`. What was
//! mounted is unmounted again when a later step fails.

pub mod config;
pub mod gpt_auto;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use cfs_core::mount::{MountError, MountOptions, VerityMode, mount_image};
use rustix::fs::{CWD, Mode, OFlags};
use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

use crate::cmdline::{ComposefsArg, KargError, candidates, split};
pub use config::{Config, ConfigError, EtcMount, VarMount};

/// Where the configuration lives in the image (and in the initramfs).
pub const CONFIG_PATH: &str = "/usr/lib/composefs/setup-root-conf.toml";

/// What to set up.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The kernel command line.
    pub cmdline: String,
    /// The physical root (`/sysroot`).
    pub sysroot: PathBuf,
    /// Where to mount the new root (default: over `sysroot`).
    pub target: Option<PathBuf>,
    /// The configuration.
    pub config: Config,
    /// A directory for temporary mounts (`/run`).
    pub run_dir: PathBuf,
}

/// What [`setup_root`] mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// The deployment (image id, hex).
    pub id: String,
    /// The argument it came from.
    pub arg: String,
    /// Where the new root is.
    pub target: PathBuf,
    /// The root's mount source (`composefs:<id>` or `transient:composefs=<id>`).
    pub source: String,
    /// verity=require was used.
    pub verity: bool,
    /// The physical root was attached at `<target>/sysroot`.
    pub sysroot: bool,
    /// How `/etc` was provided.
    pub etc: EtcMount,
    /// How `/var` was provided (`None`: skipped for `systemd.volatile`).
    pub var: Option<VarMount>,
}

/// Why root setup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// No composefs argument.
    #[error("the kernel command line has no composefs= or composefs.digest= argument: {cmdline:?}")]
    NoArgument {
        /// The command line.
        cmdline: String,
    },
    /// Only malformed composefs arguments.
    #[error("{0}")]
    BadArgument(KargError),
    /// No repository.
    #[error("{path}: no composefs repository (is the root partition mounted at the sysroot?)")]
    NoRepository {
        /// `<sysroot>/composefs`.
        path: PathBuf,
    },
    /// None of the images named exists.
    #[error(
        "composefs image {wanted} not found in {repo}/images; the repository has {count} image(s){have}"
    )]
    ImageMissing {
        /// The digests asked for, with their arguments.
        wanted: String,
        /// The repository.
        repo: PathBuf,
        /// How many images it has.
        count: usize,
        /// Some of them, `: a, b, …`.
        have: String,
    },
    /// The deployment's state directory is missing.
    #[error("{path}: the deployment's state directory is missing (its /etc and /var live there)")]
    NoState {
        /// `<sysroot>/state/deploy/<id>`.
        path: PathBuf,
    },
    /// The image's tree lacks a mount point.
    #[error("the image has no {0} directory to mount on")]
    NoMountPoint(String),
    /// Mounting the image failed.
    #[error("mounting composefs image {id}: {source}")]
    Mount {
        /// The image.
        id: String,
        /// The error.
        source: MountError,
    },
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn sys(what: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> SetupError {
    let path = path.to_path_buf();
    move |e| SetupError::Sys {
        what,
        path,
        source: e.into(),
    }
}

/// Mounts stacked by [`setup_root`], undone in reverse order if a later
/// step fails.
struct Undo(Vec<PathBuf>);

impl Undo {
    fn push(&mut self, p: &Path) {
        self.0.push(p.to_path_buf());
    }
    fn disarm(&mut self) {
        self.0.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = rustix::mount::unmount(p, UnmountFlags::DETACH);
        }
    }
}

/// Picks the first candidate whose image the repository has.
fn pick(cmdline: &str, repo: &Path) -> Result<(ComposefsArg, String), SetupError> {
    let all = candidates(cmdline);
    let good: Vec<&ComposefsArg> = all.iter().filter_map(|c| c.as_ref().ok()).collect();
    if good.is_empty() {
        return Err(match all.into_iter().find_map(Result::err) {
            Some(e) => SetupError::BadArgument(e),
            None => SetupError::NoArgument {
                cmdline: cmdline.trim().to_owned(),
            },
        });
    }
    if !repo.join("meta.json").is_file() && !repo.join("images").is_dir() {
        return Err(SetupError::NoRepository {
            path: repo.to_path_buf(),
        });
    }
    for arg in &good {
        let hex = arg.digest.to_hex();
        if std::fs::metadata(repo.join("images").join(&hex)).is_ok_and(|m| m.is_file()) {
            return Ok(((*arg).clone(), hex));
        }
    }
    let mut have: Vec<String> = std::fs::read_dir(repo.join("images"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect()
        })
        .unwrap_or_default();
    have.sort();
    let count = have.len();
    let shown = if have.is_empty() {
        String::new()
    } else {
        let mut s = format!(
            ": {}",
            have.iter().take(8).cloned().collect::<Vec<_>>().join(", ")
        );
        if count > 8 {
            s.push_str(", …");
        }
        s
    };
    Err(SetupError::ImageMissing {
        wanted: good
            .iter()
            .map(|a| format!("{} (from {a})", a.digest.to_hex()))
            .collect::<Vec<_>>()
            .join(" or "),
        repo: repo.to_path_buf(),
        count,
        have: shown,
    })
}

fn clone_tree(path: &Path, recursive: bool) -> Result<OwnedFd, SetupError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(CWD, path, flags).map_err(sys("cloning the mount tree of", path))
}

fn attach(fd: &OwnedFd, target: &Path) -> Result<(), SetupError> {
    rustix::mount::move_mount(
        fd.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(sys("attaching a mount on", target))
}

fn dir_in(target: &Path, name: &str) -> Result<PathBuf, SetupError> {
    let p = target.join(name);
    if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        Ok(p)
    } else {
        Err(SetupError::NoMountPoint(format!("/{name}")))
    }
}

/// An overlay on `target` with `lower` below and `upper`/`work` (given as
/// descriptors, so that they may live on a hidden mount) above.
fn overlay(
    source: &str,
    lower: &Path,
    upper: &OwnedFd,
    work: &OwnedFd,
    target: &Path,
) -> Result<(), SetupError> {
    let lower_s = lower.to_string_lossy();
    if lower_s.contains([',', ':', '\\']) {
        return Err(SetupError::Sys {
            what: "overlay lower directory with `,`, `:` or `\\` in its name:",
            path: lower.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    let data = format!(
        "lowerdir={lower_s},upperdir=/proc/self/fd/{},workdir=/proc/self/fd/{}",
        upper.as_raw_fd(),
        work.as_raw_fd()
    );
    let data =
        CString::new(data).map_err(|_| SetupError::NoMountPoint("(NUL in a path)".into()))?;
    rustix::mount::mount(
        source,
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(sys("mounting an overlay on", target))
}

/// A fresh tmpfs under `run_dir` with `upper/` and `work/`, for a
/// transient overlay; returns descriptors of both.
fn tmpfs_layers(
    run_dir: &Path,
    name: &str,
    undo: &mut Undo,
) -> Result<(OwnedFd, OwnedFd), SetupError> {
    let dir = run_dir.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| SetupError::Sys {
        what: "creating",
        path: dir.clone(),
        source: e,
    })?;
    rustix::mount::mount("tmpfs", &dir, "tmpfs", MountFlags::empty(), c"mode=0755")
        .map_err(sys("mounting a tmpfs on", &dir))?;
    undo.push(&dir);
    let open = |sub: &str| -> Result<OwnedFd, SetupError> {
        let p = dir.join(sub);
        rustix::fs::mkdir(&p, Mode::from_raw_mode(0o755)).map_err(sys("creating", &p))?;
        rustix::fs::open(
            &p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("opening", &p))
    };
    Ok((open("upper")?, open("work")?))
}

/// Whether the command line asks systemd for a volatile `/var`.
fn volatile_state(cmdline: &str) -> bool {
    split(cmdline).any(|w| matches!(w, "systemd.volatile=state" | "systemd.volatile=overlay"))
}

/// Sets up the new root (see the module docs).
pub fn setup_root(opts: &SetupOptions) -> Result<SetupReport, SetupError> {
    let repo = opts.sysroot.join("composefs");
    let (arg, id) = pick(&opts.cmdline, &repo)?;
    let state = opts.sysroot.join("state/deploy").join(&id);
    if !state.is_dir() {
        return Err(SetupError::NoState { path: state });
    }
    let var = match opts.config.var {
        Some(v) => Some(v),
        None if volatile_state(&opts.cmdline) => None,
        None => Some(VarMount::Bind),
    };
    let target = opts.target.clone().unwrap_or_else(|| opts.sysroot.clone());

    // 2. Everything from the physical root, before anything hides it.
    let sysroot_clone = clone_tree(&opts.sysroot, true)?;
    let etc_clone = match opts.config.etc {
        EtcMount::Bind => Some(clone_tree(&state.join("etc"), false)?),
        _ => None,
    };
    let var_clone = match var {
        Some(VarMount::Bind) => Some(clone_tree(&state.join("var"), false)?),
        _ => None,
    };
    let etc_layers = match opts.config.etc {
        EtcMount::Overlay => {
            let mut fds = Vec::new();
            for sub in ["etc.upper", "etc.work"] {
                let p = state.join(sub);
                if !p.is_dir() {
                    std::fs::create_dir(&p).map_err(|e| SetupError::Sys {
                        what: "creating",
                        path: p.clone(),
                        source: e,
                    })?;
                }
                fds.push(
                    rustix::fs::open(
                        &p,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(sys("opening", &p))?,
                );
            }
            let work = fds.pop();
            fds.pop().zip(work)
        }
        _ => None,
    };
    let image_path = repo.join("images").join(&id);
    let image = File::open(&image_path).map_err(|e| SetupError::Sys {
        what: "opening",
        path: image_path.clone(),
        source: e,
    })?;

    // 3. The image.
    let mut undo = Undo(Vec::new());
    let source = format!("composefs:{id}");
    let verity = !arg.insecure;
    let mount_opts = MountOptions {
        basedirs: vec![repo.join("objects")],
        read_only: true,
        verity: if verity {
            VerityMode::Require
        } else {
            VerityMode::Off
        },
        source: source.clone(),
        expected_digest: verity.then_some(arg.digest),
        temp_dir: Some(opts.run_dir.clone()),
        ..MountOptions::default()
    };
    mount_image(&image, &target, &mount_opts).map_err(|e| SetupError::Mount {
        id: id.clone(),
        source: e,
    })?;
    undo.push(&target);

    // 4. Transient root.
    let mut root_source = source.clone();
    if opts.config.root_transient {
        let (upper, work) = tmpfs_layers(&opts.run_dir, "cfs-transient-root", &mut undo)?;
        root_source = format!("transient:composefs={id}");
        overlay(&root_source, &target, &upper, &work, &target)?;
        undo.push(&target);
    }

    // 5. The physical root.
    let sysroot_dir = target.join("sysroot");
    let has_sysroot = sysroot_dir.symlink_metadata().is_ok_and(|m| m.is_dir());
    if has_sysroot {
        attach(&sysroot_clone, &sysroot_dir)?;
        undo.push(&sysroot_dir);
        rustix::mount::mount_remount(&sysroot_dir, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(sys("making read-only", &sysroot_dir))?;
    }
    drop(sysroot_clone);

    // 6. /etc and /var.
    match opts.config.etc {
        EtcMount::Bind => {
            let etc = dir_in(&target, "etc")?;
            if let Some(fd) = &etc_clone {
                attach(fd, &etc)?;
                undo.push(&etc);
            }
        }
        EtcMount::Overlay => {
            let etc = dir_in(&target, "etc")?;
            if let Some((upper, work)) = &etc_layers {
                overlay("etc", &etc, upper, work, &etc)?;
                undo.push(&etc);
            }
        }
        EtcMount::Transient => {
            let etc = dir_in(&target, "etc")?;
            let (upper, work) = tmpfs_layers(&opts.run_dir, "cfs-transient-etc", &mut undo)?;
            overlay("transient-etc", &etc, &upper, &work, &etc)?;
            undo.push(&etc);
        }
        EtcMount::None => {}
    }
    if let Some(fd) = &var_clone {
        let v = dir_in(&target, "var")?;
        attach(fd, &v)?;
        undo.push(&v);
    }
    undo.disarm();
    Ok(SetupReport {
        id,
        arg: arg.to_string(),
        target,
        source: root_source,
        verity,
        sysroot: has_sysroot,
        etc: opts.config.etc,
        var,
    })
}

#[cfg(test)]
mod tests;
