//! The web UI in a real headless Chromium: every page renders the data of
//! a model this test pushes, signs, pulls and is denied, the copy buttons
//! hold the right commands, hostile README and annotations stay inert,
//! pages work by keyboard and in dark mode, and each page is shot at a
//! phone and a desktop width into target/ui-screenshots/.

use crate::common::browser::Browser;
use crate::common::notation::{policy_dir, User};
use crate::common::*;
use crate::ui_support::*;
use std::time::Duration;

const PUSH_RULES: &str = r#"
package pavilion.push
import rego.v1

deny contains msg if {
    some t in input.tags
    startswith(t, "prod")
    not input.signature.verified
    msg := sprintf("tag %s needs a valid signature", [t])
}
"#;

const PULL_RULES: &str = r#"
package pavilion.pull
import rego.v1

# Only v2's pulls are judged: signing v1 reads it first.
deny contains msg if {
    endswith(input.reference, "models/demo:v2")
    not input.signature.verified
    msg := sprintf("%s is not signed by a trusted signer", [input.reference])
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_shows_a_pushed_model() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let user = User::new();
    let rules = policy_dir(&[("push.rego", PUSH_RULES), ("pull.rego", PULL_RULES)]);
    let Some(s) = user.gated_server(Backend::Sqlite, rules.path()) else {
        return;
    };
    let reg = s.addr.clone();
    let tmp = tempfile::tempdir().unwrap();
    let push = |variant: u32, tag: &str| {
        let dir = demo_model(tmp.path(), variant);
        user.run(&[
            "push",
            &format!("{reg}/models/demo:{tag}"),
            dir.to_str().unwrap(),
            "--license",
            "MIT",
            "--architecture",
            "LlamaForCausalLM",
            "--quantization",
            "none",
        ])
    };
    assert!(push(1, "v1").status.success());
    user.sign(&format!("{reg}/models/demo:v1"));
    assert!(push(2, "v2").status.success());
    // Denied: prod on the unsigned v2 (a push decision about v2's digest);
    // a pull of v2 (a pull decision).
    let denied = push(2, "prod");
    assert!(!denied.status.success());
    let r = request(&s, reqwest::Method::GET, "/v2/models/demo/manifests/v2").await;
    assert_eq!(r.status(), 403);
    push_evil(&s).await;
    // The same files in another repository: stored once, charged twice.
    let mirror = demo_model(tmp.path(), 1);
    user.ok(&[
        "push",
        &format!("{reg}/models/mirror:v1"),
        mirror.to_str().unwrap(),
    ]);

    let base = s.url("/ui");
    let mut page = browser.new_page();
    page.set_timeout(Duration::from_secs(60));

    // Repositories.
    shoot(&mut page, &format!("{base}/"), "repositories");
    let names = page
        .eval("[...document.querySelectorAll('#repositories td.name')].map(t => t.textContent)");
    assert_eq!(
        names,
        serde_json::json!(["evil/model", "models/demo", "models/mirror"])
    );
    page.navigate(&format!("{base}/?q=demo"));
    assert_eq!(count(&mut page, "#repositories tbody tr"), 1);

    // Versions: both tags, v1 signed, v2 not; no delete without a grant
    // to ask about (no authentication: anyone may delete, so it is shown).
    shoot(&mut page, &format!("{base}/r/models/demo"), "versions");
    let rows = page.eval(
        "[...document.querySelectorAll('#versions tbody tr')].map(r => [r.cells[0].textContent.trim(), r.cells[5].textContent.trim()])",
    );
    assert_eq!(
        rows,
        serde_json::json!([["v1", "signed (1)"], ["v2", "unsigned"]])
    );

    // The card.
    let card = format!("{base}/r/models/demo/-/v/v1");
    shoot(&mut page, &card, "model-card");
    let facts = text(&mut page, "#facts");
    for want in ["LlamaForCausalLM", "MIT", "none", "safetensors"] {
        assert!(facts.contains(want), "facts lack {want}: {facts}");
    }
    assert!(text(&mut page, "#readme h1").contains("Demo model"));
    assert_eq!(count(&mut page, "#readme table"), 1, "README tables render");
    assert!(text(&mut page, "#license").starts_with("MIT License"));
    let tensors = text(&mut page, "#tensors");
    assert!(
        tensors.contains("3 tensors in 2 safetensors files"),
        "{tensors}"
    );
    assert!(
        tensors.contains(&format!("{} parameters", 512 * 64 * 2 + 64)),
        "{tensors}"
    );
    assert!(text(&mut page, "#largest").contains("512 × 64"));
    let files =
        page.eval("[...document.querySelectorAll('#files td.name')].map(t => t.textContent)");
    assert_eq!(
        files,
        serde_json::json!([
            "LICENSE",
            "README.md",
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "tokenizer.json"
        ])
    );
    // The copy buttons hold the commands of each tool, and copy them.
    assert_eq!(
        text(&mut page, "#cmd-pavilion"),
        format!("pavilion pull {reg}/models/demo:v1 -o ./demo")
    );
    assert_eq!(
        text(&mut page, "#cmd-oras"),
        format!("oras pull {reg}/models/demo:v1")
    );
    assert_eq!(
        count(&mut page, "#cmd-docker"),
        0,
        "no docker command for a model"
    );
    page.click("button[data-copy='cmd-pavilion']");
    page.wait_for(
        "document.querySelector(\"button[data-copy='cmd-pavilion']\").textContent === 'Copied'",
        Duration::from_secs(5),
    );

    // Dark mode: the same card, other colours, still readable.
    page.command(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .unwrap();
    page.navigate(&card);
    let bg = page.eval("getComputedStyle(document.body).backgroundColor");
    assert_eq!(bg, "rgb(15, 20, 25)", "dark background");
    page.screenshot_png(crate::common::browser::screenshot_dir().join("model-card-dark-1280.png"));
    page.command(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": "light"}]}),
    )
    .unwrap();

    // Trust: v1's signature verifies under the server's trust policy.
    shoot(
        &mut page,
        &format!("{base}/r/models/demo/-/trust/v1"),
        "trust",
    );
    assert!(text(&mut page, "#trust-verdict").contains("verified"));
    assert_eq!(count(&mut page, "#signatures .signature"), 1);
    let sig = text(&mut page, "#signatures .signature");
    assert!(sig.contains("alice"), "signer shown: {sig}");
    assert_eq!(
        count(&mut page, "#referrers tbody tr"),
        1,
        "the signature in the graph"
    );
    page.navigate(&format!("{base}/r/models/demo/-/trust/v2"));
    assert!(text(&mut page, "#trust-verdict").contains("not verified"));

    // Policy: v2's denials with their messages.
    shoot(
        &mut page,
        &format!("{base}/r/models/demo/-/policy/v2"),
        "policy",
    );
    let push_card = text(&mut page, "#decisions section:nth-child(1)");
    assert!(
        push_card.contains("denied") && push_card.contains("tag prod needs a valid signature"),
        "{push_card}"
    );
    let pull_card = text(&mut page, "#decisions section:nth-child(2)");
    assert!(
        pull_card.contains("denied") && pull_card.contains("is not signed by a trusted signer"),
        "{pull_card}"
    );

    // Compare v1 and v2.
    shoot(
        &mut page,
        &format!("{base}/r/models/demo/-/compare?a=v1&b=v2"),
        "compare",
    );
    let changes = page.eval(
        "[...document.querySelectorAll('#changes tbody tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent])",
    );
    assert_eq!(
        changes,
        serde_json::json!([
            ["README.md", "changed"],
            ["generation_config.json", "added"]
        ])
    );

    // Storage: every repository, with the mirror's saving.
    shoot(&mut page, &format!("{base}/storage"), "storage");
    assert_eq!(count(&mut page, "#usage tbody tr"), 3);
    assert!(!text(&mut page, "#saving").starts_with("0 B"));

    // Live: the newest events at once, then a push as it happens, and an
    // upload in flight (its body held open by the test).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let start = client()
        .post(s.url("/v2/live/upload/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = hdr(&start, "location").unwrap();
    let body =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let upload = tokio::spawn(
        client()
            .patch(s.url(&location))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    tx.send(Ok(vec![7u8; 1 << 20])).await.unwrap();
    page.set_viewport(1280, 900, false);
    page.navigate(&format!("{base}/live"));
    assert!(
        count(&mut page, "#live-events tbody tr") >= 5,
        "the newest events are shown"
    );
    page.wait_for(
        "[...document.querySelectorAll('#live-transfers tbody td')].some(t => t.textContent === 'live/upload')",
        Duration::from_secs(20),
    );
    push_image(&s, "live/app", "v1", "live").await;
    page.wait_for(
        "[...document.querySelectorAll('#live-events tbody td')].some(t => t.textContent.startsWith('live/app:v1'))",
        Duration::from_secs(20),
    );
    let dir = crate::common::browser::screenshot_dir();
    page.screenshot_png(dir.join("live-1280.png"));
    page.set_viewport(390, 844, true);
    page.screenshot_png(dir.join("live-390.png"));
    clean(&mut page, "live");
    drop(tx);
    let _ = upload.await;

    // The hostile artifact: nothing runs, every trick is shown as text.
    shoot(
        &mut page,
        &format!("{base}/r/evil/model/-/v/v1"),
        "hostile-readme",
    );
    assert_eq!(
        count(&mut page, "#readme script, #readme img, #readme iframe"),
        0
    );
    let readme = text(&mut page, "#readme");
    assert!(
        readme.contains("<script>alert('readme')</script>"),
        "{readme}"
    );
    let hrefs = page.eval("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))");
    for h in hrefs.as_array().unwrap() {
        let h = h.as_str().unwrap_or_default().to_ascii_lowercase();
        assert!(
            !h.contains("script:") && !h.starts_with("data:"),
            "unsafe link {h}"
        );
    }
    assert!(text(&mut page, "#facts").contains("<img src=x onerror=alert('arch')>"));
    let annotations = text(&mut page, "#annotations");
    assert!(annotations.contains("<img src=x onerror=alert('annotation')>"));
    assert!(
        annotations.len() < 5_000,
        "the 200,000-character annotation is clipped"
    );
    clean(&mut page, "hostile-readme");

    // Keyboard: the first Tab reaches the skip link, the next the brand.
    page.navigate(&format!("{base}/"));
    page.press_key("Tab");
    assert_eq!(
        page.eval("document.activeElement.textContent"),
        "Skip to content"
    );
    page.press_key("Tab");
    assert_eq!(page.eval("document.activeElement.textContent"), "Pavilion");
    // Everything that takes input has a label.
    let unlabelled = page.eval(
        "[...document.querySelectorAll('input:not([type=hidden]), select')].filter(i => !i.labels || i.labels.length === 0).length",
    );
    assert_eq!(unlabelled, 0);
    // No layout shift while a page loads (the card reads the most), not
    // counting shifts the viewer's own input caused.
    for url in [format!("{base}/"), card.clone()] {
        page.navigate(&url);
        let cls = page.eval(
            "new Promise(r => { let s = 0; new PerformanceObserver(l => { for (const e of l.getEntries()) if (!e.hadRecentInput) s += e.value; }).observe({type: 'layout-shift', buffered: true}); setTimeout(() => r(s), 300); })",
        );
        assert_eq!(cls.as_f64(), Some(0.0), "layout shift on {url}");
    }
}
