//! `cfsctl`: one binary that also acts as `mkcomposefs`, `composefs-info`,
//! `mount.composefs` and `composefs-setup-root` (= `cfsctl setup-root`) when
//! called by those names (`argv[0]`) or as
//! `cfsctl mkcomposefs …` / `cfsctl composefs-info …` /
//! `cfsctl mount.composefs …`; otherwise the `cfsctl` repository commands
//! (see [`cli`]).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod cmd;
mod getopt;
mod man;
mod output;
mod progress;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// The tools this binary can act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Cfsctl,
    Mkcomposefs,
    ComposefsInfo,
    MountComposefs,
    SetupRoot,
}

impl Tool {
    fn from_name(name: &str) -> Option<Tool> {
        match name {
            "mkcomposefs" => Some(Tool::Mkcomposefs),
            "composefs-info" => Some(Tool::ComposefsInfo),
            "mount.composefs" => Some(Tool::MountComposefs),
            "composefs-setup-root" => Some(Tool::SetupRoot),
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
        Tool::MountComposefs => cmd::mount_composefs::main(args),
        Tool::SetupRoot => cli::main(std::iter::once("setup-root".into()).chain(args).collect()),
        Tool::Cfsctl => cfsctl(args),
    }
}

/// `cfsctl ARGS…`: `mkcomposefs`/`composefs-info`/`mount.composefs` as a first argument run
/// those tools with their own (getopt) parser; anything else goes to the
/// clap command line.
fn cfsctl(args: Vec<OsString>) -> ExitCode {
    if let Some(tool) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(Tool::from_name)
        .filter(|&t| !matches!(t, Tool::Cfsctl | Tool::SetupRoot))
    {
        return run(tool, args[1..].to_vec());
    }
    cli::main(args)
}
