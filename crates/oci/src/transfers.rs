//! The document `GET /pavilion/v1/transfers` answers (and each of its
//! Server-Sent Events carries), shared by the registry that writes it and
//! the clients (`pavilion top`) that read it. Field names are part of
//! Pavilion's API: add fields, never rename them.

/// A blob transfer in flight on one replica.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Transfer {
    /// This replica's number for it (stable while it runs).
    pub id: u64,
    /// `upload` or `download`.
    pub direction: String,
    /// The repository.
    pub repository: String,
    /// The blob's digest, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The upload session, for uploads to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Bytes of the blob moved so far, counting a chunk's offset.
    pub bytes: u64,
    /// The size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes per second over the last second or so (or since the start).
    pub rate_bytes_per_second: f64,
    /// Seconds left at that rate, when the total is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<f64>,
    /// When it began, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Seconds since it began.
    pub elapsed_seconds: f64,
    /// The authenticated caller, or `-`.
    pub identity: String,
}

/// Every transfer in flight on the replica that answered.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TransferList {
    /// Oldest first.
    pub transfers: Vec<Transfer>,
    /// Transfers in flight that the replica does not list (its list is
    /// bounded).
    #[serde(default)]
    pub untracked: u64,
}
