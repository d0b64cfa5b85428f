//! Reading layer split streams as tar entries without re-hashing external
//! objects (their digests are in the stream).
//!
//! A layer stream (`streams/oci-layer-<diff_id>`, content type `ocilayer`,
//! see [`crate::layer`]) reassembles to the layer tar. Its chunks are read
//! with the rules of the composefs-rs 0.9 tar reader:
//!
//! - headers, extension data, padding, the data of non-regular entries and
//!   regular files of at most [`INLINE_MAX`] bytes are inline; inline
//!   chunks may be split anywhere (adjacent inline chunks are one run);
//! - the content of a regular entry (type `0`, NUL or `7`) larger than
//!   [`INLINE_MAX`] is exactly one external chunk; its digest is taken from
//!   the stream's object refs and the object is never opened;
//! - an external chunk anywhere else, or a large regular file inline, is an
//!   error naming the stream and the tar offset;
//! - the format does not record object sizes, so the entry size stands for
//!   the external chunk's size; when the whole stream has been read, the
//!   inline bytes plus those sizes must equal the stream's declared size;
//! - anything after the end-of-archive blocks is ignored (if it holds an
//!   external chunk the size check above is skipped).
//!
//! Streams are read into memory whole (at most
//! [`MAX_STREAM_LEN`](cfs_core::repository::MAX_STREAM_LEN) bytes).

use std::io::{self, Read};

use cfs_core::repository::{MAX_STREAM_LEN, Repository};
use cfs_core::splitstream::{Chunk, Chunks, ContentType, SplitStream};
use cfs_core::tree::{FileSystem, XattrFilter, transform_for_oci};
use cfs_core::verity::Digest;

use super::tar::{Expect, TarInput, TarState};
use super::{INLINE_MAX, LayerEntry, LayerMerger, MergeError};

/// Merges the layer streams (split-stream object ids, in config diff_ids
/// order) and applies [`transform_for_oci`] with `filter`: the tree
/// composefs-rs builds for the image. External file contents are taken from
/// the streams' references (never read or re-hashed).
pub fn build_tree_from_streams(
    repo: &Repository,
    layers: &[Digest],
    filter: XattrFilter,
) -> Result<FileSystem, MergeError> {
    let mut merger = LayerMerger::new();
    for layer in layers {
        for_each_stream_entry(repo, layer, &mut |entry| merger.apply(entry))?;
    }
    let mut fs = merger.finish()?;
    transform_for_oci(&mut fs, filter)?;
    Ok(fs)
}

/// Calls `f` for every entry of one layer stream (its object id), unmerged
/// (for `oci layer --dumpfile`-like tools). Stops at the first error of `f`.
pub fn for_each_stream_entry(
    repo: &Repository,
    layer: &Digest,
    f: &mut dyn FnMut(LayerEntry) -> Result<(), MergeError>,
) -> Result<(), MergeError> {
    let name = layer.to_hex();
    let data = repo
        .read_object(layer, MAX_STREAM_LEN)
        .map_err(|source| MergeError::Repo {
            stream: name.clone(),
            source: Box::new(source),
        })?;
    let split_err = |source| MergeError::SplitStream {
        stream: name.clone(),
        source,
    };
    let stream = SplitStream::parse(&data).map_err(split_err)?;
    let stream_err = |message: String| MergeError::Stream {
        stream: name.clone(),
        offset: 0,
        message,
    };
    if stream.content_type() != ContentType::OCI_LAYER {
        return Err(stream_err(format!(
            "content type is {}, expected {}",
            stream.content_type(),
            ContentType::OCI_LAYER
        )));
    }
    if stream.algorithm() != repo.algorithm() {
        return Err(stream_err(format!(
            "digests are {}, expected {} like the repository",
            stream.algorithm(),
            repo.algorithm()
        )));
    }
    let mut input = StreamInput {
        chunks: stream.chunks().map_err(split_err)?,
        stream: &name,
        buf: Vec::new(),
        pos: 0,
        external: None,
        ended: false,
        offset: 0,
        expect: Expect::Header,
        failure: None,
    };
    let mut state = TarState::default();
    let mut no_store = |_: &mut dyn Read, _: u64| -> io::Result<Digest> {
        Err(io::Error::other(
            "large file content read from a split stream",
        ))
    };
    loop {
        let entry = state
            .next_entry(&mut input, &mut no_store)
            .map_err(|e| input.failure.take().unwrap_or(e))?;
        match entry {
            Some(entry) => f(entry)?,
            None => break,
        }
    }
    input.check_total(stream.stream_size())
}

/// The chunks of one layer stream as a [`TarInput`].
struct StreamInput<'a> {
    chunks: Chunks<'a>,
    /// The stream's name for messages.
    stream: &'a str,
    /// The current inline piece and how much of it was read.
    buf: Vec<u8>,
    pos: usize,
    /// An external chunk met but not consumed.
    external: Option<Digest>,
    /// No more chunks.
    ended: bool,
    /// Tar offset of the next byte (inline bytes read plus the sizes of
    /// the external chunks consumed).
    offset: u64,
    /// What the tar reader asks for next.
    expect: Expect,
    /// The error behind the last `io::Error` returned by `read`.
    failure: Option<MergeError>,
}

/// What comes next in a stream.
enum Next {
    Inline,
    External(Digest),
    End,
}

impl StreamInput<'_> {
    fn error(&self, message: String) -> MergeError {
        MergeError::Stream {
            stream: self.stream.to_owned(),
            offset: self.offset,
            message,
        }
    }

    /// Looks at the next chunk without consuming it.
    fn peek(&mut self) -> Result<Next, MergeError> {
        loop {
            if self.pos < self.buf.len() {
                return Ok(Next::Inline);
            }
            if let Some(digest) = self.external {
                return Ok(Next::External(digest));
            }
            if self.ended {
                return Ok(Next::End);
            }
            match self.chunks.next() {
                None => self.ended = true,
                Some(Ok(Chunk::Inline(data))) => {
                    self.buf = data;
                    self.pos = 0;
                }
                Some(Ok(Chunk::External { digest, .. })) => self.external = Some(digest),
                Some(Err(source)) => {
                    self.ended = true;
                    return Err(MergeError::SplitStream {
                        stream: self.stream.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// After the tar: counts the remaining inline bytes and checks the
    /// total against the declared stream size (skipped if an external chunk
    /// follows the tar).
    fn check_total(&mut self, stream_size: u64) -> Result<(), MergeError> {
        loop {
            match self.peek()? {
                Next::Inline => {
                    self.offset += (self.buf.len() - self.pos) as u64;
                    self.pos = self.buf.len();
                }
                Next::External(_) => return Ok(()),
                Next::End => break,
            }
        }
        if self.offset != stream_size {
            return Err(self.error(format!(
                "inline bytes plus the sizes of the external files make {} bytes, \
                 but the stream declares {stream_size}",
                self.offset
            )));
        }
        Ok(())
    }
}

impl Read for StreamInput<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let next = self.peek().and_then(|next| match next {
            Next::External(_) => Err(self.error(match self.expect {
                Expect::Header => "external chunk where a tar header is expected".to_owned(),
                Expect::Data(size) => format!(
                    "external chunk in the {size} bytes of data of a non-regular \
                     or extension tar entry"
                ),
                Expect::Padding => "external chunk where tar padding is expected".to_owned(),
            })),
            other => Ok(other),
        });
        match next {
            Ok(Next::Inline) => {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                self.offset += n as u64;
                Ok(n)
            }
            Ok(_) => Ok(0),
            Err(e) => {
                let message = e.to_string();
                self.failure = Some(e);
                Err(io::Error::new(io::ErrorKind::InvalidData, message))
            }
        }
    }
}

impl TarInput for StreamInput<'_> {
    fn expect(&mut self, what: Expect) {
        self.expect = what;
    }

    fn take_external(&mut self, size: u64) -> Result<Option<Digest>, MergeError> {
        match self.peek()? {
            Next::External(_) if size <= INLINE_MAX => Err(self.error(format!(
                "split stream stores a small ({size} byte) file external"
            ))),
            Next::External(digest) => {
                self.external = None;
                self.offset += size;
                Ok(Some(digest))
            }
            Next::Inline if size > INLINE_MAX => Err(self.error(format!(
                "split stream stores a large ({size} byte) file inline"
            ))),
            Next::End if size > INLINE_MAX => Err(self.error(format!(
                "split stream ends where the content of a {size} byte file is expected"
            ))),
            Next::Inline | Next::End => Ok(None),
        }
    }
}
