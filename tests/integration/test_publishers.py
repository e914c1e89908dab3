"""The publisher helpers (issue 13): examples/python/sse_publish.py run by
Debian's python3 and examples/php/sse_publish.php run by Debian's php-cli, as
an application would call them, against sse-fcgi behind the shipped nginx
example: publish() delivers to the streams and returns sse-fcgi's reply, a
refused publish raises with the status, the command-line form works, the
seed-compatible PUBLISH sse:<resource> through redis-py and phpredis reaches
the streams, and subscribe_token() signs HS256 tokens that python3-jwt
verifies (the same token from both languages) and sse-fcgi's jwt { }
accepts."""

import json
import os
import subprocess

import harness
from harness import REPO, SLOW, check, eq, fail, test
from redis_helpers import RedisServer, redis_conf, wait_mode

PY_HELPER_DIR = os.path.join(REPO, "examples", "python")
PHP_HELPER = os.path.join(REPO, "examples", "php", "sse_publish.php")
PYTHON = "/usr/bin/python3"
PHP = "/usr/bin/php"
SECRET = "an-hs256-secret-of-at-least-32-bytes!"


def run(env, argv, extra_env=None, timeout=20):
    """Run a helper program (blocking; the streams' bytes wait in their
    sockets meanwhile).  Returns (exit status, stdout, stderr)."""
    e = harness.clean_environ()
    e.update(extra_env or {})
    p = subprocess.run(argv, capture_output=True, timeout=timeout * SLOW, env=e, cwd=env.dir)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def python(env, code, extra_env=None):
    rc, out, err = run(env, [PYTHON, "-c", "import sys; sys.path.insert(0, %r)\n%s" % (PY_HELPER_DIR, code)],
                       extra_env)
    check(rc == 0, lambda: "python3 helper code exited %d:\n%s\n%s" % (rc, out, err))
    return out


def php(env, code, extra_env=None):
    if not os.access(PHP, os.X_OK):
        fail("php-cli is not installed (tests/deps.sh installs it)")
    rc, out, err = run(env, [PHP, "-d", "display_errors=stderr", "-r", "require %s;\n%s" % (
        json.dumps(PHP_HELPER), code)], extra_env)
    check(rc == 0, lambda: "php helper code exited %d:\n%s\n%s" % (rc, out, err))
    return out


PY_PUBLISH = """
import json
from sse_publish import publish, PublishError
url = %(url)r
out = {"reply": publish("doctor-123", {"nowServing": "A-17", "name": "Zoë"}, event="queue_update", base_url=url),
       "plain": publish("appointment-42:7", "line1\\nline2", base_url=url)}
for name, data, kw in (("bad~name", "x", {}), ("doctor-123", "", {}), ("doctor-123", "x" * 70000, {}),
                       ("doctor-123", "x", {"event": "bad~ev"}), ("doctor-123", "x", {"base_url": %(dead)r})):
    try:
        publish(name, data, base_url=kw.pop("base_url", url), **kw)
        out.setdefault("errors", []).append("no error")
    except PublishError as e:
        out.setdefault("errors", []).append(e.status)
print(json.dumps(out))
"""

PHP_PUBLISH = """
$url = %(url)s;
$out = ['reply' => SseFcgi\\publish('doctor-123', ['nowServing' => 'A-17', 'name' => 'Zoë'], 'queue_update', ['base_url' => $url]),
        'plain' => SseFcgi\\publish('appointment-42:7', "line1\\nline2", null, ['base_url' => $url]), 'errors' => []];
foreach ([['bad~name', 'x', null, $url], ['doctor-123', '', null, $url], ['doctor-123', str_repeat('x', 70000), null, $url],
          ['doctor-123', 'x', 'bad~ev', $url], ['doctor-123', 'x', null, %(dead)s]] as [$name, $data, $event, $u]) {
    try {
        SseFcgi\\publish($name, $data, $event, ['base_url' => $u]);
        $out['errors'][] = 'no error';
    } catch (SseFcgi\\PublishError $e) {
        $out['errors'][] = $e->getCode() ?: null;
    }
}
echo json_encode($out), "\\n";
"""


def _publish_via(env, lang):
    env.start({"heartbeat": 5})
    doc = env.open_stream("doctor-123")
    appt = env.open_stream("appointment-42:7")
    url = "http://127.0.0.1:%d" % env.port
    dead = "http://127.0.0.1:%d" % harness.free_port()
    if lang == "python":
        out = json.loads(python(env, PY_PUBLISH % {"url": url, "dead": dead}))
    else:
        out = json.loads(php(env, PHP_PUBLISH % {"url": json.dumps(url), "dead": json.dumps(dead)}))
    eq(out["reply"], {"mode": "local", "delivered": 1, "fallback": False}, "%s publish() reply" % lang)
    eq(out["plain"].get("delivered"), 1, "%s publish() reply for a string payload" % lang)
    # bad name 400, empty 400, too large 413 (nginx's client_max_body_size),
    # bad event name 400, nobody listening: no status
    eq(out["errors"], [400, 400, 413, 400, None], "%s PublishError statuses" % lang)
    env.loop.wait(lambda: doc.events and appt.events, 5, "the %s helper's events" % lang)
    eq([(e.type, e.data) for e in doc.events], [("queue_update", '{"nowServing":"A-17","name":"Zoë"}')],
       "event from the %s helper (compact JSON, UTF-8 as is)" % lang)
    eq([(e.type, e.data) for e in appt.events], [("message", "line1\nline2")], "string payload from %s" % lang)

    # the command-line form, base URL from SSE_PUBLISH_URL
    argv = [PYTHON, os.path.join(PY_HELPER_DIR, "sse_publish.py")] if lang == "python" else [PHP, PHP_HELPER]
    rc, so, se = run(env, argv + ["doctor-123", '{"cli":true}', "cli"], {"SSE_PUBLISH_URL": url})
    eq(rc, 0, "exit status of the %s helper's command line (stderr %r)" % (lang, se))
    eq(json.loads(so).get("delivered"), 1, "delivered count printed by the %s command line" % lang)
    env.loop.wait(lambda: len(doc.events) >= 2, 5, "the %s command line's event" % lang)
    eq((doc.events[1].type, doc.events[1].data), ("cli", '{"cli":true}'), "event from the %s command line" % lang)
    rc, so, se = run(env, argv + ["bad~name", "x"], {"SSE_PUBLISH_URL": url})
    check(rc == 1 and "400" in se, "%s command line on a bad name: exit %d, stderr %r" % (lang, rc, se))
    eq(len(doc.events), 2, "events on doctor-123 after the refused publishes")


@test("publisher_python")
def publisher_python(env):
    _publish_via(env, "python")


@test("publisher_php")
def publisher_php(env):
    _publish_via(env, "php")


@test("publisher_redis")
def publisher_redis(env):
    """The seed-compatible way: PUBLISH sse:<resource> through redis-py and
    phpredis reaches the streams of an sse-fcgi subscribed to that Redis."""
    redis = RedisServer(env).start()
    try:
        env.start(redis_conf(redis.port))
        wait_mode(env, "redis", 10 * SLOW)
        s = env.open_stream("doctor-123")
        n = python(env, "import redis\nfrom sse_publish import publish_redis\n"
                        "print(publish_redis(redis.Redis(port=%d), 'doctor-123', {'via': 'redis-py'}))" % redis.port)
        eq(n.strip(), "1", "subscribers that got the redis-py publish (one sse-fcgi process)")
        n = php(env, "$r = new Redis(); $r->connect('127.0.0.1', %d);\n"
                     "echo SseFcgi\\publish_redis($r, 'doctor-123', ['via' => 'phpredis']), \"\\n\";" % redis.port)
        eq(n.strip(), "1", "subscribers that got the phpredis publish")
        env.loop.wait(lambda: len(s.events) >= 2, 5, "the two Redis publishes on the stream")
        eq([e.data for e in s.events], ['{"via":"redis-py"}', '{"via":"phpredis"}'], "events published through Redis")
    finally:
        env.stop_backend()
        redis.stop()


@test("publisher_subscribe_token")
def publisher_subscribe_token(env):
    """subscribe_token() in both languages: an HS256 JWT that python3-jwt
    verifies with the secret, with exp = iat + ttl and the sse claim; the
    same inputs give the same token in both; sse-fcgi configured with that
    secret opens streams with them; a short secret is refused."""
    now = 1767225600
    py = python(env, "from sse_publish import subscribe_token\n"
                     "print(subscribe_token(['doctor-123', 'queue-7-*'], 600, %r, publish=['doctor-*'], now=%d))\n"
                     "print(subscribe_token('doctor-9', 60, %r))" % (SECRET, now, SECRET)).split()
    ph = php(env, "echo SseFcgi\\subscribe_token(['doctor-123', 'queue-7-*'], 600, %s, ['doctor-*'], null, %d), \"\\n\";"
                  "echo SseFcgi\\subscribe_token(['doctor-9'], 60, %s), \"\\n\";"
             % (json.dumps(SECRET), now, json.dumps(SECRET))).split()
    eq(py[0], ph[0], "the token from Python vs PHP for the same inputs")
    verify = r"""
import json, sys, jwt, time
toks = json.loads(sys.argv[1])
out = []
a = jwt.decode(toks[0], %(s)r, algorithms=["HS256"], options={"verify_exp": False})
out.append(a)
out.append(jwt.get_unverified_header(toks[0]))
for t in toks[1:]:
    c = jwt.decode(t, %(s)r, algorithms=["HS256"], options={"require": ["exp"]})
    out.append([c["sse"], c["exp"] - c["iat"], abs(c["iat"] - time.time()) < 60])
try:
    jwt.decode(toks[0], %(s)r + "x", algorithms=["HS256"], options={"verify_exp": False})
    out.append("accepted with a wrong secret")
except jwt.InvalidSignatureError:
    out.append("bad signature")
print(json.dumps(out))
""" % {"s": SECRET}
    rc, so, se = run(env, [PYTHON, "-c", verify, json.dumps([py[0], py[1], ph[1]])])
    eq(rc, 0, "python3-jwt decoding the tokens (stderr %r)" % se)
    got = json.loads(so)
    eq(got[0], {"iat": now, "exp": now + 600, "sse": {"subscribe": ["doctor-123", "queue-7-*"], "publish": ["doctor-*"]}},
       "claims of the token")
    eq(got[1], {"alg": "HS256", "typ": "JWT"}, "header of the token")
    for g, lang in zip(got[2:4], ("python", "php")):
        eq(g, [{"subscribe": ["doctor-9"]}, 60, True], "claims of a fresh %s token" % lang)
    eq(got[4], "bad signature", "a token checked with another secret")
    # and sse-fcgi itself takes them: a stream opens with either token
    # (cookie or query parameter), a resource the token does not grant is 403
    env.start({"heartbeat": 30, "jwt": {"subscribe": True, "secret": SECRET}})
    for tok, how in ((py[1], "python"), (ph[1], "php")):
        s = env.open_stream("doctor-9", "?token=" + tok)
        eq(s.status, 200, "stream with the %s token in ?token=" % how)
        s = env.open_stream("doctor-9", headers={"Cookie": "sse_token=" + tok})
        eq(s.status, 200, "stream with the %s token in the sse_token cookie" % how)
        ex = env.stream("doctor-10", "?token=" + tok)
        env.loop.wait(lambda: ex.complete, 5, "the answer for a resource the token does not grant")
        eq(ex.status, 403, "stream on a resource the %s token does not grant" % how)
    eq(env.stats().get("streams"), 4, "streams opened with helper tokens (/stats)")
    rc, _, se = run(env, [PYTHON, "-c", "import sys; sys.path.insert(0, %r)\nfrom sse_publish import subscribe_token\n"
                          "subscribe_token(['a'], 60, 'short')" % PY_HELPER_DIR])
    check(rc != 0 and "at least 32 bytes" in se, "Python: a short secret was not refused (%r)" % se)
    rc, _, se = run(env, [PHP, "-r", "require %s; SseFcgi\\subscribe_token(['a'], 60, 'short');" % json.dumps(PHP_HELPER)])
    check(rc != 0 and "at least 32 bytes" in se + _, "PHP: a short secret was not refused (%r)" % se)
