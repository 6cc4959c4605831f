//! `pavilion token create|list|revoke`: robot / API keys (`pvk_...`) in the
//! metadata database `serve` uses, so every replica knows them at once.
//! Run where that database is reachable (the registry host, or anywhere
//! with the PostgreSQL URL); nothing prompts, so CI can run it.

use super::database::{open, DbArgs};
use crate::commands::sign::parse_duration;
use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, Output, OutputArgs};
use crate::remote::runtime;
use clap::{Args, Subcommand};
use pavilion_store::api_keys::{check_name, check_scopes, MAX_SCOPES};
use pavilion_store::{ApiKey, ApiKeyError, NewApiKey};

/// API key operations.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API key and print it (once: only its hash is kept).
    Create(CreateArgs),
    /// List API keys (never their secrets).
    List(ListArgs),
    /// Revoke an API key by id or name; it stops working on every replica.
    Revoke(RevokeArgs),
}

/// Arguments of `token create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The key's name (1 to 64 of A-Z a-z 0-9 . _ -), unique among keys not revoked; policies see it as the subject.
    #[arg(long)]
    pub name: String,
    /// What the key may do, repeatable: repository:GLOB:ACTIONS (`*` within one path component, `**` across; actions pull, push, delete or *) or registry:catalog:*.
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    pub scopes: Vec<String>,
    /// How long the key works: 30d, 12h, 90m, 3600s, or never.
    #[arg(long, value_name = "DURATION", default_value = "90d")]
    pub expires: String,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `token list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Include revoked keys.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `token revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The key's id, or the name of a key not revoked.
    pub id_or_name: String,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs a `token` subcommand.
pub fn run(cmd: TokenCommand) -> CmdResult {
    match cmd {
        TokenCommand::Create(a) => create(a),
        TokenCommand::List(a) => list(a),
        TokenCommand::Revoke(a) => revoke(a),
    }
}

/// Longest `--expires`: beyond, `never` says what is meant (and the date
/// stays printable).
const MAX_EXPIRES_DAYS: i64 = 36_500;

/// `--expires` as a duration in milliseconds; None for `never`.
fn expires_millis(s: &str) -> CmdResult<Option<i64>> {
    if s == "never" {
        return Ok(None);
    }
    let d = parse_duration(s).map_err(|_| {
        UsageError(format!(
            "--expires {s:?} is not a duration like 30d, 12h, 90m or 3600s, or never"
        ))
    })?;
    if d.whole_days() > MAX_EXPIRES_DAYS {
        return Err(UsageError(format!(
            "--expires {s}: longer than {MAX_EXPIRES_DAYS} days; use --expires never"
        ))
        .into());
    }
    // Within 100 years, milliseconds fit an i64.
    Ok(Some(d.whole_seconds() * 1000))
}

/// A store error with the exit status of its kind: what was given breaks a
/// rule (2), nothing by that name (3), anything else (1).
fn key_failure(e: ApiKeyError) -> Failure {
    let status = match &e {
        ApiKeyError::Invalid(_) => ExitStatus::Usage,
        ApiKeyError::NotFound(_) => ExitStatus::NotFound,
        _ => ExitStatus::Failure,
    };
    Failure::new(status, e)
}

/// Unix milliseconds as RFC 3339 (UTC, seconds).
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// A key as `list --output json` and `revoke --output json` print it: no
/// hash, no secret.
fn key_json(k: &ApiKey, now: i64) -> serde_json::Value {
    serde_json::json!({
        "id": k.id,
        "name": k.name,
        "scopes": k.scopes,
        "created_at": rfc3339(k.created_at),
        "expires_at": k.expires_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
        "state": k.state(now).as_str(),
    })
}

fn create(args: CreateArgs) -> CmdResult {
    // Everything given is checked before the database is opened, so a
    // refusal changes nothing and needs no database.
    check_name(&args.name).map_err(|e| UsageError(e.to_string()))?;
    if args.scopes.len() > MAX_SCOPES {
        return Err(UsageError(format!(
            "at most {MAX_SCOPES} --scope per key, not {}",
            args.scopes.len()
        ))
        .into());
    }
    let scopes = args
        .scopes
        .iter()
        .map(|s| {
            pavilion_auth::Grant::parse(s)
                .map(|g| g.as_str().to_string())
                .map_err(|e| UsageError(format!("--scope: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_scopes(&scopes).map_err(|e| UsageError(e.to_string()))?;
    let lifetime = expires_millis(&args.expires)?;
    let new = pavilion_auth::apikey::generate().map_err(Failure::other)?;
    let output = args.output.format;
    let key = runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let now = pavilion_store::now_millis();
        let stored = store
            .create_api_key(&NewApiKey {
                id: new.id.clone(),
                name: args.name.clone(),
                hash: new.hash.clone(),
                scopes,
                expires_at: lifetime.map(|l| now.saturating_add(l)),
            })
            .await
            .map_err(key_failure);
        store.close().await;
        stored
    })?;
    let expires = key.expires_at.map(rfc3339);
    match output {
        Output::Json => print_json(&serde_json::json!({
            "id": key.id,
            "name": key.name,
            "key": new.key,
            "scopes": key.scopes,
            "expires_at": expires,
        })),
        Output::Text => println!("{}", new.key),
    }
    eprintln!(
        "created API key {:?} (id {}, {}): the key printed cannot be shown again: store it now",
        key.name,
        key.id,
        expires.map_or("never expires".to_string(), |e| format!("expires {e}")),
    );
    Ok(ExitStatus::Success)
}

fn list(args: ListArgs) -> CmdResult {
    let keys = runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let keys = store
            .api_keys(args.all)
            .await
            .map_err(Failure::other)
            .context("listing API keys");
        store.close().await;
        keys
    })?;
    let now = pavilion_store::now_millis();
    match args.output.format {
        Output::Json => print_json(&serde_json::json!({
            "keys": keys.iter().map(|k| key_json(k, now)).collect::<Vec<_>>(),
        })),
        Output::Text => print_table(&keys, now),
    }
    Ok(ExitStatus::Success)
}

/// Keys as aligned columns under a header; scopes separated by spaces
/// (their actions already use commas).
fn print_table(keys: &[ApiKey], now: i64) {
    let mut rows = vec![[
        "ID".to_string(),
        "NAME".to_string(),
        "STATE".to_string(),
        "CREATED".to_string(),
        "EXPIRES".to_string(),
        "SCOPES".to_string(),
    ]];
    for k in keys {
        rows.push([
            k.id.clone(),
            k.name.clone(),
            k.state(now).as_str().to_string(),
            rfc3339(k.created_at),
            k.expires_at.map_or("never".to_string(), rfc3339),
            k.scopes.join(" "),
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.len());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (cell, w) in r.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        line.push_str(&r[5]);
        println!("{line}");
    }
}

fn revoke(args: RevokeArgs) -> CmdResult {
    let key = runtime()?.block_on(async {
        let store = open(&args.db).await?;
        let key = store
            .revoke_api_key(&args.id_or_name)
            .await
            .map_err(key_failure);
        store.close().await;
        key
    })?;
    let now = pavilion_store::now_millis();
    match args.output.format {
        Output::Json => print_json(&key_json(&key, now)),
        Output::Text => println!("revoked API key {:?} (id {})", key.name, key.id),
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_durations_or_never_within_a_century() {
        assert_eq!(expires_millis("never").unwrap(), None);
        assert_eq!(expires_millis("30d").unwrap(), Some(30 * 86_400_000));
        assert_eq!(expires_millis("12h").unwrap(), Some(12 * 3_600_000));
        assert_eq!(expires_millis("90m").unwrap(), Some(90 * 60_000));
        assert_eq!(expires_millis("36500d").unwrap(), Some(36_500 * 86_400_000));
        for bad in [
            "",
            "0d",
            "-1d",
            "30",
            "30y",
            "1.5h",
            "Never",
            "36501d",
            "99999999999999999d",
        ] {
            let e = expires_millis(bad).unwrap_err();
            assert_eq!(e.status, ExitStatus::Usage, "{bad:?}");
        }
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }
}
