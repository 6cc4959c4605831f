//! Registry authentication the way docker and ORAS do it: credentials from
//! docker's `config.json`, then whatever the registry's 401 challenge asks
//! for (Basic, or a Bearer token from its token service).

use base64::Engine as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A username and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.username)
    }
}

/// Credentials by registry host, read from a docker `config.json`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
}

/// Where docker keeps its config: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Docker stores Docker Hub under its v1 index URL.
fn normalize_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

impl Credentials {
    /// Reads `auths` from a docker config file; a missing file means none.
    /// Credential helpers (`credsStore`) are not consulted yet.
    pub fn from_docker_config(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        let mut by_host = HashMap::new();
        if let Some(auths) = v.get("auths").and_then(|a| a.as_object()) {
            for (key, entry) in auths {
                let cred = if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| {
                            format!("{}: auths.{key}.auth is not base64: {e}", path.display())
                        })?;
                    let s = String::from_utf8_lossy(&raw).into_owned();
                    let (u, p) = s.split_once(':').ok_or_else(|| {
                        format!("{}: auths.{key}.auth is not user:password", path.display())
                    })?;
                    Credential {
                        username: u.to_string(),
                        password: p.to_string(),
                    }
                } else if let Some(token) = entry.get("identitytoken").and_then(|t| t.as_str()) {
                    Credential {
                        username: "<token>".to_string(),
                        password: token.to_string(),
                    }
                } else {
                    continue;
                };
                by_host.insert(normalize_host(key), cred);
            }
        }
        Ok(Credentials { by_host })
    }

    /// Adds or replaces the credential for `host`.
    pub fn insert(&mut self, host: &str, cred: Credential) {
        self.by_host.insert(normalize_host(host), cred);
    }

    /// The credential for `host`, if any.
    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(&normalize_host(host))
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`
    Basic,
    /// `Bearer realm=...,service=...,scope=...`
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter, if any.
        service: Option<String>,
        /// `scope` parameter, if any.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let mut map = HashMap::new();
    // key="value" pairs; values may contain commas inside quotes (scopes do).
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start())
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        map.insert(key.trim().to_ascii_lowercase(), val.to_string());
        rest = next.trim_start_matches(',').trim_start();
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: map.remove("realm")?,
            service: map.remove("service"),
            scope: map.remove("scope"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(parse_challenge("Basic realm=\"r\""), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.io/token",service="reg.io",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.io/token".into(),
                service: Some("reg.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcmV0"}}}"#,
        )
        .unwrap();
        let c = Credentials::from_docker_config(&p).unwrap();
        assert_eq!(c.get("docker.io").unwrap().username, "u");
        assert_eq!(c.get("127.0.0.1:5000").unwrap().password, "s3cret");
        assert!(c.get("other.io").is_none());
        assert!(
            Credentials::from_docker_config(&dir.path().join("missing.json"))
                .unwrap()
                .get("x")
                .is_none()
        );
        std::fs::write(&p, r#"{"auths":{"h":{"auth":"!!"}}}"#).unwrap();
        assert!(Credentials::from_docker_config(&p)
            .unwrap_err()
            .contains("not base64"));
    }
}
