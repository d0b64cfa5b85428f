//! Status derivation on hand-made physical roots, including the field bugs
//! of bootc it must not have.

use std::path::Path;

use super::*;
use crate::deploy::origin::Origin;

fn id(c: char) -> String {
    c.to_string().repeat(128)
}

struct Root {
    _tmp: tempfile::TempDir,
    layout: Layout,
}

fn root() -> Root {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("root"), Some(&tmp.path().join("esp")));
    layout.run = tmp.path().join("run");
    Root { _tmp: tmp, layout }
}

fn deploy(l: &Layout, id: &str, image: &str) {
    std::fs::create_dir_all(l.state(id).join("etc")).unwrap();
    let o = Origin::new(image, "bls", "d1", "sha256:aa");
    std::fs::write(l.origin(id), o.to_string()).unwrap();
}

fn kernel_entry(dir: &Path, name: &str, id: &str, sort_key: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(name),
        format!(
            "title D\nversion 12\nlinux /EFI/Linux/bootc_composefs-{id}/vmlinuz\ninitrd /EFI/Linux/bootc_composefs-{id}/initrd\noptions rw composefs={id}\nsort-key {sort_key}\n"
        ),
    )
    .unwrap();
}

fn uki_entry(dir: &Path, name: &str, id: &str, sort_key: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(name),
        format!("title D\nversion 12\nefi /EFI/Linux/bootc/bootc_composefs-{id}.efi\nsort-key {sort_key}\n"),
    )
    .unwrap();
}

#[test]
fn booted_rollback_and_foreign_entries() {
    let r = root();
    let l = &r.layout;
    let (a, b) = (id('a'), id('b'));
    deploy(l, &a, "oci:/os:1");
    deploy(l, &b, "oci:/os:2");
    kernel_entry(&l.entries(), "bootc_debian-12-1.conf", &b, "bootc-debian-0");
    kernel_entry(&l.entries(), "bootc_debian-12-0.conf", &a, "bootc-debian-1");
    // bootc #2228: a foreign entry breaks nothing.
    std::fs::write(l.entries().join("fwupd.conf"), "no version, no kernel\n").unwrap();
    let s = status(l, Some(&b)).unwrap();
    assert_eq!(s.booted.as_ref().unwrap().id, b);
    assert_eq!(
        s.booted.as_ref().unwrap().image.as_deref(),
        Some("oci:/os:2")
    );
    assert_eq!(s.rollback.as_ref().unwrap().id, a);
    assert!(!s.rollback_queued);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let json = to_json(&s);
    assert_eq!(json["status"]["booted"]["composefs"]["verity"], b.as_str());
    assert_eq!(json["status"]["rollbackQueued"], false);
    assert_eq!(json["spec"]["bootOrder"], "default");
}

#[test]
fn rollback_with_a_staged_deployment_keeps_status_working() {
    // bootc #2208/#2224: a staged deployment plus a queued rollback.
    let r = root();
    let l = &r.layout;
    let (a, b, c) = (id('a'), id('b'), id('c'));
    for (x, img) in [(&a, "1"), (&b, "2"), (&c, "3")] {
        deploy(l, x, img);
    }
    // Live: the rollback (a) is now the default, b booted.
    kernel_entry(&l.entries(), "bootc_d-12-1.conf", &a, "bootc-d-0");
    kernel_entry(&l.entries(), "bootc_d-12-0.conf", &b, "bootc-d-1");
    kernel_entry(&l.staged_entries(), "bootc_d-13-1.conf", &c, "bootc-d-0");
    kernel_entry(&l.staged_entries(), "bootc_d-12-0.conf", &b, "bootc-d-1");
    std::fs::create_dir_all(&l.run).unwrap();
    let marker = StagedMarker {
        id: c.clone(),
        finalization_locked: true,
    };
    std::fs::write(l.staged_marker(), marker.to_json()).unwrap();
    assert_eq!(StagedMarker::parse(&marker.to_json()), Some(marker));
    let s = status(l, Some(&b)).unwrap();
    assert_eq!(s.booted.as_ref().unwrap().id, b);
    assert_eq!(s.staged.as_ref().unwrap().id, c);
    assert!(s.staged.as_ref().unwrap().download_only);
    assert_eq!(s.rollback.as_ref().unwrap().id, a);
    assert!(s.rollback_queued);
    assert_eq!(to_json(&s)["spec"]["bootOrder"], "rollback");
}

#[test]
fn uki_entries_and_rollback_queued() {
    // bootc #2405: rollbackQueued inverted for UKIs.
    let r = root();
    let l = &r.layout;
    let (a, b) = (id('a'), id('b'));
    deploy(l, &a, "1");
    deploy(l, &b, "2");
    uki_entry(&l.entries(), "bootc_d-12-1.conf", &b, "bootc-d-0");
    uki_entry(&l.entries(), "bootc_d-12-0.conf", &a, "bootc-d-1");
    let s = status(l, Some(&b)).unwrap();
    assert!(!s.rollback_queued);
    assert_eq!(s.rollback.as_ref().unwrap().id, a);
    let s = status(l, Some(&a)).unwrap();
    assert!(s.rollback_queued, "booted a, default b");
    assert_eq!(s.booted.as_ref().unwrap().id, a);
    assert_eq!(s.rollback.as_ref().unwrap().id, b);
}

#[test]
fn missing_state_is_a_problem_not_a_failure() {
    let r = root();
    let l = &r.layout;
    let (a, b, c) = (id('a'), id('b'), id('c'));
    deploy(l, &a, "1");
    deploy(l, &c, "3");
    kernel_entry(&l.entries(), "bootc_d-12-1.conf", &a, "bootc-d-0");
    kernel_entry(&l.entries(), "bootc_d-11-0.conf", &b, "bootc-d-1");
    kernel_entry(&l.entries(), "bootc_d-10-0.conf", &c, "bootc-d-2");
    let s = status(l, Some(&a)).unwrap();
    assert_eq!(s.booted.as_ref().unwrap().id, a);
    assert_eq!(
        s.rollback.as_ref().unwrap().id,
        c,
        "b has no origin: skipped"
    );
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert!(s.problems[0].contains(&b) && s.problems[0].contains("cannot be read"));
    // A booted deployment without an entry is reported too.
    let s = status(l, Some(&id('e'))).unwrap();
    assert!(s.booted.is_none());
    assert!(
        s.problems
            .iter()
            .any(|p| p.contains("has no live boot entry"))
    );
    // Nothing at all: an empty status.
    let empty = root();
    let s = status(&empty.layout, None).unwrap();
    assert_eq!(s, Status::default());
}

#[test]
fn more_than_two_deployments_and_pinning() {
    let r = root();
    let l = &r.layout;
    let ids: Vec<String> = "abcd".chars().map(id).collect();
    for (i, x) in ids.iter().enumerate() {
        deploy(l, x, &i.to_string());
        kernel_entry(
            &l.entries(),
            &format!("bootc_d-1{i}-{}.conf", u8::from(i == 0)),
            x,
            &format!("bootc-d-{i}"),
        );
    }
    let mut o = Origin::parse(&std::fs::read_to_string(l.origin(&ids[3])).unwrap()).unwrap();
    o.set_pinned(true);
    std::fs::write(l.origin(&ids[3]), o.to_string()).unwrap();
    let s = status(l, Some(&ids[0])).unwrap();
    assert_eq!(s.rollback.as_ref().unwrap().id, ids[1]);
    let others: Vec<&str> = s.others.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(others, vec![ids[2].as_str(), ids[3].as_str()]);
    assert!(s.others[1].pinned);
    assert_eq!(to_json(&s)["status"]["otherDeployments"][1]["pinned"], true);
}
