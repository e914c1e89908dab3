"""Apache httpd and Caddy fronts for the integration tests (stdlib only): the
documented substitution of the shipped examples/apache/apache2.conf and
examples/caddy/Caddyfile, a server of the test's own from each (its own
session, stopped by pid), and the checks every front must pass.

Both connect to the socket of the sse-fcgi that env.start_backend() starts
with the spawn-fcgi line of examples/nginx/spawn-fcgi.sh, as the examples
say.  Every wait is a deadline-bounded predicate (harness.Loop.wait)."""

import os
import pwd
import re
import signal
import socket
import subprocess

import harness
from harness import SLOW, check, eq, fail
from lighttpd_helpers import request_from, wait_streams

APACHE_EXAMPLE = os.path.join(harness.REPO, "examples", "apache", "apache2.conf")
CADDY_EXAMPLE = os.path.join(harness.REPO, "examples", "caddy", "Caddyfile")
SHIPPED_SOCK = "/run/sse-fcgi/sse-fcgi.sock"
SHIPPED_ROOT = "/var/www/sse-fcgi-demo"
CADDY_USER = "caddy"          # Debian's caddy package runs Caddy as this user

# Left in a code line after substitution, any of these means the example has
# a system path (or the shipped port) the substitution does not know about.
_SYSTEM = re.compile(r"((?<![\w.-])(/run/|/var/log/|/var/lib/|/var/cache/)|:8080\b|:2019\b)")


def _apply(rules, text, name):
    for what, pat, rep in rules:
        text, n = re.subn(pat, lambda m, rep=rep: m.expand(rep), text)
        if n == 0:
            fail("%s: substitution for %s matched nothing" % (name, what))
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if _SYSTEM.search(code):
            fail("%s: system path left after substitution: %r" % (name, line.strip()))
    return text


def substitute_apache_conf(text, port, sock, log_dir, run_dir, root=None):
    """THE documented substitution for examples/apache/apache2.conf
    (tests/integration/README.md): only the port (Listen and VirtualHost),
    the FastCGI socket, the log paths, the pid and runtime directory and,
    where a test serves the page, the page root change."""
    rules = [
        ("port", r"(?m)^(\s*(?:Listen\s+127\.0\.0\.1|<VirtualHost\s+\*)):8080\b", r"\g<1>:%d" % port),
        ("FastCGI socket", r"unix:%s\|" % re.escape(SHIPPED_SOCK), "unix:%s|" % sock),
        ("log paths", r"/var/log/apache2/", log_dir.rstrip("/") + "/"),
        ("pid and runtime paths", r"/run/apache2/", run_dir.rstrip("/") + "/"),
    ]
    if root is not None:
        rules.append(("page root", re.escape(SHIPPED_ROOT), root))
    return _apply(rules, text, "examples/apache/apache2.conf")


def substitute_caddyfile(text, port, admin_port, sock, log_dir, root=None):
    """THE documented substitution for examples/caddy/Caddyfile: only the
    site port, the admin port, the FastCGI socket, the log path and, where a
    test serves the page, the page root change."""
    rules = [
        ("site port", r"(?m)^(http://):8080(\s*\{)", r"\g<1>:%d\2" % port),
        ("admin port", r"(?m)^(\s*admin\s+)localhost:2019\s*$", r"\g<1>127.0.0.1:%d" % admin_port),
        ("FastCGI socket", r"unix/%s\b" % re.escape(SHIPPED_SOCK), "unix/" + sock),
        ("log path", r"/var/log/caddy/", log_dir.rstrip("/") + "/"),
    ]
    if root is not None:
        rules.append(("page root", re.escape(SHIPPED_ROOT), root))
    return _apply(rules, text, "examples/caddy/Caddyfile")


class Front:
    """One front server from a shipped example in env's directory tree
    (<dir>/<name>/ for config, logs and runtime files), started in its own
    session and stopped by pid."""

    name = None

    def __init__(self, env, root=None):
        self.env = env
        self.root = root
        self.base = env._mkdir(self.name, 0o755)
        self.log_dir = env._mkdir(self.name + "/log", 0o755, own=self.name == "caddy")
        self.proc = None
        self.port = None

    def log(self):
        out = ""
        for n in sorted(os.listdir(self.log_dir)):
            try:
                with open(os.path.join(self.log_dir, n), errors="replace") as f:
                    out += "== %s\n%s" % (n, f.read()[-2000:])
            except OSError:
                pass
        return out

    def _popen(self, argv, **kw):
        out = open(os.path.join(self.log_dir, self.name + ".stdout"), "w")
        try:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, **kw)
        finally:
            out.close()

    def _wait_listening(self):
        def listening():
            if self.proc.poll() is not None:
                fail("%s exited %s: %s" % (self.name, self.proc.returncode, self.log()))
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        self.env.loop.wait(listening, 15, lambda: "%s listening on %d: %s" % (self.name, self.port, self.log()))
        self.env.port = self.port

    def stop(self):
        """Stop the backend first (its streams end with a retry: and a clean
        end, which is also what lets the front's workers go at once), then the
        front: SIGTERM, wait, SIGKILL to its process group.  Returns problems."""
        problems = []
        env = self.env
        alive = [p for p in env.backend_pids if p not in env.exit_status]
        for pid, st in env.stop_backend(signal.SIGTERM, 10).items():
            if st not in (-1, 0):
                problems.append("sse-fcgi pid %d: %s after SIGTERM (want exit 0)" % (pid, harness.describe_status(st)))
        for pid in alive:
            if pid not in env.exit_status:
                problems.append("sse-fcgi pid %d did not exit within %.0fs of SIGTERM" % (pid, 10 * SLOW))
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                problems.append("%s did not stop within %.0fs of SIGTERM" % (self.name, 15 * SLOW))
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            problems.append("%s survived SIGKILL" % self.name)
        self.proc = None
        return problems


class Apache(Front):
    """`apache2 -f <dir>/apache/apache2.conf -DFOREGROUND`: the master stays
    root, its children run as www-data (User/Group as shipped)."""

    name = "apache"

    def __init__(self, env, root=None):
        super().__init__(env, root)
        self.run_dir = env._mkdir("apache/run", 0o755)
        self.conf = os.path.join(self.base, "apache2.conf")

    def render(self, port):
        with open(APACHE_EXAMPLE) as f:
            text = f.read()
        return substitute_apache_conf(text, port, self.env.sock, self.log_dir, self.run_dir, self.root)

    def check_config(self):
        """`apache2 -t` on the substituted file."""
        with open(self.conf, "w") as f:
            f.write(self.render(harness.free_port()))
        p = subprocess.run(["apache2", "-t", "-f", self.conf], capture_output=True, timeout=30,
                           env=harness.clean_environ())
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(p.returncode == 0 and "Syntax OK" in out, lambda: "apache2 -t: exit %d: %s" % (p.returncode, out))
        return out

    def start(self):
        self.port = harness.free_port()
        with open(self.conf, "w") as f:
            f.write(self.render(self.port))
        self._popen(["apache2", "-f", self.conf, "-DFOREGROUND"], env=harness.clean_environ())
        self._wait_listening()
        return self

    def children(self):
        """Pids of the master's children (the ones with threads)."""
        if self.proc is None:
            return []
        return [p for p in harness.pids_with_cmdline(self.conf)
                if p != self.proc.pid and harness.pid_alive(p) and _ppid(p) == self.proc.pid]


class Caddy(Front):
    """`caddy run --config <dir>/caddy/Caddyfile` as Debian's caddy.service
    runs it: user caddy with its groups, after the example's
    `adduser caddy www-data` (so it reaches the www-data socket), HOME for
    Caddy's data."""

    name = "caddy"

    def __init__(self, env, root=None):
        super().__init__(env, root)
        self.home = env._mkdir("caddy/home", 0o755)
        self.conf = os.path.join(self.base, "Caddyfile")
        self.pw = pwd.getpwnam(CADDY_USER)
        os.chown(self.home, self.pw.pw_uid, self.pw.pw_gid)
        os.chown(self.log_dir, self.pw.pw_uid, self.pw.pw_gid)
        self.admin_port = None

    def render(self, port, admin_port):
        with open(CADDY_EXAMPLE) as f:
            text = f.read()
        return substitute_caddyfile(text, port, admin_port, self.env.sock, self.log_dir, self.root)

    def _as_caddy(self):
        # The example's instruction, as typed (a no-op when already done):
        # caddy reaches the www-data socket through the group.
        p = subprocess.run(["adduser", CADDY_USER, harness.WORKER_USER], capture_output=True, timeout=30)
        check(p.returncode == 0, lambda: "adduser caddy www-data: exit %d: %s" % (
            p.returncode, (p.stdout + p.stderr).decode(errors="replace")))
        pw = self.pw

        def pre():
            os.initgroups(CADDY_USER, pw.pw_gid)   # what systemd's User=caddy does
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        env = harness.clean_environ()
        env.update(HOME=self.home, USER=CADDY_USER, XDG_DATA_HOME=os.path.join(self.home, "data"),
                   XDG_CONFIG_HOME=os.path.join(self.home, "config"))
        return pre, env

    def check_config(self):
        """`caddy validate` (adapts the Caddyfile and provisions every module)."""
        with open(self.conf, "w") as f:
            f.write(self.render(harness.free_port(), harness.free_port()))
        pre, env = self._as_caddy()
        p = subprocess.run(["caddy", "validate", "--config", self.conf], capture_output=True, timeout=60,
                           env=env, preexec_fn=pre, cwd=self.home)
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(p.returncode == 0 and "Valid configuration" in out,
              lambda: "caddy validate: exit %d: %s" % (p.returncode, out[-3000:]))
        return out

    def start(self):
        self.port = harness.free_port()
        self.admin_port = harness.free_port()
        with open(self.conf, "w") as f:
            f.write(self.render(self.port, self.admin_port))
        pre, env = self._as_caddy()
        self._popen(["caddy", "run", "--config", self.conf], env=env, preexec_fn=pre, cwd=self.home)
        self._wait_listening()
        return self


def _ppid(pid):
    try:
        return harness.proc_ppid(pid)
    except OSError:
        return None


def exercise(env, front, heartbeat):
    """What every front must do as shipped (env.port is the front's): a
    stream with the backend's headers at once, publishes to the right
    streams in order with event names, a 60 KiB publish whole, heartbeats,
    403 for /publish and /stats from an untrusted address (127.0.0.2),
    backend statuses passed through, and a vanished browser's stream reaped.
    Returns the reaping delay in seconds."""
    via = "via " + front.name
    a = [env.open_stream("doctor-123") for _ in range(2)]
    b = env.open_stream("appointment-42")
    s = a[0]
    eq((s.header("content-type") or "").split(";")[0], "text/event-stream", "Content-Type " + via)
    check("no-cache" in (s.header("cache-control") or ""), "Cache-Control %r %s" % (s.header("cache-control"), via))
    check(s.t_head - s.t_open < 1.0 * SLOW, "headers took %.2fs %s" % (s.t_head - s.t_open, via))

    r = env.publish("doctor-123", '{"queue":[1,2,3]}')
    eq((r.get("mode"), r.get("delivered")), ("local", 2), "publish reply " + via)
    env.publish("doctor-123", '{"now":7}', event="called")
    env.publish("appointment-42", "line1\nline2")
    env.loop.wait(lambda: all(len(x.events) >= 2 for x in a) and b.events, 5,
                  lambda: "events %s: %s" % (via, harness.diag(a + [b])))
    for x in a:
        eq([(e.type, e.data) for e in x.events], [("message", '{"queue":[1,2,3]}'), ("called", '{"now":7}')],
           "events on a doctor-123 stream " + via)
    eq([(e.type, e.data) for e in b.events], [("message", "line1\nline2")], "events on appointment-42 " + via)

    # a 60 KiB publish: several FastCGI records each way, arrives whole
    big = '{"pad":"%s"}' % ("x" * (60 * 1024 - 10))
    eq(len(big), 60 * 1024, "size of the large payload")
    eq(env.publish("appointment-42", big).get("delivered"), 1, "60 KiB publish delivered " + via)
    env.loop.wait(lambda: len(b.events) >= 2, 5, "60 KiB event " + via)
    eq(b.events[1].data, big, "60 KiB event data " + via)

    # heartbeats: comments keep arriving on an idle stream
    n = len(s.sse.comments)
    env.loop.wait(lambda: len(s.sse.comments) >= n + 2, 3 * heartbeat + 2,
                  "two heartbeat comments %s (heartbeat = %d)" % (via, heartbeat))

    # trusted addresses only: /publish and /stats answer 403 to 127.0.0.2,
    # streams do not care
    for method, path in (("POST", "/publish/doctor-123"), ("GET", "/publish/doctor-123"), ("GET", "/stats")):
        st, head, _ = request_from("127.0.0.2", env.port, method, path, b'{"x":1}' if method == "POST" else b"")
        eq(st, 403, "%s %s from 127.0.0.2 %s" % (method, path, via))
    st, head, body = request_from("127.0.0.2", env.port, "GET", "/sse/bad~name")
    eq(st, 400, "GET /sse/bad~name from 127.0.0.2 (reaches sse-fcgi) " + via)

    # the backend's statuses pass through
    for method, path, body, want in (
            ("GET", "/sse/bad~name", b"", 400), ("GET", "/sse/" + "x" * 129, b"", 400),
            ("POST", "/publish/doctor-123", b"", 400), ("POST", "/publish/doctor-123", b"\xff\xfe", 400),
            ("PUT", "/sse/doctor-123", b"x", 405), ("DELETE", "/publish/doctor-123", b"", 405),
            ("POST", "/publish/doctor-123?event=bad~event", b"x", 400)):
        ex = env.request(method, path, body)
        eq(ex.status, want, "%s %s %s" % (method, path[:40], via))
        if want == 405:
            check(ex.header("allow"), "405 for %s %s without Allow %s" % (method, path, via))
    st = env.stats()
    eq(st.get("streams"), 3, "/stats streams " + via)
    env.publish("doctor-123", "barrier")
    env.loop.wait(lambda: all(len(x.events) >= 3 for x in a), 5, "barrier " + via)
    for x in a:
        eq([e.data for e in x.events][2:], ["barrier"], "doctor-123 after the refused requests " + via)
    eq(len(b.events), 2, "appointment-42 events after the refused requests " + via)
    check(not any(x.complete for x in a + [b]), "a stream ended " + via)

    # disconnect cleanup: a browser that leaves is reaped from the backend
    # within a few heartbeats (the front notices at its next write to it)
    x = a.pop()
    x.close()
    dt = wait_streams(env, "doctor-123", 1, 4 * heartbeat + 5)
    eq(env.stats().get("streams"), 2, "/stats streams after one client left " + via)
    env.publish("doctor-123", "after")
    env.loop.wait(lambda: a[0].events[-1].data == "after", 5, "event after the reap " + via)
    return dt
