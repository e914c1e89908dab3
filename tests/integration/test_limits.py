"""Bounded work and bounded memory: a FastCGI peer that floods the socket, streams
whose clients read while large events arrive, memory given back after a burst."""

import socket
import struct
import threading
import time

from harness import (SLOW, check, eq, fcgi_record, FCGI_BEGIN_REQUEST, test)

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
