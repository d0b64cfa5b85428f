//! `cfs-bench`: benchmark runner for cfs.
//!
//! Usage: `cfs-bench <benchmark> [options]`, or `cfs-bench all` to run every
//! benchmark with default options, or `cfs-bench list`. Each benchmark prints
//! a plain-text report to stdout and is meant to finish in about a minute.
//! Run it from a release build: `cargo run --release -p cfs-bench -- verity`.
//!
//! To add a benchmark: write a module with `pub(crate) fn run(args: &[String])
//! -> anyhow::Result<()>` and `pub(crate) const USAGE: &str`, and add an entry
//! to [`BENCHMARKS`].
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod deploy;
mod mkcomposefs;
mod oci_pull;
mod process;
mod report;
mod repository;
mod verity;
mod verity_tree;

use anyhow::{Result, bail};

/// One benchmark subcommand.
struct Benchmark {
    name: &'static str,
    about: &'static str,
    usage: &'static str,
    run: fn(&[String]) -> Result<()>,
}

/// Every benchmark, in the order `all` runs them.
const BENCHMARKS: &[Benchmark] = &[
    Benchmark {
        name: "verity",
        about: "fs-verity digest throughput: single core vs openssl, parallel speed-up",
        usage: verity::USAGE,
        run: verity::run,
    },
    Benchmark {
        name: "verity-tree",
        about: "fs-verity digests of every file of a directory tree (default /usr)",
        usage: verity_tree::USAGE,
        run: verity_tree::run,
    },
    Benchmark {
        name: "mkcomposefs",
        about: "mkcomposefs --from-file and directory mode on /usr: time, peak RSS, SHA-256 bound",
        usage: mkcomposefs::USAGE,
        run: mkcomposefs::run,
    },
    Benchmark {
        name: "repository",
        about: "cfsctl create-image of /usr into an empty and a populated repository",
        usage: repository::USAGE,
        run: repository::run,
    },
    Benchmark {
        name: "deploy",
        about: "system install to-disk/to-filesystem, upgrade, finalize, gc of a Debian image",
        usage: deploy::USAGE,
        run: deploy::run,
    },
    Benchmark {
        name: "oci-pull",
        about: "cfsctl oci pull of a 3-layer gzip image from a local registry vs gzip -dc | sha256sum",
        usage: oci_pull::USAGE,
        run: oci_pull::run,
    },
];

fn usage() -> String {
    let mut s = String::from(
        "usage: cfs-bench <benchmark> [options]\n       cfs-bench all\n       cfs-bench list\n\nbenchmarks:\n",
    );
    for b in BENCHMARKS {
        s.push_str(&format!("  {:<12} {}\n", b.name, b.about));
    }
    s
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        bail!("{}", usage());
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{}", usage());
            for b in BENCHMARKS {
                print!("\n{}: {}\n{}", b.name, b.about, b.usage);
            }
            Ok(())
        }
        "list" => {
            for b in BENCHMARKS {
                println!("{}", b.name);
            }
            Ok(())
        }
        "all" => {
            if !rest.is_empty() {
                bail!("`cfs-bench all` takes no options");
            }
            for b in BENCHMARKS {
                report::section(b.name, b.about);
                (b.run)(&[])?;
            }
            Ok(())
        }
        name => {
            let Some(b) = BENCHMARKS.iter().find(|b| b.name == name) else {
                bail!("unknown benchmark {name:?}\n{}", usage());
            };
            if rest.iter().any(|a| a == "-h" || a == "--help") {
                print!("{}", b.usage);
                return Ok(());
            }
            report::section(b.name, b.about);
            (b.run)(rest)
        }
    }
}
