//! Caps on what clients can hold at once: connections and request heads.
//! (Upload sessions are capped where they are opened, in `uploads`.)
//!
//! A connection over the cap is not silently dropped: it is served by a tiny
//! service that answers every request `429 TOOMANYREQUESTS` and closes, so
//! clients see why. Those refusals are themselves bounded in number and in
//! time; past that bound a connection is closed at once.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use pavilion_oci::ErrorCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections being refused with a 429 at once; beyond, they are closed
/// without an answer.
const MAX_REFUSING: usize = 64;
/// Longest life of a refused connection: reading one request head and
/// writing the 429.
pub const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// What to do with a newly accepted connection.
pub enum Admission {
    /// Serve it; the permit is its place under the cap, held until it closes.
    Serve(OwnedSemaphorePermit),
    /// Over the cap: answer 429 and close (the permit bounds the refusals).
    Refuse(OwnedSemaphorePermit),
    /// Over the cap and too many refusals in progress: close it now.
    Close,
}

/// Counts connections against `max_connections`.
#[derive(Clone)]
pub struct ConnectionCap {
    serving: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    max: usize,
}

impl ConnectionCap {
    /// A cap of `max` connections served at once.
    pub fn new(max: usize) -> Self {
        ConnectionCap {
            serving: Arc::new(Semaphore::new(max)),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            max,
        }
    }

    /// Decides about one accepted connection.
    pub fn admit(&self) -> Admission {
        if let Ok(p) = self.serving.clone().try_acquire_owned() {
            return Admission::Serve(p);
        }
        match self.refusing.clone().try_acquire_owned() {
            Ok(p) => Admission::Refuse(p),
            Err(_) => Admission::Close,
        }
    }

    /// The application that answers every request of a refused connection.
    pub fn refusal(&self) -> Router {
        let max = self.max;
        Router::new().fallback(move || async move {
            let mut r = ApiError::new(
                ErrorCode::TooManyRequests,
                format!("this registry serves at most {max} connections at once (max_connections); retry later"),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        })
    }
}

/// Answers the requests of a connection over the cap with the refusal
/// application (after the TLS handshake, if any), for at most
/// [`REFUSAL_TIME`] in all; `permit` is released when it closes.
pub fn refuse(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    permit: OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let _permit = permit;
        let svc = TowerToHyperService::new(app);
        let served = async {
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let _ = conn.await;
                }
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(REFUSAL_TIME, served).await;
    });
}

/// Size of a request head as sent on HTTP/1.1: request line and headers.
fn head_size(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    line + headers + 2
}

/// Middleware: refuses a request whose head is over `max` bytes with 431 and
/// a one-line message (the spec has no error code for it; a 4xx body may be
/// in any format).
pub async fn head_cap(State(max): State<usize>, req: Request, next: Next) -> Response {
    let size = head_size(&req);
    if size <= max {
        return next.run(req).await;
    }
    let mut r = Response::new(Body::from(format!(
        "request head is {size} bytes, over the {max}-byte limit (max_header_bytes)\n"
    )));
    *r.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_bounded_and_places_come_back() {
        let cap = ConnectionCap::new(1);
        let first = cap.admit();
        assert!(matches!(first, Admission::Serve(_)));
        let refused: Vec<Admission> = (0..MAX_REFUSING).map(|_| cap.admit()).collect();
        assert!(refused.iter().all(|a| matches!(a, Admission::Refuse(_))));
        assert!(matches!(cap.admit(), Admission::Close));
        drop(first);
        assert!(matches!(cap.admit(), Admission::Serve(_)));
    }

    #[test]
    fn head_size_counts_line_and_headers() {
        let req = Request::builder()
            .uri("/v2/")
            .header("host", "h")
            .body(Body::empty())
            .unwrap();
        // "GET /v2/ HTTP/1.1\r\n" + "host: h\r\n" + "\r\n"
        assert_eq!(head_size(&req), 19 + 9 + 2);
    }
}
