//! `pavilion du [REPO]`: bytes per repository, what the store keeps and
//! what deduplication saves, read from the metadata database `serve` uses
//! (no server needed; the same numbers as `GET /pavilion/v1/usage`), and
//! for repositories the file's `[[quota]]` entries cover, where each stands
//! against its tightest quota.

use super::database::{open, DbArgs};
use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, Output, OutputArgs};
use crate::remote::runtime;
use clap::Args;
use pavilion_store::usage::{RepoUsage, MAX_USAGE_PAGE};

/// Arguments of `du`.
#[derive(Args, Debug)]
pub struct DuArgs {
    /// Only this repository.
    pub repository: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Bytes as people read them (binary units, one decimal), as the
/// registry's quota messages write them.
pub fn human(bytes: i64) -> String {
    pavilion_registry::quota::human(u64::try_from(bytes).unwrap_or(0))
}

/// Prints usage per repository, then the totals.
pub fn run(args: DuArgs) -> CmdResult {
    if let Some(r) = &args.repository {
        pavilion_oci::RepoName::new(r).map_err(|e| UsageError(format!("repository {r:?}: {e}")))?;
    }
    let quotas =
        crate::config::quota::quotas_of_file(args.db.config.as_deref()).map_err(Failure::other)?;
    // What a collection would free is counted with serve's [gc] grace and
    // retention rules.
    let (_, gc) = crate::config::lifecycle(args.db.config.as_deref(), None, None, None)
        .map_err(|e| UsageError(format!("{e:#}")))?;
    let rt = runtime()?;
    let (repos, totals, statuses, reclaimable) = rt.block_on(async {
        let m = open(&args.db).await?;
        // Every repository, a page at a time (the store caps a page).
        let mut all: Vec<RepoUsage> = Vec::new();
        loop {
            let page = m
                .repo_usage(
                    args.repository.as_deref(),
                    all.last().map(|r| r.name.as_str()),
                    MAX_USAGE_PAGE,
                )
                .await
                .map_err(Failure::other)
                .context("reading usage")?;
            let done = (page.len() as i64) < MAX_USAGE_PAGE;
            all.extend(page);
            if done {
                break;
            }
        }
        let totals = m
            .usage_totals()
            .await
            .map_err(Failure::other)
            .context("reading usage")?;
        let statuses = pavilion_registry::quota::statuses(&m, &quotas, &all)
            .await
            .map_err(Failure::other)
            .context("reading usage")?;
        let reclaimable = pavilion_store::gc::reclaimable(&m, &gc.retention, gc.grace)
            .await
            .map_err(Failure::other)
            .context("reading usage")?;
        Ok::<_, Failure>((all, totals, statuses, reclaimable))
    })?;
    if let Some(r) = &args.repository {
        if repos.is_empty() {
            return Err(Failure::new(
                ExitStatus::NotFound,
                anyhow::anyhow!("repository {r} holds nothing"),
            ));
        }
    }
    match args.output.format {
        Output::Json => print_json(&serde_json::json!({
            "repositories": repos
                .iter()
                .zip(statuses)
                .map(|(usage, quota)| pavilion_registry::usage::Row { usage, quota })
                .collect::<Vec<_>>(),
            "totals": totals,
            "reclaimable": reclaimable,
            "grace_ms": gc.grace.as_millis() as u64,
        })),
        Output::Text => {
            // The quota column only when there are quotas: the table
            // stays as it was for registries without.
            let quota_column = if quotas.is_empty() { "" } else { "  QUOTA" };
            println!(
                "{:<48} {:>8} {:>12} {:>9}{quota_column}",
                "REPOSITORY", "BLOBS", "SIZE", "MANIFESTS"
            );
            for (r, q) in repos.iter().zip(&statuses) {
                let quota = match q {
                    Some(q) => format!(
                        "  {} of {}: {}",
                        pavilion_registry::quota::human(q.used),
                        pavilion_registry::quota::human(q.limit),
                        q.quota
                    ),
                    None if quotas.is_empty() => String::new(),
                    None => "  -".to_string(),
                };
                println!(
                    "{:<48} {:>8} {:>12} {:>9}{quota}",
                    r.name,
                    r.blobs,
                    human(r.bytes()),
                    r.manifests
                );
            }
            println!();
            println!(
                "stored: {} in {} blobs and {} manifests; charged to repositories: {}; saved by deduplication: {}",
                human(totals.stored_blob_bytes + totals.stored_manifest_bytes),
                totals.stored_blobs,
                totals.stored_manifests,
                human(totals.charged_bytes),
                human(totals.dedup_saving_bytes)
            );
            println!(
                "reclaimable by garbage collection (grace {}): {} in {} blobs, {} manifests (pavilion gc --dry-run lists them)",
                pavilion_store::gc::plan::show_age(gc.grace.as_millis() as i64),
                human(reclaimable.bytes),
                reclaimable.blobs,
                reclaimable.manifests
            );
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::human(0), "0 B");
        assert_eq!(super::human(1023), "1023 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(5 << 30), "5.0 GiB");
    }
}
