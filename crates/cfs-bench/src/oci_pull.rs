//! `cfs-bench oci-pull`: `cfsctl oci pull` of a multi-layer gzip image from a
//! local registry, against a single-threaded `gzip -dc | sha256sum` of the
//! same layers measured in the same run.
//!
//! The image is built from a real tree (default `/usr`): its top-level
//! subdirectories (and those of `lib/` and `share/`) are spread over
//! `--layers` tar layers (GNU tar, PAX format, balanced by size) until
//! `--size` MB of tar are reached; each is compressed with `gzip -6` (the
//! level registries usually see), written as an OCI layout and pushed with
//! `skopeo copy` to a `docker-registry` on 127.0.0.1 (Debian packages
//! `docker-registry`, `skopeo`, `time`).
//!
//! Measured (every run after `sync`, data in the page cache):
//! - reference: `cat L1.gz … | gzip -dc | sha256sum` — one decompressing
//!   process, one hashing process (best of 3);
//! - `cfsctl oci pull docker://127.0.0.1:PORT/bench:1` into an empty
//!   SHA-512 repository (the `init` default), best of 2: wall, CPU, peak RSS
//!   and MB/s of uncompressed tar. Targets: throughput ≥ 1.5× the reference, peak RSS
//!   ≤ 200 MiB;
//! - the same pull again (everything present: manifest fetch and re-tag);
//! - a pull of the OCI layout directly (`oci:DIR:bench`) into an empty
//!   repository, for the cost of the registry transport.
//!
//! The timed pulls start at least 65 s after the benchmark (and a `sync`):
//! on ext4 without a journal, inodes freed in the last minute (e.g. a
//! previous run's scratch directory) are skipped one by one by the inode
//! allocator, which would dominate the measurement.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest as _, Sha256};

use crate::process::{
    Run, best_of, check_cfsctl, default_cfsctl, measure, run_ok, scratch_dir, verdict_max,
};
use crate::report::{line, verdict};

pub(crate) const USAGE: &str = "\
usage: cfs-bench oci-pull [--tree DIR] [--size MB] [--layers N] [--cfsctl PATH] [--scratch DIR]
  --tree DIR      source of the layer contents, a directory named usr (default /usr)
  --size MB       uncompressed image size to reach (default 600)
  --layers N      number of gzip layers (default 3)
  --cfsctl PATH   the binary to measure (default: cfsctl next to cfs-bench)
  --scratch DIR   where the image, the registry and repositories live
                  (default: under $TMPDIR or /var/tmp; must not be tmpfs)
";

const RATIO_TARGET: f64 = 1.5;
/// Runs of the reference; the fastest counts.
const REFERENCE_RUNS: usize = 3;
/// Pulls into empty repositories; the fastest counts (peak RSS over all).
const PULL_RUNS: usize = 2;
const RSS_TARGET_MIB: f64 = 200.0;

struct Options {
    tree: PathBuf,
    size_mb: u64,
    layers: usize,
    cfsctl: PathBuf,
    scratch: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        tree: PathBuf::from("/usr"),
        size_mb: 600,
        layers: 3,
        cfsctl: default_cfsctl(),
        scratch: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--tree" => o.tree = PathBuf::from(value()?),
            "--size" => o.size_mb = value()?.parse().context("--size")?,
            "--layers" => o.layers = value()?.parse().context("--layers")?,
            "--cfsctl" => o.cfsctl = PathBuf::from(value()?),
            "--scratch" => o.scratch = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    ensure!(o.layers >= 1, "--layers must be at least 1");
    ensure!(
        o.tree.file_name().is_some_and(|n| n == "usr"),
        "--tree must be a directory named usr (the image needs /usr)"
    );
    check_cfsctl(&o.cfsctl)?;
    Ok(o)
}

/// `du -sb` of a path.
fn du(path: &Path) -> u64 {
    Command::new("du")
        .arg("-sb")
        .arg(path)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0)
}

/// Members (relative to the tree) spread over `n` layers, balanced by size,
/// until `target` bytes.
fn plan_layers(tree: &Path, n: usize, target: u64) -> Result<Vec<Vec<String>>> {
    let mut candidates = Vec::new();
    for entry in std::fs::read_dir(tree)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && (name == "lib" || name == "share") {
            for sub in std::fs::read_dir(entry.path())? {
                let sub = sub?;
                let rel = format!("{name}/{}", sub.file_name().to_string_lossy());
                candidates.push((du(&sub.path()), rel));
            }
        } else {
            candidates.push((du(&entry.path()), name));
        }
    }
    candidates.sort_by(|a, b| b.cmp(a));
    // Each layer gets about target / n bytes: members larger than that are
    // skipped, the rest go to the currently smallest layer until all are full.
    let per = target / n as u64;
    let mut layers: Vec<(u64, Vec<String>)> = vec![(0, Vec::new()); n];
    for (size, rel) in candidates {
        if size > per {
            continue;
        }
        let smallest = layers
            .iter_mut()
            .min_by_key(|(s, _)| *s)
            .context("no layers")?;
        if smallest.0 >= per {
            break;
        }
        smallest.0 += size;
        smallest.1.push(rel);
    }
    ensure!(
        layers.iter().all(|(_, m)| !m.is_empty()),
        "{} is too small for {n} layers",
        tree.display()
    );
    Ok(layers.into_iter().map(|(_, m)| m).collect())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Layer {
    tar_size: u64,
    gz: PathBuf,
    gz_size: u64,
    diff_id: String,
    digest: String,
}

/// Writes the tar and gzip files of every layer (gzip in parallel).
fn build_layers(o: &Options, dir: &Path) -> Result<Vec<Layer>> {
    let parent = o.tree.parent().context("tree has no parent")?;
    let plan = plan_layers(&o.tree, o.layers, o.size_mb * 1_000_000)?;
    let mut children: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    for (i, members) in plan.iter().enumerate() {
        let tar = dir.join(format!("layer{i}.tar"));
        let mut cmd = Command::new("tar");
        cmd.arg("-C")
            .arg(parent)
            .args(["--format=pax", "--warning=no-file-ignored", "-cf"])
            .arg(&tar)
            .args([
                "--no-recursion",
                "usr",
                "usr/lib",
                "usr/share",
                "--recursion",
            ]);
        for m in members {
            cmd.arg(format!("usr/{m}"));
        }
        // GNU tar exits 1 for files that changed while read; keep going.
        let status = cmd.status().context("running tar")?;
        ensure!(
            status.code().is_some_and(|c| c <= 1),
            "tar failed for layer {i}"
        );
        let gz = dir.join(format!("layer{i}.tar.gz"));
        let out = std::fs::File::create(&gz)?;
        let child = Command::new("gzip")
            .args(["-6", "-c"])
            .arg(&tar)
            .stdout(out)
            .spawn()
            .context("running gzip")?;
        children.push((child, tar, gz));
    }
    let mut layers = Vec::new();
    for (mut child, tar, gz) in children {
        ensure!(child.wait()?.success(), "gzip failed");
        layers.push(Layer {
            tar_size: std::fs::metadata(&tar)?.len(),
            gz_size: std::fs::metadata(&gz)?.len(),
            diff_id: sha256_file(&tar)?,
            digest: sha256_file(&gz)?,
            gz,
        });
        std::fs::remove_file(&tar)?;
    }
    Ok(layers)
}

/// Writes an OCI layout with the layers, tagged `bench`.
fn write_layout(dir: &Path, layers: &[Layer]) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |digest: &str, from: Option<&Path>, bytes: &[u8]| -> Result<()> {
        let path = blobs.join(digest.trim_start_matches("sha256:"));
        match from {
            Some(src) => std::fs::rename(src, &path)?,
            None => std::fs::write(&path, bytes)?,
        }
        Ok(())
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
    }))?;
    let config_digest = format!("sha256:{}", hex(&Sha256::digest(&config)));
    put(&config_digest, None, &config)?;
    let mut descs = Vec::new();
    for l in layers {
        put(&l.digest, Some(&l.gz), &[])?;
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": l.digest,
            "size": l.gz_size,
        }));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descs,
    }))?;
    let manifest_digest = format!("sha256:{}", hex(&Sha256::digest(&manifest)));
    put(&manifest_digest, None, &manifest)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }],
        }))?,
    )?;
    Ok(())
}

/// A `docker-registry` on 127.0.0.1, killed on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Result<Registry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(dir)?;
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: true }} }}\n\
                 storage:\n  filesystem: {{ rootdirectory: {} }}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        let reg = Registry { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                start.elapsed() < Duration::from_secs(15),
                "docker-registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reg)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn describe(run: &Run, bytes: u64, cores: usize) -> String {
    format!(
        "{:.2} s, {:.0} MB/s (CPU {:.2} s, {:.0}% of {cores} cores, peak RSS {:.1} MiB)",
        run.wall,
        bytes as f64 / 1e6 / run.wall,
        run.cpu,
        100.0 * run.cpu / run.wall / cores as f64,
        run.max_rss_kib as f64 / 1024.0
    )
}

fn new_repo(cfsctl: &Path, path: &Path) -> Result<()> {
    run_ok(
        Command::new(cfsctl)
            .arg("--repo")
            .arg(path)
            .args(["init", "--insecure"])
            .arg(path),
    )
    .map(drop)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let base = scratch_dir(o.scratch.as_deref())?;
    let scratch = base.path();
    let started = Instant::now();
    let cores = cfs_core::verity::default_threads();
    let layout = scratch.join("layout");
    std::fs::create_dir_all(&layout)?;
    let t = Instant::now();
    let layers = build_layers(&o, scratch)?;
    let tar_total: u64 = layers.iter().map(|l| l.tar_size).sum();
    let gz_total: u64 = layers.iter().map(|l| l.gz_size).sum();
    line("binary", o.cfsctl.display());
    line(
        "image",
        format!(
            "{} gzip layers from {}: {:.1} MB tar, {:.1} MB gzip (built in {:.0} s)",
            layers.len(),
            o.tree.display(),
            tar_total as f64 / 1e6,
            gz_total as f64 / 1e6,
            t.elapsed().as_secs_f64()
        ),
    );
    for (i, l) in layers.iter().enumerate() {
        line(
            &format!("  layer {i}"),
            format!(
                "{:.1} MB tar, {:.1} MB gzip",
                l.tar_size as f64 / 1e6,
                l.gz_size as f64 / 1e6
            ),
        );
    }

    // The reference reads the gzip files before they move into the layout.
    let gz_paths: Vec<PathBuf> = layers.iter().map(|l| l.gz.clone()).collect();
    run_ok(&mut Command::new("sync"))?;
    let mut cmd: Vec<&std::ffi::OsStr> = vec![
        "sh".as_ref(),
        "-c".as_ref(),
        "cat \"$@\" | gzip -dc | sha256sum >/dev/null".as_ref(),
        "sh".as_ref(),
    ];
    cmd.extend(gz_paths.iter().map(|p| p.as_os_str()));
    let (reference, _) = best_of(REFERENCE_RUNS, || measure(&cmd, scratch))?;
    let ref_mbs = tar_total as f64 / 1e6 / reference.wall;
    line(
        &format!("reference: gzip -dc | sha256sum (best of {REFERENCE_RUNS})"),
        format!("{:.2} s, {ref_mbs:.0} MB/s of tar", reference.wall),
    );

    write_layout(&layout, &layers)?;
    let registry = Registry::start(&scratch.join("registry"))?;
    let reference_name = format!("docker://127.0.0.1:{}/bench:1", registry.port);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:bench", layout.display()))
            .arg(&reference_name),
    )?;

    // ext4 without a journal skips inodes freed in the last 60 s (360 s
    // while their inode table block is dirty) one by one when allocating: a
    // pull right after a large removal (a previous run's scratch directory)
    // measures that, not cfs. Sync, and start no earlier than 65 s after
    // this benchmark began.
    run_ok(&mut Command::new("sync"))?;
    let settle = Duration::from_secs(65).saturating_sub(started.elapsed());
    line(
        "settling (recently freed inodes)",
        format!("{:.0} s", settle.as_secs_f64()),
    );
    std::thread::sleep(settle);
    let cfsctl = o.cfsctl.as_os_str();
    // Separate repositories, removed only at the end: on ext4 without a
    // journal, inodes freed in the last ~30 s are skipped by the allocator at
    // a high cost, which would penalise a run that follows a removal.
    let pull = |repo: &Path, source: &str| -> Result<Run> {
        run_ok(&mut Command::new("sync"))?;
        measure(
            &[
                cfsctl,
                "--repo".as_ref(),
                repo.as_os_str(),
                "oci".as_ref(),
                "pull".as_ref(),
                source.as_ref(),
                "bench".as_ref(),
            ],
            scratch,
        )
    };
    let mut n = 0;
    let (first, peak) = best_of(PULL_RUNS, || {
        n += 1;
        let repo = scratch.join(format!("repo-registry-{n}"));
        new_repo(&o.cfsctl, &repo)?;
        pull(&repo, &reference_name)
    })?;
    let repo = scratch.join(format!("repo-registry-{n}"));
    let mbs = tar_total as f64 / 1e6 / first.wall;
    let ratio = mbs / ref_mbs;
    line(
        &format!("cfsctl oci pull (registry, empty repo, best of {PULL_RUNS})"),
        describe(&first, tar_total, cores),
    );
    let again = pull(&repo, &reference_name)?;
    line(
        "cfsctl oci pull again (all present)",
        format!("{:.2} s", again.wall),
    );
    let repo = scratch.join("repo-layout");
    new_repo(&o.cfsctl, &repo)?;
    let local = pull(&repo, &format!("oci:{}:bench", layout.display()))?;
    line(
        "cfsctl oci pull (oci: layout, empty repo)",
        describe(&local, tar_total, cores),
    );
    drop(registry);

    let rss = peak.max(local.max_rss_kib) as f64 / 1024.0;
    line(
        "throughput vs reference",
        format!(
            "{ratio:.2}x (target >= {RATIO_TARGET}x): {}",
            verdict(ratio, RATIO_TARGET)
        ),
    );
    line(
        "peak RSS",
        format!(
            "{rss:.1} MiB (target <= {RSS_TARGET_MIB} MiB): {}",
            verdict_max(rss, RSS_TARGET_MIB)
        ),
    );
    Ok(())
}
