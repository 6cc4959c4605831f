//! `serve` configuration: defaults, then a TOML file, then `PAVILION_*`
//! environment variables, then flags (clap reads flag-or-env, so a flag wins
//! over its variable).

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Largest page of tags, repositories or referrers [default: 10000].
    #[arg(long, env = "PAVILION_MAX_PAGE", value_name = "N")]
    pub max_page: Option<i64>,
    /// Log filter, e.g. info or pavilion_registry=debug [default: info].
    #[arg(long, env = "PAVILION_LOG", value_name = "FILTER")]
    pub log: Option<String>,
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
    max_page: Option<i64>,
    log: Option<String>,
    policy: Option<PathBuf>,
    trust_policy: Option<PathBuf>,
    trust_store: Option<PathBuf>,
    verification_cache_secs: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// The merged configuration.
#[derive(Debug)]
pub struct Settings {
    pub server: pavilion_registry::ServerConfig,
    pub log: String,
    /// Rego policy directory.
    pub policy: Option<PathBuf>,
    /// Trust policy and store, when signatures are verified.
    pub trust: Option<pavilion_enforce::TrustConfig>,
    /// Admission cache lifetime.
    pub verification_cache: std::time::Duration,
}

impl ServeArgs {
    /// Merges file and flags/env over the defaults.
    pub fn settings(self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
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
        if let Some(v) = self.max_page.or(file.max_page) {
            anyhow::ensure!(v > 0, "max_page must be at least 1");
            server.max_page = v;
        }
        let log = self.log.or(file.log).unwrap_or_else(|| "info".to_string());
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
            Some(p) => Some(pavilion_enforce::TrustConfig {
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
        Ok(Settings {
            server,
            log,
            policy: self.policy.or(file.policy),
            trust,
            verification_cache,
        })
    }
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
