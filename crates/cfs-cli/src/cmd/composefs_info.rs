//! `composefs-info [--basedir=PATH] [--filter=NAME]... COMMAND IMAGE...`: a
//! drop-in replacement for the C tool (composefs 1.0.8). Commands: `ls`, `dump`,
//! `objects`, `missing-objects`, `measure-file`. Unlike C, images whose metacopy
//! xattrs carry SHA-512 digests are understood.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use cfs_core::dumpfile::{write_dumpfile, write_ls};
use cfs_core::erofs::reader::{ReadOptions, read_image};
use cfs_core::tree::{FileSystem, InodeKind, RegularFile};
use cfs_core::verity::{Algorithm, measure_or_compute};
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::cmd::{strerror, without_os_error_codes};
use crate::getopt::{HasArg, LongOpt, getopt_long};

const PROG: &str = "composefs-info";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Basedir,
    Filter,
}

const LONGS: &[LongOpt<Opt>] = &[
    LongOpt {
        name: "basedir",
        has_arg: HasArg::Required,
        id: Opt::Basedir,
    },
    LongOpt {
        name: "filter",
        has_arg: HasArg::Required,
        id: Opt::Filter,
    },
];

/// The synopsis (usage and manual page), as C composefs-info prints it.
pub(crate) const SYNOPSIS: &str = "composefs-info [--basedir=path] [--filter=name]... \
     [ls|objects|dump|missing-objects|measure-file] IMAGES...";

/// The commands and what they print, for the composefs-info(1) page (the
/// C usage text has no descriptions).
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    (
        "ls",
        "List the entries of each image below the root, one per line, depth first: \
         directories end in /, symlinks show -> TARGET, files backed by an object show @ OBJECT.",
    ),
    (
        "dump",
        "Print each image as a dumpfile (composefs-dump(5)), the text mkcomposefs --from-file \
         reads back.",
    ),
    (
        "objects",
        "List the backing objects (relative paths such as ab/cdef...) the images reference, \
         sorted and merged over all images, each once.",
    ),
    (
        "missing-objects",
        "Like objects, but only those missing below --basedir (without --basedir, every \
         object).",
    ),
    (
        "measure-file",
        "Print the fs-verity SHA-256 digest of each FILE given instead of an image (read from \
         the kernel where the file has fs-verity, computed otherwise).",
    ),
];

/// The options, for the composefs-info(1) page.
pub(crate) const OPTIONS: &[(&str, &str)] = &[
    (
        "--basedir=PATH",
        "The object directory that missing-objects checks against.",
    ),
    (
        "--filter=NAME",
        "Only load and print the top-level entry NAME and what is below it; may be repeated. \
         NAME must not contain a /.",
    ),
];

fn usage() {
    eprintln!("usage: {SYNOPSIS}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Ls,
    Dump,
    Objects,
    MissingObjects,
}

/// A fatal error: message (already prefixed as needed) and whether to print the usage.
struct Fatal {
    message: String,
    usage: bool,
}

fn fatal(message: impl Into<String>) -> Fatal {
    Fatal {
        message: format!("{PROG}: {}", message.into()),
        usage: false,
    }
}

fn usage_error(message: impl Into<String>) -> Fatal {
    Fatal {
        message: message.into(),
        usage: true,
    }
}

/// Entry point; returns the process exit status.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // Whatever was printed so far stays printed (like C's stdio at exit).
            let _ = io::stdout().flush();
            if !f.message.is_empty() {
                eprintln!("{}", without_os_error_codes(&f.message));
            }
            if f.usage {
                usage();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[OsString]) -> Result<(), Fatal> {
    let parsed = getopt_long(args, &[], LONGS).map_err(|e| usage_error(format!("{PROG}: {e}")))?;
    let mut basedir: Option<OsString> = None;
    let mut filter: Vec<Box<[u8]>> = Vec::new();
    for (opt, value) in parsed.options {
        let value = value.unwrap_or_default();
        match opt {
            Opt::Basedir => basedir = Some(value),
            Opt::Filter => {
                if value.as_bytes().contains(&b'/') {
                    return Err(fatal(format!(
                        "Filter must be a single name: {}",
                        value.to_string_lossy()
                    )));
                }
                filter.push(value.as_bytes().into());
            }
        }
    }
    let mut operands = parsed.operands.into_iter();
    let Some(command) = operands.next() else {
        return Err(usage_error("No command specified"));
    };
    let images: Vec<OsString> = operands.collect();
    let command = match command.as_bytes() {
        b"ls" => Command::Ls,
        b"dump" => Command::Dump,
        b"objects" => Command::Objects,
        b"missing-objects" => Command::MissingObjects,
        b"measure-file" => return measure_files(&images),
        other => {
            return Err(fatal(format!(
                "Unknown command '{}'",
                String::from_utf8_lossy(other)
            )));
        }
    };
    let basedir_fd = match &basedir {
        Some(path) => Some(
            rustix::fs::open(
                path.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                fatal(format!(
                    "Can't open basedir `{}`: {}",
                    path.to_string_lossy(),
                    strerror(&io::Error::from(e))
                ))
            })?,
        ),
        None => None,
    };
    if images.is_empty() {
        return Err(usage_error("No image path specified"));
    }
    let opts = ReadOptions {
        filter: (!filter.is_empty()).then_some(filter),
    };
    let mut objects: BTreeSet<Box<[u8]>> = BTreeSet::new();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let write_err = |e: io::Error| fatal(format!("write error: {e}"));
    for image in &images {
        let path = Path::new(image);
        // Bounded while reading: a device or pipe that never ends is cut off.
        let bytes = std::fs::File::open(path)
            .and_then(|f| cfs_core::limits::read_bounded(f, cfs_core::limits::MAX_IMAGE_LEN))
            .map_err(|e| {
                fatal(format!(
                    "Failed to open '{}': {}",
                    path.display(),
                    strerror(&e)
                ))
            })?;
        // C prints strerror(errno); we lead with the same text and add the detail.
        let (fs, _info) = read_image(&bytes, &opts).map_err(|e| {
            fatal(format!(
                "Failed to load '{}': {}: {e}",
                path.display(),
                strerror(&io::Error::from(e.errno()))
            ))
        })?;
        drop(bytes);
        match command {
            Command::Ls => write_ls(&fs, &mut out).map_err(write_err)?,
            Command::Dump => write_dumpfile(&fs, &mut out).map_err(write_err)?,
            Command::Objects | Command::MissingObjects => collect_payloads(&fs, &mut objects),
        }
    }
    if matches!(command, Command::Objects | Command::MissingObjects) {
        for object in &objects {
            if let Some(dir) = &basedir_fd {
                // Like C: leading slashes stripped, symlinks followed.
                let start = object
                    .iter()
                    .position(|&b| b != b'/')
                    .unwrap_or(object.len());
                let rel = &object[start..];
                if rustix::fs::statat(dir, std::ffi::OsStr::from_bytes(rel), AtFlags::EMPTY_PATH)
                    .is_ok()
                {
                    continue;
                }
            }
            out.write_all(object)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)
}

/// The payloads (object paths) of all external regular files.
fn collect_payloads(fs: &FileSystem, objects: &mut BTreeSet<Box<[u8]>>) {
    for inode in fs.inodes() {
        if let InodeKind::Regular(RegularFile::External(ext)) = &inode.kind
            && let Some(p) = &ext.payload
            && !objects.contains(p)
        {
            objects.insert(p.clone());
        }
    }
}

fn measure_files(files: &[OsString]) -> Result<(), Fatal> {
    if files.is_empty() {
        return Err(usage_error("No files specified"));
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for f in files {
        let path = Path::new(f);
        let file = std::fs::File::open(path).map_err(|e| {
            fatal(format!(
                "Failed to open '{}': {}",
                path.display(),
                strerror(&e)
            ))
        })?;
        let digest = measure_or_compute(&file, Algorithm::Sha256).map_err(|e| Fatal {
            message: format!("failed to measure '{}': {}", path.display(), strerror(&e)),
            usage: false,
        })?;
        writeln!(out, "{}", digest.to_hex()).map_err(|e| fatal(format!("write error: {e}")))?;
    }
    Ok(())
}
