//! `pavilion`: one binary for the registry and, later, the model client.
//! Each subcommand is a thin layer over the library crates; only `main` exits.

mod commands;
mod config;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    Serve(config::ServeArgs),
    /// Push a model directory (CNCF ModelPack) or files (--artifact-type) to any registry.
    Push(commands::push::PushArgs),
    /// Pull a model's files into a directory, verified, without unpacking.
    Pull(commands::pull::PullArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Push(args) => commands::push::run(args),
        Command::Pull(args) => commands::pull::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
