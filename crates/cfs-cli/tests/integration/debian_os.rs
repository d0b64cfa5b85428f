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

/// An OCI layout at `dst` (tag `latest`) of the image `os` (a built variant) plus one more
/// layer holding `files` (path without leading `/`, contents; parent directories must exist
/// in the image): a new version of the same OS in seconds. The image's blobs are hard-linked,
/// not copied. Returns the `oci:DIR:latest` source.
pub(crate) fn derive(os: &Path, dst: &Path, files: &[(&str, &[u8])]) -> String {
    use crate::oci_support::{Tar, gzip, write_blob};
    let src = os.join("oci");
    let read_json = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(src.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("index.json")).unwrap()).unwrap();
    let mut manifest = read_json(index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read_json(manifest["config"]["digest"].as_str().unwrap());
    std::fs::create_dir_all(dst.join("blobs/sha256")).unwrap();
    std::fs::copy(src.join("oci-layout"), dst.join("oci-layout")).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        let hex = l["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        std::fs::hard_link(
            src.join("blobs/sha256").join(hex),
            dst.join("blobs/sha256").join(hex),
        )
        .unwrap();
    }
    let mut tar = Tar::default();
    for (path, data) in files {
        tar.file(path, data);
    }
    let layer = gzip(tar.finish());
    let layer_digest = write_blob(dst, &layer.bytes);
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": layer.media_type, "digest": layer_digest, "size": layer.bytes.len()
        }));
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(layer.diff_id.clone().into());
    let config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = write_blob(dst, &config).into();
    manifest["config"]["size"] = config.len().into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let digest = write_blob(dst, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}
        }]
    });
    std::fs::write(dst.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{}:latest", dst.display())
}
