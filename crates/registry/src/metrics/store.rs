//! What the blob store and the metadata database report through
//! `pavilion_store::StoreObserver`: backend request times, Pavilion's own
//! retries, bytes each way, and metadata query times; plus the database
//! connection pool, read when scraped.

use super::counts::{Counts, Histograms};
use super::expose::{header, histogram, labels};
use super::histogram::{QUERY_BUCKETS, REQUEST_BUCKETS};
use super::Metrics;
use pavilion_store::{Direction, PoolFigures, StoreObserver};
use std::fmt::Write;

/// Backend and operation, as the store names them.
type Op = (&'static str, &'static str);

/// The store's figures.
#[derive(Debug)]
pub(crate) struct StoreStats {
    requests: Histograms<Op>,
    retries: Counts<Op>,
    bytes: Counts<(&'static str, &'static str)>,
    queries: Histograms<&'static str>,
}

impl Default for StoreStats {
    fn default() -> Self {
        StoreStats {
            requests: Histograms::new(REQUEST_BUCKETS),
            retries: Counts::default(),
            bytes: Counts::default(),
            queries: Histograms::new(QUERY_BUCKETS),
        }
    }
}

impl StoreObserver for Metrics {
    fn store_request(&self, backend: &'static str, operation: &'static str, seconds: f64) {
        self.store.requests.observe((backend, operation), seconds);
    }

    fn store_retry(&self, backend: &'static str, operation: &'static str) {
        self.store.retries.add((backend, operation), 1);
    }

    fn store_bytes(&self, backend: &'static str, direction: Direction, bytes: u64) {
        self.store.bytes.add((backend, direction.as_str()), bytes);
    }

    fn db_query(&self, operation: &'static str, seconds: f64) {
        self.store.queries.observe(operation, seconds);
    }
}

impl StoreStats {
    /// The store's families.
    pub(crate) fn render(&self, out: &mut String) {
        let name = "pavilion_store_request_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Requests to the blob backend by operation (object storage: as object_store made them, its own retries included).",
        );
        for ((backend, op), h) in self.requests.sorted() {
            histogram(out, name, &[("backend", backend), ("operation", op)], &h);
        }
        let name = "pavilion_store_retries_total";
        header(
            out,
            name,
            "counter",
            "Requests to the blob backend Pavilion made again (object_store's internal retries are not visible).",
        );
        for ((backend, op), n) in self.retries.sorted() {
            let l = labels(&[("backend", backend), ("operation", op)]);
            let _ = writeln!(out, "{name}{l} {n}");
        }
        let name = "pavilion_store_bytes_total";
        header(
            out,
            name,
            "counter",
            "Bytes read from and written to the blob backend.",
        );
        for ((backend, dir), n) in self.bytes.sorted() {
            let l = labels(&[("backend", backend), ("direction", dir)]);
            let _ = writeln!(out, "{name}{l} {n}");
        }
        let name = "pavilion_db_query_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Metadata database operations on the request path, by operation.",
        );
        for (op, h) in self.queries.sorted() {
            histogram(out, name, &[("operation", op)], &h);
        }
    }
}

/// The connection pool, as it stands (no query: sqlx keeps the counts).
pub(crate) fn render_pool(out: &mut String, p: PoolFigures) {
    let name = "pavilion_db_pool_connections";
    header(
        out,
        name,
        "gauge",
        "Metadata database connections open in this process, idle or in use.",
    );
    let in_use = p.open.saturating_sub(p.idle);
    for (state, n) in [("idle", p.idle), ("in_use", in_use)] {
        let _ = writeln!(out, "{name}{} {n}", labels(&[("state", state)]));
    }
    let name = "pavilion_db_pool_max_connections";
    header(out, name, "gauge", "The most connections the pool opens.");
    let _ = writeln!(out, "{name} {}", p.max);
}
