//! Bearer tokens of the Docker registry token specification: short-lived
//! ES256 JWTs naming the subject and the access granted (`access`: type,
//! name, actions), signed with a key every replica shares and verified with
//! any key of the set (so keys can be rotated: new tokens are signed with
//! the new key while the old one still verifies).
//!
//! Refresh tokens (OAuth2 `refresh_token` grant) are JWTs too, signed with
//! the same key and marked `"use": "refresh"`; an access token is never
//! accepted as a refresh token, nor the other way round.

use crate::error::AuthError;
use crate::identity::{Identity, Method};
use crate::jose::{check_claims, Expect, KeySet, SigningKey};
use crate::scope::{Actions, Resource, Scope};
use serde_json::{json, Map, Value};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock difference tolerated between replicas.
const LEEWAY: Duration = Duration::from_secs(30);
/// The `sub` of tokens for callers without credentials.
const ANONYMOUS: &str = "anonymous";
/// Most access entries one token carries (a client asks for a few).
pub const MAX_ACCESS: usize = 64;

/// How tokens are named and how long they live.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens, checked on the way back.
    pub issuer: String,
    /// `aud`: the registry service the tokens are for (the challenge's
    /// `service`).
    pub service: String,
    /// Lifetime of access tokens.
    pub ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
}

/// A token handed out at `/token`.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Seconds it is valid for.
    pub expires_in: u64,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
}

/// What a verified access token says.
#[derive(Debug, Clone)]
pub struct Bearer {
    /// Who it was issued to (method: how they proved it at `/token`);
    /// `None`: a token for callers without credentials.
    pub identity: Option<Identity>,
    /// What it grants, a ceiling for every request made with it.
    pub access: Vec<Scope>,
    /// Its `exp`, Unix seconds.
    pub expires_at: u64,
}

/// What a verified refresh token says.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// Who it was issued to.
    pub identity: Identity,
    /// The API key it was issued for, if any (checked again at each use).
    pub key_id: Option<String>,
    /// The fingerprint of the password it was issued for (see
    /// `Authenticator::stamp`), checked again at each use.
    pub stamp: Option<String>,
}

/// Issues and verifies tokens.
pub struct Tokens {
    settings: TokenSettings,
    signing: SigningKey,
    keys: RwLock<KeySet>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rfc3339(t: SystemTime) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(secs(t) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn access_claim(access: &[Scope]) -> Value {
    Value::Array(
        access
            .iter()
            .map(|s| match &s.resource {
                Resource::Catalog => {
                    json!({"type": "registry", "name": "catalog", "actions": ["*"]})
                }
                Resource::Repository(n) => {
                    json!({"type": "repository", "name": n, "actions": s.actions.names()})
                }
            })
            .collect(),
    )
}

fn parse_access(v: Option<&Value>) -> Result<Vec<Scope>, AuthError> {
    let bad = AuthError::Invalid;
    let Some(Value::Array(items)) = v else {
        return Err(bad);
    };
    if items.len() > MAX_ACCESS {
        return Err(bad);
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (Some(kind), Some(name), Some(Value::Array(actions))) = (
            item.get("type").and_then(Value::as_str),
            item.get("name").and_then(Value::as_str),
            item.get("actions"),
        ) else {
            return Err(AuthError::Invalid);
        };
        let mut set = Actions::NONE;
        for a in actions {
            set = set.union(
                a.as_str()
                    .and_then(Actions::parse_one)
                    .ok_or(AuthError::Invalid)?,
            );
        }
        let resource = match (kind, name) {
            ("registry", "catalog") => Resource::Catalog,
            ("repository", n) => Resource::Repository(n.to_string()),
            _ => return Err(AuthError::Invalid),
        };
        out.push(Scope {
            resource,
            actions: set,
        });
    }
    Ok(out)
}

fn identity_claims(id: &Identity) -> Value {
    json!({"method": id.method.as_str(), "groups": id.groups, "spiffe_id": id.spiffe_id})
}

fn identity_from(claims: &Map<String, Value>) -> Result<Identity, AuthError> {
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Invalid)?;
    let p = claims.get("pavilion").ok_or(AuthError::Invalid)?;
    let method = p
        .get("method")
        .and_then(Value::as_str)
        .and_then(Method::parse)
        .ok_or(AuthError::Invalid)?;
    let groups = match p.get("groups") {
        Some(Value::Array(g)) => g
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or(AuthError::Invalid))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(AuthError::Invalid),
    };
    Ok(Identity {
        subject: sub.to_string(),
        groups,
        method,
        spiffe_id: p
            .get("spiffe_id")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

impl Tokens {
    /// Signs with `signing`; verifies with it and with `others` (keys of
    /// other replicas or earlier keys, by `kid`).
    pub fn new(settings: TokenSettings, signing: SigningKey, others: KeySet) -> Tokens {
        let mut keys = others;
        keys.insert_signing(&signing);
        Tokens {
            settings,
            signing,
            keys: RwLock::new(keys),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Replaces the keys tokens are verified with (the signing key always
    /// stays among them).
    pub fn set_verifying_keys(&self, others: KeySet) {
        let mut keys = others;
        keys.insert_signing(&self.signing);
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
    }

    /// The public keys as a JWKS document, for other services to verify
    /// tokens with.
    pub fn jwks(&self) -> Value {
        self.keys
            .read()
            .map(|k| k.to_jwks())
            .unwrap_or_else(|_| json!({"keys": []}))
    }

    fn base_claims(&self, subject: &str, now: SystemTime, ttl: Duration) -> Map<String, Value> {
        let iat = secs(now);
        let mut c = Map::new();
        c.insert("iss".into(), json!(self.settings.issuer));
        c.insert("sub".into(), json!(subject));
        c.insert("aud".into(), json!(self.settings.service));
        c.insert("iat".into(), json!(iat));
        c.insert("nbf".into(), json!(iat.saturating_sub(LEEWAY.as_secs())));
        c.insert("exp".into(), json!(iat + ttl.as_secs()));
        c.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        c
    }

    /// An access token for `id` (`None`: a caller without credentials)
    /// granting `access` (already trimmed).
    pub fn issue(&self, id: Option<&Identity>, access: &[Scope], now: SystemTime) -> Issued {
        let subject = id.map_or(ANONYMOUS, |i| i.subject.as_str());
        let mut c = self.base_claims(subject, now, self.settings.ttl);
        c.insert("access".into(), access_claim(access));
        c.insert(
            "pavilion".into(),
            id.map_or_else(|| json!({"anonymous": true}), identity_claims),
        );
        Issued {
            token: self.signing.sign(&Value::Object(c)),
            expires_in: self.settings.ttl.as_secs(),
            issued_at: rfc3339(now),
        }
    }

    /// A refresh token for `id`, bound to the API key it proved itself
    /// with (`key_id`) or to its password's fingerprint (`stamp`).
    pub fn issue_refresh(
        &self,
        id: &Identity,
        key_id: Option<&str>,
        stamp: Option<&str>,
        now: SystemTime,
    ) -> String {
        let mut c = self.base_claims(&id.subject, now, self.settings.refresh_ttl);
        let mut p = identity_claims(id);
        p["use"] = json!("refresh");
        p["key"] = json!(key_id);
        p["stamp"] = json!(stamp);
        c.insert("pavilion".into(), p);
        self.signing.sign(&Value::Object(c))
    }

    fn verified(&self, token: &str, now: SystemTime) -> Result<Map<String, Value>, AuthError> {
        let claims = {
            let keys = self
                .keys
                .read()
                .map_err(|_| AuthError::Unavailable("token keys unavailable".into()))?;
            keys.verify(token).map_err(|_| AuthError::Invalid)?
        };
        let expect = Expect {
            issuer: self.settings.issuer.clone(),
            audiences: vec![self.settings.service.clone()],
            leeway: LEEWAY,
        };
        check_claims(&claims, &expect, now).map_err(|_| AuthError::Invalid)?;
        Ok(claims)
    }

    /// The subject and access of a bearer token: signed by a key of the
    /// set, for this service, from this issuer, within its lifetime, and
    /// not a refresh token.
    pub fn verify_access(&self, token: &str, now: SystemTime) -> Result<Bearer, AuthError> {
        let claims = self.verified(token, now)?;
        let p = claims.get("pavilion").ok_or(AuthError::Invalid)?;
        if p.get("use").is_some() {
            return Err(AuthError::Invalid);
        }
        let anonymous = p.get("anonymous") == Some(&Value::Bool(true));
        Ok(Bearer {
            identity: if anonymous {
                None
            } else {
                Some(identity_from(&claims)?)
            },
            access: parse_access(claims.get("access"))?,
            expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// The subject of a refresh token (never an access token).
    pub fn verify_refresh(&self, token: &str, now: SystemTime) -> Result<Refresh, AuthError> {
        let claims = self.verified(token, now)?;
        let p = claims.get("pavilion").ok_or(AuthError::Invalid)?;
        if p.get("use").and_then(Value::as_str) != Some("refresh") {
            return Err(AuthError::Invalid);
        }
        Ok(Refresh {
            identity: identity_from(&claims)?,
            key_id: p.get("key").and_then(Value::as_str).map(str::to_string),
            stamp: p.get("stamp").and_then(Value::as_str).map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(service: &str) -> Tokens {
        Tokens::new(
            TokenSettings {
                issuer: "pavilion".into(),
                service: service.into(),
                ttl: Duration::from_secs(300),
                refresh_ttl: Duration::from_secs(3600),
            },
            SigningKey::generate(),
            KeySet::new(),
        )
    }

    fn scopes(s: &str) -> Vec<Scope> {
        Scope::parse_list([s]).unwrap()
    }

    #[test]
    fn issued_tokens_verify_with_their_access_and_identity() {
        let t = tokens("reg");
        let mut id = Identity::new("alice", Method::Htpasswd);
        id.groups = vec!["ml".into()];
        let now = SystemTime::now();
        let issued = t.issue(
            Some(&id),
            &scopes("repository:a/b:pull,push registry:catalog:*"),
            now,
        );
        assert_eq!(issued.expires_in, 300);
        assert!(issued.issued_at.ends_with('Z'), "{}", issued.issued_at);
        let b = t.verify_access(&issued.token, now).unwrap();
        assert_eq!(b.identity, Some(id.clone()));
        let anon = t.issue(None, &scopes("repository:p:pull"), now);
        assert_eq!(t.verify_access(&anon.token, now).unwrap().identity, None);
        assert_eq!(
            b.access,
            scopes("repository:a/b:pull,push registry:catalog:*")
        );
        // Expired, not yet valid, and refresh-for-access are refused.
        assert!(t
            .verify_access(&issued.token, now + Duration::from_secs(400))
            .is_err());
        assert!(t
            .verify_access(&issued.token, now - Duration::from_secs(120))
            .is_err());
        assert!(t.verify_refresh(&issued.token, now).is_err());
        let r = t.issue_refresh(&id, Some("abc"), Some("s1"), now);
        assert!(t.verify_access(&r, now).is_err());
        let refresh = t.verify_refresh(&r, now).unwrap();
        assert_eq!(refresh.identity, id);
        assert_eq!(refresh.key_id.as_deref(), Some("abc"));
        assert_eq!(refresh.stamp.as_deref(), Some("s1"));
    }

    #[test]
    fn tokens_of_another_key_or_service_are_refused_and_replicas_share_keys() {
        let a = tokens("reg");
        let b = tokens("reg");
        let other = tokens("elsewhere");
        let id = Identity::new("alice", Method::Htpasswd);
        let now = SystemTime::now();
        let from_b = b.issue(Some(&id), &[], now).token;
        assert_eq!(
            a.verify_access(&from_b, now).unwrap_err(),
            AuthError::Invalid
        );
        // Once a knows b's key (shared through the database), it accepts.
        let mut shared = KeySet::new();
        shared.insert_signing(&b.signing);
        a.set_verifying_keys(shared);
        assert!(a.verify_access(&from_b, now).is_ok());
        assert!(a
            .verify_access(&a.issue(Some(&id), &[], now).token, now)
            .is_ok());
        // Same key, other service: refused (audience).
        let twin = Tokens::new(other.settings.clone(), a.signing.clone(), KeySet::new());
        assert!(a
            .verify_access(&twin.issue(Some(&id), &[], now).token, now)
            .is_err());
        // A tampered payload is refused.
        let t = a.issue(Some(&id), &scopes("repository:x:pull"), now).token;
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], parts[0], parts[2]);
        assert!(a.verify_access(&forged, now).is_err());
        assert!(a.verify_access("not a token", now).is_err());
    }
}
