//! `pavilion watch REGISTRY --query Q`: follows a continuous query on a
//! Pavilion registry: prints its result, then each change of it, and
//! with `--exec` runs a command for each row added or updated. The
//! connection is opened again whenever it drops (the registry restarts,
//! the network fails), forever, until Ctrl-C or SIGTERM; `--state`
//! remembers which rows were handled, across reconnects and restarts.

use super::query::{printable, query_text, registry_host};
use super::watch_exec::Reactions;
use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::Output;
use crate::remote::{runtime, ConnArgs};
use clap::Args;
use pavilion_client::queries::{self, QueryDiff, QueryError, QueryEvent, QueryStream, Row};
use pavilion_client::watch_state::{Reaction, WatchState};
use pavilion_client::Client;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch as signal_watch;

/// The first wait before opening the stream again; doubled each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Arguments of `watch`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("q").required(true).args(["query", "query_file"])))]
pub struct WatchArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    /// The query (Cypher).
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// A file holding the query.
    #[arg(long, value_name = "FILE")]
    pub query_file: Option<PathBuf>,
    /// Run CMD through `sh -c` for each row added or updated, one at a time, in order (rows of the first result count as added). The row is in the environment: PAVILION_CHANGE (added, updated), PAVILION_ROW (the row as JSON) and PAVILION_ROW_<NAME> for each top-level scalar field (NAME upper-cased, other characters as _). {ref} (REGISTRY/repository@digest, or :tag), {repo}, {digest}, {tag} and {registry} are replaced from the row's repository, digest and tag fields, only by values that parse as OCI names (a row whose do not gets no reaction): pavilion watch R --query Q --exec 'pavilion pull {ref} -o /models/{repo}'. Other row values are chosen by whoever pushes (annotations...): never write them into CMD, read them from the environment, quoted ("$PAVILION_ROW_NOTE"). What CMD prints goes to stderr. A non-zero exit is reported and the row's reaction runs again at the next reconnect or restart.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Run CMD through `sh -c` for each row removed whose reaction had succeeded (PAVILION_CHANGE=removed, the same variables). A failure is reported, not retried.
    #[arg(long, value_name = "CMD")]
    pub exec_removed: Option<String>,
    /// Pull the artifact each row added or updated names (its repository, digest or tag fields) into DIR/<repository>, before --exec runs, with the local content cache; a failed pull is a failed reaction (run again at the next reconnect or restart). Keeps a node's model cache current with what the query selects.
    #[arg(long, value_name = "DIR")]
    pub pull: Option<PathBuf>,
    /// Remember, in FILE, the rows whose reaction succeeded and the last sequence seen, so a restart runs only what is owed. Written atomically; a symbolic link there is refused.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `watch`.
pub fn run(args: WatchArgs) -> CmdResult {
    let registry = registry_host(&args.registry)?.to_string();
    let query = match (&args.query, &args.query_file) {
        (Some(q), _) => query_text(q)?,
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading --query-file {}", f.display()))?;
            query_text(&text)?
        }
        (None, None) => return Err(UsageError("give --query or --query-file".into()).into()),
    };
    let client = args.conn.client()?;
    runtime()?.block_on(async {
        let mut w = Watcher {
            client,
            output: args.conn.output.format,
            reactions: Reactions {
                exec: args.exec.clone(),
                exec_removed: args.exec_removed.clone(),
                pull: args.pull.clone(),
                registry: registry.clone(),
            },
            state_path: args.state.clone(),
            state: WatchState::new(&query),
            registry,
            query,
            shown_first: false,
            stop: stop_signal(),
        };
        w.load().await?;
        w.run().await
    })
}

/// What ends a watch: Ctrl-C or SIGTERM, turned into a flag the loop
/// looks at between reactions (one running is let finish and recorded).
fn stop_signal() -> signal_watch::Receiver<bool> {
    let (tx, rx) = signal_watch::channel(false);
    tokio::spawn(async move {
        // A handler that cannot be installed never fires (rather than
        // reading as a stop at once).
        let int = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = int => {}
            () = term => {}
        }
        let _ = tx.send(true);
        // Kept alive: a dropped sender would read as a stop to waiters.
        std::future::pending::<()>().await;
    });
    rx
}

/// Waits until a stop is asked for.
async fn stopped(mut rx: signal_watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why a stream ended.
enum End {
    /// Stop asked for, or nobody reads stdout any more.
    Stop,
    /// Open it again (after a wait when it failed).
    Again(Option<QueryError>),
}

struct Watcher {
    client: Client,
    output: Output,
    reactions: Reactions,
    state_path: Option<PathBuf>,
    state: WatchState,
    registry: String,
    query: String,
    /// Whether a first result was printed whole (later ones, after a
    /// reconnect, print only how they differ).
    shown_first: bool,
    stop: signal_watch::Receiver<bool>,
}

impl Watcher {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn load(&mut self) -> CmdResult<()> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let ctx = || format!("reading the watch state {}", path.display());
        if let Some(s) = WatchState::load(path).await.with_context(ctx)? {
            if !s.is_for(&self.query) {
                return Err(UsageError(format!(
                    "the watch state {} was written for another query; give another --state file or remove it",
                    path.display()
                ))
                .into());
            }
            self.state = s;
        }
        Ok(())
    }

    async fn save(&self) -> CmdResult<()> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        self.state
            .save(path)
            .await
            .with_context(|| format!("writing the watch state {}", path.display()))
    }

    async fn run(&mut self) -> CmdResult {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let opened = tokio::select! {
                opened = queries::watch(&self.client, &self.registry, &self.query) => Some(opened),
                _ = stopped(self.stop.clone()) => None,
            };
            let end = match opened {
                None => End::Stop,
                Some(Ok(stream)) => self.follow(stream, &mut backoff).await?,
                Some(Err(e)) => End::Again(Some(e)),
            };
            let wait = match end {
                End::Stop => break,
                // Waited for too: a registry that ends every stream at
                // once must not be asked again in a tight loop.
                End::Again(None) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    eprintln!(
                        "{} ended the stream; reconnecting in {:.1} s",
                        self.registry,
                        wait.as_secs_f64()
                    );
                    wait
                }
                End::Again(Some(e)) if !e.is_temporary() => {
                    let status: ExitStatus = e.kind().into();
                    return Err(Failure::new(status, e)
                        .context(format!("watching the query on {}", self.registry)));
                }
                End::Again(Some(e)) => {
                    let wait = e.retry_after().unwrap_or(backoff).min(MAX_BACKOFF);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    eprintln!(
                        "{}: {}; trying again in {:.1} s",
                        self.registry,
                        printable(&e.to_string()),
                        wait.as_secs_f64()
                    );
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(self.stop.clone()) => break,
            }
        }
        self.save().await?;
        Ok(ExitStatus::Success)
    }

    /// Reads one stream until it ends; reactions run as rows change.
    async fn follow(&mut self, mut stream: QueryStream, backoff: &mut Duration) -> CmdResult<End> {
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                _ = stopped(self.stop.clone()) => return Ok(End::Stop),
            };
            let reactions = match next {
                Ok(Some(QueryEvent::Result(r))) => {
                    *backoff = FIRST_BACKOFF;
                    let first = !self.shown_first;
                    self.shown_first = true;
                    let resync = self.state.resync(&r);
                    let shown = if first {
                        r.rows
                            .iter()
                            .all(|row| self.emit("present", r.seq, None, row))
                    } else {
                        resync
                            .removed
                            .iter()
                            .all(|row| self.emit("removed", r.seq, None, row))
                            && resync
                                .added
                                .iter()
                                .all(|row| self.emit("added", r.seq, None, row))
                    };
                    if !shown {
                        return Ok(End::Stop);
                    }
                    // On stderr: stdout holds only rows.
                    eprintln!(
                        "{}: {} rows as of feed sequence {}; watching",
                        self.registry,
                        r.rows.len(),
                        r.seq
                    );
                    resync.reactions
                }
                Ok(Some(QueryEvent::Diff(d))) => {
                    if !self.print_diff(&d) {
                        return Ok(End::Stop);
                    }
                    self.state.apply(&d)
                }
                Ok(None) => return Ok(End::Again(None)),
                Err(e) => return Ok(End::Again(Some(e))),
            };
            self.save().await?;
            if self.react(&reactions).await? {
                return Ok(End::Stop);
            }
        }
    }

    /// Runs `reactions` one at a time; true when a stop was asked for
    /// meanwhile (the rest stay owed).
    async fn react(&mut self, reactions: &[Reaction]) -> CmdResult<bool> {
        for r in reactions {
            if self.stopping() {
                return Ok(true);
            }
            if self.reactions.run(&self.client, r).await {
                self.state.succeeded(r);
                self.save().await?;
            }
        }
        Ok(self.stopping())
    }

    fn print_diff(&self, d: &QueryDiff) -> bool {
        d.added.iter().all(|r| self.emit("added", d.seq, None, r))
            && d.updated
                .iter()
                .all(|u| self.emit("updated", d.seq, Some(&u.before), &u.after))
            && d.removed
                .iter()
                .all(|r| self.emit("removed", d.seq, None, r))
    }

    /// One line on stdout: `= row` (in the first result), `+ row`, `~
    /// before -> after`, `- row`, or the JSON document `{"change":...,
    /// "seq":N,"row":{...}}` (with `"before"` for an update). False when
    /// stdout is closed (a reader such as `head` went away).
    fn emit(&self, change: &str, seq: i64, before: Option<&Row>, row: &Row) -> bool {
        let line = match self.output {
            Output::Json => {
                let mut doc = serde_json::json!({"change": change, "seq": seq, "row": row});
                if let Some(b) = before {
                    doc["before"] = serde_json::json!(b);
                }
                doc.to_string()
            }
            Output::Text => {
                let mark = match change {
                    "present" => "=",
                    "added" => "+",
                    "updated" => "~",
                    _ => "-",
                };
                match before {
                    Some(b) => format!("{mark} {} -> {}", b.to_json(), row.to_json()),
                    None => format!("{mark} {}", row.to_json()),
                }
            }
        };
        let mut out = std::io::stdout().lock();
        // A reader piping into another program sees each line at once.
        writeln!(out, "{}", printable(&line)).is_ok() && out.flush().is_ok()
    }
}
