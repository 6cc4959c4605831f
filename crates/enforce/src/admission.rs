//! Kubernetes admission and the Gatekeeper external data provider, served
//! by `pavilion serve` beside the registry.
//!
//! For each image a Pod (or a workload's Pod template) uses — containers,
//! init and ephemeral containers, OCI image volumes — the reference is
//! resolved to a digest in its registry and its Notary signatures verified
//! under the trust policy; then the `admission` Rego rules see it all.
//!
//! Built-in rule, before any Rego: an image that cannot be resolved, or
//! whose signatures do not pass the trust policy, is denied (the trust
//! policy's `skip` level is how a scope opts out). Failing closed is what a
//! supply-chain gate must do; Rego adds rules, it cannot loosen these.

use crate::policies::PolicySet;
use crate::verification::{verify_remote_manifest, ArtifactVerification, TrustConfig, TtlCache};
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::future::join_all;
use http::{header, StatusCode};
use pavilion_client::Client;
use pavilion_oci::{Digest, ImageRef};
use pavilion_policy::input::{self, AdmissionImage};
use pavilion_policy::kubernetes::{
    parse_provider_request, parse_review, provider_response, ratify_style_result, review_response,
    ProviderItem, VerifierReport,
};
use pavilion_policy::Point;
use pavilion_registry::AppState;
use std::sync::Arc;
use std::time::Duration;

/// Largest review accepted (etcd's object limit is 1.5 MiB; a review
/// carries the object and possibly its old version).
const REVIEW_LIMIT: usize = 4 << 20;
/// Most keys in one external data request.
const KEYS_LIMIT: usize = 1000;
/// Longest a model config is allowed to be for its summary.
const CONFIG_LIMIT: u64 = 1 << 20;

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
}

/// What the admission endpoints need.
pub struct AdmissionConfig {
    /// How registries are reached (credentials of the server's user).
    pub client: Client,
    /// The trust policy (`None`: signatures are not required).
    pub trust: Option<TrustConfig>,
    /// The `admission` rules.
    pub policies: Option<Arc<PolicySet>>,
    /// How long resolutions and verification results are reused (0: never).
    pub cache_ttl: Duration,
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
            let manifest: serde_json::Value =
                serde_json::from_slice(&m.bytes).unwrap_or(serde_json::Value::Null);
            let config = self.model_config(r, &manifest).await;
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

    /// A ModelPack config, fetched for the model summary.
    async fn model_config(
        &self,
        r: &ImageRef,
        manifest: &serde_json::Value,
    ) -> Option<serde_json::Value> {
        let c = manifest.get("config")?;
        let media_type = c.get("mediaType")?.as_str()?;
        // ModelPack config types end in +json: no other check needed.
        if !input::is_model_config(media_type) {
            return None;
        }
        let digest: Digest = c.get("digest")?.as_str()?.parse().ok()?;
        let bytes = self
            .client
            .blob_bytes(r, &digest, CONFIG_LIMIT)
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
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

    /// Resolves and verifies one image.
    async fn image(&self, reference: &str, path: &str, source: &str) -> AdmissionImage {
        let mut img = AdmissionImage {
            reference: reference.to_string(),
            path: path.to_string(),
            source: source.to_string(),
            ..Default::default()
        };
        let r: ImageRef = match reference.parse() {
            Ok(r) => r,
            Err(e) => {
                img.error = Some(format!("not a valid image reference: {e}"));
                return img;
            }
        };
        let res = match self.resolve(&r).await {
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
            match self.verify(&r, &res, trust).await {
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

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn bad_request(msg: String) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": msg }),
    )
}

/// `POST /admission`: an AdmissionReview in, an AdmissionReview out.
async fn admission(State(a): State<Arc<Admission>>, body: Body) -> Response {
    let bytes = match to_bytes(body, REVIEW_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return bad_request(format!(
                "AdmissionReview body unreadable or over {REVIEW_LIMIT} bytes: {e}"
            ))
        }
    };
    let review = match parse_review(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    let images = join_all(
        review
            .images
            .iter()
            .map(|u| a.image(&u.reference, &u.path, u.source)),
    )
    .await;
    let mut deny: Vec<String> = images
        .iter()
        .filter_map(Admission::builtin_denials)
        .collect();
    let mut warn = Vec::new();
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
            Err(e) => deny.push(format!("policy evaluation failed: {e}")),
        }
    }
    deny.dedup();
    let allowed = deny.is_empty();
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
            .record_decision("admission", None, &subject, allowed, &deny, &warn, &detail)
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
async fn gatekeeper(State(a): State<Arc<Admission>>, body: Body) -> Response {
    let bytes = match to_bytes(body, REVIEW_LIMIT).await {
        Ok(b) => b,
        Err(e) => return bad_request(format!("ProviderRequest body unreadable: {e}")),
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
        Err(e) => return bad_request(e.to_string()),
    };
    let images = join_all(keys.iter().map(|k| a.image(k, "", "key"))).await;
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
