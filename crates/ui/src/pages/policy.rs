//! `/ui/r/<name>/-/policy/<reference>`: the latest decision recorded for
//! the version at each point (push, pull), with the failing rules'
//! messages and the input that explains them, and what the push rules say
//! about it now.

use super::{card_data, Head};
use crate::api::Viewer;
use crate::chrome::Chrome;
use crate::respond;
use crate::view;
use crate::{Page, Ui};
use askama::Template;
use http::StatusCode;

/// Most of a decision's input shown.
const MAX_DETAIL: usize = 16 << 10;
/// The points whose decisions are about a stored version.
const POINTS: [&str; 2] = ["push", "pull"];

#[derive(serde::Deserialize)]
struct Decisions {
    #[serde(default)]
    decisions: Vec<Decision>,
}

/// What was decided (a recorded decision or the report of now).
#[derive(serde::Deserialize)]
struct Verdict {
    #[serde(default)]
    allowed: bool,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    warn: Vec<String>,
    #[serde(default)]
    detail: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct Decision {
    #[serde(default)]
    at: i64,
    #[serde(flatten)]
    verdict: Verdict,
}

struct PointView {
    point: &'static str,
    found: bool,
    when: String,
    allowed: bool,
    deny: Vec<String>,
    warn: Vec<String>,
    detail: String,
    error: Option<String>,
}

struct NowView {
    allowed: bool,
    deny: Vec<String>,
    warn: Vec<String>,
    detail: String,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    c: Chrome,
    head: Head,
    digest: String,
    points: Vec<PointView>,
    now: Option<NowView>,
    now_note: String,
}

/// The page.
pub async fn page(ui: &Ui, viewer: &Viewer, name: &str, reference: &str) -> Page {
    let m = match card_data::manifest(ui, viewer, name, reference).await {
        Ok(m) => m,
        Err(f) => return respond::failure(ui, viewer, &f),
    };
    let subject = format!("{name}@{}", m.digest);
    let mut points = Vec::new();
    for point in POINTS {
        let path = format!(
            "/pavilion/v1/decisions?point={point}&n=1&subject={}",
            view::query_value(&subject)
        );
        let got = ui.api.json::<Decisions>(viewer, &path, 8 << 20).await;
        points.push(match got {
            Ok(d) => match d.decisions.into_iter().next() {
                Some(d) => PointView {
                    point,
                    found: true,
                    when: view::time_ms(d.at),
                    allowed: d.verdict.allowed,
                    deny: clip_all(&d.verdict.deny),
                    warn: clip_all(&d.verdict.warn),
                    detail: pretty(&d.verdict.detail),
                    error: None,
                },
                None => empty(point, None),
            },
            Err(f) => empty(point, Some(f.message)),
        });
    }
    let path = format!(
        "/pavilion/v1/policy/{}/manifests/{}",
        view::path_part(name),
        m.digest
    );
    let (now, now_note) = match ui.api.json::<Verdict>(viewer, &path, 8 << 20).await {
        Ok(r) => (
            Some(NowView {
                allowed: r.allowed,
                deny: clip_all(&r.deny),
                warn: clip_all(&r.warn),
                detail: pretty(&r.detail),
            }),
            String::new(),
        ),
        Err(f) => (None, f.message),
    };
    let page = PolicyPage {
        c: Chrome::new(ui, viewer, format!("Policy · {name}:{reference}"), "repos"),
        head: Head::new(name, reference, "policy"),
        digest: m.digest,
        points,
        now,
        now_note,
    };
    respond::html(StatusCode::OK, page.render())
}

fn empty(point: &'static str, error: Option<String>) -> PointView {
    PointView {
        point,
        found: false,
        when: String::new(),
        allowed: false,
        deny: Vec::new(),
        warn: Vec::new(),
        detail: String::new(),
        error,
    }
}

fn clip_all(v: &[String]) -> Vec<String> {
    v.iter().take(50).map(|s| view::clip(s, 500)).collect()
}

/// The input, indented, cut to [`MAX_DETAIL`] characters.
fn pretty(v: &serde_json::Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    view::clip(&text, MAX_DETAIL)
}
