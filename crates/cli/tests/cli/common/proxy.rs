//! A loopback HTTP proxy that passes, refuses or loses the answers to
//! requests, as a test decides; and a TCP proxy that can be switched off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What [`http_proxy`] does with one request.
pub enum ProxyAction {
    /// Pass it on and return the answer.
    Forward,
    /// Answer this status and body without passing it on.
    Refuse(u16, &'static str),
    /// Pass it on, then answer this status and body instead of the answer
    /// (the request took effect, its answer was lost).
    ForwardThenFail(u16, &'static str),
}

/// Decides, from method and path with query, what happens to a request.
pub type ProxyHook = std::sync::Arc<dyn Fn(&reqwest::Method, &str) -> ProxyAction + Send + Sync>;

/// A loopback HTTP proxy in front of `upstream` (`http://host:port`) that
/// asks `hook` about every request. Requests keep their Host header, so
/// signed requests (S3) still verify upstream. Bodies are buffered: for
/// test-sized transfers.
pub async fn http_proxy(upstream: String, hook: ProxyHook) -> String {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;

    fn answer(status: u16, body: &'static str) -> Response {
        Response::builder()
            .status(status)
            .body(Body::from(body))
            .unwrap()
    }

    async fn forward(
        State((upstream, http, hook)): State<(String, reqwest::Client, ProxyHook)>,
        req: Request,
    ) -> Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let action = hook(&parts.method, path);
        if let ProxyAction::Refuse(status, text) = action {
            return answer(status, text);
        }
        let mut out = http
            .request(parts.method.clone(), format!("{upstream}{path}"))
            .body(body);
        for (k, v) in &parts.headers {
            out = out.header(k, v);
        }
        let Ok(r) = out.send().await else {
            return answer(502, "");
        };
        if let ProxyAction::ForwardThenFail(status, text) = action {
            return answer(status, text);
        }
        let mut resp = Response::builder().status(r.status().as_u16());
        for (k, v) in r.headers() {
            if k != "transfer-encoding" && k != "connection" {
                resp = resp.header(k, v);
            }
        }
        resp.body(Body::from(r.bytes().await.unwrap_or_default()))
            .unwrap()
    }

    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((upstream, http, hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A loopback TCP proxy that can be switched off: while off, open
/// connections are cut and new ones closed at once.
pub struct Switch {
    pub addr: String,
    pub up: Arc<AtomicBool>,
}

pub async fn switch_proxy(upstream: String) -> Switch {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !flag.load(Ordering::SeqCst) {
                continue; // dropped: closed at once
            }
            let flag = flag.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                tokio::pin!(copy);
                loop {
                    tokio::select! {
                        _ = &mut copy => return,
                        () = tokio::time::sleep(Duration::from_millis(20)) => {
                            if !flag.load(Ordering::SeqCst) {
                                return; // both sockets dropped: cut
                            }
                        }
                    }
                }
            });
        }
    });
    Switch { addr, up }
}

/// A switchable proxy in front of the PostgreSQL server of `url`, and
/// `url` rewritten to reach the database through it.
pub async fn postgres_behind_switch(url: &str) -> (Switch, String) {
    let host = url
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("a postgres://user@host:port/db URL")
        .to_string();
    let proxy = switch_proxy(host.clone()).await;
    let through = url.replacen(&host, &proxy.addr, 1);
    (proxy, through)
}
