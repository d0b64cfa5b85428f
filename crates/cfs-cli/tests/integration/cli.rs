//! Command-line behaviour beyond the corpus: argument forms, stdin/stdout,
//! atomic output, composefs-info commands.

use std::io::Write;
use std::process::Stdio;

use crate::support::{corpus, run, sha256_file, tool};

const DUMP: &str = "/ 4096 40755 2 0 0 0 0.0 - - -
/f 100 100644 1 0 0 0 0.0 ab/cd - 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
";
/// The spec's minimal example image (erofs-image.md §13.1).
const DUMP_SHA256: &str = "99a894ec678caed3a56d88a1e7846f6a5f30886f548fa497871b75bb165424ed";
const DUMP_DIGEST: &str = "01c95ee7a4a87fae578419874fb985249248679cf25b15e54adce85f0da042e0";

fn write_dump(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("in.dump");
    std::fs::write(&p, DUMP).unwrap();
    p
}

#[test]
fn argument_forms_and_multicall() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = write_dump(tmp.path());
    let out = tmp.path().join("a.cfs");
    // Options after operands, an unambiguous prefix, and the cfsctl subcommand form.
    for cmd in [
        tool("mkcomposefs")
            .arg(&dump)
            .arg(&out)
            .arg("--from")
            .arg("--print-digest"),
        tool("cfsctl")
            .arg("mkcomposefs")
            .arg("--print-digest")
            .arg("--from-file")
            .arg(&dump)
            .arg(&out),
    ] {
        let o = run(cmd);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{DUMP_DIGEST}\n")
        );
        assert_eq!(sha256_file(&out), DUMP_SHA256);
    }
    // --print-digest-only writes nothing.
    let o = run(tool("mkcomposefs")
        .args(["--print-digest-only", "--from-file"])
        .arg(&dump));
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{DUMP_DIGEST}\n")
    );
    // Usage errors: exit 1 with a message.
    for args in [
        vec!["--print", "x", "y"],
        vec!["--version"],
        vec!["-h"],
        vec!["--from-file"],
        vec!["--threads=0", "--from-file", "a", "b"],
        vec!["--min-version=x", "--from-file", "a", "b"],
    ] {
        let o = run(tool("mkcomposefs").args(&args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    // Versions above 1 fail at write time like C.
    let o = run(tool("mkcomposefs")
        .args(["--min-version=2", "--from-file"])
        .arg(&dump)
        .arg(&out));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot write file: Invalid argument"));
}

#[test]
fn stdin_and_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = tool("mkcomposefs")
        .args(["--print-digest", "--from-file", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(DUMP.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The image, then the digest line.
    let (image, digest) = o.stdout.split_at(o.stdout.len() - 65);
    let p = tmp.path().join("stdout.cfs");
    std::fs::write(&p, image).unwrap();
    assert_eq!(sha256_file(&p), DUMP_SHA256);
    assert_eq!(digest, format!("{DUMP_DIGEST}\n").as_bytes());
}

#[test]
fn failed_run_keeps_the_old_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = write_dump(tmp.path());
    let out = tmp.path().join("img.cfs");
    assert!(
        run(tool("mkcomposefs").arg("--from-file").arg(&dump).arg(&out))
            .status
            .success()
    );
    let bad = tmp.path().join("bad.dump");
    std::fs::write(
        &bad,
        "/ 4096 40755 2 0 0 0 0.0 - - -\n/x 0 644 1 0 0 0 0.0 - - -\n",
    )
    .unwrap();
    let o = run(tool("mkcomposefs").arg("--from-file").arg(&bad).arg(&out));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim_end(),
        format!(
            "mkcomposefs: Invalid mode 644 ({}, line 2, field MODE)",
            bad.display()
        )
    );
    assert_eq!(
        sha256_file(&out),
        DUMP_SHA256,
        "the previous image survives"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Writing to a special file works (no rename).
    let o = run(tool("mkcomposefs")
        .arg("--from-file")
        .arg(&dump)
        .arg("/dev/null"));
    assert!(o.status.success());
}

#[test]
fn composefs_info_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus();
    let a = c.join("edge-external-sizes.default.cfs");
    let b = c.join("edge-hardlink-kinds.default.cfs");
    // objects over two images: one merged, sorted list.
    let o = run(tool("composefs-info").arg("objects").arg(&a).arg(&b));
    assert!(o.status.success());
    let mut expected: Vec<String> =
        std::fs::read_to_string(c.join("edge-external-sizes.default.objects"))
            .unwrap()
            .lines()
            .chain(
                std::fs::read_to_string(c.join("edge-hardlink-kinds.default.objects"))
                    .unwrap()
                    .lines(),
            )
            .map(String::from)
            .collect();
    expected.sort();
    expected.dedup();
    let got: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got, expected);
    assert!(!got.is_empty());
    // missing-objects: create the first object in a basedir; it disappears from the list.
    let base = tmp.path().join("objects");
    let first = &got[0];
    std::fs::create_dir_all(base.join(first).parent().unwrap()).unwrap();
    std::fs::write(base.join(first), b"x").unwrap();
    let o = run(tool("composefs-info")
        .arg(format!("--basedir={}", base.display()))
        .arg("missing-objects")
        .arg(&a)
        .arg(&b));
    assert!(o.status.success());
    let missing: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(missing, got[1..].to_vec());
    // Without --basedir, missing-objects lists everything (like C).
    let o = run(tool("composefs-info").arg("missing-objects").arg(&a));
    assert!(o.status.success());
    // --filter loads only the named top-level entries.
    let o = run(tool("composefs-info")
        .args(["--filter=chardev", "dump"])
        .arg(c.join("edge-devices.default.cfs")));
    assert!(o.status.success());
    let full = std::fs::read_to_string(c.join("edge-devices.default.dump")).unwrap();
    let dump = String::from_utf8(o.stdout).unwrap();
    assert!(dump.lines().count() < full.lines().count());
    assert!(
        dump.lines().skip(1).all(|l| l.starts_with("/chardev")),
        "{dump}"
    );
    // Errors: exit 1.
    for args in [
        vec!["dump"],
        vec![],
        vec!["nope", "x"],
        vec!["--filter=a/b", "dump", "x"],
        vec!["dump", "/nonexistent"],
        vec!["measure-file"],
    ] {
        let o = run(tool("composefs-info").args(&args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
    }
    let o = run(tool("composefs-info")
        .arg("dump")
        .arg(c.join("edge-acl.dump")));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Invalid argument"));
}

#[test]
fn measure_file_matches_fsverity_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    std::fs::write(&f, vec![3u8; 100_000]).unwrap();
    let o = run(tool("composefs-info").arg("measure-file").arg(&f));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = String::from_utf8(o.stdout).unwrap();
    let oracle = std::process::Command::new("fsverity")
        .args(["digest", "--compact", "--hash-alg=sha256"])
        .arg(&f)
        .output()
        .expect("the fsverity tool (Debian package fsverity) is needed");
    assert_eq!(ours, String::from_utf8(oracle.stdout).unwrap());
}

#[test]
fn digest_store_survives_being_killed() {
    use cfs_core::verity::{Algorithm, Digest, digest_bytes};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..120u32 {
        let data: Vec<u8> = (0..(64 << 10) + i * 4099)
            .map(|j| (j ^ i.wrapping_mul(2654435761)) as u8)
            .collect();
        std::fs::write(src.join(format!("f{i:03}")), data).unwrap();
    }
    let mut killed = 0;
    for (round, delay_ms) in [1u64, 3, 7, 15, 30, 60].into_iter().enumerate() {
        let store = tmp.path().join(format!("store{round}"));
        let mut child = tool("mkcomposefs")
            .arg(format!("--digest-store={}", store.display()))
            .arg("--threads=2")
            .arg(&src)
            .arg(tmp.path().join("img.cfs"))
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // Whatever was published is complete and named by its digest; nothing else is there.
        let Ok(subdirs) = std::fs::read_dir(&store) else {
            continue;
        };
        for sub in subdirs {
            let sub = sub.unwrap();
            for obj in std::fs::read_dir(sub.path()).unwrap() {
                let obj = obj.unwrap();
                let name = format!(
                    "{}/{}",
                    sub.file_name().to_string_lossy(),
                    obj.file_name().to_string_lossy()
                );
                let digest = Digest::from_object_path(&name)
                    .unwrap_or_else(|_| panic!("stray file {name} in the store"));
                let content = std::fs::read(obj.path()).unwrap();
                assert_eq!(digest_bytes(Algorithm::Sha256, &content), digest, "{name}");
            }
        }
    }
    assert!(
        killed > 0,
        "no run was interrupted; the test did not test anything"
    );
}

#[test]
fn sha512_images_through_composefs_info() {
    let tmp = tempfile::tempdir().unwrap();
    let hex = "0123456789abcdef".repeat(8);
    let payload = format!("{}/{}", &hex[..2], &hex[2..]);
    let dump = format!(
        "/ 4096 40755 2 0 0 0 0.0 - - -\n/big 100000 100644 1 0 0 0 0.0 {payload} - {hex}\n"
    );
    let input = tmp.path().join("in.dump");
    std::fs::write(&input, &dump).unwrap();
    let image = tmp.path().join("sha512.cfs");
    let o = run(tool("mkcomposefs")
        .arg("--from-file")
        .arg(&input)
        .arg(&image));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(tool("composefs-info").arg("dump").arg(&image));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), dump);
    let o = run(tool("composefs-info").arg("objects").arg(&image));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{payload}\n"));
}
