//! The `[auth]` part of the `serve` configuration: who may call the
//! registry and what they may do. Merged like every other key (file, then
//! `PAVILION_AUTH_*` variables, then flags), checked before the port opens.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The `[auth]` table of the config file. Its presence alone turns
/// authentication on (anonymous access is then off unless granted).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    htpasswd: Option<PathBuf>,
    anonymous_pull: Option<Vec<String>>,
    audit: Option<bool>,
    token_realm: Option<String>,
    token_service: Option<String>,
    token_issuer: Option<String>,
    token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    token_key: Option<PathBuf>,
    client_certificates: Option<bool>,
    trusted_proxies: Option<Vec<String>>,
    forwarded_client_cert_header: Option<String>,
    grants: Option<BTreeMap<String, Vec<String>>>,
    groups: Option<BTreeMap<String, Vec<String>>>,
    workload: Option<Vec<WorkloadFile>>,
}

/// One `[[auth.workload]]` issuer.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    subject_claim: Option<String>,
    groups_claim: Option<String>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
}

/// The auth flags and variables of `serve`.
#[derive(clap::Args, Debug, Default)]
pub struct AuthArgs {
    /// htpasswd file (bcrypt entries, as `htpasswd -B` writes): users log in with Basic credentials or at /token. Re-read when it changes. Turns authentication on. In the config file: `[auth]` `htpasswd = "FILE"`.
    #[arg(long, env = "PAVILION_AUTH_HTPASSWD", value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Require authentication even without --htpasswd (API keys from `pavilion token create`, workload identities, client certificates). An `[auth]` table in the config file does the same.
    #[arg(long, env = "PAVILION_AUTH")]
    pub auth: bool,
    /// Repositories anyone may pull from without credentials once authentication is on (glob over repository names: `*` within one component, `**` across), repeatable. Only reads (GET, HEAD of tags, manifests, blobs, referrers).
    #[arg(
        long = "anonymous-pull",
        env = "PAVILION_AUTH_ANONYMOUS_PULL",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub anonymous_pull: Vec<String>,
    /// Authorization in audit mode: what the rules deny is recorded in the decision log (enforced: false) and let through. In the config file: `[auth]` `audit = true`.
    #[arg(long = "authz-audit", env = "PAVILION_AUTH_AUDIT")]
    pub audit: bool,
    /// The token endpoint URL clients are sent to (the challenge's realm) [default: http(s)://<first --name or the listen address>/token].
    #[arg(long, env = "PAVILION_AUTH_TOKEN_REALM", value_name = "URL")]
    pub token_realm: Option<String>,
    /// ES256 private key (PEM) tokens are signed with; give every replica the same file, or none: then a key is made once and shared through the metadata database.
    #[arg(long, env = "PAVILION_AUTH_TOKEN_KEY", value_name = "FILE")]
    pub token_key: Option<PathBuf>,
}

/// The merged auth settings.
#[derive(Debug, Default)]
pub struct AuthSettings {
    /// Whether requests must authenticate at all.
    pub enabled: bool,
    pub htpasswd: Option<PathBuf>,
    pub anonymous_pull: Vec<String>,
    pub audit: bool,
    pub token_realm: Option<String>,
    pub token_service: Option<String>,
    pub token_issuer: String,
    pub token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub token_key: Option<PathBuf>,
    /// Identify callers by their verified TLS client certificate.
    pub client_certificates: bool,
    pub trusted_proxies: Vec<String>,
    pub forwarded_client_cert_header: String,
    /// `None`: no `[auth.grants]` (htpasswd users may do everything).
    pub grants: Option<BTreeMap<String, Vec<String>>>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub workload: Vec<pavilion_auth::workload::WorkloadIssuerConfig>,
}

/// Longest token lifetime accepted: tokens cannot be revoked, so they must
/// stay short.
const MAX_TOKEN_TTL: u64 = 3600;

impl AuthArgs {
    /// Merges flags/variables over the file's `[auth]` (absent: `None`).
    pub fn settings(self, file: Option<AuthFile>, client_ca: bool) -> Result<AuthSettings> {
        let present = file.is_some();
        let f = file.unwrap_or_default();
        let htpasswd = self.htpasswd.or(f.htpasswd);
        let workload = f
            .workload
            .unwrap_or_default()
            .into_iter()
            .map(|w| pavilion_auth::workload::WorkloadIssuerConfig {
                name: w.name,
                issuer: w.issuer,
                audiences: w.audiences,
                subject_claim: w.subject_claim.unwrap_or_else(|| "sub".into()),
                groups_claim: w.groups_claim,
                jwks_file: w.jwks_file,
                jwks_url: w.jwks_url,
            })
            .collect::<Vec<_>>();
        let enabled = present || self.auth || htpasswd.is_some();
        let anonymous_pull = if self.anonymous_pull.is_empty() {
            f.anonymous_pull.unwrap_or_default()
        } else {
            self.anonymous_pull
        };
        anyhow::ensure!(
            anonymous_pull.is_empty() || enabled,
            "anonymous_pull needs authentication ([auth], --htpasswd or --auth): without it everyone may pull anyway"
        );
        pavilion_auth::Grants::anonymous_pull(&anonymous_pull).map_err(anyhow::Error::msg)?;
        let ttl = f.token_ttl_secs.unwrap_or(300);
        anyhow::ensure!(
            (1..=MAX_TOKEN_TTL).contains(&ttl),
            "token_ttl_secs must be between 1 and {MAX_TOKEN_TTL} (tokens cannot be revoked)"
        );
        let refresh = f.refresh_token_ttl_secs.unwrap_or(7 * 24 * 3600);
        anyhow::ensure!(refresh >= 1, "refresh_token_ttl_secs must be at least 1");
        let token_realm = self.token_realm.or(f.token_realm);
        if let Some(r) = &token_realm {
            anyhow::ensure!(
                (r.starts_with("https://") || r.starts_with("http://")) && !r.contains(['"', ' ']),
                "token_realm {r:?} must be an http(s) URL"
            );
        }
        if let Some(s) = &f.token_service {
            anyhow::ensure!(
                !s.is_empty() && !s.contains(['"', ' ', ',']),
                "token_service {s:?} must be a plain name"
            );
        }
        let trusted_proxies = f.trusted_proxies.unwrap_or_default();
        pavilion_auth::certificate::TrustedProxies::parse(&trusted_proxies)
            .map_err(anyhow::Error::msg)
            .context("auth.trusted_proxies")?;
        let header = f
            .forwarded_client_cert_header
            .unwrap_or_else(|| "x-forwarded-client-cert".into());
        http::HeaderName::from_bytes(header.as_bytes()).with_context(|| {
            format!("forwarded_client_cert_header {header:?} is not a header name")
        })?;
        let groups = f.groups.unwrap_or_default();
        pavilion_auth::GrantTable::new(f.grants.as_ref(), &groups).map_err(anyhow::Error::msg)?;
        let client_certificates = f.client_certificates.unwrap_or(client_ca);
        anyhow::ensure!(
            !client_certificates || client_ca || !trusted_proxies.is_empty(),
            "client_certificates needs tls_client_ca (or trusted_proxies that forward verified certificates)"
        );
        Ok(AuthSettings {
            enabled,
            htpasswd,
            anonymous_pull,
            audit: self.audit || f.audit == Some(true),
            token_realm,
            token_service: f.token_service,
            token_issuer: f.token_issuer.unwrap_or_else(|| "pavilion".into()),
            token_ttl: Duration::from_secs(ttl),
            refresh_token_ttl: Duration::from_secs(refresh),
            token_key: self.token_key.or(f.token_key),
            client_certificates: enabled && client_certificates,
            trusted_proxies,
            forwarded_client_cert_header: header,
            grants: f.grants,
            groups,
            workload,
        })
    }
}
