//! `pavilion gc`: garbage collection beside live replicas, pointed at the
//! same stores as `serve` (its config file, data directory, database and
//! storage). One run at a time across every replica; `--dry-run` lists
//! what would go and why and changes nothing.

use crate::config::gc::GcSettings;
use crate::exit::{CmdResult, Context, ExitStatus, Failure, UsageError};
use crate::output::{print_json, Output, OutputArgs};
use crate::remote::runtime;
use clap::Args;
use pavilion_store::gc::plan::Gone;
use pavilion_store::gc::{self, GcError, Report};

/// Arguments of `gc`.
#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub db: super::database::DbArgs,
    /// Where `serve` keeps blobs: file://DIR, s3://..., az://..., gs://... [default: the data directory].
    #[arg(long, env = "PAVILION_STORAGE", value_name = "URL")]
    pub storage: Option<String>,
    /// Nothing claimed (pushed, mounted, referenced, untagged) more recently goes; longer than the longest push [default: [gc] grace, else 24h].
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// List what would go and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Lines of each list printed as text (JSON has them all).
const SHOWN: usize = 50;

/// Runs one collection and prints its report.
pub fn run(args: GcArgs) -> CmdResult {
    let (server, mut settings) = crate::config::lifecycle(
        args.db.config.as_deref(),
        args.db.data.clone(),
        args.db.database_url.clone(),
        args.storage.clone(),
    )
    .map_err(|e| UsageError(format!("{e:#}")))?;
    if let Some(g) = &args.grace {
        settings.grace =
            crate::config::gc::grace("--grace", g).map_err(|e| UsageError(e.to_string()))?;
    }
    if server.database_url.is_none() && !server.data_dir.is_dir() {
        return Err(UsageError(format!(
            "data directory {} does not exist: give the --data (or --config, --database-url) that serve uses",
            server.data_dir.display()
        ))
        .into());
    }
    let rt = runtime()?;
    let report = rt.block_on(collect(&server, &settings, args.dry_run))?;
    match args.output.format {
        Output::Json => print_json(&serde_json::to_value(&report).unwrap_or_default()),
        Output::Text => print_text(&report),
    }
    if let Some(e) = &report.error {
        return Err(Failure::other(anyhow::anyhow!(
            "garbage collection stopped early (the next run resumes): {e}"
        )));
    }
    Ok(ExitStatus::Success)
}

async fn collect(
    server: &pavilion_registry::ServerConfig,
    settings: &GcSettings,
    dry_run: bool,
) -> CmdResult<Report> {
    let (meta, blobs) = pavilion_registry::server::open_stores(server)
        .await
        .map_err(Failure::other)
        .context("opening the registry's stores")?;
    let opts = gc::Options {
        grace: settings.grace,
        dry_run,
        retention: settings.retention.clone(),
    };
    let result = gc::run(&meta, blobs.as_ref(), &opts).await;
    meta.close().await;
    match result {
        Ok(r) => Ok(r),
        Err(GcError::Busy(e)) => Err(Failure::other(anyhow::anyhow!("{e}"))),
        Err(GcError::Store(e)) => Err(Failure::other(e).context("garbage collection")),
    }
}

fn print_list(title: &str, items: &[Gone]) {
    if items.is_empty() {
        return;
    }
    println!("{title}:");
    for g in items.iter().take(SHOWN) {
        let at = if g.repository.is_empty() {
            g.name.clone()
        } else if g.name.starts_with("sha") {
            format!("{}@{}", g.repository, g.name)
        } else {
            format!("{}:{}", g.repository, g.name)
        };
        if g.bytes > 0 {
            println!("  {at} ({}): {}", super::du::human(g.bytes), g.reason);
        } else {
            println!("  {at}: {}", g.reason);
        }
    }
    if items.len() > SHOWN {
        println!(
            "  ... and {} more (--output json lists all)",
            items.len() - SHOWN
        );
    }
}

fn print_text(r: &Report) {
    print_list("tags", &r.tags);
    print_list("manifests", &r.manifests);
    print_list("blobs", &r.blobs);
    for repo in &r.unindexed {
        println!("kept whole: {repo} (a manifest's references could not be read)");
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    println!(
        "{verb} {} in {} blobs; {} tags, {} manifests, {} links{}; {} ms",
        super::du::human(r.bytes),
        r.blobs.len(),
        r.tags.len(),
        r.manifests.len(),
        r.links,
        if r.skipped > 0 {
            format!(" ({} skipped: claimed meanwhile)", r.skipped)
        } else {
            String::new()
        },
        r.duration_ms
    );
}
