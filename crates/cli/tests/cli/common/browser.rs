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

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::backend::require_peer;

/// How long Chromium may take to open its DevTools port.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// A page's default bound on one command, a navigation or a click's wait
/// for its element (generous: the tests share two cores with a build).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Unconsumed events a page keeps for [`Page::wait_event`]. Everything a
/// test asserts on (console, exceptions, log, dialogs) is recorded apart
/// from this queue, so the cap only bounds memory on long pages with the
/// Network domain on; it is far above what a test page produces.
const MAX_QUEUED_EVENTS: usize = 20_000;
/// Full-page screenshots are cut at this height: GPU-less rasterising of a
/// taller page is slow and Chromium clamps huge captures anyway.
const MAX_SCREENSHOT_HEIGHT: f64 = 16_384.0;

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

/// What came over a DevTools connection.
enum Incoming {
    /// The answer to command `id`: its result, or the protocol's error text.
    Reply {
        id: u64,
        result: Result<Value, String>,
    },
    Event {
        method: String,
        params: Value,
    },
}

/// Why no message came.
enum RecvError {
    Timeout,
    Closed(String),
}

/// One DevTools WebSocket (the browser's or a tab's).
struct Conn {
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Conn {
    fn open(port: u16, path: &str) -> Result<Conn, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        // Bounds the handshake; reads set their own timeout afterwards.
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        stream.set_write_timeout(Some(Duration::from_secs(10))).ok();
        stream.set_nodelay(true).ok();
        // A full-page screenshot arrives as one base64 message of several
        // MiB; tungstenite's default frame limit (16 MiB) is too tight.
        let config = WebSocketConfig::default()
            .max_message_size(Some(512 << 20))
            .max_frame_size(Some(512 << 20));
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
            .map_err(|e| format!("WebSocket handshake with {url}: {e}"))?;
        Ok(Conn { ws, next_id: 1 })
    }

    /// Sends a command; returns its id (its reply comes later, via `recv`).
    fn send(&mut self, method: &str, params: Value) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::text(text))
            .map_err(|e| format!("sending {method}: {e}"))?;
        Ok(id)
    }

    /// The next message, waiting until `deadline` at most.
    fn recv(&mut self, deadline: Instant) -> Result<Incoming, RecvError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            // Zero would mean "no timeout" to the socket.
            let left = left.max(Duration::from_millis(1));
            if let Err(e) = self.ws.get_mut().set_read_timeout(Some(left)) {
                return Err(RecvError::Closed(e.to_string()));
            }
            // tungstenite keeps a partly read frame across a timed-out read,
            // so a timeout here loses nothing.
            let text = match self.ws.read() {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(frame)) => {
                    return Err(RecvError::Closed(format!("closed by chromium: {frame:?}")));
                }
                Ok(_) => continue, // pings (answered by tungstenite), binary
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => return Err(RecvError::Closed(e.to_string())),
            };
            let msg: Value = serde_json::from_str(text.as_str())
                .map_err(|e| RecvError::Closed(format!("not JSON ({e}): {}", text.as_str())))?;
            if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                let result = match msg.get("error") {
                    Some(err) => Err(err.to_string()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
                return Ok(Incoming::Reply { id, result });
            }
            let method = msg["method"].as_str().unwrap_or_default().to_string();
            let params = msg.get("params").cloned().unwrap_or(Value::Null);
            return Ok(Incoming::Event { method, params });
        }
    }
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
        let mut page = Page {
            conn,
            log: self.process.log.clone(),
            timeout: DEFAULT_TIMEOUT,
            accept_dialogs: false,
            network_enabled: false,
            crashed: false,
            queue: VecDeque::new(),
            dropped_events: 0,
            console: Vec::new(),
            exceptions: Vec::new(),
            log_entries: Vec::new(),
            dialogs: Vec::new(),
        };
        for domain in ["Page", "Runtime", "Log"] {
            page.command_ok(&format!("{domain}.enable"), json!({}));
        }
        page
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

/// One tab, on its own DevTools connection. Owns no browser: drop it
/// before its [`Browser`] (closing a tab of a closed browser just fails
/// quietly).
pub struct Page {
    conn: Conn,
    log: PathBuf,
    timeout: Duration,
    accept_dialogs: bool,
    network_enabled: bool,
    crashed: bool,
    /// Events not consumed yet, oldest first (see [`Page::wait_event`]).
    queue: VecDeque<(String, Value)>,
    dropped_events: u64,
    console: Vec<ConsoleMessage>,
    exceptions: Vec<String>,
    log_entries: Vec<LogEntry>,
    dialogs: Vec<Dialog>,
}

/// Whether a JSON value is what JavaScript would call truthy.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A CDP RemoteObject as text, the way a console shows it.
fn remote_text(o: &Value) -> String {
    match o.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => ["unserializableValue", "description", "type"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string(),
    }
}

/// The text of a CDP ExceptionDetails: the thrown value (with its stack
/// for an Error), else the summary ("Uncaught ...").
fn exception_text(details: &Value) -> String {
    match details.get("exception") {
        Some(e) => remote_text(e),
        None => details["text"].as_str().unwrap_or_default().to_string(),
    }
}

impl Page {
    /// Changes the bound on each later wait of this page that takes no
    /// timeout of its own (commands, navigations, clicks).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether later dialogs are accepted (OK) instead of dismissed
    /// (Cancel, the default: a `confirm()` guarding an action says no).
    pub fn accept_dialogs(&mut self, accept: bool) {
        self.accept_dialogs = accept;
    }

    /// Panics with what was awaited and Chromium's log.
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!("{what}\n{}", log_tail(&self.log))
    }

    /// Records an event and queues it. Dialogs are answered here, at once:
    /// while one is open the page's script is stopped, and so would be the
    /// command (or load) the test is waiting for.
    fn observe(&mut self, method: String, params: Value) {
        match method.as_str() {
            "Runtime.consoleAPICalled" => {
                let args = params["args"].as_array().cloned().unwrap_or_default();
                let text: Vec<String> = args.iter().map(remote_text).collect();
                self.console.push(ConsoleMessage {
                    level: params["type"].as_str().unwrap_or_default().to_string(),
                    text: text.join(" "),
                });
            }
            "Runtime.exceptionThrown" => {
                self.exceptions
                    .push(exception_text(&params["exceptionDetails"]));
            }
            "Log.entryAdded" => {
                let e = &params["entry"];
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                self.log_entries.push(LogEntry {
                    source: s("source"),
                    level: s("level"),
                    text: s("text"),
                    url: e["url"].as_str().map(str::to_string),
                });
            }
            "Page.javascriptDialogOpening" => {
                self.dialogs.push(Dialog {
                    kind: params["type"].as_str().unwrap_or_default().to_string(),
                    message: params["message"].as_str().unwrap_or_default().to_string(),
                });
                // Its reply is skipped like any reply nobody waits for.
                let answer = json!({"accept": self.accept_dialogs});
                if let Err(e) = self.conn.send("Page.handleJavaScriptDialog", answer) {
                    self.fail(format!("answering a dialog: {e}"));
                }
            }
            "Inspector.targetCrashed" => self.crashed = true,
            _ => {}
        }
        if self.queue.len() >= MAX_QUEUED_EVENTS {
            self.queue.pop_front();
            self.dropped_events += 1;
        }
        self.queue.push_back((method, params));
    }

    /// The next message before `deadline`; events are recorded and queued
    /// on the way (whatever the caller waits for).
    fn recv(&mut self, deadline: Instant, awaiting: &dyn Fn() -> String) -> Option<Incoming> {
        if self.crashed {
            self.fail(format!("the page crashed (while awaiting {})", awaiting()));
        }
        match self.conn.recv(deadline) {
            Ok(Incoming::Event { method, params }) => {
                self.observe(method, params);
                None
            }
            Ok(reply) => Some(reply),
            Err(RecvError::Timeout) => self.fail(format!("timed out awaiting {}", awaiting())),
            Err(RecvError::Closed(e)) => self.fail(format!(
                "DevTools connection lost awaiting {}: {e}",
                awaiting()
            )),
        }
    }

    /// Sends `method` and waits for its answer until `deadline`; events
    /// that come first are recorded and queued. Err is the protocol's error.
    fn call_until(
        &mut self,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Result<Value, String> {
        let id = self
            .conn
            .send(method, params)
            .unwrap_or_else(|e| self.fail(e));
        let started = Instant::now();
        loop {
            let awaiting = || format!("the answer to {method} ({:?} so far)", started.elapsed());
            // Replies to other ids (a dialog's answer, a command given up
            // on by an earlier timeout) have nobody waiting: skipped.
            if let Some(Incoming::Reply { id: got, result }) = self.recv(deadline, &awaiting) {
                if got == id {
                    return result;
                }
            }
        }
    }

    /// Any CDP command on this tab (an escape hatch, e.g.
    /// `Emulation.setEmulatedMedia`), bounded by the page's timeout. Err
    /// is the protocol's error; a timeout or a lost browser panics.
    pub fn command(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.call_until(method, params, Instant::now() + self.timeout)
    }

    /// [`Page::command`] that must succeed.
    fn command_ok(&mut self, method: &str, params: Value) -> Value {
        self.command(method, params)
            .unwrap_or_else(|e| self.fail(format!("{method} failed: {e}")))
    }

    /// Waits for the next event named `method` (e.g.
    /// "Page.frameNavigated"), taking the oldest queued one first; returns
    /// its params. Panics after `timeout`.
    pub fn wait_event(&mut self, method: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.queue.iter().position(|(m, _)| m == method) {
                return self.queue.remove(at).expect("queued").1;
            }
            let dropped = self.dropped_events;
            let awaiting =
                || format!("event {method} for {timeout:?} ({dropped} older events dropped)");
            self.recv(deadline, &awaiting);
        }
    }

    /// Takes every queued event (after [`Page::settle`]).
    pub fn take_events(&mut self) -> Vec<(String, Value)> {
        self.settle();
        self.queue.drain(..).collect()
    }

    /// Reads every event the page sent before now: a command's answer
    /// comes after the events the renderer emitted before it.
    pub fn settle(&mut self) {
        self.command_ok("Runtime.evaluate", json!({"expression": "0"}));
    }

    /// Loads `url` and waits for its load event (all of its scripts, styles
    /// and images). Panics when the navigation fails (e.g. connection
    /// refused) or the load takes longer than the page's timeout. Dialogs
    /// opened while loading are answered (see [`Page::dialogs_opened`]).
    pub fn navigate(&mut self, url: &str) {
        // A load event left over from an earlier load is not this one's.
        self.queue.retain(|(m, _)| m != "Page.loadEventFired");
        let r = self.command_ok("Page.navigate", json!({"url": url}));
        if let Some(err) = r.get("errorText").and_then(Value::as_str) {
            self.fail(format!("navigating to {url}: {err}"));
        }
        // Without a loader it was a same-document navigation (a #fragment):
        // no load event follows.
        if r.get("loaderId").is_none() {
            return;
        }
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self
                .queue
                .iter()
                .position(|(m, _)| m == "Page.loadEventFired")
            {
                self.queue.remove(at);
                return;
            }
            let awaiting = || format!("the load event of {url} for {timeout:?}");
            self.recv(deadline, &awaiting);
        }
    }

    /// Evaluates `js` (an expression; a promise is awaited) and returns its
    /// value as JSON (undefined and non-JSON values: null, or their text).
    /// Err carries a thrown exception's text.
    pub fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let deadline = Instant::now() + self.timeout;
        self.eval_until(js, deadline)
    }

    fn eval_until(&mut self, js: &str, deadline: Instant) -> Result<Value, String> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let r = self
            .call_until("Runtime.evaluate", params, deadline)
            .unwrap_or_else(|e| self.fail(format!("Runtime.evaluate of `{js}` failed: {e}")));
        if let Some(details) = r.get("exceptionDetails") {
            return Err(exception_text(details));
        }
        let result = &r["result"];
        Ok(match result.get("value") {
            Some(v) => v.clone(),
            None => match result.get("unserializableValue") {
                Some(v) => v.clone(), // NaN, Infinity, -0, 1n: as text
                None => Value::Null,
            },
        })
    }

    /// [`Page::try_eval`] that must not throw: panics with the exception.
    pub fn eval(&mut self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|e| panic!("JavaScript `{js}` threw: {e}"))
    }

    /// Evaluates `js_predicate` every 50 ms until it is truthy, and returns
    /// that value. Throwing counts as not yet (the element may not exist).
    /// Panics after `timeout` with the predicate and its last outcome.
    pub fn wait_for(&mut self, js_predicate: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            let outcome = self.eval_until(js_predicate, deadline);
            match outcome {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => last = format!("value {v}"),
                Err(e) => last = format!("threw {e}"),
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                self.fail(format!(
                    "timed out after {timeout:?} waiting for `{js_predicate}` (last: {last})"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Emulates a `width` x `height` CSS-pixel viewport at device scale 1
    /// (so a screenshot is `width` pixels wide); `mobile` also turns on the
    /// mobile meta-viewport handling and overlay scrollbars.
    pub fn set_viewport(&mut self, width: u32, height: u32, mobile: bool) {
        let params = json!({
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
        });
        self.command_ok("Emulation.setDeviceMetricsOverride", params);
    }

    /// Writes a PNG of the whole page (beyond the viewport, up to 16384
    /// pixels high) to `path`, creating its directories; returns its width
    /// and height.
    pub fn screenshot_png(&mut self, path: impl AsRef<Path>) -> (u32, u32) {
        let path = path.as_ref();
        let metrics = self.command_ok("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let (w, h) = (size["width"].as_f64(), size["height"].as_f64());
        let (Some(w), Some(h)) = (w, h) else {
            self.fail(format!("Page.getLayoutMetrics answered {metrics}"));
        };
        let clip = json!({
            "x": 0, "y": 0, "width": w.ceil(), "height": h.ceil().min(MAX_SCREENSHOT_HEIGHT),
            "scale": 1,
        });
        let params = json!({"format": "png", "captureBeyondViewport": true, "clip": clip});
        let shot = self.command_ok("Page.captureScreenshot", params);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| self.fail(format!("screenshot data is not base64: {e}")));
        let dims = png_size(&png).unwrap_or_else(|| self.fail("the screenshot is not a PNG"));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        fs::write(path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        dims
    }

    /// Turns on the Network domain, which some of its commands need.
    fn enable_network(&mut self) {
        if !self.network_enabled {
            self.command_ok("Network.enable", json!({}));
            self.network_enabled = true;
        }
    }

    /// Sends these headers with every later request of this tab (replacing
    /// any set before), e.g. `Authorization`.
    pub fn set_extra_headers(&mut self, headers: &[(&str, &str)]) {
        self.enable_network();
        let map: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        self.command_ok("Network.setExtraHTTPHeaders", json!({"headers": map}));
    }

    /// The cookies the browser would send to the current page's URL, as CDP
    /// Cookie objects (name, value, domain, path, expires, httpOnly,
    /// secure, sameSite, ...).
    pub fn cookies(&mut self) -> Vec<Value> {
        self.enable_network();
        let r = self.command_ok("Network.getCookies", json!({}));
        r["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to the page's timeout) until `selector` matches an element
    /// that is rendered and not covered at its centre, scrolled into view;
    /// returns that centre in viewport CSS pixels.
    fn locate(&mut self, selector: &str) -> (f64, f64) {
        let sel = serde_json::to_string(selector).expect("a string is JSON");
        let js = format!(
            "(() => {{
                const el = document.querySelector({sel});
                if (!el) return 'no element matches';
                el.scrollIntoView({{block: 'center', inline: 'center'}});
                const r = el.getBoundingClientRect();
                if (r.width === 0 || r.height === 0) return 'the element has no size';
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const top = document.elementFromPoint(x, y);
                if (top !== el && !el.contains(top)) {{
                    return 'the element is covered by ' + (top ? top.outerHTML.slice(0, 100) : 'nothing');
                }}
                return [x, y];
            }})()"
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            let state = self.eval_until(&js, deadline);
            if let Ok(Value::Array(xy)) = &state {
                if let (Some(x), Some(y)) = (xy[0].as_f64(), xy[1].as_f64()) {
                    return (x, y);
                }
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                let why = match state {
                    Ok(v) => remote_text(&json!({"value": v})),
                    Err(e) => format!("threw {e}"),
                };
                self.fail(format!(
                    "`{selector}` not clickable after {:?}: {why}",
                    self.timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the centre of the element `selector` matches with the mouse,
    /// the way a person would (trusted events; focus follows), after
    /// waiting for it to be there, visible and uncovered.
    pub fn click(&mut self, selector: &str) {
        let (x, y) = self.locate(selector);
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let params = json!({
                "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1,
            });
            self.command_ok("Input.dispatchMouseEvent", params);
        }
    }

    /// Focuses the element `selector` matches (waiting for it as `click`
    /// does) and types `text` key by key: keydown, keypress, input and
    /// keyup events; "\n" presses Enter.
    pub fn type_text(&mut self, selector: &str, text: &str) {
        let sel = serde_json::to_string(selector).expect("a string is JSON");
        self.locate(selector);
        let focused = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); el.focus(); \
             return document.activeElement === el; }})()"
        ));
        if focused != Value::Bool(true) {
            self.fail(format!("`{selector}` cannot take the focus"));
        }
        for c in text.chars() {
            match c {
                '\n' => self.press_key("Enter"),
                c => self.press_key(&c.to_string()),
            }
        }
    }

    /// Presses and releases a key, with modifiers before a '+':
    /// "Tab", "Shift+Tab", "Enter", "Escape", "ArrowDown", "a", "Control+a".
    /// Named keys: Tab, Enter, Escape, Backspace, Delete, Space, Home, End,
    /// PageUp, PageDown, ArrowUp/Down/Left/Right; else one character.
    pub fn press_key(&mut self, key: &str) {
        let (mods, name) = match key.rsplit_once('+') {
            Some((mods, name)) if !name.is_empty() => (mods, name),
            _ => ("", key), // "+" itself
        };
        let mut modifiers = 0;
        for m in mods.split('+').filter(|m| !m.is_empty()) {
            modifiers |= match m {
                "Alt" => 1,
                "Control" | "Ctrl" => 2,
                "Meta" => 4,
                "Shift" => 8,
                _ => panic!("unknown modifier {m:?} in key {key:?}"),
            };
        }
        // (key, code, Windows virtual key code, text it types)
        let (key_name, code, vk, text): (&str, String, u32, Option<String>) = match name {
            "Tab" => ("Tab", "Tab".into(), 9, None),
            "Enter" => ("Enter", "Enter".into(), 13, Some("\r".into())),
            "Escape" => ("Escape", "Escape".into(), 27, None),
            "Backspace" => ("Backspace", "Backspace".into(), 8, None),
            "Delete" => ("Delete", "Delete".into(), 46, None),
            "Space" | " " => (" ", "Space".into(), 32, Some(" ".into())),
            "Home" => ("Home", "Home".into(), 36, None),
            "End" => ("End", "End".into(), 35, None),
            "PageUp" => ("PageUp", "PageUp".into(), 33, None),
            "PageDown" => ("PageDown", "PageDown".into(), 34, None),
            "ArrowLeft" => ("ArrowLeft", "ArrowLeft".into(), 37, None),
            "ArrowUp" => ("ArrowUp", "ArrowUp".into(), 38, None),
            "ArrowRight" => ("ArrowRight", "ArrowRight".into(), 39, None),
            "ArrowDown" => ("ArrowDown", "ArrowDown".into(), 40, None),
            other => {
                let mut chars = other.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    panic!("unknown key {other:?}");
                };
                let upper = c.to_ascii_uppercase();
                let (code, vk) = if c.is_ascii_alphabetic() {
                    (format!("Key{upper}"), upper as u32)
                } else if c.is_ascii_digit() {
                    (format!("Digit{c}"), c as u32)
                } else {
                    (String::new(), 0)
                };
                (other, code, vk, Some(c.to_string()))
            }
        };
        // With Control, Alt or Meta held a key is a shortcut, not typing.
        let text = text.filter(|_| modifiers & 0b0111 == 0);
        let down = if text.is_some() {
            "keyDown"
        } else {
            "rawKeyDown"
        };
        let mut params = json!({
            "type": down, "modifiers": modifiers, "key": key_name, "code": code,
            "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
        });
        if let Some(t) = &text {
            params["text"] = json!(t);
            params["unmodifiedText"] = json!(t);
        }
        self.command_ok("Input.dispatchKeyEvent", params.clone());
        params["type"] = json!("keyUp");
        params.as_object_mut().expect("object").remove("text");
        params
            .as_object_mut()
            .expect("object")
            .remove("unmodifiedText");
        self.command_ok("Input.dispatchKeyEvent", params);
    }

    /// Every `console.*` call of the tab so far, in order.
    pub fn console_messages(&mut self) -> Vec<ConsoleMessage> {
        self.settle();
        self.console.clone()
    }

    /// Every uncaught exception of the tab's scripts so far (not those of
    /// [`Page::try_eval`], which returns them).
    pub fn exceptions(&mut self) -> Vec<String> {
        self.settle();
        self.exceptions.clone()
    }

    /// Every browser log entry for the tab so far: CSP violations (source
    /// "security", level "error": "Executing inline script violates the
    /// following Content Security Policy directive ..."), failed loads,
    /// warnings.
    pub fn log_entries(&mut self) -> Vec<LogEntry> {
        self.settle();
        self.log_entries.clone()
    }

    /// Every dialog (`alert`, `confirm`, `prompt`, `beforeunload`) the tab
    /// opened so far; each was answered at once (see
    /// [`Page::accept_dialogs`]), so a script's `alert(1)` never hangs a
    /// test.
    pub fn dialogs_opened(&mut self) -> Vec<Dialog> {
        self.settle();
        self.dialogs.clone()
    }

    /// The current document's PerformanceNavigationTiming as JSON (name,
    /// type, responseStart, domContentLoadedEventEnd, loadEventEnd,
    /// transferSize, ...); null when there is none.
    pub fn navigation_timing(&mut self) -> Value {
        self.eval("performance.getEntriesByType('navigation')[0]?.toJSON() ?? null")
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // Frees the tab's renderer; nobody waits for the answer (a
        // `beforeunload` handler must not hang a test's end).
        let _ = self.conn.send("Page.close", json!({}));
        let _ = self.conn.ws.close(None);
        let _ = self.conn.ws.flush();
    }
}
