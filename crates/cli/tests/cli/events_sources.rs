//! The change feed's other sources (issue 19, item 1): a policy decision,
//! a quota refusal, a garbage collection run and what it deletes each
//! write their event; `[events] max_events` bounds the feed.

use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every event kept, in order.
async fn events(s: &Server) -> Vec<Value> {
    let page = get_json(s, "/pavilion/v1/events?limit=1000").await;
    page["events"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

fn file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// A manifest with `config` (pushed to `repo` first) and no layers.
async fn manifest(s: &Server, repo: &str, seed: &str) -> Vec<u8> {
    let config = format!(r#"{{"seed":"{seed}"}}"#);
    let cd = push_blob(s, repo, config.as_bytes()).await;
    image_manifest((&cd, config.len()), &[], "")
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const RULES: &str = r#"
package pavilion.push
import rego.v1

deny contains msg if {
    some t in input.tags
    t == "refused"
    msg := "tag refused is not allowed"
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_decisions_are_events_in_their_transaction() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "push.rego", RULES);
    let s =
        Server::start_with(Backend::Sqlite, &["--policy", dir.path().to_str().unwrap()]).unwrap();
    let m = manifest(&s, "pol/app", "one").await;
    let r = put_manifest(&s, "pol/app", "kept", Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201);
    let r = client()
        .put(s.url("/v2/pol/app/manifests/refused"))
        .header("content-type", OCI_MANIFEST)
        .header("traceparent", TRACEPARENT)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let all = events(&s).await;
    assert_eq!(
        types(&all),
        [
            "dev.pavilion.policy.decided",
            "dev.pavilion.artifact.pushed",
            "dev.pavilion.artifact.tagged",
            "dev.pavilion.policy.decided",
        ]
    );
    let d = sha256(&m);
    assert_eq!(all[0]["data"]["allowed"], true);
    assert_eq!(all[3]["data"]["allowed"], false);
    assert_eq!(all[3]["data"]["point"], "push");
    assert_eq!(all[3]["data"]["denials"], 1);
    assert_eq!(all[3]["subject"], format!("pol/app@{d}"));
    assert_eq!(all[3]["traceparent"], TRACEPARENT);
    assert!(all[0].get("traceparent").is_none());
    // The decision it names is in the decision log.
    let id = all[3]["data"]["decision"].as_i64().unwrap();
    let log = get_json(&s, "/pavilion/v1/decisions").await;
    let listed = log.to_string();
    assert!(listed.contains(&format!("\"id\":{id}")), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refusal_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(
        dir.path(),
        "serve.toml",
        "[[quota]]\nrepositories = \"team/*\"\nlimit = \"1KiB\"\n",
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    let big = xorshift_bytes(4096, 1, 7, 3);
    let r = client()
        .post(s.url(&format!(
            "/v2/team/app/blobs/uploads/?digest={}",
            sha256(&big)
        )))
        .header("traceparent", TRACEPARENT)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let all = events(&s).await;
    assert_eq!(types(&all), ["dev.pavilion.quota.refused"]);
    let data = &all[0]["data"];
    assert_eq!(data["repository"], "team/app");
    assert_eq!(data["limitBytes"], 1024);
    assert_eq!(data["addingBytes"], 4096);
    assert_eq!(all[0]["pavilionreposeq"], 1);
    // Written deep in the upload handler, it still carries the request's trace.
    assert_eq!(all[0]["traceparent"], TRACEPARENT);
}

/// A collection's own changes (a tag its retention rule drops, the
/// manifest left untagged) are events marked `"by": "gc"`, followed by
/// the run's `gc.completed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_and_its_deletions_are_events() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(
        dir.path(),
        "serve.toml",
        "[gc]\nenabled = true\ninterval = \"1s\"\ngrace = \"0\"\n\
         [[gc.retention]]\nrepositories = \"ret/*\"\nkeep_last = 1\n",
    );
    let s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    let m1 = manifest(&s, "ret/app", "one").await;
    let r = put_manifest(&s, "ret/app", "v1", Some(OCI_MANIFEST), &m1).await;
    assert_eq!(r.status(), 201);
    // Tag times are in milliseconds: v2 is the newer one.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let m2 = manifest(&s, "ret/app", "two").await;
    let r = put_manifest(&s, "ret/app", "v2", Some(OCI_MANIFEST), &m2).await;
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = events(&s).await;
        let by_gc: Vec<&Value> = all.iter().filter(|e| e["data"]["by"] == "gc").collect();
        if by_gc.len() >= 2 {
            assert_eq!(by_gc.len(), 2, "{all:#?}");
            assert_eq!(by_gc[0]["type"], "dev.pavilion.artifact.untagged");
            assert_eq!(by_gc[0]["subject"], "ret/app:v1");
            assert_eq!(by_gc[1]["type"], "dev.pavilion.artifact.deleted");
            assert_eq!(by_gc[1]["subject"], format!("ret/app@{}", sha256(&m1)));
            let after = by_gc[1]["pavilionseq"].as_i64().unwrap();
            let completed = all.iter().find(|e| {
                e["type"] == "dev.pavilion.gc.completed" && e["pavilionseq"].as_i64() > Some(after)
            });
            if let Some(e) = completed {
                assert!(e.get("pavilionreposeq").is_none(), "{e}");
                assert!(e["data"]["report"]["duration_ms"].is_u64(), "{e}");
                assert!(e["subject"].as_str().unwrap().starts_with("gc/"));
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no collection events in 30 s: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_events_bounds_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = file(dir.path(), "serve.toml", "[events]\nmax_events = 3\n");
    let mut s = Server::start_with(Backend::Sqlite, &["--config", &cfg]).unwrap();
    for tag in ["a", "b", "c"] {
        let m = manifest(&s, "keep/app", tag).await;
        let r = put_manifest(&s, "keep/app", tag, Some(OCI_MANIFEST), &m).await;
        assert_eq!(r.status(), 201);
    }
    // Pruned at start and on the server's timer.
    s.restart();
    let all = events(&s).await;
    let seqs: Vec<i64> = all
        .iter()
        .map(|e| e["pavilionseq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 5, 6]);
    // Numbering goes on from where it was.
    let m = manifest(&s, "keep/app", "d").await;
    let r = put_manifest(&s, "keep/app", "d", Some(OCI_MANIFEST), &m).await;
    assert_eq!(r.status(), 201);
    let page = get_json(&s, "/pavilion/v1/events?after=6").await;
    assert_eq!(page["events"][0]["pavilionseq"], 7);
    assert_eq!(page["events"][0]["pavilionreposeq"], 7);
}

#[test]
fn a_bad_events_section_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    for (text, names) in [
        ("[events]\nmax_events = 0\n", "max_events"),
        ("[events]\nretention_days = 0\n", "retention_days"),
        ("[events]\nsource = \"a b\"\n", "source"),
        ("[events]\nretain = 1\n", "retain"),
        ("[events]\nquery_subscriptions = 0\n", "query_subscriptions"),
        ("[events]\nquery_max_elements = 5\n", "query_max_elements"),
    ] {
        let cfg = file(dir.path(), "serve.toml", text);
        let out =
            crate::common::run::pavilion(&["serve", "--addr", "127.0.0.1:0", "--config", &cfg]);
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{text}: {err}");
    }
}

/// Under authentication the feed needs the catalog grant (events name
/// every repository), and each event names who caused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_needs_the_catalog_grant_and_names_the_actor() {
    use crate::common::auth::{admin_and_dev_config, basic};
    let tmp = tempfile::tempdir().unwrap();
    let Some(cfg) = admin_and_dev_config(tmp.path(), "") else {
        return;
    };
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    let dev = basic("dev", "pw-d");
    let config = br#"{"seed":"auth"}"#;
    let cd = sha256(config);
    let r = client()
        .post(s.url(&format!("/v2/dev/app/blobs/uploads/?digest={cd}")))
        .header("authorization", &dev)
        .body(config.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let m = image_manifest((&cd, config.len()), &[], "");
    let r = client()
        .put(s.url("/v2/dev/app/manifests/v1"))
        .header("authorization", &dev)
        .header("content-type", OCI_MANIFEST)
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let get = |who: Option<String>| {
        let mut r = client().get(s.url("/pavilion/v1/events"));
        if let Some(w) = who {
            r = r.header("authorization", w);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some(dev.clone())).await.unwrap().status(), 403);
    let r = get(Some(basic("admin", "pw-a"))).await.unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let pushed: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "dev.pavilion.artifact.pushed")
        .collect();
    assert_eq!(pushed.len(), 1, "{page}");
    assert_eq!(pushed[0]["pavilionactor"], "dev");
}
