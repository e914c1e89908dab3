#!/usr/bin/python3
"""Soak with faults: `make soak` (bench/README.md). Not part of `make test`.

Two sse-fcgi "servers" (each nginx from examples/nginx + the shipped spawn-fcgi
line, the documented substitution of tests/integration/README.md) share one
redis-server, all on loopback, started by tests/integration/harness.py and
redis_helpers.py as the tests start them. For SOAK_MINUTES:

  - SOAK_STREAMS streams over SOAK_STREAMS/10 resources, half through each
    server, with churn: every second SOAK_CHURN streams are closed and as many
    opened; SOAK_STALLED_PCT % of the new ones never read (slow clients);
  - SOAK_RATE publishes a second through both servers' nginx, from sequential
    "lanes" (one publisher each: the next publish after the previous reply),
    SOAK_LARGE_PCT % of them 16-60 KB, the rest 64-512 bytes, every 4th named;
  - faults: the publisher connection of one server or the other is killed
    (CLIENT KILL ID, by its CLIENT SETNAME name) every SOAK_PUBKILL_S seconds,
    Redis is restarted (shutdown nosave and SIGKILL in turn, down 3 s) every
    SOAK_REDIS_RESTART_S seconds; both stop SOAK_COOLDOWN_S before the end;
  - every 10 s: RSS, descriptors and CPU of each sse-fcgi process and its
    /stats; every delivered event is checked against the contract: no
    duplicate, each publisher's order kept, its event name kept, and none
    lost where the contract promises it (see check_stream()).

Then every stream is closed, the descriptors must come back to the baseline
taken before the first stream, and the processes must stop with exit 0 on
SIGTERM with no crash sign or sanitizer report. Verdict: PASS when RSS grew
under 2 % over the last 3/4 of the run (a least-squares line through the
samples, per process), descriptors are back to baseline, and there was no
duplicate, reordering, lost name, loss against the contract, nor crash.

Results: bench/results/soak-<date>-<time>.txt (parameters, figures, every
sample, the verdict) and .png (RSS and descriptors over time, by gnuplot with
bench/soak.gp). Runs as root, like the integration tests.
"""
import collections
import datetime
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.environ.setdefault("SSE_FCGI_BIN", os.path.join(ROOT, "sse-fcgi"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from redis_helpers import RedisServer, kill_clients, origins, redis_conf, wait_mode  # noqa: E402


def env_num(name, default, conv=int):
    v = os.environ.get(name)
    return conv(v) if v not in (None, "") else default


MINUTES = env_num("SOAK_MINUTES", 60, float)
STREAMS = env_num("SOAK_STREAMS", 10000)
RATE = env_num("SOAK_RATE", 200, float)
DURATION = MINUTES * 60.0
RESOURCES = env_num("SOAK_RESOURCES", max(1, STREAMS // 10))
CHURN = env_num("SOAK_CHURN", max(1, STREAMS // 40))
STALLED_PCT = env_num("SOAK_STALLED_PCT", 2.0, float)
LARGE_PCT = env_num("SOAK_LARGE_PCT", 1.0, float)
LANES = env_num("SOAK_LANES", 16)
PUBKILL_S = env_num("SOAK_PUBKILL_S", min(60.0, DURATION / 6), float)
RESTART_S = env_num("SOAK_REDIS_RESTART_S", min(300.0, DURATION / 3), float)
COOLDOWN_S = env_num("SOAK_COOLDOWN_S", min(120.0, DURATION / 8), float)
SAMPLE_S = 10.0
WARMUP = DURATION / 4
GRACE_S = 5.0          # a stream closed this soon after a publish is not asked for it
SETTLE_S = 15.0        # after a Redis restart, re-subscribing may take this long
OUT_DIR = os.environ.get("SOAK_OUT", os.path.join(HERE, "results"))
SEED = env_num("SOAK_SEED", 1)
HOLD_END_S = env_num("SOAK_HOLD_END_S", 0.0, float)

PAYLOAD = re.compile(r'^\{"l":(\d+),"s":(\d+),')


def log(*a):
    print("soak %6.1fs:" % (time.monotonic() - T0), *a, file=sys.stderr, flush=True)


T0 = time.monotonic()


class Stream:
    __slots__ = ("ex", "server", "resource", "reading", "t_ready", "seen", "last", "checked_to", "closed_by_us")

    def __init__(self, ex, server, resource, reading):
        self.ex, self.server, self.resource, self.reading = ex, server, resource, reading
        self.t_ready = None
        self.seen = set()
        self.last = {}
        self.checked_to = 0
        self.closed_by_us = False


class Soak:
    def __init__(self):
        self.rnd = random.Random(SEED)
        self.root = tempfile.mkdtemp(prefix="sse-soak-")
        os.chmod(self.root, 0o755)
        self.envs = [harness.Env("a", self.root), harness.Env("b", self.root)]
        self.loop = self.envs[0].loop
        self.loop.strict = False   # malformed lines are counted, not raised
        for e in self.envs[1:]:
            e.loop.sel.close()
            e.loop = self.loop
        self.redis = RedisServer(self.envs[0])
        self.streams = []        # open (or opening) Stream objects
        self.publishes = {}      # (lane, seq) -> [resource, server, t_sent, t_reply, mode]
        self.by_resource = collections.defaultdict(list)
        self.lane_seq = [0] * LANES
        self.lane_busy = [None] * LANES
        self.sent = 0
        self.faults = []         # (t, what)
        self.restarts = []       # t of each Redis restart (down)
        self.samples = []
        self.counts = collections.Counter()
        self.problems = []
        self.crashes = []
        self.pids = []

    # ---- setup
    def start(self):
        self.redis.start()
        conf = dict(redis_conf(self.redis.port), log_level="info", max_streams_per_resource=1000)
        for e in self.envs:
            e.start(conf, procs=1)
        for e in self.envs:
            wait_mode(e, "redis", 10)
        self.pids = [e.pid for e in self.envs]
        self.origin = [origins(e)[e.pid] for e in self.envs]
        self.base_fds = [harness.proc_fd_count(p) for p in self.pids]
        self.base_rss = [self.rss(p) for p in self.pids]
        log("servers up: pids %r, baseline descriptors %r, RSS %r kB" % (self.pids, self.base_fds, self.base_rss))

    @staticmethod
    def rss(pid):
        return int(harness.proc_status_field(pid, "VmRSS").split()[0])

    # ---- streams
    def open_stream(self, now):
        k = self.rnd.randrange(2)
        res = "soak-%d" % self.rnd.randrange(RESOURCES)
        reading = self.rnd.random() * 100 >= STALLED_PCT
        ex = self.envs[k].stream(res, read=reading, rcvbuf=None if reading else 4096, keep_raw=False)
        self.streams.append(Stream(ex, k, res, reading))
        self.counts["opened"] += 1

    def inflight(self):
        """Streams still waiting for their response head (the newest are last,
        churn moves a few others around: a bound, not an exact count)."""
        return sum(1 for s in self.streams[-600:] if s.ex.status is None and s.reading and not s.ex.complete)

    def close_stream(self, i, now):
        s = self.streams[i]
        self.streams[i] = self.streams[-1]
        self.streams.pop()
        if s.reading and not s.ex.complete:
            s.closed_by_us = True
        self.check_stream(s, now, final=True)
        s.ex.close()

    # ---- the contract, per stream
    def check_stream(self, s, now, final=False):
        ex = s.ex
        if s.t_ready is None and ex.status == 200 and ex.sse.retries:
            s.t_ready = ex.sse.retries[0][0]
        if ex.sse.unknown:
            self.counts["malformed"] += len(ex.sse.unknown)
            del ex.sse.unknown[:]
        for ev in ex.sse.events:
            m = PAYLOAD.match(ev.data)
            if m is None:
                self.counts["foreign"] += 1
                continue
            key = (int(m.group(1)), int(m.group(2)))
            self.counts["delivered"] += 1
            if key in s.seen:
                self.counts["duplicates"] += 1
                self.note_example("duplicate", "%r on a stream of server %s (%s)" % (key, "ab"[s.server], s.resource))
            elif key[1] < s.last.get(key[0], 0):
                self.counts["out_of_order"] += 1
                self.note_example("out_of_order", "%r after %r" % (key, s.last[key[0]]))
            s.seen.add(key)
            s.last[key[0]] = max(key[1], s.last.get(key[0], 0))
            want = "tick" if key[1] % 4 == 0 else "message"
            if ev.type != want:
                self.counts["lost_names"] += 1
                self.note_example("lost_name", "%r as %r" % (key, ev.type))
        del ex.sse.events[:]
        if not final:
            return
        if ex.status is not None and ex.status != 200:
            self.counts["refused_%d" % ex.status] += 1
            return
        if not s.reading:
            self.counts["stalled_closed_by_us" if not ex.complete else "stalled_cut_by_server"] += 1
            return
        if not s.closed_by_us:
            self.counts["ended_by_server"] += 1
            return
        if s.t_ready is None:
            return
        # What the contract promises this stream (open and reading the whole
        # time, closed by us): an answer "local" reaches every stream of the
        # publishing process; an answer "redis" reaches every stream of every
        # process subscribed at that moment; both servers are subscribed when
        # no Redis restart happened in the SETTLE_S before the publish.
        for key in self.by_resource.get(s.resource, ()):
            res, srv, t_sent, t_reply, mode = self.publishes[key]
            if t_reply is None or t_sent < s.t_ready or t_reply > now - GRACE_S:
                continue
            if mode == "local" and srv != s.server:
                continue
            if mode == "redis" and srv != s.server and any(t_sent - SETTLE_S <= r <= t_reply for r in self.restarts):
                continue
            self.counts["expected"] += 1
            if key not in s.seen:
                self.counts["lost"] += 1
                self.note_example("lost", "%r (%s, %s) on server %s" % (key, mode, "ab"[srv], "ab"[s.server]))

    def note_example(self, kind, text):
        ex = self.counts["ex_" + kind]
        if ex < 5:
            self.problems.append("%s: %s" % (kind, text))
        self.counts["ex_" + kind] += 1

    # ---- publishing
    def publish_due(self, now, t_start, until):
        due = int((min(now, until) - t_start) * RATE)
        for i in range(LANES):
            if self.sent >= due:
                return
            lane = (self.sent + i) % LANES   # round robin over lanes, so both servers publish
            if self.lane_busy[lane] is not None:
                continue
            self.lane_seq[lane] += 1
            seq = self.lane_seq[lane]
            k = lane % 2
            res = "soak-%d" % self.rnd.randrange(RESOURCES)
            size = (self.rnd.randint(16384, 61000) if self.rnd.random() * 100 < LARGE_PCT
                    else self.rnd.randint(64, 512))
            body = ('{"l":%d,"s":%d,"r":"%s","p":"%s"}' % (lane, seq, res, "x" * size)).encode()
            path = "/publish/%s%s" % (res, "?event=tick" if seq % 4 == 0 else "")
            ex = self.envs[k].http("POST", path, body, {"Content-Type": "application/json"})
            self.publishes[(lane, seq)] = [res, k, now, None, None]
            self.lane_busy[lane] = ((lane, seq), ex)
            self.sent += 1
        if self.sent < due:
            self.counts["publish_lag_ticks"] += 1

    def collect_replies(self, now):
        for lane in range(LANES):
            b = self.lane_busy[lane]
            if b is None or not b[1].complete:
                continue
            key, ex = b
            self.lane_busy[lane] = None
            p = self.publishes[key]
            if ex.status != 200:
                self.counts["publish_status_%s" % ex.status] += 1
                del self.publishes[key]
                continue
            try:
                p[4] = ex.json().get("mode")
            except Exception:
                p[4] = "?"
            p[3] = now
            self.counts["published_" + str(p[4])] += 1
            self.by_resource[p[0]].append(key)

    def prune_publishes(self, now):
        """Forget publishes no open stream can still be asked for."""
        oldest = min((s.t_ready for s in self.streams if s.t_ready is not None), default=now)
        for res, keys in self.by_resource.items():
            i = 0
            while i < len(keys) and self.publishes[keys[i]][2] < oldest - 1:
                del self.publishes[keys[i]]
                i += 1
            if i:
                del keys[:i]

    # ---- faults
    def fault(self, now, what):
        self.faults.append((now - self.t_start, what))
        log(what)

    def kill_publisher(self, now):
        k = self.counts["pubkills_tried"] % 2
        self.counts["pubkills_tried"] += 1
        n = kill_clients(self.redis, "sse-fcgi:publisher:%s" % self.origin[k])
        self.counts["pubkills"] += n
        self.fault(now, "CLIENT KILL the publisher of server %s (%d killed)" % ("ab"[k], n))

    def stop_redis(self, now):
        how = "shutdown nosave" if self.counts["redis_restarts"] % 2 == 0 else "SIGKILL"
        self.counts["redis_restarts"] += 1
        self.restarts.append(now)
        if how == "SIGKILL":
            self.redis.kill(signal.SIGKILL)
        else:
            self.redis.shutdown()
        self.fault(now, "Redis stopped (%s)" % how)

    # ---- sampling
    def sample(self, now):
        row = {"t": now - self.t_start, "streams": len(self.streams)}
        for k, (e, pid) in enumerate(zip(self.envs, self.pids)):
            if not harness.pid_alive(pid):
                if pid not in self.crashes:
                    self.crashes.append(pid)
                    self.problems.append("sse-fcgi pid %d (server %s) died" % (pid, "ab"[k]))
                continue
            cpu = harness.proc_cpu_seconds(pid)
            row["rss%d" % k] = self.rss(pid)
            row["fds%d" % k] = harness.proc_fd_count(pid)
            prev = self.samples[-1] if self.samples else None
            row["cpu%d" % k] = cpu
            row["cpupct%d" % k] = (100.0 * (cpu - prev["cpu%d" % k]) / (row["t"] - prev["t"])
                                   if prev and "cpu%d" % k in prev and row["t"] > prev["t"] else 0.0)
            try:
                ex = e.fcgi("GET", "/stats", timeout=5)
                st = ex.json() if ex.status == 200 else {}
            except Exception as x:   # a slow answer is a figure, not a stop
                st = {"error": str(x)[:80]}
            row["stats%d" % k] = st
        self.samples.append(row)
        log("streams %d, published %d (%s), RSS %s kB, fds %s, cpu %s %%" % (
            len(self.streams), self.sent,
            "/".join("%s %d" % (m, self.counts["published_" + m]) for m in ("redis", "local")),
            [row.get("rss%d" % k) for k in (0, 1)], [row.get("fds%d" % k) for k in (0, 1)],
            ["%.0f" % row.get("cpupct%d" % k, 0) for k in (0, 1)]))

    # ---- the run
    def run(self):
        harness.become_subreaper()
        nofile = harness.raise_nofile()
        if nofile < STREAMS + 2000:
            raise SystemExit("soak: RLIMIT_NOFILE %d is too low for %d streams" % (nofile, STREAMS))
        self.start()
        self.t_start = t0 = time.monotonic()
        end = t0 + DURATION
        quiet_from = end - COOLDOWN_S
        next_sample = t0
        next_churn = t0 + 1
        next_check = t0 + SAMPLE_S
        next_kill = t0 + PUBKILL_S
        next_restart = t0 + RESTART_S
        redis_back_at = None
        log("load for %.1f min: %d streams, %d resources, churn %d/s, %.0f publishes/s, %d lanes; publisher killed "
            "every %.0f s, Redis restarted every %.0f s, none in the last %.0f s" % (
                MINUTES, STREAMS, RESOURCES, CHURN, RATE, LANES, PUBKILL_S, RESTART_S, COOLDOWN_S))
        while True:
            now = time.monotonic()
            if now >= end:
                break
            # keep the crowd at its size: new streams (a crowd, not a SYN flood)
            room = 300 - self.inflight()
            while room > 0 and len(self.streams) < STREAMS:
                self.open_stream(now)
                room -= 1
            self.publish_due(now, t0, end)
            self.collect_replies(now)
            if now >= next_churn:
                next_churn += 1
                for _ in range(min(CHURN, len(self.streams))):
                    self.close_stream(self.rnd.randrange(len(self.streams)), now)
                    self.counts["churned"] += 1
                # streams the server ended are replaced too
                i = 0
                while i < len(self.streams):
                    if self.streams[i].ex.complete and self.streams[i].ex.status is not None:
                        self.close_stream(i, now)
                    else:
                        i += 1
            if now >= next_check:
                next_check += SAMPLE_S
                for s in self.streams:
                    self.check_stream(s, now)
                self.prune_publishes(now)
            if now >= next_kill and now < quiet_from and redis_back_at is None:
                next_kill += PUBKILL_S
                self.kill_publisher(now)
            if now >= next_restart and now < quiet_from and redis_back_at is None:
                next_restart += RESTART_S
                self.stop_redis(now)
                redis_back_at = now + 3
            if redis_back_at is not None and now >= redis_back_at:
                redis_back_at = None
                self.redis.start(wait=False)
                self.fault(now, "Redis started")
            if now >= next_sample:
                next_sample += SAMPLE_S
                self.sample(now)
            self.loop.pump(0.01)
        self.finish()

    def finish(self):
        now = time.monotonic()
        log("load over; draining")
        self.loop.wait(lambda: (self.collect_replies(time.monotonic()) or
                                all(b is None for b in self.lane_busy)), 15, "the last publish replies")
        for e in self.envs:
            wait_mode(e, "redis", 15)
        self.loop.run_for(GRACE_S + 1)   # a measured drain window before the last check
        self.sample(time.monotonic())
        now = time.monotonic()
        while self.streams:
            self.close_stream(len(self.streams) - 1, now)
        self.loop.close_all()
        # descriptors back to the baseline once nginx has closed every upstream
        t = time.monotonic()
        back = [False, False]
        while time.monotonic() - t < 60:
            fds = [harness.proc_fd_count(p) if harness.pid_alive(p) else -1 for p in self.pids]
            back = [f == b for f, b in zip(fds, self.base_fds)]
            if all(back):
                break
            self.loop.run_for(0.2)
        self.end_fds = fds
        self.fds_back = all(back)
        self.end_rss = [self.rss(p) if harness.pid_alive(p) else -1 for p in self.pids]
        self.t_end = time.monotonic() - self.t_start
        log("descriptors after closing every stream: %r (baseline %r)" % (self.end_fds, self.base_fds))
        if HOLD_END_S > 0:
            # for a look at the idle processes (gdb, /proc) before they stop
            log("holding %.0f s before stopping pids %r" % (HOLD_END_S, self.pids))
            self.loop.run_for(HOLD_END_S)
        for k, e in enumerate(self.envs):
            for p in e.teardown():   # exit status, crash signs, sanitizer reports
                self.problems.append("server %s: %s" % ("ab"[k], p))
                self.crashes.append(p[:80])
        self.redis.stop()


def rss_growth(samples, k):
    """Growth of RSS over the samples after warm-up and before the end of load,
    from a least-squares line: (fitted end - fitted start) / fitted start."""
    pts = [(r["t"], r["rss%d" % k]) for r in samples if WARMUP <= r["t"] <= DURATION and "rss%d" % k in r]
    if len(pts) < 3:
        return None, pts
    n = len(pts)
    mx = sum(t for t, _ in pts) / n
    my = sum(v for _, v in pts) / n
    sxx = sum((t - mx) ** 2 for t, _ in pts)
    slope = sum((t - mx) * (v - my) for t, v in pts) / sxx if sxx else 0.0
    a = my + slope * (pts[0][0] - mx)
    b = my + slope * (pts[-1][0] - mx)
    return (b - a) / a if a else None, pts


def report(soak, error=None):
    os.makedirs(OUT_DIR, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d-%H%M")
    base = os.path.join(OUT_DIR, "soak-%s" % stamp)
    short = MINUTES < 60 or STREAMS < 10000 or RATE < 200
    c = soak.counts
    growth = [rss_growth(soak.samples, k)[0] for k in (0, 1)]
    checks = [
        ("RSS flat after warm-up (< 2 % growth over the last 3/4, per process)",
         all(g is not None and g < 0.02 for g in growth),
         ", ".join("server %s %s" % ("ab"[k], "n/a" if g is None else "%+.2f %%" % (100 * g))
                   for k, g in enumerate(growth))),
        ("descriptors back to baseline after every stream closed", getattr(soak, "fds_back", False),
         "baseline %r, after %r" % (soak.base_fds if hasattr(soak, "base_fds") else None, getattr(soak, "end_fds", None))),
        ("zero duplicates", c["duplicates"] == 0, "%d" % c["duplicates"]),
        ("each publisher's order kept", c["out_of_order"] == 0, "%d out of order" % c["out_of_order"]),
        ("every event kept its name", c["lost_names"] == 0, "%d without their name" % c["lost_names"]),
        ("nothing lost against the contract", c["lost"] == 0, "%d of %d expected deliveries" % (c["lost"], c["expected"])),
        ("no malformed SSE line", c["malformed"] == 0, "%d" % c["malformed"]),
        ("zero crashes (alive throughout, exit 0 on SIGTERM, no crash sign or sanitizer report)",
         not soak.crashes, "%d" % len(soak.crashes)),
    ]
    if error:
        checks.append(("the run completed", False, error))
    verdict = "PASS" if all(ok for _, ok, _ in checks) else "FAIL"
    lines = []
    if short:
        lines += ["SHORT VALIDATION RUN: %.0f minutes, %d streams, %.0f publishes/s (the soak proper is"
                  % (MINUTES, STREAMS, RATE),
                  "SOAK_MINUTES=60 SOAK_STREAMS=10000 SOAK_RATE=200, `make soak` with no variables).", ""]
    lines += ["sse-fcgi soak with faults, %s UTC, verdict: %s" % (stamp, verdict), ""]
    lines += ["parameters: minutes %.1f, streams %d, resources %d, churn %d/s, stalled %.1f %%, publishes %.0f/s, "
              "large %.1f %%, lanes %d, publisher kill every %.0f s, Redis restart every %.0f s, cooldown %.0f s, "
              "seed %d" % (MINUTES, STREAMS, RESOURCES, CHURN, STALLED_PCT, RATE, LARGE_PCT, LANES, PUBKILL_S,
                           RESTART_S, COOLDOWN_S, SEED),
              "machine: %d cores, load average at the end %s; binary %s" % (
                  os.cpu_count() or 0, " ".join("%.2f" % x for x in os.getloadavg()), harness.BIN), ""]
    lines.append("checks:")
    for what, ok, detail in checks:
        lines.append("  [%s] %s: %s" % ("ok" if ok else "FAILED", what, detail))
    lines.append("")
    lines.append("figures:")
    for k in sorted(x for x in c if not x.startswith("ex_")):
        lines.append("  %s: %d" % (k, c[k]))
    if soak.samples:
        last = soak.samples[-1]
        for k in (0, 1):
            st = last.get("stats%d" % k, {})
            lines.append("  server %s last /stats: %s" % ("ab"[k], ", ".join(
                "%s %s" % (x, st.get(x)) for x in ("messages_in", "messages_out", "dropped_slow", "refused",
                                                   "redis_reconnects", "fallbacks", "probe_failures") if x in st)))
        lines.append("  RSS kB at start / after warm-up / end of load / after closing every stream: " + "; ".join(
            "server %s %s / %s / %s / %s" % (
                "ab"[k], getattr(soak, "base_rss", ["-", "-"])[k],
                next((r.get("rss%d" % k) for r in soak.samples if r["t"] >= WARMUP), "-"),
                last.get("rss%d" % k), getattr(soak, "end_rss", ["-", "-"])[k]) for k in (0, 1)))
    lines.append("")
    if soak.problems:
        lines.append("problems and examples:")
        lines += ["  " + p.replace("\n", "\n    ") for p in soak.problems[:40]]
        lines.append("")
    lines.append("faults (s after the start):")
    lines += ["  %7.1f %s" % f for f in soak.faults]
    lines.append("")
    lines.append("samples (every %.0f s; cpu %% of one core):" % SAMPLE_S)
    lines.append("  %7s %7s %9s %9s %6s %6s %6s %6s %9s %9s" % (
        "t(s)", "streams", "rss_a kB", "rss_b kB", "fds_a", "fds_b", "cpu_a", "cpu_b", "out_a", "out_b"))
    dat = []
    for r in soak.samples:
        lines.append("  %7.1f %7d %9s %9s %6s %6s %6.1f %6.1f %9s %9s" % (
            r["t"], r["streams"], r.get("rss0", "-"), r.get("rss1", "-"), r.get("fds0", "-"), r.get("fds1", "-"),
            r.get("cpupct0", 0), r.get("cpupct1", 0), r.get("stats0", {}).get("messages_out", "-"),
            r.get("stats1", {}).get("messages_out", "-")))
        dat.append("%.2f %s %s %s %s %d" % (r["t"] / 60.0, r.get("rss0", 0) / 1024.0, r.get("rss1", 0) / 1024.0,
                                            r.get("fds0", 0), r.get("fds1", 0), r["streams"]))
    text = "\n".join(lines) + "\n"
    with open(base + ".txt", "w") as f:
        f.write(text)
    datfile = os.path.join(soak.root, "soak.dat")
    with open(datfile, "w") as f:
        f.write("\n".join(dat) + "\n")
    arrows = "".join("set arrow from first %.3f, graph 0 to first %.3f, graph 1 nohead lc rgb '#e0a040' dt 2; "
                     % (t / 60.0, t / 60.0) for t, what in soak.faults if what.startswith("Redis stopped"))
    title = "sse-fcgi soak %s: %.0f min, %d streams, %.0f publishes/s: %s%s" % (
        stamp, MINUTES, STREAMS, RATE, verdict, " (short validation run)" if short else "")
    p = subprocess.run(["gnuplot", "-e", "dat='%s'; out='%s'; ttl='%s'; warmup=%f; %s" % (
        datfile, base + ".png", title, WARMUP / 60.0, arrows), os.path.join(HERE, "soak.gp")],
        capture_output=True, text=True)
    if p.returncode != 0:
        print("soak: gnuplot failed: %s" % p.stderr, file=sys.stderr)
    print(text)
    print("soak: wrote %s.txt and %s.png" % (base, base))
    return verdict


def main():
    soak = Soak()
    error = None
    try:
        soak.run()
    except BaseException as x:   # still stop everything and write what was measured
        error = "%s: %s" % (type(x).__name__, str(x)[:300])
        log("aborted: " + error)
        for e in soak.envs:
            try:
                soak.problems.extend(e.teardown())
            except Exception:
                pass
        soak.redis.stop()
    verdict = report(soak, error)
    if os.environ.get("SOAK_KEEP") != "1":
        subprocess.run(["rm", "-rf", soak.root])
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
