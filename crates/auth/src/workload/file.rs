//! An issuer's keys from a file (a JWKS document, or one PEM public key
//! such as a Kubernetes cluster's `sa.pub`), looked at again at most once
//! a second and re-read when its inode, size or modification time changed
//! — the same approach as the htpasswd file — so a rotated key takes
//! effect without a restart. A file that cannot be read or parsed lets no
//! token of its issuer in until it is fixed.

use crate::jose::KeySet;
use crate::watched::Watched;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest key file read (a JWKS of a hundred RSA keys is ~50 KiB).
const MAX_FILE: u64 = 1 << 20;

/// A JWKS document, or one PEM public key.
fn parse(text: &str) -> Result<KeySet, String> {
    let keys = if text.trim_start().starts_with("-----BEGIN") {
        KeySet::from_public_pem(text)
    } else {
        KeySet::from_jwks(text)
    };
    keys.map_err(|e| e.to_string())
}

/// A key file and the keys it held when last read.
pub(crate) struct KeyFile(Watched<KeySet>);

impl KeyFile {
    /// Reads `path` now: a file that cannot be used is an error at start.
    pub(crate) fn open(path: &Path, recheck: Duration) -> Result<KeyFile, String> {
        Watched::open(path, recheck, MAX_FILE, "workload issuer key file", parse).map(KeyFile)
    }

    /// The keys of the file as it is now (re-read when it changed).
    pub(crate) fn keys(&self) -> Result<Arc<KeySet>, String> {
        self.0.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::SigningKey;

    fn jwks(key: &SigningKey) -> String {
        serde_json::json!({"keys": [key.public_jwk()]}).to_string()
    }

    #[test]
    fn reads_a_jwks_or_a_pem_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        std::fs::write(&path, jwks(&a)).unwrap();
        let file = KeyFile::open(&path, Duration::ZERO).unwrap();
        assert!(file
            .keys()
            .unwrap()
            .verify(&a.sign(&serde_json::json!({})))
            .is_ok());
        // Replaced by another key set (a new inode, as editors and
        // Kubernetes' atomic writer do).
        let tmp = dir.path().join("next");
        std::fs::write(&tmp, jwks(&b)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let keys = file.keys().unwrap();
        assert!(keys.verify(&a.sign(&serde_json::json!({}))).is_err());
        assert!(keys.verify(&b.sign(&serde_json::json!({}))).is_ok());
        // A PEM public key.
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let c = SigningKey::from_pem(&secret.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
        let pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        std::fs::write(&path, pem).unwrap();
        let keys = file.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.verify(&c.sign(&serde_json::json!({}))).is_ok());
    }

    #[test]
    fn unusable_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let err = KeyFile::open(&missing, Duration::ZERO).err().unwrap();
        assert!(err.contains("missing.json"), "{err}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"keys\": []}").unwrap();
        let err = KeyFile::open(&bad, Duration::ZERO).err().unwrap();
        assert!(err.contains("bad.json"), "{err}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_FILE + 1) as usize]).unwrap();
        let err = KeyFile::open(&big, Duration::ZERO).err().unwrap();
        assert!(err.contains("larger than 1 MiB"), "{err}");
    }

    #[test]
    fn a_file_broken_or_removed_later_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks(&SigningKey::generate())).unwrap();
        let file = KeyFile::open(&path, Duration::ZERO).unwrap();
        std::fs::write(&path, "not json at all").unwrap();
        assert!(file.keys().is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(file.keys().is_err());
    }

    #[test]
    fn changes_are_looked_for_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let a = SigningKey::generate();
        std::fs::write(&path, jwks(&a)).unwrap();
        let file = KeyFile::open(&path, Duration::from_secs(3600)).unwrap();
        std::fs::remove_file(&path).unwrap();
        // Not looked at again yet: the keys read at start still serve.
        assert!(file
            .keys()
            .unwrap()
            .verify(&a.sign(&serde_json::json!({})))
            .is_ok());
    }
}
