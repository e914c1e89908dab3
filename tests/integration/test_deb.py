"""The Debian package (issue 13): `make deb` builds
build/deb/sse-fcgi_<version>_<arch>.deb with dpkg-buildpackage, lintian finds
no error or warning in it, `apt-get install ./build/deb/...deb` installs it
(binary, man page, conffile, units, examples, the sse-fcgi system user), the
installed binary with the installed config serves streams behind the
installed nginx example (the spawn-fcgi line of the installed spawn-fcgi.sh),
and `apt-get purge` leaves none of its files behind.

It installs into the real system, so it runs once per `make test`: in the
plain pass (the sanitized pass skips it: the package holds the plain build
anyway), serialised by the lock of test_install's system-wide test, and
skipped where sse-fcgi is installed on this machine other than by this
package (its config would be taken over and purged)."""

import contextlib
import fcntl
import os
import pwd
import re
import shlex
import subprocess
import time

import harness
from harness import REPO, SLOW, check, eq, fail, test

PKG = "sse-fcgi"
# one system-wide install test at a time on this machine (test_install.py's lock)
LOCK = "/run/lock/sse-fcgi-system-test.lock"
NOT_OURS = ("/usr/sbin/sse-fcgi", "/etc/sse-fcgi", "/usr/local/sbin/sse-fcgi")
DOC = "/usr/share/doc/sse-fcgi"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_OPTS = ["-y", "-q", "-o", "DPkg::Lock::Timeout=120"]


def makefile_version():
    with open(os.path.join(REPO, "Makefile")) as f:
        return re.search(r"(?m)^VERSION\s*:=\s*(\S+)", f.read()).group(1)


def sh(argv, timeout=120, cwd=REPO, env=None, ok=True):
    e = harness.clean_environ()
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, timeout=timeout * SLOW, cwd=cwd, env=e)
    out = (p.stdout + p.stderr).decode(errors="replace")
    if ok:
        check(p.returncode == 0, lambda: "%s: exit %d:\n%s" % (" ".join(argv), p.returncode, out[-3000:]))
    return p.returncode, out


def status():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG], capture_output=True)
    return p.stdout.decode().strip() if p.returncode == 0 else ""


def purge():
    return sh(["apt-get", "purge"] + APT_OPTS + [PKG], env=APT_ENV, ok=False)


@contextlib.contextmanager
def machine_lock():
    fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# building and installing a package: minutes, not seconds, on a busy machine
harness.TEST_LIMITS["deb_package"] = 300


@test("deb_package")
def deb_package(env):
    if harness.SANITIZE:
        raise harness.TestSkip("the package holds the plain build: tested in the plain pass of make test")
    for tool in ("dpkg-buildpackage", "dh", "lintian", "apt-get", "spawn-fcgi", "nginx"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            fail("%s is not installed (tests/deps.sh installs it)" % tool)
    version = makefile_version()
    arch = sh(["dpkg", "--print-architecture"])[1].strip()
    deb = "build/deb/%s_%s_%s.deb" % (PKG, version, arch)
    with machine_lock():
        if status():
            env.note("sse-fcgi was installed before the test (%s): purged first" % status())
            purge()
        taken = [p for p in NOT_OURS if os.path.exists(p)]
        if taken:
            raise harness.TestSkip("sse-fcgi is installed on this machine (%s): not overwriting it" % ", ".join(taken))
        # the README's commands, as typed.  The unit tests have run already
        # (make test), so the package build skips them, and the debug symbols
        # package: this test must stay well inside a test's 90 s.
        t0 = time.monotonic()
        sh(["make", "deb"], timeout=300, env={"DEB_BUILD_OPTIONS": "parallel=2 nocheck noautodbgsym"})
        env.note("make deb took %.1fs" % (time.monotonic() - t0))
        check(os.path.isfile(os.path.join(REPO, deb)), "make deb did not produce %s" % deb)
        rc, out = sh(["lintian", "--fail-on", "error,warning", deb], timeout=120, ok=False)
        tags = [l for l in out.splitlines() if re.match(r"^[EW]: ", l)]
        check(rc == 0 and not tags, "lintian %s: exit %d:\n%s" % (deb, rc, out))
        try:
            installed(env, deb, version)
        finally:
            env.stop_backend()
            if status():
                purge()


def installed(env, deb, version):
    sh(["apt-get", "install"] + APT_OPTS + ["./" + deb], timeout=180, env=APT_ENV)
    eq(status(), "install ok installed", "dpkg status of %s" % PKG)
    files = sh(["dpkg", "-L", PKG])[1].split("\n")
    for path in ("/usr/sbin/sse-fcgi", "/etc/sse-fcgi/sse-fcgi.conf", "/usr/share/man/man8/sse-fcgi.8.gz",
                 "/lib/systemd/system/sse-fcgi.socket", "/lib/systemd/system/sse-fcgi@.service",
                 "/usr/lib/sysusers.d/sse-fcgi.conf", DOC + "/copyright",
                 DOC + "/examples/nginx/nginx.conf", DOC + "/examples/nginx/spawn-fcgi.sh",
                 DOC + "/examples/apache/apache2.conf", DOC + "/examples/caddy/Caddyfile",
                 DOC + "/examples/php/sse_publish.php", DOC + "/examples/python/sse_publish.py"):
        check(path in files and os.path.exists(path), "the package does not install %s" % path)
    conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", PKG])[1]
    check(re.search(r"^ /etc/sse-fcgi/sse-fcgi\.conf [0-9a-f]{32}$", conffiles, re.M),
          "sse-fcgi.conf is not a conffile: %r" % conffiles)
    # the system user the service runs as
    try:
        pw = pwd.getpwnam(PKG)
    except KeyError:
        fail("no user %s after install" % PKG)
    check(pw.pw_uid < 1000, "user %s is not a system user (uid %d)" % (PKG, pw.pw_uid))
    check(pw.pw_shell.endswith("nologin"), "user %s has a login shell %r" % (PKG, pw.pw_shell))
    # the installed units name the installed binary and config
    with open("/lib/systemd/system/sse-fcgi@.service") as f:
        check("ExecStart=/usr/sbin/sse-fcgi -c /etc/sse-fcgi/sse-fcgi.conf\n" in f.read(),
              "installed sse-fcgi@.service does not run /usr/sbin/sse-fcgi")
    out = sh(["/usr/sbin/sse-fcgi", "--version"])[1]
    check(version in out, "sse-fcgi --version says %r, want %s" % (out, version))
    sh(["man", "-w", "sse-fcgi"], timeout=30)
    sh(["/usr/sbin/sse-fcgi", "-t", "-c", "/etc/sse-fcgi/sse-fcgi.conf"])

    # the installed spawn-fcgi line, as installed: only the socket and the pid
    # file move (the documented substitution); program and -c are the
    # installed ones
    with open(DOC + "/examples/nginx/spawn-fcgi.sh") as f:
        line = [l for l in f.read().splitlines() if l.startswith("spawn-fcgi ")][0]
    argv = shlex.split(line)
    dd = argv.index("--")
    eq(argv[dd + 1:], ["/usr/sbin/sse-fcgi", "-c", "/etc/sse-fcgi/sse-fcgi.conf"],
       "the program in the installed spawn-fcgi.sh")
    argv[argv.index("-s") + 1] = env.sock
    argv[argv.index("-P") + 1] = env.spawn_pid
    sh(argv, timeout=20)
    with open(env.spawn_pid) as f:
        env.backend_pids = [int(x) for x in f.read().split()]
    eq(len(env.backend_pids), 1, "processes spawned by the installed spawn-fcgi line")
    env.wait_backend_ready()
    env.start_nginx(example=DOC + "/examples/nginx/nginx.conf")
    s = env.open_stream("doctor-123")
    r = env.publish("doctor-123", '{"nowServing":"A-17"}', event="queue_update")
    eq((r.get("mode"), r.get("delivered")), ("local", 1), "publish reply from the installed sse-fcgi")
    env.loop.wait(lambda: s.events, 5, "the event from the installed sse-fcgi")
    eq((s.events[0].type, s.events[0].data), ("queue_update", '{"nowServing":"A-17"}'), "event")
    st = env.stats()
    eq(st.get("pid"), env.pid, "/stats pid")
    res = env.stop_backend()
    eq(list(res.values()), [0], "exit status of the installed sse-fcgi after SIGTERM")
    env.loop.wait(lambda: s.complete, 5, "the stream to end when sse-fcgi stops")

    # purge: nothing of the package is left
    rc, out = purge()
    eq(rc, 0, "apt-get purge exit status (%s)" % out[-500:])
    eq(status(), "", "dpkg status after purge")
    left = [f for f in files if f and os.path.isfile(f)]
    eq(left, [], "files of the package left after purge")
    for d in ("/etc/sse-fcgi", DOC, "/var/log/sse-fcgi", "/var/log/private/sse-fcgi"):
        check(not os.path.exists(d), "%s left after purge" % d)
    info = [f for f in os.listdir("/var/lib/dpkg/info") if f.startswith(PKG + ".")]
    eq(info, [], "dpkg's files about the package after purge")
    env.note("built, lintian-clean, installed, served, purged; the system user %s stays "
             "(Debian keeps system users)" % PKG)
