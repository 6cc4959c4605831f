//! Helpers of the garbage collection tests (gc_stress.rs, gc_faults.rs):
//! `pavilion gc` pointed at a server's stores, images pushed and pulled
//! back completely (every digest checked), refusals told apart from
//! failures, and what the store holds (files on disk, objects in the
//! bucket).

use crate::common::run::{pv, Run};
use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The stores a `serve` uses, as `pavilion gc` is pointed at them.
#[derive(Clone, Debug)]
pub struct Stores {
    /// `--data`.
    pub data: PathBuf,
    /// `--database-url` (None: SQLite in `data`).
    pub database_url: Option<String>,
    /// `--storage` (None: files in `data`).
    pub storage: Option<String>,
}

impl Stores {
    /// The stores of `s` (its data directory, database and storage flags).
    pub fn of(s: &Server) -> Stores {
        let storage = s
            .extra_args
            .iter()
            .position(|a| a == "--storage")
            .and_then(|i| s.extra_args.get(i + 1))
            .cloned();
        Stores {
            data: s.data.clone(),
            database_url: s.database_url.clone(),
            storage,
        }
    }

    /// `pavilion gc` with these stores and `extra` arguments.
    pub fn gc(&self, extra: &[&str]) -> Run {
        let mut args: Vec<String> = vec!["gc".into(), "--data".into()];
        args.push(self.data.to_str().unwrap().into());
        if let Some(u) = &self.database_url {
            args.extend(["--database-url".into(), u.clone()]);
        }
        if let Some(u) = &self.storage {
            args.extend(["--storage".into(), u.clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pv(&args)
    }

    /// A successful run's report (`--output json`).
    pub fn gc_json(&self, extra: &[&str]) -> Value {
        let mut args = extra.to_vec();
        args.extend(["--output", "json"]);
        self.gc(&args).json()
    }
}

/// Whether a failed `pavilion gc` was refused because another run holds the lock.
pub fn busy(r: &Run) -> bool {
    r.code != 0 && r.stderr.contains("another garbage collection is running")
}

/// The `name`s of a report's list `key` (tags, manifests, blobs), sorted.
pub fn names(report: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("report has no {key} list: {report}"))
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The reason a report gives for `name` in list `key`.
pub fn reason<'a>(report: &'a Value, key: &str, name: &str) -> &'a str {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in {key}: {report}"))["reason"]
        .as_str()
        .unwrap()
}

/// The file of blob `digest` under a data directory.
pub fn blob_file(data: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    data.join("blobs").join(alg).join(&hex[..2]).join(hex)
}

/// Every blob file under a data directory (digest -> size). Entries that
/// vanish while it reads (a collector deleting them) are skipped.
pub fn blob_files(data: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let read = |p: &Path| std::fs::read_dir(p).into_iter().flatten().flatten();
    for alg in read(&data.join("blobs")) {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        for shard in read(&alg.path()) {
            for f in read(&shard.path()) {
                if let Ok(m) = f.metadata() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    out.insert(format!("{alg_name}:{name}"), m.len());
                }
            }
        }
    }
    out
}

/// Bytes of every blob file under a data directory.
pub fn disk_bytes(data: &Path) -> u64 {
    blob_files(data).values().sum()
}

/// The keys of every object under the prefix of an `s3://bucket/prefix?...`
/// (radosgw, credentials from the AWS_* environment) or
/// `az://container/prefix?...` (Azurite) storage URL, relative to the prefix.
pub async fn bucket_keys(storage: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let (scheme, rest) = storage
        .split_once("://")
        .expect("scheme://bucket/prefix?...");
    let (path, query) = rest.split_once('?').expect("bucket/prefix?...");
    let (bucket, prefix) = path.split_once('/').expect("bucket/prefix");
    let store: Box<dyn object_store::ObjectStore> = match scheme {
        "s3" => {
            let endpoint = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("endpoint="))
                .expect("endpoint=");
            Box::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_endpoint(endpoint)
                    .with_region("default")
                    .with_allow_http(true)
                    .build()
                    .expect("S3 client"),
            )
        }
        "az" => Box::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_use_emulator(true)
                .build()
                .expect("Azure client"),
        ),
        other => panic!("no listing for {other}:// storage"),
    };
    let root = object_store::path::Path::from(prefix);
    let listed: Vec<object_store::ObjectMeta> = store
        .list(Some(&root))
        .try_collect()
        .await
        .expect("list the bucket");
    listed
        .iter()
        .map(|m| {
            let key = m.location.as_ref();
            key.strip_prefix(prefix)
                .unwrap_or(key)
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}

/// Writes a configuration file `name` in `dir`.
pub fn config_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Why a request was refused: its status and error code, e.g. `400
/// MANIFEST_BLOB_UNKNOWN`.
pub async fn why(r: reqwest::Response) -> String {
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(80).collect());
    format!("{status} {code}")
}

/// Whether a refusal is one a collector racing a push may cause: the
/// push is not acknowledged and the client retries (503), or a blob or
/// manifest it relied on was collected before it arrived.
pub fn is_race(why: &str) -> bool {
    why.starts_with("503 ")
        || why.ends_with(" MANIFEST_BLOB_UNKNOWN")
        || why.ends_with(" BLOB_UNKNOWN")
        || why.ends_with(" MANIFEST_UNKNOWN")
}

/// An image's parts: config and layers (bytes), and its manifest.
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

impl Image {
    /// An image of `config` and `layers` whose manifest carries `extra`
    /// (e.g. `,"annotations":{...}`) after its layers.
    pub fn new(config: Vec<u8>, layers: Vec<Vec<u8>>, extra: &str) -> Image {
        let cd = sha256(&config);
        let lds: Vec<(String, usize)> = layers.iter().map(|l| (sha256(l), l.len())).collect();
        let refs: Vec<(&str, usize)> = lds.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        let manifest = image_manifest((&cd, config.len()), &refs, extra);
        Image {
            config,
            layers,
            manifest,
        }
    }

    /// A small image, unique to `seed`, with a layer of `layer_len` bytes.
    pub fn small(seed: &str, layer_len: usize) -> Image {
        let n = seed
            .bytes()
            .fold(7u32, |h, b| h.wrapping_mul(31) ^ u32::from(b));
        Image::new(
            format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes(),
            vec![xorshift_bytes(layer_len, n, 11, 5)],
            "",
        )
    }

    /// The manifest's digest.
    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    /// Config and layer digests.
    pub fn blob_digests(&self) -> Vec<String> {
        std::iter::once(&self.config)
            .chain(&self.layers)
            .map(|b| sha256(b))
            .collect()
    }

    /// Every digest the image stores: its blobs' and its manifest's.
    pub fn all_digests(&self) -> Vec<String> {
        let mut v = self.blob_digests();
        v.push(self.digest());
        v
    }

    /// Pushes the blobs, then the manifest as `reference`; the refusal if
    /// one step was refused.
    pub async fn try_push(&self, s: &Server, repo: &str, reference: &str) -> Result<(), String> {
        self.try_push_to(&client(), &s.url(""), repo, reference)
            .await
    }

    /// [`Image::try_push`] to the registry at `base` with `http`.
    pub async fn try_push_to(
        &self,
        http: &reqwest::Client,
        base: &str,
        repo: &str,
        reference: &str,
    ) -> Result<(), String> {
        for b in std::iter::once(&self.config).chain(&self.layers) {
            push_raw_blob(http, base, repo, b).await?;
        }
        put_raw_manifest(http, base, repo, reference, OCI_MANIFEST, &self.manifest).await
    }

    /// Pushes as `reference`, again while a collector racing the push
    /// refuses it (a bounded number of times); panics on anything else.
    pub async fn push(&self, s: &Server, repo: &str, reference: &str) -> String {
        let mut last = String::new();
        for _ in 0..20 {
            match self.try_push(s, repo, reference).await {
                Ok(()) => return self.digest(),
                Err(w) if is_race(&w) => last = w,
                Err(w) => panic!("push {repo}:{reference}: {w}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("push {repo}:{reference} refused 20 times: {last}");
    }
}

/// Uploads `data` as a blob of `repo` at `base` (monolithic POST); the
/// refusal if it was not created.
pub async fn push_raw_blob(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    data: &[u8],
) -> Result<String, String> {
    let d = sha256(data);
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .map_err(|e| format!("transport {e}"))?;
    if r.status() != 201 {
        return Err(why(r).await);
    }
    Ok(d)
}

/// PUT of a manifest at `base`; the refusal if it was not created.
pub async fn put_raw_manifest(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Result<(), String> {
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("transport {e}"))?;
    if r.status() != 201 {
        return Err(why(r).await);
    }
    Ok(())
}

/// Pulls `reference` of `repo` from `base` (`http://host:port`)
/// completely: the manifest (its bytes against its digest), then every
/// blob it references and, for an index, every child the same way, each
/// compared with its digest. The manifest's digest, or what failed.
pub async fn pull_complete(base: &str, repo: &str, reference: &str) -> Result<String, String> {
    let http = client();
    let mut top = None;
    let mut stack = vec![reference.to_string()];
    while let Some(r) = stack.pop() {
        let at = format!("{repo}@{r}");
        let resp = http
            .get(format!("{base}/v2/{repo}/manifests/{r}"))
            .header("Accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        if resp.status() != 200 {
            return Err(format!("{at}: manifest {}", why(resp).await));
        }
        let said = hdr(&resp, "docker-content-digest").unwrap_or_default();
        let body = resp.bytes().await.map_err(|e| format!("{at}: {e}"))?;
        let d = sha256(&body);
        if d != said || (r.starts_with("sha256:") && r != d) {
            return Err(format!(
                "{at}: manifest bytes hash to {d}, served as {said}"
            ));
        }
        top.get_or_insert(d);
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{at}: {e}"))?;
        for m in v["manifests"].as_array().into_iter().flatten() {
            stack.push(m["digest"].as_str().unwrap_or_default().to_string());
        }
        let blobs = std::iter::once(&v["config"])
            .filter(|c| c.is_object())
            .chain(v["layers"].as_array().into_iter().flatten());
        for b in blobs {
            let bd = b["digest"].as_str().unwrap_or_default();
            let resp = http
                .get(format!("{base}/v2/{repo}/blobs/{bd}"))
                .send()
                .await
                .map_err(|e| format!("{at}: blob {bd}: {e}"))?;
            if resp.status() != 200 {
                return Err(format!("{at}: blob {bd}: {}", why(resp).await));
            }
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| format!("{at}: blob {bd}: {e}"))?;
            if sha256(&bytes) != bd {
                return Err(format!(
                    "{at}: blob {bd}: {} bytes hashing to {}",
                    bytes.len(),
                    sha256(&bytes)
                ));
            }
        }
    }
    Ok(top.unwrap_or_default())
}

/// [`pull_complete`] that must succeed with manifest `digest`.
pub async fn assert_pulls(s: &Server, repo: &str, reference: &str, digest: &str) {
    match pull_complete(&s.url(""), repo, reference).await {
        Ok(d) => assert_eq!(d, digest, "{repo}:{reference}"),
        Err(e) => panic!("{repo}:{reference} does not pull completely: {e}"),
    }
}

/// Runs `sql` on the database of `stores` (psql, or sqlite3 when present);
/// its output rows, or None when no client is there.
pub fn db_query(stores: &Stores, sql: &str) -> Option<Vec<String>> {
    let out = match &stores.database_url {
        Some(url) => std::process::Command::new("psql")
            .args([url.as_str(), "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output(),
        None if have("sqlite3") => std::process::Command::new("sqlite3")
            .arg(stores.data.join("meta.db"))
            .arg(sql)
            .output(),
        None => return None,
    }
    .ok()?;
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}
