use std::os::fd::AsFd;
use std::path::Path;

use super::*;

fn settings(verity: VerityMode) -> OverlaySettings<'static> {
    OverlaySettings {
        source: "composefs",
        verity,
        upperdir: None,
        workdir: None,
        read_only: true,
    }
}

fn described(steps: &[Step<'_>]) -> Vec<String> {
    steps.iter().map(Step::describe).collect()
}

#[test]
fn new_api_steps_by_path() {
    let s = settings(VerityMode::Off);
    let steps = new_api_steps(
        &s,
        Layer::Path(Path::new("/tmp/.composefs.x")),
        &[Layer::Path(Path::new("/a,b")), Layer::Path(Path::new("/c"))],
    );
    assert_eq!(
        described(&steps),
        [
            "source=composefs",
            "metacopy=on",
            "redirect_dir=on",
            "lowerdir+=/tmp/.composefs.x",
            // Strings need no escaping with the new API.
            "datadir+=/a,b",
            "datadir+=/c",
        ]
    );
    assert!(steps.iter().all(|s| !s.optional));
}

#[test]
fn new_api_verity_modes_and_upper() {
    let mut s = settings(VerityMode::Require);
    s.upperdir = Some(Path::new("/u"));
    s.workdir = Some(Path::new("/w"));
    s.source = "composefs:abc";
    let file = std::fs::File::open("/").unwrap();
    let steps = new_api_steps(&s, Layer::Fd(file.as_fd()), &[Layer::Fd(file.as_fd())]);
    assert_eq!(
        described(&steps),
        [
            "source=composefs:abc",
            "metacopy=on",
            "redirect_dir=on",
            "verity=require",
            "lowerdir+=<fd>",
            "datadir+=<fd>",
            "upperdir=/u",
            "workdir=/w",
        ]
    );
    let verity = steps.iter().find(|s| s.key == "verity").unwrap();
    assert!(!verity.optional);

    let s = settings(VerityMode::Try);
    let steps = new_api_steps(&s, Layer::Path(Path::new("/l")), &[]);
    let verity = steps.iter().find(|s| s.key == "verity").unwrap();
    assert!(
        verity.optional,
        "tryverity tolerates a kernel without the option"
    );
    assert_eq!(verity.describe(), "verity=require");
}

#[test]
fn legacy_data_strings() {
    let mut s = settings(VerityMode::Off);
    let lower = Path::new("/tmp/.composefs.X");
    let data = [Path::new("/objs,1"), Path::new("/objs2")];
    assert_eq!(
        String::from_utf8(legacy_data(&s, lower, &data, true)).unwrap(),
        r"metacopy=on,redirect_dir=on,lowerdir=/tmp/.composefs.X::/objs\,1::/objs2"
    );
    assert_eq!(
        String::from_utf8(legacy_data(&s, lower, &data, false)).unwrap(),
        r"metacopy=on,redirect_dir=on,lowerdir=/tmp/.composefs.X:/objs\,1:/objs2"
    );
    s.upperdir = Some(Path::new("/up,per"));
    s.workdir = Some(Path::new("/work"));
    s.verity = VerityMode::Require;
    assert_eq!(
        String::from_utf8(legacy_data(&s, lower, &data[..1], true)).unwrap(),
        r"metacopy=on,redirect_dir=on,lowerdir=/tmp/.composefs.X::/objs\,1,upperdir=/up\,per,workdir=/work,verity=require"
    );
    // tryverity is ignored on the legacy path.
    s.verity = VerityMode::Try;
    let d = String::from_utf8(legacy_data(&s, lower, &[], true)).unwrap();
    assert!(!d.contains("verity"), "{d}");
}
