//! The interface through which the registry shows the Notary signatures
//! stored for a manifest, each decoded and judged under the server's own
//! trust policy (`GET /pavilion/v1/signatures/...`). The registry knows no
//! Notary: `pavilion serve` supplies the [`SignatureInspector`] (in
//! `pavilion-enforce`), which verifies with the same code as the push and
//! pull gates. A leaf, like `policy_hook`.

use crate::policy_hook::StoredSignature;
use pavilion_oci::Descriptor;
use serde::Serialize;

/// What the server's trust policy says about a manifest's stored
/// signatures, and what each envelope holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureReport {
    /// The trust policy statement that applied (the failing one when the
    /// registry's names select several), `None` when none did.
    pub trust_policy: Option<String>,
    /// Whether the server has a trust policy at all.
    pub configured: bool,
    /// Whether the manifest passes (one signature passing, or a statement
    /// that skips verification); `None` without a trust policy.
    pub verified: Option<bool>,
    /// Why the trust policy could not be applied (no statement for this
    /// repository, an unreadable trust store...).
    pub error: Option<String>,
    /// Each signature, in the order given.
    pub signatures: Vec<SignatureDetail>,
}

/// One signature: what its envelope says and how it fared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureDetail {
    /// The signature manifest's digest.
    pub digest: String,
    /// The envelope's media type (`application/jose+json`,
    /// `application/cose`), when the signature manifest names one.
    pub media_type: Option<String>,
    /// The signing certificate's subject.
    pub signer: Option<String>,
    /// Certificate subjects, leaf first.
    pub chain: Vec<String>,
    /// The signing time the envelope claims (RFC 3339).
    pub signing_time: Option<String>,
    /// When the signature stops being valid, if it says (RFC 3339).
    pub expiry: Option<String>,
    /// `notary.x509` or `notary.x509.signingAuthority`.
    pub signing_scheme: Option<String>,
    /// Whether it passes the trust policy; `None` when nothing judged it
    /// (no trust policy, or a statement that skips verification).
    pub verified: Option<bool>,
    /// Each failed or unchecked validation, one line each.
    pub failures: Vec<String>,
    /// Every validation performed, in order.
    pub steps: Vec<StepDetail>,
}

/// One validation of a signature's verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepDetail {
    /// `integrity`, `authenticity`, `expiry`, `authenticTimestamp`,
    /// `revocation`.
    pub validation: String,
    /// `enforce`, `log` or `skip`: what the statement does with it.
    pub action: String,
    /// `passed`, `failed`, `notChecked` or `skipped`.
    pub outcome: String,
    /// What was found.
    pub detail: Option<String>,
}

/// Decodes and judges stored signatures. Called on a blocking thread
/// (certificate chains, the trust store's files); no network.
pub trait SignatureInspector: Send + Sync {
    /// The report on `signatures`, Notary signature manifests stored in
    /// `repository` for the manifest `subject`.
    fn inspect(
        &self,
        repository: &str,
        subject: &Descriptor,
        signatures: &[StoredSignature],
    ) -> SignatureReport;
}
