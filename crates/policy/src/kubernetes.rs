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
mod tests {
    use super::*;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }))
        .unwrap()
    }

    fn err(r: Result<Review, WireError>) -> String {
        let e = r.expect_err("expected an error").0;
        assert!(!e.contains('\n'), "not one line: {e}");
        e
    }

    fn refs(images: &[ImageUse]) -> Vec<(&str, &str, &str)> {
        images
            .iter()
            .map(|i| (i.reference.as_str(), i.path.as_str(), i.source))
            .collect()
    }

    /// A Pod CREATE as the API server sends it (trimmed of defaults).
    fn pod_request() -> Value {
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "llama-server",
            "namespace": "inference",
            "operation": "CREATE",
            "userInfo": {"username": "alice", "uid": "1", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "llama-server", "namespace": "inference"},
                "spec": {
                    "initContainers": [
                        {"name": "fetch", "image": "registry.local:5000/tools/fetch:1.2"}
                    ],
                    "containers": [
                        {"name": "server", "image": "registry.local:5000/runtime/vllm:0.6",
                         "volumeMounts": [{"name": "weights", "mountPath": "/models"}]},
                        {"name": "sidecar", "image": "registry.local:5000/tools/fetch:1.2"}
                    ],
                    "ephemeralContainers": [
                        {"name": "debugger", "image": "busybox:1.36", "targetContainerName": "server"}
                    ],
                    "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "weights", "image": {
                            "reference": "registry.local:5000/models/llama:v1",
                            "pullPolicy": "IfNotPresent"}}
                    ]
                }
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        })
    }

    #[test]
    fn pod_with_every_image_source() {
        let r = parse_review(&review(pod_request())).unwrap();
        assert_eq!(r.api_version, "admission.k8s.io/v1");
        assert_eq!(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(r.kind, "Pod");
        assert_eq!(r.operation, "CREATE");
        assert_eq!(r.namespace.as_deref(), Some("inference"));
        assert_eq!(r.name.as_deref(), Some("llama-server"));
        assert!(!r.dry_run);
        assert_eq!(r.request, pod_request());
        assert_eq!(
            refs(&r.images),
            vec![
                (
                    "registry.local:5000/runtime/vllm:0.6",
                    "spec.containers[0].image",
                    "container"
                ),
                (
                    "registry.local:5000/tools/fetch:1.2",
                    "spec.containers[1].image",
                    "container"
                ),
                (
                    "registry.local:5000/tools/fetch:1.2",
                    "spec.initContainers[0].image",
                    "initContainer"
                ),
                (
                    "busybox:1.36",
                    "spec.ephemeralContainers[0].image",
                    "ephemeralContainer"
                ),
                (
                    "registry.local:5000/models/llama:v1",
                    "spec.volumes[1].image.reference",
                    "imageVolume"
                ),
            ]
        );
    }

    #[test]
    fn image_use_serializes_with_its_field_names() {
        let r = parse_review(&review(pod_request())).unwrap();
        assert_eq!(
            serde_json::to_value(&r.images[4]).unwrap(),
            json!({"reference": "registry.local:5000/models/llama:v1",
                   "path": "spec.volumes[1].image.reference", "source": "imageVolume"})
        );
    }

    #[test]
    fn deployment_uses_the_template() {
        let r = parse_review(&review(json!({
            "uid": "u-1",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "llama",
            "namespace": "inference",
            "operation": "UPDATE",
            "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "llama"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "llama"}},
                    "template": {
                        "metadata": {"labels": {"app": "llama"}},
                        "spec": {
                            "containers": [{"name": "s", "image": "registry.local:5000/runtime/vllm@sha256:abcd"}],
                            "volumes": [{"name": "w", "image": {"reference": "registry.local:5000/models/llama:v2"}}]
                        }
                    }
                }
            },
            "oldObject": {"kind": "Deployment"}
        })))
        .unwrap();
        assert_eq!(r.kind, "Deployment");
        assert_eq!(r.operation, "UPDATE");
        assert_eq!(
            refs(&r.images),
            vec![
                (
                    "registry.local:5000/runtime/vllm@sha256:abcd",
                    "spec.template.spec.containers[0].image",
                    "container"
                ),
                (
                    "registry.local:5000/models/llama:v2",
                    "spec.template.spec.volumes[0].image.reference",
                    "imageVolume"
                ),
            ]
        );
    }

    #[test]
    fn cronjob_uses_the_job_template() {
        let r = parse_review(&review(json!({
            "uid": "u-2",
            "kind": {"group": "batch", "version": "v1", "kind": "CronJob"},
            "namespace": "batch",
            "operation": "CREATE",
            "object": {
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly-eval"},
                "spec": {
                    "schedule": "0 3 * * *",
                    "jobTemplate": {"spec": {"template": {"spec": {
                        "restartPolicy": "Never",
                        "initContainers": [{"name": "i", "image": "registry.local:5000/tools/fetch:1.2"}],
                        "containers": [{"name": "eval", "image": "registry.local:5000/eval/harness:3"}]
                    }}}}
                }
            }
        })))
        .unwrap();
        // No request.name on this CREATE: taken from the object.
        assert_eq!(r.name.as_deref(), Some("nightly-eval"));
        assert_eq!(
            refs(&r.images),
            vec![
                (
                    "registry.local:5000/eval/harness:3",
                    "spec.jobTemplate.spec.template.spec.containers[0].image",
                    "container"
                ),
                (
                    "registry.local:5000/tools/fetch:1.2",
                    "spec.jobTemplate.spec.template.spec.initContainers[0].image",
                    "initContainer"
                ),
            ]
        );
    }

    #[test]
    fn workload_kinds_and_pod_templates() {
        let template = json!({"spec": {"containers": [{"name": "c", "image": "img:1"}]}});
        for kind in [
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "ReplicationController",
        ] {
            let object = json!({"spec": {"template": template}});
            let images = pod_spec_images(kind, &object).unwrap();
            assert_eq!(
                refs(&images),
                vec![(
                    "img:1",
                    "spec.template.spec.containers[0].image",
                    "container"
                )],
                "{kind}"
            );
        }
        let images = pod_spec_images("PodTemplate", &json!({ "template": template })).unwrap();
        assert_eq!(
            refs(&images),
            vec![("img:1", "template.spec.containers[0].image", "container")]
        );
        // Kinds without a pod are not understood: the review is invalid
        // (denied), not an empty list of images.
        let r = parse_review(&review(json!({
            "uid": "u", "kind": {"kind": "ConfigMap"}, "operation": "CREATE",
            "object": {"metadata": {"name": "c"}, "data": {"image": "x"}}
        })))
        .unwrap();
        assert!(r.images.is_empty());
        assert!(r.invalid.is_some());
    }

    #[test]
    fn delete_with_null_object_has_no_images() {
        let r = parse_review(&review(json!({
            "uid": "u-3",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "name": "llama-server",
            "namespace": "inference",
            "operation": "DELETE",
            "object": null,
            "oldObject": {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "old:1"}]}},
            "options": {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
        })))
        .unwrap();
        assert_eq!(r.operation, "DELETE");
        assert_eq!(r.name.as_deref(), Some("llama-server"));
        assert!(r.images.is_empty());
    }

    #[test]
    fn dry_run_and_generate_name() {
        let mut req = pod_request();
        req["dryRun"] = json!(true);
        req["name"] = json!("");
        req["object"]["metadata"] = json!({"generateName": "llama-"});
        let r = parse_review(&review(req)).unwrap();
        assert!(r.dry_run);
        assert_eq!(r.name.as_deref(), Some("llama-"));
        // Cluster-scoped or missing: no namespace.
        let r = parse_review(&review(json!({"uid": "u", "kind": {"kind": "Pod"},
            "operation": "DELETE"})))
        .unwrap();
        assert_eq!(
            (r.kind.as_str(), r.operation.as_str(), r.namespace, r.name),
            ("Pod", "DELETE", None, None)
        );
        assert_eq!(r.invalid, None);
    }

    #[test]
    fn v1beta1_is_refused_with_a_hint() {
        let body = serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1beta1",
            "kind": "AdmissionReview",
            "request": pod_request(),
        }))
        .unwrap();
        let e = err(parse_review(&body));
        assert!(e.contains("v1beta1 is not supported"), "{e}");
        assert!(e.contains("admission.k8s.io/v1 is required"), "{e}");
        let body = br#"{"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {"uid": "u"}}"#;
        assert_eq!(
            err(parse_review(body)),
            "AdmissionReview: apiVersion \"admission.k8s.io/v2\" is not supported, expected admission.k8s.io/v1"
        );
    }

    #[test]
    fn not_json_and_not_a_review() {
        let e = err(parse_review(b"<html>hello</html>"));
        assert!(e.starts_with("AdmissionReview: body is not JSON: "), "{e}");
        assert!(err(parse_review(b"")).starts_with("AdmissionReview: body is not JSON"));
        assert_eq!(
            err(parse_review(b"[1, 2]")),
            "AdmissionReview: body is an array, expected a JSON object"
        );
        assert_eq!(
            err(parse_review(
                br#"{"apiVersion": "admission.k8s.io/v1", "request": {"uid": "u"}}"#
            )),
            "AdmissionReview: kind missing"
        );
        assert_eq!(
            err(parse_review(
                br#"{"apiVersion": "admission.k8s.io/v1", "kind": "Pod\nEvil"}"#
            )),
            "AdmissionReview: kind is \"Pod\\nEvil\", expected \"AdmissionReview\""
        );
        assert_eq!(
            err(parse_review(br#"{"kind": "AdmissionReview"}"#)),
            "AdmissionReview: apiVersion missing"
        );
        assert_eq!(
            err(parse_review(
                br#"{"kind": "AdmissionReview", "apiVersion": 1}"#
            )),
            "AdmissionReview: apiVersion is a number, expected a string"
        );
    }

    #[test]
    fn missing_uid_and_bad_request() {
        assert_eq!(
            err(parse_review(&review(json!({"kind": {"kind": "Pod"}})))),
            "AdmissionReview: request.uid missing"
        );
        assert_eq!(
            err(parse_review(&review(json!({"uid": ""})))),
            "AdmissionReview: request.uid is empty"
        );
        assert_eq!(
            err(parse_review(&review(json!({"uid": 42})))),
            "AdmissionReview: request.uid is a number, expected a string"
        );
        assert_eq!(
            err(parse_review(
                br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#
            )),
            "AdmissionReview: request missing"
        );
        assert_eq!(
            err(parse_review(&review(json!("not an object")))),
            "AdmissionReview: request is a string, expected an object"
        );
        assert_eq!(
            err(parse_review(&review(json!([{"uid": "u"}])))),
            "AdmissionReview: request is an array, expected an object"
        );
    }

    #[test]
    fn wrong_types_in_the_request_are_invalid_not_errors() {
        let pod = json!({"kind": "Pod"});
        let cases = [
            (
                json!({"uid": "u", "kind": "Pod"}),
                "request.kind is a string, expected an object",
            ),
            (
                json!({"uid": "u", "kind": {"kind": ["Pod"]}}),
                "request.kind.kind is an array, expected a string",
            ),
            (json!({"uid": "u", "kind": {}}), "request.kind.kind missing"),
            (json!({"uid": "u"}), "request.kind missing"),
            (
                json!({"uid": "u", "kind": {"kind": "Pod", "group": 1}}),
                "request.kind.group is a number, expected a string",
            ),
            (
                json!({"uid": "u", "kind": {"kind": "Pod", "version": true}}),
                "request.kind.version is a boolean, expected a string",
            ),
            (
                json!({"uid": "u", "operation": 1}),
                "request.operation is a number, expected a string",
            ),
            (
                json!({"uid": "u", "namespace": {}}),
                "request.namespace is an object, expected a string",
            ),
            (
                json!({"uid": "u", "name": false}),
                "request.name is a boolean, expected a string",
            ),
            (
                json!({"uid": "u", "dryRun": "true"}),
                "request.dryRun is a string, expected a boolean",
            ),
            (
                json!({"uid": "u", "kind": pod, "operation": "CREATE"}),
                "request.object missing",
            ),
            (
                json!({"uid": "u", "kind": pod, "operation": "CREATE",
                       "object": {"spec": {"containers": [{"name": "a", "image": 7}]}}}),
                "request.object.spec.containers[0].image is a number, expected a string",
            ),
            (
                json!({"uid": "u", "kind": {"kind": "pod"}, "operation": "CREATE",
                       "object": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}),
                "request.kind.kind \"pod\" is not a kind Pavilion reviews",
            ),
            (
                json!({"uid": "u", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
                       "operation": "CREATE", "object": {"data": {"image": "x"}}}),
                "request.kind.kind \"ConfigMap\" is not a kind Pavilion reviews",
            ),
        ];
        for (req, want) in cases {
            let r = parse_review(&review(req.clone())).unwrap();
            let invalid = r.invalid.as_deref().unwrap_or_default();
            assert!(invalid.starts_with(want), "{req}: {invalid:?}");
            assert!(!invalid.contains('\n'));
            assert!(r.images.is_empty());
            // The envelope is still answered.
            assert_eq!(r.uid, "u");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let deep_array = "[".repeat(100_000);
        let deep_object = "{\"a\":".repeat(100_000);
        let huge: Vec<Value> = (0..100_000)
            .map(|i| json!({"name": format!("c{i}"), "image": format!("img:{i}")}))
            .collect();
        let huge = review(json!({"uid": "u", "kind": {"kind": "Pod"},
            "object": {"spec": {"containers": huge}}}));
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"null".to_vec(),
            b"\xff\xfe\x00garbage".to_vec(),
            b"{\"kind\": \"AdmissionReview\", \"apiVersion\": \"admission.k8s.io/v1\", \"request\": {\"uid\": \"\\ud800\"}}".to_vec(),
            deep_array.into_bytes(),
            deep_object.into_bytes(),
            review(json!({"uid": "u", "kind": {"kind": "Pod"}, "object": {"spec": {"containers": [[[]]]}}})),
            review(json!({"uid": "u", "kind": {"kind": "CronJob"}, "object": {"spec": {"jobTemplate": 1}}})),
            huge.clone(),
        ];
        for body in &inputs {
            match parse_review(body) {
                Ok(_) => {}
                Err(WireError(e)) => assert!(!e.contains('\n'), "{e}"),
            }
            match parse_provider_request(body) {
                Ok(_) => {}
                Err(WireError(e)) => assert!(!e.contains('\n'), "{e}"),
            }
        }
        assert_eq!(parse_review(&huge).unwrap().images.len(), 100_000);
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let long = "x".repeat(10_000);
        let body =
            serde_json::to_vec(&json!({"kind": "AdmissionReview", "apiVersion": long})).unwrap();
        let e = err(parse_review(&body));
        assert!(e.len() < 200, "{e}");
        assert!(e.contains("..."), "{e}");
    }

    #[test]
    fn response_allowed_is_minimal() {
        let v = review_response("admission.k8s.io/v1", "u-1", true, None, &[]);
        assert_eq!(
            v,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true}})
        );
        // A message on an allowed review is not consulted by Kubernetes: dropped.
        let v = review_response("admission.k8s.io/v1", "u-1", true, Some("fine"), &[]);
        assert!(v["response"].get("status").is_none());
    }

    #[test]
    fn response_denied_has_a_forbidden_status() {
        let v = review_response(
            "admission.k8s.io/v1",
            "u-2",
            false,
            Some("registry.local:5000/models/llama:v1: no valid signature"),
            &[],
        );
        assert_eq!(
            v,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u-2", "allowed": false,
                                "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
                                           "message": "registry.local:5000/models/llama:v1: no valid signature"}}})
        );
        let v = review_response("admission.k8s.io/v1", "u-3", false, None, &[]);
        assert_eq!(
            v["response"]["status"],
            json!({"status": "Failure", "code": 403, "reason": "Forbidden"})
        );
    }

    #[test]
    fn response_warnings_only_when_present() {
        let w = vec!["busybox:1.36: not signed (audit mode)".to_string()];
        let v = review_response("admission.k8s.io/v1", "u-4", true, None, &w);
        assert_eq!(
            v["response"],
            json!({"uid": "u-4", "allowed": true, "warnings": ["busybox:1.36: not signed (audit mode)"]})
        );
        let v = review_response("admission.k8s.io/v1", "u-5", false, Some("no"), &w);
        assert_eq!(v["response"]["warnings"], json!(w));
        assert_eq!(v["response"]["status"]["message"], "no");
    }

    #[test]
    fn round_trip_echoes_version_and_uid() {
        let r = parse_review(&review(pod_request())).unwrap();
        let v = review_response(&r.api_version, &r.uid, true, None, &[]);
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    }

    fn provider_err(body: &[u8]) -> String {
        let e = parse_provider_request(body)
            .expect_err("expected an error")
            .0;
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn provider_request_with_several_keys() {
        let body = br#"{
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": [
                "registry.local:5000/runtime/vllm:0.6",
                "registry.local:5000/models/llama:v1",
                "registry.local:5000/runtime/vllm:0.6"
            ]}
        }"#;
        assert_eq!(
            parse_provider_request(body).unwrap(),
            vec![
                "registry.local:5000/runtime/vllm:0.6",
                "registry.local:5000/models/llama:v1",
                "registry.local:5000/runtime/vllm:0.6",
            ]
        );
        let alpha = br#"{"apiVersion": "externaldata.gatekeeper.sh/v1alpha1",
                         "kind": "ProviderRequest", "request": {"keys": ["a"]}}"#;
        assert_eq!(parse_provider_request(alpha).unwrap(), vec!["a"]);
        // Gatekeeper omits empty keys (omitempty).
        let empty = br#"{"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                         "kind": "ProviderRequest", "request": {}}"#;
        assert!(parse_provider_request(empty).unwrap().is_empty());
    }

    #[test]
    fn provider_request_malformed() {
        assert!(provider_err(b"keys=a").starts_with("ProviderRequest: body is not JSON: "));
        assert_eq!(
            provider_err(b"\"x\""),
            "ProviderRequest: body is a string, expected a JSON object"
        );
        assert_eq!(
            provider_err(
                br#"{"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "request": {"keys": []}}"#
            ),
            "ProviderRequest: kind missing"
        );
        assert_eq!(
            provider_err(br#"{"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderResponse"}"#),
            "ProviderRequest: kind is \"ProviderResponse\", expected \"ProviderRequest\""
        );
        assert_eq!(
            provider_err(
                br#"{"apiVersion": "externaldata.gatekeeper.sh/v2", "kind": "ProviderRequest"}"#
            ),
            "ProviderRequest: apiVersion \"externaldata.gatekeeper.sh/v2\" is not supported, \
             expected externaldata.gatekeeper.sh/v1beta1 or externaldata.gatekeeper.sh/v1alpha1"
        );
        assert_eq!(
            provider_err(br#"{"kind": "ProviderRequest"}"#),
            "ProviderRequest: apiVersion missing"
        );
        let v1beta1 = |request: &str| {
            format!(
                r#"{{"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest"{request}}}"#
            )
        };
        assert_eq!(
            provider_err(v1beta1("").as_bytes()),
            "ProviderRequest: request missing"
        );
        assert_eq!(
            provider_err(v1beta1(r#", "request": ["a"]"#).as_bytes()),
            "ProviderRequest: request is an array, expected an object"
        );
        assert_eq!(
            provider_err(v1beta1(r#", "request": {"keys": "a"}"#).as_bytes()),
            "ProviderRequest: request.keys is a string, expected an array of strings"
        );
        assert_eq!(
            provider_err(v1beta1(r#", "request": {"keys": ["a", 2, "c"]}"#).as_bytes()),
            "ProviderRequest: request.keys[1] is a number, expected a string"
        );
        assert_eq!(
            provider_err(v1beta1(r#", "request": {"keys": [null]}"#).as_bytes()),
            "ProviderRequest: request.keys[0] is null, expected a string"
        );
    }

    #[test]
    fn provider_response_shape() {
        let ok = ratify_style_result(
            "registry.local:5000/models/llama@sha256:1111",
            true,
            &[VerifierReport {
                name: "notation".into(),
                verifier_type: "notation".into(),
                is_success: true,
                message: "signature verification success".into(),
                artifact_digest: Some("sha256:2222".into()),
                extensions: json!({"trustPolicy": "models", "signer": "CN=Pavilion Test"}),
            }],
        );
        let items = [
            ProviderItem {
                key: "registry.local:5000/models/llama:v1".into(),
                value: ok.clone(),
                error: None,
            },
            ProviderItem {
                key: "registry.local:5000/missing:v1".into(),
                value: Value::Null,
                error: Some("manifest unknown".into()),
            },
            ProviderItem {
                key: "weird".into(),
                value: json!(false),
                error: Some(String::new()),
            },
        ];
        let v = provider_response(&items, None);
        assert_eq!(
            v,
            json!({
                "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                "kind": "ProviderResponse",
                "response": {
                    "idempotent": true,
                    "items": [
                        {"key": "registry.local:5000/models/llama:v1", "value": ok},
                        {"key": "registry.local:5000/missing:v1", "error": "manifest unknown"},
                        {"key": "weird", "value": false, "error": "unspecified error"}
                    ]
                }
            })
        );
        let v = provider_response(&[], Some("trust policy unreadable"));
        assert_eq!(
            v["response"],
            json!({"idempotent": true, "items": [], "systemError": "trust policy unreadable"})
        );
        assert!(provider_response(&[], Some(""))["response"]
            .get("systemError")
            .is_none());
    }

    #[test]
    fn ratify_result_shape() {
        let v = ratify_style_result(
            "registry.local:5000/models/llama@sha256:1111",
            false,
            &[
                VerifierReport {
                    name: "notation".into(),
                    verifier_type: "notation".into(),
                    is_success: false,
                    message: "no signature passes the trust policy".into(),
                    artifact_digest: Some("sha256:2222".into()),
                    extensions: json!({"failures": ["certificate expired"]}),
                },
                VerifierReport {
                    name: "policy".into(),
                    verifier_type: "rego".into(),
                    is_success: true,
                    message: "allowed".into(),
                    artifact_digest: None,
                    extensions: Value::Null,
                },
            ],
        );
        assert_eq!(
            v,
            json!({
                "version": "0.2.0",
                "isSuccess": false,
                "verifierReports": [
                    {"subject": "registry.local:5000/models/llama@sha256:1111",
                     "isSuccess": false,
                     "name": "notation", "verifierName": "notation",
                     "type": "notation", "verifierType": "notation",
                     "referenceDigest": "sha256:2222",
                     "message": "no signature passes the trust policy",
                     "extensions": {"failures": ["certificate expired"]}},
                    {"subject": "registry.local:5000/models/llama@sha256:1111",
                     "isSuccess": true,
                     "name": "policy", "verifierName": "policy",
                     "type": "rego", "verifierType": "rego",
                     "message": "allowed"}
                ]
            })
        );
        let none = ratify_style_result("x", false, &[]);
        assert_eq!(
            none,
            json!({"version": "0.2.0", "isSuccess": false, "verifierReports": []})
        );
    }
}
