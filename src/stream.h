/*
 * stream — one FastCGI connection's output: a bounded queue of shared messages and the
 * non-blocking record writer that drains it.
 *
 * A message (struct msg) is encoded once per publish and referenced by every stream that
 * queues it; each stream wraps it in STDOUT records carrying its own request id at write
 * time, so nothing is copied per stream. Everything queued since the last flush leaves
 * in one writev(), and consecutive messages share records (one 8-byte header for up to
 * 64 KiB of events): when a client falls behind, its backlog costs the web server one
 * record to parse, not one per event.
 *
 * The stream does I/O only in stream_flush(); the server decides what a failure means.
 */
#ifndef SSE_STREAM_H
#define SSE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "fcgi_record.h"
#include "registry.h"

#define MSG_STATIC UINT32_MAX   /* refs value of a message that is never freed */

struct msg {
	uint32_t refs;
	uint32_t len;
	uint8_t framed;   /* data already holds complete FastCGI records (END_REQUEST...) */
	char data[];
};

/* A message of len bytes with one reference owned by the caller; NULL on ENOMEM. */
struct msg *msg_new(size_t len, int framed);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);         /* accepts NULL; frees at zero */

struct stream_ent {
	struct msg *m;
	uint32_t off;   /* bytes of m->data already written */
};

enum stream_flag {
	STREAM_SSE = 1,       /* an event stream (in the registry and the heartbeat list) */
	STREAM_CLOSING = 2,   /* end queued: close once the queue has drained */
	STREAM_DIRTY = 4,     /* on the server's flush list */
	STREAM_DEAD = 8,      /* to be closed at the next flush (overflow, error, EOF) */
	STREAM_BLOCKED = 16,  /* waiting for EV_WRITE: do not flush before it */
	STREAM_PENDING = 32,  /* a publish it made awaits the hub's answer */
	STREAM_OVER_SOFT = 64, /* held more than the soft limit since soft_since */
	STREAM_HOLD = 128,    /* resume.c decides about each event (a replay is under way) */
};

struct stream {
	void *owner;          /* the layer that holds it (out.c), for callbacks */
	int fd;
	uint16_t id;          /* FastCGI request id */
	uint8_t flags;
	uint8_t hdr_sent;     /* bytes of the open record's header already written */
	uint16_t rec_len;     /* content length of the open STDOUT record, 0 = none open */
	uint16_t rec_left;    /* of which not yet written */
	struct fcgi_tail tail;
	uint32_t soft_since;  /* STREAM_OVER_SOFT: when it went over, in seconds (fills the
	                       * padding after tail: 120 bytes a stream, as before) */
	struct registry_node node;
	struct stream *idle_prev, *idle_next;   /* heartbeat order, oldest write first */
	struct stream *dirty_next;
	uint64_t last_write_ms;
	/* output queue: a ring, allocated on first use */
	struct stream_ent *ring;
	uint32_t head, count, cap;
	uint32_t queued;      /* message bytes still to write (record headers not counted) */
	uint32_t flushed_ms;  /* the last write attempt, ev_now_ms() modulo 2^32 (out.c's pacing) */
};

/* A ring larger than this (grown by a backlog) is freed once the queue drains; a stream
 * that keeps up stays below it and never reallocates. */
#define STREAM_RING_KEEP 8

/*
 * Bounds for a stream whose client is not reading, as redis's client-output-buffer-limit:
 * over hard bytes it is closed at once, over soft bytes for soft_seconds in a row too.
 */
struct stream_limits {
	size_t hard, soft;        /* soft 0: no soft limit */
	uint32_t soft_seconds;
};

/*
 * Queues a reference to m; never refused for size (the caller applies the limits, to
 * bytes a write could not move: stream_limits_check). -1 ENOMEM when the ring cannot
 * grow.
 */
int stream_queue(struct stream *s, struct msg *m);

/*
 * Bytes the stream keeps alive: queued message bytes (a shared message counts whole: this
 * stream's reference holds it) and its ring of entries.
 */
size_t stream_held(const struct stream *s);

/*
 * Compares what s holds with lim at now_s (monotonic seconds) and keeps the soft-limit
 * clock: 0 within the limits, 1 over the hard limit, 2 over the soft limit for
 * soft_seconds. Falling back under the soft limit restarts its clock.
 */
int stream_limits_check(struct stream *s, const struct stream_limits *lim, uint32_t now_s);

/*
 * Writes as much of the queue as the socket takes, one writev per up to 128 pieces.
 * Returns 1 when the queue is empty, 0 when the socket is full (wait for EV_WRITE),
 * -1 on a write error (errno set; the peer is gone). A ring grown past STREAM_RING_KEEP
 * entries by a backlog is freed once the queue is empty.
 */
int stream_flush(struct stream *s);

/* Drops every queued reference and frees the ring; the fd is not touched. */
void stream_release(struct stream *s);

#endif
