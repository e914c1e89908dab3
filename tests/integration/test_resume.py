"""Event ids and resume in single-server mode: Last-Event-ID and ?last_event_id=,
replay within the queue bound, `event: reset` and why, the history bounds."""

import json
import time

from harness import check, eq, test


def seq(ev):
    return int(ev.id.rsplit("-", 1)[1])


def epoch(ev):
    return ev.id.rsplit("-", 1)[0]


def publish_all(env, resource, payloads, event=None):
    for p in payloads:
        r = env.publish(resource, p, event=event)
        eq(r.get("fallback"), False, "publish fallback")


def wait_events(env, s, n, what, timeout=5):
    env.loop.wait(lambda: len(s.events) >= n or s.complete, timeout,
                  lambda: "%s: %d of %d events, complete=%s" % (what, len(s.events), n, s.complete))
    check(len(s.events) >= n, lambda: "%s: stream ended after %d of %d events" % (what, len(s.events), n))


def check_reset(env, s, reason, head, what):
    """The stream starts with exactly one reset naming reason, whose id is head."""
    wait_events(env, s, 1, what)
    ev = s.events[0]
    eq(ev.type, "reset", "%s: first event type" % what)
    eq(json.loads(ev.data), {"reason": reason}, "%s: reset data" % what)
    eq(ev.id, head, "%s: reset id (the resource's head)" % what)


@test("resume_replay")
def resume_replay(env):
    env.start({"heartbeat": 30})
    a = env.open_stream("doctor-7")
    publish_all(env, "doctor-7", ["e%d" % i for i in range(5)])
    wait_events(env, a, 5, "first stream")
    ids = [e.id for e in a.events]
    check(all(e.id and len(e.id) <= 64 and " " not in e.id for e in a.events), "ids %r" % ids)
    check(all(seq(x) < seq(y) for x, y in zip(a.events, a.events[1:])), "ids not increasing: %r" % ids)
    a.close()
    # published while nobody listens: still owed to whoever comes back
    publish_all(env, "doctor-7", ["e5", "e6", "e7"])
    publish_all(env, "other", ["x"])
    # Last-Event-ID, as EventSource sends it on reconnect
    b = env.open_stream("doctor-7", headers={"Last-Event-ID": ids[4]})
    wait_events(env, b, 3, "resume by header")
    # ?last_event_id=, as a reloaded page that stored its id asks
    c = env.open_stream("doctor-7", "?last_event_id=" + ids[1])
    wait_events(env, c, 6, "resume by query")
    # both: the header (newer, from the browser) wins
    d = env.open_stream("doctor-7", "?last_event_id=" + ids[0], headers={"Last-Event-ID": ids[3]})
    wait_events(env, d, 4, "resume with both")
    # up to date: nothing replayed, nothing reset
    head = b.events[-1].id
    e = env.open_stream("doctor-7", headers={"Last-Event-ID": head})
    publish_all(env, "doctor-7", ["live"])
    for s, want in ((b, ["e5", "e6", "e7", "live"]), (c, ["e2", "e3", "e4", "e5", "e6", "e7", "live"]),
                    (d, ["e4", "e5", "e6", "e7", "live"]), (e, ["live"])):
        wait_events(env, s, len(want), "live after replay")
        eq([x.data for x in s.events], want, "replayed then live events")
        eq(len(set(x.id for x in s.events)), len(want), "distinct ids")
        check(not s.complete, "a resumed stream ended")
    eq([x.id for x in c.events[:3]], ids[2:5], "replayed events keep their ids")
    # the replay is framed as the original: same event name, same data lines
    f = env.open_stream("doctor-7")
    publish_all(env, "doctor-7", ["line1\nline2"], event="queue_update")
    wait_events(env, f, 1, "named event")
    g = env.open_stream("doctor-7", headers={"Last-Event-ID": e.events[0].id})
    wait_events(env, g, 1, "named event replayed")
    eq((g.events[0].type, g.events[0].data, g.events[0].id),
       (f.events[0].type, f.events[0].data, f.events[0].id), "replayed named event")


@test("resume_reset")
def resume_reset(env):
    env.start({"heartbeat": 30, "history_size": 3})
    a = env.open_stream("q")
    publish_all(env, "q", ["a%d" % i for i in range(6)])
    wait_events(env, a, 6, "events")
    head = a.events[-1].id
    ep = epoch(a.events[0])
    cases = [
        ("gone", a.events[1].id),             # a3 left the history of 3: never a partial replay
        ("gone", ep + "-0"),
        ("malformed", "17"),
        ("malformed", "not an id"),
        ("malformed", ep + "-0017"),
        ("malformed", ep + "-%d" % (seq(a.events[-1]) + 1000)),   # never handed out
        ("malformed", "x" * 65),
        ("epoch", "0123456789abcdef-3"),       # another history (a restart)
    ]
    streams = []
    for reason, lid in cases:
        s = env.open_stream("q", headers={"Last-Event-ID": lid})
        check_reset(env, s, reason, head, "Last-Event-ID %r" % lid[:20])
        streams.append(s)
    q = env.open_stream("q", "?last_event_id=%25zz")
    check_reset(env, q, "malformed", head, "?last_event_id=%zz")
    streams.append(q)
    # a client at a2 missed nothing that left: replay, no reset
    ok = env.open_stream("q", headers={"Last-Event-ID": a.events[2].id})
    wait_events(env, ok, 3, "resume at the oldest kept position")
    eq([e.data for e in ok.events], ["a3", "a4", "a5"], "replay of the kept events")
    # then live, once, on every one of them
    publish_all(env, "q", ["live"])
    for s in streams:
        wait_events(env, s, 2, "live after reset")
        eq([e.type for e in s.events], ["reset", "message"], "reset then live")
        eq(s.events[1].data, "live", "live after reset")
    # on a resource without history the reset's id is the process's last position,
    # and resuming from it is honoured
    z = env.open_stream("fresh", headers={"Last-Event-ID": "zz-1"})
    wait_events(env, z, 1, "reset on a fresh resource")
    eq(z.events[0].type, "reset", "fresh resource reset")
    z2 = env.open_stream("fresh", headers={"Last-Event-ID": z.events[0].id})
    publish_all(env, "fresh", ["first"])
    wait_events(env, z2, 1, "resume from a reset's id")
    eq([e.data for e in z2.events], ["first"], "events after a reset's id")
    # reset is reserved
    r = env.publish("q", "x", event="reset", expect=400)
    check(b"reserved" in bytes(r.body), "400 body %r" % bytes(r.body))


@test("resume_restart_single")
def resume_restart_single(env):
    """Single-server: a restarted process has a new history; an old id gets reset."""
    env.start({"heartbeat": 30})
    a = env.open_stream("r")
    publish_all(env, "r", ["before"])
    wait_events(env, a, 1, "event before restart")
    old = a.events[0].id
    env.stop_backend()
    env.loop.wait(lambda: a.complete, 10, "stream to end on shutdown")
    env.start_backend({"heartbeat": 30})
    b = env.open_stream("r", headers={"Last-Event-ID": old})
    wait_events(env, b, 1, "reset after restart")
    eq((b.events[0].type, json.loads(b.events[0].data)), ("reset", {"reason": "epoch"}),
       "first event after a restart")
    check(epoch(b.events[0]) != epoch(a.events[0]), "the reset names the new epoch")
    publish_all(env, "r", ["after"])
    wait_events(env, b, 2, "live after the reset")
    eq(b.events[1].data, "after", "live event")
    check(seq(b.events[1]) > seq(b.events[0]), "live id after the reset's id")


@test("resume_drop_under_load")
def resume_drop_under_load(env):
    """A client that drops its TCP connection mid-stream and resumes with
    Last-Event-ID while publishing goes on at 200/s gets every event once, in order."""
    env.start({"heartbeat": 30, "history_size": 1000})
    total, rate = 600, 200.0
    incarnations = [env.open_stream("live")]
    last_id = None
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate          # 200/s: publish when due, pumping meanwhile
        now = time.monotonic()
        if due > now:
            env.loop.pump(due - now)
        env.publish("live", "m%d" % i)
        if i % 75 == 37:
            # cut mid-stream (events still in flight are lost with the socket), come
            # back at once with the last id this client saw, as EventSource does
            cur = incarnations[-1]
            last_id = cur.sse.last_id or last_id
            cur.close()
            incarnations.append(env.stream("live", headers={"Last-Event-ID": last_id}
                                           if last_id else None))
    want = ["m%d" % i for i in range(total)]
    last = incarnations[-1]
    env.loop.wait(lambda: (last.events and last.events[-1].data == want[-1]) or last.complete, 15,
                  "the last event on the last connection")
    got = [e.data for inc in incarnations for e in inc.events]
    check(len(incarnations) >= 8, "only %d connections" % len(incarnations))
    eq(len(got), len(want), "events received over %d connections" % len(incarnations))
    eq(got, want, "every event once, in order")
    check(all(e.type == "message" for inc in incarnations for e in inc.events), "a reset was sent")


@test("resume_queue_bound")
def resume_queue_bound(env):
    """A replay larger than stream_queue_bytes is sent in parts: each connection gets
    what fits, then ends with a short retry:, and the next one continues from there."""
    env.start({"heartbeat": 30, "history_size": 200, "stream_queue_bytes": 4096,
               "stream_queue_soft_bytes": 0, "max_message_bytes": 600})
    a = env.open_stream("big")
    payloads = ["%03d:" % i + "p" * 500 for i in range(40)]     # ~20 KB of history
    publish_all(env, "big", payloads)
    wait_events(env, a, 40, "events")
    first = a.events[0].id
    epoch_start = first.rsplit("-", 1)[0] + "-0"
    got, parts, lid = [], 0, epoch_start
    while len(got) < 40 and parts < 40:
        s = env.open_stream("big", headers={"Last-Event-ID": lid})
        parts += 1
        env.loop.wait(lambda: s.complete or len(got) + len(s.events) >= 40, 5, "a part of the replay")
        check(s.events, "a part without events")
        check(sum(len(e.data) for e in s.events) <= 4096 + 600, "a part over the queue bound")
        got += [e.data for e in s.events]
        lid = s.sse.last_id
        if s.complete:
            eq(s.sse.retries[-1][1], 100, "retry: before a cut replay ends")
    eq(got, payloads, "the whole history, once, in order, over %d connections" % parts)
    check(parts >= 4, "a 20 KB replay fitted a 4 KB queue in %d parts" % parts)
    check(all(e.type == "message" for e in a.events), "reset on the first stream")


@test("history_bounds")
def history_bounds(env):
    env.start({"heartbeat": 30, "history_size": 10, "history_ttl": 1, "history_bytes": 6000})
    a = env.open_stream("one")
    b = env.open_stream("two")
    publish_all(env, "one", ["o%d" % i for i in range(3)])
    publish_all(env, "two", ["t%d" % i for i in range(3)])
    wait_events(env, a, 3, "one")
    wait_events(env, b, 3, "two")
    # both kept
    r1 = env.open_stream("one", headers={"Last-Event-ID": a.events[0].id})
    wait_events(env, r1, 2, "replay of one")
    eq([e.data for e in r1.events], ["o1", "o2"], "replay of one")
    # history_bytes: ~1.9 KB payloads on "two" push "one" (published less recently) out
    publish_all(env, "two", ["T%d" % i + "x" * 1900 for i in range(3)])
    wait_events(env, b, 6, "two, large")
    r2 = env.open_stream("one", headers={"Last-Event-ID": a.events[0].id})
    wait_events(env, r2, 1, "one after history_bytes")
    eq((r2.events[0].type, json.loads(r2.events[0].data)), ("reset", {"reason": "gone"}),
       "resume on the resource dropped by history_bytes")
    r3 = env.open_stream("two", headers={"Last-Event-ID": b.events[3].id})
    wait_events(env, r3, 2, "two after history_bytes")
    eq([e.data[:2] for e in r3.events], ["T1", "T2"], "the recent resource kept its history")
    # history_ttl: a second after the last publish, the events are gone
    env.loop.run_for(1.6)
    r4 = env.open_stream("two", headers={"Last-Event-ID": b.events[3].id})
    check_reset(env, r4, "gone", b.events[-1].id, "two after history_ttl")
    # ... but a client that was up to date is still honoured, and gets what follows
    r5 = env.open_stream("two", headers={"Last-Event-ID": b.events[-1].id})
    publish_all(env, "two", ["fresh"])
    wait_events(env, r5, 1, "live after ttl")
    eq([e.data for e in r5.events], ["fresh"], "up to date after ttl")


@test("history_off")
def history_off(env):
    """history_size = 0: no ids, Last-Event-ID ignored, today's framing byte for byte."""
    env.start({"heartbeat": 30, "history_size": 0, "retry": 2500})
    s = env.open_stream("plain", headers={"Last-Event-ID": "abc-1"})
    publish_all(env, "plain", ["one", "two\nlines"])
    publish_all(env, "plain", ["{}"], event="status")
    wait_events(env, s, 3, "events")
    eq(bytes(s.sse.raw), b"retry: 2500\n\ndata: one\n\ndata: two\ndata: lines\n\n"
       b"event: status\ndata: {}\n\n", "the stream, byte for byte")
    t = env.open_stream("plain", "?last_event_id=abc-1")
    publish_all(env, "plain", ["x"])
    wait_events(env, t, 1, "second stream")
    eq([e.data for e in t.events], ["x"], "nothing replayed")
    check(not t.sse.ids, "id: lines with history off")
