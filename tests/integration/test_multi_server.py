"""The multi-server deployment of examples/multi-server/ (issue 4, item 3), run
from its files on one machine: Redis from redis.conf on 127.0.0.1, two app
hosts on 127.0.0.2 and 127.0.0.3 (each app-nginx.conf + spawn-fcgi.sh's
`-F 2` line + sse-fcgi.conf), the load balancer lb-nginx.conf on 127.0.0.1.
Streams opened through the load balancer spread over both hosts; a publish
through the load balancer or straight at one host reaches every stream once.

Meaningful only with Redis mode: when the backends never report
"mode":"redis" within 10 s the test is skipped, saying so."""

import os
import re
import shlex
import shutil
import socket
import subprocess

import harness
from harness import SLOW, TestFailure, TestSkip, check, eq, fail, test
from lighttpd_helpers import request_from
from redis_helpers import World, stats_by_pid, wait_mode

EX = os.path.join(harness.REPO, "examples", "multi-server")
APP_HOST = {"a": "127.0.0.2", "b": "127.0.0.3"}
SHIPPED_APP = {"10.0.0.11": "a", "10.0.0.12": "b"}


def _read(name):
    with open(os.path.join(EX, name)) as f:
        return f.read()


def _subst(name, text, rules):
    """Apply (what, pattern, replacement) rules; each must match; then no
    system path, shipped port or shipped private address may be left."""
    for what, pat, rep in rules:
        text, n = re.subn(pat, lambda m, rep=rep: m.expand(rep), text)
        if n == 0:
            fail("examples/multi-server/%s: substitution for %s matched nothing" % (name, what))
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if re.search(r"((?<![\w.-])(/run/|/var/log/|/var/lib/|/etc/sse-fcgi/)|\b10\.0\.0\.1[0-2]\b|"
                     r"\blisten\s+(80|8080)\b|\bport\s+6379\b)", code):
            fail("examples/multi-server/%s: left after substitution: %r" % (name, line.strip()))
    return text


def nginx_rules(env, listen):
    return [
        ("FastCGI socket", r"unix:/run/sse-fcgi/sse-fcgi\.sock", "unix:" + env.sock),
        ("log paths", r"/var/log/nginx/", env.ngx_log + "/"),
        ("pid path", r"(?m)^(\s*pid\s+)/run/nginx\.pid(\s*;)", r"\g<1>%s/nginx.pid\2" % env.run_dir),
        ("temp paths", r"/var/lib/nginx/", env.ngx_tmp + "/"),
        ("listen", r"(?m)^(\s*listen\s+)(?:80|8080)(\s*;)", r"\g<1>%s\2" % listen),
    ]


def start_nginx(env, name, text, addr, port):
    """nginx -p <dir>/nginx/ -c <substituted file> -g 'daemon off;' as
    env.nginx (env.teardown stops it by pid)."""
    conf = os.path.join(env.ngx_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    shutil.copy(harness.NGINX_FASTCGI_PARAMS, os.path.join(env.ngx_dir, "fastcgi_params"))
    out = open(os.path.join(env.ngx_log, "nginx.stdout"), "w")
    env.nginx = subprocess.Popen(["nginx", "-p", env.ngx_dir + "/", "-c", conf, "-e",
                                  os.path.join(env.ngx_log, "error.log"), "-g", "daemon off;"],
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    env.port = port

    def up():
        if env.nginx.poll() is not None:
            fail("nginx (%s) exited: %s" % (name, env.nginx_log()))
        try:
            socket.create_connection((addr, port), timeout=1).close()
            return True
        except OSError:
            return False
    env.loop.wait(up, 10, lambda: "nginx (%s) listening on %s:%d" % (name, addr, port))


def start_app_host(env, host, redis_port):
    """One app host: sse-fcgi.conf + spawn-fcgi.sh's line (-F 2) + app-nginx.conf."""
    conf = _subst("sse-fcgi.conf", _read("sse-fcgi.conf"), [
        ("log_file", r'(?m)^(log_file\s*=\s*")/var/log/sse-fcgi/sse-fcgi\.log(")', r"\g<1>%s\2" % env.log_path),
        ("redis host", r'(?m)^(\s*host\s*=\s*")10\.0\.0\.10(")', r"\g<1>127.0.0.1\2"),
        ("redis port", r"(?m)^(\s*port\s*=\s*)6379\s*$", r"\g<1>%d" % redis_port),
    ])
    with open(env.conf_path, "w") as f:
        f.write(conf)
    os.chmod(env.conf_path, 0o644)
    line = [l for l in _read("spawn-fcgi.sh").splitlines() if l.startswith("spawn-fcgi ")]
    check(line, "examples/multi-server/spawn-fcgi.sh has no spawn-fcgi line")
    argv = shlex.split(line[0])
    eq(argv[argv.index("-F") + 1], "2", "spawn-fcgi -F in examples/multi-server/spawn-fcgi.sh")
    argv[argv.index("-s") + 1] = env.sock
    argv[argv.index("-P") + 1] = env.spawn_pid
    dd = argv.index("--")
    eq(argv[dd + 1], "/usr/local/sbin/sse-fcgi", "program in spawn-fcgi.sh")
    argv[dd + 1] = harness.BIN
    argv[argv.index("-c", dd) + 1] = env.conf_path
    p = subprocess.run(argv, env=env.backend_env(), capture_output=True, timeout=10 * SLOW)
    check(p.returncode == 0, lambda: "spawn-fcgi (%s): %s" % (host, (p.stdout + p.stderr).decode(errors="replace")))
    with open(env.spawn_pid) as f:
        env.backend_pids = [int(x) for x in f.read().split()]
    eq(len(env.backend_pids), 2, "sse-fcgi processes on app host %s" % host)
    env.wait_backend_ready()
    port = harness.free_port()
    text = _subst("app-nginx.conf", _read("app-nginx.conf"), nginx_rules(env, "%s:%d" % (APP_HOST[host], port)))
    start_nginx(env, "app host " + host, text, APP_HOST[host], port)
    return port


@test("multi_server_example")
def multi_server_example(env):
    w = World(env)
    try:
        # Redis from the shipped redis.conf
        rport = harness.free_port()
        rdir = env._mkdir("redis", 0o755)
        rconf = _subst("redis.conf", _read("redis.conf"), [
            ("bind", r"(?m)^bind 10\.0\.0\.10 127\.0\.0\.1$", "bind 127.0.0.1"),
            ("port", r"(?m)^port 6379$", "port %d" % rport),
            ("pidfile", r"(?m)^pidfile /run/redis/redis-server\.pid$", "pidfile %s/redis.pid" % rdir),
            ("logfile", r"(?m)^logfile /var/log/redis/redis-server\.log$", "logfile %s/redis.log" % rdir),
            ("dir", r"(?m)^dir /var/lib/redis$", "dir %s" % rdir),
        ])
        with open(os.path.join(rdir, "redis.conf"), "w") as f:
            f.write(rconf)
        redis = subprocess.Popen(["redis-server", os.path.join(rdir, "redis.conf")], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.STDOUT, start_new_session=True)

        def stop_redis():
            redis.kill()
            redis.wait(10)
        w.cleanups.append(stop_redis)

        def redis_up():
            if redis.poll() is not None:
                fail("redis-server exited %s (log %s/redis.log)" % (redis.returncode, rdir))
            try:
                s = socket.create_connection(("127.0.0.1", rport), timeout=1)
            except OSError:
                return False
            s.sendall(b"PING\r\n")
            ok = b"PONG" in s.recv(64)
            s.close()
            return ok
        env.loop.wait(redis_up, 10, "redis-server from examples/multi-server/redis.conf")

        hosts = {"a": env, "b": w.second_env("b")}
        ports = {h: start_app_host(e, h, rport) for h, e in hosts.items()}
        for h, e in hosts.items():
            try:
                wait_mode(e, "redis", 10)
            except TestFailure as ex:
                raise TestSkip("the app host %s backends never reported \"mode\":\"redis\" within 10 s "
                               "(is Redis mode implemented?): %s" % (h, str(ex).splitlines()[0]))

        # the load balancer, its upstream pointed at the two app hosts
        lb = w.second_env("lb")
        lport = harness.free_port()
        rules = nginx_rules(lb, "127.0.0.1:%d" % lport)
        rules += [("upstream %s" % a, r"\bserver %s:8080\b" % re.escape(a),
                   "server %s:%d" % (APP_HOST[h], ports[h])) for a, h in SHIPPED_APP.items()]
        rules = [r for r in rules if r[0] != "FastCGI socket"]
        start_nginx(lb, "load balancer", _subst("lb-nginx.conf", _read("lb-nginx.conf"), rules), "127.0.0.1", lport)

        # streams through the load balancer land on both hosts
        streams = [lb.open_stream("doctor-123") for _ in range(8)]
        per_host = {}
        for h, e in hosts.items():
            st = stats_by_pid(e, e.backend_pids)
            per_host[h] = sum(s["streams"] for s in st.values())
        env.note("streams per app host: %r" % per_host)
        eq(sum(per_host.values()), 8, "streams counted on the app hosts")
        check(all(per_host.values()), "least_conn left an app host without streams: %r" % per_host)

        # publishes through the load balancer and straight at app host b
        sent = []
        for i in range(4):
            r = lb.publish("doctor-123", '{"n":%d}' % i)
            eq((r.get("mode"), r.get("fallback")), ("redis", False), "publish %d via the load balancer" % i)
            sent.append('{"n":%d}' % i)
        st, head, body = request_from("127.0.0.1", 0, "POST", "/publish/doctor-123", b'{"n":"direct"}',
                                      dest=(APP_HOST["b"], ports["b"]))
        eq(st, 200, "publish straight at app host b")
        sent.append('{"n":"direct"}')
        env.loop.wait(lambda: all(len(s.events) >= len(sent) for s in streams), 10,
                      lambda: "every stream to get %d events (have %r)" % (
                          len(sent), sorted(len(s.events) for s in streams)))
        for s in streams:
            eq([e.data for e in s.events], sent, "events on a stream through the load balancer")

        # publishing stays private: from another address the load balancer says 403
        st, _, _ = request_from("127.0.0.5", lport, "POST", "/publish/doctor-123", b'{"x":1}')
        eq(st, 403, "publish from 127.0.0.5 via the load balancer")
        env.loop.run_for(0.3)   # a measurement window: nothing more may arrive
        check(all(len(s.events) == len(sent) for s in streams), "a stream got a refused publish")
    finally:
        w.close()
