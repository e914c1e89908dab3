"""FastCGI kept connections (FCGI_KEEP_CONN): one connection carries request
after request; a refused request, a request without the flag and a peer that
leaves mid-request all behave."""

import socket
import struct

from harness import (FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT,
                     check, eq, fcgi_params, fcgi_record, test)
from test_basics import barrier

FCGI_KEEP_CONN = 1


def request_bytes(method, uri, body=b"", keep=True, reqid=1):
    if isinstance(body, str):
        body = body.encode()
    out = fcgi_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, FCGI_KEEP_CONN if keep else 0), reqid)
    out += fcgi_record(FCGI_PARAMS, fcgi_params(method, uri, len(body)), reqid)
    out += fcgi_record(FCGI_PARAMS, b"", reqid)
    if body:
        out += fcgi_record(FCGI_STDIN, body, reqid)
    out += fcgi_record(FCGI_STDIN, b"", reqid)
    return out


class Kept:
    """One FastCGI connection of our own to the backend, read without blocking
    from inside env.loop.wait (the test's streams keep being served)."""

    def __init__(self, env):
        self.env = env
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(env.sock)
        self.s.setblocking(False)
        self.buf = b""
        self.eof = False

    def _pump(self):
        while not self.eof:
            try:
                d = self.s.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                d = b""
            if not d:
                self.eof = True
                return
            self.buf += d

    def _record(self):
        """(type, reqid, content) of the first whole record in buf, or None."""
        if len(self.buf) < 8:
            return None
        _, rtype, reqid, clen, pad, _ = struct.unpack(">BBHHBB", self.buf[:8])
        if len(self.buf) < 8 + clen + pad:
            return None
        rec = (rtype, reqid, self.buf[8:8 + clen])
        self.buf = self.buf[8 + clen + pad:]
        return rec

    def ask(self, raw, what):
        """Sends raw and returns (stdout bytes, app status) once END_REQUEST came."""
        try:
            self.s.sendall(raw)
        except OSError as e:
            check(False, "%s: the backend closed the connection before it (%s)" % (what, e))
        out, done = [b""], []

        def answered():
            self._pump()
            while True:
                rec = self._record()
                if rec is None:
                    return bool(done) or self.eof
                if rec[0] == FCGI_STDOUT:
                    out[0] += rec[2]
                elif rec[0] == FCGI_END_REQUEST:
                    done.append(struct.unpack(">I", rec[2][:4])[0])
                    return True
        self.env.loop.wait(answered, 5, "the answer to " + what)
        check(done, lambda: "%s: connection closed without END_REQUEST (got %r)" % (what, out[0][:200]))
        check(self.buf == b"", lambda: "%s: bytes after END_REQUEST: %r" % (what, self.buf[:100]))
        return out[0], done[0]

    def wait_closed(self, what):
        self.env.loop.wait(lambda: self._pump() or self.eof, 5, what)

    def is_open(self):
        self._pump()
        return not self.eof

    def close(self):
        self.s.close()


def status_of(stdout):
    head = stdout.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"status:"):
            return int(line.split()[1])
    return 200


@test("keep_conn_raw")
def keep_conn_raw(env):
    env.start({"heartbeat": 30, "max_message_bytes": 1000})
    watch = [env.open_stream("kc") for _ in range(2)]
    k = Kept(env)
    sent = []
    for i in range(40):
        body = '{"n":%d}' % i
        out, app = k.ask(request_bytes("POST", "/publish/kc", body, reqid=1 + i % 3), "publish %d" % i)
        eq(status_of(out), 200, "publish %d on a kept connection" % i)
        check(b'"delivered":2' in out, lambda: "publish %d: %r" % (i, out[-200:]))
        sent.append(body)
    check(k.is_open(), "the kept connection was closed after 40 publishes")
    env.loop.wait(lambda: all(len(s.events) == 40 for s in watch), 5, "40 events on both streams")
    for s in watch:
        eq([e.data for e in s.events], sent, "events, in order, on a stream")
    # refused requests answer and keep the connection: a bad resource, a body that is
    # not UTF-8, one over max_message_bytes, an unknown route
    for what, method, uri, body, want in (
            ("bad resource", "POST", "/publish/a%20b", b'{"x":1}', 400),
            ("bad UTF-8", "POST", "/publish/kc", b"a\xffb", 400),
            ("too large", "POST", "/publish/kc", b"x" * 1500, 413),
            ("unknown route", "GET", "/nothing", b"", 404)):
        out, _ = k.ask(request_bytes(method, uri, body), what)
        eq(status_of(out), want, what + " on a kept connection")
        check(k.is_open(), "the kept connection was closed after " + what)
    out, _ = k.ask(request_bytes("POST", "/publish/kc", "after"), "publish after the refusals")
    eq(status_of(out), 200, "publish after the refusals")
    # without the flag the request is answered and the connection ends
    out, _ = k.ask(request_bytes("POST", "/publish/kc", "last", keep=False), "publish without KEEP_CONN")
    eq(status_of(out), 200, "publish without KEEP_CONN")
    k.wait_closed("the backend to close a connection whose request did not ask to keep it")
    k.close()
    # peers that leave: right after a whole request, and halfway through one
    for cut in (None, 30):
        g = Kept(env)
        raw = request_bytes("POST", "/publish/kc", "gone")
        g.s.sendall(raw if cut is None else raw[:cut])
        g.close()
    # a kept connection the peer closes while idle
    idle = Kept(env)
    idle.ask(request_bytes("POST", "/publish/kc", "idle"), "publish before going idle")
    idle.close()
    env.loop.wait(lambda: env.stats()["streams"] == 2, 5, "the backend to count only the 2 streams")
    env.loop.wait(lambda: all(any(e.data == "idle" for e in s.events) for s in watch), 5, "'idle' on both streams")
    got = [e.data for e in watch[0].events]
    # the whole request of the peer that left may have been served before its EOF
    check(got[:42] == sent + ["after", "last"] and sorted(got[42:]) in (["idle"], ["gone", "idle"]),
          lambda: "events on a stream: %r" % got[40:])
    barrier(env, "kc", watch, got)
