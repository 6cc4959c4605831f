//! `/ui/storage`: bytes per repository, what deduplication saves, quotas
//! and the last garbage collection (`/pavilion/v1/usage`).

use super::query_param;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, UiState};
use askama::Template;
use axum::extract::{Request, State};
use http::StatusCode;

/// Repositories a page shows.
const PAGE: usize = 100;

#[derive(serde::Deserialize)]
struct Usage {
    #[serde(default)]
    repositories: Vec<Repo>,
    totals: Totals,
    #[serde(default)]
    last_gc: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Repo {
    name: String,
    #[serde(default)]
    blobs: u64,
    #[serde(default)]
    blob_bytes: u64,
    #[serde(default)]
    manifests: u64,
    #[serde(default)]
    manifest_bytes: u64,
    #[serde(default)]
    quota: Option<Quota>,
}

#[derive(serde::Deserialize)]
struct Quota {
    quota: String,
    limit: u64,
    used: u64,
}

#[derive(serde::Deserialize)]
struct Totals {
    #[serde(default)]
    stored_blobs: u64,
    #[serde(default)]
    stored_blob_bytes: u64,
    #[serde(default)]
    stored_manifest_bytes: u64,
    #[serde(default)]
    charged_bytes: u64,
    #[serde(default)]
    dedup_saving_bytes: u64,
}

struct Row {
    name: String,
    href: String,
    bytes: String,
    blobs: u64,
    manifests: u64,
    quota: String,
}

#[derive(Template)]
#[template(path = "storage.html")]
struct StoragePage {
    c: Chrome,
    stored: String,
    stored_blobs: u64,
    charged: String,
    saving: String,
    saving_pct: String,
    last_gc: String,
    rows: Vec<Row>,
    next: Option<String>,
}

/// The page.
pub async fn page(State(ui): UiState, req: Request) -> Page {
    let query = req.uri().query().unwrap_or_default().to_string();
    let viewer = crate::viewer(&ui, req);
    let mut path = format!("/pavilion/v1/usage?n={PAGE}");
    if let Some(last) = query_param(&query, "last").filter(|l| !l.is_empty()) {
        path.push_str(&format!("&last={}", view::query_value(&last)));
    }
    let u: Usage = match ui.api.json(&viewer, &path, 8 << 20).await {
        Ok(u) => u,
        Err(f) => return respond::failure(&ui, &viewer, &f),
    };
    let t = &u.totals;
    let stored = t.stored_blob_bytes + t.stored_manifest_bytes;
    let pct = if t.charged_bytes > 0 {
        format!(
            "{:.1}%",
            t.dedup_saving_bytes as f64 * 100.0 / t.charged_bytes as f64
        )
    } else {
        "0%".into()
    };
    let next = (u.repositories.len() >= PAGE)
        .then(|| u.repositories.last())
        .flatten()
        .map(|r| format!("/ui/storage?last={}", view::query_value(&r.name)));
    let page = StoragePage {
        c: Chrome::new(&ui, &viewer, "Storage", "storage"),
        stored: view::bytes(stored),
        stored_blobs: t.stored_blobs,
        charged: view::bytes(t.charged_bytes),
        saving: view::bytes(t.dedup_saving_bytes),
        saving_pct: pct,
        last_gc: last_gc(u.last_gc.as_ref()),
        rows: u
            .repositories
            .into_iter()
            .map(|r| Row {
                href: format!("/ui/r/{}", view::path_part(&r.name)),
                bytes: view::bytes(r.blob_bytes + r.manifest_bytes),
                blobs: r.blobs,
                manifests: r.manifests,
                quota: r
                    .quota
                    .map(|q| {
                        format!(
                            "{} of {} ({})",
                            view::bytes(q.used),
                            view::bytes(q.limit),
                            view::clip(&q.quota, 80)
                        )
                    })
                    .unwrap_or_default(),
                name: r.name,
            })
            .collect(),
        next,
    };
    respond::html(StatusCode::OK, page.render())
}

/// One line on the last collection, from whatever it recorded.
fn last_gc(v: Option<&serde_json::Value>) -> String {
    let Some(v) = v else {
        return "No garbage collection has run yet.".into();
    };
    let num = |k: &str| v.get(k).and_then(|x| x.as_u64());
    let mut parts = Vec::new();
    if let Some(ms) = v.get("started_at").and_then(|x| x.as_i64()) {
        parts.push(format!("started {}", view::time_ms(ms)));
    }
    if let Some(n) = num("manifests") {
        parts.push(format!("{n} manifests"));
    }
    if let Some(n) = num("blobs") {
        parts.push(format!("{n} blobs deleted"));
    }
    if let Some(n) = num("bytes") {
        parts.push(format!("{} freed", view::bytes(n)));
    }
    if let Some(e) = v.get("error").and_then(|x| x.as_str()) {
        parts.push(format!("stopped: {}", view::clip(e, 200)));
    }
    if parts.is_empty() {
        "The last garbage collection recorded no figures.".into()
    } else {
        format!("Last garbage collection: {}.", parts.join(", "))
    }
}
