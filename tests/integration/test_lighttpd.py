"""lighttpd as a first-class front (issue 4, item 1): both ways lighttpd users
run FastCGI, from the files in examples/lighttpd/ as shipped (after the
documented substitution):

  lighttpd-spawn-fcgi.conf  lighttpd -> the socket of spawn-fcgi's sse-fcgi
  lighttpd-bin-path.conf    lighttpd spawns sse-fcgi itself (as www-data)

Each way: streaming + publish, event names, trusted-address rules for
/publish and /stats, statuses passed through (400/404/405), and dead-stream
reaping, which behind lighttpd happens at the backend's next write (the
heartbeat)."""

import contextlib
import os
import re
import shlex
import signal
import subprocess

import harness
from harness import SLOW, check, diag, eq, fail, test
from lighttpd_helpers import (BINPATH_CONF, SPAWN_CONF, Lighttpd, example_spawn_line, request_from,
                              wait_streams)


@contextlib.contextmanager
def lighttpd(env, way, conf=None):
    """Start the example's lighttpd (and for "spawn" first the backend through
    spawn-fcgi); stop lighttpd by pid afterwards.  A problem found while
    stopping fails the test unless it already failed."""
    lt = Lighttpd(env, way)
    ok = False
    try:
        if way == "spawn":
            env.start_backend(conf)
        lt.start(conf)
        yield lt
        ok = True
    finally:
        problems = lt.stop()
        if problems and ok:
            fail("\n".join(problems))
        for p in problems:
            env.note("while stopping lighttpd: " + p)


def _uid(pid):
    return int(harness.proc_status_field(pid, "Uid").split()[0])


@test("lighttpd_examples_valid")
def examples_valid(env):
    """Both shipped files carry the settings SSE needs and pass `lighttpd -tt`
    after the substitution; the spawn-fcgi line quoted in the spawn-fcgi way
    is the one in examples/nginx/spawn-fcgi.sh."""
    for path in (SPAWN_CONF, BINPATH_CONF):
        name = os.path.basename(path)
        with open(path) as f:
            text = f.read()
        code = "\n".join(l.split("#", 1)[0] for l in text.splitlines())
        for must in (r'server\.stream-response-body\s*=\s*2\b', r'"check-local"\s*=>\s*"disable"',
                     r'"mod_fastcgi"', r'"mod_access"', r'server\.username\s*=\s*"www-data"',
                     r'\$HTTP\["remoteip"\]\s*!~', r'url\.access-deny\s*=\s*\(\s*""\s*\)',
                     r'\$HTTP\["url"\]\s*=~\s*"\^/\(publish/\|stats\)"', r'"/sse/"\s*=>',
                     r'"/publish/"\s*=>', r'"/stats"\s*=>', r'graceful-shutdown-timeout'):
            check(re.search(must, code), "examples/lighttpd/%s lacks %s" % (name, must))
        fds = int(re.search(r"server\.max-fds\s*=\s*(\d+)", code).group(1))
        check(fds >= 2 * 10000, "%s: server.max-fds %d carries fewer than 10,000 streams" % (name, fds))
        idle = int(re.search(r"server\.max-write-idle\s*=\s*(\d+)", code).group(1))
        check(idle > 60, "%s: server.max-write-idle %d is not above the heartbeat ceiling (60 s)" % (name, idle))
        lt = Lighttpd(env, "spawn" if path == SPAWN_CONF else "bin-path")
        out = lt.check_config()
        check("can't have more connections" not in out, "%s: %s" % (name, out))
    with open(SPAWN_CONF) as f:
        check('"socket" => "/run/sse-fcgi/sse-fcgi.sock"' in f.read(),
              "lighttpd-spawn-fcgi.conf must connect to /run/sse-fcgi/sse-fcgi.sock")
    with open(BINPATH_CONF) as f:
        text = f.read()
    for must in ('"max-procs" => 1,', '"bin-path" => "/usr/local/sbin/sse-fcgi -c /etc/sse-fcgi/sse-fcgi.conf"'):
        check(must in text, "lighttpd-bin-path.conf lacks %s" % must)
    # the spawn-fcgi command quoted in the lighttpd example cannot drift from the script
    with open(harness.SPAWN_EXAMPLE) as f:
        script = [l for l in f.read().splitlines() if l.startswith("spawn-fcgi ")][0]
    eq(shlex.split(example_spawn_line()), shlex.split(script),
       "spawn-fcgi line in lighttpd-spawn-fcgi.conf vs examples/nginx/spawn-fcgi.sh")


def exercise(env, lt):
    """Everything both ways must do; env.port is lighttpd's."""
    # streams open through lighttpd with the backend's headers, at once
    a = [env.open_stream("doctor-123") for _ in range(2)]
    b = env.open_stream("appointment-42")
    s = a[0]
    eq((s.header("content-type") or "").split(";")[0], "text/event-stream", "Content-Type via lighttpd")
    check("no-cache" in (s.header("cache-control") or ""), "Cache-Control %r" % s.header("cache-control"))
    check(s.t_head - s.t_open < 1.0 * SLOW, "headers took %.2fs through lighttpd" % (s.t_head - s.t_open))

    # publish: the right streams, in order, event names kept
    r = env.publish("doctor-123", '{"queue":[1,2,3]}')
    eq((r.get("mode"), r.get("delivered")), ("local", 2), "publish reply via lighttpd")
    env.publish("doctor-123", '{"now":7}', event="called")
    env.publish("appointment-42", "line1\nline2")
    env.loop.wait(lambda: all(len(x.events) >= 2 for x in a) and b.events, 5,
                  lambda: "events through lighttpd: %s" % diag(a + [b]))
    for x in a:
        eq([(e.type, e.data) for e in x.events], [("message", '{"queue":[1,2,3]}'), ("called", '{"now":7}')],
           "events on a doctor-123 stream")
    eq([(e.type, e.data) for e in b.events], [("message", "line1\nline2")], "events on appointment-42")
    # lighttpd passes Last-Event-ID on (as HTTP_LAST_EVENT_ID): a resume replays
    r1 = env.open_stream("doctor-123", headers={"Last-Event-ID": a[0].events[0].id})
    env.loop.wait(lambda: r1.events, 5, "replay through lighttpd")
    eq([(e.type, e.data, e.id) for e in r1.events], [(e.type, e.data, e.id) for e in a[0].events[1:]],
       "events replayed through lighttpd")
    r1.close()
    wait_streams(env, "doctor-123", 2, 10)

    # a publish body larger than one FastCGI record and than lighttpd's memory
    # buffer arrives whole
    big = '{"pad":"%s"}' % ("x" * 60000)
    eq(env.publish("appointment-42", big).get("delivered"), 1, "60 KB publish delivered")
    env.loop.wait(lambda: len(b.events) >= 2, 5, "60 KB event")
    eq(b.events[1].data, big, "60 KB event data")

    # trusted addresses only: /publish and /stats answer 403 to 127.0.0.2,
    # streams do not care
    for method, path in (("POST", "/publish/doctor-123"), ("GET", "/publish/doctor-123"), ("GET", "/stats")):
        st, head, _ = request_from("127.0.0.2", env.port, method, path, b'{"x":1}' if method == "POST" else b"")
        eq(st, 403, "%s %s from 127.0.0.2" % (method, path))
    st, head, body = request_from("127.0.0.2", env.port, "GET", "/sse/nope%2Fx")
    eq(st, 400, "GET /sse/nope%2Fx from 127.0.0.2 (reaches sse-fcgi)")

    # the backend's statuses pass through lighttpd
    for method, path, body, want in (
            ("GET", "/sse/a%2Fb", b"", 400), ("GET", "/sse/", b"", 400), ("GET", "/sse/" + "x" * 129, b"", 400),
            ("GET", "/sse/bad~name", b"", 400), ("POST", "/publish/doctor-123", b"", 400),
            ("POST", "/publish/doctor-123", b"\xff\xfe", 400),
            ("PUT", "/sse/doctor-123", b"x", 405), ("DELETE", "/publish/doctor-123", b"", 405),
            ("GET", "/statsx", b"", 404), ("GET", "/publish/", b"", 400)):
        ex = env.request(method, path, body)
        eq(ex.status, want, "%s %s via lighttpd" % (method, path[:40]))
        if want == 405:
            check(ex.header("allow"), "405 for %s %s without Allow" % (method, path))
    ex = env.request("GET", "/stats")
    eq(ex.status, 200, "GET /stats via lighttpd")
    st = ex.json()
    check(st.get("streams") == 3, "/stats streams %r (want 3)" % st.get("streams"))
    # nothing leaked into the open streams
    env.publish("doctor-123", "barrier")
    env.loop.wait(lambda: all(len(x.events) >= 3 for x in a), 5, "barrier through lighttpd")
    for x in a:
        eq([e.data for e in x.events][2:], ["barrier"], "doctor-123 after the refused requests")
    eq(len(b.events), 2, "appointment-42 events after the refused requests")
    check(not any(x.complete for x in a + [b]), "a stream ended")

    # dead-stream reaping: a vanished browser is noticed at the next heartbeat
    # write (heartbeat = 1 s), not before and not never
    x = a.pop()
    x.close()
    dt = wait_streams(env, "doctor-123", 1, 10)
    env.note("%s: closed client reaped from the backend after %.2fs" % (lt.way, dt))
    st = env.stats()
    eq(st.get("streams"), 2, "/stats streams after one client left")
    # and the survivors keep working
    env.publish("doctor-123", "after")
    env.loop.wait(lambda: a[0].events[-1].data == "after", 5, "event after the reap")
    check(a[0].sse.comments, "no heartbeat comments seen with heartbeat = 1")
    return st


@test("lighttpd_spawn_fcgi")
def spawn_way(env):
    with lighttpd(env, "spawn", {"heartbeat": 1, "retry": 2000}) as lt:
        st = exercise(env, lt)
        eq(st.get("pid"), env.pid, "/stats pid is spawn-fcgi's child")
        eq(_uid(lt.proc.pid), env.uid, "uid of lighttpd (server.username www-data)")


@test("lighttpd_bin_path")
def bin_path_way(env):
    with lighttpd(env, "bin-path", {"heartbeat": 1, "retry": 2000}) as lt:
        pids = lt.spawned()
        eq(len(pids), 1, "sse-fcgi processes lighttpd started (max-procs 1)")
        pid = pids[0]
        # lighttpd dropped to www-data before spawning: nothing runs as root
        eq(_uid(lt.proc.pid), env.uid, "uid of lighttpd (server.username www-data)")
        eq(_uid(pid), env.uid, "uid of the sse-fcgi lighttpd spawned")
        sock = os.stat(env.sock)
        eq(sock.st_uid, env.uid, "owner of lighttpd's FastCGI socket")
        st = exercise(env, lt)
        eq(st.get("pid"), pid, "/stats pid is lighttpd's child")
        # lighttpd restarts a backend that died (SIGKILL: no goodbye at all);
        # the next stream is served by a new process
        os.kill(pid, signal.SIGKILL)
        check(harness.wait_pid_exit(pid, 5) is not None, "sse-fcgi pid %d survived SIGKILL" % pid)
        lt.backend.remove(pid)   # it could not log "stopped"

        def respawned():
            ex = env.request("GET", "/stats")
            return ex.status == 200 and ex.json().get("pid") not in (None, pid)
        env.loop.wait(respawned, 10, lambda: "lighttpd to restart sse-fcgi: %s" % lt.log())
        check(lt.spawned(), "no sse-fcgi child of lighttpd after the restart")
        s = env.open_stream("doctor-9")
        env.publish("doctor-9", "again")
        env.loop.wait(lambda: s.events, 5, "event from the restarted sse-fcgi")
        eq(s.events[0].data, "again", "event from the restarted sse-fcgi")
