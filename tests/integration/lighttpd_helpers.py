"""lighttpd pieces for the integration tests (stdlib only): the documented
substitution of the shipped examples/lighttpd/*.conf, a lighttpd of the
test's own (`lighttpd -D`, its own session, stopped by pid), the sse-fcgi
process that lighttpd spawns itself (bin-path), and a client bound to another
loopback source address.

Every process is started by the test and stopped by pid; every wait is a
deadline-bounded predicate (harness.Loop.wait)."""

import os
import re
import signal
import socket
import subprocess
import time

import harness
from harness import SLOW, check, fail

EXAMPLES = os.path.join(harness.REPO, "examples", "lighttpd")
SPAWN_CONF = os.path.join(EXAMPLES, "lighttpd-spawn-fcgi.conf")
BINPATH_CONF = os.path.join(EXAMPLES, "lighttpd-bin-path.conf")
SHIPPED_BIN = "/usr/local/sbin/sse-fcgi"
SHIPPED_CONF = "/etc/sse-fcgi/sse-fcgi.conf"

# Left in a code line after substitution, any of these means the example has
# a system path (or the shipped port) the substitution does not know about.
_SYSTEM = re.compile(r"((?<![\w.-])(/run/|/var/log/|/var/lib/|/var/cache/|/etc/sse-fcgi/|"
                     r"/usr/local/sbin/)|\b8080\b)")


def substitute_lighttpd_conf(text, name, port, sock, log_dir, pid_file, temp_dir,
                             binary=None, conf=None):
    """THE documented substitution for examples/lighttpd/*.conf
    (tests/integration/README.md): only server.port, the FastCGI "socket",
    the log paths, the pid path, the temp (upload) paths and, for bin-path,
    the binary and its -c file change.  Each rule must match and nothing may
    point at a system path afterwards."""
    rules = [
        ("server.port", r'(?m)^(\s*server\.port\s*=\s*)8080\s*$', r"\g<1>%d" % port),
        ("FastCGI socket", r'("socket"\s*=>\s*")/run/(?:sse-fcgi|lighttpd)/sse-fcgi\.sock(")',
         r"\g<1>%s\2" % sock),
        ("log paths", r"/var/log/lighttpd/", log_dir.rstrip("/") + "/"),
        ("pid path", r'(?m)^(\s*server\.pid-file\s*=\s*")/run/lighttpd\.pid(")', r"\g<1>%s\2" % pid_file),
        ("temp paths", r"/var/cache/lighttpd/", temp_dir.rstrip("/") + "/"),
    ]
    if binary is not None:
        rules.append(("bin-path binary", r'("bin-path"\s*=>\s*")%s ' % re.escape(SHIPPED_BIN),
                      r"\g<1>%s " % binary))
        rules.append(("bin-path -c file", r'("bin-path"\s*=>\s*"[^"]* -c )%s(")' % re.escape(SHIPPED_CONF),
                      r"\g<1>%s\2" % conf))
    for what, pat, rep in rules:
        text, n = re.subn(pat, lambda m, rep=rep: m.expand(rep), text)
        if n == 0:
            fail("examples/lighttpd/%s: substitution for %s matched nothing" % (name, what))
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if _SYSTEM.search(code):
            fail("examples/lighttpd/%s: system path left after substitution: %r" % (name, line.strip()))
    return text


def example_spawn_line():
    """The spawn-fcgi command line quoted in lighttpd-spawn-fcgi.conf's
    header comment (without the leading '#   ')."""
    with open(SPAWN_CONF) as f:
        for line in f:
            s = line.lstrip("#").strip()
            if s.startswith("spawn-fcgi -"):
                return s
    fail("examples/lighttpd/lighttpd-spawn-fcgi.conf quotes no spawn-fcgi command line")


class Lighttpd:
    """One lighttpd from a shipped example, in env's directory tree:

        <dir>/lighttpd/lighttpd.conf   the substituted example
        <dir>/lighttpd/log/            error.log, access.log, lighttpd.stdout
        <dir>/lighttpd/tmp/            upload dir (www-data's)
        <dir>/run/lighttpd.pid
        <dir>/run/lighttpd/            bin-path socket dir (www-data's)

    way "spawn": connects to env.sock (the backend comes from env.start_backend).
    way "bin-path": lighttpd spawns $SSE_FCGI_BIN -c env.conf_path itself; its
    socket is <dir>/run/lighttpd/sse-fcgi.sock-0 and env.sock points there once
    started, so env.fcgi() talks to the spawned process directly."""

    def __init__(self, env, way):
        self.env, self.way = env, way
        self.example = SPAWN_CONF if way == "spawn" else BINPATH_CONF
        self.base = env._mkdir("lighttpd", 0o755)
        self.log_dir = env._mkdir("lighttpd/log", 0o755, own=True)   # opened as www-data
        self.tmp_dir = env._mkdir("lighttpd/tmp", 0o755, own=True)
        env._mkdir("lighttpd/tmp/uploads", 0o755, own=True)
        self.sock_dir = env._mkdir("run/lighttpd", 0o750, own=True)
        self.pid_file = os.path.join(env.run_dir, "lighttpd.pid")
        self.conf = os.path.join(self.base, "lighttpd.conf")
        self.proc = None
        self.port = None
        self.backend = []     # pids of sse-fcgi processes lighttpd spawned (bin-path)

    def render(self, port):
        with open(self.example) as f:
            text = f.read()
        name = os.path.basename(self.example)
        if self.way == "spawn":
            return substitute_lighttpd_conf(text, name, port, self.env.sock, self.log_dir,
                                            self.pid_file, self.tmp_dir)
        return substitute_lighttpd_conf(text, name, port, os.path.join(self.sock_dir, "sse-fcgi.sock"),
                                        self.log_dir, self.pid_file, self.tmp_dir,
                                        harness.BIN, self.env.conf_path)

    def check_config(self):
        """`lighttpd -tt` (loads the modules too) on the substituted file."""
        with open(self.conf, "w") as f:
            f.write(self.render(18080))
        p = subprocess.run(["lighttpd", "-tt", "-f", self.conf], capture_output=True, timeout=20)
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(p.returncode == 0, lambda: "lighttpd -tt on %s: exit %d: %s" % (self.example, p.returncode, out))
        return out

    def start(self, conf=None):
        """Write the backend config (bin-path: lighttpd's child reads it) and
        start lighttpd in the foreground, in its own session."""
        env = self.env
        if self.way == "bin-path":
            env.write_conf(conf)
        self.port = harness.free_port()
        with open(self.conf, "w") as f:
            f.write(self.render(self.port))
        out = open(os.path.join(self.log_dir, "lighttpd.stdout"), "w")
        # lighttpd hands its environment on to a bin-path child: the sanitizer
        # options reach sse-fcgi this way.
        self.proc = subprocess.Popen(["lighttpd", "-D", "-f", self.conf], stdout=out,
                                     stderr=subprocess.STDOUT, env=env.backend_env(),
                                     start_new_session=True)
        out.close()
        env.port = self.port

        def listening():
            if self.proc.poll() is not None:
                fail("lighttpd exited %s: %s" % (self.proc.returncode, self.log()))
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        env.loop.wait(listening, 10, lambda: "lighttpd listening on %d: %s" % (self.port, self.log()))
        if self.way == "bin-path":
            env.sock = os.path.join(self.sock_dir, "sse-fcgi.sock-0")
            env.loop.wait(lambda: self.spawned(), 10,
                          lambda: "lighttpd to spawn sse-fcgi: %s\n%s" % (self.log(), env.log_tail()))
            env.wait_backend_ready()
        return self

    def spawned(self):
        """Pids of lighttpd's children running $SSE_FCGI_BIN (bin-path)."""
        pids = [p for p in harness.pids_with_cmdline(self.env.conf_path)
                if harness.pid_alive(p) and _ppid(p) == self.proc.pid]
        for p in pids:
            if p not in self.backend:
                self.backend.append(p)
        return pids

    def log(self):
        out = ""
        for n in ("lighttpd.stdout", "error.log"):
            try:
                with open(os.path.join(self.log_dir, n), errors="replace") as f:
                    out += f.read()[-2000:]
            except OSError:
                pass
        return out

    def stop(self):
        """SIGTERM lighttpd (which SIGTERMs its bin-path children), wait for
        it and for every sse-fcgi it spawned.  Returns a list of problems:
        a bin-path sse-fcgi must leave by itself, logging "sse-fcgi stopped"
        (its exit status is lighttpd's to reap, so the log line stands in
        for the harness's exit-0 check)."""
        problems = []
        if self.proc is None:
            return problems
        if self.way == "bin-path" and self.proc.poll() is None:
            self.spawned()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                problems.append("lighttpd did not stop within %.0fs of SIGTERM" % (10 * SLOW))
        # the spawned sse-fcgi shares lighttpd's process group: give it its
        # time to leave (LeakSanitizer runs at exit) before the group is killed
        status = {pid: harness.wait_pid_exit(pid, 10) for pid in self.backend}
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            problems.append("lighttpd survived SIGKILL")
        for pid in self.backend:
            st = status[pid]
            if st is None:
                problems.append("bin-path sse-fcgi pid %d outlived lighttpd by 10 s" % pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                harness.wait_pid_exit(pid, 5)
            elif st not in (-1, 0):
                problems.append("bin-path sse-fcgi pid %d: %s" % (pid, harness.describe_status(st)))
            elif "sse-fcgi[%d] notice: sse-fcgi stopped" % pid not in self.env.log_text():
                problems.append("bin-path sse-fcgi pid %d left without logging 'sse-fcgi stopped'; "
                                "log tail:\n%s" % (pid, self.env.log_tail()))
        self.proc = None
        return problems


def _ppid(pid):
    try:
        return harness.proc_ppid(pid)
    except OSError:
        return None


def request_from(source, port, method, path, body=b"", timeout=5, dest=None):
    """One request (Connection: close) from a chosen loopback source address
    to 127.0.0.1:port (or dest, an (address, port) pair); returns (status,
    head text, body).  Blocking with a socket timeout: only for quick
    non-stream answers."""
    s = socket.socket()
    s.settimeout(timeout * SLOW)
    try:
        s.bind((source, 0))
        s.connect(dest or ("127.0.0.1", port))
        req = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (
            method, path, len(body))
        s.sendall(req.encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else None
    return status, head.decode("latin-1"), rest


def wait_streams(env, resource, want, timeout, via_fcgi=False):
    """Wait until GET /publish/<resource> reports `want` streams; returns the
    seconds it took.  Polls through the front (or FastCGI), each poll a real
    request answered by the backend."""
    t0 = time.monotonic()
    last = {"t": 0.0}

    def ok():
        if time.monotonic() - last["t"] < 0.1:   # the loop keeps pumping meanwhile
            return False
        last["t"] = time.monotonic()
        ex = env.fcgi("GET", "/publish/" + resource) if via_fcgi else env.request("GET", "/publish/" + resource)
        if ex.status != 200:
            fail("GET /publish/%s: %s %r" % (resource, ex.status, bytes(ex.body)[:200]))
        last["n"] = ex.json().get("streams")
        return last["n"] == want
    env.loop.wait(ok, timeout, lambda: "%d stream(s) on %s (backend reports %r)" % (
        want, resource, last.get("n")))
    return time.monotonic() - t0
