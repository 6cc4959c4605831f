//! A stored event as a CloudEvents 1.0 structured-mode JSON document
//! (docs/EVENTS.md is the schema's reference).
//!
//! Written by hand rather than with `cloudevents-sdk`: the structured JSON
//! form is one flat object, and the SDK would bring its own HTTP and
//! time-library stack for what is a dozen fields here.

use pavilion_store::Event;
use serde_json::{json, Map, Value};

/// The version of the `data` layout and extensions, in the
/// `pavilionschema` extension; raised when a field changes meaning or goes.
pub const SCHEMA_VERSION: &str = "1";

/// `event` as a CloudEvent whose `source` is `/pavilion/<name>`.
pub fn render(event: &Event, name: &str) -> Value {
    let mut doc = Map::new();
    doc.insert("specversion".into(), json!("1.0"));
    doc.insert("id".into(), json!(event.id));
    doc.insert("source".into(), json!(format!("/pavilion/{name}")));
    doc.insert("type".into(), json!(event.kind));
    if let Some(s) = &event.subject {
        doc.insert("subject".into(), json!(s));
    }
    doc.insert("time".into(), json!(rfc3339(event.at)));
    doc.insert("datacontenttype".into(), json!("application/json"));
    doc.insert("pavilionschema".into(), json!(SCHEMA_VERSION));
    doc.insert("pavilionseq".into(), json!(event.seq));
    if let Some(n) = event.repo_seq {
        doc.insert("pavilionreposeq".into(), json!(n));
    }
    if let Some(a) = &event.actor {
        doc.insert("pavilionactor".into(), json!(a));
    }
    if let Some(t) = &event.traceparent {
        doc.insert("traceparent".into(), json!(t));
    }
    doc.insert("data".into(), event.data.clone());
    Value::Object(doc)
}

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = pavilion_telemetry::time::civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_601_599_999), "2026-12-06T23:59:59.999Z");
    }

    #[test]
    fn a_pushed_event_has_every_required_attribute() {
        let e = Event {
            seq: 7,
            id: "0b5e".into(),
            repository: Some("team/app".into()),
            repo_seq: Some(3),
            kind: "dev.pavilion.artifact.pushed".into(),
            subject: Some("team/app@sha256:ab".into()),
            at: 0,
            actor: Some("alice".into()),
            traceparent: None,
            data: json!({"repository": "team/app"}),
        };
        let v = render(&e, "reg");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["source"], "/pavilion/reg");
        assert_eq!(v["pavilionseq"], 7);
        assert_eq!(v["pavilionreposeq"], 3);
        assert_eq!(v["pavilionactor"], "alice");
        assert!(v.get("traceparent").is_none());
        assert_eq!(v["data"]["repository"], "team/app");
    }
}
