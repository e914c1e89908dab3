/*
 * route_parse and route_token_check on arbitrary requests. Input: one byte picking the
 * method, one picking a prefix set, then the raw REQUEST_URI (NULs and all); for the
 * token check, the input split at its first NUL into header value and secret.
 * Properties: a routed request names a valid resource that really follows the prefix in
 * the path; the kind matches the method; an event name, when set, is valid and comes
 * from the query of a publish; a refusal leaves nothing set but Allow on 405; the token
 * check agrees with a plain reference of the documented grammar.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = { "GET", "POST", "HEAD", "get", "OPTIONS", NULL };

static const struct route_prefixes sets[] = {
	{ "/sse/", "/publish/", "/stats" },
	{ "/s/", "/s/p/", "/s" },          /* one prefix inside another */
	{ "/a/", NULL, "" },               /* publish and stats disabled */
};

static int
token_reference(const char *auth, const char *token)
{
	size_t clen;

	if (auth == NULL || token == NULL || token[0] == '\0')
		return 0;
	if (strncasecmp(auth, "bearer ", 7) != 0)
		return 0;
	auth += 7;
	while (*auth == ' ')
		auth++;
	clen = strlen(auth);
	while (clen > 0 && (auth[clen - 1] == ' ' || auth[clen - 1] == '\t'))
		clen--;
	return clen > 0 && clen == strlen(token) && memcmp(auth, token, clen) == 0;
}

static void
check_route(const uint8_t *data, size_t size)
{
	const struct route_prefixes *p;
	const char *method, *uri;
	const char *q;
	size_t path_len;
	struct route r;
	char *copy;
	int st;

	method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	p = &sets[data[1] % (sizeof(sets) / sizeof(sets[0]))];
	size -= 2;
	/* an exact-size copy: ASan sees a read past the URI */
	copy = malloc(size + 1);
	if (copy == NULL)
		abort();
	memcpy(copy, data + 2, size);
	uri = copy;
	st = route_parse(&r, p, method, uri, size);
	q = memchr(uri, '?', size);
	path_len = q != NULL ? (size_t)(q - uri) : size;
	if (st == 0) {
		if (r.kind == ROUTE_NONE || r.allow != NULL)
			abort();
		if (r.kind == ROUTE_STATS) {
			if (strcmp(method, "GET") != 0 || strlen(p->stats) != path_len ||
			    memcmp(uri, p->stats, path_len) != 0 || r.resource != NULL)
				abort();
		} else {
			if (r.resource == NULL || r.resource < uri ||
			    r.resource + r.resource_len != uri + path_len ||
			    !route_name_is_valid(r.resource, r.resource_len))
				abort();
			if ((r.kind == ROUTE_PUBLISH) != (strcmp(method, "POST") == 0))
				abort();
			if (r.kind != ROUTE_PUBLISH && strcmp(method, "GET") != 0)
				abort();
		}
		if (r.event != NULL) {
			if (r.kind != ROUTE_PUBLISH || q == NULL || r.event <= q ||
			    r.event + r.event_len > uri + size ||
			    !route_name_is_valid(r.event, r.event_len))
				abort();
		}
	} else {
		if (st != 400 && st != 404 && st != 405)
			abort();
		if (r.kind != ROUTE_NONE || r.resource != NULL || r.event != NULL)
			abort();
		if ((st == 405) != (r.allow != NULL))
			abort();
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *nul;

	if (size < 2)
		return 0;
	check_route(data, size);

	s = malloc(size + 1);
	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	nul = memchr(s, '\0', size);
	if (nul != NULL && nul < s + size) {
		const char *auth = s, *token = nul + 1;

		if (route_token_check(auth, token) != token_reference(auth, token))
			abort();
	}
	free(s);
	return 0;
}
