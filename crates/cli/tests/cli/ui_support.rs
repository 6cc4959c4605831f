//! What the web UI tests share: a model worth looking at, an artifact made
//! to attack the pages, screenshots at two widths, and reading a page.

use crate::common::browser::{screenshot_dir, Page};
use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The widths every page is shot at: a phone and a desktop.
pub const WIDTHS: [(u32, u32, bool); 2] = [(390, 844, true), (1280, 900, false)];

/// A model directory: README, LICENSE, config, two safetensors files
/// (three tensors), tokenizer. `variant` changes the README and, from 2,
/// adds a file, so two variants differ in exactly those.
pub fn demo_model(dir: &Path, variant: u32) -> PathBuf {
    let m = dir.join(format!("demo-{variant}"));
    std::fs::create_dir_all(&m).unwrap();
    let readme = format!(
        "# Demo model\n\nA tiny **demo** model, variant {variant}.\n\n| split | score |\n|---|---|\n| test | 0.9{variant} |\n\nSee [the docs](https://example.com/docs).\n"
    );
    std::fs::write(m.join("README.md"), readme).unwrap();
    std::fs::write(
        m.join("LICENSE"),
        "MIT License\n\nPermission is hereby granted, free of charge...\n",
    )
    .unwrap();
    std::fs::write(
        m.join("config.json"),
        br#"{"model_type":"demo","hidden_size":64}"#,
    )
    .unwrap();
    std::fs::write(m.join("tokenizer.json"), br#"{"version":"1.0"}"#).unwrap();
    safetensors(
        &m.join("model-00001-of-00002.safetensors"),
        &[
            ("embed.weight", "BF16", &[512, 64]),
            ("norm.weight", "F32", &[64]),
        ],
    );
    safetensors(
        &m.join("model-00002-of-00002.safetensors"),
        &[("lm_head.weight", "BF16", &[64, 512])],
    );
    if variant >= 2 {
        std::fs::write(m.join("generation_config.json"), br#"{"temperature":0.7}"#).unwrap();
    }
    m
}

/// A safetensors file with `tensors` (name, dtype, shape) and zeroed data.
fn safetensors(path: &Path, tensors: &[(&str, &str, &[u64])]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let width = if *dtype == "F32" { 4 } else { 2 };
        let len = shape.iter().product::<u64>() * width;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let h = Value::Object(header).to_string().into_bytes();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.resize(bytes.len() + offset as usize, 0);
    std::fs::write(path, bytes).unwrap();
}

/// What the attack artifact's README says: raw HTML, a script, event
/// handlers, script links of several spellings.
pub const EVIL_README: &str = "# Totally normal model\n\n<script>alert('readme')</script>\n\n<img src=x onerror=\"alert('img')\">\n\n[click me](javascript:alert('link'))\n\n[tab](java\tscript:alert('tab'))\n\n<a href=\"javascript:alert('raw')\">raw link</a>\n\n<iframe src=\"https://evil.example/\"></iframe>\n\n[data](data:text/html,<script>alert('data')</script>)\n";

/// Pushes `evil/model:v1` over HTTP: a model-ish manifest whose README is
/// [`EVIL_README`] and whose annotations hold markup, a script URL and a
/// 200,000-character string. Returns the manifest digest.
pub async fn push_evil(s: &Server) -> String {
    let repo = "evil/model";
    let config = br#"{"descriptor":{"name":"<script>alert('name')</script>","licenses":["<b>MIT</b>"]},"config":{"architecture":"<img src=x onerror=alert('arch')>","format":"safetensors"},"modelfs":{"type":"layers","diffIds":[]}}"#;
    let cd = push_blob(s, repo, config).await;
    let ld = push_blob(s, repo, EVIL_README.as_bytes()).await;
    let huge = "A".repeat(200_000);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.model.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.cncf.model.doc.v1.raw",
            "digest": ld,
            "size": EVIL_README.len(),
            "annotations": {"org.cncf.model.filepath": "README.md"}
        }],
        "annotations": {
            "org.opencontainers.image.description": "<img src=x onerror=alert('annotation')>",
            "org.opencontainers.image.url": "javascript:alert('url')",
            "example.huge": huge,
        }
    })
    .to_string();
    let r = put_manifest(s, repo, "v1", Some(OCI_MANIFEST), manifest.as_bytes()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    sha256(manifest.as_bytes())
}

/// Shoots the page at `url` at both widths into
/// `target/ui-screenshots/NAME-WIDTH.png`, checking that it rendered
/// without a script error or a CSP violation, and leaves the page at the
/// desktop width.
pub fn shoot(page: &mut Page, url: &str, name: &str) {
    for (w, h, mobile) in WIDTHS {
        page.set_viewport(w, h, mobile);
        page.navigate(url);
        let path = screenshot_dir().join(format!("{name}-{w}.png"));
        let (got_w, _) = page.screenshot_png(&path);
        assert_eq!(got_w, w, "{name} at {w} px");
        // Nothing wider than the viewport: no sideways scrolling on a
        // phone (tables scroll inside their own box).
        let overflow = page.eval("document.documentElement.scrollWidth - window.innerWidth");
        assert!(
            overflow.as_i64().unwrap_or(99) <= 0,
            "{name} at {w} px overflows by {overflow}"
        );
    }
    clean(page, name);
}

/// No script error, no dialog, no CSP report on the page so far.
pub fn clean(page: &mut Page, name: &str) {
    assert_eq!(
        page.exceptions(),
        Vec::<String>::new(),
        "{name}: script errors"
    );
    assert!(page.dialogs_opened().is_empty(), "{name}: a dialog opened");
    let csp: Vec<_> = page
        .log_entries()
        .into_iter()
        .filter(|e| e.text.contains("Content Security Policy"))
        .collect();
    assert!(csp.is_empty(), "{name}: CSP violations {csp:?}");
}

/// The text of the first element matching `selector` ("" when none).
pub fn text(page: &mut Page, selector: &str) -> String {
    let js = format!(
        "(document.querySelector({}) || {{textContent: ''}}).textContent",
        Value::from(selector)
    );
    page.eval(&js).as_str().unwrap_or_default().to_string()
}

/// How many elements match `selector`.
pub fn count(page: &mut Page, selector: &str) -> u64 {
    let js = format!(
        "document.querySelectorAll({}).length",
        Value::from(selector)
    );
    page.eval(&js).as_u64().unwrap_or(0)
}
