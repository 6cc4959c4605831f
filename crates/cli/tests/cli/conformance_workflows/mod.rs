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
//!
//! One file per workflow (`pull.rs`, `push.rs`, `discovery.rs`,
//! `management.rs`); what they share is beside them: the Go-compatible
//! helpers (`go.rs`), the test data (`data.rs`), requests and responses
//! (`http.rs`) and the run context (`ctx.rs`).

use crate::common::*;

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

// The workflows and what they share, declared after the bookkeeping
// macros above so that those are in scope in each of them.
mod ctx;
mod data;
mod discovery;
mod go;
mod http;
mod management;
mod pull;
mod push;

use ctx::*;
use data::*;
use discovery::*;
use go::*;
use http::*;
use management::*;
use pull::*;
use push::*;

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
