//! The run context: the server, the data, the HTTP client as Go's behaves,
//! the setups' shared requests and the record of every spec.

use super::*;
use reqwest::Method;

/// What one run of the four workflows shares, as the suite's globals do.
pub(super) struct Ctx {
    pub(super) backend: &'static str,
    /// `OCI_ROOT_URL`.
    pub(super) base: String,
    pub(super) http: reqwest::Client,
    /// `OCI_NAMESPACE`.
    pub(super) name: String,
    /// `conformance-<uuid>`.
    pub(super) crossmount: String,
    pub(super) d: Data,
    pub(super) seed: u64,
    /// `OCI_AUTOMATIC_CROSSMOUNT` is set at all (it is).
    pub(super) run_automatic_crossmount_test: bool,
    /// Its boolean value.
    pub(super) automatic_crossmount_enabled: bool,
    pub(super) results: Vec<(String, Spec)>,
    /// The previous exchange, to explain transport errors on a reused
    /// keep-alive connection.
    pub(super) previous: std::sync::Mutex<String>,
}

impl Ctx {
    pub(super) fn new(backend: &'static str, s: &Server) -> Self {
        let seed = time_seed();
        let mut rng = Rng::new(seed);
        let d = Data::new(&mut rng, seed);
        let crossmount = format!("conformance-{}", rng.uuid());
        // OCI_AUTOMATIC_CROSSMOUNT=1: LookupEnv says "set", and the value
        // parses as true (the registry mounts without `from`).
        Ctx {
            backend,
            base: s.url(""),
            http: client(),
            name: NAMESPACE.to_string(),
            crossmount,
            d,
            seed,
            run_automatic_crossmount_test: true,
            automatic_crossmount_enabled: true,
            results: Vec::new(),
            previous: std::sync::Mutex::new(String::new()),
        }
    }

    /// `/v2/<name>/<tail>`.
    pub(super) fn p(&self, tail: &str) -> String {
        format!("/v2/{}/{}", self.name, tail)
    }

    /// `client.Do` of a body-less `method` request to `/v2/<name>/<tail>`.
    pub(super) async fn call(&self, method: Method, tail: &str) -> Result<Resp, Fail> {
        self.send(req(method, self.p(tail))).await
    }

    /// `client.Do(req)`.
    pub(super) async fn send(&self, r: Req) -> Result<Resp, Fail> {
        let mut url = format!("{}{}", self.base, r.path);
        if !r.query.is_empty() {
            let enc: Vec<String> = r
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", go_query_escape(k), go_query_escape(v)))
                .collect();
            match url.split_once('?') {
                Some((_, q)) if !q.trim().is_empty() => url.push('&'),
                Some(_) => {}
                None => url.push('?'),
            }
            url.push_str(&enc.join("&"));
        }
        let mut rb = self
            .http
            .request(r.method.clone(), &url)
            .header("User-Agent", USER_AGENT);
        let mut has_accept = false;
        let mut content_type = None;
        for (k, v) in &r.headers {
            has_accept |= k.eq_ignore_ascii_case("accept");
            if k.eq_ignore_ascii_case("content-type") {
                content_type = Some(v.clone());
            }
            rb = rb.header(*k, v);
        }
        // resty: a JSON Content-Type without Accept also becomes Accept.
        if let Some(ct) = content_type.filter(|ct| !has_accept && ct.ends_with("json")) {
            rb = rb.header("Accept", ct);
        }
        let needs_body = [Method::POST, Method::PUT, Method::PATCH].contains(&r.method);
        match &r.body {
            Some(b) => rb = rb.body(b.clone()),
            // Go writes `Content-Length: 0` for a body-less POST/PUT/PATCH.
            None if needs_body => rb = rb.header("Content-Length", "0"),
            None => {}
        }
        // Go's transport replays an idempotent body-less request (GET, HEAD)
        // once when a reused keep-alive connection turns out to be dead.
        let replayable = r.body.is_none() && [Method::GET, Method::HEAD].contains(&r.method);
        let retry = rb.try_clone().filter(|_| replayable);
        let resp = match (rb.send().await, retry) {
            (Ok(resp), _) => resp,
            (Err(e), Some(retry)) if e.is_request() => {
                eprintln!(
                    "[{}] note: {} {url} failed on a reused connection ({e:?}); replaying it as Go does",
                    self.backend, r.method
                );
                retry
                    .send()
                    .await
                    .map_err(|e| self.transport_error(&r.method, &url, &e))?
            }
            (Err(e), _) => return Err(self.transport_error(&r.method, &url, &e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Fail::Failed(format!("{} {url}: reading body: {e}", r.method)))?
            .to_vec();
        if let Ok(mut p) = self.previous.lock() {
            *p = format!(
                "{} {url} (request body {} bytes) -> {status}, Connection: {:?}",
                r.method,
                r.body.as_ref().map_or(0, Vec::len),
                headers
                    .get("connection")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            );
        }
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// A transport failure, with the exchange that preceded it on the pool.
    pub(super) fn transport_error(&self, method: &Method, url: &str, e: &reqwest::Error) -> Fail {
        let previous = self.previous.lock().map(|p| p.clone()).unwrap_or_default();
        Fail::Failed(format!(
            "{method} {url}: transport error: {e:?}; previous exchange: {previous} \
             (a server that answers early without reading the body and then closes the \
             keep-alive connection without `Connection: close` makes the next request fail)"
        ))
    }

    /// The setups' blob upload: POST, then PUT `<location>?digest=` with the
    /// body; any 2xx passes.
    pub(super) async fn setup_upload(&self, step: &str, blob: &TestBlob) -> Spec {
        let r = self
            .send(req(Method::POST, self.p("blobs/uploads/")))
            .await?;
        let r = self
            .send(
                req(Method::PUT, r.relative_location())
                    .query("digest", blob.digest.clone())
                    .header("Content-Type", OCTET)
                    .body(&blob.content),
            )
            .await?;
        check!(
            is_2xx(r.status),
            "{step}: PUT upload of {} must be 2xx, got {}",
            blob.digest,
            r.brief()
        );
        Ok(())
    }

    /// `PUT /v2/<name>/manifests/<reference>`.
    pub(super) async fn put_manifest(
        &self,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Resp, Fail> {
        self.send(
            req(Method::PUT, self.p(&format!("manifests/{reference}")))
                .header("Content-Type", content_type)
                .body(body),
        )
        .await
    }

    /// `DELETE /v2/<name>/<kind>/<reference>`; `ok` decides the accepted codes.
    pub(super) async fn delete(
        &self,
        step: &str,
        kind: &str,
        reference: &str,
        ok: fn(u16) -> bool,
        accepted: &str,
    ) -> Spec {
        let r = self
            .send(req(Method::DELETE, self.p(&format!("{kind}/{reference}"))))
            .await?;
        check!(
            ok(r.status),
            "{step}: DELETE {kind}/{reference} must be {accepted}, got {}",
            r.brief()
        );
        Ok(())
    }

    pub(super) fn record(&mut self, name: &str, outcome: Spec) {
        match &outcome {
            Ok(()) => eprintln!("[{}] PASS  {name}", self.backend),
            Err(Fail::Skipped(why)) => eprintln!("[{}] SKIP  {name} ({why})", self.backend),
            Err(Fail::Failed(msg)) => eprintln!("[{}] FAIL  {name}\n        {msg}", self.backend),
        }
        self.results.push((name.to_string(), outcome));
    }
}

/// `Docker-Content-Digest`, when the response carries one, must be `want`.
pub(super) fn check_content_digest(step: &str, r: &Resp, want: &str) -> Spec {
    let h = r.header("Docker-Content-Digest");
    check!(
        h.is_empty() || h == want,
        "{step}: Docker-Content-Digest (when present) must be {want}, got {h}"
    );
    Ok(())
}

pub(super) fn ok_2xx_405(s: u16) -> bool {
    is_2xx(s) || s == 405
}

pub(super) fn ok_2xx_404_405(s: u16) -> bool {
    is_2xx(s) || s == 404 || s == 405
}
