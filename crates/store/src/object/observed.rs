//! An object store backend that times every request it passes on and
//! counts the bytes of puts, parts and gets, for the registry's metrics.
//! It wraps the backend rather than each call site, so no request the
//! store makes is missed, whichever module makes it.
//!
//! A request's time is `object_store`'s: it includes the client's own
//! retries (its `RetryConfig`, `max_retries` in the storage URL), which
//! it does not report; only Pavilion's retries are counted (`Probe::retry`
//! at their call sites). A GET is timed to its response headers; its
//! bytes are counted as the body is read.

use crate::observe::{Direction, Probe};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::sync::Arc;

use super::Backend;

/// `inner`, observed.
pub(super) struct Observed {
    inner: Arc<dyn Backend>,
    probe: Probe,
}

impl Observed {
    pub(super) fn new(inner: Arc<dyn Backend>, probe: Probe) -> Observed {
        Observed { inner, probe }
    }
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observed({})", self.inner)
    }
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl ObjectStore for Observed {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let n = payload.content_length() as u64;
        let _t = self.probe.time("put");
        let r = self.inner.put_opts(location, payload, opts).await;
        if r.is_ok() {
            self.probe.bytes(Direction::Write, n);
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        // Not used by Pavilion (parts go through `MultipartStore`); passed
        // on untimed rather than wrapped.
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        let _t = self.probe.time(op);
        let mut got = self.inner.get_opts(location, options).await?;
        // Irrefutable unless `object_store`'s `fs` feature (a local file
        // payload) is on somewhere in the build.
        #[allow(irrefutable_let_patterns)]
        if let GetResultPayload::Stream(s) = got.payload {
            let probe = self.probe.clone();
            got.payload = GetResultPayload::Stream(
                s.inspect(move |item| {
                    if let Ok(b) = item {
                        probe.bytes(Direction::Read, b.len() as u64);
                    }
                })
                .boxed(),
            );
        }
        Ok(got)
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        let _t = self.probe.time("head");
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        let _t = self.probe.time("delete");
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        // A listing is a stream of pages read later: counted here, its
        // time is only that of starting it.
        let _t = self.probe.time("list");
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let _t = self.probe.time("list");
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        let _t = self.probe.time("copy");
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        let _t = self.probe.time("copy");
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[async_trait]
impl MultipartStore for Observed {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        let _t = self.probe.time("create_multipart");
        self.inner.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> Result<PartId> {
        let n = data.content_length() as u64;
        let _t = self.probe.time("put_part");
        let r = self.inner.put_part(path, id, part_idx, data).await;
        if r.is_ok() {
            self.probe.bytes(Direction::Write, n);
        }
        r
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<PutResult> {
        let _t = self.probe.time("complete");
        self.inner.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        let _t = self.probe.time("abort");
        self.inner.abort_multipart(path, id).await
    }
}
