//! A writer for the cpio "newc" format, the format of a Linux initramfs.
//!
//! ```text
//! entry   := header name NUL pad4 data pad4
//! header  := "070701" + 13 fields, each 8 uppercase-or-lowercase hex digits:
//!            ino mode uid gid nlink mtime filesize devmajor devminor
//!            rdevmajor rdevminor namesize(including NUL) check(0)
//! archive := entry* trailer     (trailer: an entry named "TRAILER!!!")
//! ```
//!
//! Padding aligns to 4 bytes counted from the start of the archive (the
//! header is 110 bytes). A symlink's data is its target. The kernel unpacks
//! an uncompressed archive directly, so no compression is applied. Every
//! entry gets mtime 0, uid/gid 0 and a sequential inode number: the same
//! input gives the same bytes.

use std::io::{self, Write};

/// File type bits of `mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// One archive member.
#[derive(Debug, Clone)]
enum Member {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// An in-memory cpio archive under construction. Paths are relative to the
/// archive root, without a leading `/` (e.g. `bin/busybox`); parents must be
/// added before their children.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    members: Vec<(String, Member)>,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory with permission bits `mode`.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.members.push((
            normalise(path),
            Member::Dir {
                mode: mode & 0o7777,
            },
        ));
        self
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> &mut Self {
        self.members.push((
            normalise(path),
            Member::File {
                mode: mode & 0o7777,
                data,
            },
        ));
        self
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.members.push((
            normalise(path),
            Member::Symlink {
                target: target.to_owned(),
            },
        ));
        self
    }

    /// Writes the archive, trailer included.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut w = Counting { inner: out, pos: 0 };
        for (i, (name, member)) in self.members.iter().enumerate() {
            let ino = u32::try_from(i + 1).map_err(|_| too_big("member count"))?;
            let (mode, data): (u32, &[u8]) = match member {
                Member::Dir { mode } => (S_IFDIR | mode, &[]),
                Member::File { mode, data } => (S_IFREG | mode, data),
                Member::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes()),
            };
            let nlink = if matches!(member, Member::Dir { .. }) {
                2
            } else {
                1
            };
            write_entry(&mut w, ino, mode, nlink, name, data)?;
        }
        write_entry(&mut w, 0, 0, 1, "TRAILER!!!", &[])?;
        Ok(())
    }

    /// The archive as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v)
            .unwrap_or_else(|e| unreachable!("writing to a Vec cannot fail: {e}"));
        v
    }
}

fn normalise(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

fn too_big(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cpio: {what} does not fit in 32 bits"),
    )
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    pos: u64,
}

impl<W: Write> Counting<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let pad = (4 - (self.pos % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }
}

fn write_entry<W: Write>(
    w: &mut Counting<'_, W>,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let namesize = u32::try_from(name.len() + 1).map_err(|_| too_big("a name"))?;
    let filesize = u32::try_from(data.len()).map_err(|_| too_big("a file size"))?;
    let fields = [ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0];
    let mut header = String::with_capacity(110);
    header.push_str("070701");
    for f in fields {
        header.push_str(&format!("{f:08x}"));
    }
    w.put(header.as_bytes())?;
    w.put(name.as_bytes())?;
    w.put(&[0])?;
    w.pad4()?;
    w.put(data)?;
    w.pad4()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a newc archive back (for the round-trip test): (name, mode, data).
    fn parse(mut b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let start = b.len();
        loop {
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = String::from_utf8(b[110..110 + namesize - 1].to_vec()).unwrap();
            assert_eq!(b[110 + namesize - 1], 0);
            let consumed = start - b.len();
            let data_at = (consumed + 110 + namesize).div_ceil(4) * 4 - consumed;
            let data = b[data_at..data_at + size].to_vec();
            let next = (consumed + data_at + size).div_ceil(4) * 4 - consumed;
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn round_trip_and_alignment() {
        let mut a = Archive::new();
        a.dir("/bin", 0o755)
            .file("bin/x", 0o755, b"12345".to_vec())
            .symlink("bin/sh", "busybox")
            .file("init", 0o700, Vec::new())
            .file("lib/odd-name.ko", 0o644, vec![7; 4097]);
        let bytes = a.to_bytes();
        assert_eq!(bytes.len() % 4, 0);
        let members = parse(&bytes);
        assert_eq!(
            members
                .iter()
                .map(|(n, m, d)| (n.as_str(), *m, d.len()))
                .collect::<Vec<_>>(),
            vec![
                ("bin", 0o040_755, 0),
                ("bin/x", 0o100_755, 5),
                ("bin/sh", 0o120_777, 7),
                ("init", 0o100_700, 0),
                ("lib/odd-name.ko", 0o100_644, 4097),
            ]
        );
        assert_eq!(members[2].2, b"busybox");
        assert_eq!(a.to_bytes(), bytes, "deterministic");
    }

    /// busybox's cpio reads our archive back (when installed).
    #[test]
    fn busybox_cpio_lists_it() {
        let Ok(out) = std::process::Command::new("busybox").arg("true").output() else {
            eprintln!("busybox not installed: skipped");
            return;
        };
        if !out.status.success() {
            return;
        }
        let mut a = Archive::new();
        a.dir("d", 0o755)
            .file("d/f", 0o644, b"data".to_vec())
            .symlink("l", "d/f");
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.cpio");
        std::fs::write(&path, a.to_bytes()).unwrap();
        let out = std::process::Command::new("busybox")
            .args(["cpio", "-t", "-F"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listing = String::from_utf8(out.stdout).unwrap();
        assert_eq!(listing.lines().collect::<Vec<_>>(), ["d", "d/f", "l"]);
    }
}
