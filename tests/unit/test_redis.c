/* Unit tests for the socket-free part of src/redis.c: the reconnect backoff
 * (bounds, doubling, cap, jitter range) — the rest needs a Redis and is covered
 * by tests/integration/test_redis.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "redis.h"

static void
backoff_first_is_min(void **state)
{
	(void)state;
	assert_int_equal(redis_backoff_ms(100, 5000, 0, 0), 100);
	assert_int_equal(redis_backoff_ms(100, 5000, 0, UINT32_MAX), 100);
}

static void
backoff_doubles_with_jitter(void **state)
{
	unsigned attempt;

	(void)state;
	for (attempt = 1; attempt < 10; attempt++) {
		unsigned base = 100u << attempt, lo = base / 2, hi = base, seen_lo = 0, seen_hi = 0;
		uint32_t rnd;

		if (base > 5000)
			base = hi = 5000, lo = 2500;
		for (rnd = 0; rnd < 20000; rnd += 7) {
			unsigned ms = redis_backoff_ms(100, 5000, attempt, rnd);

			assert_in_range(ms, lo, hi);
			seen_lo |= ms == lo;
			seen_hi |= ms == hi;
		}
		/* the whole jitter range is reachable */
		assert_true(seen_lo || redis_backoff_ms(100, 5000, attempt, 0) == lo);
		assert_int_equal(redis_backoff_ms(100, 5000, attempt, 0), lo);
		assert_int_equal(redis_backoff_ms(100, 5000, attempt, hi - lo), hi);
		(void)seen_hi;
	}
}

static void
backoff_capped(void **state)
{
	unsigned attempt;
	uint32_t rnd;

	(void)state;
	for (attempt = 0; attempt < 100; attempt++)
		for (rnd = 0; rnd < 100000; rnd += 997)
			assert_in_range(redis_backoff_ms(100, 5000, attempt, rnd * 2654435761u), 100, 5000);
	/* huge attempt counts do not overflow */
	assert_in_range(redis_backoff_ms(100, 5000, UINT32_MAX, 12345), 2500, 5000);
	/* with the defaults, a process is back within 10 s of Redis returning:
	 * one wait never exceeds reconnect_max_ms */
	assert_true(redis_backoff_ms(100, 5000, 40, UINT32_MAX) <= 5000);
}

static void
backoff_degenerate(void **state)
{
	(void)state;
	assert_int_equal(redis_backoff_ms(300, 300, 0, 99), 300);
	assert_int_equal(redis_backoff_ms(300, 300, 9, 99), 300);
	/* max below min: min wins */
	assert_int_equal(redis_backoff_ms(300, 100, 5, 99), 300);
	/* min near max: lower bound stays min */
	assert_in_range(redis_backoff_ms(4000, 5000, 3, 77), 4000, 5000);
	assert_in_range(redis_backoff_ms(0, 10, 2, 77), 0, 10);
	assert_in_range(redis_backoff_ms(1, UINT32_MAX, 40, UINT32_MAX), 1, UINT32_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_first_is_min),
		cmocka_unit_test(backoff_doubles_with_jitter),
		cmocka_unit_test(backoff_capped),
		cmocka_unit_test(backoff_degenerate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
