//! `cfsctl`: one binary that also acts as `mkcomposefs` and `composefs-info`
//! when called by those names (`argv[0]`) or as `cfsctl mkcomposefs …` /
//! `cfsctl composefs-info …`.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod getopt;
mod output;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// The tools this binary can act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Cfsctl,
    Mkcomposefs,
    ComposefsInfo,
}

impl Tool {
    fn from_name(name: &str) -> Option<Tool> {
        match name {
            "mkcomposefs" => Some(Tool::Mkcomposefs),
            "composefs-info" => Some(Tool::ComposefsInfo),
            "cfsctl" => Some(Tool::Cfsctl),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_else(|| "cfsctl".into());
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tool = Tool::from_name(&name).unwrap_or(Tool::Cfsctl);
    let rest = args.split_off(1.min(args.len()));
    run(tool, rest)
}

fn run(tool: Tool, args: Vec<OsString>) -> ExitCode {
    match tool {
        Tool::Mkcomposefs => cmd::mkcomposefs::main(args),
        Tool::ComposefsInfo => cmd::composefs_info::main(args),
        Tool::Cfsctl => cfsctl(args),
    }
}

const CFSCTL_USAGE: &str = "\
Usage: cfsctl COMMAND [ARGS...]

Commands:
  mkcomposefs [OPTIONS] SOURCE IMAGE      build a composefs image (drop-in for C mkcomposefs)
  composefs-info [OPTIONS] COMMAND IMAGE  inspect composefs images (drop-in for C composefs-info)

The binary also acts as `mkcomposefs` or `composefs-info` when invoked by that name.
Run `cfsctl COMMAND --help` for a command's options.";

fn cfsctl(args: Vec<OsString>) -> ExitCode {
    let Some(first) = args.first() else {
        eprintln!("{CFSCTL_USAGE}");
        return ExitCode::FAILURE;
    };
    let first = first.to_string_lossy();
    match first.as_ref() {
        "-h" | "--help" | "help" => {
            println!("{CFSCTL_USAGE}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("cfsctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        name => match Tool::from_name(name) {
            Some(tool) if tool != Tool::Cfsctl => run(tool, args[1..].to_vec()),
            _ => {
                eprintln!("cfsctl: unknown command '{name}'\n\n{CFSCTL_USAGE}");
                ExitCode::FAILURE
            }
        },
    }
}
