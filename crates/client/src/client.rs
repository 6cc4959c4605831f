//! The HTTP side: base URLs, authentication and retries of the challenge.

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::error::ClientError;
use crate::tls::{HostTls, TlsOptions};
use pavilion_oci::image_ref::is_loopback_host;
use pavilion_oci::ImageRef;
use reqwest::{header, Method, RequestBuilder, Response, StatusCode};
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Called with the number of bytes each time a blob transfer moves some.
#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// The registries (names as references write them: `host` or
/// `host:port`, `docker.io` for Docker Hub) a restricted client may reach,
/// asked at each request (a server learns its own names once it listens).
#[derive(Clone)]
pub struct HostAllowList(pub Arc<dyn Fn() -> Vec<String> + Send + Sync>);

impl std::fmt::Debug for HostAllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostAllowList")
    }
}

/// Largest token service answer read: tokens are a few KiB; a realm that
/// streams forever must not fill memory.
pub const TOKEN_RESPONSE_LIMIT: usize = 64 << 10;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Told about every chunk of blob bytes sent or received (progress bars).
    pub progress: Option<ProgressFn>,
    /// Use plain HTTP for every registry. Without it, a loopback registry
    /// is asked first whether it speaks TLS (see [`Client::host_url`]).
    pub plain_http: bool,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// CAs trusted besides the system's, and registries' certificate
    /// directories (CAs and client certificates).
    pub tls: TlsOptions,
    /// Credentials by registry host.
    pub credentials: Credentials,
    /// Where open upload sessions are remembered between runs, if anywhere.
    pub upload_journal: Option<Arc<crate::upload_journal::UploadJournal>>,
    /// Longest wait for a connection to open [default: 30 s].
    pub connect_timeout: Option<Duration>,
    /// Longest wait for the next bytes of an answer [default: none, TCP
    /// keepalive notices a dead peer]. Callers with a deadline (admission)
    /// set it so a registry that accepts and never answers gives up.
    pub read_timeout: Option<Duration>,
    /// Restricts every request, redirect and token realm to these
    /// registries' hosts (a server looking images up on others' behalf:
    /// admission), so a registry cannot send the client, with its
    /// credentials, anywhere else. `None`: any host, redirects followed as
    /// browsers do (`pavilion pull` and friends).
    pub allowed_hosts: Option<HostAllowList>,
    /// A W3C `traceparent` sent on every request that has none
    /// ([`crate::trace::command_traceparent`]): the registry's logs and
    /// traces then tie the command's requests together.
    pub traceparent: Option<String>,
}

/// The HTTP client for some registries, and the TLS files it was made
/// with (to find out why a connection fails).
#[derive(Clone)]
struct Conn {
    http: reqwest::Client,
    tls: Arc<HostTls>,
    /// What looking into a failed request found: once per client and
    /// registry, so a flaky network does not cost a second connection (and
    /// its wait) per failed request, and requests failing together all
    /// get the answer.
    diagnosis: Arc<tokio::sync::OnceCell<Option<crate::tls::TlsFailure>>>,
}

/// A client for OCI registries.
pub struct Client {
    /// For registries without a certificate directory of their own.
    http: Conn,
    /// The CAs of `opts.tls.ca_files`, read once.
    cas: Vec<CertificateDer<'static>>,
    /// Clients of registries with a certificate directory, by registry.
    per_registry: Mutex<HashMap<String, Conn>>,
    /// Whether a loopback `host:port` speaks TLS, once asked.
    loopback_tls: Mutex<HashMap<String, bool>>,
    pub(crate) opts: ClientOptions,
    /// Authorization header values by registry and scope, reused until a 401.
    tokens: Mutex<HashMap<(String, String), String>>,
}

impl Client {
    /// Builds a client. No total timeout: blobs of hundreds of GiB take long;
    /// connecting is bounded and a stalled read fails through TCP keepalive.
    /// CA files that cannot be read, hold no certificate or a damaged one
    /// are refused here, naming the file.
    pub fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        crate::tls::check_ssl_cert_file()?;
        let mut cas = Vec::new();
        for f in &opts.tls.ca_files {
            cas.extend(crate::tls::ca_certificates(f)?);
        }
        let none = HostTls::default();
        let http = Conn {
            http: Self::http_client(&opts, &cas, &none)?,
            tls: Arc::new(none),
            diagnosis: Arc::default(),
        };
        Ok(Client {
            http,
            cas,
            per_registry: Mutex::new(HashMap::new()),
            loopback_tls: Mutex::new(HashMap::new()),
            opts,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// An HTTP client trusting the system's roots, `cas` and those of
    /// `host` (a registry's directory), presenting its client certificate.
    fn http_client(
        opts: &ClientOptions,
        cas: &[CertificateDer<'static>],
        host: &HostTls,
    ) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .tcp_keepalive(Duration::from_secs(30))
            .danger_accept_invalid_certs(opts.insecure)
            .user_agent(concat!("pavilion/", env!("CARGO_PKG_VERSION")));
        for c in cas.iter().chain(&host.cas) {
            builder = builder.add_root_certificate(reqwest::Certificate::from_der(c)?);
        }
        if let Some(id) = host.reqwest_identity()? {
            builder = builder.identity(id);
        }
        if let Some(t) = opts.read_timeout {
            builder = builder.read_timeout(t);
        }
        if let Some(list) = opts.allowed_hosts.clone() {
            let plain_http = opts.plain_http;
            // A redirect to a host not listed is an error naming it. Blob
            // redirects to object storage are refused too unless that host
            // is listed: fail closed, the operator says where lookups go.
            builder = builder.redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("more than 10 redirects");
                }
                match host_refusal(attempt.url(), &(list.0)(), plain_http) {
                    None => attempt.follow(),
                    Some(why) => attempt.error(format!("redirect refused: {why}")),
                }
            }));
        }
        Ok(builder.build()?)
    }

    /// The HTTP client for `registry`: its own when it has a certificate
    /// directory (built at first use; redirects and token realms it names
    /// are reached with it too, as docker does), else the shared one.
    fn http_for(&self, registry: &str) -> Result<Conn, ClientError> {
        if let Some(c) = self
            .per_registry
            .lock()
            .ok()
            .and_then(|m| m.get(registry).cloned())
        {
            return Ok(c);
        }
        let Some(dir) = self.opts.tls.cert_dirs.dir_for(registry) else {
            return Ok(self.http.clone());
        };
        let host = crate::tls::read_host_dir(&dir)?;
        let c = Conn {
            http: Self::http_client(&self.opts, &self.cas, &host)?,
            tls: Arc::new(host),
            diagnosis: Arc::default(),
        };
        if let Ok(mut m) = self.per_registry.lock() {
            m.insert(registry.to_string(), c.clone());
        }
        Ok(c)
    }

    /// Reports `n` transferred bytes to the progress callback, if any.
    pub(crate) fn progress(&self, n: u64) {
        if let Some(p) = &self.opts.progress {
            (p.0)(n);
        }
    }

    /// `scheme://host` for a reference: HTTPS, or plain HTTP when asked or
    /// for a loopback registry that does not speak TLS; Docker Hub's API
    /// host for docker.io.
    pub fn base_url(&self, r: &ImageRef) -> String {
        self.host_url(&r.registry)
    }

    /// `scheme://host` for a registry host.
    ///
    /// Loopback registries: docker treats them as insecure and tries HTTPS,
    /// then plain HTTP. Here the first request to a loopback `host:port`
    /// asks whether it answers a TLS ClientHello in TLS (`tls::speaks_tls`)
    /// and from then on uses HTTPS if it does, plain HTTP if not. A server
    /// that speaks TLS is never fallen back from: its certificate must
    /// verify (a private CA is trusted with `tls.ca_files` or certs.d) or
    /// the request fails, so a certificate error is never answered with
    /// plain HTTP. Plain HTTP to loopback is what it always was: bytes
    /// that do not leave the machine.
    pub fn host_url(&self, registry: &str) -> String {
        let scheme = if self.opts.plain_http {
            "http"
        } else if is_loopback_host(registry) {
            let known_tls = loopback_key_of_registry(registry)
                .and_then(|k| self.loopback_tls.lock().ok()?.get(&k).copied());
            if known_tls == Some(true) {
                "https"
            } else {
                "http"
            }
        } else {
            "https"
        };
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    /// URL of `path` (starting with `/v2/`) or of a `Location` value.
    pub(crate) fn url(&self, r: &ImageRef, path_or_location: &str) -> String {
        self.registry_url(&r.registry, path_or_location)
    }

    /// Like [`Client::url`], for a registry host.
    pub(crate) fn registry_url(&self, registry: &str, path_or_location: &str) -> String {
        if path_or_location.starts_with("http://") || path_or_location.starts_with("https://") {
            path_or_location.to_string()
        } else {
            format!("{}{path_or_location}", self.host_url(registry))
        }
    }

    /// Sends a request built by `build`, answering one authentication
    /// challenge if the registry asks. `build` runs again for the retry, so
    /// requests with streaming bodies should come after a cheap request of
    /// the same scope has obtained the token.
    pub(crate) async fn send(
        &self,
        r: &ImageRef,
        scope: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        self.send_to(&r.registry, scope, build).await
    }

    /// [`Client::send`] for a registry host rather than a repository.
    pub(crate) async fn send_to(
        &self,
        registry: &str,
        scope: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let key = (registry.to_string(), scope.to_string());
        let cached = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned());
        let conn = self.http_for(registry)?;
        let mut req = build(&conn.http);
        if let Some(v) = &cached {
            req = req.header(header::AUTHORIZATION, v);
        }
        let resp = self.execute(&conn, req).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| {
                ClientError::Auth(format!(
                    "{registry} requires authentication but sent no usable challenge"
                ))
            })?;
        let value = self.authorize(registry, scope, &challenge).await?;
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(key, value.clone());
        }
        let resp = self
            .execute(
                &conn,
                build(&conn.http).header(header::AUTHORIZATION, value),
            )
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Auth(format!(
                "{registry} refused the credentials"
            )));
        }
        Ok(resp)
    }

    /// Sends `req` with `http`, first checking its URL against the
    /// allow-list, if any (a `Location` or `Link` value can name any host).
    /// A plain-HTTP URL of a loopback server that speaks TLS goes over
    /// HTTPS (see [`Client::host_url`]): URLs are often made before the
    /// first request has asked.
    async fn execute(&self, conn: &Conn, req: RequestBuilder) -> Result<Response, ClientError> {
        let mut req = req.build()?;
        self.check_host(req.url())?;
        if let Some(tp) = &self.opts.traceparent {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(tp) {
                req.headers_mut().entry("traceparent").or_insert(v);
            }
        }
        if self.loopback_speaks_tls(req.url()).await {
            let url = req.url_mut();
            // Keep the port the plain URL meant (80 when none was written).
            let port = url.port_or_known_default();
            if url.set_scheme("https").is_ok() {
                let _ = url.set_port(port);
            }
        }
        let url = req.url().clone();
        match conn.http.execute(req).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.transport_error(e, &url, conn).await),
        }
    }

    /// The error for a request to `url` that failed in transport: a TLS
    /// certificate failure when it was one, found out by a second
    /// connection when the request's own error lost the cause (a
    /// refusal of the client's certificate arrives after TLS 1.3 has
    /// let the request go out).
    async fn transport_error(
        &self,
        e: reqwest::Error,
        url: &reqwest::Url,
        conn: &Conn,
    ) -> ClientError {
        let err = ClientError::from(e);
        let ClientError::Http(inner) = &err else {
            return err;
        };
        if url.scheme() != "https" || self.opts.insecure || inner.is_timeout() || inner.is_builder()
        {
            return err;
        }
        let found = conn
            .diagnosis
            .get_or_init(|| crate::tls::diagnose(url, &self.cas, &conn.tls))
            .await;
        match found {
            Some(f) => ClientError::tls(f.clone(), url),
            None => err,
        }
    }

    /// Whether `url` is plain HTTP to a loopback server that speaks TLS;
    /// asks the server the first time (see [`Client::host_url`]).
    async fn loopback_speaks_tls(&self, url: &reqwest::Url) -> bool {
        if self.opts.plain_http || url.scheme() != "http" {
            return false;
        }
        let Some(key) = loopback_key(url) else {
            return false;
        };
        if let Some(known) = self
            .loopback_tls
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
        {
            return known;
        }
        let host = url.host_str().unwrap_or_default();
        match crate::tls::speaks_tls(&key, host).await {
            Some(tls) => {
                if let Ok(mut m) = self.loopback_tls.lock() {
                    m.insert(key, tls);
                }
                tls
            }
            // Unreachable: the request itself will say so.
            None => false,
        }
    }

    /// Refuses `url` if the client is restricted and its host is not allowed.
    fn check_host(&self, url: &reqwest::Url) -> Result<(), ClientError> {
        let Some(list) = &self.opts.allowed_hosts else {
            return Ok(());
        };
        match host_refusal(url, &(list.0)(), self.opts.plain_http) {
            None => Ok(()),
            Some(why) => Err(ClientError::Usage(why)),
        }
    }

    /// The `Authorization` value answering `challenge`.
    async fn authorize(
        &self,
        registry: &str,
        scope: &str,
        challenge: &Challenge,
    ) -> Result<String, ClientError> {
        use base64::Engine as _;
        let cred = self.opts.credentials.get(registry);
        match challenge {
            Challenge::Basic => {
                let c = cred.ok_or_else(|| {
                    ClientError::Auth(format!("no credentials for {registry} in docker config"))
                })?;
                let raw = format!("{}:{}", c.username, c.password);
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Challenge::Bearer {
                realm,
                service,
                scope: offered,
            } => {
                let realm_url = reqwest::Url::parse(realm).map_err(|e| {
                    ClientError::Auth(format!(
                        "{registry}: token realm {realm:?} is not a URL: {e}"
                    ))
                })?;
                if !matches!(realm_url.scheme(), "http" | "https") {
                    return Err(ClientError::Auth(format!(
                        "{registry}: token realm {realm} is not http or https"
                    )));
                }
                self.check_host(&realm_url)
                    .map_err(|e| ClientError::Auth(format!("token realm {realm}: {e}")))?;
                if cred.is_some() && !self.may_send_credentials(registry, &realm_url) {
                    return Err(ClientError::Auth(format!(
                        "{registry}: token realm {realm} is plain http: credentials are \
                         sent in clear only to a plain-http registry's own host"
                    )));
                }
                let conn = self.http_for(registry)?;
                let mut req = conn.http.request(Method::GET, realm_url);
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = service {
                    query.push(("service", s));
                }
                let wanted = offered.as_deref().unwrap_or(scope);
                if !wanted.is_empty() {
                    query.push(("scope", wanted));
                }
                req = req.query(&query);
                if let Some(c) = cred {
                    req = req.basic_auth(&c.username, Some(&c.password));
                }
                let resp = self.execute(&conn, req).await?;
                if !resp.status().is_success() {
                    return Err(ClientError::Auth(format!(
                        "token service {realm} answered {}",
                        resp.status()
                    )));
                }
                let body = read_limited(resp, TOKEN_RESPONSE_LIMIT)
                    .await?
                    .ok_or_else(|| {
                        ClientError::Auth(format!(
                            "token service {realm} answered more than {} KiB",
                            TOKEN_RESPONSE_LIMIT >> 10
                        ))
                    })?;
                let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                    ClientError::Auth(format!("token service {realm} answered no JSON: {e}"))
                })?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| {
                        ClientError::Auth(format!("token service {realm} returned no token"))
                    })?;
                Ok(format!("Bearer {token}"))
            }
        }
    }
}

impl Client {
    /// Whether the registry's credentials may go to `realm`: always over
    /// https; over plain http only when the registry itself is reached over
    /// plain http (a loopback registry, or `--plain-http`) and the realm is
    /// on the same host (any port) or both are loopback. An https registry
    /// naming an http realm would otherwise have its password sent in clear
    /// (docker and containerd send it; we do not).
    fn may_send_credentials(&self, registry: &str, realm: &reqwest::Url) -> bool {
        if realm.scheme() == "https" {
            return true;
        }
        let Ok(base) = reqwest::Url::parse(&self.host_url(registry)) else {
            return false;
        };
        if base.scheme() != "http" {
            return false;
        }
        let (Some(realm_host), Some(base_host)) = (realm.host_str(), base.host_str()) else {
            return false;
        };
        realm_host.eq_ignore_ascii_case(base_host)
            || (is_loopback_host(realm_host) && is_loopback_host(base_host))
    }

    /// Checks that `registry` speaks the distribution API and accepts our
    /// credentials for it (`GET /v2/`, answering any challenge): what
    /// `login` verifies before saving a credential.
    pub async fn ping(&self, registry: &str) -> Result<(), ClientError> {
        let url = self.registry_url(registry, "/v2/");
        check(self.send_to(registry, "", |c| c.get(&url)).await?).await?;
        Ok(())
    }
}

/// Why `url` is outside the registries `allowed` (names as references write
/// them), or `None` if it is one of theirs: same scheme, host and port as
/// the URL the client would use for that registry.
fn host_refusal(url: &reqwest::Url, allowed: &[String], plain_http: bool) -> Option<String> {
    let key = |u: &reqwest::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
        )
    };
    let want = key(url);
    let ok = allowed.iter().any(|name| {
        // A loopback registry is reached over HTTPS when it speaks TLS
        // (`Client::host_url`): either scheme, same host and port.
        if !plain_http && is_loopback_host(name) {
            let plain = reqwest::Url::parse(&format!("http://{name}/"));
            return plain.is_ok_and(|u| {
                (
                    u.host_str().map(str::to_ascii_lowercase),
                    u.port_or_known_default(),
                ) == (want.1.clone(), want.2)
                    && matches!(want.0.as_str(), "http" | "https")
            });
        }
        let scheme = if plain_http { "http" } else { "https" };
        let host = if name == "docker.io" {
            "registry-1.docker.io"
        } else {
            name
        };
        reqwest::Url::parse(&format!("{scheme}://{host}/")).is_ok_and(|u| key(&u) == want)
    });
    if ok {
        return None;
    }
    let host = url.host_str().unwrap_or("");
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    Some(format!(
        "{}://{authority} is not allowed (allowed registries: {})",
        url.scheme(),
        if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.join(", ")
        }
    ))
}

/// `host:port` of a plain-HTTP URL on this machine: what the loopback
/// probe is remembered by.
fn loopback_key(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    is_loopback_host(host).then(|| format!("{}:{port}", host.to_ascii_lowercase()))
}

/// [`loopback_key`] of a registry as references write it.
fn loopback_key_of_registry(registry: &str) -> Option<String> {
    loopback_key(&reqwest::Url::parse(&format!("http://{registry}/")).ok()?)
}

/// The body of `resp` if it is at most `limit` bytes; `None` if longer
/// (stops reading there).
async fn read_limited(mut resp: Response, limit: usize) -> Result<Option<Vec<u8>>, ClientError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The token scope for pulling from, or pushing to, a repository.
pub(crate) fn scope(r: &ImageRef, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{}:{actions}", r.repository)
}

/// Turns a non-success response into an error.
pub(crate) async fn check(resp: Response) -> Result<Response, ClientError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(ClientError::from_response(resp).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credential;
    use std::io::{Read as _, Write as _};

    /// A loopback server answering every connection with `answer`; the
    /// number of connections it took is returned through the counter.
    fn serve(answer: Vec<u8>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for _ in 0..8 {
                let Ok((mut s, _)) = l.accept() else { return };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut [0u8; 4096]);
                let _ = s.write_all(&answer);
            }
        });
        (addr, seen)
    }

    fn with_credentials(host: &str) -> Client {
        let mut credentials = Credentials::default();
        credentials.insert(
            host,
            Credential {
                username: "u".into(),
                password: "p".into(),
            },
        );
        Client::new(ClientOptions {
            credentials,
            ..ClientOptions::default()
        })
        .unwrap()
    }

    fn bearer(realm: &str) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: None,
            scope: None,
        }
    }

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_realm_of_another_host() {
        let (realm, seen) =
            serve(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"token\":\"t\"}".to_vec());
        // An https registry naming an http realm: refused before connecting.
        let c = with_credentials("registry.example");
        let e = c
            .authorize(
                "registry.example",
                "",
                &bearer(&format!("http://{realm}/t")),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
        // A loopback (plain http) registry and a loopback realm: allowed.
        let c = with_credentials("127.0.0.1:1");
        let v = c
            .authorize("127.0.0.1:1", "", &bearer(&format!("http://{realm}/t")))
            .await
            .unwrap();
        assert_eq!(v, "Bearer t");
        // Not a URL, or not http(s): refused.
        for bad in ["file:///etc/passwd", "not a url"] {
            assert!(c.authorize("127.0.0.1:1", "", &bearer(bad)).await.is_err());
        }
    }

    #[tokio::test]
    async fn token_answers_are_bounded() {
        let mut huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{\"token\":\"",
            TOKEN_RESPONSE_LIMIT + 100
        )
        .into_bytes();
        huge.extend(std::iter::repeat_n(b'a', TOKEN_RESPONSE_LIMIT + 88));
        huge.extend(b"\"}");
        let (realm, _) = serve(huge);
        let c = Client::new(ClientOptions::default()).unwrap();
        let e = c
            .authorize("127.0.0.1:1", "", &bearer(&format!("http://{realm}/t")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("more than 64 KiB"), "{e}");
    }

    #[test]
    fn allowed_hosts_match_scheme_host_and_port() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let allowed = vec![
            "127.0.0.1:5000".to_string(),
            "docker.io".into(),
            "r.example".into(),
        ];
        for ok in [
            "http://127.0.0.1:5000/v2/",
            "https://registry-1.docker.io/v2/x",
            "https://R.example:443/token",
        ] {
            assert_eq!(host_refusal(&url(ok), &allowed, false), None, "{ok}");
        }
        for bad in [
            "http://127.0.0.1:5001/v2/",
            "http://r.example/token",
            "https://auth.docker.io/token",
            "https://s3.example/blob",
        ] {
            let why = host_refusal(&url(bad), &allowed, false).unwrap();
            assert!(why.contains("is not allowed"), "{bad}: {why}");
        }
        // A loopback registry that speaks TLS is reached over HTTPS on the
        // same port; another port is still refused.
        assert_eq!(
            host_refusal(&url("https://127.0.0.1:5000/v2/"), &allowed, false),
            None
        );
        assert!(host_refusal(&url("https://127.0.0.1:5001/v2/"), &allowed, false).is_some());
        assert_eq!(
            host_refusal(&url("http://127.0.0.1:5001/x"), &allowed, false).unwrap(),
            "http://127.0.0.1:5001 is not allowed (allowed registries: 127.0.0.1:5000, docker.io, r.example)"
        );
    }
}
