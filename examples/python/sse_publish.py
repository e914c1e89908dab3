"""Publish Server-Sent Events through sse-fcgi from a Python application.

Python 3 standard library only.  Copy this file next to your code:

    from sse_publish import publish, PublishError

    reply = publish("doctor-123", {"type": "queue_update", "nowServing": "A-17"},
                    event="queue_update")
    # reply == {"mode": "local", "delivered": 3, "fallback": False}

publish() POSTs to /publish/<resource> on the front server (nginx, lighttpd,
Apache or Caddy), which lets only trusted addresses publish.  The base URL is
`base_url`, else the environment variable SSE_PUBLISH_URL, else
http://127.0.0.1.  `token` is sse-fcgi's publish_token (sent as a Bearer
token) when one is set.

Through Redis instead, the way the seed design's Node peers publish (every
sse-fcgi process subscribed to that Redis delivers it; no event id, no
history), with a redis-py client (Debian: python3-redis):

    import redis
    publish_redis(redis.Redis(), "doctor-123", {"nowServing": "A-17"})

subscribe_token() signs an HS256 JSON Web Token granting streams, for an
sse-fcgi configured with `jwt { subscribe = true  secret = "..." }`.

From a shell: python3 sse_publish.py RESOURCE DATA [EVENT]
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1"


class PublishError(Exception):
    """A publish that sse-fcgi (or the front server) did not answer 200.
    `status` is the HTTP status (None when nothing answered), `body` the
    reply's text (sse-fcgi says why in it)."""

    def __init__(self, status, body, url):
        self.status, self.body, self.url = status, body, url
        super().__init__("publish to %s: %s %s" % (url, status if status is not None else "no answer",
                                                    body.strip()[:200]))


def _payload(data):
    """Strings and bytes go as they are; anything else as compact JSON."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def publish(resource, data, event=None, base_url=None, token=None, timeout=5.0):
    """POST data to /publish/<resource> (with ?event=<event> when given).
    Returns the parsed JSON reply; raises PublishError on any other answer
    than 200 (400 bad name or body, 401 token, 403 not a trusted address,
    413 too large, 5xx sse-fcgi down) or when nothing answers."""
    base = (base_url or os.environ.get("SSE_PUBLISH_URL") or DEFAULT_URL).rstrip("/")
    url = base + "/publish/" + urllib.parse.quote(resource, safe=":")
    if event is not None:
        url += "?event=" + urllib.parse.quote(event, safe=":")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=_payload(data), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, body = r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        raise PublishError(e.code, e.read().decode("utf-8", "replace"), url) from None
    except (urllib.error.URLError, OSError) as e:
        raise PublishError(None, str(getattr(e, "reason", e)), url) from None
    if status != 200:
        raise PublishError(status, body, url)
    try:
        return json.loads(body)
    except ValueError:
        raise PublishError(status, "reply is not JSON: " + body, url) from None


def publish_redis(client, resource, data, channel_prefix="sse:"):
    """PUBLISH <channel_prefix><resource> <data> on a redis-py client (or
    anything with .publish(channel, message)).  Returns what Redis answers:
    how many subscribers got it (each sse-fcgi process is one)."""
    return client.publish(channel_prefix + resource, _payload(data))


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def subscribe_token(patterns, ttl, secret, publish=(), subject=None, now=None):
    """An HS256 JSON Web Token granting streams on `patterns` (resource
    names, prefixes ending in `*`, or `*`) and, optionally, publishing on
    `publish`, valid for `ttl` seconds.  `secret` is jwt.secret of
    sse-fcgi.conf (str or bytes, at least 32 bytes).  Hand it to the browser
    as the `sse_token` cookie or the `token` query parameter."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if len(secret) < 32:
        raise ValueError("the HS256 secret must be at least 32 bytes")
    if isinstance(patterns, str):
        patterns = [patterns]
    now = int(time.time() if now is None else now)
    claims = {"iat": now, "exp": now + int(ttl), "sse": {"subscribe": list(patterns)}}
    if publish:
        claims["sse"]["publish"] = [publish] if isinstance(publish, str) else list(publish)
    if subject is not None:
        claims["sub"] = subject
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, ("%s.%s" % (head, body)).encode("ascii"), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, _b64url(sig))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python3 sse_publish.py RESOURCE DATA [EVENT]")
    try:
        print(json.dumps(publish(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)))
    except PublishError as e:
        sys.exit(str(e))
