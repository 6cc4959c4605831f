//! `GET /pavilion/v1/queries?query=CYPHER`: the query's current result as
//! JSON (`{"seq": N, "rows": [...]}`), or with `Accept:
//! text/event-stream` that result and then its changes ([`super::stream`]).

use super::engine::{Graph, QueryError};
use super::{model, MAX_QUERY_BYTES};
use crate::error::{ApiError, ApiResult};
use crate::feed::params::bad;
use crate::query::query_pairs;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use pavilion_oci::ErrorCode;
use std::future::Future;
use std::sync::Arc;

/// A query with its graph built and its result current as of `seq`.
pub struct Subscription {
    /// The query and its graph.
    pub graph: Graph,
    /// The last event applied.
    pub seq: i64,
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(ErrorCode::TooManyRequests, message)
        .detail_as_message()
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
}

/// How a query's failure is answered: the query's fault is a 400, the
/// graph passing the server's bound a 503.
pub fn refusal(e: QueryError) -> ApiError {
    match e {
        QueryError::TooLarge(_) => unavailable(e.to_string()),
        QueryError::Parse(_) | QueryError::Evaluation(_) => bad(e.to_string()),
    }
}

/// Runs `f`, which evaluates a whole graph (CPU work, seconds for a large
/// registry), without holding up the requests queued on this worker: on
/// the multi-threaded runtime the worker hands its other tasks over first.
pub async fn heavy<F: Future>(f: F) -> F::Output {
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(f))
    } else {
        f.await
    }
}

/// The query text of the request, checked.
fn parse(query: Option<&str>) -> Result<String, ApiError> {
    let mut text = None;
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "query" if text.is_none() => text = Some(v),
            "query" => return Err(bad("give query once".into())),
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?}: give query=<Cypher>"
                )))
            }
        }
    }
    let text = text.ok_or_else(|| bad("give query=<Cypher>".into()))?;
    if text.trim().is_empty() {
        return Err(bad("the query is empty".into()));
    }
    if text.len() > MAX_QUERY_BYTES {
        return Err(bad(format!(
            "the query is {} bytes; at most {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}

/// Builds the query and gives it the registry as it is now.
pub async fn start(state: &AppState, text: &str) -> Result<Subscription, ApiError> {
    let max = state.feed.queries.max_elements;
    let mut graph = Graph::build(text, max).await.map_err(refusal)?;
    let snapshot = state
        .meta
        .graph_snapshot(i64::try_from(max).unwrap_or(i64::MAX))
        .await?
        .ok_or_else(|| refusal(QueryError::TooLarge(max)))?;
    let now = u64::try_from(pavilion_store::now_millis()).unwrap_or(0);
    heavy(model::bootstrap(state, &mut graph, &snapshot, now))
        .await
        .map_err(refusal)?;
    // The first answer is the result itself, not a change to it.
    graph.take_diff();
    Ok(Subscription {
        graph,
        seq: snapshot.seq,
    })
}

/// The handler.
pub async fn queries(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let text = parse(req.uri().query());
    let stream = crate::feed::api::wants_stream(&req);
    // Only the query and headers are needed; a request body is not Sync.
    drop(req);
    let result: ApiResult = async {
        let text = text?;
        let Some(permit) = state.feed.queries.admit() else {
            return Err(unavailable(format!(
                "too many continuous queries on this replica (at most {}): try later",
                super::MAX_SUBSCRIPTIONS
            ))
            .with_header(header::RETRY_AFTER, "5".into()));
        };
        let sub = start(&state, &text).await?;
        if stream {
            return Ok(super::stream::sse(state.clone(), sub, permit));
        }
        drop(permit);
        let body = serde_json::json!({ "seq": sub.seq, "rows": sub.graph.rows() });
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
