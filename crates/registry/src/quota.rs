//! Storage quotas (issue 17, item 4): limits on the bytes a repository, or
//! every repository of a namespace together, is charged, checked before a
//! push adds anything.
//!
//! Usage is counted as `GET /pavilion/v1/usage` shows it: the blobs a
//! repository holds (each once, a blob shared by two repositories in both)
//! plus its manifests' bytes. A push is refused (403 DENIED) when it would
//! take usage past the limit of any quota matching the repository; nothing
//! stored changes, an upload session keeps what it had. Checks read the
//! database at the moment of the request: pushes running at the same time
//! each see the usage before the others, so together they may overshoot by
//! what is in flight. A quota lowered below current usage keeps what is
//! stored (it can be pulled and deleted) and refuses what would add to it.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use pavilion_oci::{Digest, ErrorCode, RepoName};
use pavilion_store::gc::retention::Glob;
use pavilion_store::usage::RepoUsage;
use pavilion_store::{MetaStore, StoreError};
use std::collections::HashMap;

/// Which repositories a quota covers, and how it counts them.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Each repository matching the glob, on its own.
    Each(Glob),
    /// Every repository named `<namespace>/...`, together.
    Namespace(String),
}

/// One quota.
#[derive(Debug, Clone)]
pub struct Quota {
    /// What it covers.
    pub scope: Scope,
    /// The most bytes, at least 1.
    pub limit: u64,
}

impl Quota {
    /// A quota of `limit` bytes on each repository matching `glob`
    /// (`*` within one path segment, `**` across).
    pub fn each(glob: &str, limit: u64) -> Result<Quota, String> {
        Self::with_limit(Scope::Each(Glob::new(glob)?), limit)
    }

    /// A quota of `limit` bytes on every repository below `namespace`
    /// together (a repository name; the repository of that very name is
    /// not below it).
    pub fn namespace(namespace: &str, limit: u64) -> Result<Quota, String> {
        let ns = RepoName::new(namespace)
            .map_err(|e| format!("namespace {namespace:?} is not a repository name: {e}"))?;
        Self::with_limit(Scope::Namespace(ns.as_str().to_string()), limit)
    }

    fn with_limit(scope: Scope, limit: u64) -> Result<Quota, String> {
        if limit == 0 {
            return Err("a limit must be more than 0 bytes".into());
        }
        Ok(Quota { scope, limit })
    }

    /// Whether it covers repository `repo`.
    pub fn applies_to(&self, repo: &str) -> bool {
        match &self.scope {
            Scope::Each(g) => g.is_match(repo),
            Scope::Namespace(ns) => repo
                .strip_prefix(ns.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }

    /// The quota as people read it: `team/* (each repository)`,
    /// `namespace research (all its repositories together)`.
    pub fn describe(&self) -> String {
        match &self.scope {
            Scope::Each(g) => format!("{} (each repository)", g.as_str()),
            Scope::Namespace(ns) => format!("namespace {ns} (all its repositories together)"),
        }
    }

    /// Who is charged when `repo` grows: the repository, or the namespace.
    fn charged(&self, repo: &str) -> String {
        match &self.scope {
            Scope::Each(_) => repo.to_string(),
            Scope::Namespace(ns) => format!("{ns}/**"),
        }
    }
}

/// Bytes as people read them: binary units, one decimal (`512 B`, `9.8 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A count from the store as bytes (sums are never negative; a broken row
/// must not wrap around to a huge number).
fn bytes(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Usage of one repository and of namespaces, each read once per request
/// or page however many quotas need it.
#[derive(Default)]
struct Usage {
    repos: HashMap<String, u64>,
    namespaces: HashMap<String, u64>,
}

impl Usage {
    async fn of(&mut self, meta: &MetaStore, q: &Quota, repo: &str) -> Result<u64, StoreError> {
        let (cache, key) = match &q.scope {
            Scope::Each(_) => (&mut self.repos, repo),
            Scope::Namespace(ns) => (&mut self.namespaces, ns.as_str()),
        };
        if let Some(n) = cache.get(key) {
            return Ok(*n);
        }
        let n = bytes(match &q.scope {
            Scope::Each(_) => meta.repo_bytes(repo).await?,
            Scope::Namespace(ns) => meta.namespace_bytes(ns).await?,
        });
        cache.insert(key.to_string(), n);
        Ok(n)
    }
}

/// Refuses `adding` more bytes in `repo` (`what`: "upload", "mount",
/// "manifest") when that would take it past any of its quotas.
async fn check(state: &AppState, repo: &str, adding: u64, what: &str) -> ApiResult<()> {
    let mut usage = Usage::default();
    for q in state.quotas.iter().filter(|q| q.applies_to(repo)) {
        let used = usage.of(&state.meta, q, repo).await?;
        let after = used.saturating_add(adding);
        if after > q.limit {
            refused(state, repo, what, q, used, adding).await;
            return Err(ApiError::new(
                ErrorCode::Denied,
                format!(
                    "quota for {} exceeded: {} uses {}, this {what} brings it to {}, limit {}",
                    q.describe(),
                    q.charged(repo),
                    human(used),
                    human(after),
                    human(q.limit)
                ),
            )
            // Clients such as docker show only the message.
            .detail_as_message());
        }
    }
    Ok(())
}

/// Writes the refusal to the change feed; a feed that cannot be written is
/// logged, and the refusal stands either way.
async fn refused(state: &AppState, repo: &str, what: &str, q: &Quota, used: u64, adding: u64) {
    let event = pavilion_store::NewEvent {
        kind: pavilion_store::events::QUOTA_REFUSED,
        repository: Some(repo),
        subject: Some(repo.to_string()),
        data: serde_json::json!({
            "repository": repo,
            "operation": what,
            "quota": q.describe(),
            "usedBytes": used,
            "addingBytes": adding,
            "limitBytes": q.limit,
        }),
    };
    let origin = crate::feed::current();
    if let Err(e) = state.meta.record_events(&origin, &[event]).await {
        tracing::warn!(error = %e, "could not record a quota refusal in the change feed");
    }
}

/// Whether any quota covers `repo` (without one, no check reads anything).
fn limited(state: &AppState, repo: &RepoName) -> bool {
    state.quotas.iter().any(|q| q.applies_to(repo.as_str()))
}

/// Before an append to upload session `id` of `repo` accepts data: what
/// the session holds plus the `declared` length of the body (when there is
/// none, what the session holds alone) must fit.
pub async fn check_append(
    state: &AppState,
    repo: &RepoName,
    id: &str,
    declared: Option<u64>,
) -> ApiResult<()> {
    if !limited(state, repo) || declared == Some(0) {
        return Ok(());
    }
    let held = state
        .blobs
        .upload_len(id)
        .await?
        .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
    let adding = held.saturating_add(declared.unwrap_or(0));
    check(state, repo.as_str(), adding, "upload").await
}

/// Whether `repo` already links blob `digest` (which then adds nothing).
async fn holds_blob(state: &AppState, repo: &RepoName, digest: &Digest) -> ApiResult<bool> {
    Ok(state
        .meta
        .blob_in_repo(repo.as_str(), digest)
        .await?
        .is_some())
}

/// Before an upload of `len` bytes is committed as `digest` in `repo`:
/// a blob the repository already holds adds nothing.
pub async fn check_finish(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
    len: u64,
) -> ApiResult<()> {
    if !limited(state, repo) || holds_blob(state, repo, digest).await? {
        return Ok(());
    }
    check(state, repo.as_str(), len, "upload").await
}

/// Before blob `digest` is mounted into `repo`: its size counts unless the
/// repository already holds it.
pub async fn check_mount(state: &AppState, repo: &RepoName, digest: &Digest) -> ApiResult<()> {
    if !limited(state, repo) || holds_blob(state, repo, digest).await? {
        return Ok(());
    }
    // A blob gone meanwhile is not mounted anyway (the client uploads it).
    let Some(size) = state.meta.blob_size(digest).await? else {
        return Ok(());
    };
    check(state, repo.as_str(), size, "mount").await
}

/// Before manifest `digest` of `len` bytes is stored in `repo`: one the
/// repository already holds (a new tag for it) adds nothing.
pub async fn check_manifest(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
    len: u64,
) -> ApiResult<()> {
    if !limited(state, repo)
        || state
            .meta
            .manifest_by_digest(repo.as_str(), digest)
            .await?
            .is_some()
    {
        return Ok(());
    }
    check(state, repo.as_str(), len, "manifest").await
}

/// Where a repository stands against its tightest quota: the one with the
/// least room left (the smaller limit when two have the same room).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuotaStatus {
    /// The quota, as [`Quota::describe`] writes it.
    pub quota: String,
    /// Its limit in bytes.
    pub limit: u64,
    /// The bytes counted against it (the namespace's, for a namespace quota).
    pub used: u64,
}

/// The tightest quota of each of `repos` (`None`: no quota covers it).
pub async fn statuses(
    meta: &MetaStore,
    quotas: &[Quota],
    repos: &[RepoUsage],
) -> Result<Vec<Option<QuotaStatus>>, StoreError> {
    let mut usage = Usage::default();
    let mut out = Vec::with_capacity(repos.len());
    for r in repos {
        // Its own bytes are on the row already.
        usage.repos.insert(r.name.clone(), bytes(r.bytes()));
        let mut best: Option<QuotaStatus> = None;
        for q in quotas.iter().filter(|q| q.applies_to(&r.name)) {
            let used = usage.of(meta, q, &r.name).await?;
            let room = |limit: u64, used: u64| i128::from(limit) - i128::from(used);
            let tighter = best
                .as_ref()
                .is_none_or(|b| (room(q.limit, used), q.limit) < (room(b.limit, b.used), b.limit));
            if tighter {
                best = Some(QuotaStatus {
                    quota: q.describe(),
                    limit: q.limit,
                    used,
                });
            }
        }
        out.push(best);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_cover_what_they_name() {
        let each = Quota::each("team/*", 10).unwrap();
        assert!(each.applies_to("team/a") && !each.applies_to("team/a/b"));
        assert!(!each.applies_to("team"));
        let ns = Quota::namespace("re_s", 10).unwrap();
        assert!(ns.applies_to("re_s/a") && ns.applies_to("re_s/a/b"));
        for other in ["re_s", "rexs/a", "re_sa/b", "re_s-x/a"] {
            assert!(!ns.applies_to(other), "{other}");
        }
        assert_eq!(ns.charged("re_s/a"), "re_s/**");
        assert!(Quota::each("team/[", 1).is_err());
        assert!(Quota::each("team/*", 0).is_err());
        assert!(Quota::namespace("Research", 1).is_err());
        assert!(Quota::namespace("research/", 1).is_err());
        assert_eq!(
            Quota::each("a/**", 1).unwrap().describe(),
            "a/** (each repository)"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
    }
}
