"""Load and accounting for bench/events (standard library only).

paced URL REPO RATE SECS PREFIX THREADS OUT.json
    RATE pushes per second for SECS, open loop: push i is due at
    start + i/RATE and is sent when due by the first of THREADS keep-alive
    connections that is free (a late server makes pushes late, not
    fewer). A push: a config blob unique to it (POST, then PUT
    ?digest= with the bytes) and a manifest PUT naming it under the tag
    PREFIX-i. Writes each push's tag, manifest digest and the time the
    manifest PUT's 201 was read; prints a one-line summary.
lastseq URL
    the feed's last sequence number (pages /pavilion/v1/events to the end).
feed URL AFTER OUT.json
    the feed's events after AFTER: [seq, type, subject, time] each.
report KIND PUSHES.json RECEIVED.log [FEED.json]
    KIND pavilion or distribution: matches the receiver's lines to the
    pushes (Pavilion: artifact.pushed by digest, artifact.tagged by tag;
    Distribution: the manifest's push event by digest) and prints JSON:
    pushes achieved, manifest PUT latency, webhook latency (arrival -
    201) percentiles, lost and duplicated deliveries, and from FEED the
    events written for these pushes."""
import hashlib, http.client, json, sys, threading, time
from urllib.parse import urlsplit

OCI = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPES = {OCI, "application/vnd.docker.distribution.manifest.v2+json"}


def conn(url):
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def call(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r.status, data, r


def push_one(c, repo, tag, cfg):
    d = "sha256:" + hashlib.sha256(cfg).hexdigest()
    st, _, r = call(c, "POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})
    if st != 202:
        return "upload POST %d" % st, None, None
    loc = r.getheader("Location") or ""
    if loc.startswith("http"):
        u = urlsplit(loc)
        loc = u.path + ("?" + u.query if u.query else "")
    loc += ("&" if "?" in loc else "?") + "digest=" + d
    st, _, _ = call(c, "PUT", loc, cfg, {"Content-Type": "application/octet-stream"})
    if st != 201:
        return "upload PUT %d" % st, None, None
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": CONFIG, "digest": d, "size": len(cfg)}, "layers": [],
    }, separators=(",", ":")).encode()
    md = "sha256:" + hashlib.sha256(body).hexdigest()
    t_put = time.time()
    st, _, _ = call(c, "PUT", "/v2/%s/manifests/%s" % (repo, tag), body, {"Content-Type": OCI})
    t_201 = time.time()
    if st != 201:
        return "manifest PUT %d" % st, None, None
    return None, md, (t_put, t_201)


def paced(url, repo, rate, secs, prefix, threads, out):
    n = int(rate * secs)
    start = time.time() + 0.3
    lock = threading.Lock()
    nxt = [0]
    done, errors = [], {}

    def worker():
        c = conn(url)
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                break
            due = start + i / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            tag = "%s-%d" % (prefix, i)
            cfg = json.dumps({"bench": tag}).encode()
            try:
                err, md, ts = push_one(c, repo, tag, cfg)
            except (OSError, http.client.HTTPException) as e:
                err, md, ts = type(e).__name__, None, None
                c.close()
                c = conn(url)
            with lock:
                if err:
                    errors[err] = errors.get(err, 0) + 1
                else:
                    done.append([tag, md, due, ts[0], ts[1]])

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    json.dump({"start": start, "planned": n, "rate": rate, "pushes": done, "errors": errors}, open(out, "w"))
    last = max((p[4] for p in done), default=start)
    print(json.dumps({"ok": len(done), "planned": n, "errors": errors,
                      "achieved": round(len(done) / max(last - start, 1e-9), 1)}))


def pages(url, after):
    c = conn(url)
    while True:
        st, data, _ = call(c, "GET", "/pavilion/v1/events?after=%d&limit=1000" % after)
        if st != 200:
            sys.exit("GET /pavilion/v1/events answered %d: %s" % (st, data[:200]))
        page = json.loads(data)
        yield page["events"]
        if page["next"] == after:
            return
        after = page["next"]


def lastseq(url):
    last = 0
    for evs in pages(url, 0):
        if evs:
            last = evs[-1]["pavilionseq"]
    print(last)


def feed(url, after, out):
    rows = []
    for evs in pages(url, after):
        rows += [[e["pavilionseq"], e["type"], e.get("subject"), e.get("time")] for e in evs]
    json.dump(rows, open(out, "w"))
    print(rows[-1][0] if rows else after)


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def ms(x):
    return None if x is None else round(x * 1000, 1)


def report(kind, pushes_path, recv_path, feed_path=None):
    P = json.load(open(pushes_path))
    pushes = P["pushes"]
    by_digest = {p[1]: p for p in pushes}
    by_tag = {p[0]: p for p in pushes}
    first, seen, dups = {}, {}, 0
    first_tag = {}
    for line in open(recv_path):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if kind == "pavilion":
            if not r["path"].startswith("/pavilion"):
                continue
            subj = r.get("subject") or ""
            if r["type"] == "dev.pavilion.artifact.pushed":
                key, table, d = subj.split("@", 1)[-1], first, by_digest
            elif r["type"] == "dev.pavilion.artifact.tagged":
                key, table, d = subj.rsplit(":", 1)[-1], first_tag, by_tag
            else:
                continue
            ident = r.get("id")
        else:
            if not r["path"].startswith("/dist") or r["type"] != "push" or r.get("mediaType") not in MANIFEST_TYPES:
                continue
            key, table, d, ident = r.get("digest"), first, by_digest, r.get("id")
        if key not in d:
            continue
        if ident in seen:
            dups += 1
            continue
        seen[ident] = 1
        if key in table:
            dups += 1  # the same change announced twice under two ids
            continue
        table[key] = r["t"]
    lat = [first[p[1]] - p[4] for p in pushes if p[1] in first]
    lat_tag = [first_tag[p[0]] - p[4] for p in pushes if p[0] in first_tag]
    # From when the manifest PUT was sent: never negative, and a ratio means
    # something (an event can arrive before the client has read its 201).
    lat_sent = [first[p[1]] - p[3] for p in pushes if p[1] in first]
    put = [p[4] - p[3] for p in pushes]
    last = max((p[4] for p in pushes), default=P["start"])
    res = {
        "planned": P["planned"], "ok": len(pushes), "errors": P["errors"],
        "pushes_per_s": round(len(pushes) / max(last - P["start"], 1e-9), 1),
        "put_p50_ms": ms(pct(put, 50)), "put_p99_ms": ms(pct(put, 99)),
        "received": len(lat), "lost": len(pushes) - len(lat), "dups": dups,
        "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99)), "max_ms": ms(max(lat, default=None)),
        "min_ms": ms(min(lat, default=None)),
        "sent_p50_ms": ms(pct(lat_sent, 50)), "sent_p99_ms": ms(pct(lat_sent, 99)),
    }
    if kind == "pavilion":
        res.update({"tagged_received": len(lat_tag), "tagged_p50_ms": ms(pct(lat_tag, 50)),
                    "tagged_p99_ms": ms(pct(lat_tag, 99))})
    if feed_path:
        rows = json.load(open(feed_path))
        pushed = sum(1 for s, t, subj, _ in rows
                     if t == "dev.pavilion.artifact.pushed" and (subj or "").split("@", 1)[-1] in by_digest)
        tagged = sum(1 for s, t, subj, _ in rows
                     if t == "dev.pavilion.artifact.tagged" and (subj or "").rsplit(":", 1)[-1] in by_tag)
        seqs = [r[0] for r in rows]
        gaps = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
        res.update({"events": pushed + tagged, "events_expected": 2 * len(pushes),
                    "events_per_s": round((pushed + tagged) / max(last - P["start"], 1e-9), 1),
                    "feed_rows": len(rows), "feed_gaps": gaps})
    print(json.dumps(res))


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "paced":
        paced(a[0], a[1], float(a[2]), float(a[3]), a[4], int(a[5]), a[6])
    elif cmd == "lastseq":
        lastseq(a[0])
    elif cmd == "feed":
        feed(a[0], int(a[1]), a[2])
    elif cmd == "report":
        report(*a)
    else:
        sys.exit(__doc__)
