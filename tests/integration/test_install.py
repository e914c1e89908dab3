"""Installing like a Debian daemon (issue 4, item 3): the man page renders
cleanly and documents every option and config key; the systemd units pass
`systemd-analyze verify`; the service's ExecStart runs for real with the
socket unit's listening socket on descriptor 0, two instances sharing it;
`make install DESTDIR=...` lays out the tree a Debian admin expects and
`make uninstall` takes it away again."""

import gzip
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import REPO, SLOW, check, eq, fail, test

SOCKET_UNIT = os.path.join(REPO, "systemd", "sse-fcgi.socket")
SERVICE_UNIT = os.path.join(REPO, "systemd", "sse-fcgi@.service")
MAN_PAGE = os.path.join(REPO, "man", "sse-fcgi.8")
SHIPPED_CONF = os.path.join(REPO, "conf", "sse-fcgi.conf")
SHIPPED_BIN = "/usr/local/sbin/sse-fcgi"
SHIPPED_ETC = "/etc/sse-fcgi/sse-fcgi.conf"


def parse_unit(path):
    """{section: [(key, value), ...]} in file order (systemd allows repeats)."""
    out, sec = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = line.strip("[]")
                out.setdefault(sec, [])
                continue
            k, _, v = line.partition("=")
            out[sec].append((k.strip(), v.strip()))
    return out


def unit_value(unit, sec, key):
    vals = [v for k, v in unit.get(sec, []) if k == key]
    return vals[-1] if vals else None


def verify_units(env, files, binary, conf, shipped=(SHIPPED_BIN, SHIPPED_ETC)):
    """`systemd-analyze verify --man=no` on copies of files in a directory of
    their own, the binary and config paths pointed at real files (the tool
    checks that ExecStart is executable).  The template is verified through
    an instance name, as systemd would load it.  Fails on any output."""
    d = env._mkdir("units-%d" % len(os.listdir(env.dir)), 0o755)
    names = []
    for src in files:
        with open(src) as f:
            text = f.read()
        text = text.replace(shipped[0], binary).replace(shipped[1], conf)
        base = os.path.basename(src)
        for name in ([base, base.replace("@.", "@1.")] if "@." in base else [base]):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        names.append(os.path.join(d, base.replace("@.", "@1.")))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + names, capture_output=True,
                       timeout=60, cwd=d)
    out = (p.stdout + p.stderr).decode(errors="replace").strip()
    check(p.returncode == 0 and not out, lambda: "systemd-analyze verify %s: exit %d:\n%s" % (
        " ".join(os.path.basename(n) for n in names), p.returncode, out))


def conf_keys():
    """Every key the shipped conf/sse-fcgi.conf sets or shows commented out."""
    keys = set()
    with open(SHIPPED_CONF) as f:
        for line in f:
            m = re.match(r"^\s*#?\s*([a-z_]+)\s*=\s*\S", line)
            if m:
                keys.add(m.group(1))
    return keys


def need_tool(name):
    if shutil.which(name) is None:
        fail("%s is not installed (tests/deps.sh installs it)" % name)


@test("man_page")
def man_page(env):
    need_tool("man")
    menv = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8")
    p = subprocess.run(["man", "-l", "--warnings", MAN_PAGE], capture_output=True, timeout=30, env=menv)
    err = p.stderr.decode(errors="replace").strip()
    eq(p.returncode, 0, "man -l man/sse-fcgi.8 exit status (%s)" % err)
    check(not err, "man -l --warnings man/sse-fcgi.8 warns:\n%s" % err)
    text = p.stdout.decode(errors="replace")
    # the content checks read a rendering without line breaks (no hyphenation)
    wide = subprocess.run(["man", "-l", MAN_PAGE], capture_output=True, timeout=30,
                          env=dict(menv, MANWIDTH="2000")).stdout.decode(errors="replace")
    flat = " ".join(re.sub("[\u2010\u2011\u2212]", "-", wide).replace("\u00ad", "").split())
    for sec in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CONFIGURATION", "ENVIRONMENT",
                "SIGNALS", "LOGGING", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"):
        check(re.search(r"(?m)^%s$" % sec, text), "man page lacks section %s" % sec)
    keys = conf_keys()
    check(len(keys) >= 25, "found only %d keys in conf/sse-fcgi.conf: %r" % (len(keys), sorted(keys)))
    missing = sorted(k for k in keys if not re.search(r"\b%s\b" % re.escape(k), flat))
    check(not missing, "man page does not document config key(s) %s" % missing)
    # every option the binary's own -h lists
    usage = harness.run_binary(["-h"], env.san_dir).stdout.decode()
    opts = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage.split("\n\n", 2)[2]))
    check({"-c", "-t", "-l", "-m", "-h", "--help", "--version"} <= opts, "options in -h: %r" % opts)
    missing = sorted(o for o in opts if not re.search(r"(?<![\w-])%s\b" % re.escape(o), flat))
    check(not missing, "man page does not document option(s) %s" % missing)
    for word in ("SSE_FCGI_CONF", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB",
                 "SIGTERM", "SIGHUP", "SIGINT", "/run/sse-fcgi/sse-fcgi.sock",
                 "SSE: Redis Pub/Sub enabled (multi-server mode)",
                 "SSE: Redis not configured, using single-server mode",
                 "Failed to publish to Redis, falling back to local"):
        check(word in flat, "man page lacks %r" % word)


@test("systemd_units_verify")
def systemd_units_verify(env):
    need_tool("systemd-analyze")
    conf = env.write_conf({})
    verify_units(env, [SOCKET_UNIT, SERVICE_UNIT], harness.BIN, conf)
    sock = parse_unit(SOCKET_UNIT)
    for key, want in (("ListenStream", "/run/sse-fcgi/sse-fcgi.sock"), ("Accept", "no"),
                      ("SocketUser", "www-data"), ("SocketGroup", "www-data"), ("SocketMode", "0660")):
        eq(unit_value(sock, "Socket", key), want, "sse-fcgi.socket %s" % key)
    svc = parse_unit(SERVICE_UNIT)
    for key, want in (("StandardInput", "socket"), ("Sockets", "sse-fcgi.socket"),
                      ("Restart", "on-failure"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("PrivateTmp", "yes"), ("DynamicUser", "yes"), ("StandardOutput", "journal"),
                      ("ExecStart", "%s -c %s" % (SHIPPED_BIN, SHIPPED_ETC))):
        eq(unit_value(svc, "Service", key), want, "sse-fcgi@.service %s" % key)
    check(int(unit_value(svc, "Service", "LimitNOFILE")) >= 65536, "LimitNOFILE below 65536")
    check("sse-fcgi.socket" in (unit_value(svc, "Unit", "Requires") or ""), "service does not require the socket")
    # the ExecStart line is exactly the spawn-fcgi program part of the examples
    with open(harness.SPAWN_EXAMPLE) as f:
        line = [l for l in f.read().splitlines() if l.startswith("spawn-fcgi ")][0]
    eq(shlex.split(unit_value(svc, "Service", "ExecStart")), shlex.split(line.split(" -- ", 1)[1]),
       "ExecStart vs the program in examples/nginx/spawn-fcgi.sh")


class Instance:
    """One sse-fcgi@N.service, run the way systemd runs it: ExecStart's
    command line (binary and -c substituted), the socket unit's listening
    socket on descriptor 0, stdout+stderr to one file (the journal), a
    clean environment, an unprivileged user (DynamicUser: here nobody),
    UMask and LimitNOFILE from the unit."""

    def __init__(self, env, svc, lsock, journal, n):
        argv = shlex.split(unit_value(svc, "Service", "ExecStart"))
        eq(argv[0], SHIPPED_BIN, "ExecStart program")
        argv[0] = harness.BIN
        argv[argv.index("-c") + 1] = env.conf_path
        nobody = pwd.getpwnam("nobody")
        umask = int(unit_value(svc, "Service", "UMask"), 8)
        limit = int(unit_value(svc, "Service", "LimitNOFILE"))

        def pre():
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            lim = min(limit, hard)   # a container may not allow raising it
            resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))
            os.umask(umask)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        clean = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "LANG": "C.UTF-8", "INVOCATION_ID": "test-%d" % n}
        clean.update(harness.sanitizer_env(env.san_dir))
        out = open(journal, "a")
        self.proc = subprocess.Popen(argv, stdin=lsock.fileno(), stdout=out, stderr=out, env=clean,
                                     preexec_fn=pre, cwd="/", close_fds=True)
        out.close()
        self.pid = self.proc.pid
        env.backend_pids.append(self.pid)   # teardown: SIGTERM, exit 0 required


@test("systemd_execstart")
def systemd_execstart(env):
    svc = parse_unit(SERVICE_UNIT)
    sockunit = parse_unit(SOCKET_UNIT)
    # the backend config: no log_file, so the log goes to stderr = the journal
    journal = os.path.join(env.dir, "journal.log")
    env.log_path = journal
    with open(env.conf_path, "w") as f:
        f.write(harness.render_conf({"heartbeat": 1, "log_level": "debug"}))
    os.chmod(env.conf_path, 0o644)
    # what sse-fcgi.socket creates: SocketUser/SocketGroup/SocketMode, Backlog
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(env.sock)
    www = pwd.getpwnam(unit_value(sockunit, "Socket", "SocketUser"))
    os.chown(env.sock, www.pw_uid, pwd.getpwnam(unit_value(sockunit, "Socket", "SocketGroup")).pw_gid)
    os.chmod(env.sock, int(unit_value(sockunit, "Socket", "SocketMode"), 8))
    lsock.listen(int(unit_value(sockunit, "Socket", "Backlog") or 128))
    try:
        one = Instance(env, svc, lsock, journal, 1)
        env.wait_backend_ready()
        env.wait_log(r"sse-fcgi\[%d\] notice: sse-fcgi .* started" % one.pid)
        eq(int(harness.proc_status_field(one.pid, "Uid").split()[0]), pwd.getpwnam("nobody").pw_uid,
           "uid of the instance")
        s = env.fcgi("GET", "/sse/doctor-123", sse=True)
        env.loop.wait(lambda: s.complete or s.sse.retries, 5, "stream through the unit's socket")
        eq(s.status, 200, "stream status")
        r = env.fcgi("POST", "/publish/doctor-123", b'{"status":"ready"}')
        eq((r.status, r.json().get("delivered")), (200, 1), "publish through the unit's socket")
        env.loop.wait(lambda: s.events, 5, "the event")
        eq(s.events[0].data, '{"status":"ready"}', "event data")
        env.loop.wait(lambda: s.sse.comments, 5, "a heartbeat (heartbeat = 1)")

        # a second instance on the same socket (sse-fcgi@2)
        two = Instance(env, svc, lsock, journal, 2)
        env.wait_log(r"sse-fcgi\[%d\] notice: sse-fcgi .* started" % two.pid)

        # ExecReload= (kill -HUP $MAINPID)
        check("/bin/kill -HUP $MAINPID" == unit_value(svc, "Service", "ExecReload"), "ExecReload")
        os.kill(one.pid, signal.SIGHUP)
        env.wait_log(r"sse-fcgi\[%d\] notice: configuration reloaded" % one.pid)

        # systemctl stop / restart of one instance: its stream ends cleanly,
        # the socket stays open (systemd holds it) and the other instance
        # serves it; the restarted instance serves it again.  (Which idle
        # process the kernel hands a connection to is its choice, so each
        # instance is shown serving the socket while the other is stopped.)
        def stop(inst):
            os.kill(inst.pid, signal.SIGTERM)
            st = harness.wait_pid_exit(inst.pid, 10 * SLOW)
            env.exit_status[inst.pid] = st
            eq(st, 0, "instance pid %d exit status after SIGTERM" % inst.pid)

        def serves(inst):
            for _ in range(3):
                eq(env.fcgi("GET", "/stats").json().get("pid"), inst.pid, "/stats answered by pid %d" % inst.pid)
        stop(one)
        env.loop.wait(lambda: s.complete, 5, "the stream of the stopped instance to end")
        check(s.clean_end, "stream of the stopped instance did not end with END_REQUEST")
        serves(two)
        again = Instance(env, svc, lsock, journal, 3)
        env.wait_log(r"sse-fcgi\[%d\] notice: sse-fcgi .* started" % again.pid)
        stop(two)
        serves(again)
        s2 = env.fcgi("GET", "/sse/doctor-123", sse=True)
        env.loop.wait(lambda: s2.complete or s2.sse.retries, 5, "stream on the restarted instance")
        r = env.fcgi("POST", "/publish/doctor-123", b"again")
        eq((r.status, r.json().get("delivered")), (200, 1), "publish on the restarted instance")
        env.loop.wait(lambda: s2.events, 5, "event on the restarted instance")
        env.note("instances %d, %d, %d served the one socket in turn" % (one.pid, two.pid, again.pid))
    finally:
        lsock.close()


def make(args, timeout=120):
    """make -C REPO ... with the suite's binary as $(BIN), never rebuilt here."""
    cmd = ["make", "-s", "-C", REPO, "BIN=" + harness.BIN, "-o", harness.BIN] + args
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode == 0, lambda: "%s: exit %d:\n%s" % (" ".join(cmd[3:]), p.returncode, out))
    return out


def tree(root):
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


@test("make_install_uninstall")
def make_install_uninstall(env):
    with open(harness.BIN, "rb") as f:
        binary = f.read()
    with open(SHIPPED_CONF, "rb") as f:
        shipped_conf = f.read()
    with open(MAN_PAGE, "rb") as f:
        man = f.read()
    examples = ["examples/nginx/nginx.conf", "examples/nginx/spawn-fcgi.sh",
                "examples/lighttpd/lighttpd-spawn-fcgi.conf", "examples/lighttpd/lighttpd-bin-path.conf"]
    examples += ["examples/multi-server/" + f for f in sorted(os.listdir(os.path.join(REPO, "examples", "multi-server")))]
    for prefix, etc, units in (("/usr/local", "etc", "usr/local/lib/systemd/system"),
                               ("/usr", "etc", "lib/systemd/system")):
        dest = os.path.join(env.dir, "destdir" + prefix.replace("/", "-"))
        os.makedirs(dest)
        make(["install", "DESTDIR=" + dest, "PREFIX=" + prefix])
        p = prefix.lstrip("/")
        want = {p + "/sbin/sse-fcgi", etc + "/sse-fcgi/sse-fcgi.conf", p + "/share/man/man8/sse-fcgi.8.gz",
                units + "/sse-fcgi.socket", units + "/sse-fcgi@.service"}
        want |= {p + "/share/doc/sse-fcgi/" + e for e in examples}
        got = tree(dest)
        missing = sorted(want - got)
        check(not missing, "make install PREFIX=%s lacks %s (has %s)" % (prefix, missing, sorted(got)))
        check(not [f for f in got - want if not f.startswith(p + "/share/doc/sse-fcgi/")],
              "make install PREFIX=%s put unexpected files: %s" % (prefix, sorted(got - want)))
        sbin = os.path.join(dest, p, "sbin/sse-fcgi")
        eq(os.stat(sbin).st_mode & 0o7777, 0o755, "mode of sbin/sse-fcgi")
        with open(sbin, "rb") as f:
            check(f.read() == binary, "installed binary differs from %s" % harness.BIN)
        conf = os.path.join(dest, etc, "sse-fcgi/sse-fcgi.conf")
        eq(os.stat(conf).st_mode & 0o7777, 0o644, "mode of sse-fcgi.conf")
        with open(conf, "rb") as f:
            eq(f.read(), shipped_conf, "installed sse-fcgi.conf")
        with gzip.open(os.path.join(dest, p, "share/man/man8/sse-fcgi.8.gz")) as f:
            eq(f.read(), man, "installed man page")
        svc = parse_unit(os.path.join(dest, units, "sse-fcgi@.service"))
        eq(unit_value(svc, "Service", "ExecStart"), "/%s/sbin/sse-fcgi -c /%s/sse-fcgi/sse-fcgi.conf" % (p, etc),
           "installed ExecStart (PREFIX=%s)" % prefix)
        # the installed units verify (paths pointed into DESTDIR) and the
        # installed config passes -t with the installed binary
        if shutil.which("systemd-analyze"):
            verify_units(env, [os.path.join(dest, units, u) for u in ("sse-fcgi.socket", "sse-fcgi@.service")],
                         sbin, conf, ("/%s/sbin/sse-fcgi" % p, "/%s/sse-fcgi/sse-fcgi.conf" % etc))
        t = subprocess.run([sbin, "-t", "-c", conf], capture_output=True, timeout=10 * SLOW,
                           env=dict(harness.clean_environ(), **harness.sanitizer_env(env.san_dir)))
        eq(t.returncode, 0, "installed sse-fcgi -t -c installed conf (%r)" % t.stderr[:300])

        if prefix == "/usr":
            # an admin's edited config survives a re-install and an uninstall
            with open(conf, "ab") as f:
                f.write(b"\nheartbeat = 20\n")
            out = make(["install", "DESTDIR=" + dest, "PREFIX=" + prefix])
            check("kept" in out, "re-install over an edited config says nothing: %r" % out)
            with open(conf, "rb") as f:
                check(f.read().endswith(b"heartbeat = 20\n"), "re-install overwrote the edited config")
            with open(conf + ".dist", "rb") as f:
                eq(f.read(), shipped_conf, "sse-fcgi.conf.dist")
            make(["uninstall", "DESTDIR=" + dest, "PREFIX=" + prefix])
            eq(tree(dest), {etc + "/sse-fcgi/sse-fcgi.conf"}, "files left by uninstall (edited config kept)")
        else:
            make(["uninstall", "DESTDIR=" + dest, "PREFIX=" + prefix])
            eq(tree(dest), set(), "files left by make uninstall PREFIX=%s" % prefix)
            check(not os.path.exists(os.path.join(dest, p, "share/doc/sse-fcgi")), "doc dir left")
            check(not os.path.exists(os.path.join(dest, etc, "sse-fcgi")), "etc/sse-fcgi left")


# ---------------------------------------------------------------- as typed

SYSTEM_PATHS = ("/usr/local/sbin/sse-fcgi", "/etc/sse-fcgi", "/run/sse-fcgi")
SYSTEM_LOCK = "/run/lock/sse-fcgi-system-test.lock"


def _readme_block_after(heading):
    """The first fenced block after heading in the README, backslash
    continuations joined: the commands as a user copies them."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    at = text.index(heading)
    start = text.index("```", at)
    start = text.index("\n", start) + 1
    end = text.index("```", start)
    return text[start:end].replace("\\\n", " ").splitlines()


def _typed_env():
    e = harness.clean_environ()
    for k in ("SANITIZE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SSE_FCGI_BIN"):
        e.pop(k, None)
    # root's PATH on Debian; a minimal CI environment may lack the sbin parts
    path = e.get("PATH", "").split(":")
    for d in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
        if d not in path:
            path.append(d)
    e["PATH"] = ":".join(p for p in path if p)
    return e


@test("documented_install_as_typed")
def documented_install_as_typed(env):
    """README "Installing", "Running it" / "spawn-fcgi way" and the man page's
    EXAMPLES, typed on the real system as root: `make`, `sudo make install`,
    `sse-fcgi -t -c /etc/sse-fcgi/sse-fcgi.conf`, the install -d and spawn-fcgi
    lines (the installed binary with the installed config on the documented
    socket, behind the shipped nginx example), `kill -TERM $(cat
    /run/sse-fcgi/spawn.pid)`, `sse-fcgi -l 127.0.0.1:9000`, `make uninstall`.
    Skipped, saying why, where an installation of sse-fcgi already exists."""
    import fcntl
    lock = open(SYSTEM_LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)   # one system-wide install test at a time on this machine
    try:
        _documented_install(env)
    finally:
        lock.close()


def _documented_install(env):
    taken = [p for p in SYSTEM_PATHS if os.path.exists(p)]
    if taken:
        raise harness.TestSkip("sse-fcgi is installed on this machine (%s): not overwriting it" % ", ".join(taken))
    e = _typed_env()
    sudo = shutil.which("sudo") is not None

    def sh(cmd, timeout=180):
        if cmd.startswith("sudo ") and not sudo:
            env.note("no sudo here (we are root): ran %r without it" % cmd)
            cmd = cmd[5:]
        p = subprocess.run(["sh", "-c", cmd], cwd=REPO, env=e, capture_output=True, timeout=timeout * SLOW)
        out = (p.stdout + p.stderr).decode(errors="replace")
        check(p.returncode == 0, lambda: "`%s`: exit %d:\n%s" % (cmd, p.returncode, out[-2000:]))
        return out

    install = [l.split("#")[0].strip() for l in _readme_block_after("## Installing")[:2]]
    eq(install, ["make", "sudo make install"], "the README's install commands")
    spawn_lines = [l.strip() for l in _readme_block_after("### spawn-fcgi way") if l.strip()][:2]
    check(spawn_lines[0].startswith("install -d ") and spawn_lines[1].startswith("spawn-fcgi "),
          "the README's spawn-fcgi way starts with install -d and spawn-fcgi: %r" % spawn_lines)
    with open(MAN_PAGE) as f:
        man = f.read().replace("\\-", "-")
    man_check = "sse-fcgi -t -c /etc/sse-fcgi/sse-fcgi.conf"
    man_standalone = "sse-fcgi -l 127.0.0.1:9000"
    for line in (man_check, man_standalone):
        check("\n%s\n" % line in man, "the man page's EXAMPLES lack %r" % line)

    pids, standalone = [], None
    try:
        for cmd in install:
            sh(cmd)
        for p in ("/usr/local/sbin/sse-fcgi", "/etc/sse-fcgi/sse-fcgi.conf"):
            check(os.path.exists(p), "%s missing after `sudo make install`" % p)
        out = sh(man_check)
        check("test is successful" in out, "`%s` printed %r" % (man_check, out))
        for cmd in spawn_lines:
            sh(cmd)
        with open("/run/sse-fcgi/spawn.pid") as f:
            pids = [int(x) for x in f.read().split()]
        eq(len(pids), 1, "processes started by the README's spawn-fcgi line")
        env.sock = "/run/sse-fcgi/sse-fcgi.sock"   # the shipped socket: nginx needs no change there
        env.start_nginx(shipped_socket=True)
        s = env.open_stream("doctor-123")
        reply = env.publish("doctor-123", '{"status":"ready"}')
        eq(reply.get("delivered"), 1, "delivered by the installed sse-fcgi")
        env.loop.wait(lambda: s.sse.events, 5, "the event through the installed sse-fcgi")
        eq(s.sse.events[0].data, '{"status":"ready"}', "event data")
        sh("kill -TERM $(cat /run/sse-fcgi/spawn.pid)")
        for pid in pids:
            check(harness.wait_pid_exit(pid, 15 * SLOW) is not None, "sse-fcgi pid %d still running after the documented kill -TERM" % pid)
        env.loop.wait(lambda: s.complete, 10, "the stream to end after kill -TERM")
        check(s.clean_end and s.sse.retries, "the stream did not end with a retry: and a clean end: %s" % s.diag())

        # The man page's quick try: FastCGI on TCP 9000 (when 9000 is free here).
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 9000))
            free9000 = True
        except OSError:
            free9000 = False
        finally:
            probe.close()
        if not free9000:
            env.note("NOTE: 127.0.0.1:9000 is taken here: `%s` not run" % man_standalone)
        else:
            standalone = subprocess.Popen(["sh", "-c", "exec " + man_standalone], cwd=REPO, env=e,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          start_new_session=True)
            deadline = time.monotonic() + 10 * SLOW
            while True:
                c = socket.socket()
                try:
                    c.connect(("127.0.0.1", 9000))
                    break
                except OSError:
                    check(standalone.poll() is None, "`%s` exited %s" % (man_standalone, standalone.returncode))
                    check(time.monotonic() < deadline, "`%s`: nothing listens on 9000 after 10 s" % man_standalone)
                    env.loop.run_for(0.02)
                finally:
                    c.close()
            standalone.send_signal(signal.SIGTERM)
            eq(standalone.wait(10 * SLOW), 0, "exit status of `%s` after SIGTERM" % man_standalone)
            standalone.stderr.close()
            standalone = None

        sh("sudo make uninstall")
        for p in ("/usr/local/sbin/sse-fcgi", "/etc/sse-fcgi"):
            check(not os.path.exists(p), "%s left after `sudo make uninstall`" % p)
    finally:
        if standalone is not None:
            standalone.kill()
            standalone.wait(5)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["make", "-s", "-C", REPO, "uninstall"], env=e, capture_output=True, timeout=60)
        shutil.rmtree("/run/sse-fcgi", ignore_errors=True)

