//! Webhooks: the change feed pushed to receivers as signed CloudEvents
//! (HTTP binary mode), in sequence order, at least once, retried with
//! backoff and dead-lettered when a receiver keeps failing
//! (docs/EVENTS.md, "Webhooks").
//!
//! Durable: each webhook's cursor, lease and dead letters are rows of the
//! metadata database (`pavilion_store::events::webhooks`), so a restart, a
//! `kill -9` or another replica carries on where delivery stopped. One
//! replica at a time delivers a webhook (the lease holder); the others
//! take over when its lease expires.

pub mod api;
mod deliver;
mod sign;

pub use sign::{signature_header, SIGNATURE_HEADER};

use crate::state::AppState;
use pavilion_store::gc::retention::Glob;
use pavilion_store::{Event, StoreError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// One `[[events.webhook]]`, checked by the configuration.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Unique, `[a-z0-9-]`: names its cursor and its routes.
    pub name: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Only events of repositories matching one of these (empty: all,
    /// including events of no repository).
    pub repositories: Vec<Glob>,
    /// Only these types (empty: all).
    pub types: Vec<String>,
    /// The HMAC-SHA256 key of `Pavilion-Signature`.
    pub secret: Vec<u8>,
    /// Attempts per event before it is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each.
    pub retry_initial: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// Longest one attempt may take, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    /// Everything but the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("types", &self.types)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Whether `e` is for this webhook (its type is filtered in the query).
    pub fn wants(&self, e: &Event) -> bool {
        if !self.types.is_empty() && !self.types.contains(&e.kind) {
            return false;
        }
        if self.repositories.is_empty() {
            return true;
        }
        e.repository
            .as_deref()
            .is_some_and(|r| self.repositories.iter().any(|g| g.is_match(r)))
    }

    /// The URL as shown to readers: scheme, host and path, without
    /// credentials or a query (either may hold a token).
    pub fn shown_url(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (host, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        format!("{scheme}://{host}{path}")
    }
}

/// The configured webhooks and this replica's name as a lease holder.
#[derive(Debug, Default)]
pub struct Webhooks {
    /// In configuration order.
    pub hooks: Vec<Arc<WebhookConfig>>,
    /// This replica's lease holder id.
    pub holder: String,
}

impl Webhooks {
    /// `hooks`, delivered by `holder`.
    pub fn new(hooks: Vec<WebhookConfig>, holder: String) -> Self {
        Webhooks {
            hooks: hooks.into_iter().map(Arc::new).collect(),
            holder,
        }
    }

    /// The webhook named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<WebhookConfig>> {
        self.hooks.iter().find(|h| h.name == name)
    }
}

/// File in the data directory holding this replica's holder id.
const HOLDER_FILE: &str = "webhook-holder";

/// This replica's lease holder id: the host name and an id kept in the
/// data directory, so a replica restarted on its data (after `kill -9`)
/// resumes its own leases at once instead of waiting for them to expire,
/// while replicas on other hosts or data directories never share one.
pub fn holder_id(data_dir: &Path) -> std::io::Result<String> {
    let file = data_dir.join(HOLDER_FILE);
    let id = match std::fs::read_to_string(&file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&file, &id)?;
            id
        }
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    let host: String = host.trim().chars().take(64).collect();
    Ok(if host.is_empty() {
        id
    } else {
        format!("{host}/{id}")
    })
}

/// Creates each webhook's cursor at the end of the feed if it has none
/// (before the server is ready: the first event after the start is
/// delivered).
pub async fn register(state: &AppState) -> Result<(), StoreError> {
    for h in &state.webhooks.hooks {
        state.meta.webhook_register(&h.name).await?;
    }
    Ok(())
}

/// One delivery task per webhook; each ends when the feed stops.
pub fn start(state: &Arc<AppState>) -> Vec<JoinHandle<()>> {
    state
        .webhooks
        .hooks
        .iter()
        .map(|h| tokio::spawn(deliver::run(state.clone(), h.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str) -> WebhookConfig {
        WebhookConfig {
            name: "a".into(),
            url: url.into(),
            repositories: vec![Glob::new("team/**").unwrap()],
            types: vec![],
            secret: b"k".to_vec(),
            max_attempts: 1,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn shown_urls_hide_credentials_and_queries() {
        let h = hook("https://u:p@example.com:8443/in/x?token=s#f");
        assert_eq!(h.shown_url(), "https://example.com:8443/in/x");
        assert_eq!(hook("http://h").shown_url(), "http://h");
        assert!(!format!("{h:?}").contains("secret"));
    }

    #[test]
    fn repository_globs_filter_and_leave_out_repositoryless_events() {
        let h = hook("http://h/");
        let mut e = Event {
            seq: 1,
            id: "i".into(),
            repository: Some("team/a/b".into()),
            repo_seq: Some(1),
            kind: "dev.pavilion.artifact.pushed".into(),
            subject: None,
            at: 0,
            actor: None,
            traceparent: None,
            data: serde_json::Value::Null,
        };
        assert!(h.wants(&e));
        e.repository = Some("other/a".into());
        assert!(!h.wants(&e));
        e.repository = None;
        assert!(!h.wants(&e));
    }
}
