/* access — token placement, claims, grants and the route decisions; see access.h. */
#include "access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "jwt.h"
#include "route.h"

struct access {
	int subscribe;
	char *secret, *previous;
	size_t secret_len, previous_len;
	struct jwt_key *key;
	char *cookie, *issuer, *audience;
	int leeway;
	struct jwt_verifier v;
};

const char *
access_reason_text(enum access_reason r)
{
	switch (r) {
	case ACCESS_OK: return "ok";
	case ACCESS_NO_TOKEN: return "token required";
	case ACCESS_AMBIGUOUS: return "more than one token";
	case ACCESS_INVALID: return "invalid token";
	case ACCESS_NO_EXP: return "token has no exp";
	case ACCESS_EXPIRED: return "token expired";
	case ACCESS_NOT_YET: return "token not yet valid";
	case ACCESS_ISSUER: return "wrong token issuer";
	case ACCESS_AUDIENCE: return "wrong token audience";
	case ACCESS_NOT_GRANTED: return "token does not grant this resource";
	}
	return "invalid token";
}

/* ---- grants ---- */

int
access_grant_match(const char *pattern, const char *res, size_t len)
{
	size_t plen = strlen(pattern);

	if (plen > 0 && pattern[plen - 1] == '*')
		return len >= plen - 1 && memcmp(pattern, res, plen - 1) == 0;
	return plen == len && memcmp(pattern, res, len) == 0;
}

int
access_grants_cover(const char *const *patterns, size_t n, const char *res, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (access_grant_match(patterns[i], res, len))
			return 1;
	return 0;
}

int
access_grant_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 1 && s[0] == '*')
		return 1;
	if (n > 1 && s[n - 1] == '*')
		n--;
	return route_name_is_valid(s, n);
}

/* ---- claims ---- */

enum access_reason
access_claims_check(const struct jwt_claims *c, const char *issuer, const char *audience,
    long long now, int leeway)
{
	size_t i;

	if (!c->has_exp)
		return ACCESS_NO_EXP;
	/* exp is the first second the token is no longer good (RFC 7519 4.1.4) */
	if (now - leeway >= c->exp)
		return ACCESS_EXPIRED;
	if (c->has_nbf && now + leeway < c->nbf)
		return ACCESS_NOT_YET;
	if (issuer != NULL && (c->iss == NULL || strcmp(c->iss, issuer) != 0))
		return ACCESS_ISSUER;
	if (audience != NULL) {
		for (i = 0; i < c->naud; i++)
			if (strcmp(c->aud[i], audience) == 0)
				break;
		if (i == c->naud)
			return ACCESS_AUDIENCE;
	}
	return ACCESS_OK;
}

/* ---- where the token is ---- */

static int
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Cookie: "a=1; sse_token=xyz; b=2" (RFC 6265 5.4; browsers separate with "; "). */
static int
cookie_find(const char *h, const char *name, const char **tok, size_t *len)
{
	size_t nlen = strlen(name), vlen;
	const char *p = h, *end, *eq, *v;
	int found = 0;

	while (*p != '\0') {
		while (is_blank(*p) || *p == ';')
			p++;
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
			v = eq + 1;
			vlen = (size_t)(end - v);
			while (vlen > 0 && is_blank(v[vlen - 1]))
				vlen--;
			if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
				v++;
				vlen -= 2;
			}
			if (found)
				return -1;
			found = 1;
			*tok = v;
			*len = vlen;
		}
		p = end;
	}
	return found;
}

static int
query_find(const char *uri, const char **tok, size_t *len)
{
	const char *p = strchr(uri, '?'), *end;
	int found = 0;

	if (p == NULL)
		return 0;
	for (p++; *p != '\0'; p = *end == '&' ? end + 1 : end) {
		end = p + strcspn(p, "&#");
		if (end - p >= 6 && memcmp(p, "token=", 6) == 0) {
			if (found)
				return -1;
			found = 1;
			*tok = p + 6;
			*len = (size_t)(end - p - 6);
		}
		if (*end == '#')
			break;
	}
	return found;
}

int
access_token_find(const char *cookie, const char *cookie_name, const char *uri,
    const char **tok, size_t *len)
{
	int rc = 0;

	*tok = NULL;
	*len = 0;
	if (cookie != NULL && *cookie != '\0')
		rc = cookie_find(cookie, cookie_name, tok, len);
	if (rc == 0 && uri != NULL)
		rc = query_find(uri, tok, len);
	return rc;
}

int
access_bearer_find(const char *h, const char **tok, size_t *len)
{
	size_t n;

	if (h == NULL || strncasecmp(h, "Bearer", 6) != 0 || !is_blank(h[6]))
		return 0;
	h += 6;
	while (is_blank(*h))
		h++;
	n = strlen(h);
	while (n > 0 && is_blank(h[n - 1]))
		n--;
	if (n == 0)
		return 0;
	*tok = h;
	*len = n;
	return 1;
}

/* ---- the decisions ---- */

static char *
dup_or_null(const char *s, int *bad)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*bad = 1;
	return d;
}

struct access *
access_new(const struct conf_jwt *j, const char *file, char *err, size_t errlen)
{
	struct access *a = calloc(1, sizeof(*a));
	char why[160];
	int bad = 0;

	if (a == NULL)
		goto nomem;
	a->subscribe = j->subscribe;
	a->leeway = j->leeway;
	a->secret = dup_or_null(j->secret, &bad);
	a->previous = dup_or_null(j->previous_secret, &bad);
	a->cookie = dup_or_null(j->cookie != NULL ? j->cookie : "sse_token", &bad);
	a->issuer = dup_or_null(j->issuer, &bad);
	a->audience = dup_or_null(j->audience, &bad);
	if (bad)
		goto nomem;
	if (j->public_key_file != NULL) {
		a->key = jwt_key_load(j->public_key_file, why, sizeof(why));
		if (a->key == NULL) {
			if (errlen > 0)
				snprintf(err, errlen, "%s:%d: jwt.public_key_file: %s: %s",
				    file != NULL ? file : "(config)", j->public_key_file_line,
				    j->public_key_file, why);
			goto fail;
		}
	}
	a->secret_len = a->secret != NULL ? strlen(a->secret) : 0;
	a->previous_len = a->previous != NULL ? strlen(a->previous) : 0;
	a->v.secret = a->secret;
	a->v.secret_len = a->secret_len;
	a->v.previous_secret = a->previous;
	a->v.previous_len = a->previous_len;
	a->v.key = a->key;
	return a;

nomem:
	if (errlen > 0)
		snprintf(err, errlen, "%s: jwt: out of memory", file != NULL ? file : "(config)");
fail:
	access_free(a);
	return NULL;
}

void
access_free(struct access *a)
{
	if (a == NULL)
		return;
	/* the secrets do not outlive their use in freed memory */
	if (a->secret != NULL)
		explicit_bzero(a->secret, a->secret_len);
	if (a->previous != NULL)
		explicit_bzero(a->previous, a->previous_len);
	free(a->secret);
	free(a->previous);
	jwt_key_free(a->key);
	free(a->cookie);
	free(a->issuer);
	free(a->audience);
	free(a);
}

int
access_has_keys(const struct access *a)
{
	return a != NULL && (a->secret != NULL || a->key != NULL);
}

/* Verifies tok and checks its claims; on ACCESS_OK c holds the claims (release them). */
static enum access_reason
token_check(const struct access *a, const char *tok, size_t len, time_t now,
    struct jwt_claims *c)
{
	enum access_reason r;

	if (jwt_verify(&a->v, tok, len, c) != JWT_OK)
		return ACCESS_INVALID;
	r = access_claims_check(c, a->issuer, a->audience, (long long)now, a->leeway);
	if (r != ACCESS_OK)
		jwt_claims_release(c);
	return r;
}

static int
status_of(enum access_reason r, const char **why)
{
	*why = access_reason_text(r);
	return r == ACCESS_OK ? 0 : r == ACCESS_NOT_GRANTED ? 403 : 401;
}

int
access_subscribe(const struct access *a, const char *cookie, const char *uri,
    const char *res, size_t len, time_t now, const char **why)
{
	struct jwt_claims c;
	enum access_reason r;
	const char *tok;
	size_t tlen;
	int found;

	*why = NULL;
	if (a == NULL || !a->subscribe)
		return 0;
	found = access_token_find(cookie, a->cookie, uri, &tok, &tlen);
	if (found <= 0)
		return status_of(found == 0 ? ACCESS_NO_TOKEN : ACCESS_AMBIGUOUS, why);
	r = token_check(a, tok, tlen, now, &c);
	if (r == ACCESS_OK) {
		if (!access_grants_cover(c.subscribe, c.nsubscribe, res, len))
			r = ACCESS_NOT_GRANTED;
		jwt_claims_release(&c);
	}
	return status_of(r, why);
}

int
access_publish(const struct access *a, const char *publish_token,
    const char *authorization, const char *res, size_t len, time_t now, const char **why)
{
	struct jwt_claims c;
	enum access_reason r;
	const char *tok;
	size_t tlen;

	*why = NULL;
	if (publish_token == NULL && !access_has_keys(a))
		return 0;
	if (publish_token != NULL && route_token_check(authorization, publish_token))
		return 0;
	if (!access_has_keys(a) || !access_bearer_find(authorization, &tok, &tlen)) {
		*why = "missing or wrong bearer token";
		return 401;
	}
	r = token_check(a, tok, tlen, now, &c);
	if (r == ACCESS_OK) {
		if (!access_grants_cover(c.publish, c.npublish, res, len))
			r = ACCESS_NOT_GRANTED;
		jwt_claims_release(&c);
	}
	return status_of(r, why);
}
