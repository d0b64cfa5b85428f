//! Images that are mounted right now, so that garbage collection keeps them
//! whether or not a ref still names them.
//!
//! A repository image is mounted as an overlay whose source is
//! `composefs:<hex digest>` (see `cfsctl mount`). The mount tables read are
//! `/proc/self/mountinfo` and, for every other mount namespace visible in
//! `/proc/<pid>/ns/mnt` (containers, services with private mounts), one
//! `/proc/<pid>/mountinfo` of a process in it. A table that cannot be read
//! is skipped; the result can only err towards keeping more.
//!
//! `mountinfo` lines are `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
//! [OPTIONAL…] - FSTYPE SOURCE SUPER_OPTIONS`, with space, tab, newline and
//! backslash in fields written as octal escapes (`\040`).

use std::collections::HashSet;
use std::io::Read;

/// Largest mount table read (per namespace).
const MAX_MOUNTINFO: u64 = 64 << 20;

/// The lowercase hex digests of every `composefs:<hex>` mount source of
/// `len` hex characters in the mount tables of all visible namespaces.
pub fn mounted_image_ids(len: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut seen_ns = HashSet::new();
    if let Ok(ns) = std::fs::read_link("/proc/self/ns/mnt") {
        seen_ns.insert(ns);
    }
    collect("/proc/self/mountinfo", len, &mut ids);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return ids;
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if seen_ns.insert(ns) {
            collect(&format!("/proc/{pid}/mountinfo"), len, &mut ids);
        }
    }
    ids
}

fn collect(path: &str, len: usize, ids: &mut HashSet<String>) {
    let Ok(file) = std::fs::File::open(path) else {
        return;
    };
    let mut text = Vec::new();
    if file.take(MAX_MOUNTINFO).read_to_end(&mut text).is_err() {
        return;
    }
    ids.extend(image_ids(&String::from_utf8_lossy(&text), len));
}

/// The `composefs:<hex>` sources (hex of `len` characters) in a mount table.
pub fn image_ids(mountinfo: &str, len: usize) -> Vec<String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((_, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = after.split(' ');
        let (Some(_fstype), Some(source)) = (fields.next(), fields.next()) else {
            continue;
        };
        let source = unescape(source);
        if let Some(hex) = source.strip_prefix("composefs:")
            && hex.len() == len
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            out.push(hex.to_ascii_lowercase());
        }
    }
    out
}

/// Undoes the kernel's octal escapes (`\040` → space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_composefs_sources_only() {
        let hex = "ab".repeat(32);
        let table = format!(
            "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n\
             90 30 0:50 / /mnt/a rw,relatime - overlay composefs:{hex} ro,lowerdir+=x\n\
             91 30 0:51 / /mnt/b rw - overlay composefs:{} ro\n\
             92 30 0:52 / /mnt/c rw - overlay composefs ro\n\
             93 30 0:53 / /mnt/with\\040space rw master:1 - overlay composefs:{} ro\n",
            "cd".repeat(31),
            "EF".repeat(32)
        );
        assert_eq!(image_ids(&table, 64), vec![hex, "ef".repeat(32)]);
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("tail\\04"), "tail\\04");
    }
}
