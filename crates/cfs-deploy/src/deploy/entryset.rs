//! Writing entry sets atomically, and rollback (boot-deploy.md §6.3–6.4).
//!
//! A new set of entries is written whole into `loader/entries.staged`
//! (through a temporary directory, every file and the directory fsynced,
//! then renamed), and made live by exchanging the two directories with
//! `renameat2(RENAME_EXCHANGE)`: at every instant `loader/entries` is either
//! the old set or the new one. The old set (now `entries.staged`) is then
//! removed. Entries we do not own in `loader/entries` are carried into every
//! new set unchanged.
//!
//! Rollback swaps the first two deployments of the menu (running it twice
//! restores the order) and keeps any further ones after them. Entry names
//! and sort keys are derived from the entries' own `sort-key` (`bootc-<os>-N`),
//! never a hard-coded os id (bootc's rollback renames every entry
//! `bootc_bootc-…`).

use std::fs::File;
use std::io::{self, Write};

use rustix::fs::{CWD, RenameFlags, renameat_with};

use super::Layout;
use super::entries::{self, BootEntry, ENTRY_PREFIX};
use crate::bls::Entry;

/// Writes `set` (file name, entry text) as `loader/<name>` (through a
/// temporary directory, files and directories fsynced), replacing an
/// existing directory of that name.
fn write_set(layout: &Layout, name: &str, set: &[(String, String)]) -> io::Result<()> {
    let loader = layout.boot.join("loader");
    std::fs::create_dir_all(&loader)?;
    let tmp = loader.join(format!("entries.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp)?;
    for (file, text) in set {
        if file.contains('/') || !file.ends_with(".conf") {
            return Err(io::Error::other(format!("bad entry file name {file:?}")));
        }
        let mut f = File::create(tmp.join(file))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    File::open(&tmp)?.sync_all()?;
    let target = loader.join(name);
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&tmp, &target)?;
    File::open(&loader)?.sync_all()
}

/// Writes `set` as `loader/entries.staged`, replacing a previous staged
/// set; nothing is live yet (see [`exchange`]).
pub fn stage(layout: &Layout, set: &[(String, String)]) -> io::Result<()> {
    write_set(layout, "entries.staged", set)
}

/// Makes `set` the live set at once (rollback, delete, kargs), through
/// `loader/entries.next`: a staged upgrade set is left alone.
pub fn replace_live(layout: &Layout, set: &[(String, String)]) -> io::Result<()> {
    write_set(layout, "entries.next", set)?;
    exchange_dir(layout, "entries.next")
}

/// Makes the staged set live: exchanges `entries.staged` with `entries`
/// atomically, then removes the old set.
pub fn exchange(layout: &Layout) -> io::Result<()> {
    exchange_dir(layout, "entries.staged")
}

/// Exchanges `loader/<name>` with `loader/entries`; the old set is renamed
/// `entries.old-<pid>` before it is removed, so a crash never leaves it
/// under a name that means something (gc removes such leftovers).
fn exchange_dir(layout: &Layout, name: &str) -> io::Result<()> {
    let loader = layout.boot.join("loader");
    let (live, new) = (layout.entries(), loader.join(name));
    if live.exists() {
        renameat_with(CWD, &new, CWD, &live, RenameFlags::EXCHANGE)?;
        File::open(&loader)?.sync_all()?;
        let old = loader.join(format!("entries.old-{}", std::process::id()));
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&new, &old)?;
        File::open(&loader)?.sync_all()?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&new, &live)?;
    }
    File::open(&loader)?.sync_all()
}

/// Removes leftovers of interrupted writes (`entries.tmp-*`,
/// `entries.old-*`, `entries.next`); returns how many.
pub fn clean_leftovers(layout: &Layout) -> io::Result<usize> {
    let loader = layout.boot.join("loader");
    let mut n = 0;
    let Ok(list) = std::fs::read_dir(&loader) else {
        return Ok(0);
    };
    for item in list {
        let name = item?.file_name().to_string_lossy().into_owned();
        if name.starts_with("entries.tmp-")
            || name.starts_with("entries.old-")
            || name == "entries.next"
        {
            std::fs::remove_dir_all(loader.join(&name))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The entries in `loader/entries` we do not own, to carry over.
pub fn foreign(layout: &Layout) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let list = match std::fs::read_dir(layout.entries()) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for item in list {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(ENTRY_PREFIX) || !item.file_type()?.is_file() {
            continue;
        }
        out.push((
            name,
            super::read_small_file(&item.path(), crate::bls::MAX_ENTRY_LEN as u64)?,
        ));
    }
    Ok(out)
}

/// The os id an entry's `sort-key` (`bootc-<os>-N`) names, else `bootc`.
pub fn os_id_of(e: &Entry) -> String {
    e.get("sort-key")
        .and_then(|k| k.strip_prefix("bootc-"))
        .and_then(|k| k.rsplit_once('-'))
        .map_or_else(|| "bootc".to_owned(), |(os, _)| os.to_owned())
}

/// The file name and sort key of the entry at menu `position` (0: the
/// default). Position 0 and 1 are bootc's names; further ones get the
/// deployment's id so that equal versions never collide.
pub fn name_for(os_id: &str, version: &str, position: usize, id: &str) -> (String, String) {
    let base = crate::os_release::entry_file_name(os_id, version, position == 0);
    let name = if position < 2 {
        base
    } else {
        let short: String = id.chars().take(16).collect();
        format!("{}-{short}.conf", base.trim_end_matches(".conf"))
    };
    (name, format!("bootc-{os_id}-{position}"))
}

/// Re-renders `entries` (owned, in the wanted menu order) with names and
/// sort keys for their new positions, keeping every other field.
pub fn renumber(entries: &[BootEntry]) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (pos, e) in entries.iter().enumerate() {
        let mut entry = e.entry.clone();
        let os = os_id_of(&entry);
        let version = entry.get("version").unwrap_or("0").to_owned();
        let (name, key) = name_for(&os, &version, pos, e.id.as_deref().unwrap_or("x"));
        entry
            .set("sort-key", &key)
            .map_err(|err| io::Error::other(err.to_string()))?;
        let (base, _) = entries::split_file_name(&name).unwrap_or((&name, None));
        out.push((entries::file_name_with(base, e.tries), entry.to_string()));
    }
    Ok(out)
}

/// Rollback: the first two owned entries of the menu change places (the
/// rest keep theirs); foreign entries stay. Staged and made live at once.
/// Returns the new default deployment's id.
pub fn rollback(layout: &Layout) -> io::Result<String> {
    let (mut live, problems) = entries::read_dir(&layout.entries())?;
    if !problems.is_empty() {
        return Err(io::Error::other(format!(
            "cannot roll back with unreadable entries: {}",
            problems.join("; ")
        )));
    }
    if live.len() < 2 {
        return Err(io::Error::other(format!(
            "nothing to roll back to: {} deployment entr{} in {}",
            live.len(),
            if live.len() == 1 { "y" } else { "ies" },
            layout.entries().display()
        )));
    }
    live.swap(0, 1);
    let mut set = renumber(&live)?;
    set.extend(foreign(layout)?);
    replace_live(layout, &set)?;
    // As bootc: a rollback drops a staged deployment (its state is an
    // orphan for gc).
    let _ = std::fs::remove_file(layout.staged_marker());
    if layout.staged_entries().exists() {
        std::fs::remove_dir_all(layout.staged_entries())?;
    }
    Ok(live[0].id.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn entry_text(id: &str, version: &str, key: &str) -> String {
        format!(
            "title Debian\nversion {version}\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\noptions rw composefs={id}\nsort-key {key}\n"
        )
    }

    fn listing(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn layout(tmp: &Path) -> Layout {
        Layout::new(&tmp.join("root"), Some(&tmp.join("esp")))
    }

    #[test]
    fn rollback_twice_restores_the_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let l = layout(tmp.path());
        let (a, b, c) = ("a".repeat(128), "b".repeat(128), "c".repeat(128));
        stage(
            &l,
            &[
                (
                    "bootc_debian-12-1.conf".into(),
                    entry_text(&a, "12", "bootc-debian-0"),
                ),
                (
                    "bootc_debian-12-0.conf".into(),
                    entry_text(&b, "12", "bootc-debian-1"),
                ),
                (
                    format!("bootc_debian-12-0-{}.conf", &c[..16]),
                    entry_text(&c, "12", "bootc-debian-2"),
                ),
                ("fwupd.conf".into(), "title fw\n".into()),
            ],
        )
        .unwrap();
        exchange(&l).unwrap();
        let before = listing(&l.entries());
        assert_eq!(rollback(&l).unwrap(), b);
        let (live, _) = entries::read_dir(&l.entries()).unwrap();
        let ids: Vec<&str> = live.iter().map(|e| e.id.as_deref().unwrap()).collect();
        assert_eq!(ids, vec![b.as_str(), a.as_str(), c.as_str()]);
        assert_eq!(live[0].file_name, "bootc_debian-12-1.conf");
        assert_eq!(live[0].entry.get("sort-key"), Some("bootc-debian-0"));
        assert!(
            l.entries().join("fwupd.conf").exists(),
            "foreign entry kept"
        );
        assert!(!l.staged_entries().exists(), "the old set is gone");
        assert_eq!(rollback(&l).unwrap(), a);
        assert_eq!(listing(&l.entries()), before, "twice = unchanged");
    }

    #[test]
    fn rollback_needs_two_entries_and_keeps_the_os_id() {
        let tmp = tempfile::tempdir().unwrap();
        let l = layout(tmp.path());
        let a = "a".repeat(128);
        stage(
            &l,
            &[(
                "bootc_fedora-44-1.conf".into(),
                entry_text(&a, "44", "bootc-fedora-0"),
            )],
        )
        .unwrap();
        exchange(&l).unwrap();
        let e = rollback(&l).unwrap_err();
        assert!(e.to_string().contains("nothing to roll back to"), "{e}");
        let b = "b".repeat(128);
        stage(
            &l,
            &[
                (
                    "bootc_fedora-44-1.conf".into(),
                    entry_text(&a, "44", "bootc-fedora-0"),
                ),
                (
                    "bootc_fedora-43-0.conf".into(),
                    entry_text(&b, "43", "bootc-fedora-1"),
                ),
            ],
        )
        .unwrap();
        exchange(&l).unwrap();
        rollback(&l).unwrap();
        let names: Vec<String> = listing(&l.entries()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            vec!["bootc_fedora-43-1.conf", "bootc_fedora-44-0.conf"]
        );
    }

    #[test]
    fn an_interrupted_stage_leaves_the_live_set_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let l = layout(tmp.path());
        let a = "a".repeat(128);
        stage(
            &l,
            &[("bootc_d-1-1.conf".into(), entry_text(&a, "1", "bootc-d-0"))],
        )
        .unwrap();
        exchange(&l).unwrap();
        let before = listing(&l.entries());
        // A crash after writing half a new set: a temporary directory and a
        // stale staged set. Neither touches the live entries, and the next
        // stage replaces both.
        std::fs::create_dir_all(l.boot.join("loader/entries.tmp-1")).unwrap();
        std::fs::create_dir_all(l.staged_entries()).unwrap();
        std::fs::write(l.staged_entries().join("bootc_d-2-1.conf"), "half").unwrap();
        assert_eq!(listing(&l.entries()), before);
        assert!(stage(&l, &[("../x.conf".into(), String::new())]).is_err());
        stage(
            &l,
            &[("bootc_d-3-1.conf".into(), entry_text(&a, "3", "bootc-d-0"))],
        )
        .unwrap();
        assert_eq!(listing(&l.staged_entries()).len(), 1);
        exchange(&l).unwrap();
        assert_eq!(listing(&l.entries())[0].0, "bootc_d-3-1.conf");
    }
}
