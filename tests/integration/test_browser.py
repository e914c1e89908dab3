"""The demo in a real browser, and the demo's run script.

browser_demo: headless Debian chromium, driven over the DevTools protocol on a
pipe (--remote-debugging-pipe: NUL-separated JSON on fds 3 and 4, Python
stdlib only, no npm), opens examples/demo/ served by the shipped nginx.conf
and checks what a patient would see: a publish changes the page without a
reload; after the backend crashes and is restarted at once, each EventSource
goes CONNECTING -> OPEN by itself; after a graceful stop with the backend left
down, nginx answers 502, EventSource gives up (CLOSED) and the page's few
lines of script open a new one once the backend is back; a second tab over
max_streams_per_resource gets 429 and gets in when the first tab closes.
Throughout, the first tab never navigates (CDP frameNavigated count and a
marker in window).

browser_run_demo, browser_run_demo[nonroot]: examples/run-demo.sh started as a
user would (PORT on a free port), its printed URL and curl lines used as
printed, Ctrl-C to its process group, then nothing of it may be left.

demo_as_typed[make run], demo_as_typed[sh examples/run-demo.sh]: the README's
commands exactly as typed, from the repository, with a user's environment (no
PORT, no test binary: the command builds ./sse-fcgi itself) on the default
port 8080; only when 8080 is taken here does the test use another port, and it
prints a NOTE saying so.
"""

import json
import os
import pwd
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import time

from front_helpers import Apache
from harness import (BIN, NGINX_EXAMPLE, NGINX_FASTCGI_PARAMS, REPO, SLOW, WORKER_USER, check,
                     clean_environ, eq, fail, free_port, pid_alive, pids_with_cmdline,
                     substitute_nginx_conf, test, wait_pid_exit)

DEMO_SRC = os.path.join(REPO, "examples", "demo")
RUN_DEMO = os.path.join(REPO, "examples", "run-demo.sh")
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
# The shipped page root; the demo and this test move it like the other paths
# (see the substitution table in tests/integration/README.md).
SHIPPED_ROOT = "/var/www/sse-fcgi-demo"


# ---------------------------------------------------------------- nginx + page

def copy_page(env):
    """<dir>/www: a copy of examples/demo/ readable by the workers (www-data)."""
    www = os.path.join(env.dir, "www")
    shutil.copytree(DEMO_SRC, www)
    os.chmod(www, 0o755)
    for f in os.listdir(www):
        os.chmod(os.path.join(www, f), 0o644)
    return www


def start_nginx_with_page(env):
    """env.start_nginx(), plus one rule of the documented substitution that
    the generic harness leaves alone: the page root moves to <dir>/www, which
    gets a copy of examples/demo/."""
    www = copy_page(env)
    env.port = free_port()
    with open(NGINX_EXAMPLE) as f:
        text = f.read()
    text = substitute_nginx_conf(text, env.port, env.sock, env.ngx_log,
                                 os.path.join(env.run_dir, "nginx.pid"), env.ngx_tmp)
    text, n = re.subn(r"(?m)^(\s*root\s+)%s(\s*;)" % re.escape(SHIPPED_ROOT),
                      lambda m: m.group(1) + www + m.group(2), text)
    eq(n, 1, "examples/nginx/nginx.conf: `root %s;` lines" % SHIPPED_ROOT)
    conf = os.path.join(env.ngx_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    shutil.copy(NGINX_FASTCGI_PARAMS, os.path.join(env.ngx_dir, "fastcgi_params"))
    out = open(os.path.join(env.ngx_log, "nginx.stdout"), "w")
    env.nginx = subprocess.Popen(
        ["nginx", "-p", env.ngx_dir + "/", "-c", conf,
         "-e", os.path.join(env.ngx_log, "error.log"), "-g", "daemon off;"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    deadline = time.monotonic() + 10 * SLOW
    while True:
        if env.nginx.poll() is not None:
            fail("nginx exited %s: %s" % (env.nginx.returncode, env.nginx_log()))
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", env.port))
            s.close()
            return
        except OSError:
            s.close()
        if time.monotonic() > deadline:
            fail("nginx not listening on %d after 10s: %s" % (env.port, env.nginx_log()))
        env.loop.run_for(0.01)


# ---------------------------------------------------------------- DevTools over a pipe

class Chromium:
    """Headless chromium and its DevTools protocol over --remote-debugging-pipe."""

    def __init__(self, env):
        self.env = env
        self.binary = next((b for b in CHROMIUM_CANDIDATES if os.access(b, os.X_OK)), None)
        if self.binary is None:
            fail("no chromium (%s): `sh tests/deps.sh` installs Debian's chromium" %
                 " or ".join(CHROMIUM_CANDIDATES))
        self.profile = os.path.join(env.dir, "chromium-profile")
        os.makedirs(self.profile)
        self.log_path = os.path.join(env.dir, "chromium.log")
        self.next_id = 0
        self.replies = {}
        self.events = []            # (sessionId, method, params)
        self.buf = b""
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def child_fds():
            # fds 3 and 4 are the protocol pipe; dup first so that a pipe end
            # that already sits on 3 or 4 is not closed by its own dup2.
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [self.binary, "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-default-browser-check", "--disable-dev-shm-usage", "--disable-extensions",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--mute-audio", "--password-store=basic",
                "--user-data-dir=" + self.profile, "--remote-debugging-pipe", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        env_vars = clean_environ()
        env_vars["HOME"] = self.profile     # keeps ~/.config, ~/.cache out of root's home
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False, env=env_vars,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        os.set_blocking(self.from_chrome, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.from_chrome, selectors.EVENT_READ)
        self.call("Browser.getVersion", timeout=15)

    # -- protocol
    def _pump(self, timeout):
        if not self.sel.select(max(timeout, 0)):
            return
        try:
            data = os.read(self.from_chrome, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            fail("chromium closed its DevTools pipe (exit %s); log tail:\n%s" % (
                self.proc.poll(), self.log_tail()))
        self.buf += data
        while b"\0" in self.buf:
            raw, _, self.buf = self.buf.partition(b"\0")
            msg = json.loads(raw)
            if "id" in msg:
                self.replies[msg["id"]] = msg
            else:
                self.events.append((msg.get("sessionId"), msg.get("method"), msg.get("params", {})))

    def call(self, method, params=None, session=None, timeout=10):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.to_chrome, data)
            data = data[n:]
        deadline = time.monotonic() + timeout * SLOW
        while mid not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("chromium: no reply to %s within %.0fs; log tail:\n%s" % (
                    method, timeout * SLOW, self.log_tail()))
            self._pump(min(left, 0.05))
        reply = self.replies.pop(mid)
        if "error" in reply:
            fail("chromium: %s failed: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def wait(self, pred, timeout, what):
        """Poll pred() (which may talk to the page) until true; fail after
        timeout*SLOW with what() in the message."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            if pred():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                fail("timed out after %.1fs waiting for %s" % (
                    timeout * SLOW, what() if callable(what) else what))
            self._pump(min(left, 0.05))

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [l for l in f.read().splitlines() if "dbus" not in l]
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def close(self):
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(10 * SLOW)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.sel.close()
        for fd in (self.to_chrome, self.from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass


class Tab:
    """One page target, attached with a flat session."""

    def __init__(self, browser, url):
        self.b = browser
        self.target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget",
                                    {"targetId": self.target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.url = url
        self.call("Page.navigate", {"url": url})
        self.b.wait(lambda: self._seen("Page.loadEventFired"), 10, "load event of %s" % url)
        self.navigations_at_load = self.navigations()
        eq(self.navigations_at_load, 1, "main-frame navigations after opening %s" % url)

    def call(self, method, params=None, timeout=10):
        return self.b.call(method, params, self.session, timeout)

    def _seen(self, method):
        return any(s == self.session and m == method for s, m, _ in self.b.events)

    def navigations(self):
        """Main-frame navigations of this tab that the browser reported."""
        return sum(1 for s, m, p in self.b.events
                   if s == self.session and m == "Page.frameNavigated"
                   and not p.get("frame", {}).get("parentId")
                   and p.get("frame", {}).get("url", "").startswith("http"))

    def errors(self):
        return [p.get("exceptionDetails", {}).get("exception", {}).get("description")
                or p.get("exceptionDetails", {}).get("text")
                for s, m, p in self.b.events if s == self.session and m == "Runtime.exceptionThrown"]

    def js(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            fail("page script error in %r: %s" % (expr, r["exceptionDetails"]))
        return r.get("result", {}).get("value")

    def demo(self):
        return self.js("JSON.parse(JSON.stringify(window.sseDemo || null))")

    def text(self, selector):
        return self.js("(function(){var e=document.querySelector(%s);return e?e.textContent:null})()"
                       % json.dumps(selector))

    def wait_text(self, selector, want, timeout=5):
        self.b.wait(lambda: self.text(selector) == want, timeout,
                    lambda: "%s to read %r in the page (reads %r; page saw %s)" % (
                        selector, want, self.text(selector), self.summary()))

    def summary(self):
        d = self.demo()
        if not d:
            return "no window.sseDemo"
        return "; ".join("%s: %s instances=%d opens=%d gaveUp=%d events=%d" % (
            k, v["state"], v["instances"], v["opens"], v["gaveUp"], v["events"])
            for k, v in d["streams"].items()) + "; transitions %s" % d["transitions"][-8:]

    def close(self):
        self.b.call("Target.closeTarget", {"targetId": self.target})


# ---------------------------------------------------------------- the browser test

DOCTOR, APPOINTMENT = "doctor-123", "appointment-42"


def _publish(env, resource, payload, event=None, delivered=1):
    r = env.publish(resource, json.dumps(payload), event=event)
    eq(r.get("delivered"), delivered, "delivered count of a publish to %s" % resource)
    return time.monotonic()


def _both(tab, pred):
    d = tab.demo()
    # both streams: the page starts them once it has asked for a token
    return bool(d) and len(d["streams"]) == 2 and all(pred(s) for s in d["streams"].values())


@test("browser_demo")
def browser_demo(env):
    # retry: is how long a browser waits before its own reconnect; the crash
    # test restarts the backend well inside it.
    retry_ms = int(1500 * SLOW)
    conf = {"retry": retry_ms, "max_streams_per_resource": 1}
    env.start_backend(conf)
    start_nginx_with_page(env)
    page = env.request("GET", "/")
    eq(page.status, 200, "GET / (the demo page) through the shipped nginx.conf")
    check((page.header("content-type") or "").startswith("text/html"),
          "content type of the page: %r" % page.header("content-type"))

    browser = Chromium(env)
    try:
        _browser_phases(env, browser, conf, retry_ms)
    finally:
        browser.close()


@test("browser_demo[apache]")
def browser_demo_apache(env):
    """The same phases with the page and the streams served by
    examples/apache/apache2.conf as shipped (page root moved like nginx's):
    where nginx answers 502 for a backend that is down, Apache answers 503,
    and with retry=0 it lets the next request through once sse-fcgi is back.
    Apache notices a closed connection only when it next writes to it (one
    to two heartbeats), and until then the dead stream holds the resource's
    only slot (max_streams_per_resource = 1): the heartbeat here is short and
    retry: longer than two heartbeats, so that a browser's own reconnect
    after a cut finds the slot free, as behind nginx."""
    retry_ms = int(3000 * SLOW)
    conf = {"retry": retry_ms, "max_streams_per_resource": 1, "heartbeat": 1}
    env.start_backend(conf)
    front = Apache(env, root=copy_page(env))
    ok = False
    try:
        front.start()
        page = env.request("GET", "/")
        eq(page.status, 200, "GET / (the demo page) through the shipped apache2.conf")
        check((page.header("content-type") or "").startswith("text/html"),
              "content type of the page: %r" % page.header("content-type"))
        js = env.request("GET", "/demo.js")
        check((js.header("content-type") or "").startswith("text/javascript"),
              "content type of demo.js: %r" % js.header("content-type"))
        browser = Chromium(env)
        try:
            _browser_phases(env, browser, conf, retry_ms)
        finally:
            browser.close()
        ok = True
    finally:
        problems = front.stop()
        if problems and ok:
            fail("\n".join(problems))
        for p in problems:
            env.note("while stopping apache: " + p)


def _browser_phases(env, browser, conf, retry_ms):
    url = "http://127.0.0.1:%d/?doctor=%s&appointment=%s" % (env.port, DOCTOR, APPOINTMENT)
    t0 = time.monotonic()
    tab = Tab(browser, url)
    browser.wait(lambda: _both(tab, lambda s: s["state"] == "OPEN"), 10,
                 lambda: "both EventSources OPEN (%s)" % tab.summary())
    env.note("page loaded and both streams open in %.2fs" % (time.monotonic() - t0))
    tab.js("window.__itMarker = 'loaded-once'")

    # 1. A publish changes the page, without navigation.
    t = _publish(env, DOCTOR, {"type": "queue_update", "nowServing": "A-17", "waiting": 4,
                               "estimatedWait": 12}, event="queue_update")
    tab.wait_text("#now-serving", "A-17")
    env.note("publish -> page text changed in %.0f ms" % ((time.monotonic() - t) * 1000))
    eq(tab.text("#waiting"), "4", "#waiting")
    eq(tab.text("#estimated-wait"), "12 min", "#estimated-wait")
    _publish(env, APPOINTMENT, {"type": "status_change", "status": "IN_CONSULTATION"},
             event="status_change")
    tab.wait_text("#appt-status", "In consultation")
    _publish(env, APPOINTMENT, {"queuePosition": 3, "estimatedWait": 10})   # no event name
    tab.wait_text("#appt-position", "3")
    eq(tab.text("#appt-wait"), "10 min", "#appt-wait after an unnamed event")

    # 1b. The page's connections are cut (the TCP connections to nginx are
    #     destroyed) and events are published while it is away: after its own
    #     reconnect (Last-Event-ID) the page shows every one of them, once.
    before = tab.demo()
    n_trans = len(before["transitions"])
    r = subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(env.port)],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, "ss -K: %s" % r.stderr)
    away = [{"type": "queue_update", "nowServing": "C-%d" % i, "waiting": 10 - i} for i in range(3)]
    for p in away:
        env.publish(DOCTOR, json.dumps(p), event="queue_update")   # delivered to 0 or 1

    def resumed():
        d = tab.demo()
        s = d["streams"]["doctor"]
        mine = [x.split(" ")[1] for x in d["transitions"][n_trans:] if x.startswith("doctor#")]
        return "CONNECTING" in mine and s["state"] == "OPEN" and json.dumps(away[-1]) in s["seen"]
    browser.wait(resumed, retry_ms / 1000 + 10,
                 lambda: "the doctor stream to reconnect and catch up (%s)" % tab.summary())
    tab.wait_text("#now-serving", "C-2")
    after = tab.demo()["streams"]["doctor"]
    eq(after["instances"], before["streams"]["doctor"]["instances"], "EventSource objects (native reconnect)")
    eq(after["seen"][-3:], [json.dumps(p) for p in away], "events published while the page was away")
    eq(after["events"], before["streams"]["doctor"]["events"] + 3, "events received (each once)")
    eq(after["resets"], [], "resets after a cut (the history had every event)")
    check(tab.js("document.getElementById('doctor-reset').hidden"), "reset note shown without a reset")

    # 2. The backend crashes and is back at once: each EventSource reconnects by
    #    itself after retry: (CONNECTING -> OPEN, same object, no script help).
    #    Its Last-Event-ID names the crashed process's history: the page is told
    #    with a `reset` (reason "epoch") and says so.
    before = tab.demo()
    n_trans = len(before["transitions"])
    env.stop_backend(signal.SIGKILL)
    t = time.monotonic()
    env.start_backend(conf)
    restart_s = time.monotonic() - t
    check(restart_s * 1000 < retry_ms * 0.8,
          "restarting the backend took %.2fs, too close to retry: %d ms for this check" % (restart_s, retry_ms))

    def reconnected_natively():
        d = tab.demo()
        for key, s in d["streams"].items():
            mine = [x.split(" ")[1] for x in d["transitions"][n_trans:] if x.startswith(key + "#")]
            if "CONNECTING" not in mine or s["state"] != "OPEN":
                return False
        return True
    browser.wait(reconnected_natively, retry_ms / 1000 + 10,
                 lambda: "both EventSources to go CONNECTING -> OPEN after the backend restart (%s)" % tab.summary())
    after = tab.demo()
    for key in ("doctor", "appointment"):
        eq(after["streams"][key]["instances"], before["streams"][key]["instances"],
           "EventSource objects of %s (the browser's own reconnect needs no new one)" % key)
        eq(after["streams"][key]["gaveUp"], before["streams"][key]["gaveUp"],
           "times %s's EventSource gave up" % key)
    _publish(env, DOCTOR, {"type": "queue_update", "nowServing": "A-18"}, event="queue_update")
    tab.wait_text("#now-serving", "A-18")
    eq(tab.demo()["streams"]["doctor"]["resets"], ["epoch"], "resets after the backend restart")
    check("missed" in (tab.text("#doctor-reset") or ""),
          "the page does not show the reset: %r" % tab.text("#doctor-reset"))

    # 3. A graceful stop, backend left down: each stream gets a jittered
    #    retry: and a clean end; the browser's reconnect meets nginx's 502 and
    #    EventSource gives up (CLOSED). The page's script keeps trying with new
    #    EventSource objects and gets back in once the backend is up again.
    before = tab.demo()
    st = env.stop_backend(signal.SIGTERM)
    check(all(v == 0 for v in st.values()), "sse-fcgi after SIGTERM: %r (want exit 0)" % st)
    t = time.monotonic()
    browser.wait(lambda: _both(tab, lambda s: s["gaveUp"] >= 1 and s["state"] in ("CLOSED", "CONNECTING")),
                 retry_ms / 1000 + 10 + 5,   # the shutdown retry: adds up to 10 s of jitter
                 lambda: "both EventSources to give up on nginx's 502 (%s)" % tab.summary())
    env.note("backend down: both EventSources CLOSED after %.1fs (retry: + shutdown jitter)" % (time.monotonic() - t))
    check("unavailable" in (tab.text("#doctor-conn") or ""),
          "the page does not say the server is unavailable: %r" % tab.text("#doctor-conn"))
    env.start_backend(conf)
    t = time.monotonic()
    browser.wait(lambda: _both(tab, lambda s: s["state"] == "OPEN"), 20,
                 lambda: "the page's script to reopen both streams (%s)" % tab.summary())
    env.note("backend back: page's script reopened both streams in %.1fs" % (time.monotonic() - t))
    after = tab.demo()
    for key in ("doctor", "appointment"):
        check(after["streams"][key]["instances"] > before["streams"][key]["instances"],
              "%s: no new EventSource after it gave up (%s)" % (key, tab.summary()))
    _publish(env, DOCTOR, {"type": "queue_update", "nowServing": "A-19", "waiting": 2},
             event="queue_update")
    tab.wait_text("#now-serving", "A-19")
    _publish(env, APPOINTMENT, {"type": "status_change", "status": "COMPLETED"}, event="status_change")
    tab.wait_text("#appt-status", "Completed")

    # Never a reload: same document, one navigation.
    eq(tab.js("window.__itMarker"), "loaded-once", "marker set in window after the first load")
    eq(tab.navigations(), tab.navigations_at_load, "main-frame navigations of the tab")
    eq(tab.errors(), [], "uncaught exceptions in the page")

    # 4. 429: a second tab on the same resources is over
    #    max_streams_per_resource = 1; its EventSources give up, and the script
    #    gets them in once the first tab is closed.
    tab2 = Tab(browser, url)
    browser.wait(lambda: _both(tab2, lambda s: s["gaveUp"] >= 1), 10,
                 lambda: "the second tab's EventSources to give up on 429 (%s)" % tab2.summary())
    tab.close()
    t = time.monotonic()
    browser.wait(lambda: _both(tab2, lambda s: s["state"] == "OPEN"), 15,
                 lambda: "the second tab to get in after the first closed (%s)" % tab2.summary())
    env.note("429: second tab in %.1fs after the first closed" % (time.monotonic() - t))
    _publish(env, DOCTOR, {"type": "queue_update", "nowServing": "B-01"}, event="queue_update")
    tab2.wait_text("#now-serving", "B-01")
    eq(tab2.navigations(), tab2.navigations_at_load, "main-frame navigations of the second tab")
    eq(tab2.errors(), [], "uncaught exceptions in the second tab")


# ---------------------------------------------------------------- the run script

def _read_until(proc, marker, timeout, out, start=0):
    """Collect the script's output until marker appears past out[0][start:]."""
    deadline = time.monotonic() + timeout * SLOW
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        while marker not in out[0][start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("run-demo.sh printed no %r within %.0fs; output:\n%s" % (marker, timeout * SLOW, out[0]))
            if sel.select(min(left, 0.2)):
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    proc.wait(5)
                    fail("run-demo.sh exited %s before printing %r; output:\n%s" % (
                        proc.returncode, marker, out[0]))
                out[0] += data.decode(errors="replace")
    finally:
        sel.close()


def _port_8080_free():
    """True when nothing listens on 127.0.0.1:8080 and we may bind it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As nginx binds: connections of an earlier run in TIME_WAIT do not count.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", 8080))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _typed_environ():
    """The environment of a user's shell: none of the demo's knobs, none of
    the outer make's (MAKEFLAGS would carry SANITIZE=1 and jobserver fds into
    the `make` that `make run` runs), no test binary."""
    e = clean_environ()
    for k in ("PORT", "PROCS", "DEMO_DIR", "SSE_FCGI_BIN", "SANITIZE", "MAKEFLAGS", "MFLAGS",
              "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR"):
        e.pop(k, None)
    return e


def _man_lines(prefix):
    """The man page's EXAMPLES lines that start with prefix, as a user reads them."""
    with open(os.path.join(REPO, "man", "sse-fcgi.8")) as f:
        text = f.read()
    out, inside = [], False
    for line in text.splitlines():
        if line == ".EX":
            inside = True
        elif line == ".EE":
            inside = False
        elif inside:
            line = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\")
            if line.startswith(prefix):
                out.append(line)
    return out


def _printed_watch_and_man_lines(env, text, port):
    """The banner's "Watch a raw stream" and "Counters" lines as printed, and
    the man page's publish example (exactly as typed when the demo is on 8080)."""
    watch = re.search(r"^Watch a raw stream:\s+(curl -N \S+)$", text, re.M)
    stats = re.search(r"^Counters of the process:\s+(curl \S+)$", text, re.M)
    check(watch and stats, "the banner lacks the watch/counters lines:\n%s" % text)
    man_pub = [l for l in _man_lines("curl -d ") if "/publish/doctor-123" in l]
    man_watch = [l for l in _man_lines("curl -N ") if "/sse/doctor-123" in l]
    eq(len(man_pub), 1, "the man page's publish example")
    eq(man_watch, [watch.group(1).replace(":%d/" % port, ":8080/")],
       "the man page's stream example is the demo's printed line")
    pub = man_pub[0].replace("127.0.0.1:8080/", "127.0.0.1:%d/" % port)
    curl = subprocess.Popen(shlex.split(watch.group(1)), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        fd = curl.stdout.fileno()
        os.set_blocking(fd, False)
        got = [b""]

        def read():
            try:
                got[0] += os.read(fd, 65536) or b""
            except BlockingIOError:
                pass
            return got[0]
        # The stream is open once its retry: line has come through nginx.
        env.loop.wait(lambda: b"retry:" in read(), 10, "the printed `curl -N` line to receive retry:")
        p = subprocess.run(shlex.split(pub), capture_output=True, timeout=10 * SLOW)
        eq(p.returncode, 0, "exit status of the man page's `%s`" % pub)
        d = json.loads(p.stdout).get("delivered", 0)
        check(d >= 1, "delivered count of the man page's publish line: %r" % p.stdout[:200])
        env.loop.wait(lambda: b'data: {"status":"ready"}\n\n' in read(), 10,
                      "the man page's publish on the printed `curl -N` stream")
        st = subprocess.run(shlex.split(stats.group(1)), capture_output=True, timeout=10 * SLOW)
        check(json.loads(st.stdout).get("streams", 0) >= 1, "the printed stats line: %r" % st.stdout[:300])
    finally:
        curl.kill()
        curl.wait(5)
        curl.stdout.close()


def _run_demo_script(env, user=None, typed=None):
    """typed: the argv of a documented command, run from the repository as a
    user types it, on the default port 8080 when it is free."""
    if typed:
        e = _typed_environ()
        if _port_8080_free():
            port = 8080
        else:
            port = free_port()
            e["PORT"] = str(port)
            print("    NOTE: 127.0.0.1:8080 is taken on this machine: ran `%s` with PORT=%d, "
                  "not exactly as typed" % (" ".join(typed), port), flush=True)
        env.note("`%s` on port %d%s" % (" ".join(typed), port, "" if port == 8080 else " (PORT override)"))
        demo_dir = None
        argv, cwd = list(typed), REPO
    else:
        port = free_port()
        if user:
            pw = pwd.getpwnam(user)
            home = os.path.join(env.dir, "home")
            os.makedirs(home)
            os.chown(home, pw.pw_uid, pw.pw_gid)
            demo_dir = os.path.join(home, "demo")
        else:
            demo_dir = os.path.join(env.dir, "demo")
        e = env.backend_env({"PORT": str(port), "SSE_FCGI_BIN": BIN, "DEMO_DIR": demo_dir})
        if user:
            e.update(HOME=home, USER=user, LOGNAME=user)
        # Started from elsewhere: the script finds the repository itself.
        argv, cwd = ["sh", RUN_DEMO], env.dir

    def as_user():
        # Ctrl-C in a terminal reaches a shell whose SIGINT is at its default; a
        # run started in the background of a non-interactive shell inherits it
        # ignored, and a shell cannot trap a signal ignored on entry.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if user:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
    # Its own process group, so that SIGINT to the group is what Ctrl-C does in
    # a terminal (with `make run`, make is in that group too).
    proc = subprocess.Popen(argv, env=e, cwd=cwd, preexec_fn=as_user,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out = [""]
    try:
        _read_until(proc, "Ctrl-C", 120 if typed else 30, out)   # typed: may build first
        text = out[0]
        if demo_dir is None:
            m = re.search(r"^Logs: (\S+)/log/ ", text, re.M)
            check(m, "run-demo.sh printed no Logs: line naming its directory:\n%s" % text)
            demo_dir = m.group(1)
        env.note("run-demo.sh ready in the output after %s lines" % len(text.splitlines()))
        urls = re.findall(r"^\s*(http://\S+)\s*$", text, re.M)
        eq(urls[:1], ["http://127.0.0.1:%d/" % port], "first URL printed")
        curls = [l.strip() for l in text.splitlines() if l.strip().startswith("curl ") and "/publish/" in l]
        check(len(curls) >= 2, "run-demo.sh printed no curl lines to publish:\n%s" % text)
        m = re.search(r"nginx pid (\d+), sse-fcgi pid\(s\) ([\d ]+)", text)
        check(m, "run-demo.sh printed no pids:\n%s" % text)
        nginx_pid, backend_pids = int(m.group(1)), [int(x) for x in m.group(2).split()]
        eq(len(backend_pids), 1, "sse-fcgi processes of the demo (single-server mode)")
        check("single-server" in text and "Redis" in text, "the banner does not say single-server / Redis:\n%s" % text)

        # The page, as a browser would fetch it.
        env.port = port
        page = env.request("GET", "/")
        eq(page.status, 200, "GET / of the demo")
        check(b"demo.js" in bytes(page.body), "the page does not load demo.js")
        js = env.request("GET", "/demo.js")
        eq(js.status, 200, "GET /demo.js")
        check(b"EventSource.CLOSED" in bytes(js.body), "demo.js lacks the reconnect script")

        # Each printed curl line, as printed, reaches a stream of its resource.
        for line in curls[:2]:
            argv = shlex.split(line)
            res = re.search(r"/publish/([^?'\s]+)", line).group(1)
            ev = re.search(r"\?event=([A-Za-z0-9._:-]+)", line)
            payload = argv[argv.index("-d") + 1]
            s = env.open_stream(res)
            p = subprocess.run(argv, capture_output=True, timeout=10 * SLOW)
            eq(p.returncode, 0, "exit status of %s (stderr %r)" % (line, p.stderr[:200]))
            reply = json.loads(p.stdout)
            eq(reply.get("delivered"), 1, "delivered count of the printed curl line for %s" % res)
            env.loop.wait(lambda: s.sse.events, 5, "the event of the printed curl line on /sse/%s" % res)
            eq((s.sse.events[0].type, s.sse.events[0].data), (ev.group(1) if ev else "message", payload),
               "event received for the printed curl line")
        first = [ex for ex in env.loop.exchanges if ex.sse is not None]
        _printed_watch_and_man_lines(env, text, port)

        # The backend stops (here SIGTERM; a crash does the same): the demo
        # starts it again after a pause, and publishing works again.
        mark = len(out[0])
        os.kill(backend_pids[0], signal.SIGTERM)
        env.loop.wait(lambda: all(s.complete for s in first), 10, "the streams to end when sse-fcgi stops")
        _read_until(proc, "starting sse-fcgi again", 10, out, mark)
        mark = out[0].index("starting sse-fcgi again", mark)
        _read_until(proc, "\nsse-fcgi pid(s) ", 10, out, mark)
        mark = out[0].index("\nsse-fcgi pid(s) ", mark)
        _read_until(proc, "\n", 5, out, mark + 1)
        m = re.match(r"\nsse-fcgi pid\(s\) ([\d ]+)\n", out[0][mark:])
        check(m, "run-demo.sh printed no new sse-fcgi pid after the restart:\n%s" % out[0][-800:])
        new_pids = [int(x) for x in m.group(1).split()]
        check(set(new_pids).isdisjoint(backend_pids), "the pid did not change: %r" % new_pids)
        s = env.open_stream(DOCTOR)
        p = subprocess.run(shlex.split(curls[0]), capture_output=True, timeout=10 * SLOW)
        eq(json.loads(p.stdout or b"{}").get("delivered"), 1, "delivered count of the printed curl line after the restart")
        env.loop.wait(lambda: s.sse.events, 5, "the event of the printed curl line after the restart")
        env.note("backend restarted by run-demo.sh: pid %d -> %d" % (backend_pids[0], new_pids[0]))
        backend_pids += new_pids
        streams = [s]

        # Ctrl-C: everything stops, sse-fcgi first (its streams end with a
        # jittered retry:), the directory goes.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(25 * SLOW)
        except subprocess.TimeoutExpired:
            fail("run-demo.sh still running %.0fs after Ctrl-C" % (25 * SLOW))
        out[0] += proc.stdout.read().decode(errors="replace")
        if typed and typed[0] == "make":
            # make passes the interrupt on and reports it; the script's own
            # cleanup must have run to its end before make gave up waiting.
            check("stopped; removed %s" % demo_dir in out[0],
                  "run-demo.sh did not finish its cleanup under make; output:\n%s" % out[0][-1500:])
        else:
            eq(proc.returncode, 0, "exit status of run-demo.sh after Ctrl-C; output:\n%s" % out[0][-1500:])
        env.loop.wait(lambda: all(s.complete for s in streams), 5, "the streams to end")
        for s in streams:
            check(s.clean_end and len(s.sse.retries) >= 2,
                  "a stream did not end with a retry: and a clean end (sse-fcgi must stop before nginx): %s" % s.diag())
        for pid in [nginx_pid] + backend_pids:
            st = wait_pid_exit(pid, 5)
            check(st is not None and not pid_alive(pid), "pid %d still running after run-demo.sh exited" % pid)
        left = pids_with_cmdline(demo_dir)
        eq(left, [], "processes naming %s after Ctrl-C" % demo_dir)
        check(not os.path.exists(demo_dir), "run-demo.sh left %s behind" % demo_dir)
        c = socket.socket()
        try:
            check(c.connect_ex(("127.0.0.1", port)) != 0, "port %d still accepts after Ctrl-C" % port)
        finally:
            c.close()
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20 * SLOW)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


@test("browser_run_demo")
def browser_run_demo(env):
    _run_demo_script(env)


@test("browser_run_demo[nonroot]")
def browser_run_demo_nonroot(env):
    _run_demo_script(env, user=WORKER_USER)


# The README's first command and the script it names, exactly as typed: no
# environment overrides, the default port 8080 (another port only when 8080 is
# taken here, and then the test says so).
@test("demo_as_typed[make run]")
def demo_as_typed_make_run(env):
    _run_demo_script(env, typed=["make", "run"])


@test("demo_as_typed[sh examples/run-demo.sh]")
def demo_as_typed_run_demo(env):
    _run_demo_script(env, typed=["sh", "examples/run-demo.sh"])


@test("demo_as_typed[sh examples/run-demo.sh --tokens]")
def browser_demo_tokens(env):
    """`sh examples/run-demo.sh --tokens` as typed, in Chromium: the page fetches its token from
    /demo-token, keeps it in the sse_token cookie and its streams work (a
    printed curl line, with its publish token, changes the page); a tab for
    another patient's resources is refused (403) and the page says so instead
    of retrying; no token at all is a 401; Ctrl-C cleans up."""
    # The README's command as typed, from the repository (it builds ./sse-fcgi
    # if needed), on port 8080 unless that is taken here.
    typed = ["sh", "examples/run-demo.sh", "--tokens"]
    e = _typed_environ()
    port = 8080
    if not _port_8080_free():
        port = free_port()
        e["PORT"] = str(port)
        print("    NOTE: 127.0.0.1:8080 is taken on this machine: ran `%s` with PORT=%d, "
              "not exactly as typed" % (" ".join(typed), port), flush=True)
    proc = subprocess.Popen(typed, env=e, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # as at a terminal
    out = [""]
    browser = None
    demo_dir = None
    try:
        _read_until(proc, "Ctrl-C", 120, out)
        text = out[0]
        m = re.search(r"^Logs: (\S+)/log/ ", text, re.M)
        check(m, "run-demo.sh printed no Logs: line naming its directory:\n%s" % text)
        demo_dir = m.group(1)
        check("streams need signed tokens" in text, "the banner does not say tokens are on:\n%s" % text)
        curls = [l.strip() for l in text.splitlines() if l.strip().startswith("curl ") and "/publish/" in l]
        eq(len(curls), 2, "printed publish lines")
        check(all("Authorization: Bearer " in c for c in curls), "publish lines without a token:\n%s" % text)
        env.port = port
        # what the printed "without a token" line shows
        m = re.search(r"^Without a token:\s+(curl .*)$", text, re.M)
        check(m, "no 'Without a token' line:\n%s" % text)
        p = subprocess.run(shlex.split(m.group(1)), capture_output=True, timeout=10 * SLOW)
        check(p.stdout.startswith(b"HTTP/1.1 401"), "the printed line without a token: %r" % p.stdout[:200])
        check(b'"token required"' in p.stdout, "its reason: %r" % p.stdout[-200:])
        # the printed raw-stream line works with its cookie
        m = re.search(r"^Watch a raw stream:\s+(curl -N .*)$", text, re.M)
        check(m and "sse_token=" in m.group(1), "no raw-stream line with a cookie:\n%s" % text)
        raw = shlex.split(m.group(1))
        p = subprocess.run(raw[:2] + ["--max-time", "1"] + raw[2:], capture_output=True, timeout=10 * SLOW)
        check(p.stdout.startswith(b"retry:"), "the printed raw-stream line got %r" % p.stdout[:200])

        browser = Chromium(env)
        tab = Tab(browser, "http://127.0.0.1:%d/" % port)
        browser.wait(lambda: _both(tab, lambda s: s["state"] == "OPEN"), 10,
                     lambda: "both EventSources OPEN with the token cookie (%s)" % tab.summary())
        eq(tab.demo()["tokens"], True, "the page found its token at /demo-token")
        check("sse_token=" not in (tab.js("document.cookie") or ""),
              "the token cookie is visible at / (its path is /sse/)")
        p = subprocess.run(shlex.split(curls[0]), capture_output=True, timeout=10 * SLOW)
        eq(json.loads(p.stdout or b"{}").get("delivered"), 1, "the printed publish line (%r)" % p.stdout[:200])
        tab.wait_text("#now-serving", "A-17")
        p = subprocess.run(shlex.split(curls[1]), capture_output=True, timeout=10 * SLOW)
        eq(json.loads(p.stdout or b"{}").get("delivered"), 1, "the second printed publish line")
        tab.wait_text("#appt-status", "In consultation")
        # the same line without its token is refused, and changes nothing
        bare = re.sub(r" -H 'Authorization: Bearer [^']*'", "", curls[0])
        p = subprocess.run(shlex.split(bare), capture_output=True, timeout=10 * SLOW)
        check(b"missing or wrong bearer token" in p.stdout, "publish without a token: %r" % p.stdout[:200])

        other = Tab(browser, "http://127.0.0.1:%d/?doctor=doctor-7&appointment=appointment-9" % port)
        browser.wait(lambda: _both(other, lambda s: s["state"] == "REFUSED"), 15,
                     lambda: "both streams of another patient REFUSED (%s)" % other.summary())
        for key in ("doctor", "appointment"):
            eq(other.demo()["streams"][key]["refused"], {"status": 403, "reason": "token does not grant this resource"},
               "refusal of %s" % key)
            eq(other.demo()["streams"][key]["opens"], 0, "opens of another patient's %s stream" % key)
        check("not allowed (403" in (other.text("#doctor-conn") or ""),
              "the page does not say it is not allowed: %r" % other.text("#doctor-conn"))
        instances = other.demo()["streams"]["doctor"]["instances"]
        env.loop.run_for(2.5)   # longer than the first retry delays: no new attempt may follow
        eq(other.demo()["streams"]["doctor"]["instances"], instances, "EventSources after the refusal")
        # the first tab is unaffected
        eq(tab.demo()["streams"]["doctor"]["state"], "OPEN", "the first tab's doctor stream")
        eq(tab.errors() + other.errors(), [], "uncaught exceptions in the pages")
        env.note("token demo: own streams open, another patient's refused 403 without retrying")
    finally:
        if browser is not None:
            browser.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(25 * SLOW)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
                fail("run-demo.sh --tokens still running after Ctrl-C")
        rest = proc.stdout.read().decode(errors="replace")
        proc.stdout.close()
    eq(proc.returncode, 0, "exit status of run-demo.sh --tokens after Ctrl-C:\n%s" % (out[0] + rest)[-1500:])
    check(demo_dir and not os.path.exists(demo_dir), "run-demo.sh --tokens left %s behind" % demo_dir)
