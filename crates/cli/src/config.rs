//! `serve` configuration: defaults, then a TOML file, then `PAVILION_*`
//! environment variables, then flags (clap reads flag-or-env, so a flag wins
//! over its variable).

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

mod admission;
pub mod events;
pub mod gc;
pub mod metrics;
pub mod quota;
pub mod telemetry;
mod tls_client;
pub mod ui;
pub mod webhooks;

pub use admission::AdmissionSettings;
use admission::{admission_settings, check_name, AdmissionArgs};
use tls_client::tls_client_settings;
pub use tls_client::TlsClientAuth;

/// Options of `pavilion serve`. Every key can also be set in the TOML file
/// given with `--config` (same names, with `_` instead of `-`).
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "PAVILION_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "PAVILION_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,
    /// Data directory for blobs, upload sessions and the embedded SQLite database [default: ./pavilion-data].
    #[arg(long, env = "PAVILION_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where blobs live: file://DIR, s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or gs://BUCKET/PREFIX (settings from AWS_*/AZURE_*/GOOGLE_* variables or ?key=value pairs, e.g. ?endpoint=...&region=...; part_size=BYTES) [default: the data directory].
    #[arg(long, env = "PAVILION_STORAGE", value_name = "URL")]
    pub storage: Option<String>,
    /// Answer blob GETs with a 307 redirect to a presigned object storage URL (valid 15 minutes), so bytes bypass the registry.
    #[arg(long, env = "PAVILION_REDIRECT_BLOBS")]
    pub redirect_blobs: bool,
    /// Metadata database: postgres://user@host:port/db for PostgreSQL [default: SQLite in the data directory].
    #[arg(long, env = "PAVILION_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Largest manifest accepted, in bytes [default: 4194304].
    #[arg(long, env = "PAVILION_MAX_MANIFEST_BYTES", value_name = "BYTES")]
    pub max_manifest_bytes: Option<usize>,
    /// OCI-Chunk-Min-Length advertised to clients, in bytes; a multiple of 4096 keeps chunked uploads on the direct-I/O path; 0 advertises none [default: 1048576].
    #[arg(long, env = "PAVILION_CHUNK_MIN_LENGTH", value_name = "BYTES")]
    pub chunk_min_length: Option<u64>,
    /// Seconds a connection may stay silent mid-request (body or headers); there is no total request timeout [default: 300].
    #[arg(long, env = "PAVILION_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds in-flight requests may continue after SIGTERM/Ctrl-C [default: 10].
    #[arg(long, env = "PAVILION_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds after which an upload session that received no data is discarded; 0 keeps them forever [default: 604800, 7 days].
    #[arg(long, env = "PAVILION_UPLOAD_TTL_SECS", value_name = "SECS")]
    pub upload_ttl_secs: Option<u64>,
    /// Seconds after which an upload session that was opened but never sent a body is discarded, so POSTs alone cannot hold the session places; 0 leaves them to upload_ttl_secs [default: 300].
    #[arg(long, env = "PAVILION_UPLOAD_EMPTY_TTL_SECS", value_name = "SECS")]
    pub upload_empty_ttl_secs: Option<u64>,
    /// Largest page of tags, repositories or referrers [default: 10000].
    #[arg(long, env = "PAVILION_MAX_PAGE", value_name = "N")]
    pub max_page: Option<i64>,
    /// Most upload sessions open at once (counted in the metadata database, so across replicas); a POST beyond gets 429 TOOMANYREQUESTS until sessions finish, are cancelled or expire [default: 10000].
    #[arg(long, env = "PAVILION_MAX_UPLOAD_SESSIONS", value_name = "N")]
    pub max_upload_sessions: Option<u64>,
    /// Most upload sessions open at once in one repository (across replicas), so a flood into one repository leaves the others room; a POST beyond gets 429 TOOMANYREQUESTS [default: 1000].
    #[arg(
        long,
        env = "PAVILION_MAX_UPLOAD_SESSIONS_PER_REPOSITORY",
        value_name = "N"
    )]
    pub max_upload_sessions_per_repository: Option<u64>,
    /// Most client connections served at once; requests on connections beyond get 429 TOOMANYREQUESTS and the connection is closed (keep the open-files limit above this) [default: 1024].
    #[arg(long, env = "PAVILION_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request head (request line and headers) in bytes; larger gets 431 [default: 65536].
    #[arg(long, env = "PAVILION_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Most policy decisions kept in the decision log; the oldest go first [default: 100000].
    #[arg(long, env = "PAVILION_DECISION_RETENTION_COUNT", value_name = "N")]
    pub decision_retention_count: Option<u64>,
    /// Days a policy decision is kept in the decision log; 0 keeps them whatever their age [default: 30].
    #[arg(long, env = "PAVILION_DECISION_RETENTION_DAYS", value_name = "DAYS")]
    pub decision_retention_days: Option<u64>,
    /// Most bytes of decisions kept in the decision log (each decision counts its texts plus 64, at most 64 KiB); 0 = no size limit (the count still applies) [default: 268435456, 256 MiB].
    #[arg(long, env = "PAVILION_DECISION_RETENTION_BYTES", value_name = "BYTES")]
    pub decision_retention_bytes: Option<u64>,
    /// Do not serve the web UI at /ui/ (also `[ui] enabled = false`).
    #[arg(long, env = "PAVILION_NO_UI")]
    pub no_ui: bool,
    /// Also serve /metrics, /healthz and /readyz, without authentication, on this address (e.g. an internal interface for Prometheus).
    #[arg(long, env = "PAVILION_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Send OpenTelemetry traces over OTLP/HTTP (protobuf) to this collector, e.g. http://localhost:4318 (/v1/traces is added to a URL without a path). Also OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME [default: off].
    #[arg(long, env = "PAVILION_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Log filter, e.g. info or pavilion_registry=debug [default: info].
    #[arg(long, env = "PAVILION_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Log line format: text, or json (one object per line, for log shippers) [default: text].
    #[arg(long, env = "PAVILION_LOG_FORMAT", value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// Directory of Rego policies (package pavilion.push decides manifest pushes, pavilion.admission admission reviews).
    #[arg(long, env = "PAVILION_POLICY", value_name = "DIR")]
    pub policy: Option<PathBuf>,
    /// notation trust policy (trustpolicy.oci.json) signatures are verified against, at push (input.signature) and admission.
    #[arg(long, env = "PAVILION_TRUST_POLICY", value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// notation trust store directory (x509/{ca,signingAuthority,tsa}/NAME/) [default: notation's, when --trust-policy is given].
    #[arg(long, env = "PAVILION_TRUST_STORE", value_name = "DIR")]
    pub trust_store: Option<PathBuf>,
    /// Seconds admission reuses an image's resolved digest and verification result; 0 disables the cache [default: 30].
    #[arg(long, env = "PAVILION_VERIFICATION_CACHE_SECS", value_name = "SECS")]
    pub verification_cache_secs: Option<u64>,
    /// A public name this registry is known by (host or host:port, as clients write it in references), repeatable; the trust policy statements for signatures checked at push and pull are chosen by these names, never by the request's Host header; with several, a signature must pass the statement of every one [default: the listen address as bound].
    #[arg(
        long = "name",
        env = "PAVILION_NAMES",
        value_name = "HOST[:PORT]",
        value_delimiter = ','
    )]
    pub names: Vec<String>,
    /// A registry the admission and Gatekeeper endpoints may look images up in (host or host:port, exactly as references write it; docker.io for Docker Hub), repeatable; an image anywhere else is denied without a request [default: this registry's names].
    #[arg(
        long = "admission-registries",
        env = "PAVILION_ADMISSION_REGISTRIES",
        value_name = "HOST[:PORT]",
        value_delimiter = ','
    )]
    pub admission_registries: Vec<String>,
    /// Bearer token callers of the admission and Gatekeeper endpoints must send (Authorization: Bearer TOKEN); prefer --admission-token-file. Without a token or --admission-client-ca the endpoints refuse every call (403).
    #[arg(long, env = "PAVILION_ADMISSION_TOKEN", value_name = "TOKEN")]
    pub admission_token: Option<String>,
    /// File holding the admission bearer token (trailing newline ignored), e.g. a mounted Secret.
    #[arg(long, env = "PAVILION_ADMISSION_TOKEN_FILE", value_name = "FILE")]
    pub admission_token_file: Option<PathBuf>,
    /// CA certificates (PEM) a client certificate is verified against; a verified one named by --admission-client-name authenticates callers of the admission and Gatekeeper endpoints (the API server's or Gatekeeper's). Needs --tls-cert and --admission-client-name; other clients need no certificate.
    #[arg(long, env = "PAVILION_ADMISSION_CLIENT_CA", value_name = "FILE")]
    pub admission_client_ca: Option<PathBuf>,
    /// A name (common name, or DNS subject alternative name) a client certificate from --admission-client-ca must carry to call the admission and Gatekeeper endpoints, repeatable; required with --admission-client-ca, whose CA (often the cluster CA) also signs kubelets' and users' certificates. Common names are compared exactly, DNS names without case.
    #[arg(
        long = "admission-client-name",
        env = "PAVILION_ADMISSION_CLIENT_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub admission_client_names: Vec<String>,
    /// Accept callers of the admission and Gatekeeper endpoints without credentials: only where the API server cannot be configured to authenticate (managed control planes) and a NetworkPolicy limits who reaches the port. Conflicts with the token and client CA keys.
    #[arg(long, env = "PAVILION_ADMISSION_UNAUTHENTICATED")]
    pub admission_unauthenticated: bool,
    /// Seconds all image lookups of one admission review or Gatekeeper request may take; past it the images not yet answered are denied. Keep it under the webhook's timeoutSeconds (10 by default) [default: 8].
    #[arg(long, env = "PAVILION_ADMISSION_TIMEOUT_SECS", value_name = "SECS")]
    pub admission_timeout_secs: Option<u64>,
    /// TLS certificate chain (PEM): serve HTTPS (needed for Kubernetes admission).
    #[arg(
        long,
        env = "PAVILION_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "PAVILION_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that registry clients' certificates are verified against (mTLS): every client is asked for one, and one that does not verify fails the handshake. Needs --tls-cert; with --admission-client-ca too, both must name the same file.
    #[arg(long, env = "PAVILION_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: `optional` also serves clients without a certificate, `required` refuses them at the handshake [default: optional].
    #[arg(long, env = "PAVILION_TLS_CLIENT_AUTH", value_name = "MODE")]
    pub tls_client_auth: Option<TlsClientAuth>,
    #[command(flatten)]
    pub auth: crate::auth_config::AuthArgs,
    /// Serve the registry API without authentication on an address other than loopback (refused otherwise): only behind something else that authenticates.
    #[arg(long, env = "PAVILION_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
}

/// The same keys as they appear in the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    addr: Option<SocketAddr>,
    data: Option<PathBuf>,
    database_url: Option<String>,
    storage: Option<String>,
    redirect_blobs: Option<bool>,
    max_manifest_bytes: Option<usize>,
    chunk_min_length: Option<u64>,
    idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    upload_ttl_secs: Option<u64>,
    upload_empty_ttl_secs: Option<u64>,
    max_page: Option<i64>,
    max_upload_sessions: Option<u64>,
    max_upload_sessions_per_repository: Option<u64>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    decision_retention_count: Option<u64>,
    decision_retention_days: Option<u64>,
    decision_retention_bytes: Option<u64>,
    log: Option<String>,
    #[serde(default, deserialize_with = "log_format_key")]
    log_format: Option<LogFormat>,
    policy: Option<PathBuf>,
    trust_policy: Option<PathBuf>,
    trust_store: Option<PathBuf>,
    verification_cache_secs: Option<u64>,
    names: Option<Vec<String>>,
    admission_registries: Option<Vec<String>>,
    admission_token: Option<String>,
    admission_token_file: Option<PathBuf>,
    admission_client_ca: Option<PathBuf>,
    admission_client_names: Option<Vec<String>>,
    admission_unauthenticated: Option<bool>,
    admission_timeout_secs: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_client_auth: Option<TlsClientAuth>,
    insecure_no_auth: Option<bool>,
    auth: Option<crate::auth_config::AuthFile>,
    gc: Option<gc::GcFile>,
    metrics_addr: Option<SocketAddr>,
    metrics: Option<metrics::MetricsFile>,
    events: Option<events::EventsFile>,
    telemetry: Option<telemetry::TelemetryFile>,
    ui: Option<ui::UiFile>,
    /// `[[quota]]` entries, checked by [`quota::quotas`].
    quota: Option<toml::Value>,
}

/// How `serve` writes its log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people (with colour on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target and the fields
    /// (the access line's request id, route, status...) at the top level.
    Json,
}

/// Parses `--log-format` / `log_format`.
pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("log format {s:?} is not text or json")),
    }
}

fn log_format_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<LogFormat>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    s.map(|s| parse_log_format(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// The merged configuration.
#[derive(Debug)]
pub struct Settings {
    pub server: pavilion_registry::ServerConfig,
    pub log: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Rego policy directory.
    pub policy: Option<PathBuf>,
    /// Trust policy and store, when signatures are verified.
    pub trust: Option<pavilion_verify::TrustConfig>,
    /// Admission cache lifetime.
    pub verification_cache: std::time::Duration,
    /// The names this registry is known by (empty: the bound address).
    pub names: Vec<String>,
    /// Who may call the admission endpoints and what they may look up.
    pub admission: AdmissionSettings,
    /// Who may call the registry and what they may do.
    pub auth: crate::auth_config::AuthSettings,
    /// Where traces go (read with the environment when serve starts).
    pub telemetry: telemetry::TelemetryKeys,
}

/// Reads and checks the config file, if one is given.
fn read_config(path: Option<&std::path::Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    // One line: where and what (toml's own rendering quotes the source
    // over several lines, which a log line or `serve`'s error cannot hold).
    toml::from_str::<FileConfig>(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map_or(String::new(), |l| format!(" line {l}:"));
        anyhow::anyhow!(
            "parsing config file {}:{at} {}",
            path.display(),
            e.message().trim().replace('\n', " ")
        )
    })
}

/// The metadata database `serve` would use with these keys (flags/env over
/// the config file over the defaults), for commands that work on it
/// directly (`pavilion token`): its URL, and for SQLite in the data
/// directory, that directory. Only the database keys are read; the rest of
/// the file is checked as `serve` checks its syntax.
pub fn metadata_database(
    config: Option<&std::path::Path>,
    data: Option<PathBuf>,
    database_url: Option<String>,
) -> Result<(String, Option<PathBuf>)> {
    let server = stores(&read_config(config)?, data, database_url, None);
    let dir = server
        .database_url
        .is_none()
        .then(|| server.data_dir.clone());
    Ok((server.effective_database_url()?, dir))
}

/// A server configuration holding only where the stores are (flags over
/// the file over the defaults).
fn stores(
    file: &FileConfig,
    data: Option<PathBuf>,
    database_url: Option<String>,
    storage: Option<String>,
) -> pavilion_registry::ServerConfig {
    let data = data
        .or_else(|| file.data.clone())
        .unwrap_or_else(|| PathBuf::from("pavilion-data"));
    let mut server =
        pavilion_registry::ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), data);
    server.database_url = database_url.or_else(|| file.database_url.clone());
    server.storage = storage.or_else(|| file.storage.clone());
    server
}

/// The stores `serve` would use with these keys and its `[gc]` settings,
/// for `pavilion gc`: the server configuration (data directory, database,
/// storage; flags over the file) and the checked `[gc]` table.
pub fn lifecycle(
    config: Option<&std::path::Path>,
    data: Option<PathBuf>,
    database_url: Option<String>,
    storage: Option<String>,
) -> Result<(pavilion_registry::ServerConfig, gc::GcSettings)> {
    let file = read_config(config)?;
    let server = stores(&file, data, database_url, storage);
    let gc = file.gc.clone().unwrap_or_default().settings()?;
    Ok((server, gc))
}

impl ServeArgs {
    /// Merges file and flags/env over the defaults.
    pub fn settings(self) -> Result<Settings> {
        let file = read_config(self.config.as_deref())?;
        let addr = self
            .addr
            .or(file.addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000)));
        let data = self
            .data
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("pavilion-data"));
        let mut server = pavilion_registry::ServerConfig::new(addr, data);
        server.database_url = self.database_url.or(file.database_url);
        server.storage = self.storage.or(file.storage);
        server.metrics_addr = self.metrics_addr.or(file.metrics_addr);
        if self.redirect_blobs || file.redirect_blobs == Some(true) {
            server.redirect_blobs = Some(std::time::Duration::from_secs(15 * 60));
        }
        if let Some(v) = self.max_manifest_bytes.or(file.max_manifest_bytes) {
            server.max_manifest_bytes = v;
        }
        if let Some(v) = self.chunk_min_length.or(file.chunk_min_length) {
            server.chunk_min_length = v;
        }
        if let Some(v) = self.idle_timeout_secs.or(file.idle_timeout_secs) {
            anyhow::ensure!(v > 0, "idle_timeout_secs must be at least 1");
            server.idle_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = self.shutdown_grace_secs.or(file.shutdown_grace_secs) {
            server.shutdown_grace = std::time::Duration::from_secs(v);
        }
        if let Some(v) = self.upload_ttl_secs.or(file.upload_ttl_secs) {
            server.upload_ttl = (v > 0).then(|| std::time::Duration::from_secs(v));
        }
        if let Some(v) = self.upload_empty_ttl_secs.or(file.upload_empty_ttl_secs) {
            server.upload_empty_ttl = (v > 0).then(|| std::time::Duration::from_secs(v));
        }
        if let Some(v) = self.max_page.or(file.max_page) {
            anyhow::ensure!(v > 0, "max_page must be at least 1");
            server.max_page = v;
        }
        if let Some(v) = self.max_upload_sessions.or(file.max_upload_sessions) {
            anyhow::ensure!(v > 0, "max_upload_sessions must be at least 1");
            server.max_upload_sessions = v;
        }
        if let Some(v) = self
            .max_upload_sessions_per_repository
            .or(file.max_upload_sessions_per_repository)
        {
            anyhow::ensure!(
                v > 0,
                "max_upload_sessions_per_repository must be at least 1"
            );
            server.max_upload_sessions_per_repository = v;
        }
        if let Some(v) = self.max_connections.or(file.max_connections) {
            anyhow::ensure!(v > 0, "max_connections must be at least 1");
            server.max_connections = v;
        }
        if let Some(v) = self.max_header_bytes.or(file.max_header_bytes) {
            anyhow::ensure!(
                v >= 1024,
                "max_header_bytes must be at least 1024 (clients send several hundred bytes of headers)"
            );
            server.max_header_bytes = v;
        }
        let retention = &mut server.decision_retention;
        if let Some(v) = self
            .decision_retention_count
            .or(file.decision_retention_count)
        {
            anyhow::ensure!(v > 0, "decision_retention_count must be at least 1");
            retention.max_count = v;
        }
        if let Some(v) = self
            .decision_retention_days
            .or(file.decision_retention_days)
        {
            retention.max_age =
                (v > 0).then(|| std::time::Duration::from_secs(v.saturating_mul(24 * 3600)));
        }
        if let Some(v) = self
            .decision_retention_bytes
            .or(file.decision_retention_bytes)
        {
            retention.max_bytes = (v > 0).then_some(v);
        }
        let log = self.log.or(file.log).unwrap_or_else(|| "info".to_string());
        server.quotas = quota::quotas(file.quota)?;
        match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(c), Some(k)) => server.tls = Some((c, k)),
            (None, None) => {}
            _ => anyhow::bail!("tls_cert and tls_key go together: give both or neither"),
        }
        let trust_store = self.trust_store.or(file.trust_store);
        let trust = match self.trust_policy.or(file.trust_policy) {
            Some(p) => Some(pavilion_verify::TrustConfig {
                trust_policy: Some(p),
                trust_store,
            }),
            None => {
                anyhow::ensure!(
                    trust_store.is_none(),
                    "trust_store needs trust_policy (the policy says which stores to use)"
                );
                None
            }
        };
        let verification_cache = std::time::Duration::from_secs(
            self.verification_cache_secs
                .or(file.verification_cache_secs)
                .unwrap_or(30),
        );
        let names = if self.names.is_empty() {
            file.names.unwrap_or_default()
        } else {
            self.names
        };
        for n in &names {
            check_name(n)?;
        }
        let admission = admission_settings(
            AdmissionArgs {
                registries: self.admission_registries,
                token: self.admission_token,
                token_file: self.admission_token_file,
                client_ca: self.admission_client_ca,
                client_names: self.admission_client_names,
                unauthenticated: self.admission_unauthenticated,
                timeout_secs: self.admission_timeout_secs,
            },
            AdmissionArgs {
                registries: file.admission_registries.unwrap_or_default(),
                token: file.admission_token,
                token_file: file.admission_token_file,
                client_ca: file.admission_client_ca,
                client_names: file.admission_client_names.unwrap_or_default(),
                unauthenticated: file.admission_unauthenticated == Some(true),
                timeout_secs: file.admission_timeout_secs,
            },
            &mut server,
        )?;
        let tls_client_ca = self.tls_client_ca.or(file.tls_client_ca);
        // Registry callers are identified by certificate when registry
        // client certificates are asked for (not admission's alone).
        let registry_client_ca = tls_client_ca.is_some();
        tls_client_settings(
            tls_client_ca,
            self.tls_client_auth.or(file.tls_client_auth),
            &mut server,
        )?;
        let auth = self.auth.settings(file.auth, registry_client_ca)?;
        let insecure_no_auth = self.insecure_no_auth || file.insecure_no_auth == Some(true);
        if !auth.enabled && !insecure_no_auth && !server.addr.ip().is_loopback() {
            anyhow::bail!(
                "refusing to serve {} without authentication: configure [auth] (e.g. --htpasswd), or give --insecure-no-auth if something in front authenticates",
                server.addr
            );
        }
        // Checked even when off: a rule that does not parse stops serve.
        let gc = file.gc.unwrap_or_default().settings()?;
        let metrics_file = file.metrics.unwrap_or_default();
        server.repository_labels = metrics_file.repository_labels()?;
        server.metrics_enabled = metrics_file.enabled.unwrap_or(true);
        let ui_file = file.ui.unwrap_or_default();
        server.ui = !self.no_ui && ui_file.enabled != Some(false);
        server.ui_session = ui_file.session()?;
        let events_file = file.events.unwrap_or_default();
        server.event_retention = events_file.retention()?;
        server.event_source = events_file.source()?;
        server.query_limits = events_file.query_limits()?;
        server.webhooks = events_file.webhooks()?;
        if gc.enabled {
            server.gc = Some(pavilion_registry::lifecycle::GcSchedule {
                interval: gc.interval,
                options: pavilion_store::gc::Options {
                    grace: gc.grace,
                    dry_run: false,
                    retention: gc.retention,
                },
            });
        }
        Ok(Settings {
            admission,
            auth,
            names,
            server,
            log,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            policy: self.policy.or(file.policy),
            trust,
            verification_cache,
            telemetry: telemetry::TelemetryKeys {
                flag: self.otlp_endpoint,
                file: file.telemetry.unwrap_or_default(),
            },
        })
    }
}

/// The settings a config file with `text` gives (for tests of the keys).
#[cfg(test)]
pub(crate) fn settings_from_file(dir: &std::path::Path, text: &str) -> Result<Settings> {
    let path = dir.join("p.toml");
    std::fs::write(&path, text)?;
    ServeArgs {
        config: Some(path),
        ..Default::default()
    }
    .settings()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "addr = \"127.0.0.1:6000\"\ndata = \"/tmp/x\"\nchunk_min_length = 7\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            data: Some(PathBuf::from("/tmp/y")),
            ..Default::default()
        };
        let s = args.settings().unwrap();
        assert_eq!(s.server.addr.port(), 6000);
        assert_eq!(s.server.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(s.server.chunk_min_length, 7);
        assert_eq!(s.server.max_manifest_bytes, 4 << 20);
        std::fs::write(&path, "adr = \"x\"\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .settings()
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn auth_comes_from_the_auth_table_and_guards_other_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let file = |text: &str| settings_from_file(dir.path(), text);
        let s = file("addr = \"0.0.0.0:5000\"\n[auth]\nhtpasswd = \"/etc/p/htpasswd\"\n").unwrap();
        assert_eq!(s.auth.htpasswd, Some(PathBuf::from("/etc/p/htpasswd")));
        assert!(s.auth.enabled);
        let err = file("addr = \"0.0.0.0:5000\"\n").unwrap_err().to_string();
        assert!(
            err.contains("refusing to serve 0.0.0.0:5000 without authentication"),
            "{err}"
        );
        assert!(file("addr = \"0.0.0.0:5000\"\ninsecure_no_auth = true\n").is_ok());
        assert!(
            file("addr = \"127.0.0.1:5000\"\n").is_ok(),
            "loopback stays open"
        );
        assert!(file("addr = \"[::1]:5000\"\n").is_ok());
        let s = file("[auth]\nhtpasswd = \"/h\"\nanonymous_pull = [\"public/*\"]\n").unwrap();
        assert_eq!(s.auth.anonymous_pull, ["public/*"]);
        // An [auth] table alone turns authentication on (API keys,
        // workloads), so anonymous pulls may be granted beside it; without
        // authentication they mean nothing and are refused.
        let s = file("[auth]\nanonymous_pull = [\"public/*\"]\n").unwrap();
        assert!(s.auth.enabled && s.auth.htpasswd.is_none());
        let err = ServeArgs {
            auth: crate::auth_config::AuthArgs {
                anonymous_pull: vec!["public/*".into()],
                ..Default::default()
            },
            ..Default::default()
        }
        .settings()
        .unwrap_err()
        .to_string();
        assert!(err.contains("anonymous_pull needs authentication"), "{err}");
        let err = file("[auth]\ntoken_ttl_secs = 86400\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_ttl_secs"), "{err}");
        let err = file("[auth.grants]\nalice = [\"repository:x:fly\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("alice") && err.contains("fly"), "{err}");
        let err = file("[auth]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(format!("{err:#}").contains("trusted_proxies"), "{err:#}");
        let err = file("[auth]\ntoken_realm = \"ftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_realm"), "{err}");
        let err = file("[auth]\nhtpasswd = \"/h\"\nanonymous_pull = [\"[\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("anonymous_pull glob"), "{err}");
        let err = file("[auth]\nhtpassword = \"x\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn admission_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  t0ken\n").unwrap();
        let s = ServeArgs {
            admission_token_file: Some(token),
            admission_registries: vec!["ghcr.io".into(), "r.example:5000".into()],
            ..Default::default()
        }
        .settings()
        .unwrap();
        assert_eq!(s.admission.token.as_deref(), Some("t0ken"));
        assert_eq!(s.admission.registries, ["ghcr.io", "r.example:5000"]);
        assert_eq!(s.admission.timeout, std::time::Duration::from_secs(8));
        assert!(s.admission.client_names.is_empty() && !s.admission.unauthenticated);
        let fails = |args: ServeArgs, want: &str| {
            let e = format!("{:#}", args.settings().unwrap_err());
            assert!(e.contains(want), "{e}");
        };
        fails(
            ServeArgs {
                admission_client_ca: Some("ca.pem".into()),
                ..Default::default()
            },
            "admission_client_ca needs tls_cert",
        );
        fails(
            ServeArgs {
                admission_unauthenticated: true,
                admission_token: Some("t".into()),
                ..Default::default()
            },
            "admission_unauthenticated conflicts",
        );
        fails(
            ServeArgs {
                admission_timeout_secs: Some(0),
                ..Default::default()
            },
            "admission_timeout_secs must be between 1 and 30",
        );
        fails(
            ServeArgs {
                tls_cert: Some("tls.crt".into()),
                tls_key: Some("tls.key".into()),
                admission_client_ca: Some("ca.pem".into()),
                ..Default::default()
            },
            "admission_client_ca needs admission_client_names",
        );
        fails(
            ServeArgs {
                admission_client_names: vec!["kube-apiserver".into()],
                ..Default::default()
            },
            "admission_client_names needs admission_client_ca",
        );
        fails(
            ServeArgs {
                admission_token: Some("two words".into()),
                ..Default::default()
            },
            "admission_token must be one word",
        );
        fails(
            ServeArgs {
                admission_registries: vec!["http://127.0.0.1:5199/x".into()],
                ..Default::default()
            },
            "admission_registries",
        );
    }

    #[test]
    fn the_scale_out_examples_are_valid_configurations() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/scale-out");
        for name in ["s3-postgres.toml", "azure-postgres.toml"] {
            let s = ServeArgs {
                config: Some(dir.join(name)),
                ..Default::default()
            }
            .settings()
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let storage = s.server.storage.as_deref().unwrap();
            pavilion_store::object_url::StorageUrl::parse(storage).unwrap();
            assert!(s.server.database_url.unwrap().starts_with("postgres://"));
            assert!(s.server.redirect_blobs.is_some());
        }
    }
}
