//! Conformance tests that every [`BlobStore`] backend must pass.
//!
//! A backend's own test module calls [`run_all`] with a fresh store; each
//! check panics with a message naming the broken rule.

use crate::blob::{BlobStore, ByteRange, ByteStream};
use crate::error::StoreError;
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use pavilion_oci::{Algorithm, Digest};

fn body(parts: Vec<&'static [u8]>) -> ByteStream {
    stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed()
}

fn failing_body(first: &'static [u8]) -> ByteStream {
    stream::iter(vec![
        Ok(Bytes::from_static(first)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client gone",
        )),
    ])
    .boxed()
}

async fn read_to_vec(store: &dyn BlobStore, d: &Digest, r: Option<ByteRange>) -> Vec<u8> {
    let s = store.read(d, r).await.expect("read");
    let parts: Vec<Bytes> = s.try_collect().await.expect("read stream");
    parts.concat()
}

/// Runs every check in sequence against `store`.
pub async fn run_all(store: &dyn BlobStore) {
    put_and_read(store).await;
    ranges(store).await;
    chunked_upload(store).await;
    offset_and_length_rules(store).await;
    interrupted_body_resumes(store).await;
    digest_mismatch_discards(store).await;
    sha512_upload(store).await;
    same_digest_twice(store).await;
    abort_and_unknown(store).await;
}

/// A small blob put whole reads back whole; a wrong digest is refused.
pub async fn put_and_read(store: &dyn BlobStore) {
    let data = Bytes::from_static(b"hello conformance");
    let d = Digest::sha256(&data);
    assert_eq!(
        store.stat(&d).await.unwrap(),
        None,
        "absent blob must stat None"
    );
    store.put(&d, data.clone()).await.expect("put");
    assert_eq!(store.stat(&d).await.unwrap(), Some(data.len() as u64));
    assert_eq!(store.read_all(&d).await.unwrap(), data);
    assert_eq!(read_to_vec(store, &d, None).await, data.to_vec());
    let wrong = Digest::sha256(b"other");
    assert!(matches!(
        store.put(&wrong, data).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(
        store.stat(&wrong).await.unwrap(),
        None,
        "a refused put must leave nothing"
    );
    assert!(store.delete(&d).await.unwrap());
    assert!(!store.delete(&d).await.unwrap());
    assert!(matches!(
        store.read(&d, None).await,
        Err(StoreError::BlobNotFound(_))
    ));
}

/// Ranged reads return exactly the bytes asked; out-of-range is refused.
pub async fn ranges(store: &dyn BlobStore) {
    let data: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    let d = Digest::sha256(&data);
    store.put(&d, Bytes::from(data.clone())).await.unwrap();
    for (s, e) in [
        (0u64, 1u64),
        (5, 100),
        (1 << 20, (2 << 20) + 7),
        (0, 3 << 20),
        (10, 10),
    ] {
        let got = read_to_vec(store, &d, Some(ByteRange { start: s, end: e })).await;
        assert_eq!(got, &data[s as usize..e as usize], "range {s}..{e}");
    }
    let bad = store
        .read(
            &d,
            Some(ByteRange {
                start: 0,
                end: (3 << 20) + 1,
            }),
        )
        .await;
    assert!(matches!(bad, Err(StoreError::RangeNotSatisfiable { .. })));
    store.delete(&d).await.unwrap();
}

/// PATCH-like appends then commit produce the concatenation.
pub async fn chunked_upload(store: &dyn BlobStore) {
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    assert_eq!(store.upload_len(&id).await.unwrap(), Some(0));
    let n = store
        .upload_append(&id, 0, Some(3), body(vec![b"abc"]))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let n = store
        .upload_append(&id, 3, None, body(vec![b"de", b"f"]))
        .await
        .unwrap();
    assert_eq!(n, 6);
    let d = Digest::sha256(b"abcdef");
    assert_eq!(store.upload_commit(&id, &d).await.unwrap(), 6);
    assert_eq!(
        store.read_all(&d).await.unwrap(),
        Bytes::from_static(b"abcdef")
    );
    assert_eq!(
        store.upload_len(&id).await.unwrap(),
        None,
        "a committed session is gone"
    );
    store.delete(&d).await.unwrap();
}

/// Out-of-order chunks and wrong declared lengths change nothing.
pub async fn offset_and_length_rules(store: &dyn BlobStore) {
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    store
        .upload_append(&id, 0, None, body(vec![b"12345"]))
        .await
        .unwrap();
    let e = store.upload_append(&id, 3, None, body(vec![b"x"])).await;
    assert!(
        matches!(
            e,
            Err(StoreError::OffsetMismatch {
                expected: 5,
                got: 3
            })
        ),
        "{e:?}"
    );
    let e = store
        .upload_append(&id, 5, Some(2), body(vec![b"xyz"]))
        .await;
    assert!(
        matches!(e, Err(StoreError::LengthMismatch { .. })),
        "longer body: {e:?}"
    );
    let e = store
        .upload_append(&id, 5, Some(4), body(vec![b"xyz"]))
        .await;
    assert!(
        matches!(e, Err(StoreError::LengthMismatch { .. })),
        "shorter body: {e:?}"
    );
    assert_eq!(
        store.upload_len(&id).await.unwrap(),
        Some(5),
        "rejected chunks leave no bytes"
    );
    let d = Digest::sha256(b"12345");
    store
        .upload_commit(&id, &d)
        .await
        .expect("state survives rejected chunks");
    store.delete(&d).await.unwrap();
}

/// A body cut off mid-way keeps what arrived, and the upload resumes.
pub async fn interrupted_body_resumes(store: &dyn BlobStore) {
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    let e = store
        .upload_append(&id, 0, Some(10), failing_body(b"hello"))
        .await;
    assert!(matches!(e, Err(StoreError::Body(_))), "{e:?}");
    let at = store.upload_len(&id).await.unwrap().unwrap();
    assert_eq!(at, 5, "the bytes that arrived are kept");
    store
        .upload_append(&id, at, None, body(vec![b" world"]))
        .await
        .unwrap();
    let d = Digest::sha256(b"hello world");
    store.upload_commit(&id, &d).await.unwrap();
    store.delete(&d).await.unwrap();
}

/// A commit under the wrong digest stores nothing and ends the session.
pub async fn digest_mismatch_discards(store: &dyn BlobStore) {
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    store
        .upload_append(&id, 0, None, body(vec![b"data"]))
        .await
        .unwrap();
    let claimed = Digest::sha256(b"not data");
    let e = store.upload_commit(&id, &claimed).await;
    assert!(matches!(e, Err(StoreError::DigestMismatch { .. })), "{e:?}");
    assert_eq!(store.stat(&claimed).await.unwrap(), None);
    assert_eq!(store.stat(&Digest::sha256(b"data")).await.unwrap(), None);
}

/// sha512 digests are verified too.
pub async fn sha512_upload(store: &dyn BlobStore) {
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    store
        .upload_append(&id, 0, None, body(vec![b"five", b"twelve"]))
        .await
        .unwrap();
    let d = Digest::compute(Algorithm::Sha512, b"fivetwelve");
    store.upload_commit(&id, &d).await.unwrap();
    assert_eq!(
        store.read_all(&d).await.unwrap(),
        Bytes::from_static(b"fivetwelve")
    );
    store.delete(&d).await.unwrap();
}

/// Two sessions committing the same digest concurrently both succeed.
pub async fn same_digest_twice(store: &dyn BlobStore) {
    let data: &'static [u8] = b"twice the same bytes";
    let d = Digest::sha256(data);
    let ids: Vec<String> = (0..2).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &ids {
        store.upload_create(id).await.unwrap();
        store
            .upload_append(id, 0, None, body(vec![data]))
            .await
            .unwrap();
    }
    let (a, b) = futures::join!(
        store.upload_commit(&ids[0], &d),
        store.upload_commit(&ids[1], &d)
    );
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        (data.len() as u64, data.len() as u64)
    );
    assert_eq!(store.read_all(&d).await.unwrap(), Bytes::from_static(data));
    store.delete(&d).await.unwrap();
}

/// Aborted and unknown sessions are reported as unknown.
pub async fn abort_and_unknown(store: &dyn BlobStore) {
    let id = uuid::Uuid::new_v4().to_string();
    store.upload_create(&id).await.unwrap();
    assert!(store.upload_abort(&id).await.unwrap());
    assert!(!store.upload_abort(&id).await.unwrap());
    assert_eq!(store.upload_len(&id).await.unwrap(), None);
    let e = store.upload_append(&id, 0, None, body(vec![b"x"])).await;
    assert!(matches!(e, Err(StoreError::UploadNotFound(_))), "{e:?}");
    for bad in ["../../etc/passwd", "", "a/b"] {
        assert!(
            store.upload_len(bad).await.is_err(),
            "id {bad:?} must be refused"
        );
    }
}
