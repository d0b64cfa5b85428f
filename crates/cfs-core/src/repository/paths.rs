//! Every path inside a repository, and the relative symlinks between them.
//!
//! ```text
//! meta.json
//! objects/XX/<rest of hex digest>           objects (files)
//! objects/.tmp-object-*                      named temporary files (rare fallback)
//! images/<hex digest>   -> ../objects/XX/<rest>
//! images/refs/<name…>   -> ../…/<hex digest>
//! streams/<content id>  -> ../objects/XX/<rest>
//! streams/refs/<name…>  -> ../…/<content id>
//! ```
//!
//! Symlink targets are relative: the common leading components of the link
//! and the target (both relative to the repository root) are dropped, then
//! one `..` is written per remaining directory component of the link's
//! parent, followed by the remaining target components.

use crate::verity::Digest;

use super::error::{RepoError, Result};

/// `meta.json`.
pub const META_JSON: &str = "meta.json";
/// The object directory.
pub const OBJECTS: &str = "objects";
/// The image directory.
pub const IMAGES: &str = "images";
/// The stream directory.
pub const STREAMS: &str = "streams";
/// The refs subdirectory of `images/` and `streams/`.
pub const REFS: &str = "refs";

/// `objects/XX/<rest>` of a digest.
pub fn object_path(digest: &Digest) -> String {
    format!("{OBJECTS}/{}", digest.object_path())
}

/// The relative symlink target that makes `link` (a repository-relative path)
/// point at `target` (also repository-relative).
pub fn relative_target(link: &str, target: &str) -> String {
    let link_parts: Vec<&str> = link.split('/').collect();
    let parent = &link_parts[..link_parts.len() - 1];
    let target_parts: Vec<&str> = target.split('/').collect();
    let common = parent
        .iter()
        .zip(&target_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = String::new();
    for _ in common..parent.len() {
        out.push_str("../");
    }
    out.push_str(&target_parts[common..].join("/"));
    out
}

/// Checks a name used under `images/refs/` or `streams/refs/` (may contain
/// `/` for nesting) or a stream content id (may not).
pub fn check_name(what: &'static str, name: &str, nested: bool) -> Result<()> {
    let bad = |reason| {
        Err(RepoError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    if name.len() > 4000 {
        return bad("longer than 4000 bytes");
    }
    if !nested && name.contains('/') {
        return bad("contains '/'");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("empty path component (leading, trailing or double '/')"),
            "." | ".." => return bad("'.' or '..' component"),
            p if p.len() > 255 => return bad("component longer than 255 bytes"),
            p if p.starts_with(".tmp-") => return bad("component starts with '.tmp-' (reserved)"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_targets_match_reference_shapes() {
        let cases = [
            ("images/abcd", "objects/ab/cd", "../objects/ab/cd"),
            ("streams/refs/foo", "streams/id", "../id"),
            ("streams/refs/oci/tag", "streams/id", "../../id"),
            ("images/refs/a/b/c", "images/abcd", "../../../abcd"),
            ("streams/x", "objects/12/34", "../objects/12/34"),
        ];
        for (link, target, want) in cases {
            assert_eq!(relative_target(link, target), want, "{link} -> {target}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("ref", "a/b/c", true).is_ok());
        assert!(check_name("ref", "oci/docker:%2F%2Fbusybox", true).is_ok());
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "..", ".", "a\0b", ".tmp-x",
        ] {
            assert!(check_name("ref", bad, true).is_err(), "{bad:?}");
        }
        assert!(check_name("stream", "a/b", false).is_err());
    }
}
