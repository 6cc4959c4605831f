//! The admission and Gatekeeper endpoints' settings (`admission_*` keys
//! and flags of serve), merged (flags over file) and checked.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// The admission and Gatekeeper endpoints' settings.
#[derive(Debug, Default)]
pub struct AdmissionSettings {
    /// Registries images may be looked up in (empty: this registry's names).
    pub registries: Vec<String>,
    /// The bearer token callers must send, if any.
    pub token: Option<String>,
    /// The names a verified client certificate must carry one of to
    /// authenticate (empty: certificates do not; the CA file is in
    /// `server.client_ca`).
    pub client_names: Vec<String>,
    /// The deadline of one request's lookups.
    pub timeout: std::time::Duration,
    /// Callers without credentials are accepted (explicit opt-out).
    pub unauthenticated: bool,
}

/// Checks a configured registry name: a host with an optional port, as
/// in an image reference, nothing more.
pub(super) fn check_name(n: &str) -> Result<()> {
    let host = n.rsplit_once(':').map_or(n, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() {
            h
        } else {
            n
        }
    });
    let ok = !host.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    anyhow::ensure!(
        ok,
        "name {n:?} is not a registry host[:port] (no scheme, path or spaces)"
    );
    Ok(())
}

/// The admission keys from one source (flags/env, or the file).
pub(super) struct AdmissionArgs {
    pub(super) registries: Vec<String>,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) client_ca: Option<PathBuf>,
    pub(super) client_names: Vec<String>,
    pub(super) unauthenticated: bool,
    pub(super) timeout_secs: Option<u64>,
}

/// Merges the admission keys (flags over file) and checks them; the client
/// CA goes to the server's TLS setup.
pub(super) fn admission_settings(
    flags: AdmissionArgs,
    file: AdmissionArgs,
    server: &mut pavilion_registry::ServerConfig,
) -> Result<AdmissionSettings> {
    let registries = if flags.registries.is_empty() {
        file.registries
    } else {
        flags.registries
    };
    for r in &registries {
        check_name(r).context("admission_registries")?;
    }
    // A token on the command line wins over a file from the config file.
    let token = match (flags.token, flags.token_file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => Some(read_token(&f)?),
        (None, None) => match (file.token, file.token_file) {
            (Some(t), _) => Some(t),
            (None, Some(f)) => Some(read_token(&f)?),
            (None, None) => None,
        },
    };
    if let Some(t) = &token {
        anyhow::ensure!(
            !t.trim().is_empty() && !t.contains(char::is_whitespace),
            "admission_token must be one word, not empty"
        );
    }
    server.client_ca = flags.client_ca.or(file.client_ca);
    anyhow::ensure!(
        server.client_ca.is_none() || server.tls.is_some(),
        "admission_client_ca needs tls_cert and tls_key (client certificates come with TLS)"
    );
    let client_names = if flags.client_names.is_empty() {
        file.client_names
    } else {
        flags.client_names
    };
    // Fail closed: the CA that signs the API server's client certificate is
    // usually the cluster CA, which signs every kubelet's and user's too, so
    // "from this CA" alone would let any of them call the webhook.
    anyhow::ensure!(
        server.client_ca.is_none() || !client_names.is_empty(),
        "admission_client_ca needs admission_client_names (--admission-client-name): \
         the certificate names allowed to call the admission endpoints, such as the \
         common name of the API server's webhook client certificate; the CA alone \
         also vouches for every kubelet and user it signed"
    );
    anyhow::ensure!(
        server.client_ca.is_some() || client_names.is_empty(),
        "admission_client_names needs admission_client_ca"
    );
    for n in &client_names {
        anyhow::ensure!(
            !n.trim().is_empty() && n.trim() == n,
            "admission_client_names: {n:?} is empty or has surrounding spaces"
        );
    }
    let unauthenticated = flags.unauthenticated || file.unauthenticated;
    anyhow::ensure!(
        !unauthenticated || (token.is_none() && server.client_ca.is_none()),
        "admission_unauthenticated conflicts with admission_token, admission_token_file \
         and admission_client_ca: choose whether callers authenticate"
    );
    let secs = flags.timeout_secs.or(file.timeout_secs).unwrap_or(8);
    anyhow::ensure!(
        (1..=30).contains(&secs),
        "admission_timeout_secs must be between 1 and 30 (Kubernetes waits at most 30 s)"
    );
    Ok(AdmissionSettings {
        registries,
        token,
        client_names,
        timeout: std::time::Duration::from_secs(secs),
        unauthenticated,
    })
}

/// Reads a token file: its content without surrounding whitespace.
fn read_token(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading admission_token_file {}", path.display()))?;
    Ok(text.trim().to_string())
}
