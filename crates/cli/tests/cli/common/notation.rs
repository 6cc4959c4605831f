//! A user of the CLI with their own notation directory (a test CA and
//! signing key), and policy directories written for a test.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A user with their own notation directory (test CA + signing key).
pub struct User {
    home: tempfile::TempDir,
}

impl User {
    /// A user who has run `cert generate alice` (a test CA, a signing key
    /// and a trust policy naming the CA).
    pub fn new() -> Self {
        let u = Self::without_keys();
        u.ok(&["cert", "generate", "alice"]);
        u
    }

    /// A user whose notation directory is still empty.
    pub fn without_keys() -> Self {
        User {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// The user's home: the configuration and cache directories are below
    /// it, and a test may keep its own files there.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs `pavilion args` as this user.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pavilion"))
            .args(args)
            .env("XDG_CONFIG_HOME", self.home.path())
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("DOCKER_CONFIG", "/nonexistent-pavilion-test")
            .env_remove("PAVILION_LOG")
            .output()
            .expect("run pavilion")
    }

    /// Runs a command that must succeed; returns what it printed on
    /// standard output and standard error.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.succeeds(args);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Runs a command that must succeed; returns its standard output alone.
    pub fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.succeeds(args).stdout).into_owned()
    }

    fn succeeds(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command whose standard output is JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Runs a command that must exit with `code`; returns its stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        err
    }

    /// The notation directory (`$XDG_CONFIG_HOME/notation`).
    pub fn notation(&self) -> PathBuf {
        self.home.path().join("notation")
    }

    /// The trust policy `cert generate` writes, as an argument.
    pub fn trust_policy(&self) -> String {
        self.notation()
            .join("trustpolicy.oci.json")
            .display()
            .to_string()
    }

    /// A server on `backend` judging pushes and pulls with the rules in
    /// `rules` under this user's trust policy and trust store (None when
    /// the backend is unavailable and peers are not required).
    pub fn gated_server(&self, backend: super::Backend, rules: &Path) -> Option<super::Server> {
        let (tp, ts) = (self.trust_policy(), self.trust_store());
        super::Server::start_with(
            backend,
            &[
                "--policy",
                rules.to_str().unwrap(),
                "--trust-policy",
                &tp,
                "--trust-store",
                &ts,
            ],
        )
    }

    /// The trust store directory, as an argument.
    pub fn trust_store(&self) -> String {
        self.notation().join("truststore").display().to_string()
    }

    /// The private key `cert generate name` wrote, as an argument.
    pub fn key(&self, name: &str) -> String {
        self.local_key(name, "key")
    }

    /// The certificate `cert generate name` wrote, as an argument.
    pub fn cert(&self, name: &str) -> String {
        self.local_key(name, "crt")
    }

    fn local_key(&self, name: &str, ext: &str) -> String {
        self.notation()
            .join(format!("localkeys/{name}.{ext}"))
            .display()
            .to_string()
    }

    /// Signs `reference` with alice's key.
    pub fn sign(&self, reference: &str) {
        self.ok(&[
            "sign",
            reference,
            "--key",
            &self.key("alice"),
            "--cert",
            &self.cert("alice"),
        ]);
    }

    /// A model directory with `files`.
    pub fn model(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = self.home.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, data) in files {
            std::fs::write(dir.join(f), data).unwrap();
        }
        dir
    }
}

/// A directory holding `files` (name, text): a policy bundle.
pub fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}
