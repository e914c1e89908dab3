/* Unit tests for src/dedup.c: the meta record (round trips, every rejection,
 * forward compatibility) and the ledger's exactly-once rules, driven through
 * every order of echo / EXEC answer / deadline / subscriber loss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dedup.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- meta ---- */

static void
meta_roundtrip(void **state)
{
	char buf[DEDUP_META_MAX];
	struct dedup_meta m;
	size_t n;

	(void)state;
	n = dedup_meta_encode(buf, sizeof(buf), S("0123456789abcdef"), 42, S("queue_update"));
	assert_int_equal(n, strlen("1 o=0123456789abcdef s=42 e=queue_update"));
	assert_memory_equal(buf, "1 o=0123456789abcdef s=42 e=queue_update", n);
	assert_int_equal(dedup_meta_decode(buf, n, &m), 0);
	assert_int_equal(m.origin_len, 16);
	assert_memory_equal(m.origin, "0123456789abcdef", 16);
	assert_true(m.seq == 42);
	assert_int_equal(m.event_len, 12);
	assert_memory_equal(m.event, "queue_update", 12);

	n = dedup_meta_encode(buf, sizeof(buf), S("ab"), UINT64_MAX, NULL, 0);
	assert_int_equal(n, strlen("1 o=ab s=18446744073709551615"));
	assert_int_equal(dedup_meta_decode(buf, n, &m), 0);
	assert_true(m.seq == UINT64_MAX);
	assert_null(m.event);
}

static void
meta_longest_fits(void **state)
{
	char buf[DEDUP_META_MAX], origin[DEDUP_ORIGIN_MAX], event[DEDUP_EVENT_MAX];
	struct dedup_meta m;
	size_t n;

	(void)state;
	memset(origin, 'z', sizeof(origin));
	memset(event, ':', sizeof(event));
	n = dedup_meta_encode(buf, sizeof(buf), origin, sizeof(origin), UINT64_MAX, event,
	    sizeof(event));
	assert_true(n > 0 && n <= sizeof(buf));
	assert_int_equal(dedup_meta_decode(buf, n, &m), 0);
	assert_int_equal(m.event_len, DEDUP_EVENT_MAX);
	/* one byte short: refused, nothing overflows */
	assert_int_equal(dedup_meta_encode(buf, n - 1, origin, sizeof(origin), UINT64_MAX, event,
	    sizeof(event)), 0);
}

static void
meta_encode_rejects(void **state)
{
	char buf[DEDUP_META_MAX], big[DEDUP_EVENT_MAX + 1];

	(void)state;
	memset(big, 'a', sizeof(big));
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S(""), 1, NULL, 0), 0);
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S("AB"), 1, NULL, 0), 0);
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S("ab"), 0, NULL, 0), 0);
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S("ab"), 1, S("")), 0);
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S("ab"), 1, S("a b")), 0);
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S("ab"), 1, S("a\nevent: x")), 0);
	assert_int_equal(dedup_meta_encode(buf, sizeof(buf), S("ab"), 1, big, sizeof(big)), 0);
	assert_int_equal(dedup_meta_encode(buf, 5, S("ab"), 1, NULL, 0), 0);
}

static void
meta_decode_rejects(void **state)
{
	static const char *bad[] = {
		"", "1", "1 ", "2 o=ab s=1", "1  o=ab s=1", "1 o=ab s=1 ", "1 o=ab", "1 s=1",
		"1 o= s=1", "1 o=AB s=1", "1 o=ab s=0", "1 o=ab s=01", "1 o=ab s=-1", "1 o=ab s=1x",
		"1 o=ab s=18446744073709551616", "1 o=ab s=1 e=", "1 o=ab s=1 e=a/b",
		"1 o=ab o=cd s=1", "1 o=ab s=1 s=2", "1 o=ab s=1 e=a e=b", "1 o=ab s=1 x",
		"1 o=ab s=1 =x", "1 o=0123456789abcdef0123456789abcdef0 s=1",
		"1 o=ab s=1 i=e-1 i=e-2",
	};
	struct dedup_meta m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dedup_meta_decode(bad[i], strlen(bad[i]), &m) != -1)
			fail_msg("accepted %s", bad[i]);
	}
	/* binary garbage, a payload that happens to start like a record */
	assert_int_equal(dedup_meta_decode("1 o=ab\0s=1", 10, &m), -1);
}

static void
meta_decode_ignores_unknown_keys(void **state)
{
	struct dedup_meta m;

	(void)state;
	/* a later version's keys: ignored, order free; the id is handed up as it is */
	assert_int_equal(dedup_meta_decode(S("1 i=77 s=9 x=y/z e=ev o=ab"), &m), 0);
	assert_true(m.seq == 9);
	assert_memory_equal(m.origin, "ab", 2);
	assert_memory_equal(m.event, "ev", 2);
	assert_int_equal(m.id_len, 2);
	assert_memory_equal(m.id, "77", 2);
	/* an empty id is none; no id, none */
	assert_int_equal(dedup_meta_decode(S("1 o=ab s=1 i="), &m), 0);
	assert_null(m.id);
	assert_int_equal(dedup_meta_decode(S("1 o=ab s=1 i=1764800000123456-43"), &m), 0);
	assert_int_equal(m.id_len, 19);
	assert_memory_equal(m.id, "1764800000123456-43", 19);
	assert_int_equal(dedup_meta_decode(S("1 o=ab s=1"), &m), 0);
	assert_null(m.id);
}

/* ---- ledger ---- */

struct rec {
	char log[256][48];   /* "D<seq>" deliveries, "F<seq>:<how>:<owner>" finishes */
	int n;
	size_t streams;     /* what deliver() returns */
	struct dedup *d;
	int cancel_in_deliver;
};

static void
rec_add(struct rec *r, const char *s)
{
	assert_true(r->n < 256);
	snprintf(r->log[r->n++], sizeof(r->log[0]), "%s", s);
}

static size_t
t_deliver(void *arg, const struct dedup_entry *e)
{
	struct rec *r = arg;
	char s[48];

	snprintf(s, sizeof(s), "D%llu", (unsigned long long)e->seq);
	rec_add(r, s);
	if (r->cancel_in_deliver)
		dedup_cancel(r->d, (void *)1);
	return r->streams;
}

static void
t_finish(void *arg, struct dedup_entry *e, enum dedup_outcome how, const char *err)
{
	struct rec *r = arg;
	static const char *names[] = { "redis", "failed", "timeout" };
	char s[48];

	assert_true(e->delivered);
	snprintf(s, sizeof(s), "F%llu:%s:%s%s", (unsigned long long)e->seq, names[how],
	    e->cancelled ? "cancelled" : (e->owner != NULL ? "owner" : "none"),
	    err[0] ? ":err" : "");
	rec_add(r, s);
}

static const struct dedup_ops ops = { t_deliver, t_finish };

static int
setup(void **state)
{
	static struct rec r;

	memset(&r, 0, sizeof(r));
	r.streams = 3;
	r.d = dedup_new(&ops, &r);
	*state = &r;
	return r.d == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	struct rec *r = *state;

	dedup_free(r->d);
	return 0;
}

static void
add(struct rec *r, uint64_t seq, uint64_t deadline)
{
	assert_non_null(dedup_add(r->d, seq, deadline, S("res"), S("ev"), S("data"), NULL,
	    (void *)1));
}

static void
expect(struct rec *r, const char *const *want, int n)
{
	int i;

	for (i = 0; i < n && i < r->n; i++)
		assert_string_equal(r->log[i], want[i]);
	if (r->n != n) {
		for (i = 0; i < r->n; i++)
			print_message("  got %s\n", r->log[i]);
		fail_msg("%d calls, want %d", r->n, n);
	}
}

#define EXPECT(r, ...) do { \
	static const char *const want_[] = { __VA_ARGS__ }; \
	expect((r), want_, (int)(sizeof(want_) / sizeof(want_[0]))); \
} while (0)

/* A catch-up leaves to the ledger exactly the own publishes it has not delivered yet:
 * pending until its echo (or any other path) delivers it, not once delivered, not
 * once finished, not for a seq never added. */
static void
undelivered_until_delivered(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	add(r, 2, 1000);
	assert_int_equal(dedup_is_undelivered(r->d, 1), 1);
	assert_int_equal(dedup_is_undelivered(r->d, 2), 1);
	assert_int_equal(dedup_is_undelivered(r->d, 3), 0);
	assert_int_equal(dedup_is_undelivered(r->d, 0), 0);
	assert_int_equal(dedup_echo(r->d, 1), 1);   /* delivered, EXEC not answered yet */
	assert_int_equal(dedup_is_undelivered(r->d, 1), 0);
	assert_int_equal(dedup_is_undelivered(r->d, 2), 1);
	dedup_exec(r->d, 1, 1, NULL);               /* finished */
	assert_int_equal(dedup_is_undelivered(r->d, 1), 0);
	dedup_expire(r->d, 1000);                   /* 2 delivered by its deadline */
	assert_int_equal(dedup_is_undelivered(r->d, 2), 0);
	EXPECT(r, "D1", "F1:redis:owner", "D2", "F2:timeout:owner");
}

static void
visit_answered(void *arg, const struct dedup_entry *e)
{
	struct rec *r = arg;
	char s[48];

	snprintf(s, sizeof(s), "A%llu:%.*s", (unsigned long long)e->seq, (int)e->id_len, e->id);
	rec_add(r, s);
}

/* dedup_each_answered visits the entries Redis ran whose echo is still to come, in seq
 * order, with the id kept for them; it skips one already delivered (refused: delivered
 * at once) and stops at the first one still waiting for its answer. */
static void
each_answered_stops_at_pending(void **state)
{
	struct rec *r = *state;
	char longest[DEDUP_ID_MAX + 1];

	for (uint64_t seq = 1; seq <= 5; seq++)
		add(r, seq, 1000);
	dedup_set_id(r->d, 1, S("e-7"));
	dedup_exec(r->d, 1, 1, NULL);
	dedup_exec(r->d, 2, 0, "refused");           /* delivered and finished */
	memset(longest, 'x', sizeof(longest));
	dedup_set_id(r->d, 3, longest, sizeof(longest));   /* too long: not kept */
	dedup_exec(r->d, 3, 1, NULL);
	dedup_set_id(r->d, 5, S("e-9"));
	dedup_exec(r->d, 5, 1, NULL);                /* behind 4, still pending */
	dedup_set_id(r->d, 99, S("e-1"));            /* unknown seq: nothing */
	dedup_each_answered(r->d, visit_answered, r);
	EXPECT(r, "D2", "F2:failed:owner:err", "A1:e-7", "A3:");
	r->n = 0;
	dedup_exec(r->d, 4, 1, NULL);
	assert_int_equal(dedup_echo(r->d, 3), 1);    /* delivers 1, then 3 */
	dedup_each_answered(r->d, visit_answered, r);
	EXPECT(r, "D1", "F1:redis:owner", "D3", "F3:redis:owner", "A4:", "A5:e-9");
}

static void
echo_then_exec(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	assert_int_equal(dedup_echo(r->d, 1), 1);
	EXPECT(r, "D1", "F1:redis:owner");   /* the echo proves Redis ran it */
	assert_int_equal(dedup_count(r->d), 0);
	dedup_exec(r->d, 1, 1, NULL);        /* unknown now: nothing */
	assert_int_equal(dedup_echo(r->d, 1), 0);
	dedup_expire(r->d, 5000);
	EXPECT(r, "D1", "F1:redis:owner");
}

static void
exec_then_echo_real(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	dedup_exec(r->d, 1, 1, NULL);
	assert_int_equal(r->n, 0);           /* accepted, not delivered yet: wait for the echo */
	assert_int_equal(dedup_echo(r->d, 1), 1);
	EXPECT(r, "D1", "F1:redis:owner");
	assert_int_equal(dedup_echo(r->d, 1), 0);   /* a second copy: dropped */
	EXPECT(r, "D1", "F1:redis:owner");
}

static void
exec_ok_echo_late(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	dedup_exec(r->d, 1, 1, NULL);
	dedup_expire(r->d, 999);
	assert_int_equal(r->n, 0);
	assert_true(dedup_next_deadline(r->d) == 1000);
	dedup_expire(r->d, 1000);            /* subscriber late: local, but answer redis */
	EXPECT(r, "D1", "F1:redis:owner");
	assert_int_equal(dedup_echo(r->d, 1), 0);   /* the late echo never reaches a stream */
	EXPECT(r, "D1", "F1:redis:owner");
	assert_true(dedup_next_deadline(r->d) == UINT64_MAX);
}

static void
timeout_before_exec(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	dedup_expire(r->d, 1000);
	EXPECT(r, "D1", "F1:timeout:owner");
	dedup_exec(r->d, 1, 1, NULL);        /* Redis got it after all: nothing more here */
	assert_int_equal(dedup_echo(r->d, 1), 0);
	EXPECT(r, "D1", "F1:timeout:owner");
}

static void
exec_error(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	dedup_exec(r->d, 1, 0, "ERR boom");
	EXPECT(r, "D1", "F1:failed:owner:err");
	assert_int_equal(dedup_echo(r->d, 1), 0);
	EXPECT(r, "D1", "F1:failed:owner:err");
}

static void
sub_lost_in_order(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	add(r, 2, 1001);
	add(r, 3, 1002);
	dedup_exec(r->d, 1, 1, NULL);
	dedup_exec(r->d, 2, 1, NULL);
	dedup_sub_lost(r->d);
	/* 1 and 2 were accepted: answered redis; 3 waits for its EXEC answer */
	EXPECT(r, "D1", "F1:redis:owner", "D2", "F2:redis:owner", "D3");
	assert_int_equal(dedup_count(r->d), 1);
	/* the new subscription brings 3 back: proves acceptance, not delivered twice */
	assert_int_equal(dedup_echo(r->d, 3), 0);
	EXPECT(r, "D1", "F1:redis:owner", "D2", "F2:redis:owner", "D3", "F3:redis:owner");
	assert_int_equal(dedup_count(r->d), 0);
}

static void
sub_lost_then_exec_fails(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	dedup_sub_lost(r->d);
	dedup_exec(r->d, 1, 0, "connection lost");
	EXPECT(r, "D1", "F1:failed:owner:err");
}

static void
sub_lost_then_timeout(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	dedup_sub_lost(r->d);
	dedup_sub_lost(r->d);                 /* twice: still once */
	dedup_expire(r->d, 2000);
	EXPECT(r, "D1", "F1:timeout:owner");
}

static void
skipped_echo_delivered_first(void **state)
{
	struct rec *r = *state;

	/* 1 never comes back on this subscription but 2 does: 1 first, locally */
	add(r, 1, 1000);
	add(r, 2, 1001);
	dedup_exec(r->d, 1, 1, NULL);
	assert_int_equal(dedup_echo(r->d, 2), 1);
	EXPECT(r, "D1", "F1:redis:owner", "D2", "F2:redis:owner");
	assert_int_equal(dedup_echo(r->d, 1), 0);
}

static void
skipped_echo_exec_pending(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	add(r, 2, 1001);
	assert_int_equal(dedup_echo(r->d, 2), 1);
	/* 1 delivered for order, still waiting for its EXEC answer */
	EXPECT(r, "D1", "D2", "F2:redis:owner");
	dedup_exec(r->d, 1, 1, NULL);
	EXPECT(r, "D1", "D2", "F2:redis:owner", "F1:redis:owner");
}

static void
cancel_keeps_delivery(void **state)
{
	struct rec *r = *state;

	add(r, 1, 1000);
	assert_non_null(dedup_add(r->d, 2, 1000, S("res"), NULL, 0, S("x"), NULL, (void *)2));
	dedup_cancel(r->d, (void *)1);
	dedup_exec(r->d, 1, 1, NULL);
	dedup_exec(r->d, 2, 1, NULL);
	assert_int_equal(dedup_echo(r->d, 1), 1);
	assert_int_equal(dedup_echo(r->d, 2), 1);
	EXPECT(r, "D1", "F1:redis:cancelled", "D2", "F2:redis:owner");
}

static void
cancel_from_deliver(void **state)
{
	struct rec *r = *state;

	r->cancel_in_deliver = 1;
	add(r, 1, 1000);
	add(r, 2, 1000);
	dedup_sub_lost(r->d);
	dedup_expire(r->d, 1000);
	EXPECT(r, "D1", "D2", "F1:timeout:cancelled", "F2:timeout:cancelled");
}

static void
unknown_and_bad_seq(void **state)
{
	struct rec *r = *state;

	assert_int_equal(dedup_echo(r->d, 7), 0);
	dedup_exec(r->d, 7, 1, NULL);
	dedup_expire(r->d, UINT64_MAX);
	dedup_sub_lost(r->d);
	assert_int_equal(r->n, 0);
	add(r, 5, 10);
	/* seqs only go up */
	assert_null(dedup_add(r->d, 5, 10, S("res"), NULL, 0, S("x"), NULL, NULL));
	assert_null(dedup_add(r->d, 4, 10, S("res"), NULL, 0, S("x"), NULL, NULL));
	assert_int_equal(dedup_count(r->d), 1);
}

static void
copies_are_owned(void **state)
{
	struct rec *r = *state;
	char res[] = "abc", data[] = "payload";
	struct dedup_entry *e;

	e = dedup_add(r->d, 1, 10, res, 3, NULL, 0, data, 7, NULL, NULL);
	assert_non_null(e);
	memset(res, 'x', 3);
	memset(data, 'x', 7);
	assert_memory_equal(e->resource, "abc", 3);
	assert_memory_equal(e->data, "payload", 7);
	assert_null(e->event);
	/* freed with pending entries, no callback */
	add(r, 2, 10);
}

/* Random interleavings: whatever happens, each entry is delivered exactly once
 * and finished exactly once, deliveries in seq order unless an entry was
 * delivered by its own deadline or failure (never after a later one's echo). */
static void
fuzz(void **state)
{
	struct rec *r = *state;
	uint64_t x = 88172645463325252ULL;
	int round;

	for (round = 0; round < 2000; round++) {
		int delivered[9] = { 0 }, finished[9] = { 0 }, i, step;
		uint64_t now = 0;

		dedup_free(r->d);
		memset(r, 0, sizeof(*r));
		r->streams = 1;
		r->d = dedup_new(&ops, r);
		for (i = 1; i <= 8; i++)
			add(r, (uint64_t)i, (uint64_t)(100 + i * 10));
		for (step = 0; step < 40; step++) {
			unsigned op, seq;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			op = (unsigned)(x % 5);
			seq = 1 + (unsigned)((x >> 8) % 8);
			if (op == 0)
				dedup_echo(r->d, seq);
			else if (op == 1)
				dedup_exec(r->d, seq, (x >> 20) & 1, "e");
			else if (op == 2)
				dedup_expire(r->d, now += 7);
			else if (op == 3 && (x >> 30) % 8 == 0)
				dedup_sub_lost(r->d);
			else
				dedup_echo(r->d, seq);
		}
		dedup_expire(r->d, UINT64_MAX);
		assert_int_equal(dedup_count(r->d), 0);
		for (i = 0; i < r->n; i++) {
			unsigned long long s;

			if (sscanf(r->log[i], "D%llu", &s) == 1)
				delivered[s]++;
			else if (sscanf(r->log[i], "F%llu", &s) == 1)
				finished[s]++;
		}
		for (i = 1; i <= 8; i++) {
			assert_int_equal(delivered[i], 1);
			assert_int_equal(finished[i], 1);
		}
	}
}


static void
seq_rules(void **state)
{
	struct rec *r = *state;

	add(r, 5, 100);
	/* consecutive while not empty: a gap or a repeat is refused */
	assert_null(dedup_add(r->d, 7, 100, S("res"), NULL, 0, S("x"), NULL, NULL));
	assert_null(dedup_add(r->d, 5, 100, S("res"), NULL, 0, S("x"), NULL, NULL));
	add(r, 6, 100);
	dedup_expire(r->d, 100);
	EXPECT(r, "D5", "F5:timeout:owner", "D6", "F6:timeout:owner");
	/* empty: any later seq starts a new run; never an earlier one */
	assert_null(dedup_add(r->d, 6, 100, S("res"), NULL, 0, S("x"), NULL, NULL));
	add(r, 1000, 200);
	assert_int_equal(dedup_echo(r->d, 6), 0);
	assert_int_equal(dedup_echo(r->d, 1000), 1);
	assert_int_equal(dedup_count(r->d), 0);
}

static void
deadlines_grow_with_seq(void **state)
{
	struct rec *r = *state;

	add(r, 1, 500);
	add(r, 2, 300);   /* earlier than 1's: raised to 500 */
	add(r, 3, 700);
	assert_true(dedup_next_deadline(r->d) == 500);
	dedup_expire(r->d, 499);
	assert_int_equal(r->n, 0);
	dedup_expire(r->d, 500);
	EXPECT(r, "D1", "F1:timeout:owner", "D2", "F2:timeout:owner");
	assert_true(dedup_next_deadline(r->d) == 700);
	/* the oldest finishing first or last does not change the next deadline's rule */
	add(r, 4, 900);
	dedup_exec(r->d, 4, 0, "x");
	assert_true(dedup_next_deadline(r->d) == 700);
	dedup_exec(r->d, 3, 0, "x");
	assert_true(dedup_next_deadline(r->d) == UINT64_MAX);
}

/* Entries delivered and finished out of band (EXEC errors) leave the "in order"
 * cursor behind, and the ring shrinks meanwhile: the next echo still delivers
 * exactly the older undelivered entries, in order, nothing newer. */
static void
order_after_out_of_band_finishes(void **state)
{
	struct rec *r = *state;
	uint64_t seq;

	for (seq = 1; seq <= 64; seq++)
		add(r, seq, 1000);
	for (seq = 1; seq <= 60; seq++)
		dedup_exec(r->d, seq, 0, "x");
	r->n = 0;
	for (seq = 65; seq <= 80; seq++)
		add(r, seq, 1000);
	assert_int_equal(dedup_echo(r->d, 62), 1);
	EXPECT(r, "D61", "D62", "F62:redis:owner");
	dedup_sub_lost(r->d);
	assert_int_equal(r->n, 3 + 18);
	for (seq = 63; seq <= 80; seq++) {
		char want[8];

		snprintf(want, sizeof(want), "D%llu", (unsigned long long)seq);
		assert_string_equal(r->log[3 + seq - 63], want);
	}
	assert_int_equal(dedup_count(r->d), 19);
}

/* ---- against a model ---- */

#define MODEL_N 400

struct model {
	struct dedup *d;
	int delivered[MODEL_N + 1], finished[MODEL_N + 1];
	int cancelled_at_finish[MODEL_N + 1];
	uint64_t deadline[MODEL_N + 1];
	uint64_t owner_of[MODEL_N + 1];   /* 0: none */
	int cancelled[MODEL_N + 1];
};

static size_t
m_deliver(void *arg, const struct dedup_entry *e)
{
	struct model *m = arg;

	assert_true(e->seq >= 1 && e->seq <= MODEL_N);
	m->delivered[e->seq]++;
	return 1;
}

static void
m_finish(void *arg, struct dedup_entry *e, enum dedup_outcome how, const char *err)
{
	struct model *m = arg;

	(void)how;
	(void)err;
	assert_true(e->delivered);
	m->finished[e->seq]++;
	m->cancelled_at_finish[e->seq] = e->cancelled;
	/* e->owner is NULL exactly when cancelled (or added without one) */
	if (e->cancelled)
		assert_null(e->owner);
}

static const struct dedup_ops model_ops = { m_deliver, m_finish };

/* Random operations on up to MODEL_N entries (the ring and the owner hash grow
 * and shrink through several sizes): after every step the count and the next
 * deadline agree with the model, an echo delivered is never ahead of an older
 * entry, a lost subscription delivers all; at the end each entry was delivered once and
 * finished once, and finished as cancelled exactly when its owner cancelled. */
static void
model_check(void **state)
{
	uint64_t x = 0x2545f4914f6cdd1dULL;
	int round;

	(void)state;
	for (round = 0; round < 60; round++) {
		static struct model m;
		uint64_t now = 0, next_seq = 1, t;
		int i, step;

		memset(&m, 0, sizeof(m));
		m.d = dedup_new(&model_ops, &m);
		assert_non_null(m.d);
		for (step = 0; step < 3000; step++) {
			unsigned op;
			uint64_t seq, want, live;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			op = (unsigned)(x % 16);
			seq = next_seq > 1 ? 1 + (x >> 20) % (next_seq - 1) : 1;
			if (op < 5 && next_seq <= MODEL_N) {
				uint64_t owner = (x >> 40) % 4 == 0 ? 0 : 1 + (x >> 42) % 50;

				m.deadline[next_seq] = now + 5 + (x >> 33) % 60;
				m.owner_of[next_seq] = owner;
				assert_non_null(dedup_add(m.d, next_seq, m.deadline[next_seq], S("r"),
				    NULL, 0, S("d"), NULL, owner ? (void *)(uintptr_t)(owner * 16) : NULL));
				/* the ledger raises a deadline below the previous one while
				 * that one is still there */
				if (dedup_count(m.d) > 1 && m.deadline[next_seq] < m.deadline[next_seq - 1])
					m.deadline[next_seq] = m.deadline[next_seq - 1];
				next_seq++;
			} else if (op < 8) {
				/* delivered from its echo: every older one was delivered first */
				if (dedup_echo(m.d, seq) == 1)
					for (t = 1; t < seq; t++)
						assert_int_equal(m.delivered[t], 1);
			} else if (op < 10) {
				dedup_exec(m.d, seq, (x >> 50) & 1, "e");
			} else if (op < 12) {
				dedup_expire(m.d, now += (x >> 24) % 9);
			} else if (op == 12 && (x >> 30) % 6 == 0) {
				dedup_sub_lost(m.d);
				for (t = 1; t < next_seq; t++)
					assert_int_equal(m.delivered[t], 1);
			} else if (op == 13) {
				uint64_t owner = 1 + (x >> 42) % 50;

				dedup_cancel(m.d, (void *)(uintptr_t)(owner * 16));
				for (t = 1; t < next_seq; t++)
					if (m.owner_of[t] == owner && !m.finished[t])
						m.cancelled[t] = 1;
			} else {
				dedup_echo(m.d, seq);
			}
			want = UINT64_MAX;
			live = 0;
			for (t = 1; t < next_seq; t++) {
				assert_true(m.delivered[t] <= 1 && m.finished[t] <= 1);
				if (m.finished[t])
					continue;
				live++;
				if (m.deadline[t] < want)
					want = m.deadline[t];
			}
			assert_int_equal(dedup_count(m.d), live);
			assert_true(dedup_next_deadline(m.d) == want);
		}
		dedup_expire(m.d, UINT64_MAX);
		assert_int_equal(dedup_count(m.d), 0);
		for (i = 1; i < (int)next_seq; i++) {
			assert_int_equal(m.delivered[i], 1);
			assert_int_equal(m.finished[i], 1);
			assert_int_equal(m.cancelled_at_finish[i], m.cancelled[i]);
		}
		dedup_free(m.d);
	}
}

/* ---- scale ---- */

#define SCALE_N 200000

struct counter {
	size_t delivered, finished;
};

static size_t
c_deliver(void *arg, const struct dedup_entry *e)
{
	struct counter *c = arg;

	(void)e;
	c->delivered++;
	return 1;
}

static void
c_finish(void *arg, struct dedup_entry *e, enum dedup_outcome how, const char *err)
{
	struct counter *c = arg;

	(void)e;
	(void)how;
	(void)err;
	c->finished++;
}

static const struct dedup_ops counter_ops = { c_deliver, c_finish };

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the hub does while Redis stalls, at 200,000 outstanding publishes: each
 * publish is added and the deadline timer re-armed (dedup_next_deadline), then
 * the answers come back one by one, each followed by a re-arm. A ledger that
 * walks its entries per operation needs ~n^2/2 = 2e10 steps here; this one
 * must stay within a small constant per entry (counted, not timed). */
static void
scales_while_redis_stalls(void **state)
{
	struct counter c = { 0, 0 };
	struct dedup *d = dedup_new(&counter_ops, &c);
	unsigned long long limit = 16ULL * SCALE_N;
	uint64_t seq, sum = 0;
	double t0 = now_s();
	int phase;

	(void)state;
	assert_non_null(d);
	for (phase = 0; phase < 4; phase++) {
		uint64_t base = (uint64_t)phase * SCALE_N + 1;
		unsigned long long w0 = dedup_work(d);

		for (seq = base; seq < base + SCALE_N; seq++) {
			assert_non_null(dedup_add(d, seq, 1000 + seq / 1000, S("res"), S("ev"), S("x"),
			    NULL, (void *)(uintptr_t)(seq * 16)));
			sum += dedup_next_deadline(d);
		}
		assert_int_equal(dedup_count(d), SCALE_N);
		switch (phase) {
		case 0:   /* Redis wakes up: EXEC answers, then echoes, in order */
			for (seq = base; seq < base + SCALE_N; seq++) {
				dedup_exec(d, seq, 1, NULL);
				sum += dedup_next_deadline(d);
			}
			for (seq = base; seq < base + SCALE_N; seq++) {
				assert_int_equal(dedup_echo(d, seq), 1);
				sum += dedup_next_deadline(d);
			}
			break;
		case 1:   /* only the newest echo comes back: every older one first */
			assert_int_equal(dedup_echo(d, base + SCALE_N - 1), 1);
			for (seq = base; seq < base + SCALE_N - 1; seq++) {
				dedup_exec(d, seq, 1, NULL);
				sum += dedup_next_deadline(d);
			}
			break;
		case 2:   /* the subscription is lost, publishers go away, the deadline */
			dedup_sub_lost(d);
			for (seq = base; seq < base + SCALE_N; seq += 2)
				dedup_cancel(d, (void *)(uintptr_t)(seq * 16));
			dedup_expire(d, UINT64_MAX);
			break;
		case 3:   /* the publisher is lost: EXEC fails, newest first */
			for (seq = base + SCALE_N; seq-- > base;) {
				dedup_exec(d, seq, 0, "connection lost");
				sum += dedup_next_deadline(d);
			}
			break;
		}
		assert_int_equal(dedup_count(d), 0);
		if (dedup_work(d) - w0 > limit)
			fail_msg("phase %d: %llu steps for %d entries (limit %llu)", phase,
			    dedup_work(d) - w0, SCALE_N, limit);
	}
	assert_int_equal(c.delivered, 4 * SCALE_N);
	assert_int_equal(c.finished, 4 * SCALE_N);
	print_message("    4 x %d outstanding entries: %llu steps, %.2f s (checksum %llu)\n",
	    SCALE_N, dedup_work(d), now_s() - t0, (unsigned long long)(sum & 0xff));
	dedup_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(meta_roundtrip),
		cmocka_unit_test(meta_longest_fits),
		cmocka_unit_test(meta_encode_rejects),
		cmocka_unit_test(meta_decode_rejects),
		cmocka_unit_test(meta_decode_ignores_unknown_keys),
		cmocka_unit_test_setup_teardown(undelivered_until_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(each_answered_stops_at_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(echo_then_exec, setup, teardown),
		cmocka_unit_test_setup_teardown(exec_then_echo_real, setup, teardown),
		cmocka_unit_test_setup_teardown(exec_ok_echo_late, setup, teardown),
		cmocka_unit_test_setup_teardown(timeout_before_exec, setup, teardown),
		cmocka_unit_test_setup_teardown(exec_error, setup, teardown),
		cmocka_unit_test_setup_teardown(sub_lost_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(sub_lost_then_exec_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(sub_lost_then_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(skipped_echo_delivered_first, setup, teardown),
		cmocka_unit_test_setup_teardown(skipped_echo_exec_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_keeps_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_from_deliver, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_and_bad_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(copies_are_owned, setup, teardown),
		cmocka_unit_test_setup_teardown(fuzz, setup, teardown),
		cmocka_unit_test_setup_teardown(seq_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(deadlines_grow_with_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(order_after_out_of_band_finishes, setup, teardown),
		cmocka_unit_test(model_check),
		cmocka_unit_test(scales_while_redis_stalls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
