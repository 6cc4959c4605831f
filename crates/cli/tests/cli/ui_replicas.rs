//! The web UI behind two replicas: it keeps no state of its own, and the
//! session sealed by one replica opens on the other (both derive the key
//! from the database they share).

use crate::common::auth::{basic, htpasswd_file, push_with};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_on_one_replica_holds_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pw) = htpasswd_file(dir.path(), &[("admin", "pw-a")]) else {
        return;
    };
    let cfg = dir.path().join("pavilion.toml");
    std::fs::write(
        &cfg,
        format!(
            "[auth]\nhtpasswd = {:?}\n[auth.grants]\nadmin = [\"registry:catalog:*\", \"repository:**:*\"]\n",
            pw.to_str().unwrap()
        ),
    )
    .unwrap();
    let Some(a) = Server::start_with(Backend::Postgres, &["--config", cfg.to_str().unwrap()])
    else {
        return;
    };
    let b = a.replica();
    let admin = basic("admin", "pw-a");
    assert_eq!(
        push_with(&client(), &a.url(""), "team/app", "v1", Some(&admin)).await,
        201
    );

    // Sign in on A (the form as a browser sends it).
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(a.url("/ui/login"))
        .header("origin", format!("http://{}", a.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=admin&password=pw-a&next=%2Fui%2Fr%2Fteam%2Fapp")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(hdr(&r, "location").as_deref(), Some("/ui/r/team/app"));
    let cookie = hdr(&r, "set-cookie").unwrap();
    let session = cookie.split(';').next().unwrap().to_string();

    // Every page on B, with A's cookie.
    for path in ["/ui/", "/ui/r/team/app", "/ui/storage"] {
        let r = no_redirects
            .get(b.url(path))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{path} on the other replica: {body}");
        assert!(body.contains("team/app"), "{path}: {body}");
        assert!(body.contains("Sign out"), "{path}: signed in");
    }
    // Without it, B sends the viewer to sign in.
    let r = no_redirects
        .get(b.url("/ui/r/team/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(hdr(&r, "location").unwrap().starts_with("/ui/login?next="));
}
