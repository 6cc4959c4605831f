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
    /// Garbage collection is deleting this blob's bytes right now, so it
    /// cannot be claimed; a retry uploads it afresh.
    #[error("blob {0} is being garbage collected: retry the request")]
    Collecting(Digest),
    /// A manifest references a blob or manifest the repository does not
    /// (or no longer) hold.
    #[error("{0} is not in the repository")]
    NotInRepo(String),
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

/// What a database error code says about the storage under the database.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum DbCodeClass {
    /// No room: SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full` (53100).
    Full,
    /// SQLite could not write or sync its files (`SQLITE_IOERR_WRITE`,
    /// `_FSYNC`, `_DIR_FSYNC`, `_TRUNCATE`, `_SHMSIZE`). SQLite itself turns
    /// ENOSPC from `write()` into `SQLITE_FULL`, but a quota (EDQUOT), a
    /// failed `fallocate`, `ftruncate` or `fsync` on a full disk come out as
    /// these, and SQLite does not tell which errno it was (sqlx does not
    /// expose `sqlite3_system_errno`). A full disk or quota is by far the
    /// likeliest cause, so these count as full, with a message that also
    /// names the other one (a failing disk).
    WriteFailed,
    /// Any other SQLite I/O error (reading, locking, the shared-memory
    /// file): the database file is out of reach for now, like a lost server.
    IoFailed,
    /// Something else: an ordinary database error.
    Other,
}

/// Classifies a database error code (`sqlite` says which engine it came
/// from: SQLite's are numbers, extended result codes included; PostgreSQL's
/// are SQLSTATEs).
fn classify_db_code(code: &str, sqlite: bool) -> DbCodeClass {
    if !sqlite {
        return if code == "53100" {
            DbCodeClass::Full
        } else {
            DbCodeClass::Other
        };
    }
    const SQLITE_FULL: i64 = 13;
    const SQLITE_IOERR: i64 = 10;
    // SQLITE_IOERR_WRITE, _FSYNC, _DIR_FSYNC, _TRUNCATE, _SHMSIZE.
    const IOERR_WRITE_SIDE: [i64; 5] = [778, 1034, 1290, 1546, 4874];
    let Ok(n) = code.parse::<i64>() else {
        return DbCodeClass::Other;
    };
    // The low byte of an extended result code is its primary code.
    match n & 0xff {
        SQLITE_FULL => DbCodeClass::Full,
        SQLITE_IOERR if IOERR_WRITE_SIDE.contains(&n) => DbCodeClass::WriteFailed,
        SQLITE_IOERR => DbCodeClass::IoFailed,
        _ => DbCodeClass::Other,
    }
}

/// The class of `e`'s database error code, if it has one.
fn db_code_class(e: &sqlx::Error) -> DbCodeClass {
    let sqlx::Error::Database(db) = e else {
        return DbCodeClass::Other;
    };
    let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
    db.code()
        .map_or(DbCodeClass::Other, |c| classify_db_code(&c, sqlite))
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match db_code_class(&e) {
            DbCodeClass::Full => StoreError::Full(format!("metadata database: {e}")),
            DbCodeClass::WriteFailed => StoreError::Full(format!(
                "metadata database could not write its file ({e}): a full disk or quota, or a failing disk"
            )),
            DbCodeClass::IoFailed | DbCodeClass::Other => StoreError::Db(e),
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
            // Protocol: the other end answered something that is not
            // PostgreSQL, e.g. a proxy or balancer in front of a database
            // that is down, which accepts and closes at once.
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE classes 08 (connection exception), 53 (insufficient
            // resources, e.g. too many connections) and 57P (the server
            // shutting down or starting up).
            // SQLite I/O errors other than writes (reading, locking): the
            // database file is out of reach, which retrying may fix.
            sqlx::Error::Database(_) if db_code_class(e) == DbCodeClass::IoFailed => true,
            sqlx::Error::Database(db)
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
            {
                false
            }
            // Class 40 (a deadlock or serialization failure: PostgreSQL
            // chose this transaction to roll back, e.g. a push and the
            // garbage collector locking the same rows): a retry succeeds.
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P")
                    || c == "40001"
                    || c == "40P01"
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
    fn sqlite_io_errors_on_writes_are_storage_full() {
        // SQLITE_FULL, and the I/O errors a full disk or quota surfaces as.
        for code in ["13", "778", "1034", "1290", "1546", "4874"] {
            assert!(
                matches!(
                    classify_db_code(code, true),
                    DbCodeClass::Full | DbCodeClass::WriteFailed
                ),
                "{code}"
            );
        }
        // Other I/O errors (SQLITE_IOERR, _READ, _SHORT_READ, _LOCK, _SHMMAP):
        // out of reach for now, answered 503.
        for code in ["10", "266", "522", "3850", "5386"] {
            assert_eq!(
                classify_db_code(code, true),
                DbCodeClass::IoFailed,
                "{code}"
            );
        }
        // Constraint violations, busy, and SQLSTATEs are neither.
        for code in ["19", "2067", "5", "1555"] {
            assert_eq!(classify_db_code(code, true), DbCodeClass::Other, "{code}");
        }
        assert_eq!(classify_db_code("53100", false), DbCodeClass::Full);
        // A PostgreSQL SQLSTATE is never read as a SQLite number.
        assert_eq!(classify_db_code("00778", false), DbCodeClass::Other);
        assert_eq!(classify_db_code("23505", false), DbCodeClass::Other);
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
