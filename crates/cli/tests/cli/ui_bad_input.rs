//! The web UI's answers to bad input, over plain HTTP: one line naming
//! the problem, the right status, nothing changed; and the UI's absence
//! when turned off.

use crate::common::*;

/// GETs `path`; the status and the page's error line.
async fn page(s: &Server, path: &str) -> (u16, String) {
    let r = client().get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let line = body
        .split("<p class=\"error\" role=\"alert\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_default()
        .to_string();
    (status, line)
}

/// POSTs a form body to `path` with `headers`.
async fn post(s: &Server, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> (u16, String) {
    let mut rq = client()
        .post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (k, v) in headers {
        rq = rq.header(*k, v);
    }
    let r = rq.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A form body, its headers, the status and words expected.
type Case = (Vec<u8>, Vec<(&'static str, String)>, u16, &'static str);

#[tokio::test]
async fn bad_addresses_and_forms_get_one_line_and_change_nothing() {
    let Some(s) = Server::start(Backend::Sqlite) else {
        return;
    };
    push_image(&s, "team/app", "v1", "a").await;
    for (path, status, line) in [
        ("/ui/r/team/nope", 404, "unknown repository"),
        ("/ui/r/team/app/-/v/v9", 404, "unknown version"),
        ("/ui/r/Team%20App", 404, "not a repository name"),
        ("/ui/r/team/app/-/v/bad%20tag", 404, "not a tag or digest"),
        ("/ui/r/team/app/-/nope/v1", 404, "no page"),
        (
            "/ui/r/team/app/-/compare?a=v1",
            400,
            "compare needs two versions",
        ),
        (
            "/ui/r/team/app/-/compare?a=v1&b=%3Cx%3E",
            400,
            "is not a tag or digest",
        ),
        ("/ui/r/team/app/-/delete", 404, "takes a form"),
        ("/ui/nothing/here", 404, "no page at /ui/nothing/here"),
    ] {
        let (got, text) = page(&s, path).await;
        assert_eq!(got, status, "{path}: {text}");
        assert!(text.contains(line), "{path}: {text}");
        assert!(!text.contains('\n'), "{path}: one line: {text}");
    }
    // Markup in the address is escaped in the error line.
    let (_, text) = page(&s, "/ui/r/team/app/-/v/%3Cscript%3E").await;
    assert!(!text.contains("<script"), "{text}");

    let origin = format!("http://{}", s.addr);
    let same = [("origin", origin.clone())];
    // A form over 16 KiB, one not URL-encoded, one from another site,
    // one without its token: refused, and the tag is still there.
    let cases: Vec<Case> = vec![
        (
            vec![b'a'; 20 << 10],
            same.to_vec(),
            400,
            "larger than 16 KiB",
        ),
        (
            b"reference=%ZZ".to_vec(),
            same.to_vec(),
            400,
            "not URL-encoded",
        ),
        (
            b"reference=v1".to_vec(),
            vec![("origin", "http://evil.example".into())],
            403,
            "not sent from this registry",
        ),
        (
            b"reference=v1".to_vec(),
            vec![("sec-fetch-site", "cross-site".into())],
            403,
            "not sent from this registry",
        ),
        (
            b"reference=v1".to_vec(),
            same.to_vec(),
            403,
            "token is missing",
        ),
        (
            b"reference=v1&token=aa&token=bb".to_vec(),
            same.to_vec(),
            403,
            "token is missing",
        ),
    ];
    for (body, headers, status, line) in cases {
        let (got, text) = post(&s, "/ui/r/team/app/-/delete", body, &headers).await;
        assert_eq!(got, status, "{line}: {text}");
        assert!(text.contains(line), "{line}: {text}");
    }
    let tags = get_json(&s, "/v2/team/app/tags/list").await;
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    // Sign-in from another site is refused too (login CSRF).
    let (got, text) = post(
        &s,
        "/ui/login",
        b"user=a&password=b".to_vec(),
        &[("origin", "http://evil.example".into())],
    )
    .await;
    assert_eq!(got, 403, "{text}");
    // Every answer carries the policy that keeps data from running.
    let r = client().get(s.url("/ui/")).send().await.unwrap();
    let csp = hdr(&r, "content-security-policy").unwrap_or_default();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'"),
        "{csp}"
    );
    assert_eq!(hdr(&r, "x-frame-options").as_deref(), Some("DENY"));
}

#[tokio::test]
async fn no_ui_turns_it_off() {
    let Some(s) = Server::start_with(Backend::Sqlite, &["--no-ui"]) else {
        return;
    };
    let r = client().get(s.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("NAME_UNKNOWN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_out_of_reach_is_said_in_one_line() {
    let Some(pg) = fresh_postgres_db() else {
        return;
    };
    let (proxy, url) = postgres_behind_switch(&pg).await;
    let s = Server::start_with(Backend::Sqlite, &["--database-url", &url]).unwrap();
    push_image(&s, "team/app", "v1", "a").await;
    assert_eq!(page(&s, "/ui/r/team/app").await.0, 200);
    proxy.up.store(false, std::sync::atomic::Ordering::SeqCst);
    // The proxy cuts open connections within 20 ms.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, line) = page(&s, "/ui/r/team/app").await;
    assert_eq!(status, 503, "{line}");
    assert!(line.starts_with("registry store unavailable"), "{line}");
    proxy.up.store(true, std::sync::atomic::Ordering::SeqCst);
}
