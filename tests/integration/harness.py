"""Integration harness for sse-fcgi: real nginx, real spawn-fcgi, raw clients.

Everything a test touches lives in its own directory with its own ports and
sockets, and every process it starts is stopped by pid at teardown.  No test
sleeps to synchronise: every wait is `Loop.wait(predicate, timeout, what)`,
which pumps all client sockets until the predicate holds or fails the test
with `what` in the message.

Pieces (stdlib only):
  SSEParser   - the browser's EventSource parsing rules (CR, LF, CRLF;
                comments; data/event/retry fields), with arrival times.
  Exchange    - one non-blocking HTTP/1.1 request/response over TCP (chunked,
                Content-Length or close-delimited body) or one FastCGI request
                over the Unix socket, optionally feeding an SSEParser.
  Loop        - a selectors loop holding thousands of exchanges.
  Env         - one test's world: temp dir, backend via spawn-fcgi, nginx from
                examples/nginx/nginx.conf after `substitute_nginx_conf`.
"""

import ctypes
import errno
import json
import os
import pwd
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
NGINX_EXAMPLE = os.path.join(REPO, "examples", "nginx", "nginx.conf")
SPAWN_EXAMPLE = os.path.join(REPO, "examples", "nginx", "spawn-fcgi.sh")
NGINX_FASTCGI_PARAMS = "/etc/nginx/fastcgi_params"
BIN = os.path.abspath(os.environ.get("SSE_FCGI_BIN") or os.path.join(REPO, "sse-fcgi"))
SANITIZE = os.environ.get("SANITIZE", "0") == "1"
# SSE_FCGI_VALGRIND=1: spawn-fcgi starts the backend under valgrind (make valgrind)
VALGRIND = os.environ.get("SSE_FCGI_VALGRIND", "0") == "1"
VALGRIND_ARGV = [shutil.which("valgrind") or "/usr/bin/valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                 "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                 "--log-file=%q{SSE_SAN_DIR}/valgrind.%p"]
# Deadlines stretch under ASan/UBSan and valgrind; they are ceilings, never waits.
SLOW = 10.0 if VALGRIND else 3.0 if SANITIZE else 1.0
WORKER_USER = "www-data"  # as shipped in both examples

CRASH_SIGNS = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
    r"Segmentation fault|stack smashing|double free|free\(\): invalid|corrupted ")


class TestFailure(AssertionError):
    pass


class TestSkip(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        fail(msg() if callable(msg) else msg)


def eq(got, want, what):
    if got != want:
        fail("%s: expected %r, got %r" % (what, want, got))


# ---------------------------------------------------------------- registry

TESTS = []  # (name, function, event_loop or None)
# Ceilings (seconds, before SLOW) for tests that need more than run.py's 90 s:
# a hung test still fails, the suite goes on.
TEST_LIMITS = {}


def test(name, loops=(None,)):
    """Register `fn(env)`; loops=(None, "select") adds a `name[select]` variant
    whose backend config sets event_loop = "select"."""
    def deco(fn):
        for lp in loops:
            TESTS.append((name if lp is None else "%s[%s]" % (name, lp), fn, lp))
        return fn
    return deco


# ---------------------------------------------------------------- processes

def become_subreaper():
    """Orphans (the sse-fcgi children once spawn-fcgi exits) get reparented to
    us, so we can waitpid() them and see their exit status."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


def proc_status_field(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    rest = st[st.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def proc_fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    return int(st[st.rindex(")") + 2:].split()[1])


def pids_with_cmdline(fragment):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if fragment.encode() in cmd and int(d) != os.getpid():
            out.append(int(d))
    return out


def describe_status(st):
    if os.WIFEXITED(st):
        return "exit %d" % os.WEXITSTATUS(st)
    if os.WIFSIGNALED(st):
        return "killed by signal %d" % os.WTERMSIG(st)
    return "status %r" % st


def wait_pid_exit(pid, timeout):
    """Wait (readiness on a pidfd, no polling sleep) until pid exits.
    Returns the wait status when pid is our child (subreaper), -1 when it
    exited but is not ours, None on timeout."""
    deadline = time.monotonic() + timeout
    pfd = None
    try:
        pfd = os.pidfd_open(pid)
    except OSError:
        pfd = None
    try:
        while True:
            try:
                got, st = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    return st
            except ChildProcessError:
                if not pid_alive(pid):
                    return -1
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if pfd is not None:
                sel = selectors.DefaultSelector()
                sel.register(pfd, selectors.EVENT_READ)
                sel.select(min(left, 1.0))
                sel.close()
            else:
                selectors.DefaultSelector().select(min(left, 0.01))
    finally:
        if pfd is not None:
            os.close(pfd)


def reap_zombies():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---------------------------------------------------------------- SSE parsing

class Event:
    __slots__ = ("type", "data", "t", "id")

    def __init__(self, type_, data, t, id_=None):
        self.type, self.data, self.t, self.id = type_, data, t, id_

    def __repr__(self):
        d = self.data if len(self.data) < 80 else self.data[:60] + "...(%d)" % len(self.data)
        return "Event(%s, %r)" % (self.type, d)


_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEParser:
    """EventSource parsing (HTML Living Standard, 9.2.6): lines end in CRLF,
    LF or CR; ':' starts a comment; a blank line dispatches."""

    def __init__(self, keep_raw=True):
        self.keep_raw = keep_raw
        self.raw = bytearray()
        self.nbytes = 0
        self.events = []
        self.comments = []      # (t, text)
        self.retries = []       # (t, int)
        self.ids = []
        self.last_id = None     # the browser's lastEventId: kept across events
        self.unknown = []       # lines with other fields
        self.undispatched = 0   # event: without data, dropped by browsers
        self._buf = b""
        self._skip_lf = False
        self._data = None
        self._event = None

    def feed(self, data, t):
        if not data:
            return
        self.nbytes += len(data)
        if self.keep_raw:
            self.raw += data
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buf = self._buf + data if self._buf else data
        start = 0
        while True:
            m = _LINE_END.search(buf, start)
            if m is None:
                break
            if m.group() == b"\r" and m.end() == len(buf):
                self._skip_lf = True
            self._line(buf[start:m.start()], t)
            start = m.end()
        self._buf = buf[start:]

    def _line(self, line, t):
        if not line:
            if self._data is not None:
                data = b"\n".join(self._data).decode("utf-8", "replace")
                self.events.append(Event(self._event or "message", data, t, self.last_id))
            elif self._event is not None:
                self.undispatched += 1
            self._data = None
            self._event = None
            return
        if line[:1] == b":":
            self.comments.append((t, line[1:].decode("utf-8", "replace")))
            return
        name, colon, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = []
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self.retries.append((t, int(value)))
            else:
                self.unknown.append(line)
        elif name == b"id":
            self.ids.append(value)
            if b"\0" not in value:
                self.last_id = value.decode("utf-8", "replace")
        else:
            self.unknown.append(line)


# ---------------------------------------------------------------- FastCGI

FCGI_BEGIN_REQUEST, FCGI_ABORT_REQUEST, FCGI_END_REQUEST = 1, 2, 3
FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 4, 5, 6, 7


def fcgi_record(rtype, content, reqid=1):
    out = b""
    # content over 65535 bytes goes in several records
    pos = 0
    while True:
        part = content[pos:pos + 65535]
        pad = (-len(part)) % 8
        out += struct.pack(">BBHHBB", 1, rtype, reqid, len(part), pad, 0) + part + b"\0" * pad
        pos += len(part)
        if pos >= len(content):
            return out


def fcgi_nv(name, value):
    def ln(n):
        return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode() if isinstance(value, str) else value
    return ln(len(name)) + ln(len(value)) + name + value


def fcgi_params(method, uri, body_len=0, headers=None):
    path, _, query = uri.partition("?")
    params = [
        ("QUERY_STRING", query), ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", "application/json" if body_len else ""),
        ("CONTENT_LENGTH", str(body_len) if body_len else ""),
        ("SCRIPT_NAME", path), ("REQUEST_URI", uri), ("DOCUMENT_URI", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"), ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"), ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", "80"),
        ("SERVER_NAME", "_"), ("REDIRECT_STATUS", "200"), ("HTTP_HOST", "localhost"),
    ]
    for k, v in (headers or {}).items():
        params.append(("HTTP_" + k.upper().replace("-", "_"), v))
    return b"".join(fcgi_nv(k, v) for k, v in params)


def fcgi_request_bytes(method, uri, body=b"", headers=None):
    out = fcgi_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 0))
    out += fcgi_record(FCGI_PARAMS, fcgi_params(method, uri, len(body), headers))
    out += fcgi_record(FCGI_PARAMS, b"")
    pos = 0
    while pos < len(body):
        out += fcgi_record(FCGI_STDIN, body[pos:pos + 16384])
        pos += 16384
    out += fcgi_record(FCGI_STDIN, b"")
    return out


# ---------------------------------------------------------------- exchanges

class Exchange:
    """One request and its response, driven by a Loop.

    kind "http": HTTP/1.1 over TCP; kind "fcgi": FastCGI over a Unix socket.
    After the head: status (int), headers {lower-name: [values]}.  The body
    goes to .body, or to .sse (an SSEParser) for streams.  complete is set at
    the body's end; clean_end tells a proper end (last chunk, full length,
    FastCGI END_REQUEST) from a dropped connection; eof when the peer closed."""

    def __init__(self, loop, kind, addr, request, sse=False, read=True,
                 rcvbuf=None, head_only=False, label="", keep_raw=True):
        self.loop, self.kind, self.label = loop, kind, label
        self.head_only = head_only
        self.status = None
        self.reason = ""
        self.headers = {}
        self.body = bytearray()
        self.sse = SSEParser(keep_raw) if sse else None
        self.complete = self.clean_end = self.eof = False
        self.error = None
        self.t_open = time.monotonic()
        self.t_head = self.t_end = None
        self.fcgi_stderr = b""
        self.app_status = None
        self._in = bytearray()
        self._state = "head"
        self._remaining = None
        self._cgi_head = bytearray()
        self._out = bytearray(request)
        self._read = read
        fam = socket.AF_UNIX if kind == "fcgi" else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setblocking(False)
        rc = self.sock.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.error = "connect: %s" % os.strerror(rc)
            self.sock.close()
            self.sock = None
            self.complete = True
            return
        self._registered = False
        self._update()

    # -- loop plumbing
    def _mask(self):
        m = 0
        if self._out:
            m |= selectors.EVENT_WRITE
        if self._read:
            m |= selectors.EVENT_READ
        return m

    def _update(self):
        if self.sock is None:
            return
        m = self._mask()
        if m and not self._registered:
            self.loop.sel.register(self.sock, m, self)
            self._registered = True
        elif m and self._registered:
            self.loop.sel.modify(self.sock, m, self)
        elif not m and self._registered:
            self.loop.sel.unregister(self.sock)
            self._registered = False

    def fileno(self):
        return self.sock.fileno()

    def send_more(self, data):
        self._out += data
        self._update()

    def set_reading(self, on):
        self._read = on
        self._update()

    def close(self):
        if self.sock is not None:
            if self._registered:
                self.loop.sel.unregister(self.sock)
                self._registered = False
            self.sock.close()
            self.sock = None
        self.loop.exchanges.discard(self)

    def on_event(self, mask):
        if mask & selectors.EVENT_WRITE and self._out:
            try:
                n = self.sock.send(self._out)
                del self._out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._fail("send: %s" % e)
                return
            if not self._out:
                self._update()
        if mask & selectors.EVENT_READ and self.sock is not None:
            try:
                data = self.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._fail("recv: %s" % e)
                return
            now = time.monotonic()
            if not data:
                self.eof = True
                self._finish(now, clean=(self._state == "close"))
                return
            self._in += data
            self._parse(now)

    def _fail(self, msg):
        self.error = msg
        self.eof = True
        self._finish(time.monotonic(), clean=False)

    def _finish(self, now, clean):
        if not self.complete:
            self.complete = True
            self.clean_end = clean
            self.t_end = now
        self.close()

    # -- parsing
    def _body(self, data, now):
        if not data:
            return
        if self.sse is not None:
            self.sse.feed(bytes(data), now)
        else:
            self.body += data

    def _head(self, raw, now):
        lines = raw.decode("latin-1").split("\r\n")
        if self.kind == "http":
            parts = lines[0].split(" ", 2)
            self.status = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            lines = lines[1:]
        for line in lines:
            if not line:
                continue
            k, _, v = line.partition(":")
            self.headers.setdefault(k.strip().lower(), []).append(v.strip())
        if self.kind == "fcgi":
            st = self.header("status")
            self.status = int(st.split()[0]) if st else 200
            self.reason = st.split(" ", 1)[1] if st and " " in st else ""
        self.t_head = now

    def _parse(self, now):
        if self.kind == "fcgi":
            return self._parse_fcgi(now)
        buf = self._in
        while True:
            if self._state == "head":
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                self._head(bytes(buf[:i]), now)
                del buf[:i + 4]
                te = (self.header("transfer-encoding") or "").lower()
                cl = self.header("content-length")
                if self.head_only or self.status in (204, 304) or 100 <= self.status < 200:
                    self._finish(now, clean=True)
                    return
                if "chunked" in te:
                    self._state = "size"
                elif cl is not None:
                    self._remaining = int(cl)
                    self._state = "length"
                    if self._remaining == 0:
                        self._finish(now, clean=True)
                        return
                else:
                    self._state = "close"
            elif self._state == "size":
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                size = int(bytes(buf[:i]).split(b";")[0], 16)
                del buf[:i + 2]
                if size == 0:
                    self._state = "trailer"
                else:
                    self._remaining = size
                    self._state = "chunk"
            elif self._state == "chunk":
                if not buf:
                    return
                n = min(len(buf), self._remaining)
                self._body(buf[:n], now)
                del buf[:n]
                self._remaining -= n
                if self._remaining == 0:
                    self._state = "chunk-crlf"
            elif self._state == "chunk-crlf":
                if len(buf) < 2:
                    return
                if bytes(buf[:2]) != b"\r\n":
                    self._fail("bad chunk framing: %r" % bytes(buf[:20]))
                    return
                del buf[:2]
                self._state = "size"
            elif self._state == "trailer":
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                line = bytes(buf[:i])
                del buf[:i + 2]
                if not line:
                    self._finish(now, clean=True)
                    return
            elif self._state == "length":
                n = min(len(buf), self._remaining)
                self._body(buf[:n], now)
                del buf[:n]
                self._remaining -= n
                if self._remaining == 0:
                    self._finish(now, clean=True)
                return
            elif self._state == "close":
                self._body(buf, now)
                del buf[:]
                return
            else:
                return

    def _parse_fcgi(self, now):
        buf = self._in
        while len(buf) >= 8:
            ver, rtype, reqid, clen, pad, _ = struct.unpack(">BBHHBB", bytes(buf[:8]))
            if len(buf) < 8 + clen + pad:
                return
            content = bytes(buf[8:8 + clen])
            del buf[:8 + clen + pad]
            if rtype == FCGI_STDOUT:
                if self._state == "head":
                    self._cgi_head += content
                    i = self._cgi_head.find(b"\r\n\r\n")
                    j = self._cgi_head.find(b"\n\n")
                    if i >= 0 or j >= 0:
                        if i >= 0 and (j < 0 or i < j):
                            head, rest = self._cgi_head[:i], self._cgi_head[i + 4:]
                        else:
                            head, rest = self._cgi_head[:j], self._cgi_head[j + 2:]
                        self._head(bytes(head).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), now)
                        self._state = "body"
                        self._body(rest, now)
                else:
                    self._body(content, now)
            elif rtype == FCGI_STDERR:
                self.fcgi_stderr += content
            elif rtype == FCGI_END_REQUEST:
                self.app_status = struct.unpack(">I", content[:4])[0] if len(content) >= 4 else None
                self._finish(now, clean=True)
                return

    # -- conveniences
    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def json(self):
        try:
            return json.loads(bytes(self.body).decode("utf-8"))
        except ValueError:
            fail("%s: response is not JSON: %r" % (self.label, bytes(self.body)[:300]))

    @property
    def events(self):
        return self.sse.events

    def diag(self):
        """One line on what this stream saw, for failure messages."""
        if self.sse is None:
            return "%s status=%s error=%s" % (self.label, self.status, self.error)
        p = self.sse
        out = "%s status=%s events=%d comments=%d complete=%s error=%s" % (
            self.label, self.status, len(p.events), len(p.comments), self.complete, self.error)
        if p.unknown:
            out += " MALFORMED LINES %r" % [l[:60] for l in p.unknown[:3]]
        if p.keep_raw:
            out += " raw tail %r" % bytes(p.raw[-120:])
        return out


def diag(streams):
    bad = [s for s in streams if s.sse is not None and s.sse.unknown]
    return "; ".join(s.diag() for s in (bad or list(streams))[:2])

    def __repr__(self):
        return "<%s %s status=%s>" % (self.kind, self.label, self.status)


class Loop:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.exchanges = set()
        # Any stream receiving a line that is no SSE field fails the test at
        # the next wait: no test expects one.
        self.strict = True

    def add(self, ex):
        self.exchanges.add(ex)
        return ex

    def pump(self, timeout):
        for key, mask in self.sel.select(max(timeout, 0)):
            key.data.on_event(mask)

    def wait(self, pred, timeout, what):
        """Pump every socket until pred() is true; fail after timeout*SLOW."""
        limit = timeout * SLOW
        deadline = time.monotonic() + limit
        while True:
            if self.strict:
                bad = [ex for ex in self.exchanges if ex.sse is not None and ex.sse.unknown]
                if bad:
                    fail("%d stream(s) received malformed SSE lines (neither data:, event:, retry:, id: "
                         "nor a comment) while waiting for %s; e.g. %s" % (
                             len(bad), what() if callable(what) else what, bad[0].diag()))
            if pred():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                msg = "timed out after %.1fs waiting for %s" % (limit, what() if callable(what) else what)
                bad = [ex for ex in self.exchanges if ex.sse is not None and ex.sse.unknown]
                if bad and "MALFORMED" not in msg:
                    msg += "\n(%d stream(s) got malformed lines, e.g. %s)" % (len(bad), bad[0].diag())
                fail(msg)
            self.pump(min(left, 0.05))

    def run_for(self, seconds):
        """Keep every socket serviced for a measured period (a measurement
        window, not a synchronisation)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.pump(min(left, 0.05))

    def close_all(self):
        for ex in list(self.exchanges):
            ex.close()
        self.sel.close()
        self.sel = selectors.DefaultSelector()


# ---------------------------------------------------------------- configs

def substitute_nginx_conf(text, port, sock, log_dir, pid_file, temp_dir, shipped_socket=False):
    """THE documented substitution (tests/integration/README.md): the shipped
    examples/nginx/nginx.conf changes only in its listen port, FastCGI socket,
    log paths, pid path and temp paths.  Each rule must match, and nothing may
    point at a system path afterwards."""
    rules = [
        ("listen port", r"(?m)^(\s*listen\s+127\.0\.0\.1:)8080(\s*;)", r"\g<1>%d\2" % port),
        ("FastCGI socket", r"unix:/run/sse-fcgi/sse-fcgi\.sock", "unix:" + sock),
        ("log paths", r"/var/log/nginx/", log_dir.rstrip("/") + "/"),
        ("pid path", r"(?m)^(\s*pid\s+)/run/nginx\.pid(\s*;)", r"\g<1>%s\2" % pid_file),
        ("temp paths", r"/var/lib/nginx/", temp_dir.rstrip("/") + "/"),
    ]
    for what, pat, rep in rules:
        text, n = re.subn(pat, lambda m, rep=rep: m.expand(rep), text)
        if n == 0:
            fail("examples/nginx/nginx.conf: substitution for %s matched nothing" % what)
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if shipped_socket:   # a test of the installed layout keeps the documented socket
            code = code.replace("unix:" + sock, "")
        if re.search(r"(?<![\w.-])(/run/|/var/log/|/var/lib/)", code):
            fail("examples/nginx/nginx.conf: system path left after substitution: %r" % line.strip())
        # Every listen directive is the substituted one (the port may be 8080 itself).
        if re.match(r"\s*listen\s", code) and not re.match(r"\s*listen\s+127\.0\.0\.1:%d\s*;" % port, code):
            fail("examples/nginx/nginx.conf: listen directive left after substitution: %r" % line.strip())
    return text


def spawn_fcgi_argv(sock, pid_file, procs, conf):
    """The `spawn-fcgi ...` line of examples/nginx/spawn-fcgi.sh with the
    socket, pid file, -F count, binary and config path substituted; user,
    group and socket mode stay as shipped."""
    with open(SPAWN_EXAMPLE) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("spawn-fcgi ")]
    if not lines:
        fail("examples/nginx/spawn-fcgi.sh: no spawn-fcgi command line")
    argv = shlex.split(lines[0])
    done = set()

    def put(i, value, what):
        if i >= len(argv):
            fail("examples/nginx/spawn-fcgi.sh: %s has no value" % what)
        argv[i] = value
        done.add(what)

    dd = argv.index("--") if "--" in argv else fail("spawn-fcgi.sh: no -- before the program")
    for i, a in enumerate(argv[:dd]):
        if a == "-s":
            put(i + 1, sock, "-s")
        elif a == "-P":
            put(i + 1, pid_file, "-P")
        elif a == "-F":
            put(i + 1, str(procs), "-F")
    put(dd + 1, BIN, "program")
    for i in range(dd + 2, len(argv)):
        if argv[i] == "-c":
            put(i + 1, conf, "-c")
    for need in ("-s", "-P", "-F", "program", "-c"):
        if need not in done:
            fail("examples/nginx/spawn-fcgi.sh: spawn-fcgi line lacks %s" % need)
    if VALGRIND:
        argv[dd + 1:dd + 1] = VALGRIND_ARGV
    return argv


def render_conf(d, indent=""):
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append("%s%s {" % (indent, k))
            out.append(render_conf(v, indent + "    "))
            out.append("%s}" % indent)
        elif isinstance(v, bool):
            out.append("%s%s = %s" % (indent, k, "true" if v else "false"))
        elif isinstance(v, int):
            out.append("%s%s = %d" % (indent, k, v))
        else:
            out.append('%s%s = "%s"' % (indent, k, str(v).replace("\\", "\\\\").replace('"', '\\"')))
    return "\n".join(out) + ("\n" if not indent else "")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sanitizer_env(san_dir):
    env = {"SSE_SAN_DIR": san_dir}
    if SANITIZE:
        env["ASAN_OPTIONS"] = "log_path=%s/asan:detect_leaks=1:abort_on_error=0" % san_dir
        env["UBSAN_OPTIONS"] = "log_path=%s/ubsan:print_stacktrace=1:halt_on_error=1" % san_dir
    return env


def clean_environ():
    env = dict(os.environ)
    for k in ("SSE_FCGI_CONF", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB",
              "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        env.pop(k, None)
    return env


# ---------------------------------------------------------------- test world

class Env:
    def __init__(self, name, root, event_loop=None):
        self.name = name
        self.event_loop = event_loop
        self.dir = os.path.join(root, re.sub(r"[^A-Za-z0-9_.-]", "_", name))
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)  # nginx workers (www-data) reach the socket
        www = pwd.getpwnam(WORKER_USER)
        self.uid, self.gid = www.pw_uid, www.pw_gid
        self.sse_dir = self._mkdir("sse", 0o755, own=True)    # backend's log
        self.san_dir = self._mkdir("san", 0o777)              # ASan/UBSan logs
        self.run_dir = self._mkdir("run", 0o755)              # sockets, pid files
        self.ngx_dir = self._mkdir("nginx", 0o755)
        self.ngx_log = self._mkdir("nginx/log", 0o755)
        self.ngx_tmp = self._mkdir("nginx/tmp", 0o755)
        self.sock = os.path.join(self.run_dir, "sse-fcgi.sock")
        self.spawn_pid = os.path.join(self.run_dir, "spawn.pid")
        self.conf_path = os.path.join(self.sse_dir, "sse-fcgi.conf")
        self.log_path = os.path.join(self.sse_dir, "sse.log")
        self.loop = Loop()
        self.port = None
        self.nginx = None
        self.backend_pids = []
        self.exit_status = {}   # pid -> wait status (or -1 when unknown)
        self.notes = []         # printed under the PASS/FAIL line

    def _mkdir(self, sub, mode, own=False):
        p = os.path.join(self.dir, sub)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        if own:
            os.chown(p, self.uid, self.gid)
        return p

    def note(self, msg):
        self.notes.append(msg)

    # -- backend
    def write_conf(self, overrides=None, path=None):
        conf = {"log_file": self.log_path, "log_level": "debug"}
        if self.event_loop:
            conf["event_loop"] = self.event_loop
        conf.update(overrides or {})
        path = path or self.conf_path
        with open(path, "w") as f:
            f.write(render_conf(conf))
        os.chmod(path, 0o644)
        return path

    def backend_env(self, extra=None):
        env = clean_environ()
        env.update(sanitizer_env(self.san_dir))
        env.update(extra or {})
        return env

    def start_backend(self, conf=None, procs=1, nofile=None, wait_ready=True):
        self.write_conf(conf)
        argv = spawn_fcgi_argv(self.sock, self.spawn_pid, procs, self.conf_path)

        def pre():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        p = subprocess.run(argv, env=self.backend_env(), capture_output=True,
                           timeout=10 * SLOW, preexec_fn=pre)
        check(p.returncode == 0, lambda: "spawn-fcgi failed (%d): %s" % (
            p.returncode, (p.stderr + p.stdout).decode(errors="replace")))
        with open(self.spawn_pid) as f:
            self.backend_pids = [int(x) for x in f.read().split()]
        eq(len(self.backend_pids), procs, "pids in spawn-fcgi -P file")
        if wait_ready:
            self.wait_backend_ready()
        return self.backend_pids

    @property
    def pid(self):
        return self.backend_pids[0]

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=15):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, pattern, timeout=5, count=1):
        rx = re.compile(pattern)
        self.loop.wait(lambda: len(rx.findall(self.log_text())) >= count, timeout,
                       lambda: "%d log line(s) matching %r in %s; log tail:\n%s" % (
                           count, pattern, self.log_path, self.log_tail()))

    def wait_backend_ready(self, timeout=10):
        """Ready = answers GET /stats over its own FastCGI socket."""
        deadline = time.monotonic() + timeout * SLOW
        last = None
        while time.monotonic() < deadline:
            for pid in self.backend_pids:
                if not pid_alive(pid):
                    fail("sse-fcgi pid %d died at start; log tail:\n%s" % (pid, self.log_tail()))
            ex = self.fcgi("GET", "/stats", timeout=None)
            try:
                self.loop.wait(lambda: ex.complete, 2, "stats")
            except TestFailure:
                ex.close()
                continue
            if ex.status == 200:
                return
            last = (ex.status, ex.error)
            # not listening yet: wait a little on the loop (deadline-bounded)
            self.loop.run_for(0.02)
        fail("sse-fcgi not ready after %.0fs (last %r); log tail:\n%s" % (timeout * SLOW, last, self.log_tail()))

    def stop_backend(self, sig=signal.SIGTERM, timeout=10):
        """Signal every backend process (sig None: only wait) and wait for
        each to exit.  Returns {pid: wait status}; -1 = exited, status unknown."""
        res = {}
        for pid in self.backend_pids:
            if pid in self.exit_status or sig is None:
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        for pid in self.backend_pids:
            if pid in self.exit_status:
                continue
            st = wait_pid_exit(pid, timeout * SLOW)
            if st is None:
                continue
            self.exit_status[pid] = st
            res[pid] = st
        return res

    # -- nginx
    def start_nginx(self, shipped_socket=False, example=NGINX_EXAMPLE, extra_rules=()):
        """nginx from examples/nginx/nginx.conf (or another shipped nginx
        example) after the documented substitution; extra_rules are (what,
        pattern, replacement) a test adds for its example, each must match."""
        self.port = free_port()
        with open(example) as f:
            text = f.read()
        for what, pat, rep in extra_rules:
            text, n = re.subn(pat, rep, text)
            check(n > 0, "%s: substitution for %s matched nothing" % (example, what))
        text = substitute_nginx_conf(text, self.port, self.sock, self.ngx_log,
                                     os.path.join(self.run_dir, "nginx.pid"), self.ngx_tmp,
                                     shipped_socket=shipped_socket)
        conf = os.path.join(self.ngx_dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(text)
        # `include fastcgi_params` resolves beside the config: Debian's stock file
        shutil.copy(NGINX_FASTCGI_PARAMS, os.path.join(self.ngx_dir, "fastcgi_params"))
        out = open(os.path.join(self.ngx_log, "nginx.stdout"), "w")
        self.nginx = subprocess.Popen(
            ["nginx", "-p", self.ngx_dir + "/", "-c", conf,
             "-e", os.path.join(self.ngx_log, "error.log"), "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 10 * SLOW
        while True:
            if self.nginx.poll() is not None:
                fail("nginx exited %s: %s" % (self.nginx.returncode, self.nginx_log()))
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", self.port))
                s.close()
                return
            except OSError:
                s.close()
            if time.monotonic() > deadline:
                fail("nginx not listening on %d after 10s: %s" % (self.port, self.nginx_log()))
            self.loop.run_for(0.01)

    def nginx_log(self):
        out = ""
        for n in ("nginx.stdout", "error.log"):
            try:
                with open(os.path.join(self.ngx_log, n), errors="replace") as f:
                    out += f.read()[-2000:]
            except OSError:
                pass
        return out

    def start(self, conf=None, procs=1, nofile=None):
        self.start_backend(conf, procs, nofile)
        self.start_nginx()

    # -- clients
    def http(self, method, path, body=b"", headers=None, sse=False, read=True,
             rcvbuf=None, keep_raw=True, label=None):
        h = {"Host": "localhost"}
        if not sse:
            h["Connection"] = "close"
        if body or method in ("POST", "PUT"):
            h["Content-Length"] = str(len(body))
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        req = ("%s %s HTTP/1.1\r\n" % (method, path)).encode("latin-1")
        req += "".join("%s: %s\r\n" % kv for kv in h.items()).encode("latin-1") + b"\r\n" + body
        return self.loop.add(Exchange(self.loop, "http", ("127.0.0.1", self.port), req, sse=sse,
                                      read=read, rcvbuf=rcvbuf, head_only=(method == "HEAD"),
                                      label=label or "%s %s" % (method, path), keep_raw=keep_raw))

    def request(self, method, path, body=b"", headers=None, timeout=5):
        ex = self.http(method, path, body, headers)
        self.loop.wait(lambda: ex.complete, timeout, "reply to %s %s" % (method, path[:80]))
        check(ex.error is None and ex.status is not None,
              lambda: "%s %s: no HTTP reply (%s)" % (method, path[:80], ex.error))
        return ex

    def fcgi(self, method, uri, body=b"", headers=None, sse=False, timeout=5, raw=None, read=True):
        req = raw if raw is not None else fcgi_request_bytes(method, uri, body, headers)
        ex = self.loop.add(Exchange(self.loop, "fcgi", self.sock, req, sse=sse, read=read,
                                    head_only=False, label="fcgi %s %s" % (method, uri[:60])))
        if timeout and not sse:
            self.loop.wait(lambda: ex.complete, timeout, "FastCGI reply to %s %s" % (method, uri))
        return ex

    def publish(self, resource, payload, event=None, token=None, expect=200, timeout=5):
        path = "/publish/" + resource + ("?event=" + event if event is not None else "")
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        ex = self.request("POST", path, payload, headers, timeout)
        if expect is not None:
            check(ex.status == expect, lambda: "POST %s: expected %d, got %s %r" % (
                path[:80], expect, ex.status, bytes(ex.body)[:200]))
        return ex.json() if ex.status == 200 else ex

    def stats(self):
        ex = self.request("GET", "/stats")
        eq(ex.status, 200, "GET /stats status")
        return ex.json()

    def stream(self, resource, query="", headers=None, read=True, rcvbuf=None, keep_raw=True):
        return self.http("GET", "/sse/" + resource + query, headers=headers, sse=True,
                         read=read, rcvbuf=rcvbuf, keep_raw=keep_raw)

    def open_stream(self, resource, query="", headers=None, timeout=5, **kw):
        """A stream that answered 200 and delivered its first retry: line."""
        s = self.stream(resource, query, headers, **kw)
        self.loop.wait(lambda: s.complete or (s.status is not None and (s.status != 200 or s.sse.retries)),
                       timeout, "stream /sse/%s to open" % resource)
        check(s.status == 200, lambda: "GET /sse/%s: expected 200, got %s (%s)" % (resource, s.status, s.error))
        check(s.sse.retries, lambda: "GET /sse/%s: stream ended before its retry: line" % resource)
        return s

    def open_streams(self, resources, max_inflight=200, timeout=30, **kw):
        """Open one stream per entry of `resources`, at most max_inflight
        waiting for their head at once (a browser crowd, not a SYN flood)."""
        pending = list(resources)
        streams = []
        pending.reverse()

        def inflight():
            return sum(1 for s in streams[-max_inflight * 2:] if s.status is None and not s.complete)

        deadline = time.monotonic() + timeout * SLOW
        while pending:
            room = max_inflight - inflight()
            for _ in range(max(room, 0)):
                if not pending:
                    break
                streams.append(self.stream(pending.pop(), **kw))
            if time.monotonic() > deadline:
                fail("opening %d streams took longer than %.0fs" % (len(resources), timeout * SLOW))
            self.loop.pump(0.05)
        self.loop.wait(lambda: all(s.complete or (s.status is not None and (s.status != 200 or s.sse.retries))
                                   for s in streams), timeout, "all streams to answer")
        return streams

    # -- teardown
    def teardown(self):
        """Stop everything by pid; return a list of problems found."""
        problems = []
        self.loop.close_all()
        alive = [p for p in self.backend_pids if p not in self.exit_status]
        if alive:
            res = self.stop_backend(signal.SIGTERM, 10)
            for pid in alive:
                if pid not in res:
                    problems.append("sse-fcgi pid %d did not exit within %.0fs of SIGTERM" % (pid, 10 * SLOW))
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    wait_pid_exit(pid, 5)
                elif res[pid] != -1 and res[pid] != 0:
                    problems.append("sse-fcgi pid %d: %s after SIGTERM (want exit 0)" % (pid, describe_status(res[pid])))
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                problems.append("nginx did not stop on SIGTERM")
        if self.nginx is not None:
            try:
                os.killpg(self.nginx.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.nginx.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids_with_cmdline(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_pid_exit(pid, 5)
        reap_zombies()
        for f in sorted(os.listdir(self.san_dir)):
            with open(os.path.join(self.san_dir, f), errors="replace") as fh:
                report = fh.read()
            if report.strip():   # valgrind --quiet leaves an empty file when clean
                problems.append("sanitizer report %s:\n%s" % (f, report[-4000:]))
        log = self.log_text()
        m = CRASH_SIGNS.search(log)
        if m:
            problems.append("crash sign %r in %s:\n%s" % (m.group(), self.log_path, log[max(0, m.start() - 300):m.start() + 1500]))
        return problems


def run_binary(args, env_dir, timeout=10, extra_env=None, cwd=None):
    """Run sse-fcgi directly (for -t, -h, --version)."""
    env = clean_environ()
    env.update(sanitizer_env(env_dir))
    env.update(extra_env or {})
    return subprocess.run([BIN] + args, env=env, capture_output=True, timeout=timeout * SLOW, cwd=cwd)
