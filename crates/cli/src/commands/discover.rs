//! `pavilion discover REF`: the tree of referrers (signatures, SBOMs, ...)
//! of a manifest, with the tag-schema fallback for registries without the
//! referrers API.

use crate::exit::{CmdResult, Context, ExitStatus, Failure};
use crate::output::{print_json, Output};
use crate::remote::{parse_ref, runtime, ConnArgs};
use clap::Args;
use futures::future::BoxFuture;
use pavilion_client::Client;
use pavilion_oci::{Digest, ImageRef};
use std::collections::HashSet;

/// Referrers of referrers are followed this deep at most.
const MAX_DEPTH: usize = 16;

/// Arguments of `pavilion discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// REPO:TAG or REPO@DIGEST.
    pub reference: String,
    /// Only referrers of this artifact type (at the first level).
    #[arg(long)]
    pub artifact_type: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// One referrer and its own referrers.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    digest: String,
    media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<std::collections::BTreeMap<String, String>>,
    referrers: Vec<Node>,
}

fn tree<'a>(
    client: &'a Client,
    r: &'a ImageRef,
    subject: Digest,
    filter: Option<&'a str>,
    depth: usize,
    seen: &'a mut HashSet<Digest>,
) -> BoxFuture<'a, Result<Vec<Node>, pavilion_client::ClientError>> {
    Box::pin(async move {
        if depth >= MAX_DEPTH || !seen.insert(subject.clone()) {
            return Ok(Vec::new());
        }
        let list = client.referrers(r, &subject, filter).await?;
        let mut out = Vec::new();
        for d in list {
            let children = tree(client, r, d.digest.clone(), None, depth + 1, seen).await?;
            out.push(Node {
                digest: d.digest.to_string(),
                media_type: d.media_type,
                artifact_type: d.artifact_type,
                size: d.size,
                annotations: d.annotations,
                referrers: children,
            });
        }
        Ok(out)
    })
}

fn print_tree(nodes: &[Node], prefix: &str) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let kind = n.artifact_type.as_deref().unwrap_or(&n.media_type);
        println!("{prefix}{} {kind}", if last { "└──" } else { "├──" });
        let inner = format!("{prefix}{}", if last { "    " } else { "│   " });
        println!("{inner}{}", n.digest);
        print_tree(&n.referrers, &format!("{inner}  "));
    }
}

/// Runs `pavilion discover`.
pub fn run(args: DiscoverArgs) -> CmdResult {
    let r = parse_ref(&args.reference)?;
    let client = args.conn.client()?;
    let (digest, nodes) = runtime()?
        .block_on(async {
            let (digest, _, _) = client
                .head_manifest(&r)
                .await?
                .ok_or_else(|| pavilion_client::ClientError::NotFound(r.to_string()))?;
            let mut seen = HashSet::new();
            let nodes = tree(
                &client,
                &r,
                digest.clone(),
                args.artifact_type.as_deref(),
                0,
                &mut seen,
            )
            .await?;
            Ok::<_, Failure>((digest, nodes))
        })
        .with_context(|| format!("discovering the referrers of {r}"))?;
    match args.conn.output.format {
        Output::Text => {
            println!("{}/{}@{digest}", r.registry, r.repository);
            print_tree(&nodes, "");
        }
        Output::Json => print_json(&serde_json::json!({
            "reference": format!("{}/{}@{digest}", r.registry, r.repository),
            "referrers": nodes,
        })),
    }
    Ok(ExitStatus::Success)
}
