//! Tests of the AdmissionReview and Gatekeeper wire formats: every shape
//! the webhook reads, and every malformed one it must refuse.

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
    let body = serde_json::to_vec(&json!({"kind": "AdmissionReview", "apiVersion": long})).unwrap();
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
        provider_err(
            br#"{"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderResponse"}"#
        ),
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
