//! HTTPS: the certificate chain and key `serve --tls-cert/--tls-key` name,
//! loaded once at start (rustls with the ring provider, HTTP/2 and 1.1 by
//! ALPN). Kubernetes only calls admission webhooks over HTTPS.
//!
//! Optionally the server also asks clients for a certificate, verified
//! against the CAs of `client_ca` (`serve --tls-client-ca` for registry
//! clients, mTLS; `--admission-client-ca` for how the API server and
//! Gatekeeper authenticate to a webhook: one file, since a listener has one
//! verifier). [`ClientAuth::Optional`] serves clients without one as
//! before; [`ClientAuth::Required`] fails their handshake. Either way a
//! certificate that does not verify fails the handshake. A verified one
//! reaches handlers as the request extension [`ClientCertificate`], which
//! the endpoints that require it check.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The end-entity certificate a client presented on this connection,
/// verified against the configured client CAs. Present in a request's
/// extensions only when verified.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub CertificateDer<'static>);

/// Whether a client must present a certificate (when client CAs are set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asked for; clients without one are served (a presented one must
    /// verify).
    #[default]
    Optional,
    /// The handshake fails without a certificate that verifies.
    Required,
}

/// Builds the acceptor; errors are one line and name the file.
pub fn acceptor(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    client_auth: ClientAuth,
) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no CA certificate found", path.display()));
            }
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The verified client certificate of an established connection, if the
/// client presented one (rustls keeps it only once verified).
pub fn client_certificate<IO>(
    stream: &tokio_rustls::server::TlsStream<IO>,
) -> Option<ClientCertificate> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| ClientCertificate(c.clone().into_owned()))
}

/// Closes a connection whose handshake failed, after its alert was sent,
/// so that the client reads the alert. With TLS 1.3 a client refused for
/// its certificate (or for lacking one) has already sent its first request
/// when the server judges the certificate; closing with those bytes unread
/// makes the kernel answer with a reset, which can destroy the alert
/// before the client reads it (the client then sees "connection closed"
/// instead of why). So: stop writing, read what the client sent until it
/// closes, at most 64 KiB and one second, then close.
pub(crate) async fn close_refused(mut io: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let _ = io.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}
