//! The change feed's outbox through the store: sequence numbers are
//! gapless and, read while many writers commit at once, never skipped;
//! retention removes the oldest by count and by age, in batches. On
//! SQLite, and on PostgreSQL when `PAVILION_TEST_POSTGRES_URL` names a
//! cluster (required when `PAVILION_TEST_REQUIRE_PEERS=1`).

use pavilion_store::events::{POLICY_DECIDED, QUOTA_REFUSED};
use pavilion_store::{EventQuery, EventRetention, MetaStore, NewEvent, Origin};
use serde_json::json;
use std::time::Duration;

#[macro_use]
mod common;
use common::{postgres, sqlite, Db};

async fn write(m: &MetaStore, repo: Option<&str>, n: usize) {
    let event = NewEvent {
        kind: if repo.is_some() {
            QUOTA_REFUSED
        } else {
            POLICY_DECIDED
        },
        repository: repo,
        subject: Some("s".into()),
        data: json!({ "n": n }),
    };
    m.record_events(&Origin::default(), &[event]).await.unwrap();
}

async fn all(m: &MetaStore) -> Vec<pavilion_store::Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = m
            .events_after(&EventQuery {
                after,
                limit: 100,
                types: Vec::new(),
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { return out };
        after = last.seq;
        out.extend(page);
    }
}

/// Many writers at once, a reader paging as they go: the reader sees 1..N
/// exactly, and each repository's numbers are 1..n in order.
async fn concurrent_writers_one_gapless_sequence(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let m = m.clone();
            tokio::spawn(async move {
                let repo = format!("r{}", w % 3);
                for i in 0..EACH {
                    write(&m, Some(&repo), i).await;
                }
            })
        })
        .collect();
    let reader = {
        let m = m.clone();
        tokio::spawn(async move {
            let (mut seen, mut after) = (Vec::new(), 0);
            while seen.len() < WRITERS * EACH {
                let page = m
                    .events_after(&EventQuery {
                        after,
                        limit: 7,
                        types: Vec::new(),
                    })
                    .await
                    .unwrap();
                if let Some(last) = page.last() {
                    after = last.seq;
                }
                seen.extend(page.into_iter().map(|e| e.seq));
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader saw every event")
        .unwrap();
    assert_eq!(seen, (1..=(WRITERS * EACH) as i64).collect::<Vec<_>>());
    let events = all(&m).await;
    for r in ["r0", "r1", "r2"] {
        let ns: Vec<i64> = events
            .iter()
            .filter(|e| e.repository.as_deref() == Some(r))
            .map(|e| e.repo_seq.unwrap())
            .collect();
        assert_eq!(ns, (1..=ns.len() as i64).collect::<Vec<_>>(), "{r}");
    }
    assert_eq!(m.last_event_seq().await.unwrap(), (WRITERS * EACH) as i64);
}

/// Count keeps the newest; age removes what is older; numbering goes on.
async fn retention_by_count_and_age(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    for i in 0..10 {
        write(&m, None, i).await;
    }
    m.set_event_retention(EventRetention {
        max_events: 4,
        max_age: Duration::from_secs(3600),
    });
    assert_eq!(m.prune_events().await.unwrap(), 6);
    let seqs: Vec<i64> = all(&m).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [7, 8, 9, 10]);
    // Two hours on, all are past the age limit.
    let later = pavilion_store::now_millis() + 2 * 3600 * 1000;
    assert_eq!(m.prune_events_at(later).await.unwrap(), 4);
    assert!(all(&m).await.is_empty());
    write(&m, None, 0).await;
    assert_eq!(all(&m).await[0].seq, 11);
}

/// A type filter is applied by the database; actor and traceparent are
/// cut to 256 characters.
async fn filters_and_bounds(db: Db) {
    let m = MetaStore::connect(&db.url).await.unwrap();
    write(&m, Some("a"), 0).await;
    write(&m, None, 1).await;
    let long = "x".repeat(10_000);
    let origin = Origin {
        actor: Some(long.clone()),
        traceparent: Some(long),
    };
    let event = NewEvent {
        kind: QUOTA_REFUSED,
        repository: Some("a"),
        subject: None,
        data: json!({}),
    };
    m.record_events(&origin, &[event]).await.unwrap();
    let only = m
        .events_after(&EventQuery {
            after: 0,
            limit: 100,
            types: vec![QUOTA_REFUSED.to_string()],
        })
        .await
        .unwrap();
    assert_eq!(only.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(only[1].repo_seq, Some(2));
    assert_eq!(only[1].actor.as_ref().unwrap().len(), 256);
    assert_eq!(only[1].traceparent.as_ref().unwrap().len(), 256);
}

on_both!(
    concurrent_writers_one_gapless_sequence,
    retention_by_count_and_age,
    filters_and_bounds,
);
