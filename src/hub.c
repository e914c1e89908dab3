/*
 * hub — see hub.h.
 *
 * Not configured: a publish is delivered locally at once, answered "local"
 * without fallback.
 *
 * Configured, not up (connecting, lost, refused): delivered locally at once,
 * answered "local" with fallback and the connection's last failure as reason.
 *
 * Up: the publish gets the next sequence number, enters the ledger (dedup.c),
 * and goes to Redis with its meta record. The ledger then delivers it locally
 * exactly once, when the first of these happens:
 *   - the subscriber brings back our meta (origin, seq) followed by the payload:
 *     delivered from the echo, answered "redis";
 *   - Redis refuses the EXEC, or the publisher is lost before EXEC is answered
 *     (and no echo came): delivered now, answered "local", fallback, reason;
 *   - publish_timeout_ms passes: delivered now; answered "redis" if EXEC was
 *     answered (the subscriber is late, Redis has it), else "local" with
 *     fallback, and the publisher is rebuilt (it does not answer);
 *   - the subscription is lost: delivered now, answered once EXEC says how.
 * Whatever arrives later for that (origin, seq) is dropped (dedup_echo()).
 *
 * Pairing on the subscriber: a meta record is kept until the next payload
 * message; that payload is ours (or a peer sse-fcgi's, with its event name)
 * when it is on the same resource. A payload without a meta record just before
 * it is a foreign publish (redis-cli, a seed peer): delivered verbatim, no event.
 * The kept record lives as long as the subscriber connection that brought it
 * (reset by on_sub_lost() only): the publisher connection coming and going in
 * between changes nothing on the subscriber's byte stream.
 *
 * Order across a mode change (SPEC: publishes sent one after another's reply
 * reach every stream in that order). The subscription can be confirmed while
 * we are not up (the publisher is still connecting, or was lost alone), so
 * other processes' publishes keep arriving on it while ours are delivered
 * locally at once. A publish P answered "redis" elsewhere is in our subscriber
 * socket before its publisher hears that answer, hence before any publish sent
 * after that answer can reach us; but the loop may serve the FastCGI request
 * first (select serves the lowest descriptor, the listen socket, first). The
 * same holds one step earlier: Redis counts us as subscribed once it has run
 * our PSUBSCRIBE, and queues messages right behind confirmations we have not
 * read yet. So every delivery that does not come from the subscriber itself
 * (a local publish, a publish that failed or timed out) first takes in what
 * the subscriber socket already holds: sub_catch_up(). A local publish then
 * looks again whether we are up (the confirmations may have made us so).
 * That is not all: Redis writes a message to each subscriber in turn, and
 * under load the other process may hear its echo, answer, and the next
 * publish reach us before Redis's write to us has. So a publish while we are
 * subscribed but not up waits in the ledger for a barrier on the subscriber
 * (redis_sub_barrier(): Redis answers it behind everything it queued for us)
 * and is delivered, answered "local", when that comes back.
 */
#include "hub.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dedup.h"
#include "ev.h"
#include "eventid.h"
#include "log.h"
#include "redis.h"

#define ORIGIN_LEN 16
#define RESOURCE_MAX 128   /* route.h: 1..128 bytes */

struct hub {
	struct ev_loop *loop;
	const struct conf *conf;
	hub_deliver_fn *on_deliver;
	void *arg;
	struct redis *redis;          /* NULL: single-server mode */
	struct dedup *ledger;
	struct ev_timer deadline;     /* earliest ledger deadline */
	char origin[ORIGIN_LEN + 1];
	uint64_t seq;
	int freeing;
	unsigned long fallbacks;
	/* The meta record waiting for its payload. */
	int meta_valid;
	char meta_resource[RESOURCE_MAX];
	size_t meta_resource_len;
	int meta_own;
	uint64_t meta_seq;
	char meta_event[DEDUP_EVENT_MAX];
	size_t meta_event_len;
	int meta_has_event;
	char meta_id[EVENTID_MAX + 1];   /* the meta record's " i=" id, "" when none */
	size_t meta_id_len;
	/* The id of the own echo being delivered through the ledger, NULL otherwise. */
	const char *echo_id;
	size_t echo_id_len;
	int sub_was_lost;             /* since the last resync */
	void (*on_resync)(void *arg);
	void *resync_arg;
	char reason[320];             /* JSON-safe reason of the answer being given */
};

static size_t
deliver_id(struct hub *hub, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len,
    const char *id, size_t id_len, int own)
{
	if (hub->freeing)
		return 0;
	return hub->on_deliver(hub->arg, resource, resource_len, event, event_len, data, len,
	    id, id_len, own);
}

/* This process's own publish, delivered locally without Redis. */
static size_t
deliver_now(struct hub *hub, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len)
{
	return deliver_id(hub, resource, resource_len, event, event_len, data, len, NULL, 0, 1);
}

/* The server writes reason into JSON as it is: keep it to printable ASCII
 * without quotes or backslashes. */
static const char *
json_safe(struct hub *hub, const char *fmt, const char *a, const char *b)
{
	char *p;

	snprintf(hub->reason, sizeof(hub->reason), fmt, a, b);
	for (p = hub->reason; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c >= 0x7f)
			*p = c < 0x20 ? ' ' : '?';
		else if (c == '"')
			*p = '\'';
		else if (c == '\\')
			*p = '/';
	}
	return hub->reason;
}

static void
arm_deadline(struct hub *hub)
{
	uint64_t next, now;

	if (hub->ledger == NULL || hub->freeing)
		return;
	next = dedup_next_deadline(hub->ledger);
	if (next == UINT64_MAX) {
		ev_timer_stop(hub->loop, &hub->deadline);
		return;
	}
	now = ev_now_ms(hub->loop);
	/* Without memory for the timer heap the ledger's deadlines wait for the next
	 * publish, echo or EXEC, which all come back here. */
	if (ev_timer_start(hub->loop, &hub->deadline, next > now ? next - now : 0) == -1)
		log_warn("SSE: the publish ledger's deadline timer could not be armed (%s); "
		    "retried at the next publish", strerror(errno));
}

/* Deliver what the subscriber already received before a local delivery (see
 * "Order across a mode change" above). Not from the ledger's callbacks: what it
 * reads goes to the ledger (echoes, a lost subscription). */
static void
sub_catch_up(struct hub *hub)
{
	if (hub->redis != NULL && !hub->freeing)
		redis_sub_drain(hub->redis);
}

static void
on_deadline(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct hub *hub = arg;

	(void)t;
	sub_catch_up(hub);
	dedup_expire(hub->ledger, ev_now_ms(loop));
	arm_deadline(hub);
}

/* ---- ledger callbacks ---- */

static size_t
ledger_deliver(void *arg, const struct dedup_entry *e)
{
	struct hub *hub = arg;

	/* Only an echo carries the id Redis gave it; the other paths deliver without one
	 * (the browser's last id then stays where it was). And only to its own entry:
	 * dedup_echo() first delivers older entries that never came back (a publish
	 * that waited for a subscriber barrier, one this subscription skipped), and
	 * the echo's id on one of them would make the stream drop the echo itself as
	 * an id it already has. */
	int own = hub->echo_id != NULL && e->seq == hub->meta_seq;

	return deliver_id(hub, e->resource, e->resource_len, e->event, e->event_len,
	    e->data, e->len, own ? hub->echo_id : NULL, own ? hub->echo_id_len : 0, 1);
}

static void
ledger_finish(void *arg, struct dedup_entry *e, enum dedup_outcome how, const char *err)
{
	struct hub *hub = arg;
	struct hub_result res = { "redis", e->delivered_count, 0, "" };
	hub_done_fn *done = (hub_done_fn *)e->owner_fn;
	char ms[16];

	switch (how) {
	case DEDUP_REDIS:
		if (!e->echoed)
			log_info("SSE: own publish %llu to %.*s not echoed by the subscriber in time, "
			    "delivered locally", (unsigned long long)e->seq, (int)e->resource_len,
			    e->resource);
		break;
	case DEDUP_FAILED:
		res.mode = "local";
		res.fallback = 1;
		res.reason = json_safe(hub, "%s%s", err[0] ? err : "Redis error", "");
		hub->fallbacks++;
		/* A publish that waited for a subscriber barrier because we were not
		 * up is logged as any other publish while down: at debug level. */
		if (strncmp(err, "Redis unavailable", 17) == 0)
			log_debug("Failed to publish to Redis, falling back to local: %s", res.reason);
		else
			log_warn("Failed to publish to Redis, falling back to local: %s", res.reason);
		break;
	case DEDUP_TIMEOUT:
		res.mode = "local";
		res.fallback = 1;
		snprintf(ms, sizeof(ms), "%d", hub->conf->redis.publish_timeout_ms);
		res.reason = json_safe(hub, "no answer from Redis within %s ms%s", ms, "");
		hub->fallbacks++;
		log_warn("Failed to publish to Redis, falling back to local: %s", res.reason);
		if (!hub->freeing)
			redis_reset_publisher(hub->redis, res.reason);
		break;
	}
	if (!e->cancelled && done != NULL && !hub->freeing)
		done(e->owner, &res);
}

static const struct dedup_ops ledger_ops = { ledger_deliver, ledger_finish };

/* ---- redis callbacks ---- */

/* Nothing to do on the subscriber side: the pairing below belongs to the
 * subscriber connection, and a mode change may be the publisher's alone (a
 * payload whose meta record was read just before the publisher dropped must
 * still pair with it: forgetting it would deliver the payload as foreign,
 * without its name, and the ledger would deliver it again). on_sub_lost()
 * ends the pairing. */
static void
on_mode(void *arg, int up)
{
	struct hub *hub = arg;

	/* Back after the subscription was lost: open streams may have missed events. */
	if (up && hub->sub_was_lost && hub->on_resync != NULL && !hub->freeing) {
		hub->sub_was_lost = 0;
		hub->on_resync(hub->resync_arg);
	}
}

static void
on_sub_lost(void *arg)
{
	struct hub *hub = arg;

	hub->meta_valid = 0;
	hub->sub_was_lost = 1;
	dedup_sub_lost(hub->ledger);
	arm_deadline(hub);
}

static void
on_meta(void *arg, const char *resource, size_t resource_len, const char *meta, size_t meta_len)
{
	struct hub *hub = arg;
	struct dedup_meta m;

	hub->meta_valid = 0;
	if (resource_len == 0 || resource_len > sizeof(hub->meta_resource) ||
	    dedup_meta_decode(meta, meta_len, &m) == -1)
		return;
	memcpy(hub->meta_resource, resource, resource_len);
	hub->meta_resource_len = resource_len;
	hub->meta_own = m.origin_len == ORIGIN_LEN && memcmp(m.origin, hub->origin, ORIGIN_LEN) == 0;
	hub->meta_seq = m.seq;
	hub->meta_has_event = m.event != NULL;
	if (m.event != NULL) {
		memcpy(hub->meta_event, m.event, m.event_len);
		hub->meta_event_len = m.event_len;
	}
	{
		struct eventid parsed;

		hub->meta_id_len = 0;
		if (m.id != NULL && eventid_parse(&parsed, m.id, m.id_len) == 0) {
			memcpy(hub->meta_id, m.id, m.id_len);
			hub->meta_id_len = m.id_len;
		}
		hub->meta_id[hub->meta_id_len] = '\0';
	}
	hub->meta_valid = 1;
}

static void
on_message(void *arg, const char *resource, size_t resource_len, const char *data, size_t len)
{
	struct hub *hub = arg;
	int paired = hub->meta_valid && hub->meta_resource_len == resource_len &&
	    memcmp(hub->meta_resource, resource, resource_len) == 0;

	hub->meta_valid = 0;
	if (paired && hub->meta_own) {
		/* Our own publish: the ledger decides (deliver now, or drop a copy
		 * that was already delivered or answered). */
		hub->echo_id = hub->meta_id_len > 0 ? hub->meta_id : NULL;
		hub->echo_id_len = hub->meta_id_len;
		dedup_echo(hub->ledger, hub->meta_seq);
		hub->echo_id = NULL;
		hub->echo_id_len = 0;
		arm_deadline(hub);
		return;
	}
	if (paired)
		deliver_id(hub, resource, resource_len, hub->meta_has_event ? hub->meta_event : NULL,
		    hub->meta_has_event ? hub->meta_event_len : 0, data, len,
		    hub->meta_id_len > 0 ? hub->meta_id : NULL, hub->meta_id_len, 0);
	else
		deliver_id(hub, resource, resource_len, NULL, 0, data, len, NULL, 0, 0);
}

static void
on_published(void *arg, uint64_t token, int ok, const char *reason)
{
	struct hub *hub = arg;

	if (!ok)
		sub_catch_up(hub);   /* token is delivered locally now */
	dedup_exec(hub->ledger, token, ok, reason);
	arm_deadline(hub);
}

static void
on_event_id(void *arg, uint64_t token, const char *id, size_t id_len)
{
	struct hub *hub = arg;

	dedup_set_id(hub->ledger, token, id, id_len);
}

static const struct redis_handler redis_ops = {
	on_mode, on_sub_lost, on_message, on_meta, on_published, on_event_id
};

/* ---- API ---- */

static void
make_origin(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[ORIGIN_LEN / 2];
	size_t i;

	if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
		/* Early boot without entropy: still unique enough per process. */
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
		    ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
		for (i = 0; i < sizeof(b); i++) {
			x ^= x >> 33;
			x *= 0xff51afd7ed558ccdULL;
			b[i] = (unsigned char)(x >> 56);
		}
	}
	for (i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[ORIGIN_LEN] = '\0';
}

struct hub *
hub_new(struct ev_loop *loop, const struct conf *conf, hub_deliver_fn *on_deliver, void *arg)
{
	struct hub *hub = calloc(1, sizeof(*hub));

	if (hub == NULL)
		return NULL;
	hub->loop = loop;
	hub->conf = conf;
	hub->on_deliver = on_deliver;
	hub->arg = arg;
	ev_timer_init(&hub->deadline, on_deadline, hub);
	if (!conf_redis_is_configured(conf)) {
		log_notice("SSE: Redis not configured, using single-server mode");
		return hub;
	}
	make_origin(hub->origin);
	hub->ledger = dedup_new(&ledger_ops, hub);
	if (hub->ledger == NULL)
		goto fail;
	if (conf->redis.socket != NULL)
		log_info("SSE: Redis at unix:%s, channels %s*, origin %s", conf->redis.socket,
		    conf->redis.channel_prefix, hub->origin);
	else
		log_info("SSE: Redis at %s:%d, channels %s*, origin %s", conf->redis.host,
		    conf->redis.port, conf->redis.channel_prefix, hub->origin);
	hub->redis = redis_new(loop, &conf->redis, hub->origin, &redis_ops, hub);
	if (hub->redis == NULL)
		goto fail;
	return hub;
fail:
	hub_free(hub);
	return NULL;
}

void
hub_free(struct hub *hub)
{
	if (hub == NULL)
		return;
	hub->freeing = 1;
	ev_timer_stop(hub->loop, &hub->deadline);
	redis_free(hub->redis);
	dedup_free(hub->ledger);
	free(hub);
}

int
hub_publish(struct hub *hub, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len,
    hub_done_fn *done, void *arg)
{
	struct hub_result res = { "local", 0, 0, "" };
	char meta[DEDUP_META_MAX];
	size_t meta_len;
	uint64_t seq;

	if (hub->redis == NULL) {
		res.delivered = deliver_now(hub, resource, resource_len, event, event_len, data, len);
		done(arg, &res);
		return 0;
	}
	redis_timers_retry(hub->redis);
	if (!redis_is_up(hub->redis))
		sub_catch_up(hub);   /* may find us up, or lose the subscription */
	if (!redis_is_up(hub->redis) && redis_sub_is_ready(hub->redis)) {
		/* Subscribed but not up: what the socket held is not all Redis sent us
		 * (its write to us may lag its answer to the other process). Wait for
		 * a barrier on the subscriber; the ledger delivers this publish when it
		 * comes back (on_published, !ok: answered "local"), at the deadline,
		 * or when the subscription is lost. */
		seq = hub->seq + 1;
		if (dedup_add(hub->ledger, seq, ev_now_ms(hub->loop) +
		    (uint64_t)hub->conf->redis.publish_timeout_ms, resource, resource_len, event,
		    event_len, data, len, (void (*)(void))done, arg) == NULL) {
			errno = ENOMEM;
			return -1;
		}
		hub->seq = seq;
		if (redis_sub_barrier(hub->redis, seq) == -1)
			dedup_exec(hub->ledger, seq, 0, "Redis unavailable: out of memory");
		arm_deadline(hub);
		return 0;
	}
	if (!redis_is_up(hub->redis)) {
		res.delivered = deliver_now(hub, resource, resource_len, event, event_len, data, len);
		res.fallback = 1;
		res.reason = json_safe(hub, "Redis unavailable: %s%s", redis_down_reason(hub->redis), "");
		hub->fallbacks++;
		log_debug("Failed to publish to Redis, falling back to local: %s", res.reason);
		done(arg, &res);
		return 0;
	}
	seq = hub->seq + 1;
	meta_len = dedup_meta_encode(meta, sizeof(meta), hub->origin, ORIGIN_LEN, seq, event,
	    event != NULL ? event_len : 0);
	if (meta_len == 0) {
		/* The router only passes valid event names; never reached. */
		errno = EINVAL;
		return -1;
	}
	if (dedup_add(hub->ledger, seq, ev_now_ms(hub->loop) +
	    (uint64_t)hub->conf->redis.publish_timeout_ms, resource, resource_len, event,
	    event_len, data, len, (void (*)(void))done, arg) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	hub->seq = seq;
	/* In the ledger before the commands are written: see dedup.c, deliver(). */
	if ((hub->conf->history_size > 0 ?
	    redis_publish_history(hub->redis, resource, resource_len, meta, meta_len, event,
	    event != NULL ? event_len : 0, data, len, (unsigned)hub->conf->history_size,
	    (unsigned)hub->conf->history_ttl, seq) :
	    redis_publish(hub->redis, resource, resource_len, meta, meta_len, data, len, seq)) == -1)
		dedup_exec(hub->ledger, seq, 0, errno == ENOTCONN ? "not connected to Redis" :
		    "out of memory queueing the publish");
	arm_deadline(hub);
	return 0;
}

void
hub_cancel(struct hub *hub, void *arg)
{
	if (hub->ledger != NULL)
		dedup_cancel(hub->ledger, arg);
}

int
hub_history_is_on(const struct hub *hub)
{
	return hub->redis != NULL && hub->conf->history_size > 0;
}

int
hub_history_read(struct hub *hub, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after, unsigned count,
    hub_history_fn *fn, void *arg, uint64_t token)
{
	if (hub->redis == NULL || !redis_is_up(hub->redis)) {
		errno = ENOTCONN;
		return -1;
	}
	return redis_history_read(hub->redis, resource, resource_len, epoch, epoch_len, after,
	    count, fn, arg, token);
}

int
hub_meta_is_own(const struct hub *hub, const char *meta, size_t meta_len)
{
	struct dedup_meta m;

	return hub->redis != NULL && meta != NULL &&
	    dedup_meta_decode(meta, meta_len, &m) == 0 && m.origin_len == ORIGIN_LEN &&
	    memcmp(m.origin, hub->origin, ORIGIN_LEN) == 0;
}

int
hub_meta_is_pending(const struct hub *hub, const char *meta, size_t meta_len)
{
	struct dedup_meta m;

	return hub_meta_is_own(hub, meta, meta_len) &&
	    dedup_meta_decode(meta, meta_len, &m) == 0 && dedup_is_undelivered(hub->ledger, m.seq);
}

struct pending_first {
	const char *epoch;
	size_t epoch_len;
	uint64_t seq;
	int found;
};

static void
pending_first_visit(void *arg, const struct dedup_entry *e)
{
	struct pending_first *pf = arg;
	struct eventid id;

	if (eventid_parse(&id, e->id, e->id_len) == 0 &&
	    eventid_same_epoch(&id, pf->epoch, pf->epoch_len) && (!pf->found || id.seq < pf->seq)) {
		pf->seq = id.seq;
		pf->found = 1;
	}
}

int
hub_own_pending_first(struct hub *hub, const char *epoch, size_t epoch_len, uint64_t *seq)
{
	struct pending_first pf = { epoch, epoch_len, 0, 0 };

	if (hub->redis == NULL || hub->ledger == NULL)
		return 0;
	dedup_each_answered(hub->ledger, pending_first_visit, &pf);
	if (pf.found)
		*seq = pf.seq;
	return pf.found;
}

void
hub_on_resync(struct hub *hub, void (*fn)(void *arg), void *arg)
{
	hub->on_resync = fn;
	hub->resync_arg = arg;
}

const char *
hub_mode(const struct hub *hub)
{
	return hub->redis != NULL && redis_is_up(hub->redis) ? "redis" : "local";
}

unsigned long
hub_reconnects(const struct hub *hub)
{
	return hub->redis != NULL ? redis_reconnects(hub->redis) : 0;
}

unsigned long
hub_fallbacks(const struct hub *hub)
{
	return hub->fallbacks;
}

unsigned long
hub_probe_failures(const struct hub *hub)
{
	return hub->redis != NULL ? redis_probe_failures(hub->redis) : 0;
}
