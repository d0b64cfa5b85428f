//! Raw 512-byte tar header blocks: numeric fields, checksum, names, and PAX
//! extended-header records.

use super::TarProblem;
pub(crate) use crate::tar_block::{BLOCK, cstr, is_zero_block, padding, parse_decimal};
use crate::tar_block::{CHECKSUM_FIELD, checksum, checksum_matches, parse_number, pax_records};

/// Offset and length of the `size` field.
const SIZE_FIELD: (usize, usize) = (124, 12);
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
        match checksum_matches(self.0) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let (off, len) = CHECKSUM_FIELD;
                Err(TarProblem::BadChecksum {
                    stored: crate::tar_block::parse_octal(&self.0[off..off + len]).unwrap_or(0),
                    computed: checksum(self.0).0,
                })
            }
            Err(()) => Err(TarProblem::BadNumber { field: "checksum" }),
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
    let records = pax_records(data).map_err(|_| TarProblem::BadPaxRecord)?;
    for (key, value) in records {
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
