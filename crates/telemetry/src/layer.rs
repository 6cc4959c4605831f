//! The `tracing` layer that records the spans Pavilion marks for export
//! (target [`TARGET`]) as OTLP spans and queues each one as it closes.
//!
//! Libraries only write `tracing::info_span!(target: "pavilion::otel",
//! ...)`: without this layer no subscriber is interested in that target,
//! so the span is a disabled one and costs an atomic load.
//!
//! The spans are made at INFO, not TRACE, because a span's level is also
//! what every other call site in the process is first compared with: the
//! most verbose level any filter enables becomes the global one. At TRACE
//! this layer's filter made every library's `debug!` and `trace!` (and
//! every `log` record, which has no call-site cache) go through the
//! filters on each call, about 5% of a cached manifest GET (callgrind,
//! bench/observability); at INFO it raises nothing `serve`'s default log
//! level does not already enable.
//! A few fields steer the span rather than describe it:
//!
//! - `otel.name`: the span's name (else the span's own, e.g. `store.hash`);
//! - `otel.kind`: `server`, `client` or `internal` (the default);
//! - `otel.trace_id`, `otel.span_id`, `otel.parent_id` (hex),
//!   `otel.trace_flags` (number): a server span continuing a caller's
//!   trace sets them; other spans inherit the trace from their parent
//!   span, or start one;
//! - `otel.status_code` (`error` or `ok`), `otel.status_message`.
//!
//! Every other field becomes an attribute under its own name.

use crate::export::Queue;
use crate::ids;
use crate::proto::{self, KeyValue, SpanKind, StatusCode, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of the spans this layer exports.
pub const TARGET: &str = "pavilion::otel";

/// The W3C "sampled" flag: a caller that did not sample its trace does not
/// want our part of it either (the parent-based choice OpenTelemetry SDKs
/// make by default).
const SAMPLED: u8 = 1;

/// See the module docs.
pub struct OtlpLayer {
    queue: Queue,
}

impl OtlpLayer {
    /// A layer that queues finished spans on `queue`.
    pub fn new(queue: Queue) -> OtlpLayer {
        OtlpLayer { queue }
    }
}

/// A span being recorded, kept in the span's extensions.
struct Open {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_id: Option<[u8; 8]>,
    flags: u8,
    name: String,
    kind: SpanKind,
    start: u64,
    fields: Fields,
}

/// What a span's fields said.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    kind: Option<SpanKind>,
    trace_id: Option<[u8; 16]>,
    span_id: Option<[u8; 8]>,
    parent_id: Option<[u8; 8]>,
    flags: Option<u8>,
    status: Option<StatusCode>,
    status_message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Fields {
    /// Sets an attribute; a later record of the same field replaces it
    /// (OTLP keys are unique).
    fn set(&mut self, key: &str, value: Value) {
        match self.attributes.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => *kv = KeyValue::new(key, value),
            None => self.attributes.push(KeyValue::new(key, value)),
        }
    }

    /// Takes what a later record says about the span itself.
    fn merge(&mut self, later: Fields) {
        for kv in later.attributes {
            if let Some(v) = kv.value.and_then(|v| v.value) {
                self.set(&kv.key, v);
            }
        }
        self.name = later.name.or(self.name.take());
        self.status = later.status.or(self.status);
        self.status_message = later.status_message.or(self.status_message.take());
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "otel.name" => self.name = Some(value.to_string()),
            "otel.kind" => {
                self.kind = Some(match value {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    _ => SpanKind::Internal,
                })
            }
            "otel.trace_id" => self.trace_id = ids::parse(value),
            "otel.span_id" => self.span_id = ids::parse(value),
            "otel.parent_id" => self.parent_id = ids::parse(value),
            "otel.status_code" => {
                self.status = match value {
                    "error" | "ERROR" => Some(StatusCode::Error),
                    "ok" | "OK" => Some(StatusCode::Ok),
                    _ => None,
                }
            }
            "otel.status_message" => self.status_message = Some(value.to_string()),
            key => self.set(key, Value::String(value.to_string())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "otel.trace_flags" {
            self.flags = Some((value & 0xff) as u8);
            return;
        }
        // OTLP integers are signed; a count beyond i64 is saturated.
        self.set(
            field.name(),
            Value::Int(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::Double(value));
    }
}

/// Now, in nanoseconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        // The nearest enclosing span this layer records (explicit parent,
        // else the current one): its trace, unless the fields name one.
        let inherited = span.parent().and_then(|p| {
            p.extensions()
                .get::<Open>()
                .map(|o| (o.trace_id, o.span_id, o.flags))
        });
        let (trace_id, parent_id, flags) = match (fields.trace_id, inherited) {
            (Some(t), _) => (t, fields.parent_id, fields.flags.unwrap_or(SAMPLED)),
            (None, Some((t, p, f))) => (t, Some(p), f),
            // Outside any recorded span: a request that was not sampled
            // (its span is not made at all), or work outside requests.
            // Not recorded: a child must not turn into a trace of its own.
            (None, None) => return,
        };
        let open = Open {
            trace_id,
            span_id: fields.span_id.unwrap_or_else(ids::new_span_id),
            parent_id,
            flags,
            name: fields
                .name
                .take()
                .unwrap_or_else(|| span.name().to_string()),
            kind: fields.kind.unwrap_or(SpanKind::Internal),
            start: now(),
            fields,
        };
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut later = Fields::default();
        values.record(&mut later);
        if let Some(open) = span.extensions_mut().get_mut::<Open>() {
            if let Some(name) = later.name.take() {
                open.name = name;
            }
            open.fields.merge(later);
        };
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        if open.flags & SAMPLED == 0 {
            return;
        }
        let status = open.fields.status.map(|code| proto::Status {
            message: open.fields.status_message.clone().unwrap_or_default(),
            code: code as i32,
        });
        self.queue.offer(proto::Span {
            trace_id: open.trace_id.to_vec(),
            span_id: open.span_id.to_vec(),
            parent_span_id: open.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
            name: open.name,
            kind: open.kind as i32,
            start_time_unix_nano: open.start,
            end_time_unix_nano: now().max(open.start),
            attributes: open.fields.attributes,
            status,
            flags: u32::from(open.flags),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{channel, Batching};
    use tracing_subscriber::layer::SubscriberExt;

    fn attr(s: &proto::Span, key: &str) -> Option<Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    #[test]
    fn children_inherit_the_trace_and_steering_fields_are_not_attributes() {
        let url = reqwest::Url::parse("http://127.0.0.1:9/v1/traces").unwrap();
        let (queue, mut exporter) = channel(
            reqwest::Client::new(),
            url,
            Default::default(),
            Default::default(),
            Batching::default(),
        );
        let subscriber = tracing_subscriber::registry()
            .with(OtlpLayer::new(queue).with_filter(crate::targets()));
        tracing::subscriber::with_default(subscriber, || {
            let server = tracing::info_span!(
                target: "pavilion::otel",
                "request",
                otel.name = "PUT /v2/{name}/manifests/{reference}",
                otel.kind = "server",
                otel.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                otel.span_id = "1111111111111111",
                otel.parent_id = "00f067aa0ba902b7",
                otel.trace_flags = 1u64,
                http.response.status_code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            server.in_scope(|| {
                // A span of another target in between is not a parent.
                let _other = tracing::info_span!("not exported").entered();
                drop(tracing::info_span!(target: "pavilion::otel", "store.hash", pavilion.bytes = 3u64));
            });
            server.record("http.response.status_code", 500u64);
            server.record("otel.status_code", "error");
            drop(server);
            let unsampled = tracing::info_span!(
                target: "pavilion::otel",
                "request",
                otel.trace_id = "4bf92f3577b34da6a3ce929d0e0e4737",
                otel.trace_flags = 0u64,
            );
            unsampled.in_scope(|| drop(tracing::info_span!(target: "pavilion::otel", "child")));
        });
        let child = exporter.rx.try_recv().unwrap();
        let server = exporter.rx.try_recv().unwrap();
        assert!(
            exporter.rx.try_recv().is_err(),
            "unsampled spans are not exported"
        );
        assert_eq!(server.name, "PUT /v2/{name}/manifests/{reference}");
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(
            ids::hex(&server.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(ids::hex(&server.span_id), "1111111111111111");
        assert_eq!(ids::hex(&server.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(server.flags, 1);
        assert_eq!(
            attr(&server, "http.response.status_code"),
            Some(Value::Int(500))
        );
        assert_eq!(
            server.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        assert!(server
            .attributes
            .iter()
            .all(|kv| !kv.key.starts_with("otel.")));
        assert_eq!(child.name, "store.hash");
        assert_eq!(child.kind, SpanKind::Internal as i32);
        assert_eq!(child.trace_id, server.trace_id);
        assert_eq!(child.parent_span_id, server.span_id);
        assert_eq!(attr(&child, "pavilion.bytes"), Some(Value::Int(3)));
        assert!(child.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= server.end_time_unix_nano);
    }
}
