//! The OCI distribution-spec v1.1 conformance suite, replayed in Rust.
//!
//! The official suite (`opencontainers/distribution-spec/conformance`,
//! Ginkgo: `01_pull_test.go`, `02_push_test.go`, `03_discovery_test.go`,
//! `04_management_test.go`, test data from `setup.go`) cannot run here, so
//! this file sends the same requests, in the same order, against one shared
//! repository, and accepts exactly the status codes the suite accepts. State
//! carries over between the four workflows just as in the real run (tags are
//! overwritten, manifests and blobs are deleted by the teardowns).
//!
//! Like Ginkgo, a failed spec does not stop the run: every spec is recorded
//! (PASS / FAIL / SKIP on stderr) and the test fails at the end with the list
//! of failed specs. Environment as in a default run: all four workflows on,
//! setups on, `OCI_DELETE_MANIFEST_BEFORE_BLOBS` unset (manifests first),
//! `OCI_AUTOMATIC_CROSSMOUNT=1` (Pavilion mounts without `from`), `OCI_CROSSMOUNT_NAMESPACE` unset (a
//! brand-new `conformance-<uuid>` repository).
//!
//! Client behaviour copied from reggie/resty/Go net/http: Location headers
//! are followed by dropping scheme and host and keeping the (decoded) path
//! plus the raw query; query parameters are added with `url.Values.Encode`
//! (keys sorted, values query-escaped) and appended with `&` when the
//! Location already has a query; POST/PUT/PATCH without a body go out with
//! `Content-Length: 0`; a JSON-like `Content-Type` also becomes `Accept`;
//! connections are kept alive and reused, and only an idempotent body-less
//! request (GET/HEAD) is replayed when a reused connection proves dead.

use crate::common::*;

use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// Constants from setup.go
// ---------------------------------------------------------------------------

const CONFIG_MT: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MT: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCTET: &str = "application/octet-stream";
const USER_AGENT: &str = "distribution-spec-conformance-tests";
/// `OCI_NAMESPACE`: the one repository every workflow uses.
const NAMESPACE: &str = "myorg/myrepo";
const TEST_TAG_NAME: &str = "tagtest0";
const EMPTY_LAYER_TEST_TAG: &str = "emptylayer";
const NONEXISTENT_MANIFEST: &str = ".INVALID_MANIFEST_NAME";
const INVALID_MANIFEST_CONTENT: &[u8] = b"blablabla";
const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const ARTIFACT_TYPE_A: &str = "application/vnd.nhl.peanut.butter.bagel";
const ARTIFACT_TYPE_B: &str = "application/vnd.nba.strawberry.jam.croissant";
const ARTIFACT_TYPE_INDEX: &str = "application/vnd.food.stand";
const ANNOTATION_KEY: &str = "org.opencontainers.conformance.test";
const ARTIFACT_TYPE_FILTER: &str = "artifactType";
/// `layerBase64String`: a small gzip tarball.
const LAYER_BASE64: &str = concat!(
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0",
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD",
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA"
);
/// `errorCodes`: the codes a 400 body may carry.
const ERROR_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
];

// ---------------------------------------------------------------------------
// Spec bookkeeping (Ginkgo-like: a failed Expect ends that spec only)
// ---------------------------------------------------------------------------

/// Why a spec did not pass.
#[derive(Debug)]
enum Fail {
    /// `RunOnlyIf` / `RunOnlyIfNot` said no.
    Skipped(String),
    /// An `Expect` failed (or Go would have panicked).
    Failed(String),
}

type Spec = Result<(), Fail>;

/// `Expect(...)`: ends the spec with a failure when `cond` is false.
macro_rules! check {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(Fail::Failed(format!($($arg)+)));
        }
    };
}

/// `RunOnlyIf(cond)`.
macro_rules! run_only_if {
    ($cond:expr) => {
        if !$cond {
            return Err(Fail::Skipped("you have skipped this test.".to_string()));
        }
    };
}

/// One `g.Specify`: runs `$body` and records its outcome under `$name`.
macro_rules! spec {
    ($ctx:ident, $name:expr, $body:block) => {{
        #[allow(unreachable_code)]
        let outcome: Spec = async {
            $body
            Ok(())
        }
        .await;
        $ctx.record($name, outcome);
    }};
}

/// A response an earlier spec left behind, or a failure (where Go would dereference nil).
fn earlier<'a>(r: &'a Option<Resp>, missing: &str) -> Result<&'a Resp, Fail> {
    r.as_ref().ok_or_else(|| Fail::Failed(missing.to_string()))
}

fn is_2xx(s: u16) -> bool {
    (200..300).contains(&s)
}

// ---------------------------------------------------------------------------
// Randomness, base64, Go-compatible JSON and query encoding
// ---------------------------------------------------------------------------

/// xorshift64*, seeded from the clock.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 so that nearby seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }

    /// `randomString(n)` from setup.go's alphabet.
    fn string(&mut self, n: usize) -> String {
        const LETTERS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
        (0..n)
            .map(|_| LETTERS[(self.next() % LETTERS.len() as u64) as usize] as char)
            .collect()
    }

    /// A random UUID-shaped string (what `uuid.New()` prints).
    fn uuid(&mut self) -> String {
        let h = hex::encode(self.bytes(16));
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

fn time_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    t ^ (u64::from(std::process::id()) << 32)
}

/// `randomBlob(size, seed)`: reproducible random bytes.
fn random_blob(size: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(size)
}

/// Go's `base64.StdEncoding.DecodeString` (padding required; CR/LF ignored).
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s: Vec<u8> = s.bytes().filter(|c| *c != b'\r' && *c != b'\n').collect();
    if s.chunks(4).any(|c| c.len() != 4) {
        return None;
    }
    let mut out = Vec::new();
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                BASE64_ALPHABET.iter().position(|x| x == c)? as u32
            };
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Go's `url.QueryEscape`.
fn go_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-decoding as `url.Parse` does for `URL.Path`; None on a bad escape.
fn go_path_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON value with Go struct field order.
#[derive(Clone)]
enum J {
    S(String),
    N(i64),
    Null,
    A(Vec<J>),
    O(Vec<(&'static str, J)>),
}

/// Go's `json.MarshalIndent(v, "", "\t")`.
fn go_marshal_indent(v: &J) -> Vec<u8> {
    fn esc(s: &str) -> String {
        serde_json::to_string(s)
            .expect("string")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    }
    fn write(v: &J, depth: usize, out: &mut String) {
        let pad = |d: usize| "\t".repeat(d);
        match v {
            J::S(s) => out.push_str(&esc(s)),
            J::N(n) => out.push_str(&n.to_string()),
            J::Null => out.push_str("null"),
            J::A(items) if items.is_empty() => out.push_str("[]"),
            J::A(items) => {
                out.push_str("[\n");
                for (i, it) in items.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    write(it, depth + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push(']');
            }
            J::O(fields) if fields.is_empty() => out.push_str("{}"),
            J::O(fields) => {
                out.push_str("{\n");
                for (i, (k, it)) in fields.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    out.push_str(&esc(k));
                    out.push_str(": ");
                    write(it, depth + 1, out);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    write(v, 0, &mut out);
    out.into_bytes()
}

fn s(v: &str) -> J {
    J::S(v.to_string())
}

// ---------------------------------------------------------------------------
// Test data (setup.go `init()`)
// ---------------------------------------------------------------------------

/// `TestBlob`: content and digest.
#[derive(Clone)]
struct TestBlob {
    content: Vec<u8>,
    digest: String,
}

impl TestBlob {
    fn new(content: Vec<u8>) -> Self {
        let digest = sha256(&content);
        TestBlob { content, digest }
    }
}

/// `testBlobB` and its two chunks (`setupChunkedBlob`).
struct ChunkedBlob {
    blob: TestBlob,
    chunk1: Vec<u8>,
    chunk2: Vec<u8>,
    chunk1_range: String,
    chunk2_range: String,
}

impl ChunkedBlob {
    fn new(size: usize, seed: u64) -> Self {
        let blob = TestBlob::new(random_blob(size, seed));
        let split = size / 2 + 1;
        let chunk1 = blob.content[..split].to_vec();
        let chunk2 = blob.content[split..].to_vec();
        ChunkedBlob {
            chunk1_range: format!("0-{}", chunk1.len() - 1),
            chunk2_range: format!("{}-{}", chunk1.len(), size - 1),
            blob,
            chunk1,
            chunk2,
        }
    }
}

/// `descriptor`: `mediaType`, `digest`, `size`, `data` (omitempty) and the
/// always-present `newUnspecifiedField` (null when unset).
fn descriptor(
    media_type: &str,
    b: &TestBlob,
    data: Option<&[u8]>,
    unspecified: Option<&[u8]>,
) -> J {
    let mut f = vec![
        ("mediaType", s(media_type)),
        ("digest", s(&b.digest)),
        ("size", J::N(b.content.len() as i64)),
    ];
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        f.push(("data", J::S(base64(d))));
    }
    f.push((
        "newUnspecifiedField",
        unspecified.map_or(J::Null, |u| J::S(base64(u))),
    ));
    J::O(f)
}

fn annotations(value: Option<&str>) -> Option<J> {
    value.map(|v| J::O(vec![(ANNOTATION_KEY, s(v))]))
}

/// `manifest`: schemaVersion, mediaType?, artifactType?, config, layers,
/// subject?, annotations?.
fn manifest_json(
    media_type: Option<&str>,
    artifact_type: Option<&str>,
    config: J,
    layers: Vec<J>,
    subject: Option<J>,
    annotation: Option<&str>,
) -> TestBlob {
    let mut f = vec![("schemaVersion", J::N(2))];
    if let Some(m) = media_type {
        f.push(("mediaType", s(m)));
    }
    if let Some(a) = artifact_type {
        f.push(("artifactType", s(a)));
    }
    f.push(("config", config));
    f.push(("layers", J::A(layers)));
    if let Some(sub) = subject {
        f.push(("subject", sub));
    }
    if let Some(a) = annotations(annotation) {
        f.push(("annotations", a));
    }
    TestBlob::new(go_marshal_indent(&J::O(f)))
}

/// Everything `init()` generates; new random values every run.
struct Data {
    configs: Vec<TestBlob>,
    layer: TestBlob,
    manifests: Vec<TestBlob>,
    empty_layer_manifest: TestBlob,
    blob_a: TestBlob,
    blob_b: ChunkedBlob,
    empty_json: TestBlob,
    ref_blob_a: TestBlob,
    ref_blob_b: TestBlob,
    refs_a_config: TestBlob,
    refs_b_config: TestBlob,
    refs_a_layer: TestBlob,
    refs_b_layer: TestBlob,
    refs_c_layer: TestBlob,
    refs_index: TestBlob,
    /// `testAnnotationValues`: referrer digest → annotation value.
    annotation_values: HashMap<String, String>,
    dummy_digest: String,
}

impl Data {
    fn new(rng: &mut Rng, seed: u64) -> Self {
        // One config per workflow (and one for the referrers subject), each
        // with a random author so that digests are new every run.
        let configs: Vec<TestBlob> = (0..5)
            .map(|_| {
                let config = J::O(vec![
                    ("author", J::S(rng.string(16))),
                    ("architecture", s("amd64")),
                    ("os", s("linux")),
                    (
                        "rootfs",
                        J::O(vec![("type", s("layers")), ("diff_ids", J::A(vec![]))]),
                    ),
                ]);
                TestBlob::new(go_marshal_indent(&config))
            })
            .collect();
        let layer = TestBlob::new(b64_decode(LAYER_BASE64).expect("layer base64"));
        let layers = vec![descriptor(LAYER_MT, &layer, None, None)];
        let config_desc =
            |c: &TestBlob| descriptor(CONFIG_MT, c, Some(&c.content), Some(b"hello world"));
        let manifests: Vec<TestBlob> = configs
            .iter()
            .map(|c| {
                manifest_json(
                    Some(OCI_MANIFEST),
                    None,
                    config_desc(c),
                    layers.clone(),
                    None,
                    None,
                )
            })
            .collect();
        // No mediaType field and no layers.
        let empty_layer_manifest =
            manifest_json(None, None, config_desc(&configs[1]), vec![], None, None);

        let blob_a = TestBlob::new(random_blob(42, seed.wrapping_add(1)));
        let blob_b = ChunkedBlob::new(42, seed.wrapping_add(2));

        let empty_json = TestBlob::new(b"{}".to_vec());
        let empty_desc = descriptor(OCI_EMPTY, &empty_json, None, None);
        let ref_blob_a = TestBlob::new(b"NHL Peanut Butter on my NHL bagel".to_vec());
        let ref_blob_b = TestBlob::new(b"NBA Strawberry Jam on my NBA croissant".to_vec());
        let subject4 = descriptor(OCI_MANIFEST, &manifests[4], None, None);
        let subject3 = descriptor(OCI_MANIFEST, &manifests[3], None, None);

        // config.mediaType = artifact type; layers = [emptyJSON].
        let config_referrer = |artifact_type: &str, blob: &TestBlob, note: &str| {
            manifest_json(
                Some(OCI_MANIFEST),
                None,
                descriptor(artifact_type, blob, None, None),
                vec![empty_desc.clone()],
                Some(subject4.clone()),
                Some(note),
            )
        };
        // artifactType set; config = emptyJSON.
        let layer_referrer =
            |artifact_type: &str, blob: &TestBlob, subject: &J, note: Option<&str>| {
                manifest_json(
                    Some(OCI_MANIFEST),
                    Some(artifact_type),
                    empty_desc.clone(),
                    vec![descriptor(artifact_type, blob, None, None)],
                    Some(subject.clone()),
                    note,
                )
            };
        let refs_a_config = config_referrer(ARTIFACT_TYPE_A, &ref_blob_a, "test config a");
        let refs_b_config = config_referrer(ARTIFACT_TYPE_B, &ref_blob_b, "test config b");
        let refs_a_layer = layer_referrer(
            ARTIFACT_TYPE_A,
            &ref_blob_a,
            &subject4,
            Some("test layer a"),
        );
        let refs_b_layer = layer_referrer(
            ARTIFACT_TYPE_B,
            &ref_blob_b,
            &subject4,
            Some("test layer b"),
        );
        // Like B-layer, but on a subject that is never pushed, no annotations.
        let refs_c_layer = layer_referrer(ARTIFACT_TYPE_B, &ref_blob_b, &subject3, None);
        let mut idx = vec![
            ("schemaVersion", J::N(2)),
            ("mediaType", s(OCI_INDEX)),
            ("artifactType", s(ARTIFACT_TYPE_INDEX)),
            (
                "manifests",
                J::A(vec![
                    descriptor(OCI_MANIFEST, &refs_a_config, None, None),
                    descriptor(OCI_MANIFEST, &refs_a_layer, None, None),
                ]),
            ),
            ("subject", subject4),
        ];
        idx.push((
            "annotations",
            annotations(Some("test index")).expect("some"),
        ));
        let refs_index = TestBlob::new(go_marshal_indent(&J::O(idx)));

        let annotation_values = [
            (&refs_a_config, "test config a"),
            (&refs_b_config, "test config b"),
            (&refs_a_layer, "test layer a"),
            (&refs_b_layer, "test layer b"),
            (&refs_index, "test index"),
        ]
        .into_iter()
        .map(|(b, v)| (b.digest.clone(), v.to_string()))
        .collect();

        Data {
            configs,
            layer,
            manifests,
            empty_layer_manifest,
            blob_a,
            blob_b,
            empty_json,
            ref_blob_a,
            ref_blob_b,
            refs_a_config,
            refs_b_config,
            refs_a_layer,
            refs_b_layer,
            refs_c_layer,
            refs_index,
            annotation_values,
            dummy_digest: sha256(b"hello world"),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP: reggie-like requests and responses
// ---------------------------------------------------------------------------

/// A request as reggie builds it: a path (maybe with a raw query from a
/// Location), `SetQueryParam`s, headers and an optional body.
struct Req {
    method: Method,
    path: String,
    query: BTreeMap<&'static str, String>,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

fn req(method: Method, path: impl Into<String>) -> Req {
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
    fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.insert(k, v.into());
        self
    }

    /// `SetHeader`.
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    /// `SetBody`.
    fn body(mut self, b: &[u8]) -> Self {
        self.body = Some(b.to_vec());
        self
    }
}

/// A finished response.
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    /// `resp.Header().Get(name)`: "" when absent.
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    }

    /// `GetRelativeLocation()`: drop scheme and host, keep the decoded path
    /// and the raw query ("" when the Location cannot be parsed).
    fn relative_location(&self) -> String {
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
    fn brief(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        format!("{} {}", self.status, body)
    }
}

/// A `tags/list` body as the suite reads it (`TagList`).
fn parse_tag_list(body: &[u8]) -> Result<Vec<String>, String> {
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
fn get_tag_list(body: &[u8]) -> Vec<String> {
    parse_tag_list(body).unwrap_or_default()
}

/// One descriptor of a referrers response.
struct RefDesc {
    digest: String,
    annotations: BTreeMap<String, String>,
}

fn want_str(v: Option<&Value>, what: &str) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{what} is not a string: {other}")),
    }
}

fn want_int(v: Option<&Value>, what: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        Some(other) => Err(format!("{what} is not an integer: {other}")),
    }
}

fn want_b64(v: Option<&Value>, what: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if b64_decode(s).is_some() => Ok(()),
        Some(other) => Err(format!("{what} is not base64: {other}")),
    }
}

fn want_annotations(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
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
fn parse_descriptor(v: &Value) -> Result<RefDesc, String> {
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
fn parse_index(body: &[u8]) -> Result<Vec<RefDesc>, String> {
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
fn parse_error_codes(body: &[u8]) -> Result<Vec<String>, String> {
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

// ---------------------------------------------------------------------------
// The run context
// ---------------------------------------------------------------------------

struct Ctx {
    backend: &'static str,
    /// `OCI_ROOT_URL`.
    base: String,
    http: reqwest::Client,
    /// `OCI_NAMESPACE`.
    name: String,
    /// `conformance-<uuid>`.
    crossmount: String,
    d: Data,
    seed: u64,
    /// `OCI_AUTOMATIC_CROSSMOUNT` is set at all (it is).
    run_automatic_crossmount_test: bool,
    /// Its boolean value.
    automatic_crossmount_enabled: bool,
    results: Vec<(String, Spec)>,
    /// The previous exchange, to explain transport errors on a reused
    /// keep-alive connection.
    previous: std::sync::Mutex<String>,
}

impl Ctx {
    fn new(backend: &'static str, s: &Server) -> Self {
        let seed = time_seed();
        let mut rng = Rng::new(seed);
        let d = Data::new(&mut rng, seed);
        let crossmount = format!("conformance-{}", rng.uuid());
        // OCI_AUTOMATIC_CROSSMOUNT=1: LookupEnv says "set", and the value
        // parses as true (the registry mounts without `from`).
        Ctx {
            backend,
            base: s.url(""),
            http: client(),
            name: NAMESPACE.to_string(),
            crossmount,
            d,
            seed,
            run_automatic_crossmount_test: true,
            automatic_crossmount_enabled: true,
            results: Vec::new(),
            previous: std::sync::Mutex::new(String::new()),
        }
    }

    /// `/v2/<name>/<tail>`.
    fn p(&self, tail: &str) -> String {
        format!("/v2/{}/{}", self.name, tail)
    }

    /// `client.Do` of a body-less `method` request to `/v2/<name>/<tail>`.
    async fn call(&self, method: Method, tail: &str) -> Result<Resp, Fail> {
        self.send(req(method, self.p(tail))).await
    }

    /// `client.Do(req)`.
    async fn send(&self, r: Req) -> Result<Resp, Fail> {
        let mut url = format!("{}{}", self.base, r.path);
        if !r.query.is_empty() {
            let enc: Vec<String> = r
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", go_query_escape(k), go_query_escape(v)))
                .collect();
            match url.split_once('?') {
                Some((_, q)) if !q.trim().is_empty() => url.push('&'),
                Some(_) => {}
                None => url.push('?'),
            }
            url.push_str(&enc.join("&"));
        }
        let mut rb = self
            .http
            .request(r.method.clone(), &url)
            .header("User-Agent", USER_AGENT);
        let mut has_accept = false;
        let mut content_type = None;
        for (k, v) in &r.headers {
            has_accept |= k.eq_ignore_ascii_case("accept");
            if k.eq_ignore_ascii_case("content-type") {
                content_type = Some(v.clone());
            }
            rb = rb.header(*k, v);
        }
        // resty: a JSON Content-Type without Accept also becomes Accept.
        if let Some(ct) = content_type.filter(|ct| !has_accept && ct.ends_with("json")) {
            rb = rb.header("Accept", ct);
        }
        let needs_body = [Method::POST, Method::PUT, Method::PATCH].contains(&r.method);
        match &r.body {
            Some(b) => rb = rb.body(b.clone()),
            // Go writes `Content-Length: 0` for a body-less POST/PUT/PATCH.
            None if needs_body => rb = rb.header("Content-Length", "0"),
            None => {}
        }
        // Go's transport replays an idempotent body-less request (GET, HEAD)
        // once when a reused keep-alive connection turns out to be dead.
        let replayable = r.body.is_none() && [Method::GET, Method::HEAD].contains(&r.method);
        let retry = rb.try_clone().filter(|_| replayable);
        let resp = match (rb.send().await, retry) {
            (Ok(resp), _) => resp,
            (Err(e), Some(retry)) if e.is_request() => {
                eprintln!(
                    "[{}] note: {} {url} failed on a reused connection ({e:?}); replaying it as Go does",
                    self.backend, r.method
                );
                retry
                    .send()
                    .await
                    .map_err(|e| self.transport_error(&r.method, &url, &e))?
            }
            (Err(e), _) => return Err(self.transport_error(&r.method, &url, &e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Fail::Failed(format!("{} {url}: reading body: {e}", r.method)))?
            .to_vec();
        if let Ok(mut p) = self.previous.lock() {
            *p = format!(
                "{} {url} (request body {} bytes) -> {status}, Connection: {:?}",
                r.method,
                r.body.as_ref().map_or(0, Vec::len),
                headers
                    .get("connection")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            );
        }
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// A transport failure, with the exchange that preceded it on the pool.
    fn transport_error(&self, method: &Method, url: &str, e: &reqwest::Error) -> Fail {
        let previous = self.previous.lock().map(|p| p.clone()).unwrap_or_default();
        Fail::Failed(format!(
            "{method} {url}: transport error: {e:?}; previous exchange: {previous} \
             (a server that answers early without reading the body and then closes the \
             keep-alive connection without `Connection: close` makes the next request fail)"
        ))
    }

    /// The setups' blob upload: POST, then PUT `<location>?digest=` with the
    /// body; any 2xx passes.
    async fn setup_upload(&self, step: &str, blob: &TestBlob) -> Spec {
        let r = self
            .send(req(Method::POST, self.p("blobs/uploads/")))
            .await?;
        let r = self
            .send(
                req(Method::PUT, r.relative_location())
                    .query("digest", blob.digest.clone())
                    .header("Content-Type", OCTET)
                    .body(&blob.content),
            )
            .await?;
        check!(
            is_2xx(r.status),
            "{step}: PUT upload of {} must be 2xx, got {}",
            blob.digest,
            r.brief()
        );
        Ok(())
    }

    /// `PUT /v2/<name>/manifests/<reference>`.
    async fn put_manifest(
        &self,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Resp, Fail> {
        self.send(
            req(Method::PUT, self.p(&format!("manifests/{reference}")))
                .header("Content-Type", content_type)
                .body(body),
        )
        .await
    }

    /// `DELETE /v2/<name>/<kind>/<reference>`; `ok` decides the accepted codes.
    async fn delete(
        &self,
        step: &str,
        kind: &str,
        reference: &str,
        ok: fn(u16) -> bool,
        accepted: &str,
    ) -> Spec {
        let r = self
            .send(req(Method::DELETE, self.p(&format!("{kind}/{reference}"))))
            .await?;
        check!(
            ok(r.status),
            "{step}: DELETE {kind}/{reference} must be {accepted}, got {}",
            r.brief()
        );
        Ok(())
    }

    fn record(&mut self, name: &str, outcome: Spec) {
        match &outcome {
            Ok(()) => eprintln!("[{}] PASS  {name}", self.backend),
            Err(Fail::Skipped(why)) => eprintln!("[{}] SKIP  {name} ({why})", self.backend),
            Err(Fail::Failed(msg)) => eprintln!("[{}] FAIL  {name}\n        {msg}", self.backend),
        }
        self.results.push((name.to_string(), outcome));
    }
}

/// `Docker-Content-Digest`, when the response carries one, must be `want`.
fn check_content_digest(step: &str, r: &Resp, want: &str) -> Spec {
    let h = r.header("Docker-Content-Digest");
    check!(
        h.is_empty() || h == want,
        "{step}: Docker-Content-Digest (when present) must be {want}, got {h}"
    );
    Ok(())
}

fn ok_2xx_405(s: u16) -> bool {
    is_2xx(s) || s == 405
}

fn ok_2xx_404_405(s: u16) -> bool {
    is_2xx(s) || s == 404 || s == 405
}

// ---------------------------------------------------------------------------
// 01_pull_test.go
// ---------------------------------------------------------------------------

async fn pull_workflow(ctx: &mut Ctx) {
    let run_pull_setup = true;
    let mut tag = String::new();

    // Setup.
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test blob (configs[0])",
        {
            run_only_if!(run_pull_setup);
            ctx.setup_upload("Pull setup", &ctx.d.configs[0]).await?;
        }
    );
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test blob (configs[1])",
        {
            run_only_if!(run_pull_setup);
            ctx.setup_upload("Pull setup", &ctx.d.configs[1]).await?;
        }
    );
    spec!(ctx, "Pull/Setup: Populate registry with test layer", {
        run_only_if!(run_pull_setup);
        ctx.setup_upload("Pull setup", &ctx.d.layer).await?;
    });
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test manifest (tag)",
        {
            run_only_if!(run_pull_setup);
            tag = TEST_TAG_NAME.to_string();
            let r = ctx
                .put_manifest(&tag, OCI_MANIFEST, &ctx.d.manifests[0].content)
                .await?;
            check!(
                is_2xx(r.status),
                "Pull setup: PUT manifests/{tag} (manifests[0]) must be 2xx, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Pull/Setup: Populate registry with test manifest (digest)",
        {
            run_only_if!(run_pull_setup);
            let m = &ctx.d.manifests[1];
            let r = ctx
                .put_manifest(&m.digest, OCI_MANIFEST, &m.content)
                .await?;
            check!(
                is_2xx(r.status),
                "Pull setup: PUT manifests/<manifests[1] digest> must be 2xx, got {}",
                r.brief()
            );
        }
    );
    spec!(ctx, "Pull/Setup: Get tag name from environment", {
        run_only_if!(!run_pull_setup);
    });

    // Pull blobs.
    spec!(
        ctx,
        "Pull/P1: HEAD request to nonexistent blob should result in 404 response",
        {
            let r = ctx
                .call(Method::HEAD, &format!("blobs/{}", ctx.d.dummy_digest))
                .await?;
            check!(
                r.status == 404,
                "P1: HEAD of a nonexistent blob must be exactly 404, got {}",
                r.status
            );
        }
    );
    spec!(
        ctx,
        "Pull/P2: HEAD request to existing blob should yield 200",
        {
            let d = &ctx.d.configs[0].digest;
            let r = ctx.call(Method::HEAD, &format!("blobs/{d}")).await?;
            check!(
                r.status == 200,
                "P2: HEAD of configs[0] must be exactly 200, got {}",
                r.status
            );
            check_content_digest("P2", &r, d)?;
        }
    );
    spec!(
        ctx,
        "Pull/P3: GET nonexistent blob should result in 404 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.dummy_digest))
                .await?;
            check!(
                r.status == 404,
                "P3: GET of a nonexistent blob must be 404, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Pull/P4: GET request to existing blob URL should yield 200",
        {
            let d = &ctx.d.configs[0].digest;
            let r = ctx.call(Method::GET, &format!("blobs/{d}")).await?;
            check!(
                r.status == 200,
                "P4: GET of configs[0] must be 200, got {}",
                r.brief()
            );
        }
    );

    // Pull manifests.
    spec!(
        ctx,
        "Pull/P5: HEAD request to nonexistent manifest should return 404",
        {
            let r = ctx
                .call(Method::HEAD, &format!("manifests/{NONEXISTENT_MANIFEST}"))
                .await?;
            check!(
                r.status == 404,
                "P5: HEAD manifests/{NONEXISTENT_MANIFEST} must be exactly 404, got {}",
                r.status
            );
        }
    );
    for (i, step) in [(0usize, "P6"), (1, "P7")] {
        let name = format!(
            "Pull/{step}: HEAD request to manifest[{i}] path (digest) should yield 200 response"
        );
        spec!(ctx, &name, {
            let d = &ctx.d.manifests[i].digest;
            let r = ctx
                .send(
                    req(Method::HEAD, ctx.p(&format!("manifests/{d}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "{step}: HEAD manifests[{i}] by digest must be 200, got {}",
                r.status
            );
            check_content_digest(step, &r, d)?;
        });
    }
    spec!(
        ctx,
        "Pull/P8: HEAD request to manifest path (tag) should yield 200 response",
        {
            check!(!tag.is_empty(), "P8: tag must not be empty");
            let r = ctx
                .send(
                    req(Method::HEAD, ctx.p(&format!("manifests/{tag}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "P8: HEAD manifests/{tag} must be 200, got {}",
                r.status
            );
            check_content_digest("P8", &r, &ctx.d.manifests[0].digest)?;
        }
    );
    spec!(
        ctx,
        "Pull/P9: GET nonexistent manifest should return 404",
        {
            let r = ctx
                .call(Method::GET, &format!("manifests/{NONEXISTENT_MANIFEST}"))
                .await?;
            check!(
                r.status == 404,
                "P9: GET manifests/{NONEXISTENT_MANIFEST} must be 404, got {}",
                r.brief()
            );
        }
    );
    for i in 0..2usize {
        let name = format!(
            "Pull/P10: GET request to manifest[{i}] path (digest) should yield 200 response"
        );
        spec!(ctx, &name, {
            let d = &ctx.d.manifests[i].digest;
            let r = ctx
                .send(
                    req(Method::GET, ctx.p(&format!("manifests/{d}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "P10: GET manifests[{i}] by digest must be 200, got {}",
                r.brief()
            );
        });
    }
    spec!(
        ctx,
        "Pull/P10: GET request to manifest path (tag) should yield 200 response",
        {
            check!(!tag.is_empty(), "P10: tag must not be empty");
            let r = ctx
                .send(
                    req(Method::GET, ctx.p(&format!("manifests/{tag}")))
                        .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "P10: GET manifests/{tag} must be 200, got {}",
                r.brief()
            );
        }
    );

    // Error codes.
    spec!(
        ctx,
        "Pull/P11: 400 response body should contain OCI-conforming JSON message",
        {
            let r = ctx
                .send(
                    req(Method::GET, ctx.p("manifests/sha256:totallywrong"))
                        .header("Content-Type", OCI_MANIFEST)
                        .body(INVALID_MANIFEST_CONTENT),
                )
                .await?;
            check!(
                r.status == 400 || r.status == 404,
                "P11: GET manifests/sha256:totallywrong (with a body) must be 400 or 404, got {}",
                r.brief()
            );
            if r.status == 400 {
                let codes = parse_error_codes(&r.body);
                check!(
                    codes.is_ok(),
                    "P11: 400 body must parse as OCI errors: {:?} ({})",
                    codes.err(),
                    r.brief()
                );
                let codes = codes.unwrap_or_default();
                check!(
                    !codes.is_empty(),
                    "P11: 400 body must list at least one error: {}",
                    r.brief()
                );
                check!(
                    ERROR_CODES.contains(&codes[0].as_str()),
                    "P11: errors[0].code {:?} is not an OCI error code",
                    codes[0]
                );
            }
        }
    );

    // Teardown (OCI_DELETE_MANIFEST_BEFORE_BLOBS=true: manifests first).
    for i in 0..2usize {
        let name = format!("Pull/Teardown: Delete manifest[{i}] created in setup");
        spec!(ctx, &name, {
            run_only_if!(run_pull_setup);
            ctx.delete(
                "Pull teardown",
                "manifests",
                &ctx.d.manifests[i].digest,
                ok_2xx_405,
                "2xx or 405",
            )
            .await?;
        });
    }
    for (label, blob) in [
        ("config[0] blob", ctx.d.configs[0].digest.clone()),
        ("config[1] blob", ctx.d.configs[1].digest.clone()),
        ("layer blob", ctx.d.layer.digest.clone()),
    ] {
        let name = format!("Pull/Teardown: Delete {label} created in setup");
        spec!(ctx, &name, {
            run_only_if!(run_pull_setup);
            ctx.delete(
                "Pull teardown",
                "blobs",
                &blob,
                ok_2xx_404_405,
                "2xx, 404 or 405",
            )
            .await?;
        });
    }
}

// ---------------------------------------------------------------------------
// 02_push_test.go
// ---------------------------------------------------------------------------

async fn push_workflow(ctx: &mut Ctx) {
    let run_push_setup = true;
    let mut last_response: Option<Resp> = None;
    let mut prev_response: Option<Resp> = None;
    let mut empty_layer_manifest_ref = String::new();

    // Blob Upload Streamed.
    spec!(
        ctx,
        "Push/Streamed S1+S2: PATCH request with blob in body should yield 202 response",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                !r.header("Location").is_empty(),
                "S1: POST uploads must return a Location ({})",
                r.brief()
            );
            let r = ctx
                .send(
                    req(Method::PATCH, r.relative_location())
                        .header("Content-Type", OCTET)
                        .body(&ctx.d.blob_a.content),
                )
                .await?;
            check!(
                r.status == 202,
                "S2: streamed PATCH (no Content-Range) must be exactly 202, got {}",
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Streamed S3: PUT request to session URL with digest should yield 201 response",
        {
            let last = earlier(&last_response, "S3: lastResponse must not be nil")?;
            let r = ctx
                .send(
                    req(Method::PUT, last.relative_location())
                        .query("digest", ctx.d.blob_a.digest.clone())
                        .header("Content-Type", OCTET),
                )
                .await?;
            check!(
                r.status == 201,
                "S3: closing PUT (empty body) must be exactly 201, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "S3: closing PUT must return a Location"
            );
        }
    );

    // Blob Upload Monolithic.
    spec!(
        ctx,
        "Push/Monolithic M1: GET nonexistent blob should result in 404 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.dummy_digest))
                .await?;
            check!(
                r.status == 404,
                "M1: GET of a nonexistent blob must be 404, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M2: POST request with digest and blob should yield a 201 or 202",
        {
            let c = &ctx.d.configs[1];
            let r = ctx
                .send(
                    req(Method::POST, ctx.p("blobs/uploads/"))
                        .header("Content-Type", OCTET)
                        .query("digest", c.digest.clone())
                        .body(&c.content),
                )
                .await?;
            check!(
                !r.header("Location").is_empty(),
                "M2: single POST must return a Location ({})",
                r.brief()
            );
            check!(
                r.status == 201 || r.status == 202,
                "M2: single POST with digest must be 201 or 202, got {}",
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(ctx, "Push/Monolithic M3: GET request to blob URL from prior request should yield 200 or 404 based on response code", {
        let last = earlier(&last_response, "M3: lastResponse must not be nil")?;
        let r = ctx.call(Method::GET, &format!("blobs/{}", ctx.d.configs[1].digest)).await?;
        if last.status == 202 {
            check!(r.status == 404, "M3: single POST answered 202, so GET configs[1] must be 404, got {}", r.status);
        } else {
            check!(r.status == 200, "M3: single POST answered {}, so GET configs[1] must be 200, got {}", last.status, r.status);
        }
    });
    spec!(
        ctx,
        "Push/Monolithic M4: POST request should yield a session ID",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                r.status == 202,
                "M4: POST uploads must be exactly 202, got {}",
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M5: PUT upload of a blob should yield a 201 Response",
        {
            let last = earlier(&last_response, "M5: lastResponse is nil (Go would panic)")?;
            let c = &ctx.d.configs[1];
            let r = ctx
                .send(
                    req(Method::PUT, last.relative_location())
                        .header("Content-Type", OCTET)
                        .query("digest", c.digest.clone())
                        .body(&c.content),
                )
                .await?;
            check!(
                !r.header("Location").is_empty(),
                "M5: monolithic PUT must return a Location ({})",
                r.brief()
            );
            check!(
                r.status == 201,
                "M5: monolithic PUT must be exactly 201, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M6: GET request to existing blob should yield 200 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.configs[1].digest))
                .await?;
            check!(
                r.status == 200,
                "M6: GET configs[1] must be 200, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M7: PUT upload of a layer blob should yield a 201 Response",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            let l = &ctx.d.layer;
            let r = ctx
                .send(
                    req(Method::PUT, r.relative_location())
                        .header("Content-Type", OCTET)
                        .query("digest", l.digest.clone())
                        .body(&l.content),
                )
                .await?;
            check!(
                !r.header("Location").is_empty(),
                "M7: layer PUT must return a Location ({})",
                r.brief()
            );
            check!(
                r.status == 201,
                "M7: layer PUT must be exactly 201, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Monolithic M8: GET request to existing layer should yield 200 response",
        {
            let r = ctx
                .call(Method::GET, &format!("blobs/{}", ctx.d.layer.digest))
                .await?;
            check!(
                r.status == 200,
                "M8: GET layer must be 200, got {}",
                r.brief()
            );
        }
    );

    // Blob Upload Chunked.
    spec!(
        ctx,
        "Push/Chunked C1+C2: Out-of-order blob upload should return 416",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                !r.header("Location").is_empty(),
                "C1: POST uploads must return a Location ({})",
                r.brief()
            );
            let min = r.header("OCI-Chunk-Min-Length");
            if !min.is_empty() {
                let parsed = min.parse::<i64>();
                check!(
                    parsed.is_ok(),
                    "C1: OCI-Chunk-Min-Length {min:?} must be an integer"
                );
                let min = parsed.unwrap_or_default();
                if min > ctx.d.blob_b.chunk1.len() as i64 {
                    ctx.d.blob_b =
                        ChunkedBlob::new((min * 2 - 2) as usize, ctx.seed.wrapping_add(2));
                }
            }
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, r.relative_location())
                        .header("Content-Type", OCTET)
                        .header("Content-Range", b.chunk2_range.clone())
                        .body(&b.chunk2),
                )
                .await?;
            check!(
            r.status == 416,
            "C2: PATCH of chunk2 (Content-Range {}) on a fresh session must be exactly 416, got {}",
            b.chunk2_range,
            r.brief()
        );
        }
    );
    spec!(
        ctx,
        "Push/Chunked C3: PATCH request with first chunk should return 202",
        {
            let r = ctx.call(Method::POST, "blobs/uploads/").await?;
            check!(
                !r.header("Location").is_empty(),
                "C3: POST uploads must return a Location ({})",
                r.brief()
            );
            let loc = r.relative_location();
            prev_response = Some(r);
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, loc)
                        .header("Content-Type", OCTET)
                        .header("Content-Range", b.chunk1_range.clone())
                        .body(&b.chunk1),
                )
                .await?;
            check!(
                r.status == 202,
                "C3: PATCH of chunk1 must be exactly 202, got {}",
                r.brief()
            );
            let range = r.header("Range");
            check!(
                range == b.chunk1_range,
                "C3: Range after chunk1 must be exactly {:?}, got {range:?}",
                b.chunk1_range
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Chunked C4: Retry previous blob chunk should return 416",
        {
            let prev = earlier(&prev_response, "C4: prevResponse is nil (Go would panic)")?;
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, prev.relative_location())
                        .header("Content-Type", OCTET)
                        .header("Content-Range", b.chunk1_range.clone())
                        .body(&b.chunk1),
                )
                .await?;
            check!(
                r.status == 416,
                "C4: re-sent chunk on stale URL must be 416, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Chunked C5: Get on stale blob upload should return 204 with a range and location",
        {
            let prev = earlier(&prev_response, "C5: prevResponse is nil (Go would panic)")?;
            let r = ctx.send(req(Method::GET, prev.relative_location())).await?;
            check!(
                r.status == 204,
                "C5: GET on the stale upload URL must be exactly 204, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "C5: upload status must carry a Location"
            );
            let range = r.header("Range");
            check!(
                range == ctx.d.blob_b.chunk1_range,
                "C5: upload status Range must be exactly {:?}, got {range:?}",
                ctx.d.blob_b.chunk1_range
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Chunked C6: PATCH request with second chunk should return 202",
        {
            let last = earlier(&last_response, "C6: lastResponse is nil (Go would panic)")?;
            let b = &ctx.d.blob_b;
            let r = ctx
                .send(
                    req(Method::PATCH, last.relative_location())
                        .header("Content-Range", b.chunk2_range.clone())
                        .header("Content-Type", OCTET)
                        .body(&b.chunk2),
                )
                .await?;
            check!(
                r.status == 202,
                "C6: PATCH of chunk2 must be exactly 202, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "C6: PATCH of chunk2 must return a Location"
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Chunked C7: PUT request with digest should return 201",
        {
            let last = earlier(&last_response, "C7: lastResponse is nil (Go would panic)")?;
            let r = ctx
                .send(
                    req(Method::PUT, last.relative_location())
                        .header("Content-Type", OCTET)
                        .query("digest", ctx.d.blob_b.blob.digest.clone()),
                )
                .await?;
            check!(
                r.status == 201,
                "C7: closing PUT of the chunked upload must be exactly 201, got {}",
                r.brief()
            );
            check!(
                !r.header("Location").is_empty(),
                "C7: closing PUT must return a Location"
            );
        }
    );

    // Cross-Repository Blob Mount.
    let x = ctx.crossmount.clone();
    spec!(
        ctx,
        "Push/Mount X1: Cross-mounting of a blob without the from argument should yield session id",
        {
            let r = ctx
                .send(
                    req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                        .query("mount", ctx.d.dummy_digest.clone()),
                )
                .await?;
            check!(
            r.status == 202,
            "X1: POST /v2/{x}/blobs/uploads/?mount=<unknown> (no from) must be exactly 202, got {}",
            r.brief()
        );
            check!(
                !r.header("Location").is_empty(),
                "X1: the 202 must carry a Location"
            );
        }
    );
    spec!(
        ctx,
        "Push/Mount X2: POST request to mount another repository's blob should return 201 or 202",
        {
            let r = ctx
                .send(
                    req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                        .query("mount", ctx.d.blob_a.digest.clone())
                        .query("from", ctx.name.clone()),
                )
                .await?;
            check!(
                r.status == 201 || r.status == 202,
                "X2: mount of testBlobA from {} must be 201 or 202, got {}",
                ctx.name,
                r.brief()
            );
            last_response = Some(r);
        }
    );
    spec!(
        ctx,
        "Push/Mount X3: GET request to test digest within cross-mount namespace should return 200",
        {
            let last = earlier(&last_response, "X3: lastResponse is nil (Go would panic)")?;
            run_only_if!(last.status == 201);
            let want = format!("/v2/{x}/blobs/{}", ctx.d.blob_a.digest);
            let got = last.relative_location();
            check!(
                got == want,
                "X3: 201 mount Location must be exactly {want:?}, got {got:?}"
            );
            let r = ctx.send(req(Method::GET, got)).await?;
            check!(
                r.status == 200,
                "X3: GET of the mounted blob must be 200, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Mount X4: Cross-mounting of nonexistent blob should yield session id",
        {
            let last = earlier(&last_response, "X4: lastResponse is nil (Go would panic)")?;
            run_only_if!(last.status == 202);
            let prefix = format!("/v2/{x}/blobs/uploads/");
            let got = last.relative_location();
            check!(
                got.starts_with(&prefix),
                "X4: 202 mount Location must start with {prefix:?}, got {got:?}"
            );
        }
    );
    spec!(ctx, "Push/Mount X5: Cross-mounting without from, and automatic content discovery enabled should return a 201", {
        run_only_if!(ctx.run_automatic_crossmount_test);
        let last = earlier(&last_response, "X5: lastResponse is nil (Go would panic)")?;
        run_only_if!(last.status == 201);
        run_only_if!(ctx.automatic_crossmount_enabled);
        let r = ctx
            .send(
                req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                    .query("mount", ctx.d.blob_a.digest.clone()),
            )
            .await?;
        check!(r.status == 201, "X5: automatic cross-mount must be exactly 201, got {}", r.brief());
    });
    spec!(ctx, "Push/Mount X6: Cross-mounting without from, and automatic content discovery disabled should return a 202", {
        run_only_if!(ctx.run_automatic_crossmount_test);
        let last = earlier(&last_response, "X6: lastResponse is nil (Go would panic)")?;
        run_only_if!(last.status == 201);
        run_only_if!(!ctx.automatic_crossmount_enabled);
        let r = ctx
            .send(
                req(Method::POST, format!("/v2/{x}/blobs/uploads/"))
                    .query("mount", ctx.d.blob_a.digest.clone()),
            )
            .await?;
        check!(r.status == 202, "X6: mount without from (automatic off) must be exactly 202, got {}", r.brief());
    });

    // Manifest Upload.
    spec!(
        ctx,
        "Push/Manifest U1: GET nonexistent manifest should return 404",
        {
            let r = ctx
                .call(Method::GET, &format!("manifests/{NONEXISTENT_MANIFEST}"))
                .await?;
            check!(
                r.status == 404,
                "U1: GET manifests/{NONEXISTENT_MANIFEST} must be 404, got {}",
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Push/Manifest U2: PUT should accept a manifest upload",
        {
            for i in 0..4 {
                let tag = format!("test{i}");
                let r = ctx
                    .put_manifest(&tag, OCI_MANIFEST, &ctx.d.manifests[1].content)
                    .await?;
                check!(
                    !r.header("Location").is_empty(),
                    "U2: PUT manifests/{tag} must return a Location ({})",
                    r.brief()
                );
                check!(
                    r.status == 201,
                    "U2: PUT manifests/{tag} must be exactly 201, got {}",
                    r.brief()
                );
            }
        }
    );
    spec!(
        ctx,
        "Push/Manifest U3: Registry should accept a manifest upload with no layers",
        {
            let r = ctx
                .put_manifest(
                    EMPTY_LAYER_TEST_TAG,
                    OCI_MANIFEST,
                    &ctx.d.empty_layer_manifest.content,
                )
                .await?;
            if r.status == 201 {
                let location = r.header("Location");
                empty_layer_manifest_ref = location.clone();
                check!(
                    !location.is_empty(),
                    "U3: 201 for the empty-layer manifest must carry a Location"
                );
            } else {
                eprintln!(
                    "[{}] WARNING: image manifest with no layers is not supported ({})",
                    ctx.backend,
                    r.brief()
                );
            }
        }
    );
    spec!(
        ctx,
        "Push/Manifest U4: GET request to manifest URL (digest) should yield 200 response",
        {
            let r = ctx
                .send(
                    req(
                        Method::GET,
                        ctx.p(&format!("manifests/{}", ctx.d.manifests[1].digest)),
                    )
                    .header("Accept", OCI_MANIFEST),
                )
                .await?;
            check!(
                r.status == 200,
                "U4: GET manifests[1] by digest must be 200, got {}",
                r.brief()
            );
        }
    );

    // Teardown (manifests first).
    spec!(ctx, "Push/Teardown: Delete manifest created in tests", {
        run_only_if!(run_push_setup);
        ctx.delete(
            "Push teardown",
            "manifests",
            &ctx.d.manifests[1].digest,
            ok_2xx_405,
            "2xx or 405",
        )
        .await?;
        if !empty_layer_manifest_ref.is_empty() {
            ctx.delete(
                "Push teardown",
                "manifests",
                &ctx.d.empty_layer_manifest.digest,
                ok_2xx_405,
                "2xx or 405",
            )
            .await?;
        }
    });
    spec!(ctx, "Push/Teardown: Delete config blob created in tests", {
        run_only_if!(run_push_setup);
        ctx.delete(
            "Push teardown",
            "blobs",
            &ctx.d.configs[1].digest,
            ok_2xx_404_405,
            "2xx, 404 or 405",
        )
        .await?;
    });
    spec!(ctx, "Push/Teardown: Delete layer blob created in setup", {
        run_only_if!(run_push_setup);
        ctx.delete(
            "Push teardown",
            "blobs",
            &ctx.d.layer.digest,
            ok_2xx_404_405,
            "2xx, 404 or 405",
        )
        .await?;
    });
}

// ---------------------------------------------------------------------------
// 03_discovery_test.go
// ---------------------------------------------------------------------------

/// Checks one referrers response's status, Content-Type and body shape.
fn referrers_body(step: &str, r: &Resp) -> Result<Vec<RefDesc>, Fail> {
    check!(
        r.status == 200,
        "{step}: GET referrers must be 200, got {}",
        r.brief()
    );
    let ct = r.header("Content-Type");
    check!(
        ct == OCI_INDEX,
        "{step}: referrers Content-Type must be exactly {OCI_INDEX:?}, got {ct:?}"
    );
    parse_index(&r.body).map_err(|e| {
        Fail::Failed(format!(
            "{step}: referrers body must parse as an image index: {e} ({})",
            r.brief()
        ))
    })
}

/// Every descriptor carries exactly the one annotation of its manifest.
fn check_annotations(step: &str, ctx: &Ctx, descs: &[RefDesc]) -> Spec {
    for d in descs {
        check!(
            d.annotations.len() == 1,
            "{step}: descriptor {} must have exactly 1 annotation, got {:?}",
            d.digest,
            d.annotations
        );
        let want = ctx
            .d
            .annotation_values
            .get(&d.digest)
            .cloned()
            .unwrap_or_default();
        let got = d
            .annotations
            .get(ANNOTATION_KEY)
            .cloned()
            .unwrap_or_default();
        check!(
            got == want,
            "{step}: descriptor {} annotation {ANNOTATION_KEY} must be {want:?}, got {got:?}",
            d.digest
        );
    }
    Ok(())
}

async fn discovery_workflow(ctx: &mut Ctx) {
    let run_setup = true;
    let mut num_tags: usize = 4;
    let mut tag_list: Vec<String> = Vec::new();

    // Setup.
    spec!(
        ctx,
        "Discovery/Setup: Populate registry with test blob (configs[2])",
        {
            run_only_if!(run_setup);
            ctx.setup_upload("Discovery setup", &ctx.d.configs[2])
                .await?;
        }
    );
    spec!(ctx, "Discovery/Setup: Populate registry with test layer", {
        run_only_if!(run_setup);
        ctx.setup_upload("Discovery setup", &ctx.d.layer).await?;
    });
    spec!(ctx, "Discovery/Setup: Populate registry with test tags", {
        run_only_if!(run_setup);
        for i in 0..num_tags {
            let tag = format!("test{i}");
            tag_list.push(tag.clone());
            let r = ctx
                .put_manifest(&tag, OCI_MANIFEST, &ctx.d.manifests[2].content)
                .await?;
            check!(
                is_2xx(r.status),
                "Discovery setup: PUT manifests/{tag} (manifests[2]) must be 2xx, got {}",
                r.brief()
            );
        }
        let r = ctx.call(Method::GET, "tags/list").await?;
        tag_list = get_tag_list(&r.body);
    });
    spec!(
        ctx,
        "Discovery/Setup: Populate registry with test tags (no push)",
        {
            run_only_if!(!run_setup);
        }
    );
    spec!(ctx, "Discovery/Setup: References setup", {
        run_only_if!(run_setup);
        let d = &ctx.d;
        check!(
            d.empty_json.digest == EMPTY_JSON_DIGEST,
            "References setup: emptyJSON digest must be {EMPTY_JSON_DIGEST}"
        );
        ctx.setup_upload("References setup (emptyJSON)", &d.empty_json)
            .await?;
        ctx.setup_upload("References setup (refBlobA)", &d.ref_blob_a)
            .await?;
        let subject4 = &d.manifests[4].digest;
        for (label, m, ct) in [
            ("A-config", &d.refs_a_config, OCI_MANIFEST),
            ("A-layer", &d.refs_a_layer, OCI_MANIFEST),
            ("index", &d.refs_index, OCI_INDEX),
        ] {
            let r = ctx.put_manifest(&m.digest, ct, &m.content).await?;
            check!(
                is_2xx(r.status),
                "References setup: PUT {label} (subject manifests[4] not pushed yet) must be 2xx, got {}",
                r.brief()
            );
            let h = r.header("OCI-Subject");
            check!(
                &h == subject4,
                "References setup: PUT {label} must answer OCI-Subject {subject4}, got {h:?}"
            );
        }
        ctx.setup_upload("References setup (configs[4])", &d.configs[4])
            .await?;
        ctx.setup_upload("References setup (layer)", &d.layer)
            .await?;
        let r = ctx
            .put_manifest(TEST_TAG_NAME, OCI_MANIFEST, &d.manifests[4].content)
            .await?;
        check!(
            is_2xx(r.status),
            "References setup: PUT manifests/{TEST_TAG_NAME} (manifests[4]) must be 2xx, got {}",
            r.brief()
        );
        ctx.setup_upload("References setup (refBlobB)", &d.ref_blob_b)
            .await?;
        for (label, m) in [("B-config", &d.refs_b_config), ("B-layer", &d.refs_b_layer)] {
            let r = ctx
                .put_manifest(&m.digest, OCI_MANIFEST, &m.content)
                .await?;
            check!(
                is_2xx(r.status),
                "References setup: PUT {label} must be 2xx, got {}",
                r.brief()
            );
            let h = r.header("OCI-Subject");
            check!(
                &h == subject4,
                "References setup: PUT {label} must answer OCI-Subject {subject4}, got {h:?}"
            );
        }
        let m = &d.refs_c_layer;
        let r = ctx
            .put_manifest(&m.digest, OCI_MANIFEST, &m.content)
            .await?;
        check!(
            is_2xx(r.status),
            "References setup: PUT C-layer (subject manifests[3] never pushed) must be 2xx, got {}",
            r.brief()
        );
        let h = r.header("OCI-Subject");
        let subject3 = &d.manifests[3].digest;
        check!(
            &h == subject3,
            "References setup: PUT C-layer must answer OCI-Subject {subject3}, got {h:?}"
        );
    });

    // Listing tags.
    spec!(
        ctx,
        "Discovery/D1: GET request to list tags should yield 200 response",
        {
            let r = ctx.call(Method::GET, "tags/list").await?;
            check!(
                r.status == 200,
                "D1: GET tags/list must be exactly 200, got {}",
                r.brief()
            );
            tag_list = get_tag_list(&r.body);
            num_tags = tag_list.len();
            eprintln!("[{}] D1: tags = {tag_list:?}", ctx.backend);
        }
    );
    spec!(
        ctx,
        "Discovery/D2: GET number of tags should be limitable by `n` query parameter",
        {
            let n = num_tags / 2;
            let r = ctx
                .send(req(Method::GET, ctx.p("tags/list")).query("n", n.to_string()))
                .await?;
            check!(
                r.status == 200,
                "D2: GET tags/list?n={n} must be 200, got {}",
                r.brief()
            );
            tag_list = get_tag_list(&r.body);
            check!(
                tag_list.len() == n,
                "D2: tags/list?n={n} must return exactly {n} tags, got {tag_list:?}"
            );
        }
    );
    spec!(
        ctx,
        "Discovery/D3: GET start of tag is set by `last` query parameter",
        {
            let n = num_tags / 2;
            let r = ctx
                .send(req(Method::GET, ctx.p("tags/list")).query("n", n.to_string()))
                .await?;
            tag_list = get_tag_list(&r.body);
            check!(
            n >= 1 && tag_list.len() >= n,
            "D3: tags/list?n={n} returned {tag_list:?}; tagList[n-1] is out of range (Go panics)"
        );
            let last = tag_list[n - 1].clone();
            let r = ctx
                .send(
                    req(Method::GET, ctx.p("tags/list"))
                        .query("n", n.to_string())
                        .query("last", last.clone()),
                )
                .await?;
            check!(
                r.status == 200,
                "D3: GET tags/list?n={n}&last={last} must be 200, got {}",
                r.brief()
            );
            check!(
                tag_list.len() <= n,
                "D3: the first tags/list?n={n} must return at most {n} tags, got {tag_list:?}"
            );
            check!(tag_list.contains(&last), "D3: tag list must contain {last}");
        }
    );

    // Listing references.
    spec!(
        ctx,
        "Discovery/R1: GET request to nonexistent blob should result in empty 200 response",
        {
            let r = ctx
                .call(Method::GET, &format!("referrers/{}", ctx.d.dummy_digest))
                .await?;
            let descs = referrers_body("R1", &r)?;
            check!(
                descs.is_empty(),
                "R1: referrers of an unknown digest must be empty, got {} ({})",
                descs.len(),
                r.brief()
            );
        }
    );
    spec!(
        ctx,
        "Discovery/R2: GET request to existing blob should yield 200",
        {
            let r = ctx
                .call(
                    Method::GET,
                    &format!("referrers/{}", ctx.d.manifests[4].digest),
                )
                .await?;
            let descs = referrers_body("R2", &r)?;
            check!(
                descs.len() == 5,
                "R2: referrers of manifests[4] must list exactly 5 descriptors, got {} ({})",
                descs.len(),
                r.brief()
            );
            check!(
                descs[0].digest != descs[1].digest,
                "R2: the first two descriptors must differ"
            );
            check_annotations("R2", ctx, &descs)?;
        }
    );
    spec!(
        ctx,
        "Discovery/R3: GET request to existing blob with filter should yield 200",
        {
            let r = ctx
                .send(
                    req(
                        Method::GET,
                        ctx.p(&format!("referrers/{}", ctx.d.manifests[4].digest)),
                    )
                    .query("artifactType", ARTIFACT_TYPE_A),
                )
                .await?;
            let descs = referrers_body("R3", &r)?;
            let applied = r.header("OCI-Filters-Applied");
            if !applied.is_empty() {
                check!(
                descs.len() == 2,
                "R3: filtered referrers (OCI-Filters-Applied set) must list exactly 2, got {} ({})",
                descs.len(),
                r.brief()
            );
                check!(
                applied == ARTIFACT_TYPE_FILTER,
                "R3: OCI-Filters-Applied must be exactly {ARTIFACT_TYPE_FILTER:?}, got {applied:?}"
            );
            } else {
                check!(
                    descs.len() == 5,
                    "R3: unfiltered referrers (no OCI-Filters-Applied) must list 5, got {}",
                    descs.len()
                );
            }
            check_annotations("R3", ctx, &descs)?;
            if applied.is_empty() {
                eprintln!(
                    "[{}] WARNING: filtering by artifact-type is not implemented",
                    ctx.backend
                );
            }
        }
    );
    spec!(
        ctx,
        "Discovery/R4: GET request to missing manifest should yield 200",
        {
            let r = ctx
                .call(
                    Method::GET,
                    &format!("referrers/{}", ctx.d.manifests[3].digest),
                )
                .await?;
            let descs = referrers_body("R4", &r)?;
            check!(
                descs.len() == 1,
                "R4: referrers of the unpushed manifests[3] must list exactly 1, got {} ({})",
                descs.len(),
                r.brief()
            );
            check!(
                descs[0].digest == ctx.d.refs_c_layer.digest,
                "R4: the referrer must be C-layer {}, got {}",
                ctx.d.refs_c_layer.digest,
                descs[0].digest
            );
        }
    );

    // Teardown (manifests first).
    spec!(
        ctx,
        "Discovery/Teardown: Delete created manifest & associated tags",
        {
            run_only_if!(run_setup);
            let d = &ctx.d;
            for reference in [
                d.refs_index.digest.as_str(),
                d.manifests[2].digest.as_str(),
                d.manifests[4].digest.as_str(),
                d.refs_a_config.digest.as_str(),
                d.refs_a_layer.digest.as_str(),
                TEST_TAG_NAME,
                d.refs_b_config.digest.as_str(),
                d.refs_b_layer.digest.as_str(),
                d.refs_c_layer.digest.as_str(),
            ] {
                ctx.delete(
                    "Discovery teardown",
                    "manifests",
                    reference,
                    ok_2xx_404_405,
                    "2xx, 404 or 405",
                )
                .await?;
            }
        }
    );
    spec!(
        ctx,
        "Discovery/Teardown: Delete config blob created in tests",
        {
            run_only_if!(run_setup);
            ctx.delete(
                "Discovery teardown",
                "blobs",
                &ctx.d.configs[2].digest,
                ok_2xx_405,
                "2xx or 405 (404 fails)",
            )
            .await?;
        }
    );
    spec!(
        ctx,
        "Discovery/Teardown: Delete layer blob created in setup",
        {
            run_only_if!(run_setup);
            ctx.delete(
                "Discovery teardown",
                "blobs",
                &ctx.d.layer.digest,
                ok_2xx_405,
                "2xx or 405 (404 fails)",
            )
            .await?;
        }
    );
    spec!(ctx, "Discovery/Teardown: References teardown", {
        run_only_if!(run_setup);
        let d = &ctx.d;
        for m in [
            &d.refs_index,
            &d.refs_a_config,
            &d.refs_a_layer,
            &d.manifests[4],
            &d.refs_b_config,
            &d.refs_b_layer,
        ] {
            ctx.delete(
                "References teardown",
                "manifests",
                &m.digest,
                ok_2xx_404_405,
                "2xx, 404 or 405",
            )
            .await?;
        }
        for b in [&d.configs[4], &d.ref_blob_a, &d.ref_blob_b, &d.empty_json] {
            ctx.delete(
                "References teardown",
                "blobs",
                &b.digest,
                ok_2xx_404_405,
                "2xx, 404 or 405",
            )
            .await?;
        }
    });
}

// ---------------------------------------------------------------------------
// 04_management_test.go
// ---------------------------------------------------------------------------

async fn management_workflow(ctx: &mut Ctx) {
    let run_setup = true;
    let mut tag_to_delete = String::new();
    let mut num_tags: usize = 0;
    let mut blob_delete_allowed = true;

    // Setup.
    spec!(
        ctx,
        "Management/Setup: Populate registry with test config blob (configs[3])",
        {
            run_only_if!(run_setup);
            ctx.setup_upload("Management setup", &ctx.d.configs[3])
                .await?;
        }
    );
    spec!(
        ctx,
        "Management/Setup: Populate registry with test layer",
        {
            run_only_if!(run_setup);
            ctx.setup_upload("Management setup", &ctx.d.layer).await?;
        }
    );
    spec!(ctx, "Management/Setup: Populate registry with test tag", {
        run_only_if!(run_setup);
        tag_to_delete = TEST_TAG_NAME.to_string();
        let r = ctx
            .put_manifest(&tag_to_delete, OCI_MANIFEST, &ctx.d.manifests[3].content)
            .await?;
        check!(
            is_2xx(r.status),
            "Management setup: PUT manifests/{tag_to_delete} (manifests[3]) must be 2xx, got {}",
            r.brief()
        );
    });
    spec!(
        ctx,
        "Management/Setup: Check how many tags there are before anything gets deleted",
        {
            run_only_if!(run_setup);
            let r = ctx.call(Method::GET, "tags/list").await?;
            check!(
                r.status == 200,
                "Management setup: GET tags/list must be exactly 200, got {}",
                r.brief()
            );
            let tags = parse_tag_list(&r.body);
            check!(
                tags.is_ok(),
                "Management setup: tags/list body must parse: {:?}",
                tags.err()
            );
            num_tags = tags.unwrap_or_default().len();
        }
    );

    // Manifest delete.
    spec!(ctx, "Management/CM1: DELETE request to manifest tag should return 202, unless tag deletion is disallowed (400/405)", {
        let r = ctx.call(Method::DELETE, &format!("manifests/{tag_to_delete}")).await?;
        check!(
            r.status == 400 || r.status == 202 || r.status == 405,
            "CM1: DELETE manifests/{tag_to_delete} (a tag) must be 202, 400 or 405, got {}",
            r.brief()
        );
        if r.status == 400 {
            let codes = parse_error_codes(&r.body);
            check!(codes.is_ok(), "CM1: 400 body must parse as OCI errors: {:?}", codes.err());
            let codes = codes.unwrap_or_default();
            check!(!codes.is_empty(), "CM1: 400 body must list an error");
            check!(codes[0] == "UNSUPPORTED", "CM1: a 400 must carry UNSUPPORTED, got {:?}", codes[0]);
        }
    });
    spec!(ctx, "Management/CM2: DELETE request to manifest (digest) should yield 202 response unless already deleted", {
        let d = &ctx.d.manifests[3].digest;
        let r = ctx.call(Method::DELETE, &format!("manifests/{d}")).await?;
        check!(
            r.status == 202 || r.status == 404,
            "CM2: DELETE manifests[3] by digest must be 202 or 404, got {}",
            r.brief()
        );
    });
    spec!(ctx, "Management/CM3: GET request to deleted manifest URL should yield 404 response, unless delete is disallowed", {
        let d = &ctx.d.manifests[3].digest;
        let r = ctx.call(Method::GET, &format!("manifests/{d}")).await?;
        check!(
            r.status == 404 || r.status == 200,
            "CM3: GET of the deleted manifests[3] must be 404 or 200, got {}",
            r.brief()
        );
    });
    spec!(
        ctx,
        "Management/CM4: GET request to tags list should reflect manifest deletion",
        {
            let r = ctx.call(Method::GET, "tags/list").await?;
            check!(
                r.status == 200,
                "CM4: GET tags/list after the deletes must be exactly 200, got {}",
                r.brief()
            );
            let tags = parse_tag_list(&r.body);
            check!(
                tags.is_ok(),
                "CM4: tags/list body must parse: {:?}",
                tags.err()
            );
            let tags = tags.unwrap_or_default();
            check!(
            tags.len() < num_tags,
            "CM4: tags/list must have fewer than {num_tags} tags after the deletes, got {tags:?}"
        );
        }
    );

    // Blob delete.
    spec!(
        ctx,
        "Management/CM5: DELETE request to blob URL should yield 202 response",
        {
            run_only_if!(run_setup);
            let ok = |s: u16| s == 202 || s == 404 || s == 405;
            let d = &ctx.d.configs[3].digest;
            let r = ctx.call(Method::DELETE, &format!("blobs/{d}")).await?;
            check!(
                ok(r.status),
                "CM5: DELETE configs[3] blob must be 202, 404 or 405, got {}",
                r.brief()
            );
            let d = &ctx.d.layer.digest;
            let r = ctx.call(Method::DELETE, &format!("blobs/{d}")).await?;
            check!(
                ok(r.status),
                "CM5: DELETE layer blob must be 202, 404 or 405, got {}",
                r.brief()
            );
            if r.status == 405 {
                blob_delete_allowed = false;
            }
        }
    );
    spec!(
        ctx,
        "Management/CM6: GET request to deleted blob URL should yield 404 response",
        {
            run_only_if!(run_setup);
            run_only_if!(blob_delete_allowed);
            let d = &ctx.d.configs[3].digest;
            let r = ctx.call(Method::GET, &format!("blobs/{d}")).await?;
            check!(
                r.status == 404,
                "CM6: GET of the deleted configs[3] blob must be exactly 404, got {}",
                r.brief()
            );
        }
    );
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

async fn run_suite(backend: &'static str, s: &Server) {
    let mut ctx = Ctx::new(backend, s);
    eprintln!(
        "[{backend}] namespace {}, crossmount namespace {}",
        ctx.name, ctx.crossmount
    );
    pull_workflow(&mut ctx).await;
    push_workflow(&mut ctx).await;
    discovery_workflow(&mut ctx).await;
    management_workflow(&mut ctx).await;

    let total = ctx.results.len();
    let skipped = ctx
        .results
        .iter()
        .filter(|(_, o)| matches!(o, Err(Fail::Skipped(_))))
        .count();
    let failed: Vec<String> = ctx
        .results
        .iter()
        .filter_map(|(n, o)| match o {
            Err(Fail::Failed(m)) => Some(format!("  {n}\n      {m}")),
            _ => None,
        })
        .collect();
    eprintln!(
        "[{backend}] {} passed, {} failed, {skipped} skipped of {total} specs",
        total - skipped - failed.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {total} conformance specs failed on {backend}:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Self-checks of the Go-compatible helpers the workflows rely on.
#[test]
fn helpers_match_go_behaviour() {
    let layer = b64_decode(LAYER_BASE64).expect("decodes");
    assert_eq!(&layer[..2], &[0x1f, 0x8b], "layer is gzip");
    assert_eq!(base64(&layer), LAYER_BASE64);
    assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
    assert_eq!(go_query_escape("sha256:ab/c d"), "sha256%3Aab%2Fc+d");
    assert_eq!(sha256(b"{}"), EMPTY_JSON_DIGEST);
    let b = ChunkedBlob::new(42, 7);
    assert_eq!((b.chunk1.len(), b.chunk2.len()), (22, 20));
    assert_eq!(
        (b.chunk1_range.as_str(), b.chunk2_range.as_str()),
        ("0-21", "22-41")
    );
    let loc = |l: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("Location", l.parse().expect("header"));
        Resp {
            status: 202,
            headers,
            body: vec![],
        }
        .relative_location()
    };
    assert_eq!(
        loc("http://h:1/v2/a/b/blobs/uploads/x?s=1"),
        "/v2/a/b/blobs/uploads/x?s=1"
    );
    assert_eq!(loc("/v2/a/blobs/uploads/x"), "/v2/a/blobs/uploads/x");
    assert_eq!(loc("https://h/v2/a%2Fb/x"), "/v2/a/b/x");
    assert_eq!(loc(""), "");
    let m = String::from_utf8(go_marshal_indent(&J::O(vec![
        ("a", J::N(1)),
        ("b", J::A(vec![])),
        ("c", J::O(vec![("d", J::Null)])),
    ])))
    .expect("utf8");
    assert_eq!(
        m,
        "{\n\t\"a\": 1,\n\t\"b\": [],\n\t\"c\": {\n\t\t\"d\": null\n\t}\n}"
    );
}

both_backends! {
    conformance_workflows => |s: Server| async move { run_suite(backend_label(&s), &s).await };
}

/// "sqlite" or "postgres" for log lines.
fn backend_label(s: &Server) -> &'static str {
    if s.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    }
}
