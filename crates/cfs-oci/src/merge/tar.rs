//! Reading a tar byte stream into [`LayerEntry`]s (composefs-rs `get_entry`
//! semantics: ustar prefix, GNU long names/links, PAX records, global headers
//! skipped, sparse entries rejected).

use std::io::{self, Read};

use cfs_core::tree::Mtime;
use cfs_core::verity::Digest;

use super::{Content, EntryKind, INLINE_MAX, LayerEntry, MergeError};

/// Largest PAX record block or GNU long name/link accepted (1 MiB).
pub const MAX_EXTENSION_SIZE: u64 = 1 << 20;

use crate::tar_block::{
    BLOCK, checksum, checksum_matches, cstr, parse_decimal, parse_number, pax_records,
};

/// A PAX record: key and value.
type Record = (Vec<u8>, Vec<u8>);

/// An iterator-like reader of the entries of one tar stream.
#[derive(Debug)]
pub struct TarEntries<R> {
    inner: R,
    state: TarState,
}

/// Where [`TarState`] takes its bytes from: a plain tar stream, or a split
/// stream whose large file contents are already objects.
pub(super) trait TarInput: Read {
    /// Says what the next bytes read are (for the input's error messages).
    fn expect(&mut self, _what: Expect) {}

    /// Called at the start of the content of every regular file of `size`
    /// bytes: `Some(digest)` if the input holds that content as one external
    /// object (which is then consumed), `None` if the bytes follow.
    fn take_external(&mut self, size: u64) -> Result<Option<Digest>, MergeError>;
}

/// What a [`TarInput`] is about to be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// A header block.
    Header,
    /// `size` bytes of entry data read inline (extension data, small
    /// files, data of non-regular entries).
    Data(u64),
    /// Padding after entry data.
    Padding,
}

/// A plain reader: every byte is in the stream.
struct Plain<'a, R>(&'a mut R);

impl<R: Read> Read for Plain<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> TarInput for Plain<'_, R> {
    fn take_external(&mut self, _size: u64) -> Result<Option<Digest>, MergeError> {
        Ok(None)
    }
}

/// The position in a tar stream, independent of where its bytes come from.
#[derive(Debug, Default)]
pub(super) struct TarState {
    offset: u64,
    done: bool,
}

/// The callback storing a large file's content; see [`TarEntries::next_entry`].
/// A file's content as handed to the store: exactly `remaining` bytes, an
/// `UnexpectedEof` error if the input ends first (so a store never sees a
/// truncated file as a complete one).
struct Exact<'a, R> {
    input: &'a mut R,
    remaining: u64,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected EOF reading tar entry",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

pub(super) type Store<'a> = dyn FnMut(&mut dyn Read, u64) -> io::Result<Digest> + 'a;

/// Extension records collected for the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Vec<Record>,
}

impl<R: Read> TarEntries<R> {
    /// Reads entries from `inner` (an uncompressed tar stream).
    pub fn new(inner: R) -> Self {
        TarEntries {
            inner,
            state: TarState::default(),
        }
    }

    /// The next entry, or `None` at the end-of-archive marker or the end of
    /// the stream. Regular files larger than [`INLINE_MAX`] are passed to
    /// `store(content, size)`, which returns their digest; the stream is kept
    /// aligned whatever the callback reads.
    pub fn next_entry(
        &mut self,
        store: &mut dyn FnMut(&mut dyn Read, u64) -> io::Result<Digest>,
    ) -> Result<Option<LayerEntry>, MergeError> {
        self.state.next_entry(&mut Plain(&mut self.inner), store)
    }
}

impl TarState {
    /// The next entry read from `input`; see [`TarEntries::next_entry`].
    pub(super) fn next_entry<I: TarInput>(
        &mut self,
        input: &mut I,
        store: &mut Store<'_>,
    ) -> Result<Option<LayerEntry>, MergeError> {
        if self.done {
            return Ok(None);
        }
        let mut pending = Pending::default();
        let mut start = None;
        loop {
            let header_offset = self.offset;
            let start = *start.get_or_insert(header_offset);
            let tar_err = |message: String| MergeError::Tar {
                offset: start,
                message,
            };
            let mut h = [0u8; BLOCK];
            if !self.read_block(input, &mut h)? || h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            check_checksum(&h).map_err(tar_err)?;
            let magic = &h[257..265];
            let ustar = &magic[..6] == b"ustar\0";
            let gnu = magic == b"ustar  \0";
            let typeflag = h[156];
            let mut size = parse_num(&h[124..136]).map_err(|e| tar_err(format!("size: {e}")))?;
            if (ustar || gnu) && matches!(typeflag, b'L' | b'K' | b'x' | b'g') {
                if size > MAX_EXTENSION_SIZE {
                    return Err(tar_err(format!(
                        "extension header of {size} bytes exceeds the limit of {MAX_EXTENSION_SIZE}"
                    )));
                }
                let data = self.read_data(input, size)?;
                match typeflag {
                    b'L' => pending.long_name = Some(strip_one_nul(data)),
                    b'K' => pending.long_link = Some(strip_one_nul(data)),
                    b'x' => pending.pax.extend(parse_pax(&data).map_err(tar_err)?),
                    _ => {} // global headers are not applied
                }
                continue;
            }
            // An entry header.
            let pax = |key: &[u8]| {
                pending
                    .pax
                    .iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_slice())
            };
            if pax(b"GNU.sparse.major").is_some() || pax(b"GNU.sparse.map").is_some() {
                return Err(tar_err("sparse tar entries are not supported".into()));
            }
            if let Some(v) = pax(b"size") {
                size = parse_decimal(v)
                    .ok_or_else(|| tar_err(format!("invalid PAX size {:?}", lossy(v))))?;
            }
            let path = if let Some(p) = pax(b"path").or(pax(b"GNU.sparse.name")) {
                p.to_vec()
            } else if let Some(p) = pending.long_name.take() {
                p
            } else {
                let name = cstr(&h[..100]);
                let prefix = cstr(&h[345..500]);
                if ustar && !prefix.is_empty() {
                    [prefix, b"/", name].concat()
                } else {
                    name.to_vec()
                }
            };
            if path.is_empty() {
                return Err(tar_err("entry has empty path".into()));
            }
            let link = if let Some(l) = pax(b"linkpath") {
                l.to_vec()
            } else if let Some(l) = pending.long_link.take() {
                l
            } else {
                cstr(&h[157..257]).to_vec()
            };
            let num = |range: std::ops::Range<usize>, what: &str| {
                parse_num(&h[range]).map_err(|e| tar_err(format!("{what}: {e}")))
            };
            let mode = num(100..108, "mode")? as u32;
            let mut uid = num(108..116, "uid")? as u32;
            let mut gid = num(116..124, "gid")? as u32;
            let mut mtime = Mtime::new(num(136..148, "mtime")? as i64, 0);
            if let Some(v) = pax(b"uid").and_then(parse_decimal) {
                uid = v as u32;
            }
            if let Some(v) = pax(b"gid").and_then(parse_decimal) {
                gid = v as u32;
            }
            if let Some(v) = pax(b"mtime").and_then(parse_pax_time) {
                mtime = v;
            }
            let mut xattrs = Vec::new();
            for (k, v) in &pending.pax {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), v.clone()));
                }
            }
            let device = || -> Result<u32, MergeError> {
                if !(ustar || gnu) {
                    return Err(tar_err("Device entry without device numbers?".into()));
                }
                let major = num(329..337, "devmajor")?;
                let minor = num(337..345, "devminor")?;
                Ok(makedev(major, minor))
            };
            let kind = match typeflag {
                b'0' | 0 | b'7' => {
                    let content = match input.take_external(size)? {
                        Some(digest) => {
                            self.offset += size;
                            self.skip_padding(input, size)?;
                            Content::External(digest)
                        }
                        None if size <= INLINE_MAX => Content::Inline(self.read_data(input, size)?),
                        None => Content::External(self.store_data(input, size, store)?),
                    };
                    EntryKind::Regular { size, content }
                }
                b'5' => EntryKind::Directory,
                b'2' => EntryKind::Symlink(link),
                b'1' => EntryKind::Hardlink(link),
                b'3' => EntryKind::CharDevice(device()?),
                b'4' => EntryKind::BlockDevice(device()?),
                b'6' => EntryKind::Fifo,
                b'S' => return Err(tar_err("sparse tar entries are not supported".into())),
                t => {
                    return Err(tar_err(format!(
                        "Unsupported entry type {:?}",
                        char::from(t)
                    )));
                }
            };
            if !matches!(kind, EntryKind::Regular { .. }) {
                self.skip_data(input, size)?;
            }
            return Ok(Some(LayerEntry {
                path,
                kind,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
            }));
        }
    }

    /// Reads one block; `false` at a clean end of stream.
    fn read_block(
        &mut self,
        input: &mut impl TarInput,
        buf: &mut [u8; BLOCK],
    ) -> Result<bool, MergeError> {
        input.expect(Expect::Header);
        let mut got = 0;
        while got < BLOCK {
            match input.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(MergeError::Tar {
                        offset: self.offset,
                        message: "truncated header block".into(),
                    });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// Reads `size` bytes of data and skips the padding (`size` is bounded
    /// by the caller).
    fn read_data(&mut self, input: &mut impl TarInput, size: u64) -> Result<Vec<u8>, MergeError> {
        input.expect(Expect::Data(size));
        let mut data = vec![0; size as usize];
        input.read_exact(&mut data)?;
        self.offset += size;
        self.skip_padding(input, size)?;
        Ok(data)
    }

    fn store_data(
        &mut self,
        input: &mut impl TarInput,
        size: u64,
        store: &mut Store<'_>,
    ) -> Result<Digest, MergeError> {
        input.expect(Expect::Data(size));
        let mut content = Exact {
            input: &mut *input,
            remaining: size,
        };
        let digest = store(&mut content, size)?;
        // Drain whatever the callback did not read (fails if truncated).
        io::copy(&mut content, &mut io::sink())?;
        self.offset += size;
        self.skip_padding(input, size)?;
        Ok(digest)
    }

    fn skip_data(&mut self, input: &mut impl TarInput, size: u64) -> Result<(), MergeError> {
        input.expect(Expect::Data(size));
        let copied = io::copy(&mut (&mut *input).take(size), &mut io::sink())?;
        if copied != size {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        self.offset += size;
        self.skip_padding(input, size)
    }

    fn skip_padding(&mut self, input: &mut impl TarInput, size: u64) -> Result<(), MergeError> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        if pad == 0 {
            return Ok(());
        }
        input.expect(Expect::Padding);
        let mut buf = [0u8; BLOCK];
        input.read_exact(&mut buf[..pad as usize])?;
        self.offset += pad;
        Ok(())
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn strip_one_nul(mut data: Vec<u8>) -> Vec<u8> {
    if data.last() == Some(&0) {
        data.pop();
    }
    data
}

fn check_checksum(h: &[u8; BLOCK]) -> Result<(), String> {
    match checksum_matches(h) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "header checksum does not match the header (computed {})",
            checksum(h).0
        )),
        Err(()) => Err("checksum: invalid octal number".into()),
    }
}

/// A numeric header field: octal (NUL/space padded) or GNU base-256.
fn parse_num(field: &[u8]) -> Result<u64, String> {
    parse_number(field).ok_or_else(|| format!("invalid number {:?}", lossy(field)))
}

/// A PAX time `sec[.frac]`: nanoseconds from the first 9 fractional digits
/// (fewer are scaled); an unparsable fraction gives 0.
fn parse_pax_time(v: &[u8]) -> Option<Mtime> {
    let text = std::str::from_utf8(v).ok()?;
    let (sec, frac) = match text.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (text, None),
    };
    let sec: i64 = sec.parse().ok()?;
    let nsec = frac
        .and_then(|f| {
            let f = &f[..f.len().min(9)];
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = f.parse().ok()?;
            Some(n * 10u32.pow(9 - f.len() as u32))
        })
        .unwrap_or(0);
    Some(Mtime::new(sec, nsec))
}

/// PAX records `"<len> <key>=<value>\n"`, owned.
fn parse_pax(data: &[u8]) -> Result<Vec<Record>, String> {
    Ok(pax_records(data)?
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect())
}

/// glibc `makedev`, truncated to the 32 bits EROFS stores.
fn makedev(major: u64, minor: u64) -> u32 {
    let dev = ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff);
    dev as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_time() {
        assert_eq!(parse_pax_time(b"12.5"), Some(Mtime::new(12, 500_000_000)));
        assert_eq!(
            parse_pax_time(b"12.1234567891"),
            Some(Mtime::new(12, 123_456_789))
        );
        assert_eq!(parse_pax_time(b"12.x"), Some(Mtime::new(12, 0)));
        assert_eq!(parse_pax_time(b"12"), Some(Mtime::new(12, 0)));
        assert_eq!(parse_pax_time(b"-3"), Some(Mtime::new(-3, 0)));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_num(b"   644 \0"), Ok(0o644));
        assert_eq!(parse_num(&[0x80, 0, 0, 0, 0, 0, 1, 0]), Ok(256));
        assert_eq!(makedev(1, 3), 0x103);
        assert_eq!(makedev(8, 0x1234), (0x12 << 20) | (8 << 8) | 0x34);
    }
}
