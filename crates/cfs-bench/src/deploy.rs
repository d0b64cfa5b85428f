//! `cfs-bench deploy`: the deployment commands on a real Debian OS image —
//! `system install to-disk`, `install to-filesystem`, an upgrade (`switch`
//! to a second image), `finalize`, and `gc` after deleting the old
//! deployment: wall time, CPU time and peak RSS of each (GNU `time`).
//!
//! Reference, in the same run: `gzip -dc | sha256sum` of each image's layer
//! blobs (one read of the content, decompressed and hashed once) — the work
//! any installer of that image does at the least; the install and upgrade
//! lines show their ratio to it.
//!
//! The images default to the test suite's Debian 12 images `plain` and
//! `selinux` (`tests/os/build-debian-os.sh`, cached under
//! `${CFS_OS_CACHE:-/var/tmp/cfs-os-cache}`; building needs root and
//! `mmdebstrap`). `--image`/`--image2` take OCI layout directories instead.
//! install to-disk needs root, `sfdisk`, `mkfs.vfat`, `mkfs.ext4`, `mtools`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process::{Run, check_cfsctl, default_cfsctl, measure, run_ok, scratch_dir};
use crate::report::line;

pub(crate) const USAGE: &str = "\
usage: cfs-bench deploy [--image DIR] [--image2 DIR] [--cfsctl PATH] [--scratch DIR]
  --image DIR     OCI layout (tag latest) to install (default: the Debian test image `plain`)
  --image2 DIR    OCI layout (tag latest) to upgrade to (default: the Debian test image `selinux`)
  --cfsctl PATH   the binary to measure (default: cfsctl next to cfs-bench)
  --scratch DIR   where the disk image and the root directory live
                  (default: under $TMPDIR or /var/tmp)
";

struct Options {
    image: Option<PathBuf>,
    image2: Option<PathBuf>,
    cfsctl: PathBuf,
    scratch: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        image: None,
        image2: None,
        cfsctl: default_cfsctl(),
        scratch: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--image" => o.image = Some(PathBuf::from(value()?)),
            "--image2" => o.image2 = Some(PathBuf::from(value()?)),
            "--cfsctl" => o.cfsctl = PathBuf::from(value()?),
            "--scratch" => o.scratch = Some(PathBuf::from(value()?)),
            _ => bail!("unknown option {a:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// The OCI layout of the Debian test image `variant`, built if needed.
fn debian_image(variant: &str) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/os/build-debian-os.sh");
    let out = run_ok(Command::new("bash").arg(&script).arg(variant))
        .with_context(|| format!("building the Debian test image {variant} (needs root and mmdebstrap; or pass --image/--image2)"))?;
    let text = String::from_utf8_lossy(&out);
    let dir = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the image build printed no directory")?;
    Ok(PathBuf::from(dir.trim()).join("oci"))
}

/// The layer blobs of the `latest` image of an OCI layout, and their total size.
fn layer_blobs(layout: &Path) -> Result<(Vec<PathBuf>, u64)> {
    let blob = |digest: &str| -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("unexpected digest {digest}"))?;
        Ok(layout.join("blobs/sha256").join(hex))
    };
    let json = |p: &Path| -> Result<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).with_context(|| format!("{}", p.display()))?)
            .with_context(|| format!("{}", p.display()))
    };
    let index = json(&layout.join("index.json"))?;
    let manifest = json(&blob(
        index["manifests"][0]["digest"]
            .as_str()
            .context("index.json: no manifest")?,
    )?)?;
    let mut out = Vec::new();
    let mut size = 0;
    for l in manifest["layers"]
        .as_array()
        .context("manifest: no layers")?
    {
        let p = blob(l["digest"].as_str().context("layer without digest")?)?;
        size += std::fs::metadata(&p)?.len();
        out.push(p);
    }
    Ok((out, size))
}

/// `cat BLOBS | gzip -dc | sha256sum`, timed.
fn reference(blobs: &[PathBuf], tmp: &Path) -> Result<Run> {
    let script = tmp.join("reference.sh");
    let mut text = String::from("set -euo pipefail\ncat");
    for b in blobs {
        text.push_str(&format!(" '{}'", b.display()));
    }
    text.push_str(" | gzip -dc | sha256sum >/dev/null\n");
    std::fs::write(&script, text)?;
    measure(&["bash".as_ref(), script.as_os_str()], tmp)
}

fn show(label: &str, r: &Run, reference: Option<&Run>) {
    let ratio = reference.map_or(String::new(), |b| {
        format!(", {:.2}× the reference", r.wall / b.wall)
    });
    line(
        label,
        format!(
            "{:.2} s wall, {:.2} s CPU, peak RSS {:.0} MiB{ratio}",
            r.wall,
            r.cpu,
            r.max_rss_kib as f64 / 1024.0
        ),
    );
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    check_cfsctl(&o.cfsctl)?;
    let image = match o.image {
        Some(p) => p,
        None => debian_image("plain")?,
    };
    let image2 = match o.image2 {
        Some(p) => p,
        None => debian_image("selinux")?,
    };
    let tmp = scratch_dir(o.scratch.as_deref())?;
    let t = tmp.path();
    let (blobs1, size1) = layer_blobs(&image)?;
    let (blobs2, size2) = layer_blobs(&image2)?;
    let src = |p: &Path| format!("oci:{}:latest", p.display());
    line(
        "image",
        format!(
            "{} ({} layers, {:.0} MB compressed)",
            image.display(),
            blobs1.len(),
            size1 as f64 / 1e6
        ),
    );
    line(
        "upgrade image",
        format!(
            "{} ({} layers, {:.0} MB compressed)",
            image2.display(),
            blobs2.len(),
            size2 as f64 / 1e6
        ),
    );
    let _ = Command::new("sync").status();
    let ref1 = reference(&blobs1, t)?;
    let ref2 = reference(&blobs2, t)?;
    show("reference: gzip -dc | sha256sum (image)", &ref1, None);
    show("reference: gzip -dc | sha256sum (upgrade)", &ref2, None);

    let cfs = |args: &[&str]| -> Result<Run> {
        let mut v: Vec<&std::ffi::OsStr> = vec![o.cfsctl.as_os_str()];
        v.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        measure(&v, t)
    };
    // install to-disk (root, partitioning tools).
    // /proc/self belongs to the effective user.
    let root_user = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0;
    if root_user {
        let disk = t.join("disk.raw");
        let r = cfs(&[
            "system",
            "install",
            "to-disk",
            "--size",
            "4G",
            "--allow-missing-verity",
            &src(&image),
            disk.to_str().context("scratch path")?,
        ])?;
        show("system install to-disk", &r, Some(&ref1));
        std::fs::remove_file(&disk)?;
    } else {
        line("system install to-disk", "skipped (needs root)");
    }
    // The rest on a directory.
    let (root, esp, run_dir) = (t.join("root"), t.join("esp"), t.join("run"));
    std::fs::create_dir_all(&root)?;
    let (r, e, rn) = (
        root.to_str().context("scratch path")?,
        esp.to_str().context("scratch path")?,
        run_dir.to_str().context("scratch path")?,
    );
    let install = cfs(&[
        "system",
        "install",
        "to-filesystem",
        "--allow-missing-verity",
        "--boot-dir",
        e,
        &src(&image),
        r,
    ])?;
    show("system install to-filesystem", &install, Some(&ref1));
    let a = only_state_dir(&root)?;
    let sys = |cmd: &[&str], booted: &str| -> Result<Run> {
        let mut v = vec!["system"];
        v.extend(cmd);
        v.extend([
            "--root",
            r,
            "--boot-dir",
            e,
            "--run-dir",
            rn,
            "--booted",
            booted,
        ]);
        cfs(&v)
    };
    show(
        "system switch (upgrade to the second image)",
        &sys(&["switch", &src(&image2)], &a)?,
        Some(&ref2),
    );
    show("system finalize", &sys(&["finalize"], &a)?, None);
    let b = std::fs::read_dir(root.join("state/deploy"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| *n != a)
        .context("no second deployment")?;
    show(
        "system status --json",
        &sys(&["status", "--json"], &b)?,
        None,
    );
    run_ok(Command::new(&o.cfsctl).args([
        "system",
        "delete-deployment",
        &a,
        "--root",
        r,
        "--boot-dir",
        e,
        "--run-dir",
        rn,
        "--booted",
        &b,
    ]))?;
    show(
        "system gc (old deployment deleted)",
        &sys(&["gc"], &b)?,
        None,
    );
    Ok(())
}

/// The single deployment id under `root/state/deploy`.
fn only_state_dir(root: &Path) -> Result<String> {
    let names: Vec<String> = std::fs::read_dir(root.join("state/deploy"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one deployment, found {names:?}"),
    }
}
