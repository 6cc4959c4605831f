//! HTTP plumbing of the admission endpoints: bounded bodies, JSON answers,
//! refusals that do not lose themselves to a TCP reset.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;

/// Most bytes read and thrown away after a refusal, so the answer is not
/// destroyed by a reset (closing with unread bytes makes TCP send one).
const DRAIN_LIMIT: usize = 16 << 20;
/// Longest wait for more of a body being drained.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

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
        match tokio::time::timeout(DRAIN_IDLE * 15, body.frame()).await {
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

/// `resp`, once the rest of `body` is read (up to [`DRAIN_LIMIT`]); past
/// that, or if the client stalls, the connection is closed explicitly.
pub async fn drained(mut body: Body, mut resp: Response) -> Response {
    let mut seen = 0usize;
    let clean = loop {
        match tokio::time::timeout(DRAIN_IDLE, body.frame()).await {
            Ok(None) => break true,
            Ok(Some(Ok(frame))) => {
                seen += frame.data_ref().map_or(0, Bytes::len);
                if seen > DRAIN_LIMIT {
                    break false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => break false,
        }
    };
    if !clean {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
