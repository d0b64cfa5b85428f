//! Kernel checks of composefs mounts (EROFS + overlayfs): `mount.composefs`
//! on an image built with `mkcomposefs --digest-store`, compared path by path
//! (type, mode, owner, size, mtime, xattrs, symlink target, SHA-256 of the
//! content) with the source tree; several basedirs, missing objects, upper
//! layers, verity enforcement as the object store's filesystem allows it, option errors, `cfsctl
//! mount`, and `mount -t composefs` through `/sbin/mount.composefs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::mount::{Mounted, build_source, walk, xattrs};
use crate::support::{privileged, run, sha256_file, tool};

/// A source tree, its image and digest store, and an empty mountpoint.
struct Fixture {
    tmp: tempfile::TempDir,
    src: PathBuf,
    image: PathBuf,
    store: PathBuf,
    mnt: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        build_source(&src);
        let image = tmp.path().join("image.cfs");
        let store = tmp.path().join("store");
        let o = run(tool("cfsctl")
            .arg("mkcomposefs")
            .arg(format!("--digest-store={}", store.display()))
            .arg(&src)
            .arg(&image));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        Fixture {
            tmp,
            src,
            image,
            store,
            mnt,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs `mount.composefs -o OPTIONS IMAGE MNT` with a private `TMPDIR`
    /// (checked to be empty afterwards: nothing is left behind).
    fn mount(&self, options: &str) -> (Output, Option<Mounted>) {
        let tmpdir = self.path("tmpdir");
        std::fs::create_dir_all(&tmpdir).unwrap();
        let o = run(tool("mount.composefs")
            .env("TMPDIR", &tmpdir)
            .arg("-o")
            .arg(options)
            .arg(&self.image)
            .arg(&self.mnt));
        let leftovers: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().collect();
        let mounted = o.status.success().then(|| Mounted(self.mnt.clone()));
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        (o, mounted)
    }

    fn mount_ok(&self, options: &str) -> Mounted {
        let (o, m) = self.mount(options);
        assert!(
            o.status.success(),
            "mount.composefs -o {options}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        m.unwrap()
    }

    /// Object paths (`xx/rest`) of the store.
    fn objects(&self) -> Vec<PathBuf> {
        walk(&self.store)
            .into_iter()
            .filter(|(_, md)| md.is_file())
            .map(|(p, _)| p)
            .collect()
    }
}

/// The object (relative to a store) holding `file`'s content.
fn object_of(file: &Path) -> PathBuf {
    let hex = String::from_utf8(run(tool("composefs-info").arg("measure-file").arg(file)).stdout)
        .unwrap();
    let hex = hex.trim();
    PathBuf::from(&hex[..2]).join(&hex[2..])
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Asserts that `mnt` shows exactly `src`: the root stubs `00`..`ff` are
/// invisible, and every entry has the same metadata and content.
fn assert_same_tree(src: &Path, mnt: &Path) {
    let source = walk(src);
    let mounted = walk(mnt);
    let extra: Vec<_> = mounted
        .keys()
        .filter(|p| !source.contains_key(*p))
        .collect();
    assert!(extra.is_empty(), "not in the source: {extra:?}");
    for (path, s) in &source {
        let m = mounted
            .get(path)
            .unwrap_or_else(|| panic!("{} missing", path.display()));
        let (sp, mp) = (src.join(path), mnt.join(path));
        let what = |field: &str| format!("{}: {field}", path.display());
        if is_whiteout(s) {
            // Stored escaped; the overlay shows an empty file carrying the
            // unescaped overlay whiteout marker.
            assert!(m.is_file() && m.size() == 0, "{}", what("whiteout"));
            assert_eq!(m.mode() & 0o7777, s.mode() & 0o7777, "{}", what("mode"));
            continue;
        }
        assert_eq!(m.mode(), s.mode(), "{}", what("mode"));
        assert_eq!((m.uid(), m.gid()), (s.uid(), s.gid()), "{}", what("owner"));
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (s.mtime(), s.mtime_nsec()),
            "{}",
            what("mtime")
        );
        if !s.is_dir() {
            assert_eq!(m.size(), s.size(), "{}", what("size"));
        }
        if s.file_type().is_char_device() || s.file_type().is_block_device() {
            assert_eq!(m.rdev(), s.rdev(), "{}", what("rdev"));
        }
        if s.is_symlink() {
            assert_eq!(
                std::fs::read_link(&mp).unwrap(),
                std::fs::read_link(&sp).unwrap(),
                "{}",
                what("target")
            );
        }
        assert_eq!(visible_xattrs(&mp), xattrs(&sp), "{}", what("xattrs"));
        if s.is_file() {
            assert_eq!(sha256_file(&mp), sha256_file(&sp), "{}", what("content"));
        }
    }
}

/// Xattrs without overlayfs's own (`trusted.overlay.*`).
fn visible_xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut x = xattrs(p);
    x.retain(|name, _| !name.starts_with(b"trusted.overlay."));
    x
}

fn open_errno(p: &Path) -> Option<i32> {
    std::fs::File::open(p).err().and_then(|e| e.raw_os_error())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn overlay_mount_matches_source() {
    if !privileged("overlay_mount_matches_source") {
        return;
    }
    let f = Fixture::new();
    let _m = f.mount_ok(&format!("basedir={}", f.store.display()));
    assert_same_tree(&f.src, &f.mnt);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(f.mnt.to_str().unwrap()))
        .expect("mount listed");
    assert!(
        line.starts_with("composefs ") && line.contains(" overlay "),
        "{line}"
    );
    assert!(line.contains("metacopy=on") && line.contains("redirect_dir=on"));
    // The whiteout marker of an escaped whiteout is unescaped by overlayfs.
    let wx = xattrs(&f.mnt.join("whiteout"));
    assert!(
        wx.keys().any(|k| k.ends_with(b"overlay.whiteout")),
        "{wx:?}"
    );
}

#[test]
fn two_basedirs_and_missing_objects() {
    if !privileged("two_basedirs_and_missing_objects") {
        return;
    }
    let f = Fixture::new();
    let second = f.path("store2");
    // dir/big only in the second store; dir/block in none.
    let in_second = object_of(&f.src.join("dir/big"));
    let missing = object_of(&f.src.join("dir/block"));
    assert!(f.objects().contains(&in_second) && f.objects().contains(&missing));
    std::fs::create_dir_all(second.join(in_second.parent().unwrap())).unwrap();
    std::fs::rename(f.store.join(&in_second), second.join(&in_second)).unwrap();
    std::fs::remove_file(f.store.join(&missing)).unwrap();

    let info = run(tool("composefs-info")
        .arg(format!("--basedir={}", f.store.display()))
        .arg("missing-objects")
        .arg(&f.image));
    assert!(info.status.success(), "{}", stderr(&info));
    let listed = String::from_utf8(info.stdout).unwrap();
    assert!(listed.lines().any(|l| Path::new(l) == missing), "{listed}");
    assert!(
        listed.lines().any(|l| Path::new(l) == in_second),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let _m = f.mount_ok(&format!(
        "basedir={}:{}",
        f.store.display(),
        second.display()
    ));
    assert_eq!(
        sha256_file(&f.mnt.join("dir/big")),
        sha256_file(&f.src.join("dir/big"))
    );
    let block = f.mnt.join("dir/block");
    assert_eq!(std::fs::metadata(&block).unwrap().size(), 4096);
    assert_eq!(open_errno(&block), Some(libc_errno::ENOENT));
    assert_eq!(
        std::fs::read(f.mnt.join("dir/one")).unwrap(),
        std::fs::read(f.src.join("dir/one")).unwrap()
    );
}

/// A basedir list far longer than a page (60 empty directories with
/// 200-byte names before the real store, ~14 KiB): every object directory
/// is used, none is cut off.
#[test]
fn long_basedir_list() {
    if !privileged("long_basedir_list") {
        return;
    }
    let f = Fixture::new();
    let mut dirs: Vec<String> = (0..60)
        .map(|i| {
            let d = f.path(&format!("{i:03}{}", "b".repeat(197)));
            std::fs::create_dir(&d).unwrap();
            d.display().to_string()
        })
        .collect();
    dirs.push(f.store.display().to_string());
    let options = format!("basedir={}", dirs.join(":"));
    assert!(options.len() > 12_000);
    let _m = f.mount_ok(&options);
    assert_eq!(
        sha256_file(&f.mnt.join("dir/big")),
        sha256_file(&f.src.join("dir/big"))
    );
}

#[test]
fn upper_layer_changes_leave_the_image_alone() {
    if !privileged("upper_layer_changes_leave_the_image_alone") {
        return;
    }
    let f = Fixture::new();
    let (upper, work) = (f.path("upper"), f.path("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let image_sha = sha256_file(&f.image);
    let store_before: Vec<(PathBuf, String)> = f
        .objects()
        .into_iter()
        .map(|p| (p.clone(), sha256_file(&f.store.join(p))))
        .collect();
    {
        let _m = f.mount_ok(&format!(
            "basedir={},upperdir={},workdir={}",
            f.store.display(),
            upper.display(),
            work.display()
        ));
        std::fs::write(f.mnt.join("new-file"), b"new").unwrap();
        let big = f.mnt.join("dir/big");
        let mut content = std::fs::read(&big).unwrap();
        content.extend_from_slice(b"appended");
        std::fs::write(&big, &content).unwrap();
        std::fs::remove_file(f.mnt.join("dir/ext-65")).unwrap();
        assert_eq!(std::fs::read(f.mnt.join("new-file")).unwrap(), b"new");
        assert_eq!(std::fs::read(&big).unwrap(), content);
        assert!(!f.mnt.join("dir/ext-65").exists());
        // The deletion is a whiteout (char 0:0) in the upper directory.
        let wh = std::fs::symlink_metadata(upper.join("dir/ext-65")).unwrap();
        assert!(is_whiteout(&wh));
    }
    assert_eq!(sha256_file(&f.image), image_sha);
    for (p, sha) in store_before {
        assert_eq!(sha256_file(&f.store.join(&p)), sha, "{}", p.display());
    }
    // The image alone still shows the original tree.
    let _m = f.mount_ok(&format!("basedir={},ro", f.store.display()));
    assert_same_tree(&f.src, &f.mnt);
    assert_eq!(
        std::fs::write(f.mnt.join("x"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc_errno::EROFS)
    );
}

/// `verity`/`tryverity` enforce fs-verity on the objects. Where the store's
/// filesystem has fs-verity, `mkcomposefs --digest-store` enabled it on
/// every object and the files read; where it has none (this host kernel, or
/// tmpfs), every redirected file fails with EIO. The test decides from the
/// objects which of the two to expect; the guest tests cover both cases on
/// one filesystem (`verity::drop_in`).
#[test]
fn verity_options_follow_object_verity() {
    if !privileged("verity_options_follow_object_verity") {
        return;
    }
    let f = Fixture::new();
    let objects = f.objects();
    let with_verity: Vec<bool> = objects
        .iter()
        .map(|p| {
            let file = std::fs::File::open(f.store.join(p)).unwrap();
            cfs_core::verity::measure_verity(std::os::fd::AsFd::as_fd(&file)).is_ok()
        })
        .collect();
    assert!(
        with_verity.iter().all(|&v| v) || with_verity.iter().all(|&v| !v),
        "all objects or none have fs-verity: {with_verity:?}"
    );
    let verity = with_verity[0];
    for option in ["verity", "tryverity"] {
        let m = f.mount_ok(&format!("basedir={},{option}", f.store.display()));
        // Inline files are served by EROFS; redirected ones need the object's
        // fs-verity digest.
        assert_eq!(
            std::fs::read(f.mnt.join("dir/one")).unwrap(),
            std::fs::read(f.src.join("dir/one")).unwrap()
        );
        if verity {
            assert_eq!(
                std::fs::read(f.mnt.join("dir/big")).unwrap(),
                std::fs::read(f.src.join("dir/big")).unwrap(),
                "{option}"
            );
        } else {
            assert_eq!(
                open_errno(&f.mnt.join("dir/big")),
                Some(libc_errno::EIO),
                "{option}"
            );
        }
        drop(m);
    }
}

#[test]
fn digest_and_option_errors() {
    // None of these reach the kernel's mount code: no privileges needed.
    let f = Fixture::new();
    let base = format!("basedir={}", f.store.display());
    let img = f.image.display().to_string();
    let cases: Vec<(String, String, bool)> = vec![
        (
            format!("{base},digest={}", "ab".repeat(32)),
            format!("mount.composefs: Failed to mount composefs {img}: Image has no fs-verity\n\n"),
            false,
        ),
        (
            format!("{base},digest=xyz"),
            format!("mount.composefs: Failed to mount composefs {img}: Invalid argument\n\n"),
            false,
        ),
        (
            "ro".to_string(),
            "mount.composefs: No object dirs specified\n\n".to_string(),
            true,
        ),
        (
            format!("{base},nodev"),
            "mount.composefs: Unsupported option nodev\n\n".to_string(),
            false,
        ),
        (
            "basedir=/a::/b".to_string(),
            "mount.composefs: Value for basedir option has incorrect format\n\n".to_string(),
            false,
        ),
        (
            "basedir".to_string(),
            "mount.composefs: No value specified for basedir option\n\n".to_string(),
            false,
        ),
        (
            format!("{base},upperdir=/tmp"),
            "mount.composefs: Both workdir and upperdir must be specified if used\n\n".to_string(),
            false,
        ),
    ];
    for (options, expected, usage) in cases {
        let o = run(tool("mount.composefs")
            .arg("-o")
            .arg(&options)
            .arg(&f.image)
            .arg(&f.mnt));
        assert_eq!(o.status.code(), Some(1), "{options}");
        let err = stderr(&o);
        assert!(err.starts_with(&expected), "{options}: {err:?}");
        assert_eq!(err.contains("usage:"), usage, "{options}: {err:?}");
    }
    let o = run(tool("mount.composefs")
        .args(["-t", "ext4", "-o"])
        .arg(&base)
        .arg(&f.image)
        .arg(&f.mnt));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "mount.composefs: Unsupported fs type 'ext4'\n\n"
    );
    let o = run(tool("mount.composefs")
        .arg("-o")
        .arg(&base)
        .arg(f.path("nope"))
        .arg(&f.mnt));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!(
        "mount.composefs: Failed to open {}: No such file or directory",
        f.path("nope").display()
    )));
    // Not a composefs image.
    let o = run(tool("mount.composefs")
        .arg("-o")
        .arg(&base)
        .arg(f.src.join("dir/big"))
        .arg(&f.mnt));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(": Invalid argument"), "{}", stderr(&o));
    let o = run(tool("cfsctl").args(["mount.composefs", "-h"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).starts_with("usage: mount.composefs"));
    let o = run(tool("mount.composefs").args(["-x"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("mount.composefs: invalid option -- 'x'\n"));
}

/// An insecure repository holding an image (named `name`) of a tree with a
/// small inline file `small` and an external file `d/big`, and an empty
/// mount point.
struct RepoImage {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    mnt: PathBuf,
    /// What `create-image` printed.
    id: String,
    /// The content of `d/big`.
    big: Vec<u8>,
}

impl RepoImage {
    fn new(name: &str) -> RepoImage {
        let tmp = tempfile::tempdir().unwrap();
        let (src, repo, mnt) = (
            tmp.path().join("src"),
            tmp.path().join("repo"),
            tmp.path().join("mnt"),
        );
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        std::fs::write(src.join("small"), b"hi").unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(src.join("d/big"), &big).unwrap();
        let mut r = RepoImage {
            _tmp: tmp,
            repo,
            mnt,
            id: String::new(),
            big,
        };
        r.cfsctl(&["init".as_ref(), "--insecure".as_ref()]);
        let out = r.cfsctl(&[
            "create-image".as_ref(),
            "--no-propagate-usr-to-root".as_ref(),
            src.as_os_str(),
            name.as_ref(),
        ]);
        r.id = String::from_utf8(out.stdout).unwrap();
        r
    }

    /// Runs `cfsctl --repo REPO ARGS…`, which must succeed.
    fn cfsctl(&self, args: &[&OsStr]) -> Output {
        let o = run(tool("cfsctl").arg("--repo").arg(&self.repo).args(args));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        o
    }
}

#[test]
fn cfsctl_mount_from_insecure_repository() {
    if !privileged("cfsctl_mount_from_insecure_repository") {
        return;
    }
    let r = RepoImage::new("myimage");
    let (repo, mnt, big) = (&r.repo, &r.mnt, &r.big);
    let cfsctl = |args: &[&OsStr]| String::from_utf8(r.cfsctl(args).stdout).unwrap();
    let hex = r.id.trim().rsplit(':').next().unwrap().to_string();
    for name in ["myimage", "refs/myimage", hex.as_str()] {
        cfsctl(&["mount".as_ref(), name.as_ref(), mnt.as_os_str()]);
        let _m = Mounted(mnt.clone());
        assert_eq!(&std::fs::read(mnt.join("d/big")).unwrap(), big, "{name}");
        assert_eq!(std::fs::read(mnt.join("small")).unwrap(), b"hi");
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let line = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(mnt.to_str().unwrap()))
            .unwrap();
        assert!(line.starts_with(&format!("composefs:{hex} ")), "{line}");
        let options = line.split(' ').nth(3).unwrap();
        assert!(
            !options.split(',').any(|o| o.starts_with("verity")),
            "insecure: no verity option ({line})"
        );
        cfsctl(&["umount".as_ref(), mnt.as_os_str()]);
        assert!(!mnt.join("small").exists());
    }
    // Only images/: an object that is not an image is refused.
    let o = run(tool("cfsctl")
        .arg("--repo")
        .arg(repo)
        .args(["mount", "no-such-image"])
        .arg(mnt));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn gc_keeps_mounted_images() {
    if !privileged("gc_keeps_mounted_images") {
        return;
    }
    let r = RepoImage::new("live");
    let (repo, mnt, big) = (&r.repo, &r.mnt, &r.big);
    let cfsctl = |args: &[&OsStr]| r.cfsctl(args);
    cfsctl(&["mount".as_ref(), "live".as_ref(), mnt.as_os_str()]);
    let m = Mounted(mnt.clone());
    // The name goes; the mount stays and must keep working.
    std::fs::remove_file(repo.join("images/refs/live")).unwrap();
    let o = cfsctl(&["gc".as_ref()]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Objects: 0 removed"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        stderr(&o).contains("Kept 1 mounted image"),
        "{}",
        stderr(&o)
    );
    assert_eq!(&std::fs::read(mnt.join("d/big")).unwrap(), big);
    drop(m);
    // Unmounted, it is garbage like any unnamed image.
    let o = cfsctl(&["gc".as_ref()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("Objects: 2 removed"), "{out}");
}

#[test]
fn mount_t_composefs_through_sbin_helper() {
    if !privileged("mount_t_composefs_through_sbin_helper") {
        return;
    }
    let helper = Path::new("/sbin/mount.composefs");
    if helper.symlink_metadata().is_ok() {
        eprintln!(
            "mount_t_composefs_through_sbin_helper: {} exists, not replaced",
            helper.display()
        );
        return;
    }
    /// Removes the helper link when dropped.
    struct Link<'a>(&'a Path);
    impl Drop for Link<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cfsctl"), helper).unwrap();
    let _link = Link(helper);
    let f = Fixture::new();
    let o = std::process::Command::new("mount")
        .args(["-t", "composefs", "-o"])
        .arg(format!("basedir={}", f.store.display()))
        .arg(&f.image)
        .arg(&f.mnt)
        .output()
        .expect("mount(8)");
    assert!(o.status.success(), "mount -t composefs: {}", stderr(&o));
    let _m = Mounted(f.mnt.clone());
    assert_same_tree(&f.src, &f.mnt);
}

/// A child process in a new user namespace mapping 0..65536 to
/// 100000..165536; killed when dropped.
struct UserNamespace(std::process::Child);

impl UserNamespace {
    fn new() -> UserNamespace {
        let child = std::process::Command::new("unshare")
            .args(["--user", "sleep", "600"])
            .spawn()
            .expect("unshare(1)");
        let ns = UserNamespace(child);
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        let path = ns.path();
        for _ in 0..500 {
            if std::fs::read_link(&path).is_ok_and(|n| n != own) {
                // Root in the parent namespace may write any mapping.
                let pid = ns.0.id();
                std::fs::write(format!("/proc/{pid}/uid_map"), "0 100000 65536").unwrap();
                std::fs::write(format!("/proc/{pid}/gid_map"), "0 100000 65536").unwrap();
                return ns;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("unshare --user did not create a namespace");
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/user", self.0.id()))
    }
}

impl Drop for UserNamespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn idmapped_mount() {
    if !privileged("idmapped_mount") {
        return;
    }
    let f = Fixture::new();
    let ns = UserNamespace::new();
    let mounted = f.mount_ok(&format!(
        "basedir={},idmap={}",
        f.store.display(),
        ns.path().display()
    ));
    // Ids outside the mapping show as the overflow id 65534.
    let mapped = |id: u32| if id < 65536 { id + 100_000 } else { 65534 };
    let source = walk(&f.src);
    for (path, s) in &source {
        let m = std::fs::symlink_metadata(f.mnt.join(path)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (mapped(s.uid()), mapped(s.gid())),
            "{}",
            path.display()
        );
    }
    assert_eq!(
        sha256_file(&f.mnt.join("dir/big")),
        sha256_file(&f.src.join("dir/big"))
    );
    drop(mounted);
    let (o, _) = f.mount(&format!(
        "basedir={},idmap={}",
        f.store.display(),
        f.path("no-ns").display()
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!(
            "mount.composefs: Failed to open userns {}: No such file or directory",
            f.path("no-ns").display()
        )),
        "{}",
        stderr(&o)
    );
}

/// The errno values the tests expect (Linux).
mod libc_errno {
    pub(super) const ENOENT: i32 = 2;
    pub(super) const EIO: i32 = 5;
    pub(super) const EROFS: i32 = 30;
}
