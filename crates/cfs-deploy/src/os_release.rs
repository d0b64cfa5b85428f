//! `os-release(5)`: `KEY=value` lines with shell-style quoting, and the
//! names bootc derives from it for boot entries
//! (`../shared/spec/boot-deploy.md` §5.3).
//!
//! Values are unquoted (no spaces), `"double quoted"` (with `\"`, `\\`,
//! `\$`, `` \` `` escapes) or `'single quoted'` (literal). Blank lines and
//! `#` comments are skipped; a malformed line is skipped too (as systemd
//! does), never fatal. Files longer than [`MAX_OS_RELEASE`] are refused.

use std::collections::BTreeMap;

/// Largest os-release file parsed.
pub const MAX_OS_RELEASE: usize = 64 << 10;

/// The parsed variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    vars: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parses `text`; `None` if it is larger than [`MAX_OS_RELEASE`].
    pub fn parse(text: &str) -> Option<OsRelease> {
        if text.len() > MAX_OS_RELEASE {
            return None;
        }
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            if let Some(value) = unquote(raw) {
                vars.insert(key.to_owned(), value);
            }
        }
        Some(OsRelease { vars })
    }

    /// The value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `ID`, else `bootc` (bootc's default).
    pub fn os_id(&self) -> &str {
        self.get("ID").unwrap_or("bootc")
    }

    /// An entry title: `PRETTY_NAME`, else `NAME`, else `ID`, else `fallback`.
    pub fn title<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.get("PRETTY_NAME")
            .or_else(|| self.get("NAME"))
            .or_else(|| self.get("ID"))
            .unwrap_or(fallback)
    }

    /// An entry version: `VERSION_ID`, else `VERSION`, else `fallback`.
    pub fn version<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.get("VERSION_ID")
            .or_else(|| self.get("VERSION"))
            .unwrap_or(fallback)
    }
}

/// One value: unquoted, double- or single-quoted; `None` when malformed
/// (an unterminated quote, text after the closing quote, a space in an
/// unquoted value).
fn unquote(raw: &str) -> Option<String> {
    let mut chars = raw.chars();
    match chars.next() {
        None => Some(String::new()),
        Some(q @ ('"' | '\'')) => {
            let mut out = String::new();
            loop {
                match chars.next()? {
                    c if c == q => break,
                    '\\' if q == '"' => match chars.next()? {
                        c @ ('"' | '\\' | '$' | '`') => out.push(c),
                        c => {
                            out.push('\\');
                            out.push(c);
                        }
                    },
                    c => out.push(c),
                }
            }
            chars.as_str().trim().is_empty().then_some(out)
        }
        Some(_) => (!raw.contains(char::is_whitespace)).then(|| raw.to_owned()),
    }
}

/// bootc's BLS file name: `bootc_<id with '-' → '_'>-<version>-<1|0>.conf`,
/// `1` for the primary (newest) entry.
pub fn entry_file_name(os_id: &str, version: &str, primary: bool) -> String {
    format!(
        "bootc_{}-{version}-{}.conf",
        os_id.replace('-', "_"),
        u8::from(primary)
    )
}

/// bootc's `sort-key`: `bootc-<id>-0` for the primary entry, `-1` otherwise.
pub fn sort_key(os_id: &str, primary: bool) -> String {
    format!("bootc-{os_id}-{}", u8::from(!primary))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn debian_and_fedora_files() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                      VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n\
                      HOME_URL=\"https://www.debian.org/\"\n";
        let os = OsRelease::parse(debian).unwrap();
        assert_eq!(os.os_id(), "debian");
        assert_eq!(os.title("x"), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os.version("x"), "12");
        assert_eq!(
            entry_file_name("fedora-coreos", "44", true),
            "bootc_fedora_coreos-44-1.conf"
        );
        assert_eq!(sort_key("fedora-coreos", true), "bootc-fedora-coreos-0");
        assert_eq!(sort_key("fedora", false), "bootc-fedora-1");
        let odd = "# c\nA='single $x'\nB=\"esc \\\" \\\\ \\$ \\n\"\nC=bad value\nD=\"open\nE=\n=x\nF-G=1\n";
        let os = OsRelease::parse(odd).unwrap();
        assert_eq!(os.get("A"), Some("single $x"));
        assert_eq!(os.get("B"), Some("esc \" \\ $ \\n"));
        assert_eq!(
            (os.get("C"), os.get("D"), os.get("E"), os.get("F-G")),
            (None, None, None, None)
        );
        let empty = OsRelease::parse("").unwrap();
        assert_eq!(
            (empty.os_id(), empty.title("id"), empty.version("id")),
            ("bootc", "id", "id")
        );
        assert!(OsRelease::parse(&" ".repeat(MAX_OS_RELEASE + 1)).is_none());
    }

    proptest! {
        #[test]
        fn quoted_values_round_trip(value in "[ -~]{0,40}") {
            let quoted: String = value
                .chars()
                .flat_map(|c| match c {
                    '"' | '\\' | '$' | '`' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            let os = OsRelease::parse(&format!("KEY=\"{quoted}\"\n")).unwrap();
            prop_assert_eq!(os.vars.get("KEY").map(String::as_str), Some(value.as_str()));
        }

        #[test]
        fn any_text_parses(text in "[ -~\n]{0,300}") {
            let _ = OsRelease::parse(&text);
        }
    }
}
