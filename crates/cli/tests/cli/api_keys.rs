//! `pavilion token create|list|revoke` as an operator runs them: keys in
//! the metadata database `serve` uses (SQLite in the data directory, or
//! PostgreSQL), printed once, listed without secrets, revoked by name or
//! id, and every bad input refused with one line and nothing changed.

use crate::common::run::{pv, Run};
use crate::common::*;
use serde_json::Value;
use std::path::Path;

/// Where a test's metadata database is, as `token` flags.
struct Db {
    _dir: tempfile::TempDir,
    flags: Vec<String>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let flags = vec!["--data".into(), dir.path().display().to_string()];
        Db { _dir: dir, flags }
    }

    fn postgres() -> Option<Db> {
        let url = fresh_postgres_db()?;
        Some(Db {
            _dir: tempfile::tempdir().unwrap(),
            flags: vec!["--database-url".into(), url],
        })
    }

    /// `pavilion token ARGS` against this database.
    fn token(&self, args: &[&str]) -> Run {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        all.extend(self.flags.iter().map(String::as_str));
        pv(&all)
    }

    /// `token list [--all] --output json`: the keys.
    fn list(&self, all: bool) -> Vec<Value> {
        let mut args = vec!["list", "--output", "json"];
        if all {
            args.push("--all");
        }
        let v = self.token(&args).json();
        v["keys"].as_array().unwrap().clone()
    }
}

/// Hex SHA-256 of a key's secret, as the database holds it.
fn hex_sha256(secret: &str) -> String {
    sha256(secret.as_bytes())["sha256:".len()..].to_string()
}

/// The failure's message: exactly one line, `error: ...`.
fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0]
}

fn lifecycle(db: Db) {
    // Created: the key once on stdout, a warning that it will not be shown
    // again on stderr.
    let r = db.token(&[
        "create",
        "--name",
        "ci",
        "--scope",
        "repository:team/*:push,pull",
        "--scope",
        "registry:catalog:*",
        "--expires",
        "30d",
    ]);
    let key = r.ok().trim().to_string();
    assert!(key.starts_with("pvk_") && key.len() == 60, "{key}");
    assert!(r.stderr.contains("cannot be shown again"), "{}", r.stderr);
    let id = &key[4..16];
    let secret = &key[17..];

    // Listed without the secret (or its hash), in text and JSON.
    let text = db.token(&["list"]).ok();
    assert!(!text.contains(secret), "{text}");
    let header = text.lines().next().unwrap();
    for col in ["ID", "NAME", "STATE", "CREATED", "EXPIRES", "SCOPES"] {
        assert!(header.contains(col), "{text}");
    }
    let row = text.lines().nth(1).unwrap();
    assert!(row.starts_with(id) && row.contains(" ci "), "{text}");
    assert!(row.contains("active"), "{text}");
    // Actions are written back in their usual order.
    assert!(
        row.contains("repository:team/*:pull,push registry:catalog:*"),
        "{text}"
    );
    let keys = db.list(false);
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["id"], id);
    assert_eq!(k["name"], "ci");
    assert_eq!(k["state"], "active");
    assert!(k["revoked_at"].is_null());
    assert_eq!(
        k["scopes"],
        serde_json::json!(["repository:team/*:pull,push", "registry:catalog:*"])
    );
    let listed = k.to_string();
    assert!(!listed.contains(secret) && !listed.contains(&hex_sha256(secret)));
    // 30 days after creation, to the second.
    let created = k["created_at"].as_str().unwrap();
    let expires = k["expires_at"].as_str().unwrap();
    assert_ne!(created, expires);

    // A second live key with the same name is refused.
    let r = db.token(&["create", "--name", "ci", "--scope", "repository:a:pull"]);
    let e = one_line_error(r.fails(1));
    assert!(e.contains("already exists"), "{e}");
    assert!(r.text().is_empty(), "no key printed: {}", r.text());
    assert_eq!(db.list(true).len(), 1);

    // Another, never expiring, in JSON.
    let v = db
        .token(&[
            "create",
            "--name",
            "deploy",
            "--scope",
            "repository:prod/**:pull",
            "--expires",
            "never",
            "--output",
            "json",
        ])
        .json();
    assert_eq!(v["name"], "deploy");
    assert!(v["expires_at"].is_null());
    assert!(v["key"].as_str().unwrap().starts_with("pvk_"));
    assert_eq!(v["id"], v["key"].as_str().unwrap()[4..16]);
    assert_eq!(v["scopes"], serde_json::json!(["repository:prod/**:pull"]));

    // Revoked by name: gone from the list, shown revoked with --all.
    let out = db.token(&["revoke", "ci"]).ok();
    assert!(out.contains("revoked") && out.contains(id), "{out}");
    let live = db.list(false);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["name"], "deploy");
    let all = db.list(true);
    assert_eq!(all.len(), 2);
    let ci = all.iter().find(|k| k["name"] == "ci").unwrap();
    assert_eq!(ci["state"], "revoked");
    assert!(ci["revoked_at"].is_string());
    let text = db.token(&["list", "--all"]).ok();
    assert!(
        text.lines()
            .any(|l| l.starts_with(id) && l.contains("revoked")),
        "{text}"
    );

    // Revoking again, by name or id, says it already is.
    for again in ["ci", id] {
        let r = db.token(&["revoke", again]);
        let e = one_line_error(r.fails(1));
        assert!(e.contains("already revoked"), "{e}");
    }
    // By id, with JSON.
    let deploy_id = v["id"].as_str().unwrap();
    let r = db.token(&["revoke", deploy_id, "--output", "json"]).json();
    assert_eq!(r["name"], "deploy");
    assert_eq!(r["state"], "revoked");
    assert!(db.list(false).is_empty());
    // The name is free again.
    db.token(&["create", "--name", "ci", "--scope", "repository:a:pull"])
        .ok();
    assert_eq!(db.list(false).len(), 1);
}

#[test]
fn keys_are_created_listed_and_revoked_sqlite() {
    lifecycle(Db::sqlite());
}

#[test]
fn keys_are_created_listed_and_revoked_postgres() {
    if let Some(db) = Db::postgres() {
        lifecycle(db);
    }
}

/// Each bad input exits with one line, and the keys are as before.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let db = Db::sqlite();
    db.token(&["create", "--name", "ci", "--scope", "repository:a:pull"])
        .ok();
    let before = db.list(true);
    let many: Vec<String> = (0..33).map(|i| format!("repository:r{i}:pull")).collect();
    let mut too_many = vec!["create", "--name", "many"];
    for s in &many {
        too_many.extend(["--scope", s.as_str()]);
    }
    let long_name = "n".repeat(65);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["create", "--name", "x", "--scope", "repository:a:fly"],
            2,
            "unknown action \"fly\"",
        ),
        (
            vec!["create", "--name", "x", "--scope", "repository:a"],
            2,
            "\"repository:a\" is not type:name:actions",
        ),
        (
            vec!["create", "--name", "x", "--scope", "bucket:a:pull"],
            2,
            "unknown resource type",
        ),
        (
            vec!["create", "--name", "x", "--scope", "repository:[:pull"],
            2,
            "repository:[:pull",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "repository:a:pull",
                "--expires",
                "3y",
            ],
            2,
            "--expires \"3y\"",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "repository:a:pull",
                "--expires",
                "0d",
            ],
            2,
            "--expires",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--scope",
                "repository:a:pull",
                "--expires",
                "99999999999999999d",
            ],
            2,
            "--expires",
        ),
        (
            vec!["create", "--name", "a b", "--scope", "repository:a:pull"],
            2,
            "name \"a b\"",
        ),
        (
            vec![
                "create",
                "--name",
                &long_name,
                "--scope",
                "repository:a:pull",
            ],
            2,
            "1 to 64 characters",
        ),
        (too_many, 2, "at most 32"),
        (
            vec!["revoke", "nosuchkey123"],
            3,
            "no API key with id or name \"nosuchkey123\"",
        ),
    ];
    for (args, code, want) in cases {
        let r = db.token(&args);
        let e = one_line_error(r.fails(code));
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(r.text().is_empty(), "{args:?}: {}", r.text());
        assert_eq!(db.list(true), before, "{args:?} changed the keys");
    }
    // A missing --scope is clap's usage error (exit 2), before anything.
    db.token(&["create", "--name", "x"]).fails(2);
    assert_eq!(db.list(true), before);
}

/// The database is found as `serve` finds it: the config file's data or
/// database_url key, PAVILION_DATA; a data directory that does not exist
/// is refused rather than started afresh.
#[test]
fn the_database_is_the_one_serve_uses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let config = dir.path().join("pavilion.toml");
    std::fs::write(
        &config,
        format!("addr = \"127.0.0.1:0\"\ndata = \"{}\"\n", data.display()),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let key = pv(&[
        "token",
        "create",
        "--name",
        "cfg",
        "--scope",
        "repository:a:pull",
        "--config",
        cfg,
    ])
    .ok();
    assert!(data.join("meta.db").is_file());
    // The same database through PAVILION_DATA, and through --data.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pavilion"))
        .args(["token", "list", "--output", "json"])
        .env("PAVILION_DATA", &data)
        .env_remove("PAVILION_CONFIG")
        .env_remove("PAVILION_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keys"][0]["name"], "cfg");
    let d = data.to_str().unwrap();
    let listed = pv(&["token", "list", "--data", d]).ok();
    assert!(listed.contains("cfg"), "{listed}");

    // Only the hash of the secret is in the database files.
    let secret = key.trim()[17..].to_string();
    let mut bytes = Vec::new();
    for f in ["meta.db", "meta.db-wal"] {
        if let Ok(b) = std::fs::read(data.join(f)) {
            bytes.extend(b);
        }
    }
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(secret.as_bytes()), "the secret is stored");
    assert!(
        has(hex_sha256(&secret).as_bytes()),
        "the hash is not stored"
    );

    // A data directory that does not exist: refused, nothing created.
    let missing = dir.path().join("typo");
    let r = pv(&[
        "token",
        "create",
        "--name",
        "x",
        "--scope",
        "repository:a:pull",
        "--data",
        missing.to_str().unwrap(),
    ]);
    let e = one_line_error(r.fails(2));
    assert!(e.contains("does not exist"), "{e}");
    assert!(!Path::new(&missing).exists());
    // A config file serve would not read is refused too.
    std::fs::write(&config, "dta = \"x\"\n").unwrap();
    let r = pv(&["token", "list", "--config", cfg]);
    assert!(r.fails(1).contains("unknown field"), "{}", r.stderr);
}
