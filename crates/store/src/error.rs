//! The store's error type.

use pavilion_oci::Digest;

/// Errors from blob and metadata stores.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The blob does not exist.
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    /// The upload session does not exist.
    #[error("upload session {0} not found")]
    UploadNotFound(String),
    /// A chunk did not start at the session's current offset.
    #[error("chunk starts at {got} but the upload is at offset {expected}")]
    OffsetMismatch {
        /// Current size of the upload.
        expected: u64,
        /// Offset the client sent.
        got: u64,
    },
    /// The body held more or fewer bytes than the client declared.
    #[error("body has {got} bytes but {declared} were declared")]
    LengthMismatch {
        /// Declared length.
        declared: u64,
        /// Length received (capped at declared + 1 when longer).
        got: u64,
    },
    /// The uploaded bytes do not hash to the digest the client gave.
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch {
        /// What the client claimed.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The request range lies outside the blob.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Blob size.
        size: u64,
    },
    /// The client's body stream failed (disconnect, truncated body).
    #[error("request body interrupted: {0}")]
    Body(String),
    /// A local I/O failure.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A database failure.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A database migration failure.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The object store failed or refused (unreachable, credentials, bucket).
    #[error("object store: {0}")]
    Backend(String),
    /// Stored data could not be read back.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure is the metadata database being out of reach
    /// (restarting, connections cut, pool exhausted) rather than a fault in
    /// what was asked: the registry answers these 503 so clients retry.
    pub fn is_database_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE classes 08 (connection exception), 53 (insufficient
            // resources, e.g. too many connections) and 57P (the server
            // shutting down or starting up).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")
            }),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_count_as_database_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::Db(sqlx::Error::Io(refused)).is_database_unavailable());
        assert!(StoreError::Db(sqlx::Error::PoolTimedOut).is_database_unavailable());
        assert!(!StoreError::Db(sqlx::Error::RowNotFound).is_database_unavailable());
        assert!(!StoreError::Corrupt("x".into()).is_database_unavailable());
        assert!(
            !StoreError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                .is_database_unavailable()
        );
    }
}
