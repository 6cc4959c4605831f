//! Who a request comes from, from what it presents, in this order: the
//! `Authorization` header (Basic: an htpasswd password, an API key or a
//! workload JWT as the password; Bearer: a token from `/token`), else a
//! verified TLS client certificate (or one a trusted proxy forwarded),
//! else nobody (anonymous). Credentials that are presented and do not
//! hold are refused; they never fall back to anonymous.

use super::{Access, Caller};
use crate::state::AppState;
use pavilion_auth::{basic, AuthError, Grants, Identity, Method};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a request presents, gathered before anything is awaited.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The `Authorization` header (`Err`: why it cannot be read: not
    /// ASCII, or given more than once).
    pub authorization: Option<Result<String, &'static str>>,
    /// The verified client certificate of the connection (DER).
    pub certificate: Option<Vec<u8>>,
    /// A forwarded client certificate header, kept only when the peer is a
    /// trusted proxy.
    pub forwarded: Option<String>,
    /// The peer's address.
    pub peer: Option<IpAddr>,
}

/// Why a request is not let in.
#[derive(Debug)]
pub enum Refusal {
    /// Credentials missing or wrong (401).
    Unauthenticated(String),
    /// Too many failed attempts: wait this long (429).
    Throttled(Duration),
    /// Credentials could not be checked (the database or a key set out
    /// of reach): refused like wrong ones (401), counted apart.
    Unavailable(String),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Refusal {
        if let AuthError::Unavailable(why) = &e {
            tracing::error!(error = %why, "refusing a request: credentials cannot be checked");
            return Refusal::Unavailable(e.to_string());
        }
        Refusal::Unauthenticated(e.to_string())
    }
}

/// The caller `p` proves, `None` for no credentials at all.
pub async fn authenticate(
    state: &AppState,
    access: &Arc<Access>,
    p: Presented,
) -> Result<Option<Caller>, Refusal> {
    match p.authorization {
        Some(Err(why)) => {
            // Unreadable, or given twice: whatever it was, it was refused.
            state.metrics.auth_attempt("basic", "denied");
            Err(AuthError::Malformed(why).into())
        }
        Some(Ok(header)) => from_header(state, access, &header, p.peer).await,
        None => {
            let certificate = p.certificate.is_some() || p.forwarded.is_some();
            let r = from_certificate(access, p.certificate, p.forwarded);
            let method = match &r {
                Ok(Some(_)) => "mtls",
                Ok(None) => "anonymous",
                Err(_) if certificate => "mtls",
                Err(_) => "anonymous",
            };
            state.metrics.auth_attempt(method, outcome(&r));
            r
        }
    }
}

/// The `result` label of an attempt.
fn outcome<T>(r: &Result<T, Refusal>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Refusal::Throttled(_)) => "throttled",
        Err(Refusal::Unavailable(_)) => "error",
        Err(Refusal::Unauthenticated(_)) => "denied",
    }
}

async fn from_header(
    state: &AppState,
    access: &Arc<Access>,
    header: &str,
    peer: Option<IpAddr>,
) -> Result<Option<Caller>, Refusal> {
    let scheme = header.split(' ').next().unwrap_or_default();
    if scheme.eq_ignore_ascii_case("bearer") {
        let r = bearer(access, header[scheme.len()..].trim()).map_err(Into::into);
        state.metrics.auth_attempt("bearer", outcome(&r));
        return r;
    }
    let (user, password) = match basic::credentials(header) {
        Ok(pair) => pair,
        Err(e) => {
            state.metrics.auth_attempt("basic", "denied");
            return Err(e.into());
        }
    };
    password_login(state, access, &user, &password, header, peer)
        .await
        .map(Some)
}

/// Checks a user name and password (from a Basic header, or the `password`
/// grant of `/token`): an API key, a workload JWT, or an htpasswd password.
/// Repeated failures for one user from one address are slowed down.
pub async fn password_login(
    state: &AppState,
    access: &Arc<Access>,
    user: &str,
    password: &str,
    header: &str,
    peer: Option<IpAddr>,
) -> Result<Caller, Refusal> {
    let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let is_key = pavilion_auth::apikey::looks_like_key(password);
    let is_workload = access.workload.is_some()
        && pavilion_auth::workload::WorkloadIssuers::looks_like_jwt(password);
    let method = match (is_key, is_workload) {
        (true, _) => "api_key",
        (false, true) => "workload",
        _ => "basic",
    };
    if let Err(wait) = access.throttle.check(user, peer) {
        state.metrics.auth_attempt(method, "throttled");
        return Err(Refusal::Throttled(wait));
    }
    let result = if is_key {
        api_key(state, access, password).await
    } else if let (Some(w), true) = (&access.workload, is_workload) {
        let w = w.clone();
        let token = password.to_string();
        blocking(move || w.verify(&token)).await.map(Caller::plain)
    } else {
        htpasswd(access, header, user, password)
            .await
            .map(Caller::plain)
    };
    match &result {
        Ok(_) => access.throttle.succeeded(user, peer),
        Err(AuthError::Invalid) => access.throttle.failed(user, peer),
        Err(_) => {}
    }
    let result = result.map_err(Into::into);
    state.metrics.auth_attempt(method, outcome(&result));
    result
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    pavilion_dio::blocking::spawn(f)
        .await
        .map_err(|e| AuthError::Unavailable(e.to_string()))?
}

/// bcrypt is slow on purpose, so the check runs on a blocking thread,
/// unless the same credentials were accepted a moment ago.
async fn htpasswd(
    access: &Arc<Access>,
    header: &str,
    user: &str,
    password: &str,
) -> Result<Identity, AuthError> {
    let Some(file) = access.passwords.clone() else {
        return Err(AuthError::Invalid);
    };
    // The header may be a `password` grant's pair rebuilt: check the pair.
    let header = if header.is_empty() {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    } else {
        header.to_string()
    };
    if let Some(who) = file.remembered(Some(&header)) {
        return Ok(with_groups(access, who));
    }
    let who = blocking(move || file.authenticate(Some(&header))).await?;
    Ok(with_groups(access, who))
}

/// htpasswd users get their groups from the configuration.
fn with_groups(access: &Access, mut who: Identity) -> Identity {
    who.groups = access.grants.groups_of(&who.subject).to_vec();
    who
}

/// An API key: looked up by its id in the metadata database (remembered a
/// few seconds), refused when revoked or expired, its secret compared with
/// the stored hash in constant time.
async fn api_key(state: &AppState, access: &Access, presented: &str) -> Result<Caller, AuthError> {
    if let Some(c) = access.keys.get(presented) {
        return Ok(c);
    }
    let (id, secret) = pavilion_auth::apikey::parse(presented)?;
    let key = state
        .meta
        .api_key(id)
        .await
        .map_err(|e| AuthError::Unavailable(format!("API keys cannot be read: {e}")))?
        .ok_or(AuthError::Invalid)?;
    let now = pavilion_store::now_millis();
    if key.revoked_at.is_some()
        || key.expires_at.is_some_and(|t| t <= now)
        || !pavilion_auth::apikey::verify(secret, &key.hash)
    {
        return Err(AuthError::Invalid);
    }
    // Stored scopes were checked when the key was made; one that no longer
    // parses grants nothing rather than failing open.
    let ceiling = Grants::parse(&key.scopes).unwrap_or_else(|e| {
        tracing::warn!(key = %key.name, error = %e, "an API key's scopes do not parse: it grants nothing");
        Grants::none()
    });
    let caller = Caller {
        identity: Identity::new(key.name.clone(), Method::ApiKey),
        ceiling: Some(Arc::new(ceiling)),
        bearer: false,
        key_id: Some(key.id.clone()),
    };
    let left = key
        .expires_at
        .map(|t| Duration::from_millis(u64::try_from(t - now).unwrap_or(0)));
    access.keys.put(presented, caller.clone(), left);
    Ok(caller)
}

/// A token from `/token`: verified once, then remembered until it
/// expires. A token issued without credentials is an anonymous caller.
fn bearer(access: &Access, token: &str) -> Result<Option<Caller>, AuthError> {
    let Some(tokens) = access.tokens() else {
        return Err(AuthError::Malformed("bearer tokens are not issued here"));
    };
    if token.is_empty() {
        return Err(AuthError::Malformed("empty bearer token"));
    }
    if let Some(c) = access.bearers.get(token) {
        return Ok(c);
    }
    let now = SystemTime::now();
    let b = tokens.verify_access(token, now)?;
    let left = Duration::from_secs(
        b.expires_at.saturating_sub(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
    );
    let caller = b.identity.map(|identity| Caller {
        identity,
        ceiling: Some(Arc::new(Grants::from_scopes(&b.access))),
        bearer: true,
        key_id: None,
    });
    access.bearers.put(token, caller.clone(), Some(left));
    Ok(caller)
}

/// A verified client certificate, or one forwarded by a trusted proxy;
/// nothing: anonymous.
fn from_certificate(
    access: &Access,
    certificate: Option<Vec<u8>>,
    forwarded: Option<String>,
) -> Result<Option<Caller>, Refusal> {
    if let Some(value) = forwarded {
        let id = pavilion_auth::certificate::identity_from_forwarded(&value)?;
        return Ok(Some(Caller::plain(id)));
    }
    if let (Some(der), true) = (certificate, access.certificates) {
        let id = pavilion_auth::certificate::identity_from_certificate(&der)?;
        return Ok(Some(Caller::plain(id)));
    }
    Ok(None)
}
