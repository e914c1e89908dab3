"""Access control with signed tokens (SPEC "Access control", issue 12), through
nginx and lighttpd as shipped.  Tokens are minted by PyJWT (Debian's
python3-jwt, with python3-cryptography for RS256/ES256) so that a bug shared
by sse-fcgi's own minting and checking cannot pass; keys come from the
openssl command line.  Every refused request must answer its status with a
JSON reason (never the token), register no stream, count against no limit
and deliver nothing: a barrier on a watching stream proves it."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time

import harness
from harness import SLOW, check, eq, fail, test

try:
    import jwt as pyjwt   # python3-jwt
except ImportError:       # pragma: no cover - tests/deps.sh installs it
    pyjwt = None

SECRET = "integration-secret-0123456789-abcdef"
OTHER_SECRET = "another-secret-0123456789-abcdefghij"
ISSUER = "https://clinic.example"
AUDIENCE = "sse"


def need_pyjwt():
    if pyjwt is None:
        fail("python3-jwt is not installed (sh tests/deps.sh)")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(sub=("doctor-123",), pub=None, exp_in=600, **extra):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + exp_in,
         "sse": {"subscribe": list(sub)}}
    if pub is not None:
        c["sse"]["publish"] = list(pub)
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def hs(c, key=SECRET, alg="HS256"):
    need_pyjwt()
    return pyjwt.encode(c, key, algorithm=alg)


def forge_hs256(header, payload, key):
    """An HS256 signature computed here, for what PyJWT refuses to make (a PEM
    public key as HMAC secret, deep JSON, duplicate keys)."""
    h = b64(header if isinstance(header, bytes) else json.dumps(header).encode())
    p = b64(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    sig = hmac.new(key if isinstance(key, bytes) else key.encode(), (h + "." + p).encode(),
                   hashlib.sha256).digest()
    return h + "." + p + "." + b64(sig)


def jwt_conf(**jwt):
    base = {"subscribe": True, "secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE}
    base.update(jwt)
    return {k: v for k, v in base.items() if v is not None}


def refused(env, ex, status, reason, what, tokens=()):
    """A complete JSON refusal: status, the reason, no token echoed, no stream."""
    eq(ex.status, status, what)
    body = bytes(ex.body).decode(errors="replace")
    check((ex.header("content-type") or "").startswith("application/json"),
          "%s: Content-Type %r" % (what, ex.header("content-type")))
    try:
        got = json.loads(body).get("error")
    except ValueError:
        got = None
    check(got == reason, "%s: reason %r, want %r (body %r)" % (what, got, reason, body[:200]))
    check("retry:" not in body, "%s: the refusal carried a stream" % what)
    for t in tokens:
        for part in (t, t.split(".")[-1]):
            check(len(part) < 16 or part not in body, "%s: the token came back" % what)
    if status == 401:
        check(ex.header("www-authenticate"), "%s: 401 without WWW-Authenticate" % what)


def stream_with(env, resource, cookie=None, query=""):
    headers = {"Cookie": cookie} if cookie else None
    return env.stream(resource, query, headers)


def wait_answer(env, s, what):
    env.loop.wait(lambda: s.complete or (s.status is not None and (s.status != 200 or s.sse.retries)),
                  5, what)
    return s


def keys(env):
    """RSA-2048 and two P-256 key pairs made with the openssl CLI (PEM files
    readable by the backend's user)."""
    out = {}
    d = env.sse_dir
    for name, args in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                       ("ec2", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        priv, pub = os.path.join(d, name + ".key"), os.path.join(d, name + ".pub")
        subprocess.run(["openssl", "genpkey"] + args + ["-out", priv], check=True,
                       capture_output=True, timeout=30 * SLOW)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                       capture_output=True, timeout=30 * SLOW)
        os.chmod(priv, 0o644)
        os.chmod(pub, 0o644)
        with open(priv, "rb") as f:
            out[name] = f.read()
        with open(pub, "rb") as f:
            out[name + ".pub"] = f.read()
        out[name + ".pub.path"] = pub
        out[name + ".key.path"] = priv
    return out


def no_token_in_logs(env, tokens, extra_logs=()):
    """Neither a token nor its signature in sse-fcgi's log or the front server's
    access log."""
    logs = {env.log_path: env.log_text()}
    for p in extra_logs:
        try:
            with open(p, errors="replace") as f:
                logs[p] = f.read()
        except OSError:
            logs[p] = ""
    for path, text in logs.items():
        for t in tokens:
            for part in (t, t.split(".")[-1]):
                if len(part) >= 16 and part in text:
                    fail("a token (or its signature) is in %s" % path)


@test("jwt_bad_tokens")
def bad_tokens(env):
    """The bad-token table through nginx: each status and reason, nothing
    registered, nothing delivered, no limit counted (max_streams_per_resource
    1 is already used by the watcher, so a request counted first would get
    429), no token in any log."""
    need_pyjwt()
    env.start({"heartbeat": 30, "max_streams_per_resource": 1, "jwt": jwt_conf()})
    good = hs(claims(sub=["doctor-123", "doctor-1*"], pub=["doctor-*"]))
    watch = wait_answer(env, stream_with(env, "doctor-123", "sse_token=" + good), "watcher")
    eq(watch.status, 200, "stream with a good token in the cookie")
    now = int(time.time())
    deep = forge_hs256({"alg": "HS256", "typ": "JWT"},
                       b'{"exp":%d,"sse":{"subscribe":["*"]},"x":%s1%s}' % (now + 600, b"[" * 64, b"]" * 64),
                       SECRET)
    dup = forge_hs256({"alg": "HS256"}, b'{"exp":%d,"exp":1,"iss":"%s","aud":"%s","sse":{"subscribe":["*"]}}'
                      % (now + 600, ISSUER.encode(), AUDIENCE.encode()), SECRET)
    rsa_key = keys(env)
    none_tok = hs(claims(sub=["*"]), key=None, alg="none") if pyjwt else ""
    check(none_tok.endswith("."), "PyJWT alg none token %r" % none_tok[:40])
    # (name, resource, cookie token, query token, status, reason)
    table = [
        ("missing", "doctor-123", None, None, 401, "token required"),
        ("bad signature", "doctor-123", hs(claims(), key=OTHER_SECRET), None, 401, "invalid token"),
        ("other algorithm HS384", "doctor-123", hs(claims(), alg="HS384"), None, 401, "invalid token"),
        ("other algorithm RS256", "doctor-123",
         pyjwt.encode(claims(), rsa_key["rsa"], algorithm="RS256"), None, 401, "invalid token"),
        ("alg none", "doctor-123", none_tok, None, 401, "invalid token"),
        ("alg none in the query", "doctor-123", None, none_tok, 401, "invalid token"),
        ("expired", "doctor-123", hs(claims(exp_in=-100)), None, 401, "token expired"),
        ("no exp", "doctor-123", hs(claims(exp=None)), None, 401, "token has no exp"),
        ("nbf in the future", "doctor-123", hs(claims(nbf=now + 300)), None, 401, "token not yet valid"),
        ("wrong iss", "doctor-123", hs(claims(iss="https://evil.example")), None, 401, "wrong token issuer"),
        ("no iss", "doctor-123", hs(claims(iss=None)), None, 401, "wrong token issuer"),
        ("wrong aud", "doctor-123", hs(claims(aud="other")), None, 401, "wrong token audience"),
        ("grant for another resource", "doctor-124", hs(claims(sub=["doctor-123"])), None, 403,
         "token does not grant this resource"),
        ("exact grant is not a prefix", "doctor-12", hs(claims(sub=["doctor-1"])), None, 403,
         "token does not grant this resource"),
        ("prefix with separator", "doctor-12", hs(claims(sub=["doctor-1-*"])), None, 403,
         "token does not grant this resource"),
        ("publish grant only", "doctor-123", hs(claims(sub=[], pub=["*"])), None, 403,
         "token does not grant this resource"),
        ("truncated", "doctor-123", good[:-5], None, 401, "invalid token"),
        ("truncated to two parts", "doctor-123", good.rsplit(".", 1)[0], None, 401, "invalid token"),
        ("padded", "doctor-123", good + "==", None, 401, "invalid token"),
        ("padded in the query", "doctor-123", None, good + "%3D", 401, "invalid token"),
        ("non-base64url", "doctor-123", good[:10] + "+/" + good[12:], None, 401, "invalid token"),
        ("deeply nested JSON", "doctor-123", deep, None, 401, "invalid token"),
        ("duplicate claim", "doctor-123", dup, None, 401, "invalid token"),
        ("two cookies", "doctor-123", good + "; sse_token=" + good, None, 401, "more than one token"),
        ("two query tokens", "doctor-123", None, good + "&token=" + good, 401, "more than one token"),
        ("bad cookie, good query (the cookie wins)", "doctor-123", "x" + good, good, 401, "invalid token"),
    ]
    used = [good]
    for name, res, ctok, qtok, status, reason in table:
        headers = {"Cookie": "theme=dark; sse_token=" + ctok} if ctok is not None else None
        path = "/sse/" + res + ("?token=" + qtok if qtok is not None else "")
        ex = env.request("GET", path, headers=headers)
        refused(env, ex, status, reason, "%s: GET %s" % (name, "/sse/" + res), [t for t in (ctok, qtok) if t])
        used += [t for t in (ctok, qtok) if t]
    # The good cases: leeway, audience arrays, prefix grants, query tokens; each
    # stream opens on a resource of its own (the per-resource limit is 1)
    for name, res, tok, via in (
            ("expired within the leeway", "doctor-124", hs(claims(sub=["doctor-124"], exp_in=-10)), "cookie"),
            ("aud array", "doctor-125", hs(claims(sub=["doctor-125"], aud=["web", AUDIENCE])), "cookie"),
            ("prefix* covers doctor-12", "doctor-12", hs(claims(sub=["doctor-1*"])), "cookie"),
            ("* grant", "queue-7", hs(claims(sub=["*"])), "query"),
            ("good cookie, bad query (the cookie wins)", "doctor-126",
             hs(claims(sub=["doctor-126"])), "both")):
        if via == "cookie":
            s = stream_with(env, res, "sse_token=" + tok)
        elif via == "query":
            s = stream_with(env, res, None, "?token=" + tok)
        else:
            s = stream_with(env, res, "sse_token=" + tok, "?token=garbage")
        wait_answer(env, s, name)
        eq(s.status, 200, name)
        used.append(tok)
    # A good token still meets the limits after the check: 429, not a stream
    ex = env.request("GET", "/sse/doctor-123", headers={"Cookie": "sse_token=" + good})
    eq(ex.status, 429, "second doctor-123 stream with a good token (limit 1)")
    # Huge token: nginx itself refuses a 64 KiB Cookie header; straight over
    # FastCGI sse-fcgi refuses it by size
    huge = good + "A" * (65536 - len(good))
    ex = env.request("GET", "/sse/doctor-123", headers={"Cookie": "sse_token=" + huge})
    eq(ex.status, 400, "64 KiB cookie through nginx (nginx's own 400)")
    fx = env.fcgi("GET", "/sse/doctor-123", headers={"Cookie": "sse_token=" + huge})
    eq(fx.status, 401, "64 KiB token straight to sse-fcgi")
    check(b"invalid token" in bytes(fx.body), "64 KiB token reason: %r" % bytes(fx.body)[:100])
    # (nginx sends the query twice, in REQUEST_URI and QUERY_STRING: 2 x 60 KiB
    # stays under the backend's 128 KiB request-head limit)
    fx = env.fcgi("GET", "/sse/doctor-123?token=" + huge[:60000])
    eq(fx.status, 401, "60 KiB query token straight to sse-fcgi")
    st = env.stats()
    eq(st.get("streams"), 6, "streams registered (watcher + 5 good tokens)")
    # barrier: the watcher got exactly the barrier; publish needs a token now
    r = env.publish("doctor-123", "barrier", token=hs(claims(sub=[], pub=["doctor-*"])))
    eq(r.get("delivered"), 1, "barrier delivered")
    env.loop.wait(lambda: watch.events, 5, "barrier on the watcher")
    eq([e.data for e in watch.events], ["barrier"], "watcher's events after the bad tokens")
    check(not watch.complete, "the watcher ended")
    used.append(huge)
    no_token_in_logs(env, used, [os.path.join(env.ngx_log, "access.log")])
    with open(os.path.join(env.ngx_log, "access.log")) as f:
        log = f.read()
    check(re.search(r'"GET /sse/doctor-123 HTTP/1\.1" 401 ', log),
          "nginx access log lacks the path of the refused stream requests:\n%s" % log[-600:])
    check("token=" not in log, "a token query parameter is in nginx's access log")
    env.note("%d bad tokens refused as expected, 5 good ones opened" % len(table))


@test("jwt_publish")
def publish_grants(env):
    """POST /publish/ with a JWT publish grant beside publish_token; GET
    /publish/ (the count) under the same rule; subscribe off leaves streams
    open while publishing needs a token."""
    need_pyjwt()
    static = "static-publish-token-0123456789"
    env.start({"heartbeat": 30, "publish_token": static, "jwt": jwt_conf(subscribe=False)})
    s = env.open_stream("doctor-7")   # subscribe = false: no token needed
    pub = hs(claims(sub=[], pub=["doctor-*"]))
    r = env.publish("doctor-7", "by-jwt", token=pub)
    eq(r.get("delivered"), 1, "publish with a JWT publish grant")
    r = env.publish("doctor-7", "by-static", token=static)
    eq(r.get("delivered"), 1, "publish with publish_token")
    for name, tok, status, reason in (
            ("no token", None, 401, "missing or wrong bearer token"),
            ("subscribe grant only", hs(claims(sub=["doctor-7"])), 403, "token does not grant this resource"),
            ("publish grant for another resource", hs(claims(sub=[], pub=["appointment-*"])), 403,
             "token does not grant this resource"),
            ("expired", hs(claims(sub=[], pub=["*"], exp_in=-100)), 401, "token expired"),
            ("other secret", hs(claims(sub=[], pub=["*"]), key=OTHER_SECRET), 401, "invalid token")):
        ex = env.publish("doctor-7", "nope", token=tok, expect=None)
        refused(env, ex, status, reason, "POST /publish/doctor-7 with %s" % name, [tok] if tok else [])
    ex = env.request("GET", "/publish/doctor-7", headers={"Authorization": "Bearer " + pub})
    eq(ex.status, 200, "GET /publish/doctor-7 with a publish grant")
    eq(ex.json().get("streams"), 1, "count")
    ex = env.request("GET", "/publish/doctor-7")
    eq(ex.status, 401, "GET /publish/doctor-7 without a token")
    env.loop.wait(lambda: len(s.events) >= 2, 5, "two events")
    eq([e.data for e in s.events], ["by-jwt", "by-static"], "events: only the authorised publishes")


def rewrite_and_hup(env, jwt):
    env.write_conf({"heartbeat": 30, "jwt": jwt})
    n = env.log_text().count("configuration reloaded")
    os.kill(env.pid, signal.SIGHUP)
    env.loop.wait(lambda: env.log_text().count("configuration reloaded") > n or
                  "reload failed" in env.log_text(), 5, "the reload")


@test("jwt_rotation")
def rotation(env):
    """SIGHUP with a new secret: open streams stay, tokens with either secret
    work while previous_secret is set, then only the new one; a bad reload keeps
    the running keys."""
    need_pyjwt()
    old, new = "old-secret-0123456789-0123456789-abc", "new-secret-0123456789-0123456789-xyz"
    env.start({"heartbeat": 30, "jwt": jwt_conf(secret=old)})
    c = claims(sub=["doctor-*"], pub=["doctor-*"])
    t_old, t_new = hs(c, key=old), hs(c, key=new)
    s1 = wait_answer(env, stream_with(env, "doctor-1", "sse_token=" + t_old), "stream with the old secret")
    eq(s1.status, 200, "stream with the old secret before the rotation")
    eq(env.request("GET", "/sse/doctor-1", headers={"Cookie": "sse_token=" + t_new}).status, 401,
       "new secret before the rotation")

    rewrite_and_hup(env, jwt_conf(secret=new, previous_secret=old))
    check("reload failed" not in env.log_text(), "reload: %s" % env.log_tail())
    streams = [s1]
    for name, tok in (("old secret during the rotation", t_old), ("new secret during the rotation", t_new)):
        s = wait_answer(env, stream_with(env, "doctor-2", "sse_token=" + tok), name)
        eq(s.status, 200, name)
        streams.append(s)
    r = env.publish("doctor-1", "after-rotation", token=t_old)
    eq(r.get("delivered"), 1, "publish with the old secret during the rotation")

    rewrite_and_hup(env, jwt_conf(secret=new))
    eq(env.request("GET", "/sse/doctor-2", headers={"Cookie": "sse_token=" + t_old}).status, 401,
       "old secret once previous_secret is removed")
    s = wait_answer(env, stream_with(env, "doctor-2", "sse_token=" + t_new), "new secret after")
    eq(s.status, 200, "new secret once previous_secret is removed")
    streams.append(s)
    # a bad file changes nothing
    env.write_conf({"heartbeat": 30, "jwt": jwt_conf(secret="short")})
    os.kill(env.pid, signal.SIGHUP)
    env.wait_log(r"reload failed, keeping the running configuration: .*jwt\.secret: must be at least 32")
    eq(env.request("GET", "/sse/doctor-2", headers={"Cookie": "sse_token=" + t_old}).status, 401,
       "old secret after a failed reload")
    r = env.publish("doctor-2", "still", token=t_new)
    eq(r.get("delivered"), 3, "doctor-2 streams after three reloads")
    r = env.publish("doctor-1", "last", token=t_new)
    eq(r.get("delivered"), 1, "doctor-1 stream after three reloads")
    env.loop.wait(lambda: s1.events and s1.events[-1].data == "last", 5, "the first stream's last event")
    eq([e.data for e in s1.events], ["after-rotation", "last"], "the stream opened before the rotation")
    check(not any(x.complete for x in streams), "a stream ended during the reloads")
    no_token_in_logs(env, [t_old, t_new, old, new])


@test("jwt_public_keys")
def public_keys(env):
    """RS256 then ES256 with PEM keys: the key's own algorithm works, the
    other is refused, and an HS256 token signed with the public key's text
    (the key-confusion attack) is refused."""
    need_pyjwt()
    k = keys(env)
    env.start({"heartbeat": 30, "jwt": jwt_conf(secret=None, public_key_file=k["rsa.pub.path"])})
    c = claims(sub=["doctor-123"])
    rs = pyjwt.encode(c, k["rsa"], algorithm="RS256")
    es = pyjwt.encode(c, k["ec"], algorithm="ES256")
    confused = forge_hs256({"alg": "HS256", "typ": "JWT"}, c, k["rsa.pub"])
    s = wait_answer(env, stream_with(env, "doctor-123", "sse_token=" + rs), "RS256")
    eq(s.status, 200, "RS256 token against the RSA key")
    for name, tok in (("ES256 against an RSA key", es), ("HS256 signed with the public key", confused),
                      ("HS256 with a secret nobody configured", hs(c))):
        refused(env, env.request("GET", "/sse/doctor-123", headers={"Cookie": "sse_token=" + tok}),
                401, "invalid token", name, [tok])
    env.stop_backend()
    env.backend_pids = []
    env.start_backend({"heartbeat": 30, "jwt": jwt_conf(secret=None, public_key_file=k["ec.pub.path"])})
    s2 = wait_answer(env, stream_with(env, "doctor-123", "sse_token=" + es), "ES256")
    eq(s2.status, 200, "ES256 token against the P-256 key")
    es_other = pyjwt.encode(c, k["ec2"], algorithm="ES256")
    for name, tok in (("RS256 against an EC key", rs), ("ES256 by another key", es_other),
                      ("HS256 signed with the public key", forge_hs256({"alg": "HS256"}, c, k["ec.pub"]))):
        refused(env, env.request("GET", "/sse/doctor-123", headers={"Cookie": "sse_token=" + tok}),
                401, "invalid token", name, [tok])


@test("jwt_config_check")
def config_check(env):
    """`sse-fcgi -t`: each jwt mistake is one line naming file, line and key, exit 1."""
    k_dir = env.sse_dir
    priv = os.path.join(k_dir, "private.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", priv], check=True, capture_output=True, timeout=30 * SLOW)
    small = os.path.join(k_dir, "small.pub")
    subprocess.run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 | openssl pkey -pubout -out "
                   + small, shell=True, check=True, capture_output=True, timeout=30 * SLOW)
    conf = os.path.join(k_dir, "check.conf")
    cases = [
        ('jwt {\n  secret = "too-short"\n}\n', 2, "jwt.secret", "must be at least 32 bytes long"),
        ('# c\njwt {\n  subscribe = true\n}\n', 3, "jwt.subscribe", "needs jwt.secret or jwt.public_key_file"),
        ('jwt {\n  subscribe = true\n  public_key_file = "%s/missing.pem"\n}\n' % k_dir, 3,
         "jwt.public_key_file", "cannot open: No such file or directory"),
        ('jwt {\n  subscribe = true\n  public_key_file = "%s"\n}\n' % k_dir, 3,
         "jwt.public_key_file", "not a PEM public key"),
        ('jwt {\n\n  public_key_file = "%s"\n}\n' % priv, 3, "jwt.public_key_file", "not a PEM public key"),
        ('jwt {\n  public_key_file = "%s"\n}\n' % small, 2, "jwt.public_key_file",
         "RSA key of 1024 bits, RS256 needs 2048 or more"),
        ('jwt {\n  secret = "%s"\n  previous_secret = "x"\n}\n' % SECRET, 3, "jwt.previous_secret",
         "must be at least 32 bytes long"),
    ]
    for text, line, key, what in cases:
        with open(conf, "w") as f:
            f.write(text)
        p = harness.run_binary(["-t", "-c", conf], env.san_dir)
        err = p.stderr.decode(errors="replace")
        eq(p.returncode, 1, "exit status of -t for %s" % key)
        lines = err.strip().splitlines()
        eq(len(lines), 1, "lines of -t output for %r" % text)
        check(lines[0].startswith("sse-fcgi: %s:%d: %s: " % (conf, line, key)) and what in lines[0],
              "-t said %r, want %s:%d: %s: ...%s" % (lines[0], conf, line, key, what))
        check("too-short" not in err, "-t echoed a secret")


@test("jwt_token_command")
def token_command(env):
    """`sse-fcgi token`: PyJWT accepts what it prints (HS256, iss and aud from
    the config, the grants, exp = now + ttl); mistakes exit 1."""
    need_pyjwt()
    conf = env.write_conf({"jwt": jwt_conf()})
    t0 = int(time.time())
    p = harness.run_binary(["token", "-c", conf, "--subscribe", "doctor-123", "queue-7-*",
                            "--publish", "doctor-*", "--ttl", "120", "--sub", "alice"], env.san_dir)
    eq(p.returncode, 0, "sse-fcgi token exit status (%s)" % p.stderr.decode(errors="replace"))
    tok = p.stdout.decode().strip()
    check(re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", tok), "token %r" % tok[:60])
    c = pyjwt.decode(tok, SECRET, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE)
    eq(c["sse"], {"subscribe": ["doctor-123", "queue-7-*"], "publish": ["doctor-*"]}, "grants")
    eq(c["sub"], "alice", "sub")
    check(t0 + 119 <= c["exp"] <= int(time.time()) + 121, "exp %r for --ttl 120" % c["exp"])
    eq(pyjwt.get_unverified_header(tok)["alg"], "HS256", "alg")
    # default ttl 3600; SSE_FCGI_CONF instead of -c
    p = harness.run_binary(["token", "--subscribe", "*"], env.san_dir, extra_env={"SSE_FCGI_CONF": conf})
    eq(p.returncode, 0, "sse-fcgi token with SSE_FCGI_CONF")
    c = pyjwt.decode(p.stdout.decode().strip(), SECRET, algorithms=["HS256"], audience=AUDIENCE)
    check(abs(c["exp"] - c["iat"] - 3600) <= 1, "default ttl: %r" % c)
    nosecret = env.write_conf({}, path=os.path.join(env.sse_dir, "nosecret.conf"))
    for args, what in ((["--subscribe", "doctor/1"], "PATTERN"), (["--subscribe"], "needs at least one"),
                       ([], "give --subscribe"), (["--subscribe", "a", "--ttl", "0"], "--ttl 0"),
                       (["--subscribe", "a", "-c", nosecret], "jwt.secret is not set"),
                       (["--subscribe", "a", "-c", "/nonexistent.conf"], "cannot open")):
        argv = ["token"] + (["-c", conf] if "-c" not in args else []) + args
        p = harness.run_binary(argv, env.san_dir)
        eq(p.returncode, 1, "sse-fcgi %s" % " ".join(argv))
        check(what in p.stderr.decode(errors="replace"), "sse-fcgi %s said %r" % (
            " ".join(argv), p.stderr.decode(errors="replace")[:200]))
        eq(p.stdout, b"", "stdout of a failed sse-fcgi token")
    # what it prints opens a stream
    env.start_backend({"heartbeat": 30, "jwt": jwt_conf()})
    env.start_nginx()
    p = harness.run_binary(["token", "-c", env.conf_path, "--subscribe", "doctor-123"], env.san_dir)
    s = wait_answer(env, stream_with(env, "doctor-123", "sse_token=" + p.stdout.decode().strip()), "stream")
    eq(s.status, 200, "stream with a token from sse-fcgi token")


@test("jwt_lighttpd")
def through_lighttpd(env):
    """Both ways of protecting a stream behind lighttpd (spawn-fcgi example):
    the cookie reaches sse-fcgi (lighttpd passes every header), the query
    parameter too; 401/403 pass through; the access log keeps no query."""
    need_pyjwt()
    from test_lighttpd import lighttpd
    with lighttpd(env, "spawn", {"heartbeat": 30, "jwt": jwt_conf()}) as lt:
        tok = hs(claims(sub=["appointment-42"]))
        a = wait_answer(env, stream_with(env, "appointment-42", "sse_token=" + tok), "cookie stream")
        eq(a.status, 200, "cookie token through lighttpd")
        b = wait_answer(env, stream_with(env, "appointment-42", None, "?token=" + tok), "query stream")
        eq(b.status, 200, "query token through lighttpd")
        refused(env, env.request("GET", "/sse/appointment-42"), 401, "token required", "no token via lighttpd")
        refused(env, env.request("GET", "/sse/appointment-43", headers={"Cookie": "sse_token=" + tok}),
                403, "token does not grant this resource", "another patient's resource via lighttpd", [tok])
        refused(env, env.request("GET", "/sse/appointment-42?token=" + tok[:-3]), 401, "invalid token",
                "truncated query token via lighttpd", [tok])
        r = env.publish("appointment-42", "hello", token=hs(claims(sub=[], pub=["appointment-*"])))
        eq(r.get("delivered"), 2, "publish with a JWT through lighttpd")
        env.loop.wait(lambda: a.events and b.events, 5, "the event on both streams")
        eq([e.data for e in a.events + b.events], ["hello", "hello"], "events via lighttpd")
        access = os.path.join(lt.log_dir, "access.log")
        env.loop.wait(lambda: os.path.exists(access) and "appointment-43" in open(access).read(), 5,
                      "lighttpd's access log")
        with open(access) as f:
            log = f.read()
        check("token=" not in log, "a token query parameter is in lighttpd's access log:\n" + log[-500:])
        # (open streams are logged when they end; the refused query-token request is there)
        check('"GET /sse/appointment-42 HTTP/1.1" 401' in log, "lighttpd access log:\n" + log[-500:])
        no_token_in_logs(env, [tok], [access])


@test("nginx_auth_request")
def auth_request(env):
    """examples/nginx/auth-request.conf as shipped: the application's auth
    endpoint (here a small HTTP server of the test's own) decides; 2xx opens
    the stream, 401/403 reach the browser and nothing reaches sse-fcgi; the
    endpoint down is a 500."""
    import http.server
    import threading

    seen = []
    failing = []

    class Auth(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            uri = self.headers.get("X-Original-URI", "")
            cookie = self.headers.get("Cookie", "")
            seen.append((self.path, uri, cookie))
            if failing:
                code = 503
            elif self.path != "/auth/sse":
                code = 404
            elif "session=alice" not in cookie:
                code = 401
            elif uri.split("?")[0] in ("/sse/doctor-123", "/sse/appointment-42"):
                code = 204
            else:
                code = 403
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Auth)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        env.start_backend({"heartbeat": 30})
        env.start_nginx(example=os.path.join(harness.REPO, "examples", "nginx", "auth-request.conf"),
                        extra_rules=[("the auth endpoint", r"server 127\.0\.0\.1:9000;",
                                     "server 127.0.0.1:%d;" % srv.server_address[1])])
        s = wait_answer(env, stream_with(env, "doctor-123", "session=alice"), "allowed stream")
        eq(s.status, 200, "stream the auth endpoint allows")
        eq(seen[-1][:2], ("/auth/sse", "/sse/doctor-123"), "subrequest path and X-Original-URI")
        eq(env.request("GET", "/sse/doctor-124", headers={"Cookie": "session=alice"}).status, 403,
           "another patient's resource")
        eq(env.request("GET", "/sse/doctor-123").status, 401, "no session")
        eq(env.stats().get("streams"), 1, "streams in sse-fcgi (the refused never reached it)")
        r = env.publish("doctor-123", "hello")
        eq(r.get("delivered"), 1, "publish")
        env.loop.wait(lambda: s.events, 5, "event on the allowed stream")
        eq([e.data for e in s.events], ["hello"], "events")
        failing.append(1)
        eq(env.request("GET", "/sse/doctor-123", headers={"Cookie": "session=alice"}).status, 500,
           "auth endpoint failing (503)")
        eq(env.stats().get("streams"), 1, "streams in sse-fcgi at the end")
        env.note("%d auth subrequests" % len(seen))
    finally:
        srv.shutdown()
        srv.server_close()


def readme_block(heading, lang="sh", index=0):
    with open(os.path.join(harness.REPO, "README.md")) as f:
        text = f.read()
    part = text.split(heading, 1)[1]
    blocks = re.findall(r"```%s\n(.*?)```" % lang, part, re.S)
    return blocks[index]


@test("jwt_readme_commands")
def readme_commands(env):
    """The README's access-control commands as typed, with only the config
    path, the directory of the public key and the port substituted, `sse-fcgi`
    found on PATH, and a 1 s limit on the endless `curl -N`."""
    env.start({"heartbeat": 30, "jwt": jwt_conf(issuer=None, audience=None)})
    bindir = os.path.join(env.dir, "bin")
    os.makedirs(bindir)
    os.symlink(harness.BIN, os.path.join(bindir, "sse-fcgi"))
    shenv = env.backend_env({"PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")})

    def run(index, subst):
        script = readme_block("### Stream tokens (JWT)", index=index)
        for a, b in subst:
            check(a in script, "README block %d lacks %r" % (index, a))
            script = script.replace(a, b)
        return subprocess.run(["sh", "-ec", script], capture_output=True, timeout=60 * SLOW,
                              cwd=env.sse_dir, env=shenv)

    # `curl -N` ends only by its time limit (exit 28): `!` keeps sh -e going to the publish
    p = run(0, [("/etc/sse-fcgi/sse-fcgi.conf", env.conf_path), ("127.0.0.1:8080", "127.0.0.1:%d" % env.port),
                ("curl -N ", "! curl -N --max-time 1 ")])
    out = p.stdout.decode(errors="replace")
    eq(p.returncode, 0, "README token commands (stderr %r)" % p.stderr[-300:])
    check(out.startswith("retry:"), "the README's stream printed %r" % out[:200])
    check('"mode":"local"' in out, "the README's publish printed %r" % out[-200:])
    p = run(1, [("/etc/sse-fcgi/", env.sse_dir + "/")])
    eq(p.returncode, 0, "README key commands: %s" % p.stderr.decode(errors="replace"))
    pub = os.path.join(env.sse_dir, "jwt-public.pem")
    conf = env.write_conf({"jwt": {"subscribe": True, "public_key_file": pub}},
                          path=os.path.join(env.sse_dir, "es.conf"))
    p = harness.run_binary(["-t", "-c", conf], env.san_dir)
    eq(p.returncode, 0, "-t with the README's public key: %s" % p.stderr.decode(errors="replace"))
