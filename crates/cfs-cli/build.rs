//! Records the git commit the binary is built from, for `cfsctl --version`
//! and the manual pages: `CFS_GIT_COMMIT` (and `CFS_GIT_DATE`) from the
//! environment (a build from a tarball sets them), else from git, else
//! `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `$var` if set and not empty, else what git says, else `unknown`; cargo
/// builds again when `$var` changes.
fn setting(var: &str, git_args: &[&str]) -> String {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| git(git_args))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() {
    let commit = setting("CFS_GIT_COMMIT", &["rev-parse", "--short=12", "HEAD"]);
    println!("cargo:rustc-env=CFS_GIT_COMMIT={commit}");
    // The commit's date (YYYY-MM-DD) dates the manual pages, so they are
    // the same for every build of a commit.
    let date = setting("CFS_GIT_DATE", &["log", "-1", "--format=%cs"]);
    println!("cargo:rustc-env=CFS_GIT_DATE={date}");
    // Built again when HEAD moves: HEAD itself, the branch it names, and
    // packed refs.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(&dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
            .map_or_else(|| dir.to_owned(), Into::into);
        println!(
            "cargo:rerun-if-changed={}",
            common.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
}
