//! `[metrics]` of the serve configuration: per-repository series, off by
//! default because repository names come from clients.
//!
//! ```toml
//! [metrics]
//! repository_labels = true      # pavilion_repository_* series
//! repository_label_limit = 100  # named repositories; the rest: "_other"
//! enabled = true                # false: nothing counted, /metrics is 404
//! ```

use anyhow::{bail, Result};
use serde::Deserialize;

/// Named repositories by default when per-repository series are on.
pub const DEFAULT_REPOSITORY_LABEL_LIMIT: usize = 100;
/// The most a configuration may ask for: each repository adds a handful
/// of series to every scrape.
const MAX_REPOSITORY_LABEL_LIMIT: usize = 10_000;

/// `[metrics]` as written.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Count for `/metrics` at all (default true).
    pub enabled: Option<bool>,
    repository_labels: Option<bool>,
    repository_label_limit: Option<usize>,
}

impl MetricsFile {
    /// How many repositories get their own series (`None`: the series
    /// are off).
    pub fn repository_labels(&self) -> Result<Option<usize>> {
        let limit = self
            .repository_label_limit
            .unwrap_or(DEFAULT_REPOSITORY_LABEL_LIMIT);
        if limit > MAX_REPOSITORY_LABEL_LIMIT {
            bail!(
                "[metrics] repository_label_limit is {limit}, more than {MAX_REPOSITORY_LABEL_LIMIT}"
            );
        }
        Ok((self.repository_labels == Some(true)).then_some(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_asked_and_limit_defaults_to_100() {
        let parse = |t: &str| toml::from_str::<MetricsFile>(t).unwrap();
        assert_eq!(parse("").repository_labels().unwrap(), None);
        assert_eq!(
            parse("repository_label_limit = 5")
                .repository_labels()
                .unwrap(),
            None
        );
        assert_eq!(
            parse("repository_labels = true")
                .repository_labels()
                .unwrap(),
            Some(100)
        );
        assert_eq!(
            parse("repository_labels = true\nrepository_label_limit = 3")
                .repository_labels()
                .unwrap(),
            Some(3)
        );
        assert!(
            parse("repository_labels = true\nrepository_label_limit = 20000")
                .repository_labels()
                .is_err()
        );
        assert!(toml::from_str::<MetricsFile>("repository_labelz = true").is_err());
    }
}
