//! Primitives of raw 512-byte tar blocks shared by the layer splitter and
//! the entry reader: numeric fields (octal and GNU base-256), the header
//! checksum, NUL-terminated fields, padding, and PAX records
//! `"<len> <key>=<value>\n"`.

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Offset and length of the `chksum` field.
pub(crate) const CHECKSUM_FIELD: (usize, usize) = (148, 8);

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
pub(crate) fn parse_octal(field: &[u8]) -> Option<u64> {
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

/// Checks a header's checksum: the stored value must equal the sum of all
/// bytes with the checksum field counted as spaces, either unsigned (POSIX)
/// or signed (some historic writers).
/// `Ok(false)` on a mismatch; `Err(())` when the field is not a number.
pub(crate) fn checksum_matches(block: &[u8; BLOCK]) -> Result<bool, ()> {
    let (off, len) = CHECKSUM_FIELD;
    let stored = parse_octal(&block[off..off + len]).ok_or(())?;
    let (unsigned, signed) = checksum(block);
    Ok(stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed))
}

/// The unsigned and signed byte sums of a header with its checksum field
/// counted as spaces.
pub(crate) fn checksum(block: &[u8; BLOCK]) -> (u64, i64) {
    let (off, len) = CHECKSUM_FIELD;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (off..off + len).contains(&i) {
            b' '
        } else {
            b
        };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// One PAX record: key and value.
pub(crate) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits PAX extended-header data into `(key, value)` records. Trailing
/// NUL padding ends the data. `Err` names what is malformed.
pub(crate) fn pax_records(data: &[u8]) -> Result<Vec<PaxRecord<'_>>, &'static str> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // Some writers pad the data with NULs.
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without length")?;
        let len = parse_decimal(&rest[..space])
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l > space + 1 && l <= rest.len())
            .ok_or("invalid PAX record length")?;
        if rest[len - 1] != b'\n' {
            return Err("PAX record not terminated by a newline");
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without '='")?;
        out.push((&record[..eq], &record[eq + 1..]));
    }
    Ok(out)
}

/// A non-empty run of ASCII decimal digits that fits a `u64`.
pub(crate) fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}
