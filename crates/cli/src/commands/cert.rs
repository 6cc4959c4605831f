//! `pavilion cert generate NAME`: a test CA and signing certificate in
//! notation's places, so that `pavilion sign` and `pavilion verify` (and
//! notation) work within a minute.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pavilion_client::auth::{write_file, IfExists};
use pavilion_notary::trust::notation_config_dir;
use std::path::{Path, PathBuf};

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
    let store = config.join("truststore/x509/ca").join(&args.name);
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let ca_path = store.join(format!("{}-ca.crt", args.name));
    // Never overwritten (as notation does): an existing key may be in use,
    // and a file or symlink already at the key's path is not ours to fill.
    // What was written is removed if a later file cannot be.
    let mut written: Vec<&Path> = Vec::new();
    for (path, bytes, mode) in [
        (&key_path, pki.key_pem.as_bytes(), 0o600),
        (&crt_path, pki.chain_pem.as_bytes(), 0o644),
        (&ca_path, pki.ca_pem.as_bytes(), 0o644),
    ] {
        if let Err(e) = write_file(path, bytes, mode, IfExists::Refuse) {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists: remove it or choose another name \
                     (cert generate never overwrites keys or certificates)",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("writing {}", path.display()))
            });
        }
        written.push(path);
    }
    let policy_path = config.join("trustpolicy.oci.json");
    let wrote_policy = if config.join("trustpolicy.json").exists() {
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
        // Created only if nothing (not even a dangling symlink) is there.
        match write_file(
            &policy_path,
            &serde_json::to_vec_pretty(&policy)?,
            0o644,
            IfExists::Refuse,
        ) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e).with_context(|| format!("writing {}", policy_path.display())),
        }
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
