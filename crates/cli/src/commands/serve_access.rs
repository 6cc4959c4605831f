//! `serve`'s authentication and authorization, built from the settings
//! before the port opens: a credential file, key or rule that cannot be
//! read stops the start with its name, rather than the first request.

use crate::auth_config::AuthSettings;
use crate::exit::{CmdResult, UsageError};
use pavilion_auth::workload::WorkloadIssuers;
use pavilion_auth::{GrantTable, Grants};
use pavilion_enforce::{PolicySet, RegoAuthorizer};
use pavilion_registry::access::{Access, AccessConfig, TokenPlan};
use std::sync::Arc;
use std::time::Duration;

/// How often keys published at a workload issuer's JWKS URL are fetched.
const JWKS_REFRESH: Duration = Duration::from_secs(300);
/// How long one fetch may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document read.
const MAX_JWKS: usize = 1 << 20;

/// The registry's access control; `policies` holds package
/// `pavilion.authz` (the directory's, or the default).
pub fn access(
    auth: &AuthSettings,
    policies: Arc<PolicySet>,
    default_realm: Option<String>,
) -> CmdResult<Arc<Access>> {
    let usage = |e: String| UsageError(e);
    let passwords = match &auth.htpasswd {
        Some(path) => Some(Arc::new(
            pavilion_auth::HtpasswdFile::open(path).map_err(|e| usage(format!("htpasswd: {e}")))?,
        ) as Arc<dyn pavilion_auth::Authenticator>),
        None => None,
    };
    let workload = if auth.workload.is_empty() {
        None
    } else {
        Some(Arc::new(
            WorkloadIssuers::new(auth.workload.clone())
                .map_err(|e| usage(format!("auth.workload: {e}")))?,
        ))
    };
    let key = match &auth.token_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("token_key {}: {e}", path.display())))?;
            Some(
                pavilion_auth::jose::SigningKey::from_pem(&pem)
                    .map_err(|e| usage(format!("token_key {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let grants = GrantTable::new(auth.grants.as_ref(), &auth.groups).map_err(usage)?;
    let anonymous = Grants::anonymous_pull(&auth.anonymous_pull).map_err(usage)?;
    let trusted_proxies = if auth.trusted_proxies.is_empty() {
        None
    } else {
        Some(
            pavilion_auth::certificate::TrustedProxies::parse(&auth.trusted_proxies)
                .map_err(|e| usage(format!("trusted_proxies: {e}")))?,
        )
    };
    let forwarded_header =
        http::HeaderName::from_bytes(auth.forwarded_client_cert_header.as_bytes())
            .map_err(|e| usage(format!("forwarded_client_cert_header: {e}")))?;
    Ok(Arc::new(Access::new(AccessConfig {
        passwords,
        workload,
        tokens: Some(TokenPlan {
            issuer: auth.token_issuer.clone(),
            realm: auth.token_realm.clone().or(default_realm),
            service: auth.token_service.clone(),
            ttl: auth.token_ttl,
            refresh_ttl: auth.refresh_token_ttl,
            key,
        }),
        grants,
        anonymous,
        authorizer: Arc::new(RegoAuthorizer::new(policies)),
        audit: auth.audit,
        certificates: auth.client_certificates,
        trusted_proxies,
        forwarded_header,
    })))
}

/// Fetches the keys of every workload issuer configured by URL, now and
/// then every few minutes, for as long as the server runs. A failed fetch
/// keeps the keys fetched before (none at first: those tokens are refused
/// until one succeeds) and is logged.
pub async fn refresh_workload_keys(workload: Arc<WorkloadIssuers>) {
    let urls = workload.urls();
    if urls.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder().timeout(JWKS_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot fetch workload issuer keys");
            return;
        }
    };
    loop {
        for (name, url) in &urls {
            match fetch(&client, url).await {
                Ok(text) => match pavilion_auth::jose::KeySet::from_jwks(&text) {
                    Ok(keys) => {
                        if let Err(e) = workload.set_keys(name, keys) {
                            tracing::warn!(issuer = %name, error = %e, "workload issuer keys not taken");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %name, %url, error = %e, "workload issuer keys do not parse")
                    }
                },
                Err(e) => {
                    tracing::warn!(issuer = %name, %url, error = %e, "cannot fetch workload issuer keys")
                }
            }
        }
        tokio::time::sleep(JWKS_REFRESH).await;
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS {
            return Err(format!("larger than {MAX_JWKS} bytes"));
        }
    }
    String::from_utf8(body).map_err(|_| "not UTF-8".to_string())
}
