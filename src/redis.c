/* redis — see redis.h. Written against hiredis 0.14.1's async.c; the facts it
 * relies on are noted where they are used. */
#include "redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "conf.h"
#include "ev.h"
#include "log.h"

#define NPATTERNS 3

enum conn_state {
	CONN_IDLE,         /* no context; the timer, if armed, starts the next attempt */
	CONN_RESOLVING,    /* waiting for the host name lookup; the timer polls it */
	CONN_CONNECTING,   /* context made, handshake queued; the timer is its deadline */
	CONN_READY,        /* subscription confirmed / PING answered */
	CONN_KILLING       /* we gave up on it; the timer (0 ms) frees it */
};

struct redis_conn {
	struct redis *r;
	const char *name;             /* "subscriber" / "publisher" */
	int is_sub;
	enum conn_state state;
	redisAsyncContext *ac;        /* NULL when hiredis has freed it (or we are) */
	int fd;                       /* of the context whose hooks we serve, -1 */
	int registered;               /* fd is in the ev loop */
	int events;                   /* its interest */
	int confirmed;                /* PSUBSCRIBE confirmations received */
	unsigned attempt;             /* failed attempts since last ready */
	int tried;                    /* an attempt was made before (counts reconnects) */
	int failing;                  /* a failure was logged since the last ready */
	uint64_t deadline_ms;         /* of the lookup (CONN_RESOLVING) */
	char client_name[64];         /* CLIENT SETNAME: sse-fcgi:<name>:<origin> */
	char last_logged[160];        /* failure reason logged last, to not repeat it */
	struct ev_timer timer;
	int timer_lost;               /* could not be armed: redis_timers_retry() does it */
	uint64_t timer_lost_ms;
};

struct redis {
	struct ev_loop *loop;
	const struct conf_redis *conf;
	const struct redis_handler *h;
	void *arg;
	struct redis_conn sub, pub;
	char *patterns[NPATTERNS];    /* data, meta, probe */
	size_t meta_prefix_len;       /* strlen(SSE_CHANNEL_NS "meta:" prefix) */
	size_t prefix_len;
	struct ev_timer probe_timer;
	int probe_timer_lost;         /* could not be armed: redis_timers_retry() does it */
	uint64_t probe_seq;           /* last probe sent */
	uint64_t probe_out;           /* probe awaited on the subscriber, 0 = none */
	int probe_acked;              /* Redis answered the probe's PUBLISH */
	int up;
	int freeing;
	/* Tokens of redis_sub_barrier() whose confirmation has not come back, oldest
	 * first (each a re-PSUBSCRIBE of the probe pattern, answered in order). */
	struct barrier *barrier_head, **barrier_tail;
	unsigned long reconnects;
	unsigned long probe_failures;
	uint64_t rnd;
	char reason[256];             /* last failure */
	int host_is_name;             /* redis.host is not a numeric address */
	struct lookup *lookup;        /* host name lookup in flight, NULL */
	char addr[INET6_ADDRSTRLEN];  /* its last result, "" while none */
	char sha[2][41];              /* SHA1 of the history scripts once loaded, "" before */
	int sha_loading[2];           /* a SCRIPT LOAD is on its way */
};

/* A host name lookup by getaddrinfo_a(): hiredis 0.14.1 would call the blocking
 * getaddrinfo() inside redisAsyncConnect(), stalling the loop for as long as a
 * dead DNS server takes. One lookup at a time per process, shared by both
 * connections and redone at every attempt (so a changed address is followed). */
struct lookup {
	struct gaicb cb;
	struct gaicb *list[1];
	struct addrinfo hints;
	char *name;
};

/* A publish waiting for its EXEC answer. hiredis calls every reply callback
 * exactly once, with the reply or with NULL when the context goes away. */
struct ticket {
	struct redis *r;
	uint64_t token;
};

struct barrier {
	uint64_t token;
	struct barrier *next;
};

static void conn_fail(struct redis_conn *c, const char *reason);

/*
 * Arms c's timer (its retry, its connect timeout, its teardown). ev_timer_start fails only
 * without memory for the timer heap; then the connection would wait forever, so the
 * timer is noted and armed again by redis_timers_retry(), which every publish calls.
 */
static void
conn_timer_arm(struct redis_conn *c, uint64_t ms)
{
	if (ev_timer_start(c->r->loop, &c->timer, ms) == 0) {
		c->timer_lost = 0;
		return;
	}
	if (!c->timer_lost)
		log_error("SSE: Redis %s: cannot arm a timer (%s); retried at the next publish",
		    c->name, strerror(errno));
	c->timer_lost = 1;
	c->timer_lost_ms = ms;
}

static void
probe_timer_arm(struct redis *r)
{
	uint64_t ms = (uint64_t)r->conf->probe_interval * 1000;

	if (ev_timer_start(r->loop, &r->probe_timer, ms) == 0) {
		r->probe_timer_lost = 0;
		return;
	}
	if (!r->probe_timer_lost)
		log_error("SSE: Redis: cannot arm the probe timer (%s); retried at the next publish",
		    strerror(errno));
	r->probe_timer_lost = 1;
}
static void on_sub(redisAsyncContext *ac, void *reply, void *priv);
static void barriers_fail(struct redis *r);
static void conn_connect(struct redis_conn *c);
static void resolve_poll(struct redis_conn *c);

unsigned
redis_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt, uint32_t rnd)
{
	uint64_t base = min_ms, lo;

	if (max_ms < min_ms)
		max_ms = min_ms;
	if (base == 0)
		base = 1;
	while (attempt-- > 0 && base < max_ms)
		base <<= 1;
	if (base > max_ms)
		base = max_ms;
	lo = base / 2 < min_ms ? min_ms : base / 2;
	if (lo > base)
		return (unsigned)base;
	return (unsigned)(lo + rnd % (base - lo + 1));
}

static uint32_t
next_rnd(struct redis *r)
{
	/* xorshift64*: jitter only, no security use. */
	r->rnd ^= r->rnd >> 12;
	r->rnd ^= r->rnd << 25;
	r->rnd ^= r->rnd >> 27;
	return (uint32_t)((r->rnd * 2685821657736338717ULL) >> 32);
}

void
redis_timers_retry(struct redis *r)
{
	struct redis_conn *cs[2] = { &r->sub, &r->pub };

	for (int i = 0; i < 2; i++)
		if (cs[i]->timer_lost)
			conn_timer_arm(cs[i], cs[i]->timer_lost_ms);
	if (r->probe_timer_lost && r->up)
		probe_timer_arm(r);
}

int
redis_is_up(const struct redis *r)
{
	return r->sub.state == CONN_READY && r->pub.state == CONN_READY;
}

int
redis_sub_is_ready(const struct redis *r)
{
	return r->sub.state == CONN_READY;
}

const char *
redis_down_reason(const struct redis *r)
{
	if (redis_is_up(r))
		return "";
	if (r->reason[0] == '\0')
		return "connecting to Redis";
	return r->reason;
}

unsigned long
redis_reconnects(const struct redis *r)
{
	return r->reconnects;
}

unsigned long
redis_probe_failures(const struct redis *r)
{
	return r->probe_failures;
}

/* ---- the five-hook adapter ---- */

static void
on_io(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct redis_conn *c = arg;
	redisAsyncContext *ac = c->ac;

	(void)loop;
	(void)fd;
	if (ac == NULL || c->state == CONN_KILLING)
		return;
	/* Either call may end in hiredis freeing the context (the disconnect or
	 * failed-connect callback then cleared c->ac): check before the next. */
	if (events & EV_READ)
		redisAsyncHandleRead(ac);
	if (c->ac != ac || c->state == CONN_KILLING)
		return;
	if (events & EV_WRITE)
		redisAsyncHandleWrite(ac);
}

/* At most this many reads per redis_sub_drain() (hiredis reads 16 KiB at a time):
 * the backlog of a live subscriber is small; a flood is left to the loop. */
#define DRAIN_READS_MAX 64

void
redis_sub_drain(struct redis *r)
{
	struct redis_conn *c = &r->sub;
	int i;

	for (i = 0; i < DRAIN_READS_MAX; i++) {
		redisAsyncContext *ac = c->ac;
		char b;

		/* A confirmed subscription, or one whose TCP connect is done (its
		 * confirmations may be waiting, and Redis queues messages right
		 * behind them); a connect still in progress is left to the loop.
		 * Never from inside one of its own callbacks. Peek first: nothing
		 * waiting, nothing to do (an EOF is also left to the loop). */
		if (r->freeing || ac == NULL || c->fd < 0 || (ac->c.flags & REDIS_IN_CALLBACK) ||
		    !(c->state == CONN_READY ||
		      (c->state == CONN_CONNECTING && (ac->c.flags & REDIS_CONNECTED))) ||
		    recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
			return;
		redisAsyncHandleRead(ac);
	}
}

int
redis_sub_barrier(struct redis *r, uint64_t token)
{
	struct redis_conn *c = &r->sub;
	struct barrier *b;
	const char *argv[2] = { "PSUBSCRIBE", r->patterns[2] };
	size_t argvlen[2] = { 10, strlen(r->patterns[2]) };

	if (c->state != CONN_READY || c->ac == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	b = malloc(sizeof(*b));
	if (b == NULL)
		return -1;
	/* hiredis 0.14.1 files a PSUBSCRIBE's callback under its pattern: the same
	 * callback and argument as the first time (on_sub, c). A PING would not do:
	 * its reply on a subscribed connection never reaches its callback. */
	if (redisAsyncCommandArgv(c->ac, on_sub, c, 2, argv, argvlen) != REDIS_OK) {
		free(b);
		errno = ENOMEM;
		return -1;
	}
	b->token = token;
	b->next = NULL;
	*r->barrier_tail = b;
	r->barrier_tail = &b->next;
	return 0;
}

static void
hook_set(struct redis_conn *c, int want)
{
	struct ev_loop *loop = c->r->loop;

	if (c->fd < 0)
		return;
	if (c->state == CONN_KILLING)
		want = EV_NONE;
	if (!c->registered) {
		if (ev_io_add(loop, c->fd, want, on_io, c) == -1) {
			char why[96];

			snprintf(why, sizeof(why), "cannot watch the socket: %s", strerror(errno));
			conn_fail(c, why);
			return;
		}
		c->registered = 1;
	} else if (want != c->events && ev_io_set(loop, c->fd, want) == -1) {
		char why[96];

		snprintf(why, sizeof(why), "cannot watch the socket: %s", strerror(errno));
		conn_fail(c, why);
		return;
	}
	c->events = want;
}

/* Idempotent, as hiredis requires. */
static void
hook_add_read(void *priv)
{
	struct redis_conn *c = priv;

	hook_set(c, c->events | EV_READ);
}

static void
hook_del_read(void *priv)
{
	struct redis_conn *c = priv;

	hook_set(c, c->events & ~EV_READ);
}

static void
hook_add_write(void *priv)
{
	struct redis_conn *c = priv;

	hook_set(c, c->events | EV_WRITE);
}

static void
hook_del_write(void *priv)
{
	struct redis_conn *c = priv;

	hook_set(c, c->events & ~EV_WRITE);
}

/* hiredis calls this before it closes the fd, possibly twice (on disconnect and
 * on free), and before the disconnect callback. */
static void
hook_cleanup(void *priv)
{
	struct redis_conn *c = priv;

	if (c->registered)
		ev_io_del(c->r->loop, c->fd);
	c->registered = 0;
	c->events = 0;
	c->fd = -1;
}

/* ---- state changes ---- */

static void
probe_stop(struct redis *r)
{
	ev_timer_stop(r->loop, &r->probe_timer);
	r->probe_timer_lost = 0;
	r->probe_out = 0;
	r->probe_acked = 0;
}

static void
log_failure(struct redis_conn *c, const char *reason)
{
	/* Once per outage and per distinct reason; a Redis that stays down for a
	 * day does not fill the log, a change of symptom is still seen. */
	if (!c->failing || strcmp(c->last_logged, reason) != 0) {
		log_warn("SSE: Redis connection failed, using single-server mode: %s (%s)",
		    reason, c->name);
		snprintf(c->last_logged, sizeof(c->last_logged), "%s", reason);
		c->failing = 1;
	} else {
		log_debug("SSE: Redis connection failed again (%s): %s", c->name, reason);
	}
}

/* c leaves CONNECTING or READY for `next`, because of reason. Tells the handler
 * what that means for the process. */
static void
conn_down(struct redis_conn *c, enum conn_state next, const char *reason)
{
	struct redis *r = c->r;
	int was_up = r->up, was_ready = c->state == CONN_READY;

	c->state = next;
	ev_timer_stop(r->loop, &c->timer);
	c->timer_lost = 0;
	snprintf(r->reason, sizeof(r->reason), "%s (%s)", reason, c->name);
	if (was_ready) {
		log_warn("SSE: Redis connection closed (%s: %s)%s", c->name, reason,
		    was_up ? ", using single-server mode" : "");
		c->failing = 1;
		snprintf(c->last_logged, sizeof(c->last_logged), "%s", reason);
	} else {
		log_failure(c, reason);
	}
	if (was_up) {
		r->up = 0;
		probe_stop(r);
	}
	if (r->freeing)
		return;
	if (c->is_sub && was_ready)
		r->h->on_sub_lost(r->arg);
	if (c->is_sub)
		barriers_fail(r);
	if (was_up)
		r->h->on_mode(r->arg, 0);
}

static void
schedule_retry(struct redis_conn *c)
{
	struct redis *r = c->r;
	unsigned ms = redis_backoff_ms((unsigned)r->conf->reconnect_min_ms,
	    (unsigned)r->conf->reconnect_max_ms, c->attempt, next_rnd(r));

	if (r->freeing)
		return;
	if (c->attempt < 32)
		c->attempt++;
	c->state = CONN_IDLE;
	log_debug("SSE: Redis %s: next attempt in %u ms", c->name, ms);
	conn_timer_arm(c, ms);
}

/* We give up on c's context. Never frees it here: we may be inside one of its
 * callbacks (hiredis 0.14.1 runs the connect callback without its IN_CALLBACK
 * guard, so even redisAsyncFree() would free under its feet); the 0 ms timer
 * does it from a clean stack. */
static void
conn_fail(struct redis_conn *c, const char *reason)
{
	if (c->state != CONN_CONNECTING && c->state != CONN_READY)
		return;
	conn_down(c, CONN_KILLING, reason);
	if (c->registered) {
		/* a descriptor left watched only wakes the loop for nothing until the
		 * teardown below; it cannot be serviced twice */
		if (ev_io_set(c->r->loop, c->fd, EV_NONE) == -1)
			log_debug("SSE: Redis %s: cannot stop watching the socket: %s", c->name,
			    strerror(errno));
		c->events = EV_NONE;
	}
	conn_timer_arm(c, 0);
}

/* hiredis is freeing c's context (after our disconnect or failed-connect
 * callback returns). */
static void
conn_gone(struct redis_conn *c, const char *reason)
{
	c->ac = NULL;
	if (c->state == CONN_KILLING)
		return;   /* our timer carries on */
	conn_down(c, CONN_IDLE, reason);
	schedule_retry(c);
}

static void
conn_ready(struct redis_conn *c)
{
	struct redis *r = c->r;

	c->state = CONN_READY;
	c->attempt = 0;
	c->failing = 0;
	c->last_logged[0] = '\0';
	ev_timer_stop(r->loop, &c->timer);
	c->timer_lost = 0;
	if (!c->is_sub) {
		/* A new connection may reach a Redis whose script cache is empty (a restart):
		 * the first call of each script goes as EVAL, with a SCRIPT LOAD beside it.
		 * An EVALSHA answered NOSCRIPT is sent again behind whatever followed it, so
		 * a catch-up read could run after a publish sent later (see hub.h,
		 * hub_own_pending_first, for what that would cost). */
		memset(r->sha, 0, sizeof(r->sha));
		memset(r->sha_loading, 0, sizeof(r->sha_loading));
	}
	log_info("SSE: Redis %s ready", c->name);
	if (!r->up && redis_is_up(r)) {
		r->up = 1;
		r->reason[0] = '\0';
		log_notice("SSE: Redis Pub/Sub enabled (multi-server mode)");
		r->probe_out = 0;
		probe_timer_arm(r);
		r->h->on_mode(r->arg, 1);
	}
}

static void
on_timer(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct redis_conn *c = arg;
	char why[96];

	(void)loop;
	(void)t;
	switch (c->state) {
	case CONN_IDLE:
		conn_connect(c);
		break;
	case CONN_RESOLVING:
		resolve_poll(c);
		break;
	case CONN_CONNECTING:
		snprintf(why, sizeof(why), "no answer from Redis within %d ms",
		    c->r->conf->connect_timeout_ms);
		conn_fail(c, why);
		break;
	case CONN_KILLING: {
		redisAsyncContext *ac = c->ac;

		/* Clearing c->ac first makes every callback hiredis now runs for this
		 * context (NULL replies, the disconnect callback) a no-op for c, except
		 * publish tickets, which report their loss upward once. */
		c->ac = NULL;
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_retry(c);
		break;
	}
	case CONN_READY:
		break;
	}
}

/* ---- hiredis callbacks ---- */

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *c = ac->data;

	if (c == NULL || c->ac != ac)
		return;
	/* 0.14.1: on failure the context is freed right after we return, without
	 * the disconnect callback. ac->errstr may still be NULL then: use c.errstr. */
	if (status != REDIS_OK)
		conn_gone(c, ac->c.errstr[0] ? ac->c.errstr : "connect failed");
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_conn *c = ac->data;

	if (c == NULL || c->ac != ac)
		return;
	conn_gone(c, status == REDIS_OK || ac->c.errstr[0] == '\0' ? "connection closed" :
	    ac->c.errstr);
}

static int
reply_is(const redisReply *rep, const char *s)
{
	size_t n = strlen(s);

	return rep != NULL && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) &&
	    (size_t)rep->len == n && strncasecmp(rep->str, s, n) == 0;
}

/* Redis's words plus, for authentication errors, where to look. */
static void
error_reason(char *buf, size_t size, const char *what, const char *err)
{
	int auth = strncmp(err, "NOAUTH", 6) == 0 || strncmp(err, "WRONGPASS", 9) == 0 ||
	    strstr(err, "invalid password") != NULL || strstr(err, "invalid username") != NULL;

	snprintf(buf, size, "%s: %s%s", what, err,
	    auth ? " (check redis.password / REDIS_PASSWORD)" : "");
}

static void
on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_conn *c = priv;
	redisReply *rep = reply;
	char why[256];

	if (rep == NULL || c->ac != ac || c->state != CONN_CONNECTING)
		return;
	if (rep->type != REDIS_REPLY_ERROR)
		return;
	/* A password the server does not need: say so, carry on (as the seed's
	 * ioredis does). Redis 6+ and older word it differently. */
	if (strstr(rep->str, "without any password configured") != NULL ||
	    strstr(rep->str, "no password is set") != NULL) {
		log_warn("SSE: Redis needs no password but redis.password / REDIS_PASSWORD is set (%s)",
		    c->name);
		return;
	}
	/* Logged once per outage by log_failure(), then retried with backoff like
	 * any failure: the password may be fixed on the Redis side. */
	error_reason(why, sizeof(why), "AUTH failed", rep->str);
	conn_fail(c, why);
}

static void
on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_conn *c = priv;
	redisReply *rep = reply;
	char why[256];

	if (rep == NULL || c->ac != ac || c->state != CONN_CONNECTING)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		error_reason(why, sizeof(why), "PING refused", rep->str);
		conn_fail(c, why);
		return;
	}
	conn_ready(c);
}

/* A Redis that cannot name clients (before 2.6.9, or an ACL without CLIENT)
 * works all the same: the name only helps operators and CLIENT KILL. */
static void
on_setname(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_conn *c = priv;
	redisReply *rep = reply;

	if (rep == NULL || c->ac != ac || c->state != CONN_CONNECTING)
		return;
	if (rep->type == REDIS_REPLY_ERROR)
		log_debug("SSE: Redis %s: CLIENT SETNAME %s refused: %s", c->name, c->client_name,
		    rep->str);
}

static int
bytes_eq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && memcmp(a, b, alen) == 0;
}

static void
on_probe_back(struct redis *r, const char *msg, size_t len)
{
	char num[24];

	if (r->probe_out == 0)
		return;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)r->probe_out);
	if (bytes_eq(msg, len, num)) {
		log_debug("SSE: Redis probe %s came back", num);
		r->probe_out = 0;
	}
}

/* The oldest barrier came back: every message Redis queued for us before it
 * has been handed up. */
static void
barrier_back(struct redis *r)
{
	struct barrier *b = r->barrier_head;
	char why[300];

	if (b == NULL)
		return;
	r->barrier_head = b->next;
	if (r->barrier_head == NULL)
		r->barrier_tail = &r->barrier_head;
	snprintf(why, sizeof(why), "Redis unavailable: %s", redis_is_up(r) ?
	    "publisher not ready" : redis_down_reason(r));
	r->h->on_published(r->arg, b->token, 0, why);
	free(b);
}

/* The subscription that carried them is gone: no barrier will come back. */
static void
barriers_fail(struct redis *r)
{
	while (r->barrier_head != NULL) {
		struct barrier *b = r->barrier_head;
		char why[300];

		r->barrier_head = b->next;
		if (r->barrier_head == NULL)
			r->barrier_tail = &r->barrier_head;
		snprintf(why, sizeof(why), "Redis unavailable: %s", redis_down_reason(r));
		if (!r->freeing)
			r->h->on_published(r->arg, b->token, 0, why);
		free(b);
	}
}

/* Every reply on the subscriber after AUTH: the PSUBSCRIBE confirmations, then
 * pmessages, then NULL when the context goes away (ignored: the disconnect
 * callback says it). */
static void
on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_conn *c = priv;
	struct redis *r = c->r;
	redisReply *rep = reply, *pat, *chan, *msg;

	if (rep == NULL || c->ac != ac || c->state == CONN_KILLING || c->state == CONN_IDLE)
		return;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
		return;
	if (reply_is(rep->element[0], "psubscribe")) {
		if (c->state == CONN_READY && rep->element[1]->type == REDIS_REPLY_STRING &&
		    bytes_eq(rep->element[1]->str, (size_t)rep->element[1]->len, r->patterns[2]))
			barrier_back(r);
		else if (++c->confirmed == NPATTERNS && c->state == CONN_CONNECTING)
			conn_ready(c);
		return;
	}
	if (!reply_is(rep->element[0], "pmessage") || rep->elements != 4 || c->state != CONN_READY)
		return;
	pat = rep->element[1];
	chan = rep->element[2];
	msg = rep->element[3];
	if (pat->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING ||
	    msg->type != REDIS_REPLY_STRING)
		return;
	if (bytes_eq(pat->str, (size_t)pat->len, r->patterns[0])) {
		if ((size_t)chan->len < r->prefix_len ||
		    strncmp(chan->str, SSE_CHANNEL_NS, strlen(SSE_CHANNEL_NS)) == 0)
			return;
		r->h->on_message(r->arg, chan->str + r->prefix_len,
		    (size_t)chan->len - r->prefix_len, msg->str, (size_t)msg->len);
	} else if (bytes_eq(pat->str, (size_t)pat->len, r->patterns[1])) {
		if ((size_t)chan->len < r->meta_prefix_len)
			return;
		r->h->on_meta(r->arg, chan->str + r->meta_prefix_len,
		    (size_t)chan->len - r->meta_prefix_len, msg->str, (size_t)msg->len);
	} else if (bytes_eq(pat->str, (size_t)pat->len, r->patterns[2])) {
		on_probe_back(r, msg->str, (size_t)msg->len);
	}
}

static void
on_exec(redisAsyncContext *ac, void *reply, void *priv)
{
	struct ticket *t = priv;
	struct redis *r = t->r;
	uint64_t token = t->token;
	redisReply *rep = reply;
	char why[256];

	(void)ac;
	free(t);
	if (r->freeing)
		return;
	if (rep == NULL) {
		snprintf(why, sizeof(why), "connection lost before Redis answered: %.200s",
		    r->reason[0] ? r->reason : "closed");
		r->h->on_published(r->arg, token, 0, why);
	} else if (rep->type == REDIS_REPLY_ARRAY) {
		r->h->on_published(r->arg, token, 1, "");
	} else if (rep->type == REDIS_REPLY_ERROR) {
		error_reason(why, sizeof(why), "Redis refused the publish", rep->str);
		r->h->on_published(r->arg, token, 0, why);
	} else {
		r->h->on_published(r->arg, token, 0, "transaction aborted by Redis");
	}
}

static void
on_probe_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis *r = priv;
	redisReply *rep = reply;

	if (rep == NULL || r->freeing || r->pub.ac != ac || rep->type != REDIS_REPLY_INTEGER)
		return;
	r->probe_acked = 1;
}

/* ---- host name lookup ---- */

static void
lookup_free(struct lookup *l)
{
	if (l == NULL)
		return;
	if (l->cb.ar_result != NULL)
		freeaddrinfo(l->cb.ar_result);
	free(l->name);
	free(l);
}

static int
lookup_start(struct redis *r)
{
	struct lookup *l = calloc(1, sizeof(*l));

	if (l == NULL || (l->name = strdup(r->conf->host)) == NULL) {
		free(l);
		return EAI_MEMORY;
	}
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->name;
	l->cb.ar_request = &l->hints;
	l->list[0] = &l->cb;
	if (getaddrinfo_a(GAI_NOWAIT, l->list, 1, NULL) != 0) {
		lookup_free(l);
		return EAI_AGAIN;
	}
	r->lookup = l;
	r->addr[0] = '\0';
	return 0;
}

/* 0 and r->addr set, EAI_INPROGRESS, or a gai error. IPv4 first, as hiredis. */
static int
lookup_poll(struct redis *r)
{
	struct lookup *l = r->lookup;
	struct addrinfo *ai, *pick = NULL;
	int err;

	if (l == NULL)
		return r->addr[0] ? 0 : EAI_AGAIN;
	err = gai_error(&l->cb);
	if (err == EAI_INPROGRESS)
		return err;
	r->lookup = NULL;
	if (err == 0) {
		for (ai = l->cb.ar_result; ai != NULL && pick == NULL; ai = ai->ai_next)
			if (ai->ai_family == AF_INET)
				pick = ai;
		for (ai = l->cb.ar_result; ai != NULL && pick == NULL; ai = ai->ai_next)
			if (ai->ai_family == AF_INET6)
				pick = ai;
		if (pick == NULL)
			err = EAI_NONAME;
		else if (pick->ai_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)pick->ai_addr)->sin_addr,
			    r->addr, sizeof(r->addr));
		else
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)pick->ai_addr)->sin6_addr,
			    r->addr, sizeof(r->addr));
	}
	lookup_free(l);
	return err;
}

/* Give up on a lookup in flight (redis_free(), i.e. process exit). One that
 * cannot be cancelled any more is waited for, at most a second (the loop is
 * not running any more); if it still runs, its memory is knowingly left to the
 * resolver thread that writes into it. */
static void
lookup_abandon(struct redis *r)
{
	struct lookup *l = r->lookup;
	struct timespec limit = { 1, 0 };
	const struct gaicb *list[1];

	r->lookup = NULL;
	if (l == NULL)
		return;
	if (gai_cancel(&l->cb) == EAI_NOTCANCELED) {
		list[0] = &l->cb;
		gai_suspend(list, 1, &limit);
		if (gai_error(&l->cb) == EAI_INPROGRESS)
			return;
	}
	lookup_free(l);
}

/* ---- connecting ---- */

static void conn_open(struct redis_conn *c, const char *addr);

static void
resolve_poll(struct redis_conn *c)
{
	struct redis *r = c->r;
	char why[192];
	int err = lookup_poll(r);

	if (err == 0) {
		conn_open(c, r->addr);
		return;
	}
	if (err == EAI_INPROGRESS) {
		if (ev_now_ms(r->loop) < c->deadline_ms) {
			conn_timer_arm(c, 5);
			return;
		}
		snprintf(why, sizeof(why), "no address for %s within %d ms", r->conf->host,
		    r->conf->connect_timeout_ms);
	} else {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", r->conf->host, gai_strerror(err));
	}
	snprintf(r->reason, sizeof(r->reason), "%s (%s)", why, c->name);
	log_failure(c, why);
	schedule_retry(c);
}

static void
conn_connect(struct redis_conn *c)
{
	struct redis *r = c->r;
	const struct conf_redis *cf = r->conf;
	char why[192];
	int err;

	if (c->tried)
		r->reconnects++;
	c->tried = 1;
	c->confirmed = 0;
	if (cf->socket != NULL || !r->host_is_name) {
		conn_open(c, NULL);
		return;
	}
	/* A fresh lookup per attempt, unless one is on its way already. */
	if (r->lookup == NULL && (err = lookup_start(r)) != 0) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", cf->host, gai_strerror(err));
		snprintf(r->reason, sizeof(r->reason), "%s (%s)", why, c->name);
		log_failure(c, why);
		schedule_retry(c);
		return;
	}
	c->state = CONN_RESOLVING;
	c->deadline_ms = ev_now_ms(r->loop) + (uint64_t)cf->connect_timeout_ms;
	resolve_poll(c);
}

/* addr: the numeric address to use for cf->host, NULL to use cf->host or
 * cf->socket as they are. */
static void
conn_open(struct redis_conn *c, const char *addr)
{
	struct redis *r = c->r;
	const struct conf_redis *cf = r->conf;
	redisAsyncContext *ac;
	char why[192];

	if (cf->socket != NULL)
		ac = redisAsyncConnectUnix(cf->socket);
	else
		ac = redisAsyncConnect(addr != NULL ? addr : cf->host, cf->port);
	if (ac == NULL || ac->err) {
		snprintf(why, sizeof(why), "%s", ac != NULL ? ac->c.errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);   /* not connected, no hooks: frees at once */
		snprintf(r->reason, sizeof(r->reason), "%s (%s)", why, c->name);
		log_failure(c, why);
		schedule_retry(c);
		return;
	}
	if (c->registered)   /* cannot happen: cleanup runs before every free */
		ev_io_del(r->loop, c->fd);
	c->registered = 0;
	c->events = 0;
	c->fd = ac->c.fd;
	c->ac = ac;
	c->state = CONN_CONNECTING;
	ac->data = c;
	ac->ev.data = c;
	ac->ev.addRead = hook_add_read;
	ac->ev.delRead = hook_del_read;
	ac->ev.addWrite = hook_add_write;
	ac->ev.delWrite = hook_del_write;
	ac->ev.cleanup = hook_cleanup;
	/* The hooks must be in place first: this one asks for write readiness to
	 * learn when the non-blocking connect() completes. */
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (c->state != CONN_CONNECTING)
		return;   /* a hook failed: conn_fail() took over */
	conn_timer_arm(c, (uint64_t)cf->connect_timeout_ms);

	if (cf->password != NULL) {
		const char *argv[2] = { "AUTH", cf->password };
		size_t argvlen[2] = { 4, strlen(cf->password) };

		if (redisAsyncCommandArgv(ac, on_auth, c, 2, argv, argvlen) != REDIS_OK)
			goto fail;
	}
	{
		/* Before PSUBSCRIBE: a subscribed connection takes no CLIENT command. */
		const char *argv[3] = { "CLIENT", "SETNAME", c->client_name };
		size_t argvlen[3] = { 6, 7, strlen(c->client_name) };

		if (redisAsyncCommandArgv(ac, on_setname, c, 3, argv, argvlen) != REDIS_OK)
			goto fail;
	}
	if (c->is_sub) {
		/* One command for all three: hiredis 0.14.1 files each pattern under
		 * the same callback, and Redis starts them together. */
		const char *argv[1 + NPATTERNS] = { "PSUBSCRIBE", r->patterns[0], r->patterns[1],
		    r->patterns[2] };
		size_t argvlen[1 + NPATTERNS] = { 10, strlen(r->patterns[0]),
		    strlen(r->patterns[1]), strlen(r->patterns[2]) };

		if (redisAsyncCommandArgv(ac, on_sub, c, 1 + NPATTERNS, argv, argvlen) != REDIS_OK)
			goto fail;
	} else {
		const char *argv[1] = { "PING" };
		size_t argvlen[1] = { 4 };

		if (redisAsyncCommandArgv(ac, on_ping, c, 1, argv, argvlen) != REDIS_OK)
			goto fail;
	}
	return;
fail:
	conn_fail(c, "cannot queue the handshake");
}

/* ---- probes ---- */

static void
on_probe_timer(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct redis *r = arg;
	char num[24], why[128];
	const char *argv[3];
	size_t argvlen[3];

	(void)loop;
	(void)t;
	if (!r->up)
		return;
	if (r->probe_out != 0) {
		r->probe_failures++;
		if (r->probe_acked)
			snprintf(why, sizeof(why), "subscriber deaf: probe not received within %d s",
			    r->conf->probe_interval);
		else
			snprintf(why, sizeof(why), "Redis did not answer the probe within %d s",
			    r->conf->probe_interval);
		log_warn("SSE: Redis probe failed, rebuilding the %s: %s",
		    r->probe_acked ? "subscriber" : "connections", why);
		if (!r->probe_acked)
			conn_fail(&r->pub, why);
		conn_fail(&r->sub, why);
		return;
	}
	snprintf(num, sizeof(num), "%llu", (unsigned long long)++r->probe_seq);
	argv[0] = "PUBLISH";
	argv[1] = r->patterns[2];   /* no glob character in it: also a channel name */
	argv[2] = num;
	argvlen[0] = 7;
	argvlen[1] = strlen(r->patterns[2]);
	argvlen[2] = strlen(num);
	if (redisAsyncCommandArgv(r->pub.ac, on_probe_reply, r, 3, argv, argvlen) != REDIS_OK) {
		conn_fail(&r->pub, "cannot queue a probe");
		return;
	}
	r->probe_out = r->probe_seq;
	r->probe_acked = 0;
	probe_timer_arm(r);
}

/* ---- publishing ---- */

int
redis_publish(struct redis *r, const char *resource, size_t resource_len,
    const char *meta, size_t meta_len, const char *data, size_t len, uint64_t token)
{
	redisAsyncContext *ac = r->pub.ac;
	size_t plen = r->prefix_len, mlen = r->meta_prefix_len;
	char *chan = NULL, *mchan = NULL;
	struct ticket *t = NULL;
	const char *argv[3];
	size_t argvlen[3];
	int sent = 0;

	if (!redis_is_up(r) || ac == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	chan = malloc(plen + resource_len);
	mchan = malloc(mlen + resource_len);
	t = malloc(sizeof(*t));
	if (chan == NULL || mchan == NULL || t == NULL)
		goto fail;
	memcpy(chan, r->patterns[0], plen);          /* "<prefix>*" minus the '*' */
	memcpy(chan + plen, resource, resource_len);
	memcpy(mchan, r->patterns[1], mlen);
	memcpy(mchan + mlen, resource, resource_len);
	t->r = r;
	t->token = token;

	argv[0] = "MULTI";
	argvlen[0] = 5;
	if (redisAsyncCommandArgv(ac, NULL, NULL, 1, argv, argvlen) != REDIS_OK)
		goto fail;
	sent = 1;
	/* Meta first: a subscriber reads it, then the payload right after it (no
	 * other client's command runs inside EXEC). */
	argv[0] = "PUBLISH";
	argvlen[0] = 7;
	argv[1] = mchan;
	argvlen[1] = mlen + resource_len;
	argv[2] = meta;
	argvlen[2] = meta_len;
	if (redisAsyncCommandArgv(ac, NULL, NULL, 3, argv, argvlen) != REDIS_OK)
		goto fail;
	argv[1] = chan;
	argvlen[1] = plen + resource_len;
	argv[2] = data;
	argvlen[2] = len;
	if (redisAsyncCommandArgv(ac, NULL, NULL, 3, argv, argvlen) != REDIS_OK)
		goto fail;
	argv[0] = "EXEC";
	argvlen[0] = 4;
	if (redisAsyncCommandArgv(ac, on_exec, t, 1, argv, argvlen) != REDIS_OK)
		goto fail;
	free(chan);
	free(mchan);
	return 0;

fail:
	/* Half a transaction on the wire: only a new connection discards it. */
	if (sent)
		conn_fail(&r->pub, "cannot queue a publish");
	free(chan);
	free(mchan);
	free(t);
	errno = ENOMEM;
	return -1;
}

void
redis_reset_publisher(struct redis *r, const char *reason)
{
	/* Only a ready publisher that stopped answering: one still connecting has
	 * its own connect timeout, and a publish that waited for a subscriber
	 * barrier (redis_sub_barrier()) times out without the publisher in it. */
	if (r->pub.state == CONN_READY)
		conn_fail(&r->pub, reason);
}

/* ---- life cycle ---- */

static char *
concat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

static void
conn_init(struct redis_conn *c, struct redis *r, const char *name, int is_sub)
{
	c->r = r;
	c->name = name;
	c->is_sub = is_sub;
	c->state = CONN_IDLE;
	c->fd = -1;
	ev_timer_init(&c->timer, on_timer, c);
}

struct redis *
redis_new(struct ev_loop *loop, const struct conf_redis *conf, const char *origin,
    const struct redis_handler *h, void *arg)
{
	struct redis *r = calloc(1, sizeof(*r));
	const char *prefix = conf->channel_prefix != NULL ? conf->channel_prefix : "sse:";
	size_t i;

	if (r == NULL)
		return NULL;
	r->loop = loop;
	r->barrier_tail = &r->barrier_head;
	r->conf = conf;
	r->h = h;
	r->arg = arg;
	ev_timer_init(&r->probe_timer, on_probe_timer, r);
	if (conf->socket == NULL && conf->host != NULL) {
		unsigned char buf[sizeof(struct in6_addr)];

		r->host_is_name = inet_pton(AF_INET, conf->host, buf) != 1 &&
		    inet_pton(AF_INET6, conf->host, buf) != 1;
	}
	r->prefix_len = strlen(prefix);
	r->meta_prefix_len = strlen(SSE_CHANNEL_NS "meta:") + r->prefix_len;
	r->patterns[0] = concat3(prefix, "*", "");
	r->patterns[1] = concat3(SSE_CHANNEL_NS "meta:", prefix, "*");
	r->patterns[2] = concat3(SSE_CHANNEL_NS "probe:", origin, "");
	for (i = 0; i < NPATTERNS; i++) {
		if (r->patterns[i] == NULL) {
			redis_free(r);
			return NULL;
		}
	}
	for (i = 0; origin[i] != '\0'; i++)
		r->rnd = (r->rnd ^ (unsigned char)origin[i]) * 1099511628211ULL;
	r->rnd ^= (uint64_t)(uintptr_t)r;
	if (r->rnd == 0)
		r->rnd = 88172645463325252ULL;
	conn_init(&r->sub, r, "subscriber", 1);
	conn_init(&r->pub, r, "publisher", 0);
	snprintf(r->sub.client_name, sizeof(r->sub.client_name), "sse-fcgi:subscriber:%.32s", origin);
	snprintf(r->pub.client_name, sizeof(r->pub.client_name), "sse-fcgi:publisher:%.32s", origin);
	conn_connect(&r->sub);
	conn_connect(&r->pub);
	return r;
}

void
redis_free(struct redis *r)
{
	struct redis_conn *conns[2];
	size_t i;

	if (r == NULL)
		return;
	r->freeing = 1;
	conns[0] = &r->sub;
	conns[1] = &r->pub;
	ev_timer_stop(r->loop, &r->probe_timer);
	r->probe_timer_lost = 0;
	for (i = 0; i < 2; i++) {
		struct redis_conn *c = conns[i];
		redisAsyncContext *ac = c->ac;

		if (c->r == NULL)
			continue;   /* redis_new failed before conn_init */
		ev_timer_stop(r->loop, &c->timer);
		c->ac = NULL;
		c->state = CONN_KILLING;
		if (ac != NULL)
			redisAsyncFree(ac);   /* NULL replies free the tickets */
	}
	lookup_abandon(r);
	barriers_fail(r);   /* freeing: frees them without calling the handler */
	for (i = 0; i < NPATTERNS; i++)
		free(r->patterns[i]);
	free(r);
}

/* ---- history: event ids assigned by Redis ---- */

/*
 * Two Lua scripts keep a resource's history (see redis.h). Each runs atomically, so the
 * id an event gets, its place in the history and its publication are one step: two
 * publishers can never get the same id, nor subscribers see an order that differs from
 * the ids. Sent with EVALSHA; the SHA1 comes from a SCRIPT LOAD sent before the first
 * use, and a NOSCRIPT answer (Redis restarted, SCRIPT FLUSH) resends the call as EVAL.
 *
 * Publish. KEYS: head hash, history stream, meta channel, payload channel. ARGV: meta
 * record, payload, history_size, history_ttl, event name ("" = none). The entry keeps
 * the meta record too: a catch-up knows the publishes of its own process by it.
 *   The head hash holds s (the last seq) and e (the epoch). A missing hash (first publish,
 *   expired, or Redis lost its data) starts a new epoch from Redis's clock, and any stale
 *   stream with it: a new epoch's seqs start at 1 again, and its ids differ from every
 *   id of the lost history by their epoch.
 */
static const char script_publish[] =
    "local seq = redis.call('HINCRBY', KEYS[1], 's', 1)\n"
    "local epoch = redis.call('HGET', KEYS[1], 'e')\n"
    "if seq == 1 or not epoch then\n"
    "  local t = redis.call('TIME')\n"
    "  epoch = t[1] .. string.format('%06d', tonumber(t[2]))\n"
    "  redis.call('HSET', KEYS[1], 'e', epoch)\n"
    "  redis.call('DEL', KEYS[2])\n"
    "end\n"
    "local id = epoch .. '-' .. seq\n"
    "if ARGV[5] == '' then\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'd', ARGV[2], 'm', ARGV[1])\n"
    "else\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'd', ARGV[2], 'm', ARGV[1],\n"
    "    'e', ARGV[5])\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "redis.call('PUBLISH', KEYS[3], ARGV[1] .. ' i=' .. id)\n"
    "redis.call('PUBLISH', KEYS[4], ARGV[2])\n"
    "return id\n";

/*
 * Read. KEYS: head hash, history stream. ARGV: after (a seq), count, the client's epoch.
 * Returns {} without a history, else {epoch, head seq, first kept seq (0 = none),
 * entries after `after` (only when the epochs match), at most count}. One snapshot: the
 * head and the entries agree.
 */
static const char script_read[] =
    "local h = redis.call('HMGET', KEYS[1], 'e', 's')\n"
    "if not h[1] or not h[2] then return {} end\n"
    "local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "local f = '0'\n"
    "if #first > 0 then f = string.match(first[1][1], '^(%d+)') end\n"
    "local items = {}\n"
    "if h[1] == ARGV[3] then\n"
    "  items = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])\n"
    "end\n"
    "return {h[1], h[2], f, items}\n";

enum { SCRIPT_PUBLISH, SCRIPT_READ };
static const char *const scripts[2] = { script_publish, script_read };

#define CALL_ARGS 12   /* EVALSHA sha 4 KEYS[4] ARGV[5]: the publish */

/* One script call, with copies of its arguments so that a NOSCRIPT answer can be
 * resent as EVAL. argv[0] and argv[1] are set at send time. */
struct call {
	struct redis *r;
	int which;
	int eval;                 /* sent as EVAL (after NOSCRIPT, or before the SHA is known) */
	uint64_t token;
	redis_history_fn *fn;     /* SCRIPT_READ */
	void *arg;
	int argc;
	char *argv[CALL_ARGS];
	size_t argvlen[CALL_ARGS];
};

static void
call_free(struct call *c)
{
	if (c == NULL)
		return;
	for (int i = 2; i < c->argc; i++)
		free(c->argv[i]);
	free(c);
}

static int
call_arg(struct call *c, const char *a, size_t len)
{
	char *p = c->argc < CALL_ARGS ? malloc(len + 1) : NULL;

	if (p == NULL)
		return -1;
	memcpy(p, a, len);
	p[len] = '\0';
	c->argv[c->argc] = p;
	c->argvlen[c->argc] = len;
	c->argc++;
	return 0;
}

static int
call_num(struct call *c, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);

	return call_arg(c, num, (size_t)n);
}

/* "<ns><what>:<prefix><resource>" */
static int
call_key(struct call *c, const char *what, const char *resource, size_t resource_len)
{
	const struct redis *r = c->r;
	size_t ns = strlen(SSE_CHANNEL_NS), wl = strlen(what);
	size_t len = ns + wl + r->prefix_len + resource_len;
	char *p = c->argc < CALL_ARGS ? malloc(len + 1) : NULL;

	if (p == NULL)
		return -1;
	memcpy(p, SSE_CHANNEL_NS, ns);
	memcpy(p + ns, what, wl);
	memcpy(p + ns + wl, r->patterns[0], r->prefix_len);
	memcpy(p + ns + wl + r->prefix_len, resource, resource_len);
	p[len] = '\0';
	c->argv[c->argc] = p;
	c->argvlen[c->argc] = len;
	c->argc++;
	return 0;
}

static void on_call(redisAsyncContext *ac, void *reply, void *priv);

static void
on_script_load(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis *r = ac->data != NULL ? ((struct redis_conn *)ac->data)->r : NULL;
	redisReply *rep = reply;
	int which = (int)(intptr_t)priv;

	if (r == NULL || r->freeing)
		return;
	r->sha_loading[which] = 0;
	if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 40)
		memcpy(r->sha[which], rep->str, 41);
}

static int
call_send(struct call *c)
{
	struct redis *r = c->r;
	redisAsyncContext *ac = r->pub.ac;

	if (!redis_is_up(r) || ac == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	if (r->sha[c->which][0] == '\0') {
		c->eval = 1;
		if (!r->sha_loading[c->which]) {
			const char *argv[3] = { "SCRIPT", "LOAD", scripts[c->which] };
			size_t argvlen[3] = { 6, 4, strlen(scripts[c->which]) };

			if (redisAsyncCommandArgv(ac, on_script_load, (void *)(intptr_t)c->which, 3,
			    argv, argvlen) == REDIS_OK)
				r->sha_loading[c->which] = 1;
		}
	}
	if (c->eval) {
		c->argv[0] = "EVAL";
		c->argvlen[0] = 4;
		c->argv[1] = (char *)scripts[c->which];
		c->argvlen[1] = strlen(scripts[c->which]);
	} else {
		c->argv[0] = "EVALSHA";
		c->argvlen[0] = 7;
		c->argv[1] = r->sha[c->which];
		c->argvlen[1] = 40;
	}
	if (redisAsyncCommandArgv(ac, on_call, c, c->argc, (const char **)c->argv,
	    c->argvlen) != REDIS_OK) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static uint64_t
parse_u64(const char *s, size_t len, int *ok)
{
	uint64_t v = 0;

	*ok = len > 0 && len <= 20;
	for (size_t i = 0; i < len && *ok; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			*ok = 0;
		else
			v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static int
is_str(const redisReply *x)
{
	return x != NULL && (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS);
}

/* The read script's answer as plain data; -1 when it is not what the script returns. */
static int
history_parse(const redisReply *rep, struct redis_history *h, struct redis_history_item **items)
{
	const redisReply *list;
	int ok;

	memset(h, 0, sizeof(*h));
	*items = NULL;
	if (rep->type != REDIS_REPLY_ARRAY)
		return -1;
	if (rep->elements == 0)
		return 0;   /* no history: h->epoch NULL */
	if (rep->elements != 4 || !is_str(rep->element[0]) || !is_str(rep->element[1]) ||
	    !is_str(rep->element[2]) || rep->element[3]->type != REDIS_REPLY_ARRAY)
		return -1;
	h->epoch = rep->element[0]->str;
	h->epoch_len = (size_t)rep->element[0]->len;
	h->head = parse_u64(rep->element[1]->str, (size_t)rep->element[1]->len, &ok);
	if (!ok)
		return -1;
	h->first = parse_u64(rep->element[2]->str, (size_t)rep->element[2]->len, &ok);
	if (!ok)
		return -1;
	list = rep->element[3];
	if (list->elements == 0)
		return 0;
	*items = calloc(list->elements, sizeof(**items));
	if (*items == NULL)
		return -1;
	for (size_t i = 0; i < list->elements; i++) {
		const redisReply *e = list->element[i], *f;
		struct redis_history_item *it = &(*items)[i];
		const char *dash;

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
		    e->element[1]->type != REDIS_REPLY_ARRAY)
			return -1;
		dash = memchr(e->element[0]->str, '-', (size_t)e->element[0]->len);
		if (dash == NULL)
			return -1;
		it->seq = parse_u64(e->element[0]->str, (size_t)(dash - e->element[0]->str), &ok);
		if (!ok)
			return -1;
		f = e->element[1];
		for (size_t k = 0; k + 1 < f->elements; k += 2) {
			const redisReply *name = f->element[k], *val = f->element[k + 1];

			if (!is_str(name) || !is_str(val) || name->len != 1)
				return -1;
			if (name->str[0] == 'd') {
				it->data = val->str;
				it->len = (size_t)val->len;
			} else if (name->str[0] == 'e') {
				it->event = val->str;
				it->event_len = (size_t)val->len;
			} else if (name->str[0] == 'm') {
				it->meta = val->str;
				it->meta_len = (size_t)val->len;
			}
		}
		if (it->data == NULL)
			return -1;
	}
	h->items = *items;
	h->n = list->elements;
	return 0;
}

static void
on_call(redisAsyncContext *ac, void *reply, void *priv)
{
	struct call *c = priv;
	struct redis *r = c->r;
	redisReply *rep = reply;
	char why[256];

	(void)ac;
	if (r->freeing) {
		call_free(c);
		return;
	}
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && !c->eval &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		/* The script cache was emptied: send the script itself, and load it again. */
		r->sha[c->which][0] = '\0';
		c->eval = 1;
		if (call_send(c) == 0)
			return;
	}
	if (c->which == SCRIPT_PUBLISH) {
		if (rep == NULL) {
			snprintf(why, sizeof(why), "connection lost before Redis answered: %.200s",
			    r->reason[0] ? r->reason : "closed");
			r->h->on_published(r->arg, c->token, 0, why);
		} else if (rep->type == REDIS_REPLY_ERROR) {
			error_reason(why, sizeof(why), "Redis refused the publish", rep->str);
			r->h->on_published(r->arg, c->token, 0, why);
		} else {
			if (is_str(rep) && r->h->on_event_id != NULL)
				r->h->on_event_id(r->arg, c->token, rep->str, rep->len);
			r->h->on_published(r->arg, c->token, is_str(rep), is_str(rep) ? "" :
			    "unexpected answer to the publish script");
		}
	} else {
		struct redis_history h;
		struct redis_history_item *items = NULL;

		if (rep == NULL || rep->type == REDIS_REPLY_ERROR || history_parse(rep, &h, &items) == -1) {
			if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
				log_warn("reading history from Redis: %s", rep->str);
			c->fn(c->arg, c->token, NULL);
		} else {
			c->fn(c->arg, c->token, &h);
		}
		free(items);
	}
	call_free(c);
}

int
redis_publish_history(struct redis *r, const char *resource, size_t resource_len,
    const char *meta, size_t meta_len, const char *event, size_t event_len,
    const char *data, size_t len, unsigned size, unsigned ttl, uint64_t token)
{
	struct call *c = calloc(1, sizeof(*c));

	if (c == NULL)
		goto fail;
	c->r = r;
	c->which = SCRIPT_PUBLISH;
	c->token = token;
	c->argc = 2;
	if (call_arg(c, "4", 1) == -1 ||
	    call_key(c, "head:", resource, resource_len) == -1 ||
	    call_key(c, "history:", resource, resource_len) == -1 ||
	    call_key(c, "meta:", resource, resource_len) == -1 ||
	    call_key(c, "", resource, resource_len) == -1 ||
	    call_arg(c, meta, meta_len) == -1 ||
	    call_arg(c, data, len) == -1 ||
	    call_num(c, size) == -1 || call_num(c, ttl) == -1 ||
	    call_arg(c, event != NULL ? event : "", event != NULL ? event_len : 0) == -1)
		goto fail;
	/* The payload channel is "<prefix><resource>" itself: drop the namespace. */
	memmove(c->argv[6], c->argv[6] + strlen(SSE_CHANNEL_NS), c->argvlen[6] -
	    strlen(SSE_CHANNEL_NS) + 1);
	c->argvlen[6] -= strlen(SSE_CHANNEL_NS);
	if (call_send(c) == -1)
		goto fail_sent;
	return 0;
fail:
	errno = ENOMEM;
fail_sent:
	call_free(c);
	return -1;
}

int
redis_history_read(struct redis *r, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after, unsigned count,
    redis_history_fn *fn, void *arg, uint64_t token)
{
	struct call *c = calloc(1, sizeof(*c));

	if (c == NULL)
		goto fail;
	c->r = r;
	c->which = SCRIPT_READ;
	c->token = token;
	c->fn = fn;
	c->arg = arg;
	c->argc = 2;
	if (call_arg(c, "2", 1) == -1 ||
	    call_key(c, "head:", resource, resource_len) == -1 ||
	    call_key(c, "history:", resource, resource_len) == -1 ||
	    call_num(c, after) == -1 || call_num(c, count) == -1 ||
	    call_arg(c, epoch != NULL ? epoch : "", epoch != NULL ? epoch_len : 0) == -1)
		goto fail;
	if (call_send(c) == -1)
		goto fail_sent;
	return 0;
fail:
	errno = ENOMEM;
fail_sent:
	call_free(c);
	return -1;
}
