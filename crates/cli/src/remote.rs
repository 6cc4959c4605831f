//! Talking to a registry: the connection options the commands share, the
//! client they build from them (with the user's docker credentials), image
//! references as arguments, and the runtime a command runs on.

use crate::exit::{CmdResult, Context, Failure, UsageError};
use crate::output::OutputArgs;
use clap::Args;
use pavilion_client::auth::{docker_config_path, Credentials};
use pavilion_client::tls::{CertDirs, TlsOptions};
use pavilion_client::upload_journal::UploadJournal;
use pavilion_client::{Client, ClientOptions, ProgressFn};
use std::path::PathBuf;
use std::sync::Arc;

/// Which TLS certificates registries are trusted with, and which client
/// certificate is presented to them.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// A CA certificate file (PEM) trusted besides the system's roots, for every registry; repeatable. One registry's CAs can go in certs.d/HOST[:PORT]/*.crt instead (/etc/docker/certs.d, /etc/containers/certs.d, ~/.config/containers/certs.d, or $PAVILION_CERTS_DIR alone).
    #[arg(long = "ca-file", env = "PAVILION_CA_FILE", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// Directory of TLS files used for the registry instead of certs.d/HOST[:PORT]/, as podman's --cert-dir: *.crt are CAs, NAME.cert with NAME.key the client certificate (mTLS).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

impl TlsArgs {
    /// The client's TLS options: these CA files, and `--cert-dir` or the
    /// standard certs.d directories.
    pub fn options(&self) -> CmdResult<TlsOptions> {
        let cert_dirs = match &self.cert_dir {
            Some(d) if !d.is_dir() => {
                return Err(
                    UsageError(format!("--cert-dir {}: not a directory", d.display())).into(),
                )
            }
            Some(d) => CertDirs::Fixed(d.clone()),
            None => CertDirs::standard(),
        };
        Ok(TlsOptions {
            ca_files: self.ca_files.clone(),
            cert_dirs,
        })
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
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Parallel transfers (files on push, byte ranges on pull) [default: the number of CPU cores, from 2 to 8].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    #[command(flatten)]
    pub output: OutputArgs,
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
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ConnArgs {
    /// A client with docker's credentials.
    pub fn client(&self) -> CmdResult<Client> {
        make_client(self.plain_http, self.insecure, &self.tls, None, None)
    }
}

impl RemoteArgs {
    /// Transfers at a time: as given, else one per core (at least two, so
    /// that network and hashing overlap; at most eight). Measured on two
    /// cores (1 GiB, five shards): 2-3 at a time pushed and pulled 5-15%
    /// faster than 4, and 8 was slower still (BENCHMARKS.md).
    pub fn concurrency(&self) -> usize {
        self.concurrency.map_or_else(
            || {
                std::thread::available_parallelism()
                    .map_or(4, |n| n.get())
                    .clamp(2, 8)
            },
            usize::from,
        )
    }

    /// A client with docker's credentials, reporting transferred bytes to `bar`.
    pub fn client_with_progress(&self, bar: &indicatif::ProgressBar) -> CmdResult<Client> {
        self.client_with(bar, None)
    }

    /// [`RemoteArgs::client_with_progress`], remembering upload sessions in
    /// `journal` so that an interrupted push resumes when re-run.
    pub fn client_with(
        &self,
        bar: &indicatif::ProgressBar,
        journal: Option<Arc<UploadJournal>>,
    ) -> CmdResult<Client> {
        let bar = bar.clone();
        let progress = Some(ProgressFn(Arc::new(move |n| bar.inc(n))));
        make_client(self.plain_http, self.insecure, &self.tls, progress, journal)
    }
}

/// A client with the user's docker credentials, reporting bytes to
/// `progress` and remembering upload sessions in `upload_journal`.
pub fn make_client(
    plain_http: bool,
    insecure: bool,
    tls: &TlsArgs,
    progress: Option<ProgressFn>,
    upload_journal: Option<Arc<UploadJournal>>,
) -> CmdResult<Client> {
    Client::new(ClientOptions {
        progress,
        upload_journal,
        ..client_options(plain_http, insecure, tls)?
    })
    .context("creating the registry client")
}

/// Client options with the user's docker credentials and TLS files (what
/// [`make_client`] builds on).
pub fn client_options(plain_http: bool, insecure: bool, tls: &TlsArgs) -> CmdResult<ClientOptions> {
    let credentials = match docker_config_path() {
        Some(p) => Credentials::from_docker_config(&p)
            .map_err(|e| Failure::other(anyhow::Error::msg(e)))?,
        None => Credentials::default(),
    };
    Ok(ClientOptions {
        plain_http,
        insecure,
        tls: tls.options()?,
        credentials,
        traceparent: Some(pavilion_client::trace::command_traceparent()),
        ..ClientOptions::default()
    })
}

/// Parses an image reference; a malformed one is a usage error.
pub fn parse_ref(s: &str) -> CmdResult<pavilion_oci::ImageRef> {
    s.parse::<pavilion_oci::ImageRef>()
        .map_err(|e| UsageError(e.to_string()).into())
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> CmdResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
