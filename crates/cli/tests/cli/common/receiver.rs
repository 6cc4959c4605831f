//! A webhook receiver for the tests: a real HTTP server on a loopback
//! port that records every request, answers 200 or (switched) 500, can be
//! slowed, taken down (its port closed) and brought back on the same
//! port; and an HMAC-SHA256 of its own (from `sha2` alone) to check
//! Pavilion's signatures independently of the `hmac` crate it signs with.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request received.
#[derive(Debug, Clone)]
pub struct Got {
    /// Its path.
    pub path: String,
    /// Its headers, names lower-case.
    pub headers: BTreeMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
    /// What it was answered.
    pub answered: u16,
}

impl Got {
    /// A header's value, or "".
    pub fn h(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// `ce-pavilionseq`.
    pub fn seq(&self) -> i64 {
        self.h("ce-pavilionseq").parse().unwrap()
    }
}

/// What the receiver's handler shares with the test.
#[derive(Debug, Default)]
pub struct Shared {
    got: Mutex<Vec<Got>>,
    /// Answer 500 to everything.
    pub fail: AtomicBool,
    /// Answer `302 Found` with `Location: /followed` to everything.
    pub redirect: AtomicBool,
    /// Wait this long before answering.
    pub delay_ms: AtomicU64,
    in_flight: AtomicI64,
    /// Most requests being handled at once, ever.
    pub max_in_flight: AtomicI64,
}

async fn handle(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(n, Ordering::SeqCst);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let redirect = s.redirect.load(Ordering::SeqCst);
    let status = if s.fail.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if redirect {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    };
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    s.got.lock().unwrap().push(Got {
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    if redirect {
        return (status, [("location", "/followed")]).into_response();
    }
    status.into_response()
}

/// A running (or downed) receiver.
pub struct Receiver {
    /// Where it listens (kept when it is down).
    pub addr: SocketAddr,
    /// Its state.
    pub shared: Arc<Shared>,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Receiver {
    /// A receiver on a free loopback port.
    pub async fn start() -> Receiver {
        let mut r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            shared: Arc::default(),
            stop: None,
        };
        r.up().await;
        r
    }

    /// Listens again (on the same port once it had one).
    pub async fn up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        self.stop = Some((tx, task));
    }

    /// Closes the port (and every connection).
    pub async fn down(&mut self) {
        if let Some((tx, task)) = self.stop.take() {
            let _ = tx.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Every request so far that was answered 2xx.
    pub fn delivered(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.answered == 200)
            .collect()
    }
}

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Checks a `Pavilion-Signature` as a receiver would: `v1` is the HMAC of
/// `"<t>.<body>"` and `t` is within `tolerance` seconds of now.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    tolerance: u64,
) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("no t")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t) > tolerance {
        return Err(format!("t={t} is not within {tolerance}s of {now}"));
    }
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    let want = hex::encode(hmac_sha256(secret, &msg));
    if v1.contains(&want) {
        Ok(())
    } else {
        Err(format!("no v1 matches: {header}"))
    }
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
