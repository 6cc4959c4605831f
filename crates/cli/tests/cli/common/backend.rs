//! Which storage and metadata backends a test runs on, and the peers
//! (PostgreSQL, radosgw, Azurite) that some of them need.

use std::process::Command;

/// Which metadata engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// Blobs in Ceph's radosgw (S3), metadata in PostgreSQL.
    S3,
    /// Blobs in Azurite (Azure Blob Storage), metadata in PostgreSQL.
    Azure,
}

/// The `--storage` URL of a fresh prefix for `backend`, or None when its
/// server is missing (and peers are not required).
pub(super) fn object_storage(backend: Backend) -> Option<Option<String>> {
    let prefix = uuid_hex();
    match backend {
        Backend::Sqlite | Backend::Postgres => Some(None),
        Backend::S3 => {
            let endpoint = std::env::var("PAVILION_TEST_S3_ENDPOINT").ok();
            require_peer("radosgw (PAVILION_TEST_S3_ENDPOINT)", endpoint.is_some())?;
            Some(Some(format!(
                "s3://pavilion-test/{prefix}?endpoint={}&region=default&allow_http=true&part_size=5242880",
                endpoint?
            )))
        }
        Backend::Azure => {
            let present = std::env::var_os("AZURITE_BLOB_STORAGE_URL").is_some();
            require_peer("Azurite (AZURITE_BLOB_STORAGE_URL)", present)?;
            // Small parts, so tests of a few MiB cross part boundaries.
            Some(Some(format!(
                "az://pavilion-test/{prefix}?use_emulator=true&part_size=5242880"
            )))
        }
    }
}

/// True when the test command asked for every peer to be present.
pub fn peers_required() -> bool {
    std::env::var_os("PAVILION_TEST_REQUIRE_PEERS").is_some_and(|v| v == "1")
}

/// Skips (returns None) or fails when a peer is missing, depending on
/// `PAVILION_TEST_REQUIRE_PEERS`.
pub fn require_peer(what: &str, available: bool) -> Option<()> {
    if available {
        return Some(());
    }
    assert!(
        !peers_required(),
        "{what} is required (PAVILION_TEST_REQUIRE_PEERS=1) but missing"
    );
    eprintln!("SKIPPED: {what} not available; run scripts/test to install peers");
    None
}

/// A fresh, empty PostgreSQL database on the test cluster, or None.
pub fn fresh_postgres_db() -> Option<String> {
    let base = std::env::var("PAVILION_TEST_POSTGRES_URL").ok();
    require_peer("PostgreSQL (PAVILION_TEST_POSTGRES_URL)", base.is_some())?;
    let base = base?;
    let name = format!("pavilion_test_{}", uuid_hex());
    let out = Command::new("psql")
        .args([
            &base,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    Some(format!("{prefix}/{name}"))
}

/// A name unique across the tests of this process (a counter) and across
/// processes (the pid), with the time for runs that reuse a cluster. Time and
/// pid alone collided when two tests started in the same clock tick.
fn uuid_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{t:x}_{:x}_{n}", std::process::id())
}
