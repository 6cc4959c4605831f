//! Options shared by the commands that talk to a registry.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pavilion_client::auth::{docker_config_path, Credentials};
use pavilion_client::{Client, ClientOptions};

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document for machines.
    Json,
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl RemoteArgs {
    /// A client with docker's credentials.
    pub fn client(&self) -> Result<Client> {
        let credentials = match docker_config_path() {
            Some(p) => Credentials::from_docker_config(&p).map_err(anyhow::Error::msg)?,
            None => Credentials::default(),
        };
        Client::new(ClientOptions {
            plain_http: self.plain_http,
            insecure: self.insecure,
            credentials,
        })
        .context("creating the registry client")
    }
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
