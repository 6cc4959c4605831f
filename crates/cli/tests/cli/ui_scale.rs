//! The repository list with 5,000 repositories: it pages and searches in
//! the registry, so it loads like a list of fifty. The load time is
//! measured in the browser (Navigation Timing) and recorded, not asserted
//! (BENCHMARKS.md, "Web UI").

use crate::common::browser::{screenshot_dir, Browser};
use crate::common::*;
use crate::ui_support::*;
use futures::StreamExt;
use std::time::Duration;

/// Repositories pushed.
const REPOS: usize = 5_000;
/// Timed loads of each page (the median is kept).
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_list_stays_fast_with_5000_repositories() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    // An empty index needs no blobs: one PUT makes a repository.
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let c = client();
    let results: Vec<u16> = futures::stream::iter(0..REPOS)
        .map(|i| {
            let c = c.clone();
            let url = s.url(&format!("/v2/fleet/repo-{i:05}/manifests/v1"));
            async move {
                c.put(url)
                    .header("content-type", "application/vnd.oci.image.index.v1+json")
                    .body(index.to_vec())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        results.iter().all(|s| *s == 201),
        "every repository created"
    );

    let mut page = browser.new_page();
    page.set_timeout(Duration::from_secs(60));
    page.set_viewport(1280, 900, false);
    let mut timings = serde_json::Map::new();
    for (name, path) in [
        ("list", "/ui/".to_string()),
        ("list, page 50", "/ui/?last=fleet/repo-02450".to_string()),
        ("search", "/ui/?q=repo-0499".to_string()),
    ] {
        // The first load warms the server's caches; the next five are
        // timed and their median kept.
        page.navigate(&s.url(&path));
        let mut loads = Vec::new();
        for _ in 0..ROUNDS {
            page.navigate(&s.url(&path));
            let t = page.navigation_timing();
            let ms = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
            loads.push((
                ms("responseEnd") - ms("startTime"),
                ms("loadEventEnd") - ms("startTime"),
            ));
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let row = serde_json::json!({
            "response_end_ms": median(loads.iter().map(|l| l.0).collect()),
            "load_ms": median(loads.iter().map(|l| l.1).collect()),
            "rows": count(&mut page, "#repositories tbody tr"),
        });
        println!("ui load with {REPOS} repositories, {name}: {row}");
        timings.insert(name.to_string(), row);
    }
    // The same first page as the JSON the page is made from, fetched by
    // the same browser: what rendering HTML adds to the API call.
    let api = page.eval(&format!(
        "(async () => {{ const v = []; for (let i = 0; i < {ROUNDS}; i++) {{ const t = performance.now(); await (await fetch('/pavilion/v1/repositories?n=50')).text(); v.push(performance.now() - t); }} v.sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; }})()"
    ));
    let api_ms = api.as_f64().unwrap_or(f64::NAN);
    let page_ms = timings["list"]["response_end_ms"]
        .as_f64()
        .unwrap_or(f64::NAN);
    println!(
        "ui first page {page_ms:.1} ms, its API call {api_ms:.1} ms: {:.2}x",
        page_ms / api_ms
    );
    timings.insert("api_first_page_ms".into(), api.clone());
    // What was timed is what a user would see: a full first page, the
    // 50th page, and the ten names the search matches.
    assert_eq!(timings["list"]["rows"], 50);
    assert_eq!(timings["list, page 50"]["rows"], 50);
    assert_eq!(timings["search"]["rows"], 10);
    page.navigate(&s.url("/ui/"));
    assert_eq!(text(&mut page, "#repositories td.name"), "fleet/repo-00000");
    assert!(count(&mut page, "a[rel=next]") == 1, "a next page");
    page.screenshot_png(screenshot_dir().join("repositories-5000-1280.png"));
    let out = screenshot_dir().join("timings.json");
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    std::fs::write(&out, serde_json::to_string_pretty(&timings).unwrap()).unwrap();
}
