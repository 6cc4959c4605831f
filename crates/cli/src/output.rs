//! What every command shares in how it reports: `--output` text or JSON
//! (one document per line), progress on a terminal, errors as one line of
//! text or, with `--output json`, as one JSON object on stderr; and colour
//! only where a person is looking.

use crate::exit::ExitStatus;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document per line, for machines (errors too, on stderr).
    Json,
}

/// The `--output` flag of every command that prints results, flattened
/// into each one's arguments so that all spell it alike.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct OutputArgs {
    /// Output format: text or json (one document per line).
    #[arg(id = "output", long = "output", value_name = "FORMAT", default_value = "text", value_parser = parse_output)]
    pub format: Output,
}

/// Parses `--output`. A path given there (`pull --output ./dir`, the
/// `--output-dir` it was meant to be) gets a hint, not a bare clap error.
pub fn parse_output(s: &str) -> Result<Output, String> {
    match s {
        "text" => Ok(Output::Text),
        "json" => Ok(Output::Json),
        _ => Err(
            "--output is the format, text or json; to choose where files go, use -o \
                  (pull -o DIR, blob get -o FILE)"
                .to_string(),
        ),
    }
}

/// A byte progress bar on stderr, shown only on a terminal (and hidden
/// with `--output json`), with rate and ETA.
pub fn progress_bar(total: u64, output: Output) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if output == Output::Json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// With `--output json`, a transfer's progress as one JSON document per
/// second on stderr (stdout keeps the one result document):
/// `{"progress":{"direction":"upload","reference":...,"bytes":N,"total":N,
/// "rate_bytes_per_second":R,"eta_seconds":S,"elapsed_seconds":S}}`, the
/// fields `GET /pavilion/v1/transfers` uses for the registry's side. The
/// hidden bar still counts, so it is the one source of the numbers. Stops
/// when dropped.
pub struct JsonProgress {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts [`JsonProgress`] for `bar` when the output is JSON.
pub fn json_progress(
    bar: &indicatif::ProgressBar,
    output: Output,
    direction: &'static str,
    reference: String,
) -> Option<JsonProgress> {
    if output != Output::Json {
        return None;
    }
    let bar = bar.clone();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let started = std::time::Instant::now();
    let thread = std::thread::spawn(move || {
        use std::sync::mpsc::RecvTimeoutError;
        while let Err(RecvTimeoutError::Timeout) =
            stopped.recv_timeout(std::time::Duration::from_secs(1))
        {
            let bytes = bar.position();
            let total = bar.length().filter(|n| *n > 0);
            let rate = bar.per_sec();
            let eta = total
                .filter(|_| rate > 0.0)
                .map(|t| t.saturating_sub(bytes) as f64 / rate);
            let doc = serde_json::json!({"progress": {
                "direction": direction,
                "reference": reference,
                "bytes": bytes,
                "total": total,
                "rate_bytes_per_second": rate,
                "eta_seconds": eta,
                "elapsed_seconds": started.elapsed().as_secs_f64(),
            }});
            eprintln!("{doc}");
        }
    });
    Some(JsonProgress {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Drop for JsonProgress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A transfer's progress on the terminal: the bar (hidden off a terminal
/// and with `--output json`) and a line on stderr per event.
pub struct BarProgress(pub indicatif::ProgressBar);

impl pavilion_transfer::Progress for BarProgress {
    fn length(&self, bytes: u64) {
        self.0.set_length(bytes);
    }

    fn skipped(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn event(&self, event: &pavilion_transfer::Event) {
        use pavilion_transfer::Event;
        let line = match event {
            Event::Verified { reference, policy } => {
                format!("verified {reference} (trust policy {policy:?})")
            }
            Event::PolicyWarning(w) => format!("policy warning: {w}"),
            Event::CacheNotSaved(e) => format!("warning: could not save the digest cache: {e}"),
        };
        self.0.suspend(|| eprintln!("{line}"));
    }
}

/// Prints a JSON value on stdout, on one line: every command's documents
/// stream through `jq` and line-reading scripts alike.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// True when the command line asks for `--output json` (or
/// `--output=json`). Read from the raw arguments so that errors clap finds
/// before any command runs are reported as JSON too.
pub fn json_requested(args: &[OsString]) -> bool {
    let mut it = args.iter().skip(1).map(|a| a.to_str().unwrap_or_default());
    while let Some(a) = it.next() {
        match a {
            "--" => return false,
            "--output=json" => return true,
            // The guard takes the value either way: it is no flag.
            "--output" if it.next() == Some("json") => return true,
            _ => {}
        }
    }
    false
}

/// Reports a failure and gives its exit code: `error: MESSAGE` on stderr,
/// or `{"error":{"exit":N,"code":NAME,"message":MESSAGE}}` on one line.
pub fn fail(message: &str, status: ExitStatus, json: bool) -> ExitCode {
    if json {
        let doc = serde_json::json!({
            "error": {
                "exit": status.code(),
                "code": status.name(),
                "message": message,
            }
        });
        eprintln!("{doc}");
    } else {
        eprintln!("error: {message}");
    }
    status.into()
}

/// Whether log lines on stderr may carry ANSI colour: only on a terminal,
/// and never when NO_COLOR is set (https://no-color.org).
pub fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::json_requested;

    fn args(v: &[&str]) -> Vec<std::ffi::OsString> {
        v.iter().map(Into::into).collect()
    }

    #[test]
    fn json_is_seen_in_both_spellings_and_not_after_the_separator() {
        assert!(json_requested(&args(&[
            "pavilion", "ls", "x", "--output", "json"
        ])));
        assert!(json_requested(&args(&["pavilion", "--output=json", "ls"])));
        assert!(!json_requested(&args(&[
            "pavilion", "ls", "--output", "text"
        ])));
        assert!(!json_requested(&args(&["pavilion", "ls", "--output"])));
        assert!(!json_requested(&args(&[
            "pavilion", "push", "--", "--output", "json"
        ])));
    }
}
