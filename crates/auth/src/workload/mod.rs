//! Workload identity: a JWT from an issuer the operator trusts — a
//! Kubernetes service-account token, a CI system's OIDC token — given as
//! the password of Basic credentials (or handed over by a caller that
//! read it elsewhere). The token's `iss` picks the issuer; only that
//! issuer's keys may verify it, and its audience, lifetime and subject
//! are checked before it becomes an [`Identity`].

mod file;

use crate::jose::{self, check_claims, Expect, KeySet};
use crate::{AuthError, Identity, Method};
use file::KeyFile;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Clock difference tolerated between an issuer and us.
const LEEWAY: Duration = Duration::from_secs(60);
/// How often a key file is looked at for changes.
const RECHECK: Duration = Duration::from_secs(1);
/// Longest subject or group name taken from a token.
const MAX_NAME: usize = 256;
/// Most groups taken from a token.
const MAX_GROUPS: usize = 64;
/// Longest issuer label (it prefixes every subject of the issuer).
const MAX_LABEL: usize = 64;

/// One trusted issuer of workload tokens, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIssuerConfig {
    /// A short label, e.g. "k8s": subjects are `<name>:<subject>`, so one
    /// issuer's subjects can never be taken for another's or a user's.
    pub name: String,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// The token's `aud` must name one of these.
    pub audiences: Vec<String>,
    /// The claim that names the workload (usually "sub").
    pub subject_claim: String,
    /// The claim holding the workload's groups (an array of strings);
    /// `None`: no groups.
    pub groups_claim: Option<String>,
    /// A JWKS document or PEM public key on disk (re-read when it changes).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL the caller fetches and hands over with
    /// [`WorkloadIssuers::set_keys`].
    pub jwks_url: Option<String>,
}

impl Default for WorkloadIssuerConfig {
    fn default() -> Self {
        WorkloadIssuerConfig {
            name: String::new(),
            issuer: String::new(),
            audiences: Vec::new(),
            subject_claim: "sub".into(),
            groups_claim: None,
            jwks_file: None,
            jwks_url: None,
        }
    }
}

/// Where an issuer's keys come from.
enum Keys {
    File(KeyFile),
    /// Fetched by the caller; `None` until the first fetch succeeded.
    Url(String, RwLock<Option<Arc<KeySet>>>),
}

struct Issuer {
    config: WorkloadIssuerConfig,
    keys: Keys,
}

/// The trusted workload issuers, and the verification of their tokens.
pub struct WorkloadIssuers {
    issuers: Vec<Issuer>,
}

impl std::fmt::Debug for WorkloadIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .issuers
            .iter()
            .map(|i| i.config.name.as_str())
            .collect();
        f.debug_struct("WorkloadIssuers")
            .field("issuers", &names)
            .finish()
    }
}

/// Checks one issuer's configuration on its own.
fn validate(c: &WorkloadIssuerConfig) -> Result<(), String> {
    let label_ok = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
    if c.name.is_empty() || c.name.len() > MAX_LABEL || !c.name.bytes().all(label_ok) {
        return Err(format!(
            "workload issuer name {:?}: 1 to {MAX_LABEL} letters, digits, '.', '_' or '-' are required",
            c.name
        ));
    }
    let name = &c.name;
    if c.issuer.is_empty() {
        return Err(format!("workload issuer {name}: the issuer URL is empty"));
    }
    if c.audiences.is_empty() || c.audiences.iter().any(String::is_empty) {
        return Err(format!(
            "workload issuer {name}: at least one audience, none empty, is required"
        ));
    }
    if c.subject_claim.is_empty() || c.groups_claim.as_deref() == Some("") {
        return Err(format!("workload issuer {name}: a claim name is empty"));
    }
    Ok(())
}

impl WorkloadIssuers {
    /// Checks the configurations and reads the key files; an issuer whose
    /// file cannot be used is an error here (the error names the file).
    pub fn new(configs: Vec<WorkloadIssuerConfig>) -> Result<Self, String> {
        WorkloadIssuers::with_recheck(configs, RECHECK)
    }

    fn with_recheck(configs: Vec<WorkloadIssuerConfig>, recheck: Duration) -> Result<Self, String> {
        let (mut names, mut urls) = (HashSet::new(), HashSet::new());
        let mut issuers = Vec::with_capacity(configs.len());
        for config in configs {
            validate(&config)?;
            if !names.insert(config.name.clone()) {
                return Err(format!(
                    "workload issuer name {} appears twice",
                    config.name
                ));
            }
            // Two entries for one `iss` would make the choice of keys
            // depend on their order.
            if !urls.insert(config.issuer.clone()) {
                return Err(format!(
                    "workload issuer {}: issuer {} is configured twice",
                    config.name, config.issuer
                ));
            }
            let keys = match (&config.jwks_file, &config.jwks_url) {
                (Some(path), None) => Keys::File(
                    KeyFile::open(path, recheck)
                        .map_err(|e| format!("workload issuer {}: {e}", config.name))?,
                ),
                (None, Some(url)) => Keys::Url(url.clone(), RwLock::new(None)),
                _ => {
                    return Err(format!(
                        "workload issuer {}: exactly one of jwks_file and jwks_url is required",
                        config.name
                    ))
                }
            };
            issuers.push(Issuer { config, keys });
        }
        Ok(WorkloadIssuers { issuers })
    }

    /// Hands over the keys fetched from issuer `name`'s `jwks_url`,
    /// replacing the previous ones.
    pub fn set_keys(&self, name: &str, keys: KeySet) -> Result<(), String> {
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.name == name)
            .ok_or_else(|| format!("no workload issuer is named {name}"))?;
        match &issuer.keys {
            Keys::Url(_, slot) => {
                let mut slot = slot
                    .write()
                    .map_err(|_| "a lock was poisoned".to_string())?;
                *slot = Some(Arc::new(keys));
                Ok(())
            }
            Keys::File(_) => Err(format!("workload issuer {name} reads its keys from a file")),
        }
    }

    /// The issuers whose keys are fetched from a URL: (name, URL).
    pub fn urls(&self) -> Vec<(String, String)> {
        self.issuers
            .iter()
            .filter_map(|i| match &i.keys {
                Keys::Url(url, _) => Some((i.config.name.clone(), url.clone())),
                Keys::File(_) => None,
            })
            .collect()
    }

    /// Whether a password has the shape of a JWT (three base64url parts,
    /// the first starting `eyJ`, i.e. `{"`), so that a caller can tell a
    /// token from an ordinary password without trying to verify it.
    pub fn looks_like_jwt(password: &str) -> bool {
        let b64url = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let parts: Vec<&str> = password.splitn(4, '.').collect();
        password.len() <= jose::MAX_TOKEN
            && password.starts_with("eyJ")
            && parts.len() == 3
            && parts.iter().all(|p| b64url(p))
    }

    /// The identity a workload token proves.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.verify_at(token, SystemTime::now())
    }

    fn verify_at(&self, token: &str, now: SystemTime) -> Result<Identity, AuthError> {
        // The issuer is read before the signature is checked only to
        // choose whose keys check it; nothing else of it is believed yet.
        let iss = jose::unverified_claims(token)
            .ok()
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(String::from))
            .ok_or_else(|| refuse("-", "not a JWT with a string \"iss\""))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| refuse("-", "no configured issuer has the token's \"iss\""))?;
        let config = &issuer.config;
        let keys = issuer.keys()?;
        let claims = keys
            .verify(token)
            .map_err(|e| refuse(&config.name, &e.to_string()))?;
        let expect = Expect {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            leeway: LEEWAY,
        };
        check_claims(&claims, &expect, now).map_err(|e| refuse(&config.name, &e.to_string()))?;
        identity(config, &claims).map_err(|why| refuse(&config.name, why))
    }
}

impl Issuer {
    /// The keys the issuer's tokens are verified with now.
    fn keys(&self) -> Result<Arc<KeySet>, AuthError> {
        let name = &self.config.name;
        match &self.keys {
            Keys::File(file) => file
                .keys()
                .map_err(|e| AuthError::Unavailable(format!("keys of issuer {name}: {e}"))),
            Keys::Url(_, slot) => slot
                .read()
                .map_err(|_| AuthError::Unavailable("a lock was poisoned".into()))?
                .clone()
                .ok_or_else(|| {
                    AuthError::Unavailable(format!("keys of issuer {name} not fetched yet"))
                }),
        }
    }
}

/// Logs why a token was refused (the caller only learns that it was).
fn refuse(issuer: &str, why: &str) -> AuthError {
    tracing::debug!(issuer, reason = why, "workload token refused");
    AuthError::Invalid
}

/// A name taken from a token: non-empty, bounded, no control characters
/// (it ends up in logs and policy input).
fn name(value: &Value) -> Option<&str> {
    let s = value.as_str()?;
    (!s.is_empty() && s.len() <= MAX_NAME && !s.chars().any(char::is_control)).then_some(s)
}

/// The identity verified claims describe, per the issuer's mapping.
fn identity(
    config: &WorkloadIssuerConfig,
    claims: &Map<String, Value>,
) -> Result<Identity, &'static str> {
    let subject = claims.get(&config.subject_claim).and_then(name).ok_or(
        "the subject claim is missing, not a string, empty, too long or has control characters",
    )?;
    let mut groups = Vec::new();
    if let Some(claim) = &config.groups_claim {
        match claims.get(claim) {
            None => {}
            Some(Value::Array(values)) if values.len() <= MAX_GROUPS => {
                for v in values {
                    groups.push(
                        name(v)
                            .ok_or("a group is not a string of 1 to 256 bytes")?
                            .to_string(),
                    );
                }
            }
            Some(Value::Array(_)) => return Err("more than 64 groups"),
            Some(_) => return Err("the groups claim is not an array"),
        }
    }
    Ok(Identity {
        subject: format!("{}:{subject}", config.name),
        groups,
        method: Method::Workload,
        spiffe_id: None,
    })
}

#[cfg(test)]
mod tests;
