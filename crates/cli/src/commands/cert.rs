//! `pavilion cert generate NAME`: a test CA and signing certificate in
//! notation's places, so that `pavilion sign` and `pavilion verify` (and
//! notation) work within a minute.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pavilion_notary::trust::notation_config_dir;
use std::path::PathBuf;

/// Certificate operations.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Create a test CA and a code-signing certificate (ECDSA P-256), add
    /// the CA to the trust store as ca:NAME, and write a trust policy that
    /// trusts it if none exists. For trying things out, not for production.
    Generate(GenerateArgs),
}

/// Arguments of `cert generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Name of the certificate, the key files and the trust store.
    pub name: String,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Where the key and chain go [default: notation's localkeys directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs a cert subcommand.
pub fn run(cmd: CertCommand) -> Result<()> {
    let CertCommand::Generate(args) = cmd;
    let valid_name = !args.name.is_empty()
        && args
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !args.name.starts_with('.');
    if !valid_name {
        return Err(crate::exit::UsageError(format!(
            "{:?}: use letters, digits, '.', '-' and '_'",
            args.name
        ))
        .into());
    }
    let config = notation_config_dir().context("no HOME or XDG_CONFIG_HOME")?;
    let pki = pavilion_notary::certgen::generate(&args.name, args.days)
        .map_err(|e| anyhow::anyhow!("generating the certificates: {e}"))?;
    let dir = args.dir.clone().unwrap_or_else(|| config.join("localkeys"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_path = dir.join(format!("{}.key", args.name));
    let crt_path = dir.join(format!("{}.crt", args.name));
    write_private(&key_path, pki.key_pem.as_bytes())?;
    std::fs::write(&crt_path, &pki.chain_pem)
        .with_context(|| format!("writing {}", crt_path.display()))?;
    let store = config.join("truststore/x509/ca").join(&args.name);
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let ca_path = store.join(format!("{}-ca.crt", args.name));
    std::fs::write(&ca_path, &pki.ca_pem)
        .with_context(|| format!("writing {}", ca_path.display()))?;
    let policy_path = config.join("trustpolicy.oci.json");
    let wrote_policy = if policy_path.exists() || config.join("trustpolicy.json").exists() {
        false
    } else {
        let policy = serde_json::json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": format!("{}-default", args.name),
                "registryScopes": ["*"],
                "signatureVerification": { "level": "strict" },
                "trustStores": [format!("ca:{}", args.name)],
                "trustedIdentities": ["*"],
            }],
        });
        std::fs::write(&policy_path, serde_json::to_vec_pretty(&policy)?)
            .with_context(|| format!("writing {}", policy_path.display()))?;
        true
    };
    println!("key:         {}", key_path.display());
    println!("certificate: {}", crt_path.display());
    println!("trust store: ca:{} ({})", args.name, ca_path.display());
    if wrote_policy {
        println!(
            "trust policy: {} (strict, every repository, ca:{})",
            policy_path.display(),
            args.name
        );
    } else {
        println!(
            "trust policy: unchanged; add \"ca:{}\" to a policy's trustStores to trust it",
            args.name
        );
    }
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
