"""Refused requests: bad input, authentication, limits.  After each group the
open streams must have received nothing extra."""

import struct

from harness import (FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_STDIN, check, eq, fcgi_nv,
                     fcgi_params, fcgi_record, pid_alive, test)
from test_basics import barrier


BAD_RESOURCES = ["a/b", "a%20b", "a%2Fb", "", "x" * 129, "a$b", "a!b", "a+b", "caf%C3%A9",
                 "a@b", "a,b", "..%2F..", "a/../b", "%41"]


@test("bad_requests", loops=(None, "select"))
def bad_requests(env):
    env.start({"heartbeat": 30, "max_message_bytes": 1000})
    watch = [env.open_stream("watch") for _ in range(2)]
    other = env.open_stream("other")
    for r in BAD_RESOURCES:
        ex = env.request("GET", "/sse/" + r)
        eq(ex.status, 400, "GET /sse/%s" % r)
        ex = env.request("POST", "/publish/" + r, b'{"x":1}')
        eq(ex.status, 400, "POST /publish/%s" % r)
    for ev in ("", "a%20b", "a/b", "a%0Aevent:%20x", "x" * 129, "a$b"):
        ex = env.request("POST", "/publish/watch?event=" + ev, b'{"x":1}')
        eq(ex.status, 400, "POST /publish/watch?event=%s" % ev[:40])
    bad_bodies = [
        ("empty", b""),
        ("overlong /", b'{"a":"\xc0\xaf"}'),
        ("overlong NUL", b"\xc0\x80"),
        ("overlong 3-byte", b"\xe0\x80\xaf"),
        ("surrogate", b'{"a":"\xed\xa0\x80"}'),
        ("low surrogate", b"\xed\xbf\xbf"),
        ("truncated", b'{"a":"\xe2\x82"}'),
        ("truncated at end", b"abc\xe2\x82"),
        ("lone continuation", b"\x80abc"),
        ("0xff", b"a\xffb"),
        ("over U+10FFFF", b"\xf4\x90\x80\x80"),
        ("5-byte", b"\xf8\x88\x80\x80\x80"),
    ]
    for name, body in bad_bodies:
        ex = env.request("POST", "/publish/watch", body, {"Content-Type": "application/json"})
        eq(ex.status, 400, "POST /publish/watch with %s body" % name)
    ex = env.request("POST", "/publish/watch", b"x" * 1001)
    eq(ex.status, 413, "POST of 1001 bytes with max_message_bytes 1000")
    ex = env.request("POST", "/publish/watch", b"x" * 50000)
    eq(ex.status, 413, "POST of 50000 bytes with max_message_bytes 1000")
    ok = env.publish("other", b"y" * 1000)  # exactly the limit
    eq(ok.get("delivered"), 1, "1000-byte publish delivered")
    st = env.stats()
    eq(st.get("streams"), 3, "streams after refused requests")
    barrier(env, "watch", watch)
    barrier(env, "other", [other], ["y" * 1000])


@test("publish_token")
def publish_token(env):
    token = "s3cret-token-0123456789abcdef"
    env.start({"heartbeat": 30, "publish_token": token})
    watch = [env.open_stream("watch")]  # streams need no token
    for name, headers in (("no Authorization", {}),
                          ("wrong token", {"Authorization": "Bearer nope"}),
                          ("token prefix", {"Authorization": "Bearer " + token[:-1]}),
                          ("token plus", {"Authorization": "Bearer " + token + "x"}),
                          ("Basic scheme", {"Authorization": "Basic " + token}),
                          ("bare token", {"Authorization": token})):
        ex = env.request("POST", "/publish/watch", b'{"a":1}', headers)
        eq(ex.status, 401, "POST /publish/watch with %s" % name)
    r = env.publish("watch", "first", token=token)
    eq(r.get("delivered"), 1, "publish with the right token")
    env.loop.wait(lambda: len(watch[0].events) == 1, 5, "the authorised event")
    barrier_tok(env, watch, token)


def barrier_tok(env, watch, token):
    r = env.publish("watch", "last", token=token)
    eq(r.get("delivered"), 1, "barrier delivered")
    env.loop.wait(lambda: len(watch[0].events) >= 2, 5, "barrier event")
    eq([e.data for e in watch[0].events], ["first", "last"], "events under publish_token")


@test("limit_per_resource")
def limit_per_resource(env):
    env.start({"heartbeat": 30, "max_streams_per_resource": 3, "max_streams": 100})
    held = [env.open_stream("doctor-1") for _ in range(3)]
    for _ in range(2):
        ex = env.request("GET", "/sse/doctor-1")
        eq(ex.status, 429, "4th stream on doctor-1 (max_streams_per_resource 3)")
        check(ex.header("retry-after"), "429 without Retry-After")
        check(ex.header("retry-after").strip().isdigit(), "Retry-After %r" % ex.header("retry-after"))
    other = env.open_stream("doctor-2")  # another resource is unaffected
    eq(env.request("GET", "/publish/doctor-1").json().get("streams"), 3, "streams on doctor-1")
    barrier(env, "doctor-1", held)
    barrier(env, "doctor-2", [other])
    # freeing one makes room again (the backend notices the close)
    held[0].close()
    env.loop.wait(lambda: env.request("GET", "/publish/doctor-1").json().get("streams") == 2, 5,
                  "doctor-1 stream count to drop to 2")
    env.open_stream("doctor-1")


@test("limit_total", loops=(None, "select"))
def limit_total(env):
    env.start({"heartbeat": 30, "max_streams": 5, "max_streams_per_resource": 100})
    held = [env.open_stream("r%d" % (i % 2)) for i in range(5)]
    for r in ("r0", "r9"):
        ex = env.request("GET", "/sse/" + r)
        eq(ex.status, 503, "6th stream (max_streams 5) on %s" % r)
        check((ex.header("retry-after") or "").strip().isdigit(), "503 Retry-After %r" % ex.header("retry-after"))
    # publishing and stats still work at the ceiling
    eq(env.stats().get("streams"), 5, "stats streams at the ceiling")
    barrier(env, "r0", held[0::2])
    barrier(env, "r1", held[1::2])


def _fcgi_head(begin=None, params=None, begin_pad=0, end_pad=0):
    """A raw FastCGI request for GET /sse/watch, with one part replaced."""
    if begin is None:
        begin = struct.pack(">HB5x", 1, 0)
    if params is None:
        params = fcgi_params("GET", "/sse/watch")

    def rec(rtype, content, pad):
        return struct.pack(">BBHHBB", 1, rtype, 1, len(content), pad, 0) + content + b"\0" * pad
    return (rec(FCGI_BEGIN_REQUEST, begin, begin_pad) + fcgi_record(FCGI_PARAMS, params)
            + rec(FCGI_PARAMS, b"", end_pad) + fcgi_record(FCGI_STDIN, b""))


# What a FastCGI peer may send that libfcgi must never be handed: it refuses these
# (and closes the file it reads from itself), misreads them, or, for lengths adding up
# past INT_MAX (CVE-2025-23016's shape), aborts the whole process in Debian 12's build.
BAD_FCGI_HEADS = [
    ("BEGIN_REQUEST body of 16 bytes", _fcgi_head(begin=struct.pack(">HB13x", 1, 0))),
    ("unknown role", _fcgi_head(begin=struct.pack(">HB5x", 7, 0))),
    ("AUTHORIZER role", _fcgi_head(begin=struct.pack(">HB5x", 2, 0))),
    ("padded BEGIN_REQUEST", _fcgi_head(begin_pad=8)),
    ("padded end of PARAMS", _fcgi_head(end_pad=8)),
    ("value cut short", _fcgi_head(params=fcgi_params("GET", "/sse/watch")[:-3])),
    ("4-byte length cut", _fcgi_head(params=fcgi_params("GET", "/sse/watch") + b"\x8b\x00")),
    ("lengths past INT_MAX", _fcgi_head(params=fcgi_nv("REQUEST_METHOD", "GET")
                                       + b"\xff\xff\xff\xff\xc0\x00\x00\x00" + b"A" * 64)),
    ("name holding '='", _fcgi_head(params=fcgi_nv("REQUEST_METHOD=GET", "x")
                                    + fcgi_params("GET", "/sse/watch"))),
]


@test("bad_fcgi_heads")
def bad_fcgi_heads(env):
    """Each malformed request head straight on the FastCGI socket: that peer is closed
    without an answer, the streams already open get nothing extra, the process lives on
    (and under SANITIZE=1 says nothing)."""
    env.start({"heartbeat": 30})
    watch = [env.open_stream("watch") for _ in range(2)]
    pid = env.pid
    for name, raw in BAD_FCGI_HEADS:
        ex = env.fcgi("GET", "/sse/watch", raw=raw, timeout=5)
        check(ex.complete and ex.eof, "%s: connection not closed" % name)
        check(ex.status is None and not ex.clean_end,
              "%s: answered %s instead of being closed" % (name, ex.status))
        check(pid_alive(pid), "%s: the backend died" % name)
    eq(env.stats().get("streams"), 2, "streams after the malformed heads")
    barrier(env, "watch", watch)
    log = env.log_text()
    check(log.count("malformed FastCGI request") >= len(BAD_FCGI_HEADS),
          "want one 'malformed FastCGI request' log line per bad head")
    # a well-formed request on the same socket still works
    ok = env.fcgi("GET", "/stats")
    eq(ok.status, 200, "GET /stats over FastCGI after the malformed heads")
