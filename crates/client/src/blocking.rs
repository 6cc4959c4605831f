//! The one way the client runs blocking work (file reads and writes,
//! hashing, fsync) from async code: on tokio's blocking pool, so no async
//! worker stalls behind it, with a failed join (the closure panicked)
//! reported as an I/O error. The counterpart of object_store's
//! `maybe_spawn_blocking`.

use crate::error::ClientError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Blocking work under way; awaiting it yields what the closure returned.
/// Dropping it does not stop the work.
#[must_use = "the result of blocking work is only known by awaiting it"]
pub(crate) struct Blocking<T>(tokio::task::JoinHandle<T>);

impl<T> Future for Blocking<T> {
    type Output = Result<T, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.map_err(|e| ClientError::Io(std::io::Error::other(e))))
    }
}

/// Starts `f` on the blocking pool at once (not on first poll: a reader or
/// hasher thread must run while the caller goes on with the request).
pub(crate) fn spawn<F, T>(f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Blocking(tokio::task::spawn_blocking(f))
}
