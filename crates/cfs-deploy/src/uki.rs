//! A bounded reader of the sections of a Unified Kernel Image (a PE/COFF
//! EFI executable): `.cmdline`, `.osrel`, `.uname`, `.linux`, `.initrd`.
//!
//! ```text
//! 0x00  "MZ" … u32 e_lfanew at 0x3c ──► "PE\0\0"
//!       COFF header (20 bytes): machine u16, sections u16, …, optional header size u16, …
//!       optional header (skipped)
//!       section table: `sections` × 40 bytes:
//!         name [u8; 8] (NUL padded), virtual size u32, virtual address u32,
//!         raw size u32, raw offset u32, … (all little endian)
//! ```
//!
//! A section's bytes are `raw offset .. + min(virtual size, raw size)`: the
//! raw data is padded to the file alignment, the virtual size is the real
//! length (as systemd's stub reads it). Limits: the PE header must start in
//! the first [`MAX_HEADER_OFFSET`] bytes, at most [`MAX_SECTIONS`] sections
//! (the PE limit), every section inside the file; text sections are read
//! up to [`MAX_TEXT_SECTION`] bytes. Nothing is read before it is checked
//! against the file size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// Furthest `e_lfanew` accepted.
pub const MAX_HEADER_OFFSET: u64 = 1 << 20;
/// Most sections (the PE/COFF limit).
pub const MAX_SECTIONS: usize = 96;
/// Largest text section (`.cmdline`, `.osrel`, `.uname`) read.
pub const MAX_TEXT_SECTION: u64 = 1 << 20;

/// The COFF file header after the `PE\0\0` signature.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
struct CoffHeader {
    machine: U16,
    sections: U16,
    time: U32,
    symbols_offset: U32,
    symbols: U32,
    optional_header_size: U16,
    characteristics: U16,
}
const _: () = assert!(size_of::<CoffHeader>() == 20);

/// One section table entry.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
struct SectionHeader {
    name: [u8; 8],
    virtual_size: U32,
    virtual_address: U32,
    raw_size: U32,
    raw_offset: U32,
    relocations_offset: U32,
    line_numbers_offset: U32,
    relocations: U16,
    line_numbers: U16,
    characteristics: U32,
}
const _: () = assert!(size_of::<SectionHeader>() == 40);

/// Where one section's bytes are in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name (`.cmdline`).
    pub name: String,
    /// File offset of the bytes.
    pub offset: u64,
    /// Their length.
    pub size: u64,
}

/// An opened UKI: its file and section table.
#[derive(Debug)]
pub struct Uki {
    file: File,
    sections: Vec<Section>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_exact_at(file: &File, len: usize, offset: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| invalid(format!("{what}: {e}")))?;
    Ok(buf)
}

impl Uki {
    /// Reads and checks the headers and the section table of `file`.
    pub fn open(file: File) -> io::Result<Uki> {
        let len = file.metadata()?.len();
        let dos = read_exact_at(&file, 64, 0, "not a PE file (shorter than a DOS header)")?;
        if &dos[..2] != b"MZ" {
            return Err(invalid("not a PE file (no MZ signature)"));
        }
        let pe = u64::from(u32::from_le_bytes([
            dos[0x3c], dos[0x3d], dos[0x3e], dos[0x3f],
        ]));
        if pe > MAX_HEADER_OFFSET || pe + 24 > len {
            return Err(invalid(format!("PE header offset {pe} outside the file")));
        }
        let head = read_exact_at(&file, 24, pe, "PE header")?;
        if &head[..4] != b"PE\0\0" {
            return Err(invalid("not a PE file (no PE signature)"));
        }
        let coff = CoffHeader::read_from_bytes(&head[4..]).map_err(|_| invalid("COFF header"))?;
        let count = usize::from(coff.sections.get());
        if count > MAX_SECTIONS {
            return Err(invalid(format!(
                "{count} sections, more than {MAX_SECTIONS}"
            )));
        }
        let table = pe + 24 + u64::from(coff.optional_header_size.get());
        let table_len = count * size_of::<SectionHeader>();
        if table + table_len as u64 > len {
            return Err(invalid("section table outside the file"));
        }
        let raw = read_exact_at(&file, table_len, table, "section table")?;
        let mut sections = Vec::with_capacity(count);
        for chunk in raw.chunks_exact(size_of::<SectionHeader>()) {
            let h = SectionHeader::read_from_bytes(chunk).map_err(|_| invalid("section header"))?;
            let name_len = h.name.iter().position(|&b| b == 0).unwrap_or(8);
            let name = String::from_utf8_lossy(&h.name[..name_len]).into_owned();
            let offset = u64::from(h.raw_offset.get());
            let size = u64::from(h.virtual_size.get().min(h.raw_size.get()));
            if offset + size > len {
                return Err(invalid(format!(
                    "section {name:?} ends past the end of the file"
                )));
            }
            sections.push(Section { name, offset, size });
        }
        Ok(Uki { file, sections })
    }

    /// The sections, in table order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The bytes of section `name`, refusing more than `limit`.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(s) = self.section(name) else {
            return Ok(None);
        };
        if s.size > limit {
            return Err(invalid(format!(
                "section {name} is {} bytes, more than the {limit} accepted",
                s.size
            )));
        }
        read_exact_at(&self.file, s.size as usize, s.offset, name).map(Some)
    }

    /// A text section (`.cmdline`, `.osrel`, `.uname`) as UTF-8, without the
    /// trailing NULs and whitespace the stub tools leave.
    pub fn text(&self, name: &str) -> io::Result<Option<String>> {
        let Some(bytes) = self.read(name, MAX_TEXT_SECTION)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| invalid(format!("section {name} is not UTF-8")))?;
        Ok(Some(
            text.trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A minimal PE file with the given sections (file alignment 512).
    pub(crate) fn pe(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; 0x80];
        out[..2].copy_from_slice(b"MZ");
        out[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        out.extend_from_slice(b"PE\0\0");
        let mut coff = [0u8; 20];
        coff[..2].copy_from_slice(&0x8664u16.to_le_bytes());
        coff[2..4].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        coff[16..18].copy_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(&coff);
        out.extend_from_slice(&[0u8; 16]);
        let table_end = out.len() + 40 * sections.len();
        let mut data_at = table_end.next_multiple_of(512);
        let mut data = Vec::new();
        for (name, bytes) in sections {
            let mut h = [0u8; 40];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[8..12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            let raw = bytes.len().next_multiple_of(512);
            h[16..20].copy_from_slice(&(raw as u32).to_le_bytes());
            h[20..24].copy_from_slice(&(data_at as u32).to_le_bytes());
            out.extend_from_slice(&h);
            let mut padded = bytes.to_vec();
            padded.resize(raw, 0);
            data.extend_from_slice(&padded);
            data_at += raw;
        }
        out.resize(table_end.next_multiple_of(512), 0);
        out.extend_from_slice(&data);
        out
    }

    fn open(bytes: &[u8]) -> io::Result<Uki> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        Uki::open(f)
    }

    #[test]
    fn sections_are_read_by_name_and_bounded() {
        let image = pe(&[
            (".osrel", b"ID=debian\nVERSION_ID=12\n"),
            (".cmdline", b"composefs=ab rw\0\0\n"),
            (".linux", &[7u8; 3000]),
        ]);
        let uki = open(&image).unwrap();
        assert_eq!(uki.sections().len(), 3);
        assert_eq!(uki.text(".cmdline").unwrap().unwrap(), "composefs=ab rw");
        assert_eq!(
            uki.text(".osrel").unwrap().unwrap(),
            "ID=debian\nVERSION_ID=12"
        );
        assert_eq!(
            uki.read(".linux", 1 << 20).unwrap().unwrap(),
            vec![7u8; 3000]
        );
        assert!(uki.read(".linux", 100).is_err());
        assert_eq!(uki.read(".initrd", 100).unwrap(), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Random section tables written as PE files read back section by
        /// section: names, sizes and bytes.
        #[test]
        fn written_sections_read_back(sections in proptest::collection::vec(
            ("\\.[a-z]{1,7}", proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)),
            0..12,
        )) {
            let list: Vec<(&str, &[u8])> = sections.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
            let uki = open(&pe(&list)).unwrap();
            proptest::prop_assert_eq!(uki.sections().len(), list.len());
            for (i, (name, bytes)) in list.iter().enumerate() {
                let s = &uki.sections()[i];
                proptest::prop_assert_eq!(&s.name, name);
                proptest::prop_assert_eq!(s.size, bytes.len() as u64);
                // The first section of that name is the one found by name.
                if list.iter().position(|(n, _)| n == name) == Some(i) {
                    let back = uki.read(name, 1 << 20).unwrap().unwrap();
                    proptest::prop_assert_eq!(&back[..], *bytes);
                }
            }
        }
    }

    #[test]
    fn damaged_files_are_refused() {
        let good = pe(&[(".cmdline", b"x")]);
        assert!(open(b"MZ").is_err());
        assert!(
            open(&good[..good.len() - 600]).is_err(),
            "section past the end"
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(open(&bad).is_err());
        let mut bad = good.clone();
        bad[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(open(&bad).is_err());
        let mut bad = good.clone();
        bad[0x86..0x88].copy_from_slice(&1000u16.to_le_bytes());
        assert!(open(&bad).is_err(), "too many sections");
    }
}
