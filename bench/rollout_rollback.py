#!/usr/bin/env python3
"""Time from a failing rollout gate to all traffic back on the primary.

    python3 bench/rollout_rollback.py            # UMBRA=path/to/umbra (default target/release/umbra)

Two upstreams in this process (v1 answers 200; v2 answers 500 to every 10th request), umbra in
front with a SQLite store, and a rollout of v2 at a 50 % canary (`interval` 1 s, `failure_limit`
2, `min_requests` 30). Four client threads send requests and note which version answered (the
`X-Version` header) and when. Reported, from umbra's own rollout history and the clients:
- first failing evaluation -> rollback decision (at most one interval with failure_limit 2);
- rollback decision -> last request answered by v2 (the snapshot swap, plus requests in flight).
Appends the numbers to bench/RESULTS.md.
"""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UMBRA = os.environ.get("UMBRA", os.path.join(ROOT, "target", "release", "umbra"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upstream(version, fail_every):
    count = [0]

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            count[0] += 1
            status = 500 if fail_every and count[0] % fail_every == 0 else 200
            body = b'{"ok":true}'
            self.send_response(status)
            self.send_header("X-Version", version)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Content-Type": "application/json"}
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, json.loads(data) if data else None


def main():
    v1, v2 = upstream("v1", 0), upstream("v2", 10)
    proxy, admin = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="umbra-bench-rollout-")
    cfg = os.path.join(work, "umbra.toml")
    with open(cfg, "w") as f:
        f.write(f"""[proxy]
listen = "127.0.0.1:{proxy}"
[admin]
listen = "127.0.0.1:{admin}"
[store]
url = "sqlite://{work}/umbra.db"
[log]
access = false
level = "warn"
[services.v1]
servers = ["http://127.0.0.1:{v1}"]
[services.v2]
servers = ["http://127.0.0.1:{v2}"]
[[routes]]
name = "api"
rule = "PathPrefix(`/`)"
service = "v1"
""")
    umbra = subprocess.Popen([UMBRA, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if call(admin, "GET", "/health/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        stop = threading.Event()
        last_v2 = [0.0]

        def client():
            c = http.client.HTTPConnection("127.0.0.1", proxy, timeout=5)
            while not stop.is_set():
                try:
                    c.request("GET", "/items")
                    r = c.getresponse()
                    r.read()
                    if r.getheader("X-Version") == "v2":
                        last_v2[0] = time.time()
                except (OSError, http.client.HTTPException):
                    c = http.client.HTTPConnection("127.0.0.1", proxy, timeout=5)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        spec = {"service": "v2", "steps": ["50% 1h", "100%"], "min_requests": 30,
                "interval": "1s", "failure_limit": 2}
        assert call(admin, "POST", "/api/routes/api/rollout", spec)[0] == 200
        while True:
            _, r = call(admin, "GET", "/api/routes/api/rollout")
            if r["status"] != "running":
                break
            time.sleep(0.05)
        time.sleep(1.0)  # requests in flight finish; any later v2 answer would show
        stop.set()
        for t in threads:
            t.join()
        hist = r["history"]
        failing = next(d["at_ms"] for d in hist if d["action"] == "failing") / 1000.0
        rollback = next(d["at_ms"] for d in hist if d["action"] == "rollback") / 1000.0
        gate = r["reason"]
        lines = [
            f"- outcome: {r['status']}, {gate['gate']} gate: {gate['detail']}",
            f"- first failing evaluation -> rollback decision: {rollback - failing:.3f} s "
            f"(interval 1 s, failure_limit 2)",
            f"- rollback decision -> last request answered by v2: {max(0.0, last_v2[0] - rollback):.3f} s",
            f"- first failing evaluation -> all traffic on v1: {max(rollback, last_v2[0]) - failing:.3f} s "
            f"(target <= interval + 1 s = 2 s)",
        ]
        print("\n".join(lines))
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — rollout rollback "
                    f"time ({rev}, {os.path.basename(os.path.dirname(UMBRA))} build)\n\n"
                    + "\n".join(lines) + "\n")
    finally:
        umbra.kill()
        umbra.wait()


if __name__ == "__main__":
    sys.exit(main())
