/*
 * resume — event ids and resume for the server (SPEC "Event ids and resume"): each
 * published event gets its id, and a stream opened with a client's last id starts with
 * what it missed, or with one `event: reset` saying why it cannot.
 *
 *   single-server mode  ids and history are this process's (history.c); a resume is
 *                       served at once, inside the stream-open call.
 *   multi-server mode   Redis assigns ids and keeps history (redis.c, a Lua script); a
 *                       resume reads it asynchronously, within a deadline, while the
 *                       stream is held: live events for it are kept aside and merged
 *                       with the replay by position (history_merge: no gap, no
 *                       duplicate at the seam). After the subscription to Redis was
 *                       lost and is back, every open stream catches up the same way.
 *   off                 history_size = 0: events framed exactly as without this module,
 *                       a last id ignored.
 *
 * The server calls it when it frames an event (resume_event_new), for every event it is
 * about to queue on a stream it flagged as held (resume_offer), when a stream opens
 * (resume_stream_start) and when a held stream goes away (resume_stream_gone). Streams
 * are opaque here: the server's ops push onto them, flag them, and end them.
 *
 * Reset reasons: "malformed" (not an id: bad syntax, or a position never handed out),
 * "epoch" (an id from another history: a restarted process, or Redis lost its data),
 * "gone" (events after it left the history: history_size, history_ttl, history_bytes),
 * "unavailable" (Redis did not answer within redis.publish_timeout_ms). The reset's
 * own id is the resource's current head when known, so the browser resumes from there.
 */
#ifndef SSE_RESUME_H
#define SSE_RESUME_H

#include <stddef.h>

struct conf;
struct ev_loop;
struct hub;
struct msg;
struct registry;
struct registry_node;
struct resume;

enum resume_start {
	RESUME_LIVE = 0,      /* everything missed (or a reset) is queued: live follows */
	RESUME_CUT = 1,       /* the replay stopped at the queue bound: end the stream so
	                       * the browser comes back from the last event it got */
	RESUME_FAILED = -1,   /* out of memory: drop the stream */
	RESUME_PENDING = 2,   /* history is being read; ops.finish tells how it ended */
};

/* What the server does for resume; arg is resume_new's ops_arg. */
struct resume_ops {
	/* Queue m (borrowed) on stream; first: it is the first event of this replay (it
	 * always goes, so every resume progresses). 0, -1 the queue bound is reached, -2 the
	 * stream died. */
	int (*push)(void *arg, void *stream, struct msg *m, int first);
	/* Flag the stream as held (on) or not: the server calls resume_offer() for every
	 * event it would queue on a held stream, and resume_stream_gone() if it dies. */
	void (*hold)(void *arg, void *stream, int on);
	/* A pending start ended: RESUME_LIVE (nothing to do), RESUME_CUT or RESUME_FAILED. */
	void (*finish)(void *arg, void *stream, int how);
	/* The stream a registry node belongs to. */
	void *(*node_stream)(struct registry_node *n);
};

/* Borrowed loop, conf, hub, reg and ops outlive it. NULL on ENOMEM. */
struct resume *resume_new(struct ev_loop *loop, const struct conf *conf, struct hub *hub,
    struct registry *reg, const struct resume_ops *ops, void *ops_arg);
void resume_free(struct resume *rs);   /* accepts NULL */

/* 1 when events carry ids (single-server history, or Redis's). */
int resume_is_on(const struct resume *rs);

/*
 * The event framed for delivery (stream.h struct msg, one reference owned by the
 * caller), NULL on ENOMEM. Single-server: it gets the next id and is kept in the
 * history, whether or not a stream listens. Multi-server: it carries id (what Redis
 * assigned; NULL for a local fallback or a foreign message), and the resource's
 * position is remembered while it has streams (listened) for a later catch-up.
 */
struct msg *resume_event_new(struct resume *rs, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len,
    const char *id, size_t id_len, int listened);

/* 1 while some stream is held (on_deliver then asks resume_offer for held ones). */
int resume_has_held(const struct resume *rs);

/* For each event about to be queued on a held stream (same id as given to
 * resume_event_new; own as the hub said, hub.h). 1: resume took it (held for the merge,
 * or already delivered by the replay): do not queue it. 0: queue it as usual. */
int resume_offer(struct resume *rs, void *stream, struct msg *m, const char *id,
    size_t id_len, int own);

/* A held stream is going away: forget it (no op call follows). */
void resume_stream_gone(struct resume *rs, void *stream);

/*
 * Starts a just-opened stream of resource at the client's last id (last_id_len bytes,
 * not NUL-terminated; NULL or empty: none given). Returns an enum resume_start; for
 * RESUME_PENDING the stream is held and ops.finish follows exactly once (unless
 * resume_stream_gone comes first).
 */
int resume_stream_start(struct resume *rs, void *stream, const char *resource,
    size_t resource_len, const char *last_id, size_t last_id_len);

#endif
