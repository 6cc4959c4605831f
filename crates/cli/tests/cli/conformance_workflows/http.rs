//! Requests and responses as reggie builds and reads them, and the suite's
//! parsing of tag lists, referrers indexes and error bodies.

use super::*;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;

/// A request as reggie builds it: a path (maybe with a raw query from a
/// Location), `SetQueryParam`s, headers and an optional body.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: BTreeMap<&'static str, String>,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Option<Vec<u8>>,
}

pub(super) fn req(method: Method, path: impl Into<String>) -> Req {
    Req {
        method,
        path: path.into(),
        query: BTreeMap::new(),
        headers: Vec::new(),
        body: None,
    }
}

impl Req {
    /// `SetQueryParam`.
    pub(super) fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.insert(k, v.into());
        self
    }

    /// `SetHeader`.
    pub(super) fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    /// `SetBody`.
    pub(super) fn body(mut self, b: &[u8]) -> Self {
        self.body = Some(b.to_vec());
        self
    }
}

/// A finished response.
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Resp {
    /// `resp.Header().Get(name)`: "" when absent.
    pub(super) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    }

    /// `GetRelativeLocation()`: drop scheme and host, keep the decoded path
    /// and the raw query ("" when the Location cannot be parsed).
    pub(super) fn relative_location(&self) -> String {
        let loc = self.header("Location");
        let mut rest = loc.as_str();
        if let Some(i) = rest.find('#') {
            rest = &rest[..i];
        }
        let scheme_end = rest.find(':').filter(|&i| {
            i > 0
                && rest[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest[..i].contains('/')
        });
        if let Some(i) = scheme_end {
            rest = &rest[i + 1..];
        }
        if let Some(auth) = rest.strip_prefix("//") {
            let end = auth.find(['/', '?']).unwrap_or(auth.len());
            rest = &auth[end..];
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let Some(mut out) = go_path_unescape(path) else {
            return String::new();
        };
        if !query.is_empty() {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    /// Status and the start of the body, for failure messages.
    pub(super) fn brief(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        format!("{} {}", self.status, body)
    }
}

/// A `tags/list` body as the suite reads it (`TagList`).
pub(super) fn parse_tag_list(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let obj = match &v {
        Value::Null => return Ok(vec![]),
        Value::Object(o) => o,
        other => return Err(format!("not an object: {other}")),
    };
    match obj.get("name") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(other) => return Err(format!("name is not a string: {other}")),
    }
    match obj.get("tags") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                other => Err(format!("tag is not a string: {other}")),
            })
            .collect(),
        Some(other) => Err(format!("tags is not an array: {other}")),
    }
}

/// `getTagList`: an empty list when the body does not parse.
pub(super) fn get_tag_list(body: &[u8]) -> Vec<String> {
    parse_tag_list(body).unwrap_or_default()
}

/// One descriptor of a referrers response.
pub(super) struct RefDesc {
    pub(super) digest: String,
    pub(super) annotations: BTreeMap<String, String>,
}

pub(super) fn want_str(v: Option<&Value>, what: &str) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{what} is not a string: {other}")),
    }
}

pub(super) fn want_int(v: Option<&Value>, what: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        Some(other) => Err(format!("{what} is not an integer: {other}")),
    }
}

pub(super) fn want_b64(v: Option<&Value>, what: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if b64_decode(s).is_some() => Ok(()),
        Some(other) => Err(format!("{what} is not base64: {other}")),
    }
}

pub(super) fn want_annotations(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| Ok((k.clone(), want_str(Some(v), "annotation value")?)))
            .collect(),
        Some(other) => Err(format!("annotations is not an object: {other}")),
    }
}

/// `json.Unmarshal` into the suite's `descriptor`.
pub(super) fn parse_descriptor(v: &Value) -> Result<RefDesc, String> {
    let o = match v {
        Value::Null => {
            return Ok(RefDesc {
                digest: String::new(),
                annotations: BTreeMap::new(),
            })
        }
        Value::Object(o) => o,
        other => return Err(format!("descriptor is not an object: {other}")),
    };
    want_str(o.get("mediaType"), "mediaType")?;
    let digest = want_str(o.get("digest"), "digest")?;
    want_int(o.get("size"), "size")?;
    want_str(o.get("artifactType"), "artifactType")?;
    want_b64(o.get("data"), "data")?;
    want_b64(o.get("newUnspecifiedField"), "newUnspecifiedField")?;
    match o.get("urls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for u in a {
                want_str(Some(u), "url")?;
            }
        }
        Some(other) => return Err(format!("urls is not an array: {other}")),
    }
    match o.get("platform") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => return Err(format!("platform is not an object: {other}")),
    }
    let annotations = want_annotations(o.get("annotations"))?;
    Ok(RefDesc {
        digest,
        annotations,
    })
}

/// `json.Unmarshal` into the suite's `index`; returns its `manifests`.
pub(super) fn parse_index(body: &[u8]) -> Result<Vec<RefDesc>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let o = match &v {
        Value::Null => return Ok(vec![]),
        Value::Object(o) => o,
        other => return Err(format!("index is not an object: {other}")),
    };
    want_int(o.get("schemaVersion"), "schemaVersion")?;
    want_str(o.get("mediaType"), "mediaType")?;
    want_str(o.get("artifactType"), "artifactType")?;
    want_annotations(o.get("annotations"))?;
    if let Some(sub) = o.get("subject") {
        parse_descriptor(sub)?;
    }
    match o.get("manifests") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(parse_descriptor).collect(),
        Some(other) => Err(format!("manifests is not an array: {other}")),
    }
}

/// `resp.Errors()`: the `errors` array's codes.
pub(super) fn parse_error_codes(body: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let o = match &v {
        Value::Null => return Ok(vec![]),
        Value::Object(o) => o,
        other => return Err(format!("error body is not an object: {other}")),
    };
    match o.get("errors") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| match e {
                Value::Object(eo) => {
                    want_str(eo.get("message"), "message")?;
                    want_str(eo.get("code"), "code")
                }
                Value::Null => Ok(String::new()),
                other => Err(format!("error is not an object: {other}")),
            })
            .collect(),
        Some(other) => Err(format!("errors is not an array: {other}")),
    }
}
