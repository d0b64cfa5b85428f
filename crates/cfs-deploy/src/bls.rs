//! Boot Loader Specification Type 1 entries (`loader/entries/*.conf`).
//!
//! ```text
//! # comment                      kept, in place
//! title Fedora Linux 44           key, one run of spaces/tabs, value (to the end of the line)
//! version 44                      required
//! linux /EFI/Linux/…/vmlinuz      exactly one of linux | efi | uki
//! initrd /EFI/Linux/…/initrd      any number, in order
//! options root=UUID=… composefs=…
//! sort-key bootc-fedora-0
//! x-unknown kept                  unknown keys are kept, in place
//! ```
//!
//! An entry is kept as its lines, so reading and writing back changes
//! nothing but line endings (`\r\n` → `\n`) and trailing whitespace of
//! values and comments. Entries longer than [`MAX_ENTRY_LEN`] bytes are refused.

use std::fmt;

/// Largest entry file parsed (real ones are a few hundred bytes).
pub const MAX_ENTRY_LEN: usize = 64 << 10;

/// One line of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A blank line or a `#` comment, verbatim.
    Other(String),
    /// `key value`.
    Field { key: String, value: String },
}

/// A parsed entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    lines: Vec<Line>,
}

/// Why an entry is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    /// Longer than [`MAX_ENTRY_LEN`].
    #[error("boot entry larger than {MAX_ENTRY_LEN} bytes")]
    TooLarge,
    /// No `version` line.
    #[error("boot entry without a `version` line")]
    NoVersion,
    /// Neither `linux` nor `efi`/`uki`, or more than one of them.
    #[error("boot entry must have exactly one of `linux`, `efi` or `uki`, found {found}")]
    Kind {
        /// How many were found.
        found: usize,
    },
    /// A key or value that cannot be written (newline, empty key).
    #[error("boot entry field {key:?}: {reason}")]
    BadField {
        /// The key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Entry {
    /// Parses and validates an entry (see the module docs).
    pub fn parse(text: &str) -> Result<Entry, BlsError> {
        let entry = Self::parse_unchecked(text)?;
        entry.validate()?;
        Ok(entry)
    }

    /// Parses an entry without [`Entry::validate`] (entries found in images
    /// are templates: bootc and composefs-rs accept any).
    pub fn parse_unchecked(text: &str) -> Result<Entry, BlsError> {
        if text.len() > MAX_ENTRY_LEN {
            return Err(BlsError::TooLarge);
        }
        let mut lines = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(line.trim_end().to_owned()));
                continue;
            }
            let (key, value) = trimmed
                .split_once([' ', '\t'])
                .map_or((trimmed, ""), |(k, v)| (k, v.trim()));
            lines.push(Line::Field {
                key: key.to_owned(),
                value: value.to_owned(),
            });
        }
        Ok(Entry { lines })
    }

    /// Checks the rules of the module docs.
    pub fn validate(&self) -> Result<(), BlsError> {
        if self.get("version").is_none() {
            return Err(BlsError::NoVersion);
        }
        let kinds = self
            .fields()
            .filter(|(k, _)| matches!(*k, "linux" | "efi" | "uki"))
            .count();
        if kinds != 1 {
            return Err(BlsError::Kind { found: kinds });
        }
        Ok(())
    }

    /// Every `(key, value)`, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Field { key, value } => Some((key.as_str(), value.as_str())),
            Line::Other(_) => None,
        })
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every value of `key` (several `initrd` lines), in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key`: replaces its first line (removing any further ones) or
    /// appends a line.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), BlsError> {
        check_field(key, value)?;
        let mut seen = false;
        self.lines.retain_mut(|l| match l {
            Line::Field { key: k, value: v } if k == key => {
                if seen {
                    return false;
                }
                seen = true;
                *v = value.to_owned();
                true
            }
            _ => true,
        });
        if !seen {
            self.push(key, value)?;
        }
        Ok(())
    }

    /// Appends a `key value` line (for repeated keys such as `initrd`).
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), BlsError> {
        check_field(key, value)?;
        self.lines.push(Line::Field {
            key: key.to_owned(),
            value: value.to_owned(),
        });
        Ok(())
    }

    /// A kernel entry in bootc's field order: `title`, `version`, `linux`,
    /// each `initrd`, `options`, `sort-key`.
    pub fn kernel(
        title: &str,
        version: &str,
        linux: &str,
        initrds: &[&str],
        options: &str,
        sort_key: &str,
    ) -> Result<Entry, BlsError> {
        let mut e = Entry::default();
        e.push("title", title)?;
        e.push("version", version)?;
        e.push("linux", linux)?;
        for initrd in initrds {
            e.push("initrd", initrd)?;
        }
        e.push("options", options)?;
        e.push("sort-key", sort_key)?;
        Ok(e)
    }
}

fn check_field(key: &str, value: &str) -> Result<(), BlsError> {
    let bad = |reason| {
        Err(BlsError::BadField {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() || key.starts_with('#') || key.contains(char::is_whitespace) {
        return bad("keys are one word, not starting with '#'");
    }
    if value.contains(['\n', '\r']) {
        return bad("values are one line");
    }
    if value != value.trim() {
        return bad("values have no leading or trailing whitespace");
    }
    Ok(())
}

/// The entry as a file: one line per field (`key value`), comments kept.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                Line::Other(text) => writeln!(f, "{text}")?,
                Line::Field { key, value } if value.is_empty() => writeln!(f, "{key}")?,
                Line::Field { key, value } => writeln!(f, "{key} {value}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn bootc_entry_reads_and_writes_back() {
        let text = "# written by a tool\ntitle Fedora Linux 44 (Forty Four)\nversion 44\n\
                    linux /EFI/Linux/bootc_composefs-ab/vmlinuz\ninitrd /EFI/Linux/a\n\
                    initrd /EFI/Linux/b\noptions root=UUID=1 rw composefs=ab\n\
                    x-vendor\tkept  value\nsort-key bootc-fedora-0\n";
        let e = Entry::parse(text).unwrap();
        assert_eq!(e.get("title"), Some("Fedora Linux 44 (Forty Four)"));
        assert_eq!(
            e.get_all("initrd").collect::<Vec<_>>(),
            ["/EFI/Linux/a", "/EFI/Linux/b"]
        );
        assert_eq!(e.get("x-vendor"), Some("kept  value"));
        assert_eq!(e.to_string(), text.replace("x-vendor\t", "x-vendor "));
        let built = Entry::kernel(
            "Fedora Linux 44 (Forty Four)",
            "44",
            "/EFI/Linux/bootc_composefs-ab/vmlinuz",
            &["/EFI/Linux/a", "/EFI/Linux/b"],
            "root=UUID=1 rw composefs=ab",
            "bootc-fedora-0",
        )
        .unwrap();
        assert_eq!(
            built.fields().collect::<Vec<_>>(),
            e.fields()
                .filter(|(k, _)| *k != "x-vendor")
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn rules_are_checked() {
        assert_eq!(
            Entry::parse("title x\nlinux /v\n"),
            Err(BlsError::NoVersion)
        );
        assert_eq!(
            Entry::parse("version 1\n"),
            Err(BlsError::Kind { found: 0 })
        );
        assert_eq!(
            Entry::parse("version 1\nlinux /a\nefi /b\n"),
            Err(BlsError::Kind { found: 2 })
        );
        assert!(Entry::parse("version 1\r\nuki /a.efi\r\n").is_ok());
        assert_eq!(
            Entry::parse(&"#".repeat(MAX_ENTRY_LEN + 1)),
            Err(BlsError::TooLarge)
        );
        let mut e = Entry::parse("version 1\nefi /a.efi\n").unwrap();
        assert!(e.set("options", "a\nb").is_err());
        assert!(e.set("bad key", "x").is_err());
        e.set("version", "2").unwrap();
        assert_eq!(e.to_string(), "version 2\nefi /a.efi\n");
    }

    proptest! {
        #[test]
        fn fields_round_trip(
            fields in prop::collection::vec(("[a-z][a-z-]{0,8}", "[!-~]([ -~]{0,30}[!-~])?"), 0..8),
            comments in prop::collection::vec("#[ -~]{0,20}", 0..3),
        ) {
            let mut e = Entry::default();
            e.push("version", "1").unwrap();
            e.push("linux", "/vmlinuz").unwrap();
            for (k, v) in &fields {
                if matches!(k.as_str(), "linux" | "efi" | "uki") { continue; }
                e.push(k, v).unwrap();
            }
            // (Trailing whitespace of comments is not kept.)
            let comments: Vec<&str> = comments.iter().map(|c| c.trim_end()).collect();
            let mut text = comments.join("\n");
            if !text.is_empty() { text.push('\n'); }
            text.push_str(&e.to_string());
            let back = Entry::parse(&text).unwrap();
            prop_assert_eq!(back.fields().collect::<Vec<_>>(), e.fields().collect::<Vec<_>>());
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn any_text_parses_or_fails_cleanly(text in "[ -~\n\t#]{0,400}") {
            if let Ok(e) = Entry::parse(&text) {
                prop_assert_eq!(Entry::parse(&e.to_string()), Ok(e));
            }
        }
    }
}
