//! The decision log's bounds, through the store: each decision is a bounded
//! summary whatever the caller passes, retention by count, age and size
//! removes the oldest, queries are capped, and rows written before the bound
//! are cut down by the migration. On SQLite, and on PostgreSQL when
//! `PAVILION_TEST_POSTGRES_URL` names a cluster (required when
//! `PAVILION_TEST_REQUIRE_PEERS=1`).

use pavilion_store::decisions::{
    MAX_DECISION_BYTES, MAX_DECISION_PAGE, MAX_DETAIL_BYTES, MAX_MESSAGES,
};
use pavilion_store::{DecisionQuery, DecisionRetention, MetaStore, NewDecision};
use serde_json::{json, Value};
use std::time::Duration;

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

async fn record(m: &MetaStore, subject: &str, detail: Value) {
    m.record_decision(&NewDecision {
        point: "admission",
        repository: None,
        subject,
        allowed: true,
        deny: &[],
        warn: &[],
        detail: &detail,
        actor: None,
        traceparent: None,
    })
    .await
    .unwrap();
}

async fn subjects(m: &MetaStore) -> Vec<String> {
    m.decisions(&DecisionQuery {
        n: MAX_DECISION_PAGE,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_iter()
    .map(|d| d.subject)
    .collect()
}

fn retention(count: u64, age: Option<Duration>, bytes: Option<u64>) -> DecisionRetention {
    DecisionRetention {
        max_count: count,
        max_age: age,
        max_bytes: bytes,
    }
}

/// Whatever the caller passes, the stored decision is within the bound.
async fn every_decision_is_bounded(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let hostile = "\u{1}\"é\n\0".repeat(300_000);
    let messages = vec![hostile.clone(); 500];
    let detail = json!({"uid": "u1", "images": vec![hostile.clone(); 3]});
    m.record_decision(&NewDecision {
        point: &hostile,
        repository: Some(&hostile),
        subject: &hostile,
        allowed: false,
        deny: &messages,
        warn: &messages,
        detail: &detail,
        actor: None,
        traceparent: None,
    })
    .await
    .unwrap();
    let list = m
        .decisions(&DecisionQuery {
            n: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let text = serde_json::to_string(&list[0]).unwrap();
    assert!(text.len() <= MAX_DECISION_BYTES, "{}", text.len());
    assert_eq!(list[0].deny.len(), MAX_MESSAGES);
    assert_eq!(list[0].warn.len(), MAX_MESSAGES);
    assert_eq!(list[0].detail["uid"], "u1");
    assert!(list[0].detail["truncated"].is_string());
    assert!(list[0].detail.to_string().len() <= MAX_DETAIL_BYTES);
    let size = m.decision_log_bytes().await.unwrap();
    assert!(size > 0 && size as usize <= MAX_DECISION_BYTES, "{size}");
    // A query asks for at most a page, whatever its n.
    for i in 0..(MAX_DECISION_PAGE + 5) {
        record(&m, &format!("s{i}"), json!(null)).await;
    }
    let all = m
        .decisions(&DecisionQuery {
            n: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len() as i64, MAX_DECISION_PAGE);
}

/// Count: only the newest `max_count` stay, on every insert.
async fn retention_by_count_removes_the_oldest(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    m.set_decision_retention(retention(0, None, None));
    assert_eq!(m.decision_retention().max_count, 1, "0 is taken as 1");
    m.set_decision_retention(retention(5, None, None));
    for i in 0..12 {
        record(&m, &format!("s{i}"), json!({"i": i})).await;
    }
    assert_eq!(subjects(&m).await, ["s11", "s10", "s9", "s8", "s7"]);
    // A lower limit applies at the next prune (the server runs one at start).
    m.set_decision_retention(retention(2, None, None));
    assert_eq!(m.prune_decisions().await.unwrap(), 3);
    assert_eq!(subjects(&m).await, ["s11", "s10"]);
}

/// Age: decisions older than `max_age` go; none when age is unlimited.
async fn retention_by_age_removes_old_decisions(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let day = Duration::from_secs(24 * 3600);
    m.set_decision_retention(retention(100, Some(day), None));
    for i in 0..3 {
        record(&m, &format!("old{i}"), json!(null)).await;
    }
    let now = pavilion_store::now_millis();
    assert_eq!(m.prune_decisions_at(now).await.unwrap(), 0);
    m.set_decision_retention(retention(100, None, None));
    assert_eq!(m.prune_decisions_at(now + 2 * 86_400_000).await.unwrap(), 0);
    m.set_decision_retention(retention(100, Some(day), None));
    assert_eq!(
        m.prune_decisions_at(now + 86_400_000 + 1000).await.unwrap(),
        3
    );
    assert!(subjects(&m).await.is_empty());
}

/// Size: the total stays within the limit (plus what is written between two
/// checks), the oldest going first.
async fn retention_by_size_removes_the_oldest(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    let limit: u64 = 64 << 10;
    m.set_decision_retention(retention(1000, None, Some(limit)));
    // About 10 KiB each: the byte trigger (limit/16) checks on every one.
    for i in 0..40 {
        record(&m, &format!("s{i}"), json!({"pad": "p".repeat(10_000)})).await;
    }
    let total = m.decision_log_bytes().await.unwrap() as u64;
    assert!(total <= limit, "{total} > {limit}");
    let kept = subjects(&m).await;
    assert!(kept.len() >= 5 && kept.len() <= 6, "{kept:?}");
    assert_eq!(kept[0], "s39");
    let expected: Vec<String> = (40 - kept.len()..40)
        .rev()
        .map(|i| format!("s{i}"))
        .collect();
    assert_eq!(kept, expected);
}

/// Rows stored in full before the bound are cut down by the migration.
async fn the_migration_cuts_down_old_rows(db: Db) {
    use std::borrow::Cow;
    let dir = if db.url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut old = sqlx::migrate::Migrator::new(path.as_path()).await.unwrap();
    // The schema as it was before decisions were bounded.
    old.migrations = Cow::Owned(old.migrations[..3].to_vec());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    old.run(&pool).await.unwrap();
    let huge = "x".repeat(3 << 20);
    sqlx::query(
        "INSERT INTO decisions (at, point, repository, subject, allowed, deny, warn, detail) \
         VALUES ($1, 'admission', NULL, $2, 0, $3, $4, $5)",
    )
    .bind(pavilion_store::now_millis())
    .bind(&huge)
    .bind(json!([huge]).to_string())
    .bind(json!([huge]).to_string())
    .bind(json!({"a": huge}).to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let m = MetaStore::connect(&db.url).await.unwrap();
    let list = m
        .decisions(&DecisionQuery {
            n: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let text = serde_json::to_string(&list[0]).unwrap();
    assert!(text.len() <= MAX_DECISION_BYTES, "{}", text.len());
    assert!(list[0].detail["truncated"].is_string());
    assert!(list[0].subject.ends_with("…(cut)"));
    let size = m.decision_log_bytes().await.unwrap();
    assert_eq!(size as usize, 64 + "admission".len() + text_bytes(&list[0]));
}

/// The texts of a decision as stored (what the size column counts).
fn text_bytes(d: &pavilion_store::Decision) -> usize {
    d.subject.len()
        + d.repository.as_ref().map_or(0, String::len)
        + serde_json::to_string(&d.deny).unwrap().len()
        + serde_json::to_string(&d.warn).unwrap().len()
        + d.detail.to_string().len()
}

on_both!(
    every_decision_is_bounded,
    retention_by_count_removes_the_oldest,
    retention_by_age_removes_old_decisions,
    retention_by_size_removes_the_oldest,
    the_migration_cuts_down_old_rows,
);
