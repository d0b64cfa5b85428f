//! `mkcomposefs [OPTIONS] SOURCE IMAGE`: a drop-in replacement for the C tool
//! (composefs 1.0.8): same options, same images, same exit codes.

use std::ffi::OsString;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cfs_core::dumpfile::{ParseOptions, parse_dumpfile};
use cfs_core::erofs::writer::{WriteOptions, write_image};
use cfs_core::tree::{ContentOptions, FileSystem, ScanOptions, build_from_directory};
use cfs_core::verity::{Algorithm, FsVerityHasher};

use crate::cmd::{strerror, without_os_error_codes};
use crate::getopt::{GetoptError, HasArg, LongOpt, getopt_long};
use crate::output::Output;

const PROG: &str = "mkcomposefs";

/// Files up to this size are stored in the image in directory mode (C
/// `LCFS_BUILD_INLINE_FILE_SIZE_LIMIT`).
const DIR_MODE_INLINE_MAX: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    SkipXattrs,
    UserXattrs,
    SkipDevices,
    UseEpoch,
    DigestStore,
    PrintDigest,
    PrintDigestOnly,
    FromFile,
    MaxVersion,
    MinVersion,
    Threads,
    /// `-C`/`-R` are in C's optstring but fall through to the usage message.
    Unhandled,
}

const LONGS: &[LongOpt<Opt>] = &[
    LongOpt {
        name: "skip-xattrs",
        has_arg: HasArg::No,
        id: Opt::SkipXattrs,
    },
    LongOpt {
        name: "user-xattrs",
        has_arg: HasArg::No,
        id: Opt::UserXattrs,
    },
    LongOpt {
        name: "skip-devices",
        has_arg: HasArg::No,
        id: Opt::SkipDevices,
    },
    LongOpt {
        name: "use-epoch",
        has_arg: HasArg::No,
        id: Opt::UseEpoch,
    },
    LongOpt {
        name: "digest-store",
        has_arg: HasArg::Required,
        id: Opt::DigestStore,
    },
    LongOpt {
        name: "print-digest",
        has_arg: HasArg::No,
        id: Opt::PrintDigest,
    },
    LongOpt {
        name: "print-digest-only",
        has_arg: HasArg::No,
        id: Opt::PrintDigestOnly,
    },
    LongOpt {
        name: "from-file",
        has_arg: HasArg::No,
        id: Opt::FromFile,
    },
    LongOpt {
        name: "max-version",
        has_arg: HasArg::Required,
        id: Opt::MaxVersion,
    },
    LongOpt {
        name: "min-version",
        has_arg: HasArg::Required,
        id: Opt::MinVersion,
    },
    LongOpt {
        name: "threads",
        has_arg: HasArg::Required,
        id: Opt::Threads,
    },
];
const SHORTS: &[(char, Opt)] = &[('C', Opt::Unhandled), ('R', Opt::Unhandled)];

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The options and what they do: the usage text and the mkcomposefs(1)
/// page are both made from this table. `{threads}` stands for the default
/// number of threads.
pub(crate) const OPTIONS: &[(&str, &str)] = &[
    (
        "--digest-store=PATH",
        "Store content files in this directory",
    ),
    ("--use-epoch", "Make all mtimes zero"),
    ("--skip-devices", "Don't store device nodes"),
    ("--skip-xattrs", "Don't store file xattrs"),
    ("--user-xattrs", "Only store user.* xattrs"),
    ("--print-digest", "Print the digest of the image"),
    (
        "--print-digest-only",
        "Print the digest of the image, don't write image",
    ),
    ("--from-file", "The source is a dump file, not a directory"),
    (
        "--min-version=N",
        "Use this minimal format version (default=0)",
    ),
    // The C tool's spelling, kept byte for byte.
    (
        "--max-version=N",
        "Use this maxium format version (default=1)",
    ),
    (
        "--threads=N",
        "Use this to override the default number of threads used to calculate digest and copy \
         files (default={threads})",
    ),
];

/// The synopsis (usage and manual page).
pub(crate) const SYNOPSIS: &str = "mkcomposefs [OPTIONS] SOURCE IMAGE";

/// The usage text, with `threads` as the default thread count.
fn usage_text(threads: &str) -> String {
    let mut text = format!("Usage: {SYNOPSIS}\nOptions:\n");
    for (option, help) in OPTIONS {
        text.push_str(&format!(
            "  {option:<22}{}\n",
            help.replace("{threads}", threads)
        ));
    }
    text
}

fn usage() {
    eprint!("{}", usage_text(&default_threads().to_string()));
}

/// A fatal error: the message (printed as `mkcomposefs: MSG`) and whether the
/// usage text follows it.
struct Fatal {
    message: String,
    usage: bool,
    prefix: bool,
}

impl Fatal {
    fn new(message: impl Into<String>) -> Self {
        Fatal {
            message: message.into(),
            usage: false,
            prefix: true,
        }
    }
    fn usage(message: impl Into<String>) -> Self {
        Fatal {
            message: message.into(),
            usage: true,
            prefix: false,
        }
    }
    fn bare(message: impl Into<String>) -> Self {
        Fatal {
            message: message.into(),
            usage: false,
            prefix: false,
        }
    }
}

/// Parsed command line.
struct Args {
    scan: ScanOptions,
    digest_store: Option<PathBuf>,
    print_digest: bool,
    print_digest_only: bool,
    from_file: bool,
    versions: WriteOptions,
    threads: usize,
    source: PathBuf,
    image: Option<PathBuf>,
}

/// `strtol(s, &end, 10)` that must consume the whole non-empty string.
fn parse_long(s: &str) -> Option<i64> {
    let t = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // strtol saturates on overflow.
    let v = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if neg { v.saturating_neg() } else { v })
}

fn parse_args(args: &[OsString]) -> Result<Args, Fatal> {
    let parsed = match getopt_long(args, SHORTS, LONGS) {
        Ok(p) => p,
        Err(GetoptError::MissingValue(_)) => return Err(Fatal::bare("option needs a value")),
        Err(e) => return Err(Fatal::usage(format!("{PROG}: {e}"))),
    };
    let mut a = Args {
        scan: ScanOptions::default(),
        digest_store: None,
        print_digest: false,
        print_digest_only: false,
        from_file: false,
        versions: WriteOptions::default(),
        threads: default_threads(),
        source: PathBuf::new(),
        image: None,
    };
    let (mut version_set, mut min, mut max) = (false, 0i64, 0i64);
    for (opt, value) in parsed.options {
        let value = value
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        match opt {
            Opt::SkipXattrs => a.scan.skip_xattrs = true,
            Opt::UserXattrs => a.scan.user_xattrs_only = true,
            Opt::SkipDevices => a.scan.skip_devices = true,
            Opt::UseEpoch => a.scan.use_epoch = true,
            Opt::DigestStore => a.digest_store = Some(PathBuf::from(value)),
            Opt::PrintDigest => a.print_digest = true,
            Opt::PrintDigestOnly => {
                a.print_digest = true;
                a.print_digest_only = true;
            }
            Opt::FromFile => a.from_file = true,
            Opt::MinVersion => {
                version_set = true;
                min = parse_long(&value)
                    .ok_or_else(|| Fatal::bare(format!("Invalid min version {value}")))?;
            }
            Opt::MaxVersion => {
                version_set = true;
                max = parse_long(&value)
                    .ok_or_else(|| Fatal::bare(format!("Invalid max version {value}")))?;
            }
            Opt::Threads => {
                let n = parse_long(&value)
                    .ok_or_else(|| Fatal::bare(format!("Invalid threads count {value}")))?;
                if n <= 0 {
                    return Err(Fatal::bare(format!("Invalid threads count {}", n as i32)));
                }
                a.threads = usize::try_from(n).unwrap_or(usize::MAX).min(1024);
            }
            Opt::Unhandled => return Err(Fatal::usage("")),
        }
    }
    if version_set {
        // Out-of-range values fail later at write time, like C ("cannot write
        // file: Invalid argument"); map them to something the writer rejects.
        let clamp = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        a.versions = WriteOptions {
            min_version: clamp(min),
            max_version: clamp(max),
        };
    }
    let mut operands = parsed.operands.into_iter();
    let Some(source) = operands.next() else {
        return Err(Fatal::usage("No source path specified"));
    };
    if source.is_empty() {
        return Err(Fatal::new("Empty source path specified"));
    }
    a.source = PathBuf::from(source);
    let image = operands.next();
    if operands.next().is_some() {
        return Err(Fatal::usage("Too many arguments"));
    }
    match (image, a.print_digest_only) {
        (None, false) => return Err(Fatal::usage("No destination path specified")),
        (Some(_), true) => {
            return Err(Fatal::usage(
                "Cannot specify destination path with --print-digest-only",
            ));
        }
        (image, _) => a.image = image.map(PathBuf::from),
    }
    Ok(a)
}

/// Entry point; returns the process exit status.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                if f.prefix {
                    eprintln!("{PROG}: {}", without_os_error_codes(&f.message));
                } else {
                    eprintln!("{}", without_os_error_codes(&f.message));
                }
            }
            if f.usage {
                usage();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[OsString]) -> Result<(), Fatal> {
    let a = parse_args(args)?;

    let mut output =
        match &a.image {
            None => None,
            Some(p) if p.as_os_str() == "-" => {
                if io::stdout().is_terminal() {
                    return Err(Fatal::new("stdout is a tty.  Refusing to use it"));
                }
                Some(Output::create(p).map_err(|e| {
                    Fatal::new(format!("failed to open output file: {}", strerror(&e)))
                })?)
            }
            Some(p) => Some(Output::create(p).map_err(|e| {
                Fatal::new(format!(
                    "failed to open output file: {}: {}",
                    p.display(),
                    strerror(&e)
                ))
            })?),
        };

    let fs = if a.from_file {
        read_dump(&a.source)?
    } else {
        read_directory(&a)?
    };

    let mut hasher = a
        .print_digest
        .then(|| FsVerityHasher::new(Algorithm::Sha256));
    {
        let mut sink = Tee {
            out: output.as_mut().map(Output::writer),
            hasher: hasher.as_mut(),
        };
        let mut buffered = io::BufWriter::with_capacity(1 << 20, &mut sink);
        write_image(&fs, &a.versions, &mut buffered)
            .map_err(|e| Fatal::new(format!("cannot write file: {e}")))?;
        buffered
            .flush()
            .map_err(|e| Fatal::new(format!("cannot write file: {e}")))?;
    }
    drop(fs);
    if let Some(out) = output {
        out.commit()
            .map_err(|e| Fatal::new(format!("cannot write file: {e}")))?;
    }
    if let Some(h) = hasher {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{}", h.finalize().to_hex())
            .and_then(|()| stdout.flush())
            .map_err(|e| Fatal::new(format!("cannot write digest: {e}")))?;
    }
    Ok(())
}

fn read_dump(source: &Path) -> Result<FileSystem, Fatal> {
    let opts = ParseOptions::from_env();
    let (result, name) = if source.as_os_str() == "-" {
        (
            parse_dumpfile(BufReader::with_capacity(1 << 16, io::stdin().lock()), &opts),
            "<stdin>".to_string(),
        )
    } else {
        let file = std::fs::File::open(source)
            .map_err(|e| Fatal::new(format!("open `{}`: {}", source.display(), strerror(&e))))?;
        (
            parse_dumpfile(BufReader::with_capacity(1 << 16, file), &opts),
            source.display().to_string(),
        )
    };
    result.map_err(|e| match (e.line(), e.field()) {
        (Some(line), Some(field)) => Fatal::new(format!(
            "{} ({name}, line {line}, field {field})",
            e.c_message()
        )),
        (Some(line), None) => Fatal::new(format!("{} ({name}, line {line})", e.c_message())),
        _ => Fatal::new(e.c_message()),
    })
}

fn read_directory(a: &Args) -> Result<FileSystem, Fatal> {
    let opts = ContentOptions {
        algorithm: Algorithm::Sha256,
        inline_max: DIR_MODE_INLINE_MAX,
        threads: a.threads,
        store: a.digest_store.clone(),
    };
    // Scanning and hashing overlap: the scan feeds hashing workers as it goes.
    let scanned =
        build_from_directory(&a.source, &a.scan, &opts).map_err(|e| Fatal::new(e.to_string()))?;
    Ok(scanned.fs)
}

/// Writes to the output (if any) and the fs-verity hasher (if any).
struct Tee<'a> {
    out: Option<&'a mut dyn Write>,
    hasher: Option<&'a mut FsVerityHasher>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(out) = self.out.as_mut() {
            out.write_all(buf)?;
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The usage text made from the table is C mkcomposefs 1.0.8's.
    #[test]
    fn usage_text_from_the_table() {
        assert_eq!(
            usage_text("4"),
            "Usage: mkcomposefs [OPTIONS] SOURCE IMAGE\n\
             Options:\n  \
             --digest-store=PATH   Store content files in this directory\n  \
             --use-epoch           Make all mtimes zero\n  \
             --skip-devices        Don't store device nodes\n  \
             --skip-xattrs         Don't store file xattrs\n  \
             --user-xattrs         Only store user.* xattrs\n  \
             --print-digest        Print the digest of the image\n  \
             --print-digest-only   Print the digest of the image, don't write image\n  \
             --from-file           The source is a dump file, not a directory\n  \
             --min-version=N       Use this minimal format version (default=0)\n  \
             --max-version=N       Use this maxium format version (default=1)\n  \
             --threads=N           Use this to override the default number of threads used \
             to calculate digest and copy files (default=4)\n"
        );
    }

    #[test]
    fn strtol_like_numbers() {
        assert_eq!(parse_long("1"), Some(1));
        assert_eq!(parse_long(" +2"), Some(2));
        assert_eq!(parse_long("-1"), Some(-1));
        assert_eq!(parse_long(""), None);
        assert_eq!(parse_long("1x"), None);
        assert_eq!(parse_long("x"), None);
        assert_eq!(parse_long("99999999999999999999"), Some(i64::MAX));
    }

    fn parse(list: &[&str]) -> Result<Args, String> {
        let v: Vec<OsString> = list.iter().map(OsString::from).collect();
        parse_args(&v).map_err(|f| f.message)
    }

    #[test]
    fn version_defaults_follow_c() {
        let a = parse(&["--from-file", "x", "y"]).ok().unwrap();
        assert_eq!((a.versions.min_version, a.versions.max_version), (0, 1));
        let a = parse(&["--min-version=1", "x", "y"]).ok().unwrap();
        assert_eq!((a.versions.min_version, a.versions.max_version), (1, 0));
        let a = parse(&["--max-version", "0", "x", "y"]).ok().unwrap();
        assert_eq!((a.versions.min_version, a.versions.max_version), (0, 0));
        assert_eq!(
            parse(&["--min-version=a", "x", "y"]).err().unwrap(),
            "Invalid min version a"
        );
        assert_eq!(
            parse(&["--threads=0", "x", "y"]).err().unwrap(),
            "Invalid threads count 0"
        );
    }

    #[test]
    fn operands() {
        assert_eq!(parse(&[]).err().unwrap(), "No source path specified");
        assert_eq!(
            parse(&["x"]).err().unwrap(),
            "No destination path specified"
        );
        assert_eq!(parse(&["x", "y", "z"]).err().unwrap(), "Too many arguments");
        assert_eq!(parse(&[""]).err().unwrap(), "Empty source path specified");
        assert_eq!(
            parse(&["--print-digest-only", "x", "y"]).err().unwrap(),
            "Cannot specify destination path with --print-digest-only"
        );
        let a = parse(&["--print-digest-only", "x"]).ok().unwrap();
        assert!(a.image.is_none() && a.print_digest);
        assert_eq!(
            parse(&["x", "--threads"]).err().unwrap(),
            "option needs a value"
        );
    }
}
