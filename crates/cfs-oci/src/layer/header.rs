//! Raw 512-byte tar header blocks: numeric fields, checksum, names, and PAX
//! extended-header records.

use super::TarProblem;

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Offset and length of the `size` field.
const SIZE_FIELD: (usize, usize) = (124, 12);
/// Offset and length of the `chksum` field.
const CHECKSUM_FIELD: (usize, usize) = (148, 8);
/// Offset of the type flag.
const TYPEFLAG: usize = 156;
/// Offset of `magic` (`ustar\0` for POSIX, `ustar  \0` for GNU).
const MAGIC: usize = 257;
/// Offset and length of the ustar `prefix` field.
const PREFIX_FIELD: (usize, usize) = (345, 155);

/// One header block.
pub(crate) struct Header<'a>(pub(crate) &'a [u8; BLOCK]);

impl Header<'_> {
    /// The type flag byte.
    pub(crate) fn typeflag(&self) -> u8 {
        self.0[TYPEFLAG]
    }

    /// The `size` field (octal or GNU base-256).
    pub(crate) fn size(&self) -> Result<u64, TarProblem> {
        let (off, len) = SIZE_FIELD;
        parse_number(&self.0[off..off + len]).ok_or(TarProblem::BadNumber { field: "size" })
    }

    /// Verifies the header checksum: the stored value must equal the sum of
    /// all bytes with the checksum field counted as spaces, either unsigned
    /// (POSIX) or signed (some historic writers).
    pub(crate) fn verify_checksum(&self) -> Result<(), TarProblem> {
        let (off, len) = CHECKSUM_FIELD;
        let stored = parse_octal(&self.0[off..off + len])
            .ok_or(TarProblem::BadNumber { field: "checksum" })?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, &b) in self.0.iter().enumerate() {
            let b = if (off..off + len).contains(&i) {
                b' '
            } else {
                b
            };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
            Ok(())
        } else {
            Err(TarProblem::BadChecksum {
                stored,
                computed: unsigned,
            })
        }
    }

    /// The path as the header alone spells it (`prefix/name` for POSIX
    /// ustar headers, `name` otherwise), lossily decoded.
    pub(crate) fn path(&self) -> String {
        let name = cstr(&self.0[..100]);
        let is_posix = &self.0[MAGIC..MAGIC + 6] == b"ustar\0";
        let (off, len) = PREFIX_FIELD;
        let prefix = cstr(&self.0[off..off + len]);
        if is_posix && !prefix.is_empty() {
            let mut p = String::from_utf8_lossy(prefix).into_owned();
            p.push('/');
            p.push_str(&String::from_utf8_lossy(name));
            p
        } else {
            String::from_utf8_lossy(name).into_owned()
        }
    }
}

/// Whether a block is all zeros (an end-of-archive block).
pub(crate) fn is_zero_block(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Bytes of padding after `size` bytes of entry data.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The bytes before the first NUL.
pub(crate) fn cstr(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// A numeric header field: GNU base-256 when the first byte has its high
/// bit set (negative values, first byte `0xff`, are rejected), octal
/// otherwise.
pub(crate) fn parse_number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => {
            if first & 0x40 != 0 {
                return None;
            }
            let mut value: u64 = u64::from(first & 0x3f);
            for &b in &field[1..] {
                value = value.checked_mul(256)?.checked_add(u64::from(b))?;
            }
            Some(value)
        }
        _ => parse_octal(field),
    }
}

/// An octal field: leading spaces, digits, then NULs or spaces. An empty
/// (all NUL/space) field is 0.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let mut rest = field;
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let mut value: u64 = 0;
    let mut i = 0;
    while let Some(&b) = rest.get(i) {
        if !(b'0'..=b'7').contains(&b) {
            break;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
        i += 1;
    }
    if rest[i..].iter().all(|&b| b == 0 || b == b' ') {
        Some(value)
    } else {
        None
    }
}

/// What a PAX extended header (`x`) says about the next entry, as far as
/// splitting cares.
#[derive(Debug, Default)]
pub(crate) struct PaxInfo {
    /// `size`: overrides the header size of the next entry.
    pub(crate) size: Option<u64>,
    /// `path`: the next entry's name (for error messages).
    pub(crate) path: Option<String>,
}

/// Parses PAX records `"<len> <key>=<value>\n"` from `data` (the content of
/// an `x` or `g` header) into `info`. Any `GNU.sparse.*` key is a sparse
/// entry. The numeric values `size`, `uid`, `gid` (decimal) and `mtime`,
/// `atime`, `ctime` (non-negative decimal with an optional fraction) are
/// validated.
pub(crate) fn parse_pax(data: &[u8], info: &mut PaxInfo) -> Result<(), TarProblem> {
    let mut rest = data;
    while !rest.is_empty() {
        // Some writers pad the data with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(TarProblem::BadPaxRecord)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or(TarProblem::BadPaxRecord)?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(TarProblem::BadPaxRecord);
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or(TarProblem::BadPaxRecord)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.starts_with(b"GNU.sparse.") {
            return Err(TarProblem::Sparse);
        }
        let bad = || TarProblem::BadPaxValue {
            key: String::from_utf8_lossy(key).into_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
        };
        match key {
            b"size" => info.size = Some(parse_decimal(value).ok_or_else(bad)?),
            b"uid" | b"gid" => {
                parse_decimal(value).ok_or_else(bad)?;
            }
            b"mtime" | b"atime" | b"ctime" => {
                let (int, frac) = match value.iter().position(|&b| b == b'.') {
                    Some(dot) => (&value[..dot], Some(&value[dot + 1..])),
                    None => (value, None),
                };
                parse_decimal(int).ok_or_else(bad)?;
                if frac.is_some_and(|f| !f.iter().all(u8::is_ascii_digit)) {
                    return Err(bad());
                }
            }
            b"path" => info.path = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
    Ok(())
}

/// A non-empty run of ASCII decimal digits that fits a `u64`.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}
