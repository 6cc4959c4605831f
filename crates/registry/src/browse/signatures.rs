//! `GET /pavilion/v1/signatures/<name>/manifests/<reference>`: the Notary
//! signatures stored for a manifest, each decoded and judged under the
//! server's trust policy by the [`SignatureInspector`] `serve` installs,
//! which verifies with the push and pull gates' code. Signatures are read
//! as the gates read them (`facts::read_signature`: envelopes over the
//! registry's envelope limit are not read, and are reported as such).
//!
//! [`SignatureInspector`]: crate::signature_hook::SignatureInspector

use super::{no_endpoint, respond, Browse};
use crate::error::ApiError;
use crate::policy_hook::{StoredSignature, NOTARY_SIGNATURE};
use crate::resolve::resolve;
use crate::routes::repo;
use crate::signature_hook::{SignatureDetail, SignatureReport};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::Response;
use pavilion_oci::{Descriptor, ErrorCode};
use std::sync::Arc;

/// Most signatures reported for one manifest (in digest order); more are
/// stored when the answer says `"truncated": true`. Anyone who may push
/// may add referrers, so the page is bounded whatever is stored.
pub const SIGNATURES_SHOWN: usize = 50;

/// The handler.
pub async fn signatures(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    drop(req);
    respond(
        async {
            let Some(Browse::Signatures(name, reference)) = Browse::parse(&path) else {
                return Err(no_endpoint(&path));
            };
            let name = repo(&name)?;
            let rec = resolve(&state, &name, &reference).await?;
            let listed = state
                .meta
                .referrers(
                    name.as_str(),
                    &rec.digest,
                    Some(NOTARY_SIGNATURE),
                    None,
                    SIGNATURES_SHOWN as i64 + 1,
                )
                .await?;
            let truncated = listed.len() > SIGNATURES_SHOWN;
            let mut stored = Vec::new();
            for r in listed.into_iter().take(SIGNATURES_SHOWN) {
                // Gone since it was listed (deleted meanwhile): not shown.
                if let Some(s) = crate::facts::read_signature(&state, r).await? {
                    stored.push(s);
                }
            }
            let subject = Descriptor {
                media_type: rec.media_type.clone(),
                digest: rec.digest.clone(),
                size: rec.size,
                artifact_type: None,
                annotations: None,
            };
            let report = match state.signatures.clone() {
                // Chains and the trust store's files: a blocking thread.
                Some(inspector) => {
                    let repository = name.to_string();
                    tokio::task::spawn_blocking(move || {
                        inspector.inspect(&repository, &subject, &stored)
                    })
                    .await
                    .map_err(|e| {
                        ApiError::new(
                            ErrorCode::Internal,
                            format!("signature inspection failed: {e}"),
                        )
                    })?
                }
                None => unjudged(&stored),
            };
            let mut body = serde_json::to_value(&report).map_err(|e| {
                ApiError::new(ErrorCode::Internal, format!("signature report: {e}"))
            })?;
            body["digest"] = rec.digest.to_string().into();
            body["truncated"] = truncated.into();
            Ok(body)
        }
        .await,
    )
}

/// The report of a registry run without an inspector (embedded without
/// `pavilion serve`): the signatures' digests, nothing decoded or judged.
fn unjudged(stored: &[StoredSignature]) -> SignatureReport {
    SignatureReport {
        signatures: stored
            .iter()
            .map(|s| SignatureDetail {
                digest: s.digest.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
