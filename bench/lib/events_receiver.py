"""events_receiver.py PORT LOG: a webhook receiver for bench/events.

Answers every POST 200 at once (HTTP/1.1, keep-alive) and appends one JSON
line per event to LOG with the wall-clock time the request's body had
arrived: Pavilion's CloudEvents (binary mode: the attributes are ce-*
headers) and Distribution's notification envelopes ({"events": [...]},
one line per event in it). The path of the request goes in the line, so
one receiver serves several senders. Signatures are not checked: the
receiver's cost stays the same for both senders."""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, log_path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
out = open(log_path, "a", buffering=1)


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n)
        t = time.time()
        lines = []
        if self.headers.get("ce-type"):
            lines.append({
                "t": t, "path": self.path, "type": self.headers.get("ce-type"),
                "subject": self.headers.get("ce-subject"), "id": self.headers.get("ce-id"),
                "seq": self.headers.get("ce-pavilionseq"),
            })
        else:
            try:
                env = json.loads(body or b"{}")
            except ValueError:
                env = {}
            for e in env.get("events") or []:
                tg = e.get("target") or {}
                lines.append({
                    "t": t, "path": self.path, "type": e.get("action"), "id": e.get("id"),
                    "mediaType": tg.get("mediaType"), "digest": tg.get("digest"),
                    "repository": tg.get("repository"), "tag": tg.get("tag"),
                })
        with lock:
            for line in lines:
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
