//! containers-registries.conf(5): parsing, prefix matching, resolution,
//! and the file lookup with drop-ins (in temporary directories).

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn conf(text: &str) -> RegistriesConf {
    RegistriesConf::parse(text, Path::new("/test/registries.conf")).unwrap()
}

fn parse_err(text: &str) -> String {
    RegistriesConf::parse(text, Path::new("/test/registries.conf"))
        .unwrap_err()
        .to_string()
}

/// The endpoints of `spec` as `(spec, insecure, mirror)`.
fn endpoints(conf: &RegistriesConf, spec: &str) -> Vec<(String, bool, bool)> {
    conf.resolve(spec)
        .unwrap()
        .into_iter()
        .map(|e| (e.spec, e.insecure, e.mirror))
        .collect()
}

/// The primary endpoint's spec of `spec`.
fn primary(conf: &RegistriesConf, spec: &str) -> String {
    conf.resolve(spec).unwrap().pop().unwrap().spec
}

fn ep(spec: &str, insecure: bool, mirror: bool) -> (String, bool, bool) {
    (spec.to_owned(), insecure, mirror)
}

#[test]
fn parses_the_keys_and_ignores_the_others() {
    let c = conf(
        r#"
        unqualified-search-registries = ["registry.fedoraproject.org", "quay.io"]
        short-name-mode = "enforcing"
        credential-helpers = ["containers-auth.json"]

        [[registry]]
        prefix = "corp.example/team"
        location = "cache.corp.example/team"
        insecure = true
        mirror-by-digest-only = true
        some-future-key = { nested = 1 }

        [[registry.mirror]]
        location = "mirror-a.corp.example/team"

        [[registry.mirror]]
        location = "mirror-b.corp.example:5000/t"
        insecure = true

        [[registry]]
        location = "quay.io"
        blocked = true

        [aliases]
        "fedora" = "registry.fedoraproject.org/fedora"
        "#,
    );
    assert_eq!(
        c.unqualified_search_registries(),
        ["registry.fedoraproject.org", "quay.io"]
    );
    let [team, quay] = c.registries() else {
        panic!("{c:?}")
    };
    assert_eq!(team.prefix, "corp.example/team");
    assert_eq!(team.location, "cache.corp.example/team");
    assert!(team.insecure && !team.blocked && team.mirror_by_digest_only);
    assert_eq!(team.origin, Path::new("/test/registries.conf"));
    assert_eq!(team.mirrors.len(), 2);
    assert_eq!(team.mirrors[0].location, "mirror-a.corp.example/team");
    assert!(!team.mirrors[0].insecure);
    assert_eq!(team.mirrors[0].pull_from_mirror, PullFromMirror::All);
    assert!(team.mirrors[1].insecure);
    // No prefix: the location is the prefix.
    assert_eq!(quay.prefix, "quay.io");
    assert_eq!(quay.location, "quay.io");
    assert!(quay.blocked && !quay.insecure && quay.mirrors.is_empty());
    // An empty file is an empty configuration.
    assert_eq!(conf(""), RegistriesConf::default());
    assert!(conf("").unqualified_search_registries().is_empty());
}

#[test]
fn without_a_match_the_spec_is_unchanged() {
    let c = conf("[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"other.net/foo\"\n");
    assert_eq!(
        endpoints(&c, "quay.io/org/img:v1"),
        [ep("quay.io/org/img:v1", false, false)]
    );
    assert_eq!(
        endpoints(&RegistriesConf::default(), "alpine"),
        [ep("alpine", false, false)]
    );
    // Invalid references are refused, naming them.
    let err = c.resolve("UPPER/Case").unwrap_err().to_string();
    assert!(err.contains("docker://UPPER/Case"), "{err}");
}

#[test]
fn host_prefixes_match_that_registry_only() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "example.com"
        location = "mirror.lan"
        [[registry]]
        prefix = "example.com:5000"
        location = "other.lan:6000"
        "#,
    );
    assert_eq!(primary(&c, "example.com/a/b:v1"), "mirror.lan/a/b:v1");
    // Normalised: the default tag is spelled out.
    assert_eq!(primary(&c, "example.com/a"), "mirror.lan/a:latest");
    assert_eq!(
        primary(&c, &format!("example.com/a@{DIGEST}")),
        format!("mirror.lan/a@{DIGEST}")
    );
    // Another port is another registry.
    assert_eq!(primary(&c, "example.com:5000/a:v1"), "other.lan:6000/a:v1");
    assert_eq!(
        primary(&c, "example.com:5001/a:v1"),
        "example.com:5001/a:v1"
    );
    // Not a longer host name.
    assert_eq!(
        primary(&c, "example.community/a:v1"),
        "example.community/a:v1"
    );
    assert_eq!(primary(&c, "sub.example.com/a:v1"), "sub.example.com/a:v1");
}

#[test]
fn path_prefixes_match_on_component_boundaries() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "example.com/foo"
        location = "internal.example.net/bar"
        [[registry]]
        prefix = "example.com/pinned/img:v1"
        location = "internal.example.net/pinned/img:v1-fixed"
        [[registry]]
        prefix = "docker.io/library"
        location = "hub-cache.lan/library"
        "#,
    );
    assert_eq!(
        primary(&c, "example.com/foo/myimage:latest"),
        "internal.example.net/bar/myimage:latest"
    );
    assert_eq!(
        primary(&c, "example.com/foo/deep/er/img:1"),
        "internal.example.net/bar/deep/er/img:1"
    );
    // The prefix is the whole repository: tag and digest separators.
    assert_eq!(
        primary(&c, "example.com/foo:v2"),
        "internal.example.net/bar:v2"
    );
    assert_eq!(
        primary(&c, &format!("example.com/foo@{DIGEST}")),
        format!("internal.example.net/bar@{DIGEST}")
    );
    // Not inside a component.
    assert_eq!(
        primary(&c, "example.com/foobar/img:1"),
        "example.com/foobar/img:1"
    );
    // A prefix with a tag matches that tag only.
    assert_eq!(
        primary(&c, "example.com/pinned/img:v1"),
        "internal.example.net/pinned/img:v1-fixed"
    );
    assert_eq!(
        primary(&c, "example.com/pinned/img:v10"),
        "example.com/pinned/img:v10"
    );
    // Docker Hub short names are normalised before matching.
    assert_eq!(primary(&c, "alpine"), "hub-cache.lan/library/alpine:latest");
    assert_eq!(
        primary(&c, "docker.io/library/alpine:3"),
        "hub-cache.lan/library/alpine:3"
    );
    assert_eq!(primary(&c, "someone/alpine:3"), "someone/alpine:3");
}

#[test]
fn the_longest_prefix_wins() {
    let tables = [
        "[[registry]]\nprefix = \"example.com\"\nlocation = \"a.lan\"\n",
        "[[registry]]\nprefix = \"example.com/foo\"\nlocation = \"b.lan/x\"\n",
        "[[registry]]\nprefix = \"example.com/foo/img\"\nlocation = \"c.lan/y\"\n",
    ];
    // In any order in the file.
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let text: String = order.iter().map(|&i| tables[i]).collect();
        let c = conf(&text);
        assert_eq!(primary(&c, "example.com/foo/img:1"), "c.lan/y:1");
        assert_eq!(primary(&c, "example.com/foo/img2:1"), "b.lan/x/img2:1");
        assert_eq!(primary(&c, "example.com/other:1"), "a.lan/other:1");
    }
}

#[test]
fn wildcard_prefixes_match_subdomains() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "*.example.com"
        insecure = true
        [[registry.mirror]]
        location = "cache.lan/example"
        [[registry]]
        prefix = "*.corp.example.com"
        location = "ignored.lan"
        blocked = true
        [[registry]]
        prefix = "b.example.com"
        location = "b-real.lan"
        "#,
    );
    // Any depth, any port; the primary is the reference as given.
    assert_eq!(
        endpoints(&c, "a.example.com/foo/img:1"),
        [
            ep("cache.lan/example/foo/img:1", false, true),
            ep("a.example.com/foo/img:1", true, false),
        ]
    );
    assert_eq!(
        endpoints(&c, "x.y.example.com:5000/img"),
        [
            ep("cache.lan/example/img:latest", false, true),
            ep("x.y.example.com:5000/img", true, false),
        ]
    );
    // Not the domain itself, nor a look-alike.
    assert_eq!(
        endpoints(&c, "example.com/img:1"),
        [ep("example.com/img:1", false, false)]
    );
    assert_eq!(
        endpoints(&c, "a.badexample.com/img:1"),
        [ep("a.badexample.com/img:1", false, false)]
    );
    // The longer wildcard wins, and blocks.
    let err = c
        .resolve("h.corp.example.com/img:1")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "docker://h.corp.example.com/img:1: pulls from *.corp.example.com are blocked by \
         /test/registries.conf"
    );
    // An exact prefix of the same length beats the wildcard (and a longer
    // one anyway).
    assert_eq!(primary(&c, "b.example.com/img:1"), "b-real.lan/img:1");
    let tie = conf(
        "[[registry]]\nprefix = \"*.ab.com\"\nblocked = true\n\
         [[registry]]\nprefix = \"x.ab.com\"\nlocation = \"z.lan\"\n",
    );
    assert_eq!(primary(&tie, "x.ab.com/i:1"), "z.lan/i:1");
}

#[test]
fn blocked_prefixes_are_refused() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "quay.io/untrusted"
        blocked = true
        [[registry]]
        prefix = "quay.io"
        "#,
    );
    let err = c
        .resolve("quay.io/untrusted/img:1")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "docker://quay.io/untrusted/img:1: pulls from quay.io/untrusted are blocked by \
         /test/registries.conf"
    );
    assert_eq!(
        endpoints(&c, "quay.io/trusted/img:1"),
        [ep("quay.io/trusted/img:1", false, false)]
    );
}

#[test]
fn mirrors_come_first_in_order() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "example.com/foo"
        location = "internal.example.net/bar"
        [[registry.mirror]]
        location = "mirror-0.local/mirror-for-foo"
        [[registry.mirror]]
        location = "mirror-1.local/mirrors/foo"
        insecure = true
        [[registry]]
        location = "registry.com"
        [[registry.mirror]]
        location = "mirror.registry.com"
        "#,
    );
    assert_eq!(
        endpoints(&c, "example.com/foo/image:latest"),
        [
            ep("mirror-0.local/mirror-for-foo/image:latest", false, true),
            ep("mirror-1.local/mirrors/foo/image:latest", true, true),
            ep("internal.example.net/bar/image:latest", false, false),
        ]
    );
    // Only the matching table's mirrors.
    assert_eq!(
        endpoints(&c, "registry.com/image:latest"),
        [
            ep("mirror.registry.com/image:latest", false, true),
            ep("registry.com/image:latest", false, false),
        ]
    );
}

#[test]
fn mirrors_by_digest_or_by_tag() {
    let c = conf(
        r#"
        [[registry]]
        prefix = "per-mirror.com"
        [[registry.mirror]]
        location = "all.lan"
        pull-from-mirror = "all"
        [[registry.mirror]]
        location = "digest.lan"
        pull-from-mirror = "digest-only"
        [[registry.mirror]]
        location = "tag.lan"
        pull-from-mirror = "tag-only"
        [[registry.mirror]]
        location = "empty.lan"
        pull-from-mirror = ""

        [[registry]]
        prefix = "by-digest.com"
        mirror-by-digest-only = true
        [[registry.mirror]]
        location = "m1.lan"
        [[registry.mirror]]
        location = "m2.lan"
        "#,
    );
    let specs =
        |spec: &str| -> Vec<String> { endpoints(&c, spec).into_iter().map(|e| e.0).collect() };
    assert_eq!(
        specs("per-mirror.com/img:1"),
        [
            "all.lan/img:1",
            "tag.lan/img:1",
            "empty.lan/img:1",
            "per-mirror.com/img:1"
        ]
    );
    let by_digest = format!("per-mirror.com/img@{DIGEST}");
    assert_eq!(
        specs(&by_digest),
        [
            format!("all.lan/img@{DIGEST}"),
            format!("digest.lan/img@{DIGEST}"),
            format!("empty.lan/img@{DIGEST}"),
            by_digest.clone(),
        ]
    );
    // A tag and a digest: a pull by digest.
    let both = format!("per-mirror.com/img:1@{DIGEST}");
    assert_eq!(specs(&both)[1], format!("digest.lan/img:1@{DIGEST}"));
    // mirror-by-digest-only: no mirror for a tag.
    assert_eq!(specs("by-digest.com/img:1"), ["by-digest.com/img:1"]);
    assert_eq!(
        specs(&format!("by-digest.com/img@{DIGEST}")),
        [
            format!("m1.lan/img@{DIGEST}"),
            format!("m2.lan/img@{DIGEST}"),
            format!("by-digest.com/img@{DIGEST}"),
        ]
    );
}

#[test]
fn a_rewrite_to_an_invalid_reference_is_refused() {
    let c = conf("[[registry]]\nprefix = \"example.com/a\"\nlocation = \"Example.com/UPPER\"\n");
    let err = c.resolve("example.com/a/img:1").unwrap_err().to_string();
    assert!(
        err.contains("docker://example.com/a/img:1")
            && err.contains("/test/registries.conf maps it to Example.com/UPPER/img:1"),
        "{err}"
    );
}

#[test]
fn version_1_is_converted() {
    let c = conf(
        r#"
        [registries.search]
        registries = ['registry1.com', 'registry2.com']
        [registries.insecure]
        registries = ['registry3.com', 'both.com']
        [registries.block]
        registries = ['registry.untrusted.com', 'both.com']
        "#,
    );
    assert_eq!(
        c.unqualified_search_registries(),
        ["registry1.com", "registry2.com"]
    );
    assert_eq!(c.registries().len(), 3);
    assert_eq!(
        endpoints(&c, "registry3.com/img:1"),
        [ep("registry3.com/img:1", true, false)]
    );
    let err = c
        .resolve("registry.untrusted.com/img:1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocked by /test/registries.conf"), "{err}");
    let both = c
        .registries()
        .iter()
        .find(|r| r.prefix == "both.com")
        .unwrap();
    assert!(both.insecure && both.blocked);
    // Not mixed with version 2.
    let err = parse_err(
        "[registries.search]\nregistries = ['a.com']\n[[registry]]\nlocation = \"b.com\"\n",
    );
    assert!(
        err.starts_with("/test/registries.conf: mixes the version 1 format"),
        "{err}"
    );
}

#[test]
fn type_errors_name_the_file_line_and_key() {
    let err = parse_err("[[registry]]\nprefix = \"a.com\"\ninsecure = \"yes\"\n");
    assert!(
        err.starts_with("/test/registries.conf: line 3, column 12: registry[0].insecure: "),
        "{err}"
    );
    assert!(err.contains("expected a boolean"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = parse_err("unqualified-search-registries = \"quay.io\"\n");
    assert!(
        err.starts_with(
            "/test/registries.conf: line 1, column 33: unqualified-search-registries: "
        ),
        "{err}"
    );
    let err = parse_err("[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = 5\n");
    assert!(
        err.contains("line 4, column 12: registry[0].mirror[0].location: "),
        "{err}"
    );
    // TOML syntax.
    let err = parse_err("[[registry]\nprefix = 1\n");
    assert!(
        err.starts_with("/test/registries.conf: line 1, column "),
        "{err}"
    );
    assert!(err.ends_with("expected `]` (TOML syntax)"), "{err}");
}

#[test]
fn bad_values_are_refused() {
    let cases = [
        (
            "[[registry]]\ninsecure = true\n",
            "[[registry]] 1: expected a prefix or a location",
        ),
        (
            "[[registry]]\nprefix = \"a.com\"\n[[registry]]\nlocation = \"b.com\"\n[[registry]]\nlocation = \"a.com\"\n",
            "[[registry]] 1 and 3 both have the prefix \"a.com\"",
        ),
        (
            "[[registry]]\nlocation = \"https://a.com\"\n",
            "[[registry]] 1: prefix \"https://a.com\": expected HOST[:PORT][/PATH], without a scheme",
        ),
        (
            "[[registry]]\nprefix = \"a.com/\"\n",
            "prefix \"a.com/\": expected HOST[:PORT][/PATH], without an empty component",
        ),
        (
            "[[registry]]\nprefix = \"*.a.com/foo\"\n",
            "prefix \"*.a.com/foo\": a wildcard prefix is *.DOMAIN alone",
        ),
        (
            "[[registry]]\nprefix = \"a.*.com\"\n",
            "prefix \"a.*.com\": a wildcard is allowed only as a leading *.",
        ),
        (
            "[[registry]]\nprefix = \"a.com\"\nlocation = \"*.b.com\"\n",
            "location \"*.b.com\": a wildcard (*.DOMAIN) is allowed in a prefix only",
        ),
        (
            "[[registry]]\nprefix = \"a.com\"\n[[registry.mirror]]\ninsecure = true\n",
            "[[registry]] 1: [[registry.mirror]] 1: expected a location",
        ),
        (
            "[[registry]]\nprefix = \"a.com\"\n[[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"sometimes\"\n",
            "pull-from-mirror \"sometimes\": expected \"all\", \"digest-only\" or \"tag-only\"",
        ),
        (
            "[[registry]]\nprefix = \"a.com\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"tag-only\"\n",
            "pull-from-mirror cannot be set when the registry has mirror-by-digest-only = true",
        ),
        (
            "[registries.block]\nregistries = [\"http://x.com\"]\n",
            "[registries.block] \"http://x.com\": expected HOST[:PORT][/PATH], without a scheme",
        ),
    ];
    for (text, needle) in cases {
        let err = parse_err(text);
        assert!(err.starts_with("/test/registries.conf: "), "{err}");
        assert!(err.contains(needle), "{text}\n→ {err}");
    }
    // mirror-by-digest-only = false with pull-from-mirror is fine.
    conf(
        "[[registry]]\nprefix = \"a.com\"\nmirror-by-digest-only = false\n\
         [[registry.mirror]]\nlocation = \"m.com\"\npull-from-mirror = \"tag-only\"\n",
    );
}

/// A system directory and a user directory under one temporary directory.
struct Roots {
    _tmp: tempfile::TempDir,
    system: PathBuf,
    user: PathBuf,
}

impl Roots {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let system = tmp.path().join("etc/containers");
        let user = tmp.path().join("home/.config/containers");
        Self {
            _tmp: tmp,
            system,
            user,
        }
    }

    fn paths(&self) -> ConfPaths {
        ConfPaths {
            override_file: None,
            system_dir: self.system.clone(),
            user_dir: Some(self.user.clone()),
        }
    }

    fn write(&self, path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn load(&self) -> RegistriesConf {
        RegistriesConf::load_from(&self.paths()).unwrap()
    }
}

fn table(prefix: &str, location: &str) -> String {
    format!("[[registry]]\nprefix = \"{prefix}\"\nlocation = \"{location}\"\n")
}

#[test]
fn nothing_to_load_is_an_empty_configuration() {
    let roots = Roots::new();
    assert_eq!(roots.load(), RegistriesConf::default());
    let no_home = ConfPaths {
        user_dir: None,
        ..roots.paths()
    };
    assert_eq!(
        RegistriesConf::load_from(&no_home).unwrap(),
        RegistriesConf::default()
    );
}

#[test]
fn system_file_then_drop_ins_in_name_order() {
    let roots = Roots::new();
    let main = roots.system.join("registries.conf");
    roots.write(
        &main,
        &format!(
            "unqualified-search-registries = [\"main.com\"]\n{}{}",
            table("a.com", "main-a.lan"),
            table("b.com", "main-b.lan")
        ),
    );
    let dropins = roots.system.join("registries.conf.d");
    // Read as 10 < 20 < 30 whatever the directory order.
    roots.write(
        &dropins.join("30-last.conf"),
        &table("a.com", "thirty-a.lan"),
    );
    roots.write(
        &dropins.join("10-first.conf"),
        &format!(
            "unqualified-search-registries = [\"ten.com\"]\n{}{}",
            table("a.com", "ten-a.lan"),
            table("c.com", "ten-c.lan")
        ),
    );
    roots.write(
        &dropins.join("20-mid.conf"),
        &table("c.com", "twenty-c.lan"),
    );
    // Not *.conf, or a directory: skipped.
    roots.write(&dropins.join("40.conf.rpmsave"), "not toml [");
    roots.write(&dropins.join("50.conf/inner.conf"), "not toml [");
    // The user's drop-ins come after the system's.
    roots.write(
        &roots.user.join("registries.conf.d/00-user.conf"),
        &table("b.com", "user-b.lan"),
    );
    let c = roots.load();
    assert_eq!(c.unqualified_search_registries(), ["ten.com"]);
    assert_eq!(primary(&c, "a.com/i:1"), "thirty-a.lan/i:1");
    assert_eq!(primary(&c, "b.com/i:1"), "user-b.lan/i:1");
    assert_eq!(primary(&c, "c.com/i:1"), "twenty-c.lan/i:1");
    let a = c.registries().iter().find(|r| r.prefix == "a.com").unwrap();
    assert_eq!(a.origin, dropins.join("30-last.conf"));
    // A drop-in may not use version 1.
    roots.write(
        &dropins.join("60-old.conf"),
        "[registries.insecure]\nregistries = ['x.com']\n",
    );
    let err = RegistriesConf::load_from(&roots.paths())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("60-old.conf: a drop-in file must use the version 2 format"),
        "{err}"
    );
}

#[test]
fn a_user_file_replaces_the_system_configuration() {
    let roots = Roots::new();
    roots.write(
        &roots.system.join("registries.conf"),
        &table("a.com", "sys.lan"),
    );
    roots.write(
        &roots.system.join("registries.conf.d/10.conf"),
        &table("b.com", "sys-dropin.lan"),
    );
    roots.write(
        &roots.user.join("registries.conf"),
        &table("c.com", "user.lan"),
    );
    roots.write(
        &roots.user.join("registries.conf.d/10.conf"),
        &table("d.com", "user-dropin.lan"),
    );
    let c = roots.load();
    let prefixes: Vec<&str> = c.registries().iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(prefixes, ["c.com", "d.com"]);
}

#[test]
fn the_override_file_is_read_alone() {
    let roots = Roots::new();
    roots.write(
        &roots.system.join("registries.conf"),
        &table("a.com", "sys.lan"),
    );
    roots.write(
        &roots.system.join("registries.conf.d/10.conf"),
        &table("b.com", "sys-dropin.lan"),
    );
    let file = roots.system.join("elsewhere.conf");
    roots.write(&file, &table("c.com", "override.lan"));
    let paths = ConfPaths {
        override_file: Some(file.clone()),
        ..roots.paths()
    };
    let c = RegistriesConf::load_from(&paths).unwrap();
    assert_eq!(c.registries().len(), 1);
    assert_eq!(c, RegistriesConf::load(&file).unwrap());
    // Named explicitly: it must exist.
    let missing = roots.system.join("missing.conf");
    let err = RegistriesConf::load(&missing).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "registries configuration {}: no such file",
            missing.display()
        )
    );
    let paths = ConfPaths {
        override_file: Some(missing),
        ..roots.paths()
    };
    assert!(RegistriesConf::load_from(&paths).is_err());
}

#[test]
fn files_are_regular_bounded_and_utf8() {
    let roots = Roots::new();
    let main = roots.system.join("registries.conf");
    roots.write(&main, &format!("# {}\n", "x".repeat(1 << 20)));
    let err = RegistriesConf::load_from(&roots.paths())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}: has ", main.display())) && err.contains("more than the 1048576"),
        "{err}"
    );
    fs::remove_file(&main).unwrap();
    crate::source::local_file::mkfifo(&main);
    let err = RegistriesConf::load_from(&roots.paths())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a FIFO, expected a regular file"), "{err}");
    fs::remove_file(&main).unwrap();
    fs::write(&main, b"# \xff\n").unwrap();
    let err = RegistriesConf::load_from(&roots.paths())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("{}: not UTF-8 text, expected a TOML file", main.display())
    );
}
