//! The block-level tar scanner behind [`split_tar`](super::split_tar).

use std::io::{self, ErrorKind, Read};

use cfs_core::splitstream::{SplitStreamError, SplitStreamWriter};
use cfs_core::verity::Digest;

use super::header::{BLOCK, Header, PaxInfo, cstr, is_zero_block, padding, parse_pax};
use super::{
    INLINE_CONTENT_MAX, LayerError, MAX_LONG_NAME, MAX_METADATA, MAX_PAX_HEADER,
    MAX_PENDING_EXTENSIONS, TarProblem, TarStats,
};

/// Size of the buffer used to copy trailing bytes after the end blocks.
const COPY_BUF: usize = 64 << 10;

/// The object store callback of [`split_tar`](super::split_tar).
pub(crate) type Store<'s> = dyn FnMut(&mut dyn Read, u64) -> io::Result<Digest> + 's;

/// Counts the bytes read from the input.
struct Counting<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Extension headers seen since the last real entry.
#[derive(Default)]
struct Pending {
    pax: PaxInfo,
    long_name: Option<String>,
    /// Extension data bytes so far (PAX `x` and GNU `L`/`K`).
    metadata: u64,
    /// Number of extension headers.
    count: usize,
}

impl Pending {
    /// The path of the next entry as far as the extensions say.
    fn path(&self) -> Option<&str> {
        self.pax.path.as_deref().or(self.long_name.as_deref())
    }
}

pub(crate) fn split(
    tar: impl Read,
    writer: &mut SplitStreamWriter,
    store: &mut Store<'_>,
) -> Result<TarStats, LayerError> {
    let mut s = Scanner {
        input: Counting {
            inner: tar,
            offset: 0,
        },
        writer,
        stats: TarStats::default(),
    };
    s.run(store)?;
    s.stats.bytes = s.input.offset;
    Ok(s.stats)
}

struct Scanner<'w, R> {
    input: Counting<R>,
    writer: &'w mut SplitStreamWriter,
    stats: TarStats,
}

/// Builds a [`LayerError::Tar`].
fn tar_err(offset: u64, path: Option<&str>, problem: TarProblem) -> LayerError {
    LayerError::Tar {
        offset,
        path: path.map(str::to_owned),
        problem,
    }
}

impl<R: Read> Scanner<'_, R> {
    fn run(&mut self, store: &mut Store<'_>) -> Result<(), LayerError> {
        let mut pending = Pending::default();
        let mut block = [0u8; BLOCK];
        loop {
            let mut start = self.input.offset;
            let n = self.read_full(&mut block)?;
            if n == 0 {
                // EOF at a header boundary: a clean end, even without end blocks.
                return Ok(());
            }
            if n < BLOCK {
                return Err(tar_err(start, pending.path(), TarProblem::EofInHeader));
            }
            if is_zero_block(&block) {
                let mut second = [0u8; BLOCK];
                if self.read_full(&mut second)? < BLOCK {
                    return Err(tar_err(start, pending.path(), TarProblem::EofInHeader));
                }
                self.writer.write_inline(&block);
                if is_zero_block(&second) {
                    self.writer.write_inline(&second);
                    return self.copy_rest();
                }
                // A stray zero block: the second block is the next header.
                block = second;
                start += BLOCK as u64;
            }
            self.entry(&block, start, &mut pending, store)?;
        }
    }

    /// Handles one header block at `start` and whatever data follows it.
    fn entry(
        &mut self,
        block: &[u8; BLOCK],
        start: u64,
        pending: &mut Pending,
        store: &mut Store<'_>,
    ) -> Result<(), LayerError> {
        let header = Header(block);
        let typeflag = header.typeflag();
        let path = pending.path().map_or_else(|| header.path(), str::to_owned);
        let err = |problem| tar_err(start, Some(&path), problem);
        header.verify_checksum().map_err(err)?;
        let header_size = header.size().map_err(err)?;
        self.writer.write_inline(block);
        let data_start = self.input.offset;
        match typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                let limit = if matches!(typeflag, b'L' | b'K') {
                    MAX_LONG_NAME
                } else {
                    MAX_PAX_HEADER
                };
                let total = pending.metadata.saturating_add(header_size);
                if header_size > limit || total > MAX_METADATA {
                    return Err(err(TarProblem::MetadataTooLarge {
                        size: header_size.max(total),
                        limit: limit.min(MAX_METADATA),
                    }));
                }
                if typeflag != b'g' {
                    pending.count += 1;
                    pending.metadata = total;
                    if pending.count > MAX_PENDING_EXTENSIONS {
                        return Err(err(TarProblem::TooManyExtensions));
                    }
                }
                // Bounded by the checks above.
                let mut data = Vec::new();
                (&mut self.input)
                    .take(header_size)
                    .read_to_end(&mut data)
                    .map_err(|source| LayerError::Read {
                        offset: self.input.offset,
                        source,
                    })?;
                if (data.len() as u64) < header_size {
                    return Err(tar_err(data_start, Some(&path), TarProblem::EofInEntry));
                }
                self.writer.write_inline(&data);
                self.inline_padding(header_size, &path)?;
                match typeflag {
                    b'x' => parse_pax(&data, &mut pending.pax),
                    b'g' => parse_pax(&data, &mut PaxInfo::default()),
                    b'L' => {
                        pending.long_name = Some(String::from_utf8_lossy(cstr(&data)).into_owned());
                        Ok(())
                    }
                    _ => Ok(()),
                }
                .map_err(|problem| tar_err(data_start, Some(&path), problem))?;
                Ok(())
            }
            b'S' => Err(err(TarProblem::Sparse)),
            _ => {
                let size = pending.pax.size.unwrap_or(header_size);
                *pending = Pending::default();
                self.stats.entries += 1;
                if matches!(typeflag, b'0' | 0 | b'7') && size > INLINE_CONTENT_MAX {
                    self.external(size, &path, store)?;
                } else {
                    self.inline_data(size, &path)?;
                }
                self.inline_padding(size, &path)
            }
        }
    }

    /// Stores `size` bytes of content as an external object.
    fn external(&mut self, size: u64, path: &str, store: &mut Store<'_>) -> Result<(), LayerError> {
        let offset = self.input.offset;
        let mut content = Content {
            input: &mut self.input,
            remaining: size,
            eof: false,
            failed: None,
        };
        let result = store(&mut content, size);
        let (eof, failed, remaining) = (content.eof, content.failed.take(), content.remaining);
        if eof {
            return Err(tar_err(offset, Some(path), TarProblem::EofInEntry));
        }
        if let Some(source) = failed {
            return Err(LayerError::Read {
                offset: self.input.offset,
                source,
            });
        }
        let digest = result.map_err(|source| LayerError::Store {
            path: path.to_owned(),
            offset,
            source,
        })?;
        if remaining != 0 {
            return Err(LayerError::StoreShortRead {
                path: path.to_owned(),
                offset,
                consumed: size - remaining,
                size,
            });
        }
        self.writer.add_external(&digest, size)?;
        self.stats.external_files += 1;
        self.stats.external_bytes += size;
        Ok(())
    }

    /// Copies `size` bytes of entry content inline.
    fn inline_data(&mut self, size: u64, path: &str) -> Result<(), LayerError> {
        let offset = self.input.offset;
        self.inline_from_input(size)
            .map_err(|e| e.unwrap_or_else(|| tar_err(offset, Some(path), TarProblem::EofInEntry)))
    }

    /// Copies the padding after `size` bytes of data inline.
    fn inline_padding(&mut self, size: u64, path: &str) -> Result<(), LayerError> {
        let offset = self.input.offset;
        self.inline_from_input(padding(size))
            .map_err(|e| e.unwrap_or_else(|| tar_err(offset, Some(path), TarProblem::EofInPadding)))
    }

    /// Copies `len` input bytes inline; `Err(None)` if the input ends early.
    fn inline_from_input(&mut self, len: u64) -> Result<(), Option<LayerError>> {
        match self.writer.write_inline_from(&mut self.input, len) {
            Ok(()) => Ok(()),
            Err(SplitStreamError::ShortInput { .. }) => Err(None),
            Err(SplitStreamError::Io(source)) => Err(Some(LayerError::Read {
                offset: self.input.offset,
                source,
            })),
            Err(e) => Err(Some(e.into())),
        }
    }

    /// After the end blocks: everything up to EOF is inline, unparsed.
    fn copy_rest(&mut self) -> Result<(), LayerError> {
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = self.read_full(&mut buf)?;
            self.writer.write_inline(&buf[..n]);
            if n < buf.len() {
                return Ok(());
            }
        }
    }

    /// Reads until `buf` is full or EOF; returns the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, LayerError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(LayerError::Read {
                        offset: self.input.offset,
                        source,
                    });
                }
            }
        }
        Ok(filled)
    }
}

/// The content of one entry as handed to the store: exactly `remaining`
/// bytes, an `UnexpectedEof` error if the input ends first.
struct Content<'a, R> {
    input: &'a mut Counting<R>,
    remaining: u64,
    eof: bool,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.input.read(&mut buf[..want]) {
            Ok(0) => {
                self.eof = true;
                Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "unexpected EOF reading tar entry",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let message = e.to_string();
                self.failed = Some(e);
                Err(io::Error::other(message))
            }
        }
    }
}
