//! `GET /pavilion/v1/transfers`: the transfers in flight as one JSON
//! document, or, asked with `Accept: text/event-stream`, as Server-Sent
//! Events carrying that document every `interval_ms` (default 1000) until
//! the client goes away or the server stops. Under authentication it needs
//! `registry:catalog:*`, like the other documents that name repositories.

use super::{TransferList, Transfers};
use crate::error::ApiError;
use crate::query::query_pairs;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use pavilion_oci::ErrorCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most event streams open at once: each holds a connection and a timer.
pub const MAX_WATCHERS: usize = 64;

/// Streams open now.
static WATCHERS: AtomicUsize = AtomicUsize::new(0);

fn document(t: &Transfers, direction: Option<&str>) -> Bytes {
    let transfers = t
        .list()
        .into_iter()
        .filter(|s| direction.is_none_or(|d| s.direction == d))
        .collect();
    let doc = TransferList {
        transfers,
        untracked: t.untracked(),
    };
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

fn bad(k: &str, v: &str) -> Response {
    ApiError::new(
        ErrorCode::Unsupported,
        format!("query parameter {k}={v:?} is not valid"),
    )
    .with_status(StatusCode::BAD_REQUEST)
    .into_response()
}

/// One stream's place among [`MAX_WATCHERS`].
struct Watcher;

impl Watcher {
    fn take() -> Option<Watcher> {
        WATCHERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Watcher)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        WATCHERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The handler.
pub async fn transfers(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let pairs = query_pairs(req.uri().query());
    let stream = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    drop(req);
    let (mut direction, mut interval) = (None, Duration::from_millis(1000));
    for (k, v) in &pairs {
        match k.as_str() {
            "direction" if v == "upload" || v == "download" => direction = Some(v.clone()),
            "interval_ms" => match v.parse::<u64>() {
                Ok(ms) if (100..=60_000).contains(&ms) => interval = Duration::from_millis(ms),
                _ => return bad(k, v),
            },
            _ => return bad(k, v),
        }
    }
    let tracker = state.transfers.clone();
    if !stream {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            document(&tracker, direction.as_deref()),
        )
            .into_response();
    }
    let Some(watcher) = Watcher::take() else {
        return ApiError::new(
            ErrorCode::TooManyRequests,
            format!("{MAX_WATCHERS} transfer streams are open already: retry later"),
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .with_header(header::RETRY_AFTER, "5".to_string())
        .into_response();
    };
    let shutdown = state.shutdown.clone();
    let events = futures::stream::unfold(
        (0u64, watcher, tokio::time::interval(interval)),
        move |(seq, w, mut tick)| {
            let (tracker, shutdown, direction) =
                (tracker.clone(), shutdown.clone(), direction.clone());
            async move {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return None,
                }
                let data = document(&tracker, direction.as_deref());
                let mut event = format!("event: transfers\nid: {seq}\ndata: ").into_bytes();
                event.extend_from_slice(&data);
                event.extend_from_slice(b"\n\n");
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(event)),
                    (seq + 1, w, tick),
                ))
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
