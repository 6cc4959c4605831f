//! What the registry counts for Prometheus (`GET /metrics`, issue 18).
//!
//! Labels are chosen so that their number of values is fixed by the code,
//! never by requests: the route is the template the dispatcher recognised
//! (`/v2/{name}/blobs/{digest}`), never a repository or a digest; the
//! method is one of the HTTP methods the API uses or `OTHER`; the status
//! is a number the server chose. Figures that live in the database
//! (storage, upload sessions, the last garbage collection) are read when
//! scraped, at most every few seconds.

mod counts;
mod expose;
pub mod histogram;
pub mod layer;
mod outcomes;
mod repos;
mod store;
pub mod trace;
mod webhooks;

use counts::FixedMap;
use histogram::{Histogram, REQUEST_BUCKETS, TRANSFER_BUCKETS};
use http::Method;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use expose::render;
pub use outcomes::{GcRun, Uploading, Verdict};

/// Per route and method: the duration histogram and counts per status.
#[derive(Debug)]
struct RouteStats {
    duration: Histogram,
    by_status: FixedMap<u16, u64>,
}

/// The process's metrics.
#[derive(Debug)]
pub struct Metrics {
    routes: Mutex<FixedMap<(&'static str, &'static str), RouteStats>>,
    in_flight: Mutex<FixedMap<&'static str, i64>>,
    body_in: AtomicU64,
    body_out: AtomicU64,
    /// Whole blob transfers: uploads (chunks ending a session count as
    /// their request) and downloads.
    transfers: Mutex<FixedMap<&'static str, Histogram>>,
    started: std::time::Instant,
    /// Scrape-time figures from the database, remembered briefly.
    pub(crate) cached: Mutex<Option<(std::time::Instant, String)>>,
    /// What the blob store and the metadata database report.
    store: store::StoreStats,
    /// Decisions, authentication, tokens, uploads, garbage collection.
    outcomes: outcomes::Outcomes,
    /// Webhook deliveries and lag.
    webhooks: webhooks::WebhookStats,
    /// Per-repository series, when enabled.
    repos: Option<repos::RepoStats>,
    /// The trace exporter's counts, when traces are on.
    trace_spans: Option<std::sync::Arc<pavilion_telemetry::SpanCounts>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            routes: Mutex::default(),
            in_flight: Mutex::default(),
            body_in: AtomicU64::new(0),
            body_out: AtomicU64::new(0),
            transfers: Mutex::default(),
            started: std::time::Instant::now(),
            cached: Mutex::default(),
            store: Default::default(),
            outcomes: Default::default(),
            webhooks: Default::default(),
            repos: None,
            trace_spans: None,
        }
    }
}

/// The methods labelled by name; anything else is `OTHER`.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The route template of a request path: the distribution API's
/// endpoints by their pattern, Pavilion's own paths as they are, and
/// `other` for the rest (so that unknown paths cannot add label values).
pub fn route_label(path: &str, parsed: Option<&crate::routes::Route>) -> &'static str {
    use crate::routes::Route;
    if let Some(r) = parsed {
        return match r {
            Route::Base => "/v2/",
            Route::Catalog => "/v2/_catalog",
            Route::Tags(_) => "/v2/{name}/tags/list",
            Route::Manifest(..) => "/v2/{name}/manifests/{reference}",
            Route::Blob(..) => "/v2/{name}/blobs/{digest}",
            Route::UploadStart(_) => "/v2/{name}/blobs/uploads/",
            Route::Upload(..) => "/v2/{name}/blobs/uploads/{id}",
            Route::Referrers(..) => "/v2/{name}/referrers/{digest}",
        };
    }
    const FIXED: &[&str] = &[
        "/metrics",
        "/healthz",
        "/readyz",
        "/token",
        "/.well-known/jwks.json",
        "/pavilion/v1/usage",
        "/pavilion/v1/transfers",
        "/pavilion/v1/decisions",
        "/pavilion/v1/webhooks",
        "/admission",
        "/pavilion/v1/gatekeeper/verify",
    ];
    if let Some(f) = FIXED.iter().find(|f| **f == path) {
        return f;
    }
    if let Some(b) = crate::browse::Browse::parse(path) {
        return b.template();
    }
    if path.starts_with("/pavilion/v1/webhooks/") && path.ends_with("/replay") {
        return "/pavilion/v1/webhooks/{name}/replay";
    }
    if path.starts_with("/pavilion/v1/policy/") {
        return "/pavilion/v1/policy/{reference}";
    }
    // The web UI's pages, one series: the API calls they make in-process
    // are not counted again.
    if path == "/ui" || path.starts_with("/ui/") {
        return "/ui/";
    }
    "other"
}

impl Metrics {
    /// Metrics with per-repository series for at most `limit` named
    /// repositories (`None`: no per-repository series at all).
    pub fn with_repository_labels(limit: Option<usize>) -> Metrics {
        Metrics {
            repos: limit.map(repos::RepoStats::new),
            ..Metrics::default()
        }
    }

    /// These metrics, reporting what became of the spans the trace
    /// exporter was given (`None`: traces are off).
    pub fn with_trace_spans(
        self,
        spans: Option<std::sync::Arc<pavilion_telemetry::SpanCounts>>,
    ) -> Metrics {
        Metrics {
            trace_spans: spans,
            ..self
        }
    }

    /// The repository to count a request on `path` under, when
    /// per-repository series are on (else nothing is allocated).
    pub fn repository_of(&self, route: Option<&crate::routes::Route>) -> Option<String> {
        self.repos.as_ref()?;
        repos::repository_of(route?)
    }

    /// A request on `repo` (from [`Metrics::repository_of`]) ended.
    pub fn repository_request(
        &self,
        repo: &str,
        method: &'static str,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        if let Some(r) = &self.repos {
            r.request(repo, method, status, bytes_in, bytes_out);
        }
    }

    /// A request on `route` started.
    pub fn begin(&self, route: &'static str) {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(route).or_default() += 1;
    }

    /// A request on `route` is no longer in flight.
    pub fn finish(&self, route: &'static str) {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(route).or_default() -= 1;
    }

    /// A request on `route` ended with `status` after `secs`.
    pub fn end(&self, route: &'static str, method: &'static str, status: u16, secs: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let s = routes.entry((route, method)).or_insert_with(|| RouteStats {
            duration: Histogram::new(REQUEST_BUCKETS),
            by_status: FixedMap::default(),
        });
        s.duration.observe(secs);
        *s.by_status.entry(status).or_default() += 1;
    }

    /// Body bytes received.
    pub fn add_in(&self, n: u64) {
        self.body_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Body bytes sent.
    pub fn add_out(&self, n: u64) {
        self.body_out.fetch_add(n, Ordering::Relaxed);
    }

    /// A whole blob moved in `direction` ("upload", "download") in `secs`.
    pub fn transfer(&self, direction: &'static str, secs: f64) {
        let mut t = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        t.entry(direction)
            .or_insert_with(|| Histogram::new(TRANSFER_BUCKETS))
            .observe(secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(path: &str) -> &'static str {
        route_label(path, crate::routes::Route::parse(path).as_ref())
    }

    #[test]
    fn routes_are_templates_and_unknown_paths_share_one_label() {
        assert_eq!(
            label("/v2/team/model/blobs/sha256:abc"),
            "/v2/{name}/blobs/{digest}"
        );
        assert_eq!(
            label("/v2/a/b/c/manifests/v1"),
            "/v2/{name}/manifests/{reference}"
        );
        assert_eq!(
            label("/v2/x/blobs/uploads/123"),
            "/v2/{name}/blobs/uploads/{id}"
        );
        assert_eq!(label("/metrics"), "/metrics");
        assert_eq!(
            label("/pavilion/v1/policy/x/y@sha256:1"),
            "/pavilion/v1/policy/{reference}"
        );
        assert_eq!(
            label("/pavilion/v1/repositories/team/m/tags"),
            "/pavilion/v1/repositories/{name}/tags"
        );
        assert_eq!(
            label("/pavilion/v1/signatures/a/b/manifests/v1"),
            "/pavilion/v1/signatures/{name}/manifests/{reference}"
        );
        assert_eq!(
            label("/pavilion/v1/access/team/m"),
            "/pavilion/v1/access/{name}"
        );
        assert_eq!(
            label("/pavilion/v1/repositories"),
            "/pavilion/v1/repositories"
        );
        for p in [
            "/pavilion/v1/repositories/x",
            "/",
            "/anything",
            "/v2x",
            "/metrics/extra",
            "/v2/a/unknown/x",
        ] {
            assert_eq!(label(p), "other", "{p}");
        }
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
