//! Boot binaries: sharing by digest, gc keyed on artifact names.

use super::*;
use crate::deploy::entryset::{exchange, stage};

fn layout(tmp: &Path) -> Layout {
    Layout::new(&tmp.join("root"), Some(&tmp.join("esp")))
}

fn id(n: usize) -> String {
    format!("{n:0128x}")
}

fn kernel_entry(name: &str, id: &str, dir: &str, key: &str) -> (String, String) {
    (
        name.to_owned(),
        format!(
            "title D\nversion 1\nlinux /EFI/Linux/{dir}/vmlinuz\ninitrd /EFI/Linux/{dir}/initrd\noptions rw composefs={id}\nsort-key {key}\n"
        ),
    )
}

fn install(l: &Layout, id: &str, kernel: &[u8]) -> String {
    let mut both = kernel.to_vec();
    both.extend_from_slice(b"INITRD");
    let digest: String = Sha256::digest(&both)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    install_kernel(l, id, &digest, &mut &kernel[..], &mut &b"INITRD"[..]).unwrap()
}

#[test]
fn identical_kernels_share_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path());
    let a = install(&l, &id(1), b"KERNEL-1");
    assert_eq!(a, format!("bootc_composefs-{}", id(1)));
    let b = install(&l, &id(2), b"KERNEL-1");
    assert_eq!(b, a, "same digest: the directory of deployment 1 is reused");
    let c = install(&l, &id(3), b"KERNEL-2");
    assert_eq!(c, format!("bootc_composefs-{}", id(3)));
    assert_eq!(kernel_dirs(&l).unwrap().len(), 2);
    let dir = l.boot.join("EFI/Linux").join(&c);
    assert_eq!(std::fs::read(dir.join("vmlinuz")).unwrap(), b"KERNEL-2");
    assert_eq!(std::fs::read(dir.join("initrd")).unwrap(), b"INITRD");
}

#[test]
fn boot_does_not_fill_up_across_upgrades() {
    // bootc #1808: every upgrade installs a kernel; after each gc only the
    // kernels of the two live entries remain.
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path());
    let mut live: Vec<(String, String)> = Vec::new();
    for n in 1..=6 {
        let dir = install(&l, &id(n), format!("KERNEL-{n}").as_bytes());
        let mut set = vec![kernel_entry("bootc_d-1-1.conf", &id(n), &dir, "bootc-d-0")];
        if let Some((_, prev)) = live.first() {
            let prev_dir = prev
                .lines()
                .find_map(|l| l.strip_prefix("linux /EFI/Linux/"))
                .and_then(|p| p.split('/').next())
                .unwrap()
                .to_owned();
            set.push(kernel_entry(
                "bootc_d-1-0.conf",
                &id(n - 1),
                &prev_dir,
                "bootc-d-1",
            ));
        }
        stage(&l, &set).unwrap();
        exchange(&l).unwrap();
        live = set;
        let booted = id(n.saturating_sub(1).max(1));
        gc(&l, Some(&booted), false).unwrap();
        let dirs = kernel_dirs(&l).unwrap();
        assert!(dirs.len() <= 2, "after upgrade {n}: {dirs:?}");
        assert!(dirs.contains(&format!("bootc_composefs-{}", id(n))));
    }
}

#[test]
fn gc_removes_only_unreferenced_binaries_and_refuses_inconsistency() {
    let tmp = tempfile::tempdir().unwrap();
    let l = layout(tmp.path());
    let a = install(&l, &id(1), b"A");
    let _orphan = install(&l, &id(2), b"B");
    let ukis = l.boot.join("EFI/Linux/bootc");
    std::fs::create_dir_all(ukis.join(format!("bootc_composefs-{}.efi.extra.d", id(3)))).unwrap();
    std::fs::write(ukis.join(format!("bootc_composefs-{}.efi", id(3))), b"MZ").unwrap();
    std::fs::write(ukis.join(format!("bootc_composefs-{}.efi", id(4))), b"MZ").unwrap();
    std::fs::create_dir_all(l.boot.join("EFI/Linux/.tmp-bootc_composefs-x")).unwrap();
    std::fs::write(l.boot.join("EFI/Linux/other.efi"), b"not ours").unwrap();
    let uki4 = (
        "bootc_d-2-0.conf".to_owned(),
        format!(
            "title D\nversion 2\nefi /EFI/Linux/bootc/bootc_composefs-{}.efi\nsort-key bootc-d-1\n",
            id(4)
        ),
    );
    stage(
        &l,
        &[
            kernel_entry("bootc_d-1-1.conf", &id(1), &a, "bootc-d-0"),
            uki4,
        ],
    )
    .unwrap();
    exchange(&l).unwrap();

    // The booted deployment without an entry: nothing is touched.
    let e = gc(&l, Some(&id(9)), false).unwrap_err();
    assert!(e.to_string().contains("inconsistent state"), "{e}");
    let dry = gc(&l, Some(&id(1)), true).unwrap();
    assert_eq!(dry.removed.len(), 4, "{:?}", dry.removed);
    assert!(
        l.boot
            .join("EFI/Linux")
            .join(format!("bootc_composefs-{}", id(2)))
            .exists()
    );
    let done = gc(&l, Some(&id(1)), false).unwrap();
    assert_eq!(done.removed, dry.removed);
    assert!(
        !l.boot
            .join("EFI/Linux")
            .join(format!("bootc_composefs-{}", id(2)))
            .exists()
    );
    assert!(!ukis.join(format!("bootc_composefs-{}.efi", id(3))).exists());
    assert!(
        !ukis
            .join(format!("bootc_composefs-{}.efi.extra.d", id(3)))
            .exists()
    );
    assert!(
        ukis.join(format!("bootc_composefs-{}.efi", id(4))).exists(),
        "named by an entry"
    );
    assert!(l.boot.join("EFI/Linux").join(&a).exists());
    assert!(l.boot.join("EFI/Linux/other.efi").exists(), "not ours");
    assert!(gc(&l, Some(&id(1)), false).unwrap().removed.is_empty());
}
