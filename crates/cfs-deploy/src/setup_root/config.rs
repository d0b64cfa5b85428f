//! The root-setup configuration, `/usr/lib/composefs/setup-root-conf.toml`
//! (boot-deploy.md §9.3):
//!
//! ```toml
//! [root]
//! transient = false        # true: a tmpfs overlay over the whole root
//! [etc]
//! mount = "bind"           # bind | overlay | transient (alias volatile) | none (alias root)
//! transient = false        # shorthand for mount = "transient" when mount is unset
//! [var]
//! mount = "bind"           # bind | none (alias root)
//! ```
//!
//! Defaults are bootc's (`/etc` and `/var` bound from the deployment's
//! state). The file is read with a small strict TOML subset: `[section]`
//! headers, `key = "string"` and `key = true|false`, `#` comments. Unknown
//! sections and keys are ignored (newer files on older tools); a malformed
//! line or an unknown value of a known key is an error naming the line.

use std::fmt;

/// Largest configuration file read.
pub const MAX_CONFIG_LEN: usize = 64 << 10;

/// How `/etc` is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtcMount {
    /// Bind of `state/deploy/<id>/etc` (bootc's default).
    #[default]
    Bind,
    /// overlay: the image's `/etc` below, `state/deploy/<id>/etc.upper` above.
    Overlay,
    /// overlay with a tmpfs upper layer: changes are lost at shutdown.
    Transient,
    /// The image's `/etc`, read-only.
    None,
}

/// How `/var` is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VarMount {
    /// Bind of `state/deploy/<id>/var` (the shared `state/os/default/var`).
    #[default]
    Bind,
    /// The image's `/var`.
    None,
}

/// The parsed configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    /// A tmpfs overlay over the whole root.
    pub root_transient: bool,
    /// `/etc`.
    pub etc: EtcMount,
    /// `/var`; `None` here means "not configured" (then
    /// `systemd.volatile=state|overlay` skips the bind).
    pub var: Option<VarMount>,
}

/// A malformed configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ConfigError {
    /// 1-based line (0: the whole file).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn parse_value(text: &str) -> Option<Value> {
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q))
            && !inner.contains(q)
            && !inner.contains('\\')
        {
            return Some(Value::Str(inner.to_owned()));
        }
    }
    None
}

/// Strips a `#` comment that is not inside a quoted string.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

impl Config {
    /// Parses a configuration file.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        if text.len() > MAX_CONFIG_LEN {
            return Err(ConfigError {
                line: 0,
                reason: format!("larger than {MAX_CONFIG_LEN} bytes"),
            });
        }
        let mut section = String::new();
        let mut etc_mount = None;
        let mut etc_transient = false;
        let mut out = Config::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| ConfigError {
                line: i + 1,
                reason,
            };
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| err(format!("section header without `]`: {line:?}")))?;
                section = name.trim().to_owned();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(format!("expected `key = value`, found {line:?}")))?;
            let key = key.trim();
            let value = parse_value(value.trim()).ok_or_else(|| {
                err(format!(
                    "{key}: expected a quoted string or true/false, found {:?}",
                    value.trim()
                ))
            })?;
            let want_bool = |v: &Value| match v {
                Value::Bool(b) => Ok(*b),
                Value::Str(_) => Err(err(format!(
                    "[{section}] {key}: expected true or false, found {v}"
                ))),
            };
            let want_str = |v: &Value| match v {
                Value::Str(s) => Ok(s.clone()),
                Value::Bool(_) => Err(err(format!(
                    "[{section}] {key}: expected a string, found {v}"
                ))),
            };
            match (section.as_str(), key) {
                ("root", "transient") => out.root_transient = want_bool(&value)?,
                ("etc", "transient") => etc_transient = want_bool(&value)?,
                ("etc", "mount") => {
                    etc_mount = Some(match want_str(&value)?.as_str() {
                        "bind" => EtcMount::Bind,
                        "overlay" => EtcMount::Overlay,
                        "transient" | "volatile" => EtcMount::Transient,
                        "none" | "root" => EtcMount::None,
                        other => {
                            return Err(err(format!(
                                "[etc] mount: {other:?} is not bind, overlay, transient or none"
                            )));
                        }
                    });
                }
                ("var", "mount") => {
                    out.var = Some(match want_str(&value)?.as_str() {
                        "bind" => VarMount::Bind,
                        "none" | "root" => VarMount::None,
                        "overlay" => {
                            return Err(
                                err("[var] mount: overlay is not supported on /var".into()),
                            );
                        }
                        other => {
                            return Err(err(format!("[var] mount: {other:?} is not bind or none")));
                        }
                    });
                }
                _ => {}
            }
        }
        out.etc = match (etc_mount, etc_transient) {
            (Some(m), _) => m,
            (None, true) => EtcMount::Transient,
            (None, false) => EtcMount::Bind,
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_value() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            "# comment\n[root]\ntransient = true\n\n[etc]\nmount = \"overlay\" # why\n[var]\nmount = 'none'\n[future]\nx = \"y\"\n",
        )
        .unwrap();
        assert!(c.root_transient);
        assert_eq!(c.etc, EtcMount::Overlay);
        assert_eq!(c.var, Some(VarMount::None));
        for (v, want) in [
            ("bind", EtcMount::Bind),
            ("transient", EtcMount::Transient),
            ("volatile", EtcMount::Transient),
            ("none", EtcMount::None),
            ("root", EtcMount::None),
        ] {
            let c = Config::parse(&format!("[etc]\nmount = \"{v}\"\n")).unwrap();
            assert_eq!(c.etc, want, "{v}");
        }
        // The shorthand, and mount winning over it.
        assert_eq!(
            Config::parse("[etc]\ntransient = true\n").unwrap().etc,
            EtcMount::Transient
        );
        assert_eq!(
            Config::parse("[etc]\ntransient = true\nmount = \"bind\"\n")
                .unwrap()
                .etc,
            EtcMount::Bind
        );
        assert_eq!(
            Config::parse("[var]\nmount = \"bind\"\n").unwrap().var,
            Some(VarMount::Bind)
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("[etc\n", 1, "without `]`"),
            ("\n\njunk\n", 3, "key = value"),
            ("[etc]\nmount = bind\n", 2, "quoted string"),
            ("[etc]\nmount = \"tmpfs\"\n", 2, "is not bind"),
            ("[var]\nmount = \"overlay\"\n", 2, "not supported"),
            ("[root]\ntransient = \"yes\"\n", 2, "true or false"),
            ("[etc]\nmount = true\n", 2, "expected a string"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
        assert!(Config::parse(&"#".repeat(MAX_CONFIG_LEN + 1)).is_err());
    }
}
