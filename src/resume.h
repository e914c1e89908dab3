/*
 * resume — event ids and resume for the server (SPEC "Event ids and resume"), in
 * single-server mode: each published event gets its id and its place in the process's
 * history (history.c), and a stream opened with a client's last id starts with what it
 * missed, or with one `event: reset` saying why it cannot.
 *
 * The server calls it at two points only: when it encodes an event for its streams
 * (resume_event_new), and when a stream has been opened (resume_stream_start). With
 * history off (history_size = 0), or with Redis configured (history is not kept across
 * processes in this version), events are framed exactly as without this module and a
 * last id is ignored.
 *
 * Reset reasons: "malformed" (not an id: bad syntax, or a position this history never
 * handed out), "epoch" (an id from another history: the process restarted), "gone"
 * (events after it were dropped by history_size, history_ttl or history_bytes). The
 * reset's own id is the resource's current head, so the browser resumes from there.
 */
#ifndef SSE_RESUME_H
#define SSE_RESUME_H

#include <stddef.h>

struct conf;
struct ev_loop;
struct msg;
struct resume;

/* Borrowed loop and conf outlive it. NULL on ENOMEM. */
struct resume *resume_new(struct ev_loop *loop, const struct conf *conf);
void resume_free(struct resume *rs);   /* accepts NULL */

/* 1 when events carry ids and a last id is honoured. */
int resume_is_on(const struct resume *rs);

/*
 * The event framed for delivery (stream.h struct msg, one reference owned by the
 * caller), NULL on ENOMEM. With history on it carries the resource's next id and is
 * kept in the history, whether or not a stream listens. Borrows its arguments.
 */
struct msg *resume_event_new(struct resume *rs, const char *resource, size_t resource_len,
    const char *event, size_t event_len, const char *data, size_t len);

/* Queues m (borrowed: take a reference to keep it) on the stream being started.
 * Returns 0, or -1 to stop: the stream's queue bound is reached (or it died). */
typedef int resume_push_fn(void *arg, struct msg *m);

enum resume_start {
	RESUME_LIVE = 0,      /* everything missed (or a reset) is queued: live follows */
	RESUME_CUT = 1,       /* the replay stopped at the queue bound: end the stream so
	                       * the browser comes back from the last event it got */
	RESUME_FAILED = -1,   /* out of memory, or push failed otherwise: drop the stream */
};

/*
 * Starts a just-opened stream of resource at the client's last id (last_id_len bytes,
 * not NUL-terminated; NULL or empty: none given, nothing to do). Pushes, in order, the
 * events after it, or one reset. Returns an enum resume_start.
 */
int resume_stream_start(struct resume *rs, const char *resource, size_t resource_len,
    const char *last_id, size_t last_id_len, resume_push_fn *push, void *arg);

#endif
