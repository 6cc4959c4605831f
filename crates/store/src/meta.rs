//! Metadata in SQL: one code path for SQLite (embedded default) and
//! PostgreSQL (scale-out), through sqlx's `Any` driver.
//!
//! Queries use `$N` placeholders, which both engines accept. Every write
//! transaction starts with a write so that SQLite takes its write lock up
//! front instead of failing to upgrade a read lock under contention.

use crate::error::StoreError;
use crate::now_millis;
use pavilion_oci::{Descriptor, Digest};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A stored manifest's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Content digest.
    pub digest: Digest,
    /// Media type it was pushed with.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type reported by the referrers API.
    pub artifact_type: Option<String>,
    /// Annotations as their JSON object text.
    pub annotations: Option<String>,
}

impl ManifestRecord {
    /// The descriptor the referrers API lists for this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            artifact_type: self.artifact_type.clone(),
            annotations: self
                .annotations
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
        }
    }
}

/// A manifest about to be recorded.
#[derive(Debug, Clone)]
pub struct NewManifest<'a> {
    /// Repository.
    pub repo: &'a str,
    /// Its metadata.
    pub record: ManifestRecord,
    /// Digest of its `subject`, if any.
    pub subject: Option<Digest>,
    /// Tags to point at it (none when pushed by digest alone).
    pub tags: &'a [&'a str],
    /// Blobs it references that the repository must hold (config and
    /// layers, less those fetched from elsewhere).
    pub blobs: &'a [Digest],
    /// Manifests it references that the repository must hold (an
    /// index's children).
    pub manifests: &'a [Digest],
}

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The metadata store.
#[derive(Clone)]
pub struct MetaStore {
    pub(crate) pool: AnyPool,
    engine: Engine,
    /// The SQLite database's file (beside which the collector's lock lives).
    pub(crate) sqlite_file: Option<std::path::PathBuf>,
    /// Decision log retention and its pruning schedule (shared by clones).
    pub(crate) decision_log: std::sync::Arc<crate::decisions::LogState>,
    /// Change feed retention (shared by clones).
    pub(crate) events: std::sync::Arc<crate::events::EventsState>,
    /// Where query times are reported, once the registry installs an
    /// observer (shared by clones).
    pub(crate) probe: crate::observe::MetaProbe,
}

/// The connection pool as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFigures {
    /// Connections open (idle and in use).
    pub open: u32,
    /// Connections open and idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

fn record_from_row(row: &AnyRow) -> Result<ManifestRecord, StoreError> {
    let digest: String = row.try_get("digest")?;
    let size: i64 = row.try_get("size")?;
    Ok(ManifestRecord {
        digest: digest
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("manifest digest: {e}")))?,
        media_type: row.try_get("media_type")?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt("negative size".into()))?,
        artifact_type: row.try_get("artifact_type")?,
        annotations: row.try_get("annotations")?,
    })
}

const MANIFEST_COLUMNS: &str = "m.digest, m.media_type, m.size, m.artifact_type, m.annotations";

/// A page of [`MetaStore::referrers_brief`].
#[derive(Debug, Clone, Copy)]
pub struct BriefReferrers<'a> {
    /// The repository.
    pub repo: &'a str,
    /// The manifest they refer to.
    pub subject: &'a Digest,
    /// Only referrers of this artifact type.
    pub artifact_type: &'a str,
    /// Only digests after this one (the last of the previous page).
    pub last: Option<&'a str>,
    /// At most this many.
    pub n: i64,
    /// Annotations longer than this many characters come back as `None`.
    pub max_annotations: i64,
    /// The trust configuration whose recorded verdicts come with them.
    pub generation: &'a str,
}

/// The file of a `sqlite://PATH?...` URL (none for an in-memory database).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

impl MetaStore {
    /// Connects to `url` (`sqlite://PATH?mode=rwc` or `postgres://...`) and
    /// brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(StoreError::Corrupt(format!(
                "unsupported database URL {url:?}: use sqlite:// or postgres://"
            )));
        };
        let options = AnyPoolOptions::new()
            .max_connections(if engine == Engine::Sqlite { 8 } else { 16 })
            // While the database restarts, a request waits this long for a
            // connection (the pool keeps reconnecting) before it is answered
            // 503; long enough to ride out a restart, short enough that
            // clients are not left hanging behind an outage.
            .acquire_timeout(Duration::from_secs(10));
        let options = if engine == Engine::Sqlite {
            options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL: readers never block the writer; NORMAL sync keeps
                    // every commit across a process kill (kill -9).
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous=NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=30000")
                        .execute(&mut *conn)
                        .await?;
                    // 16 MiB of pages per connection instead of 2: a
                    // collection walks every table, and with the default
                    // most of its time went to re-reading pages the cache
                    // had just dropped (pread in the profile).
                    sqlx::query("PRAGMA cache_size=-16384")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(url).await?;
        match engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let sqlite_file = (engine == Engine::Sqlite)
            .then(|| sqlite_file(url))
            .flatten();
        Ok(MetaStore {
            pool,
            engine,
            sqlite_file,
            decision_log: Default::default(),
            events: Default::default(),
            probe: Default::default(),
        })
    }

    /// Reports the time of the main per-request operations to `observer`
    /// (once; later calls are ignored).
    pub fn set_observer(&self, observer: std::sync::Arc<dyn crate::StoreObserver>) {
        let _ = self.probe.set(observer);
    }

    /// Times one operation until dropped.
    pub(crate) fn time(&self, operation: &'static str) -> crate::observe::QueryTimer<'_> {
        crate::observe::QueryTimer::new(&self.probe, operation)
    }

    /// The connection pool's size, idle connections and limit.
    pub fn pool_figures(&self) -> PoolFigures {
        PoolFigures {
            open: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Upload sessions open in every replica, and how many of them have
    /// seen no append start or end since `stalled_before` (Unix ms).
    pub async fn upload_session_counts(
        &self,
        stalled_before: i64,
    ) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN updated_at < $1 THEN 1 ELSE 0 END), 0) AS s FROM uploads",
        )
        .bind(stalled_before)
        .fetch_one(&self.pool)
        .await?;
        let n = row.try_get::<i64, _>("n")?.max(0) as u64;
        let stalled = row.try_get::<i64, _>("s")?.max(0) as u64;
        Ok((n, stalled))
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Asks the database for an answer (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Repository names after `last`, in byte order, at most `n`.
    pub async fn catalog(&self, last: Option<&str>, n: i64) -> Result<Vec<String>, StoreError> {
        let _t = self.time("catalog");
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(last.unwrap_or(""))
                .bind(n)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("name")?))
            .collect()
    }

    /// Whether a repository has ever received content.
    pub async fn repo_exists(&self, repo: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Size of `digest` if `repo` holds it.
    pub async fn blob_in_repo(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, StoreError> {
        let _t = self.time("blob_get");
        let row = sqlx::query(
            "SELECT b.size AS size FROM repo_blobs r JOIN blobs b ON b.digest = r.digest WHERE r.repo = $1 AND r.digest = $2",
        )
        .bind(repo)
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<i64, _>("size").map(|s| s as u64))
            .transpose()
            .map_err(Into::into)
    }

    /// Size of `digest` if any repository holds it.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let _t = self.time("blob_get");
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<i64, _>("size").map(|s| s as u64))
            .transpose()
            .map_err(Into::into)
    }

    /// Removes `repo`'s link to a blob; `false` if there was none.
    pub async fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2")
            .bind(repo)
            .bind(digest.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A manifest of `repo` by digest.
    pub async fn manifest_by_digest(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let _t = self.time("manifest_get");
        let sql = format!(
            "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repo = $1 AND m.digest = $2"
        );
        let row = sqlx::query(&sql)
            .bind(repo)
            .bind(digest.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// The manifest a tag of `repo` points at.
    pub async fn manifest_by_tag(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Option<ManifestRecord>, StoreError> {
        let _t = self.time("manifest_get");
        let sql = format!(
            "SELECT {MANIFEST_COLUMNS} FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest \
             WHERE t.repo = $1 AND t.tag = $2"
        );
        let row = sqlx::query(&sql)
            .bind(repo)
            .bind(tag)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Tags of `repo` after `last`, in byte order, at most `n`.
    pub async fn tags(
        &self,
        repo: &str,
        last: Option<&str>,
        n: i64,
    ) -> Result<Vec<String>, StoreError> {
        let _t = self.time("tags_list");
        let rows =
            sqlx::query("SELECT tag FROM tags WHERE repo = $1 AND tag > $2 ORDER BY tag LIMIT $3")
                .bind(repo)
                .bind(last.unwrap_or(""))
                .bind(n)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("tag")?))
            .collect()
    }

    /// Manifests of `repo` whose subject is `subject`, ordered by digest,
    /// after `last`, at most `n`, optionally only those of `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: i64,
    ) -> Result<Vec<ManifestRecord>, StoreError> {
        let _t = self.time("referrers");
        let sql = format!(
            "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repo = $1 AND m.subject = $2 AND m.digest > $3 \
             AND ($4 = '' OR m.artifact_type = $4) ORDER BY m.digest LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(repo)
            .bind(subject.to_string())
            .bind(last.unwrap_or(""))
            .bind(artifact_type.unwrap_or(""))
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Like [`MetaStore::referrers`], for judging many referrers cheaply:
    /// annotations longer than `max_annotations` characters come back as
    /// `None`, so a page costs at most `n` times that whatever was pushed
    /// (a signature's own annotations are a few hundred bytes); with each,
    /// the verdict recorded for it under `generation`, if any.
    pub async fn referrers_brief(
        &self,
        q: &BriefReferrers<'_>,
    ) -> Result<Vec<(ManifestRecord, Option<bool>)>, StoreError> {
        let _t = self.time("referrers");
        let BriefReferrers {
            repo,
            subject,
            artifact_type,
            last,
            n,
            max_annotations,
            generation,
        } = *q;
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, \
             CASE WHEN LENGTH(m.annotations) <= $5 THEN m.annotations ELSE NULL END AS annotations, \
             v.valid AS verdict \
             FROM manifests m LEFT JOIN signature_verdicts v \
             ON v.repo = m.repo AND v.digest = m.digest AND v.generation = $7 \
             WHERE m.repo = $1 AND m.subject = $2 AND m.digest > $3 \
             AND m.artifact_type = $4 ORDER BY m.digest LIMIT $6",
        )
        .bind(repo)
        .bind(subject.to_string())
        .bind(last.unwrap_or(""))
        .bind(artifact_type)
        .bind(max_annotations)
        .bind(n)
        .bind(generation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let verdict: Option<i64> = row.try_get("verdict")?;
                Ok((record_from_row(row)?, verdict.map(|v| v != 0)))
            })
            .collect()
    }

    /// Records whether signature `digest` of `repo` passed verification
    /// under the trust configuration `generation` (see the migration); a
    /// verdict under another generation is dropped, so there is at most one
    /// row per signature manifest.
    pub async fn record_signature_verdict(
        &self,
        repo: &str,
        digest: &Digest,
        generation: &str,
        valid: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM signature_verdicts WHERE repo = $1 AND digest = $2 AND generation <> $3",
        )
        .bind(repo)
        .bind(digest.to_string())
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signature_verdicts (repo, digest, generation, valid) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo, digest, generation) DO UPDATE SET valid = $4",
        )
        .bind(repo)
        .bind(digest.to_string())
        .bind(generation)
        .bind(i64::from(valid))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a new upload session for `repo`.
    pub async fn create_upload(&self, id: &str, repo: &str) -> Result<(), StoreError> {
        let _t = self.time("upload_session");
        let now = now_millis();
        sqlx::query(
            "INSERT INTO uploads (id, repo, created_at, updated_at) VALUES ($1, $2, $3, $3)",
        )
        .bind(id)
        .bind(repo)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The repository an upload session belongs to.
    pub async fn upload_repo(&self, id: &str) -> Result<Option<String>, StoreError> {
        let _t = self.time("upload_session");
        let row = sqlx::query("SELECT repo FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get::<String, _>("repo"))
            .transpose()
            .map_err(Into::into)
    }

    /// How many upload sessions are open in all, and how many of them in
    /// `repo` (in every replica), in one pass over the table.
    pub async fn count_uploads(&self, repo: &str) -> Result<(u64, u64), StoreError> {
        let _t = self.time("upload_session");
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN repo = $1 THEN 1 ELSE 0 END), 0) AS r FROM uploads",
        )
        .bind(repo)
        .fetch_one(&self.pool)
        .await?;
        let n = row.try_get::<i64, _>("n")?.max(0) as u64;
        let r = row.try_get::<i64, _>("r")?.max(0) as u64;
        Ok((n, r))
    }

    /// Repositories that hold blob `digest`, at most `limit` of them, in
    /// name order (the sources an automatic cross-repository mount may use).
    pub async fn repos_with_blob(
        &self,
        digest: &Digest,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT repo FROM repo_blobs WHERE digest = $1 ORDER BY repo LIMIT $2")
                .bind(digest.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("repo")?))
            .collect()
    }

    /// Upload sessions that received nothing since `cutoff_millis` (Unix ms).
    pub async fn uploads_idle_since(&self, cutoff_millis: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(cutoff_millis)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }

    /// Upload sessions created before `cutoff_millis` (Unix ms) that never
    /// received data (see [`MetaStore::touch_upload`]).
    pub async fn uploads_empty_since(&self, cutoff_millis: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT id FROM uploads WHERE updated_at = created_at AND created_at < $1")
                .bind(cutoff_millis)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }

    /// Records that an upload session just received data. The session then
    /// no longer counts as empty, even within the millisecond it was created.
    pub async fn touch_upload(&self, id: &str) -> Result<(), StoreError> {
        let _t = self.time("upload_session");
        sqlx::query(
            "UPDATE uploads SET updated_at = CASE WHEN $2 > created_at THEN $2 ELSE created_at + 1 END WHERE id = $1",
        )
            .bind(id)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an upload session.
    pub async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        let _t = self.time("upload_session");
        let r = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
