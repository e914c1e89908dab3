#!/usr/bin/python3
"""Where one event's time goes at light load: publish -> nginx -> sse-fcgi ->
nginx -> browser, from syscall timestamps.

Stands up the bench's sse-fcgi stack (bench/run.py's Stack: the shipped nginx
example, substituted), opens --streams SSE streams on one resource, then
publishes --events single events --gap seconds apart while
`strace -f -ttt -T` watches the nginx worker and sse-fcgi.  For each event it
finds, on one clock, the syscalls that carry it:

    t0  the client's POST leaves (the tool's own clock, CLOCK_REALTIME)
    t1  nginx reads the POST                  (recvfrom/readv on the client fd)
    t2  nginx writes the FastCGI request      (writev to the backend)
    t3  sse-fcgi reads it                     (read of the request)
    t4  sse-fcgi's first / last stream writev (fan-out)
    t5  nginx's first / last read of an event (recvfrom on an upstream fd)
    t6  nginx's first / last write to a client (writev carrying the event)
    t7  the first / last stream receives it    (the tool's clock)

and prints the median of each stage over the events.  strace slows every
syscall it sees, so the absolute figures are inflated: read the shares.

    /usr/bin/python3 bench/hop.py [--streams 100] [--events 20] [--gap 0.1]
"""
import argparse
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402

MARK = "hopmark"


def open_stream(port, res):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /sse/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n" % res).encode())
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sse-hop-")
    os.chmod(work, 0o755)
    st = bench.Stack(work, "hop", "sse", a.streams + 10, procs=1)
    strace = None
    streams = []
    try:
        st.start()
        streams = [open_stream(st.port, "hop") for _ in range(a.streams)]
        # wait until every stream has its head (and the first bytes)
        pending = set(streams)
        deadline = time.time() + 20
        while pending and time.time() < deadline:
            r, _, _ = select.select(list(pending), [], [], 0.5)
            for s in r:
                if b"\r\n\r\n" in s.recv(65536):
                    pending.discard(s)
        if pending:
            raise SystemExit("hop: %d streams never came up" % len(pending))
        pids = st.sse_pids + st.worker_pids()
        out = os.path.join(work, "strace.txt")
        argv = ["strace", "-f", "-ttt", "-T", "-s", "2048", "-o", out,
                "-e", "trace=read,readv,recvfrom,write,writev,sendto,sendmsg,accept4,connect,close,epoll_wait"]
        for p in pids:
            argv += ["-p", str(p)]
        strace = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(1.0)                      # strace attaches asynchronously
        sent, first, last = [], [], []
        pub = socket.create_connection(("127.0.0.1", st.port))
        pub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(a.events):
            body = '{"%s":%d}' % (MARK, i)
            req = ("POST /publish/hop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode()
            t0 = time.time()
            pub.sendall(req)
            need = set(streams)
            got_first = None
            deadline = time.time() + 10
            while need and time.time() < deadline:
                r, _, _ = select.select(list(need), [], [], 1)
                now = time.time()
                for s in r:
                    if (b'"%s":%d}' % (MARK.encode(), i)) in s.recv(65536):
                        need.discard(s)
                        got_first = got_first or now
            sent.append(t0)
            first.append(got_first or now)
            last.append(now)
            pub.recv(65536)                  # the publish answer
            time.sleep(a.gap)
        pub.close()
        time.sleep(0.5)
        strace.terminate()
        strace.wait(10)
        if os.environ.get("HOP_KEEP"):
            print("strace output:", out)
        stages = analyse(out, st, sent, first, last)
        print_stages(stages, a)
    finally:
        if strace and strace.poll() is None:
            strace.kill()
        for s in streams:
            s.close()
        st.stop()
        if not os.environ.get("HOP_KEEP"):
            subprocess.run(["rm", "-rf", work])


# pid time name(args...   (a whole call, or its start "<unfinished ...>", or its end
# "<... name resumed>...": a read's data shows when it completes, a write's when it starts)
LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")


def analyse(path, st, sent, first, last):
    backend = set(st.sse_pids)
    rows = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m:
                rows.append((int(m.group(1)), float(m.group(2)), m.group(3) or m.group(4), None,
                             m.group(5), line))
    out = []
    for i, t0 in enumerate(sent):
        end = sent[i + 1] if i + 1 < len(sent) else float("inf")
        win = [r for r in rows if t0 - 0.001 <= r[1] < end]
        mark = '%s\\":%d}' % (MARK, i)
        mark2 = '"%s":%d}' % (MARK, i)

        def has(r):
            return mark in r[5] or mark2 in r[5]
        ng = [r for r in win if r[0] not in backend]
        be = [r for r in win if r[0] in backend]
        t1 = next((r[1] for r in ng if r[2] in ("recvfrom", "read", "readv") and has(r)), None)
        t2 = next((r[1] for r in ng if r[2] in ("writev", "write") and has(r)), None)
        t3 = next((r[1] for r in be if r[2] in ("read", "readv", "recvfrom") and has(r)), None)
        bw = [r[1] for r in be if r[2] in ("writev", "write") and has(r) and "data:" in r[5]]
        nr = [r[1] for r in ng if r[2] in ("recvfrom", "read", "readv") and has(r) and "data:" in r[5]]
        nw = [r[1] for r in ng if r[2] in ("writev", "write", "sendto") and has(r) and "data:" in r[5]]
        out.append(dict(t0=t0, t1=t1, t2=t2, t3=t3, t4a=bw[0] if bw else None, t4b=bw[-1] if bw else None,
                        t5a=nr[0] if nr else None, t5b=nr[-1] if nr else None,
                        t6a=nw[0] if nw else None, t6b=nw[-1] if nw else None,
                        t7a=first[i], t7b=last[i], nbw=len(bw), nnr=len(nr), nnw=len(nw)))
    return out


def print_stages(stages, a):
    def med(f):
        vals = [f(s) for s in stages]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) * 1e6 if vals else None

    def d(x, y):
        return lambda s: (s[y] - s[x]) if s[x] is not None and s[y] is not None else None
    rows = [
        ("client POST -> nginx reads it", d("t0", "t1")),
        ("nginx reads POST -> writes FastCGI request", d("t1", "t2")),
        ("nginx writes -> sse-fcgi reads the request", d("t2", "t3")),
        ("sse-fcgi reads -> first stream writev", d("t3", "t4a")),
        ("first -> last stream writev (fan-out)", d("t4a", "t4b")),
        ("sse-fcgi first writev -> nginx first read", d("t4a", "t5a")),
        ("nginx first read -> first client write", d("t5a", "t6a")),
        ("nginx first -> last client write", d("t6a", "t6b")),
        ("nginx first client write -> first stream has it", d("t6a", "t7a")),
        ("publish -> first stream has it (total)", d("t0", "t7a")),
        ("publish -> last stream has it (total)", d("t0", "t7b")),
    ]
    print("%d streams, %d events %.2f s apart; medians in us (under strace: inflated)"
          % (a.streams, a.events, a.gap))
    for label, f in rows:
        v = med(f)
        print("  %-50s %s" % (label, "–" if v is None else "%8.0f" % v))
    print("  writes per event: sse-fcgi %s, nginx reads %s, nginx writes %s" % (
        statistics.median([s["nbw"] for s in stages]), statistics.median([s["nnr"] for s in stages]),
        statistics.median([s["nnw"] for s in stages])))


if __name__ == "__main__":
    main()
