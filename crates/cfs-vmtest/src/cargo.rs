//! The workspace's test binaries, as cargo built them for this test run.
//!
//! Asks cargo (`$CARGO test --workspace --no-run --message-format=json`,
//! the same profile as the running test) for the executables; with the
//! outer `cargo test` having built everything, this builds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One test executable.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// Package name (`cfs-core`).
    pub package: String,
    /// Target name (`cfs_core` for the library's unit tests, `integration`).
    pub target: String,
    /// Target kinds (`lib`, `test`, `bin`).
    pub kinds: Vec<String>,
    /// The executable.
    pub path: PathBuf,
    /// The package directory (cargo runs tests from there).
    pub package_dir: PathBuf,
}

/// Runs `cargo ARGS --message-format=json` in `workspace`, in the profile
/// the running test was built with, and returns its JSON messages.
fn cargo_messages(workspace: &Path, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let what = format!("cargo {}", args.join(" "));
    let mut cmd = Command::new(cargo);
    cmd.args(args)
        .arg("--message-format=json")
        .current_dir(workspace);
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.components().any(|c| c.as_os_str() == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// The test executables of the workspace at `workspace`.
pub fn test_binaries(workspace: &Path) -> Result<Vec<TestBinary>> {
    let messages = cargo_messages(workspace, &["test", "--workspace", "--no-run"])?;
    let mut found = Vec::new();
    for msg in messages {
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some(path) = msg["executable"].as_str() else {
            continue;
        };
        let manifest = msg["manifest_path"].as_str().unwrap_or_default();
        let package_id = msg["package_id"].as_str().unwrap_or_default();
        found.push(TestBinary {
            package: package_name(package_id, manifest),
            target: msg["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            kinds: msg["target"]["kind"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            path: path.into(),
            package_dir: Path::new(manifest)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        });
    }
    Ok(found)
}

/// The package name from a package id (`path+file:///…/cfs-core#0.1.0`,
/// or the older `cfs-core 0.1.0 (path+file://…)`), falling back to the
/// manifest directory's name.
fn package_name(id: &str, manifest: &str) -> String {
    if let Some((_, frag)) = id.rsplit_once('#') {
        let name = frag.split('@').next().unwrap_or(frag);
        if !name.is_empty() && !name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return name.to_owned();
        }
    } else if let Some((name, _)) = id.split_once(' ') {
        return name.to_owned();
    }
    Path::new(manifest)
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Finds the binary of `package`'s target `target`.
pub fn find<'a>(bins: &'a [TestBinary], package: &str, target: &str) -> Result<&'a TestBinary> {
    bins.iter()
        .find(|b| b.package == package && b.target == target)
        .with_context(|| format!("cargo built no test binary {package}/{target}"))
}

/// Builds the workspace's `cfsctl` (in the profile the running test was
/// built with) and returns its path.
pub fn cfsctl(workspace: &Path) -> Result<PathBuf> {
    cargo_messages(workspace, &["build", "-p", "cfs-cli", "--bin", "cfsctl"])?
        .iter()
        .find(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "cfsctl")
        .and_then(|msg| msg["executable"].as_str())
        .map(PathBuf::from)
        .context("cargo build -p cfs-cli reported no cfsctl executable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_from_ids() {
        assert_eq!(
            package_name(
                "path+file:///w/crates/cfs-core#0.1.0",
                "/w/crates/cfs-core/Cargo.toml"
            ),
            "cfs-core"
        );
        assert_eq!(
            package_name(
                "path+file:///w/crates/x#cfs-cli@0.1.0",
                "/w/crates/x/Cargo.toml"
            ),
            "cfs-cli"
        );
        assert_eq!(
            package_name("cfs-oci 0.1.0 (path+file:///w/crates/cfs-oci)", ""),
            "cfs-oci"
        );
    }
}
