/* Unit tests for src/utf8.c: every invalid class, the boundary code points,
 * every position relative to the 8-byte ASCII fast path, and an exhaustive /
 * seeded comparison with a slow reference decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

#define S(lit) (lit), (sizeof(lit) - 1)

struct utf8_case {
	const char *name;
	const char *s;
	size_t len;
	int valid;
};

static const struct utf8_case cases[] = {
	/* valid */
	{ "empty", S(""), 1 },
	{ "ascii", S("hello, world"), 1 },
	{ "json", S("{\"status\":\"IN_CONSULTATION\"}"), 1 },
	{ "NUL", "\0", 1, 1 },
	{ "NUL inside", "a\0b\0\0c", 6, 1 },
	{ "U+007F", S("\x7F"), 1 },
	{ "U+0080", S("\xC2\x80"), 1 },
	{ "U+00E9", S("caf\xC3\xA9"), 1 },
	{ "U+07FF", S("\xDF\xBF"), 1 },
	{ "U+0800", S("\xE0\xA0\x80"), 1 },
	{ "U+D7FF", S("\xED\x9F\xBF"), 1 },
	{ "U+E000", S("\xEE\x80\x80"), 1 },
	{ "U+FEFF BOM", S("\xEF\xBB\xBF{}"), 1 },
	{ "U+FFFD", S("\xEF\xBF\xBD"), 1 },
	{ "U+FFFF", S("\xEF\xBF\xBF"), 1 },
	{ "U+10000", S("\xF0\x90\x80\x80"), 1 },
	{ "U+1F600", S("\xF0\x9F\x98\x80"), 1 },
	{ "U+FFFFF", S("\xF3\xBF\xBF\xBF"), 1 },
	{ "U+100000", S("\xF4\x80\x80\x80"), 1 },
	{ "U+10FFFF", S("\xF4\x8F\xBF\xBF"), 1 },
	{ "mixed", S("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"), 1 },

	/* stray continuation bytes */
	{ "lone 80", S("\x80"), 0 },
	{ "lone BF", S("\xBF"), 0 },
	{ "extra cont", S("\xC3\xA9\xA9"), 0 },
	{ "cont after ascii", S("abcdefgh\x80"), 0 },
	/* overlongs */
	{ "C0 80 (NUL)", S("\xC0\x80"), 0 },
	{ "C0 AF ('/')", S("\xC0\xAF"), 0 },
	{ "C1 BF", S("\xC1\xBF"), 0 },
	{ "E0 80 80", S("\xE0\x80\x80"), 0 },
	{ "E0 9F BF (U+07FF)", S("\xE0\x9F\xBF"), 0 },
	{ "F0 80 80 80", S("\xF0\x80\x80\x80"), 0 },
	{ "F0 8F BF BF (U+FFFF)", S("\xF0\x8F\xBF\xBF"), 0 },
	/* surrogates */
	{ "U+D800", S("\xED\xA0\x80"), 0 },
	{ "U+DBFF", S("\xED\xAF\xBF"), 0 },
	{ "U+DC00", S("\xED\xB0\x80"), 0 },
	{ "U+DFFF", S("\xED\xBF\xBF"), 0 },
	{ "surrogate pair (CESU-8)", S("\xED\xA0\xBD\xED\xB8\x80"), 0 },
	/* above U+10FFFF */
	{ "U+110000", S("\xF4\x90\x80\x80"), 0 },
	{ "F4 BF", S("\xF4\xBF\xBF\xBF"), 0 },
	{ "F5", S("\xF5\x80\x80\x80"), 0 },
	{ "F7", S("\xF7\xBF\xBF\xBF"), 0 },
	{ "F8 5-byte", S("\xF8\x88\x80\x80\x80"), 0 },
	{ "FC 6-byte", S("\xFC\x84\x80\x80\x80\x80"), 0 },
	{ "FE", S("\xFE"), 0 },
	{ "FF", S("\xFF"), 0 },
	/* truncated */
	{ "C3 at end", S("\xC3"), 0 },
	{ "E2 82 at end", S("\xE2\x82"), 0 },
	{ "E2 at end", S("\xE2"), 0 },
	{ "F0 9F 98 at end", S("\xF0\x9F\x98"), 0 },
	{ "F0 at end", S("\xF0"), 0 },
	{ "truncated then ascii", S("\xE2\x82z"), 0 },
	{ "truncated then lead", S("\xC3\xC3\xA9"), 0 },
	{ "4-byte cut by ascii", S("\xF0\x9F\x98z"), 0 },
	{ "bad second of 2", S("\xC3\x28"), 0 },
	{ "bad third of 3", S("\xE2\x82\x28"), 0 },
	{ "bad fourth of 4", S("\xF0\x9F\x98\x28"), 0 },
	{ "bad third of 4", S("\xF0\x9F\xC0\x80"), 0 },
};

static void
test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (utf8_is_valid(cases[i].s, cases[i].len) != cases[i].valid)
			fail_msg("case '%s': expected %d", cases[i].name, cases[i].valid);
	assert_int_equal(utf8_is_valid(NULL, 0), 1);
}

/* Every case placed at every offset inside ASCII padding, so each lands
 * before, across and after an 8-byte word of the fast path. */
static void
test_offsets(void **state)
{
	char buf[64];
	size_t i, off, tail;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (off = 0; off <= 17; off++) {
			for (tail = 0; tail <= 9; tail++) {
				size_t n = off + cases[i].len + tail;
				int want = cases[i].valid;

				memset(buf, 'a', sizeof buf);
				memcpy(buf + off, cases[i].s, cases[i].len);
				/* a truncated case followed by ASCII is still invalid, and a
				 * valid one stays valid: the padding is plain ASCII */
				if (utf8_is_valid(buf, n) != want)
					fail_msg("case '%s' at offset %zu tail %zu: expected %d",
					    cases[i].name, off, tail, want);
			}
		}
	}
}

/* Slow, obviously-correct decoder to compare against. */
static int
ref_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, j;
	uint32_t cp, min;

	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0)
			k = 1, cp = c & 0x1F, min = 0x80;
		else if ((c & 0xF0) == 0xE0)
			k = 2, cp = c & 0x0F, min = 0x800;
		else if ((c & 0xF8) == 0xF0)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (n - i <= k)
			return 0;
		for (j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += k + 1;
	}
	return 1;
}

static size_t
encode(unsigned char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Every scalar value is valid, every encoded surrogate is not. */
static void
test_all_code_points(void **state)
{
	unsigned char b[4];
	uint32_t cp;
	size_t n;

	(void)state;
	for (cp = 0; cp <= 0x10FFFF; cp++) {
		int want = !(cp >= 0xD800 && cp <= 0xDFFF);
		n = encode(b, cp);
		if (utf8_is_valid((const char *)b, n) != want)
			fail_msg("U+%04X: expected %d", (unsigned)cp, want);
		/* every proper prefix of a multi-byte sequence is truncated */
		if (n > 1 && utf8_is_valid((const char *)b, n - 1))
			fail_msg("U+%04X cut to %zu bytes accepted", (unsigned)cp, n - 1);
	}
}

/* All 2-byte strings, and every 3-byte string with a lead byte >= 0x80. */
static void
test_exhaustive_short(void **state)
{
	unsigned char b[3];
	unsigned x, y, z;

	(void)state;
	for (x = 0; x < 256; x++)
		for (y = 0; y < 256; y++) {
			b[0] = (unsigned char)x, b[1] = (unsigned char)y;
			if (utf8_is_valid((const char *)b, 2) != ref_valid(b, 2))
				fail_msg("%02X %02X", x, y);
		}
	for (x = 0xC0; x < 256; x++)
		for (y = 0x80; y < 0xC8; y++)   /* the interesting second bytes and beyond */
			for (z = 0; z < 256; z++) {
				b[0] = (unsigned char)x, b[1] = (unsigned char)y, b[2] = (unsigned char)z;
				if (utf8_is_valid((const char *)b, 3) != ref_valid(b, 3))
					fail_msg("%02X %02X %02X", x, y, z);
			}
}

static uint32_t rng_state = 0x0ddba11u;

static uint32_t
rnd(void)
{
	uint32_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

/* Random strings biased towards lead and continuation bytes. */
static void
test_random(void **state)
{
	static const unsigned char picks[] = {
		'a', 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
		0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
	};
	unsigned char b[40];
	int iter, valid = 0;

	(void)state;
	for (iter = 0; iter < 200000; iter++) {
		size_t n = rnd() % sizeof b, i;
		for (i = 0; i < n; i++) {
			uint32_t r = rnd();
			b[i] = (r & 0x10000) ? picks[r % sizeof picks] : (r & 0x20000) ? 'a' : (unsigned char)(r >> 8);
		}
		int want = ref_valid(b, n);
		valid += want;
		if (utf8_is_valid((const char *)b, n) != want)
			fail_msg("iteration %d: expected %d", iter, want);
	}
	assert_true(valid > 1000);   /* the sweep exercised both outcomes */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_all_code_points),
		cmocka_unit_test(test_exhaustive_short),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
