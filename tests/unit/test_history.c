/* history: the in-process per-resource rings, their bounds, positions and the merge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "eventid.h"
#include "history.h"
#include "stream.h"

#define BIG ((size_t)1 << 30)
#define DAY (86400ULL * 1000)

struct seen {
	uint64_t seq[64];
	size_t n;
	size_t stop_after;   /* 0: never stop */
};

static int
collect(void *arg, const struct history_ent *e)
{
	struct seen *s = arg;

	s->seq[s->n++] = e->seq;
	return s->stop_after != 0 && s->n >= s->stop_after ? -1 : 0;
}

static struct msg *
text_msg(const char *t)
{
	struct msg *m = msg_new(strlen(t), 0);

	assert_non_null(m);
	memcpy(m->data, t, strlen(t));
	return m;
}

/* Publishes one event on name; returns its seq. The history keeps its own reference. */
static uint64_t
publish(struct history *h, const char *name, const char *text, uint64_t now)
{
	struct msg *m = text_msg(text);
	uint64_t seq = history_seq_next(h);

	assert_int_equal(history_add(h, name, strlen(name), seq, m, now), 0);
	msg_unref(m);
	return seq;
}

static int
replay(struct history *h, const char *name, uint64_t after, uint64_t now, struct seen *s)
{
	s->n = 0;
	return history_replay(h, name, strlen(name), after, now, collect, s);
}

static void
test_replay_after_position(void **state)
{
	struct history *h = history_new(10, BIG, DAY);
	struct seen s = { .stop_after = 0 };
	uint64_t a1, b1, a2, a3;

	(void)state;
	assert_non_null(h);
	assert_int_equal(history_seq_last(h), 0);
	a1 = publish(h, "a", "one", 1);
	b1 = publish(h, "b", "other", 2);
	a2 = publish(h, "a", "two", 3);
	a3 = publish(h, "a", "three", 4);
	assert_true(a1 < b1 && b1 < a2 && a2 < a3);
	assert_int_equal(history_seq_last(h), a3);
	/* from the start of the epoch: every event of a, only a's, in order */
	assert_int_equal(replay(h, "a", 0, 5, &s), 3);
	assert_int_equal(s.seq[0], a1);
	assert_int_equal(s.seq[1], a2);
	assert_int_equal(s.seq[2], a3);
	/* after a2: only a3; after a position of another resource: what followed it */
	assert_int_equal(replay(h, "a", a2, 5, &s), 1);
	assert_int_equal(s.seq[0], a3);
	assert_int_equal(replay(h, "a", b1, 5, &s), 2);
	assert_int_equal(s.seq[0], a2);
	/* up to date: nothing, but honoured */
	assert_int_equal(replay(h, "a", a3, 5, &s), 0);
	/* a resource never published: honoured, nothing to send */
	assert_int_equal(replay(h, "c", 0, 5, &s), 0);
	/* a position never handed out */
	assert_int_equal(replay(h, "a", a3 + 1, 5, &s), HISTORY_AHEAD);
	/* the callback can stop the replay */
	s.stop_after = 2;
	assert_int_equal(replay(h, "a", 0, 5, &s), 2);
	assert_int_equal(s.n, 2);
	assert_int_equal(history_head(h, "a", 1), a3);
	assert_int_equal(history_head(h, "b", 1), b1);
	assert_int_equal(history_head(h, "zzz", 3), a3);   /* no record: the process's last */
	assert_int_equal(history_events(h), 4);
	assert_int_equal(history_resources(h), 2);
	history_free(h);
}

static void
test_size_bound_gone(void **state)
{
	struct history *h = history_new(3, BIG, DAY);
	struct seen s = { .stop_after = 0 };
	uint64_t seq[6];

	(void)state;
	for (int i = 0; i < 6; i++)
		seq[i] = publish(h, "q", "x", (uint64_t)i);
	assert_int_equal(history_events(h), 3);
	/* kept: the last three; a client at seq[2] (last lost) is still honoured */
	assert_int_equal(replay(h, "q", seq[2], 10, &s), 3);
	assert_int_equal(s.seq[0], seq[3]);
	assert_int_equal(s.seq[2], seq[5]);
	/* a client at seq[1] missed seq[2], which is gone: never a partial replay */
	assert_int_equal(replay(h, "q", seq[1], 10, &s), HISTORY_GONE);
	assert_int_equal(s.n, 0);
	assert_int_equal(replay(h, "q", 0, 10, &s), HISTORY_GONE);
	history_free(h);
}

static void
test_ttl(void **state)
{
	struct history *h = history_new(10, BIG, 1000);
	struct seen s = { .stop_after = 0 };
	uint64_t a1, a2, b1;

	(void)state;
	a1 = publish(h, "a", "x", 100);
	a2 = publish(h, "a", "y", 600);
	b1 = publish(h, "b", "z", 900);
	/* within ttl of a's last publish: kept */
	assert_int_equal(replay(h, "a", a1, 1599, &s), 1);
	/* expired by the sweep: a's events go, b's (published later) stay */
	assert_int_equal(history_expire(h, 1600), 2);
	assert_int_equal(history_events(h), 1);
	assert_int_equal(replay(h, "a", a1, 1600, &s), HISTORY_GONE);
	/* an up-to-date client of the expired resource is still honoured (tombstone) */
	assert_int_equal(replay(h, "a", a2, 1600, &s), 0);
	assert_int_equal(history_head(h, "a", 1), a2);
	/* lazily at replay time too */
	assert_int_equal(replay(h, "b", 0, 1900, &s), HISTORY_GONE);
	assert_int_equal(replay(h, "b", b1, 1900, &s), 0);
	assert_int_equal(history_events(h), 0);
	/* a publish after expiry starts afresh: only the new event is there */
	a1 = publish(h, "a", "new", 5000);
	assert_int_equal(replay(h, "a", a2, 5000, &s), 1);
	assert_int_equal(s.seq[0], a1);
	history_free(h);
}

static void
test_bytes_cap_drops_least_recent(void **state)
{
	struct history *h = history_new(100, BIG, DAY);
	struct seen s = { .stop_after = 0 };
	size_t one_rec, cap;
	uint64_t a1, b1, c1, a2, d1;
	char big[200];

	(void)state;
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* measure what one resource with one event costs, then cap at about three of them */
	publish(h, "m", big, 0);
	one_rec = history_bytes(h);
	assert_true(one_rec > sizeof(big));
	history_free(h);
	cap = 3 * one_rec + one_rec / 2;
	h = history_new(100, cap, DAY);
	a1 = publish(h, "a", big, 1);
	b1 = publish(h, "b", big, 2);
	c1 = publish(h, "c", big, 3);
	assert_true(history_bytes(h) <= cap);
	a2 = publish(h, "a", big, 4);    /* a is now the most recent: b is the oldest */
	assert_true(history_bytes(h) <= cap);
	d1 = publish(h, "d", big, 5);
	assert_true(history_bytes(h) <= cap);
	/* b went first, whole; a (published again) kept both events */
	assert_int_equal(replay(h, "b", 0, 6, &s), HISTORY_GONE);
	/* c went too when d arrived; the floor is c1, so even b1 is answered "gone":
	 * needless, never a silent gap */
	assert_int_equal(replay(h, "b", b1, 6, &s), HISTORY_GONE);
	assert_int_equal(replay(h, "b", c1, 6, &s), 0);
	assert_int_equal(replay(h, "c", 0, 6, &s), HISTORY_GONE);
	assert_int_equal(replay(h, "a", 0, 6, &s), 2);
	assert_int_equal(s.seq[0], a1);
	assert_int_equal(s.seq[1], a2);
	/* d was created after b's events were dropped: from 0 it cannot vouch, from a
	 * position after that it can */
	assert_int_equal(replay(h, "d", 0, 6, &s), HISTORY_GONE);
	assert_int_equal(replay(h, "d", c1, 6, &s), 1);
	assert_int_equal(s.seq[0], d1);
	/* a resource without a record answers with the floor: its clients before the
	 * dropped events are told, a client at the process's last position is honoured */
	assert_int_equal(replay(h, "never", 0, 6, &s), HISTORY_GONE);
	assert_int_equal(replay(h, "never", d1, 6, &s), 0);
	history_free(h);
}

static void
test_single_resource_over_cap(void **state)
{
	struct history *h = history_new(100, 1, DAY);
	struct seen s = { .stop_after = 0 };
	uint64_t a1;

	(void)state;
	/* a cap below one event: nothing is kept, and a resume says so */
	a1 = publish(h, "a", "hello", 1);
	assert_int_equal(history_events(h), 0);
	assert_int_equal(replay(h, "a", 0, 2, &s), HISTORY_GONE);
	assert_int_equal(replay(h, "a", a1, 2, &s), 0);
	history_free(h);
}

static void
test_shares_message_bytes(void **state)
{
	struct history *h = history_new(2, BIG, DAY);
	struct msg *m = text_msg("shared");
	uint64_t seq = history_seq_next(h);

	(void)state;
	assert_int_equal(history_add(h, "a", 1, seq, m, 0), 0);
	assert_int_equal(m->refs, 2);   /* the caller's and the history's: no copy */
	publish(h, "a", "x", 1);
	publish(h, "a", "y", 2);        /* pushes m out of the ring of two */
	assert_int_equal(m->refs, 1);
	msg_unref(m);
	/* many resources: the table grows and every one is still found */
	for (int i = 0; i < 500; i++) {
		char name[16];

		snprintf(name, sizeof(name), "r%d", i);
		publish(h, name, "v", 3);
	}
	assert_int_equal(history_resources(h), 501);
	for (int i = 0; i < 500; i += 37) {
		char name[16];
		struct seen s = { .stop_after = 0 };

		snprintf(name, sizeof(name), "r%d", i);
		assert_int_equal(replay(h, name, 0, 4, &s), 1);
	}
	assert_int_equal(history_add(h, "", 0, history_seq_next(h), m, 0), -1);
	history_free(h);
}

static void
test_merge(void **state)
{
	struct msg *m = NULL;
	/* replay read from a history, and live events held while it was read: the seam
	 * overlaps (5, 6 in both) and the live side starts before the replay ends */
	const struct history_ent replay_part[] = { { 3, m }, { 4, m }, { 5, m }, { 6, m } };
	const struct history_ent live[] = { { 5, m }, { 6, m }, { 7, m }, { 8, m } };
	struct history_ent out[8];
	uint64_t delivered = 3;   /* the client's last id */
	size_t n;

	(void)state;
	n = history_merge_held(out, replay_part, 4, live, 4, &delivered);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i].seq, 4 + i);
	assert_int_equal(delivered, 8);
	/* merged again: nothing is new */
	assert_int_equal(history_merge_held(out, replay_part, 4, live, 4, &delivered), 0);
	/* gaps on either side interleave by position */
	{
		const struct history_ent a[] = { { 10, m }, { 12, m }, { 14, m } };
		const struct history_ent b[] = { { 11, m }, { 12, m }, { 15, m } };

		assert_int_equal(history_merge_held(out, a, 3, b, 3, &delivered), 5);
		assert_int_equal(out[0].seq, 10);
		assert_int_equal(out[1].seq, 11);
		assert_int_equal(out[2].seq, 12);
		assert_int_equal(out[3].seq, 14);
		assert_int_equal(out[4].seq, 15);
	}
	/* empty sides */
	delivered = 0;
	assert_int_equal(history_merge_held(out, NULL, 0, live, 4, &delivered), 4);
	assert_int_equal(history_merge_held(out, NULL, 0, NULL, 0, &delivered), 0);
	assert_int_equal(delivered, 8);
}

/* Held events without a position (seq 0: no id) keep their place in arrival order. */
static void
test_merge_held_order(void **state)
{
	struct msg *m = msg_new(1, 0);
	struct history_ent out[8];
	uint64_t delivered = 3;

	(void)state;
	/* a local publish (no id) answered before a Redis one whose live copy came after
	 * it: it stays first, although the replay holds the Redis one */
	{
		const struct history_ent a[] = { { 4, m } };
		const struct history_ent b[] = { { 0, m }, { 4, m } };

		assert_int_equal(history_merge_held(out, a, 1, b, 2, &delivered), 2);
		assert_int_equal(out[0].seq, 0);
		assert_int_equal(out[1].seq, 4);
		assert_int_equal(delivered, 4);
	}
	/* what was published before the hold (never seen live) goes before all held */
	{
		const struct history_ent a[] = { { 5, m }, { 6, m }, { 7, m } };
		const struct history_ent b[] = { { 0, m }, { 7, m }, { 0, m }, { 8, m } };

		assert_int_equal(history_merge_held(out, a, 3, b, 4, &delivered), 6);
		assert_int_equal(out[0].seq, 5);
		assert_int_equal(out[1].seq, 6);
		assert_int_equal(out[2].seq, 0);
		assert_int_equal(out[3].seq, 7);
		assert_int_equal(out[4].seq, 0);
		assert_int_equal(out[5].seq, 8);
	}
	/* nothing positioned held: the whole replay, then the held events */
	{
		const struct history_ent a[] = { { 9, m }, { 10, m } };
		const struct history_ent b[] = { { 0, m } };

		assert_int_equal(history_merge_held(out, a, 2, b, 1, &delivered), 3);
		assert_int_equal(out[0].seq, 9);
		assert_int_equal(out[1].seq, 10);
		assert_int_equal(out[2].seq, 0);
	}
	msg_unref(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_after_position),
		cmocka_unit_test(test_size_bound_gone),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_bytes_cap_drops_least_recent),
		cmocka_unit_test(test_single_resource_over_cap),
		cmocka_unit_test(test_shares_message_bytes),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_merge_held_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
