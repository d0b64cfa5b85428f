//! The guest tests: the project's privileged test binaries, and the tests
//! that need fs-verity (`integration`'s `verity::` module), run inside a
//! QEMU guest on a Debian 6.12 kernel, with `TMPDIR` on an ext4 filesystem
//! with the `verity` feature (and `CFS_TEST_NOVERITY_DIR` on one without).
//!
//! The guests (one vCPU each) run one after the other beside the VM boot
//! test (libtest starts the tests of this binary in name order, two at a
//! time on two cores: `boot::…` first, then these in turn). Each test
//! fails on any
//! guest failure: a failed or missing test, a suite that did not finish, a
//! kernel panic, a guest that did not boot or overran its time limit.
//!
//! Needs `qemu-system-x86_64`, `busybox` (static), `mkfs.ext4`, `depmod`,
//! `dpkg-deb`, `apt-get` and `xz`, and network access for the first kernel
//! download (cached afterwards, see `cfs_vmtest::cache`). Without them the
//! tests are skipped, unless `CFS_TEST_PRIVILEGED=require`; `CFS_TEST_VM=skip`
//! skips them explicitly (not in CI).
#![allow(clippy::print_stderr)]

use std::sync::OnceLock;
use std::time::Duration;

use crate::workspace;
use cfs_vmtest::cargo::{TestBinary, find, test_binaries};
use cfs_vmtest::{Guest, GuestReport, Kernel, Suite, find_tool};

/// Host tools the harness runs.
const TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "busybox",
    "mkfs.ext4",
    "depmod",
    "dpkg-deb",
    "apt-get",
    "xz",
];

/// The kernel and test binaries, prepared once per process; `None` when the
/// tests are skipped.
fn prepared(test: &str) -> Option<&'static (Kernel, Vec<TestBinary>)> {
    static PREPARED: OnceLock<Result<(Kernel, Vec<TestBinary>), String>> = OnceLock::new();
    let require = std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require");
    if std::env::var("CFS_TEST_VM").as_deref() == Ok("skip") {
        assert!(
            !require,
            "{test}: CFS_TEST_VM=skip with CFS_TEST_PRIVILEGED=require"
        );
        eprintln!("{test}: skipped (CFS_TEST_VM=skip)");
        return None;
    }
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if !missing.is_empty() {
        assert!(
            !require,
            "{test}: missing {missing:?}, and CFS_TEST_PRIVILEGED=require"
        );
        eprintln!("{test}: skipped (missing {missing:?}; .ci/run installs them)");
        return None;
    }
    let prepared = PREPARED.get_or_init(|| {
        let kernel = cfs_vmtest::kernel::debian_6_12().map_err(|e| format!("{e:#}"))?;
        let bins = test_binaries(&workspace()).map_err(|e| format!("{e:#}"))?;
        Ok((kernel, bins))
    });
    match prepared {
        Ok(p) => Some(p),
        Err(e) => panic!("{test}: preparing the guest failed: {e}"),
    }
}

/// A suite named `<target>-<module>` running exactly the tests of `bin`
/// whose names start with `module` (listed on the host: libtest's own filter matches substrings,
/// so `repo::` would also pick `verity::secure_repo::…`). No such test is
/// an error: a renamed module must not silently drop out of the guest.
fn module_suite(bin: &TestBinary, module: &str) -> Suite {
    let out = std::process::Command::new(&bin.path)
        .args(["--list", "--format", "terse"])
        .output()
        .unwrap_or_else(|e| panic!("listing the tests of {}: {e}", bin.path.display()));
    assert!(
        out.status.success(),
        "{} --list: {out:?}",
        bin.path.display()
    );
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|t| t.starts_with(module))
        .map(str::to_owned)
        .collect();
    assert!(
        !names.is_empty(),
        "{}: no test starts with {module}",
        bin.path.display()
    );
    let mut args: Vec<&str> = vec!["--exact"];
    args.extend(names.iter().map(String::as_str));
    let name = format!("{}-{}", bin.target, module.trim_end_matches("::"));
    suite(&name, bin, &args, 15)
}

/// A suite running `bin` with libtest arguments.
fn suite(name: &str, bin: &TestBinary, args: &[&str], minutes: u64) -> Suite {
    let mut argv = vec![bin.path.display().to_string()];
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    // One test at a time: the guest has one vCPU, and output stays in order.
    argv.push("--test-threads=1".into());
    Suite {
        name: name.to_owned(),
        cwd: bin.package_dir.clone(),
        argv,
        env: Vec::new(),
        timeout: Duration::from_secs(minutes * 60),
    }
}

/// Runs `guest` and fails the test with everything useful when the guest
/// reports any failure.
fn run_and_check(guest: &Guest) -> GuestReport {
    let report = guest
        .run()
        .unwrap_or_else(|e| panic!("{}: {e:#}", guest.name));
    eprintln!("{}", report.summary());
    let failures = report.failures();
    if !failures.is_empty() {
        let mut msg = format!("guest {} failed:\n", guest.name);
        for f in &failures {
            msg.push_str(&format!("  - {f}\n"));
        }
        for s in &report.suites {
            if s.status != Some(0) {
                msg.push_str(&format!(
                    "\n--- output of {} (last 150 lines) ---\n",
                    s.name
                ));
                let lines: Vec<&str> = s.output.lines().collect();
                msg.push_str(&lines[lines.len().saturating_sub(150)..].join("\n"));
            }
        }
        let console: Vec<&str> = report.console.lines().collect();
        msg.push_str("\n--- guest console (last 60 lines) ---\n");
        msg.push_str(&console[console.len().saturating_sub(60)..].join("\n"));
        msg.push_str(&format!("\n\n{}", report.per_test()));
        panic!("{msg}");
    }
    report
}

fn guest(name: &str, kernel: &Kernel) -> Guest {
    let mut g = Guest::new(name, kernel.clone());
    g.env = vec![
        ("CFS_TEST_PRIVILEGED".into(), "require".into()),
        ("CFS_TEST_VERITY".into(), "require".into()),
        (
            "CFS_TEST_NOVERITY_DIR".into(),
            cfs_vmtest::guest::PLAIN_DIR.into(),
        ),
    ];
    for var in ["CFS_REFERENCE_CFSCTL", "CFS_REFERENCE_OCI_CFSCTL"] {
        if let Some(v) = std::env::var_os(var) {
            g.env.push((var.into(), v.to_string_lossy().into_owned()));
        }
    }
    g
}

/// The fs-verity tests of `integration`, every unit test of `cfs-core` (its
/// repository and mount tests among them), the import crash test and the
/// drop-in tool tests, on a filesystem with fs-verity.
#[test]
fn guest_verity_and_core() {
    let Some((kernel, bins)) = prepared("guest_verity_and_core") else {
        return;
    };
    let mut g = guest("verity", kernel);
    let integration = find(bins, "cfs-cli", "integration").unwrap();
    g.suites.push(module_suite(integration, "verity::"));
    let core = find(bins, "cfs-core", "cfs_core").unwrap();
    g.suites.push(suite("cfs-core", core, &[], 15));
    // Repository crash safety (SIGKILLed imports) and the drop-in tools,
    // with objects getting fs-verity.
    g.suites
        .extend(["crash::", "crash_gc::", "cli::"].map(|m| module_suite(integration, m)));
    let report = run_and_check(&g);
    let verity = &report.suites[0];
    assert!(
        verity.count(cfs_vmtest::Outcome::Passed) >= 10,
        "the verity suite ran only {} tests",
        verity.tests.len()
    );
}

/// The privileged CLI tests (mounts, repositories, OCI, SIGKILLed pulls) on
/// the guest kernel.
#[test]
fn guest_privileged_cli() {
    let Some((kernel, bins)) = prepared("guest_privileged_cli") else {
        return;
    };
    let mut g = guest("cli", kernel);
    let integration = find(bins, "cfs-cli", "integration").unwrap();
    g.suites.extend(
        [
            "mount::",
            "mount_overlay::",
            "repo::",
            "repo_hardening::",
            "repo_interop::",
            "oci::",
            "oci_hardening::",
            "oci_interop::",
            "crash_oci::",
        ]
        .map(|m| module_suite(integration, m)),
    );
    let oci = find(bins, "cfs-oci", "cfs_oci").unwrap();
    g.suites.push(suite("cfs-oci", oci, &[], 15));
    run_and_check(&g);
}

/// The harness itself: a failed test, a suite over its time limit and a
/// kernel panic are each reported; a guest over the run's time limit is
/// killed and reported.
#[test]
fn harness_reports_every_failure() {
    let Some((kernel, _)) = prepared("harness_reports_every_failure") else {
        return;
    };
    let sh = |name: &str, script: &str, secs: u64| Suite {
        name: name.into(),
        cwd: "/".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: Vec::new(),
        timeout: Duration::from_secs(secs),
    };
    let mut g = Guest::new("failures", kernel.clone());
    g.disks.truncate(1);
    g.suites = vec![
        sh(
            "fails",
            "echo 'test a ... ok'; echo 'test b ... FAILED'; exit 101",
            60,
        ),
        sh("slow", "sleep 600", 2),
        sh("panics", "echo c > /proc/sysrq-trigger; sleep 60", 120),
        sh("never", "echo 'test c ... ok'", 60),
    ];
    let r = g.run().unwrap();
    let failures = r.failures();
    let expected = [
        "suite fails: exit status 101",
        "suite fails: test b FAILED",
        "suite slow: killed at its time limit",
        "suite panics: never finished",
        "guest did not reach the end of its plan",
    ];
    for e in expected {
        assert!(
            failures.iter().any(|f| f == e),
            "missing {e:?} in {failures:#?}"
        );
    }
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("guest kernel: ") && f.contains("Kernel panic")),
        "{failures:#?}\n{}",
        r.console
    );
    assert!(r.suites.iter().all(|s| s.name != "never"));

    let mut g = Guest::new("timeout", kernel.clone());
    g.disks.clear();
    g.suites = vec![sh("hangs", "sleep 600", 900)];
    g.timeout = Duration::from_secs(25);
    let r = g.run().unwrap();
    assert_eq!(r.killed.as_deref(), Some("time limit of 25 s reached"));
    assert!(
        r.failures()
            .iter()
            .any(|f| f == "guest killed: time limit of 25 s reached")
    );
}
