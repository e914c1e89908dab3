"""Multi-server mode through a real redis-server (issue 3): fan-out over two
"servers" (each its own nginx + spawn-fcgi -F 2), wire interop with plain
Redis clients, Redis absent / restarted / flapping / hung / password-protected,
and a deaf subscriber. Every count of the exactly-once contract is checked:
an answer "redis" reaches every stream once, an answer "local" reaches the
publishing process's streams once and the others at most once."""

import collections
import os
import random
import re
import signal
import time

import harness
from harness import check, eq, fail, test
from redis_helpers import (Relay, RespSub, SilentRedis, broadcast_counts, client_list, covered, kill_clients,
                           origins, redis_conf, redis_intervals, wait_mode, with_world)


LOOPS = (None, "select")


def open_spread(envs, resource, per_batch=8, max_batches=8):
    """Open streams on resource through each env's nginx, several at once (one
    process at a time wins each accept), until every process of every env
    holds some; judged by the per-process "Local broadcast" debug lines after
    a marker publish. Returns (streams, {pid: count}, markers published); the
    markers are taken out of the streams' events."""
    streams, counts = [], {}
    for k in range(max_batches):
        for e in envs:
            got = e.open_streams([resource] * per_batch)
            check(all(x.status == 200 for x in got), lambda: "stream statuses %r" % [x.status for x in got])
            streams += got
        r = envs[0].publish(resource, "marker-%d" % k)
        check(r.get("mode") == "redis", "marker publish %r" % r)
        want = [e.backend_pids for e in envs]
        envs[0].loop.wait(lambda: all(s.events and s.events[-1].data == "marker-%d" % k for s in streams), 10,
                          "marker on every stream")
        counts = {}
        for e in envs:
            counts.update(broadcast_counts(e, resource))
        if all(counts.get(p, 0) > 0 for pids in want for p in pids):
            for s in streams:
                del s.events[:]
            return streams, counts, k + 1
    fail("streams never reached every process: %r" % counts)


def received(streams):
    return [[e.data for e in s.events] for s in streams]


def wait_events(env, streams, n, timeout=10, what="events"):
    env.loop.wait(lambda: all(len(s.events) >= n for s in streams), timeout,
                  lambda: "%d %s on %d streams (have %r)" % (
                      n, what, len(streams), sorted(set(len(s.events) for s in streams))))


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def two_servers_up(env, w, conf, procs):
    """Two "servers" (each its own nginx + spawn-fcgi -F procs) on one Redis, both
    in multi-server mode; returns [env, second env]."""
    envs = [env, w.second_env("b")]
    for e in envs:
        e.start(conf, procs=procs)
    for e in envs:
        wait_mode(e, "redis", 10)
    return envs


@test("redis_two_servers", loops=LOOPS)
@with_world
def two_servers(env, w):
    rs = w.redis()
    # one process may win most accepts: room for every stream on one of them
    conf = dict(redis_conf(rs.port), heartbeat=30, max_streams_per_resource=200)
    envs = two_servers_up(env, w, conf, 2)
    b = envs[1]
    for e in envs:
        e.wait_log(r"SSE: Redis Pub/Sub enabled \(multi-server mode\)", count=2)
    plain = RespSub(rs.port, "sse:*")
    w.cleanups.append(plain.close)
    env.loop.wait(lambda: plain.poll().confirmed == 1, 5, "raw PSUBSCRIBE sse:* confirmed")

    streams, spread, nmark = open_spread(envs, "fanout")
    markers = ["marker-%d" % k for k in range(nmark)]
    env.note("streams per process: %s" % sorted(spread.values()))

    n = 40
    sent, want, lat_t0 = [], [], []
    for i in range(n):
        e = envs[i % 2]
        payload = '{"n":%d,"via":"%s"}' % (i, "ab"[i % 2])
        ev = "tick" if i % 3 == 0 else None
        lat_t0.append(time.monotonic())
        r = e.publish("fanout", payload, event=ev)
        eq((r.get("mode"), r.get("fallback")), ("redis", False), "publish %d reply" % i)
        sent.append((ev or "message", payload))
        want.append(payload)
    wait_events(env, streams, n)
    for s in streams:
        eq([(x.type, x.data) for x in s.events], sent, "events (exactly once, in order) on a stream")
    lat = [s.events[i].t - lat_t0[i] for s in streams for i in range(n)]
    env.note("publish->receive over 2 servers x 2 processes, %d streams: p50 %.1f ms, p99 %.1f ms" % (
        len(streams), 1000 * percentile(lat, 50), 1000 * percentile(lat, 99)))

    # A plain Redis subscriber sees exactly the payloads, byte for byte, and
    # nothing else under sse:* (meta and probes live outside it).
    env.loop.wait(lambda: len(plain.poll().messages) >= n + nmark, 5, "payloads on the raw subscriber")
    eq(plain.messages, [(b"sse:fanout", p.encode()) for p in markers + want], "what PSUBSCRIBE sse:* saw")

    # The other way: redis-cli PUBLISH reaches every stream verbatim, no event name.
    foreign = '{"from":"redis-cli","text":"line1\\nline2"}'
    eq(rs.cli("PUBLISH", "sse:fanout", foreign), "5", "redis-cli PUBLISH receivers (4 processes + the raw one)")
    wait_events(env, streams, n + 1)
    for s in streams:
        eq((s.events[n].type, s.events[n].data), ("message", foreign), "redis-cli payload on a stream")
    # a seed-style peer's raw publish right after an sse-fcgi one is not taken for it
    envs[0].publish("fanout", "after", event="named")
    rs.cli("PUBLISH", "sse:fanout", "raw-after")
    wait_events(env, streams, n + 3)
    for s in streams:
        eq([(x.type, x.data) for x in s.events[n + 1:]], [("named", "after"), ("message", "raw-after")],
           "named publish then raw publish")
        check(not s.complete, "a stream ended")
    for e in envs:
        check("Failed to publish" not in e.log_text(), "a publish fell back:\n" + e.log_tail(10))


@test("redis_latency_1000")
@with_world
def latency_1000(env, w):
    """Cross-server publish->receive latency at 1,000 streams over two servers
    (issue 3's figure). Runs only with SSE_REDIS_BENCH=1 (about 15 s)."""
    import os
    from harness import TestSkip
    if os.environ.get("SSE_REDIS_BENCH") != "1":
        raise TestSkip("set SSE_REDIS_BENCH=1 to measure")
    rs = w.redis()
    conf = dict(redis_conf(rs.port), heartbeat=30, max_streams_per_resource=1000)
    envs = two_servers_up(env, w, conf, 2)
    streams = []
    for e in envs:
        got = e.open_streams(["bench"] * 500, keep_raw=False)
        check(all(x.status == 200 for x in got), "every stream opened")
        streams += got
    n = 30
    sent = []
    for i in range(n):
        t = time.monotonic()
        eq(envs[i % 2].publish("bench", '{"n":%d}' % i).get("mode"), "redis", "publish")
        sent.append(t)
        wait_events(env, streams, i + 1, timeout=20)
    lat = [s.events[i].t - sent[i] for s in streams for i in range(n)]
    cross = [s.events[i].t - sent[i] for k, half in enumerate((streams[:500], streams[500:]))
             for s in half for i in range(n) if i % 2 != k]
    env.note("1000 streams, 2 servers x 2 processes, %d publishes: publish->receive p50 %.1f ms, "
             "p99 %.1f ms; cross-server only p50 %.1f ms, p99 %.1f ms (Python client on the same box)" % (
                 n, 1000 * percentile(lat, 50), 1000 * percentile(lat, 99),
                 1000 * percentile(cross, 50), 1000 * percentile(cross, 99)))
    for s in streams:
        eq([x.data for x in s.events], ['{"n":%d}' % i for i in range(n)], "events on a stream")


@test("redis_late_start", loops=LOOPS)
@with_world
def late_start(env, w):
    """Redis not running at start: local with fallback, then multi-server by itself."""
    rs = w.redis(start=False)
    env.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    env.wait_log(r"SSE: Redis connection failed, using single-server mode: .*refused")
    eq(env.stats()["mode"], "local", "mode while Redis is down")
    s = env.open_stream("late")
    r = env.publish("late", "while-down")
    eq((r.get("mode"), r.get("delivered"), r.get("fallback")), ("local", 1, True), "publish while down")
    check("Redis" in r.get("reason", ""), "reason %r" % r.get("reason"))
    rs.start()
    t = wait_mode(env, "redis", 10)
    env.note("multi-server mode %.2f s after Redis started (defaults: backoff 100..5000 ms)" % t)
    r = env.publish("late", "while-up")
    eq((r.get("mode"), r.get("fallback")), ("redis", False), "publish once up")
    wait_events(env, [s], 2)
    eq(received([s])[0], ["while-down", "while-up"], "stream events")
    check(env.stats()["redis_reconnects"] >= 1, "reconnects counted")


@test("redis_long_outage")
@with_world
def long_outage(env, w):
    """With the default backoff (100..5000 ms), a Redis that comes back after a
    long outage is used again within 10 s (SPEC), whatever the backoff reached."""
    rs = w.redis()
    env.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    wait_mode(env, "redis", 10)
    rs.kill(signal.SIGKILL)
    env.wait_log(r"SSE: Redis connection closed")
    # let the backoff grow towards its cap: 6 attempts per connection
    # (100+200+...+3200 ms, jittered) before Redis returns
    env.loop.wait(lambda: env.stats()["redis_reconnects"] >= 12, 20, "12 reconnection attempts")
    rs.start()
    t = wait_mode(env, "redis", 10)
    env.note("after a %d-attempt outage, back in multi-server mode %.2f s after Redis started" % (
        env.stats()["redis_reconnects"], t))
    eq(env.publish("outage", "x").get("mode"), "redis", "publish after the outage")


@test("redis_endpoints")
@with_world
def endpoints(env, w):
    """A host name (looked up without blocking), a Unix socket, and the seed's
    REDIS_HOST / REDIS_PORT / REDIS_PASSWORD overriding the file."""
    import os
    rs = w.redis(password="s3cret-pass", unixsocket=os.path.join(env.run_dir, "redis.sock"))
    # 1. host name
    env.start(dict(redis_conf(rs.port, host="localhost", password="s3cret-pass"), heartbeat=30), procs=1)
    wait_mode(env, "redis", 10)
    s = env.open_stream("ep")
    eq(env.publish("ep", "by-name").get("mode"), "redis", "publish via localhost")
    wait_events(env, [s], 1)
    env.stop_backend()
    env.nginx.terminate()
    env.nginx.wait(10)
    # 2. Unix socket; 3. environment over a file that points elsewhere
    for label, conf, extra in (
            ("unix socket", {"redis": {"socket": rs.unixsocket, "password": "s3cret-pass"}}, {}),
            ("REDIS_* env", redis_conf(1, password="wrong"),
             {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(rs.port), "REDIS_PASSWORD": "s3cret-pass"})):
        env.exit_status = {}
        base = env.backend_env
        env.backend_env = lambda more=None, extra=extra, base=base: dict(base(more), **extra)
        try:
            env.start(dict(conf, heartbeat=30), procs=1)
        finally:
            env.backend_env = base
        wait_mode(env, "redis", 10)
        s = env.open_stream("ep")
        eq(env.publish("ep", label).get("mode"), "redis", "publish via " + label)
        wait_events(env, [s], 1)
        eq(s.events[0].data, label, "event via " + label)
        env.stop_backend()
        env.nginx.terminate()
        env.nginx.wait(10)
    env.nginx = None


@test("redis_unresolvable")
def unresolvable(env):
    """A host name that does not resolve (or a DNS that does not answer): the
    lookup runs beside the loop, publishes and /stats are answered at once."""
    env.start(dict(redis_conf(6379, host="sse-fcgi-test.invalid", connect_timeout_ms=300,
                              reconnect_max_ms=300), heartbeat=30), procs=1)
    env.wait_log(r"SSE: Redis connection failed, using single-server mode: "
                 r"(cannot resolve sse-fcgi-test\.invalid|no address for sse-fcgi-test\.invalid)")
    s = env.open_stream("dns")
    worst = 0.0
    for i in range(5):
        t = time.monotonic()
        r = env.publish("dns", "d%d" % i)
        worst = max(worst, time.monotonic() - t)
        eq((r.get("mode"), r.get("fallback")), ("local", True), "publish")
    check(worst < 0.25, "a publish took %.3f s while the name was being looked up" % worst)
    wait_events(env, [s], 5)


@test("redis_restart", loops=LOOPS)
@with_world
def restart(env, w):
    """`redis-cli shutdown` mid-stream, publishes during the outage, restart."""
    rs = w.redis()
    env.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    wait_mode(env, "redis", 10)
    streams = [env.open_stream("restart") for _ in range(3)]
    eq(env.publish("restart", "before").get("mode"), "redis", "publish before")
    rs.shutdown()
    env.wait_log(r"SSE: Redis connection closed")
    r = env.publish("restart", "during")
    eq((r.get("mode"), r.get("delivered"), r.get("fallback")), ("local", 3, True), "publish during outage")
    eq(env.stats()["mode"], "local", "mode during outage")
    rs.start()
    t = wait_mode(env, "redis", 10)
    env.note("back in multi-server mode %.2f s after Redis restarted" % t)
    eq(env.publish("restart", "after").get("mode"), "redis", "publish after")
    wait_events(env, streams, 4)
    # the restarted Redis has no scripts: the new connection sends them (EVAL) rather
    # than an EVALSHA answered NOSCRIPT and sent again behind later commands
    check("NOSCRIPT" not in rs.cli("INFO", "errorstats"),
          lambda: "NOSCRIPT answers after the restart: %r" % rs.cli("INFO", "errorstats"))
    # Redis came back empty: its history is gone, and each stream is told so (one reset,
    # reason epoch) before what follows; "during" went locally, without an id
    for s in streams:
        eq([(e.type, e.data) for e in s.events],
           [("message", "before"), ("message", "during"), ("reset", '{"reason":"epoch"}'),
            ("message", "after")], "events across the restart")
        check(s.events[0].id and s.events[3].id and s.events[0].id.split("-")[0] != s.events[3].id.split("-")[0],
              "ids before and after a Redis restart share an epoch: %r" % [e.id for e in s.events])
        eq(s.events[1].id, s.events[0].id, "a local fallback carried an id")
    check(not any(s.complete for s in streams), "a stream was dropped by the Redis restart")


@test("redis_flapping", loops=LOOPS)
@with_world
def flapping(env, w):
    """Redis stopped and started repeatedly while publishes flow through two
    servers (one process each, so the publishing process is known)."""
    rs = w.redis()
    conf = dict(redis_conf(rs.port, reconnect_min_ms=50, reconnect_max_ms=400,
                           connect_timeout_ms=500, publish_timeout_ms=500), heartbeat=30)
    envs = two_servers_up(env, w, conf, 1)
    b = envs[1]
    streams = {0: [env.open_stream("flap") for _ in range(3)], 1: [b.open_stream("flap") for _ in range(3)]}
    rnd = random.Random(3)
    steps, up, toggles = 3000, True, 0
    need, since = rnd.randint(1, 6), 0   # redis answers to see before the next stop
    replies = {}   # message -> (publishing server, mode, t_sent, t_replied)
    t0 = time.monotonic()
    step = -1
    while toggles < 16 and step < steps:
        step += 1
        stop_now = up and since >= need
        start_now = not up and since >= need
        if start_now:
            rs.start(wait=False)   # restarts race with publishes
            up, since, need, toggles = True, 0, rnd.randint(1, 6), toggles + 1
        # one publish to each server at once; the next step after both replies
        t_sent = time.time()
        exs = [(k, "m%d.%d" % (step, k)) for k in (0, 1)]
        exs = [(k, m, envs[k].http("POST", "/publish/flap", m.encode(), {"Content-Type": "text/plain"}))
               for k, m in exs]
        if stop_now:
            # while those publishes are on their way
            if rnd.random() < 0.5:
                rs.kill(signal.SIGKILL)
            else:
                rs.wait_ready()   # redis-cli needs it listening
                rs.shutdown()
            up, since, need, toggles = False, 0, rnd.randint(1, 4), toggles + 1
        env.loop.wait(lambda: all(x.complete for _, _, x in exs), 5, "publish replies (step %d)" % step)
        t_replied = time.time()
        for k, m, x in exs:
            check(x.status == 200, lambda: "publish %s: %s %s" % (m, x.status, bytes(x.body)[:200]))
            mode = x.json().get("mode")
            replies[m] = (k, mode, t_sent, t_replied)
            if (mode == "redis") == up:
                since += 0.5   # up: redis answers seen by both; down: steps
    if not up:
        rs.start()
    for e in envs:
        wait_mode(e, "redis", 10)
    eq(envs[0].publish("flap", "end").get("mode"), "redis", "final publish")
    every = streams[0] + streams[1]
    env.loop.wait(lambda: all(s.events and s.events[-1].data == "end" for s in every), 10,
                  "the final message on every stream")
    dt = time.monotonic() - t0
    dups = lost_bad = lost_ok = lost_reconnecting = delivered = order_bad = late = 0
    lost_list, order_list = [], []   # (server, got first, its answer, then, its answer)
    for k, ss in streams.items():
        up_times = redis_intervals(envs[k], envs[k].pid)
        for s in ss:
            # a Redis that came back empty starts a new history: each stream is told
            # so with one reset (checked below), then goes on
            resets = [e for e in s.events if e.type == "reset"]
            check(all(e.data == '{"reason":"epoch"}' for e in resets), "resets %r" % resets[:3])
            got = [e.data for e in s.events if e.type != "reset"][:-1]
            c = collections.Counter(got)
            dups += sum(v - 1 for v in c.values() if v > 1)
            delivered += len(got)
            # publishes of one step are concurrent; steps are sequential
            # in order per publishing server; across servers, a process's catch-up after
            # its subscription came back delivers the other server's events late (after
            # local ones published meanwhile) rather than not at all
            for src in ("0", "1"):
                mine = [x for x in got if x.endswith("." + src)]
                st = [int(x[1:].split(".")[0]) for x in mine]
                order_bad += sum(1 for x, y in zip(st, st[1:]) if y < x)
                order_list += [(k, mine[i - 1], replies[mine[i - 1]][1:], mine[i], replies[mine[i]][1:])
                               for i in range(1, len(st)) if st[i] < st[i - 1]]
            st = [int(x[1:].split(".")[0]) for x in got]
            late += sum(1 for x, y in zip(st, st[1:]) if y < x)
            for m, (pk, mode, ts, tr) in replies.items():
                if c[m]:
                    continue
                if pk == k:
                    lost_bad += 1           # the publishing process: always once
                    lost_list.append((m, mode, "own server %d" % k))
                elif mode == "local":
                    lost_ok += 1            # other processes: at most once
                elif covered(up_times, ts - 0.005, tr + 0.005):
                    lost_bad += 1           # subscribed all along: must have it
                    lost_list.append((m, mode, "server %d subscribed" % k))
                else:
                    lost_reconnecting += 1  # not subscribed at the time: cannot
    n = len(replies)
    replies = [(k, mode) for k, mode, _, _ in replies.values()]
    modes = collections.Counter(m for _, m in replies)
    env.note("flapping: %d Redis stops/starts, %d published in %.1f s (%d redis, %d local), %d stream deliveries, "
             "%d duplicates, %d lost against the contract, allowed misses on the other server: %d local "
             "answers + %d redis answers while it was re-subscribing, %d out of order, %d caught up late" % (
                 toggles, n, dt, modes["redis"], modes["local"], delivered, dups, lost_bad, lost_ok,
                 lost_reconnecting, order_bad, late))
    eq(dups, 0, "duplicates")
    check(lost_bad == 0, lambda: "messages lost against the contract: %r" % lost_list[:20])
    check(order_bad == 0, lambda: "messages out of order: %d, first ones %r" % (order_bad, order_list[:6]))
    check(modes["redis"] > 0 and modes["local"] > 0, "both modes seen: %r" % modes)


@test("redis_local_publish_after_subscribed_message", loops=LOOPS)
@with_world
def local_after_subscribed(env, w):
    """The order contract across a mode change, made certain: server A's
    subscription is confirmed but its publisher never gets ready (a Relay
    swallows Redis's answers to it), so A answers "local" while its subscriber
    already carries server B's publishes. With A stopped, B publishes "first"
    (answered "redis": it is in A's subscriber socket), then "second" is sent
    to A's FastCGI socket; A resumes and finds both waiting at once. "first"
    was answered before "second" was sent, so A's stream must show it first,
    whichever descriptor A's loop serves first (select serves the lowest,
    the listen socket)."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    relay.mute_publishers()
    a, b = env, w.second_env("b")
    a.start(dict(redis_conf(relay.port, connect_timeout_ms=60000, publish_timeout_ms=2000), heartbeat=30),
            procs=1)
    b.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    a.wait_log(r"SSE: Redis subscriber ready", timeout=10)
    wait_mode(b, "redis", 10)
    s = a.open_stream("order")
    t0 = time.monotonic()
    r = a.publish("order", "zero")
    # answered once the barrier on A's subscriber came back, not at the deadline
    eq((r.get("mode"), r.get("fallback"), r.get("reason", "")[:18]), ("local", True, "Redis unavailable:"),
       "A's publish while its publisher is not ready")
    check(time.monotonic() - t0 < 1.5, "answered in %.2f s (publish_timeout_ms 2000)" % (time.monotonic() - t0))
    a.loop.wait(lambda: len(s.events) >= 1, 5, "zero on A's stream")
    os.kill(a.pid, signal.SIGSTOP)
    try:
        r = b.publish("order", "first")
        eq(r.get("mode"), "redis", "B's publish")
        a.loop.wait(lambda: b"first" in relay.sent_to_subscribers(), 5, "first in A's subscriber socket")
        x = a.fcgi("POST", "/publish/order", b"second", timeout=0)
        a.loop.wait(lambda: not x._out or x.complete, 5, "the publish written to A's FastCGI socket")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    a.loop.wait(lambda: x.complete, 5, "A's answer to the second publish")
    eq((x.status, x.json().get("mode"), x.json().get("reason", "")[:18]), (200, "local", "Redis unavailable:"),
       "A's answer to the second publish")
    a.loop.wait(lambda: len(s.events) >= 3, 5, "three events on A's stream")
    eq([e.data for e in s.events], ["zero", "first", "second"], "events on A's stream, in publish order")


@test("redis_local_publish_before_subscription_confirmed", loops=LOOPS)
@with_world
def local_before_confirmed(env, w):
    """The same race one step earlier: A's publisher is ready but its
    PSUBSCRIBE confirmations are still on their way (a Relay holds them), so A
    answers "local"; Redis already counts A as subscribed and queues server
    B's "first" behind the confirmations. With A stopped, the relay lets both
    into A's socket and "second" is sent to A's FastCGI socket; A resumes.
    A must take in the confirmations (which makes it multi-server) and
    "first" before it decides how to publish "second"."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    relay.hold_subscribers()
    a, b = env, w.second_env("b")
    a.start(dict(redis_conf(relay.port, connect_timeout_ms=60000), heartbeat=30), procs=1)
    b.start(dict(redis_conf(rs.port), heartbeat=30), procs=1)
    a.wait_log(r"SSE: Redis publisher ready", timeout=10)
    a.loop.wait(lambda: relay.held_bytes().count(b"psubscribe") == 3, 10, "A's confirmations held")
    wait_mode(b, "redis", 10)
    s = a.open_stream("order")
    r = a.publish("order", "zero")
    eq((r.get("mode"), r.get("fallback")), ("local", True), "A's publish before its subscription is confirmed")
    a.loop.wait(lambda: len(s.events) >= 1, 5, "zero on A's stream")
    os.kill(a.pid, signal.SIGSTOP)
    try:
        r = b.publish("order", "first")
        eq(r.get("mode"), "redis", "B's publish")
        a.loop.wait(lambda: b"first" in relay.held_bytes(), 5, "first held behind A's confirmations")
        relay.release()
        x = a.fcgi("POST", "/publish/order", b"second", timeout=0)
        a.loop.wait(lambda: not x._out or x.complete, 5, "the publish written to A's FastCGI socket")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    a.loop.wait(lambda: x.complete, 5, "A's answer to the second publish")
    eq((x.status, x.json().get("mode")), (200, "redis"), "A's answer to the second publish")
    a.loop.wait(lambda: len(s.events) >= 3, 5, "three events on A's stream")
    eq([e.data for e in s.events], ["zero", "first", "second"], "events on A's stream, in publish order")


@test("redis_publisher_drop_between_meta_and_payload")
@with_world
def publisher_drop_split(env, w):
    """The exact race of the publisher-kill test, made certain: a relay hands
    server A's subscriber a meta record alone and holds its payload while A's
    publisher connection is killed (CLIENT KILL ID, by name); then the payload
    arrives. Pairing belongs to the subscriber connection, which never dropped:
    A's own publish and server B's publish each reach A's stream once, named."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    base = dict(heartbeat=30)
    a, b = envs = [env, w.second_env("b")]
    a.start(dict(base, **redis_conf(relay.port, probe_interval=60, reconnect_min_ms=50,
                                    reconnect_max_ms=100, publish_timeout_ms=3000)), procs=1)
    b.start(dict(base, **redis_conf(rs.port)), procs=1)
    for e in envs:
        wait_mode(e, "redis", 10)
    s = a.open_stream("split")
    pub_name = "sse-fcgi:publisher:%s" % origins(a)[a.pid]
    for label, publisher in (("own", a), ("peer", b)):
        relay.split_after_meta()
        ex = publisher.http("POST", "/publish/split?event=ev-" + label, label.encode(),
                            {"Content-Type": "text/plain"})
        env.loop.wait(relay.holding, 5, "the relay to hold the payload after the meta record (%s)" % label)
        closed = len(re.findall(r"Redis connection closed \(publisher", a.log_text()))
        eq(kill_clients(rs, pub_name), 1, "publisher connections killed")
        a.wait_log(r"Redis connection closed \(publisher", count=closed + 1)
        check(relay.release() > 0, "payload bytes held")
        env.loop.wait(lambda: ex.complete, 5, "the publish reply (%s)" % label)
        eq((ex.status, ex.json().get("mode")), (200, "redis"), "publish reply (%s)" % label)
        wait_mode(a, "redis", 10)
    eq(a.publish("split", "end", event="end").get("mode"), "redis", "final publish")
    env.loop.wait(lambda: s.events and s.events[-1].data == "end", 5, "the final event")
    eq([(x.type, x.data) for x in s.events], [("ev-own", "own"), ("ev-peer", "peer"), ("end", "end")],
       "events on server A's stream (once each, with their names)")


MSG_ID = re.compile(r'^\{"id":"(\d+)\.(\d+)\.(\d+)"')


@test("redis_publisher_kill")
@with_world
def publisher_kill(env, w):
    """The publisher connection of one server or the other is cut
    (CLIENT KILL ID, found by its CLIENT SETNAME name) 30 times while both
    servers publish large and small named events from three sequential lanes
    each. The subscribers stay up, so: no stream gets an event twice, every
    event keeps its name (a payload whose meta record was read just before the
    publisher dropped must still pair with it), each lane's order holds, the
    publishing server's streams get all its events, and the other server's
    all those answered "redis"."""
    rs = w.redis()
    conf = dict(redis_conf(rs.port, reconnect_min_ms=20, reconnect_max_ms=100),
                heartbeat=30, stream_queue_bytes=16 * 1024 * 1024)
    envs = two_servers_up(env, w, conf, 1)
    # Operators (and this test) tell the connections apart by name.
    names = sorted(c.get("name", "") for c in client_list(rs))
    for e in envs:
        o = origins(e).get(e.pid)
        check(o is not None, "origin line in the log of pid %d" % e.pid)
        for role in ("subscriber", "publisher"):
            check("sse-fcgi:%s:%s" % (role, o) in names, lambda: "CLIENT LIST names %r lack %s of %s" % (
                names, role, o))
    streams = {k: [e.open_stream("pk", keep_raw=False) for _ in range(2)] for k, e in enumerate(envs)}
    every = streams[0] + streams[1]
    lanes = [(k, j) for k in (0, 1) for j in range(3)]
    nxt = {lane: 0 for lane in lanes}
    inflight = {}
    replies = {}   # "k.j.i" -> mode
    rnd = random.Random(9)
    pad = "x" * 60000

    def start(lane):
        k, j = lane
        i = nxt[lane]
        nxt[lane] += 1
        mid = "%d.%d.%d" % (k, j, i)
        size = rnd.choice((10, 200, 20000, 40000, 60000))
        body = ('{"id":"%s","pad":"%s"}' % (mid, pad[:size])).encode()
        inflight[lane] = (mid, envs[k].http("POST", "/publish/pk?event=e-" + mid.replace(".", "-"), body,
                                            {"Content-Type": "application/json"}))

    def collect():
        for lane, (mid, ex) in list(inflight.items()):
            if not ex.complete:
                continue
            check(ex.status == 200, lambda: "publish %s: %s %r" % (mid, ex.status, bytes(ex.body)[:200]))
            replies[mid] = ex.json().get("mode")
            del inflight[lane]
            if not stopping:
                start(lane)

    stopping = False
    for lane in lanes:
        start(lane)
    kills, t_next, t0 = 0, time.monotonic(), time.monotonic()
    while kills < 30:
        check(time.monotonic() - t0 < 60 * harness.SLOW, "30 kills took over a minute (%d done)" % kills)
        collect()
        if time.monotonic() >= t_next:
            # a rate for the faults, not a synchronisation
            kills += kill_clients(rs, "sse-fcgi:publisher:%s" % origins(envs[kills % 2])[envs[kills % 2].pid])
            t_next = time.monotonic() + 0.2
        env.loop.pump(0.005)
    stopping = True
    env.loop.wait(lambda: collect() or not inflight, 10, "the last publish replies")
    for e in envs:
        wait_mode(e, "redis", 10)
    eq(envs[0].publish("pk", "end", event="end").get("mode"), "redis", "final publish")
    env.loop.wait(lambda: all(s.events and s.events[-1].data == "end" for s in every), 20,
                  lambda: "the final event on every stream: %s" % harness.diag(every))
    dups = unnamed = order_bad = 0
    missing, examples = [], []
    for k, ss in streams.items():
        for s in ss:
            seen = collections.Counter()
            last = {}
            for ev in s.events[:-1]:
                m = MSG_ID.match(ev.data)
                check(m is not None, lambda: "unexpected event %r" % ev.data[:80])
                mid = "%s.%s.%s" % m.groups()
                seen[mid] += 1
                if seen[mid] > 1:
                    dups += 1
                    examples.append("server %d: %s twice (as %r)" % (k, mid, ev.type))
                if ev.type != "e-" + mid.replace(".", "-"):
                    unnamed += 1
                    examples.append("server %d: %s as event %r" % (k, mid, ev.type))
                lane, i = m.group(1) + "." + m.group(2), int(m.group(3))
                if i <= last.get(lane, -1):
                    order_bad += 1
                last[lane] = i
            for mid, mode in replies.items():
                if not seen[mid] and (int(mid.split(".")[0]) == k or mode == "redis"):
                    missing.append("server %d: %s (answered %s)" % (k, mid, mode))
    modes = collections.Counter(replies.values())
    env.note("%d publisher kills, %d publishes (%d redis, %d local), %d duplicates, %d without their name, "
             "%d out of order, %d missing" % (kills, len(replies), modes["redis"], modes["local"], dups, unnamed,
                                              order_bad, len(missing)))
    check(not examples, lambda: "%d duplicates, %d events without their name: %s" % (
        dups, unnamed, "; ".join(examples[:12])))
    eq(order_bad, 0, "events out of lane order")
    check(not missing, lambda: "%d events missing: %s" % (len(missing), "; ".join(missing[:12])))
    check(modes["local"] > 0, "some publishes fell back while a publisher was down: %r" % modes)


@test("redis_wrong_password", loops=LOOPS)
@with_world
def wrong_password(env, w):
    rs = w.redis(password="right-password-123")
    env.start(dict(redis_conf(rs.port, password="wrong", reconnect_min_ms=50, reconnect_max_ms=200),
                   heartbeat=30), procs=1)
    env.wait_log(r"AUTH failed: WRONGPASS.*check redis\.password / REDIS_PASSWORD")
    t0 = env.stats()["redis_reconnects"]
    env.loop.wait(lambda: env.stats()["redis_reconnects"] >= t0 + 4, 10, "retries with backoff")
    st = env.stats()
    eq(st["mode"], "local", "mode with a wrong password")
    s = env.open_stream("pw")
    r = env.publish("pw", "x")
    eq((r.get("mode"), r.get("delivered"), r.get("fallback")), ("local", 1, True), "publish")
    # the same failure is not logged again and again
    check(len([l for l in env.log_text().splitlines() if "AUTH failed" in l and "warn" in l]) <= 2,
          "repeated warnings:\n" + env.log_tail(10))
    wait_events(env, [s], 1)


@test("redis_silent", loops=LOOPS)
@with_world
def silent(env, w):
    """A 'Redis' that accepts connections and never answers: publishes are
    answered within publish_timeout_ms (here: at once, the handshake never
    completed, so the process never entered multi-server mode)."""
    sr = w.add(SilentRedis())
    env.start(dict(redis_conf(sr.port, connect_timeout_ms=300, publish_timeout_ms=400,
                              reconnect_max_ms=500), heartbeat=30), procs=1)
    env.wait_log(r"SSE: Redis connection failed, using single-server mode: no answer from Redis within 300 ms")
    s = env.open_stream("silent")
    for i in range(3):
        t = time.monotonic()
        r = env.publish("silent", "s%d" % i, timeout=2)
        dt = time.monotonic() - t
        eq((r.get("mode"), r.get("fallback")), ("local", True), "publish reply")
        check(dt < 0.4 + 0.3, "reply took %.3f s" % dt)
    wait_events(env, [s], 3)
    eq(received([s])[0], ["s0", "s1", "s2"], "events")
    check(sr.accepted >= 2, "connections accepted by the silent server: %d" % sr.accepted)


@test("redis_hung", loops=LOOPS)
@with_world
def hung(env, w):
    """Redis stops answering after the process is in multi-server mode
    (SIGSTOP): the publish is answered after publish_timeout_ms with a fallback,
    delivered locally once, and never again when Redis wakes up and runs it."""
    rs = w.redis()
    env.start(dict(redis_conf(rs.port, publish_timeout_ms=500, probe_interval=1, reconnect_max_ms=500),
                   heartbeat=30), procs=1)
    wait_mode(env, "redis", 10)
    s = env.open_stream("hung")
    eq(env.publish("hung", "a").get("mode"), "redis", "publish a")
    rs.kill(signal.SIGSTOP)
    t = time.monotonic()
    r = env.publish("hung", "b", timeout=3)
    dt = time.monotonic() - t
    eq((r.get("mode"), r.get("delivered"), r.get("fallback")), ("local", 1, True), "publish to a hung Redis")
    check("no answer" in r.get("reason", ""), "reason %r" % r.get("reason"))
    check(0.45 <= dt <= 0.5 + 0.4, "reply after %.3f s (publish_timeout_ms 500)" % dt)
    env.wait_log(r"Failed to publish to Redis, falling back to local: no answer from Redis within 500 ms")
    rs.kill(signal.SIGCONT)
    wait_mode(env, "redis", 10)
    eq(env.publish("hung", "c").get("mode"), "redis", "publish c")
    wait_events(env, [s], 3)
    eq(received([s])[0], ["a", "b", "c"], "events: b once, no late copy")


@test("redis_deaf_subscriber", loops=LOOPS)
@with_world
def deaf(env, w):
    """A relay stops forwarding to the subscriber connection: the probe finds
    it within two probe intervals, the subscriber is rebuilt, nothing twice."""
    rs = w.redis()
    relay = w.add(Relay(rs.port))
    env.start(dict(redis_conf(relay.port, probe_interval=1, publish_timeout_ms=400,
                              reconnect_min_ms=50), heartbeat=30), procs=1)
    wait_mode(env, "redis", 10)
    s = env.open_stream("deaf")
    eq(env.publish("deaf", "1").get("mode"), "redis", "publish 1")
    wait_events(env, [s], 1)
    # probes go round while the subscriber hears
    env.wait_log(r"SSE: Redis probe 2 came back", timeout=4)
    check("probe failed" not in env.log_text(), "a probe failed on a healthy subscriber")
    check(relay.deafen() == 1, "one subscriber connection through the relay")
    t = time.monotonic()
    # the echo cannot come: delivered locally at the deadline, Redis has it
    r = env.publish("deaf", "2")
    eq((r.get("mode"), r.get("delivered")), ("redis", 1), "publish while deaf")
    env.wait_log(r"SSE: Redis probe failed, rebuilding the subscriber", timeout=3)
    dt_detect = time.monotonic() - t
    wait_mode(env, "redis", 5)
    dt = time.monotonic() - t
    check(dt_detect <= 2.0 + 0.5, "deafness detected after %.2f s (probe_interval 1)" % dt_detect)
    env.note("deaf subscriber detected after %.2f s, multi-server again after %.2f s" % (dt_detect, dt))
    eq(env.publish("deaf", "3").get("mode"), "redis", "publish 3")
    wait_events(env, [s], 3)
    eq(received([s])[0], ["1", "2", "3"], "events")
    check(env.stats().get("probe_failures", 1) >= 1, "probe failures in /stats")
    check(relay.dropped > 0, "the relay swallowed the subscriber's messages")
