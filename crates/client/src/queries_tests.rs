use super::*;
use crate::ClientOptions;
use std::io::{Read as _, Write as _};

/// A loopback registry answering one connection with `answer`; the
/// request it read comes back through the handle.
fn serve(answer: String) -> (String, std::thread::JoinHandle<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = vec![0u8; 8192];
        let n = s.read(&mut req).unwrap_or(0);
        let _ = s.write_all(answer.as_bytes());
        String::from_utf8_lossy(&req[..n]).into_owned()
    });
    (addr, t)
}

fn client() -> Client {
    Client::new(ClientOptions {
        plain_http: true,
        ..ClientOptions::default()
    })
    .unwrap()
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn the_current_result_keeps_the_fields_in_order() {
    let body = r#"{"seq":7,"rows":[{"tag":"v1","repository":"team/a"}]}"#;
    let (addr, req) = serve(response("200 OK", "", body));
    let r = current(&client(), &addr, "MATCH (t:Tag) RETURN t.name AS tag")
        .await
        .unwrap();
    assert_eq!(r.seq, 7);
    assert_eq!(r.rows[0].names().collect::<Vec<_>>(), ["tag", "repository"]);
    let req = req.join().unwrap();
    assert!(
        req.starts_with(
            "GET /pavilion/v1/queries?query=MATCH%20%28t%3ATag%29%20RETURN%20t.name%20AS%20tag "
        ),
        "{req}"
    );
}

#[tokio::test]
async fn a_refused_query_is_a_usage_error_with_the_registry_s_line() {
    let body =
        r#"{"errors":[{"code":"QUERY_INVALID","message":"unexpected end of input at 1:12"}]}"#;
    let (addr, _) = serve(response("400 Bad Request", "", body));
    let e = current(&client(), &addr, "MATCH (t").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(!e.is_temporary());
    assert_eq!(
        e.to_string(),
        "the query was refused: unexpected end of input at 1:12"
    );
}

#[tokio::test]
async fn busy_says_how_long_to_wait() {
    let (addr, _) = serve(response(
        "503 Service Unavailable",
        "Retry-After: 7\r\n",
        "",
    ));
    let e = watch(&client(), &addr, "q").await.err().unwrap();
    assert!(e.is_temporary());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn the_stream_is_a_result_then_diffs_then_an_error() {
    let body = "event: result\nid: 3\ndata: {\"seq\":3,\"rows\":[{\"tag\":\"v1\"}]}\n\n\
                : keep-alive\n\n\
                event: future-kind\ndata: {}\n\n\
                event: diff\nid: 4\ndata: {\"seq\":4,\"added\":[{\"tag\":\"v2\"}],\
                \"updated\":[{\"before\":{\"tag\":\"v1\"},\"after\":{\"tag\":\"v1b\"}}],\"removed\":[]}\n\n\
                event: error\ndata: {\"message\":\"the store went away\\nretry\"}\n\n";
    let (addr, _) = serve(response(
        "200 OK",
        "Content-Type: text/event-stream\r\n",
        body,
    ));
    let mut s = watch(&client(), &addr, "q").await.unwrap();
    let row = |t: &str| Row(vec![("tag".into(), serde_json::json!(t))]);
    assert_eq!(
        s.next().await.unwrap(),
        Some(QueryEvent::Result(QueryResult {
            seq: 3,
            rows: vec![row("v1")]
        }))
    );
    assert_eq!(
        s.next().await.unwrap(),
        Some(QueryEvent::Diff(QueryDiff {
            seq: 4,
            added: vec![row("v2")],
            updated: vec![RowUpdate {
                before: row("v1"),
                after: row("v1b")
            }],
            removed: vec![],
        }))
    );
    let e = s.next().await.unwrap_err();
    assert!(e.is_temporary());
    assert!(
        e.to_string()
            .ends_with("stopped evaluating the query: the store went away?retry"),
        "{e}"
    );
}
