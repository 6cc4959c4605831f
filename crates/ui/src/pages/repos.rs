//! `/ui/`: the repositories, searched and paged by the registry
//! (`/pavilion/v1/repositories`), so thousands cost one page's worth.

use super::query_param;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, UiState};
use askama::Template;
use axum::extract::{Request, State};
use http::StatusCode;

/// Repositories a page shows.
const PAGE: usize = 50;

#[derive(serde::Deserialize)]
struct Listing {
    repositories: Vec<Repo>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Repo {
    name: String,
    #[serde(default)]
    tags: u64,
    #[serde(default)]
    manifests: u64,
    #[serde(default)]
    updated_at: Option<i64>,
}

struct Row {
    name: String,
    href: String,
    tags: u64,
    manifests: u64,
    updated: String,
    updated_title: String,
}

#[derive(Template)]
#[template(path = "repos.html")]
struct ReposPage {
    c: Chrome,
    q: String,
    rows: Vec<Row>,
    next: Option<String>,
    first: bool,
}

/// The page.
pub async fn page(State(ui): UiState, req: Request) -> Page {
    let query = req.uri().query().unwrap_or_default().to_string();
    let viewer = crate::viewer(&ui, req);
    let q = query_param(&query, "q").unwrap_or_default();
    let last = query_param(&query, "last").unwrap_or_default();
    let mut path = format!("/pavilion/v1/repositories?n={PAGE}");
    if !q.is_empty() {
        path.push_str(&format!("&q={}", view::query_value(&q)));
    }
    if !last.is_empty() {
        path.push_str(&format!("&last={}", view::query_value(&last)));
    }
    let listing: Listing = match ui.api.json(&viewer, &path, 4 << 20).await {
        Ok(l) => l,
        Err(f) => return respond::failure(&ui, &viewer, &f),
    };
    let rows: Vec<Row> = listing
        .repositories
        .into_iter()
        .map(|r| Row {
            href: format!("/ui/r/{}", view::path_part(&r.name)),
            name: r.name,
            tags: r.tags,
            manifests: r.manifests,
            updated: r.updated_at.map(view::ago_ms).unwrap_or_default(),
            updated_title: r.updated_at.map(view::time_ms).unwrap_or_default(),
        })
        .collect();
    let next = match (listing.next.is_some(), rows.last()) {
        (true, Some(last)) => Some(format!(
            "/ui/?q={}&last={}",
            view::query_value(&q),
            view::query_value(&last.name)
        )),
        _ => None,
    };
    let page = ReposPage {
        c: Chrome::new(&ui, &viewer, "Repositories", "repos"),
        q,
        rows,
        next,
        first: last.is_empty(),
    };
    respond::html(StatusCode::OK, page.render())
}
