//! The registry as a labelled property graph (documented in
//! docs/EVENTS.md, "Continuous queries"), built from a snapshot of the
//! metadata database and then kept current from the change feed's events.
//!
//! Nodes: `Repository {name}`, `Manifest {repository, digest, mediaType,
//! artifactType, subject, size, pushedAt, annotations}`, `Model
//! {repository, digest, name, version, family, licenses, architecture,
//! format, paramSize, precision, quantization}` (a ModelPack manifest's
//! config, read only for queries that name `Model`), `Signature
//! {repository, digest, subject, type, signedAt, verified}`, `Tag
//! {repository, name, digest, updatedAt}`, `Decision {point, subject,
//! repository, allowed, denials, warnings, at, decision}`.
//! Relations: `(Repository)-[:HOLDS]->(Manifest)`,
//! `(Manifest)-[:DESCRIBED_BY]->(Model)`,
//! `(Tag)-[:TAGS]->(Manifest)`, `(Signature)-[:SIGNS]->(Manifest)`,
//! `(Manifest)-[:REFERS]->(Manifest)` (a referrer that is not a
//! signature: SBOMs, attestations), `(Decision)-[:DECIDES]->(Manifest)`.

use super::engine::{Graph, QueryError};
use crate::state::AppState;
use pavilion_oci::Digest;
use pavilion_store::events::{GraphDecision, GraphManifest, GraphSnapshot, GraphTag};
use pavilion_store::events::{
    DELETED, POLICY_DECIDED, PUSHED, SIGNATURE_ARTIFACT_TYPES, SIGNED, TAGGED, UNTAGGED,
};
use pavilion_store::Event;
use serde_json::{json, Value};

/// `artifactType` of a ModelPack manifest.
const MODEL_MANIFEST: &str = "application/vnd.cncf.model.manifest.v1+json";

fn repository_id(repo: &str) -> String {
    format!("r:{repo}")
}
fn manifest_id(repo: &str, digest: &str) -> String {
    format!("m:{repo}@{digest}")
}
fn model_id(repo: &str, digest: &str) -> String {
    format!("x:{repo}@{digest}")
}
fn signature_id(repo: &str, digest: &str) -> String {
    format!("s:{repo}@{digest}")
}
fn tag_id(repo: &str, tag: &str) -> String {
    format!("t:{repo}:{tag}")
}
fn decision_id(point: &str, subject: &str) -> String {
    format!("d:{point}:{subject}")
}

fn is_signature(m: &GraphManifest) -> bool {
    m.subject.is_some()
        && m.artifact_type
            .as_deref()
            .is_some_and(|t| SIGNATURE_ARTIFACT_TYPES.contains(&t))
}

fn ms(at: i64) -> u64 {
    u64::try_from(at).unwrap_or(0)
}

/// One element to give the query.
enum Item {
    Node {
        id: String,
        label: &'static str,
        props: Value,
        at: u64,
    },
    Relation {
        id: String,
        label: &'static str,
        from: String,
        to: String,
        at: u64,
    },
}

impl Item {
    fn at(&self) -> u64 {
        match self {
            Item::Node { at, .. } | Item::Relation { at, .. } => *at,
        }
    }

    async fn apply(self, g: &mut Graph) -> Result<(), QueryError> {
        match self {
            Item::Node {
                id,
                label,
                props,
                at,
            } => g.put_node(&id, label, props, at).await,
            Item::Relation {
                id,
                label,
                from,
                to,
                at,
            } => g.put_relation(&id, label, &from, &to, at).await,
        }
    }
}

/// The elements of a stored manifest (a signature becomes a `Signature`,
/// judged only when the query can see signatures).
async fn manifest_items(state: &AppState, g: &Graph, m: &GraphManifest, out: &mut Vec<Item>) {
    let at = ms(m.created_at);
    if is_signature(m) {
        if !g.wants("Signature") {
            return;
        }
        let id = signature_id(&m.repo, &m.digest);
        let verified = verdict(state, m).await;
        out.push(Item::Node {
            id: id.clone(),
            label: "Signature",
            props: json!({
                "repository": m.repo, "digest": m.digest, "subject": m.subject,
                "type": m.artifact_type, "signedAt": m.created_at, "verified": verified,
            }),
            at,
        });
        if let Some(subject) = &m.subject {
            out.push(Item::Relation {
                to: manifest_id(&m.repo, subject),
                id: format!("signs:{id}"),
                label: "SIGNS",
                from: id,
                at,
            });
        }
        return;
    }
    let id = manifest_id(&m.repo, &m.digest);
    let annotations: Value = m
        .annotations
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(Value::Null);
    out.push(Item::Node {
        id: repository_id(&m.repo),
        label: "Repository",
        props: json!({ "name": m.repo }),
        at,
    });
    out.push(Item::Node {
        id: id.clone(),
        label: "Manifest",
        props: json!({
            "repository": m.repo, "digest": m.digest, "mediaType": m.media_type,
            "artifactType": m.artifact_type, "subject": m.subject, "size": m.size,
            "pushedAt": m.created_at, "annotations": annotations,
        }),
        at,
    });
    out.push(Item::Relation {
        id: format!("holds:{id}"),
        label: "HOLDS",
        from: repository_id(&m.repo),
        to: id.clone(),
        at,
    });
    if m.artifact_type.as_deref() == Some(MODEL_MANIFEST) && g.wants("Model") {
        model_items(state, m, &id, at, out).await;
    }
    if let Some(subject) = &m.subject {
        out.push(Item::Relation {
            id: format!("refers:{id}"),
            label: "REFERS",
            to: manifest_id(&m.repo, subject),
            from: id,
            at,
        });
    }
}

/// A ModelPack manifest's `Model` node, from its config's `descriptor`
/// and `config` (nothing when the config cannot be read or parsed).
async fn model_items(state: &AppState, m: &GraphManifest, of: &str, at: u64, out: &mut Vec<Item>) {
    let Ok(digest) = m.digest.parse::<Digest>() else {
        return;
    };
    let Some(config) = crate::facts::stored_config(state, &digest, &m.media_type).await else {
        return;
    };
    let field = |part: &str, name: &str| config.get(part).and_then(|p| p.get(name)).cloned();
    let mut props = serde_json::Map::new();
    props.insert("repository".into(), json!(m.repo));
    props.insert("digest".into(), json!(m.digest));
    for name in ["name", "version", "family", "licenses"] {
        props.insert(
            name.into(),
            field("descriptor", name).unwrap_or(Value::Null),
        );
    }
    for name in [
        "architecture",
        "format",
        "paramSize",
        "precision",
        "quantization",
    ] {
        props.insert(name.into(), field("config", name).unwrap_or(Value::Null));
    }
    let id = model_id(&m.repo, &m.digest);
    out.push(Item::Node {
        id: id.clone(),
        label: "Model",
        props: Value::Object(props),
        at,
    });
    out.push(Item::Relation {
        id: format!("model:{of}"),
        label: "DESCRIBED_BY",
        from: of.to_string(),
        to: id,
        at,
    });
}

/// Whether a Notary signature passes the server's trust policy (`null`
/// without one, for cosign signatures, or when it cannot be judged).
async fn verdict(state: &AppState, m: &GraphManifest) -> Option<bool> {
    let gate = state.gate.as_ref()?;
    if m.artifact_type.as_deref() != Some(crate::policy_hook::NOTARY_SIGNATURE) {
        return None;
    }
    let digest: Digest = m.digest.parse().ok()?;
    let size = u64::try_from(m.size).unwrap_or(0);
    crate::facts::signature_verdict(state, gate, &m.repo, &digest, &m.media_type, size).await
}

fn tag_items(t: &GraphTag, at: u64, out: &mut Vec<Item>) {
    let id = tag_id(&t.repo, &t.tag);
    out.push(Item::Node {
        id: id.clone(),
        label: "Tag",
        props: json!({
            "repository": t.repo, "name": t.tag, "digest": t.digest, "updatedAt": at,
        }),
        at,
    });
    out.push(Item::Relation {
        id: format!("tags:{id}"),
        label: "TAGS",
        to: manifest_id(&t.repo, &t.digest),
        from: id,
        at,
    });
}

fn decision_items(d: &GraphDecision, out: &mut Vec<Item>) {
    let id = decision_id(&d.point, &d.subject);
    let at = ms(d.at);
    out.push(Item::Node {
        id: id.clone(),
        label: "Decision",
        props: json!({
            "point": d.point, "subject": d.subject, "repository": d.repository,
            "allowed": d.allowed, "denials": d.denials, "warnings": d.warnings,
            "at": d.at, "decision": d.id,
        }),
        at,
    });
    // Only a subject naming a manifest by digest relates to one.
    if let Some((repo, digest)) = d.subject.split_once('@') {
        out.push(Item::Relation {
            id: format!("decides:{id}"),
            label: "DECIDES",
            to: manifest_id(repo, digest),
            from: id,
            at,
        });
    }
}

/// Gives `g` the snapshot, in time order (a relation no earlier than its
/// ends), then runs what time-based functions scheduled up to `now`.
pub async fn bootstrap(
    state: &AppState,
    g: &mut Graph,
    snapshot: &GraphSnapshot,
    now: u64,
) -> Result<(), QueryError> {
    let mut items = Vec::new();
    for m in &snapshot.manifests {
        manifest_items(state, g, m, &mut items).await;
    }
    for t in &snapshot.tags {
        tag_items(t, ms(t.updated_at), &mut items);
    }
    for d in &snapshot.decisions {
        decision_items(d, &mut items);
    }
    let mut born = std::collections::HashMap::new();
    for i in &items {
        if let Item::Node { id, at, .. } = i {
            born.entry(id.clone())
                .and_modify(|t: &mut u64| *t = (*t).min(*at))
                .or_insert(*at);
        }
    }
    for i in &mut items {
        if let Item::Relation { from, to, at, .. } = i {
            for end in [&*from, &*to] {
                if let Some(t) = born.get(end) {
                    *at = (*at).max(*t);
                }
            }
        }
    }
    // Nodes before relations at the same instant; a stable sort keeps a
    // repository's node before the manifest that first names it.
    items.sort_by_key(|i| (i.at(), matches!(i, Item::Relation { .. })));
    for i in items {
        i.apply(g).await?;
    }
    g.run_due(now).await
}

fn text<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Value::as_str)
}

/// Applies one event of the feed to `g`.
pub async fn apply_event(state: &AppState, g: &mut Graph, e: &Event) -> Result<(), QueryError> {
    let at = ms(e.at);
    let data = &e.data;
    let (Some(repo), Some(digest)) = (text(data, "repository"), text(data, "digest")) else {
        if e.kind == POLICY_DECIDED {
            return decided(g, e).await;
        }
        return Ok(());
    };
    let mut items = Vec::new();
    match e.kind.as_str() {
        // `signed` follows the signature's own `pushed`, which already
        // made its node from the stored row.
        // Read only for a query that can see what a push makes.
        PUSHED
            if !["Manifest", "Signature", "Model", "Repository"]
                .iter()
                .any(|l| g.wants(l)) => {}
        PUSHED => match state.meta.graph_manifest(repo, digest).await {
            Ok(Some(m)) => manifest_items(state, g, &m, &mut items).await,
            // Deleted since: its `deleted` event follows.
            Ok(None) => {}
            Err(e) => {
                return Err(QueryError::Evaluation(format!(
                    "reading {repo}@{digest}: {e}"
                )))
            }
        },
        TAGGED => {
            if let Some(tag) = text(data, "tag") {
                let t = GraphTag {
                    repo: repo.to_string(),
                    tag: tag.to_string(),
                    digest: digest.to_string(),
                    updated_at: e.at,
                };
                tag_items(&t, at, &mut items);
            }
        }
        UNTAGGED => {
            if let Some(tag) = text(data, "tag") {
                return g.remove_node(&tag_id(repo, tag), at).await;
            }
        }
        DELETED => {
            g.remove_node(&manifest_id(repo, digest), at).await?;
            g.remove_node(&model_id(repo, digest), at).await?;
            return g.remove_node(&signature_id(repo, digest), at).await;
        }
        POLICY_DECIDED => return decided(g, e).await,
        SIGNED => {}
        _ => {}
    }
    for i in items {
        i.apply(g).await?;
    }
    Ok(())
}

async fn decided(g: &mut Graph, e: &Event) -> Result<(), QueryError> {
    let data = &e.data;
    let (Some(point), Some(subject)) = (text(data, "point"), text(data, "subject")) else {
        return Ok(());
    };
    let d = GraphDecision {
        id: data.get("decision").and_then(Value::as_i64).unwrap_or(0),
        at: e.at,
        point: point.to_string(),
        repository: text(data, "repository").map(str::to_string),
        subject: subject.to_string(),
        allowed: data
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        denials: data.get("denials").and_then(Value::as_i64).unwrap_or(0),
        warnings: data.get("warnings").and_then(Value::as_i64).unwrap_or(0),
    };
    let mut items = Vec::new();
    decision_items(&d, &mut items);
    for i in items {
        i.apply(g).await?;
    }
    Ok(())
}
