/* eventid: the id text codec and the "already delivered" rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "eventid.h"

static void
test_format_parse_round_trip(void **state)
{
	static const uint64_t seqs[] = { 0, 1, 9, 10, 12345, UINT64_MAX - 1, UINT64_MAX };
	char buf[EVENTID_MAX + 1];
	struct eventid id;

	(void)state;
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		size_t n = eventid_format(buf, sizeof(buf), "k3x9a0", 6, seqs[i]);

		assert_true(n > 0 && n <= 64);
		assert_int_equal(strlen(buf), n);
		assert_null(strchr(buf, ' '));
		assert_int_equal(eventid_parse(&id, buf, n), 0);
		assert_int_equal(id.seq, seqs[i]);
		assert_int_equal(id.epoch_len, 6);
		assert_memory_equal(id.epoch, "k3x9a0", 6);
		assert_true(eventid_same_epoch(&id, "k3x9a0", 6));
		assert_false(eventid_same_epoch(&id, "k3x9a1", 6));
		assert_false(eventid_same_epoch(&id, "k3x9a", 5));
	}
	assert_int_equal(eventid_format(buf, sizeof(buf), "ab", 2, 42), 5);
	assert_string_equal(buf, "ab-42");
}

static void
test_format_limits(void **state)
{
	char epoch[EVENTID_EPOCH_MAX + 1], buf[EVENTID_MAX + 1], small[6];
	size_t n;

	(void)state;
	memset(epoch, 'z', sizeof(epoch));
	/* the longest id fits its buffer and 64 bytes */
	n = eventid_format(buf, sizeof(buf), epoch, EVENTID_EPOCH_MAX, UINT64_MAX);
	assert_int_equal(n, EVENTID_MAX);
	assert_true(EVENTID_MAX <= 64);
	/* an epoch too long, empty, or with a character outside 0-9 a-z */
	assert_int_equal(eventid_format(buf, sizeof(buf), epoch, EVENTID_EPOCH_MAX + 1, 1), 0);
	assert_int_equal(eventid_format(buf, sizeof(buf), "", 0, 1), 0);
	assert_int_equal(eventid_format(buf, sizeof(buf), "aB", 2, 1), 0);
	assert_int_equal(eventid_format(buf, sizeof(buf), "a-", 2, 1), 0);
	/* too small: untouched */
	memset(small, 'Q', sizeof(small));
	assert_int_equal(eventid_format(small, sizeof(small), "ab", 2, 123), 0);
	assert_int_equal(small[0], 'Q');
	assert_int_equal(eventid_format(small, sizeof(small), "ab", 2, 12), 5);
}

static void
test_parse_malformed(void **state)
{
	static const char *bad[] = {
		"", "-", "abc", "abc-", "-12", "ab-01", "ab-00", "ab-1x", "ab-+1", "ab- 1",
		"ab-1 ", " ab-1", "AB-1", "a_b-1", "ab-1-2", "ab--1",
		"ab-18446744073709551616",      /* 2^64 */
		"ab-99999999999999999999",      /* 20 digits, over 2^64 */
		"ab-123456789012345678901",     /* 21 digits */
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-1",   /* 33-byte epoch */
		"ab-1\n", "ab-1\0",
	};
	struct eventid id = { "untouched", 9, 7 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);

		if (strcmp(bad[i], "ab-1") == 0)
			len = 5;   /* "ab-1\0": the NUL counts */
		assert_int_equal(eventid_parse(&id, bad[i], len), -1);
		assert_int_equal(id.seq, 7);
	}
	assert_int_equal(eventid_parse(&id, NULL, 0), -1);
	/* a length that stops before the junk is fine: the string need not end there */
	assert_int_equal(eventid_parse(&id, "ab-12junk", 5), 0);
	assert_int_equal(id.seq, 12);
	assert_int_equal(eventid_parse(&id, "ab-18446744073709551615", 23), 0);
	assert_true(id.seq == UINT64_MAX);
}

static void
test_increasing_and_rule(void **state)
{
	char a[EVENTID_MAX + 1], b[EVENTID_MAX + 1];
	struct eventid ia, ib;

	(void)state;
	/* strictly increasing seqs give ids whose parsed positions increase */
	for (uint64_t s = 0; s < 2000; s += 7) {
		eventid_format(a, sizeof(a), "e1", 2, s);
		eventid_format(b, sizeof(b), "e1", 2, s + 1);
		assert_int_equal(eventid_parse(&ia, a, strlen(a)), 0);
		assert_int_equal(eventid_parse(&ib, b, strlen(b)), 0);
		assert_true(ib.seq > ia.seq);
		assert_true(eventid_is_new(ia.seq, ib.seq));
		assert_false(eventid_is_new(ib.seq, ia.seq));
		assert_false(eventid_is_new(ia.seq, ia.seq));   /* never the same id twice */
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_parse_round_trip),
		cmocka_unit_test(test_format_limits),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_increasing_and_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
