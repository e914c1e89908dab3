#!/usr/bin/python3
"""sse-fcgi behind each front server, one short run each: see bench/README.md.

For nginx, lighttpd (spawn-fcgi way), Apache httpd and Caddy, each started
from its shipped example after the tests' documented substitution, in front
of one sse-fcgi started with the spawn-fcgi line of examples/nginx/spawn-fcgi.sh:

  idle    N idle streams (default 2,000): resident memory of the front's
          processes and of sse-fcgi above what they had before, per stream;
          then one publish per resource reaches every stream
  latency 1,000 streams on 10 resources, 100 publishes/s for a few seconds:
          publish-to-client latency p50/p99 measured by bench/sse-load
  held    Apache only: more streams than MaxRequestWorkers, how many it holds

    make build/bench/sse-load && /usr/bin/python3 bench/fronts.py [--fronts nginx,apache] [--idle N]

Prints each phase's result as it comes and a Markdown table at the end; with
--json FILE also writes everything there.  Python 3
standard library only; run as root (the fronts run as in production:
www-data, caddy)."""

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.environ.setdefault("SSE_FCGI_BIN", os.path.join(ROOT, "sse-fcgi"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from front_helpers import Apache, Caddy  # noqa: E402
from lighttpd_helpers import Lighttpd  # noqa: E402

LOAD = os.environ.get("SSE_LOAD_BIN", os.path.join(ROOT, "build/bench/sse-load"))
BACKEND_CONF = {"max_streams_per_resource": 1048576, "log_level": "notice"}


def tree_pids(root):
    """root and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(harness.proc_ppid(int(d)), []).append(int(d))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            total += int(harness.proc_status_field(p, "VmRSS").split()[0])
        except (OSError, AttributeError, TypeError):
            pass
    return total


class NotReady(Exception):
    pass


def load(args, hold=None, timeout=300, on_stuck=None):
    """One sse-load run; with hold: wait for its ready line, call hold(), go
    on.  When not every stream is up within `timeout` (a front that stops
    accepting), on_stuck() is called while the streams are still open and
    NotReady is raised."""
    argv = [LOAD, "--quiet"] + [str(a) for a in args] + (["--hold"] if hold else [])
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         preexec_fn=harness.raise_nofile)
    try:
        ready = None
        if hold:
            if not select.select([p.stdout], [], [], timeout)[0]:
                raise NotReady(on_stuck() if on_stuck else None)
            ready = json.loads(p.stdout.readline())
            hold(ready)
            p.stdin.write("go\n")
            p.stdin.flush()
        out, _ = p.communicate(timeout=timeout)
        res = json.loads(out.strip().splitlines()[-1])
        res["ready"] = ready
        return res
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


class Stand:
    """One front + one sse-fcgi, in a harness.Env."""

    def __init__(self, root, front):
        self.env = harness.Env("bench-%s-%d" % (front, len(os.listdir(root))), root)
        self.kind = front
        self.front = None
        self.env.start_backend(dict(BACKEND_CONF))
        if front == "nginx":
            self.env.start_nginx()
            self.front_root = self.env.nginx.pid
        elif front == "lighttpd":
            self.front = Lighttpd(self.env, "spawn").start()
            self.front_root = self.front.proc.pid
        else:
            self.front = (Apache if front == "apache" else Caddy)(self.env).start()
            self.front_root = self.front.proc.pid

    def rss(self):
        return rss_kb(tree_pids(self.front_root)), rss_kb(self.env.backend_pids)

    def close(self):
        if self.front is not None:
            self.front.stop()
        self.env.teardown()


def idle(stand, n, resources=20):
    time.sleep(1)
    base = stand.rss()
    held = {}

    def at_ready(ready):
        time.sleep(3)                         # idle: nothing in flight
        held["rss"] = stand.rss()
        held["ready"] = ready

    def stuck():
        return {"streams": n, "stuck": True, "backend_streams": stand.env.fcgi("GET", "/stats").json()["streams"],
                "front_rss_kb": [base[0], stand.rss()[0]]}
    try:
        r = load(["--port", stand.env.port, "--streams", n, "--resources", resources, "--src-addrs", 8,
                  "--inflight", 128, "--rate", 200, "--count", resources, "--duration", 2, "--drain", 5,
                  "--pub-conns", 1, "--sub-path", "/sse/r%u", "--pub-path", "/publish/r%u", "--label", "idle"],
                 hold=at_ready, timeout=60, on_stuck=stuck)
    except NotReady as e:
        return e.args[0]
    est = held["ready"]["established"]
    front_b = (held["rss"][0] - base[0]) * 1024.0 / est if est else None
    back_b = (held["rss"][1] - base[1]) * 1024.0 / est if est else None
    return {"streams": n, "established": est, "events": r["events"], "expected": r["expected"],
            "lost": r["lost"], "front_rss_kb": [base[0], held["rss"][0]],
            "backend_rss_kb": [base[1], held["rss"][1]], "front_b_per_stream": front_b,
            "backend_b_per_stream": back_b}


def latency(stand, seconds):
    r = load(["--port", stand.env.port, "--streams", 1000, "--resources", 10, "--src-addrs", 8,
              "--rate", 100, "--duration", seconds, "--pub-conns", 2, "--payload", 128,
              "--sub-path", "/sse/r%u", "--pub-path", "/publish/r%u", "--label", "latency"])
    return {k: r[k] for k in ("established", "events", "expected", "lost", "dup", "lat_p50_ms",
                              "lat_p99_ms", "lat_max_ms")}


def apache_held(stand, n):
    """Open n streams behind Apache; how many it serves (the rest wait
    unanswered once every worker thread holds one)."""
    def stuck():
        time.sleep(5)       # let Apache start what children it will
        return {"streams": n, "stuck": True, "backend_streams": stand.env.fcgi("GET", "/stats").json()["streams"],
                "apache_children": len(stand.front.children()), "front_rss_kb": stand.rss()[0]}
    try:
        r = load(["--port", stand.env.port, "--streams", n, "--resources", 20, "--src-addrs", 8,
                  "--inflight", 512, "--rate", 100, "--count", 20, "--duration", 1, "--drain", 3,
                  "--pub-conns", 1, "--sub-path", "/sse/r%u", "--pub-path", "/publish/r%u", "--label", "held"],
                 hold=lambda ready: None, timeout=90, on_stuck=stuck)
    except NotReady as e:
        return e.args[0]
    return {k: r.get(k) for k in ("streams", "established", "refused_503", "refused_other", "connect_errors",
                                  "early_eof", "pub_ok", "pub_err", "events", "expected", "first_errno",
                                  "connect_s")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fronts", default="nginx,lighttpd,apache,caddy")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--apache-held", type=int, default=4400)
    ap.add_argument("--json")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    harness.become_subreaper()
    harness.raise_nofile()
    root = tempfile.mkdtemp(prefix="sse-fronts-")
    os.chmod(root, 0o755)
    out = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "loadavg": open("/proc/loadavg").read().split()[:3], "fronts": {}}
    for front in a.fronts.split(","):
        res = {}
        stand = Stand(root, front)
        try:
            if a.idle:
                res["idle"] = idle(stand, a.idle)
                print(front, "idle", json.dumps(res["idle"]), flush=True)
            if a.seconds:
                res["latency"] = latency(stand, a.seconds)
                print(front, "latency", json.dumps(res["latency"]), flush=True)
        finally:
            stand.close()
        if front == "apache" and a.apache_held:
            stand = Stand(root, front)
            try:
                res["held"] = apache_held(stand, a.apache_held)
                print(front, "held", json.dumps(res["held"]), flush=True)
            finally:
                stand.close()
        out["fronts"][front] = res
        print(front, json.dumps(res), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    print("\n| front | idle streams held | front memory / idle stream | sse-fcgi / idle stream "
          "| streams per GiB | 1,000 streams p50 / p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for front, r in out["fronts"].items():
        i, l = r.get("idle"), r.get("latency")
        if not i or not l or i.get("stuck"):
            continue
        per = (i["front_b_per_stream"] or 0) + (i["backend_b_per_stream"] or 0)
        print("| %s | %d of %d | %.1f KB | %d B | %s | %.2f / %.2f ms |" % (
            front, i["established"], i["streams"], i["front_b_per_stream"] / 1000.0, i["backend_b_per_stream"],
            "{:,}".format(int((1 << 30) / per)) if per > 0 else "-", l["lat_p50_ms"], l["lat_p99_ms"]))
    print("load average during the run: %s" % " ".join(out["loadavg"]))


if __name__ == "__main__":
    main()
