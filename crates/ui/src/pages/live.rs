//! `/ui/live`: the change feed's newest events and the transfers in
//! flight, then both as they happen (the script follows
//! `/ui/live/events` and `/ui/live/transfers`, which relay the registry's
//! own Server-Sent Events streams as the viewer).

use crate::api::Viewer;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, Ui, UiState};
use askama::Template;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use http::{header, HeaderValue, Method, StatusCode};

/// Events shown when the page opens.
const RECENT: i64 = 20;

#[derive(serde::Deserialize)]
struct Feed {
    #[serde(default)]
    events: Vec<serde_json::Value>,
    #[serde(default)]
    head: i64,
}

struct EventRow {
    seq: String,
    time: String,
    kind: String,
    what: String,
}

struct TransferRow {
    direction: String,
    repository: String,
    digest: String,
    progress: String,
    rate: String,
    eta: String,
}

#[derive(Template)]
#[template(path = "live.html")]
struct LivePage {
    c: Chrome,
    events: Vec<EventRow>,
    head: i64,
    events_note: Option<String>,
    transfers: Vec<TransferRow>,
    transfers_note: Option<String>,
}

/// The page.
pub async fn page(State(ui): UiState, req: Request) -> Page {
    let viewer = crate::viewer(&ui, req);
    let (events, head, events_note) = match recent(&ui, &viewer).await {
        Ok((e, head)) => (e, head, None),
        Err(why) => (Vec::new(), 0, Some(why)),
    };
    let (transfers, transfers_note) = match ui
        .api
        .json::<pavilion_oci::transfers::TransferList>(&viewer, "/pavilion/v1/transfers", 4 << 20)
        .await
    {
        Ok(t) => (t.transfers.iter().map(transfer_row).collect(), None),
        Err(f) => (Vec::new(), Some(f.message)),
    };
    let page = LivePage {
        c: Chrome::new(&ui, &viewer, "Live", "live"),
        events,
        head,
        events_note,
        transfers,
        transfers_note,
    };
    respond::html(StatusCode::OK, page.render())
}

/// The newest events, newest first, and the newest sequence number.
async fn recent(ui: &Ui, viewer: &Viewer) -> Result<(Vec<EventRow>, i64), String> {
    let head: Feed = ui
        .api
        .json(viewer, "/pavilion/v1/events?limit=1", 1 << 20)
        .await
        .map_err(|f| f.message)?;
    let after = (head.head - RECENT).max(0);
    let path = format!("/pavilion/v1/events?after={after}&limit={RECENT}");
    let feed: Feed = ui
        .api
        .json(viewer, &path, 8 << 20)
        .await
        .map_err(|f| f.message)?;
    let head = feed.head.max(head.head);
    Ok((feed.events.iter().rev().map(event_row).collect(), head))
}

fn event_row(e: &serde_json::Value) -> EventRow {
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let d = &e["data"];
    let mut what = s(&d["repository"]).unwrap_or_default();
    if let Some(t) = s(&d["tag"]) {
        what.push(':');
        what.push_str(&t);
    }
    if let Some(dg) = s(&d["digest"]) {
        what.push(' ');
        what.push_str(&view::short_digest(&dg));
    }
    EventRow {
        seq: e["pavilionseq"].to_string(),
        time: whole_seconds(&s(&e["time"]).unwrap_or_default()),
        kind: view::clip(&s(&e["type"]).unwrap_or_default(), 80),
        what: view::clip(&what, 300),
    }
}

/// An RFC 3339 time as `2026-12-07 07:12:44Z` (the script shows new
/// events the same way).
fn whole_seconds(t: &str) -> String {
    let t = t.replace('T', " ");
    match t.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => t,
    }
}

fn transfer_row(t: &pavilion_oci::transfers::Transfer) -> TransferRow {
    TransferRow {
        direction: t.direction.clone(),
        repository: view::clip(&t.repository, 200),
        digest: t
            .digest
            .as_deref()
            .map(view::short_digest)
            .unwrap_or_default(),
        progress: match t.total {
            Some(total) => format!("{} of {}", view::bytes(t.bytes), view::bytes(total)),
            None => view::bytes(t.bytes),
        },
        rate: format!("{}/s", view::bytes(t.rate_bytes_per_second as u64)),
        eta: t
            .eta_seconds
            .map(|s| format!("{s:.0} s"))
            .unwrap_or_default(),
    }
}

/// `/ui/live/events`: the feed's SSE stream, relayed as the viewer, from
/// `?after=` or the browser's `Last-Event-ID` when it reconnects.
pub async fn events(State(ui): UiState, req: Request) -> Page {
    let query = req.uri().query().unwrap_or_default().to_string();
    let resume = req.headers().get("last-event-id").cloned();
    let viewer = crate::viewer(&ui, req);
    let after = super::query_param(&query, "after")
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    let path = format!("/pavilion/v1/events?after={after}");
    let mut headers = vec![(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    )];
    if let Some(r) = resume {
        headers.push((http::HeaderName::from_static("last-event-id"), r));
    }
    relay(&ui, &viewer, &path, &headers).await
}

/// `/ui/live/transfers`: the transfers SSE stream, relayed as the viewer.
pub async fn transfers(State(ui): UiState, req: Request) -> Page {
    let viewer = crate::viewer(&ui, req);
    let headers = [(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    )];
    relay(&ui, &viewer, "/pavilion/v1/transfers", &headers).await
}

/// The API's answer passed through: a stream stays a stream; an error
/// keeps its status (the script shows "reconnecting").
async fn relay(
    ui: &Ui,
    viewer: &Viewer,
    path: &str,
    headers: &[(header::HeaderName, HeaderValue)],
) -> Page {
    let resp = ui.api.send(viewer, Method::GET, path, headers).await;
    if resp.status().is_success() {
        return resp.into_response();
    }
    (resp.status(), "the stream is not available to you").into_response()
}
