//! A filesystem context of the new mount API (`fsopen`), with the kernel's
//! error log: after a failing `fsconfig`, `read()` on the context returns the
//! messages the filesystem logged (`e overlayfs: …`, one per read, ENODATA
//! when empty). They are attached to [`MountError::Kernel`].

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

use super::MountError;

/// Largest log message read (the kernel truncates its messages to 256 bytes).
const LOG_MESSAGE_MAX: usize = 1024;

/// An open filesystem context (`fsopen` descriptor).
#[derive(Debug)]
pub(crate) struct FsContext {
    fd: OwnedFd,
    fstype: &'static str,
}

impl FsContext {
    /// `fsopen(fstype, FSOPEN_CLOEXEC)`; the raw errno (ENOSYS: no new mount API).
    pub(crate) fn open(fstype: &'static str) -> Result<FsContext, Errno> {
        let fd = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
        Ok(FsContext { fd, fstype })
    }

    /// `fsconfig(FSCONFIG_SET_FLAG, key)`.
    pub(crate) fn set_flag(&self, key: &str) -> Result<(), MountError> {
        rustix::mount::fsconfig_set_flag(&self.fd, key).map_err(|e| self.error(key.into(), e))
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub(crate) fn set_string(&self, key: &str, value: &OsStr) -> Result<(), MountError> {
        rustix::mount::fsconfig_set_string(&self.fd, key, value)
            .map_err(|e| self.error(format!("{key}={}", value.to_string_lossy()), e))
    }

    /// `fsconfig(FSCONFIG_SET_FD, key, fd)`.
    pub(crate) fn set_fd(&self, key: &str, fd: BorrowedFd<'_>) -> Result<(), MountError> {
        rustix::mount::fsconfig_set_fd(&self.fd, key, fd)
            .map_err(|e| self.error(format!("{key}=<fd>"), e))
    }

    /// `fsconfig(FSCONFIG_CMD_CREATE)`.
    pub(crate) fn create(&self) -> Result<(), MountError> {
        rustix::mount::fsconfig_create(&self.fd).map_err(|e| self.error("create".into(), e))
    }

    /// `fsmount(FSMOUNT_CLOEXEC, attrs)`: a detached mount.
    pub(crate) fn mount(&self, attrs: MountAttrFlags) -> Result<OwnedFd, MountError> {
        rustix::mount::fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|e| self.error("fsmount".into(), e))
    }

    /// The error of a failed step, with whatever the kernel logged.
    fn error(&self, step: String, errno: Errno) -> MountError {
        MountError::Kernel {
            fstype: self.fstype,
            step,
            errno,
            log: self.take_log(),
        }
    }

    /// Drains the context's message log.
    pub(crate) fn take_log(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; LOG_MESSAGE_MAX];
        // A bounded loop: the kernel keeps at most 8 messages.
        for _ in 0..64 {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.push(parse_log_line(&buf[..n])),
            }
        }
        out
    }
}

impl AsFd for FsContext {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One log message: `e `/`w `/`i ` (error, warning, info) and the text.
/// Errors are shown as the bare text, the others keep a word for their level.
pub(crate) fn parse_log_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\0']);
    match text.split_once(' ') {
        Some(("e", rest)) => rest.to_string(),
        Some(("w", rest)) => format!("warning: {rest}"),
        Some(("i", rest)) => format!("info: {rest}"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines() {
        assert_eq!(
            parse_log_line(b"e overlayfs: failed to clone lowerpath\n"),
            "overlayfs: failed to clone lowerpath"
        );
        assert_eq!(parse_log_line(b"w erofs: x"), "warning: erofs: x");
        assert_eq!(parse_log_line(b"i a"), "info: a");
        assert_eq!(parse_log_line(b"odd"), "odd");
    }
}
