//! Numeric fields, parsed exactly like C `strtoull` followed by composefs's
//! "non-empty and fully consumed" check.

use super::ParseErrorKind;
use crate::tree::Mtime;
use crate::verity::{Digest, hex_value};

/// C `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C `strtoull(field, &end, base)` accepted only if `field` is non-empty and
/// `end` reaches its end: leading whitespace, an optional sign (`-` negates
/// modulo 2⁶⁴), at least one digit; overflow saturates at `u64::MAX`.
pub(super) fn parse_u64(field: &[u8], base: u32) -> Result<u64, ParseErrorKind> {
    let invalid = || ParseErrorKind::InvalidInteger { text: field.into() };
    let start = field
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(field.len());
    let mut digits = field.get(start..).unwrap_or_default();
    let mut negative = false;
    if let Some((&sign, rest)) = digits.split_first()
        && (sign == b'+' || sign == b'-')
    {
        negative = sign == b'-';
        digits = rest;
    }
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        let d = match char::from(b).to_digit(base) {
            Some(d) => d,
            None => return Err(invalid()),
        };
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    Ok(if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// MTIME: `SEC.NSEC`, both numbers; the text after the first `.` is NSEC (an
/// integer count of nanoseconds). Seconds wrap to `i64` and nanoseconds are
/// truncated to 32 bits, as in C.
pub(super) fn parse_mtime(field: &[u8]) -> Result<Mtime, ParseErrorKind> {
    let (sec, nsec) = match field.iter().position(|&b| b == b'.') {
        Some(p) => {
            let (sec, dot_nsec) = field.split_at(p);
            (sec, dot_nsec.get(1..).unwrap_or_default())
        }
        None => (field, &b""[..]),
    };
    let sec = parse_u64(sec, 10)?;
    let nsec = parse_u64(nsec, 10)?;
    Ok(Mtime::new(sec as i64, nsec as u32))
}

/// DIGEST, parsed like C `digest_to_raw` into a SHA-256 digest: hex pairs
/// (either case) fill the bytes from the start until the text ends, a pair is
/// not hex, or 32 bytes are filled; the remaining bytes are zero.
///
/// Exception (a deliberate difference from C, which would keep the first 32
/// bytes): exactly 128 hex digits are a SHA-512 digest, so dumps of SHA-512
/// images (repositories) round-trip.
pub(super) fn parse_digest_lenient(text: &[u8]) -> Digest {
    if text.len() == 128
        && let Ok(d) = std::str::from_utf8(text)
            .map_err(|_| ())
            .and_then(|t| Digest::from_hex(t).map_err(|_| ()))
    {
        return d;
    }
    let mut raw = [0u8; 32];
    let mut pairs = text.chunks_exact(2);
    for (slot, pair) in raw.iter_mut().zip(&mut pairs) {
        let (hi, lo) = match *pair {
            [h, l] => (HEX_VALUE[usize::from(h)], HEX_VALUE[usize::from(l)]),
            _ => break,
        };
        if (hi | lo) & 0xf0 != 0 {
            break;
        }
        *slot = (hi << 4) | lo;
    }
    Digest::sha256(raw)
}

/// Value of each byte as a hex digit, 0xff if it is none.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 256 {
        if let Some(v) = hex_value(i as u8) {
            table[i] = v;
        }
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, base: u32) -> Result<u64, String> {
        parse_u64(s.as_bytes(), base).map_err(|e| e.to_string())
    }

    #[test]
    fn sha512_digests_are_kept_whole() {
        let hex = "0123456789abcdef".repeat(8);
        let d = parse_digest_lenient(hex.as_bytes());
        assert_eq!(d.algorithm(), crate::verity::Algorithm::Sha512);
        assert_eq!(d.to_hex(), hex);
        // 130 digits: C's truncation to SHA-256.
        let long = format!("{hex}ff");
        let d = parse_digest_lenient(long.as_bytes());
        assert_eq!(d.to_hex(), hex[..64]);
        // 128 characters that are not all hex: lenient SHA-256 parse.
        let bad = format!("{}zz", &hex[..126]);
        assert_eq!(
            parse_digest_lenient(bad.as_bytes()).algorithm(),
            crate::verity::Algorithm::Sha256
        );
    }

    #[test]
    fn strtoull_compatible() {
        assert_eq!(p("0", 10), Ok(0));
        assert_eq!(p("007", 10), Ok(7));
        assert_eq!(p("+8", 10), Ok(8));
        assert_eq!(p("-1", 10), Ok(u64::MAX));
        assert_eq!(p("-10", 10), Ok(10u64.wrapping_neg()));
        assert_eq!(p("18446744073709551615", 10), Ok(u64::MAX));
        assert_eq!(p("18446744073709551616", 10), Ok(u64::MAX));
        assert_eq!(p("-18446744073709551616", 10), Ok(u64::MAX));
        assert_eq!(p("99999999999999999999999999", 10), Ok(u64::MAX));
        assert_eq!(p("\t 5", 10), Ok(5));
        assert_eq!(p("\r5", 10), Ok(5));
        assert_eq!(p("100644", 8), Ok(0o100644));
        assert_eq!(p("0100644", 8), Ok(0o100644));
    }

    #[test]
    fn strtoull_rejects() {
        assert_eq!(p("", 10).unwrap_err(), "Invalid integer ");
        assert_eq!(p("abc", 10).unwrap_err(), "Invalid integer abc");
        assert_eq!(p("5\r", 10).unwrap_err(), "Invalid integer 5\r");
        assert_eq!(p("100648", 8).unwrap_err(), "Invalid integer 100648");
        assert_eq!(p("+", 10).unwrap_err(), "Invalid integer +");
        assert_eq!(p("-", 10).unwrap_err(), "Invalid integer -");
        assert_eq!(p(" ", 10).unwrap_err(), "Invalid integer  ");
        assert_eq!(p("0x10", 10).unwrap_err(), "Invalid integer 0x10");
        assert_eq!(p("+-1", 10).unwrap_err(), "Invalid integer +-1");
        assert_eq!(p("1 ", 10).unwrap_err(), "Invalid integer 1 ");
        assert_eq!(p("1.5", 10).unwrap_err(), "Invalid integer 1.5");
    }

    #[test]
    fn mtimes() {
        let m = |s: &str| parse_mtime(s.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(m("0.0"), Ok(Mtime::new(0, 0)));
        assert_eq!(m("1.5"), Ok(Mtime::new(1, 5)));
        assert_eq!(m("10.0000005"), Ok(Mtime::new(10, 5)));
        assert_eq!(m("-10.5"), Ok(Mtime::new(-10, 5)));
        assert_eq!(m("10.1000000000"), Ok(Mtime::new(10, 1_000_000_000)));
        assert_eq!(m("10.4294967296"), Ok(Mtime::new(10, 0)));
        assert_eq!(m("-9223372036854775808.0"), Ok(Mtime::new(i64::MIN, 0)));
        assert_eq!(m("10"), Err("Invalid integer ".into()));
        assert_eq!(m("abc.def"), Err("Invalid integer abc".into()));
        assert_eq!(m("1.def"), Err("Invalid integer def".into()));
        assert_eq!(m("1.2.3"), Err("Invalid integer 2.3".into()));
        assert_eq!(m(".5"), Err("Invalid integer ".into()));
    }

    #[test]
    fn lenient_digests() {
        let hex = |d: Digest| d.to_hex();
        let full = "0123456789abcdef".repeat(4);
        assert_eq!(hex(parse_digest_lenient(full.as_bytes())), full);
        assert_eq!(
            hex(parse_digest_lenient(full.to_uppercase().as_bytes())),
            full
        );
        let long = format!("{full}ffff");
        assert_eq!(hex(parse_digest_lenient(long.as_bytes())), full);
        assert_eq!(
            hex(parse_digest_lenient(b"0123456789abcdef")),
            format!("0123456789abcdef{}", "0".repeat(48))
        );
        // Stops at the first bad pair; a lone trailing digit is dropped.
        assert_eq!(
            hex(parse_digest_lenient(b"abcdeg12")),
            format!("abcd{}", "0".repeat(60))
        );
        assert_eq!(
            hex(parse_digest_lenient(b"abc")),
            format!("ab{}", "0".repeat(62))
        );
        assert_eq!(hex(parse_digest_lenient(b"-\r")), "0".repeat(64));
        assert_eq!(hex(parse_digest_lenient(b"")), "0".repeat(64));
    }
}
