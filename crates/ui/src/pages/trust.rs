//! `/ui/r/<name>/-/trust/<reference>`: each signature with its signer,
//! chain, times and verdict under the server's trust policy, and the
//! referrers graph (signatures, SBOMs, attestations, and what refers to
//! them).

use super::{card_data, Head};
use crate::api::Viewer;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, Ui};
use askama::Template;
use http::StatusCode;

/// Most referrers shown in the graph, over all levels.
const MAX_NODES: usize = 100;
/// Levels of the graph followed below the version.
const MAX_DEPTH: usize = 3;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Report {
    #[serde(default)]
    trust_policy: Option<String>,
    #[serde(default)]
    configured: bool,
    #[serde(default)]
    verified: Option<bool>,
    #[serde(default)]
    signatures: Vec<Signature>,
    #[serde(default)]
    truncated: bool,
    /// Why the trust policy could not be applied.
    #[serde(default)]
    error: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Signature {
    digest: String,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    signer: Option<String>,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    signing_time: Option<String>,
    #[serde(default)]
    expiry: Option<String>,
    #[serde(default)]
    signing_scheme: Option<String>,
    #[serde(default)]
    verified: Option<bool>,
    #[serde(default)]
    failures: Vec<String>,
}

struct SigView {
    digest: String,
    envelope: String,
    signer: String,
    chain: Vec<String>,
    signing_time: String,
    expiry: String,
    scheme: String,
    verdict: &'static str,
    verdict_class: &'static str,
    failures: Vec<String>,
}

/// A referrer in the graph, with its depth (for indentation and reading
/// order).
pub struct Node {
    depth: usize,
    digest: String,
    digest_short: String,
    kind: String,
    artifact_type: String,
    size: String,
    href: String,
}

#[derive(Template)]
#[template(path = "trust.html")]
struct TrustPage {
    c: Chrome,
    head: Head,
    digest: String,
    policy: String,
    verdict: &'static str,
    verdict_class: &'static str,
    signatures: Vec<SigView>,
    truncated: bool,
    report_error: Option<String>,
    nodes: Vec<Node>,
    nodes_cut: bool,
}

/// The page.
pub async fn page(ui: &Ui, viewer: &Viewer, name: &str, reference: &str) -> Page {
    let m = match card_data::manifest(ui, viewer, name, reference).await {
        Ok(m) => m,
        Err(f) => return respond::failure(ui, viewer, &f),
    };
    let name_path = view::path_part(name);
    let path = format!("/pavilion/v1/signatures/{name_path}/manifests/{}", m.digest);
    let (report, report_error) = match ui.api.json::<Report>(viewer, &path, 4 << 20).await {
        Ok(r) => {
            let e = r.error.clone();
            (r, e)
        }
        Err(f) => (Report::default(), Some(f.message)),
    };
    let (verdict, verdict_class) = verdict(report.verified, report.configured);
    let (nodes, nodes_cut) = graph(ui, viewer, name, &m.digest).await;
    let page = TrustPage {
        c: Chrome::new(ui, viewer, format!("Trust · {name}:{reference}"), "repos"),
        head: Head::new(name, reference, "trust"),
        digest: m.digest,
        policy: report.trust_policy.clone().unwrap_or_default(),
        verdict,
        verdict_class,
        truncated: report.truncated,
        signatures: report.signatures.into_iter().map(sig_view).collect(),
        report_error,
        nodes,
        nodes_cut,
    };
    respond::html(StatusCode::OK, page.render())
}

fn verdict(v: Option<bool>, configured: bool) -> (&'static str, &'static str) {
    match (v, configured) {
        (Some(true), _) => ("verified", "ok"),
        (Some(false), _) => ("not verified", "bad"),
        (None, true) => ("not judged", "warn"),
        (None, false) => ("no trust policy on the server", "muted"),
    }
}

fn sig_view(s: Signature) -> SigView {
    let (verdict, verdict_class) = verdict(s.verified, true);
    let opt = |o: Option<String>| o.map(|v| view::clip(&v, 300)).unwrap_or_else(|| "—".into());
    SigView {
        digest: s.digest,
        envelope: opt(s.media_type),
        signer: opt(s.signer),
        chain: s
            .chain
            .iter()
            .take(10)
            .map(|c| view::clip(c, 300))
            .collect(),
        signing_time: opt(s.signing_time),
        expiry: s
            .expiry
            .map(|v| view::clip(&v, 60))
            .unwrap_or_else(|| "none".into()),
        scheme: opt(s.signing_scheme),
        verdict,
        verdict_class,
        failures: s
            .failures
            .iter()
            .take(20)
            .map(|f| view::clip(f, 300))
            .collect(),
    }
}

#[derive(serde::Deserialize)]
struct Referrers {
    #[serde(default)]
    manifests: Vec<pavilion_oci::Descriptor>,
}

/// The referrers of `digest`, depth first (each referrer followed by its
/// own), to [`MAX_DEPTH`] levels and at most [`MAX_NODES`] in all; and
/// whether some were left out.
async fn graph(ui: &Ui, viewer: &Viewer, name: &str, digest: &str) -> (Vec<Node>, bool) {
    let name_path = view::path_part(name);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::from([digest.to_string()]);
    let mut stack: Vec<(usize, pavilion_oci::Descriptor)> = Vec::new();
    push_referrers(ui, viewer, &name_path, digest, 0, &mut stack).await;
    while let Some((depth, d)) = stack.pop() {
        if out.len() >= MAX_NODES {
            return (out, true);
        }
        let child = d.digest.to_string();
        if !seen.insert(child.clone()) {
            continue;
        }
        let artifact = d.artifact_type.clone().unwrap_or_default();
        out.push(Node {
            depth,
            digest_short: view::short_digest(&child),
            kind: super::versions::kind(Some(&artifact)),
            artifact_type: view::clip(&artifact, 120),
            size: view::bytes(d.size),
            href: format!("/ui/r/{name_path}/-/v/{child}"),
            digest: child.clone(),
        });
        if depth + 1 < MAX_DEPTH {
            push_referrers(ui, viewer, &name_path, &child, depth + 1, &mut stack).await;
        }
    }
    (out, false)
}

/// Pushes the referrers of `subject` so that the first pops first.
async fn push_referrers(
    ui: &Ui,
    viewer: &Viewer,
    name_path: &str,
    subject: &str,
    depth: usize,
    stack: &mut Vec<(usize, pavilion_oci::Descriptor)>,
) {
    let path = format!("/v2/{name_path}/referrers/{subject}");
    if let Ok(list) = ui.api.json::<Referrers>(viewer, &path, 4 << 20).await {
        for d in list.manifests.into_iter().take(MAX_NODES).rev() {
            stack.push((depth, d));
        }
    }
}
