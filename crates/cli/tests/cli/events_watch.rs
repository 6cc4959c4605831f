//! Continuous queries from the client's side (issue 19): `pavilion query`
//! prints a query's current rows; `pavilion watch` follows its changes,
//! runs `--exec` once per row added or updated, remembers in `--state`
//! what succeeded across restarts, retries what failed, refuses a state
//! path that is a symbolic link, and reconnects when the registry
//! restarts. Waits are bounded; nothing is timed.

use crate::common::run::*;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TAGS: &str = "MATCH (t:Tag)-[:TAGS]->(m:Manifest) WHERE t.repository STARTS WITH 'team/' \
                    RETURN t.repository AS repository, t.name AS tag, m.digest AS digest";

/// The longest any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `cond` until it holds; fails the test after [`WAIT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines of `path` (none when it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut v = lines(path);
    v.sort();
    v
}

/// A running `pavilion watch`, its stdout lines on a channel.
struct Watch {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(addr: &str, extra: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(["watch", addr, "--query", TAGS, "--output", "json"])
            .args(extra)
            .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
            .env(
                "XDG_CACHE_HOME",
                std::env::temp_dir().join("pavilion-watch-test-cache"),
            )
            .env_remove("PAVILION_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, out) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = stderr_lines(&mut child);
        Watch {
            child,
            out,
            err,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout document of `change` whose row has `tag`.
    async fn wait_row(&mut self, change: &str, tag: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(line) = self.out.try_recv() {
                self.seen.push(line);
            }
            for line in &self.seen {
                let doc: Value = serde_json::from_str(line).unwrap_or_default();
                if doc["change"] == change && doc["row"]["tag"] == tag {
                    return doc;
                }
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {change} {tag}; saw {:?}; stderr {:?}",
                self.seen,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stderr(&self) -> Vec<String> {
        self.err.try_iter().collect()
    }

    /// Asks it to stop (SIGTERM) and waits: a reaction running is let
    /// finish and recorded, and the exit is a success.
    fn terminate(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = wait_bounded(&mut self.child, "pavilion watch after SIGTERM");
        let err = self.drain_stderr();
        assert!(status.success(), "{status}: {err:?}");
        err
    }

    /// Kills the process outright: what it recorded must be enough.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain_stderr()
    }

    /// Every stderr line, up to the end of the exited process's stream.
    fn drain_stderr(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(l) = self.err.recv_timeout(WAIT) {
            lines.push(l);
        }
        lines
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many rows `state` records as handled (the file's documented
/// shape: `rows` by key, each with `done`).
fn done_in(state: &Path) -> usize {
    let doc: Value = std::fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    doc["rows"].as_object().map_or(0, |rows| {
        rows.values().filter(|r| !r["done"].is_null()).count()
    })
}

/// A reaction script appending `$PAVILION_ROW_TAG` to `file`, and failing
/// for the tag `bad` until `ok` exists. The row is read from the
/// environment, never written into the command.
fn script(dir: &Path, file: &Path, ok: &Path) -> PathBuf {
    let path = dir.join("react.sh");
    std::fs::write(
        &path,
        format!(
            "printf '%s\\n' \"$PAVILION_ROW_TAG\" >> '{}'\n\
             [ \"$PAVILION_CHANGE\" = added ] || [ \"$PAVILION_CHANGE\" = updated ] || exit 9\n\
             [ \"$PAVILION_ROW_TAG\" != bad ] || [ -e '{}' ]\n",
            file.display(),
            ok.display()
        ),
    )
    .unwrap();
    path
}

/// `query` prints exactly the current rows, as JSON lines and as a table.
async fn query_prints_rows(s: Server) {
    let a = push_image(&s, "team/a", "v1", "a1").await;
    let b = push_image(&s, "team/b", "stable", "b1").await;
    push_image(&s, "other/c", "v1", "c1").await;
    let out = pv(&["query", &s.addr, TAGS, "--output", "json"]).ok();
    let rows: BTreeSet<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = [
        json!({"repository": "team/a", "tag": "v1", "digest": a}),
        json!({"repository": "team/b", "tag": "stable", "digest": b}),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    assert_eq!(rows, expected, "{out}");
    // The table: a header of the aliases (in the order the registry sends
    // the fields), then a line per row.
    let text = pv(&["query", &s.addr, TAGS]).ok();
    let mut lines = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let mut names = header.clone();
    names.sort();
    assert_eq!(names, ["digest", "repository", "tag"], "{text}");
    let table: BTreeSet<String> = lines
        .map(|cells| {
            let row: serde_json::Map<String, Value> = header
                .iter()
                .zip(cells)
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Value::Object(row).to_string()
        })
        .collect();
    assert_eq!(table, expected, "{text}");
}

backend_tests!(sqlite_query, Sqlite, rows => query_prints_rows;);

/// Each row's reaction runs once: the first result's, a new tag's; after
/// a kill, a restart with the same state runs only the tag pushed while
/// it was down.
async fn exec_once_across_restarts(s: Server) {
    let dir = tempfile::tempdir().unwrap();
    let (ran, ok) = (dir.path().join("ran"), dir.path().join("ok"));
    let exec = script(dir.path(), &ran, &ok);
    let state = dir.path().join("state.json");
    let args = [
        "--exec",
        &format!("sh '{}'", exec.display()),
        "--state",
        state.to_str().unwrap(),
    ];
    push_image(&s, "team/a", "v1", "v1").await;
    push_image(&s, "team/a", "v2", "v2").await;
    let mut w = Watch::start(&s.addr, &args);
    w.wait_row("present", "v2").await;
    wait_until("v1 and v2 ran", || lines(&ran).len() >= 2).await;
    push_image(&s, "team/a", "v3", "v3").await;
    w.wait_row("added", "v3").await;
    wait_until("v3 ran", || lines(&ran).len() >= 3).await;
    assert_eq!(sorted_lines(&ran), sorted(&["v1", "v2", "v3"]));
    // Killed once v3's success is on disk (its line is written before
    // the script exits, so the line alone is no barrier).
    wait_until("three rows recorded", || done_in(&state) == 3).await;
    w.kill();

    push_image(&s, "team/a", "v4", "v4").await;
    let mut w = Watch::start(&s.addr, &args);
    w.wait_row("present", "v4").await;
    // Reactions run in order: once v5's ran, all the result's had.
    push_image(&s, "team/a", "v5", "v5").await;
    w.wait_row("added", "v5").await;
    wait_until("v5 ran", || lines(&ran).contains(&"v5".to_string())).await;
    assert_eq!(
        sorted_lines(&ran),
        sorted(&["v1", "v2", "v3", "v4", "v5"]),
        "stderr: {:?}",
        w.stderr()
    );
}

backend_tests!(sqlite_exec_once, Sqlite, state => exec_once_across_restarts;);

/// A reaction that fails is reported and runs again at the next start;
/// the ones that succeeded do not.
async fn failed_reaction_retried(s: Server) {
    let dir = tempfile::tempdir().unwrap();
    let (ran, ok) = (dir.path().join("ran"), dir.path().join("ok"));
    let exec = script(dir.path(), &ran, &ok);
    let state = dir.path().join("state.json");
    let args = [
        "--exec",
        &format!("sh '{}'", exec.display()),
        "--state",
        state.to_str().unwrap(),
    ];
    push_image(&s, "team/a", "good", "good").await;
    push_image(&s, "team/a", "bad", "bad").await;
    let mut w = Watch::start(&s.addr, &args);
    w.wait_row("present", "bad").await;
    wait_until("both ran", || lines(&ran).len() >= 2).await;
    push_image(&s, "team/a", "barrier1", "barrier1").await;
    wait_until("barrier1 ran", || lines(&ran).len() >= 3).await;
    let err = w.terminate();
    assert!(
        err.iter()
            .any(|l| l.contains("failed") && l.contains("\"bad\"")),
        "{err:?}"
    );

    std::fs::write(&ok, b"").unwrap();
    let mut w = Watch::start(&s.addr, &args);
    w.wait_row("present", "bad").await;
    push_image(&s, "team/a", "barrier2", "barrier2").await;
    wait_until("barrier2 ran", || {
        lines(&ran).contains(&"barrier2".to_string())
    })
    .await;
    assert_eq!(
        sorted_lines(&ran),
        sorted(&["good", "bad", "barrier1", "bad", "barrier2"])
    );
}

backend_tests!(sqlite_retried, Sqlite, retry => failed_reaction_retried;);

/// A symbolic link at the state path is refused with one line, before
/// anything runs, and what it points at is left alone.
async fn state_symlink_refused(s: Server) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.path().join("state.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
    for path in [&link, &dangling] {
        let run = pv(&[
            "watch",
            &s.addr,
            "--query",
            TAGS,
            "--exec",
            "true",
            "--state",
            path.to_str().unwrap(),
        ]);
        assert_ne!(run.code, 0);
        let err = run.stderr.trim_end();
        assert!(
            !err.contains('\n') && err.contains("symbolic link"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert!(!dir.path().join("nothing").exists());
}

backend_tests!(sqlite_symlink, Sqlite, symlink => state_symlink_refused;);

/// A query the registry cannot parse: its one-line message, exit 2, for
/// `query` and `watch` alike.
async fn bad_query(s: Server) {
    for args in [
        vec!["query", &s.addr, "MATCH (t:Tag RETURN"],
        vec!["watch", &s.addr, "--query", "MATCH (t:Tag RETURN"],
    ] {
        let run = pv(&args);
        let err = run.fails(2).trim_end().to_string();
        assert!(
            !err.contains('\n') && err.contains("the query was refused: "),
            "{err}"
        );
    }
}

backend_tests!(sqlite_bad_query, Sqlite, bad => bad_query;);

/// The registry goes away and comes back on the same port and data: the
/// watch reconnects and reports what changed meanwhile and after.
async fn reconnects(mut s: Server) {
    push_image(&s, "team/a", "v1", "v1").await;
    let mut w = Watch::start(&s.addr, &[]);
    w.wait_row("present", "v1").await;
    s.restart();
    push_image(&s, "team/a", "v2", "v2").await;
    w.wait_row("added", "v2").await;
    push_image(&s, "team/a", "v3", "v3").await;
    w.wait_row("added", "v3").await;
}

backend_tests!(sqlite_reconnects, Sqlite, restart => reconnects;);

/// Under authentication a query needs the catalog grant, as the feed
/// does: none or a lesser grant exits 6 (auth), for `query` and `watch`
/// alike (`watch` does not retry what new credentials would fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_need_the_catalog_grant() {
    use crate::common::auth::admin_and_dev_config;
    let tmp = tempfile::tempdir().unwrap();
    let Some(cfg) = admin_and_dev_config(tmp.path(), "") else {
        return;
    };
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    let login = |who: &str, pass: &str| {
        let dir = tmp.path().join(who);
        std::fs::create_dir_all(&dir).unwrap();
        let auth = base64(format!("{who}:{pass}").as_bytes());
        let doc = json!({"auths": {s.addr.clone(): {"auth": auth}}});
        std::fs::write(dir.join("config.json"), doc.to_string()).unwrap();
        Cli::with_config(&dir)
    };
    let q = "MATCH (t:Tag) RETURN t.name AS tag";
    for cli in [Cli::default(), login("dev", "pw-d")] {
        cli.run(&["query", &s.addr, q]).fails(6);
        cli.run(&["watch", &s.addr, "--query", q]).fails(6);
    }
    let run = login("admin", "pw-a").run(&["query", &s.addr, q, "--output", "json"]);
    assert_eq!(run.ok(), "");
}

/// The issue's reaction: `--exec 'pavilion pull {ref} -o /models/{repo}'`
/// gets the row's artifact by digest, and the built-in `--pull DIR` puts
/// the model's files under DIR/<repository>.
async fn placeholders_and_pull(s: Server) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), br#"{"architectures":["Tiny"]}"#).unwrap();
    std::fs::write(model.join("weights.bin"), vec![7u8; 4096]).unwrap();
    let reference = format!("{}/team/llm:prod-1", s.addr);
    let cache = dir.path().join("cache");
    let out = crate::common::run::pavilion(&[
        "push",
        &reference,
        model.to_str().unwrap(),
        "--license",
        "MIT",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refs = dir.path().join("refs");
    let models = dir.path().join("models");
    let exec = format!(
        "printf '%s %s\\n' {{ref}} {{repo}} >> '{}' && {} pull {{ref}} -o '{}/{{repo}}' --no-cache",
        refs.display(),
        env!("CARGO_BIN_EXE_pavilion"),
        models.display()
    );
    let pulled = dir.path().join("pulled");
    let mut w = Watch::start(
        &s.addr,
        &["--exec", &exec, "--pull", pulled.to_str().unwrap()],
    );
    let row = w.wait_row("present", "prod-1").await;
    let digest = row["row"]["digest"].as_str().unwrap().to_string();
    wait_until("the reaction ran", || !lines(&refs).is_empty()).await;
    assert_eq!(
        lines(&refs),
        [format!("{}/team/llm@{digest} team/llm", s.addr)],
        "{:?}",
        w.stderr()
    );
    for root in [&models, &pulled] {
        let weights = root.join("team/llm/weights.bin");
        wait_until("the model was pulled", || weights.exists()).await;
        assert_eq!(std::fs::read(&weights).unwrap(), vec![7u8; 4096]);
    }
}

backend_tests!(sqlite_placeholders_and_pull, Sqlite, pull => placeholders_and_pull;);
