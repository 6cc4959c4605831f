//! HTTPS to a Pavilion with a private CA, and client certificates (mTLS),
//! end to end: `pavilion serve --tls-cert ... [--tls-client-ca ...]` on
//! loopback, `pavilion push`/`pull`/`login` trusting the CA through
//! `--ca-file`, `SSL_CERT_FILE`, a certs.d directory (`PAVILION_CERTS_DIR`)
//! or `--cert-dir`, and skopeo as a peer that speaks our mTLS.

use crate::common::pki::{pki as test_pki, Pki};
use crate::common::run::Run;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A Pavilion serving HTTPS with `pki`'s server certificate.
fn https_server(pki: &Pki, extra: &[&str]) -> Option<Server> {
    let mut args = vec![
        "--tls-cert",
        pki.server_crt.to_str().unwrap(),
        "--tls-key",
        pki.server_key.to_str().unwrap(),
    ];
    args.extend(extra);
    let s = Server::start_with(Backend::Sqlite, &args)?;
    assert_eq!(s.scheme, "https");
    Some(s)
}

/// `dir/<name>` holding `files` (name, text): a registry's certificate
/// directory.
fn cert_dir(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (f, text) in files {
        std::fs::write(d.join(f), text).unwrap();
    }
    d
}

/// `pavilion args` with `env` set, and none of the TLS variables of the
/// test's own environment.
fn pv_env(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pavilion"));
    cmd.args(args)
        .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
        .env_remove("PAVILION_CONFIG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("PAVILION_CERTS_DIR")
        .env_remove("PAVILION_CA_FILE")
        .env("PAVILION_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!("pavilion {}", args.join(" "));
    let mut child = cmd.spawn().expect("spawn pavilion");
    let (out, err) = (read_all(child.stdout.take()), read_all(child.stderr.take()));
    let status = wait_bounded(&mut child, &what);
    Run {
        what,
        code: status.code().unwrap_or(-1),
        status,
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// A failure's message: one line, the log lines (`serve` logs a warning
/// or two before it stops) aside.
fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(" WARN ") && !l.contains(" INFO "))
        .collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    lines[0]
}

/// A small model to push, and where to pull it to.
struct Work {
    tmp: tempfile::TempDir,
    model: PathBuf,
}

impl Work {
    fn new() -> Work {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        make_model(&model);
        Work { tmp, model }
    }

    fn push(&self, reference: &str, extra: &[&str], env: &[(&str, &Path)]) -> Run {
        let mut a = vec!["push", reference, self.model.to_str().unwrap()];
        a.extend(["--license", "MIT", "--output", "json"]);
        a.extend(extra);
        pv_env(&a, env)
    }

    /// Pulls `reference` into a fresh directory and checks it holds the model.
    fn pull_ok(&self, reference: &str, extra: &[&str], env: &[(&str, &Path)]) {
        let out = tempfile::tempdir_in(self.tmp.path()).unwrap();
        let mut a = vec!["pull", reference, "-o", out.path().to_str().unwrap()];
        a.extend(["--output", "json"]);
        a.extend(extra);
        pv_env(&a, env).ok();
        assert_eq!(files_of(out.path()), files_of(&self.model), "{reference}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_is_trusted_by_ca_file_ssl_cert_file_and_certs_d() {
    let tls = tempfile::tempdir().unwrap();
    let pki = test_pki(tls.path(), "ci-pusher", None);
    let Some(s) = https_server(&pki, &[]) else {
        return;
    };
    let w = Work::new();
    let reference = format!("{}/models/tiny:v1", s.addr);
    let ca = pki.ca.to_str().unwrap();

    // Nothing trusts the CA: the certificate error, named, exit 6, and
    // the loopback registry is not fallen back to plain HTTP.
    let r = w.push(&reference, &[], &[]);
    let err = one_line(r.fails(6));
    assert!(
        err.contains("cannot verify the TLS certificate of https://127.0.0.1")
            && err.contains(&format!("certs.d/{}/ca.crt", s.addr)),
        "{err}"
    );
    let r = pv_env(&["tags", &format!("{}/models/tiny", s.addr)], &[]);
    assert!(r.fails(6).contains("UnknownIssuer"), "{}", r.stderr);

    // --ca-file.
    w.push(&reference, &["--ca-file", ca], &[]).ok();
    w.pull_ok(&reference, &["--ca-file", ca], &[]);
    // PAVILION_CA_FILE.
    w.pull_ok(&reference, &[], &[("PAVILION_CA_FILE", &pki.ca)]);
    // SSL_CERT_FILE (a bundle replacing the system's roots).
    w.pull_ok(&reference, &[], &[("SSL_CERT_FILE", &pki.ca)]);
    // certs.d/127.0.0.1:PORT/ca.crt under PAVILION_CERTS_DIR; another
    // registry's directory does not count.
    let ca_pem = std::fs::read_to_string(&pki.ca).unwrap();
    let root = tls.path().join("certs.d");
    cert_dir(&root, "127.0.0.1:1", &[("ca.crt", &ca_pem)]);
    let r = w.push(&reference, &[], &[("PAVILION_CERTS_DIR", &root)]);
    r.fails(6);
    cert_dir(&root, &s.addr, &[("ca.crt", &ca_pem)]);
    w.pull_ok(&reference, &[], &[("PAVILION_CERTS_DIR", &root)]);
    // --cert-dir: one directory, whatever the registry.
    let fixed = cert_dir(tls.path(), "fixed", &[("registry-ca.crt", &ca_pem)]);
    w.pull_ok(&reference, &["--cert-dir", fixed.to_str().unwrap()], &[]);
    // ...and it replaces the certs.d search.
    let empty = cert_dir(tls.path(), "empty", &[]);
    let r = pv_env(
        &[
            "tags",
            &format!("{}/models/tiny", s.addr),
            "--cert-dir",
            empty.to_str().unwrap(),
        ],
        &[("PAVILION_CERTS_DIR", &root)],
    );
    r.fails(6);

    // login verifies the credential over HTTPS with the CA too.
    let docker = tempfile::tempdir().unwrap();
    let run_login = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(["login", &s.addr, "-u", "someone", "-p", "secret"])
            .args(extra)
            .env("DOCKER_CONFIG", docker.path())
            .env_remove("SSL_CERT_FILE")
            .env_remove("PAVILION_CERTS_DIR")
            .env_remove("PAVILION_CA_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run_login(&[]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_login(&["--ca-file", ca]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(docker.path().join("config.json")).unwrap();
    assert!(saved.contains(&s.addr), "{saved}");
}

/// A certs.d root whose directory for `addr` holds the CA and, if given,
/// a client certificate as docker names it.
fn client_certs(root: &Path, addr: &str, ca: &Path, client: Option<&(String, String)>) {
    let _ = std::fs::remove_dir_all(root.join(addr));
    let ca_pem = std::fs::read_to_string(ca).unwrap();
    let mut files = vec![("ca.crt", ca_pem.as_str())];
    if let Some((cert, key)) = client {
        files.extend([("client.cert", cert.as_str()), ("client.key", key.as_str())]);
    }
    cert_dir(root, addr, &files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_admit_only_the_ca_s_clients() {
    let tls = tempfile::tempdir().unwrap();
    let pki = test_pki(tls.path(), "ci-pusher", None);
    let ca = pki.ca.to_str().unwrap();
    let Some(s) = https_server(
        &pki,
        &["--tls-client-ca", ca, "--tls-client-auth", "required"],
    ) else {
        return;
    };
    let w = Work::new();
    let reference = format!("{}/models/tiny:v1", s.addr);
    let root = tls.path().join("certs.d");
    let env = [("PAVILION_CERTS_DIR", root.as_path())];

    // The CA is trusted but no certificate is presented: refused at the
    // handshake (exit 6, not retried as a network failure).
    client_certs(&root, &s.addr, &pki.ca, None);
    let r = w.push(&reference, &[], &env);
    let err = one_line(r.fails(6));
    assert!(
        err.contains("refused the TLS client certificate")
            && err.contains(&format!("certs.d/{}/client.cert", s.addr)),
        "{err}"
    );
    // Nothing reached the registry.
    let r = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .get(s.url("/v2/"))
        .send()
        .await;
    assert!(r.is_err(), "a client without a certificate was served");

    // A certificate from another CA: refused too.
    client_certs(&root, &s.addr, &pki.ca, Some(&pki.stranger));
    w.push(&reference, &[], &env).fails(6);

    // The CA's client certificate: push and pull.
    client_certs(&root, &s.addr, &pki.ca, Some(&pki.client));
    w.push(&reference, &[], &env).ok();
    w.pull_ok(&reference, &[], &env);
    // The same files through --cert-dir.
    let dir = root.join(&s.addr);
    w.pull_ok(&reference, &["--cert-dir", dir.to_str().unwrap()], &[]);

    // skopeo (containers/image) speaks our mTLS: its --*-cert-dir take the
    // same files. It copies an image it pushes into the registry.
    if require_peer("skopeo", have("skopeo")).is_none() {
        return;
    }
    let layout = tls.path().join("layout");
    write_image_layout(&layout);
    let dest = format!("docker://{}/skopeo/busy:v1", s.addr);
    let copy = |cert_dir: &Path| {
        Command::new("skopeo")
            .args(["copy", "--dest-cert-dir"])
            .arg(cert_dir)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(&dest)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Without a client certificate skopeo is refused as well.
    let no_cert = cert_dir(
        tls.path(),
        "skopeo-ca-only",
        &[("ca.crt", &std::fs::read_to_string(&pki.ca).unwrap())],
    );
    let out = copy(&no_cert);
    assert!(!out.status.success(), "skopeo without a certificate");
    let out = copy(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pavilion reads back what skopeo pushed, over mTLS.
    let r = pv_env(
        &[
            "tags",
            &format!("{}/skopeo/busy", s.addr),
            "--output",
            "json",
        ],
        &env,
    );
    assert!(r.ok().contains("v1"), "{}", r.text());
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(&dir)
        .arg(&dest)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A one-layer OCI image layout tagged v1, for skopeo to push.
fn write_image_layout(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        let hex = d.strip_prefix("sha256:").unwrap();
        std::fs::write(blobs.join(hex), bytes).unwrap();
        (d, bytes.len())
    };
    let tar = {
        let src = dir.join("rootfs");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello.txt"), b"hello over mTLS\n").unwrap();
        gnu_tar(&src, &["hello.txt"])
    };
    let (layer, layer_size) = put(&tar);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
    );
    let (config_digest, config_size) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
    );
    let (m, ms) = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{m}","size":{ms},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_serve_clients_without_one() {
    let tls = tempfile::tempdir().unwrap();
    let pki = test_pki(tls.path(), "ci-pusher", None);
    let ca = pki.ca.to_str().unwrap();
    let Some(s) = https_server(&pki, &["--tls-client-ca", ca]) else {
        return;
    };
    let w = Work::new();
    let reference = format!("{}/models/tiny:v1", s.addr);
    // Without a certificate.
    w.push(&reference, &["--ca-file", ca], &[]).ok();
    w.pull_ok(&reference, &["--ca-file", ca], &[]);
    // With one from the CA.
    let root = tls.path().join("certs.d");
    client_certs(&root, &s.addr, &pki.ca, Some(&pki.client));
    w.pull_ok(&reference, &[], &[("PAVILION_CERTS_DIR", &root)]);
    // A presented certificate must still verify.
    client_certs(&root, &s.addr, &pki.ca, Some(&pki.stranger));
    let r = pv_env(
        &["tags", &format!("{}/models/tiny", s.addr)],
        &[("PAVILION_CERTS_DIR", &root)],
    );
    r.fails(6);
}

#[test]
fn bad_tls_input_is_one_line_each() {
    let tls = tempfile::tempdir().unwrap();
    let pki = test_pki(tls.path(), "ci-pusher", None);
    let not_pem = tls.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let reference = "127.0.0.1:9/models/tiny:v1";

    // A --ca-file that is not PEM: named, before any request.
    let r = pv_env(
        &["tags", reference, "--ca-file", not_pem.to_str().unwrap()],
        &[],
    );
    let err = one_line(r.fails(2));
    assert!(
        err.contains("not.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    // An SSL_CERT_FILE without certificates would trust nothing.
    let r = pv_env(&["tags", reference], &[("SSL_CERT_FILE", &not_pem)]);
    let err = one_line(r.fails(2));
    assert!(
        err.contains("SSL_CERT_FILE") && err.contains("not.pem"),
        "{err}"
    );

    // A client certificate without its key, and a key without its
    // certificate: named, not silently ignored.
    let (cert, key) = &pki.client;
    let root = tls.path().join("certs.d");
    cert_dir(&root, "127.0.0.1:9", &[("client.cert", cert)]);
    let r = pv_env(&["tags", reference], &[("PAVILION_CERTS_DIR", &root)]);
    let err = one_line(r.fails(2));
    assert!(
        err.contains("127.0.0.1:9/client.cert") && err.contains("client.key"),
        "{err}"
    );
    let lone_key = cert_dir(tls.path(), "lone-key", &[("me.key", key)]);
    let r = pv_env(
        &["tags", reference, "--cert-dir", lone_key.to_str().unwrap()],
        &[],
    );
    let err = one_line(r.fails(2));
    assert!(err.contains("me.key") && err.contains("me.cert"), "{err}");
    // A --cert-dir that does not exist.
    let r = pv_env(
        &["tags", reference, "--cert-dir", "/nonexistent-certs"],
        &[],
    );
    assert!(one_line(r.fails(2)).contains("/nonexistent-certs"));

    // serve: a --tls-client-ca that does not exist, CA flags naming
    // different files, and --tls-client-auth without a CA.
    let serve = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(tls.path().join("data"))
            .args([
                "--tls-cert",
                pki.server_crt.to_str().unwrap(),
                "--tls-key",
                pki.server_key.to_str().unwrap(),
            ])
            .args(args)
            .env_remove("PAVILION_CONFIG")
            .env("PAVILION_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "serve {args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(&["--tls-client-ca", "/nonexistent-ca.pem"]);
    assert!(one_line(&err).contains("/nonexistent-ca.pem"), "{err}");
    let other = tls.path().join("other-ca.pem");
    std::fs::copy(&pki.ca, &other).unwrap();
    let err = serve(&[
        "--tls-client-ca",
        pki.ca.to_str().unwrap(),
        "--admission-client-ca",
        other.to_str().unwrap(),
        "--admission-client-name",
        "kube-apiserver",
    ]);
    assert!(one_line(&err).contains("must name the same file"), "{err}");
    let err = serve(&["--tls-client-auth", "required"]);
    assert!(
        one_line(&err).contains("tls_client_auth needs tls_client_ca"),
        "{err}"
    );
    let err = serve(&["--tls-client-auth", "sometimes"]);
    assert!(err.contains("sometimes"), "{err}");
}
