//! Running host tools with errors that say what ran and what it printed.

use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn checked(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {} (is it installed?)", describe(cmd)))?;
    if !out.status.success() {
        let tail = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        bail!(
            "{} failed ({}):\n{}\n{}",
            describe(cmd),
            out.status,
            tail(&out.stdout),
            tail(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs `cmd`; fails with its output if it exits unsuccessfully.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<()> {
    checked(cmd).map(drop)
}

/// Runs `cmd` and returns its standard output.
pub(crate) fn output_of(cmd: &mut Command) -> Result<String> {
    let out = checked(cmd)?;
    String::from_utf8(out.stdout).with_context(|| format!("{}: output is not UTF-8", describe(cmd)))
}

/// The path of `tool` on `PATH` (also searching the sbin directories, which
/// a non-root `PATH` may lack).
pub fn find_tool(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
