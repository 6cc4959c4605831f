import os, signal, sqlite3, subprocess, sys, time

pav, data, out, grace, timeout, untag, pidfile = sys.argv[1:8]
child = None

def stop(*_):
    if child is not None and child.poll() is None:
        child.terminate()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
n = 0
with open(os.path.join(out, "runs"), "a") as runs:
    while not os.path.exists(os.path.join(out, "stop")):
        n += 1
        if n > 1 and int(untag) > 0:
            try:
                db = sqlite3.connect(os.path.join(data, "meta.db"), timeout=60)
                with db:
                    db.execute("DELETE FROM tags WHERE rowid IN "
                               "(SELECT rowid FROM tags WHERE tag LIKE 'v%' LIMIT ?)", (int(untag),))
                db.close()
            except sqlite3.Error as e:
                print("refill before run %d: %s" % (n, e), file=sys.stderr)
        t0 = time.time()
        with open(os.path.join(out, "gc-%d.json" % n), "wb") as o, \
                open(os.path.join(out, "gc-%d.err" % n), "wb") as e:
            child = subprocess.Popen([pav, "gc", "--data", data, "--grace", grace, "--output", "json"],
                                     stdin=subprocess.DEVNULL, stdout=o, stderr=e)
            with open(pidfile, "w") as f:
                f.write(str(child.pid))
            try:
                rc = child.wait(timeout=float(timeout))
            except subprocess.TimeoutExpired:
                child.kill()
                rc = child.wait()
        t1 = time.time()
        runs.write("%d %f %f %d\n" % (n, t0, t1, rc))
        runs.flush()
t = os.times()
with open(os.path.join(out, "cpu"), "w") as f:
    f.write("%.1f\n" % (t.user + t.system + t.children_user + t.children_system))
