//! HTTP plumbing of the admission endpoints: bounded bodies, JSON answers,
//! refusals that do not lose themselves to a TCP reset.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{header, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;

/// Longest wait for the next piece of a body being read.
const READ_IDLE: Duration = Duration::from_secs(30);

/// A JSON answer.
pub fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `{"error": msg}` with `status`.
pub fn error(status: StatusCode, msg: &str) -> Response {
    json_response(status, &serde_json::json!({ "error": msg }))
}

/// Reads a body of at most `limit` bytes. Over the limit: 413, after
/// draining (bounded) what the client still sends.
pub async fn read_limited(body: Body, limit: usize, what: &str) -> Result<Bytes, Response> {
    let mut body = body;
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(READ_IDLE, body.frame()).await {
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if buf.len() + data.len() > limit {
                        let msg = format!("{what} body over the {limit} byte limit");
                        return Err(drained(body, error(StatusCode::PAYLOAD_TOO_LARGE, &msg)).await);
                    }
                    buf.extend_from_slice(data);
                }
            }
            Ok(Some(Err(e))) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("{what} body unreadable: {e}"),
                ))
            }
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("{what} body: the client stopped sending"),
                ))
            }
        }
    }
}

/// `resp`, once the rest of `body` is read and dropped (the registry's own
/// rule: [`pavilion_registry::routes::drain_before`]).
pub async fn drained(body: Body, resp: Response) -> Response {
    pavilion_registry::routes::drain_before(&mut body.into_data_stream(), resp).await
}
