//! The one upload path both blob backends share: an append's request body
//! read in order, held to its declared length, hashed on a blocking thread,
//! handed to the backend in batches, and then kept or rolled back.
//!
//! What differs between backends sits behind [`Sink`]: the filesystem
//! writes the batches into a file at an offset (on a blocking thread of
//! its own), object storage gathers them into parts and uploads those.
//! What a body too long or too short gets, what one cut off mid-way keeps,
//! and which error wins when several things fail are decided here, once.
//!
//! Pieces of the body are passed on as the `Bytes` the server received:
//! the hasher and the sink share them, nothing is copied on the way.

use crate::blob::ByteStream;
use crate::blocking::{self, Blocking};
use crate::error::StoreError;
use crate::resumable_sha256::ResumableSha256;
use bytes::Bytes;
use futures::StreamExt;
use pavilion_oci::Hasher;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Pieces of a request body, as received, shared by the hasher and a sink.
pub(crate) type Batch = Arc<Vec<Bytes>>;

/// Batches in flight between the network task and each blocking thread;
/// bounds memory per upload to a few MiB whatever the blob size.
pub(crate) const PIPE_DEPTH: usize = 8;
/// Body pieces are passed on in batches of about this many bytes: far
/// fewer thread wake-ups than one per network read, and no copying.
const BATCH_BYTES: usize = 1 << 20;

/// A hash the upload path can feed, on a blocking thread, and copy at the
/// points a backend saves it.
pub(crate) trait RunningHash: Clone + Send + 'static {
    /// Feeds bytes.
    fn update(&mut self, data: &[u8]);
}

impl RunningHash for Hasher {
    fn update(&mut self, data: &[u8]) {
        Hasher::update(self, data);
    }
}

impl RunningHash for ResumableSha256 {
    fn update(&mut self, data: &[u8]) {
        ResumableSha256::update(self, data);
    }
}

/// The hash's state at each of a sink's marks, in order, as the hashing
/// thread passes them.
pub(crate) struct States<H>(mpsc::UnboundedReceiver<H>);

impl<H> States<H> {
    /// The state at the next mark, once the hasher has reached it.
    pub(crate) async fn next(&mut self) -> Result<H, StoreError> {
        self.0
            .recv()
            .await
            .ok_or_else(|| StoreError::Io(std::io::Error::other("the upload's hasher stopped")))
    }
}

/// Where an append's bytes go. The upload path calls `accept` for each
/// batch in order, then `settle` once, then exactly one of `keep` and
/// `roll_back`.
pub(crate) trait Sink<H>: Send + Sized {
    /// Takes the next batch of the body. `states` yields the hash's state
    /// at each mark the sink asked for, once the hasher has passed it (it
    /// is fed every batch before the sink is).
    fn accept(
        &mut self,
        batch: Batch,
        states: &mut States<H>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The body has ended: waits for what is still in flight and reports
    /// the sink's first failure.
    fn settle(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps every byte accepted; `hash` covers the session's bytes after
    /// them (`None` when the session's hash was not known to begin with).
    /// Returns the session's new length.
    fn keep(self, hash: Option<H>) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Undoes this append as far as the backend can: the session reports
    /// the length it had before (unless parts were saved on the way).
    fn roll_back(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A hash fed on a blocking thread, in order, copied at given offsets.
pub(crate) struct Hashing<H> {
    tx: mpsc::Sender<Batch>,
    done: Blocking<H>,
}

impl<H: RunningHash> Hashing<H> {
    /// Starts hashing after `h`, sending the state at each of `marks`
    /// (offsets into what is fed, increasing) to the returned [`States`].
    pub(crate) fn start(
        h: H,
        marks: impl Iterator<Item = u64> + Send + 'static,
    ) -> (Self, States<H>) {
        let (states_tx, states_rx) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::channel::<Batch>(PIPE_DEPTH);
        // The hashing of this append, as one span under the request's.
        let span = tracing::info_span!(
            target: "pavilion::otel",
            "store.hash",
            pavilion.bytes = tracing::field::Empty,
        );
        let done = blocking::spawn(move || {
            let (h, hashed) = span.in_scope(|| hash_batches(h, rx, marks, states_tx));
            span.record("pavilion.bytes", hashed);
            h
        });
        (Hashing { tx, done }, States(states_rx))
    }

    /// Feeds `batch` (waits while the thread is [`PIPE_DEPTH`] batches behind).
    pub(crate) async fn feed(&self, batch: &Batch) {
        // The thread only stops early by panicking: reported by `finish`.
        let _ = self.tx.send(batch.clone()).await;
    }

    /// The state after everything fed.
    pub(crate) async fn finish(self) -> Result<H, StoreError> {
        drop(self.tx);
        Ok(self.done.await?)
    }
}

/// The hashing thread: every byte in order, a copy of the state sent at
/// each mark. Returns the state and how many bytes it took.
fn hash_batches<H: RunningHash>(
    mut h: H,
    mut rx: mpsc::Receiver<Batch>,
    mut marks: impl Iterator<Item = u64>,
    states: mpsc::UnboundedSender<H>,
) -> (H, u64) {
    let mut pos = 0u64;
    let mut mark = marks.next();
    while let Some(batch) = rx.blocking_recv() {
        for piece in batch.iter() {
            let mut data = &piece[..];
            // Bounded: marks increase, and each turn moves to the next one.
            while let Some(m) = mark.filter(|&m| m <= pos + data.len() as u64) {
                let (before, after) = data.split_at(m.saturating_sub(pos) as usize);
                h.update(before);
                pos += before.len() as u64;
                data = after;
                // A sink that stopped listening has failed; nothing to tell.
                let _ = states.send(h.clone());
                mark = marks.next();
            }
            h.update(data);
            pos += data.len() as u64;
        }
    }
    (h, pos)
}

/// Appends `body` through `sink`. With `declared = Some(n)` the body must
/// be exactly `n` bytes: a longer or shorter complete body is rolled back
/// (`LengthMismatch`, a longer one counted as `n + 1` bytes: reading stops
/// at the first byte too many). A body that fails mid-way keeps what
/// arrived (`Body`), so the upload can resume. A failing sink rolls back,
/// and its error wins over the body's length.
///
/// `hash` is the session's hash before the append (`None`: not known);
/// `marks` are the body offsets at which the sink wants copies of it.
pub(crate) async fn append<H: RunningHash, S: Sink<H>>(
    mut body: ByteStream,
    declared: Option<u64>,
    hash: Option<H>,
    marks: impl Iterator<Item = u64> + Send + 'static,
    mut sink: S,
) -> Result<u64, StoreError> {
    let (hashing, mut states) = match hash {
        Some(h) => {
            let (hashing, states) = Hashing::start(h, marks);
            (Some(hashing), states)
        }
        // No hash to continue: nothing is hashed, and no mark is reached.
        None => (None, States(mpsc::unbounded_channel().1)),
    };
    let mut received = 0u64;
    let mut too_long = false;
    let mut body_error = None;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut accepted = Ok(());
    loop {
        let mut last = true;
        match body.next().await {
            None => {}
            Some(Err(e)) => body_error = Some(e.to_string()),
            Some(Ok(piece)) => {
                if declared.is_some_and(|d| received + piece.len() as u64 > d) {
                    // Nothing of this piece is passed on: the rollback
                    // below then only has this append's accepted bytes to undo.
                    too_long = true;
                } else {
                    received += piece.len() as u64;
                    pending_bytes += piece.len();
                    if !piece.is_empty() {
                        pending.push(piece);
                    }
                    last = false;
                }
            }
        }
        if (last || pending_bytes >= BATCH_BYTES) && !pending.is_empty() {
            let batch: Batch = Arc::new(std::mem::take(&mut pending));
            pending_bytes = 0;
            // The hasher first: a sink may wait for a state at a mark
            // inside this very batch.
            if let Some(hashing) = &hashing {
                hashing.feed(&batch).await;
            }
            if let Err(e) = sink.accept(batch, &mut states).await {
                accepted = Err(e);
                break;
            }
        }
        if last {
            break;
        }
    }
    drop(body);
    // Whatever happened, what is in flight is waited for before the
    // session is kept or rolled back.
    let settled = sink.settle().await;
    let hashed = match hashing {
        Some(hashing) => hashing.finish().await.map(Some),
        None => Ok(None),
    };
    if let Err(e) = accepted.and(settled) {
        sink.roll_back().await?;
        return Err(e);
    }
    let short = body_error.is_none() && declared.is_some_and(|d| received < d);
    if let Some(d) = declared.filter(|_| too_long || short) {
        sink.roll_back().await?;
        return Err(StoreError::LengthMismatch {
            declared: d,
            got: if too_long { d + 1 } else { received },
        });
    }
    // A hasher that failed (it panicked) leaves no hash to keep the bytes
    // under: they go too, so the session's hash never lags its bytes.
    let hashed = match hashed {
        Ok(h) => h,
        Err(e) => {
            sink.roll_back().await?;
            return Err(e);
        }
    };
    let len = sink.keep(hashed).await?;
    match body_error {
        Some(e) => Err(StoreError::Body(e)),
        None => Ok(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pavilion_oci::{Algorithm, Digest};

    /// How an append ended ("kept" or "rolled back") and what the sink had.
    type Ending = Option<(&'static str, Vec<u8>)>;

    /// Collects what it is given; remembers how the append ended.
    #[derive(Default)]
    struct Collect {
        got: Vec<u8>,
        states: Vec<Digest>,
        /// Fails once this many bytes were accepted.
        fail_after: Option<usize>,
        ended: Arc<std::sync::Mutex<Ending>>,
    }

    impl Sink<Hasher> for Collect {
        async fn accept(
            &mut self,
            batch: Batch,
            states: &mut States<Hasher>,
        ) -> Result<(), StoreError> {
            for piece in batch.iter() {
                self.got.extend_from_slice(piece);
            }
            // Marks every 4 bytes: every state up to what was accepted.
            while self.states.len() < self.got.len() / 4 {
                self.states.push(states.next().await?.finish());
            }
            match self.fail_after {
                Some(n) if self.got.len() >= n => Err(StoreError::Backend("full".into())),
                _ => Ok(()),
            }
        }
        async fn settle(&mut self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn keep(self, hash: Option<Hasher>) -> Result<u64, StoreError> {
            let d = hash.map(|h| h.finish());
            assert_eq!(d, Some(Digest::sha256(&self.got)));
            for (i, s) in self.states.iter().enumerate() {
                assert_eq!(*s, Digest::sha256(&self.got[..4 * (i + 1)]));
            }
            *self.ended.lock().unwrap() = Some(("kept", self.got.clone()));
            Ok(self.got.len() as u64)
        }
        async fn roll_back(self) -> Result<(), StoreError> {
            *self.ended.lock().unwrap() = Some(("rolled back", self.got));
            Ok(())
        }
    }

    fn body(pieces: Vec<std::io::Result<&'static [u8]>>) -> ByteStream {
        futures::stream::iter(pieces.into_iter().map(|p| p.map(Bytes::from_static))).boxed()
    }

    async fn run(
        pieces: Vec<std::io::Result<&'static [u8]>>,
        declared: Option<u64>,
        fail_after: Option<usize>,
    ) -> (Result<u64, StoreError>, Ending) {
        let sink = Collect {
            fail_after,
            ..Default::default()
        };
        let ended = sink.ended.clone();
        let marks = (1..).map(|i| 4 * i);
        let r = append(
            body(pieces),
            declared,
            Some(Algorithm::Sha256.hasher()),
            marks,
            sink,
        )
        .await;
        let ended = ended.lock().unwrap().take();
        (r, ended)
    }

    #[tokio::test]
    async fn lengths_body_failures_and_sink_failures() {
        let (r, e) = run(vec![Ok(b"abc"), Ok(b"defghij")], Some(10), None).await;
        assert_eq!(r.unwrap(), 10);
        assert_eq!(e, Some(("kept", b"abcdefghij".to_vec())));

        let (r, e) = run(vec![Ok(b"abc"), Ok(b"defghij")], Some(4), None).await;
        assert!(
            matches!(
                r,
                Err(StoreError::LengthMismatch {
                    declared: 4,
                    got: 5
                })
            ),
            "{r:?}"
        );
        assert_eq!(e.map(|e| e.0), Some("rolled back"));

        let (r, e) = run(vec![Ok(b"abc")], Some(4), None).await;
        assert!(
            matches!(
                r,
                Err(StoreError::LengthMismatch {
                    declared: 4,
                    got: 3
                })
            ),
            "{r:?}"
        );
        assert_eq!(e.map(|e| e.0), Some("rolled back"));

        // Cut off: what arrived is kept, even short of the declared length.
        let gone = std::io::Error::other("gone");
        let (r, e) = run(vec![Ok(b"hello"), Err(gone)], Some(10), None).await;
        assert!(matches!(r, Err(StoreError::Body(_))), "{r:?}");
        assert_eq!(e, Some(("kept", b"hello".to_vec())));

        // A piece past the declared length never reaches the sink.
        let (r, e) = run(vec![Ok(b"abcdef")], Some(3), Some(1)).await;
        assert!(matches!(r, Err(StoreError::LengthMismatch { .. })), "{r:?}");
        assert_eq!(e, Some(("rolled back", Vec::new())));
        // The sink's failure wins over the body's length.
        let (r, e) = run(vec![Ok(b"abcdef")], Some(9), Some(1)).await;
        assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        assert_eq!(e.map(|e| e.0), Some("rolled back"));
    }
}
