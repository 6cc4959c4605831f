//! TLS to registries: private CAs, client certificates (mTLS), and
//! whether a loopback registry speaks TLS.
//!
//! Trust is the system's roots (or `SSL_CERT_FILE`'s, which replace them,
//! as OpenSSL and Go read that variable) plus the CA files the caller
//! names for every registry, plus a registry's own directory in the
//! `certs.d` layout docker, podman and containerd share:
//! `<root>/<host[:port]>/` holding `*.crt` CA files and one client
//! certificate as `NAME.cert` with its key `NAME.key`. A registry with such
//! a directory gets its own HTTP client (see `Client::http_for`): a client
//! certificate is chosen by the registry being talked to, which rustls'
//! certificate resolver cannot see (it is told the server's accepted CAs,
//! not its name), and one client per registry keeps the certificate off
//! every other registry's connections.

use crate::error::ClientError;
use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How registries' certificates are trusted and which client certificate
/// is presented.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA certificate files (PEM, any number of certificates each) trusted
    /// for every registry, besides the system's roots.
    pub ca_files: Vec<PathBuf>,
    /// Where a registry's own CA files and client certificate are found.
    pub cert_dirs: CertDirs,
}

/// Where registries' certificate directories are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CertDirs {
    /// Nowhere: only [`TlsOptions::ca_files`] and the system's roots.
    #[default]
    None,
    /// `ROOT/<host[:port]>/` under each root, the first that exists (the
    /// registry written as in references, port included).
    Roots(Vec<PathBuf>),
    /// This one directory for every registry (podman's `--cert-dir`).
    Fixed(PathBuf),
}

impl CertDirs {
    /// The roots docker, podman and containerd read:
    /// `$PAVILION_CERTS_DIR` alone when set, else those of
    /// `/etc/docker/certs.d`, `/etc/containers/certs.d` and
    /// `$HOME/.config/containers/certs.d` that exist.
    pub fn standard() -> Self {
        if let Some(d) = std::env::var_os("PAVILION_CERTS_DIR").filter(|d| !d.is_empty()) {
            return CertDirs::Roots(vec![PathBuf::from(d)]);
        }
        let mut roots = vec![
            PathBuf::from("/etc/docker/certs.d"),
            PathBuf::from("/etc/containers/certs.d"),
        ];
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            roots.push(Path::new(&home).join(".config/containers/certs.d"));
        }
        roots.retain(|r| r.is_dir());
        CertDirs::Roots(roots)
    }

    /// The directory holding `registry`'s certificates, if any.
    pub fn dir_for(&self, registry: &str) -> Option<PathBuf> {
        match self {
            CertDirs::None => None,
            CertDirs::Fixed(d) => Some(d.clone()),
            // A name with a path separator or `..` is no registry host; it
            // must not reach another directory.
            CertDirs::Roots(_) if registry.contains(['/', '\\']) || registry.starts_with('.') => {
                None
            }
            CertDirs::Roots(roots) => roots.iter().map(|r| r.join(registry)).find(|d| d.is_dir()),
        }
    }
}

/// What one registry directory adds: CAs and a client certificate.
pub(crate) struct HostTls {
    pub cas: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
}

/// Reads `dir`: `*.crt` are CA files, `NAME.cert` + `NAME.key` the client
/// certificate (at most one pair). A certificate without its key, or a key
/// without its certificate, is an error naming the file: a half-configured
/// client certificate silently ignored would surface as a refusal far
/// from its cause.
pub(crate) fn read_host_dir(dir: &Path) -> Result<HostTls, ClientError> {
    let usage = |what: String| ClientError::Usage(format!("{}: {what}", dir.display()));
    let entries = std::fs::read_dir(dir).map_err(|e| usage(e.to_string()))?;
    let mut names: Vec<String> = Vec::new();
    for e in entries {
        let e = e.map_err(|e| usage(e.to_string()))?;
        // Names that are not UTF-8 cannot be a .crt/.cert/.key we look for.
        if let Ok(n) = e.file_name().into_string() {
            names.push(n);
        }
    }
    names.sort();
    let mut cas = Vec::new();
    let mut pairs = Vec::new();
    for n in &names {
        let path = dir.join(n);
        if n.ends_with(".crt") {
            cas.extend(ca_certificates(&path)?);
        } else if let Some(stem) = n.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !names.contains(&key) {
                return Err(ClientError::Usage(format!(
                    "{}: client certificate without its key {key} beside it",
                    path.display()
                )));
            }
            pairs.push((path.clone(), dir.join(key)));
        } else if let Some(stem) = n.strip_suffix(".key") {
            if !names.contains(&format!("{stem}.cert")) {
                return Err(ClientError::Usage(format!(
                    "{}: client key without its certificate {stem}.cert beside it",
                    path.display()
                )));
            }
        }
    }
    if pairs.len() > 1 {
        return Err(usage(format!(
            "more than one client certificate ({} and {}); keep one",
            pairs[0].0.display(),
            pairs[1].0.display()
        )));
    }
    let identity = match pairs.pop() {
        Some((cert, key)) => Some(identity(&cert, &key)?),
        None => None,
    };
    Ok(HostTls { cas, identity })
}

/// The CA certificates of a PEM file, each checked as a trust anchor;
/// none, or anything unreadable, is an error naming the file.
pub(crate) fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let der = pem_certificates(path)?;
    let mut out = Vec::with_capacity(der.len());
    for c in der {
        // Parsed now so a damaged certificate names its file, not a
        // request much later.
        rustls::RootCertStore::empty()
            .add(c.clone())
            .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
        out.push(reqwest::Certificate::from_der(&c)?);
    }
    Ok(out)
}

/// The certificates of a PEM file; at least one.
fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bytes =
        std::fs::read(path).map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ClientError::Usage(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ClientError::Usage(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The client certificate chain `cert` with its key `key`. reqwest reads
/// one PEM holding both and refuses sections it does not know (an `EC
/// PARAMETERS` block openssl writes before a key), so both are parsed here,
/// naming the file at fault, and handed over re-encoded.
fn identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, ClientError> {
    let chain = pem_certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ClientError::Usage(format!("{}: not a PEM private key: {e}", key.display()))
    })?;
    let label = match &key_der {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let mut pem = pem_block(label, key_der.secret_der());
    for c in &chain {
        pem.push_str(&pem_block("CERTIFICATE", c));
    }
    reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
        ClientError::Usage(format!(
            "{} and {}: not a usable client certificate: {e}",
            cert.display(),
            key.display()
        ))
    })
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Checks `SSL_CERT_FILE`, when set: the system's roots are then read from
/// it alone, and a file without certificates would leave the client
/// trusting nothing, every registry failing with an unknown issuer.
pub(crate) fn check_ssl_cert_file() -> Result<(), ClientError> {
    match std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        None => Ok(()),
        Some(f) => pem_certificates(Path::new(&f))
            .map(|_| ())
            .map_err(|e| ClientError::Usage(format!("SSL_CERT_FILE: {e}"))),
    }
}

/// How long the loopback probe waits for the first byte of an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the server at `authority` (`host:port`, on this machine) answers
/// a TLS ClientHello in TLS (a handshake or an alert record), `None` when
/// it cannot be reached. The hello is followed by an empty line so that a
/// plain-HTTP server reading a request line answers (400) at once instead
/// of waiting for a newline; a TLS server has answered the hello before it
/// reads those bytes.
pub(crate) async fn speaks_tls(authority: &str, host: &str) -> Option<bool> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut hello = client_hello(host)?;
    hello.extend_from_slice(b"\r\n\r\n");
    let mut s = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .ok()?
        .ok()?;
    if s.write_all(&hello).await.is_err() {
        return Some(false);
    }
    let mut first = [0u8; 1];
    Some(
        match tokio::time::timeout(PROBE_TIMEOUT, s.read(&mut first)).await {
            // 22: handshake, 21: alert (a TLS server refusing this hello).
            Ok(Ok(1)) => matches!(first[0], 22 | 21),
            // Closed, reset or silent: not a TLS server; the request then
            // goes over plain HTTP as it always has.
            _ => false,
        },
    )
}

/// A ClientHello for `host` as rustls writes it (never completed: only the
/// server's first byte is read).
fn client_hello(host: &str) -> Option<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name =
        rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string()).ok()?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).ok()?;
    }
    Some(out)
}

/// What a TLS failure was, when a transport error is one worth naming.
pub(crate) enum TlsFailure {
    /// The registry's certificate did not verify.
    ServerNotTrusted(String),
    /// The registry refused our certificate, or wanted one we did not send.
    ClientRefused(String),
}

/// Looks through `e`'s causes for a rustls certificate error. rustls'
/// error reaches us inside an `io::Error`, whose `source` skips it, so
/// each `io::Error` is opened.
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    use rustls::AlertDescription as A;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .or_else(|| c.downcast_ref::<rustls::Error>());
        if let Some(r) = inner {
            return match r {
                rustls::Error::InvalidCertificate(_) => {
                    Some(TlsFailure::ServerNotTrusted(r.to_string()))
                }
                rustls::Error::AlertReceived(
                    A::CertificateRequired
                    | A::BadCertificate
                    | A::UnknownCA
                    | A::CertificateExpired
                    | A::CertificateRevoked
                    | A::CertificateUnknown
                    | A::UnsupportedCertificate
                    | A::AccessDenied,
                ) => Some(TlsFailure::ClientRefused(r.to_string())),
                _ => None,
            };
        }
        cause = c.source();
    }
    None
}
