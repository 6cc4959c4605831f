//! Storage quotas (issue 17, item 4): `[[quota]]` entries in serve's
//! configuration limit what a repository, or a namespace's repositories
//! together, may hold. A push past one is refused 403 DENIED naming the
//! quota, the usage and the limit, and nothing stored changes; a quota
//! lowered below usage keeps what is stored; a bad entry stops `serve`
//! with one line naming it.

use crate::common::run::*;
use crate::common::*;
use std::path::{Path, PathBuf};

/// A server with `config` as its configuration file, and the file (kept
/// in a directory that lives as long as the test needs it).
fn start(backend: Backend, dir: &Path, config: &str) -> Option<(Server, PathBuf)> {
    let path = dir.join("pavilion.toml");
    std::fs::write(&path, config).unwrap();
    let s = Server::start_with(backend, &["--config", path.to_str().unwrap()])?;
    Some((s, path))
}

/// Distinct bytes of length `n`.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    xorshift_bytes(n, seed, 7, 3)
}

/// The usage row of `repo` (`null` when it holds nothing).
async fn usage_of(s: &Server, repo: &str) -> serde_json::Value {
    let v = get_json(s, &format!("/pavilion/v1/usage?repository={repo}")).await;
    v["repositories"][0].clone()
}

/// Asserts a quota refusal (403 DENIED, the reason in the message too, for
/// clients that show only that); returns its detail.
async fn denied(r: reqwest::Response) -> String {
    let (status, e) = error_body(r).await;
    assert_eq!(status, 403, "{e}");
    assert_eq!(e["code"], "DENIED", "{e}");
    let detail = e["detail"].as_str().unwrap().to_string();
    assert_eq!(e["message"], detail.as_str(), "{e}");
    detail
}

/// POST `?mount=` of `digest` into `repo`, from `from`.
async fn mount(s: &Server, repo: &str, digest: &str, from: &str) -> reqwest::Response {
    client()
        .post(s.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
        )))
        .send()
        .await
        .unwrap()
}

/// Bytes in KiB with one decimal, as the registry writes them.
fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

const TEAM_10KIB: &str = "[[quota]]\nrepositories = \"team/*\"\nlimit = \"10KiB\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_under_the_quota_succeed_and_a_push_past_it_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = start(Backend::Sqlite, tmp.path(), TEAM_10KIB).unwrap();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = bytes(6000, 1);
    let cd = push_blob(&s, "team/a", config).await;
    let ld = push_blob(&s, "team/a", &layer).await;
    let m1 = image_manifest((&cd, config.len()), &[(&ld, layer.len())], "");
    let r = put_manifest(&s, "team/a", "v1", Some(OCI_MANIFEST), &m1).await;
    assert_eq!(r.status(), 201);
    let before = usage_of(&s, "team/a").await;
    let used = before["blob_bytes"].as_u64().unwrap() + before["manifest_bytes"].as_u64().unwrap();
    assert_eq!(used, (config.len() + 6000 + m1.len()) as u64);

    // A blob past the limit: refused, naming the quota, usage and limit.
    let big = bytes(5000, 2);
    let detail = denied(push_blob_as(&s, "team/a", &sha256(&big), &big).await).await;
    let want = format!(
        "quota for team/* (each repository) exceeded: team/a uses {}, this upload brings it to {}, limit 10.0 KiB",
        kib(used),
        kib(used + 5000)
    );
    assert_eq!(detail, want);
    assert_blob_absent(&s, "team/a", &sha256(&big)).await;
    assert_eq!(usage_of(&s, "team/a").await, before);

    // A blob that just fits, then a manifest whose own bytes would pass.
    let fill = bytes(10240 - used as usize - 10, 3);
    let fd = push_blob(&s, "team/a", &fill).await;
    let before = usage_of(&s, "team/a").await;
    let m2 = image_manifest(
        (&cd, config.len()),
        &[(&ld, layer.len()), (&fd, fill.len())],
        "",
    );
    let detail = denied(put_manifest(&s, "team/a", "v2", Some(OCI_MANIFEST), &m2).await).await;
    assert!(
        detail.contains("this manifest brings it to") && detail.contains("limit 10.0 KiB"),
        "{detail}"
    );
    assert_eq!(get_manifest(&s, "team/a", "v2").await.status(), 404);
    let r = get_manifest(&s, "team/a", &sha256(&m2)).await;
    assert_eq!(r.status(), 404, "the refused manifest is not stored");
    assert_eq!(usage_of(&s, "team/a").await, before);
    // Another repository of the glob has a limit of its own.
    push_blob(&s, "team/b", &bytes(9000, 4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_refused_mid_way_keeps_its_session() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = start(Backend::Sqlite, tmp.path(), TEAM_10KIB).unwrap();
    let blob = bytes(12_000, 5);
    let loc = open_session(&s, "team/b").await;
    assert_eq!(patch_chunk(&s, &loc, 0, &blob[..4000]).await.status(), 202);
    // 4000 held plus 8000 declared: refused before a byte is taken.
    let detail = denied(patch_chunk(&s, &loc, 4000, &blob[4000..]).await).await;
    assert!(
        detail.contains("team/b uses 0 B, this upload brings it to 11.7 KiB, limit 10.0 KiB"),
        "{detail}"
    );
    assert_eq!(session_offset(&s, &loc).await, 4000);
    assert_eq!(
        patch_chunk(&s, &loc, 4000, &blob[4000..7000])
            .await
            .status(),
        202
    );
    // Without a declared length the check sees what the session holds;
    // the finishing PUT then counts the whole blob.
    let r = client()
        .patch(s.url(&loc))
        .body(streamed(vec![blob[7000..].to_vec()]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(session_offset(&s, &loc).await, 12_000);
    let put = client()
        .put(s.url(&format!("{loc}?digest={}", sha256(&blob))))
        .send()
        .await
        .unwrap();
    let detail = denied(put).await;
    assert!(detail.contains("brings it to 11.7 KiB"), "{detail}");
    assert_eq!(
        session_offset(&s, &loc).await,
        12_000,
        "the session is kept"
    );
    assert_blob_absent(&s, "team/b", &sha256(&blob)).await;
    assert!(usage_of(&s, "team/b").await.is_null(), "nothing stored");
    let r = request(&s, reqwest::Method::DELETE, &loc).await;
    assert_eq!(r.status(), 204, "the client can still cancel it");
}

async fn namespace_quota(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let Some((s, _)) = start(
        backend,
        tmp.path(),
        "[[quota]]\nnamespace = \"research\"\nlimit = \"10KiB\"\n",
    ) else {
        return;
    };
    push_blob(&s, "research/a", &bytes(6000, 6)).await;
    let b = bytes(6000, 7);
    let detail = denied(push_blob_as(&s, "research/b", &sha256(&b), &b).await).await;
    assert!(
        detail.starts_with("quota for namespace research (all its repositories together) exceeded: research/** uses 5.9 KiB, this upload brings it to 11.7 KiB, limit 10.0 KiB"),
        "{detail}"
    );
    push_blob(&s, "research/b", &bytes(3000, 8)).await;
    push_blob(&s, "research/b/deep", &bytes(1000, 9)).await;
    let last = bytes(500, 10);
    denied(push_blob_as(&s, "research/c", &sha256(&last), &last).await).await;
    // Unrelated repositories, and the namespace's own name, are free.
    push_blob(&s, "other/x", &bytes(20_000, 11)).await;
    push_blob(&s, "researchers/x", &bytes(20_000, 12)).await;
    push_blob(&s, "research", &bytes(20_000, 13)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_quota_counts_its_repositories_together_sqlite() {
    namespace_quota(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_quota_counts_its_repositories_together_postgres() {
    namespace_quota(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_past_the_quota_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = start(
        Backend::Sqlite,
        tmp.path(),
        "[[quota]]\nrepositories = \"small/*\"\nlimit = \"4KiB\"\n",
    )
    .unwrap();
    let big = push_blob(&s, "big/src", &bytes(8000, 14)).await;
    let little = push_blob(&s, "big/src", &bytes(1000, 15)).await;
    let detail = denied(mount(&s, "small/x", &big, "big/src").await).await;
    assert!(
        detail.contains("small/x uses 0 B, this mount brings it to 7.8 KiB, limit 4.0 KiB"),
        "{detail}"
    );
    // The automatic mount (no `from`) is no way around it.
    let r = client()
        .post(s.url(&format!("/v2/small/x/blobs/uploads/?mount={big}")))
        .send()
        .await
        .unwrap();
    denied(r).await;
    assert_blob_absent(&s, "small/x", &big).await;
    assert_eq!(mount(&s, "small/x", &little, "big/src").await.status(), 201);
    assert_eq!(head_blob(&s, "small/x", &little).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_lowered_below_usage_keeps_what_is_stored_and_refuses_more() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, path) = start(
        Backend::Sqlite,
        tmp.path(),
        "[[quota]]\nrepositories = \"team/*\"\nlimit = \"1MiB\"\n",
    )
    .unwrap();
    let digest = push_image(&s, "team/a", "v1", "lowered").await;
    let extra = push_blob(&s, "team/a", &bytes(3000, 16)).await;
    std::fs::write(
        &path,
        "[[quota]]\nrepositories = \"team/*\"\nlimit = \"1KiB\"\n",
    )
    .unwrap();
    s.restart();
    let before = usage_of(&s, "team/a").await;
    assert_eq!(get_manifest(&s, "team/a", "v1").await.status(), 200);
    let r = get_blob(&s, "team/a", &extra, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 3000);
    // Anything new is refused, even a few bytes.
    let tiny = b"tiny";
    let detail = denied(push_blob_as(&s, "team/a", &sha256(tiny), tiny).await).await;
    assert!(detail.contains("limit 1.0 KiB"), "{detail}");
    let m = get_manifest(&s, "team/a", "v1")
        .await
        .bytes()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
    let config = &v["config"];
    let other = image_manifest(
        (
            config["digest"].as_str().unwrap(),
            config["size"].as_u64().unwrap() as usize,
        ),
        &[],
        "",
    );
    denied(put_manifest(&s, "team/a", "v2", Some(OCI_MANIFEST), &other).await).await;
    // A new tag for a manifest the repository holds adds nothing.
    let r = put_manifest(&s, "team/a", "again", Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201);
    assert_eq!(usage_of(&s, "team/a").await, before);
    // Deleting still works, so users can get under the quota.
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/v2/team/a/manifests/{digest}"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = request(
        &s,
        reqwest::Method::DELETE,
        &format!("/v2/team/a/blobs/{extra}"),
    )
    .await;
    assert_eq!(r.status(), 202);
    let after = usage_of(&s, "team/a").await;
    assert!(
        after["blob_bytes"].as_u64() < before["blob_bytes"].as_u64() && after["manifests"] == 0,
        "{after}"
    );
}

#[test]
fn each_bad_entry_stops_serve_with_one_line_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let good = "[[quota]]\nrepositories = \"ok/*\"\nlimit = \"1GB\"\n";
    for (entry, want) in [
        (
            "repositories = \"team/*\"\nlimit = \"10XB\"",
            "quota 2: limit \"10XB\": unknown unit \"XB\"",
        ),
        (
            "repositories = \"team/*\"\nlimit = \"0GiB\"",
            "quota 2: limit \"0GiB\": must be more than 0 bytes",
        ),
        (
            "repositories = \"team/*\"\nnamespace = \"team\"\nlimit = \"1GiB\"",
            "quota 2: has both repositories and namespace",
        ),
        ("limit = \"1GiB\"", "quota 2: needs repositories"),
        (
            "repositories = \"team/[\"\nlimit = \"1GiB\"",
            "quota 2: repositories \"team/[\": glob",
        ),
    ] {
        let path = tmp.path().join("pavilion.toml");
        std::fs::write(&path, format!("{good}[[quota]]\n{entry}\n")).unwrap();
        let r = pv(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--config",
            path.to_str().unwrap(),
        ]);
        assert_ne!(r.code, 0, "{entry}: {}", r.stderr);
        let err = r.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{entry}: {err}");
        assert!(err.contains(want), "{entry}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_du_show_the_tightest_quota() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, path) = start(
        Backend::Sqlite,
        tmp.path(),
        "[[quota]]\nrepositories = \"team/*\"\nlimit = \"1MiB\"\n\
         [[quota]]\nnamespace = \"team\"\nlimit = \"20KiB\"\n",
    )
    .unwrap();
    push_blob(&s, "team/a", &bytes(6000, 17)).await;
    push_blob(&s, "team/b", &bytes(5000, 18)).await;
    push_blob(&s, "other/x", &bytes(100, 19)).await;
    let want = serde_json::json!({
        "quota": "namespace team (all its repositories together)",
        "limit": 20480,
        "used": 11000,
    });
    assert_eq!(usage_of(&s, "team/a").await["quota"], want);
    let row = usage_of(&s, "other/x").await;
    assert!(row.get("quota").is_none(), "no quota covers it: {row}");
    let (config, data) = (path.to_str().unwrap(), s.data.to_str().unwrap());
    let out = pv(&["du", "--config", config, "--data", data]).ok();
    assert!(out.contains("QUOTA"), "{out}");
    let line = out.lines().find(|l| l.starts_with("team/b")).unwrap();
    assert!(
        line.ends_with("10.7 KiB of 20.0 KiB: namespace team (all its repositories together)"),
        "{out}"
    );
    let line = out.lines().find(|l| l.starts_with("other/x")).unwrap();
    assert!(line.ends_with(" -"), "{out}");
    let v = pv(&[
        "du", "team/a", "--config", config, "--data", data, "--output", "json",
    ])
    .json();
    assert_eq!(v["repositories"][0]["quota"], want);
    // Without quotas the table is as before.
    let out = pv(&["du", "--data", data]).ok();
    assert!(!out.contains("QUOTA"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pavilion_push_past_the_quota_fails_with_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = start(
        Backend::Sqlite,
        tmp.path(),
        "[[quota]]\nrepositories = \"team/*\"\nlimit = \"1MiB\"\n",
    )
    .unwrap();
    let model = tmp.path().join("model");
    make_model(&model);
    let reference = format!("{}/team/model:v1", s.addr);
    let cache = tmp.path().join("cache");
    let r = pv(&[
        "push",
        &reference,
        model.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0, "{}", r.text());
    assert!(
        r.stderr
            .contains("quota for team/* (each repository) exceeded")
            && r.stderr.contains("limit 1.0 MiB"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("upload interrupted"),
        "a refusal is not retried: {}",
        r.stderr
    );
    assert_eq!(get_manifest(&s, "team/model", "v1").await.status(), 404);
}
