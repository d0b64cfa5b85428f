//! Kernel tests of the paths `mount_image` does not take on a recent kernel:
//! EROFS through a loop device, overlay layers given as paths, and the legacy
//! `mount(2)` data string. They need root; without it they are skipped,
//! unless `CFS_TEST_PRIVILEGED=require`.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::UnmountFlags;

use super::erofs::{ErofsMount, LoopDevice, mount_source};
use super::overlay::{Layer, Outcome, OverlaySettings, mount_legacy, mount_new};
use super::{TempMountpoint, VerityMode};
use crate::erofs::writer::{WriteOptions, write_image};
use crate::tree::{ContentOptions, ScanOptions, build_from_directory};
use crate::verity::Algorithm;

fn privileged(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CFS_TEST_PRIVILEGED").as_deref() != Ok("require"),
        "{test}: needs root, and CFS_TEST_PRIVILEGED=require"
    );
    false
}

/// Detaches a mount when dropped.
struct Detach(PathBuf);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, UnmountFlags::DETACH);
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    image: File,
    store: PathBuf,
    big: Vec<u8>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(src.join("big"), &big).unwrap();
    std::fs::write(src.join("small"), b"abc").unwrap();
    let store = tmp.path().join("store");
    let opts = ContentOptions {
        algorithm: Algorithm::Sha256,
        inline_max: 64,
        threads: 1,
        store: Some(store.clone()),
    };
    let tree = build_from_directory(&src, &ScanOptions::default(), &opts).unwrap();
    let path = tmp.path().join("image.cfs");
    write_image(
        &tree.fs,
        &WriteOptions::default(),
        File::create(&path).unwrap(),
    )
    .unwrap();
    Fixture {
        image: File::open(&path).unwrap(),
        tmp,
        store,
        big,
    }
}

fn settings() -> OverlaySettings<'static> {
    OverlaySettings {
        source: "composefs-test",
        verity: VerityMode::Off,
        upperdir: None,
        workdir: None,
        read_only: true,
    }
}

fn mount_line(target: &Path) -> String {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(target.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} not mounted", target.display()))
        .to_string()
}

#[test]
fn erofs_through_a_loop_device() {
    if !privileged("erofs_through_a_loop_device") {
        return;
    }
    let f = fixture();
    let mut temp = TempMountpoint::create(f.tmp.path()).unwrap();
    {
        let device = LoopDevice::attach(&f.image).unwrap();
        let mount = mount_source(device.path.as_os_str(), false, None, &mut temp).unwrap();
        let ErofsMount::Detached(fd) = mount else {
            panic!("new mount API expected")
        };
        rustix::mount::move_mount(
            fd.as_fd(),
            "",
            rustix::fs::CWD,
            temp.path(),
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .unwrap();
        temp.set_mounted();
        let line = mount_line(temp.path());
        assert!(
            line.starts_with(&format!("{} ", device.path.display())),
            "{line}"
        );
        assert!(line.contains(" erofs ro"), "{line}");
    }
    assert_eq!(std::fs::read(temp.path().join("small")).unwrap(), b"abc");
    // Without the overlay the external file is a hole of the right size.
    assert_eq!(
        std::fs::metadata(temp.path().join("big")).unwrap().len(),
        f.big.len() as u64
    );
    let path = temp.path().to_path_buf();
    drop(temp);
    assert!(!path.exists(), "temporary mountpoint removed");
}

/// The fixture's image mounted (new API, then moved) on a temporary
/// mountpoint, and an empty directory to mount the overlay on.
fn erofs_at_temp() -> (Fixture, TempMountpoint, std::path::PathBuf) {
    let f = fixture();
    let mut temp = TempMountpoint::create(f.tmp.path()).unwrap();
    let source = super::erofs::fd_path(f.image.as_fd());
    let ErofsMount::Detached(fd) = mount_source(&source, false, None, &mut temp).unwrap() else {
        panic!("new mount API expected")
    };
    rustix::mount::move_mount(
        fd.as_fd(),
        "",
        rustix::fs::CWD,
        temp.path(),
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .unwrap();
    temp.set_mounted();
    let target = f.tmp.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    (f, temp, target)
}

#[test]
fn overlay_with_path_layers_and_legacy_data() {
    if !privileged("overlay_with_path_layers_and_legacy_data") {
        return;
    }
    let (f, temp, target) = erofs_at_temp();
    let s = settings();

    // New API, layers as path strings (what kernels 6.7 – 6.14 get).
    let outcome = mount_new(
        &s,
        Layer::Path(temp.path()),
        &[Layer::Path(&f.store)],
        &target,
    )
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    assert!(matches!(outcome, Outcome::Mounted));
    {
        let _m = Detach(target.clone());
        let line = mount_line(&target);
        assert!(line.starts_with("composefs-test "), "{line}");
        assert!(
            line.contains(&format!("lowerdir+={}", temp.path().display())),
            "{line}"
        );
        assert_eq!(std::fs::read(target.join("big")).unwrap(), f.big);
    }

    // mount(2) with the data string (what kernels without lowerdir+ get).
    mount_legacy(&s, temp.path(), &[&f.store], &target).unwrap();
    {
        let _m = Detach(target.clone());
        let line = mount_line(&target);
        assert!(
            line.contains(&format!(
                "lowerdir={}::{}",
                temp.path().display(),
                f.store.display()
            )),
            "{line}"
        );
        assert_eq!(std::fs::read(target.join("big")).unwrap(), f.big);
        assert_eq!(std::fs::read(target.join("small")).unwrap(), b"abc");
    }
}

#[test]
fn kernel_log_is_attached_to_errors() {
    if !privileged("kernel_log_is_attached_to_errors") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = super::context::FsContext::open("overlay").unwrap();
    ctx.set_string("datadir+", tmp.path().as_os_str()).unwrap();
    // overlayfs reports this one through the fs context (invalfc).
    let e = ctx
        .set_string("lowerdir+", tmp.path().as_os_str())
        .unwrap_err();
    assert_eq!(e.errno(), rustix::io::Errno::INVAL);
    assert!(
        e.kernel_log()
            .iter()
            .any(|l| l.contains("cannot follow data layers")),
        "{e}"
    );
    assert!(e.to_string().starts_with("overlay lowerdir+="), "{e}");
}

/// `count` empty object directories with long names (`name_len` bytes),
/// then `last`: a basedir list whose data string is far beyond one page.
fn long_basedir_list(dir: &Path, count: usize, name_len: usize, last: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = (0..count)
        .map(|i| {
            let d = dir.join(format!("{i:04}{}", "d".repeat(name_len - 4)));
            std::fs::create_dir(&d).unwrap();
            d
        })
        .collect();
    dirs.push(last.to_path_buf());
    dirs
}

#[test]
fn long_basedir_lists_are_never_cut() {
    if !privileged("long_basedir_lists_are_never_cut") {
        return;
    }
    let (f, temp, target) = erofs_at_temp();
    let s = settings();
    // 60 directories of 200-byte names before the real object store: about
    // 14 KiB of paths. The objects are only in the last one.
    let many = f.tmp.path().join("many");
    std::fs::create_dir(&many).unwrap();
    let dirs = long_basedir_list(&many, 60, 200, &f.store);
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    assert!(
        super::overlay::legacy_data(&s, temp.path(), &refs, true).len()
            > 3 * super::overlay::MAX_MOUNT_DATA
    );

    // The mount(2) fallback: layers as /proc/self/fd/N, all 61 of them.
    mount_legacy(&s, temp.path(), &refs, &target).unwrap();
    {
        let _m = Detach(target.clone());
        let line = mount_line(&target);
        assert!(line.contains("::/proc/self/fd/"), "{line}");
        assert_eq!(line.matches("::").count(), 61, "{line}");
        assert_eq!(std::fs::read(target.join("big")).unwrap(), f.big);
    }

    // The new API: one datadir+ per basedir, the paths as given.
    let data: Vec<Layer<'_>> = refs.iter().map(|&p| Layer::Path(p)).collect();
    let outcome = mount_new(&s, Layer::Path(temp.path()), &data, &target)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    assert!(matches!(outcome, Outcome::Mounted));
    {
        let _m = Detach(target.clone());
        assert_eq!(std::fs::read(target.join("big")).unwrap(), f.big);
    }
}
