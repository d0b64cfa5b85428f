//! Where [`SplitStreamWriter`](super::SplitStreamWriter) keeps the
//! compressed chunk stream: in memory up to [`SPILL_SIZE`] bytes, then in an
//! anonymous temporary file (`tempfile::tempfile()`, in `$TMPDIR`).

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, Write};

/// Compressed bytes kept in memory before they move to a temporary file.
pub const SPILL_SIZE: usize = 4 << 20;

/// A write-only buffer that moves to a temporary file when it grows.
#[derive(Debug, Default)]
pub(super) struct Spill {
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl Spill {
    /// Bytes written so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the data has moved to a temporary file.
    pub(super) fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// A reader of everything written, from the start.
    pub(super) fn into_reader(self) -> io::Result<SpillReader> {
        Ok(match self.file {
            Some(mut file) => {
                file.flush()?;
                file.rewind()?;
                SpillReader::File(file.take(self.len))
            }
            None => SpillReader::Mem(Cursor::new(self.mem)),
        })
    }
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(file) = &mut self.file {
            file.write_all(buf)?;
        } else if self.mem.len() + buf.len() > SPILL_SIZE {
            let mut file = tempfile::tempfile()?;
            file.write_all(&self.mem)?;
            file.write_all(buf)?;
            self.mem = Vec::new();
            self.file = Some(file);
        } else {
            self.mem.extend_from_slice(buf);
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads back a [`Spill`].
#[derive(Debug)]
pub(super) enum SpillReader {
    Mem(Cursor<Vec<u8>>),
    File(io::Take<File>),
}

impl Read for SpillReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SpillReader::Mem(c) => c.read(buf),
            SpillReader::File(f) => f.read(buf),
        }
    }
}
