//! The queue between the layer and the exporter, and the exporter: one
//! task that batches finished spans and posts them to the collector.
//!
//! A request never waits for telemetry: the layer hands a finished span
//! over with `try_send` on a bounded queue, and a span that does not fit
//! (the collector is slow or away, so the exporter is not draining) is
//! dropped and counted. A batch that cannot be delivered is dropped too,
//! not retried: the next batches would queue up behind it. Both losses
//! are warned about at most once a minute, with their running totals.

use crate::proto::{
    ExportTraceServiceRequest, InstrumentationScope, Resource, ResourceSpans, ScopeSpans, Span,
};
use prost::Message;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long one export may take (the OTLP default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest time between two warnings about lost spans.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What became of the spans the layer finished, for the warnings and for
/// `/metrics` (`pavilion_trace_spans_total`).
#[derive(Debug, Default)]
pub struct SpanCounts {
    /// Accepted by the collector.
    exported: AtomicU64,
    /// Not queued: the queue was full (or the exporter had stopped).
    dropped: AtomicU64,
    /// In a batch the collector did not accept (or never answered).
    failed: AtomicU64,
}

impl SpanCounts {
    /// Spans exported, dropped and failed so far.
    pub fn totals(&self) -> SpanTotals {
        SpanTotals {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A reading of [`SpanCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanTotals {
    pub exported: u64,
    pub dropped: u64,
    pub failed: u64,
}

/// The layer's end of the queue.
pub struct Queue {
    tx: mpsc::Sender<Span>,
    counts: Arc<SpanCounts>,
}

impl Queue {
    /// Queues a finished span, or drops and counts it when the queue is
    /// full (or the exporter has stopped).
    pub fn offer(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How the exporter batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most spans waiting in the queue.
    pub max_queue: usize,
    /// Most spans in one export.
    pub max_batch: usize,
    /// Longest a finished span waits before it is sent.
    pub delay: Duration,
}

impl Default for Batching {
    /// The OpenTelemetry specification's defaults.
    fn default() -> Self {
        Batching {
            max_queue: 2048,
            max_batch: 512,
            delay: Duration::from_millis(5000),
        }
    }
}

/// The exporter's end: run it with [`Exporter::run`] on the runtime.
pub struct Exporter {
    pub(crate) rx: mpsc::Receiver<Span>,
    counts: Arc<SpanCounts>,
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    resource: Resource,
    batching: Batching,
    /// Dropped spans already warned about.
    dropped_seen: u64,
    warned: Option<Instant>,
}

/// A queue and the exporter that drains it.
pub fn channel(
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    resource: Resource,
    batching: Batching,
) -> (Queue, Exporter) {
    let (tx, rx) = mpsc::channel(batching.max_queue.max(1));
    let counts = Arc::new(SpanCounts::default());
    let queue = Queue {
        tx,
        counts: counts.clone(),
    };
    let exporter = Exporter {
        rx,
        counts,
        client,
        endpoint,
        headers,
        resource,
        batching,
        dropped_seen: 0,
        warned: None,
    };
    (queue, exporter)
}

impl Exporter {
    /// The counts of what became of the spans, to read while it runs.
    pub fn counts(&self) -> Arc<SpanCounts> {
        self.counts.clone()
    }

    /// Sends batches until `stop` completes, then what is queued at that
    /// moment (bound the whole with a timeout: a collector that does not
    /// answer holds the last export for up to 10 s).
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut batch = Vec::with_capacity(self.batching.max_batch);
        let mut tick = tokio::time::interval(self.batching.delay);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                got = self.rx.recv() => match got {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= self.batching.max_batch {
                            self.send(&mut batch).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.send(&mut batch).await;
                    }
                    self.notice_drops();
                }
            }
        }
        while let Ok(span) = self.rx.try_recv() {
            batch.push(span);
            if batch.len() >= self.batching.max_batch {
                self.send(&mut batch).await;
            }
        }
        if !batch.is_empty() {
            self.send(&mut batch).await;
        }
        self.notice_drops();
    }

    /// Posts `batch` (emptied). Encoding a batch takes microseconds: it is
    /// done here rather than on a blocking thread.
    async fn send(&mut self, batch: &mut Vec<Span>) {
        let n = batch.len() as u64;
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "pavilion".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }),
                    spans: std::mem::take(batch),
                }],
            }],
        }
        .encode_to_vec();
        let sent = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .timeout(EXPORT_TIMEOUT)
            .body(body)
            .send()
            .await;
        let failure = match sent {
            // Read to the end, so the connection can carry the next one.
            Ok(r) if r.status().is_success() => r.bytes().await.err().map(|e| chain(&e)),
            Ok(r) => Some(format!("the collector answered {}", r.status())),
            Err(e) => Some(chain(&e)),
        };
        match failure {
            None => self.counts.exported.fetch_add(n, Ordering::Relaxed),
            Some(why) => {
                self.counts.failed.fetch_add(n, Ordering::Relaxed);
                self.warn(&why);
                0
            }
        };
    }

    /// Warns when spans were dropped since the last look.
    fn notice_drops(&mut self) {
        if self.counts.dropped.load(Ordering::Relaxed) > self.dropped_seen {
            self.warn("the span queue was full");
        }
    }

    /// One warning a minute at most: a collector that is away for an hour
    /// must not fill the log.
    fn warn(&mut self, why: &str) {
        if self.warned.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return;
        }
        self.warned = Some(Instant::now());
        self.dropped_seen = self.counts.dropped.load(Ordering::Relaxed);
        tracing::warn!(
            endpoint = %self.endpoint,
            failed_spans = self.counts.failed.load(Ordering::Relaxed),
            dropped_spans = self.dropped_seen,
            "traces are being lost: {why}; requests are not affected \
             (this warning repeats at most once a minute)"
        );
    }
}

/// An error with its causes, which reqwest keeps in its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            name: "x".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let batching = Batching {
            max_queue: 4,
            ..Batching::default()
        };
        let url = reqwest::Url::parse("http://127.0.0.1:9/v1/traces").unwrap();
        let (queue, exporter) = channel(
            reqwest::Client::new(),
            url,
            HeaderMap::new(),
            Resource::default(),
            batching,
        );
        // Nothing drains: the exporter is not running.
        for _ in 0..10 {
            queue.offer(span());
        }
        let counts = exporter.counts();
        assert_eq!(counts.totals().dropped, 6);
        drop(exporter);
        queue.offer(span());
        assert_eq!(
            counts.totals(),
            SpanTotals {
                exported: 0,
                dropped: 7,
                failed: 0
            }
        );
    }
}
