//! Who may do what: every request to the registry's own routes (the
//! distribution API, the decision log, policy reports) is authenticated
//! ([`credentials`]) and then authorized ([`Authorizer`], the Rego rules of
//! package `pavilion.authz`) before its route is looked at; `/token` issues
//! the bearer tokens of the Docker token specification ([`token_endpoint`]).
//!
//! What a request may do is decided from its method and path alone
//! ([`target`]), never from a header it chooses. Admission endpoints have
//! their own callers and credentials and are not behind this.

pub mod credentials;
pub mod memo;
pub mod probe;
pub mod target;
pub mod token_endpoint;

use crate::authz_hook::{Action, Authorizer, AuthzDecision, AuthzInput};
use crate::error::ApiError;
use crate::metrics::Verdict;
use crate::routes::drain_before;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use credentials::{Presented, Refusal};
use http::{header, HeaderName, Method, StatusCode};
use memo::Memo;
use pavilion_auth::{Authenticator, GrantTable, Grants, Identity, Resource, Scope, Throttle};
use pavilion_oci::ErrorCode;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use target::{Judged, Target};

/// How tokens are to be issued, as configured; completed by
/// [`Access::start`] once the server knows its address and database.
#[derive(Debug, Clone)]
pub struct TokenPlan {
    /// `iss` of the tokens.
    pub issuer: String,
    /// The challenge's realm (`None`: `<base>/token`).
    pub realm: Option<String>,
    /// `aud` of the tokens (`None`: the realm's host).
    pub service: Option<String>,
    /// Lifetime of access tokens.
    pub ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// The signing key (`None`: shared through the metadata database).
    pub key: Option<pavilion_auth::jose::SigningKey>,
}

/// The peer address of a connection, put in each request's extensions by
/// the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// An authenticated caller and what its credential itself allows.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub identity: Identity,
    /// The scopes of an API key or a token: a ceiling no grant or rule
    /// widens. `None`: the configuration's grants apply. Shared, not
    /// copied: a caller is cloned per request, and a copied glob matcher
    /// would build its match cache afresh each time.
    pub ceiling: Option<Arc<Grants>>,
    /// Whether it came with a bearer token.
    pub bearer: bool,
    /// The API key it proved itself with.
    pub key_id: Option<String>,
}

impl Caller {
    /// A caller whose grants come from the configuration.
    pub fn plain(identity: Identity) -> Caller {
        Caller {
            identity,
            ceiling: None,
            bearer: false,
            key_id: None,
        }
    }
}

/// How the registry authenticates and authorizes, as `serve` configures it.
pub struct AccessConfig {
    /// htpasswd users.
    pub passwords: Option<Arc<dyn Authenticator>>,
    /// Workload identity issuers (JWTs given as the password).
    pub workload: Option<Arc<pavilion_auth::workload::WorkloadIssuers>>,
    /// How `/token` issues tokens (`None`: it does not, and challenges
    /// are Basic).
    pub tokens: Option<TokenPlan>,
    /// The configuration's grants.
    pub grants: GrantTable,
    /// What callers without credentials may do.
    pub anonymous: Grants,
    /// The rules.
    pub authorizer: Arc<dyn Authorizer>,
    /// Record what would be denied, and let it through.
    pub audit: bool,
    /// Identify callers by their verified TLS client certificate.
    pub certificates: bool,
    /// Proxies whose forwarded client certificate header is believed.
    pub trusted_proxies: Option<pavilion_auth::certificate::TrustedProxies>,
    /// The header they forward it in.
    pub forwarded_header: HeaderName,
}

/// The configuration plus what it remembers.
pub struct Access {
    /// htpasswd users.
    pub passwords: Option<Arc<dyn Authenticator>>,
    /// Workload identity issuers.
    pub workload: Option<Arc<pavilion_auth::workload::WorkloadIssuers>>,
    /// The token issuer, once the server started ([`Access::start`]).
    tokens: OnceLock<Arc<pavilion_auth::token::Tokens>>,
    plan: std::sync::Mutex<Option<TokenPlan>>,
    /// Where clients get tokens (the challenge's realm).
    realm: OnceLock<String>,
    /// The configuration's grants.
    pub grants: GrantTable,
    /// What callers without credentials may do.
    pub anonymous: Grants,
    /// The rules.
    pub authorizer: Arc<dyn Authorizer>,
    /// Audit mode.
    pub audit: bool,
    certificates: bool,
    trusted_proxies: Option<pavilion_auth::certificate::TrustedProxies>,
    forwarded_header: HeaderName,
    /// Failed logins by user and address.
    pub throttle: Throttle,
    /// API keys recently read from the database.
    keys: Memo<Caller>,
    /// Bearer tokens recently verified (`None`: an anonymous token).
    bearers: Memo<Option<Caller>>,
}

/// How long an API key read from the database is believed: a revocation
/// reaches every replica within this.
pub const KEY_TTL: Duration = Duration::from_secs(5);
/// How long a verified bearer token is remembered (at most its own life).
const BEARER_TTL: Duration = Duration::from_secs(60);

impl Access {
    /// Assembles it.
    pub fn new(c: AccessConfig) -> Access {
        Access {
            passwords: c.passwords,
            workload: c.workload,
            tokens: OnceLock::new(),
            plan: std::sync::Mutex::new(c.tokens),
            realm: OnceLock::new(),
            grants: c.grants,
            anonymous: c.anonymous,
            authorizer: c.authorizer,
            audit: c.audit,
            certificates: c.certificates,
            trusted_proxies: c.trusted_proxies,
            forwarded_header: c.forwarded_header,
            throttle: Throttle::new(),
            keys: Memo::new(KEY_TTL),
            bearers: Memo::new(BEARER_TTL),
        }
    }

    /// The token issuer, when tokens are issued.
    pub fn tokens(&self) -> Option<&Arc<pavilion_auth::token::Tokens>> {
        self.tokens.get()
    }

    /// Sets up the token issuer once the server is bound: the realm and
    /// service default to `base` (`http(s)://host:port`); the signing key
    /// is the configured one, or the oldest key in the metadata database
    /// (made there by the first replica that needed one), so every replica
    /// signs and verifies with the same keys.
    pub async fn start(
        &self,
        meta: &pavilion_store::MetaStore,
        base: &str,
    ) -> Result<(), pavilion_store::StoreError> {
        let Some(plan) = self.plan.lock().ok().and_then(|mut p| p.take()) else {
            return Ok(());
        };
        let realm = plan.realm.unwrap_or_else(|| format!("{base}/token"));
        let service = plan.service.unwrap_or_else(|| {
            realm
                .split_once("://")
                .map_or(realm.as_str(), |(_, r)| r)
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string()
        });
        let bad = |e: pavilion_auth::jose::JoseError| {
            pavilion_store::StoreError::Backend(format!("token signing key: {e}"))
        };
        let mut others = pavilion_auth::jose::KeySet::new();
        let signing = match plan.key {
            Some(k) => k,
            None => {
                let stored = signing_keys(meta).await?;
                let mut keys = Vec::new();
                for (_, pem, _) in &stored {
                    keys.push(pavilion_auth::jose::SigningKey::from_pem(pem).map_err(bad)?);
                }
                for k in keys.iter().skip(1) {
                    others.insert_signing(k);
                }
                keys.into_iter().next().ok_or_else(|| {
                    pavilion_store::StoreError::Backend("no token signing key stored".into())
                })?
            }
        };
        let settings = pavilion_auth::token::TokenSettings {
            issuer: plan.issuer,
            service,
            ttl: plan.ttl,
            refresh_ttl: plan.refresh_ttl,
        };
        let _ = self.realm.set(realm);
        let _ = self.tokens.set(Arc::new(pavilion_auth::token::Tokens::new(
            settings, signing, others,
        )));
        Ok(())
    }

    /// What `caller` holds on `resource` before any rule: its credential's
    /// ceiling, else the configuration's grants; anonymous: the
    /// anonymous grants.
    pub fn granted(&self, caller: Option<&Caller>, resource: &Resource) -> pavilion_auth::Actions {
        match caller {
            None => self.anonymous.actions_on(resource),
            Some(c) => match &c.ceiling {
                Some(g) => g.actions_on(resource),
                None => self.grants.actions_on(&c.identity, resource),
            },
        }
    }

    /// The `WWW-Authenticate` challenge: Bearer with the token endpoint
    /// when tokens are issued, else Basic.
    pub fn challenge(&self, scope: Option<&Scope>, error: Option<&str>) -> String {
        let (Some(tokens), Some(realm)) = (self.tokens.get(), self.realm.get()) else {
            return "Basic realm=\"pavilion\"".to_string();
        };
        let mut c = format!(
            "Bearer realm=\"{realm}\",service=\"{}\"",
            tokens.settings().service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }

    /// The header a trusted proxy forwards client certificates in.
    pub fn forwarded_header(&self) -> &HeaderName {
        &self.forwarded_header
    }

    fn presented(&self, req: &Request) -> Presented {
        let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
        let forwarded = match (&self.trusted_proxies, peer) {
            (Some(proxies), Some(ip)) if proxies.contains(ip) => req
                .headers()
                .get(&self.forwarded_header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            _ => None,
        };
        Presented {
            authorization: authorization(req.headers()),
            certificate: req
                .extensions()
                .get::<crate::tls::ClientCertificate>()
                .map(|c| c.0.to_vec()),
            forwarded,
            peer,
        }
    }
}

/// The one `Authorization` header of a request. Two are refused rather
/// than one picked: a proxy in front that read the other would have
/// checked different credentials than the ones let in here.
fn authorization(headers: &http::HeaderMap) -> Option<Result<String, &'static str>> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return Some(Err("more than one Authorization header"));
    }
    Some(first.to_str().map(str::to_string).map_err(|_| "not ASCII"))
}

/// 401 with the challenge for `scope`.
pub fn unauthorized(
    access: &Access,
    detail: &str,
    scope: Option<&Scope>,
    error: Option<&str>,
) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, detail.to_string())
        .with_header(header::WWW_AUTHENTICATE, access.challenge(scope, error))
}

fn refusal(access: &Access, r: Refusal, scope: Option<&Scope>) -> ApiError {
    match r {
        Refusal::Unauthenticated(why) | Refusal::Unavailable(why) => {
            unauthorized(access, &why, scope, None)
        }
        Refusal::Throttled(wait) => {
            let secs = wait.as_secs().max(1);
            ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "too many failed logins for this user from this address: retry in {secs} s"
                ),
            )
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .with_header(header::RETRY_AFTER, secs.to_string())
        }
    }
}

/// The layer in front of the registry's own routes.
pub async fn guard(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(access) = state.access.clone() else {
        return next.run(req).await;
    };
    // Read before awaiting: a request body is not Sync, so the future must
    // not hold a reference to the request across the checks.
    let presented = access.presented(&req);
    let parsed = match req.extensions().get::<crate::metrics::layer::Parsed>() {
        Some(p) => p.0.as_ref().clone(),
        None => crate::routes::Route::parse(req.uri().path()),
    };
    let judged = target::judge_parsed(req.method(), req.uri().path(), parsed);
    let scope = match &judged {
        Judged::Act(t) => Some(t.scope()),
        _ => None,
    };
    let method = req.method().clone();
    let mount_from = mount_source(&req);
    // The checks' futures are boxed: inline they made this middleware's
    // future 3.5 KB, moved on every request, credentials or not.
    let caller = match Box::pin(credentials::authenticate(&state, &access, presented)).await {
        Ok(c) => c,
        Err(r) => return refuse(req, refusal(&access, r, scope.as_ref())).await,
    };
    let outcome = match &judged {
        Judged::Act(t) => {
            Box::pin(authorize(
                &state,
                &access,
                caller.as_ref(),
                t,
                method.as_str(),
            ))
            .await
        }
        Judged::Own => Ok(()),
        Judged::Base | Judged::Other if caller.is_none() => {
            Err(unauthorized(&access, "authentication required", None, None))
        }
        Judged::Base | Judged::Other => Ok(()),
    };
    if let Err(e) = outcome {
        return refuse(req, e).await;
    }
    // A cross-repository mount reads the source repository: without pull
    // there, the mount is dropped and the upload starts as an ordinary
    // session (the specification's answer when a mount is not possible),
    // so nothing about the other repository leaks. A mount without `from`
    // (from any repository holding the blob) is always dropped here: it
    // would read repositories the caller was never asked about.
    if let Some(from) = mount_from {
        let allowed = match from {
            Some(from) => {
                let t = Target {
                    action: Action::Pull,
                    repository: Some(from),
                    tag: None,
                    digest: None,
                    route: "mount",
                    artifact: None,
                };
                Box::pin(authorize(
                    &state,
                    &access,
                    caller.as_ref(),
                    &t,
                    method.as_str(),
                ))
                .await
                .is_ok()
            }
            None => false,
        };
        if !allowed && !strip_mount(&mut req) {
            let e = ApiError::new(
                ErrorCode::Denied,
                "this mount request cannot be turned into a plain upload: refused",
            );
            return refuse(req, e).await;
        }
    }
    if let Some(c) = caller {
        // For the access log line, written after the handler.
        if let Some(who) = req.extensions().get::<crate::metrics::layer::Who>() {
            let _ = who.0.set(c.identity.subject.clone());
        }
        req.extensions_mut().insert(c.identity.clone());
        req.extensions_mut().insert(c);
    }
    next.run(req).await
}

/// Answers `e` once what the client is still sending is read (bounded), so
/// that the refusal reaches it instead of a reset connection.
async fn refuse(req: Request, e: ApiError) -> Response {
    let mut body = req.into_body().into_data_stream();
    drain_before(&mut body, e.into_response()).await
}

/// A mount request (`POST .../blobs/uploads/?mount=...`): `Some(from)`,
/// where `from` is the source repository when one is named and valid. Keys
/// are decoded as the upload handler decodes them, so an escaped name
/// (`%6Dount`) is the same parameter here as there.
fn mount_source(req: &Request) -> Option<Option<String>> {
    if req.method() != Method::POST {
        return None;
    }
    let mut from = None;
    let mut mount = false;
    for (k, v) in crate::query::query_pairs(req.uri().query()) {
        match k.as_str() {
            "from" => from = Some(v),
            "mount" => mount = true,
            _ => {}
        }
    }
    mount.then(|| from.filter(|f| crate::routes::repo(f).is_ok()))
}

/// Removes every `mount` and `from` parameter, however escaped; false when
/// the request could not be rewritten (it is then refused, never passed on
/// with its mount).
fn strip_mount(req: &mut Request) -> bool {
    let uri = req.uri();
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| {
            let k = crate::query::decode(p.split_once('=').map_or(*p, |(k, _)| k));
            k != "mount" && k != "from"
        })
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    let Ok(p) = pq.parse() else {
        return false;
    };
    parts.path_and_query = Some(p);
    match http::Uri::from_parts(parts) {
        Ok(u) => {
            *req.uri_mut() = u;
            true
        }
        Err(_) => false,
    }
}

/// Decides `target` for `caller`: the rules see what its grants give; a
/// denial is recorded, and so is every decision the rules made afresh.
/// Anonymous callers that may not are asked to log in (401); a token that
/// lacks the scope gets `insufficient_scope` (the client asks for a new
/// token); others get 403 `DENIED` naming the rule.
pub async fn authorize(
    state: &AppState,
    access: &Access,
    caller: Option<&Caller>,
    target: &Target,
    method: &str,
) -> Result<(), ApiError> {
    let (decision, granted) = verdict(state, access, caller, target, method).await?;
    // Audit mode audits the rules, not authentication: a caller without
    // credentials is still asked to log in for what it may not do.
    if decision.allowed || (access.audit && caller.is_some()) {
        return Ok(());
    }
    let scope = target.scope();
    let Some(c) = caller else {
        return Err(unauthorized(
            access,
            &format!(
                "authentication required to {} {}",
                target.action.as_str(),
                shown(target)
            ),
            Some(&scope),
            None,
        ));
    };
    if c.bearer && !granted.contains(target.action.scope_actions()) && decision.deny.is_empty() {
        // The specification's answer (401 insufficient_scope: the client
        // asks /token again), with a detail that says when asking again
        // cannot help, so the person reading it is not sent to check a
        // password that is right.
        let mut detail = format!(
            "the token does not grant {} on {}",
            target.action.as_str(),
            shown(target)
        );
        if !a_new_token_could(access, c, target, method) {
            detail.push_str(&format!(
                ", and {} may not: no grant or rule allows it",
                c.identity.subject
            ));
        }
        return Err(unauthorized(
            access,
            &detail,
            Some(&scope),
            Some("insufficient_scope"),
        ));
    }
    let why = if decision.deny.is_empty() {
        format!(
            "{} may not {} {}: no grant or rule allows it",
            c.identity.subject,
            target.action.as_str(),
            shown(target)
        )
    } else {
        format!("denied by policy: {}", decision.deny.join("; "))
    };
    Err(ApiError::new(ErrorCode::Denied, why))
}

/// The question the rules are asked about `target` for `caller`, whose
/// credential or configuration gives `granted` there.
fn question<'a>(
    caller: Option<&'a Caller>,
    target: &'a Target,
    method: &'a str,
    granted: pavilion_auth::Actions,
) -> AuthzInput<'a> {
    AuthzInput {
        identity: caller.map(|c| &c.identity),
        bearer: caller.is_some_and(|c| c.bearer),
        action: target.action,
        repository: target.repository.as_deref(),
        tag: target.tag.as_deref(),
        digest: target.digest.as_deref(),
        method,
        route: target.route,
        granted,
        artifact: target.artifact.as_ref(),
    }
}

/// The rules' decision on `target` for `caller`, recorded when denied or
/// made afresh, with what the caller's grants give there. `Err` (403): the
/// rules could not be evaluated.
pub async fn verdict(
    state: &AppState,
    access: &Access,
    caller: Option<&Caller>,
    target: &Target,
    method: &str,
) -> Result<(AuthzDecision, pavilion_auth::Actions), ApiError> {
    let granted = access.granted(caller, &target.resource());
    let input = question(caller, target, method, granted);
    let decided = access.authorizer.decide(&input);
    // Every question counts, answered from the cache or afresh: this is
    // what the rules let through and refused at the door.
    state.metrics.policy_decision(
        "authz",
        match &decided {
            Ok(d) if d.allowed => Verdict::Allow,
            Ok(_) => Verdict::Deny,
            Err(_) => Verdict::Error,
        },
    );
    let decision = match decided {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "authorization policy failed: refusing");
            crate::authz_record::record(
                state,
                &input,
                false,
                &[format!("authorization policy failed: {e}")],
                access.audit,
            )
            .await;
            return Err(ApiError::new(
                ErrorCode::Denied,
                format!("authorization policy failed: {e}"),
            ));
        }
    };
    if decision.fresh || !decision.allowed {
        crate::authz_record::record(
            state,
            &input,
            decision.allowed,
            &decision.deny,
            access.audit,
        )
        .await;
    }
    Ok((decision, granted))
}

/// A manifest PUT, once its body is read: each tag it sets is asked as
/// `tag`, and a Notary signature as `sign`, with the artifact's media and
/// artifact type and whether a signature is stored for it, so rules can
/// keep `prod-*` tags to signed artifacts or signing to a group. The
/// request's `push` was decided before its body was read.
pub async fn authorize_put(
    state: &AppState,
    caller: Option<&Caller>,
    repository: &pavilion_oci::RepoName,
    digest: &pavilion_oci::Digest,
    tags: &[String],
    info: &pavilion_oci::ManifestInfo,
) -> Result<(), ApiError> {
    let Some(access) = &state.access else {
        return Ok(());
    };
    let signature = crate::policy_hook::NOTARY_SIGNATURE;
    let artifact_type = info.artifact_type.clone();
    if let (Some(subject), Some(signature)) = (
        &info.subject,
        artifact_type.as_deref().filter(|t| *t == signature),
    ) {
        let t = Target {
            action: Action::Sign,
            repository: Some(repository.as_str().to_string()),
            tag: None,
            digest: Some(subject.digest.to_string()),
            route: "manifest",
            artifact: Some(crate::authz_hook::Artifact {
                media_type: info.media_type.clone(),
                artifact_type: Some(signature.to_string()),
                signed: false,
            }),
        };
        authorize(state, access, caller, &t, "PUT").await?;
    }
    if tags.is_empty() {
        return Ok(());
    }
    let signed = !state
        .meta
        .referrers(repository.as_str(), digest, Some(signature), None, 1)
        .await?
        .is_empty();
    for tag in tags {
        let t = Target {
            action: Action::Tag,
            repository: Some(repository.as_str().to_string()),
            tag: Some(tag.clone()),
            digest: Some(digest.to_string()),
            route: "manifest",
            artifact: Some(crate::authz_hook::Artifact {
                media_type: info.media_type.clone(),
                artifact_type: artifact_type.clone(),
                signed,
            }),
        };
        authorize(state, access, caller, &t, "PUT").await?;
    }
    Ok(())
}

/// Whether a token asked for now could grant `target` to the caller of a
/// token that lacks it (asked of the rules without recording). An API
/// key's scopes are not in its token: assumed yes, `/token` trims by them.
fn a_new_token_could(access: &Access, c: &Caller, target: &Target, method: &str) -> bool {
    if c.identity.method == pavilion_auth::Method::ApiKey {
        return true;
    }
    let granted = access.grants.actions_on(&c.identity, &target.resource());
    let plain = Caller::plain(c.identity.clone());
    let input = question(Some(&plain), target, method, granted);
    access.authorizer.decide(&input).is_ok_and(|d| d.allowed)
}

fn shown(t: &Target) -> String {
    t.repository
        .clone()
        .unwrap_or_else(|| "the registry".into())
}

/// The token signing keys every replica shares, oldest first (ties by
/// kid), made now when there is none: replicas that race to make one all
/// pick the same one after. The token issuer signs with the first; the
/// web UI derives its secret from it.
pub async fn signing_keys(
    meta: &pavilion_store::MetaStore,
) -> Result<Vec<(String, String, i64)>, pavilion_store::StoreError> {
    if meta.signing_keys().await?.is_empty() {
        let k = pavilion_auth::jose::SigningKey::generate();
        meta.insert_signing_key_if_absent(&k.kid(), &k.to_pem())
            .await?;
    }
    let mut stored = meta.signing_keys().await?;
    stored.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    Ok(stored)
}
