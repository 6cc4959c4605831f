//! Options shared by the commands that talk to a registry.

use anyhow::{Context, Result};
use clap::Args;
use pavilion_client::auth::{docker_config_path, Credentials};
use pavilion_client::upload_journal::UploadJournal;
use pavilion_client::{Client, ClientOptions, ProgressFn};
use std::sync::Arc;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document per line, for machines (errors too, on stderr).
    Json,
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

/// Connection options.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Use plain HTTP (automatic for localhost and 127.0.0.1).
    #[arg(long)]
    pub plain_http: bool,
    /// Skip TLS certificate verification.
    #[arg(long)]
    pub insecure: bool,
    /// Parallel transfers (files on push, byte ranges on pull).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Output format: text or json (one document per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = parse_output)]
    pub output: Output,
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

/// Connection options of the commands that move no bulk data.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Use plain HTTP (automatic for localhost and 127.0.0.1).
    #[arg(long)]
    pub plain_http: bool,
    /// Skip TLS certificate verification.
    #[arg(long)]
    pub insecure: bool,
    /// Output format: text or json (one document per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = parse_output)]
    pub output: Output,
}

impl ConnArgs {
    /// A client with docker's credentials.
    pub fn client(&self) -> Result<Client> {
        make_client(self.plain_http, self.insecure, None, None)
    }
}

impl RemoteArgs {
    /// A client with docker's credentials, reporting transferred bytes to `bar`.
    pub fn client_with_progress(&self, bar: &indicatif::ProgressBar) -> Result<Client> {
        self.client_with(bar, None)
    }

    /// [`RemoteArgs::client_with_progress`], remembering upload sessions in
    /// `journal` so that an interrupted push resumes when re-run.
    pub fn client_with(
        &self,
        bar: &indicatif::ProgressBar,
        journal: Option<Arc<UploadJournal>>,
    ) -> Result<Client> {
        let bar = bar.clone();
        let progress = Some(ProgressFn(Arc::new(move |n| bar.inc(n))));
        make_client(self.plain_http, self.insecure, progress, journal)
    }
}

pub fn make_client(
    plain_http: bool,
    insecure: bool,
    progress: Option<ProgressFn>,
    upload_journal: Option<Arc<UploadJournal>>,
) -> Result<Client> {
    Client::new(ClientOptions {
        progress,
        upload_journal,
        ..client_options(plain_http, insecure)?
    })
    .context("creating the registry client")
}

/// Client options with the user's docker credentials (what
/// [`make_client`] builds on).
pub fn client_options(plain_http: bool, insecure: bool) -> Result<ClientOptions> {
    let credentials = match docker_config_path() {
        Some(p) => Credentials::from_docker_config(&p).map_err(anyhow::Error::msg)?,
        None => Credentials::default(),
    };
    Ok(ClientOptions {
        plain_http,
        insecure,
        credentials,
        ..ClientOptions::default()
    })
}

/// Parses an image reference; a malformed one is a usage error.
pub fn parse_ref(s: &str) -> Result<pavilion_oci::ImageRef> {
    s.parse::<pavilion_oci::ImageRef>()
        .map_err(|e| anyhow::Error::new(crate::exit::UsageError(e.to_string())))
}

/// Prints a JSON value on stdout, on one line: every command's documents
/// stream through `jq` and line-reading scripts alike.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
