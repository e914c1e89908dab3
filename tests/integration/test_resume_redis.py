"""Event ids and resume in multi-server mode (real redis-server): ids assigned by Redis
and equal on every server, resume on another server, after a process restart, reset
reasons, Redis restarted empty, the subscriber connection killed while Redis stays up,
history bounds and expiry in Redis, and the seam under load across two servers."""

import json
import re
import signal
import time

from harness import check, eq, test
from redis_helpers import Relay, kill_clients, origins, redis_conf, wait_mode, with_world
from test_redis import two_servers_up


def seq(ev):
    return int(ev.id.rsplit("-", 1)[1])


def wait_n(env, s, n, what, timeout=10):
    env.loop.wait(lambda: len(s.events) >= n or s.complete, timeout,
                  lambda: "%s: %d of %d events (complete=%s)" % (what, len(s.events), n, s.complete))
    check(len(s.events) >= n, lambda: "%s: stream ended after %d of %d events" % (what, len(s.events), n))


def publish_redis(env, resource, payload, event=None):
    r = env.publish(resource, payload, event=event)
    eq((r.get("mode"), r.get("fallback")), ("redis", False), "publish %r" % payload[:20])


@test("redis_resume_other_server")
@with_world
def resume_other_server(env, w):
    rs = w.redis()
    conf = dict(redis_conf(rs.port), heartbeat=30)
    a, b = two_servers_up(env, w, conf, 1)
    sa = a.open_stream("doc")
    sb = b.open_stream("doc")
    for i in range(4):
        publish_redis((a, b)[i % 2], "doc", "p%d" % i, event="tick" if i == 1 else None)
    wait_n(env, sa, 4, "server A")
    wait_n(env, sb, 4, "server B")
    # the same event has the same id on every server, and ids only grow
    eq([e.id for e in sa.events], [e.id for e in sb.events], "ids on two servers")
    check(all(seq(x) + 1 == seq(y) for x, y in zip(sa.events, sa.events[1:])),
          "ids %r" % [e.id for e in sa.events])
    # the payload stays byte for byte on sse:doc; the id travels in Redis's history
    eq(rs.cli("XLEN", "__sse-fcgi__:history:sse:doc"), "4", "history length in Redis")
    eq(rs.cli("HGET", "__sse-fcgi__:head:sse:doc", "e"), sa.events[0].id.rsplit("-", 1)[0], "epoch in Redis")
    check(int(rs.cli("TTL", "__sse-fcgi__:history:sse:doc")) > 3500, "history expiry")
    # Redis forgot the scripts (a restart, SCRIPT FLUSH): NOSCRIPT, resent as EVAL
    eq(rs.cli("SCRIPT", "FLUSH"), "OK", "SCRIPT FLUSH")
    publish_redis(a, "doc", "p4")
    wait_n(env, sb, 5, "after SCRIPT FLUSH")
    eq(sb.events[4].id.rsplit("-", 1)[1], "5", "id after SCRIPT FLUSH")
    # a client that had A's second event resumes on B
    lid = sa.events[1].id
    sa.close()
    publish_redis(b, "doc", "while-away")
    r = b.open_stream("doc", headers={"Last-Event-ID": lid})
    wait_n(env, r, 4, "resume on B")
    publish_redis(a, "doc", "live")
    wait_n(env, r, 5, "live after resume")
    eq([(e.type, e.data) for e in r.events],
       [("message", "p2"), ("message", "p3"), ("message", "p4"), ("message", "while-away"),
        ("message", "live")], "replay on B of what A's client missed, then live")
    eq([e.id for e in r.events[:3]], [e.id for e in sb.events[2:5]], "replayed ids")
    # the named event keeps its name in the replay
    q = a.open_stream("doc", "?last_event_id=" + sb.events[0].id)
    wait_n(env, q, 1, "query resume on A")
    eq((q.events[0].type, q.events[0].data, q.events[0].id), ("tick", "p1", sb.events[1].id),
       "replayed named event")


@test("redis_resume_resets")
@with_world
def resume_resets(env, w):
    rs = w.redis()
    conf = dict(redis_conf(rs.port, reconnect_min_ms=50, reconnect_max_ms=300), heartbeat=30,
                history_size=3)
    env.start(conf, procs=1)
    wait_mode(env, "redis", 10)
    s = env.open_stream("r")
    for i in range(6):
        publish_redis(env, "r", "e%d" % i)
    wait_n(env, s, 6, "events")
    head = s.events[-1].id
    epoch = head.rsplit("-", 1)[0]
    eq(rs.cli("XLEN", "__sse-fcgi__:history:sse:r"), "3",
       "history_size bounds the stream in Redis")
    for reason, lid in (("gone", s.events[1].id), ("malformed", "bogus"), ("malformed", epoch + "-99"),
                        ("epoch", "1234567890123456-2")):
        x = env.open_stream("r", headers={"Last-Event-ID": lid})
        wait_n(env, x, 1, "reset for %r" % lid)
        eq((x.events[0].type, json.loads(x.events[0].data), x.events[0].id),
           ("reset", {"reason": reason}, head), "reset for %r" % lid)
        publish_redis(env, "r", "after-" + reason)
        wait_n(env, x, 2, "live after reset")
        eq(x.events[1].data, "after-" + reason, "live after reset")
        head = x.events[1].id
    # up to date: honoured, nothing replayed
    kept = env.open_stream("r", headers={"Last-Event-ID": x.events[1].id})
    publish_redis(env, "r", "z")
    wait_n(env, kept, 1, "up to date")
    eq([e.data for e in kept.events], ["z"], "nothing replayed when up to date")
    # Redis away: a resume cannot be served; the stream says so and goes on live
    rs.kill()
    env.wait_log(r"SSE: Redis connection closed")
    u = env.open_stream("r", headers={"Last-Event-ID": head})
    wait_n(env, u, 1, "reset while Redis is down")
    eq((u.events[0].type, json.loads(u.events[0].data)), ("reset", {"reason": "unavailable"}),
       "resume while Redis is down")
    r = env.publish("r", "local")
    eq(r.get("mode"), "local", "publish while Redis is down")
    wait_n(env, u, 2, "local event")
    eq((u.events[1].data, u.events[1].id), ("local", u.events[0].id), "a local fallback has no id")


@test("redis_resume_process_restart")
@with_world
def resume_process_restart(env, w):
    """Multi-server: the sse-fcgi process restarts; its clients' ids still name Redis's
    history, so their resume is a full replay."""
    rs = w.redis()
    conf = dict(redis_conf(rs.port), heartbeat=30)
    a, b = two_servers_up(env, w, conf, 1)
    s = a.open_stream("p")
    publish_redis(a, "p", "one")
    wait_n(env, s, 1, "before restart")
    lid = s.events[0].id
    a.stop_backend()
    env.loop.wait(lambda: s.complete, 10, "stream end on shutdown")
    publish_redis(b, "p", "two")
    publish_redis(b, "p", "three")
    a.start_backend(conf)
    wait_mode(a, "redis", 10)
    r = a.open_stream("p", headers={"Last-Event-ID": lid})
    wait_n(env, r, 2, "replay after restart")
    eq([(e.type, e.data) for e in r.events], [("message", "two"), ("message", "three")],
       "full replay from Redis after a process restart")


@test("redis_history_expiry")
@with_world
def history_expiry(env, w):
    rs = w.redis()
    env.start(dict(redis_conf(rs.port), heartbeat=30, history_ttl=1), procs=1)
    wait_mode(env, "redis", 10)
    s = env.open_stream("t")
    publish_redis(env, "t", "x")
    wait_n(env, s, 1, "event")
    ttl = int(rs.cli("PTTL", "__sse-fcgi__:history:sse:t"))
    check(0 < ttl <= 1000, "history PTTL %d with history_ttl = 1" % ttl)
    env.loop.wait(lambda: rs.cli("EXISTS", "__sse-fcgi__:history:sse:t", "__sse-fcgi__:head:sse:t") == "0",
                  5, "the history to expire in Redis")
    r = env.open_stream("t", headers={"Last-Event-ID": s.events[0].id})
    wait_n(env, r, 1, "reset after expiry")
    eq((r.events[0].type, json.loads(r.events[0].data)), ("reset", {"reason": "epoch"}),
       "resume after the history expired")


@test("redis_pubsub_killed")
@with_world
def pubsub_killed(env, w):
    """CLIENT KILL TYPE pubsub while Redis stays up and publishing goes on through the
    other server: every stream of both servers gets every event once, in order."""
    rs = w.redis()
    conf = dict(redis_conf(rs.port, reconnect_min_ms=50, reconnect_max_ms=300), heartbeat=30)
    a, b = two_servers_up(env, w, conf, 1)
    streams = [a.open_stream("k") for _ in range(3)] + [b.open_stream("k") for _ in range(2)]
    other = a.open_stream("k2")
    publish_redis(b, "k2", "x")
    sent = []
    kills = 0
    for i in range(150):
        publish_redis(b, "k", "m%d" % i)
        sent.append("m%d" % i)
        if i in (30, 80, 120):
            n = int(rs.cli("CLIENT", "KILL", "TYPE", "pubsub"))
            check(n >= 1, "CLIENT KILL TYPE pubsub killed %d" % n)
            kills += 1
            # keep publishing while the processes re-subscribe (b's publishes fall back to
            # local only if b itself is not up: wait for b, not for a)
            wait_mode(b, "redis", 10)
        env.loop.pump(0.002)
    wait_mode(a, "redis", 10)
    publish_redis(b, "k", "end")
    sent.append("end")
    env.loop.wait(lambda: all(s.events and s.events[-1].data == "end" for s in streams), 15,
                  "the last event on every stream")
    for s in streams:
        eq([e.data for e in s.events], sent, "events on a stream after %d pub/sub kills" % kills)
        check(all(seq(x) < seq(y) for x, y in zip(s.events, s.events[1:])), "ids out of order")
    publish_redis(b, "k2", "end2")
    wait_n(a, other, 2, "the other resource's stream")
    eq([e.data for e in other.events], ["x", "end2"], "the other resource's stream")
    # the streams of one resource at one position share one history read
    a.wait_log(r"catching up 4 open streams", count=1)
    reads = [int(n) for n in re.findall(r"catching up 4 open streams after the subscription came "
                                        r"back \((\d+) reads?\)", a.log_text())]
    check(reads and min(reads) == 2 and max(reads) <= 3,
          "history reads per catch-up of 4 streams on 2 resources: %r" % reads)


@test("redis_resume_drop_under_load")
@with_world
def resume_drop_under_load(env, w):
    """A client drops its connection mid-stream and resumes, alternately on the other
    server, while publishing goes on at 200/s through both: every event once, in order."""
    rs = w.redis()
    conf = dict(redis_conf(rs.port), heartbeat=30, history_size=1000)
    envs = two_servers_up(env, w, conf, 1)
    total, rate = 500, 200.0
    inc = [envs[0].open_stream("live")]
    last_id = None
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            env.loop.pump(due - now)
        publish_redis(envs[i % 2], "live", "m%d" % i)
        if i % 60 == 29:
            cur = inc[-1]
            last_id = cur.sse.last_id or last_id
            cur.close()
            e = envs[len(inc) % 2]
            inc.append(e.stream("live", headers={"Last-Event-ID": last_id} if last_id else None))
    want = ["m%d" % i for i in range(total)]
    last = inc[-1]
    env.loop.wait(lambda: (last.events and last.events[-1].data == want[-1]) or last.complete, 15,
                  "the last event on the last connection")
    got = [e.data for x in inc for e in x.events]
    eq(len(got), len(want), "events over %d connections" % len(inc))
    eq(got, want, "every event once, in order, across two servers")
    check(all(e.type == "message" for x in inc for e in x.events), "a reset was sent")


@test("redis_resume_deadline")
@with_world
def resume_deadline(env, w):
    """Redis stops answering (SIGSTOP) while a stream resumes: within
    redis.publish_timeout_ms the stream gets reset "unavailable", then live events;
    the late answer changes nothing."""
    rs = w.redis()
    env.start(dict(redis_conf(rs.port, publish_timeout_ms=300, probe_interval=30), heartbeat=30),
              procs=1)
    wait_mode(env, "redis", 10)
    s = env.open_stream("d")
    publish_redis(env, "d", "a")
    publish_redis(env, "d", "b")
    wait_n(env, s, 2, "events")
    rs.kill(signal.SIGSTOP)
    t = time.monotonic()
    x = env.open_stream("d", headers={"Last-Event-ID": s.events[0].id})
    wait_n(env, x, 1, "reset while Redis is hung")
    dt = time.monotonic() - t
    eq((x.events[0].type, json.loads(x.events[0].data)), ("reset", {"reason": "unavailable"}),
       "resume against a hung Redis")
    check(0.25 <= dt <= 0.3 + 0.7, "reset after %.3f s (publish_timeout_ms 300)" % dt)
    rs.kill(signal.SIGCONT)
    publish_redis(env, "d", "c")
    wait_n(env, x, 2, "live after the reset")
    env.loop.run_for(0.2)
    eq([(e.type, e.data) for e in x.events], [("reset", '{"reason":"unavailable"}'), ("message", "c")],
       "nothing replayed when the late answer came")


def catch_up_behind_answer(env, w, flush, xs=1, history_size=100):
    """Server A's subscription is lost and comes back (Redis kept its data, or,
    flushed, starts a new epoch); server B publishes xs events "x1".. after A's
    PSUBSCRIBE ran but A's subscriber socket brings them only after A's catch-up
    read was answered (a Relay holds them). They were answered "redis". Returns A's
    stream, open throughout; never a reset "unavailable"."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    a, b = env, w.second_env("b")
    a.start(dict(redis_conf(relay.port), heartbeat=30, history_size=history_size), procs=1)
    b.start(dict(redis_conf(rs.port), heartbeat=30, history_size=history_size), procs=1)
    wait_mode(a, "redis", 10)
    wait_mode(b, "redis", 10)
    s = a.open_stream("cu")
    publish_redis(b, "cu", "a")
    wait_n(a, s, 1, "before the loss")
    if flush:
        eq(rs.cli("FLUSHALL"), "OK", "FLUSHALL")
    relay.hold_subscribers()
    origin = list(origins(a).values())[0]
    eq(kill_clients(rs, "sse-fcgi:subscriber:" + origin), 1, "A's subscriber killed")
    # A's new PSUBSCRIBE ran once its confirmations are held; x reaches A's socket later
    a.loop.wait(lambda: relay.held_bytes().count(b"psubscribe") >= 3, 10, "A's PSUBSCRIBE confirmed")
    for i in range(xs):
        publish_redis(b, "cu", "x%d" % (i + 1))
    a.loop.wait(lambda: relay.held_bytes().count(b"pmessage") >= 2 * xs, 10, "the x held for A")
    check(relay.release_confirmations() > 0, "confirmations released")
    a.wait_log(r"history: catching up 1 open streams", timeout=10)
    a.wait_log(r"resume on cu after \d+: \d+ replayed", timeout=10)
    relay.release()
    publish_redis(b, "cu", "end")
    a.loop.wait(lambda: s.events and s.events[-1].data == "end" or s.complete, 10, "the last event")
    return s


def ids_rise(s):
    """No id twice, none going back, within an epoch (a reset may start a new one)."""
    last = {}
    for e in s.events:
        if e.id is None:
            continue
        ep, n = e.id.rsplit("-", 1)
        check(int(n) > last.get(ep, -1) or (e.type == "reset" and ep not in last),
              "id %s after %r" % (e.id, [x.id for x in s.events]))
        last[ep] = int(n)


@test("redis_catch_up_behind_answer")
@with_world
def catch_up_behind_answer_kept(env, w):
    s = catch_up_behind_answer(env, w, False)
    eq([(e.type, e.data) for e in s.events], [("message", "a"), ("message", "x1"), ("message", "end")],
       "A's stream across the loss: x1 once")
    ids_rise(s)


@test("redis_catch_up_behind_answer_new_epoch")
@with_world
def catch_up_behind_answer_flushed(env, w):
    """Redis lost its data: the stream gets a reset "epoch" whose id is the new
    epoch's head (x1's id: the catch-up read saw it), and x1's late live copy does
    not follow it (the reset covers it; SPEC: no stream receives the same id twice);
    then live events."""
    s = catch_up_behind_answer(env, w, True)
    eq([(e.type, e.data) for e in s.events],
       [("message", "a"), ("reset", '{"reason":"epoch"}'), ("message", "end")],
       "A's stream across the loss")
    eq([e.id.rsplit("-", 1)[1] for e in s.events[1:]], ["1", "2"], "seqs of the new epoch")
    check(len({e.id.rsplit("-", 1)[0] for e in s.events[1:]}) == 1, "one new epoch")
    ids_rise(s)


@test("redis_catch_up_new_epoch_trimmed")
@with_world
def catch_up_new_epoch_trimmed(env, w):
    """As above with three events held back and history_size 2: the reset names
    x3's id, and none of x1-x3 follows it when their live copies come late."""
    s = catch_up_behind_answer(env, w, True, xs=3, history_size=2)
    eq([(e.type, e.data) for e in s.events],
       [("message", "a"), ("reset", '{"reason":"epoch"}'), ("message", "end")],
       "A's stream across the loss")
    eq([e.id.rsplit("-", 1)[1] for e in s.events[1:]], ["3", "4"], "the reset at the head, then live")
    ids_rise(s)


@test("redis_catch_up_own_publish_behind_reset")
@with_world
def catch_up_own_behind_reset(env, w):
    """Redis lost its data and its script cache while server A's publisher stayed
    connected; server B's next publish loaded the publish script again. A's catch-up
    read goes as EVALSHA, is answered NOSCRIPT and is sent again, so it runs after A's
    own publish sent behind it (a Relay holds what Redis
    answers A's publisher meanwhile): the new epoch's head covers that publish. The
    stream gets the reset, then the publish once, ids rising: a reset never drops a
    publish of the process itself, whose ledger delivers it to its streams."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    a, b = env, w.second_env("b")
    a.start(dict(redis_conf(relay.port, probe_interval=30), heartbeat=30), procs=1)
    b.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    wait_mode(a, "redis", 10)
    wait_mode(b, "redis", 10)
    s = a.open_stream("cu")   # A reads the head once: its read script is loaded
    publish_redis(a, "cu", "a")
    wait_n(a, s, 1, "before the loss")
    eq(rs.cli("FLUSHALL"), "OK", "FLUSHALL")
    eq(rs.cli("SCRIPT", "FLUSH"), "OK", "SCRIPT FLUSH")
    publish_redis(b, "other", "b")   # B's EVAL puts the publish script back in the cache
    relay.hold_publishers()
    origin = list(origins(a).values())[0]
    eq(kill_clients(rs, "sse-fcgi:subscriber:" + origin), 1, "A's subscriber killed")
    a.wait_log(r"history: catching up 1 open streams", timeout=10)
    a.loop.wait(lambda: b"NOSCRIPT" in relay.publisher_held(), 10, "the read answered NOSCRIPT")
    x = a.http("POST", "/publish/cu", b"own", {"Content-Type": "text/plain"})
    a.loop.wait(lambda: b"own" in relay.sent_to_subscribers(), 10, "the echo in A's socket")
    check(relay.release_publishers() > 0, "answers released")
    a.loop.wait(lambda: x.complete, 10, "the publish answered")
    eq(x.json().get("mode"), "redis", "the publish's answer")
    a.wait_log(r"resume on cu: reset \(epoch\)", timeout=10)
    publish_redis(b, "cu", "end")
    a.loop.wait(lambda: s.events and s.events[-1].data == "end" or s.complete, 10, "the last event")
    eq([(e.type, e.data) for e in s.events],
       [("message", "a"), ("reset", '{"reason":"epoch"}'), ("message", "own"), ("message", "end")],
       "A's stream across the loss")
    eq([e.id.rsplit("-", 1)[1] for e in s.events[1:]], ["0", "1", "2"],
       "the reset below A's own publish, then it and live")
    ids_rise(s)


@test("redis_catch_up_unanswered")
@with_world
def catch_up_unanswered(env, w):
    """Server A's subscription comes back but its catch-up read is never answered
    (a Relay swallows what Redis answers A's publisher): after
    redis.publish_timeout_ms A's stream, which never asked to resume, goes on
    with live events and gets no reset."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    a, b = env, w.second_env("b")
    a.start(dict(redis_conf(relay.port, publish_timeout_ms=300, probe_interval=30), heartbeat=30),
            procs=1)
    b.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    wait_mode(a, "redis", 10)
    wait_mode(b, "redis", 10)
    s = a.open_stream("cu")
    publish_redis(b, "cu", "a")
    wait_n(a, s, 1, "before the loss")
    relay.mute_publishers()
    origin = list(origins(a).values())[0]
    eq(kill_clients(rs, "sse-fcgi:subscriber:" + origin), 1, "A's subscriber killed")
    a.wait_log(r"history: catching up 1 open streams", timeout=10)
    a.wait_log(r"history of cu not read within 300 ms", timeout=10)
    publish_redis(b, "cu", "b")
    wait_n(a, s, 2, "live after the unanswered catch-up")
    a.loop.run_for(0.2)
    eq([(e.type, e.data) for e in s.events], [("message", "a"), ("message", "b")],
       "A's stream: no reset")
