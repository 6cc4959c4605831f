//! What the registry decided and did besides answering requests: policy
//! decisions, signature verifications, authentication attempts, tokens
//! issued, uploads streaming, and the garbage collections this process ran.

use super::counts::{Counts, Histograms};
use super::expose::{header, histogram, labels};
use super::histogram::GC_BUCKETS;
use super::Metrics;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A policy decision's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let through.
    Allow,
    /// Refused by the rules.
    Deny,
    /// The rules could not be evaluated (refused: policies fail closed).
    Error,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Error => "error",
        }
    }
}

/// The counters of this module.
#[derive(Debug)]
pub(crate) struct Outcomes {
    decisions: Counts<(&'static str, &'static str)>,
    signatures: Counts<&'static str>,
    auth: Counts<(&'static str, &'static str)>,
    tokens: Counts<&'static str>,
    uploading: Arc<AtomicI64>,
    gc_runs: Counts<&'static str>,
    gc_deleted: Counts<&'static str>,
    gc_freed: Counts<()>,
    gc_duration: Histograms<()>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            decisions: Counts::default(),
            signatures: Counts::default(),
            auth: Counts::default(),
            tokens: Counts::default(),
            uploading: Arc::default(),
            gc_runs: Counts::default(),
            gc_deleted: Counts::default(),
            gc_freed: Counts::default(),
            gc_duration: Histograms::new(GC_BUCKETS),
        }
    }
}

/// One upload body streaming while it lives.
pub struct Uploading(Arc<AtomicI64>);

impl Drop for Uploading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one garbage collection run did, for [`Metrics::gc_run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GcRun {
    /// `ok`, `partial` (stopped on an error, resumes next time), `failed`
    /// or `skipped` (another run held the lock).
    pub result: &'static str,
    /// Seconds it took (0 when skipped).
    pub seconds: f64,
    /// Blobs deleted.
    pub blobs: u64,
    /// Manifests deleted.
    pub manifests: u64,
    /// Tags removed by retention.
    pub tags: u64,
    /// Blob links removed from repositories.
    pub links: u64,
    /// Bytes freed.
    pub bytes: u64,
}

impl Metrics {
    /// A policy decision at `point` (`push`, `pull`, `authz`, `admission`).
    pub fn policy_decision(&self, point: &'static str, verdict: Verdict) {
        self.outcomes.decisions.add((point, verdict.as_str()), 1);
    }

    /// A signature verification made for a policy decision: `verified`,
    /// `failed` (signatures stored, none verified), `error` (it could not
    /// be made) or `none` (no signature stored).
    pub fn signature_verification(&self, result: &'static str) {
        self.outcomes.signatures.add(result, 1);
    }

    /// An authentication attempt by `method` (`basic`, `bearer`,
    /// `api_key`, `workload`, `mtls`, `anonymous`) with `result` (`ok`,
    /// `denied`, `throttled`, `error`).
    pub fn auth_attempt(&self, method: &'static str, result: &'static str) {
        self.outcomes.auth.add((method, result), 1);
    }

    /// A token issued by `/token` (`access` or `refresh`).
    pub fn token_issued(&self, kind: &'static str) {
        self.outcomes.tokens.add(kind, 1);
    }

    /// An upload body starts streaming into the store; it stops when the
    /// guard is dropped (finished, failed or cancelled alike).
    pub fn uploading(&self) -> Uploading {
        self.outcomes.uploading.fetch_add(1, Ordering::Relaxed);
        Uploading(self.outcomes.uploading.clone())
    }

    /// A garbage collection run of this process's schedule ended.
    pub fn gc_run(&self, run: GcRun) {
        let o = &self.outcomes;
        o.gc_runs.add(run.result, 1);
        if run.result == "skipped" {
            return;
        }
        o.gc_duration.observe((), run.seconds);
        for (kind, n) in [
            ("blobs", run.blobs),
            ("manifests", run.manifests),
            ("tags", run.tags),
            ("links", run.links),
        ] {
            o.gc_deleted.add(kind, n);
        }
        o.gc_freed.add((), run.bytes);
    }
}

fn pairs(out: &mut String, name: &str, keys: (&str, &str), v: Vec<((&str, &str), u64)>) {
    for ((a, b), n) in v {
        let _ = writeln!(out, "{name}{} {n}", labels(&[(keys.0, a), (keys.1, b)]));
    }
}

fn singles(out: &mut String, name: &str, key: &str, v: Vec<(&str, u64)>) {
    for (a, n) in v {
        let _ = writeln!(out, "{name}{} {n}", labels(&[(key, a)]));
    }
}

impl Outcomes {
    /// This module's families.
    pub(crate) fn render(&self, out: &mut String) {
        let name = "pavilion_policy_decisions_total";
        header(
            out,
            name,
            "counter",
            "Policy decisions by point and result.",
        );
        pairs(out, name, ("point", "result"), self.decisions.sorted());
        let name = "pavilion_signature_verifications_total";
        header(
            out,
            name,
            "counter",
            "Signature verifications made for push and pull decisions, by result.",
        );
        singles(out, name, "result", self.signatures.sorted());
        let name = "pavilion_auth_attempts_total";
        header(
            out,
            name,
            "counter",
            "Authentication attempts by method and result.",
        );
        pairs(out, name, ("method", "result"), self.auth.sorted());
        let name = "pavilion_tokens_issued_total";
        header(out, name, "counter", "Tokens /token issued, by kind.");
        singles(out, name, "kind", self.tokens.sorted());
        let name = "pavilion_uploads_in_progress";
        header(
            out,
            name,
            "gauge",
            "Upload request bodies streaming into the store now, in this process.",
        );
        let _ = writeln!(out, "{name} {}", self.uploading.load(Ordering::Relaxed));
        let name = "pavilion_gc_runs_total";
        header(
            out,
            name,
            "counter",
            "Scheduled garbage collections of this process, by result.",
        );
        singles(out, name, "result", self.gc_runs.sorted());
        let name = "pavilion_gc_run_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "How long this process's scheduled garbage collections took.",
        );
        for ((), h) in self.gc_duration.sorted() {
            histogram(out, name, &[], &h);
        }
        let name = "pavilion_gc_deleted_total";
        header(
            out,
            name,
            "counter",
            "What this process's garbage collections removed, by kind.",
        );
        singles(out, name, "kind", self.gc_deleted.sorted());
        let name = "pavilion_gc_freed_bytes_total";
        header(
            out,
            name,
            "counter",
            "Bytes this process's garbage collections freed.",
        );
        for ((), n) in self.gc_freed.sorted() {
            let _ = writeln!(out, "{name} {n}");
        }
    }
}
