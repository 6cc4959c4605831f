//! Garbage collection end to end (issue 17, item 7 and its "done when"):
//! the dry run and the run it predicts, retention rules from the serve
//! configuration, one collector at a time, a collector killed mid-sweep, a
//! store error mid-sweep, a retention rule that does not parse, the
//! schedule inside serve, and object storage reclaimed. Under load, with
//! replicas: gc_stress.rs.

use crate::common::run::pv;
use crate::common::*;
use crate::gc_support::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// DELETE of manifest `reference` (a tag or a digest); the status.
async fn delete(s: &Server, repo: &str, reference: &str) -> u16 {
    request(
        s,
        reqwest::Method::DELETE,
        &format!("/v2/{repo}/manifests/{reference}"),
    )
    .await
    .status()
    .as_u16()
}

/// Claims made in this millisecond are not older than a grace of zero.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_what_would_go_and_the_run_removes_exactly_that() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let st = Stores::of(&s);
    let data = s.data.to_str().unwrap().to_string();
    let keep = Image::small("keep", 20_000);
    let gone = Image::small("gone", 30_000);
    let untagged = Image::small("untagged", 40_000);
    let kd = keep.push(&s, "gcf/app", "v1").await;
    let gd = gone.push(&s, "gcf/app", "v2").await;
    let ud = untagged.push(&s, "gcf/app", "v3").await;
    let od = push_blob(&s, "gcf/junk", &xorshift_bytes(50_000, 9, 9, 3)).await;
    assert_eq!(delete(&s, "gcf/app", &gd).await, 202, "the manifest goes");
    assert_eq!(delete(&s, "gcf/app", "v3").await, 202, "only the tag goes");
    settle().await;
    let mut garbage = gone.all_digests();
    garbage.extend(untagged.all_digests());
    garbage.push(od.clone());
    garbage.sort();

    let usage = || get_json(&s, "/pavilion/v1/usage");
    let du = || pv(&["du", "--data", &data, "--output", "json"]).json();
    let (usage_before, du_before) = (usage().await, du());
    let files_before = blob_files(&s.data);
    let freed: u64 = garbage.iter().map(|d| files_before[d]).sum();

    let text = st.gc(&["--grace", "0", "--dry-run"]).ok();
    for want in [
        format!("manifests:\n  gcf/app@{ud} ("),
        "): untagged and unreferenced for more than 0s\n".to_string(),
        "blobs:\n".to_string(),
        format!("  {od} (48.8 KiB): no repository holds it\n"),
        "would free ".to_string(),
    ] {
        assert!(text.contains(&want), "dry run lacks {want:?}:\n{text}");
    }
    assert!(!text.contains(&kd), "{text}");
    let dry = st.gc_json(&["--grace", "0", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(names(&dry, "tags"), Vec::<String>::new());
    assert_eq!(names(&dry, "manifests"), vec![ud.clone()]);
    assert_eq!(
        reason(&dry, "manifests", &ud),
        "untagged and unreferenced for more than 0s"
    );
    assert_eq!(names(&dry, "blobs"), garbage);
    for d in &garbage {
        assert_eq!(reason(&dry, "blobs", d), "no repository holds it");
    }
    assert_eq!(dry["links"], 5, "{dry}");
    assert_eq!(dry["bytes"], freed, "{dry}");
    // Nothing changed.
    assert_eq!(usage().await, usage_before);
    assert_eq!(du(), du_before);
    assert_eq!(blob_files(&s.data), files_before);
    assert_pulls(&s, "gcf/app", "v1", &kd).await;
    assert_pulls(&s, "gcf/app", &ud, &ud).await;

    // The run removes exactly what the dry run listed.
    let done = st.gc_json(&["--grace", "0"]);
    assert_eq!(done["dry_run"], false);
    assert_eq!(names(&done, "manifests"), names(&dry, "manifests"));
    assert_eq!(names(&done, "blobs"), garbage);
    assert_eq!(
        (&done["links"], &done["bytes"], &done["skipped"]),
        (&dry["links"], &dry["bytes"], &serde_json::json!(0))
    );
    let mut left = files_before.clone();
    left.retain(|d, _| !garbage.contains(d));
    let files_after = blob_files(&s.data);
    assert_eq!(files_after, left, "exactly the listed blobs left the disk");
    let disk_after = disk_bytes(&s.data);
    assert_eq!(files_before.values().sum::<u64>() - disk_after, freed);
    assert_pulls(&s, "gcf/app", "v1", &kd).await;
    assert_blob_absent(&s, "gcf/app", &gone.blob_digests()[1]).await;
    assert_blob_absent(&s, "gcf/junk", &od).await;
    assert_eq!(get_manifest(&s, "gcf/app", &ud).await.status(), 404);

    // Usage (HTTP and `pavilion du`) agrees with what is left on disk.
    let u = usage().await;
    let t = &u["totals"];
    assert_eq!(
        t["stored_blob_bytes"].as_u64().unwrap() + t["stored_manifest_bytes"].as_u64().unwrap(),
        disk_after,
        "{u}"
    );
    assert_eq!(
        (&t["stored_blobs"], &t["stored_manifests"]),
        (&2.into(), &1.into())
    );
    let d = du();
    assert_eq!(d["totals"], u["totals"]);
    assert_eq!(d["repositories"], u["repositories"]);
    let repo = |name: &str| {
        u["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        (&repo("gcf/app")["blobs"], &repo("gcf/app")["manifests"]),
        (&2.into(), &1.into())
    );
    assert_eq!(repo("gcf/junk")["blobs"], 0);
    // Nothing is left to collect.
    let again = st.gc_json(&["--grace", "0", "--dry-run"]);
    assert_eq!(
        (names(&again, "manifests"), names(&again, "blobs")),
        (vec![], vec![])
    );
}

const RETENTION: &str = r#"[gc]
grace = "0"

[[gc.retention]]
repositories = "ret/*"
keep_last = 2
tags = ["v*", "prod*"]
protect_tags = ["prod*"]
protect_signed = true

[[gc.retention]]
repositories = "keep/*"
untagged_after = "never"

[[gc.retention]]
repositories = "tmp/*"
untagged_after = "2s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_rules_from_the_serve_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "serve.toml", RETENTION);
    let cfg = cfg.to_str().unwrap();
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg]).unwrap();
    let data = s.data.to_str().unwrap().to_string();
    // prod-1 is oldest, then v1..v5; `latest` is not counted.
    let mut pushed = BTreeMap::new();
    for tag in ["prod-1", "v1", "v2", "v3", "v4", "v5", "latest"] {
        let d = Image::small(&format!("ret {tag}"), 2000)
            .push(&s, "ret/app", tag)
            .await;
        pushed.insert(tag, d);
        // Tags set in distinct milliseconds: their order is unambiguous.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // v1 is signed (a Notary signature refers to it).
    let v1 = &pushed["v1"];
    let empty = push_blob(&s, "ret/app", b"{}").await;
    let envelope = push_blob(&s, "ret/app", b"a signature envelope").await;
    let size = get_manifest(&s, "ret/app", "v1")
        .await
        .bytes()
        .await
        .unwrap()
        .len();
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.cncf.notary.signature","config":{{"mediaType":"{OCI_EMPTY}","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/jose+json","digest":"{envelope}","size":20}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{v1}","size":{size}}}}}"#
    );
    let sig_d = sha256(sig.as_bytes());
    let r = put_manifest(&s, "ret/app", &sig_d, Some(OCI_MANIFEST), sig.as_bytes()).await;
    assert_eq!(r.status(), 201);
    // Untagged manifests in three repositories with three rules.
    let mut untagged = BTreeMap::new();
    for repo in ["keep/x", "tmp/x", "other/x"] {
        let d = Image::small(repo, 1000).push(&s, repo, "t").await;
        assert_eq!(delete(&s, repo, "t").await, 202);
        untagged.insert(repo, d);
    }
    let untagged_at = Instant::now();
    settle().await;

    let gc = |extra: &[&str]| {
        let mut a = vec!["gc", "--config", cfg, "--data", &data];
        a.extend(extra);
        pv(&a)
    };
    let rule = "older than the newest 2 tags of v*, prod* (retention rule for ret/*)";
    let text = gc(&["--dry-run"]).ok();
    for want in [
        // Newest first.
        format!("tags:\n  ret/app:v3: {rule}\n  ret/app:v2: {rule}\n"),
        format!("ret/app@{} (", pushed["v2"]),
        "): its tags (v2) are removed by retention\n".to_string(),
        "): its tags (v3) are removed by retention\n".to_string(),
        format!("other/x@{} (", untagged["other/x"]),
        "): untagged and unreferenced for more than 0s\n".to_string(),
    ] {
        assert!(text.contains(&want), "dry run lacks {want:?}:\n{text}");
    }
    for kept in [
        &pushed["v1"],
        &pushed["prod-1"],
        &untagged["keep/x"],
        &untagged["tmp/x"],
    ] {
        assert!(!text.contains(kept.as_str()), "{kept} is kept:\n{text}");
    }
    let dry = gc(&["--dry-run", "--output", "json"]).json();
    assert_eq!(names(&dry, "tags"), vec!["v2", "v3"]);
    assert_eq!(reason(&dry, "tags", "v2"), rule);
    let mut gone = vec![
        pushed["v2"].clone(),
        pushed["v3"].clone(),
        untagged["other/x"].clone(),
    ];
    gone.sort();
    assert_eq!(names(&dry, "manifests"), gone);

    // The run keeps what the rules protect.
    let done = gc(&["--output", "json"]).json();
    assert_eq!(names(&done, "tags"), names(&dry, "tags"));
    assert_eq!(names(&done, "manifests"), gone);
    for tag in ["prod-1", "v1", "v4", "v5", "latest"] {
        assert_pulls(&s, "ret/app", tag, &pushed[tag]).await;
    }
    for tag in ["v2", "v3"] {
        assert_eq!(
            get_manifest(&s, "ret/app", tag).await.status(),
            404,
            "{tag}"
        );
        assert_eq!(
            get_manifest(&s, "ret/app", &pushed[tag]).await.status(),
            404
        );
    }
    assert_pulls(&s, "ret/app", &sig_d, &sig_d).await;
    let refs = get_json(&s, &format!("/v2/ret/app/referrers/{v1}")).await;
    assert_eq!(refs["manifests"][0]["digest"], sig_d.as_str(), "{refs}");
    assert_pulls(&s, "keep/x", &untagged["keep/x"], &untagged["keep/x"]).await;
    assert_pulls(&s, "tmp/x", &untagged["tmp/x"], &untagged["tmp/x"]).await;
    assert_eq!(
        get_manifest(&s, "other/x", &untagged["other/x"])
            .await
            .status(),
        404
    );

    // Once untagged for longer than its rule allows, tmp/x goes too;
    // keep/x never does.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(untagged_at.elapsed())).await;
    let later = gc(&["--dry-run", "--output", "json"]).json();
    assert_eq!(names(&later, "manifests"), vec![untagged["tmp/x"].clone()]);
    assert_eq!(
        reason(&later, "manifests", &untagged["tmp/x"]),
        "untagged and unreferenced for more than 2s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_started_while_another_runs_is_refused_on_sqlite() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let st = Stores::of(&s);
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.data.join("meta.db.gc-lock"))
        .unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let r = st.gc(&["--grace", "0"]);
    assert!(busy(&r), "{r:?}");
    assert_eq!(r.code, 1, "{r:?}");
    drop(held);
    st.gc(&["--grace", "0"]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_started_while_another_runs_is_refused_on_postgres() {
    let Some(s) = Server::start(Backend::Postgres) else {
        return;
    };
    let st = Stores::of(&s);
    // The collector's advisory lock, held by a psql session kept open.
    const KEY: i64 = 0x7061_7669_6c67_6300;
    let mut psql = Command::new("psql")
        .args([
            s.database_url.as_deref().unwrap(),
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    let mut input = psql.stdin.take().unwrap();
    writeln!(input, "SELECT pg_advisory_lock({KEY});").unwrap();
    input.flush().unwrap();
    let held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let mut n = String::new();
    for _ in 0..200 {
        n = db_query(&st, held).unwrap().concat();
        if n == "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(n, "1", "psql never took the lock");
    let r = st.gc(&["--grace", "0"]);
    assert!(busy(&r), "{r:?}");
    // Its session ends with its input, and the lock with it.
    drop(input);
    let err = read_all(psql.stderr.take());
    let status = wait_bounded(&mut psql, "psql");
    assert!(
        status.success(),
        "{}",
        String::from_utf8_lossy(&err.join().unwrap())
    );
    st.gc(&["--grace", "0"]).ok();
}

/// `n` small blobs unique to `seed`, uploaded into `repo` (and referenced
/// by nothing), several at a time; digest -> bytes.
async fn garbage(s: &Server, repo: &str, seed: &str, n: usize) -> BTreeMap<String, Vec<u8>> {
    use futures::StreamExt;
    let http = client();
    let base = s.url("");
    let blobs: BTreeMap<String, Vec<u8>> = (0..n)
        .map(|i| format!("garbage {seed} {i}").into_bytes())
        .map(|b| (sha256(&b), b))
        .collect();
    futures::stream::iter(blobs.values())
        .for_each_concurrent(16, |b| {
            let (http, base) = (&http, &base);
            async move {
                push_raw_blob(http, base, repo, b).await.unwrap();
            }
        })
        .await;
    blobs
}

/// Runs `pavilion gc --grace 0` on `st` and kills it (SIGKILL) as soon
/// as one of `watch` is deleted; whether the kill came before it finished.
fn kill_once_sweeping(st: &Stores, watch: &[std::path::PathBuf]) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["gc", "--grace", "0", "--data"])
        .arg(&st.data)
        .env_remove("PAVILION_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if watch.iter().any(|p| !p.exists()) {
            let _ = child.kill();
            let _ = child.wait();
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("pavilion gc neither deleted anything nor finished within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_mid_sweep_is_finished_by_the_next_run() {
    const N: usize = 2000;
    let s = Server::start(Backend::Sqlite).unwrap();
    let st = Stores::of(&s);
    let mut kept = Vec::new();
    for tag in ["a", "b", "c"] {
        kept.push((
            tag,
            Image::small(&format!("kill {tag}"), 5000)
                .push(&s, "kill/app", tag)
                .await,
        ));
    }
    let mut landed = None;
    for attempt in 0..3 {
        let junk = garbage(&s, "kill/junk", &format!("attempt {attempt}"), N).await;
        settle().await;
        let before = disk_bytes(&s.data);
        // The first doomed batch holds the lowest digests: watch those.
        let watch: Vec<_> = junk
            .keys()
            .take(200)
            .map(|d| blob_file(&s.data, d))
            .collect();
        let st2 = st.clone();
        let killed = tokio::task::spawn_blocking(move || kill_once_sweeping(&st2, &watch))
            .await
            .unwrap();
        let left = junk
            .keys()
            .filter(|d| blob_file(&s.data, d).exists())
            .count();
        let dry = st.gc_json(&["--grace", "0", "--dry-run"]);
        let doomed: Vec<String> = names(&dry, "blobs")
            .into_iter()
            .filter(|d| reason(&dry, "blobs", d) == "left doomed by an interrupted run")
            .collect();
        eprintln!(
            "attempt {attempt}: killed {killed}, {left} of {N} garbage blobs left, {} doomed",
            doomed.len()
        );
        if killed && left > 0 && left < N && !doomed.is_empty() {
            landed = Some((junk, before, doomed));
            break;
        }
    }
    let (junk, before, doomed) = landed.expect("the kill never landed mid-sweep");

    // A doomed blob cannot be pushed until the collection finishes.
    let victim = &doomed[0];
    let r = push_blob_as(&s, "kill/again", victim, &junk[victim]).await;
    assert_eq!(hdr(&r, "retry-after").as_deref(), Some("1"));
    let (status, _, detail) = error_parts(r).await;
    assert_eq!(status, 503);
    assert!(
        detail.contains("being garbage collected: retry"),
        "{detail}"
    );
    // What is tagged was never touched.
    for (tag, d) in &kept {
        assert_pulls(&s, "kill/app", tag, d).await;
    }
    // The next run finishes the job.
    let done = st.gc_json(&["--grace", "0"]);
    let took = names(&done, "blobs");
    assert!(
        doomed.iter().all(|d| took.contains(d)),
        "the doomed blobs were finished"
    );
    let after = st.gc_json(&["--grace", "0", "--dry-run"]);
    assert_eq!(
        (names(&after, "manifests"), names(&after, "blobs")),
        (vec![], vec![])
    );
    assert!(
        junk.keys().all(|d| !blob_file(&s.data, d).exists()),
        "garbage left on disk"
    );
    assert!(disk_bytes(&s.data) < before);
    for (tag, d) in &kept {
        assert_pulls(&s, "kill/app", tag, d).await;
    }
    // The refused push succeeds when retried.
    assert_eq!(push_blob(&s, "kill/again", &junk[victim]).await, *victim);
    let got = get_blob(&s, "kill/again", victim, None)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(got[..] == junk[victim][..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_mid_sweep_stops_the_run_and_the_next_one_resumes() {
    let s = Server::start(Backend::Sqlite).unwrap();
    let st = Stores::of(&s);
    let mut kept = Vec::new();
    let mut live_shards = std::collections::HashSet::new();
    for tag in ["a", "b", "c"] {
        let img = Image::small(&format!("fault {tag}"), 5000);
        for d in img.all_digests() {
            live_shards.insert(d[7..9].to_string());
        }
        kept.push((tag, img.push(&s, "fault/app", tag).await));
    }
    let junk = garbage(&s, "fault/junk", "store error", 40).await;
    settle().await;
    // A garbage blob whose shard directory holds nothing live: replaced by
    // a regular file, its deletion fails (ENOTDIR), whoever runs it.
    let victim = junk
        .keys()
        .skip(10)
        .find(|d| !live_shards.contains(&d[7..9]))
        .unwrap()
        .clone();
    let shard = blob_file(&s.data, &victim).parent().unwrap().to_path_buf();
    let aside = s.data.join("shard-aside");
    std::fs::rename(&shard, &aside).unwrap();
    std::fs::write(&shard, b"not a directory").unwrap();

    let r = st.gc(&["--grace", "0"]);
    let err = r.fails(1);
    assert!(
        err.contains("garbage collection stopped early (the next run resumes)"),
        "{err}"
    );
    assert!(err.contains("Not a directory"), "{err}");
    for (tag, d) in &kept {
        assert_pulls(&s, "fault/app", tag, d).await;
    }
    // The blob it failed on stays doomed; those it did not reach are
    // spared (no longer doomed), those before it are gone.
    let dry = st.gc_json(&["--grace", "0", "--dry-run"]);
    assert_eq!(
        reason(&dry, "blobs", &victim),
        "left doomed by an interrupted run"
    );
    let listed = names(&dry, "blobs");
    // Others in the victim's shard are in the directory set aside.
    let present = |d: &str| {
        if d[7..9] == victim[7..9] {
            aside.join(&d[7..]).exists()
        } else {
            blob_file(&s.data, d).exists()
        }
    };
    let mut deleted = 0;
    for d in junk.keys().filter(|d| *d != &victim) {
        if listed.contains(d) {
            assert_eq!(reason(&dry, "blobs", d), "no repository holds it");
            assert!(present(d), "{d} listed but gone");
        } else {
            assert!(!present(d), "{d} neither listed nor gone");
            deleted += 1;
        }
    }
    eprintln!(
        "the run deleted {deleted} of {} garbage blobs before the error",
        junk.len()
    );

    std::fs::remove_file(&shard).unwrap();
    std::fs::rename(&aside, &shard).unwrap();
    let done = st.gc_json(&["--grace", "0"]);
    assert!(done.get("error").is_none(), "{done}");
    assert!(names(&done, "blobs").contains(&victim));
    assert!(
        junk.keys().all(|d| !blob_file(&s.data, d).exists()),
        "garbage left on disk"
    );
    let after = st.gc_json(&["--grace", "0", "--dry-run"]);
    assert_eq!(names(&after, "blobs"), Vec::<String>::new());
    for (tag, d) in &kept {
        assert_pulls(&s, "fault/app", tag, d).await;
    }
}

#[test]
fn a_retention_rule_that_does_not_parse_stops_serve_and_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(
        tmp.path(),
        "bad.toml",
        "[[gc.retention]]\nrepositories = \"team/[\"\n",
    );
    let data = tmp.path().join("data");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(&cfg)
        .env_remove("PAVILION_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut serve);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = serve.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = serve.kill();
            let _ = serve.wait();
            panic!("serve started with a retention rule that does not parse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err: Vec<String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    assert!(!status.success());
    assert_eq!(err.len(), 1, "one line: {err:?}");
    assert!(err[0].contains(r#"gc.retention 1 ("team/[")"#), "{err:?}");
    let r = pv(&[
        "gc",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let err = r.fails(2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(r#"gc.retention 1 ("team/[")"#), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_inside_serve_collects_what_was_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "serve.toml", "[gc]\nenabled = false\n");
    let mut s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    // A model pushed as a user does, and an image then deleted.
    let model = tmp.path().join("model");
    make_model(&model);
    let reference = format!("{}/models/tiny:v1", s.addr);
    let cache = tmp.path().join("cache");
    pv(&[
        "push",
        &reference,
        model.to_str().unwrap(),
        "--license",
        "MIT",
        "--cache-dir",
        cache.to_str().unwrap(),
    ])
    .ok();
    let gone = Image::small("scheduled", 10_000);
    let gd = gone.push(&s, "sched/app", "v1").await;
    let layer = gone.blob_digests()[1].clone();
    assert_eq!(delete(&s, "sched/app", &gd).await, 202);
    // Now the schedule: every second, no grace ("0" spelled so on purpose).
    config_file(
        tmp.path(),
        "serve.toml",
        "[gc]\nenabled = true\ninterval = \"1s\"\ngrace = \"0\"\n",
    );
    s.restart();
    let file = blob_file(&s.data, &layer);
    assert!(file.exists());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = get_blob(&s, "sched/app", &layer, None).await.status();
        if !file.exists() && status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule never collected {layer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_blob_absent(&s, "sched/app", &layer).await;
    // The tagged model still pulls, file for file.
    pull_complete(&s.url(""), "models/tiny", "v1")
        .await
        .unwrap();
    let out = tmp.path().join("out");
    pv(&[
        "pull",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
    ])
    .ok();
    assert_eq!(files_of(&out), files_of(&model));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_gives_back_what_a_collection_deletes() {
    object_storage_gives_back(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_gives_back_what_a_collection_deletes_azure() {
    object_storage_gives_back(Backend::Azure).await;
}

async fn object_storage_gives_back(backend: Backend) {
    let Some(s) = Server::start(backend) else {
        return;
    };
    // `pavilion gc` needs only the URLs serve uses, not its data directory.
    let elsewhere = tempfile::tempdir().unwrap();
    let st = Stores {
        data: elsewhere.path().join("gc"),
        ..Stores::of(&s)
    };
    let storage = st.storage.clone().unwrap();
    let img = Image::small("reclaimed", 200_000);
    let d = img.push(&s, "s3gc/app", "v1").await;
    // Read once, so the server remembers where the bytes are.
    assert_pulls(&s, "s3gc/app", "v1", &d).await;
    let entry = |d: &str| format!("blobs/sha256/{}", &d[7..]);
    let before = bucket_keys(&storage).await;
    for d in img.all_digests() {
        assert!(before.contains(&entry(&d)), "{d} not in {before:?}");
    }
    assert_eq!(delete(&s, "s3gc/app", &d).await, 202);
    settle().await;
    let done = st.gc_json(&["--grace", "0"]);
    let mut all = img.all_digests();
    all.sort();
    assert_eq!(names(&done, "blobs"), all);
    let after = bucket_keys(&storage).await;
    for d in &all {
        assert!(!after.contains(&entry(d)), "{d} still in the bucket");
    }
    assert!(
        after.len() + 2 * all.len() <= before.len(),
        "each blob's entry and data went: {} -> {} objects",
        before.len(),
        after.len()
    );
    // The same content pushed again is written again, and pulls back.
    assert_eq!(img.push(&s, "s3gc/app", "v1").await, d);
    assert_pulls(&s, "s3gc/app", "v1", &d).await;
    let again = bucket_keys(&storage).await;
    assert!(all.iter().all(|d| again.contains(&entry(d))));
}
