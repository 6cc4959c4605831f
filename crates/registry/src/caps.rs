//! Caps on what clients can hold at once: connections and request heads.
//! (Upload sessions are capped where they are opened, in `uploads`.)
//!
//! A connection over the cap is not silently dropped: it is served by a tiny
//! service that answers every request `429 TOOMANYREQUESTS` and closes, so
//! clients see why. Those refusals are themselves bounded in number and in
//! time; past that bound a connection is closed at once.
//!
//! A place under the cap is held only while the connection is used: one
//! with no request in flight for `idle_timeout` is closed ([`serve_connection`]),
//! whatever its protocol. hyper's own header-read timeout covers idle
//! HTTP/1.1 keep-alive, but not a connection that never sends a byte (the
//! HTTP/1-or-2 detection waits for ever) nor an idle HTTP/2 connection
//! (its keep-alive pings are answered by any live client).

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use pavilion_oci::ErrorCode;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Connections being refused with a 429 at once; beyond, they are closed
/// without an answer.
const MAX_REFUSING: usize = 64;
/// Longest life of a refused connection: reading one request head and
/// writing the 429.
pub const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// What to do with a newly accepted connection.
pub enum Entry {
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
    pub fn admit(&self) -> Entry {
        if let Ok(p) = self.serving.clone().try_acquire_owned() {
            return Entry::Serve(p);
        }
        match self.refusing.clone().try_acquire_owned() {
            Ok(p) => Entry::Refuse(p),
            Err(_) => Entry::Close,
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

/// Time an idle connection is given to close after it was told to (an
/// HTTP/2 GOAWAY waits for the client's ping answer) before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What one connection is doing: requests in flight, and when the last one
/// ended (or the connection began).
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds from `born` to the end of the last request.
    last_ms: AtomicU64,
    born: Instant,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// Counts one more request in flight until the guard is dropped.
    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// How long the connection has had no request in flight (`None`: one is).
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
        Some(self.born.elapsed().saturating_sub(last))
    }
}

/// One request in flight; ends when its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let now = u64::try_from(a.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.last_ms.store(now, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight: a long
/// download is activity, not idleness.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The application as a hyper service that records its connection's activity.
#[derive(Clone)]
struct Counted {
    app: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    peer: crate::access::Peer,
}

type CountedFuture =
    Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for Counted {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = CountedFuture;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        let in_flight = self.activity.start();
        let answer = self.app.call(req);
        Box::pin(async move {
            let r = answer.await?;
            Ok(r.map(|inner| {
                Body::new(Tracked {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// Serves one connection with `app` until it ends. It is closed gracefully
/// once no request has been in flight on it for `idle` (also before its
/// first byte), and when `stop` fires (server shutdown: requests in flight
/// finish). Errors are logged at debug level: clients go away.
pub async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    app: Router,
    peer: std::net::SocketAddr,
    idle: Duration,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let svc = Counted {
        app: TowerToHyperService::new(app),
        activity: activity.clone(),
        peer: crate::access::Peer(peer),
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    // When the connection was told to close because it was idle.
    let mut closing_since: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let wait = match (closing_since, activity.idle_for()) {
            (Some(_), _) => IDLE_CLOSE_GRACE,
            (None, Some(d)) => idle.saturating_sub(d),
            (None, None) => idle,
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                if closing_since.is_none() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(wait) => {
                let idle_for = activity.idle_for();
                match closing_since {
                    None if idle_for.is_some_and(|d| d >= idle) => {
                        tracing::debug!("closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                    // Still nothing in flight after the grace: the client
                    // is not closing its side; drop the connection. (A
                    // request that slipped in is let finish.)
                    Some(t) if idle_for.is_some() && t.elapsed() >= IDLE_CLOSE_GRACE => return,
                    _ => {}
                }
            }
        }
    }
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
        assert!(matches!(first, Entry::Serve(_)));
        let refused: Vec<Entry> = (0..MAX_REFUSING).map(|_| cap.admit()).collect();
        assert!(refused.iter().all(|a| matches!(a, Entry::Refuse(_))));
        assert!(matches!(cap.admit(), Entry::Close));
        drop(first);
        assert!(matches!(cap.admit(), Entry::Serve(_)));
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
