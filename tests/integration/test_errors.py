"""Refused requests: bad input, authentication, limits.  After each group the
open streams must have received nothing extra."""

from harness import check, eq, test
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
