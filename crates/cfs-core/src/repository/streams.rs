//! Split streams in a repository: `streams/<content id>` links to the stream
//! object, `streams/refs/<name…>` names a stream (a GC root).
//!
//! The content id is chosen by the writer (`oci-layer-sha256:…`,
//! `oci-config-sha256:…`, …); it is not a digest of the stream. A stream is
//! named by
//! - a name containing `/` (such as `refs/foo`) → `streams/<name>`;
//! - any other name → `streams/<name>`, else `streams/refs/<name>`.

use std::io::Write;

use crate::splitstream::{SplitStream, SplitStreamWriter};
use crate::verity::Digest;

use super::error::{RepoError, Result};
use super::{Repository, paths};

/// Largest split stream read into memory.
pub const MAX_STREAM_LEN: u64 = 1 << 30;

impl Repository {
    /// Finishes `writer`, stores the stream object (streamed from the
    /// writer's buffer or temporary file, never whole in memory), makes every object it
    /// references durable (one `syncfs`), then links `streams/<content_id>`
    /// and, with a name, `streams/refs/<ref_name>`. Returns the stream
    /// object's digest.
    pub fn write_stream(
        &self,
        content_id: &str,
        writer: SplitStreamWriter,
        ref_name: Option<&str>,
    ) -> Result<Digest> {
        self.check_writable()?;
        paths::check_name("stream", content_id, false)?;
        if let Some(name) = ref_name {
            paths::check_name("stream ref", name, true)?;
        }
        let data = writer.into_reader().map_err(|source| RepoError::Stream {
            path: content_id.into(),
            source,
        })?;
        let (digest, _) = self.ensure_object_from_reader(data)?;
        self.register_stream(content_id, &digest, ref_name)?;
        Ok(digest)
    }

    /// Links an already stored stream object as `streams/<content_id>` (after
    /// the durability barrier) and optionally names it.
    pub fn register_stream(
        &self,
        content_id: &str,
        digest: &Digest,
        ref_name: Option<&str>,
    ) -> Result<()> {
        self.check_writable()?;
        paths::check_name("stream", content_id, false)?;
        self.sync()?;
        let link = stream_path(content_id);
        self.set_link(&link, &paths::object_path(digest))?;
        if let Some(name) = ref_name {
            self.set_stream_ref(name, content_id)?;
        }
        Ok(())
    }

    /// Points `streams/refs/<name>` at `streams/<content_id>`.
    pub fn set_stream_ref(&self, name: &str, content_id: &str) -> Result<()> {
        paths::check_name("stream ref", name, true)?;
        paths::check_name("stream", content_id, false)?;
        self.set_link(
            &format!("{}/{}/{name}", paths::STREAMS, paths::REFS),
            &stream_path(content_id),
        )
    }

    /// The object digest of `streams/<content_id>`, if that stream exists.
    pub fn has_stream(&self, content_id: &str) -> Result<Option<Digest>> {
        paths::check_name("stream", content_id, false)?;
        match self.resolve_stream_link(&stream_path(content_id))? {
            Some(d) if self.has_object(&d)? => Ok(Some(d)),
            _ => Ok(None),
        }
    }

    /// Resolves a stream name (see the module docs) to its object digest.
    pub fn resolve_stream(&self, name: &str) -> Result<Digest> {
        let candidates = if name.contains('/') {
            paths::check_name("stream", name, true)?;
            vec![format!("{}/{name}", paths::STREAMS)]
        } else {
            paths::check_name("stream", name, false)?;
            vec![
                stream_path(name),
                format!("{}/{}/{name}", paths::STREAMS, paths::REFS),
            ]
        };
        for link in candidates {
            if let Some(d) = self.resolve_stream_link(&link)? {
                return Ok(d);
            }
        }
        Err(RepoError::NotFound {
            path: self.path().to_path_buf(),
            what: "stream",
            name: name.to_string(),
        })
    }

    /// Follows `link` (and a second level for refs) to `objects/XX/rest`.
    fn resolve_stream_link(&self, link: &str) -> Result<Option<Digest>> {
        let mut cur = link.to_string();
        for _ in 0..4 {
            let Some(target) = self.resolve_link(&cur)? else {
                return Ok(None);
            };
            if let Some(rest) = target.strip_prefix("objects/") {
                return Digest::from_object_path(rest)
                    .map(Some)
                    .map_err(|e| RepoError::NotFound {
                        path: self.path().to_path_buf(),
                        what: "stream",
                        name: format!("{link} ({e})"),
                    });
            }
            cur = target;
        }
        Ok(None)
    }

    /// Reads a stream object (verified like any object) into memory.
    pub fn read_stream_bytes(&self, name: &str) -> Result<(Vec<u8>, Digest)> {
        let digest = self.resolve_stream(name)?;
        let data = self.read_object(&digest, MAX_STREAM_LEN)?;
        Ok((data, digest))
    }

    /// Reassembles the stream `name` into `out` (bit-exact original bytes).
    pub fn cat_stream(&self, name: &str, out: &mut dyn Write) -> Result<u64> {
        let (data, digest) = self.read_stream_bytes(name)?;
        let path = self.display(&paths::object_path(&digest));
        let stream = SplitStream::parse(&data).map_err(|source| RepoError::Stream {
            path: path.clone(),
            source,
        })?;
        let mut open_err = None;
        let result = stream.cat(out, |d: &Digest| match self.open_object(d) {
            Ok(f) => Ok(f),
            Err(e) => {
                let msg = e.to_string();
                open_err = Some(e);
                Err(std::io::Error::other(msg))
            }
        });
        match result {
            Ok(n) => Ok(n),
            Err(source) => Err(open_err.unwrap_or(RepoError::Stream { path, source })),
        }
    }

    /// Every `streams/<content id>` (not refs), sorted.
    pub fn list_streams(&self) -> Result<Vec<super::RefEntry>> {
        self.list_links(paths::STREAMS, false)
    }

    /// Every stream ref (`streams/refs/**`), sorted.
    pub fn list_stream_refs(&self) -> Result<Vec<super::RefEntry>> {
        self.list_links(&format!("{}/{}", paths::STREAMS, paths::REFS), true)
    }
}

/// `streams/<content id>`.
pub(crate) fn stream_path(content_id: &str) -> String {
    format!("{}/{content_id}", paths::STREAMS)
}
