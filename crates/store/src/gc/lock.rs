//! One collector at a time across every replica and `pavilion gc`
//! process: on PostgreSQL a session advisory lock held on a connection
//! kept for the run; on SQLite (one host by construction) an exclusive
//! `flock` on a file beside the database. Both are released by the
//! operating system or the database when the holder dies (kill -9), so a
//! killed run never blocks the next one.

use crate::error::StoreError;
use crate::meta::{Engine, MetaStore};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Row};

/// The advisory lock's key ("pavilion gc" in ASCII, truncated to 64 bits).
const PG_KEY: i64 = 0x7061_7669_6c67_6300;

/// A held lock; dropping it releases it.
pub enum GcLock {
    /// The connection the advisory lock lives on (taken out on release).
    Postgres(Option<PoolConnection<Any>>),
    /// The locked file.
    Sqlite(#[allow(dead_code)] std::fs::File),
    /// An in-memory database: only this process can reach it.
    Memory(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>),
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another collector holds it.
    #[error("another garbage collection is running on this registry's database; try again when it has finished")]
    Busy,
    /// The database or the lock file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

static MEMORY_LOCK: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
    std::sync::OnceLock::new();

impl GcLock {
    /// Takes the lock without waiting.
    pub async fn try_acquire(meta: &MetaStore) -> Result<GcLock, LockError> {
        match meta.engine() {
            Engine::Postgres => {
                let mut conn = meta.pool.acquire().await.map_err(StoreError::from)?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS got")
                    .bind(PG_KEY)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(StoreError::from)?
                    .try_get("got")
                    .map_err(StoreError::from)?;
                if !got {
                    return Err(LockError::Busy);
                }
                Ok(GcLock::Postgres(Some(conn)))
            }
            Engine::Sqlite => match &meta.sqlite_file {
                Some(db) => {
                    let mut name = db.as_os_str().to_owned();
                    name.push(".gc-lock");
                    use std::os::unix::fs::OpenOptionsExt;
                    // O_NOFOLLOW: a symlink planted there is refused.
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&name)
                        .map_err(StoreError::from)?;
                    match rustix::fs::flock(
                        &file,
                        rustix::fs::FlockOperation::NonBlockingLockExclusive,
                    ) {
                        Ok(()) => Ok(GcLock::Sqlite(file)),
                        Err(rustix::io::Errno::WOULDBLOCK) => Err(LockError::Busy),
                        Err(e) => Err(StoreError::from(std::io::Error::from(e)).into()),
                    }
                }
                None => {
                    let m = MEMORY_LOCK.get_or_init(Default::default).clone();
                    m.try_lock_owned()
                        .map(GcLock::Memory)
                        .map_err(|_| LockError::Busy)
                }
            },
        }
    }

    /// Checks the lock is still held before the next deletion: on
    /// PostgreSQL the connection may have dropped (and the lock with it).
    pub async fn still_held(&mut self) -> Result<(), StoreError> {
        if let GcLock::Postgres(Some(conn)) = self {
            let held: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted",
            )
            .fetch_one(&mut **conn)
            .await?
            .try_get("n")?;
            if held == 0 {
                return Err(StoreError::Corrupt(
                    "the garbage collection lock was lost (database connection reset); stopping"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        if let GcLock::Postgres(slot) = &mut self {
            if let Some(mut conn) = slot.take() {
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_KEY)
                    .execute(&mut *conn)
                    .await
                    .is_ok();
                if !unlocked {
                    // Closing the session releases its locks.
                    let _ = conn.close().await;
                }
            }
        }
    }
}

impl Drop for GcLock {
    /// A run that ends without `release` (an error, a cancelled task) must
    /// not hand a locked connection back to the pool: the connection is
    /// detached and dropped, which ends the session and its lock.
    fn drop(&mut self) {
        if let GcLock::Postgres(slot) = self {
            if let Some(conn) = slot.take() {
                drop(conn.detach());
            }
        }
    }
}
