//! A real `pavilion serve` process on a loopback port, its replicas, and
//! the macros that run a test on every backend.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::backend::{fresh_postgres_db, object_storage, Backend};

/// A running registry.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`, as the server reported it.
    pub addr: String,
    /// http, or https when started with --tls-cert.
    pub scheme: String,
    /// The `--data` directory.
    pub data: PathBuf,
    /// The PostgreSQL database, or None for SQLite in `data`.
    pub database_url: Option<String>,
    /// The `serve` arguments beyond address, data and database.
    pub extra_args: Vec<String>,
    /// Whether dropping this server drops its database (replicas share the
    /// first one's).
    owns_database: bool,
    /// The last lines the process wrote on stderr (its log).
    lines: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

/// Log lines a server keeps for [`Server::log`].
const KEPT_LINES: usize = 5000;

impl Server {
    /// Starts a server on `backend`; None when that backend is unavailable
    /// and peers are not required.
    pub fn start(backend: Backend) -> Option<Server> {
        Self::start_with(backend, &[])
    }

    /// Starts a server with extra `serve` arguments.
    pub fn start_with(backend: Backend, extra: &[&str]) -> Option<Server> {
        let storage = object_storage(backend)?;
        let database_url = match backend {
            Backend::Sqlite => None,
            _ => Some(fresh_postgres_db()?),
        };
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(url) = storage {
            extra.extend(["--storage".to_string(), url]);
        }
        Some(Self::launch(database_url, extra, true))
    }

    /// Another replica of this server: same storage, same database, its
    /// own process, port and data directory.
    pub fn replica(&self) -> Server {
        Self::launch(self.database_url.clone(), self.extra_args.clone(), false)
    }

    /// A server process on a free loopback port with a fresh data directory.
    fn launch(
        database_url: Option<String>,
        extra_args: Vec<String>,
        owns_database: bool,
    ) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            child: None,
            addr: String::new(),
            scheme: "http".into(),
            data: tmp.path().join("data"),
            database_url,
            extra_args,
            owns_database,
            lines: Default::default(),
            _tmp: Some(tmp),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, addr: &str) {
        // A benchmark may serve with another build of the same source
        // (bench/ui: the release binary); tests use the one they were
        // built with.
        let bin = std::env::var_os("PAVILION_BENCH_SERVE_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pavilion")));
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--addr", addr, "--data"])
            .arg(&self.data)
            .args(&self.extra_args)
            .env_remove("PAVILION_CONFIG")
            .env("PAVILION_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(u) = &self.database_url {
            cmd.args(["--database-url", u]);
        }
        let mut child = cmd.spawn().expect("spawn pavilion");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let kept = self.lines.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    // Plain, or the message of a JSON log line.
                    if let Some((_, rest)) = line.split_once("pavilion listening on ") {
                        let url: String = rest
                            .chars()
                            .take_while(|c| !c.is_whitespace() && *c != '"')
                            .collect();
                        let _ = tx.send(url);
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[server] {line}");
                let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
                if k.len() == KEPT_LINES {
                    k.pop_front();
                }
                k.push_back(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not report its address");
        let (scheme, addr) = url.split_once("://").expect("scheme://addr");
        self.scheme = scheme.to_string();
        self.addr = addr.to_string();
        self.child = Some(child);
    }

    /// What the process logged so far (its last lines).
    pub fn log(&self) -> String {
        let k = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        k.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Base URL, e.g. `http://127.0.0.1:1234`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGKILL and waits.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for exit; returns the exit status success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts the server again on the same data (and the same port).
    pub fn restart(&mut self) {
        self.kill9();
        let addr = self.addr.clone();
        // The port was just freed; retry briefly in case it lingers.
        self.spawn(&addr);
    }

    /// The `--data` directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // Leave the shared test cluster as we found it.
        if !self.owns_database {
            return;
        }
        if let (Some(url), Ok(base)) = (
            &self.database_url,
            std::env::var("PAVILION_TEST_POSTGRES_URL"),
        ) {
            if let Some((_, name)) = url.rsplit_once('/') {
                let _ = Command::new("psql")
                    .args([
                        &base,
                        "-qc",
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ])
                    .output();
            }
        }
    }
}

/// Runs `body` against every storage backend as four tests: local files
/// with SQLite and with PostgreSQL, radosgw (S3) and Azurite (Azure Blob)
/// with PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:expr;)*) => {
        $crate::backend_tests!(sqlite, Sqlite, $($name => $body;)*);
        $crate::backend_tests!(postgres, Postgres, $($name => $body;)*);
        $crate::backend_tests!(s3, S3, $($name => $body;)*);
        $crate::backend_tests!(azure, Azure, $($name => $body;)*);
    };
}

/// One module `$module` of tests that each run `body` on a server over `$backend`.
#[macro_export]
macro_rules! backend_tests {
    ($module:ident, $backend:ident, $($name:ident => $body:expr;)*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() {
                   if let Some(s) = $crate::common::Server::start($crate::common::Backend::$backend) { ($body)(s).await }
               } )*
        }
    };
}
