//! Running the `pavilion` binary as a user does: arguments, environment,
//! standard input, bounded in time, with what it printed and its exit code.

use super::process::{read_all, wait_bounded};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// No single command may take longer than this.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished `pavilion` run left behind.
#[derive(Debug)]
pub struct Run {
    /// The command line, for failure messages.
    pub what: String,
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// The exit status itself.
    pub status: ExitStatus,
    /// Standard output, as bytes.
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Standard output, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts success; returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code,
            0,
            "{} failed\nstdout: {}\nstderr: {}",
            self.what,
            self.text(),
            self.stderr
        );
        self.text()
    }

    /// Asserts success; stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {e}: {out}", self.what))
    }

    /// Asserts failure with exit code `code`; returns stderr.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            code,
            "{}: expected exit {code}\nstdout: {}\nstderr: {}",
            self.what,
            self.text(),
            self.stderr
        );
        &self.stderr
    }
}

/// How to run the binary: environment and working directory.
#[derive(Default, Clone)]
pub struct Cli {
    /// `DOCKER_CONFIG` (credentials); None points it at nothing.
    pub docker_config: Option<PathBuf>,
    /// A directory put first on `PATH` (credential helpers).
    pub path_prefix: Option<PathBuf>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
}

impl Cli {
    /// Runs with `DOCKER_CONFIG=dir`.
    pub fn with_config(dir: &Path) -> Self {
        Cli {
            docker_config: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    /// [`Cli::run_stdin`], as the standard library's `Output`.
    pub fn output(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let r = self.run_stdin(args, stdin);
        Output {
            status: r.status,
            stdout: r.stdout,
            stderr: r.stderr.into_bytes(),
        }
    }

    /// Runs `pavilion args` with no standard input.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, None)
    }

    /// Runs `pavilion args` with `stdin`, killed (and the test failed) after
    /// [`COMMAND_TIMEOUT`].
    pub fn run_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pavilion"));
        cmd.args(args)
            .env(
                "DOCKER_CONFIG",
                self.docker_config
                    .as_deref()
                    .unwrap_or(Path::new("/nonexistent-pavilion-test")),
            )
            .env_remove("PAVILION_CONFIG")
            .env("PAVILION_LOG", "warn")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = &self.path_prefix {
            let old = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![p.clone()];
            paths.extend(std::env::split_paths(&old));
            cmd.env("PATH", std::env::join_paths(paths).unwrap());
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let what = format!("pavilion {}", args.join(" "));
        let mut child = cmd.spawn().expect("spawn pavilion");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().unwrap();
            crate::common::feed(&mut w, input);
        }
        let (t_out, t_err) = (read_all(child.stdout.take()), read_all(child.stderr.take()));
        let status = wait_bounded(&mut child, &what);
        Run {
            what,
            code: status.code().unwrap_or(-1),
            status,
            stdout: t_out.join().unwrap(),
            stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        }
    }
}

/// `pavilion args` with no credentials.
pub fn pv(args: &[&str]) -> Run {
    Cli::default().run(args)
}

/// `pavilion args` with no credentials, as the standard library's
/// `Output`, for tests that read the status and streams themselves.
pub fn pavilion(args: &[&str]) -> Output {
    Cli::default().output(args, None)
}
