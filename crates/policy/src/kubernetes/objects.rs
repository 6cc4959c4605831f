//! The objects an admission webhook is sent, read strictly: which kinds
//! hold a pod spec, where, and the images it names.
//!
//! Strict because a webhook that skips what it does not understand fails
//! open: `"image": 12`, `kind: "pod"` or a custom resource with its own
//! pod template would pass with nothing checked. Anything of an unexpected
//! shape is an error naming the field (from `request.`), which the webhook
//! turns into a denial.

use super::{type_name, ImageUse, WireError};
use serde_json::Value;

/// A kind Pavilion reviews: its API group, its name, and where its pod spec
/// lives (member names from the object root).
struct PodKind {
    group: &'static str,
    kind: &'static str,
    spec: &'static [&'static str],
}

const TEMPLATE: &[&str] = &["spec", "template", "spec"];

/// Every kind the webhook understands. Anything else sent to it is denied:
/// an unknown kind (a custom resource such as an inference service, or a
/// misspelt `pod`) may well carry images where Pavilion does not look, and
/// a webhook configured to send kinds that carry none has no reason to.
const KINDS: &[PodKind] = &[
    PodKind {
        group: "",
        kind: "Pod",
        spec: &["spec"],
    },
    PodKind {
        group: "",
        kind: "ReplicationController",
        spec: TEMPLATE,
    },
    PodKind {
        group: "",
        kind: "PodTemplate",
        spec: &["template", "spec"],
    },
    PodKind {
        group: "apps",
        kind: "Deployment",
        spec: TEMPLATE,
    },
    PodKind {
        group: "apps",
        kind: "StatefulSet",
        spec: TEMPLATE,
    },
    PodKind {
        group: "apps",
        kind: "DaemonSet",
        spec: TEMPLATE,
    },
    PodKind {
        group: "apps",
        kind: "ReplicaSet",
        spec: TEMPLATE,
    },
    PodKind {
        group: "batch",
        kind: "Job",
        spec: TEMPLATE,
    },
    PodKind {
        group: "batch",
        kind: "CronJob",
        spec: &["spec", "jobTemplate", "spec", "template", "spec"],
    },
];

fn find(kind: &str) -> Result<&'static PodKind, WireError> {
    KINDS.iter().find(|k| k.kind == kind).ok_or_else(|| {
        let known: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
        WireError(format!(
            "request.kind.kind {} is not a kind Pavilion reviews ({}); \
             send only those in the webhook's rules",
            super::quoted(kind),
            known.join(", ")
        ))
    })
}

/// Checks that `group` is the API group of `kind`, a kind Pavilion
/// reviews: a custom resource may reuse a built-in kind's name (and keep
/// its images elsewhere).
pub fn check_kind(group: &str, kind: &str) -> Result<(), WireError> {
    let k = find(kind)?;
    if k.group == group {
        return Ok(());
    }
    let expected = if k.group.is_empty() {
        "the core group, \"\""
    } else {
        k.group
    };
    Err(WireError(format!(
        "request.kind.group {} is not the group of {kind} ({expected})",
        super::quoted(group)
    )))
}

/// `what` at `path` must be an object (null and absent are `None`).
fn opt_object<'a>(v: Option<&'a Value>, path: &str) -> Result<Option<&'a Value>, WireError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(other) => Err(WireError(format!(
            "request.object.{path} is {}, expected an object",
            type_name(other)
        ))),
    }
}

/// A string member that names an image: `Ok(None)` when absent, null or
/// empty and `required` is false (a workload template may leave it to a
/// controller or a mutating webhook; the pods it makes are reviewed then).
fn image_string(
    v: Option<&Value>,
    path: &str,
    required: bool,
) -> Result<Option<String>, WireError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        None | Some(Value::Null) | Some(Value::String(_)) if !required => Ok(None),
        None | Some(Value::Null) => Err(WireError(format!("request.object.{path} missing"))),
        Some(Value::String(_)) => Err(WireError(format!("request.object.{path} is empty"))),
        Some(other) => Err(WireError(format!(
            "request.object.{path} is {}, expected a string",
            type_name(other)
        ))),
    }
}

/// The array at `path`, empty when absent or null.
fn opt_array<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a [Value], WireError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(WireError(format!(
            "request.object.{path} is {}, expected an array",
            type_name(other)
        ))),
    }
}

/// The images named by the pod spec of `object`, an object of kind `kind`
/// (which must be one of the kinds Pavilion reviews, see [`check_kind`]).
///
/// The pod spec is found by kind: `Pod` → `spec`; `Deployment`,
/// `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`,
/// `ReplicationController` → `spec.template.spec`; `CronJob` →
/// `spec.jobTemplate.spec.template.spec`; `PodTemplate` → `template.spec`.
/// A null object (a DELETE) names no image.
///
/// Order: `containers[].image`, then `initContainers[].image`, then
/// `ephemeralContainers[].image`, then `volumes[].image.reference` (image
/// volumes, KEP-4639), each list in array order. A fixed order rather than
/// the order of the keys in the request body, because JSON objects are
/// unordered once parsed; within a list the order is the document's.
///
/// Strict: the object, the pod spec and every member on the way must be
/// objects, the lists arrays, their entries objects, an image a string.
/// Missing lists are empty. An absent or empty image is an error in a Pod
/// (the API server requires one) and skipped in a template, where a
/// controller or mutating webhook may fill it in; whatever image ends up
/// in the pods is reviewed again then.
pub fn pod_spec_images(kind: &str, object: &Value) -> Result<Vec<ImageUse>, WireError> {
    let k = find(kind)?;
    let mut spec = match object {
        Value::Null => return Ok(Vec::new()),
        Value::Object(_) => object,
        other => {
            return Err(WireError(format!(
                "request.object is {}, expected an object",
                type_name(other)
            )))
        }
    };
    for (depth, member) in k.spec.iter().enumerate() {
        let path = k.spec[..=depth].join(".");
        spec = opt_object(spec.get(*member), &path)?
            .ok_or_else(|| WireError(format!("request.object.{path} missing")))?;
    }
    let required = k.kind == "Pod";
    let prefix = k.spec.join(".");
    let mut out = Vec::new();
    for (list, source) in [
        ("containers", "container"),
        ("initContainers", "initContainer"),
        ("ephemeralContainers", "ephemeralContainer"),
    ] {
        let items = opt_array(spec.get(list), &format!("{prefix}.{list}"))?;
        for (i, c) in items.iter().enumerate() {
            let at = format!("{prefix}.{list}[{i}]");
            let Value::Object(c) = c else {
                return Err(WireError(format!(
                    "request.object.{at} is {}, expected an object",
                    type_name(c)
                )));
            };
            let path = format!("{at}.image");
            if let Some(reference) = image_string(c.get("image"), &path, required)? {
                out.push(ImageUse {
                    reference,
                    path,
                    source,
                });
            }
        }
    }
    let volumes = opt_array(spec.get("volumes"), &format!("{prefix}.volumes"))?;
    for (i, v) in volumes.iter().enumerate() {
        let at = format!("{prefix}.volumes[{i}]");
        let Value::Object(v) = v else {
            return Err(WireError(format!(
                "request.object.{at} is {}, expected an object",
                type_name(v)
            )));
        };
        // Not an image volume: nothing to look at.
        let Some(image) = opt_object(v.get("image"), &format!("{at}.image"))? else {
            continue;
        };
        let path = format!("{at}.image.reference");
        if let Some(reference) = image_string(image.get("reference"), &path, required)? {
            out.push(ImageUse {
                reference,
                path,
                source: "imageVolume",
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(r: Result<Vec<ImageUse>, WireError>) -> String {
        let e = r.expect_err("expected an error").0;
        assert!(!e.contains('\n'), "not one line: {e}");
        e
    }

    #[test]
    fn wrong_shapes_are_errors_naming_the_field() {
        let pod = |spec: Value| json!({ "spec": spec });
        let cases = [
            (
                pod(json!({"containers": [{"name": "a", "image": 12}]})),
                "request.object.spec.containers[0].image is a number, expected a string",
            ),
            (
                pod(json!({"containers": [{"name": "a"}]})),
                "request.object.spec.containers[0].image missing",
            ),
            (
                pod(json!({"containers": [{"name": "a", "image": null}]})),
                "request.object.spec.containers[0].image missing",
            ),
            (
                pod(json!({"containers": [{"name": "a", "image": ""}]})),
                "request.object.spec.containers[0].image is empty",
            ),
            (
                pod(json!({"containers": [{"image": "a:1"}, "b:1"]})),
                "request.object.spec.containers[1] is a string, expected an object",
            ),
            (
                pod(json!({"initContainers": {"not": "an array"}})),
                "request.object.spec.initContainers is an object, expected an array",
            ),
            (
                pod(json!({"ephemeralContainers": "nope"})),
                "request.object.spec.ephemeralContainers is a string, expected an array",
            ),
            (
                pod(json!({"volumes": [{"name": "v0", "image": "not an object"}]})),
                "request.object.spec.volumes[0].image is a string, expected an object",
            ),
            (
                pod(json!({"volumes": [{"name": "v1", "image": {"reference": 3}}]})),
                "request.object.spec.volumes[0].image.reference is a number, expected a string",
            ),
            (
                pod(json!({"volumes": [{"name": "v2", "image": {}}]})),
                "request.object.spec.volumes[0].image.reference missing",
            ),
            (
                pod(json!({"volumes": [7]})),
                "request.object.spec.volumes[0] is a number, expected an object",
            ),
            (
                json!({"spec": "x"}),
                "request.object.spec is a string, expected an object",
            ),
            (
                json!({"spec": []}),
                "request.object.spec is an array, expected an object",
            ),
            (json!({}), "request.object.spec missing"),
            (
                json!("string"),
                "request.object is a string, expected an object",
            ),
            (
                json!([1, 2]),
                "request.object is an array, expected an object",
            ),
        ];
        for (object, want) in cases {
            assert_eq!(err(pod_spec_images("Pod", &object)), want, "{object}");
        }
        assert_eq!(
            err(pod_spec_images(
                "CronJob",
                &json!({"spec": {"jobTemplate": 1}})
            )),
            "request.object.spec.jobTemplate is a number, expected an object"
        );
        assert_eq!(
            err(pod_spec_images(
                "Deployment",
                &json!({"spec": {"replicas": 1}})
            )),
            "request.object.spec.template missing"
        );
    }

    #[test]
    fn templates_may_leave_images_to_controllers() {
        let object = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": ""}, {"name": "b"}, {"name": "c", "image": "c:1"}],
            "volumes": [{"name": "v", "image": {}}, {"name": "e", "emptyDir": {}}]
        }}}});
        let images = pod_spec_images("Deployment", &object).unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].path, "spec.template.spec.containers[2].image");
        // Still strict about types there.
        let object = json!({"spec": {"template": {"spec": {"containers": [{"image": 1}]}}}});
        assert_eq!(
            err(pod_spec_images("Deployment", &object)),
            "request.object.spec.template.spec.containers[0].image is a number, expected a string"
        );
    }

    #[test]
    fn missing_lists_and_null_objects_name_no_images() {
        assert!(pod_spec_images("Pod", &json!({"spec": {}}))
            .unwrap()
            .is_empty());
        assert!(
            pod_spec_images("Pod", &json!({"spec": {"containers": null}}))
                .unwrap()
                .is_empty()
        );
        assert!(pod_spec_images("CronJob", &Value::Null).unwrap().is_empty());
    }

    #[test]
    fn kinds_are_matched_exactly_with_their_group() {
        for k in KINDS {
            check_kind(k.group, k.kind).unwrap();
        }
        let e = check_kind("", "pod").unwrap_err().0;
        assert!(
            e.starts_with("request.kind.kind \"pod\" is not a kind Pavilion reviews (Pod, "),
            "{e}"
        );
        assert!(check_kind("", "ConfigMap").is_err());
        assert!(check_kind("serving.kserve.io", "InferenceService").is_err());
        assert_eq!(
            check_kind("evil.example", "Deployment").unwrap_err().0,
            "request.kind.group \"evil.example\" is not the group of Deployment (apps)"
        );
        assert_eq!(
            check_kind("apps", "Pod").unwrap_err().0,
            "request.kind.group \"apps\" is not the group of Pod (the core group, \"\")"
        );
        assert!(pod_spec_images("pod", &json!({"spec": {}})).is_err());
    }
}
