//! A real UKI: systemd-boot's stub (`systemd-boot-efi`) with `.osrel`,
//! `.cmdline`, `.uname`, `.linux` and `.initrd` added by `objcopy`, as
//! `boot-deploy.md` §12.2 builds one, read back section by section. Skips
//! when the stub or objcopy is missing, unless `CFS_TEST_PRIVILEGED=require`
//! (CI installs both).
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::process::Command;

use cfs_deploy::os_release::OsRelease;
use cfs_deploy::uki::Uki;

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

fn available() -> bool {
    let have = Path::new(STUB).exists()
        && Command::new("objcopy")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have && std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require") {
        panic!("{STUB} and objcopy are needed (apt-get install systemd-boot-efi binutils)");
    }
    if !have {
        eprintln!("uki_objcopy: skipped ({STUB} or objcopy missing)");
    }
    have
}

#[test]
fn sections_of_an_objcopy_built_uki() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, data: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let digest = "ab".repeat(64);
    let cmdline = format!("composefs.digest=v1-sha512-12:{digest} composefs={digest} rw quiet\n");
    let linux: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let initrd: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
    let sections = [
        (
            ".osrel",
            file(
                "osrel",
                b"ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n",
            ),
            "0x20000",
        ),
        (".cmdline", file("cmdline", cmdline.as_bytes()), "0x30000"),
        (".uname", file("uname", b"6.12.38+deb12-amd64"), "0x40000"),
        (".linux", file("linux", &linux), "0x2000000"),
        (".initrd", file("initrd", &initrd), "0x3000000"),
    ];
    let uki = tmp.path().join("uki.efi");
    let mut cmd = Command::new("objcopy");
    for (name, path, vma) in &sections {
        cmd.arg("--add-section")
            .arg(format!("{name}={}", path.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}={vma}"));
    }
    let out = cmd.arg(STUB).arg(&uki).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let uki = Uki::open(std::fs::File::open(&uki).unwrap()).unwrap();
    // The stub's own sections come first (.text, .data, …); ours follow.
    assert!(uki.section(".text").is_some(), "{:?}", uki.sections());
    assert_eq!(uki.text(".cmdline").unwrap().unwrap(), cmdline.trim_end());
    assert_eq!(uki.text(".uname").unwrap().unwrap(), "6.12.38+deb12-amd64");
    let osrel = OsRelease::parse(&uki.text(".osrel").unwrap().unwrap()).unwrap();
    assert_eq!(osrel.os_id(), "debian");
    assert_eq!(osrel.version("x"), "12");
    assert_eq!(uki.read(".linux", 1 << 30).unwrap().unwrap(), linux);
    assert_eq!(uki.read(".initrd", 1 << 30).unwrap().unwrap(), initrd);
    // The command line names the image both ways, the self-describing one first.
    let order: Vec<String> =
        cfs_deploy::cmdline::candidates(&uki.text(".cmdline").unwrap().unwrap())
            .into_iter()
            .map(|r| r.unwrap().to_string())
            .collect();
    assert_eq!(
        order,
        [
            format!("composefs.digest=v1-sha512-12:{digest}"),
            format!("composefs={digest}")
        ]
    );
}
