//! containers-registries.conf(5): where a `docker://` image is really
//! pulled from — a remapped location, mirrors tried first, plain HTTP, or
//! nowhere (blocked).
//!
//! # Format
//!
//! **Version 2** (TOML), the keys read:
//! - top level `unqualified-search-registries` (array of strings): kept
//!   ([`RegistriesConf::unqualified_search_registries`]), not used here
//!   (cfs takes fully qualified references only);
//! - `[[registry]]` tables: `prefix`, `location`, `insecure`, `blocked`,
//!   `mirror-by-digest-only`, and `[[registry.mirror]]` tables with
//!   `location`, `insecure` and `pull-from-mirror` (`"all"`, the default
//!   also when empty, `"digest-only"`, `"tag-only"`).
//!
//! Every other key (`[aliases]`, `short-name-mode`, `credential-helpers`,
//! …) is ignored; a known key of the wrong type is an error naming the
//! file, the line and the key. A `[[registry]]` without `prefix` uses its
//! `location` as prefix; one without `location` is not remapped. Two
//! tables with the same prefix in one file are an error, as is
//! `pull-from-mirror` on a mirror of a table with
//! `mirror-by-digest-only = true`.
//!
//! **Version 1** (`[registries.search]`, `[registries.insecure]`,
//! `[registries.block]`, each with a `registries` array) is converted: the
//! search list becomes `unqualified-search-registries`, each insecure or
//! blocked host a `[[registry]]` with that prefix and `insecure` /
//! `blocked` set. Both versions in one file are an error, and so is
//! version 1 in a drop-in file (containers-registries.conf.d(5) wants
//! version 2 there).
//!
//! # Prefixes
//!
//! A prefix is `HOST[:PORT]`, `HOST[:PORT]/NAMESPACE…[/REPO]`, optionally
//! ending in `:TAG` or `@DIGEST`, or `*.DOMAIN` (nothing else may carry a
//! `*`). The reference — normalised as the registry client reads it:
//! `docker.io/library/…` for Docker Hub short names, `:latest` when
//! neither tag nor digest is given — matches:
//! - `HOST[:PORT]` when it is that registry exactly (`example.com` does not
//!   match `example.com:5000/…`);
//! - a prefix with a path when it starts with it and goes on with `/`,
//!   `:` or `@`, or ends there (`example.com/foo` matches
//!   `example.com/foo/img` and `example.com/foo:v1`, not
//!   `example.com/foobar`);
//! - `*.DOMAIN` when the registry's host (its port aside) is a subdomain of
//!   `DOMAIN` at any depth (`a.example.com`, `a.b.example.com:5000`, not
//!   `example.com`).
//!
//! The longest matching prefix (as written) wins; between a wildcard and an
//! exact prefix of the same length, the exact one.
//!
//! # Resolution
//!
//! The matched part of the reference is replaced by the `location` (a
//! mirror's `location` for a mirror). Under a wildcard prefix the primary
//! is the reference as given (the `location` is ignored), and a mirror's
//! `location` replaces the registry (`HOST[:PORT]`). Mirrors come first,
//! in file order, those `pull-from-mirror` or `mirror-by-digest-only` allow
//! for a pull by digest or by tag; then the primary location. `insecure`
//! means plain HTTP (cfs does not do TLS without certificate checks).
//!
//! # Files
//!
//! [`RegistriesConf::load_default`] (see [`ConfPaths`]): only
//! `$CONTAINERS_REGISTRIES_CONF` when set; else
//! `$HOME/.config/containers/registries.conf` if it exists, followed by
//! the drop-ins of `$HOME/.config/containers/registries.conf.d`; else
//! `/etc/containers/registries.conf` (missing: empty) followed by the
//! drop-ins of `/etc/containers/registries.conf.d`, then of
//! `$HOME/.config/containers/registries.conf.d`. Drop-ins are the `*.conf`
//! files of a directory (subdirectories skipped), in byte order of their
//! names; a drop-in's `unqualified-search-registries` replaces the earlier
//! list and its `[[registry]]` tables replace those with the same prefix,
//! others being added. Every file is read as a regular file of at most
//! 1 MiB.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_client::Reference;
use serde::Deserialize;

use super::SourceError;
use super::local_file::{MAX_SMALL_FILE, read_regular};

/// Which pulls may use a mirror (`pull-from-mirror`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullFromMirror {
    /// Pulls by tag and by digest (`"all"`, or empty).
    #[default]
    All,
    /// Pulls by digest only (`"digest-only"`).
    DigestOnly,
    /// Pulls by tag only (`"tag-only"`).
    TagOnly,
}

/// A `[[registry.mirror]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mirror {
    /// What replaces the matched prefix (`HOST[:PORT][/PATH]`).
    pub location: String,
    /// Plain HTTP.
    pub insecure: bool,
    /// Which pulls may use it.
    pub pull_from_mirror: PullFromMirror,
}

/// A `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registry {
    /// What it applies to (its `location` when the file gives no prefix).
    pub prefix: String,
    /// What replaces the prefix (the prefix itself when the file gives no
    /// location; not used under a wildcard prefix).
    pub location: String,
    /// Plain HTTP to `location`.
    pub insecure: bool,
    /// Pulls matching the prefix are refused.
    pub blocked: bool,
    /// Mirrors are used for pulls by digest only.
    pub mirror_by_digest_only: bool,
    /// The mirrors, in file order.
    pub mirrors: Vec<Mirror>,
    /// The file the table comes from.
    pub origin: PathBuf,
}

impl Registry {
    /// The domain of a `*.DOMAIN` prefix, with its leading dot.
    fn wildcard_domain(&self) -> Option<&str> {
        self.prefix.strip_prefix('*')
    }

    /// How many bytes of the normalised reference `name` the prefix covers,
    /// if it matches (see the module docs).
    fn matched_len(&self, name: &str) -> Option<usize> {
        if let Some(domain) = self.wildcard_domain() {
            let registry = name.split('/').next().unwrap_or(name);
            let host = super::registry::host_of(registry);
            return (host.len() > domain.len() && host.ends_with(domain)).then_some(registry.len());
        }
        let rest = name.strip_prefix(self.prefix.as_str())?;
        let separators: &[char] = if self.prefix.contains('/') {
            &['/', ':', '@']
        } else {
            &['/']
        };
        match rest.chars().next() {
            None => Some(self.prefix.len()),
            Some(c) if separators.contains(&c) => Some(self.prefix.len()),
            Some(_) => None,
        }
    }
}

/// One place to try a pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST/REPO[:TAG|@DIGEST]` there (what would follow `docker://`).
    pub spec: String,
    /// Plain HTTP, as the configuration says (the caller's own rules, such
    /// as `localhost`, come on top).
    pub insecure: bool,
    /// A mirror (the primary location otherwise).
    pub mirror: bool,
}

/// Where the configuration files are (taken explicitly, so tests need not
/// touch the real `/etc` or the process environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfPaths {
    /// `$CONTAINERS_REGISTRIES_CONF`: when set, the only file read (and it
    /// must exist).
    pub override_file: Option<PathBuf>,
    /// The system directory, `/etc/containers`.
    pub system_dir: PathBuf,
    /// The user's directory, `$HOME/.config/containers` (`None` without
    /// `$HOME`).
    pub user_dir: Option<PathBuf>,
}

impl ConfPaths {
    /// The paths of this process: `$CONTAINERS_REGISTRIES_CONF`,
    /// `/etc/containers`, `$HOME/.config/containers` (empty variables count
    /// as unset).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            override_file: var("CONTAINERS_REGISTRIES_CONF").map(PathBuf::from),
            system_dir: PathBuf::from("/etc/containers"),
            user_dir: var("HOME").map(|home| PathBuf::from(home).join(".config/containers")),
        }
    }
}

/// A containers-registries.conf(5) configuration (one file, or a main file
/// and its drop-ins merged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// `unqualified-search-registries`, if any file set it.
    search: Option<Vec<String>>,
    registries: Vec<Registry>,
}

/// The version of a file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl RegistriesConf {
    /// `unqualified-search-registries` (kept for callers; cfs does not
    /// search).
    pub fn unqualified_search_registries(&self) -> &[String] {
        self.search.as_deref().unwrap_or_default()
    }

    /// The `[[registry]]` tables (after merging drop-ins).
    pub fn registries(&self) -> &[Registry] {
        &self.registries
    }

    /// Parses one file's `text`; `origin` names it in messages and in
    /// [`Registry::origin`].
    pub fn parse(text: &str, origin: &Path) -> Result<Self, SourceError> {
        parse_file(text, origin).map(|(conf, _)| conf)
    }

    /// Reads the file `path` alone (no drop-ins), as skopeo's
    /// `--registries-conf`. A missing file is an error.
    pub fn load(path: &Path) -> Result<Self, SourceError> {
        let text = read_conf(path)?.ok_or_else(|| {
            SourceError::Other(format!(
                "registries configuration {}: no such file",
                path.display()
            ))
        })?;
        Self::parse(&text, path)
    }

    /// The configuration of this process (see the module docs and
    /// [`ConfPaths::from_env`]).
    pub fn load_default() -> Result<Self, SourceError> {
        Self::load_from(&ConfPaths::from_env())
    }

    /// The configuration found at `paths` (see the module docs).
    pub fn load_from(paths: &ConfPaths) -> Result<Self, SourceError> {
        if let Some(file) = &paths.override_file {
            return Self::load(file);
        }
        let user_main = match &paths.user_dir {
            Some(dir) => {
                let path = dir.join("registries.conf");
                read_conf(&path)?.map(|text| (text, path))
            }
            None => None,
        };
        let user_dropins = paths.user_dir.as_ref().map(|d| d.join("registries.conf.d"));
        let (mut conf, dropin_dirs) = match user_main {
            Some((text, path)) => (Self::parse(&text, &path)?, vec![user_dropins]),
            None => {
                let path = paths.system_dir.join("registries.conf");
                let conf = match read_conf(&path)? {
                    Some(text) => Self::parse(&text, &path)?,
                    None => Self::default(),
                };
                let system_dropins = Some(paths.system_dir.join("registries.conf.d"));
                (conf, vec![system_dropins, user_dropins])
            }
        };
        for dir in dropin_dirs.into_iter().flatten() {
            for path in dropin_files(&dir)? {
                let text = read_conf(&path)?.ok_or_else(|| {
                    SourceError::Other(format!(
                        "registries configuration {}: no such file (a dangling symlink?)",
                        path.display()
                    ))
                })?;
                let (dropin, version) = parse_file(&text, &path)?;
                if version == Version::V1 {
                    return Err(SourceError::Other(format!(
                        "{}: a drop-in file must use the version 2 format ([[registry]] tables), \
                         not [registries.search]/[registries.insecure]/[registries.block]",
                        path.display()
                    )));
                }
                conf.merge(dropin);
            }
        }
        Ok(conf)
    }

    /// Lays the drop-in `later` over `self`: its search list replaces
    /// ours, its tables replace ours with the same prefix.
    fn merge(&mut self, later: Self) {
        if later.search.is_some() {
            self.search = later.search;
        }
        for registry in later.registries {
            match self
                .registries
                .iter_mut()
                .find(|r| r.prefix == registry.prefix)
            {
                Some(slot) => *slot = registry,
                None => self.registries.push(registry),
            }
        }
    }

    /// The `[[registry]]` table for the normalised reference `name`, and
    /// how many bytes of it its prefix covers.
    fn find(&self, name: &str) -> Option<(&Registry, usize)> {
        self.registries
            .iter()
            .filter_map(|r| r.matched_len(name).map(|len| (r, len)))
            .max_by_key(|(r, _)| (r.prefix.len(), r.wildcard_domain().is_none()))
    }

    /// The places to pull `spec` (`HOST/REPO[:TAG|@DIGEST]`, what follows
    /// `docker://`) from, in order: the usable mirrors, then the primary
    /// location. Without a matching table, `spec` itself (not insecure).
    /// A blocked prefix is an error.
    pub fn resolve(&self, spec: &str) -> Result<Vec<Endpoint>, SourceError> {
        let invalid = |reason: String| SourceError::InvalidReference {
            reference: format!("docker://{spec}"),
            reason,
        };
        let reference: Reference = spec.parse().map_err(|e| invalid(format!("{e}")))?;
        let name = reference.whole();
        let Some((registry, len)) = self.find(&name) else {
            return Ok(vec![Endpoint {
                spec: spec.to_owned(),
                insecure: false,
                mirror: false,
            }]);
        };
        if registry.blocked {
            return Err(SourceError::Other(format!(
                "docker://{spec}: pulls from {} are blocked by {}",
                registry.prefix,
                registry.origin.display()
            )));
        }
        let rest = &name[len..];
        let by_digest = reference.digest().is_some();
        let mut out = Vec::new();
        for mirror in &registry.mirrors {
            let usable = match (registry.mirror_by_digest_only, mirror.pull_from_mirror) {
                (true, _) | (false, PullFromMirror::DigestOnly) => by_digest,
                (false, PullFromMirror::TagOnly) => !by_digest,
                (false, PullFromMirror::All) => true,
            };
            if usable {
                out.push(Endpoint {
                    spec: format!("{}{rest}", mirror.location),
                    insecure: mirror.insecure,
                    mirror: true,
                });
            }
        }
        let primary =
            if registry.wildcard_domain().is_some() || registry.location == registry.prefix {
                spec.to_owned()
            } else {
                format!("{}{rest}", registry.location)
            };
        out.push(Endpoint {
            spec: primary,
            insecure: registry.insecure,
            mirror: false,
        });
        for endpoint in &out {
            if let Err(e) = endpoint.spec.parse::<Reference>() {
                return Err(invalid(format!(
                    "{} maps it to {}, which is not a valid reference: {e}",
                    registry.origin.display(),
                    endpoint.spec
                )));
            }
        }
        Ok(out)
    }
}

/// The text of the configuration file `path`, `None` if it does not exist.
fn read_conf(path: &Path) -> Result<Option<String>, SourceError> {
    let bytes = match read_regular(path, MAX_SMALL_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SourceError::Other(format!("registries configuration {e}"))),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| {
        SourceError::Other(format!(
            "{}: not UTF-8 text, expected a TOML file",
            path.display()
        ))
    })
}

/// The `*.conf` files of the drop-in directory `dir` (none if it does not
/// exist), by name; subdirectories are skipped.
fn dropin_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let failed = |e: io::Error| {
        SourceError::Other(format!(
            "registries configuration directory {}: {e}",
            dir.display()
        ))
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(failed)?;
        let name = entry.file_name();
        if !name.as_encoded_bytes().ends_with(b".conf") {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a link to a directory is skipped too; anything
        // else is read (and refused there unless it is a regular file).
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        files.push((name, path));
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// A file as written (serde's view of it).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    registry: Vec<RawRegistry>,
    /// Version 1.
    registries: Option<RawV1>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    mirror_by_digest_only: Option<bool>,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

#[derive(Deserialize)]
struct RawV1 {
    search: Option<RawV1List>,
    insecure: Option<RawV1List>,
    block: Option<RawV1List>,
}

#[derive(Deserialize)]
struct RawV1List {
    #[serde(default)]
    registries: Vec<String>,
}

/// Parses one file, saying which format version it uses.
fn parse_file(text: &str, origin: &Path) -> Result<(RegistriesConf, Version), SourceError> {
    let file = origin.display();
    let de = toml::Deserializer::parse(text)
        .map_err(|e| toml_error(text, &file.to_string(), &e, None))?;
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        toml_error(text, &file.to_string(), e.inner(), Some(key))
    })?;
    let fail = |message: String| SourceError::Other(format!("{file}: {message}"));
    if let Some(v1) = raw.registries {
        if !raw.registry.is_empty() || raw.unqualified_search_registries.is_some() {
            return Err(fail(
                "mixes the version 1 format ([registries.*] tables) with the version 2 format \
                 ([[registry]] tables, unqualified-search-registries); use one"
                    .into(),
            ));
        }
        return from_v1(v1, origin).map(|conf| (conf, Version::V1));
    }
    let mut registries: Vec<Registry> = Vec::with_capacity(raw.registry.len());
    for (i, table) in raw.registry.into_iter().enumerate() {
        let registry =
            from_v2(table, origin).map_err(|m| fail(format!("[[registry]] {}: {m}", i + 1)))?;
        if let Some(j) = registries.iter().position(|r| r.prefix == registry.prefix) {
            return Err(fail(format!(
                "[[registry]] {} and {} both have the prefix {:?}",
                j + 1,
                i + 1,
                registry.prefix
            )));
        }
        registries.push(registry);
    }
    let conf = RegistriesConf {
        search: raw.unqualified_search_registries,
        registries,
    };
    Ok((conf, Version::V2))
}

/// A `[[registry]]` table checked; the error is the problem alone.
fn from_v2(raw: RawRegistry, origin: &Path) -> Result<Registry, String> {
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    let (prefix, location) = match (given(raw.prefix), given(raw.location)) {
        (Some(prefix), Some(location)) => (prefix, location),
        (Some(prefix), None) => (prefix.clone(), prefix),
        (None, Some(location)) => (location.clone(), location),
        (None, None) => return Err("expected a prefix or a location".into()),
    };
    check_name(&prefix, true).map_err(|m| format!("prefix {prefix:?}: {m}"))?;
    let wildcard = prefix.starts_with('*');
    if !wildcard {
        check_name(&location, false).map_err(|m| format!("location {location:?}: {m}"))?;
    }
    let mut mirrors = Vec::with_capacity(raw.mirror.len());
    for (i, mirror) in raw.mirror.into_iter().enumerate() {
        let at = |m: String| format!("[[registry.mirror]] {}: {m}", i + 1);
        let location = given(mirror.location).ok_or_else(|| at("expected a location".into()))?;
        check_name(&location, false).map_err(|m| at(format!("location {location:?}: {m}")))?;
        let pull_from_mirror = match mirror.pull_from_mirror.as_deref() {
            None | Some("") => PullFromMirror::All,
            Some(_) if raw.mirror_by_digest_only == Some(true) => {
                return Err(at("pull-from-mirror cannot be set when the registry has \
                     mirror-by-digest-only = true"
                    .into()));
            }
            Some("all") => PullFromMirror::All,
            Some("digest-only") => PullFromMirror::DigestOnly,
            Some("tag-only") => PullFromMirror::TagOnly,
            Some(other) => {
                return Err(at(format!(
                    "pull-from-mirror {other:?}: expected \"all\", \"digest-only\" or \"tag-only\""
                )));
            }
        };
        mirrors.push(Mirror {
            location,
            insecure: mirror.insecure,
            pull_from_mirror,
        });
    }
    Ok(Registry {
        prefix,
        location,
        insecure: raw.insecure,
        blocked: raw.blocked,
        mirror_by_digest_only: raw.mirror_by_digest_only.unwrap_or(false),
        mirrors,
        origin: origin.to_owned(),
    })
}

/// The version 1 tables as version 2 ones (see the module docs).
fn from_v1(raw: RawV1, origin: &Path) -> Result<RegistriesConf, SourceError> {
    let list = |l: Option<RawV1List>| l.map(|l| l.registries).unwrap_or_default();
    let mut registries: Vec<Registry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let lists = [
        ("insecure", list(raw.insecure), true),
        ("block", list(raw.block), false),
    ];
    for (table, hosts, insecure) in lists {
        for host in hosts {
            check_name(&host, false).map_err(|m| {
                SourceError::Other(format!(
                    "{}: [registries.{table}] {host:?}: {m}",
                    origin.display()
                ))
            })?;
            let at = *index.entry(host.clone()).or_insert_with(|| {
                registries.push(Registry {
                    prefix: host.clone(),
                    location: host.clone(),
                    insecure: false,
                    blocked: false,
                    mirror_by_digest_only: false,
                    mirrors: Vec::new(),
                    origin: origin.to_owned(),
                });
                registries.len() - 1
            });
            if insecure {
                registries[at].insecure = true;
            } else {
                registries[at].blocked = true;
            }
        }
    }
    Ok(RegistriesConf {
        search: raw.search.map(|l| l.registries),
        registries,
    })
}

/// Whether `name` can be a prefix (`wildcard`) or a location: the problem
/// otherwise.
fn check_name(name: &str, wildcard: bool) -> Result<(), String> {
    if name.contains("://") {
        return Err("expected HOST[:PORT][/PATH], without a scheme such as https://".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space".into());
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("expected HOST[:PORT][/PATH], without an empty component".into());
    }
    if let Some(domain) = name.strip_prefix("*.") {
        if !wildcard {
            return Err("a wildcard (*.DOMAIN) is allowed in a prefix only".into());
        }
        if domain.is_empty() || domain.contains(['*', '/', ':', '@']) {
            return Err(
                "a wildcard prefix is *.DOMAIN alone (no port, path, tag or digest)".into(),
            );
        }
        return Ok(());
    }
    if name.contains('*') {
        return Err("a wildcard is allowed only as a leading *. (*.example.com)".into());
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `at` of `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// A toml error as one line naming the file, where (when known) and the
/// key (a value of the wrong type) or that it is TOML syntax (`key` =
/// `None`).
fn toml_error(text: &str, file: &str, e: &toml::de::Error, key: Option<String>) -> SourceError {
    let mut out = format!("{file}: ");
    if let Some(span) = e.span() {
        let (line, column) = line_column(text, span.start);
        out.push_str(&format!("line {line}, column {column}: "));
    }
    if let Some(key) = key.as_deref().filter(|k| !k.is_empty() && *k != ".") {
        out.push_str(&format!("{key}: "));
    }
    let message: Vec<&str> = e.message().split_whitespace().collect();
    out.push_str(&message.join(" "));
    if key.is_none() {
        out.push_str(" (TOML syntax)");
    }
    SourceError::Other(out)
}

#[cfg(test)]
#[path = "registries_conf_tests.rs"]
mod tests;
