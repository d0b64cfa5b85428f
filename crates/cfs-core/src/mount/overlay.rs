//! The overlayfs half of a composefs mount: the EROFS mount as the one lower
//! layer, each object directory as a data-only layer, `metacopy=on`,
//! `redirect_dir=on`, `verity=require` when asked, optional upper and work
//! directories.
//!
//! The option lists are built by pure functions ([`new_api_steps`],
//! [`legacy_data`]) so they can be checked without privileges; [`mount_new`]
//! and [`mount_legacy`] run them.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountAttrFlags, MountFlags, MoveMountFlags};

use super::context::FsContext;
use super::erofs::c_string;
use super::{MountError, VerityMode};

/// What the overlay needs besides its layers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverlaySettings<'a> {
    /// The mount source shown in `/proc/mounts`.
    pub(crate) source: &'a str,
    pub(crate) verity: VerityMode,
    pub(crate) upperdir: Option<&'a Path>,
    pub(crate) workdir: Option<&'a Path>,
    pub(crate) read_only: bool,
}

/// A layer given to the new mount API: a descriptor (Linux ≥ 6.13; detached
/// mounts ≥ 6.15) or a path string.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layer<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a Path),
}

/// An `fsconfig` value (overlayfs takes every option as a string).
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    String(OsString),
    Fd(BorrowedFd<'a>),
}

/// One `fsconfig` call; `optional` steps may fail (tryverity).
#[derive(Debug, Clone)]
pub(crate) struct Step<'a> {
    pub(crate) key: &'static str,
    pub(crate) value: Value<'a>,
    pub(crate) optional: bool,
}

impl Step<'_> {
    /// `key=value` or `key=<fd>`, for tests.
    #[cfg(test)]
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            Value::String(s) => format!("{}={}", self.key, s.to_string_lossy()),
            Value::Fd(_) => format!("{}=<fd>", self.key),
        }
    }

    /// Keys whose EINVAL means "kernel < 6.7" (no `lowerdir+`/`datadir+`).
    fn legacy_hint(&self) -> bool {
        matches!(self.key, "lowerdir+" | "datadir+" | "upperdir" | "workdir")
    }
}

fn string<'a>(key: &'static str, value: impl Into<OsString>) -> Step<'a> {
    Step {
        key,
        value: Value::String(value.into()),
        optional: false,
    }
}

fn layer<'a>(key: &'static str, l: Layer<'a>) -> Step<'a> {
    match l {
        Layer::Fd(fd) => Step {
            key,
            value: Value::Fd(fd),
            optional: false,
        },
        Layer::Path(p) => string(key, p.as_os_str()),
    }
}

/// The `fsconfig` calls of the overlay context, in order.
pub(crate) fn new_api_steps<'a>(
    s: &OverlaySettings<'_>,
    lower: Layer<'a>,
    data: &[Layer<'a>],
) -> Vec<Step<'a>> {
    let mut steps = vec![
        string("source", s.source),
        string("metacopy", "on"),
        string("redirect_dir", "on"),
    ];
    if s.verity != VerityMode::Off {
        steps.push(Step {
            optional: s.verity == VerityMode::Try,
            ..string("verity", "require")
        });
    }
    steps.push(layer("lowerdir+", lower));
    steps.extend(data.iter().map(|&d| layer("datadir+", d)));
    if let (Some(upper), Some(work)) = (s.upperdir, s.workdir) {
        steps.push(string("upperdir", upper.as_os_str()));
        steps.push(string("workdir", work.as_os_str()));
    }
    steps
}

/// How an attempt with the new API ended without an error.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The overlay is mounted on the target.
    Mounted,
    /// The kernel lacks the new overlay options: use [`mount_legacy`]. When
    /// only the final create failed with EINVAL (the kernel accepted
    /// `lowerdir+`, so it is new enough), that error is kept: it is the one
    /// to report if the legacy mount fails too.
    Legacy(Option<MountError>),
}

/// Where an error happened (the caller retries layers given by descriptor
/// as paths when the kernel rejects them).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Configuring or creating the superblock failed.
    Configure(MountError),
    /// Mounting the created overlay on the target failed.
    Attach(MountError),
}

/// Mounts the overlay with `fsopen`/`fsconfig`/`fsmount`/`move_mount`.
pub(crate) fn mount_new(
    s: &OverlaySettings<'_>,
    lower: Layer<'_>,
    data: &[Layer<'_>],
    target: &Path,
) -> Result<Outcome, Failure> {
    let ctx = match FsContext::open("overlay") {
        Ok(ctx) => ctx,
        Err(Errno::NOSYS) => return Ok(Outcome::Legacy(None)),
        Err(errno) => {
            return Err(Failure::Configure(MountError::Syscall {
                op: "fsopen(overlay)".into(),
                errno,
            }));
        }
    };
    // A kernel with only the legacy option parser accepts any key.
    if ctx
        .set_string("unsupported", "unsupported".as_ref())
        .is_ok()
    {
        return Ok(Outcome::Legacy(None));
    }
    let _ = ctx.take_log();
    for step in new_api_steps(s, lower, data) {
        let r = match &step.value {
            Value::String(v) => ctx.set_string(step.key, v),
            Value::Fd(fd) => ctx.set_fd(step.key, *fd),
        };
        match r {
            Ok(()) => {}
            Err(_) if step.optional => {}
            Err(e) if e.errno() == Errno::INVAL && step.legacy_hint() => {
                if matches!(step.value, Value::Fd(_)) {
                    return Err(Failure::Configure(e));
                }
                return Ok(Outcome::Legacy(None));
            }
            Err(e) => return Err(Failure::Configure(e)),
        }
    }
    match ctx.create() {
        Ok(()) => {}
        Err(e) if e.errno() == Errno::INVAL && !has_fd(lower, data) => {
            return Ok(Outcome::Legacy(Some(e)));
        }
        Err(e) => return Err(Failure::Configure(e)),
    }
    let attrs = if s.read_only {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let fd = ctx.mount(attrs).map_err(Failure::Attach)?;
    rustix::mount::move_mount(
        fd.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|errno| {
        Failure::Attach(MountError::Syscall {
            op: format!("move_mount(overlay) to {}", target.display()),
            errno,
        })
    })?;
    Ok(Outcome::Mounted)
}

fn has_fd(lower: Layer<'_>, data: &[Layer<'_>]) -> bool {
    std::iter::once(&lower)
        .chain(data)
        .any(|l| matches!(l, Layer::Fd(_)))
}

/// Appends `path` with every `,` escaped as `\,` (the `mount(2)` data
/// string separates options with commas).
fn push_escaped(out: &mut Vec<u8>, path: &Path) {
    for &b in path.as_os_str().as_bytes() {
        if b == b',' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The `mount(2)` data string: `metacopy=on,redirect_dir=on,lowerdir=L::D1::D2`
/// (with `data_only`, else `L:D1:D2`), then `upperdir=`/`workdir=`, then
/// `verity=require` if required (`tryverity` is ignored here).
pub(crate) fn legacy_data(
    s: &OverlaySettings<'_>,
    lower: &Path,
    data: &[&Path],
    data_only: bool,
) -> Vec<u8> {
    let mut out = b"metacopy=on,redirect_dir=on,lowerdir=".to_vec();
    push_escaped(&mut out, lower);
    let sep: &[u8] = if data_only { b"::" } else { b":" };
    for d in data {
        out.extend_from_slice(sep);
        push_escaped(&mut out, d);
    }
    if let (Some(upper), Some(work)) = (s.upperdir, s.workdir) {
        out.extend_from_slice(b",upperdir=");
        push_escaped(&mut out, upper);
        out.extend_from_slice(b",workdir=");
        push_escaped(&mut out, work);
    }
    if s.verity == VerityMode::Require {
        out.extend_from_slice(b",verity=require");
    }
    out
}

/// `mount(source, target, "overlay", flags, data)`: first with data-only
/// layers and `MS_SILENT`, then, on EINVAL (kernel < 6.5), with the object
/// directories as ordinary lower layers (hidden by the image's root stubs).
pub(crate) fn mount_legacy(
    s: &OverlaySettings<'_>,
    lower: &Path,
    data: &[&Path],
    target: &Path,
) -> Result<(), MountError> {
    // The data-only form is the longer one (`::` separators).
    if legacy_data(s, lower, data, true).len() <= MAX_MOUNT_DATA {
        return mount_legacy_data(s, lower, data, target);
    }
    // Too long for one page: the same directories as `/proc/self/fd/N`.
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| MountError::Io {
            path: p.to_path_buf(),
            source: errno.into(),
        })
    };
    let fd_path = |fd: &OwnedFd| PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let lower_fd = open(lower)?;
    let data_fds = data
        .iter()
        .map(|&d| open(d))
        .collect::<Result<Vec<_>, _>>()?;
    let upper_fd = s.upperdir.map(open).transpose()?;
    let work_fd = s.workdir.map(open).transpose()?;
    let short_lower = fd_path(&lower_fd);
    let short_data: Vec<PathBuf> = data_fds.iter().map(fd_path).collect();
    let short_upper = upper_fd.as_ref().map(fd_path);
    let short_work = work_fd.as_ref().map(fd_path);
    let short = OverlaySettings {
        upperdir: short_upper.as_deref(),
        workdir: short_work.as_deref(),
        ..*s
    };
    let data_refs: Vec<&Path> = short_data.iter().map(PathBuf::as_path).collect();
    let needed = legacy_data(&short, &short_lower, &data_refs, true).len();
    if needed > MAX_MOUNT_DATA {
        return Err(MountError::OptionsTooLong {
            needed,
            limit: MAX_MOUNT_DATA,
        });
    }
    mount_legacy_data(&short, &short_lower, &data_refs, target)
}

/// The longest `mount(2)` data string passed: the kernel copies one page
/// (4096 bytes on every architecture at least), NUL included.
pub(crate) const MAX_MOUNT_DATA: usize = 4096 - 1;

/// [`mount_legacy`] with a data string known to fit.
fn mount_legacy_data(
    s: &OverlaySettings<'_>,
    lower: &Path,
    data: &[&Path],
    target: &Path,
) -> Result<(), MountError> {
    let ro = if s.read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let attempt = |data_only: bool, flags: MountFlags| {
        let options = c_string(legacy_data(s, lower, data, data_only))?;
        rustix::mount::mount(s.source, target, "overlay", flags, options.as_c_str()).map_err(
            |errno| MountError::Syscall {
                op: format!(
                    "mount(overlay) on {} with {}",
                    target.display(),
                    String::from_utf8_lossy(options.as_bytes())
                ),
                errno,
            },
        )
    };
    match attempt(true, ro | MountFlags::SILENT) {
        Err(e) if e.errno() == Errno::INVAL => attempt(false, ro),
        other => other,
    }
}

#[cfg(test)]
mod tests;
