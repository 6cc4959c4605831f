//! `pavilion events tail REGISTRY`: follows a Pavilion registry's change
//! feed (Server-Sent Events) and prints one line per event, from where
//! `--after` says (the sequence number of the last event already handled).

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{runtime, ConnArgs};
use clap::{Args, Subcommand};
use pavilion_client::events::{FeedEvent, FeedQuery};
use std::io::Write;

/// Change feed operations.
#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Follow the change feed, one line per event (`--output json`: one CloudEvent per line).
    Tail(TailArgs),
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
    }
}

fn tail(args: TailArgs) -> CmdResult {
    let registry = args.registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains('/') {
        return Err(UsageError(format!("{:?} is not a registry host", args.registry)).into());
    }
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
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
