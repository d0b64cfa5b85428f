//! The per-layer pipe of [`super::pull`]: the producer side (blob size and
//! SHA-256 checked as it streams, then decompressed by media type) and the
//! reader the splitter consumes, joined by a bounded channel whose buffers
//! are recycled.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use cfs_core::verity::push_hex;
use sha2::{Digest as _, Sha256};

use super::{PIPE_CHUNK, PullProgress};

pub(super) const CANCELLED: &str = "cancelled";

/// Reads, decompresses and sends the layer; checks the blob to its end.
/// More than `max_size` decompressed bytes is an error, raised as soon as
/// the excess is decompressed (nothing beyond one piece is produced).
pub(super) fn produce(
    mut verified: Verified<'_>,
    compression: Compression,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    recycled: &Receiver<Vec<u8>>,
    cancel: &AtomicBool,
    max_size: u64,
) -> io::Result<()> {
    let mut total = 0u64;
    {
        let mut decoder: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut verified),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                io::BufReader::with_capacity(128 << 10, &mut verified),
            )),
            // zstd's default window limit (2^27 = 128 MiB) bounds the
            // decoder's memory; frames that need more are refused.
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut verified)?),
        };
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(io::Error::other(CANCELLED));
            }
            let mut buf = recycled.try_recv().unwrap_or_default();
            buf.resize(PIPE_CHUNK, 0);
            let mut filled = 0;
            while filled < buf.len() {
                match decoder.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(decompress_error(compression, e)),
                }
            }
            if filled == 0 {
                break;
            }
            total += filled as u64;
            if total > max_size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the layer decompresses to more than the limit of {max_size} bytes \
                         (maximum layer size)"
                    ),
                ));
            }
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                // The splitter stopped (it failed); its error is reported.
                return Ok(());
            }
        }
    }
    // Whatever the decompressor left unread must still match the digest.
    io::copy(&mut verified, &mut io::sink())?;
    Ok(())
}

fn decompress_error(c: Compression, e: io::Error) -> io::Error {
    // Digest and size errors from `Verified` pass through unchanged.
    if e.get_ref().is_some_and(|i| i.is::<VerifyError>()) {
        return e;
    }
    let what = match c {
        Compression::None => "reading",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A layer's compression, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd (possibly several frames; zstd:chunked included).
    Zstd,
}

impl Compression {
    /// The compression of a layer media type, `None` if it is not a tar layer.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }
}

/// A digest or size mismatch found by [`Verified`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct VerifyError(String);

/// Counts, size-checks and hashes a blob as it is read; at its end, a size
/// or SHA-256 mismatch is an error instead of EOF.
pub(super) struct Verified<'p> {
    inner: Box<dyn Read + Send>,
    expected: String,
    size: u64,
    read: Arc<std::sync::atomic::AtomicU64>,
    n: u64,
    hasher: Sha256,
    progress: Option<&'p dyn PullProgress>,
    index: usize,
    checked: bool,
}

impl<'p> Verified<'p> {
    pub(super) fn new(
        inner: Box<dyn Read + Send>,
        expected: &str,
        size: u64,
        progress: Option<&'p dyn PullProgress>,
        index: usize,
    ) -> Self {
        Verified {
            inner,
            expected: expected.to_owned(),
            size,
            read: Arc::default(),
            n: 0,
            hasher: Sha256::new(),
            progress,
            index,
            checked: false,
        }
    }

    pub(super) fn counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.read.clone()
    }

    fn fail(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, VerifyError(msg))
    }
}

impl Read for Verified<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Read at most one byte beyond the declared size, to detect excess.
        let room = (self.size - self.n.min(self.size)).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            if !self.checked {
                self.checked = true;
                if self.n != self.size {
                    return Err(Self::fail(format!(
                        "truncated: {} of {} bytes",
                        self.n, self.size
                    )));
                }
                let mut found = String::from("sha256:");
                push_hex(&mut found, &std::mem::take(&mut self.hasher).finalize());
                if found != self.expected {
                    return Err(Self::fail(format!(
                        "digest mismatch: the content hashes to {found}"
                    )));
                }
            }
            return Ok(0);
        }
        self.n += n as u64;
        if self.n > self.size {
            return Err(Self::fail(format!(
                "more than the {} bytes the descriptor says",
                self.size
            )));
        }
        self.hasher.update(&buf[..n]);
        self.read.store(self.n, Ordering::Relaxed);
        if let Some(p) = self.progress {
            p.layer_progress(self.index, n as u64);
        }
        Ok(n)
    }
}

/// The splitter's end of the per-layer pipe.
pub(super) struct ChannelReader {
    pub(super) rx: Receiver<io::Result<Vec<u8>>>,
    pub(super) recycle: SyncSender<Vec<u8>>,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(piece)) => {
                    let done = std::mem::replace(&mut self.buf, piece);
                    if done.capacity() > 0 {
                        let _ = self.recycle.try_send(done);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sha256_digest;

    fn verified_read(data: &[u8], digest: &str, size: u64) -> io::Result<Vec<u8>> {
        let mut v = Verified::new(
            Box::new(io::Cursor::new(data.to_vec())),
            digest,
            size,
            None,
            0,
        );
        let mut out = Vec::new();
        v.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn verified_reader_checks_size_and_digest() {
        let data = b"hello world";
        let d = sha256_digest(data);
        assert_eq!(verified_read(data, &d, 11).unwrap(), data);
        let e = verified_read(data, &d, 12).unwrap_err().to_string();
        assert!(e.contains("truncated: 11 of 12"), "{e}");
        let e = verified_read(data, &d, 10).unwrap_err().to_string();
        assert!(e.contains("more than the 10 bytes"), "{e}");
        let e = verified_read(b"hello worle", &d, 11)
            .unwrap_err()
            .to_string();
        assert!(e.contains("content hashes to sha256:"), "{e}");
    }

    #[test]
    fn media_types_map_to_compression() {
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(Compression::from_media_type("application/json"), None);
    }
}
