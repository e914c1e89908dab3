/* pace: when a stream's next write waits, from synthetic clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pace.h"

#define T0 5000000000ull   /* µs: any start */

/* A period in which `work` µs of every `of` were spent writing. */
static void
period(struct pace *p, uint64_t *now, uint64_t work, uint64_t of)
{
	uint64_t end = *now + PACE_PERIOD_US;

	for (; *now + of <= end; *now += of)
		pace_account(p, *now, *now + work, 0, 0);
	*now = end;
	pace_account(p, *now, *now, 0, 0);
}

/* A fresh pace, then a period that spent half its time writing: busy. */
static void
busy_start(struct pace *p, uint64_t *now)
{
	pace_init(p, *now);
	period(p, now, 500, 1000);
	assert_true(p->busy);
}

static void
test_idle_never_waits(void **state)
{
	struct pace p;

	(void)state;
	pace_init(&p, T0);
	/* a stream written 1 ms ago, a fresh process: at once */
	assert_int_equal(pace_due(&p, 1000, 999, 100), 0);
	assert_int_equal(pace_due(&p, 1000, 1000, 0), 0);
}

static void
test_busy_threshold(void **state)
{
	struct pace p;
	uint64_t now = T0;

	(void)state;
	pace_init(&p, now);
	/* just under 1/PACE_SHARE of the time: not busy */
	period(&p, &now, 1000 / PACE_SHARE - 1, 1000);
	assert_false(p.busy);
	assert_int_equal(pace_due(&p, 1000, 999, 100), 0);
	/* at 1/PACE_SHARE: busy, the next write of a stream waits */
	period(&p, &now, 1000 / PACE_SHARE, 1000);
	assert_true(p.busy);
	/* a period that was quiet again ends it */
	period(&p, &now, 0, 1000);
	assert_false(p.busy);
}

static void
test_busy_due(void **state)
{
	struct pace p;
	uint64_t now = T0;

	(void)state;
	busy_start(&p, &now);
	/* written 10 ms ago: waits until PACE_MS after that write */
	assert_int_equal(pace_due(&p, 100000, 100000 - 10, 100), 100000 + PACE_MS - 10);
	/* written just now: a whole PACE_MS */
	assert_int_equal(pace_due(&p, 100000, 100000, 1), 100000 + PACE_MS);
	/* last written PACE_MS ago or longer (events further apart): at once */
	assert_int_equal(pace_due(&p, 100000, 100000 - PACE_MS, 100), 0);
	assert_int_equal(pace_due(&p, 100000, 3, 100), 0);
	/* holding PACE_BYTES: enough to leave now */
	assert_int_equal(pace_due(&p, 100000, 100000 - 1, PACE_BYTES - 1), 100000 + PACE_MS - 1);
	assert_int_equal(pace_due(&p, 100000, 100000 - 1, PACE_BYTES), 0);
}

static void
test_clock_wraps(void **state)
{
	struct pace p;
	uint64_t now = T0, ms = (1ull << 32) + 5;   /* ev_now_ms() past 2^32 */

	(void)state;
	busy_start(&p, &now);
	/* flushed_ms holds the low 32 bits: written 10 ms ago across the wrap */
	assert_int_equal(pace_due(&p, ms, (uint32_t)(ms - 10), 1), ms + PACE_MS - 10);
	assert_int_equal(pace_due(&p, ms, (uint32_t)(ms - PACE_MS - 1), 1), 0);
}

static void
test_gap_ends_busy(void **state)
{
	struct pace p;
	uint64_t now = T0;

	(void)state;
	busy_start(&p, &now);
	/* nothing written for two periods, then one busy-looking write: the long period
	 * it closes was quiet */
	now += 2 * PACE_PERIOD_US;
	pace_account(&p, now, now + 50000, 0, 0);
	assert_false(p.busy);
	assert_int_equal(pace_due(&p, 100000, 100000 - 1, 1), 0);
}

static void
test_clock_back(void **state)
{
	struct pace p;
	uint64_t now = T0;

	(void)state;
	busy_start(&p, &now);
	pace_account(&p, now - 10, now - 20, 0, 0);   /* end before start: starts over */
	assert_false(p.busy);
	assert_int_equal(p.work_us, 0);
}

/* A busy period whose paced writes carried `events` messages in `writes` writes. */
static void
paced_period(struct pace *p, uint64_t *now, uint32_t writes, uint32_t events)
{
	pace_account(p, *now, *now + PACE_PERIOD_US / 10, writes, events);
	*now += PACE_PERIOD_US;
	pace_account(p, *now, *now, 0, 0);
}

static void
test_wait_adapts(void **state)
{
	struct pace p;
	uint64_t now = T0;
	int i;

	(void)state;
	pace_init(&p, now);
	assert_int_equal(p.wait_ms, PACE_MS);
	/* busy, and the paced writes carry about one event each: wait longer */
	paced_period(&p, &now, 100, 140);
	assert_true(p.busy);
	assert_int_equal(p.wait_ms, PACE_MS + PACE_STEP_MS);
	assert_int_equal(pace_due(&p, 100000, 100000 - PACE_MS, 1), 100000 + PACE_STEP_MS);
	/* up to the bound, never past it */
	for (i = 0; i < 10; i++)
		paced_period(&p, &now, 100, 100);
	assert_int_equal(p.wait_ms, PACE_MAX_MS);
	assert_int_equal(pace_due(&p, 100000, 100000, 1), 100000 + PACE_MAX_MS);
	/* between 1.5 and 2.5 events a write: kept */
	paced_period(&p, &now, 100, 200);
	assert_int_equal(p.wait_ms, PACE_MAX_MS);
	/* 2.5 or more: shorter again, down to PACE_MS */
	paced_period(&p, &now, 100, 250);
	assert_int_equal(p.wait_ms, PACE_MAX_MS - PACE_STEP_MS);
	for (i = 0; i < 10; i++)
		paced_period(&p, &now, 100, 800);
	assert_int_equal(p.wait_ms, PACE_MS);
	/* back up, then a period that is not busy: PACE_MS at once */
	paced_period(&p, &now, 10, 10);
	assert_int_equal(p.wait_ms, PACE_MS + PACE_STEP_MS);
	period(&p, &now, 0, 1000);
	assert_false(p.busy);
	assert_int_equal(p.wait_ms, PACE_MS);
	/* busy without paced writes (every stream's events far apart): unchanged */
	paced_period(&p, &now, 0, 0);
	assert_true(p.busy);
	assert_int_equal(p.wait_ms, PACE_MS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_never_waits),
		cmocka_unit_test(test_busy_threshold),
		cmocka_unit_test(test_busy_due),
		cmocka_unit_test(test_clock_wraps),
		cmocka_unit_test(test_gap_ends_busy),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_wait_adapts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
