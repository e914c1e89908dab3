/* resume — see resume.h. */
#include "resume.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ev.h"
#include "eventid.h"
#include "history.h"
#include "hub.h"
#include "log.h"
#include "redis.h"
#include "registry.h"
#include "sse.h"
#include "stream.h"

#define EPOCH_LEN 16
#define SWEEP_MAX_MS 60000   /* expired history is freed at least this often */
#define RESOURCE_MAX 128
#define READ_MAX 1000        /* events per Redis history read; more: the stream is cut */

enum mode { MODE_OFF, MODE_LOCAL, MODE_REDIS };

/* A resource's position in multi-server mode: the id of the last event its streams got
 * (or the head read when its first stream opened), for catching up after a loss. */
struct pos {
	struct pos *next;
	char epoch[EVENTID_EPOCH_MAX + 1];
	size_t epoch_len;
	uint64_t seq;
	size_t len;
	char name[];
};

/* An event set aside for a held stream, with its id's epoch and seq (epoch_len 0: no id,
 * a foreign or local-fallback event): a read that finds a new epoch merges by it too. */
struct held {
	struct msg *m;
	uint64_t seq;
	uint8_t epoch_len;
	uint8_t own;            /* this process's publish: a reset must not cover it */
	char epoch[EVENTID_EPOCH_MAX];
};

enum wait_state { W_READ, W_FILTER };

/*
 * A stream whose start (or catch-up) waits for a history read (W_READ), or whose replay
 * is out and which still drops live events it already got from the replay (W_FILTER:
 * their pub/sub copies may arrive after the read's answer, on the other connection).
 * stream NULL: a head probe, which only learns a resource's position.
 */
struct wait {
	struct wait *prev, *next;   /* in rs->list[state]: send order, so deadline order */
	struct wait *hnext;         /* in rs->wtab, by stream (head probes are not) */
	void *stream;
	enum wait_state state;
	uint64_t token;
	uint64_t deadline_ms;
	char resource[RESOURCE_MAX];
	size_t resource_len;
	char epoch[EVENTID_EPOCH_MAX + 1];   /* of the position; "" when the id was malformed */
	size_t epoch_len;
	uint64_t after;                      /* position: last seq this stream has */
	struct held *held;
	size_t nheld, capheld, held_bytes;
	int overflow;                        /* held events passed the queue bound */
	int catchup;                         /* after a lost subscription, not a client's id */
	int again;                           /* the subscription was lost during the read */
	/* W_FILTER after a catch-up: own publishes it left out while the ledger had not
	 * delivered them yet; the ledger delivers them later, below the position. */
	uint64_t *expect;
	size_t nexpect;
};

struct resume {
	struct ev_loop *loop;
	const struct conf *conf;
	struct hub *hub;
	struct registry *reg;
	const struct resume_ops *ops;
	void *ops_arg;
	enum mode mode;
	struct history *hist;   /* MODE_LOCAL */
	struct ev_timer sweep;
	uint64_t sweep_ms;
	int sweep_lost;         /* see sweep_arm */
	char epoch[EPOCH_LEN + 1];
	/* MODE_REDIS: waits by state (W_READ ones in the order their reads were sent,
	 * which is the order of their deadlines and of Redis's answers), and by stream */
	struct {
		struct wait *head, *tail;
	} list[2];
	struct wait **wtab;
	size_t wbuckets, nstreams;
	struct ev_timer deadline;
	uint64_t next_token;
	struct pos **pos_tab;
	size_t pos_buckets;
};

/* ---- framing ---- */

static struct msg *
frame(const char *id, size_t id_len, const char *event, size_t event_len,
    const char *data, size_t len)
{
	struct msg *m = msg_new(sse_event_id_size(id, id_len, event, event_len, data, len), 0);

	if (m != NULL)
		sse_event_id_encode(m->data, id, id_len, event, event_len, data, len);
	return m;
}

static struct msg *
reset_msg(const char *reason, const char *epoch, size_t epoch_len, uint64_t head)
{
	char id[EVENTID_MAX + 1], data[64];
	size_t id_len = epoch_len > 0 ? eventid_format(id, sizeof(id), epoch, epoch_len, head) : 0;
	int dlen = snprintf(data, sizeof(data), "{\"reason\":\"%s\"}", reason);

	return frame(id, id_len, "reset", 5, data, (size_t)dlen);
}

/* ---- single-server mode ---- */

/* A new epoch per process start: an id from before a restart names a history that no
 * longer exists, and is told so rather than taken for a position in this one. */
static void
make_epoch(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[EPOCH_LEN / 2];

	if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
		    ((uint64_t)getpid() << 40);
		for (size_t i = 0; i < sizeof(b); i++) {
			x ^= x >> 33;
			x *= 0xff51afd7ed558ccdULL;
			b[i] = (unsigned char)(x >> 56);
		}
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[EPOCH_LEN] = '\0';
}

static int
push_reset_local(struct resume *rs, void *stream, const char *resource, size_t resource_len,
    const char *reason)
{
	struct msg *m = reset_msg(reason, rs->epoch, EPOCH_LEN,
	    history_head(rs->hist, resource, resource_len));
	int r;

	if (m == NULL)
		return RESUME_FAILED;
	log_debug("resume on %.*s: reset (%s)", (int)resource_len, resource, reason);
	r = rs->ops->push(rs->ops_arg, stream, m, 1);
	msg_unref(m);
	return r == 0 ? RESUME_LIVE : RESUME_FAILED;
}

struct replay {
	struct resume *rs;
	void *stream;
	int pushed;
	int stopped;
	int dead;
};

static int
replay_one(void *arg, const struct history_ent *e)
{
	struct replay *rp = arg;
	int r = rp->rs->ops->push(rp->rs->ops_arg, rp->stream, e->m, rp->pushed == 0);

	if (r != 0) {
		rp->stopped = 1;
		rp->dead = r == -2;
		return -1;
	}
	rp->pushed++;
	return 0;
}

static int
start_local(struct resume *rs, void *stream, const char *resource, size_t resource_len,
    const char *last_id, size_t last_id_len)
{
	struct replay rp = { rs, stream, 0, 0, 0 };
	struct eventid id;
	int n;

	if (eventid_parse(&id, last_id, last_id_len) == -1)
		return push_reset_local(rs, stream, resource, resource_len, "malformed");
	if (!eventid_same_epoch(&id, rs->epoch, EPOCH_LEN))
		return push_reset_local(rs, stream, resource, resource_len, "epoch");
	n = history_replay(rs->hist, resource, resource_len, id.seq, ev_now_ms(rs->loop),
	    replay_one, &rp);
	if (n == HISTORY_GONE)
		return push_reset_local(rs, stream, resource, resource_len, "gone");
	if (n == HISTORY_AHEAD)
		return push_reset_local(rs, stream, resource, resource_len, "malformed");
	log_debug("resume on %.*s after %.*s: %d events replayed%s", (int)resource_len, resource,
	    (int)last_id_len, last_id, rp.pushed, rp.stopped ? ", the rest next time" : "");
	if (rp.dead)
		return RESUME_FAILED;
	return rp.stopped ? RESUME_CUT : RESUME_LIVE;
}

static void
on_sweep(struct ev_loop *loop, struct ev_timer *t, void *arg);

/* ---- multi-server mode: positions ---- */

static size_t
name_hash(const char *s, size_t len)
{
	uint64_t x = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		x = (x ^ (unsigned char)s[i]) * 1099511628211ULL;
	return (size_t)(x ^ (x >> 29));
}

static struct pos **
pos_slot(struct resume *rs, const char *name, size_t len)
{
	struct pos **pp = &rs->pos_tab[name_hash(name, len) % rs->pos_buckets];

	while (*pp != NULL && ((*pp)->len != len || memcmp((*pp)->name, name, len) != 0))
		pp = &(*pp)->next;
	return pp;
}

/* Moves a resource's position forward (or to a new epoch); creates it if absent. */
static void
pos_set(struct resume *rs, const char *name, size_t len, const char *epoch, size_t epoch_len,
    uint64_t seq, int only_if_absent)
{
	struct pos **pp = pos_slot(rs, name, len), *p = *pp;

	if (p != NULL && only_if_absent)
		return;
	if (p == NULL) {
		p = calloc(1, sizeof(*p) + len);
		if (p == NULL)
			return;   /* no catch-up for it: logged by nobody, costs only that */
		memcpy(p->name, name, len);
		p->len = len;
		*pp = p;
	} else if (p->epoch_len == epoch_len && memcmp(p->epoch, epoch, epoch_len) == 0 &&
	    seq <= p->seq) {
		return;
	}
	memcpy(p->epoch, epoch, epoch_len);
	p->epoch_len = epoch_len;
	p->seq = seq;
}

/* Forgets the positions of resources nobody listens to any more. */
static void
pos_prune(struct resume *rs)
{
	for (size_t b = 0; b < rs->pos_buckets; b++) {
		struct pos **pp = &rs->pos_tab[b];

		while (*pp != NULL) {
			struct pos *p = *pp;

			if (registry_find(rs->reg, p->name, p->len) == NULL) {
				*pp = p->next;
				free(p);
			} else {
				pp = &p->next;
			}
		}
	}
}

/* ---- multi-server mode: held streams ---- */

static size_t
wait_bucket(const struct resume *rs, const void *stream)
{
	uint64_t x = (uint64_t)(uintptr_t)stream * 0x9e3779b97f4a7c15ULL;

	return (size_t)(x >> 32) & (rs->wbuckets - 1);
}

static struct wait *
wait_find(struct resume *rs, void *stream)
{
	if (rs->wbuckets == 0)
		return NULL;
	for (struct wait *w = rs->wtab[wait_bucket(rs, stream)]; w != NULL; w = w->hnext)
		if (w->stream == stream)
			return w;
	return NULL;
}

/* Doubles the table by stream when it gets full; without memory it stays as it is
 * (chains grow longer, nothing is lost). */
static void
wait_tab_grow(struct resume *rs)
{
	size_t nb = rs->wbuckets ? rs->wbuckets * 2 : 64, ob = rs->wbuckets;
	struct wait **nt = calloc(nb, sizeof(*nt)), **ot = rs->wtab;

	if (nt == NULL)
		return;
	rs->wtab = nt;
	rs->wbuckets = nb;
	for (size_t b = 0; b < ob; b++) {
		struct wait *w, *next;

		for (w = ot[b]; w != NULL; w = next) {
			size_t k = wait_bucket(rs, w->stream);

			next = w->hnext;
			w->hnext = nt[k];
			nt[k] = w;
		}
	}
	free(ot);
}

/* Puts w at the tail of the list of its state and, with a stream, in the table. */
static void
wait_link(struct resume *rs, struct wait *w)
{
	w->next = NULL;
	w->prev = rs->list[w->state].tail;
	if (w->prev != NULL)
		w->prev->next = w;
	else
		rs->list[w->state].head = w;
	rs->list[w->state].tail = w;
	if (w->stream != NULL) {
		size_t k;

		if (rs->nstreams >= rs->wbuckets)
			wait_tab_grow(rs);
		k = wait_bucket(rs, w->stream);
		w->hnext = rs->wtab[k];
		rs->wtab[k] = w;
		rs->nstreams++;
	}
}

static void
wait_unlink(struct resume *rs, struct wait *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		rs->list[w->state].head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		rs->list[w->state].tail = w->prev;
	w->prev = w->next = NULL;
	if (w->stream != NULL) {
		struct wait **pp = &rs->wtab[wait_bucket(rs, w->stream)];

		while (*pp != w)
			pp = &(*pp)->hnext;
		*pp = w->hnext;
		w->hnext = NULL;
		rs->nstreams--;
	}
}

static void
wait_free(struct wait *w)
{
	for (size_t i = 0; i < w->nheld; i++)
		msg_unref(w->held[i].m);
	free(w->held);
	free(w->expect);
	free(w);
}

static void
deadline_arm(struct resume *rs)
{
	uint64_t now = ev_now_ms(rs->loop);

	struct wait *w = rs->list[W_READ].head;

	if (w == NULL)
		ev_timer_stop(rs->loop, &rs->deadline);
	else if (ev_timer_start(rs->loop, &rs->deadline, w->deadline_ms > now ?
	    w->deadline_ms - now : 0) == -1)
		log_warn("history: the read deadline timer could not be armed: %s",
		    strerror(errno));
}

static void on_read(void *arg, uint64_t token, const struct redis_history *h);

/*
 * A new wait for stream (NULL: a head probe) at position epoch/after. With share NULL its
 * read is sent; else it takes share's answer (a wait of the same resource and position
 * whose read went just before, nothing sent in between): a catch-up of many streams of
 * one resource costs Redis one read. NULL when it could not be (not in multi-server
 * mode, ENOMEM): nothing is left behind.
 */
static struct wait *
wait_start_shared(struct resume *rs, void *stream, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after, const struct wait *share)
{
	struct wait *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->stream = stream;
	w->state = W_READ;
	w->token = share != NULL ? share->token : ++rs->next_token;
	w->deadline_ms = share != NULL ? share->deadline_ms :
	    ev_now_ms(rs->loop) + (uint64_t)rs->conf->redis.publish_timeout_ms;
	memcpy(w->resource, resource, resource_len);
	w->resource_len = resource_len;
	memcpy(w->epoch, epoch, epoch_len);
	w->epoch_len = epoch_len;
	w->after = after;
	if (share == NULL && hub_history_read(rs->hub, resource, resource_len, epoch, epoch_len,
	    after, stream != NULL ? (unsigned)(rs->conf->history_size < READ_MAX ?
	    rs->conf->history_size : READ_MAX) : 0, on_read, rs, w->token) == -1) {
		free(w);
		return NULL;
	}
	wait_link(rs, w);
	if (stream != NULL)
		rs->ops->hold(rs->ops_arg, stream, 1);
	deadline_arm(rs);
	return w;
}

/* Pushes in order; returns RESUME_LIVE, RESUME_CUT (bound) or RESUME_FAILED (died). */
static struct wait *
wait_start(struct resume *rs, void *stream, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after)
{
	return wait_start_shared(rs, stream, resource, resource_len, epoch, epoch_len, after,
	    NULL);
}

static int
push_all(struct resume *rs, void *stream, struct msg **ms, size_t n, int *pushed)
{
	for (size_t i = 0; i < n; i++) {
		int r = rs->ops->push(rs->ops_arg, stream, ms[i], *pushed == 0);

		if (r == -2)
			return RESUME_FAILED;
		if (r == -1)
			return RESUME_CUT;
		(*pushed)++;
	}
	return RESUME_LIVE;
}

/*
 * Ends a W_READ wait: what the stream gets first (a replay or a reset), then the held
 * live events after the new position, merged by position; then the stream is live
 * again (W_FILTER while copies of replayed events may still come). h NULL: unavailable.
 */
static void
wait_complete(struct resume *rs, struct wait *w, const struct redis_history *h)
{
	struct history_ent *replay = NULL, *held = NULL, *out = NULL;
	struct msg **order = NULL;
	uint64_t *expect = NULL;
	size_t nreplay = 0, nheld = 0, nout = 0, nexpect = 0;
	const char *reason = NULL;
	uint64_t pos = w->after, head = 0;
	char hepoch[EVENTID_EPOCH_MAX + 1] = "";
	size_t hepoch_len = 0;
	int how = RESUME_LIVE, pushed = 0, truncated = 0;
	void *stream = w->stream;

	wait_unlink(rs, w);
	if (h != NULL && h->epoch != NULL && eventid_epoch_is_valid(h->epoch, h->epoch_len)) {
		memcpy(hepoch, h->epoch, h->epoch_len);
		hepoch_len = h->epoch_len;
		head = h->head;
	}
	if (stream == NULL) {   /* a head probe */
		if (hepoch_len > 0)
			pos_set(rs, w->resource, w->resource_len, hepoch, hepoch_len, head, 1);
		wait_free(w);
		deadline_arm(rs);
		return;
	}
	rs->ops->hold(rs->ops_arg, stream, 0);
	if (h == NULL && w->catchup) {
		/* A catch-up whose read got no answer (Redis went away again, or is slow): the
		 * stream never asked for a position, so no reset; what was held goes out as it
		 * came, and the next resync catches up again. */
		for (size_t i = 0; i < w->nheld && how == RESUME_LIVE; i++)
			how = push_all(rs, stream, &w->held[i].m, 1, &pushed);
		if (how == RESUME_LIVE && w->overflow)
			how = RESUME_CUT;
		log_debug("catch-up on %.*s after %llu: history not read, %zu held, %s",
		    (int)w->resource_len, w->resource, (unsigned long long)w->after, w->nheld,
		    how == RESUME_LIVE ? "live" : how == RESUME_CUT ? "cut" : "failed");
		wait_free(w);
		deadline_arm(rs);
		if (how != RESUME_LIVE)
			rs->ops->finish(rs->ops_arg, stream, how);
		return;
	}
	if (h == NULL)
		reason = "unavailable";
	else if (hepoch_len == 0)
		reason = w->epoch_len > 0 ? "epoch" : "malformed";
	else if (w->epoch_len == 0)
		reason = "malformed";
	else if (w->epoch_len != hepoch_len || memcmp(w->epoch, hepoch, hepoch_len) != 0)
		reason = "epoch";
	else if (w->after > head)
		reason = "malformed";
	else if (h->first > 0 ? w->after + 1 < h->first : w->after < head)
		reason = "gone";
	order = calloc(h != NULL ? h->n + w->nheld + 1 : w->nheld + 1, sizeof(*order));
	replay = calloc(h != NULL ? h->n + 1 : 1, sizeof(*replay));
	held = calloc(w->nheld + 1, sizeof(*held));
	out = calloc((h != NULL ? h->n : 0) + w->nheld + 1, sizeof(*out));
	expect = calloc(h != NULL ? h->n + 1 : 1, sizeof(*expect));
	if (order == NULL || replay == NULL || held == NULL || out == NULL ||
	    expect == NULL) {
		how = RESUME_FAILED;
		goto done;
	}
	if (reason != NULL) {
		struct msg *m;
		uint64_t cap = head, first;

		/* The reset covers the history up to its id. Not this process's own publishes,
		 * though: the ledger delivers each to every local stream once (held already, or
		 * its echo still to come), and a read that ran after one (an EVALSHA sent again
		 * after NOSCRIPT runs behind later commands) must not drop it. The reset stops
		 * below the first of them; what lies between is delivered as it comes. */
		for (size_t i = 0; i < w->nheld && hepoch_len > 0; i++) {
			const struct held *e = &w->held[i];

			if (e->own && e->seq > 0 && e->seq <= cap && e->epoch_len == hepoch_len &&
			    memcmp(e->epoch, hepoch, hepoch_len) == 0)
				cap = e->seq - 1;
		}
		if (hepoch_len > 0 && hub_own_pending_first(rs->hub, hepoch, hepoch_len, &first) &&
		    first > 0 && first <= cap)
			cap = first - 1;
		head = cap;
		m = reset_msg(reason, hepoch, hepoch_len, head);
		if (m == NULL) {
			how = RESUME_FAILED;
			goto done;
		}
		log_debug("resume on %.*s: reset (%s)", (int)w->resource_len, w->resource, reason);
		how = push_all(rs, stream, &m, 1, &pushed);
		msg_unref(m);
		if (how != RESUME_LIVE)
			goto done;
		/* From here the stream is at the head of the history Redis has now: the reset
		 * covers every event up to it, so none of those follows it (held ones are
		 * merged below the head, late live copies filtered), and no id comes twice. */
		pos = h != NULL && hepoch_len > 0 ? head : 0;
		if (hepoch_len > 0) {
			memcpy(w->epoch, hepoch, hepoch_len);
			w->epoch_len = hepoch_len;
		} else {
			w->epoch_len = 0;
		}
	} else {
		char id[EVENTID_MAX + 1];

		for (size_t i = 0; i < h->n; i++) {
			const struct redis_history_item *it = &h->items[i];
			size_t id_len = eventid_format(id, sizeof(id), hepoch, hepoch_len, it->seq);

			/* The ledger delivered this process's own publishes to the streams it had
			 * then, echo or not (a late or lost echo, a timeout): a catch-up must not
			 * deliver them again. One whose echo is still on its way (published after
			 * the subscription came back, its echo behind this answer) the ledger
			 * delivers later: the filter below must let it through. */
			if (w->catchup && hub_meta_is_own(rs->hub, it->meta, it->meta_len)) {
				if (hub_meta_is_pending(rs->hub, it->meta, it->meta_len))
					expect[nexpect++] = it->seq;
				continue;
			}

			replay[nreplay].seq = it->seq;
			replay[nreplay].m = frame(id, id_len, it->event, it->event_len, it->data, it->len);
			if (replay[nreplay].m == NULL) {
				how = RESUME_FAILED;
				goto done;
			}
			nreplay++;
		}
		/* A full read that stops short of the head: the rest comes on the next connection. */
		truncated = h->n > 0 && h->items[h->n - 1].seq < head &&
		    h->n >= (size_t)(rs->conf->history_size < READ_MAX ? rs->conf->history_size :
		    READ_MAX);
	}
	/* Held live events keep their arrival order, those of the history's epoch merged
	 * with the replay by position; the others (no id, another epoch) have no position
	 * (seq 0): see history_merge_held. */
	for (size_t i = 0; i < w->nheld; i++) {
		const struct held *e = &w->held[i];
		int placed = e->epoch_len > 0 && w->epoch_len > 0 &&
		    e->epoch_len == w->epoch_len && memcmp(e->epoch, w->epoch, e->epoch_len) == 0;

		held[nheld++] = (struct history_ent){ placed ? e->seq : 0, e->m };
	}
	if (truncated)
		nheld = 0;   /* the replay does not reach them: the browser comes back */
	nout = history_merge_held(out, replay, nreplay, held, nheld, &pos);
	for (size_t i = 0; i < nout; i++)
		order[i] = out[i].m;
	how = push_all(rs, stream, order, nout, &pushed);
	if (how == RESUME_LIVE && (truncated || w->overflow))
		how = RESUME_CUT;
	log_debug("resume on %.*s after %llu: %zu replayed, %zu held, %s", (int)w->resource_len,
	    w->resource, (unsigned long long)w->after, nreplay, w->nheld,
	    how == RESUME_LIVE ? "live" : how == RESUME_CUT ? "cut" : "failed");
done:
	for (size_t i = 0; i < nreplay; i++)
		msg_unref(replay[i].m);
	free(replay);
	free(held);
	free(out);
	free(order);
	if (how == RESUME_LIVE && w->epoch_len > 0 && w->again) {
		/* What was published after the read's snapshot while the subscription was down
		 * never came live: catch up once more from here. */
		struct wait *next;
		char res[RESOURCE_MAX], ep[EVENTID_EPOCH_MAX + 1];
		size_t rlen = w->resource_len, elen = w->epoch_len;

		memcpy(res, w->resource, rlen);
		memcpy(ep, w->epoch, elen);
		wait_free(w);
		next = wait_start(rs, stream, res, rlen, ep, elen, pos);
		if (next != NULL)
			next->catchup = 1;
		pos_set(rs, res, rlen, ep, elen, pos, 0);
	} else if (how == RESUME_LIVE && w->epoch_len > 0 && nreplay == 0 && reason == NULL) {
		/* Nothing was replayed and no reset sent, so no copy can come twice: live at
		 * once. A filter up to pos would drop what this stream never got (own
		 * publishes whose echo is still on its way, below the position). */
		pos_set(rs, w->resource, w->resource_len, w->epoch, w->epoch_len, pos, 0);
		wait_free(w);
	} else if (how == RESUME_LIVE && w->epoch_len > 0) {
		/* Copies of what the replay sent, or of what a reset covers (its head and
		 * below), may still arrive live: drop them. */
		for (size_t i = 0; i < w->nheld; i++)
			msg_unref(w->held[i].m);
		free(w->held);   /* a filter holds nothing: only the position and the epoch */
		w->held = NULL;
		w->nheld = w->capheld = w->held_bytes = 0;
		w->expect = expect;
		w->nexpect = nexpect;
		expect = NULL;
		w->state = W_FILTER;
		w->after = pos;
		wait_link(rs, w);
		rs->ops->hold(rs->ops_arg, stream, 1);
		pos_set(rs, w->resource, w->resource_len, w->epoch, w->epoch_len, pos, 0);
	} else {
		wait_free(w);
	}
	free(expect);
	deadline_arm(rs);
	if (how != RESUME_LIVE)
		rs->ops->finish(rs->ops_arg, stream, how);
}

static void
on_read(void *arg, uint64_t token, const struct redis_history *h)
{
	struct resume *rs = arg;

	/* Answers come in the order the reads were sent: the first W_READs (those sharing
	 * this read, all linked together), but for reads whose deadline passed or whose
	 * stream went away meanwhile. One at a time, from the head again: completing a wait
	 * may end a stream, and with it another wait of this token. */
	for (;;) {
		struct wait *w = rs->list[W_READ].head;

		while (w != NULL && w->token != token)
			w = w->next;
		if (w == NULL)
			return;   /* deadlines passed, or streams went away: nothing (more) to do */
		wait_complete(rs, w, h);
	}
}

static void
on_deadline(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct resume *rs = arg;
	uint64_t now = ev_now_ms(loop);
	struct wait *w;

	(void)t;
	/* One at a time: completing a wait may add or free others. */
	do {
		w = rs->list[W_READ].head;   /* the earliest deadline */
		if (w != NULL && w->deadline_ms > now)
			w = NULL;
		if (w != NULL) {
			log_info("history of %.*s not read within %d ms", (int)w->resource_len,
			    w->resource, rs->conf->redis.publish_timeout_ms);
			wait_complete(rs, w, NULL);
		}
	} while (w != NULL);
	deadline_arm(rs);
}

/* The subscription is back: every open stream of a resource with a known position may
 * have missed events meanwhile; each is held and caught up from there (a stream already
 * held keeps its own wait). */
static void
on_resync(void *arg)
{
	struct resume *rs = arg;
	struct wait *w;
	size_t n = 0, nreads = 0;

	pos_prune(rs);
	for (size_t b = 0; b < rs->pos_buckets; b++) {
		for (struct pos *p = rs->pos_tab[b]; p != NULL; p = p->next) {
			struct resource *res = registry_find(rs->reg, p->name, p->len);
			struct registry_node *nd, *next;
			struct wait *last = NULL;   /* the read this resource's streams share */

			for (nd = registry_resource_first(res); nd != NULL; nd = next) {
				void *stream = rs->ops->node_stream(nd);
				uint64_t after = p->seq;

				next = nd->next;
				w = wait_find(rs, stream);
				if (w != NULL && w->state == W_READ) {
					w->again = 1;   /* its snapshot may predate the loss */
					continue;
				}
				if (w != NULL) {   /* W_FILTER: live again, so it catches up too */
					if (w->epoch_len == p->epoch_len &&
					    memcmp(w->epoch, p->epoch, p->epoch_len) == 0 && w->after > after)
						after = w->after;
					wait_unlink(rs, w);
					wait_free(w);
				}
				/* streams at the same position share one read */
				if (last != NULL && last->after != after)
					last = NULL;
				w = wait_start_shared(rs, stream, p->name, p->len, p->epoch,
				    p->epoch_len, after, last);
				if (w == NULL)
					break;   /* not up after all, or out of memory: nothing to wait for */
				w->catchup = 1;
				nreads += last == NULL;
				last = w;
				n++;
			}
		}
	}
	if (n > 0)
		log_info("history: catching up %zu open streams after the subscription came back "
		    "(%zu read%s)", n, nreads, nreads == 1 ? "" : "s");
}

/* ---- API ---- */

struct resume *
resume_new(struct ev_loop *loop, const struct conf *conf, struct hub *hub,
    struct registry *reg, const struct resume_ops *ops, void *ops_arg)
{
	struct resume *rs = calloc(1, sizeof(*rs));
	uint64_t ttl_ms = (uint64_t)conf->history_ttl * 1000;

	if (rs == NULL)
		return NULL;
	rs->loop = loop;
	rs->conf = conf;
	rs->hub = hub;
	rs->reg = reg;
	rs->ops = ops;
	rs->ops_arg = ops_arg;
	ev_timer_init(&rs->sweep, on_sweep, rs);
	ev_timer_init(&rs->deadline, on_deadline, rs);
	if (conf->history_size == 0)
		return rs;
	rs->sweep_ms = ttl_ms / 4 < SWEEP_MAX_MS ? ttl_ms / 4 : SWEEP_MAX_MS;
	if (rs->sweep_ms < 250)
		rs->sweep_ms = 250;
	if (conf_redis_is_configured(conf)) {
		rs->mode = MODE_REDIS;
		rs->pos_buckets = 1024;
		rs->pos_tab = calloc(rs->pos_buckets, sizeof(*rs->pos_tab));
		rs->wbuckets = 64;   /* grows with the streams held: see wait_link */
		rs->wtab = calloc(rs->wbuckets, sizeof(*rs->wtab));
		if (rs->pos_tab == NULL || rs->wtab == NULL)
			goto fail;
		hub_on_resync(hub, on_resync, rs);
		log_info("history: in Redis, %d events per resource, %d s", conf->history_size,
		    conf->history_ttl);
	} else {
		rs->mode = MODE_LOCAL;
		rs->hist = history_new((uint32_t)conf->history_size, (size_t)conf->history_bytes,
		    ttl_ms);
		if (rs->hist == NULL)
			goto fail;
		make_epoch(rs->epoch);
		log_info("history: %d events per resource, %d s, %d bytes in all; epoch %s",
		    conf->history_size, conf->history_ttl, conf->history_bytes, rs->epoch);
	}
	if (ev_timer_start(loop, &rs->sweep, rs->sweep_ms) == -1)
		goto fail;
	return rs;
fail:
	resume_free(rs);
	return NULL;
}

/* Without memory for the timer heap the sweep is armed again by the next publish
 * (resume_event_new): expiry waits, the history_bytes bound still holds. */
static void
sweep_arm(struct resume *rs)
{
	int lost = ev_timer_start(rs->loop, &rs->sweep, rs->sweep_ms) == -1;

	if (lost && !rs->sweep_lost)
		log_warn("history: the expiry timer could not be armed (%s); retried at the "
		    "next publish", strerror(errno));
	rs->sweep_lost = lost;
}

static void
on_sweep(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct resume *rs = arg;

	(void)t;
	if (rs->mode == MODE_LOCAL) {
		size_t n = history_expire(rs->hist, ev_now_ms(loop));

		if (n > 0)
			log_debug("history: %zu events past history_ttl dropped", n);
	} else {
		pos_prune(rs);
	}
	sweep_arm(rs);
}

void
resume_free(struct resume *rs)
{
	if (rs == NULL)
		return;
	ev_timer_stop(rs->loop, &rs->sweep);
	ev_timer_stop(rs->loop, &rs->deadline);
	for (int st = W_READ; st <= W_FILTER; st++) {
		while (rs->list[st].head != NULL) {
			struct wait *w = rs->list[st].head;

			wait_unlink(rs, w);
			wait_free(w);
		}
	}
	free(rs->wtab);
	for (size_t b = 0; rs->pos_tab != NULL && b < rs->pos_buckets; b++) {
		while (rs->pos_tab[b] != NULL) {
			struct pos *p = rs->pos_tab[b];

			rs->pos_tab[b] = p->next;
			free(p);
		}
	}
	free(rs->pos_tab);
	history_free(rs->hist);
	free(rs);
}

int
resume_is_on(const struct resume *rs)
{
	return rs->mode != MODE_OFF;
}

struct msg *
resume_event_new(struct resume *rs, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len,
    const char *id, size_t id_len, int listened)
{
	char own[EVENTID_MAX + 1];
	uint64_t seq;
	struct msg *m;
	struct eventid parsed;

	if (rs->sweep_lost)
		sweep_arm(rs);
	switch (rs->mode) {
	case MODE_OFF:
		return frame(NULL, 0, event, event_len, data, len);
	case MODE_REDIS:
		if (id != NULL && listened && eventid_parse(&parsed, id, id_len) == 0)
			pos_set(rs, resource, resource_len, parsed.epoch, parsed.epoch_len, parsed.seq, 0);
		return frame(id, id != NULL ? id_len : 0, event, event_len, data, len);
	case MODE_LOCAL:
		break;
	}
	seq = history_seq_next(rs->hist);
	id_len = eventid_format(own, sizeof(own), rs->epoch, EPOCH_LEN, seq);
	m = frame(own, id_len, event, event_len, data, len);
	if (m == NULL)
		return NULL;   /* nobody gets it: no resume can miss it either */
	if (history_add(rs->hist, resource, resource_len, seq, m, ev_now_ms(rs->loop)) == -1)
		log_warn("history: out of memory keeping %s on %.*s; a resume from before it "
		    "gets reset", own, (int)resource_len, resource);
	return m;
}

int
resume_has_held(const struct resume *rs)
{
	return rs->nstreams > 0;
}

int
resume_offer(struct resume *rs, void *stream, struct msg *m, const char *id, size_t id_len,
    int own)
{
	struct wait *w = rs->mode == MODE_REDIS ? wait_find(rs, stream) : NULL;
	struct eventid parsed;
	int has_id = id != NULL && eventid_parse(&parsed, id, id_len) == 0;
	int same = has_id && w != NULL && eventid_same_epoch(&parsed, w->epoch, w->epoch_len);

	if (w == NULL)
		return 0;
	if (w->state == W_FILTER) {
		if (same && !eventid_is_new(w->after, parsed.seq)) {
			for (size_t i = 0; i < w->nexpect; i++) {
				if (w->expect[i] == parsed.seq) {   /* left to the ledger: its delivery */
					w->expect[i] = w->expect[--w->nexpect];
					return 0;
				}
			}
			return 1;   /* the replay sent it */
		}
		if (has_id) {   /* past the replay: the stream is plainly live again */
			wait_unlink(rs, w);
			wait_free(w);
			rs->ops->hold(rs->ops_arg, stream, 0);
		}
		return 0;
	}
	if (w->overflow)
		return 1;
	if (w->held_bytes + m->len > (size_t)rs->conf->stream_queue_bytes && w->nheld > 0) {
		w->overflow = 1;   /* cut after the replay; the browser resumes past it */
		return 1;
	}
	if (w->nheld == w->capheld) {
		size_t ncap = w->capheld ? w->capheld * 2 : 8;
		struct held *nh = realloc(w->held, ncap * sizeof(*nh));

		if (nh == NULL) {
			w->overflow = 1;
			return 1;
		}
		w->held = nh;
		w->capheld = ncap;
	}
	w->held[w->nheld].m = msg_ref(m);
	w->held[w->nheld].seq = has_id ? parsed.seq : 0;
	w->held[w->nheld].epoch_len = has_id ? (uint8_t)parsed.epoch_len : 0;
	w->held[w->nheld].own = own != 0;
	if (has_id)
		memcpy(w->held[w->nheld].epoch, parsed.epoch, parsed.epoch_len);
	w->nheld++;
	w->held_bytes += m->len;
	return 1;
}

void
resume_stream_gone(struct resume *rs, void *stream)
{
	struct wait *w;

	while ((w = rs->mode == MODE_REDIS ? wait_find(rs, stream) : NULL) != NULL) {
		wait_unlink(rs, w);
		wait_free(w);
	}
	if (rs->mode == MODE_REDIS)
		deadline_arm(rs);
}

int
resume_stream_start(struct resume *rs, void *stream, const char *resource,
    size_t resource_len, const char *last_id, size_t last_id_len)
{
	struct eventid id;
	int valid;

	switch (rs->mode) {
	case MODE_OFF:
		return RESUME_LIVE;
	case MODE_LOCAL:
		if (last_id == NULL || last_id_len == 0)
			return RESUME_LIVE;
		return start_local(rs, stream, resource, resource_len, last_id, last_id_len);
	case MODE_REDIS:
		break;
	}
	if (last_id == NULL || last_id_len == 0) {
		/* Learn where the resource is, once, so a later catch-up knows where to start. */
		if (pos_slot(rs, resource, resource_len)[0] == NULL)
			(void)wait_start(rs, NULL, resource, resource_len, "", 0, 0);
		return RESUME_LIVE;
	}
	valid = eventid_parse(&id, last_id, last_id_len) == 0;
	if (wait_start(rs, stream, resource, resource_len, valid ? id.epoch : "",
	    valid ? id.epoch_len : 0, valid ? id.seq : 0) == NULL) {
		struct msg *m;
		int r;

		/* Redis is not there: say so, and go on live. */
		if (errno == ENOMEM)
			return RESUME_FAILED;
		m = reset_msg(valid ? "unavailable" : "malformed", "", 0, 0);
		if (m == NULL)
			return RESUME_FAILED;
		r = rs->ops->push(rs->ops_arg, stream, m, 1);
		msg_unref(m);
		return r == 0 ? RESUME_LIVE : RESUME_FAILED;
	}
	return RESUME_PENDING;
}
