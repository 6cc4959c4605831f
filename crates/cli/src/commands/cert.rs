//! `pavilion cert generate NAME`: a test CA and signing certificate in
//! notation's places, so that `pavilion sign` and `pavilion verify` (and
//! notation) work within a minute.

use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, Output, OutputArgs};
use clap::{Args, Subcommand};
use pavilion_client::auth::{write_file, IfExists};
use pavilion_notary::trust::notation_config_dir;
use pavilion_notary::trust_policy::{load_oci, oci_policy_path_in};
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
    /// Replace the key, certificate and trust-store CA of an existing NAME.
    /// Signatures made with the old key then no longer verify.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs a cert subcommand.
pub fn run(cmd: CertCommand) -> CmdResult {
    let CertCommand::Generate(args) = cmd;
    let valid_name = !args.name.is_empty()
        && args
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !args.name.starts_with('.');
    if !valid_name {
        return Err(UsageError(format!(
            "{:?}: use letters, digits, '.', '-' and '_'",
            args.name
        ))
        .into());
    }
    let config = notation_config_dir().context("no HOME or XDG_CONFIG_HOME")?;
    let dir = args.dir.clone().unwrap_or_else(|| config.join("localkeys"));
    let key_path = dir.join(format!("{}.key", args.name));
    let crt_path = dir.join(format!("{}.crt", args.name));
    let store = config.join("truststore/x509/ca").join(&args.name);
    let ca_path = store.join(format!("{}-ca.crt", args.name));
    // Never overwritten without --force (notation refuses too): the key may
    // sign things, and its CA in the trust store is what earlier signatures
    // verify against. Everything already there is named at once.
    let present: Vec<&PathBuf> = [&key_path, &crt_path, &ca_path]
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if !present.is_empty() && !args.force {
        let list: Vec<String> = present.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::other(anyhow::anyhow!(
            "{:?} already exists ({}): signatures made with it verify only while these stay. \
             Choose another name, or give --force to replace them (its earlier signatures will \
             then fail verification)",
            args.name,
            list.join(", ")
        )));
    }
    let pki = pavilion_notary::certgen::generate(&args.name, args.days)
        .map_err(|e| Failure::other(anyhow::anyhow!("generating the certificates: {e}")))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    // With --force each file is replaced by rename (a symlink there is
    // replaced, never followed); without it, a file that appeared since the
    // check above still stops the write. What was written is removed if a
    // later file cannot be.
    let if_exists = if args.force {
        IfExists::Replace
    } else {
        IfExists::Refuse
    };
    let mut written: Vec<&Path> = Vec::new();
    for (path, bytes, mode) in [
        (&key_path, pki.key_pem.as_bytes(), 0o600),
        (&crt_path, pki.chain_pem.as_bytes(), 0o644),
        (&ca_path, pki.ca_pem.as_bytes(), 0o644),
    ] {
        if let Err(e) = write_file(path, bytes, mode, if_exists) {
            if !args.force {
                for p in &written {
                    let _ = std::fs::remove_file(p);
                }
            }
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                Failure::other(anyhow::anyhow!(
                    "{} already exists: choose another name, or give --force to replace it",
                    path.display()
                ))
            } else {
                Failure::from(e).context(format!("writing {}", path.display()))
            });
        }
        written.push(path);
    }
    let store_ref = format!("ca:{}", args.name);
    let policy = policy_for(&config, &args.name, &store_ref)?;
    match args.output.format {
        Output::Json => print_json(&serde_json::json!({
            "key": key_path,
            "certificate": crt_path,
            "trustStore": store_ref,
            "trustStoreCertificate": ca_path,
            "replaced": present,
            "trustPolicy": {
                "path": policy.path,
                "written": policy.written,
                "trusts": policy.trusts,
            },
        })),
        Output::Text => {
            println!("key:         {}", key_path.display());
            println!("certificate: {}", crt_path.display());
            println!("trust store: {store_ref} ({})", ca_path.display());
            let policy_path = policy.path.display();
            if policy.written {
                println!("trust policy: {policy_path} (strict, every repository, {store_ref})");
            } else if policy.trusts {
                println!("trust policy: unchanged ({policy_path}), already trusts {store_ref}");
            } else {
                println!(
                    "trust policy: unchanged ({policy_path}); add \"{store_ref}\" to a \
                     statement's trustStores to trust it"
                );
            }
            if !present.is_empty() {
                eprintln!(
                    "warning: replaced {}'s key, certificate and CA: signatures made with the \
                     old key no longer verify",
                    args.name
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// The trust policy after `cert generate`: where it is, whether this run
/// wrote it, and whether it names the new trust store.
struct PolicyState {
    path: PathBuf,
    written: bool,
    trusts: bool,
}

/// Writes a policy trusting `store_ref` if none exists (notation's
/// `trustpolicy.oci.json`, or the older `trustpolicy.json`); else reports
/// whether the existing one already names it.
fn policy_for(config: &Path, name: &str, store_ref: &str) -> CmdResult<PolicyState> {
    let path = oci_policy_path_in(config);
    if path.symlink_metadata().is_ok() {
        return Ok(PolicyState {
            trusts: names_store(&path, store_ref),
            path,
            written: false,
        });
    }
    let policy = serde_json::json!({
        "version": "1.0",
        "trustPolicies": [{
            "name": format!("{name}-default"),
            "registryScopes": ["*"],
            "signatureVerification": { "level": "strict" },
            "trustStores": [store_ref],
            "trustedIdentities": ["*"],
        }],
    });
    // Created only if nothing (not even a dangling symlink) is there.
    let written = match write_file(
        &path,
        &serde_json::to_vec_pretty(&policy)?,
        0o644,
        IfExists::Refuse,
    ) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
    };
    Ok(PolicyState {
        trusts: written || names_store(&path, store_ref),
        path,
        written,
    })
}

/// True if some statement of the policy at `path` lists `store_ref` in its
/// trustStores. Only words the message: a policy that cannot be loaded
/// counts as not naming it (and `verify` will say why it fails).
fn names_store(path: &Path, store_ref: &str) -> bool {
    load_oci(path).is_ok_and(|p| {
        p.document
            .trust_policies
            .iter()
            .any(|s| s.trust_stores.iter().any(|t| t == store_ref))
    })
}
