//! One webhook's delivery task: while this replica holds the webhook's
//! lease, it sends the events after the cursor one at a time in sequence
//! order (queued dead letters first), each until it is delivered or has
//! used its attempts, and moves the cursor past it. Order per webhook
//! implies order per repository; one event in flight at a time is what
//! makes it hold.
//!
//! It polls the database, as the feed's stream does: other replicas write
//! the same log, and a poll finds their events as well as this one's.

use super::WebhookConfig;
use crate::state::AppState;
use http::{HeaderMap, HeaderName, HeaderValue};
use pavilion_store::{Event, EventQuery, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an idle webhook waits before asking the database again.
const POLL: Duration = Duration::from_millis(250);
/// How long a replica that does not hold the lease waits before asking
/// for it again.
const LEASE_RETRY: Duration = Duration::from_secs(1);
/// Lease length beyond two attempts' timeouts: long enough that an
/// attempt in flight never outlives it, short enough that a dead
/// replica's webhooks move to another within a minute or so.
const LEASE_BASE: Duration = Duration::from_secs(30);
/// Events read per query.
const PAGE: i64 = 100;
/// Most of a receiver's answer read: enough to reuse the connection for a
/// short body; the rest is dropped with the connection.
const MAX_ANSWER_BYTES: usize = 4096;
/// Longest single sleep between attempts: the lease is renewed between.
const SLEEP_SLICE: Duration = Duration::from_secs(5);

/// How an event's delivery ended.
enum Outcome {
    Delivered,
    /// Every attempt failed: attempts made and the last reason.
    Dead(u32, String),
    /// The lease was lost or the server is stopping: nothing to record;
    /// whoever delivers next sends it again (at least once).
    Interrupted,
}

struct Deliverer {
    state: Arc<AppState>,
    hook: Arc<WebhookConfig>,
    holder: String,
    client: reqwest::Client,
    lease: Duration,
    /// When this replica's lease ends, by its own clock, while it holds it.
    held_until: Option<Instant>,
    /// When not holding: the earliest time to ask again.
    next_ask: Instant,
}

/// Runs `hook`'s delivery until the feed stops, then gives the lease up.
pub async fn run(state: Arc<AppState>, hook: Arc<WebhookConfig>) {
    // Never follow a redirect: the receiver is what the configuration
    // names, and a 3xx is a failed attempt like any other non-2xx.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(hook.timeout)
        .connect_timeout(hook.timeout)
        .user_agent(concat!("pavilion-webhook/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(webhook = %hook.name, error = %e, "webhook: no HTTP client; not delivering");
            return;
        }
    };
    let holder = state.webhooks.holder.clone();
    let mut d = Deliverer {
        lease: LEASE_BASE + hook.timeout * 2,
        state,
        hook,
        holder,
        client,
        held_until: None,
        next_ask: Instant::now(),
    };
    let stop = d.state.feed.stop.clone();
    let mut written = d.state.meta.events_written();
    while !stop.is_cancelled() {
        let (pause, wake) = match d.round().await {
            Ok(true) => continue,
            Ok(false) => (POLL, true),
            Err(e) => {
                tracing::warn!(webhook = %d.hook.name, error = %e, "webhook: database error; retrying");
                (LEASE_RETRY, false)
            }
        };
        // Idle: an event committed through this replica wakes the loop at
        // once; the timer is for other replicas' events.
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = written.changed(), if wake => {}
            () = stop.cancelled() => break,
        }
    }
    if d.held_until.is_some() {
        let _ = d.state.meta.webhook_release(&d.hook.name, &d.holder).await;
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Exponential backoff with jitter: the `n`th wait (from 1) is drawn
/// between half and all of `initial * 2^(n-1)`, capped at `max`, so
/// replicas' receivers coming back are not hit by every sender at once.
fn backoff(hook: &WebhookConfig, n: u32) -> Duration {
    let full = hook
        .retry_initial
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(hook.retry_max);
    let half = full / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    // A v4 UUID's bits are random: no generator of our own to seed.
    let r = (uuid::Uuid::new_v4().as_u128() as u64) % spread;
    half + Duration::from_millis(r)
}

impl Deliverer {
    /// Holds (takes or renews) the lease when due; whether it is held.
    async fn hold(&mut self) -> Result<bool, StoreError> {
        let now = Instant::now();
        match self.held_until {
            Some(until) if until > now + self.lease / 2 => return Ok(true),
            None if now < self.next_ask => return Ok(false),
            _ => {}
        }
        let ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let until = pavilion_store::now_millis().saturating_add(ms);
        if self
            .state
            .meta
            .webhook_lease(&self.hook.name, &self.holder, until)
            .await?
        {
            if self.held_until.is_none() {
                tracing::info!(webhook = %self.hook.name, holder = %self.holder, "webhook: delivering from this replica");
            }
            self.held_until = Some(now + self.lease);
            Ok(true)
        } else {
            self.held_until = None;
            self.next_ask = now + LEASE_RETRY;
            Ok(false)
        }
    }

    /// One round: queued dead letters, else a page of new events. Whether
    /// there may be more to do at once.
    async fn round(&mut self) -> Result<bool, StoreError> {
        if !self.hold().await? {
            return Ok(false);
        }
        let meta = self.state.meta.clone();
        let name = self.hook.name.clone();
        let queued = meta.webhook_dead_letters(&name, 0, PAGE, true).await?;
        if !queued.is_empty() {
            for dl in queued {
                let Some(e) = event_at(&self.state, dl.seq).await? else {
                    tracing::warn!(webhook = %name, seq = dl.seq, "webhook: dead letter's event was pruned by retention; dropping it");
                    meta.webhook_resolve(&name, &self.holder, dl.seq).await?;
                    continue;
                };
                match self.attempts(&e).await? {
                    Outcome::Delivered => {
                        if !meta.webhook_resolve(&name, &self.holder, dl.seq).await? {
                            // The lease went: the next holder sends it again.
                            self.held_until = None;
                            return Ok(false);
                        }
                    }
                    Outcome::Dead(n, why) => {
                        self.state.metrics.webhook_delivery(&name, "dead");
                        let kept = meta
                            .webhook_bury(&name, &self.holder, e.seq, i64::from(n), &why, None)
                            .await?;
                        if !kept {
                            self.held_until = None;
                            return Ok(false);
                        }
                    }
                    Outcome::Interrupted => return Ok(false),
                }
            }
            return Ok(true);
        }
        let Some(st) = meta.webhook_state(&name).await? else {
            // Registered at start; gone only if someone deleted the row.
            meta.webhook_register(&name).await?;
            return Ok(false);
        };
        let mut cursor = st.delivered;
        // Read before the page: every event up to `end` is visible once
        // `end` is (numbers are handed out in commit order), so a page
        // that is not full covers every matching event up to `end`.
        let end = meta.last_event_seq().await?;
        let rows = meta
            .events_after(&EventQuery {
                after: cursor,
                limit: PAGE,
                types: self.hook.types.clone(),
            })
            .await?;
        let full = rows.len() as i64 == PAGE;
        let last_read = rows.last().map(|e| e.seq);
        let hook = self.hook.clone();
        for e in rows.iter().filter(|e| hook.wants(e)) {
            let moved = match self.attempts(e).await? {
                Outcome::Delivered => {
                    meta.webhook_advance(&name, &self.holder, cursor, e.seq)
                        .await?
                }
                Outcome::Dead(n, why) => {
                    self.state.metrics.webhook_delivery(&name, "dead");
                    tracing::warn!(webhook = %name, seq = e.seq, attempts = n, error = %why, "webhook: event dead-lettered");
                    meta.webhook_bury(&name, &self.holder, e.seq, i64::from(n), &why, Some(cursor))
                        .await?
                }
                Outcome::Interrupted => return Ok(false),
            };
            if !moved {
                // A replay moved the cursor, or the lease went: read again.
                self.held_until = None;
                return Ok(true);
            }
            cursor = e.seq;
        }
        // Past the events of other types and repositories too.
        let to = if full {
            last_read.unwrap_or(cursor)
        } else {
            last_read.unwrap_or(cursor).max(end)
        };
        if to > cursor
            && !meta
                .webhook_advance(&name, &self.holder, cursor, to)
                .await?
        {
            self.held_until = None;
            return Ok(true);
        }
        let lag = end.saturating_sub(to.max(cursor)).max(0);
        self.state.metrics.webhook_lag(&name, lag);
        Ok(full || last_read.is_some_and(|s| s > st.delivered))
    }

    /// Sends `e` until delivered, out of attempts, or interrupted.
    async fn attempts(&mut self, e: &Event) -> Result<Outcome, StoreError> {
        let stop = self.state.feed.stop.clone();
        let mut n = 0;
        loop {
            if stop.is_cancelled() || !self.hold().await? {
                return Ok(Outcome::Interrupted);
            }
            n += 1;
            let sent = tokio::select! {
                r = self.send(e) => r,
                () = stop.cancelled() => return Ok(Outcome::Interrupted),
            };
            let why = match sent {
                Ok(()) => {
                    self.state
                        .metrics
                        .webhook_delivery(&self.hook.name, "delivered");
                    return Ok(Outcome::Delivered);
                }
                Err(why) => why,
            };
            self.state
                .metrics
                .webhook_delivery(&self.hook.name, "failed");
            tracing::debug!(webhook = %self.hook.name, seq = e.seq, attempt = n, error = %why, "webhook: attempt failed");
            self.state
                .meta
                .webhook_failed(
                    &self.hook.name,
                    &self.holder,
                    &format!("seq {}: {why}", e.seq),
                )
                .await?;
            if n >= self.hook.max_attempts {
                return Ok(Outcome::Dead(n, why));
            }
            // Sleep in slices, renewing the lease between them.
            let mut left = backoff(&self.hook, n);
            while !left.is_zero() {
                let slice = left.min(SLEEP_SLICE);
                tokio::select! {
                    () = tokio::time::sleep(slice) => {}
                    () = stop.cancelled() => return Ok(Outcome::Interrupted),
                }
                left -= slice;
                if !self.hold().await? {
                    return Ok(Outcome::Interrupted);
                }
            }
        }
    }

    /// One attempt: `Err` says why it failed.
    async fn send(&self, e: &Event) -> Result<(), String> {
        let body = serde_json::to_vec(&e.data).map_err(|x| x.to_string())?;
        let signature = super::signature_header(&self.hook.secret, unix_secs(), &body);
        let mut headers = ce_headers(e, &self.state.feed.name);
        if let Ok(v) = HeaderValue::from_str(&signature) {
            headers.insert(HeaderName::from_static(super::SIGNATURE_HEADER), v);
        }
        let resp = self
            .client
            .post(&self.hook.url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|x| describe(&x, self.hook.timeout))?;
        let status = resp.status();
        let answer = read_some(resp).await;
        if status.is_success() {
            return Ok(());
        }
        let answer: String = String::from_utf8_lossy(&answer)
            .chars()
            .take(200)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Err(format!("answered {status}: {}", answer.trim()))
    }
}

/// At most [`MAX_ANSWER_BYTES`] of a receiver's answer.
async fn read_some(mut resp: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < MAX_ANSWER_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c),
            _ => break,
        }
    }
    out.truncate(MAX_ANSWER_BYTES);
    out
}

/// A transport error in one line, with its cause.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", timeout.as_secs_f64());
    }
    let mut s = if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// The event with sequence number `seq`, if retention kept it.
async fn event_at(state: &AppState, seq: i64) -> Result<Option<Event>, StoreError> {
    let rows = state
        .meta
        .events_after(&EventQuery {
            after: seq - 1,
            limit: 1,
            types: Vec::new(),
        })
        .await?;
    Ok(rows.into_iter().next().filter(|e| e.seq == seq))
}

/// A header value as the CloudEvents HTTP binding writes one: printable
/// ASCII as is, anything else (and `"`, `%`) percent-encoded as UTF-8.
fn ce_value(s: &str) -> HeaderValue {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The event's attributes as `ce-*` headers (binary content mode): the
/// body is then the event's `data` alone.
fn ce_headers(e: &Event, source: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: &str| {
        h.insert(HeaderName::from_static(k), ce_value(v));
    };
    put("ce-specversion", "1.0");
    put("ce-id", &e.id);
    put("ce-source", &format!("/pavilion/{source}"));
    put("ce-type", &e.kind);
    if let Some(s) = &e.subject {
        put("ce-subject", s);
    }
    put("ce-time", &crate::feed::cloudevent::rfc3339(e.at));
    put("ce-pavilionschema", crate::feed::cloudevent::SCHEMA_VERSION);
    put("ce-pavilionseq", &e.seq.to_string());
    if let Some(n) = e.repo_seq {
        put("ce-pavilionreposeq", &n.to_string());
    }
    if let Some(a) = &e.actor {
        put("ce-pavilionactor", a);
    }
    if let Some(t) = &e.traceparent {
        put("ce-traceparent", t);
    }
    put("content-type", "application/json");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_percent_encoded_outside_printable_ascii() {
        assert_eq!(ce_value("team/app:v1"), "team/app:v1");
        assert_eq!(ce_value("é\"%"), "%C3%A9%22%25");
        assert_eq!(ce_value("a\nb"), "a%0Ab");
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let hook = WebhookConfig {
            name: "a".into(),
            url: "http://h/".into(),
            repositories: vec![],
            types: vec![],
            secret: vec![],
            max_attempts: 12,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
        };
        for n in 1..40 {
            let d = backoff(&hook, n);
            let full = Duration::from_secs(1 << (n - 1).min(20)).min(Duration::from_secs(60));
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
    }
}
