/* Unit tests for src/hub.c's subscriber side: how a meta record pairs with the
 * payload that follows it, and what the ledger then delivers, across the
 * events Redis connections go through (publisher lost and back, subscription
 * lost). The hub runs against a stand-in for src/redis.c defined below: the
 * static library's redis.o is then never linked, and each test drives the
 * handler hub.c registered as the real subscriber would, in the orders that
 * the network can produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "dedup.h"
#include "ev.h"
#include "hub.h"
#include "log.h"
#include "redis.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- the stand-in for redis.c ---- */

struct redis {
	const struct redis_handler *h;
	void *arg;
	int up;
	char meta[DEDUP_META_MAX];   /* of the last publish */
	size_t meta_len;
	uint64_t token;
	int publishes, resets;
	/* Messages already in the subscriber's socket that the loop has not served
	 * yet: redis_sub_drain() hands them up, a meta record (if any) first. */
	struct { char meta[DEDUP_META_MAX]; size_t meta_len; char data[32]; size_t len; } waiting[4];
	int nwaiting, drains;
	int sub_ready;               /* subscription confirmed */
	uint64_t barrier;            /* token of the last redis_sub_barrier() */
	int barriers;
};

static struct redis *fake;

struct redis *
redis_new(struct ev_loop *loop, const struct conf_redis *conf, const char *origin,
    const struct redis_handler *h, void *arg)
{
	(void)loop;
	(void)conf;
	(void)origin;
	fake = calloc(1, sizeof(*fake));
	if (fake == NULL)
		return NULL;
	fake->h = h;
	fake->arg = arg;
	return fake;
}

void
redis_free(struct redis *r)
{
	free(r);
	fake = NULL;
}

int
redis_is_up(const struct redis *r)
{
	return r->up;
}

void
redis_timers_retry(struct redis *r)
{
	(void)r;
}

const char *
redis_down_reason(const struct redis *r)
{
	return r->up ? "" : "test: down";
}

int
redis_publish(struct redis *r, const char *resource, size_t resource_len,
    const char *meta, size_t meta_len, const char *data, size_t len, uint64_t token)
{
	(void)resource;
	(void)resource_len;
	(void)data;
	(void)len;
	if (!r->up) {
		errno = ENOTCONN;
		return -1;
	}
	assert_true(meta_len <= sizeof(r->meta));
	memcpy(r->meta, meta, meta_len);
	r->meta_len = meta_len;
	r->token = token;
	r->publishes++;
	return 0;
}

int
redis_sub_is_ready(const struct redis *r)
{
	return r->sub_ready;
}

int
redis_sub_barrier(struct redis *r, uint64_t token)
{
	if (!r->sub_ready) {
		errno = ENOTCONN;
		return -1;
	}
	r->barrier = token;
	r->barriers++;
	return 0;
}

void
redis_sub_drain(struct redis *r)
{
	int i;

	r->drains++;
	for (i = 0; i < r->nwaiting; i++) {
		if (r->waiting[i].meta_len > 0)
			r->h->on_meta(r->arg, "res", 3, r->waiting[i].meta, r->waiting[i].meta_len);
		r->h->on_message(r->arg, "res", 3, r->waiting[i].data, r->waiting[i].len);
	}
	r->nwaiting = 0;
}

/* With history on (the default history_size) the hub publishes through the script:
 * the same for these tests, the id only appears in what the subscriber hands up. */
int
redis_publish_history(struct redis *r, const char *resource, size_t resource_len,
    const char *meta, size_t meta_len, const char *event, size_t event_len,
    const char *data, size_t len, unsigned size, unsigned ttl, uint64_t token)
{
	(void)event;
	(void)event_len;
	(void)size;
	(void)ttl;
	return redis_publish(r, resource, resource_len, meta, meta_len, data, len, token);
}

int
redis_history_read(struct redis *r, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after, unsigned count,
    redis_history_fn *fn, void *arg, uint64_t token)
{
	(void)r;
	(void)resource;
	(void)resource_len;
	(void)epoch;
	(void)epoch_len;
	(void)after;
	(void)count;
	(void)fn;
	(void)arg;
	(void)token;
	errno = ENOTCONN;
	return -1;
}

void
redis_reset_publisher(struct redis *r, const char *reason)
{
	(void)reason;
	r->resets++;
}

unsigned long
redis_reconnects(const struct redis *r)
{
	(void)r;
	return 0;
}

unsigned long
redis_probe_failures(const struct redis *r)
{
	(void)r;
	return 0;
}

/* ---- the world ---- */

struct world {
	struct ev_loop *loop;
	struct conf conf;
	struct hub *hub;
	char got[16][64];   /* "<event>|<data>" per delivery ("" event: none) */
	char last_id[72];   /* id of the last delivery, "" for none */
	char ids[16][72];   /* the id of each delivery ("" none) */
	int ngot;
	int done;
	char mode[8];
	int fallback;
	int own[16];                 /* the own flag of each delivery */
};

static size_t
on_deliver(void *arg, const char *resource, size_t resource_len, const char *event,
    size_t event_len, const char *data, size_t len, const char *id, size_t id_len, int own)
{
	struct world *w = arg;

	(void)resource;
	(void)resource_len;
	assert_true(w->ngot < 16);
	w->own[w->ngot] = own;
	snprintf(w->got[w->ngot++], sizeof(w->got[0]), "%.*s|%.*s", (int)event_len,
	    event != NULL ? event : "", (int)len, data);
	snprintf(w->last_id, sizeof(w->last_id), "%.*s", (int)id_len, id != NULL ? id : "");
	snprintf(w->ids[w->ngot - 1], sizeof(w->ids[0]), "%s", w->last_id);
	return 1;
}

static void
on_done(void *arg, const struct hub_result *res)
{
	struct world *w = arg;

	w->done++;
	snprintf(w->mode, sizeof(w->mode), "%s", res->mode);
	w->fallback = res->fallback;
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -1;
	log_set_level(LOG_LEVEL_ERROR);
	w->loop = ev_loop_new(NULL, 64);
	conf_init(&w->conf);
	w->conf.redis.host = strdup("127.0.0.1");
	w->conf.redis.publish_timeout_ms = 30;
	w->hub = hub_new(w->loop, &w->conf, on_deliver, w);
	*state = w;
	if (w->loop == NULL || w->hub == NULL || fake == NULL)
		return -1;
	fake->up = 1;
	fake->sub_ready = 1;
	fake->h->on_mode(fake->arg, 1);
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	hub_free(w->hub);
	ev_loop_free(w->loop);
	conf_release(&w->conf);
	free(w);
	return 0;
}

/* What the subscriber connection hands up. */
static void
sub_meta(const char *meta, size_t len)
{
	fake->h->on_meta(fake->arg, S("res"), meta, len);
}

static void
sub_payload(const char *resource, size_t resource_len, const char *data, size_t len)
{
	fake->h->on_message(fake->arg, resource, resource_len, data, len);
}

/* The publisher connection is lost (hub sees up = 0), then comes back. */
static void
publisher_lost(void)
{
	fake->up = 0;
	fake->h->on_mode(fake->arg, 0);
}

static void
publisher_back(void)
{
	fake->up = 1;
	fake->h->on_mode(fake->arg, 1);
}

/* A meta record of another sse-fcgi process. */
static size_t
peer_meta(char *buf, uint64_t seq, const char *event, size_t event_len)
{
	size_t n = dedup_meta_encode(buf, DEDUP_META_MAX, S("0123456789abcdef"), seq, event,
	    event_len);

	assert_true(n > 0);
	return n;
}

/* Run the loop past the ledger's deadline (publish_timeout_ms = 30). */
static void
past_deadline(struct world *w)
{
	int i;

	for (i = 0; i < 20; i++)
		ev_loop_run_once(w->loop, 10);
}

static void
expect(struct world *w, const char *const *want, int n)
{
	int i, same = w->ngot == n;

	for (i = 0; same && i < n; i++)
		same = strcmp(w->got[i], want[i]) == 0;
	if (!same) {
		for (i = 0; i < w->ngot; i++)
			print_message("  got %s\n", w->got[i]);
		fail_msg("%d deliveries, want %d (listed above)", w->ngot, n);
	}
}

#define EXPECT(w, ...) do { \
	static const char *const want_[] = { __VA_ARGS__ }; \
	expect((w), want_, (int)(sizeof(want_) / sizeof(want_[0]))); \
} while (0)

static void
own_echo(void **state)
{
	struct world *w = *state;

	assert_int_equal(hub_publish(w->hub, S("res"), S("ev"), S("data"), on_done, w), 0);
	assert_int_equal(fake->publishes, 1);
	fake->h->on_published(fake->arg, fake->token, 1, "");
	assert_int_equal(w->ngot, 0);           /* waits for the echo */
	sub_meta(fake->meta, fake->meta_len);
	sub_payload(S("res"), S("data"));
	EXPECT(w, "ev|data");
	assert_int_equal(w->done, 1);
	assert_string_equal(w->mode, "redis");
	past_deadline(w);
	EXPECT(w, "ev|data");
}

/* Issue 9, defect 3: EXEC answered, the meta record read, then the publisher
 * drops before the payload is read. The payload is still our echo. */
static void
publisher_lost_between_meta_and_payload(void **state)
{
	struct world *w = *state;

	assert_int_equal(hub_publish(w->hub, S("res"), S("ev"), S("data"), on_done, w), 0);
	fake->h->on_published(fake->arg, fake->token, 1, "");
	sub_meta(fake->meta, fake->meta_len);
	publisher_lost();
	sub_payload(S("res"), S("data"));
	EXPECT(w, "ev|data");
	assert_string_equal(w->mode, "redis");
	publisher_back();
	past_deadline(w);
	EXPECT(w, "ev|data");
	assert_int_equal(w->done, 1);
	assert_int_equal(fake->resets, 0);
}

/* The same with EXEC unanswered: the lost publisher fails it, so it is
 * delivered locally at once, and the payload that follows is its late copy. */
static void
publisher_lost_before_exec_answer(void **state)
{
	struct world *w = *state;

	assert_int_equal(hub_publish(w->hub, S("res"), S("ev"), S("data"), on_done, w), 0);
	sub_meta(fake->meta, fake->meta_len);
	publisher_lost();
	fake->h->on_published(fake->arg, fake->token, 0, "connection lost");
	EXPECT(w, "ev|data");
	assert_string_equal(w->mode, "local");
	assert_int_equal(w->fallback, 1);
	publisher_back();
	sub_payload(S("res"), S("data"));
	past_deadline(w);
	EXPECT(w, "ev|data");
}

/* Another process's publish keeps its name across our publisher's reconnect. */
static void
peer_keeps_name_across_publisher_reconnect(void **state)
{
	struct world *w = *state;
	char meta[DEDUP_META_MAX];
	size_t n = peer_meta(meta, 7, S("queue_update"));

	sub_meta(meta, n);
	publisher_lost();
	publisher_back();
	sub_payload(S("res"), S("{\"a\":1}"));
	EXPECT(w, "queue_update|{\"a\":1}");
}

/* Another process's publish has reached our subscriber socket (meta record and
 * payload) but the loop has not read it yet. */
static void
peer_waiting(uint64_t seq, const char *event, size_t event_len, const char *data)
{
	int i = fake->nwaiting++;

	assert_true(i < 4 && strlen(data) < sizeof(fake->waiting[i].data));
	fake->waiting[i].meta_len = peer_meta(fake->waiting[i].meta, seq, event, event_len);
	fake->waiting[i].len = strlen(data);
	memcpy(fake->waiting[i].data, data, fake->waiting[i].len);
}

/* Order across a mode change: the subscription is confirmed, the publisher is
 * not (we answer "local"), and a peer's publish answered "redis" before ours
 * was sent sits unread in the subscriber socket. It reaches the streams first. */
static void
local_publish_after_waiting_peer(void **state)
{
	struct world *w = *state;

	publisher_lost();
	peer_waiting(3, S("tick"), "first");
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("second"), on_done, w), 0);
	EXPECT(w, "tick|first");               /* ours waits for the barrier */
	assert_int_equal(fake->barriers, 1);
	assert_int_equal(w->done, 0);
	fake->h->on_published(fake->arg, fake->barrier, 0, "Redis unavailable: test");
	EXPECT(w, "tick|first", "|second");
	assert_int_equal(w->done, 1);
	assert_string_equal(w->mode, "local");
	assert_int_equal(w->fallback, 1);
}

/* The peer's publish is not even in our socket yet when ours arrives (Redis
 * writes to its subscribers one after another, and the peer answered first):
 * the barrier on the subscriber comes back behind it. */
static void
local_publish_waits_for_barrier(void **state)
{
	struct world *w = *state;
	char meta[DEDUP_META_MAX];
	size_t n = peer_meta(meta, 3, NULL, 0);

	publisher_lost();
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("second"), on_done, w), 0);
	assert_int_equal(w->ngot, 0);
	sub_meta(meta, n);
	sub_payload(S("res"), S("first"));
	fake->h->on_published(fake->arg, fake->barrier, 0, "Redis unavailable: test");
	EXPECT(w, "|first", "|second");
	assert_string_equal(w->mode, "local");
	/* a late copy of the barrier's answer changes nothing */
	fake->h->on_published(fake->arg, fake->barrier, 0, "Redis unavailable: test");
	past_deadline(w);
	EXPECT(w, "|first", "|second");
	assert_int_equal(w->done, 1);
}

/* Nothing comes back on a subscriber that went deaf: the deadline delivers it,
 * answered "local". Without a subscription, no barrier: delivered at once. */
static void
barrier_deadline_and_no_subscription(void **state)
{
	struct world *w = *state;

	publisher_lost();
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("one"), on_done, w), 0);
	assert_int_equal(w->ngot, 0);
	past_deadline(w);
	EXPECT(w, "|one");
	assert_int_equal(w->done, 1);
	assert_string_equal(w->mode, "local");
	fake->sub_ready = 0;
	fake->h->on_sub_lost(fake->arg);
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("two"), on_done, w), 0);
	EXPECT(w, "|one", "|two");
	assert_int_equal(w->done, 2);
	assert_int_equal(fake->barriers, 1);
}

/* The same when our publish goes to Redis and the publisher is lost before
 * EXEC is answered: delivered locally at once, after what the subscriber holds. */
static void
failed_publish_after_waiting_peer(void **state)
{
	struct world *w = *state;

	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("second"), on_done, w), 0);
	peer_waiting(3, NULL, 0, "first");
	publisher_lost();
	fake->h->on_published(fake->arg, fake->token, 0, "connection lost");
	EXPECT(w, "|first", "|second");
	assert_string_equal(w->mode, "local");
}

/* And when the echo does not come in time: the deadline delivers it locally,
 * after what the subscriber holds. */
static void
timed_out_publish_after_waiting_peer(void **state)
{
	struct world *w = *state;

	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("second"), on_done, w), 0);
	fake->h->on_published(fake->arg, fake->token, 1, "");
	peer_waiting(3, NULL, 0, "first");
	past_deadline(w);
	EXPECT(w, "|first", "|second");
	assert_string_equal(w->mode, "redis");
}

/* Up: a publish goes through Redis and comes back behind whatever the
 * subscriber holds, so nothing is read early (no drain per publish). */
static void
up_publish_does_not_drain(void **state)
{
	struct world *w = *state;

	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("second"), on_done, w), 0);
	assert_int_equal(fake->drains, 0);
	assert_int_equal(w->ngot, 0);
}

/* The subscription is what a meta record belongs to: once it is lost, a
 * payload can only come from a new subscription, and pairs with nothing. */
static void
sub_lost_ends_pairing(void **state)
{
	struct world *w = *state;
	char meta[DEDUP_META_MAX];
	size_t n = peer_meta(meta, 7, S("queue_update"));

	sub_meta(meta, n);
	fake->h->on_sub_lost(fake->arg);
	fake->up = 0;
	fake->h->on_mode(fake->arg, 0);
	fake->up = 1;
	fake->h->on_mode(fake->arg, 1);
	sub_payload(S("res"), S("raw"));
	EXPECT(w, "|raw");
}

/* A meta record pairs only with the next payload, and only on its resource. */
static void
pairs_with_next_payload_only(void **state)
{
	struct world *w = *state;
	char meta[DEDUP_META_MAX];
	size_t n = peer_meta(meta, 1, S("ev"));

	sub_meta(meta, n);
	sub_payload(S("other"), S("x"));      /* another resource: foreign, meta used up */
	sub_payload(S("res"), S("y"));
	sub_meta(meta, n);
	sub_payload(S("res"), S("z"));        /* paired */
	sub_payload(S("res"), S("w"));        /* the next one is foreign again */
	n = peer_meta(meta, 2, NULL, 0);
	sub_meta(meta, n);
	sub_payload(S("res"), S("v"));        /* a meta record without a name */
	sub_meta(S("garbage"));
	sub_payload(S("res"), S("u"));        /* an undecodable record pairs with nothing */
	EXPECT(w, "|x", "|y", "ev|z", "|w", "|v", "|u");
}

/* The id the publish script appends to the meta record (" i=<id>") travels with its
 * payload, for a peer's publish and for our own echo; a bad id is dropped, the event
 * is not. */
static void
meta_id_travels_with_payload(void **state)
{
	struct world *w = *state;
	char meta[DEDUP_META_MAX + 32];
	size_t n = peer_meta(meta, 7, S("queue_update"));

	memcpy(meta + n, " i=1764800000123456-42", 22);
	sub_meta(meta, n + 22);
	sub_payload(S("res"), S("a"));
	assert_string_equal(w->last_id, "1764800000123456-42");
	memcpy(meta + n, " i=NOT-AN-ID", 12);
	sub_meta(meta, n + 12);
	sub_payload(S("res"), S("b"));
	assert_string_equal(w->last_id, "");
	sub_payload(S("res"), S("c"));                 /* foreign: no id */
	assert_string_equal(w->last_id, "");
	/* our own publish: delivered from its echo, with the echo's id */
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("own"), on_done, w), 0);
	memcpy(meta, fake->meta, fake->meta_len);
	memcpy(meta + fake->meta_len, " i=1764800000123456-43", 22);
	sub_meta(meta, fake->meta_len + 22);
	sub_payload(S("res"), S("own"));
	assert_string_equal(w->last_id, "1764800000123456-43");
	EXPECT(w, "queue_update|a", "queue_update|b", "|c", "|own");
}

/* An echo's id goes to its own entry only: a publish that waited for a barrier
 * and is delivered first by that echo (older seq) gets none, or the stream would
 * take the echo itself for an id it already has. */
static void
echo_id_only_on_its_entry(void **state)
{
	struct world *w = *state;
	char meta[DEDUP_META_MAX + 32];

	publisher_lost();
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("waits"), on_done, w), 0);
	publisher_back();
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("own"), on_done, w), 0);
	memcpy(meta, fake->meta, fake->meta_len);
	memcpy(meta + fake->meta_len, " i=1764800000123456-43", 22);
	sub_meta(meta, fake->meta_len + 22);
	sub_payload(S("res"), S("own"));
	EXPECT(w, "|waits", "|own");
	assert_string_equal(w->ids[0], "");
	assert_string_equal(w->ids[1], "1764800000123456-43");
	fake->h->on_published(fake->arg, fake->barrier, 0, "Redis unavailable: test");
	assert_int_equal(w->done, 2);
}

/* Redis ran two own publishes (their ids known from the script's answers) whose echoes
 * are still on their way: hub_own_pending_first names the lowest id of the epoch asked
 * for, so a catch-up reset can stop below it; once delivered, an entry no longer counts. A
 * peer's publish is delivered with own = 0, ours with own = 1. */
static void
own_pending_first_ids(void **state)
{
	struct world *w = *state;
	uint64_t seq = 0;
	char meta1[DEDUP_META_MAX], meta2[DEDUP_META_MAX], pm[DEDUP_META_MAX];
	size_t n1, n2, pn;
	uint64_t t1, t2;

	assert_int_equal(hub_own_pending_first(w->hub, S("1764800000123456"), &seq), 0);
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("one"), on_done, w), 0);
	t1 = fake->token;
	memcpy(meta1, fake->meta, n1 = fake->meta_len);
	assert_int_equal(hub_publish(w->hub, S("res"), NULL, 0, S("two"), on_done, w), 0);
	t2 = fake->token;
	memcpy(meta2, fake->meta, n2 = fake->meta_len);
	/* answered, no id yet: nothing known */
	assert_int_equal(hub_own_pending_first(w->hub, S("1764800000123456"), &seq), 0);
	fake->h->on_event_id(fake->arg, t1, S("1764800000123456-7"));
	fake->h->on_published(fake->arg, t1, 1, "");
	fake->h->on_event_id(fake->arg, t2, S("1764800000123456-8"));
	fake->h->on_published(fake->arg, t2, 1, "");
	assert_int_equal(hub_own_pending_first(w->hub, S("1764800000123456"), &seq), 1);
	assert_int_equal(seq, 7);
	assert_int_equal(hub_own_pending_first(w->hub, S("1764800000999999"), &seq), 0);
	pn = peer_meta(pm, 3, NULL, 0);
	sub_meta(pm, pn);
	sub_payload(S("res"), S("peer"));
	sub_meta(meta1, n1);
	sub_payload(S("res"), S("one"));
	assert_int_equal(hub_own_pending_first(w->hub, S("1764800000123456"), &seq), 1);
	assert_int_equal(seq, 8);
	sub_meta(meta2, n2);
	sub_payload(S("res"), S("two"));
	assert_int_equal(hub_own_pending_first(w->hub, S("1764800000123456"), &seq), 0);
	EXPECT(w, "|peer", "|one", "|two");
	assert_int_equal(w->own[0], 0);
	assert_int_equal(w->own[1], 1);
	assert_int_equal(w->own[2], 1);
	assert_int_equal(w->done, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(own_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(publisher_lost_between_meta_and_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(publisher_lost_before_exec_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(peer_keeps_name_across_publisher_reconnect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(sub_lost_ends_pairing, setup, teardown),
		cmocka_unit_test_setup_teardown(local_publish_after_waiting_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(local_publish_waits_for_barrier, setup, teardown),
		cmocka_unit_test_setup_teardown(barrier_deadline_and_no_subscription, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(failed_publish_after_waiting_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(timed_out_publish_after_waiting_peer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(up_publish_does_not_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(pairs_with_next_payload_only, setup, teardown),
		cmocka_unit_test_setup_teardown(meta_id_travels_with_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(echo_id_only_on_its_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(own_pending_first_ids, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
