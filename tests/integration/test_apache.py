"""Apache httpd 2.4 as a front (issue 13): examples/apache/apache2.conf as
shipped (after the documented substitution), mod_proxy_fcgi to the socket of
the spawn-fcgi line of examples/nginx/spawn-fcgi.sh: streaming unbuffered,
publishes, a 60 KiB body, heartbeats, 403 for /publish and /stats from an
untrusted address, statuses passed through, and how long a vanished
browser's stream lives on behind Apache."""

import contextlib
import re
import shlex

import harness
from harness import eq, check, fail, test
from front_helpers import APACHE_EXAMPLE, Apache, exercise


@contextlib.contextmanager
def apache(env, conf=None, root=None):
    """The backend through spawn-fcgi, then Apache from the example; both
    stopped by pid afterwards (a problem then fails a passing test)."""
    front = Apache(env, root)
    ok = False
    try:
        env.start_backend(conf)
        front.start()
        yield front
        ok = True
    finally:
        problems = front.stop()
        if problems and ok:
            fail("\n".join(problems))
        for p in problems:
            env.note("while stopping apache: " + p)


def _code(path):
    with open(path) as f:
        return "\n".join(l.split("#", 1)[0] for l in f.read().splitlines())


def spawn_line_quoted(path):
    with open(path) as f:
        for line in f:
            s = line.lstrip("#").strip()
            if s.startswith("spawn-fcgi -"):
                return s
    fail("%s quotes no spawn-fcgi command line" % path)


@test("apache_example_valid")
def apache_example_valid(env):
    """The shipped file carries what SSE needs behind Apache, passes
    `apache2 -t` after the substitution, and quotes the spawn-fcgi line of
    examples/nginx/spawn-fcgi.sh."""
    code = _code(APACHE_EXAMPLE)
    for must in (r"mod_mpm_event\.so", r"mod_proxy_fcgi\.so", r"(?m)^User www-data$",
                 r'ProxyPass "/sse/" "unix:/run/sse-fcgi/sse-fcgi\.sock\|fcgi://[^"]+" .*flushpackets=on',
                 r'ProxyPass "/publish/" "unix:/run/sse-fcgi/sse-fcgi\.sock\|', r'ProxyPass "/stats" "unix:',
                 r'<Location "/publish/">\s*Require ip 127\.0\.0\.1 ::1', r'<Location "/stats">\s*Require ip 127\.0\.0\.1 ::1',
                 r"MaxConnectionsPerChild\s+0\b", r"LimitRequestBody 65536"):
        check(re.search(must, code), "examples/apache/apache2.conf lacks %s" % must)
    for line in re.findall(r'(?m)^\s*ProxyPass .*$', code):
        check(" retry=0" in line and " enablereuse=off" in line, "ProxyPass without retry=0 enablereuse=off: %s" % line)
        t = int(re.search(r"timeout=(\d+)", line).group(1))
        check(t > 60 or '"/sse/"' not in line,
              "ProxyPass timeout=%d is not above the heartbeat ceiling (60 s): %s" % (t, line))
    check(int(re.search(r"(?m)^Timeout (\d+)", code).group(1)) > 60, "Timeout not above 60 s")
    limit, tpc, mrw = (int(re.search(r"(?m)^\s*%s\s+(\d+)" % k, code).group(1))
                       for k in ("ServerLimit", "ThreadsPerChild", "MaxRequestWorkers"))
    eq(mrw, limit * tpc, "MaxRequestWorkers vs ServerLimit x ThreadsPerChild")
    Apache(env).check_config()
    with open(harness.SPAWN_EXAMPLE) as f:
        script = [l for l in f.read().splitlines() if l.startswith("spawn-fcgi ")][0]
    eq(shlex.split(spawn_line_quoted(APACHE_EXAMPLE)), shlex.split(script),
       "spawn-fcgi line in examples/apache/apache2.conf vs examples/nginx/spawn-fcgi.sh")


@test("apache_front")
def apache_front(env):
    with apache(env, {"heartbeat": 1, "retry": 2000}) as front:
        def uids():
            out = []
            for pid in front.children():
                try:
                    out.append(int(harness.proc_status_field(pid, "Uid").split()[0]))
                except (OSError, AttributeError):
                    pass
            return out
        # a child is forked as root and drops to User/Group before it serves
        env.loop.wait(lambda: uids() and all(u == env.uid for u in uids()), 10,
                      lambda: "apache2 children running as www-data (uids %r): %s" % (uids(), front.log()))
        dt = exercise(env, front, heartbeat=1)
        env.note("apache: closed client reaped from the backend after %.2fs (heartbeat 1 s)" % dt)
