"""Bounded work and bounded memory: a FastCGI peer that floods the socket, streams
whose clients read while large events arrive, memory given back after a burst."""

import os
import signal
import socket
import struct
import threading
import time

from harness import (SANITIZE, SLOW, TestSkip, check, eq, fcgi_record, FCGI_BEGIN_REQUEST,
                     proc_status_field, run_binary, test)

FCGI_GET_VALUES = 9


def _raw_peer(env):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(env.sock)
    s.sendall(fcgi_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 0)))
    return s


def _beat_gaps(streams, t0, t1):
    worst = 0.0
    for s in streams:
        stamps = [t for t, _ in s.sse.comments if t0 <= t <= t1]
        gaps = [b - a for a, b in zip([t0] + stamps, stamps + [t1])]
        worst = max(worst, max(gaps))
    return worst


@test("loop_flood")
def loop_flood(env):
    """A peer streaming 8-byte FCGI_GET_VALUES records after its BEGIN_REQUEST as fast
    as it can, and another trickling them, while five streams keep a 1 s heartbeat:
    the flooder is cut once its bytes pass the request size limit, the trickler by the
    request timeout, and no heartbeat is late meanwhile."""
    env.start({"heartbeat": 1})
    streams = [env.open_stream("beat", keep_raw=False) for _ in range(5)]
    env.loop.wait(lambda: all(len(s.sse.comments) >= 1 for s in streams), 3, "first heartbeats")
    junk = struct.pack(">BBHHBB", 1, FCGI_GET_VALUES, 0, 0, 0, 0)
    block = junk * (1 << 17)   # 1 MiB of records
    flooder, trickler = _raw_peer(env), _raw_peer(env)
    result = {"flood_sent": 0, "flood_cut": None, "trickle_cut": None}
    stop = threading.Event()
    t_start = time.monotonic()

    def flood():
        try:
            while not stop.is_set():
                flooder.sendall(block)
                result["flood_sent"] += len(block)
        except OSError:
            result["flood_cut"] = time.monotonic() - t_start

    def trickle():
        try:
            while not stop.is_set():
                trickler.sendall(junk * 64)   # ~5 KB/s: under the size limit in 10 s
                time.sleep(0.1)
        except OSError:
            result["trickle_cut"] = time.monotonic() - t_start

    threads = [threading.Thread(target=flood), threading.Thread(target=trickle)]
    for t in threads:
        t.daemon = True
        t.start()
    t0 = time.monotonic()
    # the trickler must be cut by the 10 s request timeout; heartbeats meanwhile
    env.loop.wait(lambda: result["trickle_cut"] is not None, 10 + 5 * SLOW, "the trickling peer to be cut")
    t1 = time.monotonic()
    stop.set()
    for t in threads:
        t.join(5)
    flooder.close()
    trickler.close()
    worst = _beat_gaps(streams, t0, t1)
    env.note("flooder cut after %.2fs and %.1f MB; trickler cut after %.1fs; largest heartbeat gap %.2fs" % (
        result["flood_cut"] or -1, result["flood_sent"] / 1e6, result["trickle_cut"], worst))
    check(result["flood_cut"] is not None and result["flood_cut"] < 2 * SLOW,
          "the flooding peer was not cut within %.0fs (sent %.1f MB)" % (2 * SLOW, result["flood_sent"] / 1e6))
    check(result["trickle_cut"] >= 9.5, "the trickling peer was cut after %.1fs, before its timeout" % result["trickle_cut"])
    check(worst <= 1.75, "a stream was silent for %.2fs with heartbeat = 1 (the loop was held)" % worst)
    log = env.log_text()
    check("request head over" in log, "no log line for the flooder's size limit")
    check("request head not complete after 10000 ms" in log, "no log line for the trickler's timeout")
    for s in streams:
        check(not s.complete, "a stream ended")
    eq(env.stats().get("streams"), 5, "streams after the peers")


def _all_got(env, streams, n, what, timeout=10):
    env.loop.wait(lambda: all(len(s.events) >= n or s.complete for s in streams), timeout,
                  lambda: "%s: %r events" % (what, [len(s.events) for s in streams]))


@test("queue_bound_newlines")
def queue_bound_newlines(env):
    """With the default limits, a 64 KiB payload of line breaks (~384 KiB on the wire)
    queued behind another event (or a heartbeat) in the same turn reaches every stream
    whose client reads: the process is stopped while both publishes arrive."""
    env.start({"heartbeat": 1})
    streams = [env.open_stream("lines", keep_raw=False) for _ in range(3)]
    env.loop.wait(lambda: all(len(s.sse.comments) >= 1 for s in streams), 3, "first heartbeats")
    pid = env.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        pubs = [env.fcgi("POST", "/publish/lines", b"before", timeout=0)]
        env.loop.wait(lambda: not pubs[0]._out, 5, "the first publish to be written to the stopped process")
        pubs.append(env.fcgi("POST", "/publish/lines", b"\n" * 65536, timeout=0))
        env.loop.wait(lambda: not pubs[1]._out, 5, "the second publish to be written to the stopped process")
    finally:
        os.kill(pid, signal.SIGCONT)
    env.loop.wait(lambda: all(p.complete for p in pubs), 10, "the publish replies")
    for p in pubs:
        eq(p.status, 200, "publish status")
        eq(p.json().get("delivered"), 3, "delivered")
    env.publish("lines", "after")
    _all_got(env, streams, 3, "three events")
    for s in streams:
        check(not s.complete, "a stream whose client reads was closed (error %s)" % s.error)
        eq(len(s.events), 3, "events")
        eq(s.events[0].data, "before", "first event")
        check(s.events[1].data == "\n" * 65536, "the line-break payload came back altered (%d bytes)" % len(s.events[1].data))
        eq(s.events[2].data, "after", "third event")
    # a heartbeat queued beside it: the streams got theirs and are still open
    env.loop.wait(lambda: all(s.sse.comments and s.sse.comments[-1][0] > s.events[2].t for s in streams), 3,
                  "a heartbeat after the events")
    eq(env.stats().get("dropped_slow"), 0, "dropped_slow")
    eq(env.stats().get("streams"), 3, "streams")


@test("queue_bound_burst")
def queue_bound_burst(env):
    """With the default limits, four 64 KiB publishes handled in one turn of the loop (the
    process is stopped while they arrive) reach every stream whose client reads."""
    env.start({"heartbeat": 30})
    streams = [env.open_stream("burst", keep_raw=False) for _ in range(3)]
    bodies = [(("%d" % i) * 65536)[:65536].encode() for i in range(4)]
    pid = env.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        pubs = [env.fcgi("POST", "/publish/burst", body, timeout=0) for body in bodies]
        env.loop.wait(lambda: all(not p._out for p in pubs), 5, "the 4 publishes to be written to the stopped process")
    finally:
        os.kill(pid, signal.SIGCONT)
    env.loop.wait(lambda: all(p.complete for p in pubs), 10, "the 4 publish replies")
    for p in pubs:
        eq(p.status, 200, "publish status")
        eq(p.json().get("delivered"), 3, "delivered")
    _all_got(env, streams, 4, "4 events")
    for s in streams:
        check(not s.complete, "a stream whose client reads was closed (error %s)" % s.error)
        eq(sorted(e.data for e in s.events), sorted(b.decode() for b in bodies), "events")
    eq(env.stats().get("dropped_slow"), 0, "dropped_slow")


@test("queue_bound_check")
def queue_bound_check(env):
    """`sse-fcgi -t` refuses a queue bound that the largest encoded message cannot fit,
    in one line naming the file, the line and the key."""
    path = os.path.join(env.dir, "small-queue.conf")
    with open(path, "w") as f:
        f.write("heartbeat = 5\nmax_message_bytes = 65536\nstream_queue_bytes = 262144\n")
    p = run_binary(["-t", "-c", path], env.san_dir)
    err = p.stderr.decode(errors="replace").strip()
    eq(p.returncode, 1, "sse-fcgi -t exit status on a queue below the largest message")
    eq(len(err.splitlines()), 1, "stderr lines")
    check(path + ":3: stream_queue_bytes: " in err, "stderr does not name file, line 3 and key: %r" % err)
    check("393473" in err, "stderr does not say what the largest message needs: %r" % err)
    # 393473 = 64 KiB of line breaks framed, the longest event name, the longest id line
    # (history is on by default), FastCGI record headers; without ids 58 bytes less
    for conf, ok in (("stream_queue_bytes = 393473\n", True),
                     ("stream_queue_bytes = 393472\n", False),
                     ("stream_queue_bytes = 393415\nhistory_size = 0\n", True),
                     ("stream_queue_bytes = 393414\nhistory_size = 0\n", False)):
        with open(path, "w") as f:
            f.write("max_message_bytes = 65536\n" + conf)
        p = run_binary(["-t", "-c", path], env.san_dir)
        eq(p.returncode, 0 if ok else 1, "sse-fcgi -t on %r (stderr %r)" % (conf, p.stderr[:300]))


def _publish_many(env, resource, payloads, inflight=32, timeout=60):
    """FastCGI publishes straight to the socket, inflight at a time."""
    pending = list(reversed(payloads))
    live = []
    deadline = time.monotonic() + timeout * SLOW
    while pending or live:
        while pending and len(live) < inflight:
            live.append(env.fcgi("POST", "/publish/" + resource, pending.pop(), timeout=0))
        env.loop.pump(0.05)
        for ex in [x for x in live if x.complete]:
            check(ex.status == 200, lambda: "publish: %s %r" % (ex.status, bytes(ex.body)[:100]))
            ex.close()
            live.remove(ex)
        check(time.monotonic() < deadline, "publishes took over %.0fs" % (timeout * SLOW))


def _rss_kb(pid):
    return int(proc_status_field(pid, "VmRSS").split()[0])


def _slow_burst(env, resource, n_streams, n_events):
    """n_streams FastCGI streams that stop reading until n_events tiny events are
    queued behind a full socket, then read everything; returns (streams, peak RSS)."""
    streams = [env.fcgi("GET", "/sse/" + resource, sse=True, read=False) for _ in range(n_streams)]
    env.loop.wait(lambda: env.request("GET", "/publish/" + resource).json().get("streams") == n_streams,
                  5, "the streams to be registered")
    # fill each socket first, so what follows waits in sse-fcgi's queues
    _publish_many(env, resource, [(b"f%d" % i) * 12000 for i in range(5)])
    _publish_many(env, resource, [b"%d" % (i % 10) for i in range(n_events)])
    peak = _rss_kb(env.pid)
    for s in streams:
        s.set_reading(True)
    total = 5 + n_events
    env.loop.wait(lambda: all(len(s.events) >= total or s.complete for s in streams), 30 * SLOW,
                  lambda: "every event on the slow streams (%r)" % [len(s.events) for s in streams])
    for s in streams:
        check(not s.complete, "a slow stream was closed (error %s)" % s.error)
        eq(len(s.events), total, "events on a slow stream")
    return streams, peak


@test("memory_returned")
def memory_returned(env):
    """Streams whose clients stop reading while thousands of tiny events arrive hold
    them (queue and ring), and give the memory back once they have caught up: RSS after
    a burst returns to within 5 % of what it was before it."""
    if SANITIZE:
        raise TestSkip("the sanitizer's allocator keeps freed memory: RSS says nothing there")
    env.start({"heartbeat": 30, "max_streams_per_resource": 100, "stream_queue_soft_bytes": 0})
    # one burst first, on other streams, so the allocator's arenas have their working size
    warm, _ = _slow_burst(env, "warm", 20, 6000)
    for s in warm:
        s.close()
    env.loop.wait(lambda: env.stats().get("streams") == 0, 5, "the first streams to close")
    before = _rss_kb(env.pid)
    streams, peak = _slow_burst(env, "tiny", 20, 6000)
    # sse-fcgi frees a drained backlog and trims the heap in the loop pass that wrote
    # the last queued bytes of the last blocked stream; the clients can read those
    # bytes before that pass ends, so a request answered by the same loop is what says
    # it is over: RSS read after it measures the memory given back, not a race with it.
    eq(env.stats().get("streams"), 20, "streams after catching up")
    after = _rss_kb(env.pid)
    env.note("VmRSS before the burst %d kB, at its peak %d kB, after catching up %d kB" % (before, peak, after))
    check(peak > before + 1024, "the burst did not hold memory (%d kB -> %d kB): not a test" % (before, peak))
    check(after <= before * 1.05, "RSS %d kB after catching up, %d kB before (over 5 %%)" % (after, before))
