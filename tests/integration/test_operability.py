"""What an operator touches: Prometheus stats, SIGHUP reload of the safe settings."""

import os
import re
import signal

from harness import check, eq, test


@test("stats_prometheus")
def stats_prometheus(env):
    env.start({"heartbeat": 30})
    env.open_stream("doctor-1")
    env.publish("doctor-1", "x")
    # a Prometheus scraper asks for text/plain; curl and browsers get JSON
    ex = env.request("GET", "/stats", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    eq(ex.status, 200, "GET /stats for Prometheus")
    check((ex.header("Content-Type") or "").startswith("text/plain"),
          "Prometheus stats Content-Type: %r" % ex.header("Content-Type"))
    text = bytes(ex.body).decode()
    pid = env.pid
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)\{([^}]*)\} (\S+)$', line)
        check(m, "not a Prometheus sample line: %r" % line)
        check('pid="%d"' % pid in m.group(2), "series without this pid's label: %r" % line)
        series[m.group(1)] = float(m.group(3))
    eq(series.get("sse_fcgi_streams"), 1.0, "sse_fcgi_streams")
    eq(series.get("sse_fcgi_messages_in_total"), 1.0, "sse_fcgi_messages_in_total")
    eq(series.get("sse_fcgi_messages_out_total"), 1.0, "sse_fcgi_messages_out_total")
    eq(series.get("sse_fcgi_redis_up"), 0.0, "sse_fcgi_redis_up in single-server mode")
    for name in ("sse_fcgi_dropped_slow_total", "sse_fcgi_fallbacks_total",
                 "sse_fcgi_redis_reconnects_total", "sse_fcgi_uptime_seconds", "sse_fcgi_info"):
        check(name in series, "missing series %s in:\n%s" % (name, text))
    # every TYPE line names a series that is there
    for t in re.findall(r"^# TYPE (\S+) (?:gauge|counter)$", text, re.M):
        check(t in series, "TYPE without samples: %s" % t)
    check(env.stats()["streams"] == 1, "plain GET /stats is still JSON")


@test("sighup_reload")
def sighup_reload(env):
    env.start({"heartbeat": 30, "max_streams_per_resource": 2})
    a = [env.open_stream("doctor-1") for _ in range(2)]
    eq(env.request("GET", "/sse/doctor-1").status, 429, "third stream at max_streams_per_resource = 2")
    # raise the limit and shorten the heartbeat without a restart
    env.write_conf({"heartbeat": 1, "max_streams_per_resource": 3})
    os.kill(env.pid, signal.SIGHUP)
    env.wait_log(r"configuration reloaded: .*max_streams_per_resource 3, heartbeat 1 s")
    b = env.open_stream("doctor-1")
    eq(env.request("GET", "/sse/doctor-1").status, 429, "fourth stream after raising the limit to 3")
    # the streams opened before the reload get heartbeats at the new period
    env.loop.wait(lambda: all(len(s.sse.comments) >= 2 for s in a + [b]), 5,
                  "two heartbeats on every stream at heartbeat = 1")
    # a broken file on reload changes nothing and says why
    with open(env.conf_path, "a") as f:
        f.write("heartbeat = 0\n")
    os.kill(env.pid, signal.SIGHUP)
    env.wait_log(r"reload failed, keeping the running configuration: .*heartbeat")
    eq(env.request("GET", "/sse/doctor-1").status, 429, "limit unchanged after a failed reload")
    r = env.publish("doctor-1", "still here")
    eq(r["delivered"], 3, "delivered after a failed reload")


def _sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


@test("accept_spread")
def accept_spread(env):
    """Two processes on one socket (spawn-fcgi -F 2): streams opened one after another
    land on both, and the pair holds exactly 2 x max_streams before answering 503."""
    env.start({"heartbeat": 30, "max_streams": 12, "max_streams_per_resource": 100}, procs=2)
    base = {pid: _sockets(pid) for pid in env.backend_pids}
    streams = [env.open_stream("queue-%d" % (i % 3)) for i in range(20)]
    env.loop.wait(lambda: sum(_sockets(p) - base[p] for p in base) >= 20, 5,
                  "20 stream sockets in the two processes")
    held = sorted(_sockets(p) - base[p] for p in base)
    env.note("streams per process after 20 sequential opens: %s" % held)
    check(held[0] >= 6, "streams piled onto one process: %s" % held)
    more = [env.open_stream("queue-x") for _ in range(4)]
    ex = env.request("GET", "/sse/queue-x")
    eq(ex.status, 503, "a stream past both processes' max_streams")
    check(ex.header("Retry-After"), "503 without Retry-After")
    r = env.publish("queue-x", "hello")
    check(r["delivered"] in (0, 1, 2, 3, 4), "publish still answered: %r" % r)
    for s in streams + more:
        check(s.status == 200 and not s.complete, "a held stream ended")
