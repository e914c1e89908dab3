/* Unit tests for src/access.c: grant matching (exact, prefix*, *, the doctor-1* /
 * doctor-12 edge), claims times with leeway at the exact boundaries, issuer and
 * audience, where the token is found (cookie, query, both, twice), Bearer parsing, and
 * the subscribe/publish decisions with their 401/403 statuses and reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "conf.h"
#include "jwt.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define S(lit) (lit), (sizeof(lit) - 1)

static void
test_grants(void **state)
{
	static const struct {
		const char *pattern, *res;
		int match;
	} cases[] = {
		{ "doctor-123", "doctor-123", 1 },
		{ "doctor-123", "doctor-1234", 0 },
		{ "doctor-123", "doctor-12", 0 },
		{ "doctor-1", "doctor-12", 0 },
		{ "doctor-1*", "doctor-12", 1 },      /* a prefix covers longer numbers too */
		{ "doctor-1*", "doctor-1", 1 },
		{ "doctor-1*", "doctor-", 0 },
		{ "doctor-1-*", "doctor-12", 0 },
		{ "doctor-1-*", "doctor-1-a", 1 },
		{ "queue-7-*", "queue-7-2026-11-27", 1 },
		{ "queue-7-*", "queue-70", 0 },
		{ "*", "anything", 1 },
		{ "*", "a", 1 },
		{ "", "a", 0 },
		{ "Doctor-123", "doctor-123", 0 },
		{ "doc*r", "doctor", 0 },
	};
	const char *list[] = { "appointment-42", "doctor-1-*" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (access_grant_match(cases[i].pattern, cases[i].res, strlen(cases[i].res)) !=
		    cases[i].match)
			fail_msg("%s vs %s", cases[i].pattern, cases[i].res);
	assert_true(access_grants_cover(list, 2, S("doctor-1-x")));
	assert_true(access_grants_cover(list, 2, S("appointment-42")));
	assert_false(access_grants_cover(list, 2, S("appointment-43")));
	assert_false(access_grants_cover(NULL, 0, S("a")));
	assert_true(access_grant_is_valid("*"));
	assert_true(access_grant_is_valid("doctor-*"));
	assert_true(access_grant_is_valid("doctor-1"));
	assert_false(access_grant_is_valid(""));
	assert_false(access_grant_is_valid("**"));
	assert_false(access_grant_is_valid("doc*tor"));
	assert_false(access_grant_is_valid("doctor/1"));
}

static void
test_claims(void **state)
{
	const char *aud2[] = { "web", "app" };
	struct jwt_claims c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(access_claims_check(&c, NULL, NULL, 1000, 30), ACCESS_NO_EXP);
	c.has_exp = 1;
	c.exp = 1000;
	/* good until exp + leeway, exclusive */
	assert_int_equal(access_claims_check(&c, NULL, NULL, 1029, 30), ACCESS_OK);
	assert_int_equal(access_claims_check(&c, NULL, NULL, 1030, 30), ACCESS_EXPIRED);
	assert_int_equal(access_claims_check(&c, NULL, NULL, 999, 0), ACCESS_OK);
	assert_int_equal(access_claims_check(&c, NULL, NULL, 1000, 0), ACCESS_EXPIRED);
	c.has_nbf = 1;
	c.nbf = 900;
	assert_int_equal(access_claims_check(&c, NULL, NULL, 870, 30), ACCESS_OK);
	assert_int_equal(access_claims_check(&c, NULL, NULL, 869, 30), ACCESS_NOT_YET);
	assert_int_equal(access_claims_check(&c, NULL, NULL, 899, 0), ACCESS_NOT_YET);
	/* issuer */
	assert_int_equal(access_claims_check(&c, "clinic", NULL, 950, 0), ACCESS_ISSUER);
	c.iss = "other";
	assert_int_equal(access_claims_check(&c, "clinic", NULL, 950, 0), ACCESS_ISSUER);
	c.iss = "clinic";
	assert_int_equal(access_claims_check(&c, "clinic", NULL, 950, 0), ACCESS_OK);
	/* audience: string (a list of one) or array; unchecked when not configured */
	assert_int_equal(access_claims_check(&c, NULL, "web", 950, 0), ACCESS_AUDIENCE);
	c.aud = aud2;
	c.naud = 2;
	assert_int_equal(access_claims_check(&c, NULL, "app", 950, 0), ACCESS_OK);
	assert_int_equal(access_claims_check(&c, NULL, "ap", 950, 0), ACCESS_AUDIENCE);
	assert_int_equal(access_claims_check(&c, NULL, NULL, 950, 0), ACCESS_OK);
}

static void
test_token_find(void **state)
{
	static const struct {
		const char *cookie, *uri, *want;   /* want NULL: none; "!" ambiguous */
	} cases[] = {
		{ "sse_token=abc", "/sse/a", "abc" },
		{ "a=1; sse_token=abc; b=2", "/sse/a", "abc" },
		{ "a=1;sse_token=abc", "/sse/a", "abc" },
		{ "sse_token=\"abc\"", "/sse/a", "abc" },
		{ "xsse_token=abc", "/sse/a", NULL },
		{ "sse_token=abc; sse_token=def", "/sse/a", "!" },
		{ "", "/sse/a?token=q1", "q1" },
		{ NULL, "/sse/a?x=1&token=q1&y=2", "q1" },
		{ NULL, "/sse/a?mytoken=q1", NULL },
		{ NULL, "/sse/a?token=q1&token=q2", "!" },
		{ NULL, "/sse/a?token=", "" },
		{ NULL, "/sse/a", NULL },
		{ "sse_token=abc", "/sse/a?token=q1", "abc" },          /* the cookie wins */
		{ "other=1", "/sse/a?token=q1", "q1" },
		{ "sse_token=abc; sse_token=d", "/sse/a?token=q1", "!" },
	};
	const char *tok;
	size_t i, len;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = access_token_find(cases[i].cookie, "sse_token", cases[i].uri, &tok, &len);
		if (cases[i].want == NULL)
			assert_int_equal(rc, 0);
		else if (strcmp(cases[i].want, "!") == 0)
			assert_int_equal(rc, -1);
		else {
			assert_int_equal(rc, 1);
			assert_int_equal(len, strlen(cases[i].want));
			assert_memory_equal(tok, cases[i].want, len);
		}
	}
	assert_int_equal(access_bearer_find("Bearer abc", &tok, &len), 1);
	assert_int_equal(len, 3);
	assert_int_equal(access_bearer_find("bearer   abc  ", &tok, &len), 1);
	assert_int_equal(len, 3);
	assert_int_equal(access_bearer_find("Bearer ", &tok, &len), 0);
	assert_int_equal(access_bearer_find("Basic abc", &tok, &len), 0);
	assert_int_equal(access_bearer_find("Bearerabc", &tok, &len), 0);
	assert_int_equal(access_bearer_find(NULL, &tok, &len), 0);
}

static char *
mint(const char *const *sub, size_t nsub, const char *const *pub, size_t npub, long long exp)
{
	struct jwt_mint m = { NULL, NULL, NULL, 0, exp, sub, nsub, pub, npub };

	return jwt_mint_hs256(SECRET, 32, &m);
}

static void
test_decisions(void **state)
{
	struct conf_jwt j = { 1, SECRET, NULL, NULL, 0, "sse_token", NULL, NULL, 30 };
	const char *sub[] = { "doctor-123", "queue-7-*" }, *pub[] = { "doctor-*" };
	char *good = mint(sub, 2, pub, 1, 4102444800LL), *old = mint(sub, 2, pub, 1, 100);
	char cookie[1024], uri[1024], auth[1024], err[256];
	struct access *a = access_new(&j, "x.conf", err, sizeof(err)), *open;
	const char *why;

	(void)state;
	assert_non_null(a);
	assert_true(access_has_keys(a));
	snprintf(cookie, sizeof(cookie), "sse_token=%s", good);
	assert_int_equal(access_subscribe(a, cookie, "/sse/doctor-123", S("doctor-123"), 1000,
	    &why), 0);
	assert_int_equal(access_subscribe(a, cookie, "/sse/queue-7-a", S("queue-7-a"), 1000,
	    &why), 0);
	assert_int_equal(access_subscribe(a, cookie, "/sse/doctor-124", S("doctor-124"), 1000,
	    &why), 403);
	assert_string_equal(why, "token does not grant this resource");
	assert_int_equal(access_subscribe(a, "", "/sse/doctor-123", S("doctor-123"), 1000,
	    &why), 401);
	assert_string_equal(why, "token required");
	snprintf(uri, sizeof(uri), "/sse/doctor-123?token=%s", old);
	assert_int_equal(access_subscribe(a, "", uri, S("doctor-123"), 1000, &why), 401);
	assert_string_equal(why, "token expired");
	snprintf(uri, sizeof(uri), "/sse/doctor-123?token=%s", good);
	assert_int_equal(access_subscribe(a, "", uri, S("doctor-123"), 1000, &why), 0);
	assert_int_equal(access_subscribe(a, "sse_token=garbage", uri, S("doctor-123"), 1000,
	    &why), 401);
	assert_string_equal(why, "invalid token");

	/* publish: the token's publish grant; publish_token beside it */
	snprintf(auth, sizeof(auth), "Bearer %s", good);
	assert_int_equal(access_publish(a, NULL, auth, S("doctor-9"), 1000, &why), 0);
	assert_int_equal(access_publish(a, NULL, auth, S("queue-7-a"), 1000, &why), 403);
	assert_int_equal(access_publish(a, NULL, NULL, S("doctor-9"), 1000, &why), 401);
	assert_int_equal(access_publish(a, "static-token-0123456", "Bearer static-token-0123456",
	    S("queue-7-a"), 1000, &why), 0);
	assert_int_equal(access_publish(a, "static-token-0123456", auth, S("doctor-9"), 1000,
	    &why), 0);
	assert_int_equal(access_publish(a, "static-token-0123456", "Bearer nope", S("doctor-9"),
	    1000, &why), 401);
	/* subscribe off: streams open, publishing still needs a token (a key is configured) */
	j.subscribe = 0;
	open = access_new(&j, "x.conf", err, sizeof(err));
	assert_int_equal(access_subscribe(open, "", "/sse/a", S("a"), 1000, &why), 0);
	assert_int_equal(access_publish(open, NULL, NULL, S("a"), 1000, &why), 401);
	access_free(open);
	/* no section at all */
	assert_int_equal(access_subscribe(NULL, "", "/sse/a", S("a"), 1000, &why), 0);
	assert_int_equal(access_publish(NULL, NULL, NULL, S("a"), 1000, &why), 0);
	/* a bad key file names file, line and key */
	j.public_key_file = "/nonexistent.pem";
	j.public_key_file_line = 7;
	assert_null(access_new(&j, "x.conf", err, sizeof(err)));
	assert_string_equal(err, "x.conf:7: jwt.public_key_file: /nonexistent.pem: cannot open: "
	    "No such file or directory");
	access_free(a);
	free(good);
	free(old);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grants),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_token_find),
		cmocka_unit_test(test_decisions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
