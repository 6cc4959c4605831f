//! `/ui/r/<name>/-/v/<reference>`: a version's card. For a model: its
//! facts from the ModelPack config, the README rendered safely, the
//! license, the files, the safetensors summary; for anything: the pull
//! commands, the manifest's annotations, an index's children.

use super::card_data::{self, File};
use super::Head;
use crate::api::Viewer;
use crate::chrome::Chrome;
use crate::respond;
use crate::safetensors::{summarize, Summary};
use crate::view;
use crate::{Page, Ui};
use askama::Template;
use http::StatusCode;
use pavilion_model::media;

/// Most of a license shown.
const MAX_LICENSE: u64 = 64 << 10;
/// Annotations shown, and their length.
const MAX_ANNOTATIONS: usize = 50;
const MAX_ANNOTATION_CHARS: usize = 500;

struct FileRow {
    path: String,
    size: String,
    digest: String,
    digest_short: String,
    media_type: String,
}

struct Child {
    href: String,
    digest_short: String,
    platform: String,
    kind: String,
}

struct Command {
    id: &'static str,
    label: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "card.html")]
struct CardPage {
    c: Chrome,
    head: Head,
    digest: String,
    media_type: String,
    kind: String,
    total: String,
    facts: Vec<(&'static str, String)>,
    commands: Vec<Command>,
    readme: Option<String>,
    readme_cut: bool,
    readme_path: String,
    license: Option<String>,
    license_cut: bool,
    license_path: String,
    files: Vec<FileRow>,
    tensors: Option<Summary>,
    tensor_notes: Vec<String>,
    annotations: Vec<(String, String)>,
    children: Vec<Child>,
}

/// The page.
pub async fn page(ui: &Ui, viewer: &Viewer, name: &str, reference: &str) -> Page {
    let m = match card_data::manifest(ui, viewer, name, reference).await {
        Ok(m) => m,
        Err(f) => return respond::failure(ui, viewer, &f),
    };
    let name_path = view::path_part(name);
    let files = card_data::files(&m.info);
    let config = match m.info.blobs.first() {
        Some(d) if d.media_type.contains("model.config") => {
            card_data::config(ui, viewer, name, d).await
        }
        _ => None,
    };
    let (readme, readme_cut, readme_path) = match card_data::find(&files, &["readme"]) {
        Some(f) => {
            match card_data::head(ui, viewer, name, f, crate::markdown::MAX_README as u64).await {
                Ok((b, cut)) => (
                    Some(crate::markdown::render(&String::from_utf8_lossy(&b))),
                    cut,
                    f.path.clone(),
                ),
                Err(e) => (None, false, format!("{}: {}", f.path, e.message)),
            }
        }
        None => (None, false, String::new()),
    };
    let (license, license_cut, license_path) =
        match card_data::find(&files, &["license", "licence", "copying"]) {
            Some(f) => match card_data::head(ui, viewer, name, f, MAX_LICENSE).await {
                Ok((b, cut)) => (
                    Some(String::from_utf8_lossy(&b).into_owned()),
                    cut,
                    f.path.clone(),
                ),
                Err(e) => (Some(e.message), false, f.path.clone()),
            },
            None => (None, false, String::new()),
        };
    let (headers, tensor_notes) = card_data::tensors(ui, viewer, name, &files).await;
    let tensors = (!headers.is_empty()).then(|| summarize(&headers));
    let total = m.size + m.info.blobs.iter().map(|b| b.size).sum::<u64>();
    let kind = super::versions::kind(m.info.artifact_type.as_deref());
    let page = CardPage {
        c: Chrome::new(ui, viewer, format!("{name}:{reference}"), "repos"),
        head: Head::new(name, reference, "v"),
        facts: facts(config.as_ref(), tensors.as_ref(), &files),
        commands: commands(&registry_host(viewer), name, reference, &kind),
        digest: m.digest,
        media_type: m.info.media_type.clone(),
        kind,
        total: view::bytes(total),
        readme,
        readme_cut,
        readme_path,
        license,
        license_cut,
        license_path,
        files: files.iter().map(file_row).collect(),
        tensors,
        tensor_notes,
        annotations: annotations(&m.info),
        children: m
            .info
            .manifests
            .iter()
            .take(200)
            .map(|d| Child {
                href: format!("/ui/r/{name_path}/-/v/{}", d.digest),
                digest_short: view::short_digest(&d.digest.to_string()),
                platform: platform(d),
                kind: super::versions::kind(d.artifact_type.as_deref().or(Some(&d.media_type))),
            })
            .collect(),
    };
    respond::html(StatusCode::OK, page.render())
}

fn file_row(f: &File) -> FileRow {
    FileRow {
        path: view::clip(&f.path, 300),
        size: view::bytes(f.size),
        digest_short: view::short_digest(&f.digest),
        digest: f.digest.clone(),
        media_type: view::clip(&media::normalize(&f.media_type), 120),
    }
}

/// The model's facts: what the config says, else what the weights show.
fn facts(
    config: Option<&serde_json::Value>,
    tensors: Option<&Summary>,
    files: &[File],
) -> Vec<(&'static str, String)> {
    let get = |section: &str, key: &str| -> Option<String> {
        let v = config?.get(section)?.get(key)?;
        match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(view::clip(s, 200)),
            serde_json::Value::Array(a) if !a.is_empty() => Some(view::clip(
                &a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                200,
            )),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut push = |label: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((label, v));
        }
    };
    push("Name", get("descriptor", "name"));
    push("Version", get("descriptor", "version"));
    push("Family", get("descriptor", "family"));
    push("Architecture", get("config", "architecture"));
    let counted = tensors.map(|t| pavilion_model::inspect::param_size(t.parameters));
    push("Parameters", get("config", "paramSize").or(counted));
    let dominant = tensors.and_then(|t| t.dtypes.first().map(|d| d.0.clone()));
    push("Precision (dtype)", get("config", "precision").or(dominant));
    push("Quantization", get("config", "quantization"));
    push("Format", get("config", "format"));
    push("License", get("descriptor", "licenses"));
    push("Created", get("descriptor", "createdAt"));
    if !files.is_empty() {
        push("Files", Some(files.len().to_string()));
    }
    out
}

/// The host the viewer reached the registry by, for the pull commands
/// (display only: it decides nothing), when it looks like a host name.
fn registry_host(viewer: &Viewer) -> String {
    let host = viewer
        .parts()
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if plain {
        host.to_string()
    } else {
        "REGISTRY".into()
    }
}

/// The pull commands for `name` `reference` on `host`: pavilion and oras
/// for anything, docker and podman for container images only.
fn commands(host: &str, name: &str, reference: &str, kind: &str) -> Vec<Command> {
    let sep = if reference.contains(':') { "@" } else { ":" };
    let r = format!("{host}/{name}{sep}{reference}");
    let dir = name.rsplit('/').next().unwrap_or(name);
    let mut out = vec![
        Command {
            id: "cmd-pavilion",
            label: "pavilion",
            text: format!("pavilion pull {r} -o ./{dir}"),
        },
        Command {
            id: "cmd-oras",
            label: "oras",
            text: format!("oras pull {r}"),
        },
    ];
    if kind == "image" || kind == "index" {
        out.push(Command {
            id: "cmd-docker",
            label: "docker",
            text: format!("docker pull {r}"),
        });
        out.push(Command {
            id: "cmd-podman",
            label: "podman",
            text: format!("podman pull {r}"),
        });
    }
    out
}

fn annotations(info: &pavilion_oci::ManifestInfo) -> Vec<(String, String)> {
    info.annotations
        .iter()
        .flatten()
        .take(MAX_ANNOTATIONS)
        .map(|(k, v)| (view::clip(k, 200), view::clip(v, MAX_ANNOTATION_CHARS)))
        .collect()
}

fn platform(d: &pavilion_oci::Descriptor) -> String {
    // The platform is not kept in `Descriptor`; an index's children are
    // told apart by digest and kind.
    d.annotations
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
        .map(|s| view::clip(s, 80))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_the_tools() {
        let c = commands("reg:5000", "team/llama", "v1", "model");
        assert_eq!(c[0].text, "pavilion pull reg:5000/team/llama:v1 -o ./llama");
        assert_eq!(c[1].text, "oras pull reg:5000/team/llama:v1");
        assert_eq!(c.len(), 2, "no docker command for a model");
        let d = format!("sha256:{}", "a".repeat(64));
        let c = commands("reg", "app", &d, "image");
        assert_eq!(c[2].text, format!("docker pull reg/app@{d}"));
        assert_eq!(c[3].text, format!("podman pull reg/app@{d}"));
    }
}
