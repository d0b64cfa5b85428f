//! `cfsctl setup-root` (and its `composefs-setup-root` name) on the host, as
//! root: a physical root installed by `system install to-filesystem`, the new
//! root mounted with `--target`, every kernel-argument form and every
//! configuration checked through the real mounts; the errors an initramfs
//! would print.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::oci_support::exec;

/// Unmounts everything stacked on each path (lazily) when dropped.
struct Unmount(Vec<PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in &self.0 {
            for _ in 0..8 {
                if rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH).is_err() {
                    break;
                }
            }
        }
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    root: PathBuf,
    id: String,
    /// The installed entry's options (`composefs.digest=?v1-sha512-12:<id>`…).
    options: String,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let image = crate::system_model::os_layout(tmp.path(), 1);
        let (root, esp) = (tmp.path().join("root"), tmp.path().join("esp"));
        std::fs::create_dir_all(&root).unwrap();
        let out = crate::boot::us(&[
            "system",
            "install",
            "to-filesystem",
            "--allow-missing-verity",
            "--bootloader",
            "none",
            "--boot-dir",
            esp.to_str().unwrap(),
            &image,
            root.to_str().unwrap(),
        ]);
        let id = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("deployment "))
            .unwrap()
            .trim()
            .to_owned();
        let entry =
            std::fs::read_to_string(esp.join("loader/entries/bootc_testos-1-1.conf")).unwrap();
        let options = entry
            .lines()
            .find_map(|l| l.strip_prefix("options "))
            .unwrap()
            .to_owned();
        Fixture {
            tmp,
            root,
            id,
            options,
        }
    }

    fn state(&self) -> PathBuf {
        self.root.join("state/deploy").join(&self.id)
    }

    /// Runs setup-root with `cmdline` and `config` (TOML text) on a fresh
    /// target; returns the target, its unmount guard and the output.
    fn setup(
        &self,
        name: &str,
        cmdline: &str,
        config: Option<&str>,
    ) -> (PathBuf, Unmount, std::process::Output) {
        let target = self.tmp.path().join(format!("target-{name}"));
        let run = self.tmp.path().join(format!("run-{name}"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let guard = Unmount(vec![
            target.join("var"),
            target.join("etc"),
            target.join("sysroot"),
            target.clone(),
            run.join("cfs-transient-etc"),
            run.join("cfs-transient-root"),
        ]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cfsctl"));
        cmd.stdin(Stdio::null()).args([
            "setup-root",
            "--cmdline",
            cmdline,
            "--sysroot",
            self.root.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ]);
        if let Some(text) = config {
            let conf = self.tmp.path().join(format!("{name}.toml"));
            std::fs::write(&conf, text).unwrap();
            cmd.arg("--config").arg(&conf);
        }
        let out = exec(&mut cmd);
        (target, guard, out)
    }
}

/// The mount on `path` (the last one stacked there): (fstype, source, options).
fn mount_at(path: &Path) -> Option<(String, String, String)> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.to_str().unwrap();
    table
        .lines()
        .filter_map(|l| {
            let (before, after) = l.split_once(" - ")?;
            let f: Vec<&str> = before.split(' ').collect();
            let a: Vec<&str> = after.split(' ').collect();
            (f.get(4) == Some(&want)).then(|| (a[0].to_owned(), a[1].to_owned(), f[5].to_owned()))
        })
        .next_back()
}

fn ok(out: &std::process::Output) -> String {
    crate::oci_support::ok("cfsctl setup-root", out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn is_read_only(p: &Path) -> bool {
    std::fs::write(p, "x")
        .err()
        .is_some_and(|e| e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()))
}

#[test]
fn setup_root_mounts_every_form_and_configuration() {
    if !crate::support::privileged("setup_root_mounts_every_form_and_configuration") {
        return;
    }
    let f = Fixture::new();
    let id = f.id.clone();
    assert!(
        f.options
            .contains(&format!("composefs.digest=?v1-sha512-12:{id}")),
        "{}",
        f.options
    );
    std::fs::write(f.state().join("etc/local.conf"), "local\n").unwrap();

    // The default (bootc's): image read-only, /etc and /var bound, sysroot read-only.
    let (t, _g, out) = f.setup("default", &format!("root=UUID=x rw {}", f.options), None);
    let msg = ok(&out);
    assert!(msg.contains(&format!("composefs: mounted {id}")), "{msg}");
    let (fstype, source, options) = mount_at(&t).unwrap();
    assert_eq!(
        (fstype.as_str(), source.as_str()),
        ("overlay", format!("composefs:{id}").as_str())
    );
    assert!(options.split(',').any(|o| o == "ro"), "{options}");
    assert!(
        std::fs::read_to_string(t.join("usr/bin/tool"))
            .unwrap()
            .starts_with("tool version 1")
    );
    assert!(is_read_only(&t.join("usr/new")), "the image is read-only");
    assert_eq!(
        std::fs::read_to_string(t.join("etc/local.conf")).unwrap(),
        "local\n"
    );
    std::fs::write(t.join("etc/written"), "w\n").unwrap();
    assert!(
        f.state().join("etc/written").is_file(),
        "/etc is the state's"
    );
    assert_eq!(
        std::fs::read_to_string(t.join("var/lib/seed")).unwrap(),
        "seeded once\n"
    );
    std::fs::write(t.join("var/lib/new"), "v\n").unwrap();
    assert!(
        f.root.join("state/os/default/var/lib/new").is_file(),
        "/var is the shared var"
    );
    assert!(t.join("sysroot/composefs/meta.json").is_file());
    assert!(
        is_read_only(&t.join("sysroot/x")),
        "the physical root is read-only"
    );
    drop(_g);

    // Every argument form finds the same image; `?` means no verity.
    for (name, arg) in [
        ("short", format!("composefs=?{id}")),
        ("bare", format!("composefs.digest=?{id}")),
        (
            "both",
            format!(
                "composefs=?{} composefs.digest=?v1-sha512-12:{id}",
                "ab".repeat(64)
            ),
        ),
    ] {
        let (t, _g, out) = f.setup(name, &arg, Some(""));
        let msg = ok(&out);
        assert!(msg.contains("verity not enforced"), "{name}: {msg}");
        assert_eq!(mount_at(&t).unwrap().1, format!("composefs:{id}"), "{name}");
    }

    // /etc overlay: changes land in etc.upper, the image's /etc below.
    let (t, _g, out) = f.setup("overlay", &f.options, Some("[etc]\nmount = \"overlay\"\n"));
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(t.join("etc/os-config")).unwrap(),
        "version=1\n"
    );
    assert!(
        !t.join("etc/local.conf").exists(),
        "the image's /etc, not the state's"
    );
    std::fs::write(t.join("etc/ov"), "o\n").unwrap();
    assert!(f.state().join("etc.upper/ov").is_file());
    drop(_g);

    // /etc transient: writable, kept nowhere; /var none: the image's.
    let (t, _g, out) = f.setup(
        "transient",
        &f.options,
        Some("[etc]\ntransient = true\n[var]\nmount = \"none\"\n"),
    );
    ok(&out);
    std::fs::write(t.join("etc/tr"), "t\n").unwrap();
    assert!(!f.state().join("etc/tr").exists() && !f.state().join("etc.upper/tr").exists());
    assert!(
        is_read_only(&t.join("var/lib/x")),
        "/var is the image's, read-only"
    );
    drop(_g);

    // /etc none: the image's, read-only.
    let (t, _g, out) = f.setup("none", &f.options, Some("[etc]\nmount = \"none\"\n"));
    ok(&out);
    assert!(is_read_only(&t.join("etc/x")));
    drop(_g);

    // systemd.volatile=state skips the /var bind unless [var] is configured.
    let (t, _g, out) = f.setup(
        "volatile",
        &format!("{} systemd.volatile=state", f.options),
        Some(""),
    );
    assert!(ok(&out).contains("/var skipped (systemd.volatile)"));
    assert!(mount_at(&t.join("var")).is_none());
    drop(_g);
    let (t, _g, out) = f.setup(
        "volatile-var",
        &format!("{} systemd.volatile=state", f.options),
        Some("[var]\nmount = \"bind\"\n"),
    );
    ok(&out);
    assert!(mount_at(&t.join("var")).is_some());
    drop(_g);

    // Transient root: a tmpfs overlay over the image.
    let (t, _g, out) = f.setup("troot", &f.options, Some("[root]\ntransient = true\n"));
    ok(&out);
    assert_eq!(mount_at(&t).unwrap().1, format!("transient:composefs={id}"));
    std::fs::write(t.join("usr/new"), "n\n").unwrap();
    assert!(t.join("sysroot/composefs").is_dir());
    drop(_g);

    // As `composefs-setup-root` (argv[0]).
    let link = f.tmp.path().join("composefs-setup-root");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cfsctl"), &link).unwrap();
    let target = f.tmp.path().join("target-argv0");
    std::fs::create_dir_all(&target).unwrap();
    let _g = Unmount(vec![
        target.join("var"),
        target.join("etc"),
        target.join("sysroot"),
        target.clone(),
    ]);
    let out = exec(Command::new(&link).args([
        "--cmdline",
        &f.options,
        "--sysroot",
        f.root.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]));
    ok(&out);
    assert_eq!(mount_at(&target).unwrap().1, format!("composefs:{id}"));
}

#[test]
fn setup_root_errors_are_early_and_plain() {
    if !crate::support::privileged("setup_root_errors_are_early_and_plain") {
        return;
    }
    let f = Fixture::new();
    let id = f.id.clone();
    let err = |name: &str, cmdline: &str, config: Option<&str>| {
        let (t, _g, out) = f.setup(name, cmdline, config);
        assert!(!out.status.success(), "{name} succeeded");
        assert!(
            mount_at(&t).is_none(),
            "{name}: a failure leaves nothing mounted"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = "ab".repeat(64);
    let e = err("missing", &format!("composefs=?{missing}"), None);
    assert!(
        e.contains(&format!(
            "composefs image {missing} (from composefs=?{missing}) not found"
        )) && e.contains(&format!("the repository has 1 image(s): {id}")),
        "{e}"
    );
    let e = err("none", "root=/dev/vda2 rw quiet", None);
    assert!(
        e.contains("no composefs= or composefs.digest= argument"),
        "{e}"
    );
    let e = err("bad-config", &f.options, Some("[etc]\nmount = \"tmpfs\"\n"));
    assert!(
        e.contains("line 2") && e.contains("\"tmpfs\" is not bind"),
        "{e}"
    );
    // No state directory: named.
    std::fs::rename(f.state(), f.tmp.path().join("moved")).unwrap();
    let e = err("nostate", &f.options, None);
    assert!(
        e.contains("the deployment's state directory is missing"),
        "{e}"
    );
    std::fs::rename(f.tmp.path().join("moved"), f.state()).unwrap();
    // Without `?` the image must have fs-verity with its id as digest.
    let verity = Command::new("fsverity")
        .arg("measure")
        .arg(f.root.join("composefs/images").join(&id))
        .output()
        .is_ok_and(|o| o.status.success());
    if !verity {
        let e = err(
            "noverity",
            &format!("composefs.digest=v1-sha512-12:{id}"),
            None,
        );
        assert!(e.contains(&format!("mounting composefs image {id}")), "{e}");
        assert!(e.to_lowercase().contains("verity"), "{e}");
    }
}
