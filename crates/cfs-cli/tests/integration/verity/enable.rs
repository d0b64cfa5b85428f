//! `FS_IOC_ENABLE_VERITY` edge cases, through the library's typed errors:
//! already enabled, the file open for writing (by this process or by another
//! one), a filesystem without verity support, and measuring a file that has
//! none. Plus secure `init` on such a filesystem: refused with a hint, and
//! nothing left behind.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use cfs_core::verity::{Algorithm, VerityError, enable_verity, measure_verity};

use super::{NoVerityDir, bytes, stderr, verity_tmp};
use crate::support::{run, tool};

#[test]
fn enable_verity_error_cases() {
    let Some(tmp) = verity_tmp("enable_verity_error_cases") else {
        return;
    };
    let path = tmp.path().join("f");
    std::fs::write(&path, bytes(10_000, 3)).unwrap();

    // Measuring before enabling: not enabled (ENODATA), not "unsupported".
    let ro = File::open(&path).unwrap();
    assert!(matches!(
        measure_verity(ro.as_fd()),
        Err(VerityError::NotEnabled)
    ));

    // A writable descriptor anywhere on the file: ETXTBSY.
    let writer = File::options().read(true).write(true).open(&path).unwrap();
    let e = enable_verity(ro.as_fd(), Algorithm::Sha512).unwrap_err();
    assert!(matches!(e, VerityError::OpenForWrite), "{e:?}");
    // Enabling through a read-write descriptor is refused the same way…
    let e = enable_verity(writer.as_fd(), Algorithm::Sha512).unwrap_err();
    assert!(matches!(e, VerityError::OpenForWrite), "{e:?}");
    drop(writer);
    // …and through a write-only one with EBADF (the kernel wants to read).
    let write_only = File::options().write(true).open(&path).unwrap();
    let e = enable_verity(write_only.as_fd(), Algorithm::Sha512).unwrap_err();
    match &e {
        VerityError::Io(io) => assert_eq!(io.raw_os_error(), Some(9), "{e:?}"),
        other => panic!("expected EBADF, got {other:?}"),
    }
    drop(write_only);

    // Held open for writing by another process: the same.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec 3>>\"$0\"; echo ready; read x")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    let e = enable_verity(ro.as_fd(), Algorithm::Sha512).unwrap_err();
    assert!(matches!(e, VerityError::OpenForWrite), "{e:?}");
    drop(child.stdin.take());
    child.wait().unwrap();

    // Now it works; a second enable says "already enabled" (EEXIST).
    enable_verity(ro.as_fd(), Algorithm::Sha512).unwrap();
    let e = enable_verity(ro.as_fd(), Algorithm::Sha512).unwrap_err();
    assert!(matches!(e, VerityError::AlreadyEnabled), "{e:?}");
    let e = enable_verity(ro.as_fd(), Algorithm::Sha256).unwrap_err();
    assert!(matches!(e, VerityError::AlreadyEnabled), "{e:?}");
    assert_eq!(
        measure_verity(ro.as_fd()).unwrap().algorithm(),
        Algorithm::Sha512
    );
    // The file is immutable now.
    let e = File::options().write(true).open(&path).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(1),
        "EPERM on opening for writing: {e}"
    );

    // A filesystem without verity support.
    let nov = NoVerityDir::new();
    let other = nov.path.join("f");
    std::fs::write(&other, b"x").unwrap();
    let f = File::open(&other).unwrap();
    let e = enable_verity(f.as_fd(), Algorithm::Sha512).unwrap_err();
    assert!(matches!(e, VerityError::NotSupported), "{e:?}");
    let e = measure_verity(f.as_fd()).unwrap_err();
    assert!(e.is_missing(), "{e:?}");
}

#[test]
fn secure_init_without_verity_support_leaves_nothing() {
    if verity_tmp("secure_init_without_verity_support_leaves_nothing").is_none() {
        return;
    }
    let nov = NoVerityDir::new();
    // A repository directory that does not exist yet: not created.
    let repo = nov.path.join("parent/repo");
    let o = run(tool("cfsctl").arg("--repo").arg(&repo).arg("init"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("does not support fs-verity"), "{err}");
    assert!(
        err.contains("--insecure"),
        "the error must point at --insecure: {err}"
    );
    assert!(
        !nov.path.join("parent").exists(),
        "init left {:?} behind",
        nov.path.join("parent")
    );
    // An existing empty directory: stays, and stays empty.
    let repo = nov.path.join("empty");
    std::fs::create_dir(&repo).unwrap();
    let o = run(tool("cfsctl").arg("--repo").arg(&repo).arg("init"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(&repo).unwrap().collect();
    assert!(left.is_empty(), "init left {left:?} behind");
    // --insecure works there.
    let o = run(tool("cfsctl")
        .arg("--repo")
        .arg(&repo)
        .args(["init", "--insecure"]));
    assert!(o.status.success(), "{}", stderr(&o));
}
