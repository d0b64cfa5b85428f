//! The EROFS half of a composefs mount: the image mounted read-only, straight
//! from the file (`source=/proc/self/fd/N`, Linux ≥ 6.12), or through a loop
//! device when the kernel answers ENOTBLK; `noacl` unless the image header
//! says it has ACLs; optionally ID-mapped (`mount_setattr`).
//!
//! With the new mount API the result is a detached mount descriptor; without
//! it (`fsopen` → ENOSYS) the image is mounted with `mount(2)` on the
//! temporary directory, and ID mapping is unsupported.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountAttrFlags, MountFlags};

use super::context::FsContext;
use super::{MountError, TempMountpoint};
use crate::sys::{loop_dev, mount_setattr};

/// Where the EROFS mount ended up.
#[derive(Debug)]
pub(crate) enum ErofsMount {
    /// A detached mount (new mount API).
    Detached(OwnedFd),
    /// Mounted with `mount(2)` on the temporary directory.
    OnTemp,
}

/// Mounts `image` as EROFS, read-only; falls back to a loop device on ENOTBLK.
pub(crate) fn mount_erofs(
    image: &File,
    acl: bool,
    idmap: Option<BorrowedFd<'_>>,
    temp: &mut TempMountpoint,
) -> Result<ErofsMount, MountError> {
    let source = fd_path(image.as_fd());
    match mount_source(&source, acl, idmap, temp) {
        Err(e) if e.errno() == Errno::NOTBLK => {
            let device = LoopDevice::attach(image)?;
            // The loop descriptor is closed when `device` drops; autoclear then
            // releases the device once the filesystem is unmounted.
            mount_source(device.path.as_os_str(), acl, idmap, temp)
        }
        other => other,
    }
}

/// `/proc/self/fd/<fd>`.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> OsString {
    format!("/proc/self/fd/{}", fd.as_raw_fd()).into()
}

pub(super) fn mount_source(
    source: &OsStr,
    acl: bool,
    idmap: Option<BorrowedFd<'_>>,
    temp: &mut TempMountpoint,
) -> Result<ErofsMount, MountError> {
    let ctx = match FsContext::open("erofs") {
        Ok(ctx) => ctx,
        Err(Errno::NOSYS) => return mount_legacy(source, acl, idmap, temp),
        Err(errno) => {
            return Err(MountError::Syscall {
                op: "fsopen(erofs)".into(),
                errno,
            });
        }
    };
    ctx.set_string("source", source)?;
    ctx.set_flag("ro")?;
    if !acl {
        ctx.set_flag("noacl")?;
    }
    ctx.create()?;
    let fd = ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY)?;
    if let Some(userns) = idmap {
        mount_setattr::set_idmap(fd.as_fd(), userns).map_err(|errno| MountError::Syscall {
            op: "mount_setattr(MOUNT_ATTR_IDMAP) on the EROFS mount".into(),
            errno,
        })?;
    }
    Ok(ErofsMount::Detached(fd))
}

/// `mount(source, temp, "erofs", MS_RDONLY, "noacl" or NULL)`.
fn mount_legacy(
    source: &OsStr,
    acl: bool,
    idmap: Option<BorrowedFd<'_>>,
    temp: &mut TempMountpoint,
) -> Result<ErofsMount, MountError> {
    if idmap.is_some() {
        return Err(MountError::Syscall {
            op: "ID-mapped mount without the new mount API".into(),
            errno: Errno::NOTSUP,
        });
    }
    let data = (!acl).then_some(c"noacl");
    rustix::mount::mount(source, temp.path(), "erofs", MountFlags::RDONLY, data).map_err(
        |errno| MountError::Syscall {
            op: format!("mount(erofs) on {}", temp.path().display()),
            errno,
        },
    )?;
    temp.set_mounted();
    Ok(ErofsMount::OnTemp)
}

/// A loop device bound to the image (read-only, direct I/O, autoclear).
#[derive(Debug)]
pub(crate) struct LoopDevice {
    /// `/dev/loopN`.
    pub(crate) path: PathBuf,
    /// Keeps the device bound until the filesystem holds it.
    _fd: OwnedFd,
}

/// How often a free loop device is claimed before giving up (another process
/// may take the device between `LOOP_CTL_GET_FREE` and `LOOP_CONFIGURE`).
const LOOP_ATTEMPTS: usize = 16;

impl LoopDevice {
    /// Binds a free loop device to `image` with 4096-byte blocks.
    pub(crate) fn attach(image: &File) -> Result<LoopDevice, MountError> {
        let control = rustix::fs::open(
            "/dev/loop-control",
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| MountError::Syscall {
            op: "open /dev/loop-control".into(),
            errno,
        })?;
        let name = std::fs::read_link(fd_path(image.as_fd())).unwrap_or_default();
        let mut last = Errno::BUSY;
        for _ in 0..LOOP_ATTEMPTS {
            let n = loop_dev::get_free(control.as_fd()).map_err(|errno| MountError::Syscall {
                op: "LOOP_CTL_GET_FREE".into(),
                errno,
            })?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .map_err(|errno| MountError::Syscall {
                    op: format!("open {}", path.display()),
                    errno,
                })?;
            let flags = loop_dev::LO_FLAGS_READ_ONLY
                | loop_dev::LO_FLAGS_DIRECT_IO
                | loop_dev::LO_FLAGS_AUTOCLEAR;
            match loop_dev::configure(
                fd.as_fd(),
                image.as_fd(),
                4096,
                flags,
                name.as_os_str().as_bytes(),
            ) {
                Ok(()) => return Ok(LoopDevice { path, _fd: fd }),
                Err(Errno::BUSY) => last = Errno::BUSY,
                Err(errno) => {
                    return Err(MountError::Syscall {
                        op: format!("LOOP_CONFIGURE {}", path.display()),
                        errno,
                    });
                }
            }
        }
        Err(MountError::Syscall {
            op: "claiming a free loop device".into(),
            errno: last,
        })
    }
}

/// A path as a C string for `mount(2)` data (paths never contain NUL).
pub(crate) fn c_string(bytes: Vec<u8>) -> Result<CString, MountError> {
    CString::new(bytes).map_err(|_| MountError::Syscall {
        op: "mount data with a NUL byte".into(),
        errno: Errno::INVAL,
    })
}
