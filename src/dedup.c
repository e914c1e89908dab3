/* dedup — see dedup.h. */
#include "dedup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- meta record ---- */

static int
is_origin_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

static int
is_event_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_' || c == '.' || c == ':';
}

static int
valid_origin(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > DEDUP_ORIGIN_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_origin_char((unsigned char)s[i]))
			return 0;
	return 1;
}

static int
valid_event(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > DEDUP_EVENT_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_event_char((unsigned char)s[i]))
			return 0;
	return 1;
}

size_t
dedup_meta_encode(char *buf, size_t size, const char *origin, size_t origin_len,
    uint64_t seq, const char *event, size_t event_len)
{
	char num[21];
	size_t n = 0, nlen = 0, need;
	uint64_t v = seq;

	if (!valid_origin(origin, origin_len) || seq == 0)
		return 0;
	if (event != NULL && !valid_event(event, event_len))
		return 0;
	do {
		num[sizeof(num) - 1 - nlen++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	need = 4 + origin_len + 3 + nlen + (event != NULL ? 3 + event_len : 0);
	if (need > size)
		return 0;
	memcpy(buf + n, "1 o=", 4);
	n += 4;
	memcpy(buf + n, origin, origin_len);
	n += origin_len;
	memcpy(buf + n, " s=", 3);
	n += 3;
	memcpy(buf + n, num + sizeof(num) - nlen, nlen);
	n += nlen;
	if (event != NULL) {
		memcpy(buf + n, " e=", 3);
		n += 3;
		memcpy(buf + n, event, event_len);
		n += event_len;
	}
	return n;
}

static int
parse_seq(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v == 0)
		return -1;
	*out = v;
	return 0;
}

int
dedup_meta_decode(const char *buf, size_t len, struct dedup_meta *m)
{
	const char *p = buf, *end = buf + len;
	int have_origin = 0, have_seq = 0;

	if (len < 2 || buf[0] != '1' || buf[1] != ' ')
		return -1;
	memset(m, 0, sizeof(*m));
	p += 2;
	for (;;) {
		const char *tok = p, *sp = memchr(p, ' ', (size_t)(end - p));
		const char *tend = sp != NULL ? sp : end;
		size_t tlen = (size_t)(tend - tok);

		if (tlen < 2 || tok[1] != '=')
			return -1;
		switch (tok[0]) {
		case 'o':
			if (have_origin || !valid_origin(tok + 2, tlen - 2))
				return -1;
			m->origin = tok + 2;
			m->origin_len = tlen - 2;
			have_origin = 1;
			break;
		case 's':
			if (have_seq || parse_seq(tok + 2, tlen - 2, &m->seq) == -1)
				return -1;
			have_seq = 1;
			break;
		case 'e':
			if (m->event != NULL || !valid_event(tok + 2, tlen - 2))
				return -1;
			m->event = tok + 2;
			m->event_len = tlen - 2;
			break;
		case 'i':
			if (m->id != NULL)
				return -1;
			if (tlen > 2) {
				m->id = tok + 2;
				m->id_len = tlen - 2;
			}
			break;
		default:
			break;   /* a later version's key: ignore it */
		}
		if (sp == NULL)
			break;
		p = sp + 1;
	}
	return have_origin && have_seq ? 0 : -1;
}

/* ---- ledger ---- */

#define RING_MIN 16      /* slots; a power of two */
#define OWNERS_MIN 16    /* buckets; a power of two */

/*
 * Entries live in ring[seq & (cap - 1)] for lo <= seq < hi: seqs are consecutive
 * and hi - lo <= cap, so no two share a slot. A finished entry leaves a NULL
 * slot; lo moves past NULL slots as the oldest entries finish, so ring[lo] is
 * the oldest live entry and, deadlines growing with seq, the next to expire.
 * Every entry below cursor is delivered: deliveries "in seq order" (an echo's
 * older entries, a lost subscription) start there. lo and cursor only move
 * forward, so the slots they pass are paid for once per entry.
 *
 * Owners: a chained hash of the entries that have one, so that dedup_cancel()
 * (a publisher that went away) visits only its own entries.
 */
struct dedup {
	struct dedup_entry **ring;
	size_t cap;                         /* 0 or a power of two >= RING_MIN */
	uint64_t lo, hi, cursor;
	uint64_t last_deadline;             /* of the newest entry */
	size_t count;
	struct dedup_entry **owners;        /* buckets */
	size_t nowners_cap, nowned;
	unsigned long long work;
	const struct dedup_ops *ops;
	void *arg;
};

struct dedup *
dedup_new(const struct dedup_ops *ops, void *arg)
{
	struct dedup *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->ops = ops;
	d->arg = arg;
	return d;
}

static void
entry_free(struct dedup_entry *e)
{
	free(e->resource);
	free(e->event);
	free(e->data);
	free(e);
}

static struct dedup_entry **
slot(const struct dedup *d, uint64_t seq)
{
	return &d->ring[seq & (d->cap - 1)];
}

void
dedup_free(struct dedup *d)
{
	uint64_t s;

	if (d == NULL)
		return;
	for (s = d->lo; s < d->hi; s++)
		if (*slot(d, s) != NULL)
			entry_free(*slot(d, s));
	free(d->ring);
	free(d->owners);
	free(d);
}

/* Move the live span into a ring of newcap slots (>= hi - lo). */
static int
ring_resize(struct dedup *d, size_t newcap)
{
	struct dedup_entry **ring = calloc(newcap, sizeof(*ring));
	uint64_t s;

	if (ring == NULL)
		return -1;
	for (s = d->lo; s < d->hi; s++) {
		ring[s & (newcap - 1)] = *slot(d, s);
		d->work++;
	}
	free(d->ring);
	d->ring = ring;
	d->cap = newcap;
	return 0;
}

static size_t
owner_hash(const void *owner, size_t cap)
{
	/* Fibonacci hashing of the address; owners are our own pointers, not input. */
	uint64_t h = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (cap - 1);
}

static void
owner_link(struct dedup_entry **bucket, struct dedup_entry *e)
{
	e->onext = *bucket;
	if (e->onext != NULL)
		e->onext->oprev = &e->onext;
	e->oprev = bucket;
	*bucket = e;
}

static void
owner_unlink(struct dedup *d, struct dedup_entry *e)
{
	if (e->oprev == NULL)
		return;
	*e->oprev = e->onext;
	if (e->onext != NULL)
		e->onext->oprev = e->oprev;
	e->onext = NULL;
	e->oprev = NULL;
	d->nowned--;
}

static int
owners_resize(struct dedup *d, size_t newcap)
{
	struct dedup_entry **b = calloc(newcap, sizeof(*b)), *e, *next;
	size_t i;

	if (b == NULL)
		return -1;
	for (i = 0; i < d->nowners_cap; i++) {
		for (e = d->owners[i]; e != NULL; e = next) {
			next = e->onext;
			owner_link(&b[owner_hash(e->owner, newcap)], e);
			d->work++;
		}
	}
	free(d->owners);
	d->owners = b;
	d->nowners_cap = newcap;
	return 0;
}

static char *
dup_bytes(const char *s, size_t len)
{
	char *p = malloc(len > 0 ? len : 1);

	if (p != NULL && len > 0)
		memcpy(p, s, len);
	return p;
}

struct dedup_entry *
dedup_add(struct dedup *d, uint64_t seq, uint64_t deadline_ms,
    const char *resource, size_t resource_len, const char *event, size_t event_len,
    const char *data, size_t len, void (*owner_fn)(void), void *owner)
{
	struct dedup_entry *e = NULL;

	if ((d->count > 0 && seq != d->hi) || (d->count == 0 && d->hi != 0 && seq < d->hi) ||
	    seq == UINT64_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if (d->count == 0)
		d->lo = d->cursor = seq;   /* hi is set below */
	else if (deadline_ms < d->last_deadline)
		deadline_ms = d->last_deadline;
	/* Room first, so that nothing can fail once the entry is made. */
	if ((d->cap == 0 || seq - d->lo + 1 > d->cap) &&
	    ring_resize(d, d->cap == 0 ? RING_MIN : d->cap * 2) == -1)
		goto nomem;
	if (owner != NULL && d->nowned + 1 > d->nowners_cap &&
	    owners_resize(d, d->nowners_cap == 0 ? OWNERS_MIN : d->nowners_cap * 2) == -1)
		goto nomem;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		goto nomem;
	e->seq = seq;
	e->deadline_ms = deadline_ms;
	e->owner_fn = owner_fn;
	e->owner = owner;
	e->exec = DEDUP_EXEC_PENDING;
	e->resource = dup_bytes(resource, resource_len);
	e->resource_len = resource_len;
	e->data = dup_bytes(data, len);
	e->len = len;
	if (event != NULL) {
		e->event = dup_bytes(event, event_len);
		e->event_len = event_len;
	}
	if (e->resource == NULL || e->data == NULL || (event != NULL && e->event == NULL))
		goto nomem;
	*slot(d, seq) = e;
	d->hi = seq + 1;
	d->last_deadline = deadline_ms;
	d->count++;
	if (owner != NULL) {
		owner_link(&d->owners[owner_hash(owner, d->nowners_cap)], e);
		d->nowned++;
	}
	return e;
nomem:
	if (e != NULL)
		entry_free(e);
	if (d->count == 0)
		d->lo = d->cursor = d->hi;
	errno = ENOMEM;
	return NULL;
}

static struct dedup_entry *
find(const struct dedup *d, uint64_t seq)
{
	if (d->count == 0 || seq < d->lo || seq >= d->hi)
		return NULL;
	return *slot(d, seq);
}

static void
unlink_entry(struct dedup *d, struct dedup_entry *e)
{
	*slot(d, e->seq) = NULL;
	d->count--;
	owner_unlink(d, e);
	while (d->lo < d->hi && *slot(d, d->lo) == NULL) {
		d->lo++;
		d->work++;
	}
	/* Give memory back after a stall; a quarter full before halving keeps the
	 * resizes amortized O(1). A failed shrink just keeps the bigger table. */
	if (d->cap > RING_MIN && d->hi - d->lo <= d->cap / 4)
		ring_resize(d, d->cap / 2);
	if (d->nowners_cap > OWNERS_MIN && d->nowned <= d->nowners_cap / 4)
		owners_resize(d, d->nowners_cap / 2);
}

/*
 * THE place where a publish reaches this process's streams. Exactly-once argument:
 *
 * Let P be a publish of this process answered after going to Redis; it has entry E
 * (seq S, never reused: S counts up from 1 and the origin is random per process,
 * so no other process and no earlier run of this one can produce (origin, S)).
 *
 * At most once locally. P reaches local streams only through this function:
 * the subscriber's copy of P carries (origin, S) in its meta record and is handed
 * to dedup_echo(), which delivers only while E is in the ledger with
 * delivered == 0; every other path (Redis error, deadline, subscriber lost) also
 * goes through here. This function sets delivered before anything else can run,
 * and E leaves the ledger only after that (finish() requires delivered). A late
 * echo — after a timeout, after a reconnect re-subscribed, after the entry
 * finished — finds E either delivered or gone, and is dropped. A copy without
 * its meta cannot happen for our own publishes: the meta is in the same MULTI/EXEC
 * just before the payload, and one PSUBSCRIBE confirms both patterns at once,
 * so the subscriber sees both or neither.
 *
 * At least once locally. E enters the ledger before its commands are written.
 * Every way out of the ledger goes through finish(), and every path to finish()
 * delivers first: the echo (dedup_echo), a Redis refusal or lost publisher
 * (dedup_exec !ok), the deadline (dedup_expire), the subscription lost
 * (dedup_sub_lost: nothing in flight can come back on a subscription that is gone).
 *
 * Other processes: Redis delivers P's payload to each subscription once, and a
 * process has one subscription at a time (the old context is freed before a new
 * one is made), so each gets it at most once; when the answer is "redis" (EXEC
 * succeeded or the echo proves Redis ran it), every process subscribed at that
 * moment gets it. An answer "local" means Redis refused it, or we could not tell
 * in time: other processes then get it at most once, as the contract says.
 */
static void
deliver(struct dedup *d, struct dedup_entry *e)
{
	if (e->delivered)
		return;
	e->delivered = 1;
	e->delivered_count = d->ops->deliver(d->arg, e);
}

/* Finish e when its answer is known; e must be delivered first. Returns 1 if e
 * was finished (and is freed). */
static int
try_finish(struct dedup *d, struct dedup_entry *e)
{
	enum dedup_outcome how;

	if (!e->delivered)
		return 0;
	if (e->echoed || e->exec == DEDUP_EXEC_OK)
		how = DEDUP_REDIS;
	else if (e->exec == DEDUP_EXEC_FAILED)
		how = DEDUP_FAILED;
	else if (e->timed_out)
		how = DEDUP_TIMEOUT;
	else
		return 0;
	unlink_entry(d, e);
	d->ops->finish(d->arg, e, how, how == DEDUP_FAILED ? e->error : "");
	entry_free(e);
	return 1;
}

/* Deliver, in seq order, every undelivered entry below seq (and below hi as it
 * is at each step). The callbacks may add entries and finish only the entry
 * they are given; a finish may move lo past the cursor, over slots that are
 * all empty, so the cursor catches up with lo after each step. */
static void
deliver_below(struct dedup *d, uint64_t seq)
{
	if (d->cursor < d->lo)
		d->cursor = d->lo;
	while (d->cursor < seq && d->cursor < d->hi) {
		struct dedup_entry *e = *slot(d, d->cursor);

		d->work++;
		if (e != NULL && !e->delivered) {
			deliver(d, e);
			try_finish(d, e);
		}
		d->cursor++;
		if (d->cursor < d->lo)
			d->cursor = d->lo;
	}
}

int
dedup_echo(struct dedup *d, uint64_t seq)
{
	struct dedup_entry *e = find(d, seq);

	if (e == NULL)
		return 0;
	if (e->delivered) {
		/* Delivered locally already (subscriber lost, deadline): drop this copy,
		 * but it proves Redis ran the publish, which settles the answer. */
		e->echoed = 1;
		try_finish(d, e);
		return 0;
	}
	/* Own publishes reach Redis in seq order on one publisher connection; one
	 * older than seq that has not come back yet was skipped by this subscription
	 * (it ran before the subscription began, or it will never run). Delivering
	 * it now keeps local order; its late copy, if any, is then dropped. */
	deliver_below(d, seq);
	e = find(d, seq);   /* callbacks above cannot remove it, but stay safe */
	if (e == NULL || e->delivered)
		return 0;
	e->echoed = 1;
	deliver(d, e);
	try_finish(d, e);
	return 1;
}

void
dedup_exec(struct dedup *d, uint64_t seq, int ok, const char *err)
{
	struct dedup_entry *e = find(d, seq);

	if (e == NULL || e->exec != DEDUP_EXEC_PENDING)
		return;
	if (ok) {
		e->exec = DEDUP_EXEC_OK;
	} else {
		e->exec = DEDUP_EXEC_FAILED;
		snprintf(e->error, sizeof(e->error), "%s", err != NULL ? err : "");
		deliver(d, e);
	}
	try_finish(d, e);
}

void
dedup_set_id(struct dedup *d, uint64_t seq, const char *id, size_t len)
{
	struct dedup_entry *e = find(d, seq);

	if (e == NULL || len > sizeof(e->id))
		return;
	memcpy(e->id, id, len);
	e->id_len = (unsigned char)len;
}

void
dedup_each_answered(struct dedup *d, void (*fn)(void *arg, const struct dedup_entry *e),
    void *arg)
{
	/* Below the cursor everything is delivered. Undelivered entries past it are those
	 * whose echo is on its way (few: a round trip's worth) until the first one Redis
	 * has not answered yet; the delivered ones among them (a refused publish is
	 * delivered at once) are skipped. */
	for (uint64_t seq = d->cursor < d->lo ? d->lo : d->cursor; seq < d->hi; seq++) {
		const struct dedup_entry *e = *slot(d, seq);

		d->work++;
		if (e == NULL || e->delivered)
			continue;
		if (e->exec == DEDUP_EXEC_PENDING)
			return;
		if (e->exec == DEDUP_EXEC_OK)
			fn(arg, e);
	}
}

void
dedup_expire(struct dedup *d, uint64_t now_ms)
{
	/* The oldest entry expires first (deadlines grow with seq). A timed-out
	 * entry is delivered and then always finishes, so each pass of this loop
	 * takes one entry out; callbacks may add entries, with later deadlines. */
	while (d->count > 0) {
		struct dedup_entry *e = *slot(d, d->lo);

		d->work++;
		if (e->deadline_ms > now_ms)
			return;
		e->timed_out = 1;
		deliver(d, e);
		if (!try_finish(d, e))
			return;   /* cannot happen: timed out and delivered finishes */
	}
}

void
dedup_sub_lost(struct dedup *d)
{
	/* hi as it is at each step: entries added by callbacks go too. */
	deliver_below(d, UINT64_MAX);
}

void
dedup_cancel(struct dedup *d, void *owner)
{
	struct dedup_entry *e, *next;

	if (owner == NULL || d->nowned == 0)
		return;
	for (e = d->owners[owner_hash(owner, d->nowners_cap)]; e != NULL; e = next) {
		next = e->onext;
		d->work++;
		if (e->owner == owner) {
			e->cancelled = 1;
			e->owner = NULL;
			owner_unlink(d, e);
		}
	}
}

uint64_t
dedup_next_deadline(const struct dedup *d)
{
	/* Nothing timed out stays in the ledger (see dedup_expire()). */
	return d->count > 0 ? (*slot(d, d->lo))->deadline_ms : UINT64_MAX;
}

int
dedup_is_undelivered(const struct dedup *d, uint64_t seq)
{
	const struct dedup_entry *e = find(d, seq);

	return e != NULL && !e->delivered;
}

size_t
dedup_count(const struct dedup *d)
{
	return d->count;
}

unsigned long long
dedup_work(const struct dedup *d)
{
	return d->work;
}
