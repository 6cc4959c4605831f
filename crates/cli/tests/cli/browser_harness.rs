//! The headless-Chromium driver (common/browser.rs) on pages these tests
//! serve themselves, so a web UI test that fails points at the UI, not at
//! the harness: navigation, evaluation, screenshots, dialogs, CSP reports,
//! keyboard focus, headers and cookies.
//!
//! The driver is blocking and so is the little server, so these are plain
//! `#[test]`s; each starts its own Chromium (about a second).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::browser::{png_size, screenshot_dir, Browser};

/// One page the site serves: its path, extra response headers, HTML body.
struct Route {
    path: &'static str,
    headers: &'static str,
    body: String,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering fixed pages (404 for
/// anything else) and keeping each request's head for the test to read.
struct Site {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Site {
    fn start(routes: Vec<Route>) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let routes = Arc::new(routes);
        let (seen, stopping) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (routes, seen) = (routes.clone(), seen.clone());
                std::thread::spawn(move || answer(conn, &routes, &seen));
            }
        });
        Site {
            addr,
            requests,
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The heads of the requests for `path` so far.
    fn requests_for(&self, path: &str) -> Vec<String> {
        let prefix = format!("GET {path} ");
        let all = self.requests.lock().unwrap();
        all.iter()
            .filter(|r| r.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // The accept loop sees the flag on its next connection: this one.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Reads one request's head and answers it; the connection is closed after
/// (Connection: close), which keeps the server this small.
fn answer(mut conn: TcpStream, routes: &[Route], seen: &Mutex<Vec<String>>) {
    // A browser may open a connection it never uses (a preconnect).
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    seen.lock().unwrap().push(head);
    let (status, headers, body) = match routes.iter().find(|r| r.path == path) {
        Some(r) => ("200 OK", r.headers, r.body.as_str()),
        None => ("404 Not Found", "", "not found"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.shutdown(Shutdown::Write);
}

fn page(path: &'static str, headers: &'static str, body: &str) -> Route {
    Route {
        path,
        headers,
        body: body.to_string(),
    }
}

#[test]
fn navigate_eval_wait_and_timing() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let site = Site::start(vec![page(
        "/",
        "",
        "<!doctype html><title>Harness</title><p id=greeting>hello</p>\
         <script>console.log('booted', 42);\
         setTimeout(() => { document.getElementById('greeting').textContent = 'later'; }, 300);\
         </script>",
    )]);
    let mut page = browser.new_page();
    page.navigate(&site.url("/"));

    assert_eq!(page.eval("document.title"), "Harness");
    assert_eq!(
        page.eval("Promise.resolve(6 * 7)"),
        42,
        "promises are awaited"
    );
    // Text that only a timer sets: seen by waiting, not at load.
    assert_eq!(
        page.eval("document.getElementById('greeting').textContent"),
        "hello"
    );
    let later = page.wait_for(
        "document.getElementById('greeting').textContent === 'later' && 'changed'",
        Duration::from_secs(5),
    );
    assert_eq!(later, "changed");

    let err = page.try_eval("noSuchFunction()").unwrap_err();
    assert!(err.contains("noSuchFunction is not defined"), "{err}");
    // An exception of the test's own evaluation is returned, not recorded
    // as the page's: a UI test asserting "no exceptions" would otherwise
    // fail on every wait_for that polled a missing element.
    assert_eq!(page.exceptions(), Vec::<String>::new());
    page.eval("setTimeout(() => { throw new Error('from the page') }, 0)");
    page.wait_for(
        "new Promise(r => setTimeout(() => r(true), 50))",
        Duration::from_secs(5),
    );
    let exceptions = page.exceptions();
    assert!(
        exceptions.len() == 1 && exceptions[0].contains("from the page"),
        "{exceptions:?}"
    );

    let console = page.console_messages();
    assert!(
        console
            .iter()
            .any(|m| m.level == "log" && m.text == "booted 42"),
        "console: {console:?}"
    );

    let timing = page.navigation_timing();
    assert_eq!(timing["name"], site.url("/"), "{timing}");
    assert_eq!(timing["type"], "navigate", "{timing}");
    assert!(timing["loadEventEnd"].as_f64() > Some(0.0), "{timing}");
}

#[test]
fn screenshot_is_a_png_of_the_viewport_width_and_the_whole_page() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let site = Site::start(vec![page(
        "/tall",
        "",
        "<!doctype html><meta name=viewport content='width=device-width'>\
         <body style='margin:0'><div style='height:2000px;background:linear-gradient(#07c,#fc0)'>\
         tall</div></body>",
    )]);
    let mut page = browser.new_page();
    page.set_viewport(390, 700, true);
    page.navigate(&site.url("/tall"));
    assert_eq!(page.eval("window.innerWidth"), 390);

    let path = screenshot_dir().join("browser_harness/tall-390.png");
    let _ = std::fs::remove_file(&path);
    let dims = page.screenshot_png(&path);
    let bytes = std::fs::read(&path).expect("the screenshot file");
    assert_eq!(
        png_size(&bytes),
        Some(dims),
        "what was written is what was reported"
    );
    let (w, h) = dims;
    assert_eq!(w, 390, "the requested viewport width");
    // Full page: the 2000 px div, not the 700 px viewport.
    assert_eq!(h, 2000);
    assert!(png_size(b"GIF89a not a png at all").is_none());
}

#[test]
fn alert_is_counted_and_dismissed_without_hanging() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let site = Site::start(vec![
        page("/quiet", "", "<!doctype html><p>nothing to say</p>"),
        page(
            "/alert",
            "",
            "<!doctype html><script>alert('injected')</script><p id=after>after</p>",
        ),
    ]);
    let mut page = browser.new_page();
    page.set_timeout(Duration::from_secs(10));
    page.navigate(&site.url("/quiet"));
    assert!(page.dialogs_opened().is_empty());

    // alert() stops the page's parser until answered: the navigation ends
    // only because the driver answered it.
    page.navigate(&site.url("/alert"));
    let dialogs = page.dialogs_opened();
    assert_eq!(dialogs.len(), 1, "{dialogs:?}");
    assert_eq!(
        (dialogs[0].kind.as_str(), dialogs[0].message.as_str()),
        ("alert", "injected")
    );
    assert_eq!(page.eval("document.getElementById('after') !== null"), true);

    // Dismissed by default: a confirm() says no, unless asked otherwise.
    assert_eq!(page.eval("confirm('delete?')"), false);
    page.accept_dialogs(true);
    assert_eq!(page.eval("confirm('delete?')"), true);
    assert_eq!(page.dialogs_opened().len(), 3);
}

#[test]
fn csp_blocked_inline_script_does_not_run_and_is_reported() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let script = "<!doctype html><p>csp</p>\
                  <script>window.ran = true; console.log('inline ran')</script>";
    let site = Site::start(vec![
        page("/open", "", script),
        page(
            "/locked",
            "Content-Security-Policy: default-src 'none'\r\n",
            script,
        ),
    ]);
    let mut page = browser.new_page();
    // The same page without the header: the script runs (so the check
    // below can tell a blocked script from one that never was).
    page.navigate(&site.url("/open"));
    assert_eq!(page.eval("window.ran === true"), true);

    let mut page = browser.new_page();
    page.navigate(&site.url("/locked"));
    assert_eq!(
        page.eval("window.ran === true"),
        false,
        "CSP let the inline script run"
    );
    let console = page.console_messages();
    assert!(
        !console.iter().any(|m| m.text == "inline ran"),
        "{console:?}"
    );
    let log = page.log_entries();
    assert!(
        log.iter().any(|e| e.level == "error"
            && e.text.contains("Content Security Policy")
            && e.text.contains("default-src 'none'")),
        "no CSP violation in the log: {}",
        log.iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

#[test]
fn keyboard_moves_focus_and_types() {
    let Some(mut browser) = Browser::launch() else {
        return;
    };
    let site = Site::start(vec![page(
        "/form",
        "Set-Cookie: session=s3cret; HttpOnly; SameSite=Strict; Path=/\r\n",
        "<!doctype html><input id=name><button id=go>Go</button><a id=help href='#help'>Help</a>\
         <script>document.getElementById('go').onclick = () => { document.title = 'clicked' };\
         </script>",
    )]);
    let mut page = browser.new_page();
    page.set_extra_headers(&[("X-Harness", "on")]);
    page.navigate(&site.url("/form"));
    let heads = site.requests_for("/form");
    assert!(
        heads
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("\r\nx-harness: on\r\n")),
        "{heads:?}"
    );
    let cookies = page.cookies();
    let session = cookies.iter().find(|c| c["name"] == "session");
    let session = session.unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(
        (&session["value"], &session["httpOnly"]),
        (&Value::from("s3cret"), &Value::from(true))
    );
    assert_eq!(session["sameSite"], "Strict");

    // A second tab does not take the focus from the first (the driver
    // emulates focus for every tab): keyboard tests see a focused page.
    let mut other = browser.new_page();
    other.navigate(&site.url("/form"));
    assert_eq!(page.eval("document.hasFocus()"), true);
    assert_eq!(other.eval("document.hasFocus()"), true);

    let active = "document.activeElement.id";
    page.type_text("#name", "Ada L.");
    assert_eq!(page.eval("document.getElementById('name').value"), "Ada L.");
    assert_eq!(page.eval(active), "name");
    page.press_key("Tab");
    assert_eq!(page.eval(active), "go");
    page.press_key("Tab");
    assert_eq!(page.eval(active), "help");
    page.press_key("Shift+Tab");
    assert_eq!(page.eval(active), "go");
    assert_eq!(
        page.eval("document.activeElement.matches(':focus-visible')"),
        true
    );
    page.press_key("Enter");
    page.wait_for("document.title === 'clicked'", Duration::from_secs(5));

    page.eval("document.title = ''");
    page.click("#go");
    assert_eq!(page.eval("document.title"), "clicked");
}
