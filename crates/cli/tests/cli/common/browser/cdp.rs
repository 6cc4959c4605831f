//! One DevTools WebSocket: commands out with ids, replies and events in,
//! every read bounded by a deadline.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// What came over a DevTools connection.
pub(super) enum Incoming {
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
pub(super) enum RecvError {
    Timeout,
    Closed(String),
}

/// One DevTools WebSocket (the browser's or a tab's).
pub(super) struct Conn {
    pub(super) ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Conn {
    pub(super) fn open(port: u16, path: &str) -> Result<Conn, String> {
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
    pub(super) fn send(&mut self, method: &str, params: Value) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::text(text))
            .map_err(|e| format!("sending {method}: {e}"))?;
        Ok(id)
    }

    /// The next message, waiting until `deadline` at most.
    pub(super) fn recv(&mut self, deadline: Instant) -> Result<Incoming, RecvError> {
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
