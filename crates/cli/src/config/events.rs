//! `[events]` of the serve configuration: the change feed's retention and
//! the name in its events' `source`.
//!
//! ```toml
//! [events]
//! retention_days = 30     # events older than this are pruned
//! max_events = 1000000    # and the oldest beyond this many
//! source = "registry"     # events' source: /pavilion/<source>
//! ```

use anyhow::{bail, Result};
use pavilion_store::EventRetention;
use serde::Deserialize;
use std::time::Duration;

/// Longest retention a configuration may ask for (ten years): the feed is
/// a window on recent changes, not an archive.
const MAX_RETENTION_DAYS: u64 = 3650;

/// `[events]` as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    retention_days: Option<u64>,
    max_events: Option<u64>,
    source: Option<String>,
    /// `[[events.webhook]]`.
    webhook: Option<Vec<super::webhooks::WebhookFile>>,
}

impl EventsFile {
    /// The retention it asks for, checked.
    pub fn retention(&self) -> Result<EventRetention> {
        let mut r = EventRetention::default();
        if let Some(days) = self.retention_days {
            if days == 0 || days > MAX_RETENTION_DAYS {
                bail!("[events] retention_days is {days}: give 1 to {MAX_RETENTION_DAYS}");
            }
            r.max_age = Duration::from_secs(days * 24 * 3600);
        }
        if let Some(n) = self.max_events {
            if n == 0 {
                bail!("[events] max_events must be at least 1");
            }
            r.max_events = n;
        }
        Ok(r)
    }

    /// The webhooks, checked (`[[events.webhook]]`).
    pub fn webhooks(&self) -> Result<Vec<pavilion_registry::feed::webhooks::WebhookConfig>> {
        super::webhooks::settings(self.webhook.as_deref().unwrap_or_default())
    }

    /// The name in `source`, checked: it becomes part of a URI reference.
    pub fn source(&self) -> Result<String> {
        let s = self.source.clone().unwrap_or_else(|| "registry".into());
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !ok {
            bail!("[events] source {s:?}: give 1 to 128 letters, digits, '-', '.', '_' or ':'");
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_default_and_checked() {
        let parse = |t: &str| toml::from_str::<EventsFile>(t).unwrap();
        assert_eq!(parse("").retention().unwrap(), EventRetention::default());
        assert_eq!(parse("max_events = 5").retention().unwrap().max_events, 5);
        assert!(parse("max_events = 0").retention().is_err());
        assert!(parse("retention_days = 0").retention().is_err());
        assert_eq!(parse("").source().unwrap(), "registry");
        assert!(parse("source = \"a/b\"").source().is_err());
        assert!(toml::from_str::<EventsFile>("max_event = 1").is_err());
    }
}
