"""Redis pieces for the integration tests (stdlib only): a redis-server of the
test's own on a loopback port, a raw RESP pub/sub client that is pumped from a
Loop.wait predicate, a Redis that accepts and never answers, and a TCP relay
that can go deaf towards the subscriber connection.

Every process is started by the test and stopped by pid; every wait is a
deadline-bounded predicate (harness.Loop.wait)."""

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import check, fail


def redis_conf(port, **kw):
    """The redis section for a backend config pointing at 127.0.0.1:port."""
    d = {"host": "127.0.0.1", "port": port}
    d.update(kw)
    return {"redis": d}


class RedisServer:
    """redis-server --port P --save '' --appendonly no --daemonize no."""

    def __init__(self, env, port=None, password=None, unixsocket=None):
        self.env = env
        self.port = port or harness.free_port()
        self.password = password
        self.unixsocket = unixsocket
        self.proc = None
        self.log = os.path.join(env.dir, "redis-%d.log" % self.port)

    def start(self, timeout=10, wait=True):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        if self.unixsocket:
            argv += ["--unixsocket", self.unixsocket, "--unixsocketperm", "777"]
        out = open(self.log, "a")
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.env.dir)
        out.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10):
        self.env.loop.wait(lambda: self._ready(), timeout, lambda: "redis-server on %d to answer PING: %s" % (
            self.port, self.tail()))

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def _ready(self):
        if self.proc.poll() is not None:
            fail("redis-server exited %s: %s" % (self.proc.returncode, self.tail()))
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
        except OSError:
            return False
        try:
            cmd = b"PING\r\n" if not self.password else b"AUTH %s\r\nPING\r\n" % self.password.encode()
            s.sendall(cmd)
            data = b""
            while b"PONG" not in data:
                chunk = s.recv(100)
                if not chunk:
                    return False
                data += chunk
            return True
        except OSError:
            return False
        finally:
            s.close()

    def cli(self, *args):
        argv = ["redis-cli", "-p", str(self.port)]
        if self.password:
            argv += ["--no-auth-warning", "-a", self.password]
        p = subprocess.run(argv + list(args), capture_output=True, timeout=10)
        return p.stdout.decode(errors="replace").strip()

    def shutdown(self):
        """`redis-cli shutdown nosave`, then reap the pid."""
        self.cli("shutdown", "nosave")
        self.wait_exit()

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.wait_exit()

    def wait_exit(self, timeout=10):
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout * harness.SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.kill(signal.SIGKILL)


class RespSub:
    """A raw RESP subscriber (PSUBSCRIBE), non-blocking: call poll() (from a
    Loop.wait predicate) to read what arrived; .messages is a list of
    (channel, payload) bytes pairs, in arrival order."""

    def __init__(self, port, *patterns, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        cmd = b""
        if password:
            cmd += self._cmd(b"AUTH", password.encode())
        cmd += self._cmd(b"PSUBSCRIBE", *[p.encode() for p in patterns])
        self.sock.sendall(cmd)
        self.sock.setblocking(False)
        self.buf = b""
        self.messages = []
        self.confirmed = 0

    @staticmethod
    def _cmd(*args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    def _parse(self, i):
        """One RESP value at i: (value, next index) or None if incomplete."""
        end = self.buf.find(b"\r\n", i)
        if end < 0:
            return None
        t, line = self.buf[i:i + 1], self.buf[i + 1:end]
        if t in (b"+", b"-", b":"):
            return (line if t != b":" else int(line)), end + 2
        if t == b"$":
            n = int(line)
            if n < 0:
                return None, end + 2
            if len(self.buf) < end + 2 + n + 2:
                return None
            return self.buf[end + 2:end + 2 + n], end + 2 + n + 2
        if t == b"*":
            n, j, out = int(line), end + 2, []
            for _ in range(n):
                r = self._parse(j)
                if r is None:
                    return None
                out.append(r[0])
                j = r[1]
            return out, j
        raise ValueError("bad RESP %r" % self.buf[i:i + 20])

    def poll(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            self.buf += data
        while True:
            r = self._parse(0)
            if r is None:
                break
            v, j = r
            self.buf = self.buf[j:]
            if isinstance(v, list) and v and v[0] == b"pmessage":
                self.messages.append((v[2], v[3]))
            elif isinstance(v, list) and v and v[0] == b"psubscribe":
                self.confirmed += 1
        return self

    def close(self):
        self.sock.close()


class SilentRedis:
    """Accepts connections and reads forever, never answers (a hung Redis)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conns = []
        while not self.stopping:
            r, _, _ = select.select([self.lsock] + conns, [], [], 0.1)
            for s in r:
                if s is self.lsock:
                    c, _ = s.accept()
                    conns.append(c)
                    self.accepted += 1
                else:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        conns.remove(s)
                        s.close()
        for c in conns:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.lsock.close()


class Relay:
    """TCP relay 127.0.0.1:port -> Redis. deafen() stops forwarding Redis's bytes
    to every connection that has sent PSUBSCRIBE so far (the subscriber goes
    deaf, its TCP connection stays up); later connections are relayed normally.
    split_after_meta() makes the next sse-fcgi meta record that Redis sends a
    subscriber arrive alone: the bytes after it (its payload) are held until
    release(), so a test can act between the two. mute_publishers() swallows
    Redis's answers to every sse-fcgi publisher connection (named by its CLIENT
    SETNAME), so the publisher never gets ready while the subscriber does.
    hold_subscribers() holds everything Redis sends the subscribers from then
    on (their PSUBSCRIBE confirmations too) until release();
    release_confirmations() lets the confirmations through and holds on.
    sent_to_subscribers() is what the relay has handed the subscribers so far
    (the last 64 KiB): once a payload is in it, it is in sse-fcgi's socket.
    hold_publishers() holds what Redis answers the publishers (Redis has run the
    commands) until release_publishers(); publisher_held() is what waits."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.pairs = {}      # sock -> peer
        self.client = set()  # the sse-fcgi side of each pair
        self.subscribers = set()
        self.deaf = set()
        self.dropped = 0     # bytes swallowed
        self.split = False   # hold what follows the next meta record
        self.held = None     # (subscriber socket, bytes held) once split
        self.publishers = set()
        self.mute = False    # swallow what Redis answers the publishers
        self.hold_all = False
        self.hold_pub = False
        self.pub_held = []   # (publisher socket, bytes)
        self.to_subs = bytearray()
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def deafen(self):
        with self.lock:
            self.deaf |= self.subscribers
            return len(self.deaf)

    def split_after_meta(self):
        with self.lock:
            self.split, self.held = True, None

    def mute_publishers(self):
        with self.lock:
            self.mute = True

    def hold_subscribers(self):
        with self.lock:
            self.hold_all, self.held = True, None

    def hold_publishers(self):
        with self.lock:
            self.hold_pub = True

    def publisher_held(self):
        with self.lock:
            return b"".join(d for _, d in self.pub_held)

    def release_publishers(self):
        """Send what Redis answered the publishers meanwhile, in order; stop holding."""
        with self.lock:
            held, self.pub_held, self.hold_pub = self.pub_held, [], False
            for sock, data in held:
                try:
                    sock.sendall(data)
                except OSError:
                    pass
        return sum(len(d) for _, d in held)

    def held_bytes(self):
        with self.lock:
            return self.held[1] if self.held else b""

    def sent_to_subscribers(self):
        with self.lock:
            return bytes(self.to_subs)

    def holding(self):
        with self.lock:
            return self.held is not None

    def release_confirmations(self):
        """Send what was held up to its first message (the PSUBSCRIBE confirmations
        before it), hold the rest and what follows; returns the size sent."""
        with self.lock:
            sock, data = self.held or (None, b"")
            i = data.find(b"*4\r\n$8\r\npmessage\r\n")
            i = len(data) if i < 0 else i
            if sock is not None:
                self.held = (sock, data[i:])
        if sock is not None and i > 0:
            try:
                sock.sendall(data[:i])
            except OSError:
                return 0
        return i

    def release(self):
        """Send what was held; returns its size."""
        with self.lock:
            sock, data = self.held or (None, b"")
            self.held, self.split, self.hold_all = None, False, False
        if sock is not None and data:
            try:
                sock.sendall(data)
            except OSError:
                return 0
        return len(data)

    def _split(self, peer, data):
        """Bytes to forward now; the rest is held (called under the lock)."""
        if self.held is not None:
            if self.held[0] is peer:
                self.held = (peer, self.held[1] + data)
                return b""
            return data
        i = data.find(b"__sse-fcgi__:meta:")
        if i < 0:
            return data
        j = data.find(b"*4\r\n$8\r\npmessage\r\n", i)
        if j < 0:
            j = len(data)
        self.held = (peer, data[j:])
        return data[:j]

    def _close(self, s):
        p = self.pairs.pop(s, None)
        self.client.discard(s)
        self.subscribers.discard(s)
        self.publishers.discard(s)
        s.close()
        if p is not None:
            self.pairs.pop(p, None)
            self.client.discard(p)
            self.subscribers.discard(p)
            self.publishers.discard(p)
            p.close()

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.lsock] + list(self.pairs), [], [], 0.1)
            for s in r:
                if s is self.lsock:
                    c, _ = s.accept()
                    try:
                        u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                    except OSError:
                        c.close()
                        continue
                    self.pairs[c] = u
                    self.pairs[u] = c
                    self.client.add(c)
                    continue
                if s not in self.pairs:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close(s)
                    continue
                peer = self.pairs[s]
                with self.lock:
                    if s in self.client and b"PSUBSCRIBE" in data.upper():
                        self.subscribers.add(s)
                    if s in self.client and b"sse-fcgi:publisher:" in data:
                        self.publishers.add(s)
                    if s not in self.client and (peer in self.deaf or (self.mute and peer in self.publishers)):
                        self.dropped += len(data)
                        continue
                    if s not in self.client and peer in self.publishers and self.hold_pub:
                        self.pub_held.append((peer, data))
                        continue
                    if s not in self.client and peer in self.subscribers and self.hold_all:
                        held = self.held[1] if self.held else b""
                        self.held = (peer, held + data)
                        continue
                    if s not in self.client and peer in self.subscribers and self.split:
                        data = self._split(peer, data)
                        if not data:
                            continue
                try:
                    peer.sendall(data)
                except OSError:
                    self._close(s)
                    continue
                if s not in self.client and peer in self.subscribers:
                    with self.lock:   # recorded once it is in sse-fcgi's socket
                        self.to_subs += data
                        del self.to_subs[:-65536]
        for s in list(self.pairs):
            s.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.lsock.close()


def client_list(rs):
    """CLIENT LIST as a list of {field: value} dicts, one per connection."""
    out = []
    for line in rs.cli("CLIENT", "LIST").splitlines():
        out.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
    return out


def kill_clients(rs, name_prefix):
    """CLIENT KILL ID every connection whose CLIENT SETNAME name starts with
    name_prefix; returns how many Redis says it killed."""
    n = 0
    for c in client_list(rs):
        if c.get("name", "").startswith(name_prefix):
            out = rs.cli("CLIENT", "KILL", "ID", c["id"])
            n += int(out) if out.isdigit() else 0
    return n


ORIGIN_LINE = re.compile(r"sse-fcgi\[(\d+)\] \w+: SSE: Redis at \S+, channels \S+, origin ([0-9a-z]+)")


def origins(env):
    """{pid: origin} from each process's start-up line."""
    return {int(m.group(1)): m.group(2) for m in ORIGIN_LINE.finditer(env.log_text())}


def stats_by_pid(env, want_pids, tries=200):
    """GET /stats over the FastCGI socket until every pid in want_pids has
    answered at least once (the accepting process is the kernel's choice).
    Returns {pid: stats} with the latest answer of each."""
    seen = {}
    for _ in range(tries):
        ex = env.fcgi("GET", "/stats")
        check(ex.status == 200, lambda: "fcgi GET /stats: %s %s" % (ex.status, ex.error))
        st = ex.json()
        seen[st["pid"]] = st
        if all(p in seen for p in want_pids):
            return seen
    fail("GET /stats never answered by pids %r (seen %r)" % (
        sorted(set(want_pids) - set(seen)), sorted(seen)))


MODE_LINES = re.compile(r"sse-fcgi\[(\d+)\] \w+: SSE: Redis (Pub/Sub enabled|connection closed|connection failed)")


def log_modes(env):
    """{pid: "redis"|"local"} from each process's last mode line in the log
    (/stats only reaches whichever process accepts, usually the same one)."""
    modes = {}
    for m in MODE_LINES.finditer(env.log_text()):
        modes[int(m.group(1))] = "redis" if m.group(2) == "Pub/Sub enabled" else "local"
    return modes


def wait_mode(env, mode, timeout, pids=None):
    """Wait until every backend process (default: all of env's) is in mode,
    judged from the log and confirmed by /stats for the process that answers;
    returns the seconds it took."""
    pids = pids or env.backend_pids
    t0 = time.monotonic()
    last = {}

    def ok():
        modes = log_modes(env)
        if not all(modes.get(p, "local") == mode for p in pids):
            return False
        st = env.fcgi("GET", "/stats").json()
        last["stats"] = (st["pid"], st["mode"])
        return st["mode"] == mode
    env.loop.wait(ok, timeout, lambda: "mode %r on pids %r (log says %r, /stats %r); log tail:\n%s" % (
        mode, pids, log_modes(env), last.get("stats"), env.log_tail(25)))
    return time.monotonic() - t0


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z sse-fcgi\[(\d+)\] \w+: SSE: Redis "
                      r"(Pub/Sub enabled|connection closed|connection failed)", re.M)


def redis_intervals(env, pid, now=None):
    """[(start, end)] wall-clock seconds during which pid was in multi-server
    mode, from its log (millisecond resolution)."""
    import calendar
    out, start = [], None
    for m in LOG_TIME.finditer(env.log_text()):
        if int(m.group(2)) != pid:
            continue
        t = calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + int(m.group(1)[20:]) / 1000.0
        if m.group(3) == "Pub/Sub enabled":
            if start is None:
                start = t
        elif start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, now or time.time() + 3600))
    return out


def covered(intervals, t0, t1):
    return any(a <= t0 and t1 <= b for a, b in intervals)


BROADCAST = re.compile(r"sse-fcgi\[(\d+)\] debug: Local broadcast to (\S+): (\d+) success")


def broadcast_counts(env, resource):
    """{pid: streams reached by the last local broadcast to resource}."""
    out = {}
    for m in BROADCAST.finditer(env.log_text()):
        if m.group(2) == resource:
            out[int(m.group(1))] = int(m.group(3))
    return out


class World:
    """Extra things a test starts (Redis servers, a second sse-fcgi "server",
    relays), stopped by close() in reverse order; problems of the second
    server's teardown fail the test."""

    def __init__(self, env):
        self.env = env
        self.cleanups = []
        self.problems = []

    def redis(self, port=None, password=None, start=True, unixsocket=None):
        r = RedisServer(self.env, port, password, unixsocket)
        self.cleanups.append(r.stop)
        return r.start() if start else r

    def second_env(self, suffix):
        e = harness.Env(self.env.name + "-" + suffix, os.path.dirname(self.env.dir),
                        self.env.event_loop)
        e.loop.sel.close()
        e.loop = self.env.loop   # one loop pumps every client of the test
        self.cleanups.append(lambda: self.problems.extend(
            "[%s] %s" % (suffix, p) for p in e.teardown()))
        return e

    def add(self, obj):
        self.cleanups.append(obj.stop)
        return obj

    def close(self, check_problems=True):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as ex:  # keep stopping the rest
                self.problems.append("cleanup: %r" % ex)
        if self.problems and check_problems:
            fail("\n".join(self.problems))


def with_world(fn):
    """Decorator: fn(env, world); the world is closed after fn, and its own
    problems fail the test only when fn itself did not fail."""
    def wrapper(env):
        w = World(env)
        try:
            fn(env, w)
        except BaseException:
            w.close(check_problems=False)
            raise
        w.close()
    wrapper.__name__ = fn.__name__
    return wrapper
