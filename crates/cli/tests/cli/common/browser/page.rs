//! One tab: navigation, evaluation, waits, screenshots, headers and
//! cookies, and what the page reported (console, exceptions, log entries,
//! dialogs), recorded from every message that passes, whatever the test
//! was waiting for.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::cdp::{Conn, Incoming, RecvError};
use super::{log_tail, png_size, ConsoleMessage, Dialog, LogEntry, DEFAULT_TIMEOUT};

/// Unconsumed events a page keeps for [`Page::wait_event`]. Everything a
/// test asserts on (console, exceptions, log, dialogs) is recorded apart
/// from this queue, so the cap only bounds memory on long pages with the
/// Network domain on; it is far above what a test page produces.
const MAX_QUEUED_EVENTS: usize = 20_000;
/// Full-page screenshots are cut at this height: GPU-less rasterising of a
/// taller page is slow and Chromium clamps huge captures anyway.
const MAX_SCREENSHOT_HEIGHT: f64 = 16_384.0;

/// One tab, on its own DevTools connection. Owns no browser: drop it
/// before its [`Browser`](super::Browser) (closing a tab of a closed browser just fails
/// quietly).
pub struct Page {
    conn: Conn,
    log: PathBuf,
    pub(super) timeout: Duration,
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
pub(super) fn remote_text(o: &Value) -> String {
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
    /// Wraps a fresh tab's connection: turns on the domains whose events
    /// it records, and focus emulation.
    pub(super) fn attach(conn: Conn, log: PathBuf) -> Page {
        let mut page = Page {
            conn,
            log,
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
        // Only the newest tab has the focus otherwise: an older one would
        // answer document.hasFocus() false and skip :focus-visible, which
        // keyboard tests look at.
        page.command_ok(
            "Emulation.setFocusEmulationEnabled",
            json!({"enabled": true}),
        );
        page
    }

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
    pub(super) fn fail(&self, what: impl std::fmt::Display) -> ! {
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
        // A hung evaluation names its expression (a wait_for's predicate).
        let of = match params.get("expression").and_then(Value::as_str) {
            Some(js) => format!(" of `{js}`"),
            None => String::new(),
        };
        let id = self
            .conn
            .send(method, params)
            .unwrap_or_else(|e| self.fail(e));
        let started = Instant::now();
        loop {
            let awaiting = || {
                format!(
                    "the answer to {method}{of} ({:?} so far)",
                    started.elapsed()
                )
            };
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
    pub(super) fn command_ok(&mut self, method: &str, params: Value) -> Value {
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
        // An error answer (no document: a navigation under way) is as good
        // a barrier as a value.
        let _ = self.command("Runtime.evaluate", json!({"expression": "0"}));
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
        let Some(loader) = r
            .get("loaderId")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return;
        };
        // The load event that counts is the first after the main frame
        // committed this navigation's loader (HTTP redirects keep it): the
        // page before may fire its own load event after the retain above
        // (a page still loading when the test moves on), and returning on
        // that one left a test reading the old document.
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let committed = self.queue.iter().position(|(m, p)| {
                m == "Page.frameNavigated"
                    && p["frame"]["loaderId"] == loader.as_str()
                    && p["frame"].get("parentId").is_none()
            });
            if let Some(nav) = committed {
                let load = self
                    .queue
                    .iter()
                    .skip(nav + 1)
                    .position(|(m, _)| m == "Page.loadEventFired");
                if let Some(at) = load {
                    self.queue.remove(nav + 1 + at);
                    self.queue.remove(nav);
                    return;
                }
            }
            let awaiting = || format!("the load event of {url} for {timeout:?}");
            self.recv(deadline, &awaiting);
        }
    }

    /// Evaluates `js` (an expression; a promise is awaited) and returns its
    /// value as JSON (undefined and non-JSON values: null, or their text).
    /// Err carries a thrown exception's text, or the protocol's error when
    /// there was no document to evaluate in (the page was navigating).
    pub fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let deadline = Instant::now() + self.timeout;
        self.eval_until(js, deadline)
    }

    pub(super) fn eval_until(&mut self, js: &str, deadline: Instant) -> Result<Value, String> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let r = self.call_until("Runtime.evaluate", params, deadline)?;
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
    /// that value. Throwing counts as not yet (the element may not exist),
    /// and so does a navigation under way (no document to evaluate in).
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
    /// mobile meta-viewport handling and overlay scrollbars (a page without
    /// `<meta name=viewport content="width=device-width">` then lays out,
    /// and screenshots, 980 px wide, as on a phone).
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
