//! The interface between the registry and a policy gate: what a gate is
//! told about a manifest ([`GateFacts`]), what it answers
//! ([`GateDecision`], [`GateError`]) and the [`Gate`] trait itself, which
//! `pavilion serve --policy` implements (in `pavilion-enforce`).
//!
//! A leaf: it imports nothing else of the registry, so the shared state can
//! hold a gate without depending on how facts are gathered
//! ([`crate::facts`]) or how decisions are enforced ([`crate::gate`]).

use bytes::Bytes;
use pavilion_oci::Digest;

/// Notary signature manifests carry this artifact type.
pub const NOTARY_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// Largest signature envelope read (the one bound of every door).
pub use pavilion_oci::SIGNATURE_ENVELOPE_LIMIT as ENVELOPE_LIMIT;
/// Most signature manifests listed for one artifact. Past it the rest are
/// counted as unchecked, and a decision that finds no valid signature says so.
pub const SIGNATURES_LISTED: usize = 10_000;
/// Most signatures read and verified for one decision, in the gate's order
/// (those whose certificate thumbprints the trust store holds first).
pub const SIGNATURES_CHECKED: usize = 100;
/// A Notary signature stored in the repository for the artifact.
#[derive(Debug, Clone)]
pub struct StoredSignature {
    /// The signature manifest's digest.
    pub digest: Digest,
    /// Its bytes.
    pub manifest: Bytes,
    /// Its media type.
    pub media_type: String,
    /// The envelope (its first layer), when present and small enough.
    pub envelope: Option<Bytes>,
}

/// What a gate is asked about: a manifest arriving (push) or requested
/// (pull).
#[derive(Debug, Clone)]
pub struct GateFacts {
    /// The repository.
    pub repository: String,
    /// The tags a push sets (empty for a push by digest, and for pulls).
    pub tags: Vec<String>,
    /// The manifest digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub manifest: Bytes,
    /// The manifest as parsed (strictly, once) when it was validated.
    pub document: serde_json::Value,
    /// The config blob, parsed, when its media type is JSON.
    pub config: Option<serde_json::Value>,
    /// The authenticated user, when the request carried one.
    pub identity: Option<String>,
    /// Notary signatures stored for this manifest, at most
    /// [`SIGNATURES_CHECKED`], in the gate's order.
    pub signatures: Vec<StoredSignature>,
    /// Signatures stored but not read (over the bounds above).
    pub signatures_unchecked: Unchecked,
}

/// Stored signatures a decision did not read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unchecked {
    /// How many of those listed were not read.
    pub count: usize,
    /// Whether more were stored than [`SIGNATURES_LISTED`] (the count is
    /// then a lower bound).
    pub more: bool,
}

impl std::fmt::Display for Unchecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.more {
            write!(f, "at least {}", self.count + 1)
        } else {
            write!(f, "{}", self.count)
        }
    }
}

/// A gate's answer.
#[derive(Debug, Clone, Default)]
pub struct GateDecision {
    /// Why the request is refused (empty: allowed).
    pub deny: Vec<String>,
    /// Warnings returned to the client.
    pub warn: Vec<String>,
    /// Facts to keep in the decision log (verification results...).
    pub detail: serde_json::Value,
}

/// Decides manifest pushes and pulls. Called on a blocking thread (Rego,
/// signature checks and trust store reads are CPU and disk work); no
/// network.
pub trait Gate: Send + Sync {
    /// The decision for a push; an `Err` is a policy failure (refused,
    /// reported as such, never stored).
    fn decide_push(&self, facts: &GateFacts) -> Result<GateDecision, GateError>;

    /// Whether pulls are decided at all (a policy with pull rules); when
    /// not, manifest GETs cost nothing extra.
    fn decides_pulls(&self) -> bool {
        false
    }

    /// The decision for a pull of `reference` (`repo:tag` or `repo@digest`).
    fn decide_pull(&self, _facts: &GateFacts, _reference: &str) -> Result<GateDecision, GateError> {
        Ok(GateDecision::default())
    }

    /// Whether the gate looks at `GateFacts::signatures`; when it does not,
    /// the registry does not read them.
    fn uses_signatures(&self) -> bool {
        true
    }

    /// A name for the trust configuration in force, under which signature
    /// verdicts are recorded and looked up; `None` when the gate verifies
    /// nothing (no verdicts are kept then).
    fn trust_generation(&self) -> Option<String> {
        None
    }

    /// Whether `signature`, a Notary signature manifest just stored in
    /// `repository`, passes the trust policy for the artifact its `subject`
    /// names; `None` when that cannot be told (not a signature manifest,
    /// a statement that skips verification).
    fn judge_signature(
        &self,
        _repository: &str,
        _signature: &StoredSignature,
        _subject: &pavilion_oci::Descriptor,
    ) -> Option<bool> {
        None
    }

    /// Whether each signature stored in `repository` names, in its
    /// annotations (JSON text, `None` when absent or too long to be a
    /// signature's), a certificate the gate trusts: those are read first.
    /// Only an order: verification reads the envelope's own chain.
    fn trusted_signatures(&self, _repository: &str, annotations: &[Option<&str>]) -> Vec<bool> {
        vec![false; annotations.len()]
    }
}

/// Why a gate could not decide; the registry refuses the request and says
/// this (fail closed), never lets it through.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A fact the policy needs could not be gathered (a config that cannot
    /// be read or is not JSON, a stored manifest that no longer parses).
    #[error("cannot build the policy input: {0}")]
    Facts(String),
    /// The policy failed while it was evaluated.
    #[error("policy evaluation failed: {0}")]
    Evaluation(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The evaluation stopped before it answered (its thread panicked or
    /// was cancelled).
    #[error("policy evaluation failed: {0}")]
    Aborted(String),
}
