//! The outermost middleware: times every request until its response body
//! is done (a blob download is timed to its last byte, not to its
//! headers), counts body bytes both ways, keeps the in-flight gauge, and
//! writes one access log line per request: request id, route, method,
//! status, bytes, duration, the caller once authenticated, and the trace
//! id of a W3C `traceparent` the client sent (with traces on: the trace
//! and span ids of the request's server span, which it opens here and ends
//! with the response body). Never a header value that could hold a secret.

use super::trace::{fresh_id, record_status, request_span, traceparent};
use super::{method_label, route_label, Metrics};
use crate::routes::Route;
use crate::state::AppState;
use crate::transfers::{download_start, upload_start};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

/// Filled by the access guard with the authenticated subject, for the
/// access log (the log line is written after the handler, which the
/// request's extensions do not outlive).
#[derive(Clone, Default)]
pub struct Who(pub Arc<OnceLock<String>>);

/// The request's path as the dispatcher recognises it (`None`: not an
/// API path), parsed once by [`observe`] for every layer after it.
#[derive(Clone)]
pub struct Parsed(pub Arc<Option<Route>>);

/// The request id header's name, made once (see `trace::TRACEPARENT`).
static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// A request id the client sent, if it is short and plain; else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:032x}", fresh_id()))
}

/// See the module docs.
pub async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let metrics = state.metrics.clone();
    // `[metrics] enabled = false`: nothing counted here (the log line,
    // transfers and traces stay).
    let on = state.metrics_enabled;
    // Parsed once here; the access guard and the dispatcher read it from
    // the request's extensions.
    let parsed = Parsed(Arc::new(Route::parse(req.uri().path())));
    let route = route_label(req.uri().path(), parsed.0.as_ref().as_ref());
    let method = method_label(req.method());
    let http_method = req.method().clone();
    let repo = on
        .then(|| metrics.repository_of(parsed.0.as_ref().as_ref()))
        .flatten();
    let id = request_id(&req);
    let parent = traceparent(&req);
    let (span, ids) = request_span(
        &req,
        method,
        route,
        &id,
        parent.as_ref(),
        &state.trace_sampler,
    );
    // With traces on, the log names the span's trace (the caller's, or the
    // one it started); else the caller's, if any.
    let (trace, span_id) = match ids {
        Some(ids) => (Some(ids.trace_id), Some(ids.span_id)),
        None => (parent.map(|p| p.trace_id), None),
    };
    let started = Instant::now();
    // Dropped with the response body, or with this future if the client
    // goes away before the handler answers.
    let in_flight = on.then(|| InFlight::new(metrics.clone(), route));
    let who = Who::default();
    req.extensions_mut().insert(who.clone());
    // An upload is listed while its request body is read.
    let empty = req.body().size_hint().exact() == Some(0);
    let upload = upload_start(
        req.method(),
        parsed.0.as_ref().as_ref(),
        req.headers(),
        req.uri().query(),
        empty,
    )
    .map(|s| state.transfers.begin(s, who.clone()));
    req.extensions_mut().insert(parsed.clone());
    let bytes_in = Arc::new(AtomicU64::new(0));
    // A body known to be empty (most GETs; no upload is listed for one)
    // has nothing to count: it is not wrapped, which saves two
    // allocations per request.
    let req = if empty {
        req
    } else {
        let counted_in = bytes_in.clone();
        let m_in = metrics.clone();
        req.map(move |b| {
            Body::new(Counted {
                inner: b,
                on_data: Box::new(move |n| {
                    counted_in.fetch_add(n, Ordering::Relaxed);
                    if on {
                        m_in.add_in(n);
                    }
                    if let Some(t) = &upload {
                        t.add(n);
                    }
                }),
                on_done: None,
                bytes: 0,
            })
        })
    };
    let mut resp = next.run(req).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    let status = resp.status().as_u16();
    let download = download_start(
        &http_method,
        parsed.0.as_ref().as_ref(),
        status,
        resp.headers(),
    )
    .map(|s| state.transfers.begin(s, who.clone()));
    let m_out = metrics.clone();
    let done = move |bytes_out: u64| {
        drop(in_flight);
        // The span ends here, with the response's last byte (or the
        // client leaving), when this last handle on it goes.
        record_status(&span, status);
        drop(span);
        let secs = started.elapsed().as_secs_f64();
        let bytes_in = bytes_in.load(Ordering::Relaxed);
        if on {
            metrics.end(route, method, status, secs);
            if let Some(r) = &repo {
                metrics.repository_request(r, method, status, bytes_in, bytes_out);
            }
            let served = status == 200 || status == 206;
            if route == "/v2/{name}/blobs/{digest}" && method == "GET" && served && bytes_out > 0 {
                metrics.transfer("download", secs);
            }
            if route == "/v2/{name}/blobs/uploads/{id}" && status == 201 && bytes_in > 0 {
                metrics.transfer("upload", secs);
            }
        }
        tracing::info!(
            target: "pavilion::access",
            request_id = %id,
            method,
            route,
            status,
            bytes_in,
            bytes_out,
            duration_ms = (secs * 1000.0) as u64,
            identity = who.0.get().map(String::as_str).unwrap_or("-"),
            trace_id = trace.as_deref().unwrap_or("-"),
            span_id = span_id.as_deref(),
            "request"
        );
    };
    resp.map(move |b| {
        Body::new(Counted {
            inner: b,
            on_data: Box::new(move |n| {
                if on {
                    m_out.add_out(n);
                }
                if let Some(t) = &download {
                    t.add(n);
                }
            }),
            on_done: Some(Box::new(done)),
            bytes: 0,
        })
    })
}

/// One request in the in-flight gauge while it lives.
struct InFlight {
    metrics: Arc<Metrics>,
    route: &'static str,
}

impl InFlight {
    fn new(metrics: Arc<Metrics>, route: &'static str) -> InFlight {
        metrics.begin(route);
        InFlight { metrics, route }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.finish(self.route);
    }
}

/// A body that reports its bytes as they pass and, once finished or
/// dropped (the client went away), how many there were.
struct Counted {
    inner: Body,
    on_data: Box<dyn Fn(u64) + Send>,
    on_done: Option<Box<dyn FnOnce(u64) + Send>>,
    bytes: u64,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                self.bytes += n;
                (self.on_data)(n);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(done) = self.on_done.take() {
            done(self.bytes);
        }
    }
}
