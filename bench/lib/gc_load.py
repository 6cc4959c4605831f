"""prepare PORT REPOS: the empty config {} uploaded into each repository.
push PORT REPOS WORKERS SECS: pushes from WORKERS processes for SECS; JSON.
verify PORT SAMPLES.json: pulls every sampled artifact back; JSON."""
import hashlib, http.client, json, multiprocessing as mp, os, random, sys, time

EMPTY = b"{}"
EMPTY_D = "sha256:" + hashlib.sha256(EMPTY).hexdigest()
OCI = "application/vnd.oci.image.manifest.v1+json"

def conn_to(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)

def call(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, r.read(), r

def upload(c, repo, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    st, _, _ = call(c, "POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data,
                    {"Content-Type": "application/octet-stream"})
    return st, d

def repos_of(n):
    return ["bench/r%03d" % i for i in range(n)]

def prepare(port, n):
    c = conn_to(port)
    for repo in repos_of(n):
        st, _ = upload(c, repo, EMPTY)
        if st != 201:
            sys.exit("upload of {} into %s answered %d" % (repo, st))

def worker(idx, port, repos, nworkers, start, secs, q):
    rng = random.Random(os.getpid() ^ int(time.time() * 1e6))
    deadline = start + secs
    ok, lat, errors, samples, i = 0, [], {}, [], 0
    c = conn_to(port)
    while time.time() < start:
        time.sleep(0.001)
    while True:
        t0 = time.time()
        if t0 >= deadline:
            break
        repo = repos[(idx + i * nworkers) % len(repos)]
        tag = "p%d-%d-%d" % (os.getpid(), idx, i)
        i += 1
        try:
            data = rng.randbytes(rng.randint(1024, 4096))
            st, d = upload(c, repo, data)
            if st != 201:
                errors["blob POST %d" % st] = errors.get("blob POST %d" % st, 0) + 1
                continue
            body = json.dumps({
                "schemaVersion": 2, "mediaType": OCI,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_D, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(data)}],
            }, separators=(",", ":")).encode()
            st, _, _ = call(c, "PUT", "/v2/%s/manifests/%s" % (repo, tag), body, {"Content-Type": OCI})
            if st != 201:
                errors["manifest PUT %d" % st] = errors.get("manifest PUT %d" % st, 0) + 1
                continue
        except (OSError, http.client.HTTPException) as e:
            k = type(e).__name__
            errors[k] = errors.get(k, 0) + 1
            c.close()
            c = conn_to(port)
            continue
        t1 = time.time()
        if t1 <= deadline:
            ok += 1
            lat.append(t1 - t0)
            if ok % 25 == 1 and len(samples) < 40:
                samples.append({"repo": repo, "tag": tag, "blob": d})
    q.put({"ok": ok, "lat": lat, "errors": errors, "samples": samples})

def push(port, n, nworkers, secs):
    repos = repos_of(n)
    q = mp.Queue()
    start = time.time() + 0.5
    ps = [mp.Process(target=worker, args=(w, port, repos, nworkers, start, secs, q)) for w in range(nworkers)]
    for p in ps:
        p.start()
    res = [q.get(timeout=secs + 120) for _ in ps]
    for p in ps:
        p.join(30)
    lat = sorted(x for r in res for x in r["lat"])
    errors = {}
    for r in res:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    ok = sum(r["ok"] for r in res)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0
    print(json.dumps({
        "start": start, "end": start + secs, "pushes": ok, "per_s": ok / secs,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000 if lat else 0,
        "errors": errors, "samples": [s for r in res for s in r["samples"]],
    }))

def verify(port, path):
    samples = json.load(open(path))["samples"]
    c = conn_to(port)
    bad = []
    for s in samples:
        st, body, r = call(c, "GET", "/v2/%s/manifests/%s" % (s["repo"], s["tag"]), headers={"Accept": OCI})
        if st != 200:
            bad.append("%s:%s manifest %d" % (s["repo"], s["tag"], st))
            continue
        want = r.getheader("Docker-Content-Digest")
        if want != "sha256:" + hashlib.sha256(body).hexdigest():
            bad.append("%s:%s manifest digest" % (s["repo"], s["tag"]))
        for d in (s["blob"], EMPTY_D):
            st, body, _ = call(c, "GET", "/v2/%s/blobs/%s" % (s["repo"], d))
            if st != 200 or "sha256:" + hashlib.sha256(body).hexdigest() != d:
                bad.append("%s blob %s: %d" % (s["repo"], d[:19], st))
    print(json.dumps({"checked": len(samples), "bad": bad}))

if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "prepare":
        prepare(port, int(sys.argv[3]))
    elif cmd == "push":
        push(port, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        verify(port, sys.argv[3])
