//! JSON documents (manifests, indexes, configs, `manifest.json`,
//! `oci-layout`, auth files): parse errors name the failing field.
//!
//! serde_json alone reports `invalid type: integer `5`, expected a sequence
//! at line 1 column 93` without saying which field; oci-spec's own readers
//! wrap even that into `serde failed`. Documents are parsed here with
//! [`serde_path_to_error`], so the message carries the path of the field
//! (`layers`, `manifests[2].digest`, `rootfs.diff_ids[0]`) before serde's
//! message and position. Callers add which document it was (digest or
//! path). Size limits are enforced by the callers before parsing (see
//! `store::MAX_JSON_SIZE` and `source::oci_layout::MAX_DOCUMENT`).

use serde::de::DeserializeOwned;

/// Parses `bytes` as one JSON document of type `T` (trailing data other
/// than whitespace is an error). The error text is
/// `` at `PATH`: MESSAGE `` (or just `MESSAGE` for the top level).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("at `{path}`: {}", e.into_inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::ImageManifest;

    #[test]
    fn errors_name_the_field() {
        let doc = |text: &str| text.replace("{D}", &format!("sha256:{}", "0".repeat(64)));
        let bad = doc(
            r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"{D}","size":1},"layers":5}"#,
        );
        let err = parse::<ImageManifest>(bad.as_bytes()).unwrap_err();
        assert!(err.starts_with("at `layers`: invalid type"), "{err}");
        assert!(err.contains("line 1 column"), "{err}");
        let missing =
            doc(r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"{D}","size":1}}"#);
        let err = parse::<ImageManifest>(missing.as_bytes()).unwrap_err();
        assert!(err.contains("missing field `layers`"), "{err}");
        let nested = doc(
            r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"{D}","size":"x"},"layers":[]}"#,
        );
        let err = parse::<ImageManifest>(nested.as_bytes()).unwrap_err();
        assert!(err.starts_with("at `config.size`:"), "{err}");
        let err = parse::<serde_json::Value>(b"{} x").unwrap_err();
        assert!(err.contains("trailing characters"), "{err}");
        let digest = doc(
            r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:00","size":1},"layers":[]}"#,
        );
        let err = parse::<ImageManifest>(digest.as_bytes()).unwrap_err();
        assert!(err.starts_with("at `config.digest`:"), "{err}");
        assert!(parse::<serde_json::Value>(b" {} \n").is_ok());
    }
}
