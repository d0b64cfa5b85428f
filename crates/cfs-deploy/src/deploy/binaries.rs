//! Boot binaries on the boot directory (boot-deploy.md §5.3, §8):
//! kernel directories `EFI/Linux/bootc_composefs-<id>/{vmlinuz,initrd}` and
//! UKIs `EFI/Linux/bootc/bootc_composefs-<id>.efi` (with their
//! `.efi.extra.d/` addons).
//!
//! A kernel and initramfs byte-identical to an installed pair (same boot
//! digest) reuse that directory, whoever it was installed for (FAT has no
//! links): an entry's artifact is the directory its `linux` line names, not
//! its deployment id. New binaries are written into a temporary directory
//! (`.tmp-…`) and renamed into place, so a crash never leaves a half-written
//! kernel under a live name.
//!
//! gc removes every binary no entry (live or staged) names, and temporary
//! leftovers; if the booted deployment's own binary is among them it stops
//! with "inconsistent state" and removes nothing (bootc #1808: `/boot`
//! filling up; never delete what the machine booted from).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::Layout;
use super::entries::{self, ARTIFACT_PREFIX, Boots};

/// SHA-256 (hex) of the files' contents one after the other.
pub fn digest_files(paths: &[&Path]) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let mut f = File::open(p)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The installed kernel directories (`bootc_composefs-*`).
pub fn kernel_dirs(layout: &Layout) -> io::Result<Vec<String>> {
    list(&layout.boot.join("EFI/Linux"), |name, is_dir| {
        is_dir && name.starts_with(ARTIFACT_PREFIX)
    })
}

fn list(dir: &Path, keep: impl Fn(&str, bool) -> bool) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let items = match std::fs::read_dir(dir) {
        Ok(i) => i,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for item in items {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        if keep(&name, item.file_type()?.is_dir()) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Installs a kernel and initramfs for deployment `id` whose boot digest is
/// `digest`; reuses an installed directory with the same contents. Returns
/// the directory name (`bootc_composefs-<id or other id>`).
pub fn install_kernel(
    layout: &Layout,
    id: &str,
    digest: &str,
    vmlinuz: &mut dyn Read,
    initrd: &mut dyn Read,
) -> io::Result<String> {
    let linux = layout.boot.join("EFI/Linux");
    for name in kernel_dirs(layout)? {
        let dir = linux.join(&name);
        let (k, i) = (dir.join("vmlinuz"), dir.join("initrd"));
        if k.is_file() && i.is_file() && digest_files(&[&k, &i])? == digest {
            return Ok(name);
        }
    }
    std::fs::create_dir_all(&linux)?;
    let tmp = linux.join(format!(".tmp-{ARTIFACT_PREFIX}{id}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp)?;
    let write = |name: &str, src: &mut dyn Read| -> io::Result<()> {
        let mut f = File::create(tmp.join(name))?;
        io::copy(src, &mut f)?;
        f.flush()?;
        f.sync_all()
    };
    write("vmlinuz", vmlinuz)?;
    write("initrd", initrd)?;
    File::open(&tmp)?.sync_all()?;
    let name = format!("{ARTIFACT_PREFIX}{id}");
    let target = linux.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&tmp, &target)?;
    File::open(&linux)?.sync_all()?;
    Ok(name)
}

/// What [`gc`] removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinaryGc {
    /// Paths removed (with `dry_run`: that would be removed).
    pub removed: Vec<PathBuf>,
}

/// Removes every boot binary that no live or staged entry names, and
/// temporary leftovers. `booted` is the booted deployment's id.
pub fn gc(layout: &Layout, booted: Option<&str>, dry_run: bool) -> io::Result<BinaryGc> {
    let (live, p1) = entries::read_dir(&layout.entries())?;
    let (staged, p2) = entries::read_dir(&layout.staged_entries())?;
    if let Some(p) = p1.iter().chain(&p2).next() {
        // An owned entry we cannot read may name a binary: keep everything.
        return Err(io::Error::other(format!(
            "not collecting boot binaries: an entry cannot be read ({p})"
        )));
    }
    let mut used = HashSet::new();
    let mut booted_artifact = None;
    for e in live.iter().chain(&staged) {
        let artifact = match &e.boots {
            Some(Boots::Kernel(d)) => d.clone(),
            Some(Boots::Uki(f)) => f.clone(),
            None => continue,
        };
        if booted.is_some() && e.id.as_deref() == booted {
            booted_artifact = Some(artifact.clone());
        }
        used.insert(artifact);
    }
    let linux = layout.boot.join("EFI/Linux");
    let ukis = linux.join("bootc");
    let mut candidates: Vec<PathBuf> = Vec::new();
    for name in list(&linux, |n, is_dir| {
        is_dir && (n.starts_with(ARTIFACT_PREFIX) || n.starts_with(".tmp-"))
    })? {
        if !used.contains(&name) {
            candidates.push(linux.join(name));
        }
    }
    for name in list(&ukis, |n, _| {
        n.starts_with(ARTIFACT_PREFIX) && n.ends_with(".efi")
    })? {
        if !used.contains(&name) {
            candidates.push(ukis.join(format!("{name}.extra.d")));
            candidates.push(ukis.join(name));
        }
    }
    if let (Some(id), None) = (booted, &booted_artifact) {
        return Err(io::Error::other(format!(
            "inconsistent state: the booted deployment {id} has no boot entry; nothing removed"
        )));
    }
    if let Some(a) = &booted_artifact
        && candidates
            .iter()
            .any(|c| c.file_name().is_some_and(|n| n == a.as_str()))
    {
        return Err(io::Error::other(format!(
            "inconsistent state: the booted deployment's boot binary {a} would be removed; nothing removed"
        )));
    }
    let mut out = BinaryGc::default();
    for c in candidates {
        if !c.exists() {
            continue;
        }
        if !dry_run {
            if c.is_dir() {
                std::fs::remove_dir_all(&c)?;
            } else {
                std::fs::remove_file(&c)?;
            }
        }
        out.removed.push(c);
    }
    if !dry_run && !out.removed.is_empty() {
        for d in [&linux, &ukis] {
            if d.exists() {
                File::open(d)?.sync_all()?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
