//! Webhook delivery state through the store: a webhook starts at the end
//! of the feed; its lease goes to one holder at a time and to another
//! only once expired; every cursor move and dead letter is fenced by the
//! lease and by the cursor the mover read; dead letters are bounded and
//! requeued. On SQLite, and on PostgreSQL when `PAVILION_TEST_POSTGRES_URL`
//! names a cluster.

use pavilion_store::events::QUOTA_REFUSED;
use pavilion_store::{MetaStore, NewEvent, Origin};
use serde_json::json;

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

async fn write(m: &MetaStore, n: usize) {
    for _ in 0..n {
        let event = NewEvent {
            kind: QUOTA_REFUSED,
            repository: Some("r"),
            subject: None,
            data: json!({}),
        };
        m.record_events(&Origin::default(), &[event]).await.unwrap();
    }
}

async fn lease_cursor_and_dead_letters(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    write(&m, 3).await;
    m.webhook_register("w").await.unwrap();
    // Registering again changes nothing.
    write(&m, 2).await;
    m.webhook_register("w").await.unwrap();
    let st = m.webhook_state("w").await.unwrap().unwrap();
    assert_eq!((st.delivered, st.dead), (3, 0));
    assert!(m.webhook_state("other").await.unwrap().is_none());

    let later = pavilion_store::now_millis() + 60_000;
    assert!(m.webhook_lease("w", "a", later).await.unwrap());
    assert!(!m.webhook_lease("w", "b", later).await.unwrap());
    assert!(m.webhook_lease("w", "a", later).await.unwrap(), "renewed");
    assert!(!m.webhook_advance("w", "b", 3, 4).await.unwrap(), "not b's");
    assert!(
        !m.webhook_advance("w", "a", 2, 4).await.unwrap(),
        "not at 2"
    );
    assert!(m.webhook_advance("w", "a", 3, 4).await.unwrap());
    // A dead letter moves the cursor in the same transaction.
    assert!(m
        .webhook_bury("w", "a", 5, 3, "answered 500", Some(4))
        .await
        .unwrap());
    let st = m.webhook_state("w").await.unwrap().unwrap();
    assert_eq!((st.delivered, st.dead), (5, 1));
    assert_eq!(st.last_error.as_deref(), Some("answered 500"));
    // An expired lease goes to whoever asks; the old holder is fenced out.
    assert!(m.webhook_lease("w", "a", 0).await.unwrap());
    assert!(m.webhook_lease("w", "b", later).await.unwrap());
    assert!(!m.webhook_advance("w", "a", 5, 6).await.unwrap());
    assert!(!m.webhook_bury("w", "a", 6, 1, "x", Some(5)).await.unwrap());
    assert!(!m.webhook_resolve("w", "a", 5).await.unwrap());
    // Requeue, then deliver on replay.
    assert_eq!(m.webhook_requeue("w").await.unwrap(), 1);
    let queued = m.webhook_dead_letters("w", 0, 10, true).await.unwrap();
    assert_eq!(
        (queued[0].seq, queued[0].attempts, queued[0].queued),
        (5, 3, true)
    );
    // Failing again adds attempts and leaves it unqueued.
    assert!(m.webhook_bury("w", "b", 5, 2, "again", None).await.unwrap());
    let all = m.webhook_dead_letters("w", 0, 10, false).await.unwrap();
    assert_eq!((all[0].attempts, all[0].queued), (5, false));
    assert!(m.webhook_resolve("w", "b", 5).await.unwrap());
    assert_eq!(m.webhook_state("w").await.unwrap().unwrap().dead, 0);
    // A replay moves the cursor whoever holds the lease; release frees it.
    assert!(m.webhook_rewind("w", 1).await.unwrap());
    m.webhook_release("w", "b").await.unwrap();
    let st = m.webhook_state("w").await.unwrap().unwrap();
    assert_eq!((st.delivered, st.holder), (1, None));
}

/// Beyond the bound the oldest letters go, and are counted.
async fn dead_letters_are_bounded(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    m.webhook_register("w").await.unwrap();
    assert!(m.webhook_lease("w", "a", i64::MAX).await.unwrap());
    for seq in 1..=5 {
        let buried = m
            .webhook_bury_within("w", "a", seq, 1, "e", Some(seq - 1), 3)
            .await
            .unwrap();
        assert!(buried);
    }
    let st = m.webhook_state("w").await.unwrap().unwrap();
    assert_eq!((st.delivered, st.dead, st.dead_dropped), (5, 3, 2));
    let kept: Vec<i64> = m
        .webhook_dead_letters("w", 0, 10, false)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(kept, [3, 4, 5]);
}

on_both!(lease_cursor_and_dead_letters, dead_letters_are_bounded);
