//! An htpasswd file: `user:hash` lines, bcrypt hashes only (what
//! `htpasswd -B` writes, and what Distribution and Zot accept). The file
//! is looked at again at most once a second and re-read when it changed,
//! so users are added or removed without a restart. A file that cannot be
//! read or holds a line it does not understand lets nobody in (fail
//! closed) until it is fixed.

use crate::verified::Verified;
use crate::watched::Watched;
use crate::{basic, AuthError, Authenticator, Identity, Method};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest htpasswd file read (a million users' worth is far beyond it).
pub const MAX_FILE: u64 = 16 << 20;
/// How often the file is looked at for changes.
const RECHECK: Duration = Duration::from_secs(1);

/// Users and their bcrypt hashes, as one version of the file says.
struct Users {
    hashes: HashMap<String, String>,
    /// A hash of the same cost as the file's, checked for unknown users so
    /// that a wrong user name takes as long as a wrong password.
    decoy: String,
}

/// An htpasswd file that authenticates Basic credentials.
pub struct HtpasswdFile {
    file: Watched<Users>,
    verified: Verified,
}

/// Parses the text of an htpasswd file.
fn parse(text: &str) -> Result<Users, String> {
    let mut hashes = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: no ':' between user and hash", n + 1))?;
        if user.is_empty() {
            return Err(format!("line {}: empty user name", n + 1));
        }
        if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            return Err(format!(
                "line {}: only bcrypt hashes are accepted (create them with `htpasswd -B`)",
                n + 1
            ));
        }
        // A truncated or mangled hash would only ever fail to verify: say
        // so at start (or in the log at a re-read) rather than let the
        // user find out by not getting in.
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!(
                "line {}: the bcrypt hash of {user:?} is malformed (truncated or edited?)",
                n + 1
            ));
        }
        if hashes.insert(user.to_string(), hash.to_string()).is_some() {
            return Err(format!("line {}: user {user:?} appears twice", n + 1));
        }
    }
    // The cost is the two digits after the prefix, `$2y$10$...`.
    let cost = hashes
        .values()
        .next()
        .and_then(|h| h.get(4..6))
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(bcrypt::DEFAULT_COST);
    let decoy = bcrypt::hash("pavilion: not a user", cost).map_err(|e| e.to_string())?;
    Ok(Users { hashes, decoy })
}

impl HtpasswdFile {
    /// Reads `path`; an unreadable or invalid file is an error here (a
    /// server should not start with credentials it cannot check).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuthError> {
        let path = path.into();
        let file = Watched::open(&path, RECHECK, MAX_FILE, "htpasswd file", parse)
            .map_err(AuthError::Unavailable)?;
        Ok(HtpasswdFile {
            file,
            verified: Verified::default(),
        })
    }

    /// The users of the file as it is now (re-read when it changed).
    fn users(&self) -> Result<Arc<Users>, AuthError> {
        self.file.current().map_err(AuthError::Unavailable)
    }

    /// The users as last read, when they are not due for a look at the file
    /// (which would block): for [`Authenticator::remembered`].
    fn users_if_fresh(&self) -> Option<Arc<Users>> {
        self.file.if_fresh()
    }
}

impl Authenticator for HtpasswdFile {
    fn remembered(&self, authorization: Option<&str>) -> Option<Identity> {
        let (user, password) = basic::credentials(authorization?).ok()?;
        let users = self.users_if_fresh()?;
        let hash = users.hashes.get(&user)?;
        self.verified
            .contains(&user, hash, &password)
            .then(|| identity(user))
    }

    fn stamp(&self, subject: &str) -> Option<String> {
        use sha2::{Digest as _, Sha256};
        let users = self.users().ok()?;
        let hash = users.hashes.get(subject)?;
        let mut h = Sha256::new();
        h.update(b"pavilion refresh stamp\0");
        h.update(hash.as_bytes());
        Some(
            h.finalize()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        let (user, password) = basic::credentials(authorization.ok_or(AuthError::Missing)?)?;
        let users = self.users()?;
        let hash = users.hashes.get(&user);
        if let Some(h) = hash {
            if self.verified.contains(&user, h, &password) {
                return Ok(identity(user));
            }
        }
        let checked = hash.unwrap_or(&users.decoy);
        let matches = bcrypt::verify(&password, checked).unwrap_or(false);
        match hash {
            Some(h) if matches => {
                self.verified.insert(&user, h, &password);
                Ok(identity(user))
            }
            _ => Err(AuthError::Invalid),
        }
    }
}

fn identity(subject: String) -> Identity {
    Identity::new(subject, Method::Htpasswd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn basic(user: &str, pw: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}")
    }

    /// bcrypt at cost 4 (the least) keeps the tests fast.
    fn line(user: &str, pw: &str) -> String {
        format!("{user}:{}\n", bcrypt::hash(pw, 4).unwrap())
    }

    #[test]
    fn accepts_the_right_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(
            &path,
            line("ci", "s3cret") + "# comment\n\n" + &line("ops", "x"),
        )
        .unwrap();
        let f = HtpasswdFile::open(&path).unwrap();
        let who = f.authenticate(Some(&basic("ci", "s3cret"))).unwrap();
        assert_eq!((who.subject.as_str(), who.method), ("ci", Method::Htpasswd));
        assert_eq!(
            f.authenticate(Some(&basic("ci", "s3cret")))
                .unwrap()
                .subject,
            "ci",
            "again, remembered"
        );
        assert_eq!(
            f.remembered(Some(&basic("ci", "s3cret")))
                .map(|w| w.subject),
            Some("ci".into())
        );
        assert_eq!(f.remembered(Some(&basic("ci", "wrong"))), None);
        assert_eq!(
            f.remembered(Some(&basic("ops", "x"))),
            None,
            "never accepted yet"
        );
        assert_eq!(f.remembered(None), None);
        assert_eq!(
            f.authenticate(Some(&basic("ci", "wrong"))),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            f.authenticate(Some(&basic("nobody", "s3cret"))),
            Err(AuthError::Invalid)
        );
        assert_eq!(f.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_lets_nobody_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, line("ci", "old")).unwrap();
        let f = HtpasswdFile::open(&path).unwrap();
        assert!(f.authenticate(Some(&basic("ci", "old"))).is_ok());
        // A new file under the same name (what editors and `htpasswd` do).
        let next = dir.path().join("next");
        std::fs::write(&next, line("ci", "new")).unwrap();
        std::fs::rename(&next, &path).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_eq!(
            f.authenticate(Some(&basic("ci", "old"))),
            Err(AuthError::Invalid)
        );
        assert!(f.authenticate(Some(&basic("ci", "new"))).is_ok());
        std::fs::write(&next, "ci:plaintext\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        let err = f.authenticate(Some(&basic("ci", "new"))).unwrap_err();
        assert!(
            matches!(&err, AuthError::Unavailable(m) if m.contains("only bcrypt")),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_it_cannot_check_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        for (text, why) in [
            ("ci:{SHA}abc\n", "line 1: only bcrypt"),
            ("nocolon\n", "line 1: no ':'"),
            (":$2y$04$x\n", "line 1: empty user name"),
            (
                "ci:$2y$05$short\n",
                "line 1: the bcrypt hash of \"ci\" is malformed",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            match HtpasswdFile::open(&path) {
                Err(AuthError::Unavailable(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{text:?}: {:?}", other.map(|_| ())),
            }
        }
        let twice = line("ci", "a") + &line("ci", "b");
        std::fs::write(&path, twice).unwrap();
        assert!(HtpasswdFile::open(&path).is_err(), "a user twice");
        assert!(HtpasswdFile::open(dir.path().join("missing")).is_err());
    }
}
