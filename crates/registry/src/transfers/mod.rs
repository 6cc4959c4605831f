//! Blob transfers in flight, for `GET /pavilion/v1/transfers` and
//! `pavilion top` (issue 18): each upload request carrying blob bytes and
//! each blob download, with its repository, digest or upload session,
//! bytes so far, the total when the request says it, a recent rate and an
//! ETA. A 500 GiB push lasts long enough that "is it moving, and how fast"
//! is the question an operator asks.
//!
//! The tracker is memory only and per replica (each replica serves its own
//! connections). It is bounded: past [`MAX_TRACKED`] transfers, further
//! ones are counted but not listed, so a flood of requests cannot grow it.

pub mod api;

use crate::metrics::layer::Who;
pub use pavilion_oci::transfers::{Transfer as Snapshot, TransferList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most transfers listed at once.
pub const MAX_TRACKED: usize = 10_000;

/// The shortest window a rate is measured over; a reading sooner than this
/// after the previous one keeps the previous rate.
const RATE_WINDOW: Duration = Duration::from_millis(900);

/// Which way the bytes go, seen from the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Into the registry: a PATCH, PUT or POST with blob bytes.
    Upload,
    /// Out of the registry: a blob GET.
    Download,
}

/// What a request told about its transfer before any byte moved.
#[derive(Debug, Clone)]
pub struct Start {
    /// Which way.
    pub direction: Direction,
    /// The repository named in the path.
    pub repository: String,
    /// The blob's digest, when the path or the query names it.
    pub digest: Option<String>,
    /// The upload session, for uploads to one.
    pub session: Option<String>,
    /// Bytes of the blob before this request's first byte (a chunk's
    /// `Content-Range` start, a range request's start).
    pub offset: u64,
    /// The blob's (or the session's declared) size, when known.
    pub total: Option<u64>,
}

/// One transfer in flight.
struct Live {
    start: Start,
    /// Total learnt later (a download's size from its response headers);
    /// `u64::MAX` while unknown.
    total: AtomicU64,
    bytes: AtomicU64,
    began: Instant,
    began_unix_ms: u64,
    who: Who,
    /// (when, bytes then, rate measured then): the last rate reading.
    sample: Mutex<(Instant, u64, f64)>,
}

/// The transfers of this process.
#[derive(Default)]
pub struct Transfers {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<Live>>>,
    /// Transfers in flight that did not fit in the list.
    untracked: AtomicU64,
}

/// A transfer's place in the list; dropping it ends the transfer.
pub struct Tracked {
    id: u64,
    live: Option<Arc<Live>>,
    owner: Arc<Transfers>,
}

impl Tracked {
    /// Counts `n` more bytes moved.
    pub fn add(&self, n: u64) {
        if let Some(l) = &self.live {
            l.bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sets the total once the response tells it.
    pub fn set_total(&self, total: u64) {
        if let Some(l) = &self.live {
            l.total.store(total, Ordering::Relaxed);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        match self.live.take() {
            Some(_) => {
                let mut live = self.owner.live.lock().unwrap_or_else(|p| p.into_inner());
                live.remove(&self.id);
            }
            None => {
                self.owner.untracked.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Transfers {
    /// Starts tracking a transfer.
    pub fn begin(self: &Arc<Self>, start: Start, who: Who) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= MAX_TRACKED {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return Tracked {
                id,
                live: None,
                owner: self.clone(),
            };
        }
        let now = Instant::now();
        let entry = Arc::new(Live {
            total: AtomicU64::new(start.total.unwrap_or(u64::MAX)),
            start,
            bytes: AtomicU64::new(0),
            began: now,
            began_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            who,
            sample: Mutex::new((now, 0, 0.0)),
        });
        live.insert(id, entry.clone());
        Tracked {
            id,
            live: Some(entry),
            owner: self.clone(),
        }
    }

    /// Transfers in flight that are not listed (the list was full).
    pub fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// The transfers in flight, oldest first.
    pub fn list(&self) -> Vec<Snapshot> {
        let entries: Vec<(u64, Arc<Live>)> = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        let now = Instant::now();
        entries
            .into_iter()
            .map(|(id, l)| l.snapshot(id, now))
            .collect()
    }
}

impl Live {
    fn snapshot(&self, id: u64, now: Instant) -> Snapshot {
        let moved = self.bytes.load(Ordering::Relaxed);
        let rate = {
            let mut s = self.sample.lock().unwrap_or_else(|p| p.into_inner());
            let since = now.saturating_duration_since(s.0);
            if since >= RATE_WINDOW {
                let r = moved.saturating_sub(s.1) as f64 / since.as_secs_f64();
                *s = (now, moved, r);
                r
            } else if s.1 == 0 && s.2 == 0.0 {
                // No reading yet: the average since the start.
                let t = now.saturating_duration_since(self.began).as_secs_f64();
                if t > 0.0 {
                    moved as f64 / t
                } else {
                    0.0
                }
            } else {
                s.2
            }
        };
        let total = match self.total.load(Ordering::Relaxed) {
            u64::MAX => None,
            t => Some(t),
        };
        let bytes = self.start.offset + moved;
        let eta = total
            .filter(|_| rate > 0.0)
            .map(|t| t.saturating_sub(bytes) as f64 / rate);
        Snapshot {
            id,
            direction: match self.start.direction {
                Direction::Upload => "upload",
                Direction::Download => "download",
            }
            .to_string(),
            repository: self.start.repository.clone(),
            digest: self.start.digest.clone(),
            session: self.start.session.clone(),
            bytes,
            total,
            rate_bytes_per_second: rate,
            eta_seconds: eta,
            started_unix_ms: self.began_unix_ms,
            elapsed_seconds: now.saturating_duration_since(self.began).as_secs_f64(),
            identity: self.who.0.get().cloned().unwrap_or_else(|| "-".into()),
        }
    }
}

/// The upload a request starts, if it carries blob bytes: a PATCH or PUT
/// to a session, or a monolithic POST. `empty` is true when the request
/// has no body (a finishing PUT, a POST opening a session, a mount).
pub fn upload_start(
    method: &http::Method,
    route: Option<&crate::routes::Route>,
    headers: &http::HeaderMap,
    query: Option<&str>,
    empty: bool,
) -> Option<Start> {
    use crate::routes::Route;
    use http::Method;
    if empty {
        return None;
    }
    let (repository, session) = match (route?, method) {
        (Route::Upload(name, id), &Method::PATCH | &Method::PUT) => (name, Some(id.clone())),
        (Route::UploadStart(name), &Method::POST) => (name, None),
        _ => return None,
    };
    // Listed before the handler checks anything: only what is well formed
    // (the list is read by people's terminals; a name with control
    // characters is refused by the handler and never listed).
    if crate::routes::repo(repository).is_err() {
        return None;
    }
    let session = session.filter(|id| {
        id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
    });
    let header = |h: http::header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let length = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    // `Content-Range: START-END` of a chunk (the handler checks it; a
    // wrong one is refused before many bytes move).
    let offset = header(http::header::CONTENT_RANGE)
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let digest = crate::query::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "digest")
        .and_then(|(_, v)| v.parse::<pavilion_oci::Digest>().ok())
        .map(|d| d.to_string());
    Some(Start {
        direction: Direction::Upload,
        repository: repository.clone(),
        digest,
        session,
        offset,
        total: length.map(|l| offset.saturating_add(l)),
    })
}

/// The download a response starts: a blob GET answered 200 or 206 with a
/// body (a redirect to object storage is not a transfer through here).
pub fn download_start(
    method: &http::Method,
    route: Option<&crate::routes::Route>,
    status: u16,
    headers: &http::HeaderMap,
) -> Option<Start> {
    let Some(crate::routes::Route::Blob(name, digest)) = route else {
        return None;
    };
    if method != http::Method::GET || !(status == 200 || status == 206) {
        return None;
    }
    let header = |h: http::header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let length = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    // `Content-Range: bytes START-END/SIZE` of a range answer: this
    // request moves START..=END (parallel range requests of one blob are
    // each a transfer, each with its own end).
    let (offset, end) = match header(http::header::CONTENT_RANGE)
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('/'))
        .and_then(|(range, _)| range.split_once('-'))
    {
        Some((start, end)) => (
            start.parse::<u64>().unwrap_or(0),
            end.parse::<u64>().ok().map(|e| e.saturating_add(1)),
        ),
        None => (0, length),
    };
    Some(Start {
        direction: Direction::Download,
        repository: name.clone(),
        digest: Some(digest.clone()),
        session: None,
        offset,
        total: end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(total: Option<u64>) -> Start {
        Start {
            direction: Direction::Upload,
            repository: "team/model".into(),
            digest: None,
            session: Some("s1".into()),
            offset: 10,
            total,
        }
    }

    #[test]
    fn a_transfer_is_listed_while_its_guard_lives() {
        let t = Arc::new(Transfers::default());
        let g = t.begin(upload(Some(110)), Who::default());
        g.add(40);
        let l = t.list();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].bytes, 50);
        assert_eq!(l[0].total, Some(110));
        assert_eq!(l[0].repository, "team/model");
        assert_eq!(l[0].identity, "-");
        drop(g);
        assert!(t.list().is_empty());
    }

    #[test]
    fn past_the_bound_transfers_are_counted_not_listed() {
        let t = Arc::new(Transfers::default());
        let mut held: Vec<Tracked> = (0..MAX_TRACKED)
            .map(|_| t.begin(upload(None), Who::default()))
            .collect();
        let extra = t.begin(upload(None), Who::default());
        assert_eq!(t.list().len(), MAX_TRACKED);
        assert_eq!(t.untracked(), 1);
        drop(extra);
        assert_eq!(t.untracked(), 0);
        held.truncate(1);
        assert_eq!(t.list().len(), 1);
    }

    #[test]
    fn the_rate_is_measured_over_a_window_and_gives_an_eta() {
        let t = Arc::new(Transfers::default());
        let g = t.begin(upload(Some(1010)), Who::default());
        let first = t.list();
        assert!(first[0].eta_seconds.is_none() || first[0].rate_bytes_per_second > 0.0);
        std::thread::sleep(Duration::from_millis(950));
        g.add(500);
        let l = t.list();
        assert!(l[0].rate_bytes_per_second > 0.0);
        let eta = l[0].eta_seconds.expect("eta with a total and a rate");
        assert!(eta > 0.0);
        // An immediate second reading keeps the measured rate.
        assert_eq!(
            t.list()[0].rate_bytes_per_second,
            l[0].rate_bytes_per_second
        );
    }
}
