"""Thousands of streams in one process through nginx."""

import os
import time

from harness import check, eq, proc_status_field, test

N_STREAMS = int(os.environ.get("SSE_IT_STREAMS", "2500"))


def _fds(pid):
    return sorted(int(x) for x in os.listdir("/proc/%d/fd" % pid))


@test("many_streams")
def many_streams(env):
    env.start({"heartbeat": 30, "max_streams": 10000, "max_streams_per_resource": 10000})
    resources = ["doctor-%d" % (i % 5) for i in range(N_STREAMS)]
    t0 = time.monotonic()
    streams = env.open_streams(resources, max_inflight=200, timeout=60, keep_raw=False)
    t_open = time.monotonic() - t0
    bad = [s for s in streams if s.status != 200]
    check(not bad, lambda: "%d of %d streams refused: %r" % (
        len(bad), len(streams), sorted(set((s.status, s.error) for s in bad))[:5]))
    eq(env.stats().get("streams"), N_STREAMS, "stats streams")
    t1 = time.monotonic()
    delivered = 0
    for r in sorted(set(resources)):
        delivered += env.publish(r, '{"to":"%s"}' % r, timeout=10).get("delivered")
    eq(delivered, N_STREAMS, "sum of delivered")
    env.loop.wait(lambda: all(len(s.events) == 1 for s in streams), 30,
                  lambda: "the publish on every stream (%d of %d have it)" % (
                      sum(1 for s in streams if s.events), len(streams)))
    t_pub = time.monotonic() - t1
    for s, r in zip(streams, resources):
        eq(s.events[0].data, '{"to":"%s"}' % r, "event on a %s stream" % r)
    rss = proc_status_field(env.pid, "VmRSS")
    ngx = ""
    env.note("%d streams: opened in %.1fs, publish reached all in %.2fs; sse-fcgi VmRSS %s, %d fds" % (
        N_STREAMS, t_open, t_pub, rss, len(_fds(env.pid))))
    print("    many_streams: %d concurrent streams, sse-fcgi VmRSS %s" % (N_STREAMS, rss), flush=True)
    for s in streams[:N_STREAMS // 2]:
        s.close()
    env.loop.wait(lambda: env.stats().get("streams") == N_STREAMS - N_STREAMS // 2, 20,
                  "half the streams to be released")


@test("select_fd_ceiling", loops=("select",))
def select_fd_ceiling(env):
    """The select backend clamps max_streams below FD_SETSIZE: more streams
    than that are refused with 503 and no descriptor reaches 1024."""
    env.start({"heartbeat": 30, "max_streams": 5000, "max_streams_per_resource": 5000})
    # 20 requests in flight at most: the reserve between the clamp and
    # FD_SETSIZE must cover connections waiting for their answer
    streams = env.open_streams(["wide"] * 1100, max_inflight=20, timeout=60, keep_raw=False)
    ok = [s for s in streams if s.status == 200]
    refused = [s for s in streams if s.status != 200]
    env.note("select backend: %d of 1100 streams opened, %d refused" % (len(ok), len(refused)))
    check(refused, "1100 streams all opened under select (FD_SETSIZE 1024)")
    check(all(s.status == 503 for s in refused),
          "refused with %r (want 503)" % sorted(set(s.status for s in refused)))
    check(len(ok) >= 512, "only %d streams under select" % len(ok))
    fds = _fds(env.pid)
    check(fds[-1] < 1024, "descriptor %d >= FD_SETSIZE in the select backend" % fds[-1])
    eq(env.stats().get("streams"), len(ok), "stats streams")
    eq(env.publish("wide", "all").get("delivered"), len(ok), "delivered")
    env.loop.wait(lambda: all(len(s.events) == 1 for s in ok), 20, "the event on every open stream")
