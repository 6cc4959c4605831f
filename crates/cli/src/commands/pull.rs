//! `pavilion pull REF -o DIR`: every file of a model (or ORAS-style
//! artifact) fetched as parallel byte ranges straight to its final place,
//! verified before it gets its name. Paths are all checked before any byte
//! is written.

use super::transfer::{progress_bar, runtime, Output, RemoteArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use pavilion_model::layer_path;
use pavilion_model::media::{
    self, ANNOTATION_FILEPATH, ANNOTATION_TITLE, LEGACY_ANNOTATION_FILEPATH,
};
use pavilion_oci::{ImageRef, ManifestInfo};
use std::path::PathBuf;

/// Arguments of `pavilion pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// What to pull, e.g. 127.0.0.1:5000/team/model:v1.
    pub reference: String,
    /// Output directory (created if missing).
    #[arg(
        short = 'o',
        long = "output-dir",
        value_name = "DIR",
        default_value = "."
    )]
    pub dir: PathBuf,
    /// Only files whose path matches this glob (`*`, `?`), repeatable.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `*` matches any run of characters (including `/`), `?` any one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Runs `pavilion pull`.
pub fn run(args: PullArgs) -> Result<()> {
    let r: ImageRef = args
        .reference
        .parse()
        .with_context(|| format!("invalid reference {:?}", args.reference))?;
    let bar = progress_bar(0, args.remote.output);
    let client = args.remote.client_with_progress(&bar)?;
    let parallel = usize::from(args.remote.concurrency);
    runtime()?.block_on(async move {
        let manifest = client.get_manifest(&r).await.with_context(|| format!("fetching the manifest of {r}"))?;
        let info = ManifestInfo::parse(&manifest.bytes, Some(&manifest.media_type))
            .with_context(|| format!("{r} does not have a usable manifest"))?;
        if !info.manifests.is_empty() || info.blobs.is_empty() {
            bail!("{r} is an index or has no files; pull one of its manifests");
        }
        std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
        // Decide every destination before writing anything.
        let mut plan = Vec::new();
        for layer in &info.blobs[1..] {
            let ann = layer.annotations.clone().unwrap_or_default();
            let Some(rel) = [ANNOTATION_FILEPATH, LEGACY_ANNOTATION_FILEPATH, ANNOTATION_TITLE]
                .iter()
                .find_map(|k| ann.get(*k))
            else {
                continue; // not a file (e.g. an ORAS layer without a name)
            };
            let model_layer = media::normalize(&layer.media_type).starts_with("application/vnd.cncf.model.");
            if model_layer && !media::is_raw_layer(&layer.media_type) {
                bail!("{rel}: layer type {} (tar) is not supported yet; only raw layers", layer.media_type);
            }
            if ann.contains_key("io.deis.oras.content.unpack") {
                bail!("{rel}: packed directories (ORAS unpack layers) are not supported yet");
            }
            let dest = layer_path(&args.dir, rel)?;
            if !args.include.is_empty() && !args.include.iter().any(|g| glob_match(g, rel)) {
                continue;
            }
            plan.push((rel.clone(), dest, layer.clone()));
        }
        bar.set_length(plan.iter().map(|(_, _, l)| l.size).sum());
        let mut pulled = Vec::new();
        for (rel, dest, layer) in plan {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            client
                .pull_blob_file(&r, &layer.digest, layer.size, &dest, parallel)
                .await
                .with_context(|| format!("pulling {rel}"))?;
            pulled.push((rel, layer.size));
        }
        bar.finish_and_clear();
        match args.remote.output {
            Output::Text => {
                for (rel, size) in &pulled {
                    println!("{rel}\t{size}");
                }
                eprintln!("pulled {r}@{} ({} files) into {}", manifest.digest, pulled.len(), args.dir.display());
            }
            Output::Json => println!(
                "{}",
                serde_json::json!({
                    "reference": r.to_string(),
                    "digest": manifest.digest.to_string(),
                    "files": pulled.iter().map(|(p, s)| serde_json::json!({"path": p, "size": s})).collect::<Vec<_>>(),
                })
            ),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*.safetensors", "model-1.safetensors"));
        assert!(glob_match("*", "a/b"));
        assert!(glob_match("sub/?.py", "sub/a.py"));
        assert!(!glob_match("*.json", "model.safetensors"));
        assert!(!glob_match("a?", "a"));
    }
}
