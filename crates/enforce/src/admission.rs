//! Kubernetes admission and the Gatekeeper external data provider, served
//! by `pavilion serve` beside the registry.
//!
//! For each image a Pod (or a workload's Pod template) uses — containers,
//! init and ephemeral containers, OCI image volumes — the reference is
//! resolved to a digest in its registry and its Notary signatures verified
//! under the trust policy; then the `admission` Rego rules see it all.
//!
//! Built-in rules, before any Rego: a review that cannot be interpreted
//! (an unknown kind, a field of the wrong type) is denied naming the field;
//! an image in a registry not allowed for lookups ([`outbound`]), or that
//! cannot be resolved within the deadline, or whose signatures do not pass
//! the trust policy, is denied (the trust policy's `skip` level is how a
//! scope opts out). Failing closed is what a supply-chain gate must do;
//! Rego adds rules, it cannot loosen these.
//!
//! Bounds: callers authenticate ([`caller`]); a body is at most
//! [`REVIEW_LIMIT`] bytes; a review names at most [`IMAGES_LIMIT`] images
//! and a Gatekeeper request at most [`KEYS_LIMIT`] keys; distinct
//! references are looked up [`LOOKUP_CONCURRENCY`] at a time, all within
//! one deadline (`serve --admission-timeout-secs`) shorter than
//! Kubernetes' webhook timeout, so a registry that never answers costs a
//! denial, not a hung review.

pub mod caller;
pub mod outbound;
mod wire;

use crate::cache::TtlCache;
use crate::policies::PolicySet;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use caller::{CallerAuth, Refusal};
use futures::StreamExt;
use http::StatusCode;
use outbound::AllowedRegistries;
use pavilion_client::Client;
use pavilion_oci::{Digest, ImageRef};
use pavilion_policy::input::{self, AdmissionImage};
use pavilion_policy::kubernetes::{
    parse_provider_request, parse_review, provider_response, ratify_style_result, review_response,
    ProviderItem, VerifierReport,
};
use pavilion_policy::Point;
use pavilion_registry::metrics::Verdict;
use pavilion_registry::AppState;
use pavilion_store::NewDecision;
use pavilion_verify::{verify_remote_manifest, ArtifactVerification, TrustConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wire::{error, json_response};

/// Largest review accepted (etcd's object limit is 1.5 MiB; a review
/// carries the object and possibly its old version).
pub const REVIEW_LIMIT: usize = 4 << 20;
/// Most image uses (containers, init and ephemeral containers, image
/// volumes) one review may name; more is denied.
pub const IMAGES_LIMIT: usize = 256;
/// Most keys in one external data request; more is a system error.
pub const KEYS_LIMIT: usize = 256;
/// Distinct references of one request looked up at once.
pub const LOOKUP_CONCURRENCY: usize = 8;
/// Longest a model config is allowed to be for its summary.
const CONFIG_LIMIT: u64 = pavilion_oci::json::POLICY_CONFIG_LIMIT;

/// What a reference resolved to.
#[derive(Debug, Clone)]
struct Resolution {
    digest: Digest,
    media_type: String,
    size: u64,
    artifact_type: Option<String>,
    model: serde_json::Value,
}

/// The admission endpoints' state.
pub struct Admission {
    client: Client,
    trust: Option<TrustConfig>,
    policies: Option<Arc<PolicySet>>,
    resolved: TtlCache<String, Result<Resolution, String>>,
    verified: TtlCache<(String, Digest), Result<Arc<ArtifactVerification>, String>>,
    registry: Arc<AppState>,
    registries: AllowedRegistries,
    auth: CallerAuth,
    timeout: Duration,
}

/// What the admission endpoints need.
pub struct AdmissionConfig {
    /// How registries are reached (credentials of the server's user; its
    /// connect and read timeouts should sit within `timeout`).
    pub client: Client,
    /// The trust policy (`None`: signatures are not required).
    pub trust: Option<TrustConfig>,
    /// The `admission` rules.
    pub policies: Option<Arc<PolicySet>>,
    /// How long resolutions and verification results are reused (0: never).
    pub cache_ttl: Duration,
    /// The registries images may be looked up in.
    pub registries: AllowedRegistries,
    /// Who may call the endpoints.
    pub auth: CallerAuth,
    /// The deadline of all lookups of one request.
    pub timeout: Duration,
}

impl Admission {
    /// The endpoints, over the registry's state (for the decision log).
    pub fn router(cfg: AdmissionConfig, registry: Arc<AppState>) -> Router {
        let state = Arc::new(Admission {
            client: cfg.client,
            trust: cfg.trust,
            policies: cfg.policies,
            resolved: TtlCache::new(cfg.cache_ttl),
            verified: TtlCache::new(cfg.cache_ttl),
            registry,
            registries: cfg.registries,
            auth: cfg.auth,
            timeout: cfg.timeout,
        });
        Router::new()
            .route("/admission", post(admission))
            .route("/pavilion/v1/gatekeeper/verify", post(gatekeeper))
            .with_state(state)
    }

    async fn resolve(&self, r: &ImageRef) -> Result<Resolution, String> {
        let key = r.to_string();
        if let Some(hit) = self.resolved.get(&key) {
            return hit;
        }
        let result = async {
            let m = self
                .client
                .get_manifest(r)
                .await
                .map_err(|e| format!("cannot resolve: {e}"))?;
            // A manifest that does not parse is refused, never summarised
            // as null (rules about its files would see nothing).
            let manifest = pavilion_oci::json::parse_strict(&m.bytes)
                .map_err(|e| format!("manifest {} unreadable: {e}", m.digest))?;
            let config = self.model_config(r, &manifest).await?;
            let artifact_type = manifest
                .get("artifactType")
                .or_else(|| manifest.get("config").and_then(|c| c.get("mediaType")))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            Ok(Resolution {
                model: input::model_summary(&manifest, config.as_ref()),
                digest: m.digest,
                media_type: m.media_type,
                size: m.bytes.len() as u64,
                artifact_type,
            })
        }
        .await;
        self.resolved.put(key, result.clone());
        result
    }

    /// A ModelPack config, fetched for the model summary; `None` when the
    /// manifest does not declare one. Declared but unreadable is an error:
    /// the model summary is what rules about models look at.
    async fn model_config(
        &self,
        r: &ImageRef,
        manifest: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, String> {
        let Some(c) = manifest.get("config") else {
            return Ok(None);
        };
        let Some(media_type) = c.get("mediaType").and_then(|m| m.as_str()) else {
            return Ok(None);
        };
        // ModelPack config types end in +json: no other check needed.
        if !input::is_model_config(media_type) {
            return Ok(None);
        }
        let digest: Digest = c
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or("model config has no digest")?
            .parse()
            .map_err(|e| format!("model config digest: {e}"))?;
        let bytes = self
            .client
            .blob_bytes(r, &digest, CONFIG_LIMIT)
            .await
            .map_err(|e| format!("model config {digest} unreadable: {}", error_line(&e)))?;
        pavilion_oci::json::parse_strict(&bytes)
            .map(Some)
            .map_err(|e| format!("model config {digest} unreadable: {e}"))
    }

    async fn verify(
        &self,
        r: &ImageRef,
        res: &Resolution,
        trust: &TrustConfig,
    ) -> Result<Arc<ArtifactVerification>, String> {
        let key = (
            format!("{}/{}", r.registry, r.repository),
            res.digest.clone(),
        );
        if let Some(hit) = self.verified.get(&key) {
            return hit;
        }
        let result = verify_remote_manifest(
            &self.client,
            r,
            &res.digest,
            &res.media_type,
            res.size,
            trust,
        )
        .await
        .map(Arc::new)
        .map_err(|e| error_line(&e));
        self.verified.put(key, result.clone());
        result
    }

    /// Resolves and verifies one image, if its registry may be contacted,
    /// within `deadline`.
    async fn image(&self, reference: &str, deadline: tokio::time::Instant) -> AdmissionImage {
        let mut img = AdmissionImage {
            reference: reference.to_string(),
            ..Default::default()
        };
        let r: ImageRef = match reference.parse() {
            Ok(r) => r,
            Err(e) => {
                img.error = Some(format!("not a valid image reference: {e}"));
                return img;
            }
        };
        if !self.registries.allows(&r.registry) {
            img.error = Some(self.registries.refusal(&r.registry));
            return img;
        }
        match tokio::time::timeout_at(deadline, self.lookup(img.clone(), &r)).await {
            Ok(img) => img,
            Err(_) => {
                img.error = Some(format!(
                    "no answer from {} within the {} s admission deadline",
                    r.registry,
                    self.timeout.as_secs_f64()
                ));
                img
            }
        }
    }

    /// Every distinct reference of `refs` looked up once, a few at a time,
    /// all within one deadline; answers in the order of `refs`.
    async fn images(&self, refs: &[&str]) -> Vec<AdmissionImage> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut distinct: Vec<String> = Vec::new();
        for r in refs {
            if !distinct.iter().any(|d| d == r) {
                distinct.push(r.to_string());
            }
        }
        // Owned strings: a stream of futures borrowing &str trips the
        // compiler's Send inference for the handler.
        let found: HashMap<String, AdmissionImage> = futures::stream::iter(distinct)
            .map(|r| async move {
                let img = self.image(&r, deadline).await;
                (r, img)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        refs.iter()
            .map(|r| {
                found.get(*r).cloned().unwrap_or_else(|| AdmissionImage {
                    reference: r.to_string(),
                    error: Some("not looked up".into()),
                    ..Default::default()
                })
            })
            .collect()
    }

    /// Resolves and verifies `r` into `img`.
    async fn lookup(&self, mut img: AdmissionImage, r: &ImageRef) -> AdmissionImage {
        let res = match self.resolve(r).await {
            Ok(res) => res,
            Err(e) => {
                img.error = Some(e);
                return img;
            }
        };
        img.digest = Some(res.digest.to_string());
        img.artifact_type = res.artifact_type.clone();
        img.model = res.model.clone();
        if let Some(trust) = &self.trust {
            match self.verify(r, &res, trust).await {
                Ok(v) => img.verification = Some(v.to_input()),
                Err(e) => img.error = Some(e),
            }
        }
        img
    }

    /// The built-in denials for one image (see the module comment).
    fn builtin_denials(img: &AdmissionImage) -> Option<String> {
        if let Some(e) = &img.error {
            return Some(format!("image {}: {e}", img.reference));
        }
        let v = img.verification.as_ref()?;
        if v.verified {
            return None;
        }
        let why = if v.signatures.is_empty() {
            format!(
                "no signature (trust policy {:?})",
                v.trust_policy.as_deref().unwrap_or("")
            )
        } else {
            let failures: Vec<&str> = v
                .signatures
                .iter()
                .flat_map(|s| s.failures.iter().map(String::as_str))
                .collect();
            format!("signature verification failed: {}", failures.join("; "))
        };
        Some(format!(
            "image {} ({}): {why}",
            img.reference,
            img.digest.as_deref().unwrap_or("?")
        ))
    }
}

/// A client error in one line with its cause (the context alone says
/// little: "fetching signature manifest ...").
fn error_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The caller's credentials checked; the body read within the limit.
async fn authenticated_body(
    a: &Admission,
    req: Request,
    what: &str,
) -> Result<bytes::Bytes, Response> {
    let (parts, body) = req.into_parts();
    if let Err(refusal) = a.auth.check(&parts) {
        let resp = match refusal {
            Refusal::NotConfigured(m) => error(StatusCode::FORBIDDEN, &m),
            Refusal::Unauthenticated(m) => {
                let mut resp = error(StatusCode::UNAUTHORIZED, &m);
                resp.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"pavilion-admission\""),
                );
                resp
            }
        };
        return Err(wire::drained(body, resp).await);
    }
    wire::read_limited(body, REVIEW_LIMIT, what).await
}

/// `POST /admission`: an AdmissionReview in, an AdmissionReview out.
async fn admission(State(a): State<Arc<Admission>>, req: Request) -> Response {
    let bytes = match authenticated_body(&a, req, "AdmissionReview").await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let review = match parse_review(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut deny: Vec<String> = Vec::new();
    let mut warn = Vec::new();
    let mut images = Vec::new();
    let mut failed = false;
    if let Some(why) = &review.invalid {
        // What cannot be read cannot have been checked.
        deny.push(format!("cannot interpret the review: {why}"));
    } else if review.images.len() > IMAGES_LIMIT {
        deny.push(format!(
            "{} images, more than the {IMAGES_LIMIT} a review may name",
            review.images.len()
        ));
    } else {
        let refs: Vec<&str> = review.images.iter().map(|u| u.reference.as_str()).collect();
        images = a.images(&refs).await;
        for (img, u) in images.iter_mut().zip(&review.images) {
            img.path = u.path.clone();
            img.source = u.source.to_string();
        }
        deny = images
            .iter()
            .filter_map(Admission::builtin_denials)
            .collect();
        if let Some(p) = &a.policies {
            let doc = input::admission(
                &review.request,
                &review.kind,
                &review.operation,
                review.namespace.as_deref(),
                review.name.as_deref(),
                review.dry_run,
                &images,
            );
            match p.decide(Point::Admission, &doc) {
                Ok(d) => {
                    deny.extend(d.deny);
                    warn = d.warn;
                }
                Err(e) => {
                    failed = true;
                    deny.push(format!("policy evaluation failed: {e}"));
                }
            }
        }
    }
    deny.dedup();
    let allowed = deny.is_empty();
    a.registry.metrics.policy_decision(
        "admission",
        match (failed, allowed) {
            (true, _) => Verdict::Error,
            (false, true) => Verdict::Allow,
            (false, false) => Verdict::Deny,
        },
    );
    let subject = format!(
        "{} {}/{}",
        review.kind,
        review.namespace.as_deref().unwrap_or(""),
        review.name.as_deref().unwrap_or("")
    );
    // A dry run must have no side effects: nothing is recorded.
    if !review.dry_run {
        let detail = serde_json::json!({
            "uid": review.uid,
            "operation": review.operation,
            "images": images.iter().map(|i| serde_json::json!({
                "reference": i.reference,
                "digest": i.digest,
                "verified": i.verification.as_ref().map(|v| v.verified),
                "error": i.error,
            })).collect::<Vec<_>>(),
        });
        if let Err(e) = a
            .registry
            .meta
            .record_decision(&NewDecision {
                point: "admission",
                repository: None,
                subject: &subject,
                allowed,
                deny: &deny,
                warn: &warn,
                detail: &detail,
                actor: None,
                traceparent: None,
            })
            .await
        {
            tracing::error!(error = %e, "could not record an admission decision");
        }
    }
    let message = (!allowed).then(|| deny.join("; "));
    json_response(
        StatusCode::OK,
        &review_response(
            &review.api_version,
            &review.uid,
            allowed,
            message.as_deref(),
            &warn,
        ),
    )
}

/// `POST /pavilion/v1/gatekeeper/verify`: Gatekeeper's external data
/// provider protocol, one item per image reference, each valued like
/// Ratify's verification result.
async fn gatekeeper(State(a): State<Arc<Admission>>, req: Request) -> Response {
    let bytes = match authenticated_body(&a, req, "ProviderRequest").await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let keys = match parse_provider_request(&bytes) {
        Ok(k) if k.len() <= KEYS_LIMIT => k,
        Ok(k) => {
            return json_response(
                StatusCode::OK,
                &provider_response(
                    &[],
                    Some(&format!(
                        "{} keys, more than the {KEYS_LIMIT} allowed",
                        k.len()
                    )),
                ),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut images = a.images(&refs).await;
    for img in &mut images {
        img.source = "key".into();
    }
    let items: Vec<ProviderItem> = images
        .iter()
        .map(|img| {
            let verified = img.verification.as_ref().is_none_or(|v| v.verified);
            let reports: Vec<VerifierReport> = img
                .verification
                .iter()
                .map(|v| VerifierReport {
                    name: "pavilion-notation".into(),
                    verifier_type: "notation".into(),
                    is_success: v.verified,
                    message: if v.verified {
                        "signature verification succeeded".into()
                    } else {
                        Admission::builtin_denials(img).unwrap_or_default()
                    },
                    artifact_digest: v
                        .signatures
                        .iter()
                        .find(|s| s.verified)
                        .map(|s| s.digest.clone()),
                    extensions: serde_json::json!({
                        "trustPolicy": v.trust_policy,
                        "signatures": v.signatures,
                    }),
                })
                .collect();
            let subject = match &img.digest {
                Some(d) => format!("{}@{d}", img.reference.split('@').next().unwrap_or("")),
                None => img.reference.clone(),
            };
            ProviderItem {
                key: img.reference.clone(),
                value: ratify_style_result(&subject, img.error.is_none() && verified, &reports),
                error: img.error.clone(),
            }
        })
        .collect();
    json_response(StatusCode::OK, &provider_response(&items, None))
}
