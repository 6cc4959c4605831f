//! `[ui]` of the serve configuration: the web UI at `/ui/`.
//!
//! ```toml
//! [ui]
//! enabled = true    # false (or serve --no-ui): /ui/ is not served
//! session = "8h"    # how long a sign-in lasts
//! ```

use anyhow::{bail, Result};
use serde::Deserialize;
use std::time::Duration;

/// How long a sign-in lasts by default: a working day.
const DEFAULT_SESSION: Duration = Duration::from_secs(8 * 3600);
/// The longest a sign-in may be made to last: the cookie carries the
/// credential, so it should not outlive a password change by much.
const MAX_SESSION: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[ui]` as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct UiFile {
    /// Serve the UI (default true).
    pub enabled: Option<bool>,
    session: Option<String>,
}

impl UiFile {
    /// How long a sign-in lasts.
    pub fn session(&self) -> Result<Duration> {
        let Some(s) = &self.session else {
            return Ok(DEFAULT_SESSION);
        };
        let d = super::gc::duration("[ui] session", s)?;
        if d.is_zero() || d > MAX_SESSION {
            bail!("[ui] session {s:?} must be more than 0 and at most 30d");
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions() {
        let parse = |t: &str| toml::from_str::<UiFile>(t).unwrap();
        assert_eq!(parse("").session().unwrap(), DEFAULT_SESSION);
        assert_eq!(
            parse("session = \"90m\"").session().unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse("session = \"400d\"").session().is_err());
        assert!(parse("session = \"soon\"").session().is_err());
        assert!(toml::from_str::<UiFile>("colour = 1").is_err());
    }
}
