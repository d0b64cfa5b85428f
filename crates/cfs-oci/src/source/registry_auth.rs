//! The registry's authentication challenge and the bearer-token exchange
//! (the Docker token protocol, as registries, skopeo and oci-client use it),
//! bounded in time and size.
//!
//! 1. `GET /v2/` without credentials. `200`: no authentication. `401` with
//!    `WWW-Authenticate: Bearer realm="…",service="…"`: go on. `Basic`: the
//!    content requests carry the user's Basic credentials (if any).
//! 2. `GET <realm>?service=<service>&scope=repository:<repo>:pull`, with
//!    the user's Basic credentials if there are any. The JSON answer's
//!    `token` (or `access_token`) is the bearer token.
//!
//! Limits: every wait is bounded by the idle timeout of the source; the
//! token response is read up to [`MAX_TOKEN_RESPONSE`] bytes, the `/v2/`
//! answer's body is not read at all.

use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use reqwest::StatusCode;

use super::SourceError;

/// Largest token response read (1 MiB; tokens are a few KiB).
pub(crate) const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// `bearer` or `basic` (lowercase).
    pub(crate) scheme: String,
    /// The `key="value"` parameters, keys lowercase, in order.
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` header value: a scheme, then comma-separated
/// `key=value` or `key="quoted, value"` parameters (`\` escapes inside
/// quotes). Only the first challenge is read. `None` for an empty header.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.find([' ', '\t']) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value.push_str(rest[..end].trim());
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        if !key.is_empty() {
            params.push((key, value));
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// What the challenge asks for.
pub(crate) enum Answer {
    /// No authentication needed, or Basic (the caller adds credentials).
    NoToken,
    /// A bearer token.
    Token(String),
}

/// The token answer's JSON.
#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl super::registry_http::Http {
    /// Runs the challenge and, for a bearer challenge, the token exchange
    /// for pulling `reference` (see the module docs).
    pub(crate) async fn challenge(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        what: &str,
    ) -> Result<Answer, SourceError> {
        let url = format!("{}://{}/v2/", self.scheme(), reference.resolve_registry());
        let response = self.timed(what, self.client().get(&url).send()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(Answer::NoToken);
        }
        let header = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        drop(response);
        let Some(challenge) = parse_challenge(&header) else {
            return Ok(Answer::NoToken);
        };
        if challenge.scheme != "bearer" {
            return Ok(Answer::NoToken);
        }
        let realm = challenge.param("realm").ok_or_else(|| {
            SourceError::Other(format!(
                "{what}: bearer challenge without a realm: {header:?}"
            ))
        })?;
        let scope = format!("repository:{}:pull", reference.repository());
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = challenge.param("service") {
            query.push(("service", service));
        }
        let mut request = self.client().get(realm).query(&query);
        if let RegistryAuth::Basic(user, password) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let mut response = self.timed(what, request.send()).await?;
        let status = response.status();
        let body = self
            .read_capped(&mut response, MAX_TOKEN_RESPONSE, what)
            .await?;
        if status != StatusCode::OK {
            return Err(SourceError::Other(format!(
                "{what}: HTTP {status} from the token service {realm}: {}",
                super::registry_http::error_message(&body)
            )));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            SourceError::Other(format!("{what}: the token service {realm} answered: {e}"))
        })?;
        match parsed.token.or(parsed.access_token) {
            Some(token) if !token.is_empty() => Ok(Answer::Token(token)),
            _ => Err(SourceError::Other(format!(
                "{what}: the token service {realm} answered without a token"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("registry.example"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("Registry Realm"));
        let c = parse_challenge(r#"bearer  realm=plain , service="q\"uote""#).unwrap();
        assert_eq!(c.param("realm"), Some("plain"));
        assert_eq!(c.param("service"), Some("q\"uote"));
        assert_eq!(parse_challenge("  "), None);
        // Hostile shapes end without panicking.
        for h in [
            "Bearer =",
            "Bearer realm=\"unterminated",
            "Bearer ,,,=,=\"",
            "x \\\"",
        ] {
            let _ = parse_challenge(h);
        }
    }
}
