//! Backslash escapes of the composefs-dump format: decoding (`\\`, `\n`, `\r`,
//! `\t`, `\xHH`) and the three printing styles of `composefs-info`.

use std::io::{self, Write};

use super::ParseErrorKind;
use crate::verity::hex_value;

/// Decodes the escapes of `field`. Returns `field` itself when it has no
/// backslash, else the decoded bytes in `buf` (C `unescape_string`).
pub(super) fn unescape<'a>(
    field: &'a [u8],
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], ParseErrorKind> {
    if !field.contains(&b'\\') {
        return Ok(field);
    }
    buf.clear();
    let mut rest = field;
    while let Some(p) = rest.iter().position(|&b| b == b'\\') {
        let (literal, tail) = rest.split_at(p);
        buf.extend_from_slice(literal);
        let Some((&kind, after)) = tail.get(1..).and_then(<[u8]>::split_first) else {
            return Err(ParseErrorKind::NoCharacterAfterEscape);
        };
        rest = after;
        let byte = match kind {
            b'\\' => b'\\',
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'x' => {
                let (Some(&h), Some(&l)) = (rest.first(), rest.get(1)) else {
                    return Err(ParseErrorKind::NoHexAfterEscape);
                };
                rest = rest.get(2..).unwrap_or_default();
                match (hex_value(h), hex_value(l)) {
                    (Some(h), Some(l)) => (h << 4) | l,
                    _ => return Err(ParseErrorKind::InvalidHexEscape),
                }
            }
            other => return Err(ParseErrorKind::UnsupportedEscape { escape: other }),
        };
        buf.push(byte);
    }
    buf.extend_from_slice(rest);
    Ok(buf)
}

/// Like [`unescape`], but the single character `-` means "absent" (C
/// `unescape_optional_string`).
pub(super) fn unescape_optional<'a>(
    field: &'a [u8],
    buf: &'a mut Vec<u8>,
) -> Result<Option<&'a [u8]>, ParseErrorKind> {
    if field == b"-" {
        return Ok(None);
    }
    unescape(field, buf).map(Some)
}

/// The part of `bytes` before the first NUL: what C sees of a value it keeps
/// as a C string.
pub(super) fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(p) => bytes.split_at(p).0,
        None => bytes,
    }
}

/// How bytes are escaped when printed (C `print_escaped` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Paths, payloads and content: everything outside `!`..`~` is escaped.
    Standard,
    /// `ls` paths: spaces are printed literally.
    Ls,
    /// Xattr keys and values: `=` is escaped too.
    Xattr,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The escape sequence for `b`, or `None` if it is printed as itself.
fn escape_of(b: u8, style: Style) -> Option<[u8; 4]> {
    let special = |c: u8| Some([b'\\', c, 0, 0]);
    match b {
        b'\\' => special(b'\\'),
        b'\n' => special(b'n'),
        b'\r' => special(b'r'),
        b'\t' => special(b't'),
        b'=' if style == Style::Xattr => hex(b),
        b' ' if style == Style::Ls => None,
        0x21..=0x7e => None,
        _ => hex(b),
    }
}

fn hex(b: u8) -> Option<[u8; 4]> {
    Some([
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xf)],
    ])
}

fn seq_len(seq: &[u8; 4]) -> usize {
    if seq[1] == b'x' { 4 } else { 2 }
}

/// Writes `bytes` escaped in `style`.
pub(super) fn write_escaped<W: Write>(out: &mut W, bytes: &[u8], style: Style) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(seq) = escape_of(b, style) {
            out.write_all(bytes.get(start..i).unwrap_or_default())?;
            out.write_all(seq.get(..seq_len(&seq)).unwrap_or_default())?;
            start = i + 1;
        }
    }
    out.write_all(bytes.get(start..).unwrap_or_default())
}

/// Writes an optional PAYLOAD/CONTENT value: `-` when absent, `\x2d` for a
/// lone dash, else escaped in the standard style.
pub(super) fn write_optional<W: Write>(out: &mut W, value: Option<&[u8]>) -> io::Result<()> {
    match value {
        None => out.write_all(b"-"),
        Some(b"-") => out.write_all(b"\\x2d"),
        Some(v) => write_escaped(out, v, Style::Standard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &[u8]) -> Result<Vec<u8>, String> {
        let mut buf = Vec::new();
        unescape(s, &mut buf)
            .map(<[u8]>::to_vec)
            .map_err(|e| e.to_string())
    }

    fn esc(s: &[u8], style: Style) -> Vec<u8> {
        let mut out = Vec::new();
        write_escaped(&mut out, s, style).unwrap();
        out
    }

    #[test]
    fn decodes_every_escape() {
        assert_eq!(un(b"plain").unwrap(), b"plain");
        assert_eq!(un(br"a\\b\nc\rd\te").unwrap(), b"a\\b\nc\rd\te");
        assert_eq!(un(br"\x41\x6a\x6A\x00\xff").unwrap(), b"Ajj\0\xff");
        assert_eq!(un(br"x\x3dy").unwrap(), b"x=y");
        assert_eq!(un(b"").unwrap(), b"");
    }

    #[test]
    fn escape_errors_match_c() {
        assert_eq!(un(br"a\").unwrap_err(), "No character after escape");
        assert_eq!(
            un(br"\x").unwrap_err(),
            "No hex characters after hex escape"
        );
        assert_eq!(
            un(br"\x4").unwrap_err(),
            "No hex characters after hex escape"
        );
        assert_eq!(
            un(br"\xZ").unwrap_err(),
            "No hex characters after hex escape"
        );
        assert_eq!(
            un(br"\xZZ").unwrap_err(),
            "Invalid hex characters after hex escape"
        );
        assert_eq!(
            un(br"\x4g").unwrap_err(),
            "Invalid hex characters after hex escape"
        );
        assert_eq!(un(br"\q").unwrap_err(), "Unsupported escape type q");
        assert_eq!(un(br"\X41").unwrap_err(), "Unsupported escape type X");
        assert_eq!(un(br"\0").unwrap_err(), "Unsupported escape type 0");
    }

    #[test]
    fn optional_dash() {
        let mut buf = Vec::new();
        assert_eq!(unescape_optional(b"-", &mut buf).unwrap(), None);
        assert_eq!(
            unescape_optional(br"\x2d", &mut buf).unwrap(),
            Some(&b"-"[..])
        );
        assert_eq!(unescape_optional(b"", &mut buf).unwrap(), Some(&b""[..]));
        assert_eq!(
            unescape_optional(b"--", &mut buf).unwrap(),
            Some(&b"--"[..])
        );
    }

    #[test]
    fn c_str_stops_at_nul() {
        assert_eq!(c_str(b"ab\0cd"), b"ab");
        assert_eq!(c_str(b"\0"), b"");
        assert_eq!(c_str(b"abc"), b"abc");
    }

    #[test]
    fn prints_like_composefs_info() {
        let all: Vec<u8> = (0..=255u8).collect();
        let std = esc(&all, Style::Standard);
        let std = String::from_utf8(std).unwrap();
        assert!(std.starts_with(r"\x00\x01"));
        assert!(std.contains(r"\x08\t\n\x0b\x0c\r\x0e"));
        assert!(std.contains(r"\x1f\x20!"));
        assert!(std.contains("<=>"));
        assert!(std.contains(r"[\\]"));
        assert!(std.contains(r"~\x7f\x80"));
        assert!(std.ends_with(r"\xfe\xff"));
        // Every byte decodes back.
        assert_eq!(un(std.as_bytes()).unwrap(), all);
        assert_eq!(esc(b"a b=c", Style::Ls), b"a b=c");
        assert_eq!(esc(b"a b=c", Style::Xattr), br"a\x20b\x3dc");
        assert_eq!(esc(b"a b=c", Style::Standard), br"a\x20b=c");
        assert_eq!(esc("é\t".as_bytes(), Style::Ls), br"\xc3\xa9\t");
    }

    #[test]
    fn optional_values() {
        let mut out = Vec::new();
        write_optional(&mut out, None).unwrap();
        out.push(b' ');
        write_optional(&mut out, Some(b"-")).unwrap();
        out.push(b' ');
        write_optional(&mut out, Some(b"--")).unwrap();
        out.push(b' ');
        write_optional(&mut out, Some(b"")).unwrap();
        assert_eq!(out, br"- \x2d -- ");
    }
}
