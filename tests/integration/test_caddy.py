"""Caddy 2 as a front (issue 13): examples/caddy/Caddyfile as shipped (after
the documented substitution), reverse_proxy with the FastCGI transport to the
socket of the spawn-fcgi line of examples/nginx/spawn-fcgi.sh, Caddy running
as user caddy in group www-data as the example says: streaming unbuffered,
publishes, a 60 KiB body, heartbeats, 403 for /publish and /stats from an
untrusted address, statuses passed through, and how long a vanished
browser's stream lives on behind Caddy."""

import contextlib
import re
import shlex

import harness
from harness import eq, check, fail, test
from front_helpers import CADDY_EXAMPLE, Caddy, exercise
from test_apache import spawn_line_quoted


@contextlib.contextmanager
def caddy(env, conf=None, root=None):
    front = Caddy(env, root)
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
            env.note("while stopping caddy: " + p)


@test("caddy_example_valid")
def caddy_example_valid(env):
    """The shipped Caddyfile carries what SSE needs, passes `caddy validate`
    after the substitution, and quotes the spawn-fcgi line of
    examples/nginx/spawn-fcgi.sh."""
    with open(CADDY_EXAMPLE) as f:
        text = f.read()
    code = "\n".join(l.split("#", 1)[0] for l in text.splitlines())
    for must in (r"reverse_proxy @sse unix//run/sse-fcgi/sse-fcgi\.sock \{", r"transport fastcgi \{",
                 r"flush_interval -1", r"@untrusted \{\s*path /publish/\* /stats\s*not remote_ip 127\.0\.0\.1 ::1\s*\}",
                 r"respond @untrusted 403", r"max_size 64KB", r"@sse path /sse/\* /publish/\* /stats"):
        check(re.search(must, code), "examples/caddy/Caddyfile lacks %s" % must)
    # read_timeout would be a deadline for the whole stream (see the file)
    check("read_timeout" not in code, "examples/caddy/Caddyfile sets read_timeout")
    check("adduser caddy www-data" in text, "the Caddyfile does not say how caddy reaches the socket")
    out = Caddy(env).check_config()
    check("not formatted" not in out, "caddy validate: the Caddyfile is not formatted (caddy fmt)")
    with open(harness.SPAWN_EXAMPLE) as f:
        script = [l for l in f.read().splitlines() if l.startswith("spawn-fcgi ")][0]
    eq(shlex.split(spawn_line_quoted(CADDY_EXAMPLE)), shlex.split(script),
       "spawn-fcgi line in examples/caddy/Caddyfile vs examples/nginx/spawn-fcgi.sh")


@test("caddy_front")
def caddy_front(env):
    with caddy(env, {"heartbeat": 1, "retry": 2000}) as front:
        eq(int(harness.proc_status_field(front.proc.pid, "Uid").split()[0]), front.pw.pw_uid,
           "uid of caddy (user caddy, as Debian's caddy.service)")
        dt = exercise(env, front, heartbeat=1)
        env.note("caddy: closed client reaped from the backend after %.2fs (heartbeat 1 s)" % dt)
        # streams outlive any timeout of Caddy's: one stays open across
        # several heartbeats with nothing published
        s = env.open_stream("long-1")
        env.loop.wait(lambda: len(s.sse.comments) >= 3, 6, "three heartbeats on one stream via caddy")
        check(not s.complete, "the stream via caddy ended")
