//! OpenTelemetry traces for Pavilion (issue 18): spans that libraries mark
//! with the target [`TARGET`] are recorded by [`OtlpLayer`] and posted by
//! an [`Exporter`] to an OTLP/HTTP collector as protobuf.
//!
//! Hand-written rather than built on the `opentelemetry` SDK: Pavilion
//! needs one signal, one protocol and one encoding, and a span source it
//! already has (`tracing`); the messages are a handful of `prost` structs,
//! and the queue, batching and warnings are ours to bound (see
//! docs/ARCHITECTURE.md, "Observability").

pub mod access;
pub mod config;
pub mod export;
pub mod ids;
pub mod layer;
pub mod proto;
pub mod time;

pub use config::{resolve, ConfigError, Settings, Sources};
pub use export::{Exporter, Queue, SpanCounts, SpanTotals};
pub use layer::{OtlpLayer, TARGET};

use tracing_subscriber::filter::Targets;

/// The layer and its exporter for `settings`. Building the HTTP client
/// only fails when the TLS roots cannot be read.
pub fn pipeline(settings: &Settings) -> Result<(OtlpLayer, Exporter), reqwest::Error> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resource = proto::Resource {
        attributes: vec![
            proto::KeyValue::new(
                "service.name",
                proto::Value::String(settings.service_name.clone()),
            ),
            proto::KeyValue::new(
                "service.version",
                proto::Value::String(env!("CARGO_PKG_VERSION").into()),
            ),
        ],
    };
    let (queue, exporter) = export::channel(
        client,
        settings.endpoint.clone(),
        settings.headers.clone(),
        resource,
        settings.batching,
    );
    Ok((OtlpLayer::new(queue), exporter))
}

/// The filter to put on [`OtlpLayer`]: only the spans marked for export,
/// so that other spans and events cost it nothing, at INFO (see the
/// layer's docs for why not TRACE).
pub fn targets() -> Targets {
    Targets::new().with_target(TARGET, tracing::Level::INFO)
}
