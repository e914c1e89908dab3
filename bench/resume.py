#!/usr/bin/python3
"""What ids, history and resume cost: memory per resource and a resume storm.

Run by `make bench` after bench/run.py (which measures publish cost with history on
and off, the sse-h0 system), or alone:

    /usr/bin/python3 bench/resume.py [--quick]

1. Memory per resource of in-process history (single-server mode): R resources get
   H = history_size events of 128 bytes each, published through nginx; sse-fcgi's RSS
   is read before and after. The same publishes with history_size = 0 give the
   baseline (what the publishing itself leaves behind), so the figure is history's own.
2. Resume storm, once in single-server mode (history in the process) and once in
   multi-server mode (history in Redis, read with XRANGE by the loop, never blocking it):
   1,000 streams reconnect at once with Last-Event-ID, each owed 100 events. Reported:
   the time from the first connect until every stream has all 100 (and the p50/p99 per
   stream), a check that each got exactly those 100 ids in order, and the latency of
   100 other streams fed 100 msg/s by sse-load throughout, with and without the storm
   (the loop kept serving them, or it did not).

Servers on CPU 0, the tools on CPU 1, as in bench/run.py. Writes
bench/results/resume.md and prints it.
"""
import argparse
import json
import os
import selectors
import socket
import sys
import tempfile
import threading
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (stacks, pinning, sse-load driver)


def pipelined_publish(port, items, depth=64):
    """POSTs (path, body) items over keep-alive connections (a fresh one every 500
    requests: nginx's keepalive_requests is 1,000), depth requests in flight; returns
    the number of 200 answers."""
    return sum(pipelined_publish_one(port, items[i:i + 500], depth) for i in range(0, len(items), 500))


def pipelined_publish_one(port, items, depth):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    ok = 0
    buf = b""
    sent = 0
    answered = 0

    def req(path, body):
        return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
                b"Content-Type: text/plain\r\n\r\n%s" % (path.encode(), len(body), body))
    try:
        while answered < len(items):
            batch = []
            while sent < len(items) and sent - answered < depth:
                batch.append(req(*items[sent]))
                sent += 1
            if batch:
                s.sendall(b"".join(batch))
            data = s.recv(262144)
            if not data:
                raise bench.BenchError("publish connection closed after %d answers" % answered)
            buf += data
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = buf[:head_end].decode("latin-1")
                clen = 0
                for line in head.split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        clen = int(v)
                if len(buf) < head_end + 4 + clen:
                    break
                if head.split(" ", 2)[1] == "200":
                    ok += 1
                buf = buf[head_end + 4 + clen:]
                answered += 1
    finally:
        s.close()
    return ok


def head_id(port, resource):
    """The resource's current head, as the reset of a malformed id names it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET /sse/%s?last_event_id=bench-malformed HTTP/1.0\r\nHost: x\r\n\r\n"
                  % resource.encode())
        buf = b""
        while b"event: reset" not in buf or b"\n\n" not in buf[buf.find(b"event: reset"):]:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        for line in buf.split(b"\n"):
            if line.startswith(b"id: "):
                return line[4:].decode()
        raise bench.BenchError("no head id in the reset: %r" % buf[-300:])
    finally:
        s.close()


def rss_kb(pid):
    return bench.read_status(pid)


def memory_per_resource(work, quick):
    resources, per = (200, 100) if quick else (1000, 100)
    payload = b"x" * 128
    out = {}
    for kind in ("sse", "sse-h0"):
        st = bench.Stack(work, "mem-" + kind, kind, 100)
        try:
            st.start()
            pid = st.sse_pids[0]
            # warm-up: the allocator's first arenas, nginx's connection pool
            pipelined_publish(st.port, [("/publish/warm%d" % (i % 10), payload) for i in range(2000)])
            before = rss_kb(pid)
            items = [("/publish/m%d" % r, payload) for _ in range(per) for r in range(resources)]
            t0 = time.time()
            ok = pipelined_publish(st.port, items)
            dt = time.time() - t0
            after = rss_kb(pid)
            out[kind] = dict(before_kb=before, after_kb=after, ok=ok, n=len(items),
                             publish_per_s=len(items) / dt)
        finally:
            st.stop()
    on, off = out["sse"], out["sse-h0"]
    grow_on = (on["after_kb"] - on["before_kb"]) * 1024
    grow_off = (off["after_kb"] - off["before_kb"]) * 1024
    return dict(resources=resources, events_per_resource=per, payload=len(payload),
                rss_growth_on_b=grow_on, rss_growth_off_b=grow_off,
                per_resource_b=(grow_on - grow_off) / resources,
                per_event_b=(grow_on - grow_off) / (resources * per),
                publish_per_s_on=on["publish_per_s"], publish_per_s_off=off["publish_per_s"],
                ok=(on["ok"] == on["n"] and off["ok"] == off["n"]))


def seq(event_id):
    """The position in an id <epoch>-<sequence> (opaque to clients; the bench may look)."""
    return int(event_id.rsplit(b"-", 1)[1])


class Storm:
    """n streams connecting at once with Last-Event-ID, each counting its ids."""

    def __init__(self, port, resource, last_id, n, want):
        self.port, self.resource, self.last_id, self.n, self.want = port, resource, last_id, n, want

    def run(self, timeout=60):
        sel = selectors.DefaultSelector()
        srcs = ["127.0.0.%d" % (2 + i % 16) for i in range(self.n)]
        req = (b"GET /sse/%s HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n"
               b"Last-Event-ID: %s\r\n\r\n" % (self.resource.encode(), self.last_id.encode()))
        conns = []
        t0 = time.monotonic()
        for i in range(self.n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((srcs[i], 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            c = dict(sock=s, sent=False, buf=b"", ids=[], done=None)
            conns.append(c)
            sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
        left = self.n
        deadline = t0 + timeout
        while left and time.monotonic() < deadline:
            for key, ev in sel.select(0.5):
                c = key.data
                s = c["sock"]
                if not c["sent"] and ev & selectors.EVENT_WRITE:
                    s.send(req)
                    c["sent"] = True
                    sel.modify(s, selectors.EVENT_READ, c)
                    continue
                if ev & selectors.EVENT_READ:
                    try:
                        d = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        d = b""
                    if not d:
                        sel.unregister(s)
                        left -= 1 if c["done"] is None else 0
                        c["done"] = c["done"] or -1
                        continue
                    c["buf"] += d
                    *lines, c["buf"] = c["buf"].split(b"\n")
                    for line in lines:
                        if line.startswith(b"id: "):
                            c["ids"].append(line[4:])
                    if c["done"] is None and len(c["ids"]) >= self.want:
                        c["done"] = time.monotonic() - t0
                        left -= 1
        t_end = time.monotonic() - t0
        for c in conns:
            c["sock"].close()
        times = sorted(c["done"] for c in conns if c["done"] not in (None, -1))
        exact = sum(1 for c in conns if len(c["ids"]) == self.want and
                    len(set(c["ids"])) == self.want and
                    all(seq(a) < seq(b) for a, b in zip(c["ids"], c["ids"][1:])))
        return dict(streams=self.n, complete=len(times), exact=exact,
                    all_live_ms=(times[-1] * 1000 if len(times) == self.n else None),
                    p50_ms=times[len(times) // 2] * 1000 if times else None,
                    p99_ms=times[min(len(times) - 1, int(len(times) * 0.99))] * 1000 if times else None,
                    loop_wall_ms=t_end * 1000)


def storm(work, mode, redis, quick):
    n, owed = 1000, 100
    st = bench.Stack(work, "storm-" + mode, "sse", n + 400,
                     redis_port=redis.port if mode == "redis" else None)
    try:
        st.start()
        payload = b'{"storm":true,"p":"' + b"x" * 100 + b'"}'
        pipelined_publish(st.port, [("/publish/storm", payload)])
        last = head_id(st.port, "storm")
        pipelined_publish(st.port, [("/publish/storm", payload)] * owed)
        rows = {}
        for phase in ("quiet", "storm"):
            # 100 bystander streams on other resources, 100 msg/s, through the storm
            args = ["--port", st.port, "--streams", 100, "--resources", 10, "--rate", 100,
                    "--duration", 4 if quick else 8, "--pub-conns", 2, "--src-addrs", 4,
                    "--payload", 128, "--label", "bystanders"] + bench.paths("sse")
            box = {}

            def load():
                try:
                    box["r"] = bench.run_load(args)
                except Exception as e:  # reported below
                    box["e"] = e
            th = threading.Thread(target=load)
            th.start()
            time.sleep(1.5 if quick else 3)   # the bystanders are up and publishing
            if phase == "storm":
                c0, t0 = st.cpu(), os.times()
                rows["storm"] = Storm(st.port, "storm", last, n, owed).run()
                c1, t1 = st.cpu(), os.times()
                hz = os.sysconf("SC_CLK_TCK")
                rows["storm"]["cpu_backend_s"] = (c1[0] - c0[0]) / hz
                rows["storm"]["cpu_front_s"] = (c1[1] - c0[1]) / hz
                rows["storm"]["cpu_tool_s"] = (t1.user - t0.user) + (t1.system - t0.system)
            th.join()
            if "e" in box:
                raise box["e"]
            rows[phase + "_bystanders"] = box["r"]
        return rows
    finally:
        st.stop()


def report(mem, storms):
    out = ["# Ids, history and resume: what they cost", ""]
    mach = bench.machine()
    out.append("Machine: %d CPUs, %s, Linux %s; %s. Servers on CPU %s, tools on CPU %s."
               % (mach["nproc"], mach["cpu"], mach["kernel"], mach["date"], bench.SERVER_CPU, bench.LOAD_CPU))
    out.append("")
    out.append("## In-process history: memory per resource (single-server mode)")
    out.append("")
    out.append("%d resources x %d events of %d bytes, published through nginx (pipelined, one "
               "connection). sse-fcgi RSS growth: %s B with history_size = 100, %s B with "
               "history_size = 0 (the publishing alone). History's own cost: **%s B per resource "
               "of %d events, %s B per event** (payload %d B). Publishes/s through nginx: %s on, "
               "%s off. All answered 200: %s."
               % (mem["resources"], mem["events_per_resource"], mem["payload"],
                  bench.fmt(mem["rss_growth_on_b"]), bench.fmt(mem["rss_growth_off_b"]),
                  bench.fmt(mem["per_resource_b"]), mem["events_per_resource"],
                  bench.fmt(mem["per_event_b"]), mem["payload"], bench.fmt(mem["publish_per_s_on"]),
                  bench.fmt(mem["publish_per_s_off"]), "yes" if mem["ok"] else "NO"))
    out.append("")
    out.append("## Resume storm: 1,000 streams reconnect at once, each owed 100 events")
    out.append("")
    out.append("| history in | streams complete / exact | all live after | per stream p50 / p99 | "
               "CPU sse-fcgi / nginx / storm client | bystander latency p50 / p99 / p99.9, quiet | same, during the storm | "
               "bystanders lost / dup |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, rows in storms.items():
        s, q, b = rows["storm"], rows["quiet_bystanders"], rows["storm_bystanders"]
        out.append("| %s | %d / %d of %d | %s ms | %s / %s ms | %.2f / %.2f / %.2f s | %s / %s / %s ms | %s / %s / %s ms | %d / %d |" % (
            "the process (single-server)" if mode == "local" else "Redis (multi-server)",
            s["complete"], s["exact"], s["streams"], bench.fmt(s["all_live_ms"]),
            bench.fmt(s["p50_ms"]), bench.fmt(s["p99_ms"]), s["cpu_backend_s"], s["cpu_front_s"],
            s["cpu_tool_s"],
            bench.fmt(q["lat_p50_ms"]), bench.fmt(q["lat_p99_ms"]), bench.fmt(q["lat_p999_ms"]),
            bench.fmt(b["lat_p50_ms"]), bench.fmt(b["lat_p99_ms"]), bench.fmt(b["lat_p999_ms"]),
            b["lost"], b["dup"]))
    out.append("")
    out.append("\"exact\": the stream got exactly the 100 ids it was owed, each once, in order. "
               "Bystanders: 100 streams on 10 other resources, 100 msg/s, measured by sse-load "
               "over the whole phase (the storm falls inside it). CPU: seconds each process used "
               "during the storm; sse-fcgi's share of the storm's wall time bounds how long its "
               "loop can have been busy, and a storm client near 100 % of the wall time means "
               "the client, not the servers, set the storm's duration.")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--out", default=bench.RESULTS)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (nginx workers run as www-data, as shipped)")
    bench.raise_nofile()
    work = tempfile.mkdtemp(prefix="sse-bench-resume-")
    os.chmod(work, 0o755)
    redis = None
    try:
        mem = memory_per_resource(work, a.quick)
        bench.log("memory: %s" % json.dumps(mem))
        storms = {"local": storm(work, "local", None, a.quick)}
        bench.log("storm, single-server: %s" % json.dumps(storms["local"]["storm"]))
        if shutil.which("redis-server"):
            redis = bench.Redis(work)
            storms["redis"] = storm(work, "redis", redis, a.quick)
            bench.log("storm, multi-server: %s" % json.dumps(storms["redis"]["storm"]))
    finally:
        if redis:
            redis.stop()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    md = report(mem, storms)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "resume.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
