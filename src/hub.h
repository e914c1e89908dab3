/*
 * hub — the bus every publish goes through.
 *
 * The server hands each accepted publish to hub_publish() and receives, through the
 * on_deliver callback, every message that must reach its local streams: its own
 * publishes in single-server mode, and in multi-server mode whatever the Redis
 * subscription brings (its own publishes included). The server never knows which.
 *
 * Multi-server mode (redis.c does the connections, dedup.c the bookkeeping):
 * a publish goes to Redis as MULTI / PUBLISH __sse-fcgi__:meta:<prefix><resource>
 * "<meta>" / PUBLISH <prefix><resource> <payload byte for byte> / EXEC, and
 * reaches this process's streams when its own subscriber brings it back (the
 * echo, recognised by the origin and sequence in the meta record), not before.
 * See hub.c and dedup.c for the exactly-once argument.
 */
#ifndef SSE_HUB_H
#define SSE_HUB_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct conf;
struct hub;

/* A message for this process's streams; returns how many streams it was queued on. All
 * pointers are borrowed for the duration of the call. event may be NULL. id (id_len
 * bytes) is the event id Redis assigned (multi-server mode with history), else NULL.
 * own: a publish of this very process (each reaches each local stream once, through
 * the ledger in multi-server mode; a catch-up never replays it). */
typedef size_t hub_deliver_fn(void *arg, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len,
    const char *id, size_t id_len, int own);

struct hub_result {
	const char *mode;     /* "redis" or "local" */
	size_t delivered;     /* local streams the message was queued on ("local" mode) */
	int fallback;         /* Redis is configured but this publish did not go through it */
	const char *reason;   /* why it fell back, "" otherwise */
};
/* Called exactly once per accepted hub_publish, possibly before hub_publish returns. */
typedef void hub_done_fn(void *arg, const struct hub_result *res);

/* Borrowed loop and conf outlive the hub. NULL on ENOMEM. */
struct hub *hub_new(struct ev_loop *loop, const struct conf *conf,
    hub_deliver_fn *on_deliver, void *arg);
void hub_free(struct hub *hub);   /* accepts NULL */

/* Data is copied if the hub needs it beyond the call. 0, or -1 (ENOMEM): done not called. */
int hub_publish(struct hub *hub, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len,
    hub_done_fn *done, void *arg);

/* Forgets every pending publish whose done argument is arg: done will not be called for
 * them (the publisher went away). The publish itself still completes. */
void hub_cancel(struct hub *hub, void *arg);

/* 1 when Redis keeps the history (Redis configured and history_size > 0). */
int hub_history_is_on(const struct hub *hub);

struct redis_history;
/* Called once per accepted hub_history_read(): h NULL when the read failed. */
typedef void hub_history_fn(void *arg, uint64_t token, const struct redis_history *h);
/* Reads the history of resource after position `after` of epoch (redis.h,
 * redis_history_read). 0, or -1 (ENOTCONN: not in multi-server mode; ENOMEM). */
int hub_history_read(struct hub *hub, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after, unsigned count,
    hub_history_fn *fn, void *arg, uint64_t token);
/* 1 when meta (a meta record, e.g. from a history entry) names a publish of this very
 * process: the ledger delivered it to this process's streams already, echo or not. */
int hub_meta_is_own(const struct hub *hub, const char *meta, size_t meta_len);
/* 1 when meta names a publish of this process that the ledger has not delivered yet (its
 * echo is still on its way, or its deadline to come): it will deliver it once, later. */
int hub_meta_is_pending(const struct hub *hub, const char *meta, size_t meta_len);
/* 1 and *seq when some publish of this process has its id in epoch (epoch_len bytes)
 * from Redis but is not delivered locally yet (its echo is on its way): *seq is the
 * lowest such id's seq. Every own publish that a history read answered now can cover
 * is known here (its answer came before the read's, on the same connection): a reset
 * up to that read's head must stop below *seq, or it would drop the ledger's delivery. */
int hub_own_pending_first(struct hub *hub, const char *epoch, size_t epoch_len, uint64_t *seq);
/* fn(arg) runs each time the process (re)enters multi-server mode, so that open streams
 * can catch up on what was published while the subscription was down. */
void hub_on_resync(struct hub *hub, void (*fn)(void *arg), void *arg);

const char *hub_mode(const struct hub *hub);    /* "redis" or "local" */
/* Redis connection attempts after the first (subscriber and publisher together). */
unsigned long hub_reconnects(const struct hub *hub);
/* Publishes answered with fallback: true. */
unsigned long hub_fallbacks(const struct hub *hub);
/* Subscriber probes that did not come back in time (each rebuilt the subscriber). */
unsigned long hub_probe_failures(const struct hub *hub);

#endif
