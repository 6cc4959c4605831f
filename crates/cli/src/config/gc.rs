//! `[gc]` of the serve configuration: the collection schedule inside
//! `serve`, its grace period, and retention rules (also read by
//! `pavilion gc`).
//!
//! ```toml
//! [gc]
//! enabled = true      # run inside serve (off by default)
//! interval = "1h"
//! grace = "24h"       # longer than the longest push
//!
//! [[gc.retention]]
//! repositories = "team/*"
//! keep_last = 10
//! tags = ["v*"]
//! protect_tags = ["prod*"]
//! protect_signed = true
//! untagged_after = "7d"   # or "never"
//! ```

use anyhow::{bail, Result};
use pavilion_store::gc::retention::{Glob, Retention, Rule};
use serde::Deserialize;
use std::time::Duration;

/// Default grace period: a day, longer than any push we expect (a 500 GiB
/// model at 100 MB/s takes under two hours).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Default interval of the schedule inside serve.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Most retention rules (each is matched against every repository).
const MAX_RULES: usize = 1000;

/// `[gc]` as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct GcFile {
    enabled: Option<bool>,
    interval: Option<String>,
    grace: Option<String>,
    retention: Option<Vec<RuleFile>>,
}

/// One `[[gc.retention]]` as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    repositories: String,
    keep_last: Option<usize>,
    tags: Option<Vec<String>>,
    protect_tags: Option<Vec<String>>,
    protect_signed: Option<bool>,
    untagged_after: Option<String>,
}

/// `[gc]` checked.
#[derive(Debug, Clone)]
pub struct GcSettings {
    /// Whether serve runs it on a schedule.
    pub enabled: bool,
    /// How often.
    pub interval: Duration,
    /// Its grace period.
    pub grace: Duration,
    /// Retention rules.
    pub retention: Retention,
}

/// A grace period: a duration, or "0" (the duration grammar refuses "0s";
/// a grace of zero is for tests and spelled so on purpose). For `[gc]
/// grace` and `pavilion gc --grace`.
pub fn grace(key: &str, s: &str) -> Result<Duration> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    match crate::commands::sign::parse_duration(s) {
        Ok(d) => Ok(Duration::from_secs(d.whole_seconds().max(0) as u64)),
        Err(_) => bail!("{key} {s:?} is not a duration like 24h, 90m or 0"),
    }
}

pub fn duration(key: &str, s: &str) -> Result<Duration> {
    match crate::commands::sign::parse_duration(s) {
        Ok(d) => Ok(Duration::from_secs(d.whole_seconds().max(0) as u64)),
        Err(_) => bail!("{key} {s:?} is not a duration like 30d, 12h, 90m or 3600s"),
    }
}

fn globs(key: &str, items: Option<&Vec<String>>) -> Result<Vec<Glob>> {
    items
        .into_iter()
        .flatten()
        .map(|g| Glob::new(g).map_err(|e| anyhow::anyhow!("{key}: {e}")))
        .collect()
}

impl GcFile {
    /// Checks every key; an error is one line naming what is wrong.
    pub fn settings(&self) -> Result<GcSettings> {
        let grace = match &self.grace {
            Some(g) => grace("gc.grace", g)?,
            None => DEFAULT_GRACE,
        };
        let interval = match &self.interval {
            Some(i) => duration("gc.interval", i)?,
            None => DEFAULT_INTERVAL,
        };
        let rules = self.retention.as_deref().unwrap_or_default();
        if rules.len() > MAX_RULES {
            bail!("gc.retention: {} rules, at most {MAX_RULES}", rules.len());
        }
        let mut retention = Retention::default();
        for (i, r) in rules.iter().enumerate() {
            let at = format!("gc.retention {} ({:?})", i + 1, r.repositories);
            let mut rule =
                Rule::new(Glob::new(&r.repositories).map_err(|e| anyhow::anyhow!("{at}: {e}"))?);
            rule.keep_last = r.keep_last;
            rule.tags = globs(&format!("{at} tags"), r.tags.as_ref())?;
            rule.protect_tags = globs(&format!("{at} protect_tags"), r.protect_tags.as_ref())?;
            rule.protect_signed = r.protect_signed.unwrap_or(false);
            rule.untagged_after = match r.untagged_after.as_deref() {
                None => Some(Duration::ZERO),
                Some("never") => None,
                Some(d) => Some(duration(&format!("{at} untagged_after"), d)?),
            };
            retention.rules.push(rule);
        }
        Ok(GcSettings {
            enabled: self.enabled.unwrap_or(false),
            interval,
            grace,
            retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GcSettings> {
        #[derive(Deserialize)]
        struct F {
            gc: GcFile,
        }
        toml::from_str::<F>(text)?.gc.settings()
    }

    #[test]
    fn rules_are_read_and_each_mistake_names_its_rule() {
        let s = parse(
            "[gc]\nenabled = true\ninterval = \"10m\"\ngrace = \"2h\"\n\
             [[gc.retention]]\nrepositories = \"team/*\"\nkeep_last = 3\ntags = [\"v*\"]\n\
             protect_tags = [\"prod*\"]\nprotect_signed = true\nuntagged_after = \"never\"\n",
        )
        .unwrap();
        assert!(s.enabled);
        assert_eq!(s.interval, Duration::from_secs(600));
        assert_eq!(s.grace, Duration::from_secs(7200));
        let r = s.retention.rule_for("team/a").unwrap();
        assert_eq!(r.keep_last, Some(3));
        assert!(r.protects_tag("prod-1") && r.protect_signed && r.untagged_after.is_none());
        assert_eq!(parse("[gc]\n").unwrap().grace, DEFAULT_GRACE);
        for (text, want) in [
            ("[gc]\ngrace = \"soon\"\n", "gc.grace \"soon\""),
            (
                "[[gc.retention]]\nrepositories = \"team/[\"\n",
                "gc.retention 1 (\"team/[\")",
            ),
            (
                "[[gc.retention]]\nrepositories = \"a\"\n[[gc.retention]]\nrepositories = \"b\"\ntags = [\"\"]\n",
                "gc.retention 2 (\"b\") tags",
            ),
            (
                "[[gc.retention]]\nrepositories = \"a\"\nuntagged_after = \"a week\"\n",
                "gc.retention 1 (\"a\") untagged_after",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(parse("[[gc.retention]]\nrepositories = \"a\"\nkeep = 1\n").is_err());
    }
}
