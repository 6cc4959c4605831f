//! `[[events.webhook]]` of the serve configuration: where the change feed
//! is delivered (docs/EVENTS.md, "Webhooks").
//!
//! ```toml
//! [[events.webhook]]
//! name = "ci"                          # [a-z0-9-], unique
//! url = "https://ci.example.com/hook"  # http or https
//! repositories = ["team/**"]           # globs; default: all
//! types = ["dev.pavilion.artifact.pushed"]  # default: all
//! secret_file = "/etc/pavilion/ci.key" # or secret = "..."; one is required
//! max_attempts = 12
//! retry_initial = "1s"
//! retry_max = "5m"
//! timeout = "10s"
//! ```
//!
//! Every mistake stops serve with one line naming the entry and the key.

use anyhow::{bail, Result};
use pavilion_registry::feed::webhooks::WebhookConfig;
use pavilion_store::events::TYPES;
use pavilion_store::gc::retention::Glob;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Shortest secret accepted: an HMAC key guessable by search signs nothing.
const MIN_SECRET_BYTES: usize = 16;
/// Longest URL accepted.
const MAX_URL_CHARS: usize = 2048;
/// Most attempts per event.
const MAX_ATTEMPTS: u32 = 100;
/// Longest attempt: the webhook's lease must outlast one.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(24 * 3600);

/// One or several globs.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Globs {
    One(String),
    Many(Vec<String>),
}

/// One `[[events.webhook]]` as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct WebhookFile {
    name: Option<String>,
    url: Option<String>,
    repositories: Option<Globs>,
    types: Option<Vec<String>>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    max_attempts: Option<u32>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    timeout: Option<String>,
}

/// `250ms`, `10s`, `5m`, `1h`.
fn duration(key: &str, s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = match n.parse() {
        Ok(n) => n,
        Err(_) => bail!("{key} {s:?} is not a duration like 250ms, 10s, 5m or 1h"),
    };
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => bail!("{key} {s:?} is not a duration like 250ms, 10s, 5m or 1h"),
    };
    Ok(d)
}

impl WebhookFile {
    /// The checked webhook; `at` names the entry in errors.
    fn settings(&self, at: &str) -> Result<WebhookConfig> {
        let Some(name) = self.name.clone() else {
            bail!("{at}.name is missing");
        };
        let at = format!("{at} ({name:?})");
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            bail!("{at}.name: give 1 to 64 of a-z, 0-9 and '-'");
        }
        let Some(url) = self.url.clone() else {
            bail!("{at}.url is missing");
        };
        let parsed = reqwest::Url::parse(&url);
        match parsed {
            Ok(u)
                if (u.scheme() == "http" || u.scheme() == "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
                    && url.len() <= MAX_URL_CHARS => {}
            _ => bail!(
                "{at}.url {url:?}: give an http:// or https:// URL with a host (at most {MAX_URL_CHARS} characters)"
            ),
        }
        let repositories = match &self.repositories {
            None => Vec::new(),
            Some(Globs::One(g)) => vec![g.clone()],
            Some(Globs::Many(v)) if v.is_empty() => {
                bail!(
                    "{at}.repositories is empty: leave it out to deliver every repository's events"
                )
            }
            Some(Globs::Many(v)) => v.clone(),
        };
        let repositories = repositories
            .iter()
            .map(|g| Glob::new(g).map_err(|e| anyhow::anyhow!("{at}.repositories: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let mut types = Vec::new();
        for t in self.types.iter().flatten() {
            if !TYPES.contains(&t.as_str()) {
                bail!(
                    "{at}.types: {t:?} is not an event type (one of {})",
                    TYPES.join(", ")
                );
            }
            if !types.contains(t) {
                types.push(t.clone());
            }
        }
        if self.types.as_ref().is_some_and(Vec::is_empty) {
            bail!("{at}.types is empty: leave it out to deliver every type");
        }
        let secret = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => bail!("{at}: give secret or secret_file, not both"),
            (None, None) => {
                bail!("{at}.secret: missing (or secret_file); unsigned webhooks are refused")
            }
            (Some(s), None) => s.clone().into_bytes(),
            (None, Some(p)) => match std::fs::read(p) {
                // A trailing newline is how editors save a one-line file.
                Ok(b) => String::from_utf8_lossy(&b)
                    .trim_end_matches(['\n', '\r'])
                    .as_bytes()
                    .to_vec(),
                Err(e) => bail!("{at}.secret_file {}: {e}", p.display()),
            },
        };
        if secret.len() < MIN_SECRET_BYTES {
            bail!("{at}.secret: at least {MIN_SECRET_BYTES} bytes");
        }
        let max_attempts = self.max_attempts.unwrap_or(12);
        if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
            bail!("{at}.max_attempts is {max_attempts}: give 1 to {MAX_ATTEMPTS}");
        }
        let get = |key: &str, v: &Option<String>, default: Duration| -> Result<Duration> {
            match v {
                Some(s) => duration(&format!("{at}.{key}"), s),
                None => Ok(default),
            }
        };
        let retry_initial = get("retry_initial", &self.retry_initial, Duration::from_secs(1))?;
        let retry_max = get("retry_max", &self.retry_max, Duration::from_secs(300))?;
        let timeout = get("timeout", &self.timeout, Duration::from_secs(10))?;
        if retry_initial.is_zero() || retry_initial > MAX_RETRY {
            bail!("{at}.retry_initial: give more than 0 and at most 24h");
        }
        if retry_max < retry_initial || retry_max > MAX_RETRY {
            bail!("{at}.retry_max: give at least retry_initial and at most 24h");
        }
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            bail!("{at}.timeout: give more than 0 and at most 120s");
        }
        Ok(WebhookConfig {
            name,
            url,
            repositories,
            types,
            secret,
            max_attempts,
            retry_initial,
            retry_max,
            timeout,
        })
    }
}

/// Every webhook, checked, names unique.
pub fn settings(files: &[WebhookFile]) -> Result<Vec<WebhookConfig>> {
    let mut out: Vec<WebhookConfig> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let w = f.settings(&format!("events.webhook[{i}]"))?;
        if out.iter().any(|o| o.name == w.name) {
            bail!("events.webhook[{i}].name {:?} is used twice", w.name);
        }
        out.push(w);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "name = \"ci\"\nurl = \"http://127.0.0.1:1/h\"\nsecret = \"0123456789abcdef\"\n";

    fn check(extra: &str) -> Result<Vec<WebhookConfig>> {
        let f: WebhookFile = toml::from_str(&format!("{GOOD}{extra}"))?;
        settings(&[f])
    }

    #[test]
    fn defaults_and_mistakes() {
        let w = &check("").unwrap()[0];
        assert_eq!((w.max_attempts, w.timeout), (12, Duration::from_secs(10)));
        assert_eq!(w.retry_max, Duration::from_secs(300));
        let w = &check("retry_initial = \"100ms\"\nrepositories = \"a/*\"").unwrap()[0];
        assert_eq!(w.retry_initial, Duration::from_millis(100));
        assert_eq!(w.repositories.len(), 1);
        for (extra, key) in [
            ("max_attempts = 0", "max_attempts"),
            ("timeout = \"10x\"", "timeout"),
            ("retry_initial = \"10m\"\nretry_max = \"1m\"", "retry_max"),
            ("types = [\"nope\"]", "types"),
            ("repositories = [\"a[\"]", "repositories"),
        ] {
            let e = check(extra).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let f: WebhookFile = toml::from_str("name = \"a\"\nurl = \"http://h/\"").unwrap();
        assert!(settings(&[f]).unwrap_err().to_string().contains("secret"));
        let f: WebhookFile = toml::from_str(GOOD).unwrap();
        let e = settings(&[f.clone(), f]).unwrap_err().to_string();
        assert!(e.contains("used twice"), "{e}");
    }
}
