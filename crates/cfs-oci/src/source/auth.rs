//! Registry credentials from containers-auth.json(5) files (and Docker's
//! `config.json` / `.dockercfg`).
//!
//! Files, in order (the first with a matching entry wins; missing files are
//! skipped): the explicit [`SourceOptions::auth_file`](super::SourceOptions)
//! alone when set, else `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json`,
//! `$HOME/.docker/config.json`, `$HOME/.dockercfg`.
//!
//! Keys of the `auths` object (or of the whole `.dockercfg` object) are
//! `host`, `host:port` or `host[:port]/namespace/…/repo`; the longest key
//! that is the registry or a path prefix of `registry/repository` wins.
//! Legacy keys with a scheme (`https://index.docker.io/v1/`) count as their
//! host, and `index.docker.io` / `registry-1.docker.io` as `docker.io`.
//! A value gives `auth` (base64 of `user:password`) or `username` and
//! `password`. Credential helpers (`credHelpers`, `credsStore`) and
//! identity tokens are not supported; such entries are skipped.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::SourceError;

/// Where credentials are looked for: the explicit file and the environment
/// values that place the default files (taken explicitly so tests need not
/// touch the process environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthEnv {
    /// The explicit auth file (`SourceOptions::auth_file`).
    pub(crate) auth_file: Option<PathBuf>,
    /// `$REGISTRY_AUTH_FILE`.
    pub(crate) registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub(crate) xdg_runtime_dir: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub(crate) xdg_config_home: Option<PathBuf>,
    /// `$HOME`.
    pub(crate) home: Option<PathBuf>,
}

impl AuthEnv {
    /// The process environment, with `auth_file` as the explicit file.
    pub(crate) fn from_process(auth_file: Option<PathBuf>) -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            auth_file,
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
        }
    }

    /// The files to consult, in order.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        if let Some(file) = &self.auth_file {
            return vec![file.clone()];
        }
        let mut files = Vec::new();
        files.extend(self.registry_auth_file.clone());
        if let Some(dir) = &self.xdg_runtime_dir {
            files.push(dir.join("containers/auth.json"));
        }
        let config = self
            .xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")));
        if let Some(config) = config {
            files.push(config.join("containers/auth.json"));
        }
        if let Some(home) = &self.home {
            files.push(home.join(".docker/config.json"));
            files.push(home.join(".dockercfg"));
        }
        files
    }
}

#[derive(Debug, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `docker.io` for Docker Hub's other names.
fn normalize_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// A key as compared: legacy `scheme://host/path` keys become `host`.
fn normalize_key(key: &str) -> String {
    let key = key.trim_end_matches('/');
    if let Some(rest) = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        let host = rest.split('/').next().unwrap_or(rest);
        return normalize_host(host).to_owned();
    }
    match key.split_once('/') {
        Some((host, path)) => format!("{}/{path}", normalize_host(host)),
        None => normalize_host(key).to_owned(),
    }
}

/// The keys that match `registry/repository`, longest first.
fn candidate_keys(registry: &str, repository: &str) -> Vec<String> {
    let registry = normalize_host(registry);
    let mut keys = Vec::new();
    let mut path = format!("{registry}/{repository}");
    loop {
        keys.push(path.clone());
        match path.rsplit_once('/') {
            Some((parent, _)) if parent != registry => path = parent.to_owned(),
            _ => break,
        }
    }
    keys.push(registry.to_owned());
    keys
}

/// The credentials for `repository` on `registry` (`host[:port]`), or
/// [`RegistryAuth::Anonymous`].
pub(crate) fn lookup(
    env: &AuthEnv,
    registry: &str,
    repository: &str,
) -> Result<RegistryAuth, SourceError> {
    let keys = candidate_keys(registry, repository);
    for file in env.files() {
        let text = match super::local_file::read_regular(&file, super::local_file::MAX_SMALL_FILE) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound && env.auth_file.is_none() => continue,
            Err(e) => {
                return Err(SourceError::Other(format!("reading auth file {e}")));
            }
        };
        let bad = |msg: String| SourceError::Other(format!("auth file {}: {msg}", file.display()));
        let doc: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let auths = match doc.get("auths") {
            Some(auths) => auths.clone(),
            None if file.ends_with(".dockercfg") => doc,
            None => continue,
        };
        let auths: HashMap<String, serde_json::Value> = serde_json::from_value(auths)
            .map_err(|e| bad(format!("\"auths\" is not an object: {e}")))?;
        let normalized: HashMap<String, &serde_json::Value> =
            auths.iter().map(|(k, v)| (normalize_key(k), v)).collect();
        for key in &keys {
            let Some(value) = normalized.get(key) else {
                continue;
            };
            let entry: AuthEntry = serde_json::from_value((*value).clone())
                .map_err(|e| bad(format!("entry {key}: {e}")))?;
            if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .ok_or_else(|| bad(format!("entry {key}: \"auth\" is not base64 text")))?;
                let (user, pass) = decoded.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "entry {key}: \"auth\" is not base64(user:password)"
                    ))
                })?;
                return Ok(RegistryAuth::Basic(user.to_owned(), pass.to_owned()));
            }
            if let (Some(user), Some(pass)) = (entry.username, entry.password)
                && !user.is_empty()
            {
                return Ok(RegistryAuth::Basic(user, pass));
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn basic(auth: RegistryAuth) -> Option<(String, String)> {
        match auth {
            RegistryAuth::Basic(u, p) => Some((u, p)),
            _ => None,
        }
    }

    #[test]
    fn file_order() {
        let env = AuthEnv {
            auth_file: None,
            registry_auth_file: Some("/r.json".into()),
            xdg_runtime_dir: Some("/run/u".into()),
            xdg_config_home: None,
            home: Some("/h".into()),
        };
        let files: Vec<PathBuf> = [
            "/r.json",
            "/run/u/containers/auth.json",
            "/h/.config/containers/auth.json",
            "/h/.docker/config.json",
            "/h/.dockercfg",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(env.files(), files);
        let env = AuthEnv {
            xdg_config_home: Some("/cfg".into()),
            ..env
        };
        assert_eq!(env.files()[2], PathBuf::from("/cfg/containers/auth.json"));
        let env = AuthEnv {
            auth_file: Some("/only.json".into()),
            ..env
        };
        assert_eq!(env.files(), vec![PathBuf::from("/only.json")]);
    }

    #[test]
    fn keys() {
        assert_eq!(
            candidate_keys("reg:5000", "a/b/c"),
            ["reg:5000/a/b/c", "reg:5000/a/b", "reg:5000/a", "reg:5000"]
        );
        assert_eq!(
            candidate_keys("index.docker.io", "library/busybox"),
            [
                "docker.io/library/busybox",
                "docker.io/library",
                "docker.io"
            ]
        );
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://reg:5000/v2/"), "reg:5000");
        assert_eq!(normalize_key("reg/ns/"), "reg/ns");
    }

    #[test]
    fn lookup_order_and_matching() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let runtime = dir.path().join("run");
        write(
            &runtime.join("containers/auth.json"),
            &format!(
                r#"{{"auths":{{"reg:5000/team":{{"auth":"{}"}},"reg:5000/team/app":{{"auth":"{}"}}}}}}"#,
                b64("team:t"),
                b64("app:a:with:colons")
            ),
        );
        write(
            &home.join(".config/containers/auth.json"),
            r#"{"auths":{"reg:5000":{"username":"host","password":"h"},"other":{"identitytoken":"x"}}}"#,
        );
        write(
            &home.join(".docker/config.json"),
            &format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                b64("hub:pw")
            ),
        );
        write(
            &home.join(".dockercfg"),
            &format!(r#"{{"old.example":{{"auth":"{}"}}}}"#, b64("old:o")),
        );
        let env = AuthEnv {
            xdg_runtime_dir: Some(runtime.clone()),
            home: Some(home.clone()),
            ..AuthEnv::default()
        };
        let get = |reg: &str, repo: &str| basic(lookup(&env, reg, repo).unwrap());
        let pair = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
        assert_eq!(get("reg:5000", "team/app"), pair("app", "a:with:colons"));
        assert_eq!(get("reg:5000", "team/app2"), pair("team", "t"));
        assert_eq!(
            get("reg:5000", "team/app/sub"),
            pair("app", "a:with:colons")
        );
        assert_eq!(get("reg:5000", "x/y"), pair("host", "h"));
        assert_eq!(get("reg", "x/y"), None);
        assert_eq!(get("index.docker.io", "library/busybox"), pair("hub", "pw"));
        assert_eq!(get("docker.io", "library/busybox"), pair("hub", "pw"));
        assert_eq!(get("old.example", "a"), pair("old", "o"));
        // identity tokens are skipped: anonymous
        assert_eq!(get("other", "a"), None);

        // $REGISTRY_AUTH_FILE comes first
        let first = dir.path().join("first.json");
        write(
            &first,
            &format!(
                r#"{{"auths":{{"reg:5000":{{"auth":"{}"}}}}}}"#,
                b64("first:f")
            ),
        );
        let env2 = AuthEnv {
            registry_auth_file: Some(first.clone()),
            ..env.clone()
        };
        assert_eq!(
            basic(lookup(&env2, "reg:5000", "team/app").unwrap()),
            pair("first", "f")
        );
        // an explicit file replaces the whole search
        let env3 = AuthEnv {
            auth_file: Some(first),
            ..env.clone()
        };
        assert_eq!(
            basic(lookup(&env3, "docker.io", "library/busybox").unwrap()),
            None
        );
        let env4 = AuthEnv {
            auth_file: Some(dir.path().join("missing.json")),
            ..env
        };
        let err = lookup(&env4, "reg", "a").unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        write(&file, "{not json");
        let env = AuthEnv {
            auth_file: Some(file.clone()),
            ..AuthEnv::default()
        };
        let err = lookup(&env, "reg", "a").unwrap_err().to_string();
        assert!(
            err.contains("auth.json") && err.contains("invalid JSON"),
            "{err}"
        );
        write(&file, r#"{"auths":{"reg":{"auth":"!!"}}}"#);
        let err = lookup(&env, "reg", "a").unwrap_err().to_string();
        assert!(err.contains("entry reg") && err.contains("base64"), "{err}");
        write(&file, r#"{"auths":{}}"#);
        assert!(basic(lookup(&env, "reg", "a").unwrap()).is_none());
    }
}
