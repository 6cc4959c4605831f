//! `pavilion login` / `logout`: credentials in docker's config.json (or its
//! credential helper), where docker, ORAS and notation also look.

use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, Output, OutputArgs};
use crate::remote::{runtime, ConnArgs};
use clap::Args;
use pavilion_client::auth::{docker_config_path, save_credential, Credential, Credentials};
use pavilion_client::{Client, ClientOptions};
use std::io::Read;

/// Arguments of `pavilion login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host, e.g. registry.example.com or 127.0.0.1:5000.
    pub registry: String,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: String,
    /// Password (prefer --password-stdin: arguments are visible to others).
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `pavilion logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host.
    pub registry: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn config_path() -> CmdResult<std::path::PathBuf> {
    docker_config_path().context("no HOME or DOCKER_CONFIG to keep credentials in")
}

fn host(s: &str) -> CmdResult<String> {
    let h = s
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    if h.is_empty() || h.contains('/') {
        return Err(UsageError(format!("{s:?} is not a registry host")).into());
    }
    Ok(h.to_string())
}

/// Runs `pavilion login`: checks the credential against the registry, then saves it.
pub fn run_login(args: LoginArgs) -> CmdResult {
    let registry = host(&args.registry)?;
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            return Err(UsageError("give --password-stdin or --password".into()).into())
        }
    };
    if password.is_empty() {
        return Err(UsageError("the password is empty".into()).into());
    }
    let cred = Credential {
        username: args.username,
        password,
    };
    let mut credentials = Credentials::default();
    credentials.insert(&registry, cred.clone());
    // The saved credentials are not used: only the ones being checked.
    let client = Client::new(ClientOptions {
        credentials,
        ..crate::remote::client_options(args.conn.plain_http, args.conn.insecure, &args.conn.tls)?
    })?;
    runtime()?
        .block_on(client.ping(&registry))
        .with_context(|| format!("logging in to {registry}"))?;
    let path = config_path()?;
    save_credential(&path, &registry, Some(&cred))
        .map_err(|e| Failure::other(anyhow::Error::msg(e)))?;
    match args.conn.output.format {
        Output::Json => print_json(&serde_json::json!({
            "registry": registry,
            "loggedIn": true,
            "config": path,
        })),
        Output::Text => eprintln!("Login Succeeded ({registry}, saved in {})", path.display()),
    }
    Ok(ExitStatus::Success)
}

/// Runs `pavilion logout`.
pub fn run_logout(args: LogoutArgs) -> CmdResult {
    let registry = host(&args.registry)?;
    let path = config_path()?;
    save_credential(&path, &registry, None).map_err(|e| Failure::other(anyhow::Error::msg(e)))?;
    match args.output.format {
        Output::Json => print_json(&serde_json::json!({
            "registry": registry,
            "loggedIn": false,
            "config": path,
        })),
        Output::Text => eprintln!(
            "Removed the credentials of {registry} from {}",
            path.display()
        ),
    }
    Ok(ExitStatus::Success)
}
