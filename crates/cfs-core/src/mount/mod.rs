//! Mounting composefs images: EROFS for the metadata, overlayfs with the
//! object directories as data-only lower layers.
//!
//! ```text
//! overlayfs  (source "composefs", metacopy=on, redirect_dir=on [, verity=require])
//! ├── lower layer:        the EROFS image (read-only)
//! ├── data-only layer 1:  basedir #1 (object store)
//! ├── data-only layer 2:  basedir #2 …
//! └── optional upperdir + workdir
//! ```
//!
//! [`mount_image`] runs this sequence (after composefs-c's `lcfs_mount_fd`,
//! with the layers passed by descriptor where the kernel allows it):
//!
//! 1. Validate the options: at least one basedir; upperdir and workdir both
//!    or neither.
//! 2. With [`MountOptions::expected_digest`], measure the image with
//!    `FS_IOC_MEASURE_VERITY`: no verity → [`MountError::NoVerity`], another
//!    digest → [`MountError::WrongVerity`].
//! 3. Read the 32-byte composefs header; a short read or a wrong magic is
//!    [`MountError::NotComposefs`]. The ACL flag decides whether EROFS gets
//!    `noacl`.
//! 4. Create the temporary mountpoint `.composefs.XXXXXX` in
//!    [`MountOptions::temp_dir`] (default: the system temporary directory).
//! 5. Mount EROFS read-only from `/proc/self/fd/N` with `fsopen`/`fsconfig`/
//!    `fsmount` (a detached mount), ID-mapped with `mount_setattr` if asked.
//!    ENOTBLK (no file-backed EROFS) → bind a loop device (`LOOP_CONFIGURE`,
//!    4 KiB blocks, read-only, direct I/O, autoclear) and retry with it.
//!    ENOSYS from `fsopen` → `mount(2)` on the temporary directory.
//! 6. Overlay with the new API: a bogus key `unsupported=unsupported` first
//!    (accepted only by the legacy option parser → step 8); `source`,
//!    `metacopy=on`, `redirect_dir=on`, `verity=require` (errors ignored for
//!    [`VerityMode::Try`]), `lowerdir+`, one `datadir+` per basedir,
//!    `upperdir`/`workdir`; create; `fsmount` (read-only if asked);
//!    `move_mount` onto the target. The layers are first given as
//!    descriptors (the detached EROFS mount, `O_PATH` basedirs: Linux ≥
//!    6.15); if the kernel rejects that, the EROFS mount is attached to the
//!    temporary directory and the layers are given as path strings.
//! 7. EINVAL from `lowerdir+`/`datadir+`/`upperdir`/`workdir`/create with
//!    paths means a kernel < 6.7 (as in C): `mount(2)` with the data string
//!    `metacopy=on,redirect_dir=on,lowerdir=T::B1::B2[,upperdir=U,workdir=W][,verity=require]`
//!    (commas in paths escaped as `\,`) and `MS_SILENT`; on EINVAL once more
//!    with `lowerdir=T:B1:B2` (no data-only layers) without `MS_SILENT`. If
//!    that fails too after the kernel had accepted `lowerdir+` (only create
//!    failed), the create error and its kernel log are reported. The kernel
//!    copies at most one page of `mount(2)` data and silently drops the
//!    rest, so a data string of 4096 bytes or more (the smallest page size,
//!    NUL included) is first rebuilt with every layer, upper and work
//!    directory as a `/proc/self/fd/N` path of an `O_PATH` descriptor; if it
//!    is still too long, [`MountError::OptionsTooLong`] — never a cut list.
//! 8. Always, also on error: lazily unmount (`MNT_DETACH`) the temporary EROFS
//!    mount and remove the directory. The overlay keeps its own reference.
//!
//! Kernel errors carry the fs context's message log (see
//! [`MountError::Kernel`]).

mod context;
mod erofs;
mod overlay;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, UnmountFlags};
use zerocopy::FromBytes;

use crate::erofs::format::{COMPOSEFS_FLAGS_HAS_ACL, COMPOSEFS_MAGIC, ComposefsHeader};
use crate::verity::{Digest, VerityError, measure_verity};
use erofs::ErofsMount;
use overlay::{Failure, Layer, OverlaySettings};

/// Whether overlayfs enforces fs-verity on the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerityMode {
    /// No `verity` option.
    #[default]
    Off,
    /// `verity=require` if the kernel knows the option (`tryverity`).
    Try,
    /// `verity=require`: every redirected file must have a digest, and its
    /// backing object exactly that fs-verity digest (EIO on open otherwise).
    Require,
}

/// What to mount and how.
#[derive(Debug)]
pub struct MountOptions {
    /// Object directories, searched in order (at least one).
    pub basedirs: Vec<PathBuf>,
    /// Writable upper directory (needs [`Self::workdir`]).
    pub upperdir: Option<PathBuf>,
    /// overlayfs work directory (needs [`Self::upperdir`]).
    pub workdir: Option<PathBuf>,
    /// Mount the overlay read-only.
    pub read_only: bool,
    /// fs-verity enforcement on the objects.
    pub verity: VerityMode,
    /// A user namespace (`/proc/PID/ns/user`) to ID-map the EROFS mount with.
    pub idmap: Option<OwnedFd>,
    /// The overlay's source name, shown in `/proc/mounts` (default `composefs`).
    pub source: String,
    /// Required fs-verity digest of the image file itself (measured by the kernel).
    pub expected_digest: Option<Digest>,
    /// Where the temporary EROFS mountpoint is created (default: the system
    /// temporary directory).
    pub temp_dir: Option<PathBuf>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            basedirs: Vec::new(),
            upperdir: None,
            workdir: None,
            read_only: false,
            verity: VerityMode::Off,
            idmap: None,
            source: "composefs".to_string(),
            expected_digest: None,
            temp_dir: None,
        }
    }
}

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// Inconsistent options.
    #[error("invalid mount options: {0}")]
    InvalidOptions(&'static str),
    /// The image could not be measured (no fs-verity on it or in the kernel).
    #[error("image has no fs-verity: {0}")]
    NoVerity(#[source] VerityError),
    /// The image's fs-verity digest differs from the expected one.
    #[error("image has the wrong fs-verity digest: expected {expected}, found {found}")]
    WrongVerity {
        /// The expected digest (`<algorithm>:<hex>`).
        expected: String,
        /// The measured digest (`<algorithm>:<hex>`).
        found: String,
    },
    /// The image does not start with a composefs header.
    #[error("not a composefs image: {0}")]
    NotComposefs(&'static str),
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{op}: {}", io::Error::from(*errno))]
    Syscall {
        /// What was being done.
        op: String,
        /// The errno.
        errno: Errno,
    },
    /// A step of the new mount API failed; `log` holds what the kernel logged.
    #[error("{fstype} {step}: {}{}", io::Error::from(*errno), format_log(log))]
    Kernel {
        /// The filesystem type (`erofs`, `overlay`).
        fstype: &'static str,
        /// The `fsconfig` key (with its value) or `create`/`fsmount`.
        step: String,
        /// The errno.
        errno: Errno,
        /// The fs context's messages.
        log: Vec<String>,
    },
    /// The `mount(2)` fallback cannot pass the overlay options: the data
    /// string would exceed the one page the kernel copies (even with the
    /// layers shortened to `/proc/self/fd/N`).
    #[error(
        "the overlay options need {needed} bytes, more than the {limit} that mount(2) passes \
         to the kernel; this kernel has no lowerdir+/datadir+ (Linux < 6.7): use fewer \
         object directories (basedir)"
    )]
    OptionsTooLong {
        /// The length of the data string (without its NUL).
        needed: usize,
        /// The longest string accepted.
        limit: usize,
    },
}

fn format_log(log: &[String]) -> String {
    log.iter().map(|l| format!(" ({l})")).collect()
}

impl MountError {
    /// The errno this error corresponds to (for `strerror`-style messages).
    pub fn errno(&self) -> Errno {
        match self {
            MountError::InvalidOptions(_) | MountError::NotComposefs(_) => Errno::INVAL,
            MountError::OptionsTooLong { .. } => Errno::TOOBIG,
            MountError::NoVerity(_) => Errno::OPNOTSUPP,
            MountError::WrongVerity { .. } => Errno::IO,
            MountError::Io { source, .. } => Errno::from_io_error(source).unwrap_or(Errno::IO),
            MountError::Syscall { errno, .. } | MountError::Kernel { errno, .. } => *errno,
        }
    }

    /// What the kernel logged about the failure, if anything.
    pub fn kernel_log(&self) -> &[String] {
        match self {
            MountError::Kernel { log, .. } => log,
            _ => &[],
        }
    }
}

/// The temporary EROFS mountpoint: unmounted lazily and removed on drop.
#[derive(Debug)]
pub(crate) struct TempMountpoint {
    path: PathBuf,
    mounted: bool,
}

impl TempMountpoint {
    fn create(parent: &Path) -> Result<TempMountpoint, MountError> {
        let dir = tempfile::Builder::new()
            .prefix(".composefs.")
            .tempdir_in(parent)
            .map_err(|source| MountError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        Ok(TempMountpoint {
            path: dir.keep(),
            mounted: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn set_mounted(&mut self) {
        self.mounted = true;
    }
}

impl Drop for TempMountpoint {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rustix::mount::unmount(&self.path, UnmountFlags::DETACH);
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Checks the options (step 1).
fn validate(opts: &MountOptions) -> Result<(), MountError> {
    if opts.basedirs.is_empty() {
        return Err(MountError::InvalidOptions(
            "no object directory (basedir) given",
        ));
    }
    if opts.upperdir.is_some() != opts.workdir.is_some() {
        return Err(MountError::InvalidOptions(
            "upperdir and workdir must be given together",
        ));
    }
    Ok(())
}

/// Measures the image and compares with `expected` (step 2).
pub fn check_image_digest(image: &File, expected: &Digest) -> Result<(), MountError> {
    let found = match measure_verity(image.as_fd()) {
        Ok(d) => d,
        Err(e) if e.is_missing() => return Err(MountError::NoVerity(e)),
        Err(e) => {
            return Err(MountError::Syscall {
                op: "FS_IOC_MEASURE_VERITY on the image".into(),
                errno: Errno::from_io_error(&io::Error::from(e)).unwrap_or(Errno::IO),
            });
        }
    };
    if &found != expected {
        return Err(MountError::WrongVerity {
            expected: expected.to_prefixed(),
            found: found.to_prefixed(),
        });
    }
    Ok(())
}

/// Reads the composefs header (step 3); returns whether the image has ACLs.
pub fn read_header_acl(image: &File) -> Result<bool, MountError> {
    let mut buf = [0u8; size_of::<ComposefsHeader>()];
    let mut done = 0;
    while done < buf.len() {
        match image.read_at(&mut buf[done..], done as u64) {
            Ok(0) => return Err(MountError::NotComposefs("shorter than the header")),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(MountError::Syscall {
                    op: "reading the image header".into(),
                    errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
                });
            }
        }
    }
    let header = ComposefsHeader::read_from_bytes(&buf)
        .map_err(|_| MountError::NotComposefs("shorter than the header"))?;
    if header.magic.get() != COMPOSEFS_MAGIC {
        return Err(MountError::NotComposefs("wrong magic"));
    }
    Ok(header.flags.get() & COMPOSEFS_FLAGS_HAS_ACL != 0)
}

/// Mounts the composefs image open as `image` on `target` (see the module
/// docs for the sequence). Nothing but the overlay on `target` is left
/// behind, also on error.
pub fn mount_image(image: &File, target: &Path, opts: &MountOptions) -> Result<(), MountError> {
    validate(opts)?;
    if let Some(expected) = &opts.expected_digest {
        check_image_digest(image, expected)?;
    }
    let acl = read_header_acl(image)?;
    let parent = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut temp = TempMountpoint::create(&parent)?;
    let idmap = opts.idmap.as_ref().map(AsFd::as_fd);
    let erofs = erofs::mount_erofs(image, acl, idmap, &mut temp)?;
    let settings = OverlaySettings {
        source: &opts.source,
        verity: opts.verity,
        upperdir: opts.upperdir.as_deref(),
        workdir: opts.workdir.as_deref(),
        read_only: opts.read_only,
    };
    let basedirs: Vec<&Path> = opts.basedirs.iter().map(PathBuf::as_path).collect();
    if let ErofsMount::Detached(fd) = erofs {
        let dirs = open_basedirs(&basedirs)?;
        let data: Vec<Layer<'_>> = dirs.iter().map(|d| Layer::Fd(d.as_fd())).collect();
        match overlay::mount_new(&settings, Layer::Fd(fd.as_fd()), &data, target) {
            Ok(overlay::Outcome::Mounted) => return Ok(()),
            Err(Failure::Attach(e)) => return Err(e),
            // Layers by descriptor rejected (kernel < 6.15), or no new overlay
            // options: attach EROFS to the temporary directory, use paths.
            Ok(overlay::Outcome::Legacy(_)) | Err(Failure::Configure(_)) => {}
        }
        rustix::mount::move_mount(
            fd.as_fd(),
            "",
            rustix::fs::CWD,
            temp.path(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|errno| MountError::Syscall {
            op: format!("move_mount(erofs) to {}", temp.path().display()),
            errno,
        })?;
        temp.set_mounted();
    }
    let data: Vec<Layer<'_>> = basedirs.iter().map(|&p| Layer::Path(p)).collect();
    match overlay::mount_new(&settings, Layer::Path(temp.path()), &data, target) {
        Ok(overlay::Outcome::Mounted) => Ok(()),
        Ok(overlay::Outcome::Legacy(create_error)) => {
            overlay::mount_legacy(&settings, temp.path(), &basedirs, target)
                .map_err(|legacy| create_error.unwrap_or(legacy))
        }
        Err(Failure::Attach(e) | Failure::Configure(e)) => Err(e),
    }
}

/// Makes `path` (a read-only mount, e.g. the physical root `/sysroot` that
/// root setup leaves read-only) writable for this process only: a private
/// mount namespace (`unshare(CLONE_NEWNS)`, every mount made private so that
/// nothing propagates back), then `path` remounted read-write. Returns
/// whether it was read-only. Call it before the process starts threads.
pub fn writable_privately(path: &Path) -> Result<bool, MountError> {
    let st = rustix::fs::statvfs(path).map_err(|errno| MountError::Syscall {
        op: format!("statvfs {}", path.display()),
        errno,
    })?;
    if !st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Ok(false);
    }
    crate::sys::namespace::unshare_mount_namespace().map_err(|errno| MountError::Syscall {
        op: "unshare(CLONE_NEWNS)".into(),
        errno,
    })?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|errno| MountError::Syscall {
        op: "making / private".into(),
        errno,
    })?;
    rustix::mount::mount_remount(path, rustix::mount::MountFlags::BIND, "").map_err(|errno| {
        MountError::Syscall {
            op: format!("remounting {} read-write", path.display()),
            errno,
        }
    })?;
    Ok(true)
}

/// Opens each basedir as an `O_PATH` directory descriptor.
fn open_basedirs(dirs: &[&Path]) -> Result<Vec<OwnedFd>, MountError> {
    dirs.iter()
        .map(|&d| {
            rustix::fs::open(
                d,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| MountError::Io {
                path: d.to_path_buf(),
                source: errno.into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_privileged;
