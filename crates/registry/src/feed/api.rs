//! `GET /pavilion/v1/events?after=SEQ&limit=N[&repository=GLOB][&type=T]`:
//! a page of CloudEvents and the cursor to ask for next, or, with
//! `Accept: text/event-stream`, the same events as a stream.

use super::params::{self, Params};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use pavilion_oci::ErrorCode;
use pavilion_store::gc::retention::Glob;
use pavilion_store::{Event, EventQuery};
use std::sync::Arc;

/// Whether `e` passes the repository filter (events of no repository,
/// such as a collection run, pass only when there is no filter).
pub fn matches(glob: Option<&Glob>, e: &Event) -> bool {
    match glob {
        None => true,
        Some(g) => e.repository.as_deref().is_some_and(|r| g.is_match(r)),
    }
}

/// Whether the client asks for Server-Sent Events.
pub fn wants_stream(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The handler.
pub async fn events(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let parsed = params::parse(req.uri().query(), req.headers());
    let stream = wants_stream(&req);
    // Only the query and headers are needed; a request body is not Sync.
    drop(req);
    let result: ApiResult = async {
        let p = parsed?;
        if stream {
            let Some(permit) = state.feed.admit() else {
                return Err(ApiError::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "too many event streams open on this replica (at most {}): page with ?after= or try later",
                        super::MAX_STREAMS
                    ),
                )
                .detail_as_message()
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(header::RETRY_AFTER, "5".into()));
            };
            return Ok(super::stream::sse(state.clone(), p, permit));
        }
        page(&state, &p).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// One page: the events of the next `limit` rows after `after` that pass
/// the filters, and `next`, the last sequence number read. With a
/// repository filter a page may hold fewer than `limit` events (or none)
/// and still not be the end: the end is a page whose `next` is `after`.
async fn page(state: &AppState, p: &Params) -> ApiResult {
    let rows = state
        .meta
        .events_after(&EventQuery {
            after: p.after,
            limit: p.limit,
            types: p.types.clone(),
        })
        .await?;
    let next = rows.last().map_or(p.after, |e| e.seq);
    let docs: Vec<serde_json::Value> = rows
        .iter()
        .filter(|e| matches(p.repository.as_ref(), e))
        .map(|e| super::cloudevent::render(e, &state.feed.name))
        .collect();
    // The newest sequence number, so a reader can start near the end
    // (the web UI's live page shows the last few, then follows).
    let head = state.meta.last_event_seq().await?;
    let body = serde_json::json!({ "events": docs, "next": next, "head": head });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
