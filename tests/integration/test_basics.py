"""Command line, configuration check, the shipped examples, stream headers,
methods and paths."""

import os
import re
import shutil
import subprocess

from harness import (BIN, diag, NGINX_EXAMPLE, SPAWN_EXAMPLE, SLOW, check, eq, fail, run_binary,
                     spawn_fcgi_argv, substitute_nginx_conf, test)


@test("cli_version_help")
def cli_version_help(env):
    for args in (["--version"], ["-h"], ["--help"]):
        p = run_binary(args, env.san_dir)
        out = (p.stdout + p.stderr).decode(errors="replace")
        eq(p.returncode, 0, "exit status of sse-fcgi %s" % " ".join(args))
        check(out.strip(), "sse-fcgi %s printed nothing" % " ".join(args))
        if args == ["--version"]:
            check(re.search(r"\d+\.\d+", out), "--version shows no version number: %r" % out)
        else:
            for opt in ("-c", "-t", "-l"):
                check(opt in out, "%s does not mention %s: %r" % (args[0], opt, out[:500]))
    p = run_binary(["--no-such-option"], env.san_dir)
    check(p.returncode != 0, "an unknown option must fail")


def _conf_error(env, name, text, key, line):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    p = run_binary(["-t", "-c", path], env.san_dir)
    err = p.stderr.decode(errors="replace")
    lines = [l for l in err.splitlines() if l.strip()]
    eq(p.returncode, 1, "sse-fcgi -t -c %s (%s) exit status" % (name, key))
    hits = [l for l in lines if path in l and key in l and re.search(r"(?<!\d)%d(?!\d)" % line, l.replace(path, ""))]
    check(hits, "%s: no stderr line naming file %s, line %d and key %r; stderr was:\n%s" % (name, path, line, key, err))
    check(len(lines) == 1, "%s: want exactly one stderr line, got %d:\n%s" % (name, len(lines), err))


@test("config_check")
def config_check(env):
    good = env.write_conf({"heartbeat": 5, "max_streams": 100}, os.path.join(env.dir, "good.conf"))
    p = run_binary(["-t", "-c", good], env.san_dir)
    eq(p.returncode, 0, "sse-fcgi -t on a good config (stderr %r)" % p.stderr[:300])
    # the same through SSE_FCGI_CONF
    p = run_binary(["-t"], env.san_dir, extra_env={"SSE_FCGI_CONF": good})
    eq(p.returncode, 0, "sse-fcgi -t with SSE_FCGI_CONF=good.conf (stderr %r)" % p.stderr[:300])
    head = 'log_level = "info"\nheartbeat = 5\n'
    _conf_error(env, "unknown.conf", head + "no_such_key = 1\n", "no_such_key", 3)
    _conf_error(env, "type.conf", head + 'max_streams = "lots"\n', "max_streams", 3)
    _conf_error(env, "range.conf", 'log_level = "info"\n\nheartbeat = 0\n', "heartbeat", 3)
    _conf_error(env, "token.conf", head + '\npublish_token = ""\n', "publish_token", 4)
    # a channel_prefix inside sse-fcgi's own namespace would drop every payload
    _conf_error(env, "reserved.conf", head + 'redis {\n  channel_prefix = "__sse-fcgi__:sse:"\n}\n',
                "redis.channel_prefix", 4)
    # a named file that is missing is an error naming it
    missing = os.path.join(env.dir, "missing.conf")
    p = run_binary(["-t", "-c", missing], env.san_dir)
    check(p.returncode != 0, "-t -c on a missing file must fail")
    check(missing in p.stderr.decode(errors="replace"), "missing config not named: %r" % p.stderr[:300])
    p = run_binary(["-t"], env.san_dir, extra_env={"SSE_FCGI_CONF": missing})
    check(p.returncode != 0, "-t with SSE_FCGI_CONF naming a missing file must fail")


@test("examples_nginx_valid")
def examples_nginx_valid(env):
    """The shipped nginx.conf after the documented substitution passes
    `nginx -t`, and the spawn-fcgi line parses."""
    with open(NGINX_EXAMPLE) as f:
        shipped = f.read()
    for must in (r"fastcgi_buffering\s+off", r"fastcgi_read_timeout\s+\d+", r"location\s+/sse/",
                 r"location\s+/publish/", r"location\s+=\s+/stats", r"allow\s+127\.0\.0\.1",
                 r"allow\s+::1", r"deny\s+all", r"worker_shutdown_timeout", r"include\s+fastcgi_params",
                 r"client_max_body_size\s+64k", r"^user\s+www-data", r"worker_rlimit_nofile"):
        check(re.search(must, shipped, re.M), "examples/nginx/nginx.conf lacks %s" % must)
    t = int(re.search(r"fastcgi_read_timeout\s+(\d+)", shipped).group(1))
    check(t > 60, "fastcgi_read_timeout %ds is not above the heartbeat ceiling (60 s)" % t)
    text = substitute_nginx_conf(shipped, 18080, env.sock, env.ngx_log, env.dir + "/run/nginx.pid", env.ngx_tmp)
    conf = os.path.join(env.ngx_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    shutil.copy("/etc/nginx/fastcgi_params", env.ngx_dir)
    p = subprocess.run(["nginx", "-t", "-p", env.ngx_dir + "/", "-c", conf,
                        "-e", os.path.join(env.ngx_log, "error.log")], capture_output=True, timeout=20)
    eq(p.returncode, 0, "nginx -t on the substituted example: %s" % p.stderr.decode(errors="replace"))
    argv = spawn_fcgi_argv(env.sock, env.spawn_pid, 1, env.conf_path)
    for flag, val in (("-M", "0660"), ("-U", "www-data"), ("-G", "www-data"), ("-u", "www-data")):
        check(flag in argv and argv[argv.index(flag) + 1] == val,
              "spawn-fcgi.sh line lacks %s %s" % (flag, val))
    with open(SPAWN_EXAMPLE) as f:
        check("-F 1 " in f.read(), "spawn-fcgi.sh's main line should run -F 1 (no Redis)")


@test("startup_log")
def startup_log(env):
    env.start_backend({"heartbeat": 5})
    env.wait_log(r"stream ceiling")
    env.wait_log(r"SSE: Redis not configured, using single-server mode")
    # spawn-fcgi ran it as www-data
    with open("/proc/%d/status" % env.pid) as f:
        uid = [l for l in f if l.startswith("Uid:")][0].split()[1]
    eq(int(uid), env.uid, "uid of the sse-fcgi process (spawn-fcgi -u www-data)")


@test("stream_headers", loops=(None, "select"))
def stream_headers(env):
    # history_size = 0: the stream is byte for byte what it was before event ids
    env.start({"retry": 2500, "heartbeat": 30, "history_size": 0})
    s = env.stream("doctor-123")
    env.loop.wait(lambda: s.complete or s.sse.nbytes > 0, 2, "first bytes of /sse/doctor-123")
    eq(s.status, 200, "status of GET /sse/doctor-123")
    ct = s.header("content-type") or ""
    check(ct.split(";")[0].strip() == "text/event-stream", "Content-Type %r" % ct)
    check("no-cache" in (s.header("cache-control") or ""), "Cache-Control %r" % s.header("cache-control"))
    check(s.header("access-control-allow-origin") is None, "CORS header sent without cors_origin")
    dt = s.t_head - s.t_open
    check(dt < 1.0 * SLOW, "headers took %.2fs (nginx holds them until the first body byte)" % dt)
    check(re.match(rb"retry: 2500\r?\n\r?\n", bytes(s.sse.raw)),
          "stream must start with 'retry: 2500' and a blank line, got %r" % bytes(s.sse.raw[:60]))
    eq(s.sse.retries[0][1], 2500, "retry value")
    # seed resource names, unknown query parameters, Last-Event-ID ignored (history off)
    for res, q, h in (("appointment-42", "", None), ("queue-7-2026-11-27", "?foo=bar&x", None),
                      ("a:b.c_d-E9", "?last_event_id=x-1", {"Last-Event-ID": "17"}),
                      ("x" * 128, "", None)):
        s2 = env.open_stream(res, q, h)
        check(not s2.sse.ids, "id: lines sent")
    # straight from the backend: X-Accel-Buffering (nginx consumes it)
    d = env.fcgi("GET", "/sse/direct", sse=True)
    env.loop.wait(lambda: d.complete or d.sse.retries, 2, "direct FastCGI stream head")
    eq(d.status, 200, "direct FastCGI stream status")
    eq((d.header("x-accel-buffering") or "").lower(), "no", "X-Accel-Buffering from the backend")
    check("no-cache" in (d.header("cache-control") or ""), "direct Cache-Control %r" % d.header("cache-control"))
    pub = env.request("GET", "/publish/doctor-123")
    eq(pub.status, 200, "GET /publish/doctor-123")
    eq(pub.json().get("streams"), 1, "GET /publish/doctor-123 streams")
    check((pub.header("content-type") or "").startswith("application/json"), "GET /publish content type")
    # nothing but the retry: line precedes the first event
    barrier(env, "doctor-123", [s])
    check(bytes(s.sse.raw).startswith(b"retry: 2500\n\ndata: barrier-"),
          "bytes between the retry: line and the first event: %r" % bytes(s.sse.raw[:80]))


@test("cors_origin")
def cors_origin(env):
    env.start({"cors_origin": "https://app.example.com"})
    s = env.open_stream("doctor-1")
    eq(s.header("access-control-allow-origin"), "https://app.example.com", "Access-Control-Allow-Origin")


@test("methods_and_paths")
def methods_and_paths(env):
    env.start({"heartbeat": 30})
    watch = [env.open_stream("watch") for _ in range(2)]
    for method in ("HEAD", "OPTIONS", "POST", "PUT", "DELETE"):
        ex = env.request(method, "/sse/watch", b"x" if method in ("POST", "PUT") else b"")
        eq(ex.status, 405, "%s /sse/watch status" % method)
        allow = ex.header("allow") or ""
        check("GET" in allow, "%s /sse/watch: 405 without an Allow listing GET (got %r)" % (method, allow))
    for method in ("DELETE", "PUT"):
        ex = env.request(method, "/publish/watch", b"x" if method == "PUT" else b"")
        eq(ex.status, 405, "%s /publish/watch status" % method)
        check("POST" in (ex.header("allow") or ""), "%s /publish/watch: Allow %r" % (method, ex.header("allow")))
    # unknown paths: through nginx, and straight at the backend
    eq(env.request("GET", "/nothing-here").status, 404, "GET /nothing-here via nginx")
    for uri in ("/nothing-here", "/sse", "/publishx/watch", "/stats/x", "/"):
        ex = env.fcgi("GET", uri)
        eq(ex.status, 404, "backend status for GET %s" % uri)
    # /stats from the web
    st = env.stats()
    eq(st.get("streams"), 2, "stats streams")
    barrier(env, "watch", watch)


def barrier(env, resource, streams, expect_before=()):
    """Publish a barrier to resource and require every stream to have received
    exactly expect_before + [barrier] since it opened: a refused request left
    no trace."""
    token = "barrier-%d" % id(streams)
    r = env.publish(resource, token)
    eq(r.get("delivered"), len(streams), "barrier delivered")
    env.loop.wait(lambda: all(any(e.data == token for e in s.events) for s in streams), 5,
                  lambda: "barrier on %d streams of %s: %s" % (len(streams), resource, diag(streams)))
    for s in streams:
        got = [e.data for e in s.events]
        eq(got, list(expect_before) + [token], "events on a %s stream" % resource)
        check(not s.complete, "a %s stream ended" % resource)
