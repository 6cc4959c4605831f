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

/// What one registry directory adds: CAs and a client certificate (chain
/// and key).
#[derive(Default)]
pub(crate) struct HostTls {
    pub cas: Vec<CertificateDer<'static>>,
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl HostTls {
    /// The client certificate as reqwest takes it: one PEM holding the key
    /// and the chain (reqwest refuses sections it does not know, such as
    /// the `EC PARAMETERS` openssl writes, so they are re-encoded).
    pub fn reqwest_identity(&self) -> Result<Option<reqwest::Identity>, ClientError> {
        let Some((chain, key)) = &self.identity else {
            return Ok(None);
        };
        let label = match key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        let mut pem = pem_block(label, key.secret_der());
        for c in chain {
            pem.push_str(&pem_block("CERTIFICATE", c));
        }
        Ok(Some(reqwest::Identity::from_pem(pem.as_bytes())?))
    }
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
    if let Some((_, key)) = &identity {
        // Checked now, so an unusable key names its directory.
        rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| usage(format!("client key: {e}")))?;
    }
    Ok(HostTls { cas, identity })
}

/// The CA certificates of a PEM file, each checked as a trust anchor;
/// none, or anything unreadable, is an error naming the file.
pub(crate) fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let der = pem_certificates(path)?;
    for c in &der {
        // Parsed now so a damaged certificate names its file, not a
        // request much later.
        rustls::RootCertStore::empty()
            .add(c.clone())
            .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
    }
    Ok(der)
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

/// The client certificate chain `cert` with its key `key`, each file
/// named when it is at fault.
#[allow(clippy::type_complexity)]
fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientError> {
    let chain = pem_certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ClientError::Usage(format!("{}: not a PEM private key: {e}", key.display()))
    })?;
    Ok((chain, key_der))
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

/// Why a TLS connection to `url` fails, found by making one the way the
/// HTTP client does (same roots, `extra` CAs, client certificate) and
/// reading until the server speaks. With TLS 1.3 a server judges the
/// client's certificate after the client has finished its handshake, so
/// the HTTP client has already sent its request when the refusal comes,
/// and what reaches the request is often only "connection closed": this
/// second look, made only after such a failure, finds the alert. `None`
/// when it finds nothing certificate-related.
pub(crate) async fn diagnose(
    url: &reqwest::Url,
    extra: &[CertificateDer<'static>],
    host: &HostTls,
) -> Option<TlsFailure> {
    use tokio::io::AsyncReadExt as _;
    let host_name = url.host_str()?.trim_matches(['[', ']']).to_string();
    let authority = format!("{}:{}", url.host_str()?, url.port_or_known_default()?);
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots.add_parsable_certificates(extra.iter().chain(&host.cas).cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots);
    let config = match &host.identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .ok()?,
        None => builder.with_no_client_auth(),
    };
    let name = rustls_pki_types::ServerName::try_from(host_name).ok()?;
    let tcp = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .ok()?
        .ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = match tokio::time::timeout(PROBE_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tls_failure(&e),
        Err(_) => return None,
    };
    // A refused client certificate comes as an alert; an accepted one
    // as session tickets, then silence.
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => return None,
                Ok(_) => continue,
                Err(e) => return tls_failure(&e),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

/// What a TLS failure was, when a transport error is one worth naming.
#[derive(Clone, Debug)]
pub(crate) enum TlsFailure {
    /// The registry's certificate did not verify.
    ServerNotTrusted(String),
    /// The registry refused our certificate, or wanted one we did not send.
    ClientRefused(String),
}

/// Looks through `e`'s causes for a rustls certificate error.
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    use rustls::AlertDescription as A;
    let r = rustls_error(e)?;
    match r {
        rustls::Error::InvalidCertificate(_) => Some(TlsFailure::ServerNotTrusted(r.to_string())),
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
    }
}

/// The rustls error among `e`'s causes. It arrives inside `io::Error`s
/// (tokio-rustls wraps it, and the connector wraps that again), whose
/// `source` skips what they wrap, so each is opened with `get_ref`.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        cause = match inner {
            Some(i) => Some(i as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_registry_directory_is_found_by_host_and_port_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("r.example:5000")).unwrap();
        let dirs = CertDirs::Roots(vec![root.path().join("absent"), root.path().into()]);
        assert_eq!(
            dirs.dir_for("r.example:5000"),
            Some(root.path().join("r.example:5000"))
        );
        assert_eq!(dirs.dir_for("r.example"), None);
        // A name that would leave the root is no registry.
        std::fs::create_dir(root.path().join("x")).unwrap();
        for bad in ["..", "../x", "x/.."] {
            assert_eq!(dirs.dir_for(bad), None, "{bad}");
        }
        assert_eq!(CertDirs::None.dir_for("r.example:5000"), None);
        let fixed = CertDirs::Fixed("/d".into());
        assert_eq!(fixed.dir_for("anything"), Some(PathBuf::from("/d")));
    }

    #[test]
    fn half_a_client_certificate_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_host_dir(d.path()).unwrap().identity.is_none());
        write(d.path(), "client.cert", "x");
        let e = read_host_dir(d.path()).err().unwrap().to_string();
        assert!(e.contains("client.cert") && e.contains("client.key"), "{e}");
        std::fs::remove_file(d.path().join("client.cert")).unwrap();
        write(d.path(), "me.key", "x");
        let e = read_host_dir(d.path()).err().unwrap().to_string();
        assert!(e.contains("me.key") && e.contains("me.cert"), "{e}");
        write(d.path(), "me.cert", "not pem");
        let e = read_host_dir(d.path()).err().unwrap().to_string();
        assert!(
            e.contains("me.cert") && e.contains("no PEM certificate"),
            "{e}"
        );
        std::fs::remove_file(d.path().join("me.cert")).unwrap();
        std::fs::remove_file(d.path().join("me.key")).unwrap();
        write(d.path(), "ca.crt", "not pem either");
        let e = read_host_dir(d.path()).err().unwrap().to_string();
        assert!(e.contains("ca.crt"), "{e}");
    }
}
