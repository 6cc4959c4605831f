//! API keys and token signing keys through the store: created, listed,
//! revoked, their bounds, and names unique among live keys only. On SQLite,
//! and on PostgreSQL when `PAVILION_TEST_POSTGRES_URL` names a cluster
//! (required when `PAVILION_TEST_REQUIRE_PEERS=1`).

use pavilion_store::api_keys::{MAX_LIVE_KEYS, MAX_REVOKED_KEPT};
use pavilion_store::{ApiKeyError, KeyState, MetaStore, NewApiKey};

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

/// A key as `pavilion token create` would store it (the hash is made up:
/// the store does not check secrets).
fn new_key(id: &str, name: &str) -> NewApiKey {
    NewApiKey {
        id: id.to_string(),
        name: name.to_string(),
        hash: format!("{:0>64}", id),
        scopes: vec!["repository:team/*:pull,push".to_string()],
        expires_at: None,
    }
}

async fn names(m: &MetaStore, all: bool) -> Vec<(String, Option<i64>)> {
    m.api_keys(all)
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.name, k.revoked_at))
        .map(|(n, r)| (n, r.map(|_| 1)))
        .collect()
}

/// Create, read back, list, revoke by name and by id, revoke twice.
async fn keys_are_created_listed_and_revoked(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    assert!(m.api_keys(true).await.unwrap().is_empty());
    let mut k = new_key("aaaaaaaaaaaa", "ci");
    k.scopes.push("registry:catalog:*".into());
    k.expires_at = Some(pavilion_store::now_millis() + 60_000);
    let made = m.create_api_key(&k).await.unwrap();
    assert_eq!(made.name, "ci");
    let got = m.api_key("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(got, made);
    assert_eq!(got.hash, k.hash);
    assert_eq!(got.scopes, k.scopes);
    assert_eq!(got.expires_at, k.expires_at);
    assert_eq!(got.revoked_at, None);
    assert_eq!(got.state(pavilion_store::now_millis()), KeyState::Active);
    assert!(m.api_key("bbbbbbbbbbbb").await.unwrap().is_none());
    assert!(m.api_key(&"a".repeat(100)).await.unwrap().is_none());

    // A second live key with the same name is refused; nothing is stored.
    let e = m
        .create_api_key(&new_key("bbbbbbbbbbbb", "ci"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ApiKeyError::NameTaken(ref n) if n == "ci"),
        "{e}"
    );
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(m.api_key("bbbbbbbbbbbb").await.unwrap().is_none());
    m.create_api_key(&new_key("cccccccccccc", "deploy"))
        .await
        .unwrap();
    assert_eq!(
        names(&m, false).await,
        [("ci".to_string(), None), ("deploy".to_string(), None)]
    );

    // Revoked by name; then by that name again, and by its id: already.
    let r = m.revoke_api_key("ci").await.unwrap();
    assert_eq!(r.id, "aaaaaaaaaaaa");
    let at = r.revoked_at.expect("revoked_at set");
    assert_eq!(r.state(at), KeyState::Revoked);
    for again in ["ci", "aaaaaaaaaaaa"] {
        let e = m.revoke_api_key(again).await.unwrap_err();
        assert!(matches!(e, ApiKeyError::AlreadyRevoked(_)), "{again}: {e}");
        assert!(e.to_string().contains("already revoked"), "{e}");
    }
    assert_eq!(
        m.api_key("aaaaaaaaaaaa").await.unwrap().unwrap().revoked_at,
        Some(at)
    );
    assert_eq!(names(&m, false).await, [("deploy".to_string(), None)]);
    assert_eq!(
        names(&m, true).await,
        [("ci".to_string(), Some(1)), ("deploy".to_string(), None)]
    );

    // The name is free again once revoked.
    m.create_api_key(&new_key("dddddddddddd", "ci"))
        .await
        .unwrap();
    // By id.
    let r = m.revoke_api_key("cccccccccccc").await.unwrap();
    assert_eq!(r.name, "deploy");
    // Unknown ids and names, and absurd ones, are not found and change
    // nothing.
    for unknown in ["zzzzzzzzzzzz", "nobody", "", &"x".repeat(10_000)] {
        let e = m.revoke_api_key(unknown).await.unwrap_err();
        assert!(matches!(e, ApiKeyError::NotFound(_)), "{e}");
    }
    assert_eq!(m.api_keys(false).await.unwrap().len(), 1);
    assert_eq!(m.api_keys(true).await.unwrap().len(), 3);
}

/// What breaks a bound is refused before anything is stored.
async fn bounds_are_enforced(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let mut bad = Vec::new();
    let mut k = new_key("aaaaaaaaaaaa", "has space");
    bad.push(k.clone());
    k.name = "n".repeat(65);
    bad.push(k.clone());
    k.name = "ok".into();
    k.scopes = vec!["repository:a:pull".into(); 33];
    bad.push(k.clone());
    k.scopes = vec!["x".repeat(513)];
    bad.push(k.clone());
    k.scopes = vec![];
    bad.push(k.clone());
    k.scopes = vec!["repository:a:pull".into()];
    k.hash = "nothex".into();
    bad.push(k.clone());
    k.hash = "0".repeat(64);
    k.id = "a'b".into();
    bad.push(k.clone());
    for b in &bad {
        let e = m.create_api_key(b).await.unwrap_err();
        assert!(matches!(e, ApiKeyError::Invalid(_)), "{e}");
    }
    assert!(m.api_keys(true).await.unwrap().is_empty());
    // 32 scopes of 512 bytes and a 64-byte name are within bounds.
    k.id = "aaaaaaaaaaaa".into();
    k.name = "n".repeat(64);
    k.scopes = vec![format!("repository:{}:pull", "r".repeat(512 - 16)); 32];
    assert_eq!(k.scopes[0].len(), 512);
    m.create_api_key(&k).await.unwrap();
}

/// At most MAX_LIVE_KEYS live keys; a revoked one makes room.
async fn live_keys_are_bounded(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    // Filled in bulk (one statement per thousand) rather than through
    // create_api_key ten thousand times.
    let mut n = 0;
    while n < MAX_LIVE_KEYS {
        let values: Vec<String> = (n..(n + 1000).min(MAX_LIVE_KEYS))
            .map(|i| {
                format!(
                    "('k{i}', 'k{i}', '{}', '[]', {i}, NULL, NULL)",
                    "0".repeat(64)
                )
            })
            .collect();
        sqlx_exec(
            &db.url,
            &format!(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at, expires_at, revoked_at) VALUES {}",
                values.join(",")
            ),
        )
        .await;
        n += 1000;
    }
    let e = m
        .create_api_key(&new_key("aaaaaaaaaaaa", "one-more"))
        .await
        .unwrap_err();
    assert!(matches!(e, ApiKeyError::TooMany), "{e}");
    assert!(e.to_string().contains("revoke unused ones"), "{e}");
    assert!(m.api_key("aaaaaaaaaaaa").await.unwrap().is_none());
    m.revoke_api_key("k17").await.unwrap();
    m.create_api_key(&new_key("aaaaaaaaaaaa", "one-more"))
        .await
        .unwrap();
    assert_eq!(m.api_keys(false).await.unwrap().len() as i64, MAX_LIVE_KEYS);
}

/// Revoked keys beyond MAX_REVOKED_KEPT are forgotten, the oldest first.
async fn revoked_keys_are_pruned(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let mut n = 0;
    while n < MAX_REVOKED_KEPT {
        let values: Vec<String> = (n..(n + 1000).min(MAX_REVOKED_KEPT))
            .map(|i| {
                format!(
                    "('r{i}', 'r{i}', '{}', '[]', {i}, NULL, {})",
                    "0".repeat(64),
                    i + 1
                )
            })
            .collect();
        sqlx_exec(
            &db.url,
            &format!(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at, expires_at, revoked_at) VALUES {}",
                values.join(",")
            ),
        )
        .await;
        n += 1000;
    }
    m.create_api_key(&new_key("aaaaaaaaaaaa", "live"))
        .await
        .unwrap();
    m.revoke_api_key("live").await.unwrap();
    let all = m.api_keys(true).await.unwrap();
    assert_eq!(all.len() as i64, MAX_REVOKED_KEPT);
    // The oldest revoked (r0, revoked at 1) went; the newest stayed.
    assert!(m.api_key("r0").await.unwrap().is_none());
    assert!(m.api_key("r1").await.unwrap().is_some());
    assert!(m.api_key("aaaaaaaaaaaa").await.unwrap().is_some());
}

/// Two creators racing for one name: the unique index lets one through and
/// the other gets the same plain refusal as when the name was seen taken.
async fn racing_creators_get_one_key_per_name(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    for round in 0..5 {
        let name = format!("race{round}");
        let (a, b) = (
            new_key(&format!("a{round}aaaaaaaaaa"), &name),
            new_key(&format!("b{round}bbbbbbbbbb"), &name),
        );
        let (ra, rb) = tokio::join!(m.create_api_key(&a), m.create_api_key(&b));
        let oks = [ra.is_ok(), rb.is_ok()].iter().filter(|o| **o).count();
        assert_eq!(oks, 1, "{ra:?} {rb:?}");
        let err = ra.err().or(rb.err()).unwrap();
        assert!(matches!(err, ApiKeyError::NameTaken(_)), "{err}");
    }
    assert_eq!(m.api_keys(true).await.unwrap().len(), 5);
}

/// Signing keys: inserted once per kid, read back by every replica.
async fn signing_keys_are_shared(db: Db) {
    let a = MetaStore::connect(&db.url).await.unwrap();
    let b = MetaStore::connect(&db.url).await.unwrap();
    assert!(a.signing_keys().await.unwrap().is_empty());
    a.insert_signing_key_if_absent("k1", "PEM-A").await.unwrap();
    // A second replica offering the same kid changes nothing.
    b.insert_signing_key_if_absent("k1", "PEM-B").await.unwrap();
    b.insert_signing_key_if_absent("k2", "PEM-C").await.unwrap();
    let keys = a.signing_keys().await.unwrap();
    let got: Vec<(&str, &str)> = keys
        .iter()
        .map(|(k, p, _)| (k.as_str(), p.as_str()))
        .collect();
    assert_eq!(got, [("k1", "PEM-A"), ("k2", "PEM-C")]);
    assert!(keys.iter().all(|(_, _, at)| *at > 0));
}

/// Runs one statement against the store's database (bulk fixtures).
async fn sqlx_exec(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

on_both!(
    keys_are_created_listed_and_revoked,
    bounds_are_enforced,
    live_keys_are_bounded,
    revoked_keys_are_pruned,
    racing_creators_get_one_key_per_name,
    signing_keys_are_shared,
);
