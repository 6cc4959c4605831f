//! How a transfer tells whoever drives it (a terminal, a daemon's log, a
//! web page) what it is doing. Bytes moved over the network are reported
//! by the client's own `ProgressFn`, set when the client is built; a
//! [`Progress`] learns the total once the transfer is planned, the bytes
//! that needed no transfer, and the events worth a line.

/// Something worth telling a person about a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The artifact's signatures passed the trust policy.
    Verified {
        /// The artifact, pinned (`registry/repo@digest`).
        reference: String,
        /// The trust policy statement that applied.
        policy: String,
    },
    /// A policy rule warned (each message once).
    PolicyWarning(String),
    /// The local digest cache could not be saved: the next transfer
    /// re-reads files it could have skipped.
    CacheNotSaved(String),
}

/// Receives a transfer's progress. Every method has a default that does
/// nothing, so a caller implements only what it shows.
pub trait Progress: Send + Sync {
    /// The bytes the transfer will account for, once planned.
    fn length(&self, _bytes: u64) {}
    /// Bytes accounted for without a transfer: already in place, placed
    /// from the content cache, already in the registry or mounted.
    fn skipped(&self, _bytes: u64) {}
    /// An event worth telling.
    fn event(&self, _event: &Event) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {}
