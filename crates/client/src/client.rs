//! The HTTP side: base URLs, authentication and retries of the challenge.

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::error::ClientError;
use pavilion_oci::image_ref::is_loopback_host;
use pavilion_oci::ImageRef;
use reqwest::{header, Method, RequestBuilder, Response, StatusCode};
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

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Told about every chunk of blob bytes sent or received (progress bars).
    pub progress: Option<ProgressFn>,
    /// Use plain HTTP for every registry (loopback registries always do).
    pub plain_http: bool,
    /// Accept any TLS certificate.
    pub insecure: bool,
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
}

/// A client for OCI registries.
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) opts: ClientOptions,
    /// Authorization header values by registry and scope, reused until a 401.
    tokens: Mutex<HashMap<(String, String), String>>,
}

impl Client {
    /// Builds a client. No total timeout: blobs of hundreds of GiB take long;
    /// connecting is bounded and a stalled read fails through TCP keepalive.
    pub fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .tcp_keepalive(Duration::from_secs(30))
            .danger_accept_invalid_certs(opts.insecure)
            .user_agent(concat!("pavilion/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = opts.read_timeout {
            builder = builder.read_timeout(t);
        }
        let http = builder.build()?;
        Ok(Client {
            http,
            opts,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Reports `n` transferred bytes to the progress callback, if any.
    pub(crate) fn progress(&self, n: u64) {
        if let Some(p) = &self.opts.progress {
            (p.0)(n);
        }
    }

    /// `scheme://host` for a reference: plain HTTP for loopback registries
    /// (as Docker does) or when asked; Docker Hub's API host for docker.io.
    pub fn base_url(&self, r: &ImageRef) -> String {
        self.host_url(&r.registry)
    }

    /// `scheme://host` for a registry host.
    pub fn host_url(&self, registry: &str) -> String {
        let scheme = if self.opts.plain_http || is_loopback_host(registry) {
            "http"
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
        let mut req = build(&self.http);
        if let Some(v) = &cached {
            req = req.header(header::AUTHORIZATION, v);
        }
        let resp = req.send().await?;
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
        let resp = build(&self.http)
            .header(header::AUTHORIZATION, value)
            .send()
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Auth(format!(
                "{registry} refused the credentials"
            )));
        }
        Ok(resp)
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
                let mut req = self.http.request(Method::GET, realm);
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
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    return Err(ClientError::Auth(format!(
                        "token service {realm} answered {}",
                        resp.status()
                    )));
                }
                let v: serde_json::Value = resp.json().await?;
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
    /// Checks that `registry` speaks the distribution API and accepts our
    /// credentials for it (`GET /v2/`, answering any challenge): what
    /// `login` verifies before saving a credential.
    pub async fn ping(&self, registry: &str) -> Result<(), ClientError> {
        let url = self.registry_url(registry, "/v2/");
        check(self.send_to(registry, "", |c| c.get(&url)).await?).await?;
        Ok(())
    }
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
