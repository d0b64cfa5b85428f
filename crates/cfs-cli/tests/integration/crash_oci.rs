//! Crash safety of `cfsctl oci pull`: pulls of a multi-layer image are
//! SIGKILLed at random moments; after every kill `fsck` and `oci fsck` must
//! pass (a tag, if present, names a complete image), `gc` must leave a
//! consistent repository, and a final pull must give the same image id as a
//! pull into a fresh repository.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::oci_support::{Tar, base_tar, gzip, plain, write_layout};
use crate::support::{run, tool};

const ITERATIONS: usize = 12;

fn cfsctl(repo: &Path) -> Command {
    let mut c = tool("cfsctl");
    c.arg("--repo").arg(repo);
    c
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A layer of `files` pseudo-random files (up to 256 KiB) under `usr/<dir>/`.
fn layer(files: usize, seed: u64, dir: &str) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut t: Tar = base_tar();
    t.dir(&format!("usr/{dir}/"));
    for i in 0..files {
        let size = match next() % 10 {
            0..=2 => (next() % 64) as usize,
            3..=7 => (next() % 16384) as usize,
            _ => (next() % 262_144) as usize,
        };
        let data: Vec<u8> = (0..size).map(|_| next() as u8).collect();
        t.file(&format!("usr/{dir}/f{i}"), &data);
    }
    t.finish()
}

fn check(repo: &Path, context: &str) {
    for args in [&["fsck"][..], &["oci", "fsck"][..]] {
        let out = run(cfsctl(repo).args(args));
        ok(&out, &format!("{context}: {args:?}"));
    }
    for sub in std::fs::read_dir(repo.join("objects")).unwrap() {
        let sub = sub.unwrap();
        if sub.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(sub.path()).unwrap() {
                let n = f.unwrap().file_name().into_string().unwrap();
                assert!(
                    n.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{context}: stray file {n}"
                );
            }
        }
    }
}

#[test]
fn killed_pulls_leave_a_consistent_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let source = format!("oci:{}:v1", layout.display());
    write_layout(
        &layout,
        "v1",
        &[
            gzip(layer(400, 1, "a")),
            plain(layer(300, 2, "b")),
            gzip(layer(400, 3, "c")),
        ],
    );
    // The reference id: a clean pull into a fresh repository.
    let clean = tmp.path().join("clean");
    ok(&run(cfsctl(&clean).args(["init", "--insecure"])), "init");
    let start = Instant::now();
    ok(
        &run(cfsctl(&clean).args(["oci", "pull", &source, "t"])),
        "pull",
    );
    // Kills are spread over the duration of a pull; the estimate shrinks
    // whenever a pull finishes before its kill (other tests share the CPUs,
    // so the first measurement can be far too long).
    let mut full = start.elapsed();
    let id = ok(
        &run(cfsctl(&clean).args(["oci", "compute-id", "t"])),
        "compute-id",
    );

    let repo = tmp.path().join("repo");
    ok(&run(cfsctl(&repo).args(["init", "--insecure"])), "init");
    let mut killed = 0;
    let mut attempts = 0;
    let mut rng = 0x2545f4914f6cdd1du64;
    while killed < ITERATIONS && attempts < 3 * ITERATIONS {
        let i = attempts;
        attempts += 1;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Start from an empty store each time.
        let _ = run(cfsctl(&repo).args(["oci", "untag", "t"]));
        ok(&run(cfsctl(&repo).arg("gc")), "gc");
        let delay = Duration::from_micros(rng % (full.as_micros() as u64 + 1));
        let mut child = cfsctl(&repo)
            .args(["oci", "pull", &source, "t"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        std::thread::sleep(delay);
        if let Ok(Some(_)) = child.try_wait() {
            // Finished before the kill: it takes at most this long.
            full = full.min(spawned.elapsed());
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            assert!(status.success(), "iteration {i}: pull failed: {status:?}");
        }
        let context = format!("iteration {i} (kill after {delay:?})");
        check(&repo, &context);
        // A tag that exists names the complete image.
        if run(cfsctl(&repo).args(["oci", "inspect", "t", "--manifest"]))
            .status
            .success()
        {
            let got = ok(
                &run(cfsctl(&repo).args(["oci", "compute-id", "t"])),
                &context,
            );
            assert_eq!(got, id, "{context}");
        }
        ok(&run(cfsctl(&repo).arg("gc")), "gc");
        check(&repo, &format!("{context}, after gc"));
    }
    eprintln!("{killed} of {attempts} pulls were killed mid-way (pull time estimate {full:?})");
    assert!(
        killed >= ITERATIONS / 2,
        "only {killed} of {attempts} pulls were killed mid-way"
    );

    // Resuming after a kill completes and reuses what was stored.
    let out = ok(
        &run(cfsctl(&repo).args(["oci", "pull", &source, "t"])),
        "final pull",
    );
    assert!(out.contains("tagged   t"), "{out}");
    assert_eq!(
        ok(
            &run(cfsctl(&repo).args(["oci", "compute-id", "t"])),
            "compute-id"
        ),
        id
    );
    check(&repo, "after the final pull");
}
