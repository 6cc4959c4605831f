//! `/healthz` (the process answers), `/readyz` (its metadata database and
//! blob store answer too, with the reason when not) and `/metrics`.

use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// How long readiness waits for each store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`.
pub async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        "ok\n",
    )
        .into_response()
}

/// Why a store is not ready, or `None`.
async fn probe<F, T>(what: &str, f: F) -> Option<String>
where
    F: std::future::Future<Output = Result<T, pavilion_store::StoreError>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("{what}: {e}")),
        Err(_) => Some(format!(
            "{what}: no answer within {}s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// `GET /readyz`: 200 when the metadata database and the blob store
/// answer, else 503 naming which does not and why.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // The digest of nothing: any answer (there or not) proves the store is up.
    let probe_digest = pavilion_oci::Digest::sha256(b"");
    let (db, store) = tokio::join!(
        probe("metadata database", state.meta.ping()),
        probe("blob store", state.blobs.stat(&probe_digest)),
    );
    let problems: Vec<String> = [db, store].into_iter().flatten().collect();
    let body = serde_json::json!({
        "ready": problems.is_empty(),
        "problems": problems,
    })
    .to_string();
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /metrics`, in the Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if !state.metrics_enabled {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "metrics are off ([metrics] enabled = false)\n",
        )
            .into_response();
    }
    let text = crate::metrics::render(&state).await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
