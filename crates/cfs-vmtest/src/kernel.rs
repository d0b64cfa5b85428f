//! A Debian 6.12 kernel for the guest, fetched with a private apt
//! configuration and unpacked into the cache — never installed on the host.
//!
//! Cache layout (under [`crate::cache::root`]):
//!
//! ```text
//! kernel/
//!   apt/sources.list        bookworm-backports + bookworm-security, on the host's mirrors
//!   apt/lists/, apt/cache/  apt's private state (Dir::State::Lists, Dir::Cache)
//!   debs/<package>.deb      the downloaded package
//!   <release>/              dpkg-deb -x of it, plus depmod's modules.dep
//!   current                 "<release>\n<package version>\n" of the kernel in use
//! ```
//!
//! The package index is refreshed when `current` is older than
//! [`REFRESH_AFTER`] and the newest `linux-image-6.12.*-amd64-unsigned` it
//! lists is used (old point releases leave the mirror, so no version is
//! hard-coded). Without network, a cached kernel is used as it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::cache;
use crate::process::{output_of, run_checked};

/// How old the cached choice may get before the index is consulted again.
const REFRESH_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// The package family: Debian's unsigned 6.12 kernels for amd64.
const PACKAGE_PATTERN: &str = r"^linux-image-6\.12\.[0-9]+\+deb12[0-9.]*-amd64-unsigned$";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

/// An unpacked kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.12.118+deb12-amd64`.
    pub release: String,
    /// The Debian package version, e.g. `6.12.118-1~deb12u1`.
    pub package_version: String,
    /// The unpacked package root (`boot/`, `lib/modules/`).
    pub root: PathBuf,
}

impl Kernel {
    /// The kernel image (`boot/vmlinuz-<release>`).
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }

    /// `lib/modules/<release>`.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// True if the kernel's config sets `option` (e.g. `CONFIG_FS_VERITY`) to
    /// `y` or `m`.
    pub fn config_has(&self, option: &str) -> Result<bool> {
        let path = self
            .root
            .join("boot")
            .join(format!("config-{}", self.release));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(text
            .lines()
            .any(|l| l == format!("{option}=y") || l == format!("{option}=m")))
    }
}

/// The newest Debian 6.12 kernel, from the cache or fetched into it.
pub fn debian_6_12() -> Result<Kernel> {
    let dir = cache::root()?.join("kernel");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = cache::Lock::exclusive(&dir)?;
    let cached = read_current(&dir);
    if let Some(k) = &cached
        && !stale(&dir.join("current"))
    {
        return Ok(k.clone());
    }
    match fetch_newest(&dir) {
        Ok(k) => Ok(k),
        Err(e) => match cached {
            Some(k) => {
                eprintln!(
                    "cfs-vmtest: could not refresh the kernel ({e:#}); using cached {}",
                    k.release
                );
                Ok(k)
            }
            None => Err(e.context("fetching a Debian 6.12 kernel (nothing cached yet)")),
        },
    }
}

fn stale(path: &Path) -> bool {
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    match modified {
        Ok(t) => SystemTime::now()
            .duration_since(t)
            .is_ok_and(|age| age > REFRESH_AFTER),
        Err(_) => true,
    }
}

fn read_current(dir: &Path) -> Option<Kernel> {
    let text = std::fs::read_to_string(dir.join("current")).ok()?;
    let mut lines = text.lines();
    let release = lines.next()?.to_owned();
    let package_version = lines.next()?.to_owned();
    let kernel = Kernel {
        root: dir.join(&release),
        release,
        package_version,
    };
    (kernel.vmlinuz().is_file() && kernel.modules_dir().join("modules.dep").is_file())
        .then_some(kernel)
}

/// Apt, confined to `dir/apt`.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn new(dir: &Path) -> Result<Self> {
        let apt = dir.join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(apt.join(sub))
                .with_context(|| format!("creating {}", apt.join(sub).display()))?;
        }
        let (mirror, security) = host_mirrors();
        let sources = apt.join("sources.list");
        std::fs::write(
            &sources,
            format!(
                "deb {mirror} bookworm-backports main\ndeb {security} bookworm-security main\n"
            ),
        )
        .with_context(|| format!("writing {}", sources.display()))?;
        let p = |p: &Path| p.display().to_string();
        let options = [
            format!("Dir::Etc::SourceList={}", p(&sources)),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={}", p(&apt.join("lists"))),
            format!("Dir::Cache={}", p(&apt.join("cache"))),
            "Debug::NoLocking=1".to_owned(),
            "APT::Sandbox::User=root".to_owned(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect();
        Ok(Apt { options })
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.args(&self.options);
        c
    }
}

/// The Debian mirrors the host's apt uses (so the guest kernel comes from
/// where the host's packages come from), with deb.debian.org as fallback.
/// `CFS_VM_DEBIAN_MIRROR` / `CFS_VM_DEBIAN_SECURITY_MIRROR` override them.
fn host_mirrors() -> (String, String) {
    let mut uris = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("URIs:") {
                uris.extend(rest.split_whitespace().map(str::to_owned));
            } else if let Some(rest) = line.strip_prefix("deb ") {
                uris.extend(
                    rest.split_whitespace()
                        .find(|w| w.contains("://"))
                        .map(str::to_owned),
                );
            }
        }
    }
    let pick = |var: &str, suffix: &str, default: &str| {
        std::env::var(var).ok().unwrap_or_else(|| {
            uris.iter()
                .map(|u| u.trim_end_matches('/'))
                .find(|u| u.ends_with(suffix))
                .unwrap_or(default)
                .to_owned()
        })
    };
    (
        pick("CFS_VM_DEBIAN_MIRROR", "/debian", DEFAULT_MIRROR),
        pick(
            "CFS_VM_DEBIAN_SECURITY_MIRROR",
            "/debian-security",
            DEFAULT_SECURITY_MIRROR,
        ),
    )
}

fn fetch_newest(dir: &Path) -> Result<Kernel> {
    let apt = Apt::new(dir)?;
    run_checked(apt.command("apt-get").arg("-q").arg("update"))
        .context("apt-get update (private configuration)")?;
    let listing =
        output_of(
            apt.command("apt-cache")
                .args(["--names-only", "search", PACKAGE_PATTERN]),
        )?;
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split(" - ").next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        bail!("the package index lists no package matching {PACKAGE_PATTERN}");
    }
    // One `apt-cache show` for all of them: a stanza per package, its
    // `Package:` line before its `Version:` line.
    let show = output_of(
        apt.command("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(&names),
    )?;
    let mut best: Option<(String, String)> = None;
    let mut package = None;
    for line in show.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            package = Some(p.to_owned());
        } else if let Some(version) = line.strip_prefix("Version: ")
            && let Some(name) = package.take()
        {
            let newer = match &best {
                None => true,
                Some((_, v)) => Command::new("dpkg")
                    .args(["--compare-versions", version, "gt", v])
                    .status()
                    .context("running dpkg --compare-versions")?
                    .success(),
            };
            if newer {
                best = Some((name, version.to_owned()));
            }
        }
    }
    let (package, version) = best.context("no version found for any 6.12 kernel package")?;
    if let Some(k) = read_current(dir)
        && k.package_version == version
    {
        touch(&dir.join("current"))?;
        return Ok(k);
    }
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs)?;
    run_checked(
        apt.command("apt-get")
            .args(["-q", "download", &package])
            .current_dir(&debs),
    )
    .with_context(|| format!("apt-get download {package}"))?;
    let deb = find_deb(&debs, &package)?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(dir)
        .context("creating a staging directory")?;
    run_checked(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(staging.path()),
    )
    .with_context(|| format!("unpacking {}", deb.display()))?;
    let release = single_entry(&staging.path().join("lib/modules"))?;
    run_checked(
        Command::new("depmod")
            .arg("-b")
            .arg(staging.path())
            .arg(&release),
    )
    .context("depmod on the unpacked kernel")?;
    let root = dir.join(&release);
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    std::fs::rename(staging.keep(), &root)
        .with_context(|| format!("moving the unpacked kernel to {}", root.display()))?;
    write_current(dir, &release, &version)?;
    // Older kernels and packages are no longer needed.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("6.") && name != release.as_str() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    for entry in std::fs::read_dir(&debs)?.flatten() {
        if entry.path() != deb {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(Kernel {
        release,
        package_version: version,
        root,
    })
}

fn find_deb(debs: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(debs)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                && p.extension().is_some_and(|e| e == "deb")
        })
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop().with_context(|| {
        format!(
            "apt-get download left no {prefix}*.deb in {}",
            debs.display()
        )
    })
}

fn single_entry(dir: &Path) -> Result<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected exactly one kernel release in {}, found {names:?}",
            dir.display()
        ),
    }
}

fn write_current(dir: &Path, release: &str, version: &str) -> Result<()> {
    let tmp = dir.join(".current.tmp");
    std::fs::write(&tmp, format!("{release}\n{version}\n"))?;
    std::fs::rename(&tmp, dir.join("current"))?;
    Ok(())
}

fn touch(path: &Path) -> Result<()> {
    let f = std::fs::File::options().append(true).open(path)?;
    f.set_modified(SystemTime::now())?;
    Ok(())
}
