//! What a repository browser (the web UI) lists: repositories found by a
//! part of their name with their counts, and a repository's tags with what
//! each names. One statement per page on both engines, each bounded by the
//! page size: the per-row figures are correlated subqueries on indexed
//! columns (primary keys that start with the repository, the referrers
//! index), so a page costs the same with ten repositories or ten thousand.

use crate::error::StoreError;
use crate::meta::MetaStore;
use sqlx::Row;

/// Most rows one browsing page returns, whatever is asked.
pub const MAX_BROWSE_PAGE: i64 = 1000;

/// Longest search text, in bytes (a repository name is at most 255).
pub const MAX_SEARCH_BYTES: usize = 256;

/// The escape character of the search's LIKE pattern. Not a backslash:
/// PostgreSQL reads `'\'` differently with `standard_conforming_strings`
/// off, and a character no configuration touches needs no such care.
const ESCAPE: char = '!';

/// A repository as a browser lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    /// Its name.
    pub name: String,
    /// How many tags it has.
    pub tags: i64,
    /// How many manifests it holds (tagged or not, referrers included).
    pub manifests: i64,
    /// Unix ms of its newest manifest push or tag change; `None` when it
    /// holds neither (blobs only).
    pub updated_at: Option<i64>,
}

/// A tag as a browser lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSummary {
    /// The tag.
    pub tag: String,
    /// The manifest it names.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// Its artifact type (or its config's media type), if any.
    pub artifact_type: Option<String>,
    /// The manifest's own bytes.
    pub size: i64,
    /// The manifest plus every distinct blob it references, through an
    /// index's children too (from `manifest_refs`, what garbage collection
    /// reads); `None` when the manifest predates that index.
    pub total_size: Option<i64>,
    /// Unix ms when the tag was last set.
    pub pushed_at: i64,
    /// Referrers of the manifest with the artifact type asked for.
    pub signatures: i64,
}

/// The LIKE pattern matching names that contain `q`, lowercased (names are
/// lowercase by the distribution spec's grammar, so this is the
/// case-insensitive match), with `%`, `_` and the escape character itself
/// taken literally.
pub fn contains_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | ESCAPE) {
            p.push(ESCAPE);
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn opt(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

impl MetaStore {
    /// Repositories whose name contains `q` (case-insensitively; `%` and
    /// `_` are plain characters), after `last` in byte order, at most `n`
    /// (and at most one more than [`MAX_BROWSE_PAGE`], which tells a
    /// caller whether a next page exists). The name filter reads the
    /// primary key in order from `last`, stopping once the page is full;
    /// the counts and times are read for the page's rows only.
    pub async fn search_repositories(
        &self,
        q: &str,
        last: Option<&str>,
        n: i64,
    ) -> Result<Vec<RepoSummary>, StoreError> {
        let _t = self.time("catalog");
        let rows = sqlx::query(
            "SELECT r.name AS name, \
             (SELECT COUNT(*) FROM tags t WHERE t.repo = r.name) AS tags, \
             (SELECT COUNT(*) FROM manifests m WHERE m.repo = r.name) AS manifests, \
             (SELECT MAX(m.created_at) FROM manifests m WHERE m.repo = r.name) AS manifest_at, \
             (SELECT MAX(t.updated_at) FROM tags t WHERE t.repo = r.name) AS tag_at \
             FROM repositories r WHERE r.name > $1 AND r.name LIKE $2 ESCAPE '!' \
             ORDER BY r.name LIMIT $3",
        )
        .bind(last.unwrap_or(""))
        .bind(contains_pattern(q))
        .bind(n.clamp(0, MAX_BROWSE_PAGE + 1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let times = [opt(r, "manifest_at")?, opt(r, "tag_at")?];
                Ok(RepoSummary {
                    name: r.try_get("name")?,
                    tags: opt(r, "tags")?.unwrap_or(0),
                    manifests: opt(r, "manifests")?.unwrap_or(0),
                    updated_at: times.into_iter().flatten().max(),
                })
            })
            .collect()
    }

    /// The tags of `repo` after `last` in byte order, at most `n` (and at
    /// most one more than [`MAX_BROWSE_PAGE`]), each with its manifest, the bytes it
    /// references and how many referrers of `signature_type` it has.
    ///
    /// What a manifest references is walked in `manifest_refs` (kind 1 is
    /// an index's child, whose own references count too) by a recursive
    /// subquery per row, on the primary key: a page costs its own
    /// manifests' references, never the repository's. The UNION keeps
    /// each reference once, so a layer two platforms share counts once.
    pub async fn tag_summaries(
        &self,
        repo: &str,
        last: Option<&str>,
        n: i64,
        signature_type: &str,
    ) -> Result<Vec<TagSummary>, StoreError> {
        let _t = self.time("tags_list");
        let rows = sqlx::query(
            "WITH page AS ( \
               SELECT t.tag AS tag, t.digest AS digest, t.updated_at AS updated_at FROM tags t \
               WHERE t.repo = $1 AND t.tag > $2 ORDER BY t.tag LIMIT $3) \
             SELECT p.tag AS tag, p.digest AS digest, p.updated_at AS pushed_at, \
               m.media_type AS media_type, m.artifact_type AS artifact_type, m.size AS size, \
               CAST(m.refs_known AS BIGINT) AS refs_known, \
               (WITH RECURSIVE reach (digest, kind) AS ( \
                  SELECT r.digest, r.kind FROM manifest_refs r \
                  WHERE r.repo = $1 AND r.manifest = p.digest \
                  UNION \
                  SELECT r.digest, r.kind FROM reach x JOIN manifest_refs r \
                  ON r.repo = $1 AND r.manifest = x.digest WHERE x.kind = 1) \
                SELECT CAST(SUM(b.size) AS BIGINT) FROM reach x JOIN blobs b ON b.digest = x.digest \
               ) AS refs_bytes, \
               (SELECT COUNT(*) FROM manifests g WHERE g.repo = $1 AND g.subject = p.digest \
                AND g.artifact_type = $4) AS signatures \
             FROM page p JOIN manifests m ON m.repo = $1 AND m.digest = p.digest \
             ORDER BY p.tag",
        )
        .bind(repo)
        .bind(last.unwrap_or(""))
        .bind(n.clamp(0, MAX_BROWSE_PAGE + 1))
        .bind(signature_type)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let size: i64 = r.try_get("size")?;
                let known = opt(r, "refs_known")?.unwrap_or(0) != 0;
                let refs = opt(r, "refs_bytes")?.unwrap_or(0);
                Ok(TagSummary {
                    tag: r.try_get("tag")?,
                    digest: r.try_get("digest")?,
                    media_type: r.try_get("media_type")?,
                    artifact_type: r.try_get("artifact_type")?,
                    size,
                    total_size: known.then_some(size + refs),
                    pushed_at: r.try_get("pushed_at")?,
                    signatures: opt(r, "signatures")?.unwrap_or(0),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn search_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern(""), "%%");
        assert_eq!(contains_pattern("Team/M"), "%team/m%");
        assert_eq!(contains_pattern("a%b_c!d\\e"), "%a!%b!_c!!d\\e%");
    }
}
