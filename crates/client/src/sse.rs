//! Reading a Server-Sent Events body (the change feed, continuous
//! queries): lines split on `\n` (a `\r` before it dropped), `event:`,
//! `id:` and `data:` fields gathered until a blank line ends a message.
//! Written by hand because the format is twenty lines and every SSE crate
//! brings its own HTTP client; ours must keep the registry client's auth
//! and TLS.

use crate::error::ClientError;
use futures::StreamExt;

/// Longest SSE line, and largest message, accepted: an event is a few KiB
/// and a query's result a few MiB at most; a peer that sends more without
/// a newline is not speaking SSE.
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;

/// One message of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseMessage {
    /// The `event:` field; `message` when none was sent (the spec's default).
    pub event: String,
    /// The last `id:` seen on the stream, in this message or an earlier one
    /// (the spec's "last event ID").
    pub id: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The message reader over a response body.
pub(crate) struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    id: Option<String>,
    event: String,
    data: Option<String>,
    /// Named in errors.
    registry: String,
}

impl SseReader {
    /// Reads `resp`'s body as SSE; `registry` names the peer in errors.
    pub(crate) fn new(resp: reqwest::Response, registry: &str) -> Self {
        SseReader {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            id: None,
            event: String::new(),
            data: None,
            registry: registry.to_string(),
        }
    }

    /// The next message; `None` when the peer ended the stream (a message
    /// cut short by the end is dropped, as the spec says).
    pub(crate) async fn next(&mut self) -> Result<Option<SseMessage>, ClientError> {
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(m) = self.line(line)? {
                    return Ok(Some(m));
                }
            }
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(self.too_long("line"));
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
    }

    fn too_long(&self, what: &str) -> ClientError {
        ClientError::Protocol(format!(
            "{} sent an event stream {what} longer than {MAX_LINE_BYTES} bytes",
            self.registry
        ))
    }

    /// One line; the message when it ends one.
    fn line(&mut self, line: &str) -> Result<Option<SseMessage>, ClientError> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            // A message without data (comments, an id alone) is not dispatched.
            let Some(data) = self.data.take() else {
                return Ok(None);
            };
            return Ok(Some(SseMessage {
                event: if event.is_empty() {
                    "message".to_string()
                } else {
                    event
                },
                id: self.id.clone(),
                data,
            }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                let data = match self.data.as_mut() {
                    Some(d) => {
                        d.push('\n');
                        d
                    }
                    None => self.data.insert(String::new()),
                };
                data.push_str(value);
                if data.len() > MAX_LINE_BYTES {
                    return Err(self.too_long("message"));
                }
            }
            "event" => self.event = value.to_string(),
            // The spec ignores an id holding NUL; so do we.
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader whose body is `chunks`, as a peer might split them.
    fn reader(chunks: &[&str]) -> SseReader {
        let owned: Vec<reqwest::Result<bytes::Bytes>> = chunks
            .iter()
            .map(|c| Ok(bytes::Bytes::from(c.to_string())))
            .collect();
        SseReader {
            body: futures::stream::iter(owned).boxed(),
            buf: Vec::new(),
            id: None,
            event: String::new(),
            data: None,
            registry: "r".into(),
        }
    }

    fn msg(event: &str, id: Option<&str>, data: &str) -> SseMessage {
        SseMessage {
            event: event.into(),
            id: id.map(Into::into),
            data: data.into(),
        }
    }

    #[tokio::test]
    async fn fields_comments_and_split_chunks() {
        let mut r = reader(&[
            ": keep-alive\n\nevent: res",
            "ult\r\nid: 4\ndata: {\"a\":\ndata:1}\n\n",
            "id: 5\n\ndata: x\n\n",
            "event: diff\ndata: cut short",
        ]);
        assert_eq!(
            r.next().await.unwrap(),
            Some(msg("result", Some("4"), "{\"a\":\n1}"))
        );
        // An id alone dispatches nothing but is the last id from then on.
        assert_eq!(
            r.next().await.unwrap(),
            Some(msg("message", Some("5"), "x"))
        );
        assert_eq!(r.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_endless_line_is_refused() {
        let long = "data: ".to_string() + &"x".repeat(MAX_LINE_BYTES + 1);
        let mut r = reader(&[&long]);
        let e = r.next().await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }
}
