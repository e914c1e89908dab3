#!/usr/bin/python3
"""sse-fcgi vs Nchan on one machine, one run: see bench/README.md.

Stands up, on loopback, sse-fcgi behind nginx from examples/nginx (the
documented substitution of tests/integration/README.md, plus the capacity rule
below) and nginx with Debian's Nchan module, drives both with bench/sse-load
(same clients, same 128-byte payloads), and writes bench/results/.

    /usr/bin/python3 bench/run.py [--quick] [--only a0,d10k,...] [--systems sse,nchan]

Environment: BENCH_QUICK=1 (one repetition, shorter phases), BENCH_REPS=N,
SSE_FCGI_BIN, SSE_LOAD_BIN, BENCH_KEEP=1 (keep the work directory).
Python 3 standard library only; run as root (nginx workers run as www-data,
as shipped).
"""
import argparse
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# BENCH_NGINX_CONF: try a candidate example config (experiments only)
NGINX_EXAMPLE = os.environ.get("BENCH_NGINX_CONF", os.path.join(ROOT, "examples/nginx/nginx.conf"))
BIN = os.environ.get("SSE_FCGI_BIN", os.path.join(ROOT, "sse-fcgi"))
os.environ["SSE_FCGI_BIN"] = BIN      # the harness below reads it at import
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402  (the documented substitution, shared with the tests)
import lighttpd_helpers  # noqa: E402  (the same for examples/lighttpd)
LOAD = os.environ.get("SSE_LOAD_BIN", os.path.join(ROOT, "build/bench/sse-load"))
NCHAN_SO = "/usr/lib/nginx/modules/ngx_nchan_module.so"
LIGHTTPD_EXAMPLE = lighttpd_helpers.SPAWN_CONF
# system -> column title; "sse" is sse-fcgi behind nginx, "lighty" behind lighttpd
SYSTEM_NAMES = {"sse": "sse-fcgi/nginx", "sse-h0": "sse-fcgi/nginx, history_size = 0",
                "lighty": "sse-fcgi/lighttpd", "nchan": "Nchan"}
# above this share of its core the load tool may be what limits a row
TOOL_BOUND_PCT = 70.0
RESULTS = os.path.join(HERE, "results")
NOFILE = 1048576

NCPU = os.cpu_count() or 1


def fd_hard():
    """The descriptor ceiling every process here can reach: RLIMIT_NOFILE's
    hard limit after trying to raise it (raising needs CAP_SYS_RESOURCE)."""
    raise_nofile()
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]
SERVER_CPU = "0"
LOAD_CPU = "1" if NCPU > 1 else "0"


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# Configuration files: the shipped examples, substituted

def capacity_rule(text, conns):
    """Bench-only rule, applied only when one worker cannot carry `conns`
    connections: worker_connections and worker_rlimit_nofile are set to what
    a process may really open here (RLIMIT_NOFILE's hard limit), and, if one
    worker still cannot carry them, worker_processes is raised (with 30 %
    headroom because accepted connections do not spread evenly)."""
    m = re.search(r"(?m)^\s*worker_connections\s+(\d+)\s*;", text)
    if not m:
        raise BenchError("nginx.conf: no worker_connections")
    wc = int(m.group(1))
    hard = fd_hard()
    per_worker = min(wc, hard - 64)
    if conns <= per_worker:
        return text, 1
    workers = 1 if conns <= hard - 64 else -(-int(conns * 1.3) // (hard - 64))
    wc = min(max(wc, conns), hard - 64) if workers == 1 else hard - 64
    text = re.sub(r"(?m)^(\s*worker_connections\s+)\d+(\s*;)", r"\g<1>%d\2" % wc, text)
    text, n = re.subn(r"(?m)^(\s*worker_rlimit_nofile\s+)\d+(\s*;)", r"\g<1>%d\2" % hard, text)
    if n == 0:
        raise BenchError("nginx.conf: no worker_rlimit_nofile")
    text, n = re.subn(r"(?m)^(\s*worker_processes\s+)\S+(\s*;)", r"\g<1>%d\2" % workers, text)
    if n == 0:
        raise BenchError("nginx.conf: no worker_processes")
    return text, workers


def substitute_nginx_conf(text, port, sock, log_dir, pid_file, temp_dir, streams):
    """The documented substitution of tests/integration/README.md (the tests'
    own function: listen port, FastCGI socket, log, pid and temp paths), plus
    one bench-only rule: when the scenario holds more streams than the shipped
    worker_connections carries (2 connections a stream), worker_connections
    and worker_rlimit_nofile are raised to fit.  Nothing else changes."""
    try:
        text = harness.substitute_nginx_conf(text, port, sock, log_dir, pid_file, temp_dir)
    except harness.TestFailure as e:
        raise BenchError(str(e))
    return capacity_rule(text, 2 * streams + 1024)


def spawn_fcgi_argv(sock, pid_file, procs, conf):
    """The `spawn-fcgi ...` line of examples/nginx/spawn-fcgi.sh with -s, -P,
    -F, the program and its -c substituted, exactly as the tests do."""
    try:
        return harness.spawn_fcgi_argv(sock, pid_file, procs, conf)
    except harness.TestFailure as e:
        raise BenchError(str(e))


NCHAN_CONF = """# Nchan under the same nginx settings as examples/nginx/nginx.conf
load_module %(so)s;
user www-data;
worker_processes 1;
worker_rlimit_nofile %(rlimit)d;
worker_shutdown_timeout 10s;
pid %(dir)s/log/nginx.pid;
error_log %(dir)s/log/error.log warn;
events {
    worker_connections %(wc)d;
    multi_accept on;
}
http {
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    tcp_nodelay on;
    access_log %(dir)s/log/access.log;
    client_body_temp_path %(dir)s/tmp/body;
    fastcgi_temp_path %(dir)s/tmp/fastcgi;
    proxy_temp_path %(dir)s/tmp/proxy;
    uwsgi_temp_path %(dir)s/tmp/uwsgi;
    scgi_temp_path %(dir)s/tmp/scgi;
    gzip off;
    reset_timedout_connection on;
%(redis)s
    server {
        listen 127.0.0.1:%(port)d;
        server_name _;
        location ~ ^/sub/([A-Za-z0-9_.:-]+)$ {
            nchan_subscriber eventsource;
            nchan_channel_id $1;
        }
        location ~ ^/pub/([A-Za-z0-9_.:-]+)$ {
            allow 127.0.0.1;
            deny all;
            nchan_publisher;
            nchan_channel_id $1;
            client_max_body_size 64k;
        }
        location / {
            return 404;
        }
    }
}
"""


# ---------------------------------------------------------------------------
# Processes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pin(argv, cpu):
    if NCPU > 1 and shutil.which("taskset"):
        return ["taskset", "-c", cpu] + argv
    return argv


def raise_nofile():
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        pass


def read_status(pid, key="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
    except OSError:
        pass
    return None


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    except (OSError, IndexError, ValueError):
        return 0


def io_calls(pid):
    """read-type + write-type syscalls so far (/proc/PID/io syscr + syscw)"""
    try:
        with open("/proc/%d/io" % pid) as f:
            d = dict(line.split(": ") for line in f.read().splitlines())
        return int(d["syscr"]) + int(d["syscw"])
    except (OSError, KeyError, ValueError):
        return 0


def children(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def http_get(port, path, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16) if size_line.strip() else 0
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        body = out
    return status, body


def wait_for(pred, timeout, what):
    t = time.time() + timeout
    while time.time() < t:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError("timed out waiting for " + what)


class Stack:
    """One system under test: nginx (+ spawn-fcgi'd sse-fcgi) on one port."""

    def __init__(self, work, name, kind, streams, redis_port=None, procs=None):
        # "sse-h0": sse-fcgi behind nginx with ids and history off (history_size = 0),
        # the baseline the cost of history is measured against
        self.history = kind != "sse-h0"
        if kind == "sse-h0":
            kind = "sse"
        if procs is None:
            # one process unless the descriptor ceiling forbids it
            # (x1.5: spawn-fcgi children share one socket and connections do
            # not spread evenly over them)
            procs = 1 if streams <= fd_hard() - 128 else -(-int(streams * 1.5) // (fd_hard() - 128))
        self.dir = os.path.join(work, name)
        self.kind, self.streams, self.redis_port, self.procs = kind, streams, redis_port, procs
        self.port = free_port()
        self.nginx = None
        self.sse_pids = []
        for d in ("run", "sse", "nginx/log", "nginx/tmp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(self.dir, 0o755)
        shutil.chown(os.path.join(self.dir, "sse"), "www-data", "www-data")

    # sse-fcgi ------------------------------------------------------------
    def _start_sse(self):
        sock = os.path.join(self.dir, "run/sse-fcgi.sock")
        conf = os.path.join(self.dir, "sse/sse-fcgi.conf")
        lines = [
            'max_streams = 65536',
            'max_streams_per_resource = 1048576',
            'heartbeat = 15',
            'log_file = "%s"' % os.path.join(self.dir, "sse/sse-fcgi.log"),
            'log_level = "info"',
        ]
        if not self.history:
            lines.append('history_size = 0')
        if self.redis_port:
            lines += ["redis {", '    host = "127.0.0.1"', "    port = %d" % self.redis_port, "}"]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(conf, 0o644)
        r = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError("sse-fcgi -t: " + r.stderr.strip())
        pidf = os.path.join(self.dir, "run/spawn.pid")
        argv = pin(spawn_fcgi_argv(sock, pidf, self.procs, conf), SERVER_CPU)
        r = subprocess.run(argv, capture_output=True, text=True, preexec_fn=raise_nofile,
                           env=dict(os.environ, REDIS_HOST="", REDIS_PORT=""))
        if r.returncode != 0:
            raise BenchError("spawn-fcgi: %s %s" % (r.stdout, r.stderr))
        with open(pidf) as f:
            self.sse_pids = [int(x) for x in f.read().split()]
        with open(NGINX_EXAMPLE) as f:
            text, self.workers = substitute_nginx_conf(
                f.read(), self.port, sock, os.path.join(self.dir, "nginx/log"),
                os.path.join(self.dir, "run/nginx.pid"), os.path.join(self.dir, "nginx/tmp"),
                self.streams)
        return text

    def _start_nchan(self):
        redis = ""
        if self.redis_port:
            redis = ('    nchan_redis_url "redis://127.0.0.1:%d";\n    nchan_use_redis on;\n'
                     % self.redis_port)
        text = NCHAN_CONF % dict(so=NCHAN_SO, rlimit=131072, wc=65536, port=self.port,
                                 dir=os.path.join(self.dir, "nginx"), redis=redis)
        text, self.workers = capacity_rule(text, self.streams + 1024)
        return text

    def _start_lighty(self):
        """examples/lighttpd/lighttpd-spawn-fcgi.conf with the tests'
        substitution; the backend from the same spawn-fcgi line."""
        text = self._start_sse()            # backend as for nginx (same spawn line)
        sock = os.path.join(self.dir, "run/sse-fcgi.sock")
        logd = os.path.join(self.dir, "nginx/log")
        tmpd = os.path.join(self.dir, "nginx/tmp")
        os.makedirs(os.path.join(tmpd, "uploads"), exist_ok=True)
        for d in (logd, tmpd, os.path.join(tmpd, "uploads")):
            shutil.chown(d, "www-data", "www-data")
        with open(LIGHTTPD_EXAMPLE) as f:
            try:
                text = lighttpd_helpers.substitute_lighttpd_conf(
                    f.read(), os.path.basename(LIGHTTPD_EXAMPLE), self.port, sock, logd,
                    os.path.join(self.dir, "run/lighttpd.pid"), tmpd)
            except harness.TestFailure as e:
                raise BenchError(str(e))
        self.workers = 1
        return text

    def start(self):
        if self.kind == "lighty":
            text = self._start_lighty()
            lconf = os.path.join(self.dir, "nginx/lighttpd.conf")
            with open(lconf, "w") as f:
                f.write(text)
            self.nginx = subprocess.Popen(pin(["lighttpd", "-D", "-f", lconf], SERVER_CPU),
                                          start_new_session=True, preexec_fn=raise_nofile,
                                          stdout=open(os.path.join(self.dir, "nginx/log/stderr"), "w"),
                                          stderr=subprocess.STDOUT)

            def lup():
                if self.nginx.poll() is not None:
                    raise BenchError("lighttpd exited: see " + self.dir + "/nginx/log/")
                st, _ = http_get(self.port, "/stats")
                return st == 200
            wait_for(lup, 15, "lighttpd on port %d" % self.port)
            return
        text = self._start_sse() if self.kind == "sse" else self._start_nchan()
        nconf = os.path.join(self.dir, "nginx/nginx.conf")
        with open(nconf, "w") as f:
            f.write(text)
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(self.dir, "nginx/fastcgi_params"))
        argv = pin(["nginx", "-p", os.path.join(self.dir, "nginx") + "/", "-c", nconf,
                    "-e", os.path.join(self.dir, "nginx/log/error.log"), "-g", "daemon off;"],
                   SERVER_CPU)
        self.nginx = subprocess.Popen(argv, start_new_session=True, preexec_fn=raise_nofile,
                                      stderr=open(os.path.join(self.dir, "nginx/log/stderr"), "w"))

        def up():
            if self.nginx.poll() is not None:
                raise BenchError("nginx exited: see " + self.dir + "/nginx/log/")
            if self.kind == "sse":
                st, body = http_get(self.port, "/stats")
                if st != 200:
                    return False
                if self.redis_port:
                    return json.loads(body).get("mode") == "redis"
                return True
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        wait_for(up, 15, "%s on port %d" % (self.kind, self.port))
        wait_for(lambda: len(self.worker_pids()) == self.workers, 5, "nginx workers")

    def worker_pids(self):
        """The front's processes that carry connections: lighttpd is one
        process; nginx's workers are children of the master (taskset execs
        it, same pid)."""
        if self.kind == "lighty":
            return [self.nginx.pid] if self.nginx else []
        return [p for p in children(self.nginx.pid) if "worker" in self._cmd(p)]

    @staticmethod
    def _cmd(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stats(self):
        """/stats of one process (nginx picks which), {} for Nchan."""
        if self.kind not in ("sse", "lighty"):
            return {}
        try:
            st, body = http_get(self.port, "/stats", timeout=10)
            return json.loads(body) if st == 200 else {}
        except OSError:
            return {}

    def rss(self):
        """(backend kB summed over processes, nginx worker kB)"""
        b = sum(read_status(p) or 0 for p in self.sse_pids)
        return b, sum(read_status(p) or 0 for p in self.worker_pids())

    def cpu(self):
        return (sum(cpu_ticks(p) for p in self.sse_pids),
                sum(cpu_ticks(p) for p in self.worker_pids()))

    def io(self):
        return (sum(io_calls(p) for p in self.sse_pids),
                sum(io_calls(p) for p in self.worker_pids()))

    def stop(self):
        for p in self.sse_pids:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.nginx and self.nginx.poll() is None:
            try:
                os.killpg(self.nginx.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)
                self.nginx.wait()
        t = time.time() + 10
        for p in self.sse_pids:
            while time.time() < t and os.path.exists("/proc/%d" % p):
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.05)
            if os.path.exists("/proc/%d" % p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class Redis:
    def __init__(self, work):
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            pin(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "log")],
                SERVER_CPU), start_new_session=True)
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True,
                 10, "redis-server")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------------------
# Scenarios

def paths(kind):
    if kind in ("sse", "lighty"):
        return ["--sub-path", "/sse/r%u", "--pub-path", "/publish/r%u"]
    return ["--sub-path", "/sub/r%u", "--pub-path", "/pub/r%u"]


def run_load(args, hold_cb=None, timeout=300):
    return run_loads([args], hold_cb, timeout)[0]


def run_loads(arglists, hold_cb=None, timeout=300):
    """Runs one sse-load per argument list at once (one process cannot open
    more descriptors than RLIMIT_NOFILE allows).  With hold_cb: waits until
    every instance is ready, calls hold_cb(readies), then lets them go on."""
    procs = []
    for args in arglists:
        argv = pin([LOAD, "--quiet"] + [str(a) for a in args], LOAD_CPU)
        procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, preexec_fn=raise_nofile))
    readies = [None] * len(procs)
    try:
        if hold_cb:
            for i, p in enumerate(procs):
                line = p.stdout.readline()
                if not line:
                    p.wait()
                    raise BenchError("sse-load exited before ready (status %s)" % p.returncode)
                readies[i] = json.loads(line)
            hold_cb(readies)
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
        out = []
        deadline = time.time() + timeout
        for i, p in enumerate(procs):
            try:
                o, _ = p.communicate(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                raise BenchError("sse-load timed out")
            if p.returncode != 0:
                raise BenchError("sse-load failed (%d)" % p.returncode)
            r = json.loads(o.strip().splitlines()[-1])
            r["ready"] = readies[i]
            out.append(r)
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


PROFILE = os.environ.get("BENCH_PROFILE") == "1"


def perf_works():
    try:
        r = subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x", ",", "true"],
                           capture_output=True, text=True, timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Profile:
    """BENCH_PROFILE=1: while the load runs, `perf record -g` on the backend
    and on the front's worker, and `perf stat` counting every syscall entry
    of each; results/profile-<system>-<scenario>.txt gets the syscall counts
    per delivered event and the top of each profile."""

    def __init__(self, stack, scenario):
        self.stack, self.scenario = stack, scenario
        self.procs = []
        d = os.path.join(stack.dir, "prof")
        os.makedirs(d, exist_ok=True)
        targets = [("backend", p) for p in stack.sse_pids] + [("front", p) for p in stack.worker_pids()]
        for what, pid in targets:
            data = os.path.join(d, "%s-%d.data" % (what, pid))
            stat = os.path.join(d, "%s-%d.stat" % (what, pid))
            rec = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "999", "-o", data, "-p", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cnt = subprocess.Popen(["perf", "stat", "-x", ",", "-o", stat, "-e",
                                    "raw_syscalls:sys_enter,task-clock,context-switches", "-p", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append((what, pid, data, stat, rec, cnt))

    def stop(self):
        for _, _, _, _, rec, cnt in self.procs:
            for p in (rec, cnt):
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
        for _, _, _, _, rec, cnt in self.procs:
            for p in (rec, cnt):
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def report(self, res):
        events = max(1, res.get("events", 0))
        out = ["# %s, scenario %s: %d events delivered" % (SYSTEM_NAMES.get(self.stack.kind, self.stack.kind),
                                                            self.scenario, res.get("events", 0)), ""]
        for what, pid, data, stat, _, _ in self.procs:
            counts = {}
            try:
                with open(stat) as f:
                    for line in f:
                        parts = line.strip().split(",")
                        if len(parts) > 2 and parts[0] and parts[0][0].isdigit():
                            counts[parts[2]] = float(parts[0])
            except OSError:
                pass
            sc = counts.get("raw_syscalls:sys_enter")
            tc = counts.get("task-clock")
            key = "backend" if what == "backend" else "nginx"
            if sc is not None:
                res["all_syscalls_per_event_" + key] = res.get("all_syscalls_per_event_" + key, 0) + sc / events
            out.append("## %s pid %d: %s syscalls (%.2f per event), task-clock %s ms (%.2f us per event), "
                       "%s context switches" % (what, pid, "?" if sc is None else "%.0f" % sc,
                                                 (sc or 0) / events, "?" if tc is None else "%.0f" % tc,
                                                 (tc or 0) * 1e3 / events, counts.get("context-switches", "?")))
            r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                                "--percent-limit", "0.7", "--sort", "sym"],
                               capture_output=True, text=True, timeout=120)
            lines = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
            out += ["", "```"] + lines[:45] + ["```", ""]
        path = os.path.join(RESULTS, "profile-%s-%s.txt" % (self.stack.kind, self.scenario))
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")
        log("  profile: " + path)


def scenario_traffic(stack, sc, quick, pub_stack=None):
    dur = sc["duration"] if not quick else min(sc["duration"], 5)
    args = ["--port", stack.port, "--streams", sc["streams"], "--resources", sc["resources"],
            "--rate", sc["rate"], "--duration", dur, "--pub-conns", sc.get("pub_conns", 4),
            "--src-addrs", 16, "--payload", 128, "--label", sc["name"]]
    if pub_stack is not None:
        args += ["--pub-port", pub_stack.port]
    if sc.get("max_ahead"):
        args += ["--max-ahead", sc["max_ahead"]]
    if sc.get("pipeline"):
        args += ["--pipeline", sc["pipeline"]]
    if sc.get("window"):
        args += ["--window", sc["window"]]
    args += paths(stack.kind)
    prof = Profile(stack, sc["name"]) if PROFILE else None
    c0, i0 = stack.cpu(), stack.io()
    t0 = time.time()
    try:
        res = run_load(args)
    finally:
        c1, i1 = stack.cpu(), stack.io()
        if prof:
            prof.stop()
    if prof:
        prof.report(res)
    if res["events"]:
        # I/O syscalls (read/write family, not epoll) per delivered event
        res["syscalls_per_event_backend"] = (i1[0] - i0[0]) / res["events"]
        res["syscalls_per_event_nginx"] = (i1[1] - i0[1]) / res["events"]
        res["cpu_us_per_event_backend"] = (c1[0] - c0[0]) / os.sysconf("SC_CLK_TCK") * 1e6 / res["events"]
        res["cpu_us_per_event_nginx"] = (c1[1] - c0[1]) / os.sysconf("SC_CLK_TCK") * 1e6 / res["events"]
    wall = time.time() - t0
    hz = os.sysconf("SC_CLK_TCK")
    res["server_cpu_backend_s"] = (c1[0] - c0[0]) / hz
    res["server_cpu_nginx_s"] = (c1[1] - c0[1]) / hz
    res["wall_s"] = wall
    return res


def scenario_idle(stack, sc, quick):
    """Open N streams, let them sit idle, measure RSS above the baseline taken
    before any stream; then one publish per resource proves they all live
    (every stream when the processes share Redis or there is one process)."""
    time.sleep(0.5)
    base = stack.rss()
    held = {}
    n, r = sc["streams"], sc["resources"]
    k = max(1, -(-n // (fd_hard() - 256)))          # load instances
    while r % k:
        r += 1

    def at_ready(readies):
        time.sleep(3)                       # idle: queues drained, nothing in flight
        held["rss"] = stack.rss()
        held["stats"] = stack.stats()
    arglists = []
    for i in range(k):
        arglists.append(["--port", stack.port, "--streams", n // k + (1 if i < n % k else 0),
                         "--resources", r // k, "--res-offset", i * (r // k),
                         "--rate", 1000, "--count", r // k, "--duration", 2, "--pub-conns", 2,
                         "--src-addrs", 16, "--inflight", 512 // k, "--payload", 128, "--hold",
                         "--retries", 200 if stack.procs > 1 else 0,
                         "--label", sc["name"]] + paths(stack.kind))
    runs = run_loads(arglists, hold_cb=at_ready, timeout=600)
    res = {key: sum(x[key] for x in runs) for key in
           ("streams", "established", "open_at_end", "closed_during", "refused_429", "refused_503",
            "refused_other", "retried", "early_eof", "connect_errors", "pub_sent", "pub_ok", "pub_err",
            "events", "expected", "lost", "dup", "misrouted", "malformed")}
    res["connect_s"] = max(x["connect_s"] for x in runs)
    res["load_instances"] = k
    res["backend_procs"] = len(stack.sse_pids)
    res["nginx_workers"] = stack.workers
    res["first_errno"] = ";".join(sorted(set(x["first_errno"] for x in runs if x["first_errno"])))
    held_n = sum(x["ready"]["established"] for x in runs)
    res["rss_base_kb"] = base
    res["rss_held_kb"] = held["rss"]
    res["backend_streams_one_proc"] = held["stats"].get("streams")
    res["backend_mode"] = held["stats"].get("mode")
    if held_n and stack.kind == "sse":
        res["backend_b_per_stream"] = (held["rss"][0] - base[0]) * 1024.0 / held_n
    if held_n:
        res["nginx_b_per_stream"] = (held["rss"][1] - base[1]) * 1024.0 / held_n
        res["total_b_per_stream"] = res.get("backend_b_per_stream", 0) + res["nginx_b_per_stream"]
    res["held"] = held_n
    return res


SCENARIOS = [
    dict(name="a0", kind="traffic", streams=1000, resources=10, rate=100, duration=10),
    dict(name="a", kind="traffic", streams=1000, resources=10, rate=1000, duration=10),
    dict(name="b", kind="traffic", streams=10000, resources=100, rate=200, duration=10),
    dict(name="c", kind="traffic", streams=1000, resources=1, rate=0, duration=8,
         pub_conns=4, max_ahead=64),
    # publisher patterns: 8 keep-alive connections pipelining POSTs (up to 64
    # in flight on each), publishing only while fewer than W deliveries are
    # outstanding over all streams
    dict(name="p8w8k", kind="traffic", streams=1000, resources=1, rate=0, duration=8,
         pub_conns=8, pipeline=64, window=8000),
    dict(name="p8w64k", kind="traffic", streams=1000, resources=1, rate=0, duration=8,
         pub_conns=8, pipeline=64, window=64000),
    dict(name="d10k", kind="idle", streams=10000, resources=100),
    dict(name="d50k", kind="idle", streams=50000, resources=100),
    # one process, past its descriptor ceiling: how many it holds, and that the
    # rest get a clean 503
    dict(name="dmax", kind="idle", streams=fd_hard() + 500, resources=100, procs=1),
    dict(name="e", kind="redis", streams=1000, resources=10, rate=100, duration=10),
]


def run_one(work, system, sc, quick, rep, redis):
    name = "%s-%s-%d" % (system, sc["name"], rep)
    stacks = []
    try:
        if sc["kind"] == "redis":
            if redis is None:
                return None
            # Nchan's Redis store keeps messages (and replays them to new
            # subscribers): every run starts from an empty Redis
            subprocess.run(["redis-cli", "-p", str(redis.port), "flushall"], capture_output=True)
            a = Stack(work, name + "-A", system, sc["streams"], redis_port=redis.port)
            b = Stack(work, name + "-B", system, sc["streams"], redis_port=redis.port)
            stacks = [a, b]
            a.start()
            b.start()
            # streams on B, publishes through A
            return scenario_traffic(b, sc, quick, pub_stack=a)
        s = Stack(work, name, system, sc["streams"], procs=sc.get("procs"))
        if s.procs > 1 and redis is not None and system in ("sse", "sse-h0") and redis_hub_ok():
            s.redis_port = redis.port       # several processes: Redis carries publishes
        stacks = [s]
        s.start()
        if sc["kind"] == "idle":
            return scenario_idle(s, sc, quick)
        return scenario_traffic(s, sc, quick)
    finally:
        for s in stacks:
            s.stop()


# ---------------------------------------------------------------------------
# Report

def med(runs, key):
    vals = [r[key] for r in runs if r and r.get(key) is not None and r[key] >= 0]
    return statistics.median(vals) if vals else None


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float) and abs(v) < 100 and v != int(v):
        return ("%.2f" % v) + unit
    return ("{:,.0f}".format(v)) + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return "%.2f" % (a / b)


FIGURES = [
    # scenario, key, label, unit
    ("a0", "lat_p50_ms", "(a0) 1k streams/10 res, 100 msg/s: latency p50", " ms"),
    ("a0", "lat_p99_ms", "(a0) latency p99", " ms"),
    ("a0", "lat_p999_ms", "(a0) latency p99.9", " ms"),
    ("a0", "lost", "(a0) lost / dup events", ""),
    ("a", "delivered_per_s", "(a) 1k streams, 1,000 msg/s: delivered/s", ""),
    ("a", "publish_per_s", "(a) publishes/s achieved (1,000 offered)", ""),
    ("a", "lat_p50_ms", "(a) latency p50", " ms"),
    ("a", "lat_p99_ms", "(a) latency p99", " ms"),
    ("a", "lat_p999_ms", "(a) latency p99.9", " ms"),
    ("a", "lost", "(a) lost / dup events", ""),
    ("b", "delivered_per_s", "(b) 10k streams/100 res, 200 msg/s: delivered/s", ""),
    ("b", "lat_p50_ms", "(b) latency p50", " ms"),
    ("b", "lat_p99_ms", "(b) latency p99", " ms"),
    ("b", "lat_p999_ms", "(b) latency p99.9", " ms"),
    ("b", "lost", "(b) lost / dup events", ""),
    ("c", "delivered_per_s", "(c) saturation, 1k streams on 1 res: delivered/s", ""),
    ("c", "lat_p99_ms", "(c) latency p99 at saturation", " ms"),
    ("c", "server_cpu_backend_s", "(c) CPU s used by sse-fcgi during the run", " s"),
    ("c", "server_cpu_nginx_s", "(c) CPU s used by the nginx worker during the run", " s"),
    ("c", "cpu_us_per_event_backend", "(c) sse-fcgi CPU per delivered event", " µs"),
    ("c", "cpu_us_per_event_nginx", "(c) nginx worker CPU per delivered event", " µs"),
    ("c", "syscalls_per_event_backend", "(c) sse-fcgi read/write syscalls per event", ""),
    ("c", "syscalls_per_event_nginx", "(c) nginx read/write syscalls per event", ""),
    ("a", "syscalls_per_event_backend", "(a) sse-fcgi read/write syscalls per event", ""),
    ("a", "syscalls_per_event_nginx", "(a) nginx read/write syscalls per event", ""),
    ("c", "tool_cpu_publish_pct", "(c) sse-load CPU while publishing (100 % = tool-bound)", " %"),
    ("c", "lost", "(c) lost / dup events", ""),
    ("p8w8k", "delivered_per_s", "(p8w8k) 8 pipelining publishers, window 8k: delivered/s", ""),
    ("p8w8k", "pub_lat_p99_ms", "(p8w8k) publish answer p99", " ms"),
    ("p8w8k", "tool_cpu_publish_pct", "(p8w8k) sse-load CPU while publishing", " %"),
    ("p8w64k", "delivered_per_s", "(p8w64k) 8 pipelining publishers, window 64k: delivered/s", ""),
    ("p8w64k", "pub_lat_p99_ms", "(p8w64k) publish answer p99", " ms"),
    ("p8w64k", "tool_cpu_publish_pct", "(p8w64k) sse-load CPU while publishing", " %"),
    ("a", "pub_lat_p50_ms", "(a) publish answer p50", " ms"),
    ("a", "pub_lat_p99_ms", "(a) publish answer p99", " ms"),
    ("a", "tool_cpu_publish_pct", "(a) sse-load CPU while publishing", " %"),
    ("d10k", "held", "(d) 10k idle: streams held", ""),
    ("d10k", "backend_b_per_stream", "(d) 10k idle: backend RSS per stream", " B"),
    ("d10k", "nginx_b_per_stream", "(d) 10k idle: nginx worker RSS per stream", " B"),
    ("d10k", "total_b_per_stream", "(d) 10k idle: total server RSS per stream", " B"),
    ("d50k", "held", "(d) 50k idle: streams held", ""),
    ("d50k", "backend_b_per_stream", "(d) 50k idle: backend RSS per stream", " B"),
    ("d50k", "nginx_b_per_stream", "(d) 50k idle: nginx worker RSS per stream", " B"),
    ("d50k", "total_b_per_stream", "(d) 50k idle: total server RSS per stream", " B"),
    ("dmax", "held", "(d) one process, %d streams offered: streams held" % (fd_hard() + 500), ""),
    ("dmax", "backend_b_per_stream", "(d) one process at its ceiling: backend RSS per stream", " B"),
    ("dmax", "nginx_b_per_stream", "(d) one process at its ceiling: nginx RSS per stream", " B"),
    ("e", "lat_p50_ms", "(e) cross-server via Redis, 1k streams, 100 msg/s: p50", " ms"),
    ("e", "lat_p99_ms", "(e) cross-server latency p99", " ms"),
    ("e", "lost", "(e) lost / dup events", ""),
]


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    kernel = os.uname().release
    try:
        nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    except OSError:
        nginx_v = "?"
    nchan = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"],
                           capture_output=True, text=True).stdout.strip() or "?"
    return dict(nproc=NCPU, cpu=model, kernel=kernel, nginx=nginx_v, nchan=nchan,
                date=time.strftime("%Y-%m-%d %H:%M:%S %Z"))


# Every traffic pattern, one row per system: what the load tool saw, what
# each server process spent per delivered event, and the tool's own share of
# its core (a row above TOOL_BOUND_PCT may measure the tool, not the server).
PATTERNS = [
    ("a0", "1k streams/10 res, 100 msg/s offered"),
    ("a", "1k streams/10 res, 1,000 msg/s offered"),
    ("b", "10k streams/100 res, 200 msg/s offered"),
    ("c", "1k streams/1 res, 4 publishers, <= 64 undelivered per stream"),
    ("p8w8k", "1k streams/1 res, 8 pipelining publishers, window 8,000 deliveries"),
    ("p8w64k", "1k streams/1 res, 8 pipelining publishers, window 64,000 deliveries"),
]


def pattern_table(results):
    out = ["| pattern | system | delivered/s | publishes/s | publish answer p50/p99 ms | "
           "event latency p50/p99 ms | CPU µs/event backend / front | "
           "I/O syscalls/event backend / front | tool CPU |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for scn, what in PATTERNS:
        for sysname in SYSTEM_ORDER:
            runs = [r for r in results.get((sysname, scn), []) if r]
            if not runs:
                continue

            def m(k, unit=""):
                return fmt(med(runs, k), unit)
            tool = med(runs, "tool_cpu_publish_pct")
            tool_s = "–" if tool is None else "%.0f %%%s" % (tool, " **tool-bound**" if tool > TOOL_BOUND_PCT else "")
            out.append("| %s: %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s |" % (
                scn, what, SYSTEM_NAMES[sysname], m("delivered_per_s"), m("publish_per_s"),
                m("pub_lat_p50_ms"), m("pub_lat_p99_ms"), m("lat_p50_ms"), m("lat_p99_ms"),
                m("cpu_us_per_event_backend"), m("cpu_us_per_event_nginx"),
                m("syscalls_per_event_backend"), m("syscalls_per_event_nginx"), tool_s))
    return "\n".join(out) + "\n"


SYSTEM_ORDER = ["sse", "sse-h0", "lighty", "nchan"]


def table(results, reps, mach):
    out = []
    out.append("Machine: `nproc` = %d, %s, Linux %s; %s; libnginx-mod-nchan %s; %s."
               % (mach["nproc"], mach["cpu"], mach["kernel"], mach["nginx"], mach["nchan"], mach["date"]))
    out.append("Servers pinned to CPU %s, sse-load to CPU %s; one nginx worker each; 128-byte payloads; "
               "median of %d run(s) per figure. Ratio = sse-fcgi (behind nginx, behind lighttpd) / Nchan."
               % (SERVER_CPU, LOAD_CPU, reps))
    out.append("")
    out.append("| figure | sse-fcgi/nginx | sse-fcgi/lighttpd | Nchan | ratio nginx | ratio lighttpd |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for scn, key, label, unit in FIGURES:
        s = results.get(("sse", scn), [])
        li = results.get(("lighty", scn), [])
        n = results.get(("nchan", scn), [])
        if not any(s) and not any(n) and not any(li):
            continue
        if key == "lost":
            def ld(runs):
                lo, du = med(runs, "lost"), med(runs, "dup")
                return "–" if lo is None else "%s / %s" % (fmt(lo), fmt(du))
            out.append("| %s | %s | %s | %s | | |" % (label, ld(s), ld(li), ld(n)))
            continue
        a, l, b = med(s, key), med(li, key), med(n, key)
        out.append("| %s | %s | %s | %s | %s | %s |" % (label, fmt(a, unit), fmt(l, unit), fmt(b, unit),
                                                      ratio(a, b), ratio(l, b)))
    out.append("")
    out.append("Every traffic pattern (front = the nginx worker, or lighttpd; a row whose load tool "
               "used more than %.0f %% of its core is marked tool-bound):" % TOOL_BOUND_PCT)
    out.append("")
    out.append(pattern_table(results))
    hist = history_table(results)
    if hist:
        out.append("")
        out.append(hist)
    return "\n".join(out) + "\n"


def history_table(results):
    """What ids and history cost: sse-fcgi as shipped (history_size = 100) against
    the same build with history_size = 0, pattern by pattern (BENCH_SYSTEMS=sse,sse-h0)."""
    rows = []
    for scn, what in PATTERNS:
        on = [r for r in results.get(("sse", scn), []) if r]
        off = [r for r in results.get(("sse-h0", scn), []) if r]
        if not on or not off:
            continue

        def pair(k, unit=""):
            a, b = med(on, k), med(off, k)
            return "%s / %s" % (fmt(a, unit), fmt(b, unit)), (a / b if a and b else None)
        d, dr = pair("delivered_per_s")
        p50, p50r = pair("lat_p50_ms")
        p99, _ = pair("lat_p99_ms")
        cpu, cpur = pair("cpu_us_per_event_backend")
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            scn, d, "–" if dr is None else "%.2f" % dr, p50 + " · " + p99,
            "–" if p50r is None else "%.2f" % p50r, cpu, "–" if cpur is None else "%.2f" % cpur))
    if not rows:
        return ""
    return "\n".join([
        "History on (history_size = 100, as shipped) / off (history_size = 0), sse-fcgi behind nginx:",
        "",
        "| pattern | delivered/s on / off | ratio | latency p50 · p99 ms on / off | p50 ratio | "
        "sse-fcgi CPU µs/event on / off | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|"] + rows) + "\n"


def chart(results, path_png):
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot missing: no chart")
        return
    dat = os.path.join(RESULTS, "latency.dat")
    rows = []
    for scn in ("a0", "a", "b", "e"):
        for sysname in ("sse", "nchan"):
            runs = results.get((sysname, scn), [])
            if not any(runs):
                continue
            rows.append('"%s %s" %s %s %s' % (
                scn, "sse-fcgi" if sysname == "sse" else "Nchan",
                *[(med(runs, k) if med(runs, k) is not None else 0)
                  for k in ("lat_p50_ms", "lat_p99_ms", "lat_p999_ms")]))
    thr = os.path.join(RESULTS, "throughput.dat")
    trows = []
    for scn in ("a", "b", "c"):
        for sysname in ("sse", "nchan"):
            runs = results.get((sysname, scn), [])
            if any(runs):
                trows.append('"%s %s" %s' % (scn, "sse-fcgi" if sysname == "sse" else "Nchan",
                                             med(runs, "delivered_per_s") or 0))
    with open(dat, "w") as f:
        f.write("# label p50_ms p99_ms p999_ms\n" + "\n".join(rows) + "\n")
    with open(thr, "w") as f:
        f.write("# label delivered_per_s\n" + "\n".join(trows) + "\n")
    script = os.path.join(HERE, "chart.gp")
    subprocess.run([gp, "-e", "latdat='%s'; thrdat='%s'; out='%s'" % (dat, thr, path_png), script],
                   check=False)


# ---------------------------------------------------------------------------

def main():
    global RESULTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""))
    ap.add_argument("--systems", default=os.environ.get("BENCH_SYSTEMS", "sse,sse-h0,lighty,nchan"))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "0")))
    ap.add_argument("--out", default=RESULTS)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    only = [x for x in a.only.split(",") if x]
    systems = [x for x in a.systems.split(",") if x]
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (nginx workers run as www-data, as shipped)")
    for f in (BIN, LOAD):
        if not os.access(f, os.X_OK):
            raise SystemExit("bench: %s missing (make bench builds it)" % f)
    if "nchan" in systems and not os.path.exists(NCHAN_SO):
        log("Nchan module missing (%s): sse-fcgi only" % NCHAN_SO)
        systems = [s for s in systems if s != "nchan"]
    if "lighty" in systems and not shutil.which("lighttpd"):
        log("lighttpd missing: no sse-fcgi/lighttpd column")
        systems = [s for s in systems if s != "lighty"]
    global PROFILE
    if PROFILE and not perf_works():
        log("BENCH_PROFILE=1 but perf cannot count syscalls here: no profiles")
        PROFILE = False
    raise_nofile()
    # 50,000 streams from 16 source addresses fit the stock port range; note it
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        log("ip_local_port_range", f.read().strip(), "(not changed)")
    RESULTS = a.out
    os.makedirs(RESULTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sse-bench-")
    os.chmod(work, 0o755)
    mach = machine()
    redis = None
    scen = [s for s in SCENARIOS if not only or s["name"] in only]
    if (any(s["kind"] == "redis" or s["streams"] > fd_hard() - 128 for s in scen)
            and shutil.which("redis-server")):
        redis = Redis(work)
    results = {}
    raw = []
    t_start = time.time()
    try:
        for rep in range(reps):
            for sc in scen:
                for sysname in systems:
                    if sysname == "sse-h0" and sc["kind"] != "traffic":
                        continue
                    if sysname == "lighty" and (sc["kind"] != "traffic" or sc["streams"] > fd_hard() // 2 - 512):
                        # lighttpd runs the traffic patterns that one process
                        # of it can carry (2 descriptors a stream)
                        continue
                    if sc["kind"] == "redis" and sysname != "sse":
                        # two servers sharing Redis: sse-fcgi as shipped, and Nchan
                        if sysname != "nchan":
                            continue
                    if sc["kind"] == "redis" and sysname == "sse" and not redis_hub_ok():
                        log("skip e for sse-fcgi: Redis hub not available")
                        continue
                    log("rep %d %s %s ..." % (rep + 1, sysname, sc["name"]))
                    try:
                        r = run_one(work, sysname, sc, a.quick, rep, redis)
                    except BenchError as e:
                        log("  FAILED: %s" % e)
                        r = {"error": str(e)}
                    if r is None:
                        continue
                    r.update(system=sysname, scenario=sc["name"], rep=rep + 1)
                    raw.append(r)
                    if "error" not in r:
                        results.setdefault((sysname, sc["name"]), []).append(r)
                        log("  " + summary(r))
    finally:
        if redis:
            redis.stop()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("kept", work)
    md = table(results, reps, mach)
    with open(os.path.join(RESULTS, "results.md"), "w") as f:
        f.write("# sse-fcgi vs Nchan\n\n" + md)
    with open(os.path.join(RESULTS, "runs.json"), "w") as f:
        json.dump(dict(machine=mach, reps=reps, quick=a.quick, runs=raw), f, indent=1)
    chart(results, os.path.join(RESULTS, "bench.png"))
    log("done in %.0f s; results in %s" % (time.time() - t_start, RESULTS))
    print(md)


def summary(r):
    if "held" in r:
        return ("held %d (%d backend procs, %d nginx workers, %d load procs); backend %.0f B/stream, "
                "nginx %.0f B/stream; after hold: %d events of %d expected, lost %d, closed %d, "
                "refused %d/%d/%d (retried %d) eof %d connerr %d %s"
                % (r["held"], r["backend_procs"], r["nginx_workers"], r["load_instances"],
                   r.get("backend_b_per_stream", -1), r.get("nginx_b_per_stream", -1),
                   r["events"], r["expected"], r["lost"], r["closed_during"], r["refused_429"],
                   r["refused_503"], r["refused_other"], r["retried"], r["early_eof"], r["connect_errors"],
                   r["first_errno"]))
    return ("up %d/%d, pub %d ok %d err, %d events, %.0f/s, p50 %.2f p99 %.2f p99.9 %.2f ms, "
            "lost %d dup %d, cpu backend %.1f s nginx %.1f s tool %.0f%%"
            % (r["established"], r["streams"], r["pub_ok"], r["pub_err"], r["events"],
               r["delivered_per_s"], r["lat_p50_ms"], r["lat_p99_ms"], r["lat_p999_ms"],
               r["lost"], r["dup"], r.get("server_cpu_backend_s", 0), r.get("server_cpu_nginx_s", 0),
               r["tool_cpu_publish_pct"]))


def redis_hub_ok():
    try:
        with open(os.path.join(ROOT, "src/redis.c")) as f:
            return f.read().count("redisAsync") > 0
    except OSError:
        return False


if __name__ == "__main__":
    main()
