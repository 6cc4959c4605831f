//! The pull rules' view of a remote artifact: its `pull` (or `push`)
//! input document, built the way the registry builds it, and the decisions
//! of `pull --policy` on it (again once tar layers are listed).

use crate::error::Result;
use crate::place::ListedTar;
use crate::progress::{Event, Progress};
use crate::{UsageError, VerificationError};
use pavilion_oci::{ImageRef, ManifestInfo};
use pavilion_policy::input::{self, Verification};
use pavilion_policy::{Point, Policy};
use pavilion_verify::verify_remote_manifest;
use pavilion_verify::{ArtifactVerification, TrustConfig};
use std::path::Path;

/// A remote artifact as fetched: what the policy input is built from.
#[derive(Clone, Copy)]
pub struct Remote<'a> {
    /// The client it was fetched with.
    pub client: &'a pavilion_client::Client,
    /// Where it is (pinned to a digest once verified).
    pub reference: &'a ImageRef,
    /// The reference as the user wrote it (the rules' `reference`).
    pub asked: &'a str,
    /// Its manifest, as fetched.
    pub manifest: &'a pavilion_client::Manifest,
    /// The manifest, parsed.
    pub info: &'a ManifestInfo,
}

/// The `pull` (or `push`, for `policy eval --ref`) input document of a
/// remote artifact: the manifest as parsed when it was validated, its
/// config when JSON, and the verification (the one `--verify` made, else
/// made now; a failure to verify is recorded in it, for the rules to
/// judge). A JSON config that cannot be fetched or parsed is an error: the
/// rules must never see `null` where the artifact has a config.
pub async fn artifact_document(
    point: Point,
    remote: &Remote<'_>,
    verified: Option<&ArtifactVerification>,
    trust: &TrustConfig,
) -> Result<serde_json::Value, String> {
    let Remote {
        client,
        reference: r,
        asked,
        manifest,
        info,
    } = *remote;
    let config = match info.blobs.first().map(pavilion_oci::json::wanted_config) {
        Some(Ok(Some(c))) => {
            let bytes = client
                .blob_bytes(r, &c.digest, pavilion_oci::json::POLICY_CONFIG_LIMIT)
                .await
                .map_err(|e| format!("config {} cannot be fetched: {e}", c.digest))?;
            Some(pavilion_oci::json::policy_config(c, &bytes)?)
        }
        Some(Err(e)) => return Err(e),
        Some(Ok(None)) | None => None,
    };
    let signature = match verified {
        Some(v) => v.to_input(),
        None => match verify_remote_manifest(
            client,
            r,
            &manifest.digest,
            &manifest.media_type,
            manifest.bytes.len() as u64,
            trust,
        )
        .await
        {
            Ok(v) => v.to_input(),
            Err(e) => Verification {
                error: Some(format!("{:#}", anyhow::Error::from(e))),
                ..Default::default()
            },
        },
    };
    let digest = manifest.digest.to_string();
    let artifact = input::Artifact {
        repository: r.repository.as_str(),
        digest: &digest,
        media_type: &manifest.media_type,
        manifest: info.document.clone(),
        config,
    };
    Ok(match point {
        Point::Push => {
            let tags: Vec<String> = r.tag.iter().map(|t| t.to_string()).collect();
            input::push(&artifact, &tags, None, &signature)
        }
        _ => input::pull(asked, &artifact, Some(&signature), None),
    })
}

/// Decides the pull rules on `doc`: tells the warnings not yet told
/// (`warned`), and refuses (a [`VerificationError`]) when a rule denies.
pub(crate) fn judge_pull(
    policy: &mut Policy,
    dir: &Path,
    asked: &str,
    doc: &serde_json::Value,
    warned: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<()> {
    let decision = policy
        .decide(Point::Pull, doc)
        .map_err(|e| UsageError(e.to_string()))?;
    for w in &decision.warn {
        if !warned.contains(w) {
            progress.event(&Event::PolicyWarning(w.clone()));
            warned.push(w.clone());
        }
    }
    if !decision.allowed() {
        return Err(VerificationError(format!(
            "{asked}: denied by policy {}: {}; nothing was written",
            dir.display(),
            decision.deny.join("; ")
        ))
        .into());
    }
    Ok(())
}

/// The `pull` document `doc` with the regular files of every listed tar
/// layer added to `files` (the second decision of `pull --policy`).
pub(crate) fn with_tar_files(doc: &serde_json::Value, listed: &[ListedTar]) -> serde_json::Value {
    let mut doc = doc.clone();
    for t in listed {
        let files: Vec<(String, u64)> = t
            .entries
            .iter()
            .filter(|e| !e.dir)
            .map(|e| (e.path.clone(), e.size))
            .collect();
        input::add_tar_files(
            &mut doc,
            &t.rel,
            &t.layer.media_type,
            &t.layer.digest.to_string(),
            &files,
        );
    }
    doc
}
