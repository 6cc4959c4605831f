//! `/ui/r/<name>`: a repository's versions (its tags), with digests,
//! sizes, push times and whether each is signed.

use super::query_param;
use crate::api::Viewer;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, Ui};
use askama::Template;
use http::StatusCode;

/// Tags a page shows.
const PAGE: usize = 100;

#[derive(serde::Deserialize)]
struct Listing {
    tags: Vec<TagRow>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagRow {
    tag: String,
    digest: String,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    total_size: Option<u64>,
    #[serde(default)]
    pushed_at: Option<i64>,
    #[serde(default)]
    signatures: u64,
}

/// What the viewer may do on the repository.
#[derive(serde::Deserialize, Default)]
pub struct Allowed {
    #[serde(default)]
    pub delete: bool,
}

/// What the viewer may do on `name` (nothing, when it cannot be asked).
pub async fn allowed(ui: &Ui, viewer: &Viewer, name: &str) -> Allowed {
    let path = format!("/pavilion/v1/access/{}", view::path_part(name));
    ui.api.json(viewer, &path, 4096).await.unwrap_or_default()
}

struct Row {
    tag: String,
    href: String,
    digest: String,
    digest_short: String,
    kind: String,
    size: String,
    pushed: String,
    pushed_title: String,
    signatures: u64,
}

#[derive(Template)]
#[template(path = "versions.html")]
struct VersionsPage {
    c: Chrome,
    name: String,
    name_path: String,
    rows: Vec<Row>,
    next: Option<String>,
    may_delete: bool,
}

/// The page.
pub async fn page(ui: &Ui, viewer: &Viewer, name: &str, query: &str) -> Page {
    let last = query_param(query, "last").unwrap_or_default();
    let mut path = format!(
        "/pavilion/v1/repositories/{}/tags?n={PAGE}",
        view::path_part(name)
    );
    if !last.is_empty() {
        path.push_str(&format!("&last={}", view::query_value(&last)));
    }
    let listing: Listing = match ui.api.json(viewer, &path, 8 << 20).await {
        Ok(l) => l,
        Err(f) => return respond::failure(ui, viewer, &f),
    };
    let may = allowed(ui, viewer, name).await;
    let name_path = view::path_part(name);
    let rows: Vec<Row> = listing
        .tags
        .into_iter()
        .map(|t| Row {
            href: format!("/ui/r/{name_path}/-/v/{}", view::path_part(&t.tag)),
            digest_short: view::short_digest(&t.digest),
            kind: kind(t.artifact_type.as_deref()),
            size: view::bytes(t.total_size.unwrap_or(t.size)),
            pushed: t.pushed_at.map(view::ago_ms).unwrap_or_default(),
            pushed_title: t.pushed_at.map(view::time_ms).unwrap_or_default(),
            signatures: t.signatures,
            tag: t.tag,
            digest: t.digest,
        })
        .collect();
    let next = match (listing.next.is_some(), rows.last()) {
        (true, Some(r)) => Some(format!(
            "/ui/r/{name_path}?last={}",
            view::query_value(&r.tag)
        )),
        _ => None,
    };
    let page = VersionsPage {
        c: Chrome::new(ui, viewer, name, "repos"),
        name: name.to_string(),
        name_path,
        rows,
        next,
        may_delete: may.delete,
    };
    respond::html(StatusCode::OK, page.render())
}

/// A short word for what a manifest holds.
pub fn kind(artifact_type: Option<&str>) -> String {
    match artifact_type {
        Some(t) if t.contains("cncf.model") || t.contains("cnai.model") => "model".into(),
        Some(t) if t.contains("image.config") || t.contains("container.image") => "image".into(),
        Some(t) if t.contains("notary.signature") => "signature".into(),
        Some(t) if t.contains("spdx") || t.contains("cyclonedx") => "SBOM".into(),
        Some(t) => view::clip(t, 40),
        None => "index".into(),
    }
}
