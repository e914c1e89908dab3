/* history — see history.h. */
#include "history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eventid.h"
#include "stream.h"

struct rec {
	struct rec *hnext;            /* hash chain */
	struct rec *prev, *next;      /* publish order, least recent first */
	uint64_t last;                /* seq of its last event */
	uint64_t lost;                /* highest seq of its events no longer kept, 0 none */
	uint64_t last_ms;             /* time of its last publish */
	struct history_ent *ring;
	uint32_t head, count, cap;
	uint8_t len;
	char name[];
};

struct history {
	uint32_t size;
	size_t cap_bytes;
	uint64_t ttl_ms;
	struct rec **tab;
	size_t nbuckets, nrecs, nevents;
	struct rec *oldest, *newest;
	uint64_t seq;                 /* last seq handed out */
	uint64_t floor;               /* highest seq of any record dropped whole */
	size_t bytes;
};

static size_t
msg_cost(const struct msg *m)
{
	return sizeof(*m) + m->len;
}

static size_t
rec_cost(const struct rec *r)
{
	return sizeof(*r) + r->len + (size_t)r->cap * sizeof(struct history_ent);
}

static size_t
hash(const char *s, size_t len)
{
	uint64_t x = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		x = (x ^ (unsigned char)s[i]) * 1099511628211ULL;
	return (size_t)(x ^ (x >> 29));
}

static struct rec **
slot(const struct history *h, const char *name, size_t len)
{
	struct rec **pp = &h->tab[hash(name, len) & (h->nbuckets - 1)];

	while (*pp != NULL && ((*pp)->len != len || memcmp((*pp)->name, name, len) != 0))
		pp = &(*pp)->hnext;
	return pp;
}

static struct rec *
find(const struct history *h, const char *name, size_t len)
{
	return *slot(h, name, len);
}

static void
order_del(struct history *h, struct rec *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		h->oldest = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		h->newest = r->prev;
	r->prev = r->next = NULL;
}

static void
order_add(struct history *h, struct rec *r)
{
	r->prev = h->newest;
	r->next = NULL;
	if (h->newest != NULL)
		h->newest->next = r;
	else
		h->oldest = r;
	h->newest = r;
}

static void
drop_oldest(struct history *h, struct rec *r)
{
	struct history_ent *e = &r->ring[r->head];

	if (e->seq > r->lost)
		r->lost = e->seq;
	h->bytes -= msg_cost(e->m);
	msg_unref(e->m);
	e->m = NULL;
	r->head = (r->head + 1) % r->cap;
	r->count--;
	h->nevents--;
}

static void
drop_events(struct history *h, struct rec *r)
{
	while (r->count > 0)
		drop_oldest(h, r);
}

/* Forgets r whole: from here on its resource answers with the floor. */
static void
rec_remove(struct history *h, struct rec *r)
{
	drop_events(h, r);
	if (r->last > h->floor)
		h->floor = r->last;
	*slot(h, r->name, r->len) = r->hnext;
	order_del(h, r);
	h->bytes -= rec_cost(r);
	h->nrecs--;
	free(r->ring);
	free(r);
}

static int
table_grow(struct history *h)
{
	size_t n = h->nbuckets * 2;
	struct rec **tab = calloc(n, sizeof(*tab));

	if (tab == NULL)
		return -1;
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct rec *r = h->tab[i], *next;

		for (; r != NULL; r = next) {
			size_t b = hash(r->name, r->len) & (n - 1);

			next = r->hnext;
			r->hnext = tab[b];
			tab[b] = r;
		}
	}
	free(h->tab);
	h->tab = tab;
	h->nbuckets = n;
	return 0;
}

static struct rec *
rec_new(struct history *h, const char *name, size_t len)
{
	struct rec *r, **pp;

	if (h->nrecs >= h->nbuckets)
		(void)table_grow(h);   /* failing, chains only get longer: still correct */
	r = calloc(1, sizeof(*r) + len);
	if (r == NULL)
		return NULL;
	memcpy(r->name, name, len);
	r->len = (uint8_t)len;
	r->lost = h->floor;   /* what happened before it existed is what the floor says */
	pp = slot(h, name, len);
	*pp = r;
	order_add(h, r);
	h->nrecs++;
	h->bytes += rec_cost(r);
	return r;
}

static int
ring_grow(struct history *h, struct rec *r)
{
	uint32_t ncap = r->cap ? r->cap * 2 : 4;
	struct history_ent *nr;

	if (ncap > h->size)
		ncap = h->size;
	nr = malloc(ncap * sizeof(*nr));
	if (nr == NULL)
		return -1;
	for (uint32_t i = 0; i < r->count; i++)
		nr[i] = r->ring[(r->head + i) % r->cap];
	h->bytes += (size_t)(ncap - r->cap) * sizeof(*nr);
	free(r->ring);
	r->ring = nr;
	r->cap = ncap;
	r->head = 0;
	return 0;
}

static int
expired(const struct history *h, const struct rec *r, uint64_t now_ms)
{
	return r->count > 0 && now_ms >= r->last_ms && now_ms - r->last_ms >= h->ttl_ms;
}

/* Least recently published first, whole; keep drops only from its own oldest end. */
static void
enforce_bytes(struct history *h, struct rec *keep)
{
	while (h->bytes > h->cap_bytes && h->oldest != NULL) {
		struct rec *victim = h->oldest;

		if (victim != keep) {
			rec_remove(h, victim);
			continue;
		}
		if (keep->count == 0)
			break;
		drop_oldest(h, keep);
	}
}

struct history *
history_new(uint32_t size, size_t bytes, uint64_t ttl_ms)
{
	struct history *h = NULL;

	if (size == 0) {
		errno = EINVAL;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto fail;
	h->size = size;
	h->cap_bytes = bytes;
	h->ttl_ms = ttl_ms;
	h->nbuckets = 64;
	h->tab = calloc(h->nbuckets, sizeof(*h->tab));
	if (h->tab == NULL)
		goto fail;
	return h;
fail:
	history_free(h);
	return NULL;
}

void
history_free(struct history *h)
{
	if (h == NULL)
		return;
	while (h->oldest != NULL)
		rec_remove(h, h->oldest);
	free(h->tab);
	free(h);
}

uint64_t
history_seq_next(struct history *h)
{
	return ++h->seq;
}

uint64_t
history_seq_last(const struct history *h)
{
	return h->seq;
}

int
history_add(struct history *h, const char *name, size_t len, uint64_t seq,
    struct msg *m, uint64_t now_ms)
{
	struct rec *r;

	if (len == 0 || len > 255) {
		errno = EINVAL;
		return -1;
	}
	r = find(h, name, len);
	if (r == NULL && (r = rec_new(h, name, len)) == NULL) {
		/* No record to say so: the floor does, for every resource without one. */
		if (seq > h->floor)
			h->floor = seq;
		errno = ENOMEM;
		return -1;
	}
	if (expired(h, r, now_ms))
		drop_events(h, r);
	r->last = seq;
	r->last_ms = now_ms;
	if (h->newest != r) {
		order_del(h, r);
		order_add(h, r);
	}
	if (r->count == h->size)
		drop_oldest(h, r);
	if (r->count == r->cap && ring_grow(h, r) == -1) {
		r->lost = seq;
		errno = ENOMEM;
		return -1;
	}
	r->ring[(r->head + r->count) % r->cap] = (struct history_ent){ seq, msg_ref(m) };
	r->count++;
	h->nevents++;
	h->bytes += msg_cost(m);
	enforce_bytes(h, r);
	return 0;
}

int
history_replay(struct history *h, const char *name, size_t len, uint64_t after,
    uint64_t now_ms, history_each_fn *fn, void *arg)
{
	struct rec *r = find(h, name, len);
	int n = 0;

	if (after > h->seq)
		return HISTORY_AHEAD;
	if (r != NULL && expired(h, r, now_ms))
		drop_events(h, r);
	if (after < (r != NULL ? r->lost : h->floor))
		return HISTORY_GONE;
	if (r == NULL)
		return 0;
	for (uint32_t i = 0; i < r->count; i++) {
		const struct history_ent *e = &r->ring[(r->head + i) % r->cap];

		if (!eventid_is_new(after, e->seq))
			continue;
		n++;
		if (fn(arg, e) == -1)
			break;
	}
	return n;
}

uint64_t
history_head(const struct history *h, const char *name, size_t len)
{
	const struct rec *r = find(h, name, len);

	return r != NULL ? r->last : h->seq;
}

size_t
history_expire(struct history *h, uint64_t now_ms)
{
	size_t n = 0;

	/* Publish order is ttl order: stop at the first resource still fresh. */
	for (struct rec *r = h->oldest; r != NULL; r = r->next) {
		if (r->count == 0)
			continue;
		if (!expired(h, r, now_ms))
			break;
		n += r->count;
		drop_events(h, r);
	}
	return n;
}

size_t
history_bytes(const struct history *h)
{
	return h->bytes;
}

size_t
history_events(const struct history *h)
{
	return h->nevents;
}

size_t
history_resources(const struct history *h)
{
	return h->nrecs;
}

static void
merge_emit(struct history_ent *out, size_t *n, const struct history_ent *e, uint64_t *delivered)
{
	if (!eventid_is_new(*delivered, e->seq))
		return;   /* delivered before, or the second copy of this one */
	out[(*n)++] = *e;
	*delivered = e->seq;
}

size_t
history_merge_held(struct history_ent *out, const struct history_ent *a, size_t na,
    const struct history_ent *b, size_t nb, uint64_t *delivered)
{
	size_t i = 0, j, n = 0;
	uint64_t first = UINT64_MAX;   /* seq of b's first positioned event */

	for (j = 0; j < nb && first == UINT64_MAX; j++)
		if (b[j].seq != 0)
			first = b[j].seq;
	while (i < na && a[i].seq < first)
		merge_emit(out, &n, &a[i++], delivered);
	for (j = 0; j < nb; j++) {
		if (b[j].seq == 0) {
			out[n++] = b[j];
			continue;
		}
		while (i < na && a[i].seq <= b[j].seq)
			merge_emit(out, &n, &a[i++], delivered);
		merge_emit(out, &n, &b[j], delivered);
	}
	while (i < na)
		merge_emit(out, &n, &a[i++], delivered);
	return n;
}
