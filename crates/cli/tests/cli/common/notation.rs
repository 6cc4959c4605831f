//! A user of the CLI with their own notation directory (a test CA and
//! signing key), and policy directories written for a test.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A user with their own notation directory (test CA + signing key).
pub struct User {
    home: tempfile::TempDir,
}

impl User {
    pub fn new() -> Self {
        let u = User {
            home: tempfile::tempdir().unwrap(),
        };
        u.ok(&["cert", "generate", "alice"]);
        u
    }

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

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
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

    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        err
    }

    pub fn notation(&self) -> PathBuf {
        self.home.path().join("notation")
    }

    pub fn trust_policy(&self) -> String {
        self.notation()
            .join("trustpolicy.oci.json")
            .display()
            .to_string()
    }

    pub fn trust_store(&self) -> String {
        self.notation().join("truststore").display().to_string()
    }

    pub fn sign(&self, reference: &str) {
        let key = self.notation().join("localkeys/alice.key");
        let cert = self.notation().join("localkeys/alice.crt");
        self.ok(&[
            "sign",
            reference,
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
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

pub fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}
