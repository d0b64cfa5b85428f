//! The `.origin` file of a deployment (boot-deploy.md §5.1):
//! `state/deploy/<id>/<id>.origin`, INI, mode 0644, as bootc writes it:
//!
//! ```ini
//! [origin]
//! container-image-reference = ostree-unverified-image:docker://quay.io/example/os:latest
//!
//! [boot]
//! boot_type = bls
//! digest = <sha256 hex of vmlinuz||initrd, or of the UKI's .linux||.initrd>
//!
//! [image]
//! manifest_digest = sha256:<hex>
//! ```
//!
//! Reading accepts `key=value` and `key = value`, `#`/`;` comments, blank
//! lines, and keeps unknown sections and keys (cfs's own are in `[cfs]`:
//! `pinned`, `kargs`), which are written back in their order.

use std::fmt;

/// The prefix bootc writes before the image reference.
pub const IMAGE_PREFIX: &str = "ostree-unverified-image:";

/// Largest origin file read (64 KiB).
pub const MAX_ORIGIN_LEN: usize = 64 << 10;

/// An origin file: sections of ordered `(key, value)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    sections: Vec<(String, Vec<(String, String)>)>,
}

/// A malformed origin file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin line {line}: {reason}")]
pub struct OriginError {
    /// 1-based line number (0: the whole file).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl Origin {
    /// The origin bootc writes for a new deployment.
    pub fn new(image_ref: &str, boot_type: &str, boot_digest: &str, manifest_digest: &str) -> Self {
        let mut o = Origin::default();
        let reference = if image_ref.starts_with(IMAGE_PREFIX) {
            image_ref.to_owned()
        } else {
            format!("{IMAGE_PREFIX}{image_ref}")
        };
        o.set("origin", "container-image-reference", &reference);
        o.set("boot", "boot_type", boot_type);
        o.set("boot", "digest", boot_digest);
        o.set("image", "manifest_digest", manifest_digest);
        o
    }

    /// Parses an origin file.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        if text.len() > MAX_ORIGIN_LEN {
            return Err(OriginError {
                line: 0,
                reason: format!("larger than {MAX_ORIGIN_LEN} bytes"),
            });
        }
        let mut o = Origin::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name.strip_suffix(']').ok_or_else(|| OriginError {
                    line: i + 1,
                    reason: format!("section header without `]`: {line:?}"),
                })?;
                o.sections.push((name.trim().to_owned(), Vec::new()));
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| OriginError {
                line: i + 1,
                reason: format!("expected `key = value`, found {line:?}"),
            })?;
            let Some((_, items)) = o.sections.last_mut() else {
                return Err(OriginError {
                    line: i + 1,
                    reason: "key before any [section]".into(),
                });
            };
            items.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(o)
    }

    /// The value of `key` in `section` (the last one, if repeated).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, items)| items.iter())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .next_back()
    }

    /// Sets `key` in `section` (replacing it, or appending section and key).
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_owned(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let items = &mut self.sections[idx].1;
        match items.iter_mut().find(|(k, _)| k == key) {
            Some(item) => item.1 = value.to_owned(),
            None => items.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Removes `key` from `section`; true if it was there.
    pub fn remove(&mut self, section: &str, key: &str) -> bool {
        let mut removed = false;
        for (s, items) in &mut self.sections {
            if s == section {
                let before = items.len();
                items.retain(|(k, _)| k != key);
                removed |= items.len() != before;
            }
        }
        removed
    }

    /// The image reference without bootc's `ostree-unverified-image:` prefix.
    pub fn image_ref(&self) -> Option<&str> {
        self.get("origin", "container-image-reference")
            .map(|r| r.strip_prefix(IMAGE_PREFIX).unwrap_or(r))
    }

    /// `bls` or `uki`.
    pub fn boot_type(&self) -> Option<&str> {
        self.get("boot", "boot_type")
    }

    /// The boot digest (hex SHA-256), if recorded.
    pub fn boot_digest(&self) -> Option<&str> {
        self.get("boot", "digest").filter(|d| !d.is_empty())
    }

    /// The manifest digest (`sha256:…`); legacy deployments lack it.
    pub fn manifest_digest(&self) -> Option<&str> {
        self.get("image", "manifest_digest")
    }

    /// Whether cfs pins this deployment (kept by gc and rollback rotation).
    pub fn pinned(&self) -> bool {
        self.get("cfs", "pinned") == Some("true")
    }

    /// Pins or unpins.
    pub fn set_pinned(&mut self, pinned: bool) {
        if pinned {
            self.set("cfs", "pinned", "true");
        } else {
            self.remove("cfs", "pinned");
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, items)) in self.sections.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "[{name}]")?;
            for (k, v) in items {
                writeln!(f, "{k} = {v}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bootc_shape_written_and_read() {
        let o = Origin::new("docker://quay.io/x/os:latest", "bls", "ab12", "sha256:cd");
        let text = o.to_string();
        assert_eq!(
            text,
            "[origin]\ncontainer-image-reference = ostree-unverified-image:docker://quay.io/x/os:latest\n\n[boot]\nboot_type = bls\ndigest = ab12\n\n[image]\nmanifest_digest = sha256:cd\n"
        );
        let back = Origin::parse(&text).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.image_ref(), Some("docker://quay.io/x/os:latest"));
        assert_eq!(back.boot_type(), Some("bls"));
        assert_eq!(back.boot_digest(), Some("ab12"));
        assert_eq!(back.manifest_digest(), Some("sha256:cd"));
        assert!(!back.pinned());
    }

    #[test]
    fn lenient_reading_and_errors() {
        let o = Origin::parse(
            "# c\n[origin]\ncontainer-image-reference=oci:/srv/os\n; x\n[boot]\nboot_type=uki\ndigest=\n[extra]\nk = v = w\n",
        )
        .unwrap();
        assert_eq!(o.image_ref(), Some("oci:/srv/os"));
        assert_eq!(o.boot_digest(), None);
        assert_eq!(o.get("extra", "k"), Some("v = w"));
        assert_eq!(o.manifest_digest(), None);
        let e = Origin::parse("[origin\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = Origin::parse("key = v\n").unwrap_err();
        assert!(e.reason.contains("before any"), "{e}");
        let e = Origin::parse("[a]\njunk\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Origin::parse(&"x".repeat(MAX_ORIGIN_LEN + 1)).is_err());
    }

    #[test]
    fn pinning_is_kept_in_a_section_of_ours() {
        let mut o = Origin::new("oci:/a", "bls", "d", "sha256:e");
        o.set_pinned(true);
        let back = Origin::parse(&o.to_string()).unwrap();
        assert!(back.pinned());
        assert!(back.to_string().contains("[cfs]\npinned = true\n"));
        let mut back = back;
        back.set_pinned(false);
        assert!(!back.pinned());
    }

    proptest! {
        /// Written origins parse back to the same origin.
        #[test]
        fn round_trip(sections in proptest::collection::vec(
            ("[a-z_]{1,10}", proptest::collection::vec(("[a-z_-]{1,12}", "[ -~&&[^=]]{0,30}"), 0..5)),
            0..5,
        )) {
            let mut o = Origin::default();
            for (name, items) in &sections {
                for (k, v) in items {
                    o.set(name, k, v.trim());
                }
            }
            let back = Origin::parse(&o.to_string()).unwrap();
            prop_assert_eq!(back, o);
        }
    }
}
