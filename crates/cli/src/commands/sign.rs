//! `pavilion sign` and `pavilion signatures`: Notary Project signatures
//! pushed and listed as referrers of the signed manifest, as notation does.

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{parse_ref, runtime, ConnArgs};
use clap::{Args, ValueEnum};
use pavilion_client::Client;
use pavilion_notary::envelope::{Envelope, Format, TargetArtifact};
use pavilion_notary::signature_manifest;
use pavilion_notary::signer::{sign, PrivateKey, SignRequest};
use pavilion_oci::{Descriptor, Digest, ImageRef};
use std::path::PathBuf;

/// Envelope formats on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SignatureFormat {
    /// JWS JSON serialization (notation's default).
    Jws,
    /// COSE_Sign1.
    Cose,
}

/// Arguments of `pavilion sign`.
#[derive(Args, Debug)]
pub struct SignArgs {
    /// The manifest to sign: REPO:TAG or REPO@DIGEST (a tag is resolved to
    /// its digest first; the weights are never re-hashed).
    pub reference: String,
    /// Private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, value_name = "KEY.pem")]
    pub key: PathBuf,
    /// Certificate chain (PEM), signing certificate first, ending at the root.
    #[arg(long, value_name = "CHAIN.pem")]
    pub cert: PathBuf,
    /// Envelope format.
    #[arg(long, value_enum, default_value_t = SignatureFormat::Jws)]
    pub signature_format: SignatureFormat,
    /// Signature lifetime, e.g. 30d, 12h, 90m, 3600s.
    #[arg(long, value_name = "DURATION")]
    pub expiry: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `pavilion signatures`.
#[derive(Args, Debug)]
pub struct SignaturesArgs {
    /// REPO:TAG or REPO@DIGEST.
    pub reference: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Parses `30d`, `12h`, `90m`, `3600s`.
pub fn parse_duration(s: &str) -> CmdResult<time::Duration> {
    let bad = || {
        UsageError(format!(
            "{s:?} is not a duration like 30d, 12h, 90m or 3600s"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit_secs: i64 = match unit {
        "d" => 24 * 3600,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad().into()),
    };
    if n <= 0 {
        return Err(bad().into());
    }
    // Checked: time's days()/hours() panic past i64 seconds.
    let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
    Ok(time::Duration::seconds(secs))
}

/// `r` pinned to `d`.
fn pinned(r: &ImageRef, d: &Digest) -> ImageRef {
    ImageRef {
        tag: None,
        digest: Some(d.clone()),
        ..r.clone()
    }
}

/// The descriptor of the manifest `r` names.
async fn resolve(client: &Client, r: &ImageRef) -> CmdResult<Descriptor> {
    let m = client
        .get_manifest(r)
        .await
        .with_context(|| format!("fetching {r}"))?;
    Ok(Descriptor {
        media_type: m.media_type,
        digest: m.digest,
        size: m.bytes.len() as u64,
        artifact_type: None,
        annotations: None,
    })
}

/// Runs `pavilion sign`.
pub fn run_sign(args: SignArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let key_pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let key = PrivateKey::from_pem(&key_pem)
        .map_err(|e| UsageError(format!("{}: {e}", args.key.display())))?;
    let chain_pem = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("reading {}", args.cert.display()))?;
    let chain = pavilion_notary::certgen::pem_certificates(&chain_pem)
        .map_err(|e| UsageError(format!("{}: {e}", args.cert.display())))?;
    if chain.is_empty() {
        return Err(UsageError(format!("{}: no certificate", args.cert.display())).into());
    }
    let certs = pavilion_notary::x509::parse_chain(&chain)
        .map_err(|e| UsageError(format!("{}: {e}", args.cert.display())))?;
    let expiry = args.expiry.as_deref().map(parse_duration).transpose()?;
    let format = match args.signature_format {
        SignatureFormat::Jws => Format::Jws,
        SignatureFormat::Cose => Format::Cose,
    };
    let client = args.conn.client()?;
    let now = time::OffsetDateTime::now_utc();
    runtime()?.block_on(async {
        let subject = resolve(&client, &r).await?;
        let req = SignRequest {
            target: TargetArtifact {
                media_type: subject.media_type.clone(),
                digest: subject.digest.clone(),
                size: subject.size,
                artifact_type: None,
                annotations: None,
            },
            format,
            expiry: expiry.map(|d| now + d),
            signing_time: now,
            signing_agent: concat!("pavilion/", env!("CARGO_PKG_VERSION")),
        };
        let envelope = sign(&req, &key, &chain).map_err(|e| UsageError(e.to_string()))?;
        let created = pavilion_notary::envelope::format_time(now);
        let manifest = signature_manifest::build(&subject, format, &envelope, &certs, &created);
        let at = pinned(&r, &subject.digest);
        client
            .push_blob_bytes(&at, signature_manifest::EMPTY_CONFIG.to_vec().into())
            .await
            .context("uploading the signature's config")?;
        client
            .push_blob_bytes(&at, envelope.into())
            .await
            .context("uploading the signature envelope")?;
        let sig_digest = Digest::sha256(&manifest);
        client
            .put_manifest(
                &pinned(&r, &sig_digest),
                pavilion_oci::media_type::OCI_MANIFEST,
                manifest.into(),
            )
            .await
            .context("pushing the signature manifest")?;
        match args.conn.output.format {
            Output::Text => {
                println!("{sig_digest}");
                eprintln!(
                    "signed {}/{}@{} ({:?}, {})",
                    r.registry,
                    r.repository,
                    subject.digest,
                    format,
                    certs[0].subject()
                );
            }
            Output::Json => print_json(&serde_json::json!({
                "reference": format!("{}/{}@{}", r.registry, r.repository, subject.digest),
                "signature": sig_digest.to_string(),
                "format": format.media_type(),
                "signer": certs[0].subject(),
            })),
        }
        Ok(ExitStatus::Success)
    })
}

/// Runs `pavilion signatures`.
pub fn run_signatures(args: SignaturesArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    runtime()?.block_on(async {
        let subject = resolve(&client, &r).await?;
        let found = pavilion_verify::find_signatures(&client, &r, &subject.digest).await?;
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                let env = match &f.refused {
                    Some(why) => Err(why.clone()),
                    None => Envelope::parse(&f.parsed.envelope.media_type, &f.envelope)
                        .map_err(|e| e.to_string()),
                };
                match env {
                    Ok(e) => {
                        let signer = e
                            .certificates()
                            .ok()
                            .and_then(|c| c.first().map(|c| c.subject()));
                        let t = e.signed.signing_time.or(e.signed.authentic_signing_time);
                        serde_json::json!({
                            "digest": f.manifest.digest.to_string(),
                            "format": f.parsed.envelope.media_type,
                            "algorithm": e.signed.alg.jws_name(),
                            "signer": signer,
                            "signingScheme": e.signed.signing_scheme.as_str(),
                            "signingTime": t.map(pavilion_notary::envelope::format_time),
                            "expiry": e.signed.expiry.map(pavilion_notary::envelope::format_time),
                            "timestamped": e.timestamp.is_some(),
                        })
                    }
                    Err(err) => serde_json::json!({
                        "digest": f.manifest.digest.to_string(),
                        "format": f.parsed.envelope.media_type,
                        "error": err,
                    }),
                }
            })
            .collect();
        match args.conn.output.format {
            Output::Json => print_json(&serde_json::json!({
                "reference": format!("{}/{}@{}", r.registry, r.repository, subject.digest),
                "signatures": rows,
            })),
            Output::Text => {
                println!("{}/{}@{}", r.registry, r.repository, subject.digest);
                if rows.is_empty() {
                    println!("  (no signatures)");
                }
                for row in &rows {
                    println!("  {}", row["digest"].as_str().unwrap_or(""));
                    for (label, key) in [
                        ("signer", "signer"),
                        ("algorithm", "algorithm"),
                        ("format", "format"),
                        ("signed at", "signingTime"),
                        ("expires", "expiry"),
                        ("error", "error"),
                    ] {
                        if let Some(v) = row.get(key).and_then(|v| v.as_str()) {
                            println!("    {label:<10} {v}");
                        }
                    }
                }
            }
        }
        Ok(ExitStatus::Success)
    })
}
