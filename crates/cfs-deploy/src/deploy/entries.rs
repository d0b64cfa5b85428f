//! The boot entries of deployments (boot-deploy.md §5.3, §7): Type 1 files
//! in `loader/entries/` (the live set) and `loader/entries.staged/` (a set
//! waiting for finalize), as bootc names them:
//!
//! - file name `bootc_<os_id, '-' → '_'>-<version>-<prio>.conf`, `prio` 1 for
//!   the primary (default) entry and 0 for the others; with boot counting
//!   (systemd's Automatic Boot Assessment) `…+<left>[-<done>].conf`;
//! - the deployment of a kernel entry is the digest of its `composefs=` /
//!   `composefs.digest=` argument; of a UKI entry, the UKI's file name
//!   `bootc_composefs-<id>.efi`;
//! - the artifact (what gc keeps) is the kernel directory
//!   `EFI/Linux/bootc_composefs-<id>` an entry's `linux` names — possibly
//!   another deployment's, when the kernels are byte-identical — or the UKI.
//!
//! Entries whose file name does not start with `bootc_` belong to someone
//! else (`fwupd.conf`, a distribution's own) and are ignored, never fatal
//! (bootc #2228). An owned entry that cannot be read is reported with its
//! name, not fatal for the others.

use std::cmp::Ordering;
use std::path::Path;

use crate::bls::Entry;
use crate::cmdline::candidates;

/// Prefix of the entry files cfs (and bootc) own.
pub const ENTRY_PREFIX: &str = "bootc_";
/// Prefix of kernel directories and UKIs.
pub const ARTIFACT_PREFIX: &str = "bootc_composefs-";
/// Largest number of entry files read from one directory.
pub const MAX_ENTRIES: usize = 4096;

/// What an entry boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boots {
    /// A kernel directory (`bootc_composefs-<id>`, the artifact name).
    Kernel(String),
    /// A UKI file (`bootc_composefs-<id>.efi`).
    Uki(String),
}

/// One owned boot entry.
#[derive(Debug, Clone)]
pub struct BootEntry {
    /// The file name (`bootc_debian-12-1+3.conf`).
    pub file_name: String,
    /// The name without the counter and `.conf` (`bootc_debian-12-1`).
    pub base_name: String,
    /// Boot counting: (tries left, tries done), when the name has a counter.
    pub tries: Option<(u32, u32)>,
    /// The entry.
    pub entry: Entry,
    /// The deployment id (hex), if the entry names one.
    pub id: Option<String>,
    /// What it boots.
    pub boots: Option<Boots>,
}

/// Splits `name+LEFT[-DONE].conf` → (`name`, Some((LEFT, DONE))); a name
/// without a valid counter → (`name`, None). `None` if not `*.conf`.
pub fn split_file_name(file_name: &str) -> Option<(&str, Option<(u32, u32)>)> {
    let stem = file_name.strip_suffix(".conf")?;
    if let Some((base, counter)) = stem.rsplit_once('+') {
        let (left, done) = counter.split_once('-').unwrap_or((counter, "0"));
        if let (Ok(l), Ok(d)) = (left.parse::<u32>(), done.parse::<u32>())
            && !base.is_empty()
            && left.bytes().all(|b| b.is_ascii_digit())
        {
            return Some((base, Some((l, d))));
        }
    }
    Some((stem, None))
}

/// The file name of an entry with counter `tries`.
pub fn file_name_with(base: &str, tries: Option<(u32, u32)>) -> String {
    match tries {
        None => format!("{base}.conf"),
        Some((left, 0)) => format!("{base}+{left}.conf"),
        Some((left, done)) => format!("{base}+{left}-{done}.conf"),
    }
}

/// The deployment id (hex) of an entry and what it boots.
pub fn deployment_of(entry: &Entry) -> (Option<String>, Option<Boots>) {
    let uki = entry.get("uki").or_else(|| entry.get("efi"));
    if let Some(path) = uki {
        let file = path.rsplit('/').next().unwrap_or(path);
        let id = file
            .strip_prefix(ARTIFACT_PREFIX)
            .and_then(|f| f.strip_suffix(".efi"))
            .map(str::to_owned);
        return (id, Some(Boots::Uki(file.to_owned())));
    }
    let id = entry.get_all("options").find_map(|opts| {
        candidates(opts)
            .into_iter()
            .find_map(Result::ok)
            .map(|a| a.digest.to_hex())
    });
    let boots = entry.get("linux").and_then(|linux| {
        let mut parts = linux.rsplit('/');
        let _file = parts.next()?;
        parts
            .next()
            .filter(|d| d.starts_with(ARTIFACT_PREFIX))
            .map(|d| Boots::Kernel(d.to_owned()))
    });
    (id, boots)
}

/// The owned entries of `dir` (missing directory: none) and the problems
/// of owned files that could not be read.
pub fn read_dir(dir: &Path) -> std::io::Result<(Vec<BootEntry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((entries, problems)),
        Err(e) => return Err(e),
    };
    for item in list {
        let item = item?;
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !name.starts_with(ENTRY_PREFIX) {
            continue;
        }
        let Some((base, tries)) = split_file_name(&name) else {
            continue;
        };
        if entries.len() >= MAX_ENTRIES {
            problems.push(format!("more than {MAX_ENTRIES} entries; the rest ignored"));
            break;
        }
        let base = base.to_owned();
        let path = item.path();
        let text = match super::read_small_file(&path, crate::bls::MAX_ENTRY_LEN as u64) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match Entry::parse(&text) {
            Ok(entry) => {
                let (id, boots) = deployment_of(&entry);
                entries.push(BootEntry {
                    file_name: name,
                    base_name: base,
                    tries,
                    entry,
                    id,
                    boots,
                });
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    sort(&mut entries);
    Ok((entries, problems))
}

/// systemd-boot's menu order: `sort-key` ascending (entries without one
/// after those with), then `version` descending, then file name descending;
/// entries with no tries left go last.
pub fn sort(entries: &mut [BootEntry]) {
    entries.sort_by(|a, b| {
        let bad = |e: &BootEntry| matches!(e.tries, Some((0, _)));
        bad(a)
            .cmp(&bad(b))
            .then_with(
                || match (a.entry.get("sort-key"), b.entry.get("sort-key")) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                },
            )
            .then_with(|| {
                version_cmp(
                    b.entry.get("version").unwrap_or(""),
                    a.entry.get("version").unwrap_or(""),
                )
            })
            .then_with(|| version_cmp(&b.file_name, &a.file_name))
    });
}

/// A version comparison in the spirit of `strverscmp`/systemd's
/// `strverscmp_improved`: runs of digits compare numerically, other runs
/// byte-wise.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let n = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let m = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (trim_zeros(&x[..n]), trim_zeros(&y[..m]));
                let c = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
                if c != Ordering::Equal {
                    return c;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(p), Some(q)) => {
                if p != q {
                    return p.cmp(q);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let k = d.iter().take_while(|&&c| c == b'0').count();
    &d[k.min(d.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Entry {
        Entry::parse(text).unwrap()
    }

    #[test]
    fn file_names_and_counters() {
        assert_eq!(
            split_file_name("bootc_debian-12-1.conf"),
            Some(("bootc_debian-12-1", None))
        );
        assert_eq!(
            split_file_name("bootc_debian-12-1+3.conf"),
            Some(("bootc_debian-12-1", Some((3, 0))))
        );
        assert_eq!(
            split_file_name("bootc_debian-12-1+0-3.conf"),
            Some(("bootc_debian-12-1", Some((0, 3))))
        );
        assert_eq!(split_file_name("a+b.conf"), Some(("a+b", None)));
        assert_eq!(split_file_name("x.efi"), None);
        assert_eq!(file_name_with("n", Some((2, 1))), "n+2-1.conf");
        assert_eq!(file_name_with("n", Some((3, 0))), "n+3.conf");
        assert_eq!(file_name_with("n", None), "n.conf");
    }

    #[test]
    fn deployments_of_kernel_and_uki_entries() {
        let id = "ab".repeat(64);
        let k = entry(&format!(
            "title T\nversion 12\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\ninitrd /EFI/Linux/bootc_composefs-{id}/initrd\noptions root=UUID=x rw composefs={id}\n"
        ));
        assert_eq!(
            deployment_of(&k),
            (
                Some(id.clone()),
                Some(Boots::Kernel(format!("bootc_composefs-{id}")))
            )
        );
        let v1 = entry(&format!(
            "title T\nversion 12\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\noptions composefs.digest=v1-sha512-12:{id} rw\n"
        ));
        assert_eq!(deployment_of(&v1).0, Some(id.clone()));
        let u = entry(&format!(
            "title T\nversion 12\nefi /EFI/Linux/bootc/bootc_composefs-{id}.efi\n"
        ));
        assert_eq!(
            deployment_of(&u),
            (
                Some(id.clone()),
                Some(Boots::Uki(format!("bootc_composefs-{id}.efi")))
            )
        );
        let foreign = entry("title fw\nversion 1\nefi /EFI/fwupd/fwupdx64.efi\n");
        assert_eq!(deployment_of(&foreign).0, None);
    }

    #[test]
    fn foreign_and_broken_entries_do_not_stop_reading() {
        let dir = tempfile::tempdir().unwrap();
        let id = "cd".repeat(64);
        std::fs::write(dir.path().join("fwupd.conf"), "garbage without version\n").unwrap();
        std::fs::write(dir.path().join("bootc_broken-1-0.conf"), "title only\n").unwrap();
        std::fs::write(
            dir.path().join("bootc_debian-12-1.conf"),
            format!("title D\nversion 12\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\noptions composefs={id}\nsort-key bootc-debian-0\n"),
        )
        .unwrap();
        let (entries, problems) = read_dir(dir.path()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id.as_deref(), Some(id.as_str()));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("bootc_broken-1-0.conf"),
            "{problems:?}"
        );
        let (none, _) = read_dir(&dir.path().join("missing")).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn menu_order() {
        let mk = |name: &str, text: &str| BootEntry {
            file_name: name.into(),
            base_name: split_file_name(name).unwrap().0.into(),
            tries: split_file_name(name).unwrap().1,
            entry: entry(text),
            id: None,
            boots: None,
        };
        let mut list = vec![
            mk(
                "bootc_d-12-0.conf",
                "version 12\nlinux /a\nsort-key bootc-d-1\n",
            ),
            mk(
                "bootc_d-12-1+0-3.conf",
                "version 12\nlinux /b\nsort-key bootc-d-0\n",
            ),
            mk(
                "bootc_d-13-1.conf",
                "version 13\nlinux /c\nsort-key bootc-d-0\n",
            ),
            mk(
                "bootc_d-9-1.conf",
                "version 9\nlinux /d\nsort-key bootc-d-0\n",
            ),
        ];
        sort(&mut list);
        let names: Vec<&str> = list.iter().map(|e| e.file_name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "bootc_d-13-1.conf",
                "bootc_d-9-1.conf",
                "bootc_d-12-0.conf",
                "bootc_d-12-1+0-3.conf"
            ]
        );
        assert_eq!(version_cmp("6.12.10", "6.12.9"), Ordering::Greater);
        assert_eq!(version_cmp("007", "7"), Ordering::Equal);
        assert_eq!(version_cmp("12a", "12b"), Ordering::Less);
    }
}
