//! Spec errors, hostile policies, the directory reader.

use super::*;

#[test]
fn spec_errors_name_file_and_line() {
    let path = "/etc/selinux/t/contexts/files/file_contexts.homedirs";
    let homedirs = |text: &str| {
        label_err(&[
            ("/etc/selinux/config", K::File("SELINUXTYPE=t\n")),
            (
                "/etc/selinux/t/contexts/files/file_contexts",
                K::File("/ system_u:object_r:root_t:s0\n"),
            ),
            (
                "/etc/selinux/t/contexts/files/file_contexts.homedirs",
                K::File(text),
            ),
        ])
    };
    assert_eq!(
        homedirs("\n/home -q ctx\n"),
        format!("{path}: line 2: invalid file type \"-q\" (expected one of -b -c -d -p -l -s --)")
    );
    assert_eq!(
        homedirs("/a b c d"),
        format!("{path}: line 1: trailing data \"c\"")
    );
    let err = homedirs("/ok ctx\n/bad(  ctx\n");
    assert!(
        err.starts_with(&format!(
            "{path}: line 2: pattern \"/bad(\" does not compile: DFA: "
        )),
        "{err}"
    );
    assert!(err.contains("PCRE2: "), "{err}");
}

#[test]
fn hostile_policies_fail_cleanly() {
    let load = |fc: &str| {
        let mut read = |path: &[u8]| -> Result<Option<Vec<u8>>, SelinuxError> {
            Ok(Some(match path {
                b"/etc/selinux/config" => b"SELINUXTYPE=t\n".to_vec(),
                b"/etc/selinux/t/contexts/files/file_contexts" => fc.as_bytes().to_vec(),
                _ => return Ok(None),
            }))
        };
        Policy::load(&mut read, LookupOrder::ComposefsRs)
    };
    let fc_path = "/etc/selinux/t/contexts/files/file_contexts";

    // A 1 MiB pattern is fine as long as it compiles.
    let long = format!("/{}", "a".repeat(1 << 20));
    let mut policy = load(&format!("{long} system_u:object_r:long_t:s0\n"))
        .unwrap()
        .unwrap();
    assert_eq!(
        policy.lookup(long.as_bytes(), FileType::Regular).unwrap(),
        ctx("long_t").as_deref()
    );

    // 1 MiB of '(' compiles with neither engine: the error names file and line
    // and stays short.
    let err = load(&format!("/ok c\n/{} c\n", "(".repeat(1 << 20))).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SelinuxError::Regex { line: 2, .. }),
        "{msg:.300}"
    );
    assert!(
        msg.starts_with(&format!("{fc_path}: line 2: pattern \"/(((")),
        "{msg:.300}"
    );
    assert!(msg.len() < 1500, "{} bytes: {msg:.300}", msg.len());

    // 1 MiB of trailing fields.
    let err = load(&format!("/a b {}\n", "c ".repeat(1 << 19)))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{fc_path}: line 1: trailing data \"c\"")),
        "{err:.300}"
    );

    // A pattern whose automaton would be far larger than MAX_NFA_SIZE.
    let err = load("/ok c\n/x((a{1000}){1000}){1000} c\n").unwrap_err();
    assert!(matches!(err, SelinuxError::Regex { line: 2, .. }), "{err}");
    assert!(
        err.to_string().contains("exceeded limit of 67108864"),
        "{err}"
    );

    // Look-around goes to PCRE2; a back-reference too.
    let mut policy = load("/.* c:d:default_t:s0\n/x/(?!no).* c:d:x_t:s0\n/y/(a)\\1 c:d:y_t:s0\n")
        .unwrap()
        .unwrap();
    assert_eq!(policy.pcre2_patterns(), 2);
    assert_eq!(
        policy.lookup(b"/x/yes", FileType::Regular).unwrap(),
        Some("c:d:x_t:s0")
    );
    assert_eq!(
        policy.lookup(b"/x/no", FileType::Regular).unwrap(),
        Some("c:d:default_t:s0")
    );
    // composefs-rs wraps the pattern in a group, so `\1` refers to that
    // wrapper (libselinux does not wrap): it never matches here.
    assert_eq!(
        policy.lookup(b"/y/aa", FileType::Regular).unwrap(),
        Some("c:d:default_t:s0")
    );

    // Files over MAX_POLICY_FILE are refused whatever the reader returns.
    let mut read = |path: &[u8]| -> Result<Option<Vec<u8>>, SelinuxError> {
        Ok(Some(match path {
            b"/etc/selinux/config" => b"SELINUXTYPE=t\n".to_vec(),
            _ => vec![b'#'; usize::try_from(MAX_POLICY_FILE).unwrap() + 1],
        }))
    };
    let err = Policy::load(&mut read, LookupOrder::ComposefsRs).unwrap_err();
    assert!(matches!(err, SelinuxError::TooLarge { .. }), "{err}");
    assert!(err.to_string().starts_with(fc_path), "{err}");
}

#[test]
fn dir_reader_reads_below_its_root_and_bounds_reads() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("etc/selinux/t/contexts/files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(dir.path().join("etc/selinux/config"), "SELINUXTYPE=t\n").unwrap();
    std::fs::write(
        files.join("file_contexts"),
        "/srv(/.*)? system_u:object_r:srv_t:s0\n",
    )
    .unwrap();
    let mut read = dir_reader(dir.path());
    assert_eq!(read(b"/nothing/here").unwrap(), None);
    let err = read(b"/etc/selinux").unwrap_err();
    assert!(matches!(err, SelinuxError::Io { .. }), "{err}");
    let mut policy = Policy::load(&mut read, LookupOrder::ComposefsRs)
        .unwrap()
        .unwrap();
    assert_eq!(policy.policy_type(), "t");
    assert_eq!(policy.spec_files().len(), 1);
    assert_eq!(
        policy.lookup(b"/srv/a", FileType::Symlink).unwrap(),
        ctx("srv_t").as_deref()
    );
    std::fs::remove_file(dir.path().join("etc/selinux/config")).unwrap();
    assert!(
        Policy::load(&mut read, LookupOrder::ComposefsRs)
            .unwrap()
            .is_none()
    );
}
