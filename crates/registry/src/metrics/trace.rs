//! The request's span for OpenTelemetry: a caller's W3C `traceparent`
//! read, and the server span that continues it. The span is exported by
//! the telemetry layer when `serve` has an OTLP endpoint; otherwise no
//! subscriber wants its target and nothing is made (ids are not even
//! drawn).

use axum::extract::Request;
use tracing::field::Empty;
use tracing::Span;

/// The parts of a valid W3C `traceparent` (version 00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// The caller's span: 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

/// The `traceparent` header's name, made once: a name given as a string
/// is parsed and checked again on every lookup.
pub static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The request's `traceparent`, when valid.
pub fn traceparent(req: &Request) -> Option<TraceParent> {
    let v = req.headers().get(&TRACEPARENT)?.to_str().ok()?;
    let mut parts = v.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let ok = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    ok.then(|| TraceParent {
        trace_id: trace.to_string(),
        parent_id: parent.to_string(),
        flags: u8::from_str_radix(flags, 16).unwrap_or(0),
    })
}

/// Which requests' traces are recorded (`OTEL_TRACES_SAMPLER`): a caller's
/// sampled flag when `parent_based` and the caller sent one, else a
/// `ratio` of trace ids. An unsampled request makes no span, so its
/// children have no recorded parent and are not exported either.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSampler {
    /// Follow the caller's sampled flag when there is a caller.
    pub parent_based: bool,
    /// The share of traces this server starts (or, not parent based,
    /// sees) that are recorded, 0 to 1.
    pub ratio: f64,
}

impl Default for TraceSampler {
    /// `parentbased_always_on`, the OpenTelemetry default.
    fn default() -> Self {
        TraceSampler {
            parent_based: true,
            ratio: 1.0,
        }
    }
}

impl TraceSampler {
    /// Whether a trace whose id ends in the 8 bytes `low` (as a big-endian
    /// number), continuing `parent`, is recorded. The ratio is decided
    /// from those bytes, so every server with the same ratio decides the
    /// same for one trace.
    pub fn sampled(&self, low: u64, parent: Option<&TraceParent>) -> bool {
        if let Some(p) = parent.filter(|_| self.parent_based) {
            return p.flags & 1 == 1;
        }
        if self.ratio >= 1.0 {
            return true;
        }
        if self.ratio <= 0.0 {
            return false;
        }
        ((low >> 11) as f64 / (1u64 << 53) as f64) < self.ratio
    }
}

/// The last 8 bytes of a valid trace id (32 hex digits).
fn low_bytes(trace_id: &str) -> u64 {
    trace_id
        .get(trace_id.len().saturating_sub(16)..)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

/// A new random 128-bit id whose halves are both nonzero (W3C: an
/// all-zero trace id or span id is invalid). From a fast thread-local
/// generator, not the OS: ids need to be unique
/// and spread, not secret, and a system call per request would cost more
/// than the rest of a cached manifest GET's telemetry.
pub(crate) fn fresh_id() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id as u64 != 0 && (id >> 64) as u64 != 0 {
            return id;
        }
    }
}

/// The ids of a recorded server span, for the access log.
pub struct SpanIds {
    /// The trace (the caller's, or a new one).
    pub trace_id: String,
    /// This request's span.
    pub span_id: String,
}

/// The server span of a request, and its ids when it is exported. Its
/// name is the method and the route template, never a repository or a
/// digest: names are what tracing backends group by.
pub fn request_span(
    req: &Request,
    method: &'static str,
    route: &'static str,
    request_id: &str,
    parent: Option<&TraceParent>,
    sampler: &TraceSampler,
) -> (Span, Option<SpanIds>) {
    if !tracing::enabled!(target: "pavilion::otel", tracing::Level::INFO) {
        return (Span::none(), None);
    }
    // A new trace's id is drawn as a number and written out only if it is
    // sampled: the 99 of 100 requests a 1% sampler leaves out cost a
    // draw and a comparison.
    let fresh = fresh_id();
    let low = parent.map_or(fresh as u64, |p| low_bytes(&p.trace_id));
    if !sampler.sampled(low, parent) {
        // Not made at all: an unsampled request costs no span, and the
        // spans inside it have no recorded parent, so are not recorded.
        return (Span::none(), None);
    }
    let trace_id = parent.map_or_else(|| format!("{fresh:032x}"), |p| p.trace_id.clone());
    let span_id = format!("{:016x}", fresh_id() as u64);
    // The semantic conventions' names: `_OTHER` for a method outside the
    // known set, no route for a path that matched none.
    let method = if method == "OTHER" { "_OTHER" } else { method };
    let known = route != "other";
    let name = if known {
        format!("{method} {route}")
    } else {
        method.to_string()
    };
    let span = tracing::info_span!(
        target: "pavilion::otel",
        "request",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.trace_id = trace_id.as_str(),
        otel.span_id = span_id.as_str(),
        otel.parent_id = parent.map(|p| p.parent_id.as_str()),
        otel.trace_flags = 1u64,
        otel.status_code = Empty,
        http.request.method = method,
        http.route = known.then_some(route),
        url.path = req.uri().path(),
        pavilion.request_id = request_id,
        http.response.status_code = Empty,
    );
    (span, Some(SpanIds { trace_id, span_id }))
}

/// Ends the span's record with the response status (a 5xx is the
/// server's error; a 4xx is the client's and leaves the status unset, as
/// the conventions say for server spans).
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", u64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// `pavilion_trace_spans_total`: what became of the spans the exporter
/// was given, so that lost traces show on a dashboard and not only in the
/// log's once-a-minute warning.
pub(super) fn render_spans(out: &mut String, totals: pavilion_telemetry::SpanTotals) {
    use std::fmt::Write;
    let name = "pavilion_trace_spans_total";
    super::expose::header(
        out,
        name,
        "counter",
        "Finished trace spans by result: exported (the collector took them), dropped (the queue was full), failed (their batch was not accepted).",
    );
    for (result, n) in [
        ("exported", totals.exported),
        ("dropped", totals.dropped),
        ("failed", totals.failed),
    ] {
        let _ = writeln!(out, "{name}{{result=\"{result}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn with_traceparent(v: &str) -> Request {
        http::Request::builder()
            .header("traceparent", v)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn only_a_valid_traceparent_is_read() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            traceparent(&with_traceparent(good)),
            Some(TraceParent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                parent_id: "00f067aa0ba902b7".into(),
                flags: 1,
            })
        );
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(
            traceparent(&with_traceparent(unsampled)).map(|t| t.flags),
            Some(0)
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "garbage",
        ] {
            assert_eq!(traceparent(&with_traceparent(bad)), None, "{bad}");
        }
    }

    #[test]
    fn without_a_subscriber_for_it_no_span_is_made() {
        let req = with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let (span, ids) = request_span(
            &req,
            "GET",
            "/v2/",
            "r1",
            traceparent(&req).as_ref(),
            &TraceSampler::default(),
        );
        assert!(span.is_disabled());
        assert!(ids.is_none());
    }

    #[test]
    fn the_sampler_follows_the_caller_or_the_ratio_of_trace_ids() {
        let id = |low: u64| low;
        let caller = |flags: u8| TraceParent {
            trace_id: format!("{:016x}{:016x}", 1u64, 0u64),
            parent_id: "00f067aa0ba902b7".into(),
            flags,
        };
        let on = TraceSampler::default();
        assert!(on.sampled(id(u64::MAX), None));
        assert!(!on.sampled(id(0), Some(&caller(0))));
        let tenth = TraceSampler {
            parent_based: true,
            ratio: 0.1,
        };
        assert!(tenth.sampled(id(0), None));
        assert!(!tenth.sampled(id(u64::MAX), None));
        assert!(tenth.sampled(id(u64::MAX), Some(&caller(1))));
        // About a tenth of evenly spread ids.
        let n = (0..1000u64)
            .filter(|i| tenth.sampled(id(i.wrapping_mul(u64::MAX / 1000)), None))
            .count();
        assert!((90..=110).contains(&n), "{n}");
        let never = TraceSampler {
            parent_based: false,
            ratio: 0.0,
        };
        assert!(!never.sampled(id(0), Some(&caller(1))));
        assert_eq!(low_bytes(&format!("{:016x}{:016x}", 1u64, 7u64)), 7);
        let fresh = fresh_id();
        assert!(fresh as u64 != 0 && (fresh >> 64) != 0 && fresh != fresh_id());
    }
}
