//! Real bootable Debian 12 OS images for the tests, built from Debian packages by
//! `tests/os/build-debian-os.sh` (mmdebstrap; 6.12 kernel from bookworm-backports) and cached
//! under `${CFS_OS_CACHE:-/var/tmp/cfs-os-cache}`: the first build of a variant takes about
//! two minutes, later calls return at once.
//!
//! The returned directory holds (see the script's header for the details):
//!
//! ```text
//! rootfs/   the image's tree (its layers extracted as root, xattrs kept)
//! oci/      OCI image layout with the tag `latest` (gzip layers; `oci:DIR/oci:latest`)
//! kver      the kernel release, e.g. `6.12.95+deb12-amd64`
//! layers    per layer: diff_id, blob digest, blob size
//! cmdline   (bls, uki) the command line used
//! ```
//!
//! Variants: `plain` (one layer; `/usr/lib/modules/<kver>/{vmlinuz,initramfs.img}`),
//! `selinux` (plain + selinux-policy-default, enforcing), `bls` (plain's layer + a layer
//! with `/boot/loader/entries/debian-<kver>.conf` and `/boot/debian/<kver>/…`; `cmdline` is
//! its `options`), `uki` (plain's layer + a layer with `/boot/EFI/Linux/debian-<kver>.efi`;
//! `cmdline` is required). The results are shared: treat them as read-only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cached image directory of `variant`, built first if needed. `None` (with a message on
/// stderr) when the build cannot run here: not root, or `mmdebstrap` (for `uki` also
/// `objcopy`) missing; with `CFS_TEST_PRIVILEGED=require` those panic instead. A failing
/// build panics with the end of its log.
pub(crate) fn build(variant: &str, cmdline: Option<&str>) -> Option<PathBuf> {
    let test = format!("debian_os {variant}");
    let mut tools = vec!["mmdebstrap"];
    if variant == "uki" {
        tools.push("objcopy");
    }
    if !crate::oci_support::have_tools(&test, &tools) {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/os/build-debian-os.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(variant);
    if let Some(c) = cmdline {
        cmd.arg(c);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{test}: running {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "{test}: {} failed ({}):\n{tail}",
            script.display(),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(
        stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("{test}: the script printed no directory\n{stderr}"))
            .trim(),
    );
    assert!(
        dir.join("rootfs").is_dir() && dir.join("oci/index.json").is_file(),
        "{test}: {} is not a built image",
        dir.display()
    );
    Some(dir)
}
