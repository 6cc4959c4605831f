//! Databases for the store's tests: SQLite in a temporary directory, and
//! PostgreSQL when `PAVILION_TEST_POSTGRES_URL` names a cluster (a fresh
//! database each, dropped afterwards; required when
//! `PAVILION_TEST_REQUIRE_PEERS=1`).

/// A fresh database: the store's URL, and what to drop afterwards.
pub struct Db {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((base, name)) = self.drop_pg.take() {
            let _ = std::process::Command::new("psql")
                .args([
                    base.as_str(),
                    "-qc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

pub fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    Db {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display()),
        _dir: Some(dir),
        drop_pg: None,
    }
}

/// A fresh PostgreSQL database, or None (skipped) when there is no cluster.
pub fn postgres() -> Option<Db> {
    let Ok(base) = std::env::var("PAVILION_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("PAVILION_TEST_REQUIRE_PEERS").is_none_or(|v| v != "1"),
            "PostgreSQL (PAVILION_TEST_POSTGRES_URL) is required but missing"
        );
        eprintln!("SKIPPED: PostgreSQL not available; run scripts/test to install peers");
        return None;
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "pavilion_store_test_{}_{}_{}",
        std::process::id(),
        pavilion_store::now_millis(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let out = std::process::Command::new("psql")
        .args([
            base.as_str(),
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(Db {
        url: format!("{prefix}/{name}"),
        _dir: None,
        drop_pg: Some((base.clone(), name)),
    })
}

/// Runs each named `async fn(Db)` as two tests, `sqlite::NAME` and
/// `postgres::NAME` (skipped without a cluster). The file using it imports
/// `sqlite` and `postgres` from here.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test]
               async fn $name() { super::$name(super::sqlite()).await } )*
        }
        mod postgres {
            $( #[tokio::test]
               async fn $name() {
                   if let Some(db) = super::postgres() { super::$name(db).await }
               } )*
        }
    };
}
