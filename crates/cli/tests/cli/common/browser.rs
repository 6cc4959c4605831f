//! Headless Chromium for the web UI tests, driven over the Chrome DevTools
//! Protocol (CDP): one WebSocket per tab on 127.0.0.1, JSON commands with
//! ids, and events in between.
//!
//! The API is blocking (synchronous `tungstenite`): a UI test is a sequence
//! of "do this, then check that", and the server it drives is a separate
//! `pavilion serve` process, so nothing in the test needs the runtime while
//! the browser waits. In a `multi_thread` tokio test call it directly (it
//! holds one worker while it waits) or through `spawn_blocking`.
//!
//! ```ignore
//! let Some(mut browser) = Browser::launch() else { return }; // skipped
//! let mut page = browser.new_page();
//! page.navigate(&server.url("/ui/"));
//! page.wait_for("document.querySelector('main') !== null", Duration::from_secs(5));
//! assert_eq!(page.dialogs_opened().len(), 0);
//! page.screenshot_png(screenshot_dir().join("ui/home.png"));
//! ```
//!
//! Every wait is bounded and panics naming what it waited for, with the tail
//! of Chromium's own log; a test never hangs on the browser.
//!
//! Here: finding, starting and stopping Chromium. browser/cdp.rs is the
//! WebSocket, browser/page.rs a tab, browser/input.rs its mouse and keyboard.

mod cdp;
mod input;
mod page;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::backend::require_peer;
use cdp::{Conn, Incoming, RecvError};
pub use page::Page;

/// How long Chromium may take to open its DevTools port.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// A page's default bound on one command, a navigation or a click's wait
/// for its element (generous: the tests share two cores with a build).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the web UI tests leave their screenshots:
/// `<workspace>/target/ui-screenshots/` (or under `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        // Cargo reads a relative CARGO_TARGET_DIR from where it was started,
        // which for scripts/test is the workspace root.
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("ui-screenshots")
}

/// The Chromium binary: `PAVILION_TEST_CHROMIUM` (scripts/test sets it),
/// else `chromium` on PATH, else /usr/bin/chromium; None when none exists.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PAVILION_TEST_CHROMIUM") {
        let p = PathBuf::from(p);
        // Set but wrong is a broken setup, not a missing peer: say so.
        assert!(
            p.is_file(),
            "PAVILION_TEST_CHROMIUM={} does not exist",
            p.display()
        );
        return Some(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"));
    on_path
        .chain([PathBuf::from("/usr/bin/chromium")])
        .find(|p| p.is_file())
}

/// The width and height of a PNG image, read from its header; None when
/// `bytes` is not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((be(16), be(20)))
}

/// The last lines of Chromium's log, for failure messages.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    // Without a D-Bus (none in a test) Chromium logs a dozen complaints
    // about it at every start; they would bury the lines that matter.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(":ERROR:dbus/"))
        .collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("chromium's log ({}):\n{tail}", log.display())
}

/// The Chromium process, its profile and its log: killed and reaped when
/// dropped, also when the launch itself fails half way.
struct Process {
    child: Option<Child>,
    log: PathBuf,
    // Removed after the process is gone (fields drop after `drop` runs).
    _dir: tempfile::TempDir,
}

impl Process {
    /// Waits up to `grace` for the process to exit by itself, then kills it;
    /// always reaps it.
    fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// A `console.*` call a page made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleMessage {
    /// "log", "error", "warning", "info", "debug", ...
    pub level: String,
    /// The arguments as text, joined by spaces.
    pub text: String,
}

/// An entry of the browser's log for the page (Log.entryAdded): where
/// Chromium reports CSP violations, blocked requests, deprecations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// "security", "network", "javascript", "violation", "other", ...
    pub source: String,
    /// "verbose", "info", "warning" or "error".
    pub level: String,
    pub text: String,
    pub url: Option<String>,
}

/// A JavaScript dialog the page opened (and that was answered at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// "alert", "confirm", "prompt" or "beforeunload".
    pub kind: String,
    pub message: String,
}

/// A headless Chromium of this test's own, with a fresh profile. Dropping
/// it closes the browser (killing it if it does not exit at once) and
/// removes the profile.
pub struct Browser {
    conn: Conn,
    port: u16,
    // Declared last: dropped after `Drop::drop` asked Chromium to close.
    process: Process,
}

impl Browser {
    /// Starts Chromium, or returns None (the test skips) when it is not
    /// installed, unless `PAVILION_TEST_REQUIRE_PEERS=1` (scripts/test,
    /// which installs it): then a missing Chromium fails the test. One that
    /// is installed but does not start always fails it.
    pub fn launch() -> Option<Browser> {
        let Some(bin) = chromium_path() else {
            require_peer(
                "chromium (scripts/test installs Debian's chromium package; or set PAVILION_TEST_CHROMIUM)",
                false,
            )?;
            unreachable!("require_peer(.., false) returns None or panics");
        };
        let dir = tempfile::Builder::new()
            .prefix("pavilion-chromium-")
            .tempdir()
            .expect("chromium's temporary directory");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromium.log");
        // Chromium writes a lot to stderr; into a file, so it never blocks
        // on a full pipe and the log is there for failure messages.
        let out = File::create(&log).expect("chromium's log file");
        let err = out.try_clone().expect("chromium's log file");
        let child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--hide-scrollbars",
                // Pages see this viewport until set_viewport changes it.
                "--window-size=1280,800",
                // Only loopback: no other host name or address resolves
                // (the rules see IP literals too), so neither the browser
                // nor a page under test reaches beyond this machine, and a
                // UI that loads anything from elsewhere fails visibly.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut process = Process {
            child: Some(child),
            log,
            _dir: dir,
        };

        // With port 0 Chromium picks a free port and writes it, and the
        // browser endpoint's path, into DevToolsActivePort.
        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        let (port, path) = loop {
            let text = fs::read_to_string(profile.join("DevToolsActivePort")).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                match port.trim().parse::<u16>() {
                    Ok(port) if port != 0 && path.starts_with("/devtools/browser/") => {
                        break (port, path.to_string());
                    }
                    _ => {} // written half way: read it again
                }
            }
            if let Some(Ok(Some(status))) = process.child.as_mut().map(Child::try_wait) {
                panic!(
                    "chromium ({}) exited ({status}) before opening its DevTools port\n{}",
                    bin.display(),
                    log_tail(&process.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not write DevToolsActivePort within {LAUNCH_TIMEOUT:?}\n{}",
                log_tail(&process.log)
            );
            std::thread::sleep(Duration::from_millis(25));
        };
        let conn = Conn::open(port, &path).unwrap_or_else(|e| {
            panic!(
                "the browser's DevTools endpoint: {e}\n{}",
                log_tail(&process.log)
            )
        });
        Some(Browser {
            conn,
            port,
            process,
        })
    }

    /// Sends a browser-level command and waits for its answer. This
    /// connection enables no domain, so no events come to skip.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let fail = |what: String, log: &Path| -> ! {
            panic!("browser {method}: {what}\n{}", log_tail(log))
        };
        let id = self
            .conn
            .send(method, params)
            .unwrap_or_else(|e| fail(e, &self.process.log));
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        loop {
            match self.conn.recv(deadline) {
                Ok(Incoming::Reply { id: got, result }) if got == id => {
                    return result.unwrap_or_else(|e| fail(e, &self.process.log));
                }
                Ok(_) => {}
                Err(RecvError::Timeout) => fail(
                    format!("no answer within {DEFAULT_TIMEOUT:?}"),
                    &self.process.log,
                ),
                Err(RecvError::Closed(e)) => fail(e, &self.process.log),
            }
        }
    }

    /// The browser's product and version, e.g. "Chrome/156.0.8078.129".
    pub fn version(&mut self) -> String {
        let v = self.call("Browser.getVersion", json!({}));
        v["product"].as_str().unwrap_or_default().to_string()
    }

    /// Opens a new tab on about:blank, attached and recording console
    /// messages, exceptions, log entries and dialogs from the start.
    pub fn new_page(&mut self) -> Page {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"]
            .as_str()
            .unwrap_or_else(|| panic!("Target.createTarget answered {target}"));
        let conn = Conn::open(self.port, &format!("/devtools/page/{id}")).unwrap_or_else(|e| {
            panic!(
                "the new tab's DevTools endpoint: {e}\n{}",
                log_tail(&self.process.log)
            )
        });
        Page::attach(conn, self.process.log.clone())
    }

    /// Chromium's log so far (its stderr), e.g. for a test's own messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.process.log).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Asked to close, Chromium takes its helper processes with it; a
        // kill of the main process alone can leave them behind a while.
        let _ = self.conn.send("Browser.close", json!({}));
        self.process.stop(Duration::from_secs(5));
    }
}
