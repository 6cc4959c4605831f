//! The blob store conformance suite against real object stores started by
//! the test command: Ceph's radosgw (S3) and Azurite (Azure Blob). Each run
//! uses a fresh prefix in the bucket/container the test command created.

use bytes::Bytes;
use futures::StreamExt;
use pavilion_oci::Digest;
use pavilion_store::{BlobStore, ObjectBlobStore};

fn required() -> bool {
    std::env::var_os("PAVILION_TEST_REQUIRE_PEERS").is_some_and(|v| v == "1")
}

fn prefix() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// radosgw, when the test command started it.
fn s3() -> Option<ObjectBlobStore> {
    let Ok(endpoint) = std::env::var("PAVILION_TEST_S3_ENDPOINT") else {
        assert!(!required(), "PAVILION_TEST_S3_ENDPOINT missing");
        return None;
    };
    let url = format!(
        "s3://pavilion-test/{}?endpoint={endpoint}&region=default&allow_http=true",
        prefix()
    );
    Some(pavilion_store::object_url::open(&url).unwrap())
}

/// Azurite, when the test command started it.
fn azure() -> Option<ObjectBlobStore> {
    if std::env::var_os("AZURITE_BLOB_STORAGE_URL").is_none() {
        assert!(!required(), "AZURITE_BLOB_STORAGE_URL missing");
        return None;
    }
    let url = format!("az://pavilion-test/{}?use_emulator=true", prefix());
    Some(pavilion_store::object_url::open(&url).unwrap())
}

/// A 12 MiB upload in uneven chunks: parts, a tail, a final short part.
async fn multipart_round_trip(store: &ObjectBlobStore) {
    let data: Vec<u8> = (0..(12 << 20) + 777u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256(&data);
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    let mut at = 0usize;
    for len in [3 << 20, 6 << 20, data.len() - (9 << 20)] {
        let chunk = Bytes::copy_from_slice(&data[at..at + len]);
        let body = futures::stream::iter(vec![Ok(chunk)]).boxed();
        let n = store
            .upload_append(&id, at as u64, Some(len as u64), body)
            .await
            .unwrap();
        at += len;
        assert_eq!(n, at as u64);
        assert_eq!(store.upload_len(&id).await.unwrap(), Some(at as u64));
    }
    assert_eq!(
        store.upload_commit(&id, &d).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(store.read_all(&d).await.unwrap(), data);
}

#[tokio::test]
async fn s3_radosgw_passes_conformance() {
    if let Some(s) = s3() {
        pavilion_store::conformance::run_all(&s).await;
        multipart_round_trip(&s).await;
    }
}

#[tokio::test]
async fn azure_azurite_passes_conformance() {
    if let Some(s) = azure() {
        pavilion_store::conformance::run_all(&s).await;
        multipart_round_trip(&s).await;
    }
}
