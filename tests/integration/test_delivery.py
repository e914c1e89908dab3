"""Publishing: who receives what, SSE framing, event names, order, size."""

import random
import re

from harness import check, eq, fail, test
from test_basics import barrier

LOOPS = (None, "select")


@test("delivery", loops=LOOPS)
def delivery(env):
    env.start({"heartbeat": 30})
    res = ["doctor-123", "appointment-42", "queue-7-2026-11-27"]
    streams = {r: [env.open_stream(r) for _ in range(3)] for r in res}
    for r in res:
        got = env.request("GET", "/publish/" + r)
        eq(got.status, 200, "GET /publish/%s" % r)
        eq(got.json().get("streams"), 3, "GET /publish/%s streams" % r)
    st = env.stats()
    for k in ("pid", "mode", "streams", "resources", "messages_in", "messages_out", "dropped_slow",
              "redis_reconnects", "fallbacks", "uptime"):
        check(k in st, "GET /stats lacks %r: %r" % (k, st))
    eq(st["pid"], env.pid, "stats pid")
    eq(st["mode"], "local", "stats mode")
    eq(st["streams"], 9, "stats streams")
    eq(st["resources"], 3, "stats resources")
    eq(st["dropped_slow"], 0, "stats dropped_slow")
    m_in = st["messages_in"]
    payload = '{"type":"queue_update","queuePosition":5,"estimatedWait":15}'
    r = env.publish("doctor-123", payload)
    eq(r.get("mode"), "local", "publish mode")
    eq(r.get("delivered"), 3, "publish delivered")
    eq(r.get("fallback"), False, "publish fallback")
    env.loop.wait(lambda: all(len(s.events) == 1 for s in streams["doctor-123"]), 5, "the event on 3 doctor-123 streams")
    for s in streams["doctor-123"]:
        eq((s.events[0].type, s.events[0].data), ("message", payload), "event on doctor-123")
    # the others got nothing: a later publish to them arrives first
    barrier(env, "appointment-42", streams["appointment-42"])
    barrier(env, "queue-7-2026-11-27", streams["queue-7-2026-11-27"])
    barrier(env, "doctor-123", streams["doctor-123"], [payload])
    # nobody listening: delivered 0, still 200
    r = env.publish("nobody-here", "x")
    eq(r.get("delivered"), 0, "publish to a resource without streams")
    st = env.stats()
    check(st["messages_in"] >= m_in + 5, "messages_in %r did not count 5 publishes (was %r)" % (st["messages_in"], m_in))
    eq(st["streams"], 9, "stats streams after publishing")


FRAMING = [
    ("plain", "hello", "hello"),
    ("injection", "a\n\nevent: evil\ndata: x", "a\n\nevent: evil\ndata: x"),
    ("crlf", "one\r\ntwo\r\nthree", "one\ntwo\nthree"),
    ("cr", "one\rtwo\rthree", "one\ntwo\nthree"),
    ("mixed", "a\r\n\rb\n\r\nc", "a\n\nb\n\nc"),
    ("trailing-lf", "end\n", "end\n"),
    ("leading-lf", "\nstart", "\nstart"),
    ("field-lookalikes", "retry: 1\nid: 7\n: comment", "retry: 1\nid: 7\n: comment"),
    ("utf8", "caf\u00e9 \u20ac \U0001F600 \u65e5\u672c", "caf\u00e9 \u20ac \U0001F600 \u65e5\u672c"),
    ("json", '{"a":[1,2,{"b":"c\\nd"}],"e":null}', '{"a":[1,2,{"b":"c\\nd"}],"e":null}'),
    ("spaces", "  two leading spaces", "  two leading spaces"),
    ("colon-start", ":not a comment", ":not a comment"),
]


@test("framing", loops=LOOPS)
def framing(env):
    env.start({"heartbeat": 30})
    streams = [env.open_stream("frames") for _ in range(2)]
    for i, (name, payload, want) in enumerate(FRAMING):
        r = env.publish("frames", payload.encode("utf-8"))
        eq(r.get("delivered"), 2, "delivered (%s)" % name)
        env.loop.wait(lambda: all(len(s.events) > i for s in streams), 5, "event %d (%s)" % (i, name))
        for s in streams:
            ev = s.events[i]
            eq((ev.type, ev.data), ("message", want), "event for payload %r (%s)" % (payload, name))
    for s in streams:
        eq(len(s.events), len(FRAMING), "number of events (an injection made extra ones?)")
        check(not s.sse.unknown, "unexpected field lines: %r" % s.sse.unknown[:5])
        # one id per event (history is on by default), strictly increasing
        eq(len(s.sse.ids), len(FRAMING), "id: lines")
        seqs = [int(e.id.rsplit("-", 1)[1]) for e in s.events]
        check(all(a < b for a, b in zip(seqs, seqs[1:])), "ids not increasing: %r" % seqs)
        eq(len(set(e.id.rsplit("-", 1)[0] for e in s.events)), 1, "one epoch")
        eq(len(s.sse.retries), 1, "retry: lines (a payload line became a field?)")
        eq(s.sse.undispatched, 0, "events without data")
        # on the wire every line inside the stream is a known field or a comment
        for line in re.split(rb"\r\n|\r|\n", bytes(s.sse.raw)):
            check(line == b"" or line.startswith((b"data:", b"event:", b"id:", b"retry:", b":")),
                  "unexpected line on the wire: %r" % line[:80])
        check(b"event: evil" not in bytes(s.sse.raw).replace(b"data: event: evil", b""),
              "injected event: line on the wire")
        # the payload's "id: 7" stays data; the real ids are <epoch>-<seq> (an epoch
        # may itself start with 7, so compare whole lines)
        check(b"id: 7" not in re.split(rb"\r\n|\r|\n", bytes(s.sse.raw)), "injected id: line on the wire")


@test("event_name", loops=LOOPS)
def event_name(env):
    env.start({"heartbeat": 30})
    s = env.open_stream("doctor-9")
    names = ["queue_update", "status.change:v2-A", "x" * 128]
    for n in names:
        env.publish("doctor-9", '{"n":"%s"}' % n[:10], event=n)
    env.publish("doctor-9", "plain")
    env.loop.wait(lambda: len(s.events) == 4, 5, "4 events")
    eq([e.type for e in s.events], names + ["message"], "event types")
    eq([e.data for e in s.events], ['{"n":"%s"}' % n[:10] for n in names] + ["plain"], "event data")
    check(re.search(rb"(^|\n)event: queue_update\r?\nid: [0-9a-z]+-[0-9]+\r?\ndata: ", bytes(s.sse.raw)),
          "event: line must precede the data: lines: %r" % bytes(s.sse.raw)[:200])


@test("ordering", loops=LOOPS)
def ordering(env):
    env.start({"heartbeat": 30})
    streams = [env.open_stream("ordered") for _ in range(3)]
    n = 100
    for i in range(n):
        r = env.publish("ordered", '{"seq":%d}' % i)
        eq(r.get("delivered"), 3, "delivered of publish %d" % i)
    env.loop.wait(lambda: all(len(s.events) >= n for s in streams), 10, "100 events on 3 streams")
    for s in streams:
        eq([e.data for e in s.events], ['{"seq":%d}' % i for i in range(n)], "events in publish order")


def _big_payload(size, seed, lines=False):
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \u00e9\u20ac\U0001F600{}[]:,\"'\\"
    out = []
    n = 0
    while n < size:
        c = rnd.choice(alphabet)
        if lines and rnd.random() < 0.02:
            c = "\n"
        b = len(c.encode("utf-8"))
        if n + b > size:
            c, b = "x", 1
        out.append(c)
        n += b
    return "".join(out)


@test("large_publish", loops=LOOPS)
def large_publish(env):
    env.start({"heartbeat": 30, "max_message_bytes": 65536})
    streams = [env.open_stream("bulk") for _ in range(2)]
    cases = [_big_payload(60 * 1024, 1), _big_payload(60 * 1024, 2, lines=True),
             _big_payload(65536, 3), "\n".join("line %d" % i for i in range(3000))]
    for i, p in enumerate(cases):
        eq(len(p.encode()) <= 65536, True, "payload size")
        r = env.publish("bulk", p.encode("utf-8"))
        eq(r.get("delivered"), 2, "delivered of a %d-byte publish" % len(p.encode()))
        env.loop.wait(lambda: all(len(s.events) > i for s in streams), 10, "%d-byte event" % len(p.encode()))
        for s in streams:
            got = s.events[i].data
            if got != p:
                k = next((j for j in range(min(len(got), len(p))) if got[j] != p[j]), min(len(got), len(p)))
                fail("%d-byte payload altered: lengths %d/%d, first difference at %d: %r vs %r" % (
                    len(p.encode()), len(got), len(p), k, got[k:k + 30], p[k:k + 30]))
