//! `meta.json`: the repository's format version, digest algorithm, feature
//! flags and EROFS formats.
//!
//! Written as pretty-printed JSON (two-space indent) and a final newline:
//!
//! ```text
//! {
//!   "version": 1,
//!   "algorithm": "fsverity-sha512-12",
//!   "features": {
//!     "compatible": [],
//!     "read-only-compatible": [
//!       "v1_erofs"
//!     ],
//!     "incompatible": []
//!   },
//!   "erofs_formats": {
//!     "default": 1
//!   }
//! }
//! ```
//!
//! - `version`: 1; a higher version is refused.
//! - `algorithm`: `fsverity-sha256-12` or `fsverity-sha512-12` (fs-verity
//!   hash and log2 of the block size; only 4096-byte blocks exist).
//! - `features` (optional, each list optional): ext4-style flags. An unknown
//!   `incompatible` flag refuses the repository, an unknown
//!   `read-only-compatible` flag opens it read-only, an unknown `compatible`
//!   flag is ignored. The one defined flag is `v1_erofs`
//!   (read-only-compatible), written when the default EROFS format is V1 so
//!   that tools that only know V2 do not write into the repository.
//! - `erofs_formats` (optional): `{"default": N, "extra": [M, …]}`, formats
//!   0, 1 or 2; `extra` is omitted when empty. When absent or exactly
//!   `{"default": 2}`, the format is V1 if `v1_erofs` is set, V2 otherwise.
//!
//! Unknown keys are ignored on read (and not preserved). Whether the
//! repository is *secure* is not stored here: it is whether `meta.json`
//! itself has fs-verity enabled.

use serde::{Deserialize, Serialize};

use crate::verity::Algorithm;

/// The repository format version this code reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// The `v1_erofs` read-only-compatible feature flag.
pub const FEATURE_V1_EROFS: &str = "v1_erofs";

/// Feature flags known to this implementation, by class.
const KNOWN_COMPATIBLE: &[&str] = &[];
const KNOWN_RO_COMPATIBLE: &[&str] = &[FEATURE_V1_EROFS];
const KNOWN_INCOMPATIBLE: &[&str] = &[];

/// The parsed content of `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Repository format version.
    pub version: u64,
    /// `fsverity-<hash>-<lg block size>`.
    pub algorithm: String,
    /// Feature flags.
    #[serde(default)]
    pub features: Features,
    /// EROFS formats generated on commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erofs_formats: Option<ErofsFormats>,
}

/// ext4-style feature flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Features {
    /// Flags an older tool may ignore.
    #[serde(default)]
    pub compatible: Vec<String>,
    /// Flags an older tool may read but must not write.
    #[serde(default)]
    pub read_only_compatible: Vec<String>,
    /// Flags an older tool must refuse.
    #[serde(default)]
    pub incompatible: Vec<String>,
}

/// The `erofs_formats` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErofsFormats {
    /// The primary format.
    pub default: u32,
    /// Further formats generated alongside the primary one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<u32>,
}

/// How an opened repository may be used, from its feature flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Fully usable.
    ReadWrite,
    /// Readable only; the unknown read-only-compatible flags.
    ReadOnly(Vec<String>),
    /// Unusable; the unknown incompatible flags.
    Refused(Vec<String>),
}

/// The name of an algorithm in `meta.json`.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Sha256 => "fsverity-sha256-12",
        Algorithm::Sha512 => "fsverity-sha512-12",
    }
}

/// Parses an algorithm name of `meta.json` (also accepted: the bare
/// `sha256`/`sha512` of command lines).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let (hash, lg) = match name.strip_prefix("fsverity-") {
        Some(rest) => match rest.rsplit_once('-') {
            Some((hash, lg)) => (hash, Some(lg)),
            None => {
                return Err(format!(
                    "expected fsverity-<hash>-<lg blocksize>, found {name:?}"
                ));
            }
        },
        None => (name, None),
    };
    if let Some(lg) = lg
        && lg != "12"
    {
        return Err(format!(
            "unsupported fs-verity block size 2^{lg} in {name:?} (only 12, 4096 bytes)"
        ));
    }
    match hash {
        "sha256" => Ok(Algorithm::Sha256),
        "sha512" => Ok(Algorithm::Sha512),
        other => Err(format!(
            "unsupported fs-verity hash {other:?} (expected sha256 or sha512)"
        )),
    }
}

impl Meta {
    /// The `meta.json` of a new repository.
    pub fn new(alg: Algorithm, erofs_version: u32) -> Self {
        let mut features = Features::default();
        if erofs_version == 1 {
            features.read_only_compatible.push(FEATURE_V1_EROFS.into());
        }
        Meta {
            version: FORMAT_VERSION,
            algorithm: algorithm_name(alg).into(),
            features,
            erofs_formats: Some(ErofsFormats {
                default: erofs_version,
                extra: Vec::new(),
            }),
        }
    }

    /// Adds `extra` formats (`erofs_formats.extra`), without the default or
    /// duplicates.
    pub fn with_extra(mut self, extra: &[u32]) -> Self {
        if let Some(f) = &mut self.erofs_formats {
            for &v in extra {
                if v != f.default && !f.extra.contains(&v) {
                    f.extra.push(v);
                }
            }
        }
        self
    }

    /// The `meta.json` written when an old repository (no `meta.json`) is
    /// upgraded. composefs-rs 0.9 writes its default configuration, EROFS V1
    /// with the `v1_erofs` flag (its documentation says V2; the observed
    /// behaviour is followed, see `docs/spec-deviations.md`).
    pub fn upgraded(alg: Algorithm) -> Self {
        Meta::new(alg, 1)
    }

    /// Parses and validates `meta.json` text.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let meta: Meta = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if meta.version > FORMAT_VERSION {
            return Err(format!(
                "repository format version {} is newer than the supported version {FORMAT_VERSION}",
                meta.version
            ));
        }
        if meta.version == 0 {
            return Err("repository format version 0 is not valid".into());
        }
        parse_algorithm(&meta.algorithm)?;
        if let Some(f) = &meta.erofs_formats {
            for v in std::iter::once(&f.default).chain(&f.extra) {
                if *v > 2 {
                    return Err(format!("unknown EROFS format {v} (expected 0, 1 or 2)"));
                }
            }
        }
        Ok(meta)
    }

    /// The serialised form: pretty JSON and a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The digest algorithm (valid after [`Meta::parse`]).
    pub fn algorithm(&self) -> Algorithm {
        parse_algorithm(&self.algorithm).unwrap_or(Algorithm::Sha512)
    }

    /// What the feature flags allow.
    pub fn access(&self) -> Access {
        let unknown = |list: &[String], known: &[&str]| -> Vec<String> {
            list.iter()
                .filter(|f| !known.contains(&f.as_str()))
                .cloned()
                .collect()
        };
        let incompatible = unknown(&self.features.incompatible, KNOWN_INCOMPATIBLE);
        if !incompatible.is_empty() {
            return Access::Refused(incompatible);
        }
        let ro = unknown(&self.features.read_only_compatible, KNOWN_RO_COMPATIBLE);
        let _ignored = unknown(&self.features.compatible, KNOWN_COMPATIBLE);
        if ro.is_empty() {
            Access::ReadWrite
        } else {
            Access::ReadOnly(ro)
        }
    }

    /// The EROFS formats generated on commit: the default first, then the
    /// extra ones without duplicates.
    pub fn erofs_versions(&self) -> Vec<u32> {
        let v1_flag = self
            .features
            .read_only_compatible
            .iter()
            .any(|f| f == FEATURE_V1_EROFS);
        let formats = match &self.erofs_formats {
            Some(f) if !(f.default == 2 && f.extra.is_empty()) => f.clone(),
            _ => ErofsFormats {
                default: if v1_flag { 1 } else { 2 },
                extra: Vec::new(),
            },
        };
        let mut out = vec![formats.default];
        for v in formats.extra {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }

    /// A one-line description for messages: `fsverity-sha512-12, EROFS V1`.
    pub fn describe(&self) -> String {
        let versions: Vec<String> = self
            .erofs_versions()
            .iter()
            .map(|v| format!("V{v}"))
            .collect();
        format!("{}, EROFS {}", self.algorithm, versions.join("+"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_repository_json_matches_reference_shape() {
        let text = Meta::new(Algorithm::Sha512, 1).to_json();
        let expected = "{\n  \"version\": 1,\n  \"algorithm\": \"fsverity-sha512-12\",\n  \"features\": {\n    \"compatible\": [],\n    \"read-only-compatible\": [\n      \"v1_erofs\"\n    ],\n    \"incompatible\": []\n  },\n  \"erofs_formats\": {\n    \"default\": 1\n  }\n}\n";
        assert_eq!(text, expected);
        assert_eq!(
            Meta::parse(text.as_bytes()).unwrap(),
            Meta::new(Algorithm::Sha512, 1)
        );
    }

    #[test]
    fn feature_rules() {
        let mut m = Meta::new(Algorithm::Sha256, 1);
        assert_eq!(m.access(), Access::ReadWrite);
        m.features.compatible.push("shiny".into());
        assert_eq!(m.access(), Access::ReadWrite);
        m.features.read_only_compatible.push("future_ro".into());
        assert_eq!(m.access(), Access::ReadOnly(vec!["future_ro".into()]));
        m.features.incompatible.push("future_incompat".into());
        assert_eq!(m.access(), Access::Refused(vec!["future_incompat".into()]));
    }

    #[test]
    fn effective_erofs_formats() {
        let parse = |s: &str| Meta::parse(s.as_bytes()).unwrap();
        let base = r#""version":1,"algorithm":"fsverity-sha256-12""#;
        assert_eq!(parse(&format!("{{{base}}}")).erofs_versions(), [2]);
        assert_eq!(
            parse(&format!(
                r#"{{{base},"features":{{"read-only-compatible":["v1_erofs"]}}}}"#
            ))
            .erofs_versions(),
            [1]
        );
        assert_eq!(
            parse(&format!(
                r#"{{{base},"features":{{"read-only-compatible":["v1_erofs"]}},"erofs_formats":{{"default":2}}}}"#
            ))
            .erofs_versions(),
            [1]
        );
        assert_eq!(
            parse(&format!(
                r#"{{{base},"erofs_formats":{{"default":0,"extra":[2,0,1]}}}}"#
            ))
            .erofs_versions(),
            [0, 2, 1]
        );
    }

    #[test]
    fn invalid_meta_is_refused_with_reason() {
        let bad = [
            (r#"{"version":2,"algorithm":"fsverity-sha256-12"}"#, "newer"),
            (
                r#"{"version":1,"algorithm":"fsverity-sha256-16"}"#,
                "block size",
            ),
            (r#"{"version":1,"algorithm":"fsverity-md5-12"}"#, "md5"),
            (r#"{"version":1}"#, "algorithm"),
            (
                r#"{"version":1,"algorithm":"fsverity-sha256-12","erofs_formats":{"default":3}}"#,
                "EROFS format 3",
            ),
            ("not json", "expected"),
        ];
        for (text, needle) in bad {
            let err = Meta::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
