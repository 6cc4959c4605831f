//! The Prometheus text exposition format (version 0.0.4) of [`Metrics`],
//! plus figures read from the metadata database at scrape time.

use super::histogram::Histogram;
use super::Metrics;
use crate::state::AppState;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// How long figures read from the database are reused: scrapes from
/// several Prometheus servers must not each cost a pass over the tables.
const DB_FIGURES_TTL: Duration = Duration::from_secs(10);

/// An upload session with no append started or ended for this long is
/// stalled (a client that went away and may or may not resume).
const STALLED_AFTER: Duration = Duration::from_secs(300);

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(super) fn histogram(out: &mut String, name: &str, base: &[(&str, &str)], h: &Histogram) {
    for (le, n) in h.cumulative() {
        let mut l = base.to_vec();
        l.push(("le", &le));
        let _ = writeln!(out, "{name}_bucket{} {n}", labels(&l));
    }
    let _ = writeln!(out, "{name}_sum{} {}", labels(base), h.sum());
    let _ = writeln!(out, "{name}_count{} {}", labels(base), h.count());
}

impl Metrics {
    /// This process's counters, gauges and histograms.
    fn render_process(&self, out: &mut String) {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<_> = routes.keys().copied().collect();
        keys.sort();
        header(
            out,
            "pavilion_http_requests_total",
            "counter",
            "Requests answered, by route template, method and status.",
        );
        for k in &keys {
            let mut statuses: Vec<_> = routes[k].by_status.iter().collect();
            statuses.sort();
            for (status, n) in statuses {
                let s = status.to_string();
                let l = labels(&[("route", k.0), ("method", k.1), ("status", &s)]);
                let _ = writeln!(out, "pavilion_http_requests_total{l} {n}");
            }
        }
        header(
            out,
            "pavilion_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to the last byte of its response.",
        );
        for k in &keys {
            histogram(
                out,
                "pavilion_http_request_duration_seconds",
                &[("route", k.0), ("method", k.1)],
                &routes[k].duration,
            );
        }
        drop(routes);
        header(
            out,
            "pavilion_http_requests_in_flight",
            "gauge",
            "Requests being served (an upload or download in progress counts until its last byte).",
        );
        let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let mut routes: Vec<_> = in_flight.iter().collect();
        routes.sort();
        for (route, n) in routes {
            let _ = writeln!(
                out,
                "pavilion_http_requests_in_flight{} {n}",
                labels(&[("route", route)])
            );
        }
        drop(in_flight);
        header(
            out,
            "pavilion_http_body_bytes_total",
            "counter",
            "Request and response body bytes.",
        );
        for (dir, n) in [("in", &self.body_in), ("out", &self.body_out)] {
            let v = n.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(
                out,
                "pavilion_http_body_bytes_total{} {v}",
                labels(&[("direction", dir)])
            );
        }
        header(
            out,
            "pavilion_blob_transfer_duration_seconds",
            "histogram",
            "Whole blob transfers: a download to its last byte, an upload request that completed a blob.",
        );
        let transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        let mut dirs: Vec<_> = transfers.iter().collect();
        dirs.sort_by_key(|(d, _)| **d);
        for (dir, h) in dirs {
            histogram(
                out,
                "pavilion_blob_transfer_duration_seconds",
                &[("direction", dir)],
                h,
            );
        }
        drop(transfers);
        self.store.render(out);
        self.outcomes.render(out);
        self.webhooks.render(out);
        if let Some(spans) = &self.trace_spans {
            super::trace::render_spans(out, spans.totals());
        }
        if let Some(r) = &self.repos {
            r.render(out);
        }
        header(
            out,
            "pavilion_uptime_seconds",
            "gauge",
            "Seconds since this process started serving.",
        );
        let _ = writeln!(
            out,
            "pavilion_uptime_seconds {}",
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Figures every replica shares, from the metadata database.
async fn database_figures(state: &AppState) -> Result<String, pavilion_store::StoreError> {
    let mut out = String::new();
    let stalled_before = pavilion_store::now_millis() - STALLED_AFTER.as_millis() as i64;
    let (sessions, stalled) = state.meta.upload_session_counts(stalled_before).await?;
    header(
        &mut out,
        "pavilion_upload_sessions",
        "gauge",
        "Upload sessions open in every replica: active, or stalled (no append started or ended for 5 minutes).",
    );
    for (s, n) in [
        ("active", sessions - stalled.min(sessions)),
        ("stalled", stalled),
    ] {
        let _ = writeln!(
            out,
            "pavilion_upload_sessions{} {n}",
            labels(&[("state", s)])
        );
    }
    let t = state.meta.usage_totals().await?;
    for (name, help, v) in [
        (
            "pavilion_storage_stored_bytes",
            "Bytes the store keeps (blobs and manifests, one copy each).",
            t.stored_blob_bytes + t.stored_manifest_bytes,
        ),
        (
            "pavilion_storage_charged_bytes",
            "Bytes charged to repositories (shared content counts in each).",
            t.charged_bytes,
        ),
        (
            "pavilion_storage_dedup_saving_bytes",
            "Bytes deduplication saves (charged minus stored).",
            t.dedup_saving_bytes,
        ),
        (
            "pavilion_storage_blobs",
            "Blobs the store keeps.",
            t.stored_blobs,
        ),
        (
            "pavilion_storage_manifests",
            "Manifests (distinct digests) the store keeps.",
            t.stored_manifests,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    if let Some(last) = state.meta.gc_last_run().await? {
        let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
        let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
        for (name, help, value) in [
            (
                "pavilion_gc_last_run_timestamp_seconds",
                "When the last garbage collection started (Unix seconds).",
                num("started_at") / 1000.0,
            ),
            (
                "pavilion_gc_last_run_duration_seconds",
                "How long the last garbage collection took.",
                num("duration_ms") / 1000.0,
            ),
            (
                "pavilion_gc_last_run_freed_bytes",
                "Bytes the last garbage collection freed.",
                num("bytes"),
            ),
            (
                "pavilion_gc_last_run_failed",
                "1 when the last garbage collection stopped on an error.",
                if v["error"].is_null() { 0.0 } else { 1.0 },
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
    Ok(out)
}

/// The whole exposition. Database figures that cannot be read are left
/// out (the scrape still shows the process's own), and `/readyz` says why.
pub async fn render(state: &AppState) -> String {
    let mut out = String::new();
    state.metrics.render_process(&mut out);
    // This process's pool: not cached (sqlx keeps the counts in memory).
    super::store::render_pool(&mut out, state.meta.pool_figures());
    let cached = state
        .metrics
        .cached
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .filter(|(at, _)| at.elapsed() < DB_FIGURES_TTL)
        .map(|(_, text)| text.clone());
    let db = match cached {
        Some(t) => t,
        None => match database_figures(state).await {
            Ok(t) => {
                *state
                    .metrics
                    .cached
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), t.clone()));
                t
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: database figures unavailable");
                String::new()
            }
        },
    };
    out.push_str(&db);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), "{a=\"x\\\"y\\\\z\\nw\"}");
    }
}
