//! `/token`: the Docker registry token specification's endpoint.
//!
//! - `GET /token?service=S&scope=A&scope=B[&offline_token=true]` with Basic
//!   credentials (an htpasswd password, an API key or a workload JWT as the
//!   password), a client certificate, or nothing (anonymous access only);
//! - `POST /token` (form) with `grant_type=password` (`username`,
//!   `password`) or `grant_type=refresh_token` (`refresh_token`), `scope`
//!   space-separated, `access_type=offline` for a refresh token.
//!
//! Each action of each scope asked for is decided by the same rules as a
//! request (and recorded); the token carries only what was allowed (the
//! specification's trimmed scope), so asking for more is not an error.
//! `GET /.well-known/jwks.json` publishes the keys tokens are verified
//! with, for other services.

use super::credentials::{self, password_login, Presented, Refusal};
use super::target::Target;
use super::{refusal, Access, Caller};
use crate::authz_hook::Action;
use crate::error::ApiError;
use crate::routes::repo;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
use pavilion_auth::{Actions, Grants, Identity, Method as AuthMethod, Resource, Scope};
use std::sync::Arc;
use std::time::SystemTime;

/// Where the keys are published.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Largest form body read.
const MAX_FORM: usize = 16 << 10;
/// Most scopes one request may ask for.
const MAX_SCOPES: usize = pavilion_auth::token::MAX_ACCESS;

/// An OAuth2-style error (`{"error", "error_description"}`), as token
/// clients expect.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json(v: serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Tokens are credentials: no cache may keep them.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The parameters of a token request, from the query (GET) or form (POST).
#[derive(Default)]
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        crate::query::query_get(&self.pairs, k)
    }

    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    match state.access.as_ref().and_then(|a| a.tokens()) {
        Some(t) => json(t.jwks()),
        None => ApiError::new(
            pavilion_oci::ErrorCode::Unsupported,
            "this registry issues no tokens",
        )
        .with_status(StatusCode::NOT_FOUND)
        .into_response(),
    }
}

/// `GET` and `POST /token`.
pub async fn token(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(access) = state.access.clone() else {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "unsupported",
            "this registry does not require authentication: no token is needed",
        );
    };
    if access.tokens().is_none() {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "unsupported",
            "this registry issues no tokens",
        );
    }
    let presented = access.presented(&req);
    let post = req.method() == Method::POST;
    if !post && req.method() != Method::GET {
        return oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use GET or POST",
        );
    }
    let params = if post {
        match form(req).await {
            Ok(p) => p,
            Err(r) => return r,
        }
    } else {
        Params {
            pairs: crate::query::query_pairs(req.uri().query()),
        }
    };
    match issue(&state, &access, presented, &params, post).await {
        Ok(r) | Err(r) => r,
    }
}

async fn form(req: Request) -> Result<Params, Response> {
    let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
        .await
        .map_err(|_| {
            oauth_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                &format!("form body larger than {MAX_FORM} bytes"),
            )
        })?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "form body is not UTF-8",
        )
    })?;
    Ok(Params {
        pairs: crate::query::query_pairs(Some(text)),
    })
}

/// Who asks, and the refresh token to return, if any.
async fn who(
    state: &AppState,
    access: &Arc<Access>,
    presented: Presented,
    params: &Params,
    post: bool,
) -> Result<(Option<Caller>, Option<String>), Response> {
    let unauthorized = |r: Refusal| refusal_basic(access, r);
    if !post {
        return credentials::authenticate(state, access, presented)
            .await
            .map(|c| (c, None))
            .map_err(unauthorized);
    }
    match params.get("grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (params.get("username"), params.get("password"))
            else {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the password grant needs username and password",
                ));
            };
            password_login(state, access, user, password, "", presented.peer)
                .await
                .map(|c| (Some(c), None))
                .map_err(unauthorized)
        }
        Some("refresh_token") => {
            let Some(refresh) = params.get("refresh_token") else {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the refresh_token grant needs refresh_token",
                ));
            };
            // A refresh token is one of ours, presented: counted as bearer.
            let checked = refreshed(state, access, refresh).await;
            let result = if checked.is_ok() { "ok" } else { "denied" };
            state.metrics.auth_attempt("bearer", result);
            let caller = checked
                .map_err(|why| oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant", &why))?;
            Ok((Some(caller), Some(refresh.to_string())))
        }
        Some(other) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other:?} is not supported (password or refresh_token)"),
        )),
        None => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is missing",
        )),
    }
}

/// 401 for the token endpoint itself: its clients answer a Basic challenge.
fn refusal_basic(access: &Access, r: Refusal) -> Response {
    let mut e = refusal(access, r, None).into_response();
    if e.status() == StatusCode::UNAUTHORIZED {
        e.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"pavilion\""),
        );
    }
    e
}

/// The fingerprint of `subject`'s password now (see
/// `Authenticator::stamp`), read off the async task.
async fn password_stamp(access: &Access, subject: &str) -> Option<String> {
    let file = access.passwords.clone()?;
    let subject = subject.to_string();
    pavilion_dio::blocking::spawn(move || file.stamp(&subject))
        .await
        .ok()
        .flatten()
}

/// The caller a refresh token stands for, checked again: an API key must
/// still be live (not revoked, not expired), a user's password the one it
/// was issued for (a changed password or a removed user revokes it).
async fn refreshed(state: &AppState, access: &Access, token: &str) -> Result<Caller, String> {
    let tokens = access.tokens().ok_or("no tokens are issued")?;
    let r = tokens
        .verify_refresh(token, SystemTime::now())
        .map_err(|_| "the refresh token is not valid".to_string())?;
    let Some(id) = r.key_id else {
        let mut identity = r.identity;
        if identity.method != AuthMethod::Htpasswd {
            return Err("the refresh token is not valid".into());
        }
        let now = password_stamp(access, &identity.subject).await;
        if now.is_none() || now != r.stamp {
            return Err("the refresh token's password changed or its user is gone".into());
        }
        identity.groups = access.grants.groups_of(&identity.subject).to_vec();
        return Ok(Caller::plain(identity));
    };
    let key = state
        .meta
        .api_key(&id)
        .await
        .map_err(|e| format!("API keys cannot be read: {e}"))?
        .ok_or("the API key of this refresh token no longer exists")?;
    let now = pavilion_store::now_millis();
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t <= now) {
        return Err("the API key of this refresh token is revoked or expired".into());
    }
    Ok(Caller {
        identity: Identity::new(key.name, AuthMethod::ApiKey),
        ceiling: Some(Arc::new(Grants::parse(&key.scopes).unwrap_or_default())),
        bearer: false,
        key_id: Some(key.id),
    })
}

async fn issue(
    state: &AppState,
    access: &Arc<Access>,
    presented: Presented,
    params: &Params,
    post: bool,
) -> Result<Response, Response> {
    let tokens = access
        .tokens()
        .cloned()
        .ok_or_else(|| oauth_error(StatusCode::NOT_FOUND, "unsupported", "no tokens are issued"))?;
    if let Some(service) = params.get("service") {
        if service != tokens.settings().service {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                    "service {service:?} is not this registry's ({:?})",
                    tokens.settings().service
                ),
            ));
        }
    }
    let asked = Scope::parse_list(params.all("scope"))
        .map_err(|e| oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e))?;
    if asked.len() > MAX_SCOPES {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("more than {MAX_SCOPES} scopes"),
        ));
    }
    let (caller, refresh) = who(state, access, presented, params, post).await?;
    if caller.is_none() && access.anonymous.is_empty() {
        // Nothing is open to anonymous callers: ask for credentials, as a
        // client without them expects before it prompts for a login.
        return Err(refusal_basic(
            access,
            Refusal::Unauthenticated("authentication required".into()),
        ));
    }
    let mut granted = Vec::new();
    for scope in &asked {
        if let Some(s) = trim(state, access, caller.as_ref(), scope).await? {
            granted.push(s);
        }
    }
    let now = SystemTime::now();
    let issued = tokens.issue(caller.as_ref().map(|c| &c.identity), &granted, now);
    state.metrics.token_issued("access");
    let offline =
        params.get("offline_token") == Some("true") || params.get("access_type") == Some("offline");
    // Refresh tokens only for credentials that last: a workload's or a
    // certificate's identity is proved afresh each time.
    let refresh = match (&caller, refresh) {
        (_, Some(r)) => Some(r),
        (Some(c), None) if offline && c.identity.method == AuthMethod::ApiKey => {
            state.metrics.token_issued("refresh");
            Some(tokens.issue_refresh(&c.identity, c.key_id.as_deref(), None, now))
        }
        (Some(c), None) if offline && c.identity.method == AuthMethod::Htpasswd => {
            let stamped = password_stamp(access, &c.identity.subject).await;
            if stamped.is_some() {
                state.metrics.token_issued("refresh");
            }
            stamped.map(|stamp| tokens.issue_refresh(&c.identity, None, Some(&stamp), now))
        }
        _ => None,
    };
    let mut body = serde_json::json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    });
    if post {
        body["scope"] = serde_json::json!(granted
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "));
    }
    if let Some(r) = refresh {
        body["refresh_token"] = serde_json::json!(r);
    }
    Ok(json(body))
}

/// The part of `scope` the rules allow `caller`, action by action.
async fn trim(
    state: &AppState,
    access: &Access,
    caller: Option<&Caller>,
    scope: &Scope,
) -> Result<Option<Scope>, Response> {
    let (repository, actions) = match &scope.resource {
        Resource::Catalog => (None, vec![Action::Catalog]),
        Resource::Repository(n) => {
            repo(n).map_err(|_| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("scope {scope}: {n:?} is not a valid repository name"),
                )
            })?;
            let mut a = Vec::new();
            for (bit, action) in [
                (Actions::PULL, Action::Pull),
                (Actions::PUSH, Action::Push),
                (Actions::DELETE, Action::Delete),
            ] {
                if scope.actions.contains(bit) {
                    a.push(action);
                }
            }
            (Some(n.clone()), a)
        }
    };
    let mut allowed = Actions::NONE;
    for action in actions {
        let target = Target {
            action,
            repository: repository.clone(),
            tag: None,
            digest: None,
            route: "token",
            artifact: None,
        };
        let (decision, _) = super::verdict(state, access, caller, &target, "TOKEN")
            .await
            .map_err(IntoResponse::into_response)?;
        // In audit mode the token carries what would be denied too, as
        // requests would go through (those of callers who logged in).
        if decision.allowed || (access.audit && caller.is_some()) {
            allowed = allowed.union(action.scope_actions());
        }
    }
    Ok((!allowed.is_empty()).then(|| Scope {
        resource: scope.resource.clone(),
        actions: allowed,
    }))
}
