//! The mark: from a snapshot of the metadata, what garbage collection
//! would remove and why. Pure (no I/O), so the dry run and the real run
//! decide alike and the rules are tested without a database.
//!
//! Per repository, the live manifests are: those a tag points at (after
//! retention removed the tags it removes), those claimed within the grace
//! period (or within the rule's `untagged_after`), signed ones under
//! `protect_signed`, and then, repeatedly, every child of a live index and
//! every referrer of a live subject. A repository holding a manifest whose
//! references are unknown keeps everything (fail closed). A link goes
//! when no live manifest of its repository references it and it is older
//! than the grace period; a blob goes when no link and no manifest is
//! left for it and it is older than the grace period.

use super::retention::{Retention, Rule, SIGNATURE_TYPES};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A manifest row.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    pub repo: String,
    pub digest: String,
    pub size: i64,
    pub claimed_at: i64,
    pub subject: Option<String>,
    pub artifact_type: Option<String>,
    pub refs_known: bool,
}

/// A tag row.
#[derive(Debug, Clone)]
pub struct TagRow {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub updated_at: i64,
}

/// A `manifest_refs` row.
#[derive(Debug, Clone)]
pub struct RefRow {
    pub repo: String,
    pub manifest: String,
    pub digest: String,
    /// A child manifest (else a blob).
    pub is_manifest: bool,
}

/// A `repo_blobs` row.
#[derive(Debug, Clone)]
pub struct LinkRow {
    pub repo: String,
    pub digest: String,
    pub claimed_at: i64,
}

/// A `blobs` row.
#[derive(Debug, Clone)]
pub struct BlobRow {
    pub digest: String,
    pub size: i64,
    pub claimed_at: i64,
    pub doomed: bool,
}

/// The metadata as read at the start of a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub manifests: Vec<ManifestRow>,
    pub tags: Vec<TagRow>,
    pub refs: Vec<RefRow>,
    pub links: Vec<LinkRow>,
    pub blobs: Vec<BlobRow>,
}

/// Something the run removes, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gone {
    /// The repository (empty for a blob, which belongs to none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// A tag, or a digest.
    pub name: String,
    /// Bytes it frees (0 for a tag or a link).
    pub bytes: i64,
    /// Why it goes.
    pub reason: String,
}

/// What a run removes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Tags retention removes: (repo, tag, digest it pointed at, updated_at).
    pub tags: Vec<(TagRow, String)>,
    /// Manifests: (row, the cutoff its deletion must still satisfy, reason).
    pub manifests: Vec<(ManifestRow, i64, String)>,
    /// Links no live manifest references.
    pub links: Vec<LinkRow>,
    /// Blobs nothing will hold.
    pub blobs: Vec<(BlobRow, String)>,
    /// Repositories kept whole because a manifest's references are unknown.
    pub unindexed: Vec<String>,
}

/// How a duration reads in a reason.
pub fn show_age(ms: i64) -> String {
    let s = ms / 1000;
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= secs && s / secs * secs == s {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

/// Decides what goes, at time `now` with `grace_ms` (all Unix ms).
pub fn plan(snap: &Snapshot, retention: &Retention, now: i64, grace_ms: i64) -> Plan {
    let cutoff = now - grace_ms;
    let mut out = Plan::default();
    let mut by_repo: BTreeMap<&str, Vec<&ManifestRow>> = BTreeMap::new();
    for m in &snap.manifests {
        by_repo.entry(m.repo.as_str()).or_default().push(m);
    }
    let mut tags_by_repo: HashMap<&str, Vec<&TagRow>> = HashMap::new();
    for t in &snap.tags {
        tags_by_repo.entry(t.repo.as_str()).or_default().push(t);
    }
    let mut children: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    let mut blob_refs: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for r in &snap.refs {
        let key = (r.repo.as_str(), r.manifest.as_str());
        let into = if r.is_manifest {
            &mut children
        } else {
            &mut blob_refs
        };
        into.entry(key).or_default().push(r.digest.as_str());
    }
    // Live (repo, digest) links and live manifest digests, for the blob pass.
    let mut live_links: HashSet<(&str, &str)> = HashSet::new();
    let mut live_manifest_digests: HashSet<&str> = HashSet::new();
    let mut unindexed: HashSet<&str> = HashSet::new();
    let no_tags = Vec::new();
    for (repo, manifests) in &by_repo {
        let rule = retention.rule_for(repo);
        let tags = tags_by_repo.get(repo).unwrap_or(&no_tags);
        let signed: HashSet<&str> = manifests
            .iter()
            .filter(|m| {
                m.artifact_type
                    .as_deref()
                    .is_some_and(|t| SIGNATURE_TYPES.contains(&t))
            })
            .filter_map(|m| m.subject.as_deref())
            .collect();
        let protected_signed =
            |d: &str| rule.is_some_and(|r| r.protect_signed) && signed.contains(d);
        let removed = rule
            .map(|r| retention_removals(r, tags, &protected_signed))
            .unwrap_or_default();
        for (t, why) in &removed {
            out.tags.push(((*t).clone(), why.clone()));
        }
        let removed: HashSet<&str> = removed.iter().map(|(t, _)| t.tag.as_str()).collect();
        let known = manifests.iter().all(|m| m.refs_known);
        if !known {
            unindexed.insert(repo);
            out.unindexed.push(repo.to_string());
        }
        let untagged_cutoff =
            match rule.map_or(Some(0), |r| r.untagged_after.map(|d| d.as_millis() as i64)) {
                None => i64::MIN,
                Some(age) => cutoff.min(now - age),
            };
        let mut live: HashSet<&str> = HashSet::new();
        let mut queue: Vec<&str> = Vec::new();
        for t in tags.iter().filter(|t| !removed.contains(t.tag.as_str())) {
            queue.push(t.digest.as_str());
        }
        for m in manifests {
            if !known || m.claimed_at >= untagged_cutoff || protected_signed(&m.digest) {
                queue.push(m.digest.as_str());
            }
        }
        let mut referrers: HashMap<&str, Vec<&str>> = HashMap::new();
        for m in manifests {
            if let Some(s) = &m.subject {
                referrers
                    .entry(s.as_str())
                    .or_default()
                    .push(m.digest.as_str());
            }
        }
        let present: HashSet<&str> = manifests.iter().map(|m| m.digest.as_str()).collect();
        while let Some(d) = queue.pop() {
            if !present.contains(d) || !live.insert(d) {
                continue;
            }
            queue.extend(children.get(&(*repo, d)).into_iter().flatten());
            queue.extend(referrers.get(d).into_iter().flatten());
        }
        for m in manifests {
            if live.contains(m.digest.as_str()) {
                live_manifest_digests.insert(m.digest.as_str());
                for b in blob_refs
                    .get(&(*repo, m.digest.as_str()))
                    .into_iter()
                    .flatten()
                {
                    live_links.insert((repo, b));
                }
                continue;
            }
            let reason = dead_reason(m, tags, &present, &removed, untagged_cutoff, now);
            out.manifests.push(((*m).clone(), untagged_cutoff, reason));
        }
    }
    for l in &snap.links {
        let keep = unindexed.contains(l.repo.as_str())
            || l.claimed_at >= cutoff
            || live_links.contains(&(l.repo.as_str(), l.digest.as_str()));
        if keep {
            live_links.insert((l.repo.as_str(), l.digest.as_str()));
        } else {
            out.links.push(l.clone());
        }
    }
    let linked: HashSet<&str> = live_links.iter().map(|(_, d)| *d).collect();
    for b in &snap.blobs {
        if b.doomed {
            out.blobs
                .push((b.clone(), "left doomed by an interrupted run".into()));
        } else if b.claimed_at < cutoff
            && !linked.contains(b.digest.as_str())
            && !live_manifest_digests.contains(b.digest.as_str())
        {
            out.blobs.push((b.clone(), "no repository holds it".into()));
        }
    }
    out
}

/// Tags `keep_last` removes from one repository, with the reason.
fn retention_removals<'a>(
    rule: &Rule,
    tags: &[&'a TagRow],
    protected_signed: &dyn Fn(&str) -> bool,
) -> Vec<(&'a TagRow, String)> {
    let Some(n) = rule.keep_last else {
        return Vec::new();
    };
    let mut counted: Vec<&TagRow> = tags
        .iter()
        .copied()
        .filter(|t| rule.counts(&t.tag))
        .collect();
    // Newest first; the name breaks ties so that runs agree.
    counted.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.tag.cmp(&b.tag)));
    counted
        .into_iter()
        .skip(n)
        .filter(|t| !rule.protects_tag(&t.tag) && !protected_signed(&t.digest))
        .map(|t| {
            let which = if rule.tags.is_empty() {
                String::new()
            } else {
                let globs: Vec<&str> = rule.tags.iter().map(|g| g.as_str()).collect();
                format!(" of {}", globs.join(", "))
            };
            (
                t,
                format!(
                    "older than the newest {n} tags{which} (retention rule for {})",
                    rule.repositories.as_str()
                ),
            )
        })
        .collect()
}

fn dead_reason(
    m: &ManifestRow,
    tags: &[&TagRow],
    present: &HashSet<&str>,
    removed: &HashSet<&str>,
    untagged_cutoff: i64,
    now: i64,
) -> String {
    let was_tagged: Vec<&str> = tags
        .iter()
        .filter(|t| t.digest == m.digest && removed.contains(t.tag.as_str()))
        .map(|t| t.tag.as_str())
        .collect();
    if !was_tagged.is_empty() {
        return format!(
            "its tags ({}) are removed by retention",
            was_tagged.join(", ")
        );
    }
    if let Some(s) = &m.subject {
        if present.contains(s.as_str()) {
            return format!("referrer of {s}, which goes");
        }
        return format!("referrer of {s}, which is not in the repository");
    }
    format!(
        "untagged and unreferenced for more than {}",
        show_age(now - untagged_cutoff)
    )
}
