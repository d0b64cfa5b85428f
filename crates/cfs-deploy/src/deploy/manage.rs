//! Deleting and pinning deployments, and editing kernel arguments
//! (boot-deploy.md §6.5 and cfs's additions).
//!
//! - delete: refuses the booted deployment and unknown ids; the entry goes
//!   first (a new set, exchanged), then the state directory, then boot
//!   binaries no entry names — a crash in between leaves an orphan state
//!   directory, never an entry without its state;
//! - pin: recorded in the origin (`[cfs] pinned = true`, written atomically);
//!   pinned deployments are kept by staging (bootc keeps only two);
//! - kargs: the default entry's `options` edited (arguments appended or
//!   removed by exact text or by `key=`), written as a new set and
//!   exchanged; staging copies the booted entry's options, so edits persist
//!   across upgrades. The composefs argument cannot be removed.

use std::io;

use super::entries::{self};
use super::{Layout, binaries, entryset, other};

/// Removes deployment `id` (never the booted one).
pub fn delete(layout: &Layout, booted: Option<&str>, id: &str) -> io::Result<()> {
    if booted == Some(id) {
        return Err(other(format!(
            "{id} is the booted deployment: it cannot be deleted"
        )));
    }
    let (live, problems) = entries::read_dir(&layout.entries())?;
    if !problems.is_empty() {
        return Err(other(format!(
            "unreadable entries: {}",
            problems.join("; ")
        )));
    }
    let known = live.iter().any(|e| e.id.as_deref() == Some(id)) || layout.state(id).exists();
    if !known {
        return Err(other(format!("no deployment {id}")));
    }
    let rest: Vec<_> = live
        .into_iter()
        .filter(|e| e.id.as_deref() != Some(id))
        .collect();
    let mut set = entryset::renumber(&rest)?;
    set.extend(entryset::foreign(layout)?);
    entryset::replace_live(layout, &set)?;
    if layout.state(id).exists() {
        std::fs::remove_dir_all(layout.state(id))?;
    }
    binaries::gc(layout, booted, false)?;
    Ok(())
}

/// Pins (or unpins) deployment `id`.
pub fn pin(layout: &Layout, id: &str, pinned: bool) -> io::Result<()> {
    let mut origin = layout
        .read_origin(id)
        .map_err(|e| other(format!("no deployment {id} ({e})")))?;
    origin.set_pinned(pinned);
    layout.write_origin(id, &origin)
}

/// The options with `delete` removed (exact arguments, or `key=` prefixes)
/// and `append` added (replacing an argument with the same `key=`).
pub fn edit_options(options: &str, append: &[String], delete: &[String]) -> io::Result<String> {
    let key = |a: &str| {
        a.split_once('=')
            .map_or(a.to_owned(), |(k, _)| format!("{k}="))
    };
    for d in delete.iter().chain(append) {
        if d.starts_with("composefs=") || d.starts_with("composefs.digest=") {
            return Err(other(format!(
                "{d}: the composefs argument is managed by cfs"
            )));
        }
    }
    let mut out: Vec<String> = crate::cmdline::split(options)
        .filter(|w| {
            !delete
                .iter()
                .any(|d| d == w || (d.ends_with('=') && w.starts_with(d.as_str())))
        })
        .map(str::to_owned)
        .collect();
    for a in append {
        let k = key(a);
        match out.iter().position(|w| a.contains('=') && key(w) == k) {
            Some(i) => out[i] = a.clone(),
            None => out.push(a.clone()),
        }
    }
    Ok(out.join(" "))
}

/// Edits the kernel arguments of the default entry; returns the new
/// command line.
pub fn kargs(layout: &Layout, append: &[String], delete: &[String]) -> io::Result<String> {
    let (mut live, problems) = entries::read_dir(&layout.entries())?;
    if !problems.is_empty() {
        return Err(other(format!(
            "unreadable entries: {}",
            problems.join("; ")
        )));
    }
    let first = live.first_mut().ok_or_else(|| {
        other(format!(
            "no deployment entries in {}",
            layout.entries().display()
        ))
    })?;
    if first.entry.get("linux").is_none() {
        return Err(other(
            "the default entry is a UKI: its command line is sealed in the UKI",
        ));
    }
    let options = edit_options(first.entry.get("options").unwrap_or(""), append, delete)?;
    first.entry.set("options", &options).map_err(other)?;
    let mut set = entryset::renumber(&live)?;
    set.extend(entryset::foreign(layout)?);
    entryset::replace_live(layout, &set)?;
    Ok(options)
}

/// Boot counting: the booted deployment's entry loses its `+LEFT[-DONE]`
/// counter (it booted far enough), by an atomic rename in the live set.
/// Returns the new file name, or `None` when it had no counter.
pub fn mark_good(layout: &Layout, booted: &str) -> io::Result<Option<String>> {
    let (live, _) = entries::read_dir(&layout.entries())?;
    let Some(e) = live.iter().find(|e| e.id.as_deref() == Some(booted)) else {
        return Err(other(format!(
            "the booted deployment {booted} has no boot entry"
        )));
    };
    if e.tries.is_none() {
        return Ok(None);
    }
    let name = entries::file_name_with(&e.base_name, None);
    let dir = layout.entries();
    std::fs::rename(dir.join(&e.file_name), dir.join(&name))?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::entryset::{exchange, stage};
    use crate::deploy::origin::Origin;

    fn setup() -> (tempfile::TempDir, Layout, String, String) {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::new(&tmp.path().join("root"), Some(&tmp.path().join("esp")));
        let (a, b) = ("a".repeat(128), "b".repeat(128));
        let entry = |id: &str, key: &str| {
            format!(
                "title D\nversion 12\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\noptions root=LABEL=r rw composefs={id} quiet\nsort-key {key}\n"
            )
        };
        for id in [&a, &b] {
            std::fs::create_dir_all(l.state(id).join("etc")).unwrap();
            std::fs::write(
                l.origin(id),
                Origin::new("oci:/x", "bls", "d", "sha256:1").to_string(),
            )
            .unwrap();
            std::fs::create_dir_all(l.kernel_dir(id)).unwrap();
        }
        stage(
            &l,
            &[
                ("bootc_d-12-1.conf".into(), entry(&a, "bootc-d-0")),
                ("bootc_d-12-0.conf".into(), entry(&b, "bootc-d-1")),
            ],
        )
        .unwrap();
        exchange(&l).unwrap();
        (tmp, l, a, b)
    }

    #[test]
    fn delete_refuses_the_booted_and_removes_entry_state_and_binaries() {
        let (_tmp, l, a, b) = setup();
        assert!(
            delete(&l, Some(&a), &a)
                .unwrap_err()
                .to_string()
                .contains("booted")
        );
        assert!(
            delete(&l, Some(&a), &"c".repeat(128))
                .unwrap_err()
                .to_string()
                .contains("no deployment")
        );
        delete(&l, Some(&a), &b).unwrap();
        let (live, _) = entries::read_dir(&l.entries()).unwrap();
        assert_eq!(live.len(), 1);
        assert!(!l.state(&b).exists());
        assert!(!l.kernel_dir(&b).exists());
        assert!(l.kernel_dir(&a).exists());
    }

    #[test]
    fn mark_good_drops_the_counter() {
        let (_tmp, l, a, _b) = setup();
        assert_eq!(mark_good(&l, &a).unwrap(), None);
        let dir = l.entries();
        std::fs::rename(
            dir.join("bootc_d-12-1.conf"),
            dir.join("bootc_d-12-1+2-1.conf"),
        )
        .unwrap();
        let (live, _) = entries::read_dir(&dir).unwrap();
        assert_eq!(
            live.iter()
                .find(|e| e.id.as_deref() == Some(a.as_str()))
                .unwrap()
                .tries,
            Some((2, 1))
        );
        assert_eq!(
            mark_good(&l, &a).unwrap().as_deref(),
            Some("bootc_d-12-1.conf")
        );
        assert!(dir.join("bootc_d-12-1.conf").is_file());
        assert!(mark_good(&l, &"c".repeat(128)).is_err());
    }

    #[test]
    fn pinning_is_recorded() {
        let (_tmp, l, _a, b) = setup();
        pin(&l, &b, true).unwrap();
        let o = Origin::parse(&std::fs::read_to_string(l.origin(&b)).unwrap()).unwrap();
        assert!(o.pinned());
        pin(&l, &b, false).unwrap();
        assert!(pin(&l, &"c".repeat(128), true).is_err());
    }

    #[test]
    fn kernel_arguments_are_edited_on_the_default_entry() {
        let (_tmp, l, a, _b) = setup();
        let opts = kargs(
            &l,
            &["console=ttyS0".into(), "root=LABEL=s".into()],
            &["quiet".into()],
        )
        .unwrap();
        assert_eq!(opts, format!("root=LABEL=s rw composefs={a} console=ttyS0"));
        let (live, _) = entries::read_dir(&l.entries()).unwrap();
        assert_eq!(live[0].entry.get("options"), Some(opts.as_str()));
        assert_eq!(live[0].id.as_deref(), Some(a.as_str()));
        let opts = kargs(&l, &[], &["console=".into()]).unwrap();
        assert!(!opts.contains("console"), "{opts}");
        assert!(kargs(&l, &[], &[format!("composefs={a}")]).is_err());
    }
}
