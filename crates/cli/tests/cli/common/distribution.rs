//! CNCF Distribution (Debian's docker-registry) as a peer on a loopback port.

use std::path::Path;

use super::backend::require_peer;

/// CNCF Distribution from Debian on a loopback port, or None when absent.
pub struct Distribution {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Distribution {
    /// Starts Distribution without authentication.
    pub fn start() -> Option<Distribution> {
        Self::start_with_htpasswd(None)
    }

    /// Starts Distribution; with `htpasswd` (a file of bcrypt lines from
    /// `htpasswd -Bbn`), every request needs HTTP Basic credentials.
    pub fn start_with_htpasswd(htpasswd: Option<&Path>) -> Option<Distribution> {
        let bin = std::env::var("PAVILION_TEST_DISTRIBUTION").ok();
        require_peer(
            "CNCF Distribution (PAVILION_TEST_DISTRIBUTION)",
            bin.is_some(),
        )?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{}",
                dir.path().join("data").display(),
                htpasswd.map_or(String::new(), |p| format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    p.display()
                ))
            ),
        )
        .unwrap();
        let child = std::process::Command::new(bin?)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        // Owned by the guard at once, so every path below kills and reaps it.
        let guard = Distribution {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&guard.addr).is_ok() {
                return Some(guard);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", guard.addr);
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
