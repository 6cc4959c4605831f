//! The one way Pavilion runs blocking work (file I/O, hashing, fsync) from
//! async code, for the store and the client alike: on tokio's blocking
//! pool, so an async worker never stalls behind it, with a failed join
//! (the closure panicked) reported as an I/O error, which each crate's
//! error type takes with `?`. The counterpart of object_store's
//! `maybe_spawn_blocking`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Blocking work under way; awaiting it yields what the closure returned.
/// Dropping it does not stop the work: a thread that feeds a channel (a
/// blob reader) runs on until its receiver goes away.
#[must_use = "the result of blocking work is only known by awaiting it"]
pub struct Blocking<T>(tokio::task::JoinHandle<T>);

impl<T> Future for Blocking<T> {
    type Output = std::io::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.map_err(std::io::Error::other))
    }
}

/// Starts `f` on the blocking pool at once (not on first poll: a writer or
/// hasher thread must run while the caller goes on feeding it).
pub fn spawn<F, T>(f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Blocking(tokio::task::spawn_blocking(f))
}
