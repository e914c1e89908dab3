/* out — see out.h. */
#include "out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ev.h"
#include "heap.h"
#include "log.h"
#include "pace.h"
#include "registry.h"
#include "sse.h"

/* Backlog bytes drained since the last trim after which the heap is trimmed: once no
 * stream is blocked any more, or at once past OUT_TRIM_FORCE (a client that never
 * catches up must not keep everyone else's freed backlog in the process for good). */
#define OUT_TRIM_BYTES (1u << 20)
#define OUT_TRIM_FORCE (32u << 20)

#define stream_of_node(n) ((struct stream *)((char *)(n) - offsetof(struct stream, node)))

struct slist {
	struct stream *head, *tail;
};

struct out {
	struct ev_loop *loop;
	const struct conf *conf;
	struct registry *reg;
	out_release_fn *on_release;
	out_abandon_fn *on_abandon;
	out_keep_fn *on_keep;
	void *arg;
	struct slist idle, replies;   /* every live stream is on one (see slist_del) */
	struct stream *dirty;   /* to write in this loop turn */
	struct stream *paced;   /* to write when pace_timer fires */
	size_t nstreams;
	size_t nblocked;       /* streams flagged STREAM_BLOCKED */
	size_t drained;        /* backlog bytes drained since the last trim */
	unsigned long long dropped_slow;
	struct ev_timer flush_timer, pace_timer, heartbeat_timer;
	int heartbeat_lost;   /* the heartbeat timer could not be re-armed */
	struct msg *hb_msg;
	struct pace pace;         /* when a dirty event stream waits (pace.h) */
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_flush(struct ev_loop *loop, struct ev_timer *t, void *arg);
static void on_pace(struct ev_loop *loop, struct ev_timer *t, void *arg);
static void on_heartbeat(struct ev_loop *loop, struct ev_timer *t, void *arg);

static void
mark_dirty(struct out *out, struct stream *s)
{
	uint64_t now, due;

	if (s->flags & STREAM_DIRTY)
		return;
	s->flags |= STREAM_DIRTY;
	now = ev_now_ms(out->loop);
	if ((s->flags & (STREAM_SSE | STREAM_DEAD)) == STREAM_SSE &&
	    (due = pace_due(&out->pace, now, s->flushed_ms, s->queued)) != 0) {
		/* out->paced is never left without its timer: one that cannot be armed
		 * means no pacing, and moving an armed one cannot fail */
		if ((!ev_timer_is_active(&out->pace_timer) || due < out->pace_timer.when_ms) &&
		    ev_timer_start(out->loop, &out->pace_timer, due - now) == -1)
			goto now;
		s->dirty_next = out->paced;
		out->paced = s;
		return;
	}
now:
	s->dirty_next = out->dirty;
	out->dirty = s;
	if (!ev_timer_is_active(&out->flush_timer) &&
	    ev_timer_start(out->loop, &out->flush_timer, 0) == -1) {
		/* the heartbeat timer is armed, and bringing an armed timer forward cannot
		 * fail: its callback flushes in the flush timer's place */
		ev_timer_start(out->loop, &out->heartbeat_timer, 0);
	}
}

/*
 * Every live stream is on exactly one list, through idle_prev/idle_next: event streams on
 * out->idle (oldest write first, which is heartbeat order), replies and ending streams on
 * out->replies. Dead streams are only on the dirty or the paced list, until they are freed.
 */
static void
slist_del(struct slist *l, struct stream *s)
{
	if (s->idle_prev != NULL)
		s->idle_prev->idle_next = s->idle_next;
	else
		l->head = s->idle_next;
	if (s->idle_next != NULL)
		s->idle_next->idle_prev = s->idle_prev;
	else
		l->tail = s->idle_prev;
	s->idle_prev = s->idle_next = NULL;
}

static void
slist_add(struct slist *l, struct stream *s)
{
	s->idle_prev = l->tail;
	s->idle_next = NULL;
	if (l->tail != NULL)
		l->tail->idle_next = s;
	else
		l->head = s;
	l->tail = s;
}

struct out *
out_new(struct ev_loop *loop, const struct conf *conf, struct registry *reg,
    out_release_fn *on_release, out_abandon_fn *on_abandon, out_keep_fn *on_keep, void *arg)
{
	struct out *out = calloc(1, sizeof(*out));

	if (out == NULL)
		return NULL;
	out->loop = loop;
	out->conf = conf;
	out->reg = reg;
	out->on_release = on_release;
	out->on_abandon = on_abandon;
	out->on_keep = on_keep;
	out->arg = arg;
	ev_timer_init(&out->flush_timer, on_flush, out);
	ev_timer_init(&out->pace_timer, on_pace, out);
	pace_init(&out->pace, now_us());
	ev_timer_init(&out->heartbeat_timer, on_heartbeat, out);
	out->hb_msg = msg_new(sse_heartbeat_len, 0);
	if (out->hb_msg == NULL) {
		free(out);
		return NULL;
	}
	memcpy(out->hb_msg->data, sse_heartbeat, sse_heartbeat_len);
	out->hb_msg->refs = MSG_STATIC;
	if (ev_timer_start(loop, &out->heartbeat_timer, (uint64_t)conf->heartbeat * 1000) == -1) {
		free(out->hb_msg);
		free(out);
		return NULL;
	}
	return out;
}

/* keep: a reply that ended cleanly, whose descriptor may go back to its owner. */
static void
stream_kill(struct out *out, struct stream *s, int keep)
{
	if (!keep)
		s->tail.keep_conn = 0;
	if (s->flags & STREAM_DEAD)
		return;
	if (s->flags & STREAM_SSE) {
		registry_del(out->reg, &s->node);
		slist_del(&out->idle, s);
		s->flags &= (uint8_t)~STREAM_SSE;
	} else {
		slist_del(&out->replies, s);
	}
	if (s->flags & (STREAM_PENDING | STREAM_HOLD)) {
		out->on_abandon(out->arg, s);
		s->flags &= (uint8_t)~(STREAM_PENDING | STREAM_HOLD);
	}
	ev_io_del(out->loop, s->fd);
	s->flags |= STREAM_DEAD;
	mark_dirty(out, s);
}

void
out_stream_kill(struct out *out, struct stream *s)
{
	stream_kill(out, s, 0);
}

static void
stream_finalize(struct out *out, struct stream *s)
{
	int fd = s->fd, keep = s->tail.keep_conn;

	if (s->flags & STREAM_BLOCKED)
		out->nblocked--;
	stream_release(s);
	free(s);
	out->nstreams--;
	if (keep) {
		out->on_keep(out->arg, fd);
		return;
	}
	close(fd);
	out->on_release(out->arg);
}

/*
 * A stream is closed for its queue only when its client is not reading: when a write
 * attempt could not move everything (STREAM_BLOCKED) and what it holds passes the hard
 * limit, or has stayed over the soft limit for soft_seconds. A stream whose socket took
 * the last flush takes any burst (several large events in one turn) and is only judged
 * once a write has been tried, as redis judges a client's output buffer.
 */
static int
limits_check(struct out *out, struct stream *s)
{
	const struct conf *c = out->conf;
	struct stream_limits lim = {
		(size_t)c->stream_queue_bytes, (size_t)c->stream_queue_soft_bytes,
		(uint32_t)c->stream_queue_soft_seconds
	};

	return stream_limits_check(s, &lim, (uint32_t)(ev_now_ms(out->loop) / 1000));
}

static int
over_limit(struct out *out, struct stream *s)
{
	int r = limits_check(out, s);

	if (r == 0)
		return 0;
	out->dropped_slow++;
	log_info("stream on %s stalled with %zu bytes queued (%s), closing it",
	    registry_node_name(&s->node), stream_held(s),
	    r == 1 ? "over stream_queue_bytes" : "over stream_queue_soft_bytes too long");
	return 1;
}

int
out_stream_push(struct out *out, struct stream *s, struct msg *m)
{
	if (stream_queue(s, m) == -1) {
		log_warn("out of memory queuing on %s, closing the stream",
		    registry_node_name(&s->node));
		out_stream_kill(out, s);
		return -1;
	}
	if ((s->flags & (STREAM_BLOCKED | STREAM_SSE)) == (STREAM_BLOCKED | STREAM_SSE) &&
	    over_limit(out, s)) {
		out_stream_kill(out, s);
		return -1;
	}
	if (s->flags & STREAM_SSE) {
		s->last_write_ms = ev_now_ms(out->loop);
		if (out->idle.tail != s) {   /* heartbeat order: most recent write last */
			slist_del(&out->idle, s);
			slist_add(&out->idle, s);
		}
	}
	if (!(s->flags & STREAM_BLOCKED))
		mark_dirty(out, s);
	/* a paced stream that comes to hold PACE_BYTES has enough to leave now (with the
	 * other paced streams; were s on the other list, they would only leave early) */
	if (out->paced != NULL && (s->flags & STREAM_DIRTY) && s->queued >= PACE_BYTES &&
	    s->queued - m->len < PACE_BYTES)
		(void)ev_timer_start(out->loop, &out->pace_timer, 0);   /* armed: cannot fail */
	return 0;
}

/*
 * glibc keeps freed memory in its heaps (and, past the first large free, raises the
 * threshold under which it gives the top back); the messages and rings of a drained
 * backlog are scattered through the heap between live allocations, so only
 * malloc_trim() returns their pages. Done synchronously, in the pass that drained the
 * last blocked stream: any request answered after that sees the memory returned.
 */
static void
out_backlog_drained(struct out *out, size_t bytes)
{
	out->drained += bytes;
	if (out->drained < OUT_TRIM_BYTES || (out->nblocked > 0 && out->drained < OUT_TRIM_FORCE))
		return;
	out->drained = 0;
	heap_trim();
}

static void
flush_one(struct out *out, struct stream *s)
{
	size_t held = (s->flags & STREAM_BLOCKED) ? stream_held(s) : 0;
	int r = stream_flush(s);

	s->flushed_ms = (uint32_t)ev_now_ms(out->loop);

	if (r == -1) {
		out_stream_kill(out, s);
		return;
	}
	if (r == 0) {
		if (!(s->flags & STREAM_BLOCKED)) {
			/* a stream that cannot wait for EV_WRITE would never be written again */
			if (ev_io_set(out->loop, s->fd, EV_READ | EV_WRITE) == -1) {
				log_warn("cannot wait for a stream to drain (%s), closing it",
				    strerror(errno));
				out_stream_kill(out, s);
				return;
			}
			s->flags |= STREAM_BLOCKED;
			out->nblocked++;
		}
		/* only starts or stops the soft clock: the verdict waits for the next
		 * message, so a client that reads between two is never judged */
		if (s->flags & STREAM_SSE)
			(void)limits_check(out, s);
		return;
	}
	s->flags &= (uint8_t)~STREAM_OVER_SOFT;
	if (s->flags & STREAM_CLOSING) {
		stream_kill(out, s, 1);   /* all out: a kept connection goes back */
		return;
	}
	if (s->flags & STREAM_BLOCKED) {
		s->flags &= (uint8_t)~STREAM_BLOCKED;
		out->nblocked--;
		/* left waiting for EV_WRITE, an empty stream would wake the loop forever */
		if (ev_io_set(out->loop, s->fd, EV_READ) == -1) {
			log_warn("cannot stop watching a drained stream (%s), closing it",
			    strerror(errno));
			out_stream_kill(out, s);
		}
		out_backlog_drained(out, held);
	}
}

/* Writes (or frees) every stream of a dirty list; counts the writes in *writes and the
 * messages they carried in *events. */
static void
flush_list(struct out *out, struct stream *s, uint32_t *writes, uint32_t *events)
{
	struct stream *next;

	for (; s != NULL; s = next) {
		next = s->dirty_next;
		s->flags &= (uint8_t)~STREAM_DIRTY;
		if (s->flags & STREAM_DEAD) {
			stream_finalize(out, s);
		} else if (!(s->flags & STREAM_BLOCKED)) {
			(*writes)++;
			*events += s->count;
			flush_one(out, s);
		}
	}
}

/* Writes a list taken off out, timing it for the pace; the writes of a paced list also
 * count toward its events per write. */
static void
flush_timed(struct out *out, struct stream *list, int paced)
{
	uint64_t start = now_us();
	uint32_t writes = 0, events = 0;

	flush_list(out, list, &writes, &events);
	pace_account(&out->pace, start, now_us(), paced ? writes : 0, paced ? events : 0);
}

static void
on_flush(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct out *out = arg;
	struct stream *s = out->dirty;

	(void)t;
	out->dirty = NULL;
	if (out->heartbeat_lost && ev_timer_start(loop, &out->heartbeat_timer, 0) == 0)
		out->heartbeat_lost = 0;
	flush_timed(out, s, 0);
}

/* Every paced stream at once, the later-due ones a little early: the streams of one
 * fan-out keep writing together. */
static void
on_pace(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct out *out = arg;
	struct stream *s = out->paced;

	(void)loop;
	(void)t;
	out->paced = NULL;
	flush_timed(out, s, 1);
}

/* The peer only ever sends EOF or ABORT_REQUEST once the request is in. */
static void
on_stream_io(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct stream *s = arg;
	struct out *out = s->owner;

	(void)loop;
	if (events & EV_READ) {
		uint8_t buf[512];
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			out_stream_kill(out, s);
			return;
		}
		if (n > 0 && fcgi_tail_feed(&s->tail, buf, (size_t)n) != 0) {
			log_debug("stream on %s aborted by the web server",
			    registry_node_name(&s->node));
			out_stream_kill(out, s);
			return;
		}
	}
	if (events & EV_WRITE)
		flush_one(out, s);
}

struct stream *
out_stream_adopt(struct out *out, int fd, uint16_t id, const struct fcgi_tail *tail)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		log_warn("out of memory for a stream, dropping the connection");
		ev_io_del(out->loop, fd);
		close(fd);
		out->on_release(out->arg);
		return NULL;
	}
	s->owner = out;
	s->fd = fd;
	s->id = id;
	if (tail != NULL)
		s->tail = *tail;
	ev_io_rebind(out->loop, fd, on_stream_io, s);
	slist_add(&out->replies, s);
	out->nstreams++;
	return s;
}

struct out *
out_of(const struct stream *s)
{
	return s->owner;
}

int
out_stream_listen(struct out *out, struct stream *s, const char *resource, size_t len)
{
	if (registry_add(out->reg, &s->node, resource, len) == -1)
		return -1;
	slist_del(&out->replies, s);
	s->flags |= STREAM_SSE;
	/* an event stream ends only when one side leaves: its connection is never kept */
	s->tail.keep_conn = 0;
	slist_add(&out->idle, s);
	return 0;
}

/* A whole reply as ready-made records: STDOUT with text, then the end of the request. */
static struct msg *
msg_reply(uint16_t id, const char *text, size_t len)
{
	struct msg *m = msg_new(fcgi_stdout_size(len) + FCGI_END_LEN, 1);
	size_t off;

	if (m == NULL)
		return NULL;
	off = fcgi_stdout_encode((uint8_t *)m->data, id, text, len);
	fcgi_end_encode((uint8_t *)m->data + off, id, 0);
	return m;
}

void
out_stream_reply(struct out *out, struct stream *s, const char *text, size_t len)
{
	struct msg *m = msg_reply(s->id, text, len);

	if (m == NULL) {
		out_stream_kill(out, s);
		return;
	}
	s->flags |= STREAM_CLOSING;
	out_stream_push(out, s, m);
	msg_unref(m);
}

size_t
out_deliver(struct out *out, const struct resource *res, struct msg *m)
{
	struct registry_node *n, *next;
	size_t ok = 0;

	for (n = registry_resource_first(res); n != NULL; n = next) {
		next = n->next;   /* a stalled stream leaves the list while we walk it */
		if (out_stream_push(out, stream_of_node(n), m) == 0)
			ok++;
	}
	return ok;
}

static void
on_heartbeat(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct out *out = arg;
	uint64_t period = (uint64_t)out->conf->heartbeat * 1000;
	uint64_t now = ev_now_ms(loop);
	struct stream *s;

	if (out->dirty != NULL && !ev_timer_is_active(&out->flush_timer))
		on_flush(loop, &out->flush_timer, out);   /* see mark_dirty */
	while ((s = out->idle.head) != NULL && s->last_write_ms + period <= now)
		out_stream_push(out, s, out->hb_msg);
	s = out->idle.head;
	if (ev_timer_start(loop, t, s != NULL ? s->last_write_ms + period - now : period) == -1) {
		/* retried by the next flush: an idle process at worst misses heartbeats
		 * until something is written */
		log_error("cannot arm the heartbeat timer: %s", strerror(errno));
		out->heartbeat_lost = 1;
	}
}

void
out_heartbeat_restart(struct out *out)
{
	/* re-plans from the list */
	if (ev_timer_start(out->loop, &out->heartbeat_timer, 0) == -1)
		out->heartbeat_lost = 1;
}

void
out_stream_end(struct out *out, struct stream *s, unsigned retry_ms)
{
	char text[SSE_RETRY_MAX];

	if (!(s->flags & STREAM_SSE) || (s->flags & STREAM_DEAD))
		return;
	registry_del(out->reg, &s->node);
	slist_del(&out->idle, s);
	slist_add(&out->replies, s);
	s->flags &= (uint8_t)~STREAM_SSE;
	out_stream_reply(out, s, text, sse_retry_encode(text, retry_ms));
}

void
out_end_all(struct out *out, unsigned retry_ms, unsigned jitter_ms)
{
	struct stream *s, *next;

	ev_timer_stop(out->loop, &out->heartbeat_timer);
	for (s = out->idle.head; s != NULL; s = next) {
		char text[SSE_RETRY_MAX];
		unsigned ms = retry_ms + (unsigned)(random() % ((long)jitter_ms + 1));

		next = s->idle_next;
		registry_del(out->reg, &s->node);
		slist_del(&out->idle, s);
		slist_add(&out->replies, s);
		s->flags &= (uint8_t)~STREAM_SSE;
		out_stream_reply(out, s, text, sse_retry_encode(text, ms));
	}
}

size_t
out_streams(const struct out *out)
{
	return out->nstreams;
}

unsigned long long
out_dropped(const struct out *out)
{
	return out->dropped_slow;
}

/* Closes and frees every stream of a dirty list (out_free: no owner to tell). */
static void
list_free(struct stream *s)
{
	struct stream *next;

	for (; s != NULL; s = next) {
		next = s->dirty_next;
		close(s->fd);
		stream_release(s);
		free(s);
	}
}

void
out_free(struct out *out)
{
	if (out == NULL)
		return;
	while (out->idle.head != NULL)
		out_stream_kill(out, out->idle.head);
	while (out->replies.head != NULL)
		out_stream_kill(out, out->replies.head);
	list_free(out->dirty);
	list_free(out->paced);
	ev_timer_stop(out->loop, &out->flush_timer);
	ev_timer_stop(out->loop, &out->pace_timer);
	ev_timer_stop(out->loop, &out->heartbeat_timer);
	free(out->hb_msg);
	free(out);
}
