use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn parse(list: &[&str]) -> Result<Request, Fatal> {
    parse_args(&args(list))
}

fn options(text: &str) -> Result<Options, Fatal> {
    parse_options(text.as_bytes())
}

#[test]
fn command_lines() {
    assert_eq!(parse(&["-h"]).unwrap(), Request::Help);
    assert_eq!(parse(&["img", "-h", "-x"]).unwrap(), Request::Help);
    // mount(8) puts the options after the operands; the last -o wins.
    let r = parse(&[
        "img",
        "mnt",
        "-o",
        "basedir=/x",
        "-obasedir=/a:/b",
        "-tcomposefs",
    ])
    .unwrap();
    let Request::Mount {
        image,
        target,
        options,
    } = r
    else {
        panic!()
    };
    assert_eq!(
        (image.as_os_str(), target.as_os_str()),
        ("img".as_ref(), "mnt".as_ref())
    );
    assert_eq!(options.basedirs, [PathBuf::from("/a"), PathBuf::from("/b")]);

    let e = parse(&["-t", "ext4", "-o", "basedir=/x", "i", "m"]).unwrap_err();
    assert_eq!(e, fatal("Unsupported fs type 'ext4'"));
    let e = parse(&["-s", "i", "m"]).unwrap_err();
    assert_eq!(e, usage_error("invalid option -- 's'"));
    let e = parse(&["i", "m", "-o"]).unwrap_err();
    assert_eq!(e, usage_error("option requires an argument -- 'o'"));
    assert_eq!(
        parse(&["-o", "basedir=/x", "i"]).unwrap_err(),
        usage_error("")
    );
    assert_eq!(
        parse(&["i", "m"]).unwrap_err(),
        usage_error("No object dirs specified")
    );
    assert_eq!(
        parse(&["-o", "basedir=/x,upperdir=/u", "i", "m"]).unwrap_err(),
        fatal("Both workdir and upperdir must be specified if used")
    );
}

#[test]
fn option_values() {
    let o = options("basedir=/a\\,b:/c,ro,rw,ro,verity,tryverity,idmap=/proc/1/ns/user").unwrap();
    assert_eq!(o.basedirs, [PathBuf::from("/a,b"), PathBuf::from("/c")]);
    assert!(o.read_only && o.verity && o.tryverity);
    assert_eq!(o.idmap, Some(PathBuf::from("/proc/1/ns/user")));
    let o = options("upperdir=/u\\\\x,workdir=/w,,rw").unwrap();
    assert_eq!(o.upperdir, Some(PathBuf::from("/u\\x")));
    assert!(!o.read_only);
    for bad in ["basedir=a::b", "basedir=:a", "basedir=a:"] {
        assert_eq!(
            options(bad).unwrap_err(),
            fatal("Value for basedir option has incorrect format"),
            "{bad}"
        );
    }
    assert_eq!(
        options("basedir").unwrap_err(),
        fatal("No value specified for basedir option")
    );
    assert_eq!(
        options("digest=").unwrap_err(),
        fatal("No value specified for digest option")
    );
    assert_eq!(
        options("basedir=/a,nosuid").unwrap_err(),
        fatal("Unsupported option nosuid")
    );
    // Keys are not unescaped.
    assert_eq!(
        options("ba\\sedir=/a").unwrap_err(),
        fatal("Unsupported option ba\\sedir")
    );
}

#[test]
fn verity_modes() {
    let lib = |text: &str| mount_options(options(text).unwrap(), None);
    assert_eq!(lib("basedir=/a").unwrap().verity, VerityMode::Off);
    assert_eq!(lib("basedir=/a,tryverity").unwrap().verity, VerityMode::Try);
    assert_eq!(
        lib("basedir=/a,tryverity,verity").unwrap().verity,
        VerityMode::Require
    );
    let hex = "ab".repeat(32);
    let o = lib(&format!("basedir=/a,digest={hex}")).unwrap();
    assert_eq!(o.verity, VerityMode::Require);
    assert_eq!(o.expected_digest.unwrap().to_hex(), hex);
    for bad in ["xyz", "abcd", &"ab".repeat(64)] {
        let e = lib(&format!("basedir=/a,digest={bad}")).unwrap_err();
        assert_eq!(e.errno(), rustix::io::Errno::INVAL, "{bad}");
    }
}

/// The usage text made from the option table is the one the tool always
/// printed (the same bytes as before the table existed).
#[test]
fn usage_text_from_the_table() {
    assert_eq!(
        super::usage_text(),
        "\
usage: mount.composefs [-t composefs] [-o OPTION[,OPTION...]] IMAGE MOUNTPOINT
Mounts the composefs IMAGE on MOUNTPOINT.
Example:
  mount.composefs -o basedir=/composefs/objects image.cfs /mnt
Options:
  basedir=PATH[:PATH...]  object directories, searched in order (required)
  digest=DIGEST           require this fs-verity digest of IMAGE (implies verity)
  verity                  require valid fs-verity digests on all objects
  tryverity               use verity if the kernel supports it
  idmap=PATH              ID-map the mount with the user namespace at PATH
  ro                      read-only mount
  rw                      read-write mount (the default)
  upperdir=PATH           overlayfs upper directory (needs workdir)
  workdir=PATH            overlayfs work directory (needs upperdir)
"
    );
}
