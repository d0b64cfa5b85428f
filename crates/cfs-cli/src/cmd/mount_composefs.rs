//! `mount.composefs [-t composefs] [-o OPTIONS] IMAGE MOUNTPOINT`: a drop-in
//! replacement for the C tool (composefs 1.0.8), also run by
//! `mount -t composefs` once installed as `/sbin/mount.composefs`.
//!
//! Options (`-o`, comma-separated; a backslash escapes the next character of
//! a value): `basedir=P1[:P2…]` (required), `digest=HEX`, `verity`,
//! `tryverity`, `idmap=PATH`, `ro`, `rw`, `upperdir=P`, `workdir=P`.
//! Every error exits with 1; `-h` prints the usage and exits with 0.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use cfs_core::mount::{MountError, MountOptions, VerityMode, mount_image};
use cfs_core::verity::{Algorithm, Digest};

use crate::cmd::strerror;

const PROG: &str = "mount.composefs";

/// The `-o` options and what they do: the usage text and the
/// mount.composefs(8) page are both made from this table.
pub(crate) const OPTIONS: &[(&str, &str)] = &[
    (
        "basedir=PATH[:PATH...]",
        "object directories, searched in order (required)",
    ),
    (
        "digest=DIGEST",
        "require this fs-verity digest of IMAGE (implies verity)",
    ),
    ("verity", "require valid fs-verity digests on all objects"),
    ("tryverity", "use verity if the kernel supports it"),
    (
        "idmap=PATH",
        "ID-map the mount with the user namespace at PATH",
    ),
    ("ro", "read-only mount"),
    ("rw", "read-write mount (the default)"),
    ("upperdir=PATH", "overlayfs upper directory (needs workdir)"),
    ("workdir=PATH", "overlayfs work directory (needs upperdir)"),
];

/// The synopsis line (usage and manual page).
pub(crate) const SYNOPSIS: &str =
    "mount.composefs [-t composefs] [-o OPTION[,OPTION...]] IMAGE MOUNTPOINT";

/// The example of the usage text.
pub(crate) const EXAMPLE: &str = "mount.composefs -o basedir=/composefs/objects image.cfs /mnt";

/// `-h`'s text.
fn usage_text() -> String {
    let mut text = format!(
        "usage: {SYNOPSIS}\nMounts the composefs IMAGE on MOUNTPOINT.\nExample:\n  {EXAMPLE}\nOptions:\n"
    );
    for (option, help) in OPTIONS {
        text.push_str(&format!("  {option:<24}{help}\n"));
    }
    text
}

/// A fatal error: the message (without the program name) and whether the
/// usage follows it.
#[derive(Debug, PartialEq, Eq)]
struct Fatal {
    message: String,
    usage: bool,
    /// Extra lines after the C message: the failed step and the kernel's log.
    details: Vec<String>,
}

fn fatal(message: impl Into<String>) -> Fatal {
    Fatal {
        message: message.into(),
        usage: false,
        details: Vec::new(),
    }
}

fn usage_error(message: impl Into<String>) -> Fatal {
    Fatal {
        message: message.into(),
        usage: true,
        details: Vec::new(),
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Help,
    Mount {
        image: OsString,
        target: OsString,
        options: Options,
    },
}

/// The `-o` options.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    basedirs: Vec<PathBuf>,
    digest: Option<String>,
    verity: bool,
    tryverity: bool,
    idmap: Option<PathBuf>,
    read_only: bool,
    upperdir: Option<PathBuf>,
    workdir: Option<PathBuf>,
}

/// Entry point; returns the process exit status.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let result = parse_args(&args).and_then(|request| match request {
        Request::Help => {
            let _ = io::stderr().lock().write_all(usage_text().as_bytes());
            Ok(())
        }
        Request::Mount {
            image,
            target,
            options,
        } => mount(&image, &target, options),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let mut err = io::stderr().lock();
            if !f.message.is_empty() {
                // C passes messages ending in "\n" to errx(), which adds another.
                let _ = writeln!(err, "{PROG}: {}\n", f.message);
            }
            for line in &f.details {
                let _ = writeln!(err, "{PROG}: {line}");
            }
            if f.usage {
                let _ = err.write_all(usage_text().as_bytes());
            }
            ExitCode::FAILURE
        }
    }
}

/// Parses `[-t TYPE] [-o OPTS] [-h] IMAGE MOUNTPOINT` (getopt `t:o:h` with
/// GNU argument permutation; the last `-o` wins).
fn parse_args(args: &[OsString]) -> Result<Request, Fatal> {
    let mut operands: Vec<OsString> = Vec::new();
    let mut fstype: Option<OsString> = None;
    let mut opts: Option<OsString> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            operands.extend(iter.by_ref().cloned());
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            operands.push(arg.clone());
            continue;
        }
        // Every option of "t:o:h" ends its cluster: -h returns, -t/-o take the rest.
        let c = bytes[1];
        match c {
            b'h' => return Ok(Request::Help),
            b't' | b'o' => {
                let value = if bytes.len() > 2 {
                    OsStr::from_bytes(&bytes[2..]).to_owned()
                } else {
                    iter.next().cloned().ok_or_else(|| {
                        usage_error(format!(
                            "option requires an argument -- '{}'",
                            char::from(c)
                        ))
                    })?
                };
                if c == b't' {
                    fstype = Some(value);
                } else {
                    opts = Some(value);
                }
            }
            other => {
                return Err(usage_error(format!(
                    "invalid option -- '{}'",
                    char::from(other)
                )));
            }
        }
    }
    if let Some(t) = &fstype
        && t.as_bytes() != b"composefs"
    {
        return Err(fatal(format!(
            "Unsupported fs type '{}'",
            t.to_string_lossy()
        )));
    }
    let options = parse_options(opts.as_deref().map(OsStr::as_bytes).unwrap_or_default())?;
    let [image, target]: [OsString; 2] = operands
        .try_into()
        .map_err(|_| usage_error(String::new()))?;
    if options.basedirs.is_empty() {
        return Err(usage_error("No object dirs specified"));
    }
    if options.upperdir.is_some() != options.workdir.is_some() {
        return Err(fatal("Both workdir and upperdir must be specified if used"));
    }
    Ok(Request::Mount {
        image,
        target,
        options,
    })
}

/// Splits `-o` text on unescaped commas; each item is `(raw key, unescaped
/// value)`. A backslash makes the next byte literal (in values; keys are
/// taken as written).
fn split_options(text: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut items: Vec<Vec<u8>> = vec![Vec::new()];
    let mut escaped = false;
    for &b in text {
        let item = items.last_mut().expect("never empty");
        if escaped {
            item.push(b);
            escaped = false;
        } else if b == b'\\' {
            item.push(b);
            escaped = true;
        } else if b == b',' {
            items.push(Vec::new());
        } else {
            item.push(b);
        }
    }
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .map(|item| match item.iter().position(|&b| b == b'=') {
            None => (item, None),
            Some(eq) => (item[..eq].to_vec(), Some(unescape(&item[eq + 1..]))),
        })
        .collect()
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            if let Some(&next) = bytes.next() {
                out.push(next);
            }
        } else {
            out.push(b);
        }
    }
    out
}

fn parse_options(text: &[u8]) -> Result<Options, Fatal> {
    let mut o = Options::default();
    for (key, value) in split_options(text) {
        let key_text = String::from_utf8_lossy(&key).into_owned();
        let required = || {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| fatal(format!("No value specified for {key_text} option")))
        };
        let path = |v: Vec<u8>| PathBuf::from(OsStr::from_bytes(&v));
        match key.as_slice() {
            b"basedir" => {
                let v = required()?;
                let parts: Vec<&[u8]> = v.split(|&b| b == b':').collect();
                if parts.iter().any(|p| p.is_empty()) {
                    return Err(fatal("Value for basedir option has incorrect format"));
                }
                o.basedirs = parts.into_iter().map(|p| path(p.to_vec())).collect();
            }
            b"digest" => o.digest = Some(String::from_utf8_lossy(&required()?).into_owned()),
            b"verity" => o.verity = true,
            b"tryverity" => o.tryverity = true,
            b"idmap" => o.idmap = Some(path(required()?)),
            b"ro" => o.read_only = true,
            b"rw" => o.read_only = false,
            b"upperdir" => o.upperdir = Some(path(required()?)),
            b"workdir" => o.workdir = Some(path(required()?)),
            _ => return Err(fatal(format!("Unsupported option {key_text}"))),
        }
    }
    Ok(o)
}

/// The library options for parsed `-o` options (`digest` implies `verity`,
/// which wins over `tryverity`).
fn mount_options(o: Options, idmap: Option<OwnedFd>) -> Result<MountOptions, MountError> {
    let expected_digest = match &o.digest {
        None => None,
        // Exactly 64 hex characters (C silently compares 32 bytes of whatever it parsed).
        Some(hex) => Some(
            Digest::from_hex_with(Algorithm::Sha256, hex)
                .map_err(|_| MountError::InvalidOptions("digest must be 64 hex characters"))?,
        ),
    };
    let verity = if o.verity || expected_digest.is_some() {
        VerityMode::Require
    } else if o.tryverity {
        VerityMode::Try
    } else {
        VerityMode::Off
    };
    Ok(MountOptions {
        basedirs: o.basedirs,
        upperdir: o.upperdir,
        workdir: o.workdir,
        read_only: o.read_only,
        verity,
        idmap,
        expected_digest,
        ..MountOptions::default()
    })
}

fn mount(image: &OsStr, target: &OsStr, o: Options) -> Result<(), Fatal> {
    let image_name = image.to_string_lossy().into_owned();
    let file = File::open(image)
        .map_err(|e| fatal(format!("Failed to open {image_name}: {}", strerror(&e))))?;
    let idmap = match &o.idmap {
        None => None,
        Some(p) => Some(OwnedFd::from(File::open(p).map_err(|e| {
            fatal(format!(
                "Failed to open userns {}: {}",
                p.display(),
                strerror(&e)
            ))
        })?)),
    };
    let failed = |e: MountError| {
        let reason = match &e {
            MountError::NoVerity(_) => "Image has no fs-verity".to_string(),
            MountError::WrongVerity { .. } => "Image has wrong fs-verity".to_string(),
            other => strerror(&io::Error::from(other.errno())),
        };
        Fatal {
            message: format!("Failed to mount composefs {image_name}: {reason}"),
            usage: false,
            details: detail_lines(&e),
        }
    };
    let opts = mount_options(o, idmap).map_err(failed)?;
    mount_image(&file, target.as_ref(), &opts).map_err(failed)
}

/// Which step failed and what the kernel logged (not printed by C).
fn detail_lines(e: &MountError) -> Vec<String> {
    match e {
        MountError::Kernel { .. } | MountError::Syscall { .. } | MountError::Io { .. } => {
            vec![crate::cmd::without_os_error_codes(&e.to_string())]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
