//! `pavilion events tail REGISTRY`: follows a Pavilion registry's change
//! feed (Server-Sent Events) and prints one line per event, from where
//! `--after` says (the sequence number of the last event already handled).
//! `pavilion events webhooks REGISTRY` lists the registry's webhooks and
//! `pavilion events replay REGISTRY --webhook NAME --dead|--from SEQ` has
//! one deliver again.

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{runtime, ConnArgs};
use clap::{Args, Subcommand};
use pavilion_client::events::{FeedEvent, FeedQuery, Replay};
use std::io::Write;

/// Change feed operations.
#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Follow the change feed, one line per event (`--output json`: one CloudEvent per line).
    Tail(TailArgs),
    /// List the registry's webhooks: cursor, lag, dead letters, last error, lease holder.
    Webhooks(WebhooksArgs),
    /// Deliver a webhook's dead letters again (--dead), or move its cursor back (--from).
    Replay(ReplayArgs),
}

/// Arguments of `events webhooks`.
#[derive(Args, Debug)]
pub struct WebhooksArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `events replay`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["dead", "from"])))]
pub struct ReplayArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    /// The webhook's name, as in the registry's [[events.webhook]].
    #[arg(long, value_name = "NAME")]
    pub webhook: String,
    /// Deliver every dead letter again, in sequence order, before new events.
    #[arg(long)]
    pub dead: bool,
    /// Move the cursor to SEQ: every event after it is delivered again.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<i64>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `events tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    /// Start after this sequence number (default: from the oldest event kept).
    #[arg(long, value_name = "SEQ")]
    pub after: Option<i64>,
    /// Stop after this many events (default: until interrupted or the registry ends the stream).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Only events of repositories matching this glob (`*` within one path component, `**` across).
    #[arg(long, value_name = "GLOB")]
    pub repository: Option<String>,
    /// Only events of this type, repeatable (e.g. dev.pavilion.artifact.pushed).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs an `events` subcommand.
pub fn run(cmd: EventsCommand) -> CmdResult {
    match cmd {
        EventsCommand::Tail(args) => tail(args),
        EventsCommand::Webhooks(args) => webhooks(args),
        EventsCommand::Replay(args) => replay(args),
    }
}

fn host(registry: &str) -> Result<&str, UsageError> {
    let host = registry.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(UsageError(format!("{registry:?} is not a registry host")));
    }
    Ok(host)
}

fn webhooks(args: WebhooksArgs) -> CmdResult {
    let registry = host(&args.registry)?;
    let client = args.conn.client()?;
    let list = runtime()?.block_on(async {
        client
            .webhooks(registry)
            .await
            .with_context(|| format!("listing the webhooks of {registry}"))
    })?;
    match args.conn.output.format {
        Output::Json => print_json(&list),
        Output::Text => {
            println!("NAME CURSOR LAG DEAD HOLDER LAST-ERROR");
            for w in list["webhooks"].as_array().into_iter().flatten() {
                let n = |k: &str| w[k].as_i64().map_or("-".to_string(), |v| v.to_string());
                let s = |k: &str| w[k].as_str().unwrap_or("-").to_string();
                let line = format!(
                    "{} {} {} {} {} {}",
                    s("name"),
                    n("cursor"),
                    n("lag"),
                    n("dead_letters"),
                    s("lease_holder"),
                    s("last_error")
                );
                println!("{}", shown(&line));
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn replay(args: ReplayArgs) -> CmdResult {
    let registry = host(&args.registry)?;
    let what = match (args.dead, args.from) {
        (true, None) => Replay::Dead,
        (false, Some(seq)) if seq >= 0 => Replay::From(seq),
        (false, Some(_)) => return Err(UsageError("--from must be 0 or more".into()).into()),
        _ => return Err(UsageError("give one of --dead or --from SEQ".into()).into()),
    };
    let client = args.conn.client()?;
    let answer = runtime()?.block_on(async {
        client
            .replay_webhook(registry, &args.webhook, what)
            .await
            .with_context(|| format!("replaying webhook {} of {registry}", args.webhook))
    })?;
    match args.conn.output.format {
        Output::Json => print_json(&answer),
        Output::Text => match what {
            Replay::Dead => println!(
                "{}: {} dead letters queued for delivery",
                args.webhook,
                answer["requeued"].as_u64().unwrap_or(0)
            ),
            Replay::From(seq) => println!(
                "{}: cursor moved to {seq}; the events after it are delivered again",
                args.webhook
            ),
        },
    }
    Ok(ExitStatus::Success)
}

/// `s` with control characters shown as `?`: the fields come from the
/// registry and must not drive the terminal.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn tail(args: TailArgs) -> CmdResult {
    let registry = host(&args.registry)?;
    if args.after.is_some_and(|a| a < 0) {
        return Err(UsageError("--after must be 0 or more".into()).into());
    }
    if args.count == Some(0) {
        return Err(UsageError("--count must be at least 1".into()).into());
    }
    let client = args.conn.client()?;
    let output = args.conn.output.format;
    let query = FeedQuery {
        after: args.after,
        repository: args.repository.clone(),
        types: args.types.clone(),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let mut stream = client
            .event_stream(registry, &query)
            .await
            .with_context(|| format!("opening the change feed of {registry}"))?;
        let mut shown = 0u64;
        let mut last = args.after;
        while let Some(e) = stream
            .next()
            .await
            .with_context(|| format!("reading the change feed of {registry}"))?
        {
            last = Some(e.seq);
            match output {
                Output::Json => print_json(&e.event),
                Output::Text => println!("{}", line(&e)),
            }
            // A reader piping into another program sees each event at once.
            let _ = std::io::stdout().flush();
            shown += 1;
            if args.count.is_some_and(|n| shown >= n) {
                return Ok(ExitStatus::Success);
            }
        }
        // The registry ends streams when it shuts down: say where to pick
        // up, on stderr (stdout holds only events).
        eprintln!(
            "{registry} ended the stream; resume with --after {}",
            last.unwrap_or(0)
        );
        Ok(ExitStatus::Success)
    })
}

/// `SEQ TIME TYPE SUBJECT [by ACTOR]`, control characters shown as `?`
/// (the fields come from the registry and must not drive the terminal).
fn line(e: &FeedEvent) -> String {
    let field = |k: &str| e.event[k].as_str().unwrap_or("-").to_string();
    let kind = field("type");
    let kind = kind.strip_prefix("dev.pavilion.").unwrap_or(&kind);
    let mut s = format!("{} {} {kind} {}", e.seq, field("time"), field("subject"));
    if let Some(a) = e.event["pavilionactor"].as_str() {
        s.push_str(&format!(" by {a}"));
    }
    shown(&s)
}
