/* Unit tests for src/b64url.c: RFC 4648 vectors, strictness (padding, other alphabets,
 * non-zero trailing bits, impossible lengths, short buffers) and a round trip over every
 * length up to 256 with every byte value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "b64url.h"

struct vec {
	const char *plain;
	const char *enc;
};

/* RFC 4648 section 10 without padding, plus bytes that use '-' and '_'. */
static const struct vec vecs[] = {
	{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" },
	{ "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
	{ "\xfb\xff", "-_8" }, { "\xff\xff\xff", "____" }, { "\xfb\xef\xbe", "----" },
	{ "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" },
};

static void
test_vectors(void **state)
{
	unsigned char out[64];
	char enc[64];
	size_t i;
	long n;

	(void)state;
	for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
		size_t plen = strlen(vecs[i].plain);

		n = b64url_decode(out, sizeof(out), vecs[i].enc, strlen(vecs[i].enc));
		assert_int_equal(n, (long)plen);
		assert_memory_equal(out, vecs[i].plain, plen);
		n = b64url_encode(enc, sizeof(enc), (const unsigned char *)vecs[i].plain, plen);
		assert_int_equal(n, (long)strlen(vecs[i].enc));
		assert_string_equal(enc, vecs[i].enc);
		assert_int_equal(B64URL_ENCODED_LEN(plen), strlen(vecs[i].enc));
	}
}

static void
test_rejects(void **state)
{
	static const char *bad[] = {
		"Zg==", "Zg=", "Zm9v\n", " Zm9v", "Zm9+", "Zm9/", "Z", "Zm9vY", "Zh", "Zm9",
		"Zm9vYmF", "Zm\0v", "Zm9v.", "Zm9v%3D", "\xc3\xa9\xc3\xa9",
	};
	unsigned char out[64];
	size_t i;

	(void)state;
	/* "Zh": 'h' leaves low bits set; "Zm9": '9' too; "Zm9vYmF": 'F' too */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);

		assert_int_equal(b64url_decode(out, sizeof(out), bad[i], len), -1);
	}
	assert_int_equal(b64url_decode(out, sizeof(out), "Zm\0v", 4), -1);
}

static void
test_short_buffers(void **state)
{
	unsigned char out[8];
	char enc[8];

	(void)state;
	assert_int_equal(b64url_decode(out, 5, "Zm9vYmFy", 8), -1);
	assert_int_equal(b64url_decode(out, 6, "Zm9vYmFy", 8), 6);
	assert_int_equal(b64url_decode(out, 1, "Zm8", 3), -1);
	assert_int_equal(b64url_decode(out, 2, "Zm8", 3), 2);
	assert_int_equal(b64url_decode(NULL, 0, "", 0), 0);
	memset(enc, 'x', sizeof(enc));
	assert_int_equal(b64url_encode(enc, 4, (const unsigned char *)"foo", 3), -1);
	assert_int_equal(enc[0], 'x');
	assert_int_equal(b64url_encode(enc, 5, (const unsigned char *)"foo", 3), 4);
}

static void
test_round_trip(void **state)
{
	unsigned char in[256] = { 0 }, out[256];
	char enc[400];
	size_t len, i;
	long n;

	(void)state;
	for (len = 0; len <= sizeof(in); len++) {
		for (i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 7 + len);
		n = b64url_encode(enc, sizeof(enc), in, len);
		assert_int_equal(n, (long)B64URL_ENCODED_LEN(len));
		assert_true(B64URL_DECODED_MAX((size_t)n) >= len);
		assert_int_equal(b64url_decode(out, sizeof(out), enc, (size_t)n), (long)len);
		assert_memory_equal(out, in, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_short_buffers),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
