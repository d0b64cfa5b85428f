//! Bootable images, byte for byte against composefs-rs 0.9.4's `cfsctl`
//! (built with `cargo install composefs-ctl --version 0.9.4 --locked
//! --no-default-features --features pre-6.15,oci --root /tmp/cfsctl094oci`;
//! `CFS_REFERENCE_OCI_CFSCTL` names another path; skipped when absent).
//!
//! - V2 images of random directory trees (`compute-id --erofs-version 2`);
//! - V1/V2 ids of the multi-layer test images;
//! - real Debian 12 systems built from Debian packages
//!   (`tests/os/build-debian-os.sh`): plain, with SELinux policy active,
//!   with a Type 1 entry, with a sealed UKI — plain and boot image ids in
//!   both formats, `compute-karg`, the stored config streams; every
//!   SELinux label against `matchpathcon`; a UKI sealed for another digest
//!   refused; the recovery search.
//!
//! The ids are printed on stderr (`--nocapture`) to be reported side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cfs_core::erofs::reader::{ReadOptions, read_image};
use cfs_core::tree::{FileSystem, FileType, InodeId};

use crate::boot::{us, us_fails};
use crate::debian_os;
use crate::oci_interop::reference;
use crate::oci_support::{exec, ok, repeated_layers, write_layout};
use crate::oci_tree::build_test_image;

fn them(reference: &Path, args: &[&str]) -> String {
    let mut c = Command::new(reference);
    c.env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .args(args);
    ok(
        &format!("reference cfsctl {}", args.join(" ")),
        &exec(&mut c),
    )
}

/// The value after `prefix` on the line that starts with it.
fn line_value<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.split_whitespace().next().unwrap_or(""))
}

/// A deterministic pseudo-random generator (xorshift).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A random directory tree: nested directories, inline and external files,
/// hard links, symlinks of many lengths, FIFOs, devices, user xattrs shared
/// between files, names sorting around `.`, directories over one block.
fn random_tree(root: &Path, seed: u64) {
    use std::os::unix::fs::symlink;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    std::fs::create_dir_all(root).unwrap();
    let mut dirs = vec![root.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    let count = 20 + rng.below(300);
    for i in 0..count {
        let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let prefix = ["", "-", "+", ".", "_", "~", "A"][rng.below(7) as usize];
        let max = if rng.below(10) == 0 { 200 } else { 20 };
        let len = 1 + rng.below(max);
        let name = format!("{prefix}{}{i}", "n".repeat(len as usize));
        let path = parent.join(&name);
        match rng.below(10) {
            0 | 1 => {
                std::fs::create_dir(&path).unwrap();
                dirs.push(path.clone());
            }
            2..=4 => {
                let size = [0, 1, 64, 65, 4000, 5000][rng.below(6) as usize];
                let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
                std::fs::write(&path, data).unwrap();
                files.push(path.clone());
            }
            5 if !files.is_empty() => {
                let target = &files[rng.below(files.len() as u64) as usize];
                std::fs::hard_link(target, &path).unwrap();
            }
            6 => {
                let max = if rng.below(4) == 0 { 3000 } else { 60 };
                let n = 1 + rng.below(max);
                symlink("t".repeat(n as usize), &path).unwrap();
            }
            7 => {
                let _ = Command::new("mkfifo").arg(&path).status();
            }
            8 => {
                let _ = Command::new("mknod")
                    .arg(&path)
                    .args([
                        "c",
                        &rng.below(300).to_string(),
                        &rng.below(300).to_string(),
                    ])
                    .status();
            }
            _ => {
                std::fs::write(&path, b"x").unwrap();
                files.push(path.clone());
            }
        }
        let plain = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() || m.is_dir());
        if rng.below(3) == 0 && plain {
            let value = ["a", "b", "shared-value"][rng.below(3) as usize];
            let key = ["user.one", "user.two", "user.overlay.x"][rng.below(3) as usize];
            let _ = Command::new("setfattr")
                .args(["-n", key, "-v", value])
                .arg(&path)
                .status();
        }
    }
    // A directory needing whole blocks.
    if seed.is_multiple_of(3) {
        let big = root.join("big");
        std::fs::create_dir(&big).unwrap();
        for i in 0..400 {
            std::fs::write(big.join(format!("entry-number-{i:05}")), b"").unwrap();
        }
    }
}

#[test]
fn v2_images_of_random_trees_are_byte_identical() {
    let Some(reference) = reference() else { return };
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..24u64 {
        let root = dir.path().join(format!("t{seed}"));
        random_tree(&root, seed);
        let path = root.to_str().unwrap();
        for hash in ["sha256", "sha512"] {
            for version in ["1", "2"] {
                let args = [
                    "--hash",
                    hash,
                    "--erofs-version",
                    version,
                    "compute-id",
                    "--no-propagate-usr-to-root",
                    path,
                ];
                let ours = us(&args);
                let mut theirs_args = vec!["--no-repo"];
                theirs_args.extend(args);
                let theirs = them(&reference, &theirs_args);
                assert_eq!(ours, theirs, "seed {seed}, {hash}, V{version}");
            }
        }
    }
}

/// Both tools pull `source` as `t` into repositories configured for
/// `version`; returns (ours, theirs).
fn pull_both(
    dir: &Path,
    reference: &Path,
    source: &str,
    version: &str,
    extra: &[&str],
) -> (PathBuf, PathBuf, String, String) {
    let ours = dir.join(format!("ours-v{version}"));
    let theirs = dir.join(format!("theirs-v{version}"));
    for (repo, tool) in [(&ours, "us"), (&theirs, "them")] {
        let args = [
            "init",
            "--insecure",
            "--erofs-version",
            version,
            repo.to_str().unwrap(),
        ];
        if tool == "us" {
            us(&args);
        } else {
            them(reference, &args);
        }
    }
    let mut args = vec!["--repo", ours.to_str().unwrap(), "oci", "pull"];
    args.extend(extra);
    args.extend([source, "t"]);
    let ours_out = us(&args);
    args[1] = theirs.to_str().unwrap();
    let theirs_out = them(reference, &args);
    (ours, theirs, ours_out, theirs_out)
}

/// `streams/oci-config-*` → link target.
fn config_streams(repo: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(repo.join("streams"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("oci-config-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn v1_and_v2_ids_of_the_test_images() {
    let Some(reference) = reference() else { return };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("repeated");
    write_layout(&layout, "latest", &repeated_layers());
    // The multi-layer umoci image without the quirk composefs-rs cannot read.
    let img_dir = dir.path().join("img");
    std::fs::create_dir_all(&img_dir).unwrap();
    let img = build_test_image(&img_dir, false);
    let sources = [img.oci_ref(), format!("oci:{}:latest", layout.display())];
    for (n, source) in sources.iter().enumerate() {
        for version in ["1", "2"] {
            let sub = dir.path().join(format!("{n}"));
            std::fs::create_dir_all(&sub).unwrap();
            let (ours, theirs, _, _) = pull_both(&sub, &reference, source, version, &[]);
            for v in ["1", "2"] {
                let a = us(&[
                    "--repo",
                    ours.to_str().unwrap(),
                    "--erofs-version",
                    v,
                    "oci",
                    "compute-id",
                    "t",
                ]);
                let b = them(
                    &reference,
                    &[
                        "--repo",
                        theirs.to_str().unwrap(),
                        "--erofs-version",
                        v,
                        "oci",
                        "compute-id",
                        "t",
                    ],
                );
                assert_eq!(a, b, "{source}: V{v} id (repository V{version})");
                eprintln!("{source} V{v}: ours {} reference {}", a.trim(), b.trim());
            }
            assert_eq!(
                config_streams(&ours),
                config_streams(&theirs),
                "{source}: config streams (V{version})"
            );
        }
    }
}

/// The `Boot image: HEX` line of the reference's `oci pull --bootable`.
fn reference_boot_id(out: &str) -> String {
    line_value(out, "Boot image: ")
        .unwrap_or_else(|| panic!("no Boot image line in:\n{out}"))
        .to_owned()
}

/// The `boot     HEX (VN)` line of ours for format `v`.
fn our_boot_id(out: &str, v: u32) -> String {
    out.lines()
        .filter_map(|l| l.strip_prefix("boot     "))
        .find(|l| l.contains(&format!("V{v})")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no V{v} boot line in:\n{out}"))
        .to_owned()
}

/// Everything compared for one Debian variant; returns the V1 repository
/// pair and the ids (format → (plain, boot)).
fn check_variant(
    dir: &Path,
    reference: &Path,
    variant: &str,
    os: &Path,
) -> (PathBuf, BTreeMap<u32, (String, String)>) {
    let source = format!("oci:{}:latest", os.join("oci").display());
    let rootfs = os.join("rootfs");
    let mut ids = BTreeMap::new();
    let mut v1_repo = PathBuf::new();
    for v in [1u32, 2] {
        let version = v.to_string();
        let sub = dir.join(format!("{variant}-{v}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (ours, theirs, ours_out, theirs_out) =
            pull_both(&sub, reference, &source, &version, &["--bootable"]);
        let boot_ours = our_boot_id(&ours_out, v);
        let boot_theirs = reference_boot_id(&theirs_out);
        assert_eq!(boot_ours, boot_theirs, "{variant}: V{v} boot image id");
        let r_ours = ours.to_str().unwrap();
        let r_theirs = theirs.to_str().unwrap();
        let plain = us(&["--repo", r_ours, "oci", "compute-id", "t"]);
        assert_eq!(
            plain,
            them(reference, &["--repo", r_theirs, "oci", "compute-id", "t"]),
            "{variant}: V{v} plain id"
        );
        let boot = us(&["--repo", r_ours, "oci", "compute-id", "--bootable", "t"]);
        assert_eq!(
            boot.trim(),
            boot_ours,
            "{variant}: compute-id --bootable V{v}"
        );
        assert_eq!(
            boot,
            them(
                reference,
                &["--repo", r_theirs, "oci", "compute-id", "--bootable", "t"]
            )
        );
        assert_eq!(
            config_streams(&ours),
            config_streams(&theirs),
            "{variant}: config streams V{v}"
        );
        let karg_args = [
            "--hash",
            "sha512",
            "--erofs-version",
            &version,
            "compute-karg",
            rootfs.to_str().unwrap(),
        ];
        let karg = us(&karg_args);
        let mut theirs_args = vec!["--no-repo"];
        theirs_args.extend(karg_args);
        assert_eq!(
            karg,
            them(reference, &theirs_args),
            "{variant}: compute-karg V{v}"
        );
        assert!(
            karg.contains(&boot_ours),
            "{variant}: compute-karg {karg} names the boot image {boot_ours}"
        );
        eprintln!(
            "{variant} V{v}: plain {} boot {} (reference: same); karg {}",
            plain.trim(),
            boot_ours,
            karg.trim()
        );
        ids.insert(v, (plain.trim().to_owned(), boot_ours));
        if v == 1 {
            v1_repo = ours;
        }
    }
    (v1_repo, ids)
}

#[test]
fn debian_plain() {
    let Some(reference) = reference() else { return };
    let Some(plain) = debian_os::build("plain", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    check_variant(dir.path(), &reference, "plain", &plain);
}

#[test]
fn debian_bls_entry() {
    let Some(reference) = reference() else { return };
    let Some(bls) = debian_os::build("bls", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    check_variant(dir.path(), &reference, "bls", &bls);
}

#[test]
fn debian_selinux_labels_match_matchpathcon() {
    let Some(reference) = reference() else { return };
    let Some(selinux) = debian_os::build("selinux", None) else {
        return;
    };
    if !crate::oci_support::have_tools("debian_selinux", &["matchpathcon"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = check_variant(dir.path(), &reference, "selinux", &selinux);
    // Every label of the V1 boot image is matchpathcon's for that path.
    let fc = selinux.join("rootfs/etc/selinux/default/contexts/files/file_contexts");
    let image = std::fs::read(repo.join("images").join(&ids[&1].1)).unwrap();
    let (fs, _) = read_image(&image, &ReadOptions::default()).unwrap();
    compare_with_matchpathcon(&fs, &fc);
}

/// Every path of `fs` and its label, compared with `matchpathcon -f FC`.
pub(crate) fn compare_with_matchpathcon(fs: &FileSystem, fc: &Path) {
    let mut by_type: BTreeMap<&str, Vec<(String, Option<String>)>> = BTreeMap::new();
    let mut push = |path: String, id: InodeId| {
        let inode = fs.inode(id);
        let mode = match inode.kind.file_type() {
            FileType::Directory => "dir",
            FileType::Regular => "file",
            FileType::Symlink => "lnk",
            FileType::CharDevice => "chr",
            FileType::BlockDevice => "blk",
            FileType::Fifo => "fifo",
            FileType::Socket => "sock",
        };
        let label = inode
            .stat
            .xattrs
            .get(b"security.selinux")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        by_type.entry(mode).or_default().push((path, label));
    };
    push("/".into(), InodeId::ROOT);
    fs.walk(|path, e| push(String::from_utf8_lossy(path).into_owned(), e.inode));
    let mut compared = 0;
    let mut differ = Vec::new();
    for (mode, list) in &by_type {
        for chunk in list.chunks(2000) {
            let out = Command::new("matchpathcon")
                .arg("-f")
                .arg(fc)
                .args(["-m", mode])
                .args(chunk.iter().map(|(p, _)| p))
                .output()
                .expect("matchpathcon");
            let text = String::from_utf8_lossy(&out.stdout);
            let answers: Vec<&str> = text.lines().collect();
            assert_eq!(answers.len(), chunk.len(), "matchpathcon output:\n{text}");
            for ((path, label), line) in chunk.iter().zip(answers) {
                let expected = line.split_once('\t').map_or(line, |(_, l)| l).trim();
                let ours = label.as_deref().unwrap_or("<<none>>");
                compared += 1;
                if expected != ours {
                    differ.push(format!(
                        "{path} ({mode}): ours {ours}, matchpathcon {expected}"
                    ));
                }
            }
        }
    }
    eprintln!(
        "SELinux: {compared} paths compared with matchpathcon, {} differ",
        differ.len()
    );
    assert!(compared > 10_000, "only {compared} paths");
    assert!(
        differ.is_empty(),
        "{} labels differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn debian_uki_sealed_wrong_digest_and_recovery() {
    let Some(reference) = reference() else { return };
    let Some(plain) = debian_os::build("plain", None) else {
        return;
    };
    // The boot image does not contain /boot, so a UKI added there does not
    // change it: seal the UKI for the plain image's V1 boot image.
    let karg = us(&[
        "--hash",
        "sha512",
        "--erofs-version",
        "1",
        "compute-karg",
        plain.join("rootfs").to_str().unwrap(),
    ]);
    let karg = karg.trim();
    let Some(uki) = debian_os::build("uki", Some(&format!("{karg} rw"))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, ids) = check_variant(dir.path(), &reference, "uki", &uki);
    assert!(karg.ends_with(&ids[&1].1), "{karg} vs {:?}", ids[&1]);
    // Our pull reports the sealed UKI (in a fresh repository: a repeated
    // pull finds the boot images named and builds nothing).
    let ours = dir.path().join("sealed");
    us(&["init", "--insecure", ours.to_str().unwrap()]);
    let listing = us(&[
        "--repo",
        ours.to_str().unwrap(),
        "oci",
        "pull",
        "--bootable",
        &format!("oci:{}:latest", uki.join("oci").display()),
        "t",
    ]);
    assert!(
        listing.contains("sealed   /boot/EFI/Linux/") && listing.contains(karg),
        "{listing}"
    );

    // A UKI sealed for another digest is refused, naming both ids.
    let wrong = format!("composefs={} rw", "ab".repeat(64));
    let Some(bad) = debian_os::build("uki", Some(&wrong)) else {
        return;
    };
    let repo = dir.path().join("bad");
    us(&["init", "--insecure", repo.to_str().unwrap()]);
    let err = us_fails(&[
        "--repo",
        repo.to_str().unwrap(),
        "oci",
        "pull",
        "--bootable",
        &format!("oci:{}:latest", bad.join("oci").display()),
        "t",
    ]);
    assert!(
        err.contains(&"ab".repeat(64)) && err.contains(&ids[&1].1) && err.contains(&ids[&2].1),
        "{err}"
    );

    // Recovery: a V1 repository asked for the V2 boot image finds it.
    let v2 = &ids[&2].1;
    let sub = dir.path().join("recovery");
    std::fs::create_dir_all(&sub).unwrap();
    let source = format!("oci:{}:latest", uki.join("oci").display());
    let (_, _, ours_out, theirs_out) = pull_both(
        &sub,
        &reference,
        &source,
        "1",
        &["--bootable", "--expected-digest", v2],
    );
    assert!(
        ours_out.contains(&format!(
            "boot     {v2} (xattr-mode=allowlist-only, format=V2)"
        )),
        "{ours_out}"
    );
    assert!(
        theirs_out.contains(&format!(
            "Boot image: {v2} (xattr-mode=allowlist-only, format-version=V2)"
        )),
        "{theirs_out}"
    );
}

/// A hand-made two-layer OS image with the cases that move ids: a kernel
/// whose first name (primary) is in /boot and whose hard link is in
/// /usr/lib/modules, a Type 1 entry, /sysroot content, user and SELinux
/// xattrs (kept or dropped by the xattr mode), a whiteout, a different mtime
/// on /usr.
fn edge_case_layers() -> Vec<crate::oci_support::Blob> {
    use crate::oci_support::{Hdr, Tar, gzip, plain};
    let xattr = |k: &str, v: &str| vec![(format!("SCHILY.xattr.{k}"), v.as_bytes().to_vec())];
    let mut l1 = Tar::default();
    l1.entry(
        Hdr {
            path: "usr/".into(),
            kind: b'5',
            mode: 0o755,
            mtime: 1_700_000_123,
            ..Hdr::default()
        },
        b"",
    );
    l1.dir("usr/bin/")
        .dir("usr/lib/")
        .dir("usr/lib/modules/")
        .dir("usr/lib/modules/6.1.0/");
    l1.dir("etc/")
        .dir("boot/")
        .dir("boot/loader/")
        .dir("boot/loader/entries/");
    l1.dir("sysroot/").dir("sysroot/ostree/");
    l1.file("boot/vmlinuz-6.1.0", &[0x4d; 5000]);
    l1.link(b'1', "usr/lib/modules/6.1.0/vmlinuz", "boot/vmlinuz-6.1.0");
    l1.file("usr/lib/modules/6.1.0/initramfs.img", &[0x11; 3000]);
    l1.file(
        "boot/loader/entries/os.conf",
        b"title OS\nversion 6.1.0\nlinux /boot/vmlinuz-6.1.0\n",
    );
    l1.file("sysroot/ostree/x", b"ostree");
    l1.entry(
        Hdr {
            path: "usr/bin/tool".into(),
            mode: 0o755,
            pax: [
                xattr("user.origin", "layer1"),
                xattr("security.selinux", "system_u:object_r:bin_t:s0"),
            ]
            .concat(),
            ..Hdr::default()
        },
        &[7u8; 300],
    );
    l1.file("etc/gone", b"gone");
    let mut l2 = Tar::default();
    l2.dir("etc/")
        .file("etc/.wh.gone", b"")
        .file("etc/os-release", b"ID=edge\nVERSION_ID=1\n");
    l2.entry(
        Hdr {
            path: "etc/hostname".into(),
            pax: xattr("user.note", "kept with keep-user-xattrs"),
            ..Hdr::default()
        },
        b"edge\n",
    );
    vec![plain(l1.finish()), gzip(l2.finish())]
}

#[test]
fn bootable_ids_of_a_multilayer_edge_case_image() {
    let Some(reference) = reference() else { return };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("edge");
    write_layout(&layout, "latest", &edge_case_layers());
    let source = format!("oci:{}:latest", layout.display());
    for version in ["1", "2"] {
        let sub = dir.path().join(format!("v{version}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (ours, theirs, ours_out, theirs_out) =
            pull_both(&sub, &reference, &source, version, &["--bootable"]);
        let v: u32 = version.parse().unwrap();
        assert_eq!(
            our_boot_id(&ours_out, v),
            reference_boot_id(&theirs_out),
            "V{version} boot id"
        );
        for xattrs in ["allowlist-only", "keep-user-xattrs"] {
            for v in ["1", "2"] {
                for boot in [&["--bootable"][..], &[]] {
                    let mut args = vec![
                        "--erofs-version",
                        v,
                        "oci",
                        "compute-id",
                        "--xattrs",
                        xattrs,
                    ];
                    args.extend(boot);
                    args.push("t");
                    let mut a = vec!["--repo", ours.to_str().unwrap()];
                    a.extend(&args);
                    let mut b = vec!["--repo", theirs.to_str().unwrap()];
                    b.extend(&args);
                    let (x, y) = (us(&a), them(&reference, &b));
                    assert_eq!(x, y, "{}", args.join(" "));
                    eprintln!(
                        "edge {}: ours {} reference {}",
                        args.join(" "),
                        x.trim(),
                        y.trim()
                    );
                }
            }
        }
        // Our boot dump and the reference's agree line by line.
        let dump = ["oci", "dump", "--bootable", "t"];
        let mut a = vec!["--repo", ours.to_str().unwrap()];
        a.extend(dump);
        let mut b = vec!["--repo", theirs.to_str().unwrap()];
        b.extend(dump);
        assert_eq!(us(&a), them(&reference, &b), "oci dump --bootable");
    }
}
