//! Gathering what the registry tells a [`Gate`] about an artifact being
//! pushed or pulled (the interface itself is [`crate::policy_hook`]).
//!
//! The registry does not evaluate policies itself (it knows neither Rego nor
//! Notary): it gathers the facts a policy needs — the manifest parsed once,
//! its config, the tags being set and the Notary signatures stored for it —
//! and asks the gate, which `pavilion serve --policy` provides. Nothing here
//! comes from the request's headers: the trust policy scope is the gate's
//! own configuration (the names this registry is known by).
//!
//! Fail closed: a fact that cannot be gathered (a config that cannot be read
//! or is not JSON) is an error the caller turns into a denial, never a
//! `null` a rule would read as "nothing to refuse".

use crate::error::ApiResult;
use crate::state::AppState;
use bytes::Bytes;
use pavilion_oci::{Digest, ManifestInfo, RepoName};
use pavilion_store::{BriefReferrers, ManifestRecord};
use std::sync::Arc;

use crate::policy_hook::{
    Gate, GateError, GateFacts, StoredSignature, Unchecked, ENVELOPE_LIMIT, NOTARY_SIGNATURE,
    SIGNATURES_CHECKED, SIGNATURES_LISTED,
};

/// Signature manifests listed per database query.
const LISTING_PAGE: i64 = 1000;
/// Longest annotations text read per listed signature (notation writes a
/// few hundred bytes; longer is no hint and is not read).
const ANNOTATIONS_READ: i64 = 4096;

/// The config blob, parsed, when the manifest has one with a JSON media
/// type; an error when such a config cannot be read or parsed (a policy
/// about the config must not see `null` instead).
async fn config(
    state: &AppState,
    info: &ManifestInfo,
) -> Result<Option<serde_json::Value>, String> {
    // An image manifest's first blob is its config.
    let Some(c) = info.blobs.first() else {
        return Ok(None);
    };
    let Some(c) = pavilion_oci::json::wanted_config(c)? else {
        return Ok(None);
    };
    let bytes = state
        .blobs
        .read_all(&c.digest)
        .await
        .map_err(|e| format!("config {} cannot be read: {e}", c.digest))?;
    pavilion_oci::json::policy_config(c, &bytes).map(Some)
}

/// The parsed config of stored manifest `digest` (media type
/// `media_type`), for a continuous query's `Model` node: `None` when the
/// manifest or its config is gone, the config is not JSON or is too large
/// (the limit policy inputs have), or anything cannot be read.
pub async fn stored_config(
    state: &AppState,
    digest: &Digest,
    media_type: &str,
) -> Option<serde_json::Value> {
    let manifest = read_if_present(state, digest).await.ok()??;
    let info = ManifestInfo::parse(&manifest, Some(media_type)).ok()?;
    config(state, &info).await.ok()?
}

/// A blob's bytes; `None` when it is gone (deleted since it was listed).
/// Any other failure of the store is the store's (503), not a reason to
/// judge the artifact on fewer signatures than it has.
async fn read_if_present(state: &AppState, d: &Digest) -> ApiResult<Option<Bytes>> {
    match state.blobs.read_all(d).await {
        Ok(b) => Ok(Some(b)),
        Err(pavilion_store::StoreError::BlobNotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads one signature: its manifest, and its envelope when small enough
/// (a missing or oversized envelope is reported by verification as such).
pub(crate) async fn read_signature(
    state: &AppState,
    r: ManifestRecord,
) -> ApiResult<Option<StoredSignature>> {
    let Some(manifest) = read_if_present(state, &r.digest).await? else {
        return Ok(None);
    };
    let envelope = match ManifestInfo::parse(&manifest, Some(&r.media_type)) {
        // blobs = config then layers: the envelope is the first layer.
        Ok(info) => match info.blobs.get(1) {
            Some(l) if l.size <= ENVELOPE_LIMIT => read_if_present(state, &l.digest).await?,
            _ => None,
        },
        Err(_) => None,
    };
    Ok(Some(StoredSignature {
        digest: r.digest,
        manifest,
        media_type: r.media_type,
        envelope,
    }))
}

/// A signature manifest listed for a decision, before it is read.
struct Candidate {
    record: ManifestRecord,
    /// The verdict recorded when it was pushed, under the current trust
    /// configuration.
    verdict: Option<bool>,
    /// Whether its thumbprint annotation names a trusted certificate.
    trusted: bool,
}

impl Candidate {
    /// Read first: signatures that passed when pushed, then those not yet
    /// judged (trusted thumbprints first), last those that failed.
    fn rank(&self) -> u8 {
        match (self.verdict, self.trusted) {
            (Some(true), _) => 0,
            (None, true) => 1,
            (None, false) => 2,
            (Some(false), _) => 3,
        }
    }
}

/// Every Notary signature stored in `repo` for `digest` (up to
/// [`SIGNATURES_LISTED`]), with its recorded verdict and whether the gate
/// sees a trusted thumbprint, a page at a time: memory per decision stays
/// at a few hundred bytes per signature whatever their annotations hold.
async fn candidates(
    state: &AppState,
    gate: &Arc<dyn Gate>,
    repo: &RepoName,
    digest: &Digest,
) -> ApiResult<(Vec<Candidate>, bool)> {
    let g = gate.clone();
    let generation = tokio::task::spawn_blocking(move || g.trust_generation())
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out: Vec<Candidate> = Vec::new();
    loop {
        let last = out.last().map(|c| c.record.digest.to_string());
        let mut page = state
            .meta
            .referrers_brief(&BriefReferrers {
                repo: repo.as_str(),
                subject: digest,
                artifact_type: NOTARY_SIGNATURE,
                last: last.as_deref(),
                n: LISTING_PAGE,
                max_annotations: ANNOTATIONS_READ,
                generation: &generation,
            })
            .await?;
        let full = page.len() as i64 == LISTING_PAGE;
        // The gate may read the trust store to judge them: a blocking thread.
        let annotations: Vec<Option<String>> =
            page.iter_mut().map(|(r, _)| r.annotations.take()).collect();
        let (g, name) = (gate.clone(), repo.to_string());
        let trusted = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<Option<&str>> = annotations.iter().map(Option::as_deref).collect();
            g.trusted_signatures(&name, &borrowed)
        })
        .await
        .unwrap_or_default();
        out.extend(
            page.into_iter()
                .enumerate()
                .map(|(i, (record, verdict))| Candidate {
                    record,
                    verdict,
                    trusted: trusted.get(i).copied().unwrap_or(false),
                }),
        );
        if out.len() > SIGNATURES_LISTED {
            out.truncate(SIGNATURES_LISTED);
            return Ok((out, true));
        }
        if !full {
            return Ok((out, false));
        }
    }
}

/// The stored signatures worth checking (in [`Candidate::rank`] order,
/// digest order within a rank), and how many were left unread.
async fn signatures(
    state: &AppState,
    gate: &Arc<dyn Gate>,
    repo: &RepoName,
    digest: &Digest,
) -> ApiResult<(Vec<StoredSignature>, Unchecked)> {
    let (mut listed, cut) = candidates(state, gate, repo, digest).await?;
    listed.sort_by_key(Candidate::rank);
    let unread = listed.len().saturating_sub(SIGNATURES_CHECKED);
    let mut out = Vec::new();
    for c in listed.into_iter().take(SIGNATURES_CHECKED) {
        if let Some(s) = read_signature(state, c.record).await? {
            out.push(s);
        }
    }
    Ok((
        out,
        Unchecked {
            count: unread,
            more: cut,
        },
    ))
}

/// After a Notary signature manifest is stored: verifies it once, under
/// the trust configuration in force, and records the verdict, so later
/// decisions read signatures that pass before any junk. Costs the pusher
/// one verification; a failure here only loses the hint (logged).
pub async fn record_verdict(
    state: &AppState,
    gate: &Arc<dyn Gate>,
    repo: &RepoName,
    digest: &Digest,
    info: &ManifestInfo,
    body: &Bytes,
) {
    if info.subject.is_none() || info.artifact_type.as_deref() != Some(NOTARY_SIGNATURE) {
        return;
    }
    judge_and_record(
        state,
        gate,
        repo.as_str(),
        digest,
        &info.media_type,
        body.len() as u64,
    )
    .await;
}

/// Whether Notary signature `digest` of `repo` passes the trust policy in
/// force: the verdict recorded under the current trust configuration, else
/// verified now (and recorded). `None` when the gate verifies nothing or
/// the signature cannot be read or judged.
pub async fn signature_verdict(
    state: &AppState,
    gate: &Arc<dyn Gate>,
    repo: &str,
    digest: &Digest,
    media_type: &str,
    size: u64,
) -> Option<bool> {
    if !gate.uses_signatures() {
        return None;
    }
    let g = gate.clone();
    let generation = tokio::task::spawn_blocking(move || g.trust_generation())
        .await
        .ok()
        .flatten()?;
    match state
        .meta
        .signature_verdict(repo, &digest.to_string(), &generation)
        .await
    {
        Ok(Some(v)) => Some(v),
        Ok(None) => judge_and_record(state, gate, repo, digest, media_type, size).await,
        Err(e) => {
            tracing::warn!(%repo, %digest, error = %e, "signature verdict not read");
            None
        }
    }
}

/// Reads and verifies one stored Notary signature and records the verdict.
async fn judge_and_record(
    state: &AppState,
    gate: &Arc<dyn Gate>,
    repo: &str,
    digest: &Digest,
    media_type: &str,
    size: u64,
) -> Option<bool> {
    if !gate.uses_signatures() {
        return None;
    }
    let record = ManifestRecord {
        digest: digest.clone(),
        media_type: media_type.to_string(),
        size,
        artifact_type: Some(NOTARY_SIGNATURE.to_string()),
        annotations: None,
    };
    let signature = match read_signature(state, record).await {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(%repo, %digest, error = ?e.detail, "signature verdict not recorded");
            return None;
        }
    };
    let subject = ManifestInfo::parse(&signature.manifest, Some(media_type))
        .ok()?
        .subject?;
    let (g, name) = (gate.clone(), repo.to_string());
    let judged = tokio::task::spawn_blocking(move || {
        let generation = g.trust_generation()?;
        let valid = g.judge_signature(&name, &signature, &subject)?;
        Some((generation, valid))
    })
    .await;
    let Ok(Some((generation, valid))) = judged else {
        return None;
    };
    if let Err(e) = state
        .meta
        .record_signature_verdict(repo, digest, &generation, valid)
        .await
    {
        tracing::warn!(%repo, %digest, error = %e, "signature verdict not recorded");
    }
    Some(valid)
}

/// The manifest a decision is about, as the handler holds it.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    /// Its repository.
    pub repo: &'a RepoName,
    /// The tags a push sets (none for a pull or a push by digest).
    pub tags: &'a [String],
    /// Its digest.
    pub digest: &'a Digest,
    /// The manifest, parsed and validated.
    pub info: &'a ManifestInfo,
    /// Its bytes.
    pub body: &'a Bytes,
    /// Who asked (the authenticated subject), when the server knows.
    pub identity: Option<&'a str>,
}

/// Everything the gate is told about a manifest; `Ok(Err(..))` when the
/// facts cannot be gathered and the request must be refused (an `Err` is
/// the store's failure, answered as such).
pub async fn gather(
    state: &AppState,
    gate: &Arc<dyn Gate>,
    subject: &Subject<'_>,
) -> ApiResult<Result<GateFacts, GateError>> {
    let Subject {
        repo,
        tags,
        digest,
        info,
        body,
        identity,
    } = *subject;
    let config = match config(state, info).await {
        Ok(c) => c,
        Err(e) => return Ok(Err(GateError::Facts(e))),
    };
    let (signatures, signatures_unchecked) = if gate.uses_signatures() {
        signatures(state, gate, repo, digest).await?
    } else {
        (Vec::new(), Unchecked::default())
    };
    Ok(Ok(GateFacts {
        repository: repo.to_string(),
        tags: tags.to_vec(),
        digest: digest.clone(),
        media_type: info.media_type.clone(),
        manifest: body.clone(),
        document: info.document.clone(),
        config,
        identity: identity.map(str::to_string),
        signatures,
        signatures_unchecked,
    }))
}
