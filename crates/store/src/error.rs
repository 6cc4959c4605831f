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
    Io(std::io::Error),
    /// The disk, a quota or the database has no room left (ENOSPC, EDQUOT,
    /// SQLite's "database or disk is full", PostgreSQL's disk_full).
    #[error("no space left in the registry's storage: {0}")]
    Full(String),
    /// A database failure.
    #[error("database error: {0}")]
    Db(sqlx::Error),
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

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        let full = matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            || e.kind() == std::io::ErrorKind::StorageFull;
        if full {
            StoreError::Full(e.to_string())
        } else {
            StoreError::Io(e)
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLITE_FULL (13) and PostgreSQL's disk_full (53100).
        let full = matches!(&e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "13" || c == "53100"));
        if full {
            StoreError::Full(format!("metadata database: {e}"))
        } else {
            StoreError::Db(e)
        }
    }
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
    fn full_disks_and_quotas_are_storage_full() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let e = StoreError::from(std::io::Error::from_raw_os_error(errno));
            assert!(matches!(e, StoreError::Full(_)), "{e}");
        }
        let e = StoreError::from(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(e, StoreError::Io(_)));
    }

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
