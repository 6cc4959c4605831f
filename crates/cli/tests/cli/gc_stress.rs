//! Garbage collection under load (issue 17): workers push images (some
//! layers shared across repositories, so content is deduplicated and
//! mounted), indexes and referrers, and delete tags and manifests, for a
//! bounded number of rounds, while collectors run beside them: the
//! schedule inside every replica and two loops of `pavilion gc`
//! processes, one with no grace at all (so it really races the pushes),
//! all contending for the one lock. A push a collector races is refused
//! (503, or a blob or manifest it relied on is unknown), retried a few
//! times as a client would, and recorded only once acknowledged.
//! Afterwards every manifest that was acknowledged, not deleted and is
//! still tagged (with what it reaches: an index's children, a live
//! subject's referrers) pulls completely, digests matching, from every
//! replica; and a last collection brings the store down.

use crate::common::*;
use crate::gc_support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WORKERS: usize = 4;
const REPOS: [&str; 3] = ["stress/a", "stress/b", "stress/c"];
/// Layers every worker pushes or mounts into every repository.
const SHARED: usize = 6;
/// Times a push is tried while races refuse it.
const ATTEMPTS: usize = 4;
const SBOM: &str = "application/vnd.example.sbom.v1";

/// How hard one backend is driven.
#[derive(Clone, Copy)]
struct Profile {
    /// Rounds of each worker.
    rounds: usize,
    /// The grace of the schedules and of one loop of `pavilion gc`
    /// processes; the other loop has none, so it races every push, while
    /// these keep what a push is in the middle of (there is something left
    /// to check).
    grace: &'static str,
    /// Between two runs of each loop of `pavilion gc` processes.
    pause: Duration,
}

impl Profile {
    /// The serve configuration: collect every second.
    fn schedule(&self) -> String {
        format!(
            "[gc]\nenabled = true\ninterval = \"1s\"\ngrace = \"{}\"\n",
            self.grace
        )
    }
}

/// A manifest acknowledged under a tag.
#[derive(Clone, Debug)]
struct Tagged {
    digest: String,
    size: usize,
    worker: usize,
    /// An index (else an image manifest).
    index: bool,
}

/// What the workers were told.
#[derive(Default)]
struct Ledger {
    /// Manifest PUTs acknowledged (201).
    acked: u64,
    /// Refusals a race explains, by status and code.
    refused: BTreeMap<String, u64>,
    /// Anything else that went wrong.
    unexpected: Vec<String>,
    /// Deletions acknowledged (202).
    deletes: u64,
    /// Mounts acknowledged (201).
    mounts: u64,
    /// Tags acknowledged and not deleted: (repo, tag) -> manifest.
    live: BTreeMap<(String, String), Tagged>,
    /// Referrers acknowledged: (repo, subject, referrer).
    referrers: Vec<(String, String, String)>,
}

impl Ledger {
    fn refusal(&mut self, what: &str, why: String) {
        if is_race(&why) {
            *self.refused.entry(why).or_default() += 1;
        } else {
            self.unexpected.push(format!("{what}: {why}"));
        }
    }
}

fn shared_layer(k: usize) -> Vec<u8> {
    xorshift_bytes(3000 + 500 * k, k as u32 + 1, 99, 3)
}

struct Worker {
    w: usize,
    rounds: usize,
    http: reqwest::Client,
    bases: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Worker {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap()
    }

    async fn run(self) {
        for i in 0..self.rounds {
            let base = &self.bases[(self.w + i) % self.bases.len()];
            let repo = REPOS[(self.w + i) % REPOS.len()];
            match (self.w * 5 + i * 3) % 7 {
                0 | 1 => self.image(base, repo, i).await,
                2 => self.mount(base, repo, i).await,
                3 => self.index(base, repo, i).await,
                4 => self.referrer(base, repo, i).await,
                _ => self.delete(base, i).await,
            }
        }
    }

    /// An image unique to this worker, round and `n`, with a unique
    /// layer and, optionally, shared layer `k`.
    fn make(&self, i: usize, n: usize, shared: Option<usize>) -> Image {
        let seed = format!("w{}-{i}-{n}", self.w);
        let mut layers = vec![xorshift_bytes(
            512 + (i * 97 + n * 13) % 2048,
            (self.w * 1000 + i * 10 + n) as u32,
            5,
            7,
        )];
        layers.extend(shared.map(shared_layer));
        Image::new(
            format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes(),
            layers,
            &format!(r#","annotations":{{"seed":"{seed}"}}"#),
        )
    }

    /// Pushes the blobs of `img` except `skip`, then its manifest as
    /// `reference`, again (as a client would) while a race refuses it;
    /// whether it was acknowledged.
    async fn push(&self, base: &str, repo: &str, img: &Image, reference: &str, skip: &str) -> bool {
        for attempt in 0..ATTEMPTS {
            // A mounted layer a race took meanwhile is uploaded next time.
            let skip = if attempt == 0 { skip } else { "" };
            match self.push_once(base, repo, img, reference, skip).await {
                Ok(()) => {
                    self.ledger().acked += 1;
                    return true;
                }
                Err(Some(why)) => self
                    .ledger()
                    .refusal(&format!("push {repo}:{reference}"), why),
                Err(None) => return false,
            }
            // What a 503 asks (Retry-After: 1), shortened.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    /// One attempt: Err(Some(why)) when refused, Err(None) when a failure
    /// a race does not explain was recorded.
    async fn push_once(
        &self,
        base: &str,
        repo: &str,
        img: &Image,
        reference: &str,
        skip: &str,
    ) -> Result<(), Option<String>> {
        for b in std::iter::once(&img.config).chain(&img.layers) {
            if sha256(b) != skip {
                self.race(push_raw_blob(&self.http, base, repo, b).await, repo)?;
            }
        }
        let r = put_raw_manifest(
            &self.http,
            base,
            repo,
            reference,
            OCI_MANIFEST,
            &img.manifest,
        );
        self.race(r.await, repo)
    }

    /// A refusal a race explains as Some, anything else recorded (None).
    fn race<T>(&self, r: Result<T, String>, repo: &str) -> Result<T, Option<String>> {
        r.map_err(|why| {
            if is_race(&why) {
                Some(why)
            } else {
                self.ledger().unexpected.push(format!("{repo}: {why}"));
                None
            }
        })
    }

    async fn put(&self, base: &str, repo: &str, reference: &str, mt: &str, body: &[u8]) -> bool {
        match put_raw_manifest(&self.http, base, repo, reference, mt, body).await {
            Ok(()) => {
                self.ledger().acked += 1;
                true
            }
            Err(why) => {
                self.ledger()
                    .refusal(&format!("manifest {repo}:{reference}"), why);
                false
            }
        }
    }

    fn record(&self, repo: &str, tag: String, body: &[u8], index: bool) {
        let t = Tagged {
            digest: sha256(body),
            size: body.len(),
            worker: self.w,
            index,
        };
        self.ledger().live.insert((repo.to_string(), tag), t);
    }

    async fn image(&self, base: &str, repo: &str, i: usize) {
        let img = self.make(i, 0, Some((self.w + i) % SHARED));
        let tag = format!("w{}-{i}", self.w);
        if self.push(base, repo, &img, &tag, "").await {
            self.record(repo, tag, &img.manifest, false);
        }
    }

    /// Mounts a shared layer from another repository, then pushes an
    /// image over it without uploading it (uploading it when the mount
    /// was refused: the source does not hold it, or it is being collected).
    async fn mount(&self, base: &str, repo: &str, i: usize) {
        let k = (self.w + 2 * i) % SHARED;
        let layer = sha256(&shared_layer(k));
        let from = REPOS[(self.w + i + 1) % REPOS.len()];
        let r = self
            .http
            .post(format!(
                "{base}/v2/{repo}/blobs/uploads/?mount={layer}&from={from}"
            ))
            .send()
            .await
            .unwrap();
        let skip = match r.status().as_u16() {
            201 => {
                self.ledger().mounts += 1;
                layer
            }
            202 => {
                let loc = hdr(&r, "location").unwrap();
                let _ = self.http.delete(format!("{base}{loc}")).send().await;
                String::new()
            }
            _ => {
                let why = why(r).await;
                self.ledger().refusal(&format!("mount into {repo}"), why);
                return;
            }
        };
        let img = self.make(i, 0, Some(k));
        let tag = format!("w{}-{i}", self.w);
        if self.push(base, repo, &img, &tag, &skip).await {
            self.record(repo, tag, &img.manifest, false);
        }
    }

    /// Two untagged images by digest, then a tagged index over them (all
    /// again while a race refuses them: a child may be collected before
    /// the index arrives).
    async fn index(&self, base: &str, repo: &str, i: usize) {
        let children = [self.make(i, 1, None), self.make(i, 2, Some(i % SHARED))];
        let entries: Vec<String> = children
            .iter()
            .map(|c| {
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}"#,
                    c.digest(),
                    c.manifest.len()
                )
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}],"annotations":{{"seed":"idx{}-{i}"}}}}"#,
            entries.join(","),
            self.w
        )
        .into_bytes();
        let tag = format!("idx{}-{i}", self.w);
        for _ in 0..ATTEMPTS {
            for c in &children {
                if !self.push(base, repo, c, &c.digest(), "").await {
                    return;
                }
            }
            if self.put(base, repo, &tag, OCI_INDEX, &body).await {
                return self.record(repo, tag, &body, true);
            }
        }
    }

    /// An untagged SBOM referrer of this worker's newest tagged image (in
    /// its repository; an image push into `repo` when there is none).
    async fn referrer(&self, base: &str, repo: &str, i: usize) {
        let subject = self
            .ledger()
            .live
            .iter()
            .rev()
            .find(|(_, t)| t.worker == self.w && !t.index)
            .map(|((r, _), t)| (r.clone(), t.clone()));
        let Some((subject_repo, subject)) = subject else {
            return self.image(base, repo, i).await;
        };
        let repo = subject_repo.as_str();
        let sbom = format!("sbom of {} by w{} round {i}", subject.digest, self.w).into_bytes();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{SBOM}","config":{{"mediaType":"{OCI_EMPTY}","digest":"{}","size":2}},"layers":[{{"mediaType":"{SBOM}","digest":"{}","size":{}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}}}"#,
            sha256(b"{}"),
            sha256(&sbom),
            sbom.len(),
            subject.digest,
            subject.size
        )
        .into_bytes();
        let d = sha256(&body);
        for _ in 0..ATTEMPTS {
            for b in [&b"{}"[..], &sbom] {
                if let Err(why) = push_raw_blob(&self.http, base, repo, b).await {
                    self.ledger().refusal(&format!("blob into {repo}"), why);
                    return;
                }
            }
            if self.put(base, repo, &d, OCI_MANIFEST, &body).await {
                let r = (repo.to_string(), subject.digest, d);
                return self.ledger().referrers.push(r);
            }
        }
    }

    /// Deletes one of this worker's tags, or its manifest by digest.
    async fn delete(&self, base: &str, i: usize) {
        let own: Vec<((String, String), Tagged)> = self
            .ledger()
            .live
            .iter()
            .filter(|(_, t)| t.worker == self.w)
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        if own.is_empty() {
            return;
        }
        let ((repo, tag), t) = &own[i % own.len()];
        let reference = if i % 2 == 1 { tag } else { &t.digest };
        let r = self
            .http
            .delete(format!("{base}/v2/{repo}/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        let mut l = self.ledger();
        if r.status() == 202 {
            l.deletes += 1;
            l.live.remove(&(repo.clone(), tag.clone()));
        } else {
            // The worker owns this tag: nothing else may have taken it.
            l.unexpected
                .push(format!("DELETE {repo}:{reference}: {}", r.status()));
        }
    }
}

/// What the `pavilion gc` processes did.
#[derive(Default)]
struct GcStats {
    runs: AtomicU64,
    busy: AtomicU64,
    deleting: AtomicU64,
    blobs: AtomicU64,
    manifests: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// `pavilion gc --grace GRACE` again and again, `pause` apart, until
/// `stop` (bounded).
async fn gc_loop(
    stores: Stores,
    grace: &'static str,
    pause: Duration,
    stop: Arc<AtomicBool>,
    stats: Arc<GcStats>,
) {
    for _ in 0..300 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let st = stores.clone();
        let r = tokio::task::spawn_blocking(move || st.gc(&["--grace", grace, "--output", "json"]))
            .await
            .unwrap();
        if r.code == 0 {
            let v: Value = serde_json::from_slice(&r.stdout).unwrap();
            let (b, m) = (
                v["blobs"].as_array().unwrap().len() as u64,
                v["manifests"].as_array().unwrap().len() as u64,
            );
            stats.runs.fetch_add(1, Ordering::SeqCst);
            stats.blobs.fetch_add(b, Ordering::SeqCst);
            stats.manifests.fetch_add(m, Ordering::SeqCst);
            if b + m > 0 {
                stats.deleting.fetch_add(1, Ordering::SeqCst);
            }
        } else if busy(&r) {
            stats.busy.fetch_add(1, Ordering::SeqCst);
        } else {
            stats
                .failures
                .lock()
                .unwrap()
                .push(format!("exit {}: {}", r.code, r.stderr));
        }
        tokio::time::sleep(pause).await;
    }
}

/// What the store holds: bytes of blob files, or objects in the bucket.
async fn stored(stores: &Stores) -> u64 {
    match &stores.storage {
        Some(url) => bucket_keys(url).await.len() as u64,
        None => {
            let d = stores.data.clone();
            tokio::task::spawn_blocking(move || disk_bytes(&d))
                .await
                .unwrap()
        }
    }
}

/// The most the store held while `stop` was unset.
async fn watch_peak(stores: Stores, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) {
    for _ in 0..1000 {
        peak.fetch_max(stored(&stores).await, Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything collectors must keep, pulled from every replica: each live
/// tag (an index with its children) and each referrer of a live subject,
/// which the referrers API also still lists. Returns what failed, and how
/// many pulls were checked.
async fn verify(
    bases: &[String],
    live: &BTreeMap<(String, String), Tagged>,
    referrers: &[(String, String, String)],
) -> (Vec<String>, usize) {
    let mut failed = Vec::new();
    let mut checked = 0;
    for base in bases {
        for ((repo, tag), t) in live {
            checked += 1;
            match pull_complete(base, repo, tag).await {
                Ok(d) if d == t.digest => {}
                Ok(d) => failed.push(format!("{base} {repo}:{tag} is {d}, not {}", t.digest)),
                Err(e) => failed.push(format!("{base} {repo}:{tag} ({}): {e}", t.digest)),
            }
        }
        for (repo, subject, d) in referrers {
            if !live
                .iter()
                .any(|((r, _), t)| r == repo && &t.digest == subject)
            {
                continue;
            }
            checked += 1;
            if let Err(e) = pull_complete(base, repo, d).await {
                failed.push(format!("{base} referrer {repo}@{d} of {subject}: {e}"));
            }
            let v: Value = client()
                .get(format!("{base}/v2/{repo}/referrers/{subject}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let listed = v["manifests"]
                .as_array()
                .is_some_and(|a| a.iter().any(|m| m["digest"] == d.as_str()));
            if !listed {
                failed.push(format!(
                    "{base} referrers of {repo}@{subject} lack {d}: {v}"
                ));
            }
        }
    }
    (failed, checked)
}

/// Runs of the collector the database recorded (the newest 100), and how
/// many of them deleted something; None without a database client.
fn recorded_runs(stores: &Stores) -> Option<(usize, usize)> {
    let rows = db_query(stores, "SELECT report FROM gc_runs")?;
    let deleting = rows
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .filter(|v| v["blobs"].as_u64().unwrap_or(0) + v["manifests"].as_u64().unwrap_or(0) > 0)
        .count();
    Some((rows.len(), deleting))
}

/// The workers against `replicas`, collected by their schedules and by
/// `pavilion gc` processes on `stores`; then the checks.
async fn stress(replicas: &[&Server], stores: Stores, p: Profile) {
    let started = std::time::Instant::now();
    let bases: Vec<String> = replicas.iter().map(|s| s.url("")).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(GcStats::default());
    let peak = Arc::new(AtomicU64::new(0));
    let collectors: Vec<_> = ["0", p.grace]
        .into_iter()
        .map(|g| {
            let (stores, stop, stats) = (stores.clone(), stop.clone(), stats.clone());
            tokio::spawn(gc_loop(stores, g, p.pause, stop, stats))
        })
        .collect();
    let watcher = tokio::spawn(watch_peak(stores.clone(), stop.clone(), peak.clone()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(
                Worker {
                    w,
                    rounds: p.rounds,
                    http: client(),
                    bases: bases.clone(),
                    ledger: ledger.clone(),
                }
                .run(),
            )
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for c in collectors {
        c.await.unwrap();
    }
    watcher.await.unwrap();

    let (live, referrers) = {
        let l = ledger.lock().unwrap();
        let refused: u64 = l.refused.values().sum();
        eprintln!(
            "gc stress: {} manifests acknowledged, {refused} pushes refused ({:?}), {} deletes, {} mounts, {} tags live, {} referrers, in {:?}",
            l.acked,
            l.refused,
            l.deletes,
            l.mounts,
            l.live.len(),
            l.referrers.len(),
            started.elapsed()
        );
        assert!(
            l.unexpected.is_empty(),
            "failures a race does not explain: {:#?}",
            l.unexpected
        );
        assert!(l.acked > 0, "no push was acknowledged");
        assert!(!l.live.is_empty(), "no tag is left to check");
        (l.live.clone(), l.referrers.clone())
    };
    let recorded = recorded_runs(&stores);
    eprintln!(
        "gc stress: `pavilion gc` ran {} times ({} deleted something: {} manifests, {} blobs), {} refused as busy; runs recorded in the database (schedules included, newest 100): {recorded:?}",
        stats.runs.load(Ordering::SeqCst),
        stats.deleting.load(Ordering::SeqCst),
        stats.manifests.load(Ordering::SeqCst),
        stats.blobs.load(Ordering::SeqCst),
        stats.busy.load(Ordering::SeqCst),
    );
    let failures = stats.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "pavilion gc failed: {failures:#?}");
    assert!(
        stats.deleting.load(Ordering::SeqCst) > 0 || recorded.is_some_and(|(_, d)| d > 0),
        "no collection deleted anything"
    );

    let (failed, checked) = verify(&bases, &live, &referrers).await;
    assert!(
        failed.is_empty(),
        "{} of {checked} acknowledged manifests do not pull completely:\n{}",
        failed.len(),
        failed.join("\n")
    );
    eprintln!("gc stress: {checked} pulls checked");

    // Half of what is left goes; a last collection takes it from the store.
    let before = stored(&stores).await;
    let mut kept = live.clone();
    for (i, ((repo, tag), t)) in live.iter().enumerate() {
        if i % 2 == 1 {
            continue;
        }
        let r = client()
            .delete(format!("{}/v2/{repo}/manifests/{}", bases[0], t.digest))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "DELETE {repo}@{}", t.digest);
        kept.remove(&(repo.clone(), tag.clone()));
    }
    let mut report = None;
    for _ in 0..100 {
        let st = stores.clone();
        let r = tokio::task::spawn_blocking(move || st.gc(&["--grace", "0", "--output", "json"]))
            .await
            .unwrap();
        if busy(&r) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        report = Some(r.json());
        break;
    }
    let report = report.expect("the last collection was refused as busy 100 times");
    let after = stored(&stores).await;
    let peak = peak.load(Ordering::SeqCst);
    let unit = if stores.storage.is_some() {
        "objects"
    } else {
        "bytes"
    };
    eprintln!(
        "gc stress: store held {peak} {unit} at most, {before} before the last collection, {after} after it (it freed {} bytes in {} blobs)",
        report["bytes"],
        report["blobs"].as_array().unwrap().len()
    );
    assert!(
        after < before,
        "the store did not shrink: {before} -> {after}"
    );
    assert!(
        after < peak,
        "the store did not shrink from its peak {peak}: {after}"
    );
    let (failed, checked) = verify(&bases, &kept, &referrers).await;
    assert!(
        failed.is_empty(),
        "{} of {checked} after the last collection:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_race_pushes_on_two_replicas_over_s3_and_postgres() {
    // Each object store write is a few requests to radosgw (a push of an
    // image takes about a second here): fewer rounds, a longer grace for
    // the collectors that keep pushes, the racing one less often.
    let p = Profile {
        rounds: 8,
        grace: "3s",
        pause: Duration::from_millis(800),
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "serve.toml", &p.schedule());
    let Some(r1) = Server::start_with(Backend::S3, &["--config", cfg.to_str().unwrap()]) else {
        return;
    };
    let r2 = r1.replica();
    let stores = Stores::of(&r1);
    stress(&[&r1, &r2], stores, p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_race_pushes_on_files_and_sqlite() {
    let p = Profile {
        rounds: 30,
        grace: "1s",
        pause: Duration::from_millis(200),
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config_file(tmp.path(), "serve.toml", &p.schedule());
    let s = Server::start_with(Backend::Sqlite, &["--config", cfg.to_str().unwrap()]).unwrap();
    let stores = Stores::of(&s);
    stress(&[&s], stores, p).await;
}
