//! The HTTP requests of the `docker://` source: manifests and blobs, with
//! bounded time and memory.
//!
//! Everything goes through one reqwest client: the authentication
//! challenge and token exchange ([`super::registry_auth`]) and the content
//! requests. (oci-client reads manifest, error and token bodies whole,
//! without a size limit; it is used for reference parsing only.)
//!
//! Limits, all enforced while reading:
//! - **Idle timeout** (`timeout`, [`DEFAULT_TIMEOUT`] unless the pull
//!   options say otherwise): every wait for the network — the response
//!   headers, each piece of a body, the token exchange — fails after
//!   `timeout` without progress, so a registry that stops sending mid-body
//!   ends the pull with an error naming the request and the limit. It
//!   is an idle limit, not a limit on the whole transfer. The TCP connect
//!   is bounded by the smaller of `timeout` and 30 s.
//! - **Manifest and index bodies**: at most [`MAX_DOCUMENT`] bytes (a
//!   larger `Content-Length` is refused before reading; a body without one
//!   is cut off once it passes the limit).
//! - **Error bodies** (4xx, 5xx): at most [`MAX_ERROR_BODY`] bytes are
//!   read, for the message; token responses at most
//!   [`super::registry_auth::MAX_TOKEN_RESPONSE`].
//! - **Blobs**: streamed; more bytes than the descriptor's size is an error
//!   at the first excess byte (the pull pipeline checks the digest).
//!
//! On `401 Unauthorized` the token is fetched again once (it may have
//! expired during a long pull) and the request repeated.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use reqwest::StatusCode;
use tokio::runtime::Runtime;

use super::SourceError;
use super::oci_layout::MAX_DOCUMENT;

/// The idle timeout of registry requests unless configured (120 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest TCP connect (30 s, or the idle timeout if smaller).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of an error response body read for its message (64 KiB).
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// How requests authenticate (from the registry's challenge).
#[derive(Clone)]
enum Authz {
    None,
    Bearer(String),
    Basic(String, String),
}

/// The HTTP side of one registry source.
pub(crate) struct Http {
    client: reqwest::Client,
    auth: RegistryAuth,
    /// `http` or `https`.
    scheme: &'static str,
    timeout: Duration,
    authz: Mutex<Option<Authz>>,
    /// Why the last token request failed, for the message of a 401.
    auth_error: Mutex<Option<String>>,
}

/// `e` followed by its causes, each once (reqwest keeps the reason, such as
/// `Connection refused`, in the chain).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

impl Http {
    /// A client for the registry (plain HTTP when `insecure`).
    pub(crate) fn new(
        auth: RegistryAuth,
        insecure: bool,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            .read_timeout(timeout)
            .user_agent(concat!("cfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Other(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            client,
            auth,
            scheme: if insecure { "http" } else { "https" },
            timeout,
            authz: Mutex::new(None),
            auth_error: Mutex::new(None),
        })
    }

    /// The idle timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The HTTP client.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `SCHEME://REGISTRY/v2/REPOSITORY/KIND/NAME[?ns=…]`.
    fn url(&self, reference: &Reference, kind: &str, name: &str) -> String {
        let ns = reference
            .namespace()
            .map(|ns| format!("?ns={ns}"))
            .unwrap_or_default();
        format!(
            "{}://{}/v2/{}/{kind}/{name}{ns}",
            self.scheme,
            reference.resolve_registry(),
            reference.repository()
        )
    }

    /// The manifest URL of `reference` (by digest, else by tag).
    pub(crate) fn manifest_url(&self, reference: &Reference) -> String {
        let name = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_owned();
        self.url(reference, "manifests", &name)
    }

    /// The blob URL of `digest` in `reference`'s repository.
    pub(crate) fn blob_url(&self, reference: &Reference, digest: &str) -> String {
        self.url(reference, "blobs", digest)
    }

    /// `fut`, failing after the idle timeout.
    pub(crate) async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, reqwest::Error>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_timeout() => Err(self.stalled(what)),
            Ok(Err(e)) => Err(SourceError::Other(format!("{what}: {}", with_causes(&e)))),
            Err(_) => Err(self.stalled(what)),
        }
    }

    fn stalled(&self, what: &str) -> SourceError {
        SourceError::Other(stalled_text(what, self.timeout))
    }

    /// The authentication to use (from the registry's challenge, once, or
    /// again when `refresh`).
    async fn authz(&self, reference: &Reference, refresh: bool) -> Result<Authz, SourceError> {
        if !refresh && let Some(a) = self.authz.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(a);
        }
        let what = format!("docker://{}: authenticating", reference.whole());
        // The challenge and the token request: two round trips.
        let answer = self.challenge(reference, &self.auth, &what).await;
        let authz = match (answer, &self.auth) {
            (Ok(super::registry_auth::Answer::Token(token)), _) => Authz::Bearer(token),
            (Ok(_), RegistryAuth::Basic(user, password)) => {
                Authz::Basic(user.clone(), password.clone())
            }
            (Ok(_), _) => Authz::None,
            // The request goes out without a token, and its 401 is reported
            // with this reason.
            (Err(e), _) => {
                *self.auth_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                Authz::None
            }
        };
        *self.authz.lock().unwrap_or_else(|e| e.into_inner()) = Some(authz.clone());
        Ok(authz)
    }

    /// `GET url` (with `accept`, if any), authenticated; a response other
    /// than 200 is an error with the registry's message. `what` names the
    /// request in messages.
    pub(crate) async fn get(
        &self,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let mut refreshed = false;
        loop {
            let mut request = self.client.get(url);
            if let Some(accept) = accept {
                request = request.header(reqwest::header::ACCEPT, accept);
            }
            request = match self.authz(reference, refreshed).await? {
                Authz::None => request,
                Authz::Bearer(token) => request.bearer_auth(token),
                Authz::Basic(user, password) => request.basic_auth(user, Some(password)),
            };
            let mut response = self.timed(what, request.send()).await?;
            let status = response.status();
            if status == StatusCode::OK {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                continue;
            }
            let body = self.read_capped(&mut response, MAX_ERROR_BODY, what).await;
            let message = match body {
                Ok(body) => error_message(&body),
                Err(_) => String::new(),
            };
            let mut text = format!("{what}: ");
            if status == StatusCode::UNAUTHORIZED {
                text.push_str("Not authorized: ");
            }
            text.push_str(&format!("HTTP {status} from {url}"));
            if !message.is_empty() {
                text.push_str(&format!(": {message}"));
            }
            if status == StatusCode::UNAUTHORIZED {
                if let Some(e) = self
                    .auth_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                {
                    text.push_str(&format!(" (token request: {e})"));
                }
                if matches!(self.auth, RegistryAuth::Anonymous) {
                    text.push_str(&format!(
                        " (no credentials for {} were found; see --authfile and auth.json)",
                        reference.registry()
                    ));
                }
            }
            if status == StatusCode::NOT_FOUND {
                return Err(SourceError::NotFound(text));
            }
            return Err(SourceError::Other(text));
        }
    }

    /// The tags of `reference`'s repository (`/v2/REPO/tags/list`), at
    /// most [`MAX_DOCUMENT`] bytes of JSON; `None` when the repository is
    /// unknown to the registry.
    pub(crate) async fn tags(
        &self,
        reference: &Reference,
    ) -> Result<Option<Vec<String>>, SourceError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let url = format!(
            "{}://{}/v2/{}/tags/list",
            self.scheme,
            reference.resolve_registry(),
            reference.repository()
        );
        let what = format!("listing the tags of {}", reference.repository());
        let mut response = match self.get(reference, &url, None, &what).await {
            Ok(response) => response,
            Err(SourceError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = self
            .read_capped(&mut response, MAX_DOCUMENT as usize, &what)
            .await?;
        let list: TagList = serde_json::from_slice(&body)
            .map_err(|e| SourceError::Other(format!("{what}: {e}")))?;
        Ok(Some(list.tags.unwrap_or_default()))
    }

    /// The body of `response`, at most `limit` bytes (the rest is not read;
    /// more is an error).
    pub(crate) async fn read_capped(
        &self,
        response: &mut reqwest::Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.timed(what, response.chunk()).await? {
            if out.len() + chunk.len() > limit {
                return Err(SourceError::Other(format!(
                    "{what}: the response is larger than the {limit} bytes accepted"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The manifest (or index) document at `url`, at most [`MAX_DOCUMENT`]
    /// bytes.
    pub(crate) async fn document(
        &self,
        reference: &Reference,
        url: &str,
        accept: &str,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let mut response = self.get(reference, url, Some(accept), what).await?;
        let limit = MAX_DOCUMENT as usize;
        if let Some(length) = response.content_length()
            && length > MAX_DOCUMENT
        {
            return Err(SourceError::Other(format!(
                "{what}: the registry announces {length} bytes, more than the {limit} accepted \
                 for a manifest"
            )));
        }
        self.read_capped(&mut response, limit, what).await
    }
}

/// The message of an idle timeout.
fn stalled_text(what: &str, timeout: Duration) -> String {
    format!(
        "{what}: timed out: the registry sent nothing for {} s (idle timeout; see --timeout)",
        timeout.as_secs_f64()
    )
}

/// The message of an error body: the OCI error envelope's
/// `errors[].code: message`, else the text (one line, at most 300 chars).
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && !env.errors.is_empty()
    {
        return env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(300).collect()
}

/// A blocking reader over a blob's HTTP body: pieces are awaited one at a
/// time on the source's runtime, each within the idle timeout.
pub(crate) struct BlobReader {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) body: Body,
    pub(crate) chunk: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) received: u64,
    pub(crate) size: u64,
    pub(crate) done: bool,
    pub(crate) timeout: Duration,
    pub(crate) what: String,
}

/// Where a [`BlobReader`]'s pieces come from.
pub(crate) enum Body {
    /// An HTTP response.
    Http(reqwest::Response),
    /// Fixed pieces, for tests.
    #[cfg(test)]
    Pieces(std::collections::VecDeque<io::Result<Vec<u8>>>),
}

impl BlobReader {
    /// The next piece of the body (`None` at its end).
    fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        match &mut self.body {
            Body::Http(response) => {
                let timeout = self.timeout;
                let next = self
                    .runtime
                    .block_on(async { tokio::time::timeout(timeout, response.chunk()).await });
                match next {
                    Ok(Ok(piece)) => Ok(piece.map(|b| b.to_vec())),
                    Ok(Err(e)) if !e.is_timeout() => Err(io::Error::other(format!(
                        "{}: {}",
                        self.what,
                        with_causes(&e)
                    ))),
                    _ => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        stalled_text(&self.what, self.timeout),
                    )),
                }
            }
            #[cfg(test)]
            Body::Pieces(pieces) => pieces.pop_front().transpose(),
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let rest = &self.chunk[self.pos..];
            if !rest.is_empty() {
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.next_piece()? {
                Some(piece) => {
                    self.received += piece.len() as u64;
                    if self.received > self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "{}: the registry sent more than the expected {} bytes",
                                self.what, self.size
                            ),
                        ));
                    }
                    self.chunk = piece;
                    self.pos = 0;
                }
                None => {
                    self.done = true;
                    if self.received < self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "{}: the registry sent {} of {} bytes",
                                self.what, self.received, self.size
                            ),
                        ));
                    }
                    return Ok(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pieces: Vec<&'static [u8]>, size: u64) -> BlobReader {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        BlobReader {
            runtime: Arc::new(runtime),
            body: Body::Pieces(pieces.into_iter().map(|p| Ok(p.to_vec())).collect()),
            chunk: Vec::new(),
            pos: 0,
            received: 0,
            size,
            done: false,
            timeout: Duration::from_secs(1),
            what: "blob".into(),
        }
    }

    #[test]
    fn blob_reader_sizes() {
        let mut out = Vec::new();
        reader(vec![b"ab", b"", b"cde"], 5)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcde");
        let err = reader(vec![b"ab", b"cde"], 4)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("more than the expected 4 bytes"),
            "{err}"
        );
        let err = reader(vec![b"ab"], 4)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("sent 2 of 4 bytes"), "{err}");
    }

    #[test]
    fn error_messages() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(
            error_message(b"<html>\n  Not found\n</html>"),
            "<html> Not found </html>"
        );
        assert_eq!(error_message(&[b'x'; 1000]).len(), 300);
    }
}
