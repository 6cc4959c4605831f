//! Kubernetes admission and Gatekeeper external-data wire formats.
//!
//! Pavilion sits in front of a cluster in two ways, and both are plain JSON
//! over HTTPS:
//!
//! - as a **validating admission webhook**: the API server POSTs an
//!   `AdmissionReview` (`admission.k8s.io/v1`) and expects one back, in the
//!   same version, with `response.uid` copied from `request.uid`
//!   ([`parse_review`], [`review_response`]);
//! - as a **Gatekeeper external data provider**: Gatekeeper POSTs a
//!   `ProviderRequest` (`externaldata.gatekeeper.sh/v1beta1`) holding keys
//!   (here: image references) and expects a `ProviderResponse` with one item
//!   per key ([`parse_provider_request`], [`provider_response`]). The value
//!   of each item is shaped like Ratify's verification result
//!   ([`ratify_style_result`]) so constraint templates written for Ratify
//!   keep working.
//!
//! Everything here is parsing and building: no I/O, no verification. The
//! functions never panic, whatever the bytes; malformed input is a
//! [`WireError`] whose message is one line and names the field at fault,
//! because it ends up in a log line, an HTTP 400 body or a denial that an
//! operator reads while debugging a webhook configuration. Reviews are
//! read strictly ([`objects`]): nothing unexpected is skipped.

use serde_json::{json, Map, Value};

pub mod objects;
pub use objects::{check_kind, pod_spec_images};

/// The only AdmissionReview version accepted. `admission.k8s.io/v1beta1`
/// was removed from the API server in Kubernetes 1.22, and `v1` is the only
/// version whose response rules (uid echoed, apiVersion echoed) Pavilion
/// implements.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// The external data API version Pavilion answers with. Gatekeeper sends
/// requests in this version since 3.11 (`v1alpha1` before; the request body
/// is the same, so both are accepted).
pub const EXTERNAL_DATA_V1BETA1: &str = "externaldata.gatekeeper.sh/v1beta1";

/// The older external data API version, still accepted on requests.
pub const EXTERNAL_DATA_V1ALPHA1: &str = "externaldata.gatekeeper.sh/v1alpha1";

/// The version written in [`ratify_style_result`] values: the flat
/// `verifierReports` shape Ratify returns when its own (config) policy
/// decides, with `verifierName`/`verifierType` beside the older `name`/`type`.
pub const RATIFY_RESULT_VERSION: &str = "0.2.0";

/// Why a review or provider request was refused: one line, names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// Where an image reference was found in the object.
///
/// An object may name the same image several times (a sidecar and an init
/// container from one image): each occurrence is kept, because the path is
/// what a policy message should point the user at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageUse {
    /// The reference as written, e.g. `registry.local:5000/models/llama:v1`.
    /// Not normalised: resolving it (default registry, `latest`) is the
    /// caller's business, and the policy should see what the user wrote.
    pub reference: String,
    /// The JSON path inside `request.object`, e.g.
    /// `spec.template.spec.containers[0].image` or
    /// `spec.volumes[1].image.reference`.
    pub path: String,
    /// `container`, `initContainer`, `ephemeralContainer` or `imageVolume`.
    pub source: &'static str,
}

/// The parts of an AdmissionReview request Pavilion needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// The review's `apiVersion`, echoed back in the response (the API
    /// server rejects a response in another version).
    pub api_version: String,
    /// `request.uid`, echoed back as `response.uid`.
    pub uid: String,
    /// `request.kind.kind`, e.g. `Pod`, `Deployment` (empty when the
    /// request is `invalid` before it was read).
    pub kind: String,
    /// `request.operation`: CREATE, UPDATE, DELETE or CONNECT (empty when
    /// absent).
    pub operation: String,
    /// `request.namespace`, when the resource is namespaced.
    pub namespace: Option<String>,
    /// `request.name`, else `object.metadata.name`, else
    /// `object.metadata.generateName` (a CREATE with a generated name has an
    /// empty `request.name`).
    pub name: Option<String>,
    /// `request.dryRun`: nothing will be persisted. Verifying is free of
    /// side effects, so this only matters for what Pavilion records.
    pub dry_run: bool,
    /// The whole `request` member, unchanged: it goes into the policy input
    /// so rules can look at anything Kubernetes sent (userInfo, labels...).
    pub request: Value,
    /// The images of the pod spec, in the order described at
    /// [`pod_spec_images`]; duplicates kept (different paths). Empty when
    /// `invalid` is set.
    pub images: Vec<ImageUse>,
    /// Why the request cannot be interpreted, one line naming the field
    /// (e.g. `request.object.spec.containers[0].image is a number, expected
    /// a string`). The webhook must deny such a review: what it cannot read,
    /// it cannot have checked.
    pub invalid: Option<String>,
}

/// Shortens and quotes a value taken from the input for an error message,
/// so the message stays one line (Debug escapes newlines) and short.
fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    } else {
        format!("{s:?}")
    }
}

/// The JSON type of a value, for "is a number, expected a string" messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a body into a JSON object, with `what` naming the document.
fn parse_object(body: &[u8], what: &str) -> Result<Map<String, Value>, WireError> {
    // serde_json limits nesting depth (128), so deeply nested garbage is an
    // error, not a stack overflow. Its messages are one line.
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| WireError(format!("{what}: body is not JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(WireError(format!(
            "{what}: body is {}, expected a JSON object",
            type_name(&other)
        ))),
    }
}

/// An optional string member: absent or null is `None`; any other
/// non-string is an error naming `path` (after `what: `, if `what` is not
/// empty).
fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    what: &str,
    path: &str,
) -> Result<Option<String>, WireError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) if what.is_empty() => Err(WireError(format!(
            "{path} is {}, expected a string",
            type_name(other)
        ))),
        Some(other) => Err(WireError(format!(
            "{what}: {path} is {}, expected a string",
            type_name(other)
        ))),
    }
}

/// Checks `kind` and `apiVersion` of a document against what is expected.
fn check_type(
    doc: &Map<String, Value>,
    what: &str,
    kind: &str,
    versions: &[&str],
) -> Result<String, WireError> {
    match opt_string(doc, "kind", what, "kind")? {
        None => return Err(WireError(format!("{what}: kind missing"))),
        Some(k) if k != kind => {
            return Err(WireError(format!(
                "{what}: kind is {}, expected {kind:?}",
                quoted(&k)
            )))
        }
        Some(_) => {}
    }
    let Some(version) = opt_string(doc, "apiVersion", what, "apiVersion")? else {
        return Err(WireError(format!("{what}: apiVersion missing")));
    };
    if versions.contains(&version.as_str()) {
        Ok(version)
    } else {
        Err(WireError(format!(
            "{what}: apiVersion {} is not supported, expected {}",
            quoted(&version),
            versions.join(" or ")
        )))
    }
}

/// The `request` member of a review or provider request, an object.
fn request_object<'a>(
    doc: &'a Map<String, Value>,
    what: &str,
) -> Result<&'a Map<String, Value>, WireError> {
    match doc.get("request") {
        None | Some(Value::Null) => Err(WireError(format!("{what}: request missing"))),
        Some(Value::Object(r)) => Ok(r),
        Some(other) => Err(WireError(format!(
            "{what}: request is {}, expected an object",
            type_name(other)
        ))),
    }
}

/// Parses an AdmissionReview request body.
///
/// Two layers, because they fail differently:
///
/// - the envelope: a JSON object with `kind: AdmissionReview`, `apiVersion:
///   admission.k8s.io/v1` (a `v1beta1` review is refused with a message
///   saying the webhook configuration must list `v1` in
///   `admissionReviewVersions`), and a `request` object whose `uid` is a
///   non-empty string. Without these there is nothing to answer, so they
///   are an `Err` (an HTTP 400).
/// - the request itself: `kind` (an object whose `kind` is one of the kinds
///   Pavilion reviews, with that kind's `group`), `operation`, `namespace`,
///   `name`, `dryRun` with their JSON types, and the object read strictly
///   ([`pod_spec_images`]). What cannot be interpreted here is put in
///   [`Review::invalid`], naming the field, and the webhook denies it: a
///   400 would leave the outcome to the webhook's `failurePolicy`, which
///   may be `Ignore`.
pub fn parse_review(body: &[u8]) -> Result<Review, WireError> {
    const WHAT: &str = "AdmissionReview";
    let doc = parse_object(body, WHAT)?;
    // Say plainly what to change when the cluster sends the old version.
    if let Some(Value::String(v)) = doc.get("apiVersion") {
        if v == "admission.k8s.io/v1beta1" {
            return Err(WireError(format!(
                "{WHAT}: admission.k8s.io/v1beta1 is not supported (removed in Kubernetes 1.22); \
                 {ADMISSION_V1} is required: set admissionReviewVersions: [\"v1\"] in the webhook configuration"
            )));
        }
    }
    let api_version = check_type(&doc, WHAT, "AdmissionReview", &[ADMISSION_V1])?;
    let request = request_object(&doc, WHAT)?;
    let uid = match opt_string(request, "uid", WHAT, "request.uid")? {
        None => return Err(WireError(format!("{WHAT}: request.uid missing"))),
        Some(u) if u.is_empty() => return Err(WireError(format!("{WHAT}: request.uid is empty"))),
        Some(u) => u,
    };
    let mut review = Review {
        api_version,
        uid,
        kind: String::new(),
        operation: String::new(),
        namespace: None,
        name: None,
        dry_run: false,
        request: Value::Object(request.clone()),
        images: Vec::new(),
        invalid: None,
    };
    if let Err(WireError(e)) = interpret(request, &mut review) {
        review.images.clear();
        review.invalid = Some(e);
    }
    Ok(review)
}

/// Fills `review` from the request (see [`parse_review`]); errors name the
/// field from `request.`.
fn interpret(request: &Map<String, Value>, review: &mut Review) -> Result<(), WireError> {
    // Messages here become denials, not 400s: no "AdmissionReview:" prefix.
    const WHAT: &str = "";
    let field = |key: &str| opt_string(request, key, WHAT, &format!("request.{key}"));
    review.operation = field("operation")?.unwrap_or_default();
    review.namespace = field("namespace")?.filter(|s| !s.is_empty());
    review.dry_run = match request.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(WireError(format!(
                "request.dryRun is {}, expected a boolean",
                type_name(other)
            )))
        }
    };
    let object = request.get("object").unwrap_or(&Value::Null);
    let metadata_string = |key: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    review.name = field("name")?
        .filter(|s| !s.is_empty())
        .or_else(|| metadata_string("name"))
        .or_else(|| metadata_string("generateName"));
    let kind = match request.get("kind") {
        None | Some(Value::Null) => return Err(WireError("request.kind missing".into())),
        Some(Value::Object(k)) => k,
        Some(other) => {
            return Err(WireError(format!(
                "request.kind is {}, expected an object",
                type_name(other)
            )))
        }
    };
    let member = |key: &str| opt_string(kind, key, WHAT, &format!("request.kind.{key}"));
    review.kind = member("kind")?.ok_or_else(|| WireError("request.kind.kind missing".into()))?;
    let group = member("group")?.unwrap_or_default();
    member("version")?;
    check_kind(&group, &review.kind)?;
    // Only a DELETE (and CONNECT) comes without the object.
    if object.is_null() && !matches!(review.operation.as_str(), "DELETE" | "CONNECT") {
        return Err(WireError("request.object missing".into()));
    }
    review.images = pod_spec_images(&review.kind, object)?;
    Ok(())
}

/// Builds the AdmissionReview response to a review.
///
/// Shape (admission.k8s.io/v1 `AdmissionResponse`):
///
/// ```json
/// {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
///  "response": {"uid": "...", "allowed": false,
///               "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
///                          "message": "..."},
///               "warnings": ["..."]}}
/// ```
///
/// - `apiVersion` is the review's own (the API server insists on the
///   version it sent) and `uid` is `request.uid`.
/// - `status` (a `metav1.Status`) is written only when denied: Kubernetes
///   documents that it "is not consulted in any way" when `allowed` is
///   true, so a message on an allowed review is dropped; pass advisory text
///   as a warning instead. When denied, the code is 403 Forbidden (the API
///   server would otherwise turn a missing code into 400); the message is
///   omitted when `None`, and the API server then says the webhook denied
///   the request with the reason. It prefixes the message with
///   `admission webhook "<name>" denied the request: `.
/// - `warnings` is written only when non-empty. Kubernetes asks for
///   warnings under 120 characters and may truncate those over 256, and
///   clients print them with a `Warning:` prefix, so callers should not add
///   one.
pub fn review_response(
    review_api_version: &str,
    uid: &str,
    allowed: bool,
    message: Option<&str>,
    warnings: &[String],
) -> Value {
    let mut response = Map::new();
    response.insert("uid".into(), uid.into());
    response.insert("allowed".into(), allowed.into());
    if !allowed {
        let mut status = Map::new();
        status.insert("status".into(), "Failure".into());
        status.insert("code".into(), 403.into());
        status.insert("reason".into(), "Forbidden".into());
        if let Some(m) = message {
            status.insert("message".into(), m.into());
        }
        response.insert("status".into(), Value::Object(status));
    }
    if !warnings.is_empty() {
        response.insert("warnings".into(), json!(warnings));
    }
    json!({
        "apiVersion": review_api_version,
        "kind": "AdmissionReview",
        "response": Value::Object(response),
    })
}

/// Parses a Gatekeeper external data `ProviderRequest` and returns its keys
/// (image references, for Pavilion), in order, duplicates kept.
///
/// Required: a JSON object with `kind: ProviderRequest`, `apiVersion`
/// `externaldata.gatekeeper.sh/v1beta1` (or `v1alpha1`, same body) and a
/// `request` object. `request.keys` must be an array of strings; a missing
/// or null `keys` is an empty list, because Gatekeeper's Go type marks it
/// `omitempty` and so leaves it out when there is nothing to ask.
pub fn parse_provider_request(body: &[u8]) -> Result<Vec<String>, WireError> {
    const WHAT: &str = "ProviderRequest";
    let doc = parse_object(body, WHAT)?;
    check_type(
        &doc,
        WHAT,
        "ProviderRequest",
        &[EXTERNAL_DATA_V1BETA1, EXTERNAL_DATA_V1ALPHA1],
    )?;
    let request = request_object(&doc, WHAT)?;
    let keys = match request.get("keys") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(WireError(format!(
                "{WHAT}: request.keys is {}, expected an array of strings",
                type_name(other)
            )))
        }
    };
    keys.iter()
        .enumerate()
        .map(|(i, k)| match k {
            Value::String(s) => Ok(s.clone()),
            other => Err(WireError(format!(
                "{WHAT}: request.keys[{i}] is {}, expected a string",
                type_name(other)
            ))),
        })
        .collect()
}

/// One answer of a `ProviderResponse`: the key as asked, its value, and the
/// error when the key could not be answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderItem {
    /// The key as Gatekeeper sent it.
    pub key: String,
    /// The answer (for Pavilion, a [`ratify_style_result`]).
    pub value: Value,
    /// Why there is no answer. Gatekeeper's Rego `external_data` puts an
    /// item with an error in `errors` (and drops its value), one without in
    /// `responses`.
    pub error: Option<String>,
}

/// Builds a Gatekeeper external data `ProviderResponse`.
///
/// Shape (Gatekeeper's `externaldata` v1beta1 `ProviderResponse`):
///
/// ```json
/// {"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderResponse",
///  "response": {"idempotent": true,
///               "items": [{"key": "...", "value": {...}}, {"key": "...", "error": "..."}],
///               "systemError": "..."}}
/// ```
///
/// Gatekeeper's Go types mark every member of `response` and of an item
/// `omitempty`; what matters is that it treats an item with a non-empty
/// `error` as failed and anything else as answered, and reads
/// `systemError` only when non-empty. So: `error` is written only for
/// `Some` (an empty string becomes `"unspecified error"`, so that a caller's
/// empty error can never read as a success), `value` is left out when null,
/// `systemError` only when `Some` and non-empty. `items` is always written
/// (an empty list reads the same as a missing one). `idempotent` is true:
/// asking again for the same keys gives the same answers (Gatekeeper
/// requires it of providers used for mutation, and ignores it otherwise).
/// Gatekeeper caches answers by key (3 minutes by default).
pub fn provider_response(items: &[ProviderItem], system_error: Option<&str>) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|it| {
            let mut m = Map::new();
            m.insert("key".into(), it.key.clone().into());
            if !it.value.is_null() {
                m.insert("value".into(), it.value.clone());
            }
            if let Some(e) = &it.error {
                let e = if e.is_empty() { "unspecified error" } else { e };
                m.insert("error".into(), e.into());
            }
            Value::Object(m)
        })
        .collect();
    let mut response = Map::new();
    response.insert("idempotent".into(), true.into());
    response.insert("items".into(), Value::Array(items));
    if let Some(e) = system_error.filter(|e| !e.is_empty()) {
        response.insert("systemError".into(), e.into());
    }
    json!({
        "apiVersion": EXTERNAL_DATA_V1BETA1,
        "kind": "ProviderResponse",
        "response": Value::Object(response),
    })
}

/// One verifier's verdict on a subject, as reported in a
/// [`ratify_style_result`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierReport {
    /// The verifier's name (Ratify: the name of the configured verifier,
    /// e.g. `verifier-notation`).
    pub name: String,
    /// The verifier's type (Ratify: `notation`, `cosign`, ...).
    pub verifier_type: String,
    /// Whether this verifier accepted the subject.
    pub is_success: bool,
    /// What happened, one line.
    pub message: String,
    /// The digest of the artifact this report is about (for a signature
    /// verifier: the signature manifest); Ratify's `referenceDigest`.
    pub artifact_digest: Option<String>,
    /// Anything else the verifier wants a policy to see (signer subject,
    /// trust policy...), an object or null.
    pub extensions: Value,
}

/// The value returned for one key, shaped like Ratify's verification
/// result so that constraint templates written against Ratify (which test
/// `isSuccess`, walk `verifierReports`, filter on `name`) work unchanged:
///
/// ```json
/// {"version": "0.2.0",
///  "isSuccess": true,
///  "verifierReports": [
///    {"subject": "registry.local:5000/models/llama@sha256:...",
///     "isSuccess": true,
///     "name": "notation", "verifierName": "notation",
///     "type": "notation", "verifierType": "notation",
///     "referenceDigest": "sha256:...",
///     "message": "signature verification success",
///     "extensions": {"...": "..."}}]}
/// ```
///
/// As Ratify does, `name`/`type` (older) and `verifierName`/`verifierType`
/// (newer) both carry the verifier's name and type, `subject` is the
/// reference that was verified (preferably by digest), `referenceDigest`
/// and `extensions` are left out when empty, and `verifierReports` is
/// always written (Ratify omits it when empty; an empty array is easier to
/// iterate in Rego). `isSuccess` is the caller's overall verdict: Pavilion
/// decides with its trust policy, so a subject with no report at all may
/// still be a failure (or, under a `skip` trust policy, a success).
pub fn ratify_style_result(subject: &str, is_success: bool, reports: &[VerifierReport]) -> Value {
    let reports: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("subject".into(), subject.into());
            m.insert("isSuccess".into(), r.is_success.into());
            m.insert("name".into(), r.name.clone().into());
            m.insert("verifierName".into(), r.name.clone().into());
            m.insert("type".into(), r.verifier_type.clone().into());
            m.insert("verifierType".into(), r.verifier_type.clone().into());
            if let Some(d) = r.artifact_digest.as_deref().filter(|d| !d.is_empty()) {
                m.insert("referenceDigest".into(), d.into());
            }
            m.insert("message".into(), r.message.clone().into());
            let empty_object = r.extensions.as_object().is_some_and(Map::is_empty);
            if !r.extensions.is_null() && !empty_object {
                m.insert("extensions".into(), r.extensions.clone());
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "version": RATIFY_RESULT_VERSION,
        "isSuccess": is_success,
        "verifierReports": reports,
    })
}

#[cfg(test)]
mod tests;
