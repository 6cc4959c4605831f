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

/// Credentials by registry host, read from a docker `config.json`: inline
/// `auths` entries, and the credential helpers named by `credHelpers` (per
/// host) and `credsStore` (everything else), asked only when needed.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
    helper_by_host: HashMap<String, String>,
    default_helper: Option<String>,
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
    /// Reads a docker config file; a missing file means none.
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
        let mut helper_by_host = HashMap::new();
        if let Some(helpers) = v.get("credHelpers").and_then(|a| a.as_object()) {
            for (key, name) in helpers {
                if let Some(name) = name.as_str() {
                    helper_by_host.insert(normalize_host(key), name.to_string());
                }
            }
        }
        let default_helper = v
            .get("credsStore")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Credentials {
            by_host,
            helper_by_host,
            default_helper,
        })
    }

    /// The credential helper that holds `host`'s secret, if one is configured.
    pub fn helper_for(&self, host: &str) -> Option<&str> {
        self.helper_by_host
            .get(&normalize_host(host))
            .or(self.default_helper.as_ref())
            .map(String::as_str)
    }

    /// Adds or replaces the credential for `host`.
    pub fn insert(&mut self, host: &str, cred: Credential) {
        self.by_host.insert(normalize_host(host), cred);
    }

    /// The credential for `host`, if any: a per-host helper first, then an
    /// inline entry, then the default store (docker's order). A helper that
    /// fails or knows nothing is treated as no credential.
    pub fn get(&self, host: &str) -> Option<Credential> {
        let host = normalize_host(host);
        if let Some(helper) = self.helper_by_host.get(&host) {
            return helper_get(helper, &host).ok().flatten();
        }
        if let Some(c) = self.by_host.get(&host) {
            return Some(c.clone());
        }
        let helper = self.default_helper.as_ref()?;
        helper_get(helper, &host).ok().flatten()
    }
}

/// Docker Hub's key in `auths` and in credential helpers.
pub fn server_key(host: &str) -> String {
    match normalize_host(host).as_str() {
        "docker.io" => "https://index.docker.io/v1/".to_string(),
        h => h.to_string(),
    }
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &str) -> Result<String, String> {
    use std::io::Write as _;
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{program} {action}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program} {action}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = if stdout.is_empty() {
            stderr.trim()
        } else {
            &stdout
        };
        Err(format!("{program} {action} failed: {why}"))
    }
}

/// Asks a credential helper for `host`'s credential; `None` when it has none.
pub fn helper_get(helper: &str, host: &str) -> Result<Option<Credential>, String> {
    let out = match run_helper(helper, "get", &server_key(host)) {
        Ok(o) => o,
        Err(e) if e.contains("credentials not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| format!("docker-credential-{helper} get: not JSON: {e}"))?;
    let field = |k: &str| v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_string();
    let (username, password) = (field("Username"), field("Secret"));
    if password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential { username, password }))
}

/// Stores a credential through a helper.
pub fn helper_store(helper: &str, host: &str, cred: &Credential) -> Result<(), String> {
    let input = serde_json::json!({
        "ServerURL": server_key(host),
        "Username": cred.username,
        "Secret": cred.password,
    })
    .to_string();
    run_helper(helper, "store", &input).map(|_| ())
}

/// Erases a credential from a helper.
pub fn helper_erase(helper: &str, host: &str) -> Result<(), String> {
    run_helper(helper, "erase", &server_key(host)).map(|_| ())
}

/// Writes (or, with `None`, removes) `host`'s credential in the docker config
/// file at `path`, through its credential helper when one is configured,
/// keeping every other setting. The file is replaced atomically, mode 0600.
pub fn save_credential(path: &Path, host: &str, cred: Option<&Credential>) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_string(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| format!("{}: not a JSON object", path.display()))?;
    let current = Credentials::from_docker_config(path)?;
    let key = server_key(host);
    if let Some(helper) = current.helper_for(host) {
        match cred {
            Some(c) => helper_store(helper, host, c)?,
            None => helper_erase(helper, host)?,
        }
        // The helper holds the secret; docker leaves an empty entry in auths.
        let auths = obj
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .ok_or_else(|| format!("{}: auths is not an object", path.display()))?;
        if cred.is_some() {
            auths.insert(key, serde_json::json!({}));
        } else {
            auths.retain(|k, _| normalize_host(k) != normalize_host(host));
        }
    } else {
        let auths = obj
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .ok_or_else(|| format!("{}: auths is not an object", path.display()))?;
        auths.retain(|k, _| normalize_host(k) != normalize_host(host));
        if let Some(c) = cred {
            let raw = format!("{}:{}", c.username, c.password);
            auths.insert(
                key,
                serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) }),
            );
        }
    }
    let bytes = serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?;
    write_private(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Atomically replaces `path` with `bytes`, readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_file(path, bytes, 0o600, IfExists::Replace)
}

/// What [`write_file`] does when something is already at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Replace it (the old file or symlink itself, never what it points to).
    Replace,
    /// Fail with [`std::io::ErrorKind::AlreadyExists`], leaving it alone.
    Refuse,
}

/// Writes `bytes` to `path` with permissions `mode`: whole or not at all,
/// never through a symlink or into a file that was already there (whose
/// permissions a private key would inherit). The bytes go to a new file
/// under a unique name (`O_EXCL`, so not through a symlink planted at a
/// predictable name), then take `path`'s place: by rename (`Replace`,
/// which replaces a symlink rather than following it) or by hard link
/// (`Refuse`, which fails if anything, even a dangling symlink, is at
/// `path`, with no window between a check and the write).
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    if_exists: IfExists,
) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let name = path.file_name().unwrap_or(path.as_os_str());
    let tmp = path.with_file_name(crate::layout::unique_tmp(name));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits away; the caller's mode is meant.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        match if_exists {
            IfExists::Replace => std::fs::rename(&tmp, path),
            IfExists::Refuse => {
                std::fs::hard_link(&tmp, path)?;
                std::fs::remove_file(&tmp)
            }
        }
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
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

    #[test]
    fn save_and_remove_inline_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/config.json");
        let alice = Credential {
            username: "alice".into(),
            password: "pw".into(),
        };
        save_credential(&p, "127.0.0.1:5000", Some(&alice)).unwrap();
        save_credential(&p, "docker.io", Some(&alice)).unwrap();
        let c = Credentials::from_docker_config(&p).unwrap();
        assert_eq!(c.get("127.0.0.1:5000"), Some(alice.clone()));
        assert_eq!(c.get("docker.io"), Some(alice.clone()));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("https://index.docker.io/v1/"), "{text}");
        save_credential(&p, "127.0.0.1:5000", None).unwrap();
        let c = Credentials::from_docker_config(&p).unwrap();
        assert_eq!(c.get("127.0.0.1:5000"), None);
        assert_eq!(c.get("docker.io"), Some(alice));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn write_file_never_follows_or_reuses_what_is_there() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write_file(&link, b"secret", 0o600, IfExists::Refuse).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // Replacing replaces the link itself.
        write_file(&link, b"secret", 0o600, IfExists::Replace).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!link.is_symlink());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&link), 0o600);
        // A new file gets exactly the mode asked for; no temporary is left.
        let new = dir.path().join("new.crt");
        write_file(&new, b"c", 0o644, IfExists::Refuse).unwrap();
        assert_eq!(mode(&new), 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
