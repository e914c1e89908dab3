/* route — request routing and publish token check; see route.h. */
#include "route.h"

#include <string.h>
#include <strings.h>

#define ALLOW_GET      "GET"
#define ALLOW_GET_POST "GET, POST"

/* One table lookup per byte; the charset keeps names safe in URLs, Redis
 * channel names and PSUBSCRIBE patterns (no '*', '?', '[', '\\'). */
static const unsigned char name_ok[256] = {
	['-'] = 1, ['_'] = 1, ['.'] = 1, [':'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
	['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
	['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
	['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int
route_name_is_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > ROUTE_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!name_ok[(unsigned char)s[i]])
			return 0;
	return 1;
}

/* Length of prefix when path starts with it, else 0 (also for a disabled one). */
static size_t
prefix_match(const char *prefix, const char *path, size_t path_len)
{
	size_t n;

	if (prefix == NULL || (n = strlen(prefix)) == 0 || n > path_len)
		return 0;
	return memcmp(path, prefix, n) == 0 ? n : 0;
}

static int
method_is(const char *method, const char *want)
{
	return method != NULL && strcmp(method, want) == 0;
}

/* Finds event= in the query; 0, or 400 on a bad or repeated one. */
static int
parse_query(struct route *r, const char *q, const char *end)
{
	const char *amp, *val;
	size_t len;

	for (; q < end; q = amp + 1) {
		amp = memchr(q, '&', (size_t)(end - q));
		if (amp == NULL)
			amp = end;
		len = (size_t)(amp - q);
		if (len < 5 || memcmp(q, "event", 5) != 0 || (len > 5 && q[5] != '='))
			continue;
		if (r->event != NULL)
			return 400;
		val = len > 5 ? q + 6 : q + 5;
		if (!route_name_is_valid(val, (size_t)(amp - val)))
			return 400;
		r->event = val;
		r->event_len = (size_t)(amp - val);
	}
	return 0;
}

/* The first non-empty last_event_id= of a stream's query; never an error. */
static void
parse_subscribe_query(struct route *r, const char *q, const char *end)
{
	static const char key[] = "last_event_id=";
	const size_t klen = sizeof key - 1;
	const char *amp;

	for (; q < end; q = amp + 1) {
		amp = memchr(q, '&', (size_t)(end - q));
		if (amp == NULL)
			amp = end;
		if ((size_t)(amp - q) > klen && memcmp(q, key, klen) == 0) {
			r->last_event_id = q + klen;
			r->last_event_id_len = (size_t)(amp - q) - klen;
			return;
		}
	}
}

int
route_parse(struct route *r, const struct route_prefixes *p, const char *method,
    const char *uri, size_t uri_len)
{
	const char *q, *query = NULL, *end;
	size_t path_len, sub, pub, n;

	memset(r, 0, sizeof *r);
	r->kind = ROUTE_NONE;
	if (uri == NULL)
		return 404;
	end = uri + uri_len;
	q = memchr(uri, '?', uri_len);
	path_len = q ? (size_t)(q - uri) : uri_len;
	if (q)
		query = q + 1;

	if (p->stats != NULL && p->stats[0] != '\0' && strlen(p->stats) == path_len
	    && memcmp(uri, p->stats, path_len) == 0) {
		if (!method_is(method, "GET")) {
			r->allow = ALLOW_GET;
			return 405;
		}
		r->kind = ROUTE_STATS;
		return 0;
	}

	sub = prefix_match(p->subscribe, uri, path_len);
	pub = prefix_match(p->publish, uri, path_len);
	if (sub == 0 && pub == 0)
		return 404;
	if (sub > pub) {
		if (!method_is(method, "GET")) {
			r->allow = ALLOW_GET;
			return 405;
		}
		r->kind = ROUTE_SUBSCRIBE;
		n = sub;
	} else {
		if (method_is(method, "POST"))
			r->kind = ROUTE_PUBLISH;
		else if (method_is(method, "GET"))
			r->kind = ROUTE_PUBLISH_COUNT;
		else {
			r->allow = ALLOW_GET_POST;
			return 405;
		}
		n = pub;
	}

	if (!route_name_is_valid(uri + n, path_len - n))
		goto bad;
	r->resource = uri + n;
	r->resource_len = path_len - n;
	if (r->kind == ROUTE_PUBLISH && query != NULL && parse_query(r, query, end) != 0)
		goto bad;
	if (r->kind == ROUTE_SUBSCRIBE && query != NULL)
		parse_subscribe_query(r, query, end);
	return 0;

bad:
	memset(r, 0, sizeof *r);
	r->kind = ROUTE_NONE;
	return 400;
}

int
route_token_check(const char *authorization, const char *token)
{
	const char *c;
	size_t clen, tlen, i, in;
	size_t diff;

	if (authorization == NULL || token == NULL || token[0] == '\0')
		return 0;
	/* The scheme and spacing are public syntax: early exits here leak nothing. */
	if (strncasecmp(authorization, "Bearer", 6) != 0 || authorization[6] != ' ')
		return 0;
	for (c = authorization + 7; *c == ' '; c++)
		;
	clen = strlen(c);
	while (clen > 0 && (c[clen - 1] == ' ' || c[clen - 1] == '\t'))
		clen--;
	if (clen == 0)
		return 0;

	/* Walk the client's bytes, never the token's: the loop count is the length
	 * the client chose, and past the token's end the index is masked to 0, so
	 * neither the mismatch position nor the token length shapes the timing
	 * (beyond the one strlen of the secret, the same for every request). */
	tlen = strlen(token);
	diff = clen ^ tlen;
	for (i = 0; i < clen; i++) {
		in = (size_t)0 - (size_t)(i < tlen);
		diff |= (size_t)((unsigned char)c[i] ^ (unsigned char)token[i & in]);
	}
	return diff == 0;
}
