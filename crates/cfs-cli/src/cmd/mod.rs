//! One module per command family.

pub(crate) mod composefs_info;
pub(crate) mod mkcomposefs;
pub(crate) mod mount_composefs;
pub(crate) mod oci;
pub(crate) mod repo;
pub(crate) mod setup_root;
pub(crate) mod system;

/// The C library's text for an error (`strerror`), without Rust's " (os error N)",
/// so messages read like the C tools'.
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Removes Rust's " (os error N)" suffixes from a message (the C tools print only
/// the `strerror` text).
pub(crate) fn without_os_error_codes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" (os error ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail.as_bytes().get(digits) == Some(&b')') {
            rest = &tail[digits + 1..];
        } else {
            out.push_str(" (os error ");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_codes_are_removed() {
        assert_eq!(
            without_os_error_codes("a: No such file or directory (os error 2): b (os error 13)"),
            "a: No such file or directory: b"
        );
        assert_eq!(without_os_error_codes("x (os error y)"), "x (os error y)");
        assert_eq!(
            strerror(&std::io::Error::from_raw_os_error(2)),
            "No such file or directory"
        );
    }
}
