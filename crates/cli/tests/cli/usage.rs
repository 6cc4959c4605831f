//! Storage usage (issue 17, visibility): `GET /pavilion/v1/usage` and
//! `pavilion du` report what each repository holds, what the store keeps
//! and what sharing one copy saves; bad input is one line; under
//! authentication the numbers need the catalog grant.

use crate::common::auth::{admin_and_dev_config, basic};
use crate::common::run::*;
use crate::common::*;

async fn put_blob(s: &Server, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = client()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_each_repository_and_what_sharing_saves() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let weights = vec![7u8; 100_000];
    for repo in ["team/a", "team/b"] {
        let config = put_blob(&s, repo, b"{}").await;
        let layer = put_blob(&s, repo, &weights).await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{layer}","size":100000}}]}}"#
        );
        let r = client()
            .put(s.url(&format!("/v2/{repo}/manifests/v1")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = client()
        .get(s.url("/pavilion/v1/usage"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let repos = v["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[0]["name"], "team/a");
    assert_eq!(repos[0]["blob_bytes"], 100_002);
    assert_eq!(repos[1]["blobs"], 2);
    let t = &v["totals"];
    assert_eq!(t["stored_blob_bytes"], 100_002, "{t}");
    assert_eq!(
        t["stored_manifests"], 1,
        "one manifest digest, in two repositories"
    );
    let manifest_bytes = t["stored_manifest_bytes"].as_i64().unwrap();
    assert_eq!(t["charged_bytes"], 2 * (100_002 + manifest_bytes));
    assert_eq!(t["dedup_saving_bytes"], 100_002 + manifest_bytes);
    // One repository, paging, and bad input.
    let v: serde_json::Value = client()
        .get(s.url("/pavilion/v1/usage?repository=team/b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["repositories"].as_array().unwrap().len(), 1);
    let v: serde_json::Value = client()
        .get(s.url("/pavilion/v1/usage?n=1&last=team/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["repositories"][0]["name"], "team/b");
    for bad in ["n=0", "n=x", "repository=UPPER", "color=blue"] {
        let r = client()
            .get(s.url(&format!("/pavilion/v1/usage?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // `pavilion du` reads the same database, without the server.
    let data = s.data.to_str().unwrap().to_string();
    let out = pv(&["du", "--data", &data]).ok().to_string();
    assert!(out.contains("team/a") && out.contains("team/b"), "{out}");
    assert!(out.contains("saved by deduplication: 98.0 KiB"), "{out}");
    let json = pv(&["du", "team/a", "--data", &data, "--output", "json"])
        .ok()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["repositories"].as_array().unwrap().len(), 1);
    pv(&["du", "team/none", "--data", &data]).fails(3);
    pv(&["du", "Not A Name", "--data", &data]).fails(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_needs_the_catalog_grant_under_authentication() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(cfg) = admin_and_dev_config(tmp.path(), "") else {
        return;
    };
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    let get = |who: Option<String>| {
        let mut r = client().get(s.url("/pavilion/v1/usage"));
        if let Some(w) = who {
            r = r.header("authorization", w);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some(basic("dev", "pw-d"))).await.unwrap().status(), 403);
    assert_eq!(
        get(Some(basic("admin", "pw-a"))).await.unwrap().status(),
        200
    );
}

/// Uploads whose bytes do not match their digest leave nothing counted:
/// the claim made before the commit is released, so a client sending
/// wrong digests in a loop cannot grow the blob table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digests_leave_no_blob_rows() {
    let s = Server::start(Backend::Sqlite).unwrap();
    for i in 0..20u8 {
        let claimed = sha256(&[i, 1, 2, 3]);
        let r = client()
            .post(s.url(&format!("/v2/bad/digests/blobs/uploads/?digest={claimed}")))
            .body(vec![i; 100])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
    }
    let r = client()
        .get(s.url("/pavilion/v1/usage"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["totals"]["stored_blobs"], 0, "{v}");
    let data = s.data.to_str().unwrap().to_string();
    let out = pv(&["du", "--data", &data, "--output", "json"]).ok();
    let du: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(du["reclaimable"]["blobs"], 0, "{du}");
}
