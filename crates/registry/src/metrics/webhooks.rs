//! Webhook delivery counts and lag, by webhook. The names come from the
//! configuration, so the series are as few as the webhooks configured.

use super::expose::{header, labels};
use super::Metrics;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Deliveries by (webhook, result) and lag by webhook.
#[derive(Debug, Default)]
pub(crate) struct WebhookStats {
    deliveries: Mutex<BTreeMap<(String, &'static str), u64>>,
    lag: Mutex<BTreeMap<String, i64>>,
}

impl Metrics {
    /// An attempt to deliver to `webhook` ended: `delivered`, `failed`
    /// (one attempt) or `dead` (the event was dead-lettered).
    pub fn webhook_delivery(&self, webhook: &str, result: &'static str) {
        let mut m = self
            .webhooks
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m.entry((webhook.to_string(), result)).or_default() += 1;
    }

    /// Events in the feed after `webhook`'s cursor, as this replica (the
    /// one delivering it) last saw.
    pub fn webhook_lag(&self, webhook: &str, lag: i64) {
        let mut m = self.webhooks.lag.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(webhook.to_string(), lag);
    }
}

impl WebhookStats {
    /// This module's families.
    pub(crate) fn render(&self, out: &mut String) {
        let name = "pavilion_webhook_deliveries_total";
        header(
            out,
            name,
            "counter",
            "Webhook delivery attempts by webhook and result (dead: the event was dead-lettered).",
        );
        let d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        for ((w, r), n) in d.iter() {
            let _ = writeln!(
                out,
                "{name}{} {n}",
                labels(&[("webhook", w), ("result", r)])
            );
        }
        drop(d);
        let name = "pavilion_webhook_lag_events";
        header(
            out,
            name,
            "gauge",
            "Events after each webhook's cursor, on the replica delivering it.",
        );
        let l = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        for (w, n) in l.iter() {
            let _ = writeln!(out, "{name}{} {n}", labels(&[("webhook", w)]));
        }
    }
}
