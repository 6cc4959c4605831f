//! The filesystem blob store against the shared conformance suite.

use pavilion_store::{conformance, FsBlobStore};

#[tokio::test]
async fn fs_store_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).unwrap();
    conformance::run_all(&store).await;
}

/// Restart: a new store instance over the same directory resumes a session
/// whose hash state it never saw, and still verifies the digest.
#[tokio::test]
async fn upload_survives_restart() {
    use bytes::Bytes;
    use futures::StreamExt;
    use pavilion_oci::Digest;
    use pavilion_store::BlobStore;
    let dir = tempfile::tempdir().unwrap();
    let id = uuid_like();
    {
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.upload_create(&id).await.unwrap();
        let b = futures::stream::iter(vec![Ok(Bytes::from_static(b"first half "))]).boxed();
        store.upload_append(&id, 0, None, b).await.unwrap();
    }
    let store = FsBlobStore::open(dir.path()).unwrap();
    assert_eq!(store.upload_len(&id).await.unwrap(), Some(11));
    let b = futures::stream::iter(vec![Ok(Bytes::from_static(b"second half"))]).boxed();
    store.upload_append(&id, 11, None, b).await.unwrap();
    let d = Digest::sha256(b"first half second half");
    assert_eq!(store.upload_commit(&id, &d).await.unwrap(), 22);
}

fn uuid_like() -> String {
    "0123abcd-0000-4000-8000-00000000beef".to_string()
}
