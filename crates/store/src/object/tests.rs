//! The object store backend against object_store's in-memory store,
//! including one that ignores conditional creates as Garage does.

use super::*;
use async_trait::async_trait;
use object_store::multipart::PartId;
use object_store::{PutMode, PutOptions, PutPayload};
use std::sync::atomic::Ordering;

fn mem(part: u64) -> ObjectBlobStore {
    ObjectBlobStore::new(Arc::new(object_store::memory::InMemory::new()), "p", part)
}

#[tokio::test]
async fn passes_the_conformance_suite_in_memory() {
    crate::conformance::run_all(&mem(5 << 20)).await;
}

fn stream_of(chunks: Vec<Vec<u8>>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).boxed()
}

#[tokio::test]
async fn parts_tails_and_a_second_replica_continue_one_upload() {
    let backend: Arc<dyn Backend> = Arc::new(object_store::memory::InMemory::new());
    let a = ObjectBlobStore::new(backend.clone(), "", 5 << 20);
    let b = ObjectBlobStore::new(backend.clone(), "", 5 << 20);
    let data: Vec<u8> = (0..(13 << 20) + 12345)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let d = Digest::sha256(&data);
    a.upload_create("0a1b").await.unwrap();
    // 1 MiB: a tail; then 6 MiB (one full part + a tail); then the rest
    // through the other replica, with a body that fails half-way.
    let n = a
        .upload_append(
            "0a1b",
            0,
            Some(1 << 20),
            stream_of(vec![data[..1 << 20].to_vec()]),
        )
        .await
        .unwrap();
    assert_eq!(n, 1 << 20);
    let (s, _) = a.load("0a1b").await.unwrap().unwrap();
    assert!(s.parts.is_empty() && s.tail_len == 1 << 20);
    let n = b
        .upload_append(
            "0a1b",
            n,
            None,
            stream_of(vec![data[1 << 20..7 << 20].to_vec()]),
        )
        .await
        .unwrap();
    assert_eq!(n, 7 << 20);
    let (s, _) = b.load("0a1b").await.unwrap().unwrap();
    assert_eq!(
        s.parts.len(),
        1,
        "6 MiB + 1 MiB of tail = one 5 MiB part + 2 MiB"
    );
    assert_eq!(s.tail_len, 2 << 20);
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&data[7 << 20..9 << 20])),
        Err(std::io::Error::other("client gone")),
    ])
    .boxed();
    assert!(matches!(
        a.upload_append("0a1b", n, None, failing).await,
        Err(StoreError::Body(_))
    ));
    assert_eq!(b.upload_len("0a1b").await.unwrap(), Some(9 << 20));
    // A chunk at a stale offset is refused with the session's length.
    assert!(matches!(
        b.upload_append("0a1b", 1, None, stream_of(vec![vec![0]])).await,
        Err(StoreError::OffsetMismatch { expected, .. }) if expected == 9 << 20
    ));
    b.upload_append(
        "0a1b",
        9 << 20,
        None,
        stream_of(vec![data[9 << 20..].to_vec()]),
    )
    .await
    .unwrap();
    assert_eq!(
        a.upload_commit("0a1b", &d).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(b.read_all(&d).await.unwrap(), data);
    // Nothing of the session is left behind.
    let left: Vec<_> = backend
        .list(Some(&Path::from("uploads")))
        .collect::<Vec<_>>()
        .await;
    assert!(left.is_empty(), "{left:?}");
}

/// Parts saved in the middle of one append carry the hash at their end:
/// a body refused as too long after several parts keeps those (the
/// session's length reports them), and the upload resumes from there.
#[tokio::test]
async fn parts_saved_mid_append_carry_their_hash() {
    let s = mem(5 << 20);
    let data: Vec<u8> = (0..(23 << 20) + 99).map(|i: u32| (i % 249) as u8).collect();
    let d = Digest::sha256(&data);
    s.upload_create("0c1d").await.unwrap();
    // A tail first, so the parts straddle two appends.
    let n = s
        .upload_append("0c1d", 0, None, stream_of(vec![data[..3 << 20].to_vec()]))
        .await
        .unwrap();
    assert_eq!(n, 3 << 20);
    // Parts end at 5, 10 and 15 MiB; the first two are saved when the next
    // one is cut, the third is in flight when the body turns out too long.
    let pieces = data[3 << 20..19 << 20].chunks(1 << 20).map(|c| c.to_vec());
    let e = s
        .upload_append("0c1d", n, Some(15 << 20), stream_of(pieces.collect()))
        .await;
    assert!(
        matches!(e, Err(StoreError::LengthMismatch { declared, got })
            if declared == 15 << 20 && got == declared + 1),
        "{e:?}"
    );
    let (state, _) = s.load("0c1d").await.unwrap().unwrap();
    assert_eq!(state.len, 10 << 20);
    assert_eq!(state.parts.len(), 2);
    assert_eq!(state.sha256.len(), 10 << 20);
    assert_eq!(state.tail, None);
    let n = s
        .upload_append(
            "0c1d",
            10 << 20,
            None,
            stream_of(vec![data[10 << 20..].to_vec()]),
        )
        .await
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(
        s.upload_commit("0c1d", &d).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(s.read_all(&d).await.unwrap(), data);
}

#[test]
fn part_sizes_reach_five_tib_within_ten_thousand_parts() {
    let s = mem(64 << 20);
    let total: u64 = (0..MAX_PARTS).map(|i| s.part_len(i) as u64).sum();
    assert!(total >= 5 << 40, "{total}");
    assert!((0..MAX_PARTS).all(|i| s.part_len(i) as u64 <= MAX_PART));
    assert_eq!(s.part_len(0), 64 << 20);
}

/// An in-memory store that, like Garage, ignores `If-None-Match`: a
/// conditional create overwrites.
#[derive(Debug, Default)]
struct IgnoresIfNoneMatch(object_store::memory::InMemory);

impl std::fmt::Display for IgnoresIfNoneMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresIfNoneMatch")
    }
}

type OsResult<T> = object_store::Result<T>;

#[async_trait]
impl ObjectStore for IgnoresIfNoneMatch {
    async fn put_opts(
        &self,
        p: &Path,
        data: PutPayload,
        mut opts: PutOptions,
    ) -> OsResult<object_store::PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            opts.mode = PutMode::Overwrite;
        }
        self.0.put_opts(p, data, opts).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> OsResult<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(p, opts).await
    }
    async fn get_opts(
        &self,
        p: &Path,
        opts: object_store::GetOptions,
    ) -> OsResult<object_store::GetResult> {
        self.0.get_opts(p, opts).await
    }
    async fn delete(&self, p: &Path) -> OsResult<()> {
        self.0.delete(p).await
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, OsResult<object_store::ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> OsResult<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> OsResult<()> {
        self.0.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> OsResult<()> {
        self.0.copy_if_not_exists(from, to).await
    }
}

#[async_trait]
impl MultipartStore for IgnoresIfNoneMatch {
    async fn create_multipart(&self, p: &Path) -> OsResult<object_store::MultipartId> {
        self.0.create_multipart(p).await
    }
    async fn put_part(
        &self,
        p: &Path,
        id: &object_store::MultipartId,
        i: usize,
        data: PutPayload,
    ) -> OsResult<PartId> {
        self.0.put_part(p, id, i, data).await
    }
    async fn complete_multipart(
        &self,
        p: &Path,
        id: &object_store::MultipartId,
        parts: Vec<PartId>,
    ) -> OsResult<object_store::PutResult> {
        self.0.complete_multipart(p, id, parts).await
    }
    async fn abort_multipart(&self, p: &Path, id: &object_store::MultipartId) -> OsResult<()> {
        self.0.abort_multipart(p, id).await
    }
}

#[tokio::test]
async fn a_store_that_ignores_if_none_match_is_found_out_at_claim() {
    let honest = mem(5 << 20);
    honest.claim("postgres://db").await.unwrap();
    assert!(!honest.no_conditional.load(Ordering::Relaxed));

    let backend: Arc<dyn Backend> = Arc::new(IgnoresIfNoneMatch::default());
    let s = ObjectBlobStore::new(backend.clone(), "p", 5 << 20);
    s.claim("postgres://db").await.unwrap();
    assert!(
        s.no_conditional.load(Ordering::Relaxed),
        "the second create got through: commits must check first"
    );
    // The claim is intact and still guards the bucket.
    let other = ObjectBlobStore::new(backend, "p", 5 << 20);
    let e = other.claim("sqlite://elsewhere").await.unwrap_err();
    assert!(e.to_string().contains("postgres://db"), "{e}");
    // A second commit of the same digest finds the first.
    crate::conformance::run_all(&s).await;
    assert!(s
        .create_entry(&Digest::sha256(b"x"), "data/a", 1)
        .await
        .unwrap());
    assert!(!s
        .create_entry(&Digest::sha256(b"x"), "data/b", 1)
        .await
        .unwrap());
}

/// Records what the store reports.
#[derive(Default)]
struct Recorder {
    requests: std::sync::Mutex<HashMap<&'static str, u64>>,
    bytes: std::sync::Mutex<HashMap<&'static str, u64>>,
}

impl crate::StoreObserver for Recorder {
    fn store_request(&self, backend: &'static str, op: &'static str, _: f64) {
        assert_eq!(backend, "s3");
        *self.requests.lock().unwrap().entry(op).or_default() += 1;
    }
    fn store_retry(&self, _: &'static str, _: &'static str) {}
    fn store_bytes(&self, _: &'static str, d: crate::Direction, n: u64) {
        *self.bytes.lock().unwrap().entry(d.as_str()).or_default() += n;
    }
    fn db_query(&self, _: &'static str, _: f64) {}
}

#[tokio::test]
async fn an_observed_store_still_passes_and_reports_parts_and_bytes() {
    crate::conformance::run_all(&mem(5 << 20).with_observer(Arc::new(Recorder::default()), "s3"))
        .await;
    let rec = Arc::new(Recorder::default());
    let store = mem(5 << 20).with_observer(rec.clone(), "s3");
    let data: Vec<u8> = (0..(11 << 20)).map(|i: u32| (i % 253) as u8).collect();
    let d = Digest::sha256(&data);
    store.upload_create("0c0d").await.unwrap();
    store
        .upload_append("0c0d", 0, None, stream_of(vec![data.clone()]))
        .await
        .unwrap();
    store.upload_commit("0c0d", &d).await.unwrap();
    let back = store.read(&d, None).await.unwrap();
    let got: Vec<Bytes> = back.map(|b| b.unwrap()).collect().await;
    assert_eq!(got.iter().map(Bytes::len).sum::<usize>(), data.len());
    let requests = rec.requests.lock().unwrap().clone();
    // 11 MiB in 5 MiB parts: two full parts, the last 1 MiB at commit.
    assert_eq!(requests.get("create_multipart"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("put_part"), Some(&3), "{requests:?}");
    assert_eq!(requests.get("complete"), Some(&1), "{requests:?}");
    let bytes = rec.bytes.lock().unwrap().clone();
    assert!(bytes["write"] >= data.len() as u64, "{bytes:?}");
    assert!(bytes["read"] >= data.len() as u64, "{bytes:?}");
}
