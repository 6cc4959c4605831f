//! The input documents handed to Rego at each decision point, version 1.
//!
//! Every document carries `version` ([`INPUT_VERSION`]) and `point`, so a
//! rule can refuse a shape it was not written for. Field names are camelCase,
//! like the OCI and Kubernetes documents they embed. The full schema, with
//! examples, is in docs/POLICY.md; the builders below are the only place the
//! documents are assembled, so the two stay in step.
//!
//! - `push`: a manifest arriving at the registry (and a tag being set).
//! - `pull`: an artifact about to be written by `pavilion pull`.
//! - `admission`: a Kubernetes AdmissionReview with its images resolved.

use serde::Serialize;
use serde_json::{json, Map, Value};

/// The version of the input documents.
pub const INPUT_VERSION: &str = "pavilion.dev/policy-input/v1";

/// The layer annotations that name the file a layer is, in the order the
/// client reads them: ModelPack's file path, its older CNAI name, then
/// ORAS's title. The client writes a layer under the first one present, so
/// a rule must see the same name. `pavilion-model` keeps a copy of this
/// list (`media::FILE_PATH_ANNOTATIONS`; neither crate may depend on the
/// other) and a test in the CLI pins the two together.
pub const FILE_PATH_ANNOTATIONS: [&str; 3] = [
    "org.cncf.model.filepath",
    "org.cnai.model.filepath",
    "org.opencontainers.image.title",
];
/// ModelPack's config media types (v1 and the CNAI draft).
const MODEL_CONFIGS: [&str; 2] = [
    "application/vnd.cncf.model.config.v1+json",
    "application/vnd.cnai.model.config.v1+json",
];

/// The Notary verification of an artifact, as a policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// True when one signature passes the trust policy, or the policy skips.
    pub verified: bool,
    /// True when the trust policy's level for this artifact is `skip`.
    pub skipped: bool,
    /// The name of the trust policy statement that applied.
    pub trust_policy: Option<String>,
    /// Each signature found.
    pub signatures: Vec<SignatureResult>,
    /// Why verification could not run (no trust policy, unreadable store...).
    pub error: Option<String>,
}

/// One signature's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureResult {
    /// The signature manifest's digest.
    pub digest: String,
    /// Whether it passed.
    pub verified: bool,
    /// The signing certificate's subject.
    pub signer: Option<String>,
    /// The failed validations, one line each.
    pub failures: Vec<String>,
}

/// What is known about an artifact: its manifest and, when it is JSON, its
/// config.
#[derive(Debug, Clone, Default)]
pub struct Artifact<'a> {
    /// The repository, without the registry host.
    pub repository: &'a str,
    /// The manifest digest.
    pub digest: &'a str,
    /// The manifest's media type.
    pub media_type: &'a str,
    /// The parsed manifest (Null when not JSON).
    pub manifest: Value,
    /// The parsed config blob, when small JSON.
    pub config: Option<Value>,
}

fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// Whether a config media type is a ModelPack model config (v1 or the
/// CNAI draft).
pub fn is_model_config(media_type: &str) -> bool {
    MODEL_CONFIGS.contains(&media_type)
}

/// The file path a layer descriptor carries (the first of
/// [`FILE_PATH_ANNOTATIONS`] present), if it names a file at all.
pub fn layer_file_path(layer: &Value) -> Option<&str> {
    let annotations = layer.get("annotations")?;
    FILE_PATH_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(k).and_then(Value::as_str))
}

/// One `files` entry per layer of a manifest: `path` (null when the layer
/// names no file), `size`, `mediaType`, `digest`.
pub fn layer_files(manifest: &Value) -> Vec<Value> {
    get(manifest, &["layers"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|layer| {
            json!({
                "path": layer_file_path(layer),
                "size": layer.get("size").and_then(Value::as_u64).unwrap_or(0),
                "mediaType": layer.get("mediaType").cloned().unwrap_or(Value::Null),
                "digest": layer.get("digest").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// The summary of a ModelPack model (Null for anything else): name, version,
/// licenses, format, parameter size, precision, architecture, and the files
/// with their sizes and media types.
pub fn model_summary(manifest: &Value, config: Option<&Value>) -> Value {
    let config_type = get(manifest, &["config", "mediaType"]).and_then(Value::as_str);
    if !config_type.is_some_and(is_model_config) {
        return Value::Null;
    }
    let empty = Value::Null;
    let config = config.unwrap_or(&empty);
    let pick = |path: &[&str]| get(config, path).cloned().unwrap_or(Value::Null);
    let files = layer_files(manifest);
    let total = files.iter().fold(0u64, |sum, f| {
        sum.saturating_add(f["size"].as_u64().unwrap_or(0))
    });
    let licenses = match get(config, &["descriptor", "licenses"]) {
        Some(Value::Array(a)) => Value::Array(a.clone()),
        _ => Value::Array(Vec::new()),
    };
    json!({
        "name": pick(&["descriptor", "name"]),
        "version": pick(&["descriptor", "version"]),
        "licenses": licenses,
        "format": pick(&["config", "format"]),
        "paramSize": pick(&["config", "paramSize"]),
        "precision": pick(&["config", "precision"]),
        "quantization": pick(&["config", "quantization"]),
        "architecture": pick(&["config", "architecture"]),
        "files": files,
        "size": total,
    })
}

/// The fields every artifact document shares.
fn artifact_fields(a: &Artifact<'_>) -> Map<String, Value> {
    let m = &a.manifest;
    let mut out = Map::new();
    out.insert("repository".into(), a.repository.into());
    out.insert("digest".into(), a.digest.into());
    out.insert("mediaType".into(), a.media_type.into());
    // The artifact type as the referrers API reports it: the manifest's
    // artifactType, else its config media type.
    let artifact_type = m
        .get("artifactType")
        .or_else(|| get(m, &["config", "mediaType"]))
        .cloned()
        .unwrap_or(Value::Null);
    out.insert("artifactType".into(), artifact_type);
    out.insert("manifest".into(), m.clone());
    out.insert("config".into(), a.config.clone().unwrap_or(Value::Null));
    // Every layer's file, whatever the config type: the client writes the
    // files of any artifact, ModelPack or not.
    out.insert("files".into(), Value::Array(layer_files(m)));
    out.insert("model".into(), model_summary(m, a.config.as_ref()));
    out.insert(
        "annotations".into(),
        m.get("annotations")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    out.insert(
        "subject".into(),
        m.get("subject").cloned().unwrap_or(Value::Null),
    );
    out
}

fn document(point: &str, mut fields: Map<String, Value>) -> Value {
    fields.insert("version".into(), INPUT_VERSION.into());
    fields.insert("point".into(), point.into());
    Value::Object(fields)
}

/// The `push` document: a manifest PUT with the tags it sets, who pushes it
/// (when the request was authenticated) and the verification of the
/// signatures already stored for it (a tag moved onto a signed manifest).
pub fn push(
    artifact: &Artifact<'_>,
    tags: &[String],
    identity: Option<&str>,
    signature: &Verification,
) -> Value {
    let mut f = artifact_fields(artifact);
    f.insert("tags".into(), json!(tags));
    f.insert(
        "identity".into(),
        identity.map_or(Value::Null, |u| json!({ "username": u })),
    );
    f.insert("signature".into(), json!(signature));
    document("push", f)
}

/// The `pull` document: the reference as asked, the resolved digest, the
/// signature verification (Null when not verified) and who pulls (the
/// registry's authenticated caller; Null on the client, and on a registry
/// without authentication).
pub fn pull(
    reference: &str,
    artifact: &Artifact<'_>,
    signature: Option<&Verification>,
    identity: Option<&str>,
) -> Value {
    let mut f = artifact_fields(artifact);
    f.insert("reference".into(), reference.into());
    f.insert("signature".into(), json!(signature));
    f.insert(
        "identity".into(),
        identity.map_or(Value::Null, |u| json!({ "username": u })),
    );
    document("pull", f)
}

/// Adds the regular files of a tar layer, listed before extraction, to a
/// `pull` document's `files`: each `{path, size, mediaType, digest,
/// fromTar}`, with the tar layer's media type and digest (the blob the
/// bytes come from) and `fromTar` the layer's own path. The client judges
/// the document again with them, so a rule sees every file it writes.
pub fn add_tar_files(
    doc: &mut Value,
    from_tar: &str,
    media_type: &str,
    digest: &str,
    files: &[(String, u64)],
) {
    let entries = files.iter().map(|(path, size)| {
        json!({"path": path, "size": size, "mediaType": media_type, "digest": digest,
            "fromTar": from_tar})
    });
    match doc.get_mut("files").and_then(Value::as_array_mut) {
        Some(list) => list.extend(entries),
        None => {
            if let Some(fields) = doc.as_object_mut() {
                fields.insert("files".into(), Value::Array(entries.collect()));
            }
        }
    }
}

/// One image of an admission review, resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionImage {
    /// The reference as written in the object.
    pub reference: String,
    /// Where it was found (`spec.containers[0].image`...).
    pub path: String,
    /// container, initContainer, ephemeralContainer or imageVolume.
    pub source: String,
    /// The manifest digest it resolved to.
    pub digest: Option<String>,
    /// The artifact type (ModelPack models, images...).
    pub artifact_type: Option<String>,
    /// Its ModelPack summary, when it is a model.
    pub model: Value,
    /// The verification of its signatures.
    pub verification: Option<Verification>,
    /// Why it could not be resolved or verified.
    pub error: Option<String>,
}

/// The `admission` document: the AdmissionReview `request`, unchanged, and
/// every image found in it, resolved and verified.
pub fn admission(
    request: &Value,
    kind: &str,
    operation: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    dry_run: bool,
    images: &[AdmissionImage],
) -> Value {
    let mut f = Map::new();
    f.insert("request".into(), request.clone());
    f.insert("kind".into(), kind.into());
    f.insert("operation".into(), operation.into());
    f.insert("namespace".into(), json!(namespace));
    f.insert("name".into(), json!(name));
    f.insert("dryRun".into(), dry_run.into());
    f.insert("images".into(), json!(images));
    document("admission", f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_manifest() -> Value {
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": "sha256:c", "size": 10},
            "layers": [
                {"mediaType": "application/vnd.cncf.model.weight.v1.raw", "digest": "sha256:a", "size": 100,
                 "annotations": {"org.cncf.model.filepath": "model.safetensors"}},
                {"mediaType": "application/vnd.cncf.model.weight.config.v1.raw", "digest": "sha256:b", "size": 5,
                 "annotations": {"org.cnai.model.filepath": "config.json"}}
            ],
            "annotations": {"org.opencontainers.image.version": "1"}
        })
    }

    #[test]
    fn push_document_summarises_a_model() {
        let config = json!({"descriptor": {"name": "m", "licenses": ["Apache-2.0"]},
            "config": {"format": "safetensors", "paramSize": "7B", "precision": "bf16"}});
        let a = Artifact {
            repository: "models/m",
            digest: "sha256:d",
            media_type: "application/vnd.oci.image.manifest.v1+json",
            manifest: model_manifest(),
            config: Some(config),
        };
        let doc = push(&a, &["v1".into()], Some("alice"), &Verification::default());
        assert_eq!(doc["version"], INPUT_VERSION);
        assert_eq!(doc["point"], "push");
        assert_eq!(doc["tags"], json!(["v1"]));
        assert_eq!(doc["identity"]["username"], "alice");
        assert_eq!(
            doc["artifactType"],
            "application/vnd.cncf.model.manifest.v1+json"
        );
        let m = &doc["model"];
        assert_eq!(m["format"], "safetensors");
        assert_eq!(m["paramSize"], "7B");
        assert_eq!(m["licenses"], json!(["Apache-2.0"]));
        assert_eq!(m["size"], 105);
        assert_eq!(m["files"][0]["path"], "model.safetensors");
        assert_eq!(m["files"][1]["path"], "config.json");
        assert_eq!(doc["files"], m["files"]);
        assert_eq!(doc["signature"]["verified"], false);
        assert_eq!(doc["annotations"]["org.opencontainers.image.version"], "1");
    }

    #[test]
    fn images_have_no_model_summary_and_pull_keeps_the_reference() {
        let manifest = json!({"schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:c", "size": 2},
            "layers": []});
        let a = Artifact {
            repository: "app",
            digest: "sha256:d",
            media_type: "application/vnd.oci.image.manifest.v1+json",
            manifest,
            config: None,
        };
        let doc = pull("localhost:5000/app:v1", &a, None, None);
        assert_eq!(doc["model"], Value::Null);
        assert_eq!(doc["signature"], Value::Null);
        assert_eq!(doc["reference"], "localhost:5000/app:v1");
        assert_eq!(doc["identity"], Value::Null, "no caller known");
        let who = pull("localhost:5000/app:v1", &a, None, Some("alice"));
        assert_eq!(who["identity"]["username"], "alice");
        assert_eq!(
            doc["artifactType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(doc["subject"], Value::Null);
        assert_eq!(doc["files"], json!([]));
    }

    #[test]
    fn files_are_named_as_the_client_names_them_whatever_the_config() {
        let layer = |annotations: Value| {
            json!({"mediaType": "application/octet-stream", "digest": "sha256:a", "size": 7,
                "annotations": annotations})
        };
        let title = "org.opencontainers.image.title";
        let layers = json!([
            layer(json!({title: "evil.pkl"})),
            layer(json!({title: "t", "org.cnai.model.filepath": "cnai", "org.cncf.model.filepath": "cncf"})),
            layer(json!({title: "t", "org.cnai.model.filepath": "cnai"})),
            layer(json!({"other": "x"})),
            {"mediaType": "m", "digest": "sha256:b", "size": 1},
        ]);
        for config in [
            "application/vnd.cncf.model.config.v1+json",
            "application/vnd.oci.empty.v1+json",
        ] {
            let manifest = json!({"schemaVersion": 2,
                "config": {"mediaType": config, "digest": "sha256:c", "size": 2},
                "layers": layers});
            let a = Artifact {
                manifest,
                ..Default::default()
            };
            for doc in [
                pull("r", &a, None, None),
                push(&a, &[], None, &Verification::default()),
            ] {
                let paths: Vec<&Value> = doc["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| &f["path"])
                    .collect();
                assert_eq!(
                    paths,
                    [
                        &json!("evil.pkl"),
                        &json!("cncf"),
                        &json!("cnai"),
                        &Value::Null,
                        &Value::Null
                    ],
                    "{config}"
                );
                assert_eq!(doc["files"][0]["size"], 7);
                assert_eq!(doc["files"][0]["mediaType"], "application/octet-stream");
                assert_eq!(doc["files"][4]["digest"], "sha256:b");
                if config.contains("cncf") {
                    assert_eq!(doc["model"]["files"], doc["files"]);
                    assert_eq!(doc["model"]["size"], 29);
                } else {
                    assert_eq!(doc["model"], Value::Null);
                }
            }
        }
    }

    #[test]
    fn tar_entries_join_the_files() {
        let manifest = json!({"schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:c", "size": 2},
            "layers": [{"mediaType": "t", "digest": "sha256:t", "size": 9,
                "annotations": {"org.cncf.model.filepath": "tok"}}]});
        let a = Artifact {
            manifest,
            ..Default::default()
        };
        let mut doc = pull("r", &a, None, None);
        add_tar_files(
            &mut doc,
            "tok",
            "t",
            "sha256:t",
            &[("tok/evil.pkl".into(), 4)],
        );
        assert_eq!(doc["files"][0]["path"], "tok");
        assert_eq!(doc["files"][0]["fromTar"], Value::Null);
        assert_eq!(
            doc["files"][1],
            json!({"path": "tok/evil.pkl", "size": 4, "mediaType": "t", "digest": "sha256:t", "fromTar": "tok"})
        );
    }

    #[test]
    fn admission_document_lists_images() {
        let img = AdmissionImage {
            reference: "r/a:1".into(),
            path: "spec.containers[0].image".into(),
            source: "container".into(),
            error: Some("not found".into()),
            ..Default::default()
        };
        let doc = admission(
            &json!({"uid": "u"}),
            "Pod",
            "CREATE",
            Some("ns"),
            None,
            true,
            &[img],
        );
        assert_eq!(doc["point"], "admission");
        assert_eq!(doc["dryRun"], true);
        assert_eq!(doc["images"][0]["error"], "not found");
        assert_eq!(doc["images"][0]["verification"], Value::Null);
        assert_eq!(doc["request"]["uid"], "u");
    }
}
