//! Policy enforcement at the registry's door: the hook a manifest PUT passes
//! through before anything is stored, and the decision log it writes.
//!
//! The registry does not evaluate policies itself (it knows neither Rego nor
//! Notary): it gathers the facts a policy needs — the manifest, its config,
//! the tags being set and the Notary signatures already stored for it — and
//! asks a [`PushGate`], which `pavilion serve --policy` provides.

use crate::body::query_pairs;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header;
use pavilion_oci::{Digest, ErrorCode, ManifestInfo, RepoName};
use pavilion_store::DecisionQuery;
use std::sync::Arc;

/// Notary signature manifests carry this artifact type.
pub const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// Largest config blob read for a policy (model configs are a few KiB).
const CONFIG_LIMIT: u64 = 1 << 20;
/// Largest signature envelope read (notation's own limit is far below).
const ENVELOPE_LIMIT: u64 = 1 << 20;
/// Most signatures gathered for one manifest.
const SIGNATURE_LIMIT: i64 = 32;

/// A Notary signature stored in the repository for the manifest pushed.
#[derive(Debug, Clone)]
pub struct StoredSignature {
    /// The signature manifest's digest.
    pub digest: Digest,
    /// Its bytes and media type.
    pub manifest: Bytes,
    /// Its media type.
    pub media_type: String,
    /// The envelope (its first layer), when present and small enough.
    pub envelope: Option<Bytes>,
}

/// What a push policy is asked about.
#[derive(Debug, Clone)]
pub struct PushFacts {
    /// The repository.
    pub repository: String,
    /// The tags this PUT sets (empty for a push by digest).
    pub tags: Vec<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub manifest: Bytes,
    /// The config blob, when JSON and at most 1 MiB.
    pub config: Option<Bytes>,
    /// The registry host the client addressed (`Host`), for trust policy scopes.
    pub host: Option<String>,
    /// The authenticated user, when the request carried one.
    pub identity: Option<String>,
    /// Notary signatures already stored for this manifest.
    pub signatures: Vec<StoredSignature>,
}

/// A gate's answer.
#[derive(Debug, Clone, Default)]
pub struct GateDecision {
    /// Why the push is refused (empty: allowed).
    pub deny: Vec<String>,
    /// Warnings returned to the client.
    pub warn: Vec<String>,
    /// Facts to keep in the decision log (verification results...).
    pub detail: serde_json::Value,
}

/// Decides manifest pushes. Called on the request's task: implementations
/// are quick (a Rego evaluation and local signature checks, no network).
pub trait PushGate: Send + Sync {
    /// The decision for `facts`; an `Err` is a policy failure (refused,
    /// reported as such, never stored).
    fn decide_push(&self, facts: &PushFacts) -> Result<GateDecision, String>;

    /// Whether the gate looks at `PushFacts::signatures`; when it does not,
    /// the registry does not read them (a query and up to 64 blob reads).
    fn uses_signatures(&self) -> bool {
        true
    }
}

/// Reads the config blob when it is small JSON.
async fn config_bytes(state: &AppState, info: &ManifestInfo) -> Option<Bytes> {
    // An image manifest's first blob is its config.
    let c = info.blobs.first()?;
    if c.size > CONFIG_LIMIT || !c.media_type.ends_with("json") {
        return None;
    }
    state.blobs.read_all(&c.digest).await.ok()
}

/// The Notary signatures stored in `repo` whose subject is `digest`.
async fn signatures(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
) -> ApiResult<Vec<StoredSignature>> {
    let records = state
        .meta
        .referrers(
            repo.as_str(),
            digest,
            Some(NOTARY_SIGNATURE),
            None,
            SIGNATURE_LIMIT,
        )
        .await?;
    let mut out = Vec::new();
    for r in records {
        let Ok(manifest) = state.blobs.read_all(&r.digest).await else {
            continue;
        };
        let envelope = match ManifestInfo::parse(&manifest, Some(&r.media_type)) {
            // blobs = config then layers: the envelope is the first layer.
            Ok(info) => match info.blobs.get(1) {
                Some(l) if l.size <= ENVELOPE_LIMIT => state.blobs.read_all(&l.digest).await.ok(),
                _ => None,
            },
            Err(_) => None,
        };
        out.push(StoredSignature {
            digest: r.digest,
            manifest,
            media_type: r.media_type,
            envelope,
        });
    }
    Ok(out)
}

/// Everything the gate is told about a manifest.
#[allow(clippy::too_many_arguments)]
async fn gather(
    state: &AppState,
    gate: &dyn PushGate,
    repo: &RepoName,
    tags: &[String],
    digest: &Digest,
    info: &ManifestInfo,
    body: &Bytes,
    host: Option<String>,
) -> ApiResult<PushFacts> {
    Ok(PushFacts {
        repository: repo.to_string(),
        tags: tags.to_vec(),
        digest: digest.clone(),
        media_type: info.media_type.clone(),
        manifest: body.clone(),
        config: config_bytes(state, info).await,
        host,
        identity: None,
        signatures: if gate.uses_signatures() {
            signatures(state, repo, digest).await?
        } else {
            Vec::new()
        },
    })
}

/// The gate's decision; a policy that fails to evaluate refuses.
fn decide(gate: &dyn PushGate, facts: &PushFacts) -> GateDecision {
    gate.decide_push(facts).unwrap_or_else(|e| GateDecision {
        deny: vec![format!("policy evaluation failed: {e}")],
        ..Default::default()
    })
}

/// Passes a manifest PUT through the gate, when there is one, and records
/// the decision. `Ok(warnings)` lets it through; a denial is 403 `DENIED`
/// with the rules' messages in the detail.
#[allow(clippy::too_many_arguments)]
pub async fn check_push(
    state: &AppState,
    repo: &RepoName,
    tags: &[String],
    digest: &Digest,
    info: &ManifestInfo,
    body: &Bytes,
    host: Option<String>,
) -> ApiResult<Vec<String>> {
    let Some(gate) = state.gate.clone() else {
        return Ok(Vec::new());
    };
    let facts = gather(state, gate.as_ref(), repo, tags, digest, info, body, host).await?;
    let decision = decide(gate.as_ref(), &facts);
    let allowed = decision.deny.is_empty();
    let mut detail = serde_json::json!({ "digest": digest.to_string(), "tags": tags });
    if !decision.detail.is_null() {
        detail["facts"] = decision.detail.clone();
    }
    let subject = format!("{repo}@{digest}");
    if let Err(e) = state
        .meta
        .record_decision(
            "push",
            Some(repo.as_str()),
            &subject,
            allowed,
            &decision.deny,
            &decision.warn,
            &detail,
        )
        .await
    {
        // The decision still stands; a log that cannot be written is the
        // operator's problem, not the client's.
        tracing::error!(error = %e, "could not record a policy decision");
    }
    if allowed {
        Ok(decision.warn)
    } else {
        tracing::info!(%subject, deny = ?decision.deny, "push denied by policy");
        Err(ApiError::new(
            ErrorCode::Denied,
            format!("denied by policy: {}", decision.deny.join("; ")),
        ))
    }
}

/// `GET /pavilion/v1/policy/<name>/manifests/<reference>`: the push rules
/// evaluated now for a stored manifest (for a tag, as if that tag were set
/// again), so a tag guard's verdict can be queried after the fact: a
/// signature that expired or a certificate removed from the trust store
/// shows here. Nothing is recorded or changed.
pub async fn policy_report(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    headers: http::HeaderMap,
) -> Response {
    let result: ApiResult = async {
        let Some(gate) = state.gate.clone() else {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                "no push policy is configured (serve --policy)",
            )
            .with_status(http::StatusCode::NOT_FOUND));
        };
        let (name, reference) = rest.rsplit_once("/manifests/").ok_or_else(|| {
            ApiError::new(
                ErrorCode::NameInvalid,
                "expected /pavilion/v1/policy/<name>/manifests/<reference>",
            )
            .with_status(http::StatusCode::NOT_FOUND)
        })?;
        let repo = crate::routes::repo(name)?;
        let rec = crate::manifests::resolve(&state, &repo, reference).await?;
        let body = state.blobs.read_all(&rec.digest).await?;
        let info = ManifestInfo::parse(&body, Some(&rec.media_type))
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
        let tags: Vec<String> = match pavilion_oci::Reference::parse(reference) {
            Ok(pavilion_oci::Reference::Tag(t)) => vec![t.as_str().to_string()],
            _ => Vec::new(),
        };
        let host = crate::body::header_str(&headers, header::HOST).map(str::to_string);
        let facts = gather(
            &state,
            gate.as_ref(),
            &repo,
            &tags,
            &rec.digest,
            &info,
            &body,
            host,
        )
        .await?;
        let d = decide(gate.as_ref(), &facts);
        let report = serde_json::json!({
            "repository": repo.as_str(),
            "reference": reference,
            "digest": rec.digest.to_string(),
            "allowed": d.deny.is_empty(),
            "deny": d.deny,
            "warn": d.warn,
            "detail": d.detail,
        });
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            report.to_string(),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `Warning` header values for policy warnings (`299 - "text"`, as the
/// distribution spec describes registry warnings).
pub fn warning_headers(warnings: &[String]) -> Vec<http::HeaderValue> {
    warnings
        .iter()
        .filter_map(|w| {
            let clean: String = w
                .chars()
                .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
                .collect();
            http::HeaderValue::from_str(&format!("299 - \"{clean}\"")).ok()
        })
        .collect()
}

/// Largest page of decisions.
const DECISION_PAGE: i64 = 1000;

/// `GET /pavilion/v1/decisions[?point=][&repository=][&n=][&before=]`: the
/// decision log, newest first. A full page links to the next one.
pub async fn list_decisions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Only the query is needed; a request body is not Sync, so it must not
    // be borrowed across the await below.
    let pairs = query_pairs(req.uri().query());
    drop(req);
    let result: ApiResult = async {
        let mut q = DecisionQuery {
            n: 100,
            ..Default::default()
        };
        let bad = |k: &str, v: &str| {
            ApiError::new(
                ErrorCode::Unsupported,
                format!("query parameter {k}={v:?} is not valid"),
            )
            .with_status(http::StatusCode::BAD_REQUEST)
        };
        for (k, v) in pairs {
            match k.as_str() {
                "point" if ["push", "pull", "admission"].contains(&v.as_str()) => q.point = Some(v),
                "repository" => q.repository = Some(v),
                "n" => match v.parse::<i64>() {
                    Ok(n) if n > 0 => q.n = n.min(DECISION_PAGE),
                    _ => return Err(bad(&k, &v)),
                },
                "before" => q.before = Some(v.parse().map_err(|_| bad(&k, &v))?),
                _ => return Err(bad(&k, &v)),
            }
        }
        let list = state.meta.decisions(&q).await?;
        let body = serde_json::json!({ "decisions": list }).to_string();
        let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        if list.len() as i64 == q.n {
            if let Some(last) = list.last() {
                let mut next = format!("/pavilion/v1/decisions?n={}&before={}", q.n, last.id);
                if let Some(p) = &q.point {
                    next.push_str(&format!("&point={p}"));
                }
                if let Some(r) = &q.repository {
                    next.push_str(&format!("&repository={}", crate::body::encode(r)));
                }
                if let Ok(v) = format!("<{next}>; rel=\"next\"").parse() {
                    resp.headers_mut().insert(header::LINK, v);
                }
            }
        }
        Ok(resp)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
