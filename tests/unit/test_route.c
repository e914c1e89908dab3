/* Unit tests for src/route.c: every status and method of SPEC "Routes",
 * names, event query parsing, prefixes from the config, and the token check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "route.h"

#define S_URI(lit) (lit), (sizeof(lit) - 1)
#define M(c) ((c)->method ? (c)->method : "(null)")

static const struct route_prefixes defaults = { "/sse/", "/publish/", "/stats" };

#define NAME128 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
				"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct route_case {
	const char *method;
	const char *uri;
	int status;
	enum route_kind kind;
	const char *resource;   /* expected, NUL-terminated; NULL: none */
	const char *event;      /* expected; NULL: none */
	const char *allow;      /* expected on 405 */
};

static const struct route_case cases[] = {
	/* subscribe */
	{ "GET", "/sse/doctor-123", 0, ROUTE_SUBSCRIBE, "doctor-123", NULL, NULL },
	{ "GET", "/sse/appointment-42", 0, ROUTE_SUBSCRIBE, "appointment-42", NULL, NULL },
	{ "GET", "/sse/queue-7-2026-11-27", 0, ROUTE_SUBSCRIBE, "queue-7-2026-11-27", NULL, NULL },
	{ "GET", "/sse/A.b_c:d-9", 0, ROUTE_SUBSCRIBE, "A.b_c:d-9", NULL, NULL },
	{ "GET", "/sse/x?foo=bar", 0, ROUTE_SUBSCRIBE, "x", NULL, NULL },
	{ "GET", "/sse/x?", 0, ROUTE_SUBSCRIBE, "x", NULL, NULL },
	{ "GET", "/sse/x?event=a", 0, ROUTE_SUBSCRIBE, "x", NULL, NULL },        /* ignored */
	{ "GET", "/sse/x?event=b%20ad&event=", 0, ROUTE_SUBSCRIBE, "x", NULL, NULL },
	{ "GET", "/sse/x?a=1?b=2", 0, ROUTE_SUBSCRIBE, "x", NULL, NULL },
	{ "GET", "/sse/" NAME128, 0, ROUTE_SUBSCRIBE, NAME128, NULL, NULL },
	{ "GET", "/sse/" NAME128 "a", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/?x=1", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/a/b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/a/", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse//a", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/a%20b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/%61", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/a b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/a*", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/a#b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse/caf\xC3\xA9", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "HEAD", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "OPTIONS", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "POST", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "PUT", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "DELETE", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "get", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "", "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ NULL, "/sse/x", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "DELETE", "/sse/a%20b", 405, ROUTE_NONE, NULL, NULL, "GET" },  /* 405 before 400 */
	{ "POST", "/sse/", 405, ROUTE_NONE, NULL, NULL, "GET" },

	/* publish */
	{ "POST", "/publish/doctor-123", 0, ROUTE_PUBLISH, "doctor-123", NULL, NULL },
	{ "POST", "/publish/d?event=status", 0, ROUTE_PUBLISH, "d", "status", NULL },
	{ "POST", "/publish/d?x=1&event=status&y", 0, ROUTE_PUBLISH, "d", "status", NULL },
	{ "POST", "/publish/d?&&event=a.b:c-d_e&", 0, ROUTE_PUBLISH, "d", "a.b:c-d_e", NULL },
	{ "POST", "/publish/d?events=x", 0, ROUTE_PUBLISH, "d", NULL, NULL },
	{ "POST", "/publish/d?myevent=x", 0, ROUTE_PUBLISH, "d", NULL, NULL },
	{ "POST", "/publish/d?Event=x", 0, ROUTE_PUBLISH, "d", NULL, NULL },
	{ "POST", "/publish/d?%65vent=x%20y", 0, ROUTE_PUBLISH, "d", NULL, NULL },
	{ "POST", "/publish/d?foo=a%20b", 0, ROUTE_PUBLISH, "d", NULL, NULL },
	{ "POST", "/publish/d?", 0, ROUTE_PUBLISH, "d", NULL, NULL },
	{ "POST", "/publish/d?event=" NAME128, 0, ROUTE_PUBLISH, "d", NAME128, NULL },
	{ "POST", "/publish/d?event=" NAME128 "a", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=&x=1", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a%20b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a\nevent:b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a/b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a=b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a&event=b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/d?event=a&event=a", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/a/b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/a%2Fb", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/" NAME128 "a", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish/a%20b?event=ok", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/publish/doctor-123", 0, ROUTE_PUBLISH_COUNT, "doctor-123", NULL, NULL },
	{ "GET", "/publish/d?event=x", 0, ROUTE_PUBLISH_COUNT, "d", NULL, NULL },
	{ "GET", "/publish/d?event=", 0, ROUTE_PUBLISH_COUNT, "d", NULL, NULL },
	{ "GET", "/publish/", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/publish/a%20b", 400, ROUTE_NONE, NULL, NULL, NULL },
	{ "HEAD", "/publish/d", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },
	{ "OPTIONS", "/publish/d", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },
	{ "PUT", "/publish/d", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },
	{ "DELETE", "/publish/d", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },
	{ "PATCH", "/publish/a/b", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },
	{ "post", "/publish/d", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },
	{ NULL, "/publish/d", 405, ROUTE_NONE, NULL, NULL, "GET, POST" },

	/* stats */
	{ "GET", "/stats", 0, ROUTE_STATS, NULL, NULL, NULL },
	{ "GET", "/stats?pretty=1", 0, ROUTE_STATS, NULL, NULL, NULL },
	{ "GET", "/stats?event=x%20", 0, ROUTE_STATS, NULL, NULL, NULL },
	{ "POST", "/stats", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "HEAD", "/stats", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "OPTIONS", "/stats", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ NULL, "/stats", 405, ROUTE_NONE, NULL, NULL, "GET" },
	{ "GET", "/stats/", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/stats/x", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/statsx", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/Stats", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/stat", 404, ROUTE_NONE, NULL, NULL, NULL },

	/* unknown */
	{ "GET", "/", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "?x", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/sse?x=/sse/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/ssex/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/SSE/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "/%73se/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "//sse/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "sse/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publish", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "POST", "/publisher/a", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "DELETE", "/nope", 404, ROUTE_NONE, NULL, NULL, NULL },
	{ "GET", "http://host/sse/a", 404, ROUTE_NONE, NULL, NULL, NULL },
};

static void
check_case(const struct route_prefixes *p, const struct route_case *c,
    const char *uri, size_t uri_len)
{
	struct route r;
	int st;

	memset(&r, 0xA5, sizeof r);     /* route_parse must reset everything */
	st = route_parse(&r, p, c->method, uri, uri_len);
	if (st != c->status)
		fail_msg("%s %s: status %d, expected %d", M(c), c->uri, st, c->status);
	if (r.kind != c->kind)
		fail_msg("%s %s: kind %d, expected %d", M(c), c->uri, r.kind, c->kind);
	if (c->resource) {
		assert_non_null(r.resource);
		assert_true(r.resource >= uri && r.resource + r.resource_len <= uri + uri_len);
		if (r.resource_len != strlen(c->resource) || memcmp(r.resource, c->resource, r.resource_len))
			fail_msg("%s %s: resource '%.*s'", M(c), c->uri, (int)r.resource_len, r.resource);
	} else {
		assert_null(r.resource);
		assert_int_equal(r.resource_len, 0);
	}
	if (c->event) {
		assert_non_null(r.event);
		assert_true(r.event >= uri && r.event + r.event_len <= uri + uri_len);
		if (r.event_len != strlen(c->event) || memcmp(r.event, c->event, r.event_len))
			fail_msg("%s %s: event '%.*s'", M(c), c->uri, (int)r.event_len, r.event);
	} else {
		if (r.event != NULL)
			fail_msg("%s %s: unexpected event", M(c), c->uri);
		assert_int_equal(r.event_len, 0);
	}
	if (c->allow) {
		assert_non_null(r.allow);
		assert_string_equal(r.allow, c->allow);
	} else {
		assert_null(r.allow);
	}
}

static void
test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct route_case *c = &cases[i];
		size_t len = strlen(c->uri);
		/* exact-size heap copy without NUL: no read past uri_len goes unseen */
		char *uri = malloc(len ? len : 1);

		assert_non_null(uri);
		memcpy(uri, c->uri, len);
		check_case(&defaults, c, uri, len);
		free(uri);
	}
}

/* uri_len, not a NUL, ends the uri; NUL bytes are just invalid characters. */
static void
test_uri_len(void **state)
{
	struct route r;

	(void)state;
	assert_int_equal(route_parse(&r, &defaults, "GET", "/sse/abcdef", 7), 0);
	assert_int_equal(r.resource_len, 2);
	assert_memory_equal(r.resource, "ab", 2);
	assert_int_equal(route_parse(&r, &defaults, "GET", "/sse/a\0b", 8), 400);
	assert_int_equal(route_parse(&r, &defaults, "GET", "/stats\0", 7), 404);
	assert_int_equal(route_parse(&r, &defaults, "GET", "/stats?", 6), 0);
	assert_int_equal(r.kind, ROUTE_STATS);
	assert_int_equal(route_parse(&r, &defaults, "POST", "/publish/d?event=ab", 18), 0);
	assert_int_equal(r.event_len, 1);
	assert_int_equal(route_parse(&r, &defaults, "GET", NULL, 0), 404);
	assert_int_equal(r.kind, ROUTE_NONE);
}

/* A stream's last_event_id: the first non-empty one, raw; never an error. */
static void
test_last_event_id(void **state)
{
	static const struct { const char *uri, *want; } ids[] = {
		{ "/sse/d?last_event_id=k1-42", "k1-42" },
		{ "/sse/d?x=1&last_event_id=k1-42&y=2", "k1-42" },
		{ "/sse/d?last_event_id=&last_event_id=k1-3", "k1-3" },
		{ "/sse/d?last_event_id=a&last_event_id=b", "a" },
		{ "/sse/d?last_event_id=%41%20", "%41%20" },   /* raw: malformed later */
		{ "/sse/d?last_event_id", NULL },
		{ "/sse/d?last_event_idx=1", NULL },
		{ "/sse/d?xlast_event_id=1", NULL },
		{ "/sse/d", NULL },
	};
	struct route r;

	(void)state;
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		assert_int_equal(route_parse(&r, &defaults, "GET", ids[i].uri, strlen(ids[i].uri)), 0);
		assert_int_equal(r.kind, ROUTE_SUBSCRIBE);
		assert_int_equal(r.resource_len, 1);
		if (ids[i].want == NULL) {
			assert_null(r.last_event_id);
			continue;
		}
		assert_int_equal(r.last_event_id_len, strlen(ids[i].want));
		assert_memory_equal(r.last_event_id, ids[i].want, r.last_event_id_len);
	}
	/* only streams read it */
	assert_int_equal(route_parse(&r, &defaults, "POST", "/publish/d?last_event_id=a-1", 28), 0);
	assert_null(r.last_event_id);
}

static void
test_custom_prefixes(void **state)
{
	struct route r;
	const struct route_prefixes nested = { "/api/", "/api/pub/", "/api/pub/stats" };
	const struct route_prefixes root = { "/", "/publish/", "/stats" };
	const struct route_prefixes off = { "/sse/", NULL, "" };

	(void)state;
	/* longer prefix wins when one contains the other */
	assert_int_equal(route_parse(&r, &nested, "GET", S_URI("/api/pub/x")), 0);
	assert_int_equal(r.kind, ROUTE_PUBLISH_COUNT);
	assert_int_equal(route_parse(&r, &nested, "GET", S_URI("/api/x")), 0);
	assert_int_equal(r.kind, ROUTE_SUBSCRIBE);
	assert_int_equal(route_parse(&r, &nested, "GET", S_URI("/api/pub/stats")), 0);
	assert_int_equal(r.kind, ROUTE_STATS);
	assert_int_equal(route_parse(&r, &nested, "POST", S_URI("/api/x")), 405);
	assert_string_equal(r.allow, "GET");
	assert_int_equal(route_parse(&r, &nested, "DELETE", S_URI("/api/pub/x")), 405);
	assert_string_equal(r.allow, "GET, POST");
	/* without its slash the publish prefix does not match: "pub" is a resource */
	assert_int_equal(route_parse(&r, &nested, "GET", S_URI("/api/pub")), 0);
	assert_int_equal(r.kind, ROUTE_SUBSCRIBE);
	assert_memory_equal(r.resource, "pub", 3);

	/* subscribe at the root: everything not otherwise routed is a resource */
	assert_int_equal(route_parse(&r, &root, "GET", S_URI("/doctor-1")), 0);
	assert_int_equal(r.kind, ROUTE_SUBSCRIBE);
	assert_int_equal(route_parse(&r, &root, "GET", S_URI("/stats")), 0);
	assert_int_equal(r.kind, ROUTE_STATS);
	assert_int_equal(route_parse(&r, &root, "POST", S_URI("/publish/x")), 0);
	assert_int_equal(r.kind, ROUTE_PUBLISH);
	assert_int_equal(route_parse(&r, &root, "GET", S_URI("/a/b")), 400);

	/* NULL or empty disables a route */
	assert_int_equal(route_parse(&r, &off, "POST", S_URI("/publish/x")), 404);
	assert_int_equal(route_parse(&r, &off, "GET", S_URI("")), 404);
	assert_int_equal(route_parse(&r, &off, "GET", S_URI("/sse/x")), 0);
}

static void
test_name(void **state)
{
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:";
	char one[1];
	char big[ROUTE_NAME_MAX + 1];
	unsigned c;

	(void)state;
	for (c = 0; c < 256; c++) {
		one[0] = (char)c;
		assert_int_equal(route_name_is_valid(one, 1), c != 0 && strchr(ok, (int)c) != NULL);
	}
	memset(big, 'z', sizeof big);
	assert_int_equal(route_name_is_valid(big, ROUTE_NAME_MAX), 1);
	assert_int_equal(route_name_is_valid(big, ROUTE_NAME_MAX + 1), 0);
	assert_int_equal(route_name_is_valid(big, 1), 1);
	assert_int_equal(route_name_is_valid(big, 0), 0);
	assert_int_equal(route_name_is_valid(NULL, 0), 0);
	assert_int_equal(route_name_is_valid(NULL, 5), 0);
	assert_int_equal(route_name_is_valid("doctor-123", 10), 1);
	assert_int_equal(route_name_is_valid("queue-7-2026-11-27", 18), 1);
	assert_int_equal(route_name_is_valid("a\0", 2), 0);
	assert_int_equal(route_name_is_valid("ab*", 3), 0);
	assert_int_equal(route_name_is_valid("ab*", 2), 1);
}

struct token_case {
	const char *auth;
	const char *token;
	int ok;
};

static const struct token_case token_cases[] = {
	{ "Bearer s3cret-token-1234", "s3cret-token-1234", 1 },
	{ "bearer s3cret-token-1234", "s3cret-token-1234", 1 },
	{ "BEARER s3cret-token-1234", "s3cret-token-1234", 1 },
	{ "BeArEr s3cret-token-1234", "s3cret-token-1234", 1 },
	{ "Bearer    s3cret-token-1234", "s3cret-token-1234", 1 },
	{ "Bearer s3cret-token-1234  ", "s3cret-token-1234", 1 },
	{ "Bearer s3cret-token-1234\t", "s3cret-token-1234", 1 },
	{ "Bearer s3cret-token-1235", "s3cret-token-1234", 0 },
	{ "Bearer t3cret-token-1234", "s3cret-token-1234", 0 },
	{ "Bearer S3CRET-TOKEN-1234", "s3cret-token-1234", 0 },
	{ "Bearer s3cret-token-123", "s3cret-token-1234", 0 },
	{ "Bearer s3cret-token-12345", "s3cret-token-1234", 0 },
	{ "Bearer s3cret-token-1234s3cret-token-1234", "s3cret-token-1234", 0 },
	{ "Bearer s", "s3cret-token-1234", 0 },
	{ "Bearer ", "s3cret-token-1234", 0 },
	{ "Bearer    ", "s3cret-token-1234", 0 },
	{ "Bearer", "s3cret-token-1234", 0 },
	{ "Bearers3cret-token-1234", "s3cret-token-1234", 0 },
	{ "Bearer\ts3cret-token-1234", "s3cret-token-1234", 0 },
	{ " Bearer s3cret-token-1234", "s3cret-token-1234", 0 },
	{ "Bearer s3cret token-1234", "s3cret-token-1234", 0 },
	{ "Basic czNjcmV0LXRva2VuLTEyMzQ=", "s3cret-token-1234", 0 },
	{ "Basic s3cret-token-1234", "s3cret-token-1234", 0 },
	{ "Token s3cret-token-1234", "s3cret-token-1234", 0 },
	{ "s3cret-token-1234", "s3cret-token-1234", 0 },
	{ "", "s3cret-token-1234", 0 },
	{ NULL, "s3cret-token-1234", 0 },
	{ "Bearer x", "", 0 },
	{ "Bearer ", "", 0 },
	{ "Bearer x", NULL, 0 },
	{ NULL, NULL, 0 },
};

static void
test_token(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof token_cases / sizeof token_cases[0]; i++) {
		const struct token_case *c = &token_cases[i];
		if (route_token_check(c->auth, c->token) != c->ok)
			fail_msg("auth '%s' token '%s': expected %d", c->auth ? c->auth : "(null)",
			    c->token ? c->token : "(null)", c->ok);
	}
}

/* The comparison reads every byte the client sent even after a mismatch (a
 * short-circuit would stop early); a difference at any position is caught. */
static void
test_token_every_position(void **state)
{
	static const char token[] = "0123456789abcdefghijklmnopqrstuv";
	char auth[64];
	size_t i, n = sizeof token - 1;

	(void)state;
	for (i = 0; i < n; i++) {
		memcpy(auth, "Bearer ", 7);
		memcpy(auth + 7, token, n + 1);
		auth[7 + i] ^= 1;
		assert_int_equal(route_token_check(auth, token), 0);
		auth[7 + i] ^= 1;
		assert_int_equal(route_token_check(auth, token), 1);
		auth[7 + i] = '\0';         /* every proper prefix */
		assert_int_equal(route_token_check(auth, token), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_uri_len),
		cmocka_unit_test(test_last_event_id),
		cmocka_unit_test(test_custom_prefixes),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_token_every_position),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
