//! `tag`, `tags` and `repos`: naming manifests and listing what a registry has.

use crate::exit::{CmdResult, Context, ExitStatus, UsageError};
use crate::output::{print_json, Output};
use crate::remote::{parse_ref, runtime, ConnArgs};
use clap::Args;
use pavilion_oci::Tag;

/// Arguments of `pavilion tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// The manifest to tag: REPO:TAG or REPO@DIGEST.
    pub reference: String,
    /// New tags, in the same repository.
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `pavilion tags`.
#[derive(Args, Debug)]
pub struct TagsArgs {
    /// The repository, e.g. 127.0.0.1:5000/team/model.
    pub repository: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Arguments of `pavilion repos`.
#[derive(Args, Debug)]
pub struct ReposArgs {
    /// The registry host, e.g. 127.0.0.1:5000.
    pub registry: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `pavilion tag`: the manifest's exact bytes are pushed under each tag.
pub fn run_tag(args: TagArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let tags = args
        .tags
        .iter()
        .map(|t| Tag::new(t).map_err(|e| UsageError(e.to_string()).into()))
        .collect::<CmdResult<Vec<_>>>()?;
    let output = args.conn.output.format;
    let client = args.conn.client()?;
    runtime()?.block_on(async {
        let m = client
            .get_manifest(&r)
            .await
            .with_context(|| format!("fetching {r}"))?;
        for t in &tags {
            let target = pavilion_oci::ImageRef {
                tag: Some(t.clone()),
                digest: None,
                ..r.clone()
            };
            client
                .put_manifest(&target, &m.media_type, m.bytes.clone())
                .await
                .with_context(|| format!("tagging {target}"))?;
            if output == Output::Text {
                println!("{target}");
            }
        }
        if output == Output::Json {
            print_json(&serde_json::json!({
                "digest": m.digest.to_string(),
                "tags": tags.iter().map(Tag::to_string).collect::<Vec<_>>(),
            }));
        }
        Ok(ExitStatus::Success)
    })
}

/// Runs `pavilion tags`.
pub fn run_tags(args: TagsArgs) -> CmdResult {
    let r = parse_ref(&args.repository)?;
    let client = args.conn.client()?;
    let tags = runtime()?
        .block_on(client.list_tags(&r))
        .with_context(|| format!("listing the tags of {}/{}", r.registry, r.repository))?;
    print_list(&tags, "tags", args.conn.output.format);
    Ok(ExitStatus::Success)
}

/// Runs `pavilion repos`.
pub fn run_repos(args: ReposArgs) -> CmdResult {
    let registry = args.registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains('/') {
        return Err(UsageError(format!("{:?} is not a registry host", args.registry)).into());
    }
    let client = args.conn.client()?;
    let repos = runtime()?
        .block_on(client.catalog(registry))
        .with_context(|| format!("listing the repositories of {registry}"))?;
    print_list(&repos, "repositories", args.conn.output.format);
    Ok(ExitStatus::Success)
}

fn print_list(items: &[String], key: &str, output: Output) {
    match output {
        Output::Text => items.iter().for_each(|i| println!("{i}")),
        Output::Json => print_json(&serde_json::json!({ key: items })),
    }
}
