//! [`Policy`]: finding and loading the policy's file contexts through a
//! file reader, ordering the specs ([`LookupOrder`]), path aliases, lookup.
//!
//! Loading reads, in this order, each at most [`MAX_POLICY_FILE`] bytes:
//!
//! ```text
//! /etc/selinux/config                                    absent or no SELINUXTYPE → no policy
//! /etc/selinux/<type>/contexts/files/file_contexts       mandatory
//! /etc/selinux/<type>/contexts/files/file_contexts.local     optional spec files
//! /etc/selinux/<type>/contexts/files/file_contexts.homedirs  (libselinux order: .homedirs, .local)
//! /etc/selinux/<type>/contexts/files/file_contexts.subs      optional alias files; for the same
//! /etc/selinux/<type>/contexts/files/file_contexts.subs_dist alias the later entry wins
//! ```
//!
//! `<type>` is used as composefs-rs uses it, as a relative path below
//! `/etc/selinux` (`a/b` descends, a leading `/` and repeated `/` are
//! ignored, empty means `/etc/selinux` itself); a first component `.` or
//! any `..` is refused, as composefs-rs's tree lookup refuses them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use cfs_core::tree::FileType;

use super::error::{SelinuxError, cut, show};
use super::matcher::{Matcher, Origin};
use super::spec::{NO_LABEL, Spec, has_meta_chars, parse_config, parse_specs, parse_subs};

/// Largest policy file read (`config`, spec and substitution files).
pub const MAX_POLICY_FILE: u64 = 64 << 20;

/// The image path of the SELinux configuration file.
pub const CONFIG_PATH: &str = "/etc/selinux/config";

/// Reads one file of the image by absolute path: its bytes, or `None` if it
/// does not exist. Readers should stop after [`MAX_POLICY_FILE`] + 1 bytes.
pub type ReadFile<'a> = dyn FnMut(&[u8]) -> Result<Option<Vec<u8>>, SelinuxError> + 'a;

/// A substitution: alias path, original path.
type Sub = (Box<[u8]>, Box<[u8]>);

/// Which spec wins when several match a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupOrder {
    /// composefs-rs 0.9.4: spec files in the order `file_contexts`, `.local`,
    /// `.homedirs`; the last matching spec wins. Aliases are whole paths,
    /// applied while walking (an aliased directory's children are named from
    /// the alias target).
    #[default]
    ComposefsRs,
    /// libselinux 3.4 `selabel_lookup`: spec files in the order
    /// `file_contexts`, `.homedirs`, `.local`; specs without regex
    /// meta-characters (`. ^ $ ? * + | [ ( {` unescaped) are moved after all
    /// others (keeping their order), then the last matching spec wins — so an
    /// exact path beats every pattern. Substitutions are prefixes applied at
    /// lookup (`.subs` first, then `.subs_dist` on the result; within a file
    /// the last matching line wins), repeated `/` are collapsed and a trailing
    /// `/` is dropped.
    Libselinux,
}

/// A compiled file-contexts policy.
pub struct Policy {
    policy_type: String,
    order: LookupOrder,
    /// Paths of the spec files read; [`Spec::file`] indexes this.
    files: Vec<String>,
    /// Specs in priority order: index 0 wins.
    specs: Vec<Spec>,
    /// Per spec, its context's id in `contexts` (`None` for `<<none>>`).
    labels: Vec<Option<u32>>,
    /// Distinct contexts.
    contexts: Vec<Box<str>>,
    /// composefs-rs: alias path → original path.
    aliases: HashMap<Box<[u8]>, Box<[u8]>>,
    /// libselinux: `.subs` and `.subs_dist` entries, last line first.
    subs: Vec<Sub>,
    dist_subs: Vec<Sub>,
    matcher: Matcher,
    /// Scratch buffer for lookup keys.
    key: Vec<u8>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("policy_type", &self.policy_type)
            .field("order", &self.order)
            .field("files", &self.files)
            .field("specs", &self.specs.len())
            .field("aliases", &self.aliases.len())
            .field("matcher", &self.matcher)
            .finish()
    }
}

/// One spec, as [`Policy::matching_spec`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecRef<'a> {
    /// The file it comes from.
    pub file: &'a str,
    /// Its line (from 1).
    pub line: usize,
    /// The pattern as written.
    pub regex: &'a str,
    /// The `-T` type character, if any (`'-'` for regular files).
    pub file_type: Option<char>,
    /// The context (`<<none>>` for "no label").
    pub context: &'a str,
}

/// What loading found.
pub(super) enum Loaded {
    Policy(Box<Policy>),
    NoConfig,
    NoPolicyType,
}

/// The `-T` character of a file type, as in the lookup key.
pub(super) fn type_char(file_type: FileType) -> u8 {
    match file_type {
        FileType::Regular => b'-',
        FileType::Directory => b'd',
        FileType::Symlink => b'l',
        FileType::Fifo => b'p',
        FileType::Socket => b's',
        FileType::BlockDevice => b'b',
        FileType::CharDevice => b'c',
    }
}

/// Calls `read` and enforces [`MAX_POLICY_FILE`].
fn read_bounded(read: &mut ReadFile<'_>, path: &str) -> Result<Option<Vec<u8>>, SelinuxError> {
    let data = read(path.as_bytes())?;
    if let Some(d) = &data
        && d.len() as u64 > MAX_POLICY_FILE
    {
        return Err(SelinuxError::TooLarge {
            path: path.to_owned(),
            size: d.len() as u64,
            limit: MAX_POLICY_FILE,
        });
    }
    Ok(data)
}

/// A reader for a tree unpacked on disk under `root` (`/etc/selinux/config`
/// is `root/etc/selinux/config`). Symlinks on disk are followed; missing
/// files are `None`; reads stop after [`MAX_POLICY_FILE`] + 1 bytes.
pub fn dir_reader(root: &Path) -> impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, SelinuxError> + '_ {
    move |path: &[u8]| {
        let mut rel = path;
        while let Some(rest) = rel.strip_prefix(b"/") {
            rel = rest;
        }
        let io = |source| SelinuxError::Io {
            path: show(path),
            source,
        };
        let file = match std::fs::File::open(root.join(OsStr::from_bytes(rel))) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut data = Vec::new();
        file.take(MAX_POLICY_FILE + 1)
            .read_to_end(&mut data)
            .map_err(io)?;
        Ok(Some(data))
    }
}

/// Refuses the `SELINUXTYPE` values composefs-rs's tree lookup refuses.
fn check_policy_type(name: &str) -> Result<(), SelinuxError> {
    let bad = Path::new(name).components().any(|c| {
        matches!(
            c,
            Component::CurDir | Component::ParentDir | Component::Prefix(_)
        )
    });
    if bad {
        return Err(SelinuxError::BadPolicyType {
            path: CONFIG_PATH.to_owned(),
            name: cut(name, 200),
        });
    }
    Ok(())
}

/// libselinux `selabel_sub`: the first entry whose alias is `path` or a
/// `/`-bounded prefix of it, replaced by its original.
fn substitute(list: &[Sub], path: &[u8]) -> Option<Vec<u8>> {
    list.iter().find_map(|(alias, original)| {
        let rest = path.strip_prefix(&**alias)?;
        if !(rest.is_empty() || rest.starts_with(b"/")) {
            return None;
        }
        let rest = match rest.strip_prefix(b"/") {
            Some(tail) if &**original == b"/" => tail,
            _ => rest,
        };
        Some([&**original, rest].concat())
    })
}

impl Policy {
    /// Loads the policy named by `/etc/selinux/config`, reading the files
    /// through `read`. `None` when there is no config file or it has no
    /// `SELINUXTYPE` (no policy: labels are to be removed).
    pub fn load(
        read: &mut ReadFile<'_>,
        order: LookupOrder,
    ) -> Result<Option<Policy>, SelinuxError> {
        Ok(match Self::load_inner(read, order)? {
            Loaded::Policy(p) => Some(*p),
            Loaded::NoConfig | Loaded::NoPolicyType => None,
        })
    }

    pub(super) fn load_inner(
        read: &mut ReadFile<'_>,
        order: LookupOrder,
    ) -> Result<Loaded, SelinuxError> {
        let Some(config) = read_bounded(read, CONFIG_PATH)? else {
            return Ok(Loaded::NoConfig);
        };
        let Some(policy_type) = parse_config(&config, CONFIG_PATH)? else {
            return Ok(Loaded::NoPolicyType);
        };
        check_policy_type(&policy_type)?;
        let dir = format!("/etc/selinux/{policy_type}/contexts/files/");
        let spec_files = match order {
            LookupOrder::ComposefsRs => ["", ".local", ".homedirs"],
            LookupOrder::Libselinux => ["", ".homedirs", ".local"],
        };
        let mut files = Vec::new();
        let mut specs = Vec::new();
        for suffix in spec_files {
            let path = format!("{dir}file_contexts{suffix}");
            match read_bounded(read, &path)? {
                Some(data) => {
                    parse_specs(&data, &path, files.len(), &mut specs)?;
                    files.push(path);
                }
                None if suffix.is_empty() => {
                    return Err(SelinuxError::MissingFileContexts { path });
                }
                None => {}
            }
        }
        let mut subs = Vec::new();
        for suffix in [".subs", ".subs_dist"] {
            let path = format!("{dir}file_contexts{suffix}");
            let entries = match read_bounded(read, &path)? {
                Some(data) => parse_subs(&data, &path)?,
                None => Vec::new(),
            };
            subs.push(entries);
        }
        let dist = subs.pop().unwrap_or_default();
        let local = subs.pop().unwrap_or_default();
        let policy = Self::build(policy_type, order, files, specs, local, dist)?;
        Ok(Loaded::Policy(Box::new(policy)))
    }

    /// Orders and compiles parsed specs (in file order) and substitutions.
    fn build(
        policy_type: String,
        order: LookupOrder,
        files: Vec<String>,
        mut specs: Vec<Spec>,
        subs: Vec<(String, String)>,
        dist_subs: Vec<(String, String)>,
    ) -> Result<Policy, SelinuxError> {
        if order == LookupOrder::Libselinux {
            // sort_specs: patterns first, exact paths last, each in file order.
            let (mut ordered, exact): (Vec<_>, Vec<_>) =
                specs.into_iter().partition(|s| has_meta_chars(&s.regex));
            ordered.extend(exact);
            specs = ordered;
        }
        // The last spec wins: priority order is the reverse.
        specs.reverse();

        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut contexts: Vec<Box<str>> = Vec::new();
        let mut labels = Vec::with_capacity(specs.len());
        for spec in &specs {
            if spec.context == NO_LABEL {
                labels.push(None);
                continue;
            }
            let next = u32::try_from(contexts.len()).unwrap_or(u32::MAX);
            let id = *ids.entry(spec.context.as_str()).or_insert_with(|| {
                contexts.push(spec.context.as_str().into());
                next
            });
            labels.push(Some(id));
        }

        let patterns: Vec<String> = specs
            .iter()
            .map(|s| {
                let t = s.file_type.map_or('.', char::from);
                format!("^({}){t}$", s.regex)
            })
            .collect();
        let origin = |i: usize| {
            let s = &specs[i];
            Origin {
                path: files.get(s.file).cloned().unwrap_or_default(),
                line: s.line,
                regex: s.regex.clone(),
            }
        };
        let matcher = Matcher::build(&patterns, &origin)?;

        let pairs = |list: Vec<(String, String)>| -> Vec<Sub> {
            list.into_iter()
                .map(|(a, o)| (a.into_bytes().into(), o.into_bytes().into()))
                .collect()
        };
        let (mut subs, mut dist_subs) = (pairs(subs), pairs(dist_subs));
        let aliases = subs.iter().chain(&dist_subs).cloned().collect();
        subs.reverse();
        dist_subs.reverse();
        Ok(Policy {
            policy_type,
            order,
            files,
            specs,
            labels,
            contexts,
            aliases,
            subs,
            dist_subs,
            matcher,
            key: Vec::new(),
        })
    }

    /// The `SELINUXTYPE` the policy was loaded for.
    pub fn policy_type(&self) -> &str {
        &self.policy_type
    }

    /// The ordering rule in force.
    pub fn order(&self) -> LookupOrder {
        self.order
    }

    /// The spec files read, in load order.
    pub fn spec_files(&self) -> &[String] {
        &self.files
    }

    /// Number of specs.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True when the spec files hold no spec.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Number of patterns matched by PCRE2 instead of the DFA.
    pub fn pcre2_patterns(&self) -> usize {
        self.matcher.fallback_count()
    }

    /// Memory of the compiled NFA (the DFA is built lazily from it).
    pub fn nfa_memory(&self) -> usize {
        self.matcher.nfa_memory()
    }

    /// The original path `path` is an alias of (`file_contexts.subs*`, whole
    /// path, exact match).
    pub fn alias(&self, path: &[u8]) -> Option<&[u8]> {
        self.aliases.get(path).map(|o| &**o)
    }

    /// The alias the tree walk applies: composefs-rs's, none for libselinux
    /// (whose lookup substitutes prefixes itself).
    pub(super) fn walk_alias(&self, path: &[u8]) -> Option<&[u8]> {
        match self.order {
            LookupOrder::ComposefsRs => self.alias(path),
            LookupOrder::Libselinux => None,
        }
    }

    /// The label of `path` as a `file_type`, or `None` for "no label" (no
    /// spec matches, or the winner's context is `<<none>>`). `path` is used
    /// as given; aliases are the tree walk's business ([`Policy::alias`]).
    pub fn lookup(
        &mut self,
        path: &[u8],
        file_type: FileType,
    ) -> Result<Option<&str>, SelinuxError> {
        let id = self.lookup_id(path, file_type)?;
        Ok(id.and_then(|id| self.context(id)))
    }

    /// The spec that decides `path`'s label (also when it is `<<none>>`).
    pub fn matching_spec(
        &mut self,
        path: &[u8],
        file_type: FileType,
    ) -> Result<Option<SpecRef<'_>>, SelinuxError> {
        let Some(index) = self.find(path, file_type)? else {
            return Ok(None);
        };
        Ok(self.specs.get(index).map(|s| SpecRef {
            file: self.files.get(s.file).map_or("", String::as_str),
            line: s.line,
            regex: &s.regex,
            file_type: s.file_type.map(char::from),
            context: &s.context,
        }))
    }

    /// The interned label id of `path` (`None`: no label).
    pub(super) fn lookup_id(
        &mut self,
        path: &[u8],
        file_type: FileType,
    ) -> Result<Option<u32>, SelinuxError> {
        let index = self.find(path, file_type)?;
        Ok(index.and_then(|i| self.labels.get(i).copied().flatten()))
    }

    /// The context of an interned label id.
    pub(super) fn context(&self, id: u32) -> Option<&str> {
        self.contexts.get(id as usize).map(|c| &**c)
    }

    /// The index (priority order) of the winning spec.
    fn find(&mut self, path: &[u8], file_type: FileType) -> Result<Option<usize>, SelinuxError> {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        match self.order {
            LookupOrder::ComposefsRs => key.extend_from_slice(path),
            LookupOrder::Libselinux => self.libselinux_key(path, &mut key),
        }
        key.push(type_char(file_type));
        let found = self
            .matcher
            .find(&key)
            .map_err(|reason| SelinuxError::Match {
                path: show(path),
                reason,
            });
        self.key = key;
        found
    }

    /// libselinux's key: repeated `/` collapsed, a trailing `/` dropped,
    /// then the substitutions.
    fn libselinux_key(&self, path: &[u8], key: &mut Vec<u8>) {
        let mut clean = Vec::with_capacity(path.len());
        for &b in path {
            if !(b == b'/' && clean.last() == Some(&b'/')) {
                clean.push(b);
            }
        }
        if clean.len() > 1 && clean.last() == Some(&b'/') {
            clean.pop();
        }
        let subbed = match substitute(&self.subs, &clean) {
            Some(s) => substitute(&self.dist_subs, &s).or(Some(s)),
            None => substitute(&self.dist_subs, &clean),
        };
        key.extend_from_slice(subbed.as_deref().unwrap_or(&clean));
    }
}
