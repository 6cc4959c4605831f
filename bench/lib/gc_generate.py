"""Writes the same content as a Pavilion data directory (blob files and
rows in its already migrated meta.db) and as Distribution's filesystem
layout; prints what is garbage, as JSON."""
import hashlib, json, os, random, sqlite3, sys, time

pav, dist, nblobs, nman, nrepos, garbage_pct = sys.argv[1:7]
nblobs, nman, nrepos, garbage_pct = int(nblobs), int(nman), int(nrepos), int(garbage_pct)
rng = random.Random(17)
old = int(time.time() * 1000) - 86_400_000  # a day ago, in Unix ms
v2 = os.path.join(dist, "docker", "registry", "v2")
made = set()

def mkdirs(p):
    if p not in made:
        os.makedirs(p, exist_ok=True)
        made.add(p)

def put_blob(data):
    h = hashlib.sha256(data).hexdigest()
    d = os.path.join(pav, "blobs", "sha256", h[:2])
    mkdirs(d)
    f = os.path.join(d, h)
    with open(f, "wb") as out:
        out.write(data)
    dd = os.path.join(v2, "blobs", "sha256", h[:2], h)
    os.makedirs(dd)
    os.link(f, os.path.join(dd, "data"))  # the master copies share bytes; cp -a copies don't
    return "sha256:" + h

def link(path, digest):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "link"), "w") as out:
        out.write(digest)

def random_blob():
    return rng.randbytes(rng.randint(1024, 4096))

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
repos = ["bench/r%03d" % i for i in range(nrepos)]
base_per_repo = 2 if nblobs - 2 * nrepos >= nman else 0
unique = nblobs - base_per_repo * nrepos
garbage = set(rng.sample(range(nman), round(nman * garbage_pct / 100)))
blobs, links, manifests, refs, tags = [], [], [], [], []
g = {"manifests": 0, "blobs": 0, "links": 0, "bytes": 0}
live_repos = {i % nrepos for i in range(nman) if i not in garbage}
base = {}
for ri, repo in enumerate(repos):
    base[repo] = []
    # As after tags were deleted: Distribution's --delete-untagged stops at
    # a repository without a _manifests/tags directory ("unknown repository").
    os.makedirs(os.path.join(v2, "repositories", repo, "_manifests", "tags"))
    for _ in range(base_per_repo):
        data = random_blob()
        d = put_blob(data)
        base[repo].append((d, len(data)))
        blobs.append((d, len(data), 0))
        links.append((repo, d))
        link(os.path.join(v2, "repositories", repo, "_layers", "sha256", d[7:]), d)
        if ri not in live_repos:
            g["blobs"] += 1; g["links"] += 1; g["bytes"] += len(data)
sample = None
for i in range(nman):
    repo = repos[i % nrepos]
    own = unique * (i + 1) // nman - unique * i // nman
    is_garbage = i in garbage
    descs = []
    for k in range(own):
        data = random_blob()
        d = put_blob(data)
        descs.append((d, len(data)))
        blobs.append((d, len(data), 0))
        links.append((repo, d))
        link(os.path.join(v2, "repositories", repo, "_layers", "sha256", d[7:]), d)
        if is_garbage:
            g["blobs"] += 1; g["links"] += 1; g["bytes"] += len(data)
    layers = base[repo] + descs[1:]
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": descs[0][0], "size": descs[0][1]},
        "layers": [{"mediaType": LAYER, "digest": d, "size": n} for d, n in layers],
    }, separators=(",", ":")).encode()
    md = put_blob(body)
    blobs.append((md, len(body), 1))
    manifests.append((repo, md, MANIFEST, len(body)))
    for d, _ in [descs[0]] + layers:
        refs.append((repo, md, d))
    link(os.path.join(v2, "repositories", repo, "_manifests", "revisions", "sha256", md[7:]), md)
    if is_garbage:
        g["manifests"] += 1; g["blobs"] += 1; g["bytes"] += len(body)
    else:
        tag = "v%07d" % i
        tags.append((repo, tag, md))
        t = os.path.join(v2, "repositories", repo, "_manifests", "tags", tag)
        link(os.path.join(t, "current"), md)
        link(os.path.join(t, "index", "sha256", md[7:]), md)
        if sample is None:
            sample = {"repo": repo, "tag": tag, "manifest": md, "blob": layers[-1][0] if layers else descs[0][0]}

db = sqlite3.connect(os.path.join(pav, "meta.db"), timeout=60)
with db:
    db.executemany("INSERT INTO repositories (name, created_at) VALUES (?, ?)", [(r, old) for r in repos])
    db.executemany(
        "INSERT INTO blobs (digest, size, created_at, claimed_at, manifest) VALUES (?, ?, ?, ?, ?)",
        [(d, n, old, old, m) for d, n, m in blobs])
    db.executemany(
        "INSERT INTO repo_blobs (repo, digest, created_at, claimed_at) VALUES (?, ?, ?, ?)",
        [(r, d, old, old) for r, d in links])
    db.executemany(
        "INSERT INTO manifests (repo, digest, media_type, size, created_at, claimed_at, refs_known) "
        "VALUES (?, ?, ?, ?, ?, ?, 1)",
        [(r, d, mt, n, old, old) for r, d, mt, n in manifests])
    db.executemany(
        "INSERT INTO manifest_refs (repo, manifest, digest, kind) VALUES (?, ?, ?, 0)", refs)
    db.executemany(
        "INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)",
        [(r, t, d, old) for r, t, d in tags])
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
print(json.dumps({
    "blob_rows": len(blobs), "manifests": len(manifests), "links": len(links),
    "refs": len(refs), "tags": len(tags), "repos": len(repos), "base_per_repo": base_per_repo,
    "garbage": g, "sample": sample,
}))
