//! `serve`'s client certificate keys: `tls_client_ca` and
//! `tls_client_auth`, merged with the admission endpoints' client CA.

use anyhow::Result;
use serde::Deserialize;
use std::path::PathBuf;

/// Whether registry clients must present a TLS certificate.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsClientAuth {
    /// Asked for; clients without one are served.
    Optional,
    /// Clients without one are refused at the handshake.
    Required,
}

/// Merges `tls_client_ca` and `tls_client_auth` into the server's TLS
/// setup, after the admission keys have put `admission_client_ca` there.
/// rustls verifies client certificates with one verifier per listener,
/// against one set of CAs. Merging two files into it would let a CA meant
/// only for registry clients mint a certificate the admission endpoints
/// accept (any name, kube-apiserver's included), so two different files
/// are refused; naming the same file says one CA is trusted for both.
pub(super) fn tls_client_settings(
    ca: Option<PathBuf>,
    mode: Option<TlsClientAuth>,
    server: &mut pavilion_registry::ServerConfig,
) -> Result<()> {
    match (ca, &server.client_ca) {
        (None, _) => anyhow::ensure!(
            mode.is_none(),
            "tls_client_auth needs tls_client_ca (the CA client certificates are verified against)"
        ),
        (Some(ca), Some(admission)) => anyhow::ensure!(
            same_file(&ca, admission),
            "tls_client_ca ({}) and admission_client_ca ({}) must name the same file: \
             a listener verifies client certificates against one set of CAs",
            ca.display(),
            admission.display()
        ),
        (Some(ca), None) => {
            anyhow::ensure!(
                server.tls.is_some(),
                "tls_client_ca needs tls_cert and tls_key (client certificates come with TLS)"
            );
            server.client_ca = Some(ca);
        }
    }
    server.client_auth = match mode {
        Some(TlsClientAuth::Required) => pavilion_registry::tls::ClientAuth::Required,
        _ => pavilion_registry::tls::ClientAuth::Optional,
    };
    Ok(())
}

/// Whether two paths name one file (as written, or once resolved).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn tls_client_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = |text: &str| super::super::settings_from_file(dir.path(), text);
        let tls = "tls_cert = \"t.crt\"\ntls_key = \"t.key\"\n";
        let s = file(&format!("{tls}tls_client_ca = \"ca.pem\"\n")).unwrap();
        assert_eq!(s.server.client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(
            s.server.client_auth,
            pavilion_registry::tls::ClientAuth::Optional
        );
        let s = file(&format!(
            "{tls}tls_client_ca = \"ca.pem\"\ntls_client_auth = \"required\"\n"
        ))
        .unwrap();
        assert_eq!(
            s.server.client_auth,
            pavilion_registry::tls::ClientAuth::Required
        );
        // The same file for admission is fine; another is refused.
        let adm = "admission_client_names = [\"kube-apiserver\"]\n";
        assert!(file(&format!(
            "{tls}{adm}tls_client_ca = \"ca.pem\"\nadmission_client_ca = \"ca.pem\"\n"
        ))
        .is_ok());
        let err = file(&format!(
            "{tls}{adm}tls_client_ca = \"ca.pem\"\nadmission_client_ca = \"other.pem\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("must name the same file"), "{err}");
        let err = file("tls_client_ca = \"ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_client_ca needs tls_cert"), "{err}");
        let err = file(&format!("{tls}tls_client_auth = \"required\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_client_auth needs tls_client_ca"), "{err}");
        let err = file(&format!("{tls}tls_client_auth = \"sometimes\"\n")).unwrap_err();
        assert!(format!("{err:#}").contains("unknown variant"), "{err:#}");
    }
}
