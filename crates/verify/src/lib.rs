//! Notary verification of an artifact's signatures, wherever they are:
//! fetched from a registry (`pavilion verify`, `pull --verify`, admission)
//! or already stored in Pavilion's own repository (push-time tag guards).
//! Both go through [`verify_signatures`], so a signature is judged the same
//! way at every door.
//!
//! Client side: this crate needs the registry client, the notary crate and
//! the policy input types, never a server crate, so the client commands
//! (and a node agent or web page built on them) carry no server code. The
//! server's doors (`pavilion-enforce`) use it too.

use pavilion_client::{Client, ClientError, ErrorKind};
use pavilion_notary::signature_manifest::{SignatureManifest, SIGNATURE_ARTIFACT_TYPE};
use pavilion_notary::trust::{load_requirements, Resolved};
use pavilion_notary::verify::{verify, Expected, Outcome, Report, Requirements};
use pavilion_oci::{Descriptor, Digest, ImageRef};
use pavilion_policy::input::{SignatureResult, Verification};
use std::collections::HashSet;
use std::path::PathBuf;

/// Largest envelope read from a registry (the same bound as the registry's
/// own reads: a signature must not pass at one door and fail at another).
pub use pavilion_oci::SIGNATURE_ENVELOPE_LIMIT as ENVELOPE_LIMIT;

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The registry could not be asked (the cause is the client's error).
    #[error("{context}")]
    Registry {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The trust policy or trust store is unusable, or names no statement
    /// for the artifact.
    #[error("trust policy: {0}")]
    TrustPolicy(String),
}

impl VerifyError {
    /// What kind of failure this is: the client's own kind for a registry
    /// that could not be asked, a failed check for an unusable trust policy.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VerifyError::Registry { source, .. } => source.kind(),
            VerifyError::TrustPolicy(_) => ErrorKind::Verification,
        }
    }
}

fn registry(context: String) -> impl FnOnce(ClientError) -> VerifyError {
    move |source| VerifyError::Registry { context, source }
}

/// A signature of the artifact.
#[derive(Debug, Clone)]
pub struct FoundSignature {
    /// The signature manifest's descriptor.
    pub manifest: Descriptor,
    /// The signature manifest, read.
    pub parsed: SignatureManifest,
    /// The envelope bytes.
    pub envelope: Vec<u8>,
    /// Why the envelope was not fetched (too large), if it was not.
    pub refused: Option<String>,
}

/// The outcome of verifying an artifact's signatures.
#[derive(Debug, Clone)]
pub struct ArtifactVerification {
    /// The artifact, pinned (`registry/repo@digest`).
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// The trust policy statement that applied.
    pub policy: String,
    /// Each signature's report, with its manifest digest.
    pub reports: Vec<(Digest, Report)>,
    /// Whether the policy skips verification.
    pub skipped: bool,
}

impl ArtifactVerification {
    /// Verified when the policy skips, or one signature passes (notation's rule).
    pub fn verified(&self) -> bool {
        self.skipped || self.reports.iter().any(|(_, r)| r.verified)
    }

    /// The verification as policy input documents carry it.
    pub fn to_input(&self) -> Verification {
        Verification {
            verified: self.verified(),
            skipped: self.skipped,
            trust_policy: Some(self.policy.clone()),
            signatures: self
                .reports
                .iter()
                .map(|(d, r)| SignatureResult {
                    digest: d.to_string(),
                    verified: r.verified,
                    signer: r.signer.clone(),
                    failures: failures(r),
                })
                .collect(),
            error: None,
        }
    }

    /// One line saying why it failed, for a denial message.
    pub fn reason(&self) -> String {
        if self.verified() {
            return "verified".into();
        }
        if self.reports.is_empty() {
            return format!("no signature (trust policy {:?})", self.policy);
        }
        let why: Vec<String> = self.reports.iter().flat_map(|(_, r)| failures(r)).collect();
        format!(
            "no signature passes the trust policy {:?}: {}",
            self.policy,
            why.join("; ")
        )
    }
}

/// The failed (or unchecked) validations of a report, one line each, as
/// policy inputs and the registry's signature report show them.
pub fn failures(r: &Report) -> Vec<String> {
    r.steps
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Failed(d) => Some(format!("{}: {d}", s.validation.name())),
            Outcome::NotChecked(d) => Some(format!("{}: not checked: {d}", s.validation.name())),
            _ => None,
        })
        .collect()
}

/// Where the trust policy and trust store come from (`None`: notation's own
/// files), and how long results are remembered.
#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// trustpolicy.oci.json (or the legacy trustpolicy.json).
    pub trust_policy: Option<PathBuf>,
    /// The trust store directory (x509/{ca,signingAuthority,tsa}/NAME/).
    pub trust_store: Option<PathBuf>,
}

impl TrustConfig {
    /// What the trust policy says for `scope` (`registry/repository`).
    pub fn requirements(&self, scope: &str) -> Result<Resolved, VerifyError> {
        load_requirements(
            self.trust_policy.as_deref(),
            self.trust_store.as_deref(),
            scope,
        )
        .map_err(VerifyError::TrustPolicy)
    }

    /// A name for the trust configuration as it is now: SHA-256 over the
    /// trust policy file and every file of the trust store (paths and
    /// bytes, in name order) and `names`. Verdicts recorded under one
    /// generation are not used under another. Unreadable parts count as
    /// their error text: a change there is a change too.
    pub fn generation(&self, names: &[String]) -> String {
        let mut h = pavilion_oci::Algorithm::Sha256.hasher();
        let mut add = |label: &str, bytes: &[u8]| {
            h.update(&(label.len() as u64).to_le_bytes());
            h.update(label.as_bytes());
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        for n in names {
            add("name", n.as_bytes());
        }
        let policy = self
            .trust_policy
            .clone()
            .or_else(pavilion_notary::trust_policy::default_oci_policy_path);
        if let Some(p) = policy {
            match std::fs::read(&p) {
                Ok(b) => add("policy", &b),
                Err(e) => add("policy-error", e.to_string().as_bytes()),
            }
        }
        let store = self
            .trust_store
            .clone()
            .or_else(pavilion_notary::truststore::default_root);
        let mut files = Vec::new();
        if let Some(root) = store {
            let mut stack = vec![root.join("x509")];
            // Bounded: a trust store is a few directories of certificates.
            while let Some(dir) = stack.pop().filter(|_| files.len() < 10_000) {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let path = e.path();
                    match e.file_type() {
                        Ok(t) if t.is_dir() => stack.push(path),
                        Ok(_) => files.push(path),
                        Err(_) => {}
                    }
                }
            }
        }
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_default();
            add(&f.display().to_string(), &bytes);
        }
        h.finish().to_string()
    }
}

/// Judges each signature of the artifact `expected` under `req`.
pub fn verify_signatures(
    found: &[FoundSignature],
    expected: &Expected<'_>,
    req: &Requirements,
) -> Vec<(Digest, Report)> {
    let now = time::OffsetDateTime::now_utc();
    found
        .iter()
        .map(|f| {
            let report = match &f.refused {
                Some(why) => Report::refused(why.clone()),
                None => verify(
                    &f.parsed.envelope.media_type,
                    &f.envelope,
                    expected,
                    req,
                    now,
                ),
            };
            (f.manifest.digest.clone(), report)
        })
        .collect()
}

/// What the trust policy asks for one artifact.
enum Needed {
    /// Nothing: the statement's level is `skip` (the verification is done).
    Skip(ArtifactVerification),
    /// Signatures, under this statement.
    Verify(String, Box<Requirements>),
}

fn needed(trust: &TrustConfig, scope: &str, digest: &Digest) -> Result<Needed, VerifyError> {
    Ok(match trust.requirements(scope)? {
        Resolved::Skip { policy } => Needed::Skip(ArtifactVerification {
            reference: format!("{scope}@{digest}"),
            digest: digest.clone(),
            policy,
            reports: Vec::new(),
            skipped: true,
        }),
        Resolved::Verify {
            policy,
            requirements,
        } => Needed::Verify(policy, requirements),
    })
}

/// Verifies signatures already in hand for the artifact (`digest`,
/// `media_type`, `size`) under the statement of every scope it is known by
/// (one per registry name). Each distinct statement is applied once; the
/// artifact is verified only when every one passes, so no name can choose
/// a looser statement than another. The result returned is a failing one
/// if any, else one that verified signatures, else a skip.
pub fn verify_local(
    trust: &TrustConfig,
    scopes: &[String],
    expected: &Expected<'_>,
    found: &[FoundSignature],
) -> Result<ArtifactVerification, VerifyError> {
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    for scope in scopes {
        match needed(trust, scope, expected.digest)? {
            Needed::Skip(v) => {
                if seen.insert(v.policy.clone()) {
                    results.push(v);
                }
            }
            Needed::Verify(policy, req) => {
                if seen.insert(policy.clone()) {
                    // Traced when the registry's telemetry is on (under
                    // the policy evaluation that asked); free otherwise.
                    let span = tracing::info_span!(
                        target: "pavilion::otel",
                        "signature.verify",
                        pavilion.signatures = found.len(),
                        pavilion.trust_policy = policy.as_str(),
                    );
                    let reports = span.in_scope(|| verify_signatures(found, expected, &req));
                    results.push(ArtifactVerification {
                        reference: format!("{scope}@{}", expected.digest),
                        digest: expected.digest.clone(),
                        policy,
                        reports,
                        skipped: false,
                    });
                }
            }
        }
    }
    // false sorts first: failures, then verified signatures, then skips.
    results.sort_by_key(|v| (v.verified(), v.skipped));
    results
        .into_iter()
        .next()
        .ok_or_else(|| VerifyError::TrustPolicy("no registry name to choose a statement by".into()))
}

/// SHA-256 thumbprints (lowercase hex, notation's form) of the `ca` and
/// `signingAuthority` certificates the statements for `scopes` trust. A
/// trust policy that cannot be read gives none (logged): this only orders
/// work, and verification reports the error itself.
pub fn trusted_thumbprints(trust: &TrustConfig, scopes: &[String]) -> HashSet<String> {
    let mut out = HashSet::new();
    for scope in scopes {
        match trust.requirements(scope) {
            Ok(Resolved::Verify { requirements, .. }) => {
                let certs = requirements
                    .ca
                    .iter()
                    .chain(&requirements.signing_authority);
                out.extend(certs.map(|der| Digest::sha256(der).hex().to_string()));
            }
            Ok(Resolved::Skip { .. }) => {}
            Err(e) => tracing::warn!(%scope, error = %e, "cannot order signatures by trust store"),
        }
    }
    out
}

fn pinned(r: &ImageRef, d: &Digest) -> ImageRef {
    ImageRef {
        tag: None,
        digest: Some(d.clone()),
        ..r.clone()
    }
}

/// Every Notary signature of `subject` in `r`'s repository (current and
/// legacy forms: the referrers API reports both with the signature
/// artifact type).
pub async fn find_signatures(
    client: &Client,
    r: &ImageRef,
    subject: &Digest,
) -> Result<Vec<FoundSignature>, VerifyError> {
    let list = client
        .referrers(r, subject, Some(SIGNATURE_ARTIFACT_TYPE))
        .await
        .map_err(registry(format!("listing the signatures of {subject}")))?;
    let mut out = Vec::new();
    for d in list {
        let m = client
            .get_manifest(&pinned(r, &d.digest))
            .await
            .map_err(registry(format!(
                "fetching signature manifest {}",
                d.digest
            )))?;
        let Ok(parsed) = SignatureManifest::parse(&m.bytes, Some(&m.media_type)) else {
            continue; // another kind of referrer with the same artifact type
        };
        if parsed.subject.digest != *subject {
            continue;
        }
        if parsed.envelope.size > ENVELOPE_LIMIT {
            let why = format!(
                "the signature envelope is {} bytes, over the {ENVELOPE_LIMIT}-byte limit",
                parsed.envelope.size
            );
            out.push(FoundSignature {
                manifest: d,
                parsed,
                envelope: Vec::new(),
                refused: Some(why),
            });
            continue;
        }
        let envelope = client
            .blob_bytes(r, &parsed.envelope.digest, ENVELOPE_LIMIT)
            .await
            .map_err(registry(format!(
                "fetching signature envelope {}",
                parsed.envelope.digest
            )))?
            .to_vec();
        out.push(FoundSignature {
            manifest: d,
            parsed,
            envelope,
            refused: None,
        });
    }
    Ok(out)
}

/// Resolves `r` and verifies its signatures in its registry.
pub async fn verify_remote(
    client: &Client,
    r: &ImageRef,
    trust: &TrustConfig,
) -> Result<ArtifactVerification, VerifyError> {
    let m = client
        .get_manifest(r)
        .await
        .map_err(registry(format!("fetching {r}")))?;
    verify_remote_manifest(
        client,
        r,
        &m.digest,
        &m.media_type,
        m.bytes.len() as u64,
        trust,
    )
    .await
}

/// Verifies the signatures of the manifest `digest` (already resolved) in
/// `r`'s repository.
pub async fn verify_remote_manifest(
    client: &Client,
    r: &ImageRef,
    digest: &Digest,
    media_type: &str,
    size: u64,
    trust: &TrustConfig,
) -> Result<ArtifactVerification, VerifyError> {
    let scope = format!("{}/{}", r.registry, r.repository);
    let (policy, req) = match needed(trust, &scope, digest)? {
        Needed::Skip(v) => return Ok(v),
        Needed::Verify(policy, req) => (policy, req),
    };
    let found = find_signatures(client, r, digest).await?;
    let expected = Expected {
        digest,
        media_type,
        size,
    };
    Ok(ArtifactVerification {
        reference: format!("{scope}@{digest}"),
        digest: digest.clone(),
        policy,
        reports: verify_signatures(&found, &expected, &req),
        skipped: false,
    })
}
