"""Streams coming and going: disconnects, slow consumers, SIGTERM,
heartbeats under a half-sent request, running out of descriptors."""

import os
import signal
import struct
import time

from harness import (SLOW, check, describe_status, eq, fail, fcgi_params, fcgi_record,
                     FCGI_BEGIN_REQUEST, FCGI_PARAMS, pid_alive, pids_with_cmdline,
                     proc_cpu_seconds, proc_fd_count, test)
from test_basics import barrier


def _streams_count(env, resource=None):
    if resource is None:
        return env.stats().get("streams")
    return env.request("GET", "/publish/" + resource).json().get("streams")


@test("disconnect_cleanup", loops=(None, "select"))
def disconnect_cleanup(env):
    env.start({"heartbeat": 30})
    streams = [env.open_stream("doctor-5") for _ in range(15)]
    eq(_streams_count(env), 15, "stats streams")
    for s in streams[:10]:
        s.close()
    env.loop.wait(lambda: _streams_count(env) == 5, 5, "stats streams to drop from 15 to 5")
    eq(_streams_count(env, "doctor-5"), 5, "GET /publish/doctor-5 streams")
    st = env.stats()
    eq(st.get("resources"), 1, "resources")
    barrier(env, "doctor-5", streams[10:])
    for s in streams[10:]:
        s.close()
    env.loop.wait(lambda: _streams_count(env) == 0, 5, "stats streams to drop to 0")
    eq(env.stats().get("resources"), 0, "resources once every stream left")


def _payload(i, size):
    head = '{"seq":%05d,"pad":"' % i
    return head + ("%05d" % i) * ((size - len(head) - 2) // 5) + '"}'


@test("slow_consumer")
def slow_consumer(env):
    """One client that never reads is cut once stream_queue_bytes is queued for
    it; every other stream gets every event, in order, meanwhile."""
    # stream_queue_bytes must hold the largest encoded message (a config rule):
    # 98k for 16384 bytes of line breaks
    env.start({"heartbeat": 30, "stream_queue_bytes": 131072, "stream_queue_soft_bytes": 0,
               "max_message_bytes": 16384})
    fast = [env.open_stream("feed", keep_raw=False) for _ in range(4)]
    slow = env.stream("feed", read=False, rcvbuf=4096, keep_raw=False)
    env.loop.wait(lambda: _streams_count(env, "feed") == 5, 5, "the slow stream to be registered")
    size = 16000
    sent = 0
    dropped = False
    t0 = time.monotonic()
    while sent < 1500:
        r = env.publish("feed", _payload(sent, size), timeout=5)
        sent += 1
        if sent % 5 == 0:
            st = env.stats()
            if st.get("dropped_slow", 0) >= 1:
                dropped = True
                break
    check(dropped, "the non-reading stream was never cut after %d publishes of %d bytes (%.1f MB)" % (
        sent, size, sent * size / 1e6))
    env.note("slow stream cut after %d publishes of %d bytes (%.1fs)" % (sent, size, time.monotonic() - t0))
    for _ in range(3):
        r = env.publish("feed", _payload(sent, size))
        sent += 1
        eq(r.get("delivered"), 4, "delivered once the slow stream is gone")
    env.loop.wait(lambda: all(len(s.events) >= sent for s in fast), 20,
                  lambda: "%d events on every fast stream (have %r)" % (sent, [len(s.events) for s in fast]))
    for s in fast:
        check(not s.complete, "a fast stream was closed")
        eq(len(s.events), sent, "events on a fast stream")
        for i, e in enumerate(s.events):
            if e.data != _payload(i, size):
                fail("fast stream event %d out of order or altered: %r" % (i, e.data[:40]))
    eq(env.stats().get("dropped_slow"), 1, "dropped_slow")
    eq(_streams_count(env, "feed"), 4, "streams on feed after the cut")
    # the cut stream ends once its client reads what was queued
    slow.set_reading(True)
    env.loop.wait(lambda: slow.complete, 20, "the cut stream's connection to end")
    got = slow.events
    check(len(got) < sent, "the cut stream got every event")
    for i, e in enumerate(got):
        if e.data != _payload(i, size):
            fail("cut stream event %d altered or out of order: %r" % (i, e.data[:40]))


@test("sigterm", loops=(None, "select"))
def sigterm(env):
    env.start({"heartbeat": 30, "retry": 3000})
    streams = [env.open_stream("doctor-%d" % (i % 3)) for i in range(9)]
    r = env.publish("doctor-0", "before")
    eq(r.get("delivered"), 3, "delivered")
    env.loop.wait(lambda: all(len(s.events) == 1 for s in streams[0::3]), 5, "the event before SIGTERM")
    pid = env.pid
    os.kill(pid, signal.SIGTERM)
    env.loop.wait(lambda: all(s.complete for s in streams), 10, "every stream to end after SIGTERM")
    env.stop_backend(None, 10)  # already signalled: collect the exit status
    st = env.exit_status.get(pid)
    check(st is not None, "sse-fcgi did not exit after SIGTERM")
    check(st in (0, -1), "sse-fcgi after SIGTERM: %s (want exit 0)" % (describe_status(st) if st != -1 else st))
    retries = []
    for s in streams:
        check(s.clean_end, "stream %s ended without the closing chunk (error %s)" % (s.label, s.error))
        check(len(s.sse.retries) >= 2, "stream %s got no retry: line before the end (retries %r)" % (
            s.label, s.sse.retries))
        retries.append(s.sse.retries[-1][1])
        check(s.sse.retries[-1][0] >= s.sse.retries[0][0], "retry order")
    env.note("final retry values: %s" % sorted(retries))
    check(not pid_alive(pid), "sse-fcgi pid %d still alive" % pid)
    check(not [p for p in pids_with_cmdline(env.conf_path)], "a process with our config is still running")
    log = env.log_text()
    check(log, "empty log")
    # the socket no longer answers: nginx says 502
    ex = env.request("GET", "/sse/doctor-0")
    check(ex.status in (502, 503, 504), "stream after shutdown: %s" % ex.status)


@test("heartbeat_half_request", loops=(None, "select"))
def heartbeat_half_request(env):
    """A FastCGI peer that sent half its request head must not stall the loop."""
    env.start({"heartbeat": 1})
    s = env.open_stream("beat")
    env.loop.wait(lambda: len(s.sse.comments) >= 1, 3, "a first heartbeat comment")
    # BEGIN_REQUEST and half the PARAMS record, then silence
    params = fcgi_record(FCGI_PARAMS, fcgi_params("GET", "/sse/half"))
    raw = fcgi_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 0)) + params[:len(params) // 2]
    half = env.fcgi("GET", "/sse/half", raw=raw, sse=True)
    env.loop.wait(lambda: not half._out, 2, "the half request to be written")
    # window 1: idle stream, heartbeats must keep their rhythm
    t0 = time.monotonic()
    n0 = len(s.sse.comments)
    env.loop.run_for(3.2)
    t1 = time.monotonic()
    stamps = [t for t, _ in s.sse.comments if t0 <= t <= t1]
    gaps = [b - a for a, b in zip([t0] + stamps, stamps + [t1])]
    beats = len(stamps)
    # window 2: publishes answered at once and delivered
    pubs = []
    for i in range(3):
        tp = time.monotonic()
        r = env.publish("beat", "during-%d" % i, timeout=2)
        pubs.append(time.monotonic() - tp)
        eq(r.get("delivered"), 1, "publish while a request is half-sent")
    env.loop.wait(lambda: len(s.events) == 3, 2, "every publish on the stream")
    env.note("heartbeats in %.1fs: %d, largest silence %.2fs, slowest publish reply %.3fs" % (
        t1 - t0, beats, max(gaps), max(pubs)))
    check(beats >= 2, "only %d heartbeats in %.1fs with heartbeat = 1 (half-sent request stalls the loop?)" % (beats, t1 - t0))
    check(max(gaps) <= 1.75, "stream silent for %.2fs with heartbeat = 1" % max(gaps))
    check(max(pubs) < 1.0 * SLOW, "a publish reply took %.2fs" % max(pubs))
    if half.complete:
        env.note("the backend closed the half-sent request itself (status %s)" % half.status)
    half.close()
    eq(env.stats().get("streams"), 1, "streams once the half request is gone")


@test("low_nofile")
def low_nofile(env):
    """Started under `ulimit -n 64`: extra streams get 503, the process keeps
    answering and does not spin."""
    env.start({"heartbeat": 1, "max_streams": 5000, "max_streams_per_resource": 5000}, nofile=64)
    env.wait_log(r"stream ceiling")
    ceiling_line = [l for l in env.log_text().splitlines() if "stream ceiling" in l]
    env.note("log: %s" % ceiling_line[0].strip()[-120:])
    streams = env.open_streams(["r%d" % (i % 4) for i in range(90)], max_inflight=15, timeout=20)
    ok = [s for s in streams if s.status == 200]
    refused = [s for s in streams if s.status != 200]
    codes = sorted(set(s.status for s in refused))
    env.note("90 streams under nofile 64: %d opened, %d refused %s" % (len(ok), len(refused), codes))
    check(ok, "no stream opened at all")
    check(refused, "all 90 streams opened with 64 descriptors?")
    for s in refused:
        check(s.status == 503, "refused stream: %s %s (want 503)" % (s.status, s.error))
        check((s.header("retry-after") or "").isdigit(), "503 without Retry-After")
    check(proc_fd_count(env.pid) <= 64, "fd count above the limit")
    # responsive and idle: more refused attempts, stats, publishes; CPU stays low
    cpu0 = proc_cpu_seconds(env.pid)
    t0 = time.monotonic()
    extra = env.open_streams(["r0"] * 10, max_inflight=10, timeout=10)
    for s in extra:
        eq(s.status, 503, "stream at the descriptor ceiling")
    eq(env.stats().get("streams"), len(ok), "stats streams at the ceiling")
    for r in ("r0", "r1", "r2", "r3"):
        want = sum(1 for s in ok if s.label.endswith("/" + r))
        eq(env.publish(r, "ping-" + r).get("delivered"), want, "delivered on %s" % r)
    beat0 = len(ok[0].sse.comments)
    env.loop.wait(lambda: len(ok[0].sse.comments) >= beat0 + 2, 4, "two heartbeats at the ceiling")
    cpu = proc_cpu_seconds(env.pid) - cpu0
    dt = time.monotonic() - t0
    env.note("backend CPU %.2fs over %.1fs at the ceiling" % (cpu, dt))
    check(cpu < 0.5 * SLOW, "backend used %.2fs CPU in %.1fs at the descriptor ceiling (spinning?)" % (cpu, dt))
    for s in ok:
        check(any(e.data.startswith("ping-") for e in s.events), "a stream missed the publish")
    # room again after some streams leave
    for s in ok[:5]:
        s.close()
    env.loop.wait(lambda: env.stats().get("streams") == len(ok) - 5, 5, "streams to drop by 5")
    env.open_stream("r0")
