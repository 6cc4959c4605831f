//! A small OTLP/HTTP trace receiver on a loopback port: it decodes each
//! `POST /v1/traces` body with the OpenTelemetry project's own generated
//! messages (`opentelemetry-proto`, not the server's structs, so a wrong
//! field number in the server shows up here) and keeps the spans.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One received span with its resource's attributes.
#[derive(Clone, Debug)]
pub struct Received {
    /// The span as decoded.
    pub span: Span,
    /// Its resource's attributes (`service.name`, ...).
    pub resource: Vec<KeyValue>,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    spans: Vec<Received>,
    /// Content types of the export requests.
    content_types: Vec<String>,
    /// Bodies that did not decode.
    undecodable: usize,
}

/// A running receiver; stops when dropped with the test's runtime.
pub struct Collector {
    /// `http://127.0.0.1:PORT`, the collector's base URL.
    pub base: String,
    seen: Arc<Mutex<Seen>>,
}

impl Collector {
    /// Listens on a free loopback port.
    pub async fn start() -> Collector {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let kept = seen.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: http::HeaderMap, body: bytes::Bytes| {
                let kept = kept.clone();
                async move {
                    let mut seen = kept.lock().unwrap();
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    seen.content_types.push(ct);
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(req) => {
                            for rs in req.resource_spans {
                                let resource =
                                    rs.resource.map(|r| r.attributes).unwrap_or_default();
                                for ss in rs.scope_spans {
                                    for span in ss.spans {
                                        seen.spans.push(Received {
                                            span,
                                            resource: resource.clone(),
                                        });
                                    }
                                }
                            }
                        }
                        Err(_) => seen.undecodable += 1,
                    }
                    // An empty ExportTraceServiceResponse: full success.
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector { base, seen }
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.seen.lock().unwrap().spans.clone()
    }

    /// Content types the exports came with, and how many did not decode.
    pub fn requests(&self) -> (Vec<String>, usize) {
        let s = self.seen.lock().unwrap();
        (s.content_types.clone(), s.undecodable)
    }

    /// Waits (at most `limit`) until `done` holds of the spans received.
    pub async fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let until = std::time::Instant::now() + limit;
        loop {
            let spans = self.spans();
            if done(&spans) || std::time::Instant::now() > until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The value of attribute `key`, if any.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

/// The string attribute `key`.
pub fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The integer attribute `key`.
pub fn attr_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// Lowercase hex of an id.
pub fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
