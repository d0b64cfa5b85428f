//! `docker://` through containers-registries.conf(5): the endpoints
//! [`RegistriesConf::resolve`] gives, tried in order.
//!
//! One [`RegistrySource`] per endpoint (plain HTTP when the endpoint is
//! `insecure`, or by the usual rules). With a single endpoint that source
//! is the image source itself (named by the user's reference). With
//! mirrors, [`MirroredSource`] asks each endpoint for the manifest in turn:
//! one that fails in any way — no connection, a timeout, 404, 401, a bad
//! answer — is skipped and its error kept; the first that gives the
//! manifest serves every later manifest and blob request. When all fail,
//! the error is the primary's, followed by one line per mirror with its
//! error (`NotFound` when the primary's is). Blobs asked for before any
//! manifest come from the primary.

use std::io::Read;
use std::sync::Mutex;

use super::registries_conf::{Endpoint, RegistriesConf};
use super::registry::RegistrySource;
use super::{FetchedManifest, ImageSource, Platform, SourceError, SourceOptions};

/// Opens `docker://SPEC` (`reference` is the whole string) as `conf` maps
/// it.
pub(crate) fn open(
    reference: &str,
    spec: &str,
    conf: &RegistriesConf,
    opts: &SourceOptions,
) -> Result<Box<dyn ImageSource>, SourceError> {
    let mut endpoints = conf.resolve(spec)?;
    if endpoints.len() == 1 {
        let Endpoint { spec, insecure, .. } = endpoints.remove(0);
        let source = RegistrySource::open_endpoint(&spec, reference.to_owned(), insecure, opts)?;
        return Ok(Box::new(source));
    }
    let candidates = endpoints
        .into_iter()
        .map(|endpoint| {
            let describe = if endpoint.mirror {
                format!("docker://{}", endpoint.spec)
            } else {
                reference.to_owned()
            };
            let source =
                RegistrySource::open_endpoint(&endpoint.spec, describe, endpoint.insecure, opts)?;
            Ok(Candidate { endpoint, source })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    Ok(Box::new(MirroredSource {
        describe: reference.to_owned(),
        candidates,
        chosen: Mutex::new(None),
    }))
}

/// One endpoint and its source.
#[derive(Debug)]
struct Candidate {
    endpoint: Endpoint,
    source: RegistrySource,
}

/// Mirrors, then the primary location (last), tried in order.
#[derive(Debug)]
pub(crate) struct MirroredSource {
    describe: String,
    candidates: Vec<Candidate>,
    /// The candidate that gave the manifest.
    chosen: Mutex<Option<usize>>,
}

impl MirroredSource {
    fn chosen(&self) -> Option<usize> {
        *self.chosen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The error when every candidate failed (`failures` in candidate
    /// order, the primary last).
    fn all_failed(&self, mut failures: Vec<(usize, SourceError)>) -> SourceError {
        let Some((_, primary)) = failures.pop() else {
            return SourceError::Other(format!("{}: no registry to pull from", self.describe));
        };
        let not_found = matches!(primary, SourceError::NotFound(_));
        let mut text = primary.to_string();
        for (i, error) in failures {
            let mirror = format!("docker://{}", self.candidates[i].endpoint.spec);
            let error = error.to_string();
            let error = error
                .strip_prefix(&mirror)
                .and_then(|e| e.strip_prefix(": "))
                .unwrap_or(&error);
            text.push_str(&format!("\n  mirror {mirror}: {error}"));
        }
        if not_found {
            SourceError::NotFound(text)
        } else {
            SourceError::Other(text)
        }
    }
}

impl ImageSource for MirroredSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn manifest(&self, platform: &Platform) -> Result<FetchedManifest, SourceError> {
        if let Some(i) = self.chosen() {
            return self.candidates[i].source.manifest(platform);
        }
        let mut failures = Vec::new();
        for (i, candidate) in self.candidates.iter().enumerate() {
            match candidate.source.manifest(platform) {
                Ok(manifest) => {
                    *self.chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                    return Ok(manifest);
                }
                Err(e) => failures.push((i, e)),
            }
        }
        Err(self.all_failed(failures))
    }

    fn open_blob(&self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        let i = self
            .chosen()
            .unwrap_or(self.candidates.len().saturating_sub(1));
        let candidate = self.candidates.get(i).ok_or_else(|| {
            SourceError::Other(format!("{}: no registry to pull from", self.describe))
        })?;
        candidate.source.open_blob(digest, size)
    }
}

#[cfg(test)]
#[path = "mirrored_tests.rs"]
mod tests;
