use std::io::Write;

use super::*;

fn file_with(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

#[test]
fn options_are_validated() {
    let opts = MountOptions::default();
    assert!(matches!(
        validate(&opts),
        Err(MountError::InvalidOptions(_))
    ));
    let mut opts = MountOptions {
        basedirs: vec!["/objects".into()],
        ..MountOptions::default()
    };
    assert!(validate(&opts).is_ok());
    opts.upperdir = Some("/u".into());
    assert_eq!(validate(&opts).unwrap_err().errno(), Errno::INVAL);
    opts.workdir = Some("/w".into());
    assert!(validate(&opts).is_ok());
    assert_eq!(opts.source, "composefs");
}

#[test]
fn header_check() {
    let mut header = ComposefsHeader::default();
    header.magic.set(COMPOSEFS_MAGIC);
    let mut bytes = zerocopy::IntoBytes::as_bytes(&header).to_vec();
    assert!(!read_header_acl(&file_with(&bytes)).unwrap());
    header.flags.set(COMPOSEFS_FLAGS_HAS_ACL);
    bytes = zerocopy::IntoBytes::as_bytes(&header).to_vec();
    assert!(read_header_acl(&file_with(&bytes)).unwrap());
    assert!(matches!(
        read_header_acl(&file_with(&bytes[..31])),
        Err(MountError::NotComposefs(_))
    ));
    bytes[0] ^= 1;
    let e = read_header_acl(&file_with(&bytes)).unwrap_err();
    assert_eq!(e.errno(), Errno::INVAL);
}

#[test]
fn digest_of_unmeasurable_file() {
    // tmpfs (or any file without verity) cannot be measured.
    let f = file_with(b"x");
    let e = check_image_digest(&f, &Digest::sha256([0; 32])).unwrap_err();
    assert!(matches!(e, MountError::NoVerity(_)), "{e}");
}

#[test]
fn kernel_errors_show_the_log() {
    let e = MountError::Kernel {
        fstype: "overlay",
        step: "lowerdir+=/x".into(),
        errno: Errno::INVAL,
        log: vec!["overlayfs: failed to clone lowerpath".into()],
    };
    assert_eq!(
        e.to_string(),
        "overlay lowerdir+=/x: Invalid argument (os error 22) (overlayfs: failed to clone lowerpath)"
    );
    assert_eq!(e.kernel_log().len(), 1);
}

#[test]
fn legacy_data_beyond_a_page_is_refused_not_cut() {
    // 300 object directories: even as /proc/self/fd/N the list needs more
    // than a page. Refused before any mount is attempted (no root needed).
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..300)
        .map(|i| {
            let d = tmp.path().join(format!("{i}"));
            std::fs::create_dir(&d).unwrap();
            d
        })
        .collect();
    let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let s = overlay::OverlaySettings {
        source: "composefs",
        verity: VerityMode::Off,
        upperdir: None,
        workdir: None,
        read_only: true,
    };
    let target = tmp.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let e = overlay::mount_legacy(&s, tmp.path(), &refs, &target).unwrap_err();
    assert!(
        matches!(e, MountError::OptionsTooLong { needed, limit: 4095 } if needed > 4095),
        "{e}"
    );
    assert_eq!(e.errno(), Errno::TOOBIG);
    assert!(
        e.to_string().contains("use fewer object directories"),
        "{e}"
    );
}
