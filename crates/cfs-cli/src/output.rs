//! Where images go: a file replaced atomically, an existing special file, or stdout.
//!
//! C `mkcomposefs` truncates the output file before it reads its input, so a
//! failed run destroys the previous image. We write a temporary file in the
//! same directory and rename it over the target only on success (a
//! deliberate difference, see docs/spec-deviations.md). Special files such as
//! `/dev/null` or a FIFO are written directly.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An image destination.
#[derive(Debug)]
pub(crate) enum Output {
    /// A temporary file renamed to `target` by [`Output::commit`].
    Replace {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
    },
    /// An existing non-regular file written in place.
    Direct(File),
    /// Standard output.
    Stdout(io::Stdout),
}

impl Output {
    /// Prepares `path` for writing (`-` = stdout). Fails like C if the file
    /// cannot be created (missing directory, permissions).
    pub(crate) fn create(path: &Path) -> io::Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output::Stdout(io::stdout()));
        }
        match std::fs::metadata(path) {
            Ok(m) if !m.file_type().is_file() => {
                let ft = m.file_type();
                if ft.is_dir() {
                    return Err(io::Error::from(io::ErrorKind::IsADirectory));
                }
                if ft.is_char_device() || ft.is_fifo() || ft.is_block_device() || ft.is_socket() {
                    return Ok(Output::Direct(
                        std::fs::OpenOptions::new().write(true).open(path)?,
                    ));
                }
            }
            _ => {}
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        // Like fopen(3): 0666 minus the umask, or keep an existing file's mode.
        let mode = match std::fs::metadata(path) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => 0o666 & !current_umask(),
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(Output::Replace {
            tmp,
            target: path.to_path_buf(),
        })
    }

    /// The writer for the image bytes.
    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Replace { tmp, .. } => tmp.as_file_mut(),
            Output::Direct(f) => f,
            Output::Stdout(s) => s,
        }
    }

    /// Publishes the image: renames the temporary file over the target.
    pub(crate) fn commit(self) -> io::Result<()> {
        match self {
            Output::Replace { tmp, target } => {
                tmp.persist(&target).map_err(|e| e.error)?;
                Ok(())
            }
            Output::Direct(mut f) => f.flush(),
            Output::Stdout(mut s) => s.flush(),
        }
    }
}

fn current_umask() -> u32 {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.as_raw_mode()
}
