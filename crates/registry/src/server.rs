//! Listening, connection handling and graceful shutdown.

use crate::routes::dispatch;
use crate::state::{AppState, Limits};
use crate::tls;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use pavilion_store::{BlobStore, FsBlobStore, MetaStore, StoreError, StoreObserver};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Time given to cut-off uploads to write out their bytes after the grace period.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Everything `serve` needs, already merged from defaults, file, env, flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Directory for blobs, uploads and the embedded database.
    pub data_dir: PathBuf,
    /// Metadata database; `None` = SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Largest manifest accepted.
    pub max_manifest_bytes: usize,
    /// Advertised minimum chunk length (0 = none).
    pub chunk_min_length: u64,
    /// Idle time allowed within a request body, and while waiting for headers.
    pub idle_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM before the server exits.
    pub shutdown_grace: Duration,
    /// Largest listing page.
    pub max_page: i64,
    /// Upload sessions idle this long are discarded (`None` = kept forever).
    pub upload_ttl: Option<Duration>,
    /// Upload sessions that never received data are discarded this long
    /// after they were opened (`None` = only `upload_ttl` applies).
    pub upload_empty_ttl: Option<Duration>,
    /// How much of the policy decision log is kept.
    pub decision_retention: pavilion_store::DecisionRetention,
    /// How much of the change feed is kept.
    pub event_retention: pavilion_store::EventRetention,
    /// The feed's events have `source` `/pavilion/<event_source>`.
    pub event_source: String,
    /// Most continuous queries at once, and most elements in each one's
    /// graph (`[events] query_subscriptions`, `query_max_elements`).
    pub query_limits: (usize, usize),
    /// Webhooks the change feed is delivered to (`[[events.webhook]]`).
    pub webhooks: Vec<crate::feed::webhooks::WebhookConfig>,
    /// Certificate chain and private key (PEM files): serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// CA certificates (PEM) client certificates are verified against
    /// (asked for; required as `client_auth` says). Needs `tls`.
    pub client_ca: Option<PathBuf>,
    /// Whether clients without a certificate are served (with `client_ca`).
    pub client_auth: tls::ClientAuth,
    /// Where blobs live: `None` or `file://DIR` for local files (the data
    /// directory by default), `s3://`, `az://`, `gs://` for object storage.
    pub storage: Option<String>,
    /// Redirect blob GETs to presigned URLs valid this long (object storage).
    pub redirect_blobs: Option<Duration>,
    /// Most upload sessions open at once (all replicas); more: 429.
    pub max_upload_sessions: u64,
    /// Most upload sessions open at once in one repository; more: 429.
    pub max_upload_sessions_per_repository: u64,
    /// Most client connections served at once; more: 429 and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted; more: 431.
    pub max_header_bytes: usize,
    /// Garbage collection on a schedule, when enabled.
    pub gc: Option<crate::lifecycle::GcSchedule>,
    /// A second listener for `/metrics`, `/healthz` and `/readyz` only,
    /// without authentication (for a scraper on an internal address).
    pub metrics_addr: Option<SocketAddr>,
    /// Storage quotas (`[[quota]]`): every one covering a repository must
    /// hold for a push into it to be accepted.
    pub quotas: Vec<crate::quota::Quota>,
    /// Per-repository metric series for at most this many repositories
    /// (`[metrics] repository_labels`); `None`: none at all.
    pub repository_labels: Option<usize>,
    /// Which requests' traces are recorded (`OTEL_TRACES_SAMPLER`).
    pub trace_sampler: crate::metrics::trace::TraceSampler,
    /// What became of the exported spans, when traces are on (for
    /// `/metrics`).
    pub trace_spans: Option<Arc<pavilion_telemetry::SpanCounts>>,
    /// Count for `/metrics` (`[metrics] enabled`, on by default); off,
    /// `/metrics` answers 404 and the stores are not timed.
    pub metrics_enabled: bool,
    /// Serve the web UI at `/ui/` (`--no-ui`, `[ui] enabled`).
    pub ui: bool,
    /// How long a UI sign-in lasts (`[ui] session`).
    pub ui_session: Duration,
}

/// What the rest of Pavilion adds to the registry: a push policy and extra
/// endpoints (admission), built once the state exists.
#[derive(Default)]
pub struct Extensions {
    /// Decides manifest pushes and pulls.
    pub gate: Option<Arc<dyn crate::policy_hook::Gate>>,
    /// Decodes and judges stored signatures under the server's trust
    /// policy (`/pavilion/v1/signatures/...`).
    pub signatures: Option<Arc<dyn crate::signature_hook::SignatureInspector>>,
    /// Who may do what (`None`: anyone may do anything).
    pub access: Option<Arc<crate::access::Access>>,
    /// Builds routes served beside the registry API (they may record
    /// decisions through the state's metadata store).
    #[allow(clippy::type_complexity)]
    pub routes: Option<Box<dyn FnOnce(Arc<AppState>) -> Router + Send>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Storage or database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listening address cannot be bound (in use, not ours, no such
    /// interface).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Listening socket. Transparent: the chain of causes names it once.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The TLS certificate or key.
    #[error("{0}")]
    Tls(String),
}

impl ServerConfig {
    /// Defaults: 127.0.0.1:5000, ./pavilion-data, 4 MiB manifests.
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            addr,
            data_dir,
            database_url: None,
            max_manifest_bytes: 4 << 20,
            // A multiple of 4096: chunk boundaries then stay aligned for direct I/O.
            chunk_min_length: 1 << 20,
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            max_page: 10_000,
            upload_ttl: Some(Duration::from_secs(7 * 24 * 3600)),
            upload_empty_ttl: Some(Duration::from_secs(300)),
            decision_retention: Default::default(),
            event_retention: Default::default(),
            event_source: "registry".into(),
            query_limits: (
                crate::feed::queries::MAX_SUBSCRIPTIONS,
                crate::feed::queries::MAX_ELEMENTS,
            ),
            webhooks: Vec::new(),
            tls: None,
            client_ca: None,
            client_auth: tls::ClientAuth::Optional,
            storage: None,
            redirect_blobs: None,
            ui: true,
            ui_session: Duration::from_secs(8 * 3600),
            max_upload_sessions: 10_000,
            max_upload_sessions_per_repository: 1000,
            max_connections: 1024,
            max_header_bytes: 64 << 10,
            gc: None,
            metrics_addr: None,
            quotas: Vec::new(),
            repository_labels: None,
            trace_sampler: Default::default(),
            trace_spans: None,
            metrics_enabled: true,
        }
    }

    /// The metadata URL actually used.
    pub fn effective_database_url(&self) -> Result<String, StoreError> {
        match &self.database_url {
            Some(u) => Ok(u.clone()),
            None => {
                let path = std::path::absolute(self.data_dir.join("meta.db"))?;
                Ok(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }
}

/// Who the metadata database is, without credentials, to pair it with an
/// object store: SQLite files are named with the host they live on.
fn database_identity(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let path = rest.split('?').next().unwrap_or(rest);
        return format!("sqlite://{}{path}", host.trim());
    }
    // postgres://user:secret@host:port/db?opts -> postgres://host:port/db
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    format!("{scheme}://{}", rest.split('?').next().unwrap_or(rest))
}

/// Opens the blob store `cfg.storage` names, reporting to `observer`.
async fn open_blobs(
    cfg: &ServerConfig,
    database: &str,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<Arc<dyn BlobStore>, StoreError> {
    let fs = |dir: PathBuf| -> Result<Arc<dyn BlobStore>, StoreError> {
        let store = FsBlobStore::open(dir)?;
        Ok(match observer.clone() {
            Some(o) => Arc::new(store.with_observer(o)),
            None => Arc::new(store),
        })
    };
    match cfg.storage.as_deref() {
        None => fs(cfg.data_dir.clone()),
        Some(u) if u.starts_with("file://") => {
            let dir = PathBuf::from(&u["file://".len()..]);
            std::fs::create_dir_all(&dir)?;
            fs(dir)
        }
        Some(u) => {
            let mut store = pavilion_store::object_url::open(u)?;
            let parsed = pavilion_store::object_url::StorageUrl::parse(u)?;
            let shown = parsed.display();
            if let Some(o) = observer.clone() {
                let backend = match parsed.scheme.as_str() {
                    "s3" => "s3",
                    "az" => "azure",
                    _ => "gcs",
                };
                store = store.with_observer(o, backend);
            }
            // A first request at start: a wrong key or a missing bucket
            // stops the server here with the reason, not at the first push.
            store.claim(database).await.map_err(|e| {
                StoreError::Backend(format!(
                    "storage {shown}: {}",
                    e.to_string().trim_start_matches("object store: ")
                ))
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// Opens the metadata database and blob store described by `cfg` (for
/// `serve`, and for `pavilion gc` beside it).
pub async fn open_stores(
    cfg: &ServerConfig,
) -> Result<(MetaStore, Arc<dyn BlobStore>), StoreError> {
    open_stores_observed(cfg, None).await
}

/// [`open_stores`], both stores reporting to `observer` when given.
async fn open_stores_observed(
    cfg: &ServerConfig,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<(MetaStore, Arc<dyn BlobStore>), StoreError> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let url = cfg.effective_database_url()?;
    let blobs = open_blobs(cfg, &database_identity(&url), observer.clone()).await?;
    let meta = MetaStore::connect(&url).await?;
    if let Some(o) = observer {
        meta.set_observer(o);
    }
    Ok((meta, blobs))
}

/// Opens the stores described by `cfg`, reporting to the state's metrics.
pub async fn open_state(cfg: &ServerConfig) -> Result<AppState, StoreError> {
    let metrics = Arc::new(
        crate::metrics::Metrics::with_repository_labels(cfg.repository_labels)
            .with_trace_spans(cfg.trace_spans.clone()),
    );
    let observer = cfg
        .metrics_enabled
        .then(|| metrics.clone() as Arc<dyn pavilion_store::observe::StoreObserver>);
    let (meta, blobs) = open_stores_observed(cfg, observer).await?;
    meta.set_decision_retention(cfg.decision_retention);
    meta.set_event_retention(cfg.event_retention);
    let mut state = AppState::new(
        blobs,
        meta,
        Limits {
            max_manifest_bytes: cfg.max_manifest_bytes,
            chunk_min_length: cfg.chunk_min_length,
            body_idle_timeout: cfg.idle_timeout,
            max_page: cfg.max_page,
            redirect_blobs: cfg.redirect_blobs,
            max_upload_sessions: cfg.max_upload_sessions,
            max_upload_sessions_per_repository: cfg.max_upload_sessions_per_repository,
            max_header_bytes: cfg.max_header_bytes,
        },
    );
    state.quotas = cfg.quotas.clone();
    state.feed = Arc::new(crate::feed::Feed::new(
        &cfg.event_source,
        crate::feed::MAX_STREAMS,
        crate::feed::queries::Queries::new(cfg.query_limits.0, cfg.query_limits.1),
    ));
    if !cfg.webhooks.is_empty() {
        let holder = crate::feed::webhooks::holder_id(&cfg.data_dir)?;
        state.webhooks = Arc::new(crate::feed::webhooks::Webhooks::new(
            cfg.webhooks.clone(),
            holder,
        ));
    }
    state.metrics = metrics;
    state.trace_sampler = cfg.trace_sampler;
    state.metrics_enabled = cfg.metrics_enabled;
    Ok(state)
}

/// The HTTP application: the decision log, any extra routes, the web UI
/// when set up, and the distribution API for everything else.
pub fn app(
    state: Arc<AppState>,
    extra: Option<Router>,
    ui: Option<crate::ui_mount::UiSetup>,
) -> Router {
    let max_header_bytes = state.limits.max_header_bytes;
    let guarded = Router::new()
        .route(
            "/pavilion/v1/decisions",
            axum::routing::get(crate::decisions::list_decisions),
        )
        .route(
            "/pavilion/v1/policy/{*rest}",
            axum::routing::get(crate::policy_report::policy_report),
        )
        .route(
            "/pavilion/v1/usage",
            axum::routing::get(crate::usage::usage),
        )
        // What a repository browser reads (`browse`); names contain
        // slashes, so the handlers parse the rest of the path themselves.
        .route(
            "/pavilion/v1/repositories",
            axum::routing::get(crate::browse::repositories),
        )
        .route(
            "/pavilion/v1/repositories/{*rest}",
            axum::routing::get(crate::browse::tags),
        )
        .route(
            "/pavilion/v1/signatures/{*rest}",
            axum::routing::get(crate::browse::signatures::signatures),
        )
        .route(
            "/pavilion/v1/access/{*rest}",
            axum::routing::get(crate::browse::access),
        )
        .route(
            "/pavilion/v1/events",
            axum::routing::get(crate::feed::api::events),
        )
        .route(
            "/pavilion/v1/webhooks",
            axum::routing::get(crate::feed::webhooks::api::list),
        )
        .route(
            "/pavilion/v1/webhooks/{name}/replay",
            axum::routing::post(crate::feed::webhooks::api::replay),
        )
        .route(
            "/pavilion/v1/queries",
            axum::routing::get(crate::feed::queries::api::queries),
        )
        .route(
            "/pavilion/v1/transfers",
            axum::routing::get(crate::transfers::api::transfers),
        )
        .route("/metrics", axum::routing::get(crate::health::metrics))
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::guard,
        ));
    // What the UI reads through: the guarded API alone, as a remote
    // client meets it.
    let api: Router = guarded.clone().with_state(state.clone());
    let own = guarded
        // Added after the guard: the token endpoint authenticates its own
        // callers, and the public keys are public.
        .route(
            "/token",
            axum::routing::get(crate::access::token_endpoint::token)
                .post(crate::access::token_endpoint::token),
        )
        .route(
            crate::access::token_endpoint::JWKS_PATH,
            axum::routing::get(crate::access::token_endpoint::jwks),
        )
        // Public: a probe carries no credentials and learns only up/ready.
        .route("/healthz", axum::routing::get(crate::health::healthz))
        .route("/readyz", axum::routing::get(crate::health::readyz))
        .with_state(state.clone());
    let mut all = match extra {
        Some(r) => own.merge(r),
        None => own,
    };
    // Outside the guard: each page authenticates as the viewer through
    // the API it reads.
    if let Some(setup) = ui {
        all = all.merge(crate::ui_mount::router(&state, api, setup));
    }
    all.layer(axum::middleware::from_fn_with_state(
        max_header_bytes,
        crate::caps::head_cap,
    ))
    // Outermost: every request is counted and logged, refusals included.
    .layer(axum::middleware::from_fn_with_state(
        state,
        crate::metrics::layer::observe,
    ))
}

/// Discards upload sessions idle for longer than `ttl`, and sessions that
/// never received data older than `empty_ttl`, at start and then every
/// quarter of the shorter one (at least every second, at most every hour),
/// so abandoned uploads do not fill the disk and POSTs alone cannot hold
/// the session places (`max_upload_sessions`) for long.
async fn expire_uploads(state: Arc<AppState>, ttl: Option<Duration>, empty_ttl: Option<Duration>) {
    let Some(shortest) = [ttl, empty_ttl].into_iter().flatten().min() else {
        return;
    };
    let every = (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let cutoff = |d: Duration| pavilion_store::now_millis() - d.as_millis() as i64;
    loop {
        let mut expired = Ok(Vec::new());
        if let Some(ttl) = ttl {
            expired = state.meta.uploads_idle_since(cutoff(ttl)).await;
        }
        if let (Some(empty_ttl), Ok(ids)) = (empty_ttl, &mut expired) {
            match state.meta.uploads_empty_since(cutoff(empty_ttl)).await {
                Ok(more) => ids.extend(more),
                Err(e) => expired = Err(e),
            }
        }
        match expired {
            Ok(mut ids) => {
                ids.sort();
                ids.dedup();
                for id in ids {
                    tracing::info!(upload = %id, "discarding expired upload session");
                    if let Err(e) = state.blobs.upload_abort(&id).await {
                        tracing::warn!(upload = %id, error = %e, "could not remove expired upload bytes");
                        continue;
                    }
                    let _ = state.meta.delete_upload(&id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list expired uploads"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Applies decision log retention at start (limits may have been lowered)
/// and every ten minutes, so age applies while no decision is written
/// (writes prune too, see `pavilion_store::decisions`).
async fn prune_decisions(state: Arc<AppState>) {
    loop {
        if let Err(e) = state.meta.prune_decisions().await {
            tracing::warn!(error = %e, "could not prune the decision log");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
            () = state.shutdown.cancelled() => return,
        }
    }
}

/// Applies the change feed's retention once, in batches (see
/// `pavilion_store::events`).
async fn prune_events_once(state: &AppState) {
    match state.meta.prune_events().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(removed = n, "pruned the change feed"),
        Err(e) => tracing::warn!(error = %e, "could not prune the change feed"),
    }
}

/// Applies the change feed's retention every minute after the start's run:
/// between runs the feed can pass its count limit by at most a minute of
/// writes.
async fn prune_events(state: Arc<AppState>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
            () = state.shutdown.cancelled() => return,
        }
        prune_events_once(&state).await;
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for
/// up to `shutdown_grace`. Uploads cut off then keep what they received and
/// resume from their reported offset. `ready` receives the bound address.
pub async fn serve(
    cfg: ServerConfig,
    ext: Extensions,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(
            tls::acceptor(cert, key, cfg.client_ca.as_deref(), cfg.client_auth)
                .map_err(ServeError::Tls)?,
        ),
        None => None,
    };
    let mut state = open_state(&cfg).await?;
    state.gate = ext.gate;
    state.signatures = ext.signatures;
    state.access = ext.access;
    let state = Arc::new(state);
    let listener = TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.addr,
            source,
        })?;
    let bound = listener.local_addr()?;
    // Bound before `ready`: an address in use stops the start instead of
    // failing after "listening" was reported.
    let metrics_listener = match cfg.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?,
        ),
        None => None,
    };
    if let Some(access) = &state.access {
        let scheme = if tls.is_some() { "https" } else { "http" };
        access
            .start(&state.meta, &format!("{scheme}://{bound}"))
            .await?;
    }
    // Before ready: a lowered limit holds from the first request (bounded:
    // at most a hundred statements per rule).
    prune_events_once(&state).await;
    // Before ready: a webhook added now is delivered the first event
    // written after the start.
    crate::feed::webhooks::register(&state).await?;
    // Before ready: the UI's secret comes from the database.
    let ui = match cfg.ui {
        true => Some(crate::ui_mount::UiSetup {
            secret: crate::ui_mount::secret(&state.meta).await?,
            session: cfg.ui_session,
            tls: tls.is_some(),
        }),
        false => None,
    };
    ready(bound);
    let router = app(
        state.clone(),
        ext.routes.map(|build| build(state.clone())),
        ui,
    );
    tokio::spawn(expire_uploads(
        state.clone(),
        cfg.upload_ttl,
        cfg.upload_empty_ttl,
    ));
    tokio::spawn(prune_decisions(state.clone()));
    tokio::spawn(prune_events(state.clone()));
    let deliveries = crate::feed::webhooks::start(&state);
    if let Some(listener) = metrics_listener {
        tracing::info!(addr = %listener.local_addr()?, "metrics listener");
        let probes = Router::new()
            .route("/metrics", axum::routing::get(crate::health::metrics))
            .route("/healthz", axum::routing::get(crate::health::healthz))
            .route("/readyz", axum::routing::get(crate::health::readyz))
            .with_state(state.clone());
        let stop = state.shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, probes)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "metrics listener stopped");
            }
        });
    }
    if let Some(gc) = cfg.gc.clone() {
        tokio::spawn(crate::lifecycle::scheduled_gc(state.clone(), gc));
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.idle_timeout);
    // hyper refuses heads over its read buffer (about 400 KiB) with an empty
    // 431; `caps::head_cap` refuses smaller ones over the cap with a message.
    // The buffer also sizes body reads, so it is not shrunk to the cap.
    if cfg.max_header_bytes > 400 << 10 {
        builder
            .http1()
            .max_buf_size(cfg.max_header_bytes + (8 << 10));
    }
    // Pings find dead HTTP/2 peers while a request is in flight; idle
    // connections, which live clients keep answering pings on, are closed
    // by `caps::serve_connection`.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(cfg.idle_timeout)
        .keep_alive_timeout(cfg.idle_timeout.min(Duration::from_secs(20)))
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX));
    let caps = crate::caps::ConnectionCap::new(cfg.max_connections);
    let refusal = caps.refusal();
    let mut refusal_builder = builder.clone();
    refusal_builder
        .http1()
        .keep_alive(false)
        .header_read_timeout(crate::caps::REFUSAL_TIME);
    // Fired at shutdown: every connection closes once its requests are done.
    let stop = tokio_util::sync::CancellationToken::new();
    // Each connection task holds a sender; all gone = all connections closed.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let idle = cfg.idle_timeout;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let permit = match caps.admit() {
                    crate::caps::Entry::Serve(p) => p,
                    crate::caps::Entry::Refuse(p) => {
                        crate::caps::refuse(stream, tls.clone(), refusal_builder.clone(), refusal.clone(), p);
                        continue;
                    }
                    crate::caps::Entry::Close => continue,
                };
                let router = router.clone();
                let builder = builder.clone();
                let stop = stop.clone();
                let alive = alive.clone();
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            let _permit = permit;
                            let _alive = alive;
                            crate::caps::serve_connection(&builder, stream, router, peer, idle, stop).await;
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs on the connection's own task so a
                        // slow client cannot hold up the accept loop.
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            let _alive = alive;
                            let stream = tokio::select! {
                                r = tokio::time::timeout(idle, acceptor.accept(stream).into_fallible()) => match r {
                                    Ok(Ok(s)) => s,
                                    Ok(Err((e, io))) => {
                                        tracing::debug!(error = %e, "TLS handshake failed");
                                        tls::close_refused(io).await;
                                        return;
                                    }
                                    Err(_) => return,
                                },
                                () = stop.cancelled() => return,
                            };
                            // A verified client certificate goes with every
                            // request of the connection (admission checks it).
                            let router = match tls::client_certificate(&stream) {
                                Some(c) => router.layer(axum::Extension(c)),
                                None => router,
                            };
                            crate::caps::serve_connection(&builder, stream, router, peer, idle, stop).await;
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    stop.cancel();
    // Event streams never finish on their own: end them now, or shutdown
    // would wait out its whole grace period for them.
    state.feed.stop.cancel();
    drop(alive);
    let all_done = async move {
        let _ = all_closed.recv().await;
    };
    tokio::pin!(all_done);
    if tokio::time::timeout(cfg.shutdown_grace, &mut all_done)
        .await
        .is_err()
    {
        // Cut the remaining request bodies short: uploads write out what they
        // received and stay resumable from their reported offset.
        state.shutdown.cancel();
        if tokio::time::timeout(SHUTDOWN_FLUSH, &mut all_done)
            .await
            .is_err()
        {
            tracing::warn!("requests still running after the grace period; exiting anyway");
        }
    }
    // Delivery stops with the feed; each task gives its lease up so that
    // another replica need not wait for it to expire.
    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, futures::future::join_all(deliveries)).await;
    state.meta.close().await;
    Ok(())
}
