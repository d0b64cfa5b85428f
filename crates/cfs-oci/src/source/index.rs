//! Image indexes (OCI image index, Docker manifest list) and the choice of
//! one manifest by [`Platform`], shared by every source.
//!
//! Two policies:
//! - [`choose_platform`], for one multi-platform index (a registry's list or
//!   an index nested in a layout): entries whose OS and architecture equal
//!   the platform's, and whose variant equals it when the caller names one;
//!   without a requested variant an entry without variant is preferred,
//!   else the first match. An entry without platform is taken only when it
//!   is the index's only entry.
//! - [`resolve_layout`], for an OCI layout's `index.json`, whose entries are
//!   different images (tags): after the tag filter and platform choice
//!   (nested indexes resolved recursively, at most [`MAX_DEPTH`] deep)
//!   exactly one image must remain.
//!
//! Documents are parsed leniently (only the fields used here), so unknown
//! OS or architecture names never fail a parse.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    DOCKER_LIST, DOCKER_MANIFEST, FetchedManifest, OCI_INDEX, OCI_MANIFEST, Platform, SourceError,
    sha256_digest,
};

/// How many index levels are followed below the top one.
pub(crate) const MAX_DEPTH: usize = 4;

/// The annotation naming a tag in an OCI layout's `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor (the fields used here).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Descriptor {
    /// The media type of the referenced content.
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: Option<String>,
    /// `sha256:<hex>`.
    pub(crate) digest: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The platform, for index entries.
    #[serde(default)]
    pub(crate) platform: Option<DescriptorPlatform>,
    /// Annotations (tags in `index.json`).
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct DescriptorPlatform {
    pub(crate) os: String,
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
}

impl Descriptor {
    /// Whether the descriptor names an index (by media type).
    fn is_index(&self) -> bool {
        is_index_type(self.media_type.as_deref())
    }

    /// The tag annotation, if any.
    fn tag(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }

    /// `os/arch[/variant]`, or `no platform`.
    fn platform_text(&self) -> String {
        match &self.platform {
            Some(p) => match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            },
            None => "no platform".into(),
        }
    }

    /// Whether the entry's platform fits `platform`.
    fn fits(&self, platform: &Platform) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
    }
}

/// Whether a media type is an image index or manifest list.
pub(crate) fn is_index_type(media_type: Option<&str>) -> bool {
    matches!(media_type, Some(OCI_INDEX | DOCKER_LIST))
}

/// What a manifest-ish JSON document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocInfo {
    /// The document's own `mediaType`, if any.
    pub(crate) media_type: Option<String>,
    /// An index / manifest list (by media type, or by a `manifests` array).
    pub(crate) is_index: bool,
}

#[derive(Deserialize)]
struct RawDoc {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

/// Classifies a manifest or index document; rejects Docker schema 1.
pub(crate) fn doc_info(bytes: &[u8], what: &str) -> Result<DocInfo, SourceError> {
    let raw: RawDoc = crate::json::parse(bytes)
        .map_err(|e| SourceError::Other(format!("{what}: invalid manifest JSON: {e}")))?;
    let schema1 = raw.schema_version == Some(1)
        || raw
            .media_type
            .as_deref()
            .is_some_and(|m| m.starts_with("application/vnd.docker.distribution.manifest.v1"));
    if schema1 {
        return Err(SourceError::Other(format!(
            "{what}: Docker schema 1 manifests are not supported (expected an OCI or Docker \
             schema 2 manifest)"
        )));
    }
    if raw.schema_version != Some(2) {
        return Err(SourceError::Other(format!(
            "{what}: expected schemaVersion 2, found {}",
            raw.schema_version
                .map_or_else(|| "none".to_owned(), |v| v.to_string())
        )));
    }
    let is_index = is_index_type(raw.media_type.as_deref())
        || (raw.media_type.is_none() && raw.manifests.is_some() && raw.layers.is_none());
    Ok(DocInfo {
        media_type: raw.media_type,
        is_index,
    })
}

#[derive(Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The entries of an index document.
pub(crate) fn index_entries(bytes: &[u8], what: &str) -> Result<Vec<Descriptor>, SourceError> {
    let doc: IndexDoc = crate::json::parse(bytes)
        .map_err(|e| SourceError::Other(format!("{what}: invalid image index JSON: {e}")))?;
    Ok(doc.manifests)
}

/// Chooses the entry of one multi-platform index (see the module docs).
pub(crate) fn choose_platform<'a>(
    entries: &'a [Descriptor],
    platform: &Platform,
    what: &str,
) -> Result<&'a Descriptor, SourceError> {
    let mut matches = entries.iter().filter(|d| d.fits(platform));
    let first = matches.next();
    let chosen = match (first, &platform.variant) {
        (Some(first), None) if first.platform.as_ref().is_some_and(|p| p.variant.is_some()) => {
            Some(
                matches
                    .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
                    .unwrap_or(first),
            )
        }
        (Some(first), _) => Some(first),
        (None, _) => match entries {
            [only] if only.platform.is_none() => Some(only),
            _ => None,
        },
    };
    chosen.ok_or_else(|| {
        let available: Vec<String> = entries.iter().map(Descriptor::platform_text).collect();
        SourceError::Other(format!(
            "{what}: no manifest for platform {platform} (available: {})",
            if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            }
        ))
    })
}

/// Follows the index `desc` down to one image manifest descriptor.
/// `fetch` returns a blob's bytes, verified against the descriptor.
fn resolve_nested(
    desc: &Descriptor,
    platform: &Platform,
    what: &str,
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, SourceError>,
    depth: usize,
) -> Result<Descriptor, SourceError> {
    if depth >= MAX_DEPTH {
        return Err(SourceError::Other(format!(
            "{what}: image indexes nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let bytes = fetch(desc)?;
    let nested_what = format!("{what}, index {}", desc.digest);
    let entries = index_entries(&bytes, &nested_what)?;
    let chosen = choose_platform(&entries, platform, &nested_what)?;
    if chosen.is_index() {
        resolve_nested(chosen, platform, what, fetch, depth + 1)
    } else {
        Ok(chosen.clone())
    }
}

/// Resolves an OCI layout's `index.json` to the descriptor of one image
/// manifest (see the module docs). `what` names the layout in messages
/// (`OCI layout /a/b`).
pub(crate) fn resolve_layout(
    index_json: &[u8],
    tag: Option<&str>,
    platform: &Platform,
    what: &str,
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, SourceError>,
) -> Result<Descriptor, SourceError> {
    let entries = index_entries(index_json, &format!("{what}: index.json"))?;
    let candidates: Vec<&Descriptor> = match tag {
        Some(tag) => entries.iter().filter(|d| d.tag() == Some(tag)).collect(),
        None => entries.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(SourceError::Other(match tag {
            Some(tag) => {
                let mut tags: Vec<&str> = entries.iter().filter_map(Descriptor::tag).collect();
                tags.sort_unstable();
                tags.dedup();
                format!(
                    "tag {tag} not found in {what} (its tags: {})",
                    if tags.is_empty() {
                        "none".to_owned()
                    } else {
                        tags.join(", ")
                    }
                )
            }
            None => format!("{what} holds no images"),
        }));
    }
    let mut matched: Vec<(&Descriptor, Descriptor)> = Vec::new();
    let mut nested_error = None;
    for &candidate in &candidates {
        if candidate.is_index() {
            match resolve_nested(candidate, platform, what, fetch, 0) {
                Ok(found) => matched.push((candidate, found)),
                Err(e) => nested_error = Some(e),
            }
        } else if candidate.fits(platform) {
            matched.push((candidate, candidate.clone()));
        }
    }
    match matched.len() {
        1 => return Ok(matched.remove(0).1),
        0 => {}
        _ => {
            let names: Vec<String> = matched.iter().map(|(c, _)| entry_name(c)).collect();
            return Err(SourceError::Other(format!(
                "{what} holds {} images for platform {platform} ({}); name one with :TAG",
                names.len(),
                names.join(", ")
            )));
        }
    }
    if let [only] = candidates.as_slice() {
        if only.platform.is_none() && !only.is_index() {
            return Ok((*only).clone());
        }
        if let Some(e) = nested_error {
            return Err(e);
        }
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|c| format!("{} ({})", entry_name(c), c.platform_text()))
        .collect();
    let without_platform = candidates.iter().any(|c| c.platform.is_none());
    Err(SourceError::Other(if without_platform && tag.is_none() {
        format!(
            "{what} holds {} images ({}); name one with :TAG",
            names.len(),
            names.join(", ")
        )
    } else {
        format!(
            "{what}: no image for platform {platform} among {}",
            names.join(", ")
        )
    }))
}

/// A candidate's name in messages: its tag, else its digest.
fn entry_name(desc: &Descriptor) -> String {
    match desc.tag() {
        Some(tag) => format!("tag {tag}"),
        None => desc.digest.clone(),
    }
}

/// Turns fetched manifest bytes into a [`FetchedManifest`]: the SHA-256
/// must equal `expected_digest`, the document must be a schema-2 image
/// manifest (not an index). The media type comes from `descriptor_type`,
/// else the document, else the OCI manifest type.
pub(crate) fn finish_manifest(
    bytes: Vec<u8>,
    expected_digest: &str,
    descriptor_type: Option<&str>,
    what: &str,
) -> Result<FetchedManifest, SourceError> {
    let digest = sha256_digest(&bytes);
    if digest != expected_digest {
        return Err(SourceError::Other(format!(
            "{what}: manifest digest mismatch: expected {expected_digest}, got {digest}"
        )));
    }
    let info = doc_info(&bytes, what)?;
    if info.is_index || is_index_type(descriptor_type) {
        return Err(SourceError::Other(format!(
            "{what}: expected an image manifest, found an image index"
        )));
    }
    let media_type = descriptor_type
        .map(str::to_owned)
        .or(info.media_type)
        .unwrap_or_else(|| OCI_MANIFEST.to_owned());
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(SourceError::Other(format!(
            "{what}: unsupported manifest media type {media_type} (expected {OCI_MANIFEST} or \
             {DOCKER_MANIFEST})"
        )));
    }
    Ok(FetchedManifest {
        bytes,
        digest,
        media_type,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn manifest(n: u8) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"sha256:{n:064}","size":1}},"layers":[]}}"#
        )
        .into_bytes()
    }

    fn entry(bytes: &[u8], media_type: &str, platform: Option<&str>, tag: Option<&str>) -> String {
        let mut s = format!(
            r#"{{"mediaType":"{media_type}","digest":"{}","size":{}"#,
            sha256_digest(bytes),
            bytes.len()
        );
        if let Some(p) = platform {
            let p: Platform = p.parse().unwrap();
            s += &format!(
                r#","platform":{{"os":"{}","architecture":"{}""#,
                p.os, p.architecture
            );
            if let Some(v) = p.variant {
                s += &format!(r#","variant":"{v}""#);
            }
            s += "}";
        }
        if let Some(t) = tag {
            s += &format!(r#","annotations":{{"{REF_NAME}":"{t}"}}"#);
        }
        s + "}"
    }

    fn index(entries: &[String]) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        )
        .into_bytes()
    }

    struct Blobs(HashMap<String, Vec<u8>>);

    impl Blobs {
        fn new(blobs: &[&[u8]]) -> Self {
            Self(
                blobs
                    .iter()
                    .map(|b| (sha256_digest(b), b.to_vec()))
                    .collect(),
            )
        }

        fn fetch(&self) -> impl FnMut(&Descriptor) -> Result<Vec<u8>, SourceError> + '_ {
            |d| {
                self.0
                    .get(&d.digest)
                    .cloned()
                    .ok_or_else(|| SourceError::Other(format!("no blob {}", d.digest)))
            }
        }
    }

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn registry_list_by_platform() {
        let (amd, arm7, arm8, arm) = (manifest(1), manifest(2), manifest(3), manifest(4));
        let list = index(&[
            entry(&amd, OCI_MANIFEST, Some("linux/amd64"), None),
            entry(&arm7, OCI_MANIFEST, Some("linux/arm/v7"), None),
            entry(&arm8, OCI_MANIFEST, Some("linux/arm64/v8"), None),
            entry(&arm, OCI_MANIFEST, Some("linux/arm"), None),
        ]);
        let entries = index_entries(&list, "t").unwrap();
        let pick = |pl: &str| choose_platform(&entries, &p(pl), "t").map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), sha256_digest(&amd));
        assert_eq!(pick("linux/arm/v7").unwrap(), sha256_digest(&arm7));
        // no variant asked: the entry without variant is preferred
        assert_eq!(pick("linux/arm").unwrap(), sha256_digest(&arm));
        // only a variant entry: it is taken
        assert_eq!(pick("linux/arm64").unwrap(), sha256_digest(&arm8));
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("no manifest for platform linux/s390x")
                && err.contains("linux/amd64, linux/arm/v7"),
            "{err}"
        );
        assert!(pick("linux/arm64/v9").is_err());
    }

    #[test]
    fn entry_without_platform_only_when_alone() {
        let m = manifest(1);
        let alone = index_entries(&index(&[entry(&m, OCI_MANIFEST, None, None)]), "t").unwrap();
        assert!(choose_platform(&alone, &p("linux/amd64"), "t").is_ok());
        let two = index_entries(
            &index(&[
                entry(&m, OCI_MANIFEST, None, None),
                entry(&manifest(2), OCI_MANIFEST, Some("linux/arm64"), None),
            ]),
            "t",
        )
        .unwrap();
        assert!(choose_platform(&two, &p("linux/amd64"), "t").is_err());
    }

    #[test]
    fn layout_tags_and_nested_index() {
        let (a, b, amd, arm) = (manifest(1), manifest(2), manifest(3), manifest(4));
        let nested = index(&[
            entry(&arm, OCI_MANIFEST, Some("linux/arm64"), None),
            entry(&amd, OCI_MANIFEST, Some("linux/amd64"), None),
        ]);
        let top = index(&[
            entry(&a, OCI_MANIFEST, None, Some("a")),
            entry(&b, OCI_MANIFEST, None, Some("b")),
            entry(&nested, OCI_INDEX, None, Some("multi")),
        ]);
        let blobs = Blobs::new(&[&a, &b, &amd, &arm, &nested]);
        let resolve = |tag: Option<&str>, pl: &str| {
            resolve_layout(&top, tag, &p(pl), "OCI layout /x", &mut blobs.fetch()).map(|d| d.digest)
        };
        assert_eq!(
            resolve(Some("a"), "linux/amd64").unwrap(),
            sha256_digest(&a)
        );
        assert_eq!(
            resolve(Some("b"), "linux/s390x").unwrap(),
            sha256_digest(&b)
        );
        assert_eq!(
            resolve(Some("multi"), "linux/amd64").unwrap(),
            sha256_digest(&amd)
        );
        assert_eq!(
            resolve(Some("multi"), "linux/arm64").unwrap(),
            sha256_digest(&arm)
        );
        let err = resolve(Some("multi"), "linux/s390x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no manifest for platform linux/s390x"),
            "{err}"
        );
        let err = resolve(Some("v1"), "linux/amd64").unwrap_err().to_string();
        assert_eq!(
            err,
            "tag v1 not found in OCI layout /x (its tags: a, b, multi)"
        );
        // without a tag: the nested index matches amd64 and is the only match
        assert_eq!(resolve(None, "linux/amd64").unwrap(), sha256_digest(&amd));
        // nothing matches s390x: the message lists the tags
        let err = resolve(None, "linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("tag a") && err.contains("tag b") && err.contains("tag multi"),
            "{err}"
        );
    }

    #[test]
    fn layout_ambiguity_and_single_image() {
        let (a, b) = (manifest(1), manifest(2));
        let blobs = Blobs::new(&[&a, &b]);
        let two = index(&[
            entry(&a, OCI_MANIFEST, Some("linux/amd64"), Some("a")),
            entry(&b, OCI_MANIFEST, Some("linux/amd64"), Some("b")),
        ]);
        let err = resolve_layout(&two, None, &p("linux/amd64"), "L", &mut blobs.fetch())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 images") && err.contains("tag a, tag b"),
            "{err}"
        );
        let one = index(&[entry(&a, OCI_MANIFEST, None, None)]);
        let d = resolve_layout(&one, None, &p("linux/amd64"), "L", &mut blobs.fetch()).unwrap();
        assert_eq!(d.digest, sha256_digest(&a));
        let empty = index(&[]);
        let err = resolve_layout(&empty, None, &p("linux/amd64"), "L", &mut blobs.fetch())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "L holds no images");
    }

    #[test]
    fn nesting_is_bounded() {
        let m = manifest(1);
        let mut level = index(&[entry(&m, OCI_MANIFEST, Some("linux/amd64"), None)]);
        let mut all = vec![m.clone(), level.clone()];
        for _ in 0..MAX_DEPTH {
            level = index(&[entry(&level, OCI_INDEX, Some("linux/amd64"), None)]);
            all.push(level.clone());
        }
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        let blobs = Blobs::new(&refs);
        let top = index(&[entry(&level, OCI_INDEX, None, Some("t"))]);
        let err = resolve_layout(&top, None, &p("linux/amd64"), "L", &mut blobs.fetch())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested more than"), "{err}");
    }

    #[test]
    fn documents() {
        let info = doc_info(&manifest(1), "m").unwrap();
        assert!(!info.is_index);
        assert!(doc_info(&index(&[]), "i").unwrap().is_index);
        let untyped = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(doc_info(untyped, "i").unwrap().is_index);
        let err = doc_info(br#"{"schemaVersion":1,"fsLayers":[]}"#, "docker://x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 1"), "{err}");
        assert!(doc_info(b"not json", "x").is_err());

        let m = manifest(7);
        let digest = sha256_digest(&m);
        let f = finish_manifest(m.clone(), &digest, None, "x").unwrap();
        assert_eq!(f.media_type, OCI_MANIFEST);
        let untyped = br#"{"schemaVersion":2,"config":{},"layers":[]}"#.to_vec();
        let d = sha256_digest(&untyped);
        assert_eq!(
            finish_manifest(untyped.clone(), &d, None, "x")
                .unwrap()
                .media_type,
            OCI_MANIFEST
        );
        let f = finish_manifest(untyped, &d, Some(DOCKER_MANIFEST), "x").unwrap();
        assert_eq!(f.media_type, DOCKER_MANIFEST);
        let err = finish_manifest(m, &sha256_digest(b"other"), None, "x").unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let i = index(&[]);
        let err = finish_manifest(i.clone(), &sha256_digest(&i), None, "x").unwrap_err();
        assert!(err.to_string().contains("found an image index"), "{err}");
    }
}
