/*
 * redis — the only hiredis user: two asynchronous connections to one Redis,
 * plugged into the process's ev loop, that survive anything Redis does.
 *
 * Each connection names itself first (CLIENT SETNAME sse-fcgi:subscriber:<origin>
 * and sse-fcgi:publisher:<origin>; hub.c logs the origin at start), so that an
 * operator reading CLIENT LIST, or killing one with CLIENT KILL ID, knows whose
 * connection is whose. A refused SETNAME is ignored.
 *
 *   subscriber  AUTH (if a password is set), then ONE
 *               PSUBSCRIBE <prefix>*  __sse-fcgi__:meta:<prefix>*  __sse-fcgi__:probe:<origin>
 *               (one command, so the payload and meta patterns start together:
 *               a subscriber sees a meta record and its payload both or neither);
 *               ready once all three patterns are confirmed.
 *   publisher   AUTH (if set), then PING; ready once PING answers. Publishes go
 *               out as MULTI / PUBLISH meta / PUBLISH payload / EXEC.
 *
 * Channels outside <prefix>* live under "__sse-fcgi__:" so that neither a
 * browser nor a seed peer (which PSUBSCRIBEs <prefix>*) ever sees them. A
 * message on a channel that matches <prefix>* but starts with "__sse-fcgi__:"
 * (only possible with a channel_prefix that is a prefix of that string, such
 * as "__") is taken as internal and not delivered as a payload.
 *
 * Up ("multi-server mode") means: subscription confirmed AND publisher ready.
 * Anything else is down. A connection that fails to connect, to authenticate or
 * to answer its handshake within redis.connect_timeout_ms, or is lost, is freed
 * and retried after a capped, jittered exponential backoff
 * (redis_backoff_ms()). Every probe_interval seconds while up, a probe is
 * PUBLISHed on the publisher to the probe channel; if it has not come back on
 * the subscriber by the next probe, the subscriber is rebuilt (and the publisher
 * too if Redis did not even answer the PUBLISH).
 *
 * No call ever blocks on Redis, nor on DNS: hiredis 0.14.1 would resolve a host
 * NAME with a blocking getaddrinfo() inside redisAsyncConnect(), so a name is
 * looked up first with getaddrinfo_a() (polled from a timer, bounded by
 * connect_timeout_ms, redone at every attempt so a moved Redis is followed) and
 * hiredis is handed the numeric address. Numeric addresses and redis.socket
 * connect directly.
 *
 * hiredis contexts are never freed from inside one of their own callbacks:
 * every teardown we decide is deferred to a 0 ms timer, and a context hiredis
 * tears down itself is left to hiredis (it frees it after the disconnect
 * callback).
 */
#ifndef SSE_REDIS_H
#define SSE_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct conf_redis;
struct redis;

/* Namespace of every channel sse-fcgi uses besides <channel_prefix><resource>
 * (meta records: SSE_CHANNEL_NS "meta:" <prefix><resource>; probes:
 * SSE_CHANNEL_NS "probe:" <origin>). Not REDIS_*: that is hiredis's namespace. */
#define SSE_CHANNEL_NS "__sse-fcgi__:"

/* Upward calls; all pointers are borrowed for the call. Each may run inside a
 * hiredis callback: it may call redis_publish() and redis_reset_publisher(),
 * never redis_free(). */
struct redis_handler {
	/* Entered (up = 1) or left (up = 0) multi-server mode. */
	void (*on_mode)(void *arg, int up);
	/* The confirmed subscription is gone (called before on_mode(0)): nothing
	 * more will arrive on it. */
	void (*on_sub_lost)(void *arg);
	/* A message on <prefix><resource>, from anyone. */
	void (*on_message)(void *arg, const char *resource, size_t resource_len,
	    const char *data, size_t len);
	/* A message on the meta channel of <prefix><resource>. */
	void (*on_meta)(void *arg, const char *resource, size_t resource_len,
	    const char *meta, size_t meta_len);
	/* Outcome of redis_publish(token), exactly once per accepted publish:
	 * ok (EXEC answered), or not (reason: Redis's error, or the connection was
	 * lost before an answer; Redis may still have run it). */
	void (*on_published)(void *arg, uint64_t token, int ok, const char *reason);
	/* The id Redis gave redis_publish_history(token) (its script's answer, not
	 * NUL-terminated), just before on_published(token, 1). May be NULL. */
	void (*on_event_id)(void *arg, uint64_t token, const char *id, size_t id_len);
};

/* Starts connecting at once. conf, origin (copied) and h outlive nothing:
 * conf and h are borrowed and must outlive the object. NULL on ENOMEM. */
struct redis *redis_new(struct ev_loop *loop, const struct conf_redis *conf,
    const char *origin, const struct redis_handler *h, void *arg);
/* Closes both connections without calling the handler. Accepts NULL. Not from
 * a handler callback. */
void redis_free(struct redis *r);

int redis_is_up(const struct redis *r);
/* The subscription is confirmed (whether or not the publisher is ready). */
int redis_sub_is_ready(const struct redis *r);
/* Why we are not up (last failure), "" when up. Static until the next call. */
const char *redis_down_reason(const struct redis *r);

/* Queue MULTI / PUBLISH <meta channel of resource> meta / PUBLISH <prefix><resource>
 * data / EXEC. 0: on_published(token) will be called exactly once (possibly after
 * a disconnect, with ok = 0). -1: not up (ENOTCONN) or could not queue (ENOMEM):
 * nothing was sent and on_published will not be called. */
int redis_publish(struct redis *r, const char *resource, size_t resource_len,
    const char *meta, size_t meta_len, const char *data, size_t len, uint64_t token);

/* Read, now, what the confirmed subscription has already received (its socket
 * holds it but the loop has not served that descriptor yet) and hand it to the
 * handler, before the caller delivers something locally that must come after
 * it (the subscription's confirmations included: we may be up afterwards).
 * Does nothing while the subscriber's TCP connect is in progress or nothing
 * waits. May end in on_sub_lost() or on_mode(); not from inside a handler
 * called by the subscriber. */
void redis_sub_drain(struct redis *r);

/* The subscription is confirmed but we are not up (the publisher is not ready):
 * a publish delivered locally now could overtake another process's publish that
 * Redis has already sent us but that is still on its way. Ask the subscriber
 * connection for a barrier instead: Redis answers it in order behind every
 * message it queued for us before. on_published(token, 0, "Redis unavailable:
 * ...") is then called exactly once: when the barrier comes back (all such
 * messages handed up), or when the subscription is lost. -1 (ENOTCONN: the
 * subscription is not confirmed; ENOMEM): on_published will not be called. */
int redis_sub_barrier(struct redis *r, uint64_t token);

/*
 * History (SPEC "Event ids and resume"), in Redis beside the channels:
 *   __sse-fcgi__:head:<prefix><resource>     hash: e = epoch, s = last seq
 *   __sse-fcgi__:history:<prefix><resource>  stream: entry "<seq>-0"
 *                                            {d: payload, m: meta record[, e: event]}
 * both bounded (XADD MAXLEN size, exact) and expiring ttl seconds after the last publish.
 *
 * redis_publish_history() is redis_publish() through one Lua script that also assigns
 * the event's id (epoch-seq), appends the event to the history, and publishes the meta
 * record with " i=<id>" appended, then the payload: all in one atomic step. Same
 * contract as redis_publish() (on_published once; ok = the script ran).
 */
int redis_publish_history(struct redis *r, const char *resource, size_t resource_len,
    const char *meta, size_t meta_len, const char *event, size_t event_len,
    const char *data, size_t len, unsigned size, unsigned ttl, uint64_t token);

struct redis_history_item {
	uint64_t seq;
	const char *event;      /* NULL: none */
	size_t event_len;
	const char *data;
	size_t len;
	const char *meta;       /* the publisher's meta record (dedup.h), NULL if none */
	size_t meta_len;
};

/* A history read: epoch NULL when the resource has none (never published, expired, or
 * Redis lost it). head is the last seq; first the oldest seq kept (0: none kept); items
 * the events after the asked position, oldest first, only when the asked epoch is this
 * one. Everything is borrowed for the callback. */
struct redis_history {
	const char *epoch;
	size_t epoch_len;
	uint64_t head, first;
	const struct redis_history_item *items;
	size_t n;
};

/* Called exactly once per accepted read (not after redis_free): h NULL when it failed
 * (connection lost, Redis error). May run inside a hiredis callback (see redis_handler). */
typedef void redis_history_fn(void *arg, uint64_t token, const struct redis_history *h);

/* Reads resource's head and at most count events after seq `after` of epoch (the epoch
 * the client's id names) in one snapshot, on the publisher connection. 0, or -1
 * (ENOTCONN, ENOMEM): fn will not be called. */
int redis_history_read(struct redis *r, const char *resource, size_t resource_len,
    const char *epoch, size_t epoch_len, uint64_t after, unsigned count,
    redis_history_fn *fn, void *arg, uint64_t token);

/* Arms again the timers that could not be armed (no memory for the timer heap): a
 * connection's retry, connect timeout or teardown, the probe. Cheap when there are none;
 * the hub calls it on every publish. */
void redis_timers_retry(struct redis *r);

/* The publisher looks stuck (a publish got no answer in time): rebuild it, if
 * it is ready (one still connecting is left to its connect timeout). */
void redis_reset_publisher(struct redis *r, const char *reason);

/* Connection attempts after the first one, both connections together. */
unsigned long redis_reconnects(const struct redis *r);
/* Probes that did not come back in time. */
unsigned long redis_probe_failures(const struct redis *r);

/* Pure: the delay before reconnection attempt number `attempt` (0 = first retry):
 * base = min(max_ms, min_ms * 2^attempt), then uniformly jittered over
 * [max(min_ms, base / 2), base] by rnd. Always within [min_ms, max(min_ms, max_ms)]. */
unsigned redis_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt, uint32_t rnd);

#endif
