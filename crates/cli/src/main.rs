//! `pavilion`: one binary for the registry and the model client.
//! Each subcommand is a thin layer over the library crates and returns its
//! exit status, or a failure that carries one (see `exit`); only `main`
//! prints the failure and exits.

mod auth_config;
mod commands;
mod config;
mod exit;
mod output;
mod remote;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc rather than the C library's malloc: a request makes many small,
/// short-lived allocations, and glibc's malloc and free were about 28% of
/// a cached manifest GET's instructions (callgrind, bench/observability).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pavilion",
    version,
    about = "A secure supply chain for AI models and container images on OCI registries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the OCI registry (Distribution v1.1) on the embedded default store.
    // Boxed: many more keys than any other command has.
    Serve(Box<config::ServeArgs>),
    /// Push a model directory (CNCF ModelPack) or files (--artifact-type) to any registry.
    Push(commands::push::PushArgs),
    /// Pull a model's files into a directory, verified, without unpacking.
    Pull(commands::pull::PullArgs),
    /// Copy an artifact between registries and OCI layouts (oci:PATH:TAG).
    Copy(commands::copy::CopyArgs),
    /// Give a manifest more tags.
    Tag(commands::repo::TagArgs),
    /// List the tags of a repository.
    Tags(commands::repo::TagsArgs),
    /// List the repositories of a registry.
    Repos(commands::repo::ReposArgs),
    /// Get, put or delete a manifest.
    #[command(subcommand)]
    Manifest(commands::manifest::ManifestCommand),
    /// Get, put or delete a blob.
    #[command(subcommand)]
    Blob(commands::blob::BlobCommand),
    /// Show the referrers (signatures, SBOMs, ...) of a manifest as a tree.
    Discover(commands::discover::DiscoverArgs),
    /// List the files of a model or artifact.
    Ls(commands::inspect::RefArgs),
    /// Summarise a manifest and its model configuration.
    Inspect(commands::inspect::RefArgs),
    /// Save credentials for a registry in docker's config.json.
    Login(commands::login::LoginArgs),
    /// Remove saved credentials for a registry.
    Logout(commands::login::LogoutArgs),
    /// Sign a manifest the Notary Project way and push the signature as a referrer.
    Sign(commands::sign::SignArgs),
    /// Verify a manifest's Notary signatures against notation's trust policy.
    Verify(commands::verify::VerifyArgs),
    /// List a manifest's Notary signatures.
    Signatures(commands::sign::SignaturesArgs),
    /// Test certificates for signing.
    #[command(subcommand)]
    Cert(commands::cert::CertCommand),
    /// Evaluate and test Rego policies (package pavilion.<point>: deny, warn).
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// Create, list and revoke robot / API keys (pvk_...) in the registry's metadata database.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Storage used per repository, what the store keeps and what deduplication saves (from the registry's metadata database).
    Du(commands::du::DuArgs),
    /// Blob transfers in flight on a Pavilion registry, refreshed like top (bytes, rate, ETA).
    Top(commands::top::TopArgs),
    /// Follow a Pavilion registry's change feed (pushes, tags, deletes, signatures, decisions) as it happens.
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// A continuous query's current result on a Pavilion registry (Cypher; a table, or JSON rows with --output json).
    Query(commands::query::QueryArgs),
    /// Follow a continuous query: its result, then each change; --exec runs a command per row added or updated, --state remembers what ran.
    Watch(commands::watch::WatchArgs),
    /// Garbage collection beside live replicas: reclaim what no tag, index or live subject reaches (--dry-run lists what would go and why).
    Gc(commands::gc::GcArgs),
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = output::json_requested(&args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // Help and version are not errors; neither is anything without
        // --output json, which clap prints (and exits 2 for) itself.
        Err(e) if !json || !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            return output::fail(
                first.trim_start_matches("error: "),
                exit::ExitStatus::Usage,
                true,
            );
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        // Client commands report retries and resumptions on stderr;
        // PAVILION_LOG (e.g. `debug`) says more. `serve` sets up its own.
        let filter = std::env::var("PAVILION_LOG").unwrap_or_else(|_| "warn".to_string());
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_new(filter) {
            // Spans marked for export (at INFO) are serve's exporter's
            // alone: a client has none, and `PAVILION_LOG=info` must not
            // make them.
            let filter = match "pavilion::otel=off".parse() {
                Ok(d) => filter.add_directive(d),
                Err(_) => filter,
            };
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(output::colour_on_stderr())
                .with_target(false)
                .init();
        }
    }
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(*args),
        Command::Push(args) => commands::push::run(args),
        Command::Pull(args) => commands::pull::run(args),
        Command::Copy(args) => commands::copy::run(args),
        Command::Tag(args) => commands::repo::run_tag(args),
        Command::Tags(args) => commands::repo::run_tags(args),
        Command::Repos(args) => commands::repo::run_repos(args),
        Command::Manifest(cmd) => commands::manifest::run(cmd),
        Command::Blob(cmd) => commands::blob::run(cmd),
        Command::Discover(args) => commands::discover::run(args),
        Command::Ls(args) => commands::inspect::run_ls(args),
        Command::Inspect(args) => commands::inspect::run_inspect(args),
        Command::Login(args) => commands::login::run_login(args),
        Command::Logout(args) => commands::login::run_logout(args),
        Command::Sign(args) => commands::sign::run_sign(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Signatures(args) => commands::sign::run_signatures(args),
        Command::Cert(cmd) => commands::cert::run(cmd),
        Command::Policy(cmd) => commands::policy::run(cmd),
        Command::Token(cmd) => commands::token::run(cmd),
        Command::Du(args) => commands::du::run(args),
        Command::Gc(args) => commands::gc::run(args),
        Command::Top(args) => commands::top::run(args),
        Command::Events(cmd) => commands::events::run(cmd),
        Command::Query(args) => commands::query::run(args),
        Command::Watch(args) => commands::watch::run(args),
    };
    match result {
        Ok(status) => status.into(),
        Err(f) => output::fail(&format!("{:#}", f.error), f.status, json),
    }
}
