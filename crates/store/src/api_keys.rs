//! Robot / API keys and the token issuer's signing keys, in the metadata
//! database so that every replica knows them (a key created against one
//! replica's database works on all of them; a revoked one stops working on
//! all of them).
//!
//! The store holds what `pavilion_auth::apikey` makes: an id, the hex
//! SHA-256 of the secret (never the secret), a name and grant strings. It
//! does not parse grants (the caller does, with `pavilion_auth::Grant`);
//! it bounds what anyone can put in: names, the number and size of
//! scopes, the number of live keys, and how many revoked keys are kept.

use crate::error::StoreError;
use crate::meta::MetaStore;
use crate::now_millis;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::fmt;

/// Longest key name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most scopes one key holds.
pub const MAX_SCOPES: usize = 32;
/// Longest scope, in bytes (as `pavilion_auth::Scope` reads them).
pub const MAX_SCOPE_BYTES: usize = 512;
/// Most keys that are not revoked (expired ones count until revoked): with
/// each row at most about 17 KiB, the table stays small enough to list.
pub const MAX_LIVE_KEYS: i64 = 10_000;
/// Most revoked keys kept for `token list --all`; beyond, the longest
/// revoked are forgotten (they can never be used again either way).
pub const MAX_REVOKED_KEPT: i64 = 10_000;
/// Longest key id accepted (the ids `pavilion_auth::apikey` makes are 12).
const MAX_ID_BYTES: usize = 64;

/// A stored API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id (the `<id>` of `pvk_<id>_<secret>`).
    pub id: String,
    /// Its name, unique among live keys; the identity's subject.
    pub name: String,
    /// Hex SHA-256 of the secret. Never print it.
    pub hash: String,
    /// Grant strings (`repository:team/*:pull,push`).
    pub scopes: Vec<String>,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// When it stops working (Unix ms), if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked (Unix ms), if it was.
    pub revoked_at: Option<i64>,
}

// By hand, so that the hash is not printed when a key is logged.
impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Whether a key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Neither revoked nor expired.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked (whether or not it had expired too).
    Revoked,
}

impl KeyState {
    /// The name listings use.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

impl ApiKey {
    /// The key's state at `now_ms` (Unix ms): expired from its expiry on.
    pub fn state(&self, now_ms: i64) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|e| now_ms >= e) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

/// A key about to be stored.
#[derive(Clone)]
pub struct NewApiKey {
    /// Its id, as `pavilion_auth::apikey::generate` made it.
    pub id: String,
    /// Its name: 1 to 64 bytes of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Hex SHA-256 of the secret (64 hex digits).
    pub hash: String,
    /// Grant strings, already checked by the caller: 1 to 32, each at most
    /// 512 bytes.
    pub scopes: Vec<String>,
    /// When it stops working (Unix ms), if ever.
    pub expires_at: Option<i64>,
}

/// Why a key could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// What was given breaks a bound or a rule (name, scopes, id, hash).
    #[error("{0}")]
    Invalid(String),
    /// A live key already has this name.
    #[error("an API key named {0:?} already exists (revoke it first, or choose another name)")]
    NameTaken(String),
    /// No key has this id, and no live key this name.
    #[error("no API key with id or name {0:?}")]
    NotFound(String),
    /// The key was revoked before.
    #[error("API key {0:?} is already revoked")]
    AlreadyRevoked(String),
    /// [`MAX_LIVE_KEYS`] keys are live already.
    #[error(
        "there are already {MAX_LIVE_KEYS} API keys that are not revoked: revoke unused ones first"
    )]
    TooMany,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ApiKeyError {
    fn from(e: sqlx::Error) -> Self {
        ApiKeyError::Store(e.into())
    }
}

/// Checks a key's name: what `token list` prints and an identity's subject
/// carries, so nothing that could pass for something else in a table or a
/// log line.
pub fn check_name(name: &str) -> Result<(), ApiKeyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiKeyError::Invalid(format!(
            "API key name {name:?} must be 1 to {MAX_NAME_BYTES} characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        )))
    }
}

/// Checks the bounds of a key's scopes (their grammar is the caller's).
pub fn check_scopes(scopes: &[String]) -> Result<(), ApiKeyError> {
    if scopes.is_empty() {
        return Err(ApiKeyError::Invalid(
            "an API key needs at least one scope".into(),
        ));
    }
    if scopes.len() > MAX_SCOPES {
        return Err(ApiKeyError::Invalid(format!(
            "an API key holds at most {MAX_SCOPES} scopes, not {}",
            scopes.len()
        )));
    }
    if let Some(s) = scopes.iter().find(|s| s.len() > MAX_SCOPE_BYTES) {
        return Err(ApiKeyError::Invalid(format!(
            "scope of {} bytes is longer than {MAX_SCOPE_BYTES}",
            s.len()
        )));
    }
    Ok(())
}

fn check_new(k: &NewApiKey) -> Result<(), ApiKeyError> {
    check_name(&k.name)?;
    check_scopes(&k.scopes)?;
    if k.id.is_empty()
        || k.id.len() > MAX_ID_BYTES
        || !k.id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ApiKeyError::Invalid(format!(
            "API key id {:?} is not 1 to {MAX_ID_BYTES} letters and digits",
            k.id
        )));
    }
    if k.hash.len() != 64 || !k.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiKeyError::Invalid(
            "API key hash is not 64 hex digits".into(),
        ));
    }
    Ok(())
}

const KEY_COLUMNS: &str = "id, name, hash, scopes, created_at, expires_at, revoked_at";

fn key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let id: String = row.try_get("id")?;
    let scopes: String = row.try_get("scopes")?;
    let scopes = serde_json::from_str(&scopes)
        .map_err(|e| StoreError::Corrupt(format!("scopes of API key {id}: {e}")))?;
    Ok(ApiKey {
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        scopes,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        id,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl MetaStore {
    /// Stores a new key. A live key with the same name, more than
    /// [`MAX_LIVE_KEYS`] live keys, or a name or scopes out of bounds are
    /// refused, and nothing is stored.
    pub async fn create_api_key(&self, k: &NewApiKey) -> Result<ApiKey, ApiKeyError> {
        check_new(k)?;
        // Asked first for a plain answer; the unique index decides races.
        let taken =
            sqlx::query("SELECT 1 AS one FROM api_keys WHERE name = $1 AND revoked_at IS NULL")
                .bind(&k.name)
                .fetch_optional(&self.pool)
                .await?;
        if taken.is_some() {
            return Err(ApiKeyError::NameTaken(k.name.clone()));
        }
        let scopes = serde_json::to_string(&k.scopes)
            .map_err(|e| ApiKeyError::Invalid(format!("scopes: {e}")))?;
        let now = now_millis();
        // The insert comes first (SQLite takes its write lock at once), the
        // count after it, in one transaction: over the bound, it is rolled
        // back.
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, name, hash, scopes, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(k.hash.to_ascii_lowercase())
        .bind(&scopes)
        .bind(now)
        .bind(k.expires_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiKeyError::NameTaken(k.name.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        let live: i64 = sqlx::query("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if live > MAX_LIVE_KEYS {
            tx.rollback().await?;
            return Err(ApiKeyError::TooMany);
        }
        match tx.commit().await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiKeyError::NameTaken(k.name.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        Ok(ApiKey {
            id: k.id.clone(),
            name: k.name.clone(),
            hash: k.hash.to_ascii_lowercase(),
            scopes: k.scopes.clone(),
            created_at: now,
            expires_at: k.expires_at,
            revoked_at: None,
        })
    }

    /// The key with this id, whatever its state (the caller checks
    /// [`ApiKey::state`] and the hash).
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Every key not revoked (expired ones included), or with
    /// `include_revoked` every key kept, oldest first. At most
    /// [`MAX_LIVE_KEYS`] + [`MAX_REVOKED_KEPT`] rows.
    pub async fn api_keys(&self, include_revoked: bool) -> Result<Vec<ApiKey>, StoreError> {
        let filter = if include_revoked {
            ""
        } else {
            "WHERE revoked_at IS NULL"
        };
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys {filter} ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes the key with id `id_or_name`, or else the live key named so,
    /// and returns it as revoked. An id is looked at first: ids are random
    /// and unique, names only among live keys.
    pub async fn revoke_api_key(&self, id_or_name: &str) -> Result<ApiKey, ApiKeyError> {
        if id_or_name.is_empty() || id_or_name.len() > MAX_NAME_BYTES.max(MAX_ID_BYTES) {
            return Err(ApiKeyError::NotFound(id_or_name.to_string()));
        }
        let now = now_millis();
        let by_id = self.api_key(id_or_name).await?;
        let sql = match &by_id {
            Some(k) if k.revoked_at.is_some() => {
                return Err(ApiKeyError::AlreadyRevoked(k.name.clone()))
            }
            Some(_) => format!(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                 RETURNING {KEY_COLUMNS}"
            ),
            None => format!(
                "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL \
                 RETURNING {KEY_COLUMNS}"
            ),
        };
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            // Revoked meanwhile, or a name only revoked keys had.
            if let Some(k) = by_id {
                return Err(ApiKeyError::AlreadyRevoked(k.name));
            }
            let revoked = sqlx::query("SELECT 1 AS one FROM api_keys WHERE name = $1")
                .bind(id_or_name)
                .fetch_optional(&self.pool)
                .await?;
            return Err(if revoked.is_some() {
                ApiKeyError::AlreadyRevoked(id_or_name.to_string())
            } else {
                ApiKeyError::NotFound(id_or_name.to_string())
            });
        };
        let key = key_from_row(&row)?;
        // The key is revoked; a failed prune is retried by the next revoke.
        if let Err(e) = self.prune_revoked_api_keys().await {
            tracing::warn!(error = %e, "could not prune revoked API keys");
        }
        Ok(key)
    }

    /// Forgets revoked keys beyond the [`MAX_REVOKED_KEPT`] revoked last.
    async fn prune_revoked_api_keys(&self) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys WHERE revoked_at IS NOT NULL \
             ORDER BY revoked_at DESC, id DESC LIMIT $1 OFFSET $2)",
        )
        .bind(i64::MAX)
        .bind(MAX_REVOKED_KEPT)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token issuer's signing keys: (kid, PKCS#8 PEM, created_at in
    /// Unix ms), oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, private_pem, created_at FROM token_signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("kid")?,
                    r.try_get("private_pem")?,
                    r.try_get("created_at")?,
                ))
            })
            .collect()
    }

    /// Stores a signing key unless one with this kid exists (replicas that
    /// start together each offer theirs; every one then reads back the
    /// same set with [`MetaStore::signing_keys`]).
    pub async fn insert_signing_key_if_absent(
        &self,
        kid: &str,
        private_pem: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO token_signing_keys (kid, private_pem, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(private_pem)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_plain() {
        for ok in ["ci", "team-a.deploy_2", &"n".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "ci\n", "ci/x", "é", &"n".repeat(65), "a:b"] {
            assert!(
                matches!(check_name(bad), Err(ApiKeyError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scopes_are_bounded() {
        let s = |n: usize, len: usize| vec!["x".repeat(len); n];
        assert!(check_scopes(&s(1, 512)).is_ok());
        assert!(check_scopes(&s(32, 10)).is_ok());
        assert!(check_scopes(&s(0, 10)).is_err());
        assert!(check_scopes(&s(33, 10)).is_err());
        assert!(check_scopes(&s(1, 513)).is_err());
    }

    #[test]
    fn state_follows_revocation_then_expiry() {
        let mut k = ApiKey {
            id: "abc".into(),
            name: "ci".into(),
            hash: "0".repeat(64),
            scopes: vec![],
            created_at: 0,
            expires_at: Some(100),
            revoked_at: None,
        };
        assert_eq!(k.state(99), KeyState::Active);
        assert_eq!(k.state(100), KeyState::Expired);
        k.revoked_at = Some(50);
        assert_eq!(k.state(10), KeyState::Revoked);
        k.expires_at = None;
        k.revoked_at = None;
        assert_eq!(k.state(i64::MAX), KeyState::Active);
        assert!(!format!("{k:?}").contains(&"0".repeat(64)));
    }
}
