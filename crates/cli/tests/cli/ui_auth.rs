//! The web UI under authentication, in a real browser: sign-in with the
//! registry's own credentials, only what the viewer may see, a delete
//! button only for who may delete, sessions that end, and forms that
//! cannot be forged from another site.

use crate::common::auth::{basic, htpasswd_file, http, push_with, Served};
use crate::common::browser::{screenshot_dir, Browser, Page};
use crate::ui_support::*;
use std::time::Duration;

fn sign_in(page: &mut Page, base: &str, user: &str, password: &str) {
    page.navigate(&format!("{base}/ui/login"));
    page.type_text("#user", user);
    page.type_text("#password", password);
    page.click("form.login button[type=submit]");
    page.wait_for("location.pathname !== '/ui/login'", Duration::from_secs(20));
    page.settle();
}

/// The tags the registry holds for `repo`, asked as `auth`.
async fn tags(base: &str, repo: &str, auth: &str) -> serde_json::Value {
    let r = http()
        .get(format!("{base}/v2/{repo}/tags/list"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    r.json::<serde_json::Value>().await.unwrap()["tags"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_signs_in_and_shows_only_what_the_viewer_may_see() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(pw) = htpasswd_file(dir.path(), &[("admin", "pw-a"), ("viewer", "pw-v")]) else {
        return;
    };
    let cfg = dir.path().join("pavilion.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nhtpasswd = {:?}\n[auth.grants]\nadmin = [\"registry:catalog:*\", \"repository:**:*\"]\nviewer = [\"repository:team/*:pull\"]\n",
            pw.to_str().unwrap()
        ),
    )
    .unwrap();
    let s = Served::start(None, &["--config", cfg.to_str().unwrap()]);
    let base = s.url("");
    let admin = basic("admin", "pw-a");
    for (repo, tag) in [("team/app", "v1"), ("team/app", "v2"), ("secret/db", "v1")] {
        assert_eq!(
            push_with(&http(), &base, repo, tag, Some(&admin)).await,
            201
        );
    }
    let mut page = browser.new_page();
    page.set_timeout(Duration::from_secs(60));

    // Nobody signed in: sent to the sign-in page, and back after it.
    page.navigate(&format!("{base}/ui/r/team/app"));
    assert_eq!(page.eval("location.pathname"), "/ui/login");
    page.screenshot_png(screenshot_dir().join("sign-in-1280.png"));
    page.type_text("#user", "viewer");
    page.type_text("#password", "wrong");
    page.click("form.login button[type=submit]");
    page.wait_for(
        "document.querySelector('p.error') !== null",
        Duration::from_secs(20),
    );
    assert!(text(&mut page, "p.error").contains("not accepted"));

    sign_in(&mut page, &base, "viewer", "pw-v");
    let cookie = page
        .cookies()
        .into_iter()
        .find(|c| c["name"] == "pavilion_ui")
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["path"], "/ui/");
    assert!(
        !cookie["value"].as_str().unwrap().contains("pw-v"),
        "the cookie does not show the password"
    );

    // The viewer's list holds only what they may pull.
    page.navigate(&format!("{base}/ui/"));
    let names = page
        .eval("[...document.querySelectorAll('#repositories td.name')].map(t => t.textContent)");
    assert_eq!(names, serde_json::json!(["team/app"]));
    // The viewer sees team/app's versions, without delete buttons, and
    // is refused secret/db.
    page.navigate(&format!("{base}/ui/r/team/app"));
    assert_eq!(count(&mut page, "#versions tbody tr"), 2);
    assert_eq!(
        count(&mut page, "button.danger"),
        0,
        "no delete for a viewer"
    );
    assert!(text(&mut page, ".who").contains("viewer"));
    page.navigate(&format!("{base}/ui/r/secret/db"));
    assert!(
        text(&mut page, "p.error").starts_with("not allowed"),
        "{}",
        text(&mut page, "p.error")
    );
    clean(&mut page, "viewer");

    // Sign out: the session is gone.
    page.navigate(&format!("{base}/ui/r/team/app"));
    page.click(".who form button");
    page.wait_for(
        "document.querySelector('.who form') === null",
        Duration::from_secs(20),
    );
    page.navigate(&format!("{base}/ui/r/team/app"));
    assert_eq!(page.eval("location.pathname"), "/ui/login");

    // The admin may delete: the button is there and works.
    sign_in(&mut page, &base, "admin", "pw-a");
    page.navigate(&format!("{base}/ui/r/team/app"));
    assert_eq!(count(&mut page, "button.danger"), 2);
    page.screenshot_png(screenshot_dir().join("versions-admin-1280.png"));
    page.click("button[aria-label='Delete tag v2']");
    page.wait_for(
        "document.querySelectorAll('#versions tbody tr').length === 1",
        Duration::from_secs(20),
    );
    assert_eq!(count(&mut page, "#versions tbody tr"), 1);
    assert_eq!(
        tags(&base, "team/app", &admin).await,
        serde_json::json!(["v1"])
    );

    // A form forged elsewhere, with the admin's own cookie: refused, and
    // nothing changes.
    let session = page
        .cookies()
        .into_iter()
        .find(|c| c["name"] == "pavilion_ui")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let forge = |origin: &'static str, token: &'static str| {
        http()
            .post(format!("{base}/ui/r/team/app/-/delete"))
            .header("cookie", format!("pavilion_ui={session}"))
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("reference=v1&token={token}"))
            .send()
    };
    let r = forge("http://evil.example", "").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not sent from this registry"));
    let same_origin: &'static str = Box::leak(format!("http://{}", s.addr).into_boxed_str());
    let r = forge(same_origin, "00ff").await.unwrap();
    assert_eq!(r.status(), 403, "a wrong token is refused");
    assert_eq!(
        tags(&base, "team/app", &admin).await,
        serde_json::json!(["v1"])
    );

    // A cookie tampered with is no session.
    let last = if session.ends_with('A') { 'B' } else { 'A' };
    let r = http()
        .get(format!("{base}/ui/r/team/app"))
        .header(
            "cookie",
            format!("pavilion_ui={}{last}", &session[..session.len() - 1]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/ui/login");
}
