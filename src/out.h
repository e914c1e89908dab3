/*
 * out — the output side of every FastCGI connection once its request is in: event
 * streams and one-shot replies, their queues, flushing, heartbeats and closing.
 *
 * A connection handed over by conn becomes a struct stream here: either an event stream,
 * registered under its resource until it ends, or a reply that closes once written.
 * Writes are deferred: queuing marks a stream dirty and a timer flushes every dirty
 * stream after the current batch of events, so several events queued in one loop pass
 * leave in one writev. When the process is busy writing, an event stream written less
 * than the pace (30-60 ms) ago waits for a second timer, until that long after that
 * write (pace.h):
 * events published close together then leave in one record and one writev here and one
 * read and one write in the web server. Replies never wait, nor does anything at light
 * load. Closes are deferred the
 * same way, so a stream may be killed from anywhere (even while its resource is being
 * walked) and is freed in one place.
 *
 * The owner learns about descriptors closed (on_release) and about a stream that dies
 * while a publish it made is still pending (on_abandon), and nothing else.
 */
#ifndef SSE_OUT_H
#define SSE_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "fcgi_record.h"
#include "stream.h"

struct ev_loop;
struct conf;
struct registry;
struct resource;
struct out;

/* A stream's descriptor was closed. */
typedef void out_release_fn(void *arg);
/* A reply whose request asked to keep the connection (tail.keep_conn) is out in full: fd
 * (no longer in the loop) is the owner's again, to read the next request from. */
typedef void out_keep_fn(void *arg, int fd);
/* s, flagged STREAM_PENDING (a publish awaits its answer) or STREAM_HOLD (a replay is
 * being prepared for it), is being killed: forget whatever waits to answer it. */
typedef void out_abandon_fn(void *arg, struct stream *s);

/* loop, conf and reg are borrowed and outlive the out; conf is read live (SIGHUP).
 * NULL on ENOMEM. */
struct out *out_new(struct ev_loop *loop, const struct conf *conf, struct registry *reg,
    out_release_fn *on_release, out_abandon_fn *on_abandon, out_keep_fn *on_keep, void *arg);
/* Closes every stream (on_release is not called; on_abandon is, for pending ones) and
 * frees the out; call it before freeing what on_abandon touches. Accepts NULL. */
void out_free(struct out *out);

/*
 * Takes fd (registered in the loop for EV_READ by the conn it came from) as a reply
 * stream for request id; tail is the watcher state of the bytes read past the request.
 * With tail->keep_conn, once a reply (not an event stream) is out in full, fd goes back
 * to the owner (on_keep) instead of being closed; an error, EOF or abort closes it.
 * NULL on ENOMEM: fd is then closed (and on_release called).
 */
struct stream *out_stream_adopt(struct out *out, int fd, uint16_t id,
    const struct fcgi_tail *tail);
/* The out a stream belongs to, for callbacks that only get the stream. */
struct out *out_of(const struct stream *s);

/* Makes s an event stream of resource (registry, heartbeats). 0, or -1 ENOMEM. */
int out_stream_listen(struct out *out, struct stream *s, const char *resource, size_t len);
/*
 * Queues m on s (m is referenced, not taken). -1 when s was closed instead: out of
 * memory, or an event stream whose client is not reading (a write already could not
 * move everything) over stream_queue_bytes, or over stream_queue_soft_bytes for
 * stream_queue_soft_seconds. A stream whose last write went through takes any burst.
 */
int out_stream_push(struct out *out, struct stream *s, struct msg *m);
/* Queues text (CGI headers and body, or a last retry:) and the end of the request; s
 * closes once it is out. */
void out_stream_reply(struct out *out, struct stream *s, const char *text, size_t len);
/* Takes s out of every list; it is closed and freed at the next flush. */
void out_stream_kill(struct out *out, struct stream *s);

/* Ends event stream s early and cleanly: out of its resource, then a last retry: of
 * retry_ms and the end of the request (a replay cut at the queue bound: the browser
 * comes back at once for the rest). */
void out_stream_end(struct out *out, struct stream *s, unsigned retry_ms);
/* Queues m on every stream of res; returns how many took it. */
size_t out_deliver(struct out *out, const struct resource *res, struct msg *m);
/* Shutdown: every event stream gets a last retry: of retry_ms plus a random 0..jitter_ms
 * (so that browsers do not all come back at once) and ends. Heartbeats stop. */
void out_end_all(struct out *out, unsigned retry_ms, unsigned jitter_ms);
/* The heartbeat period changed (SIGHUP): re-plan from the streams' last writes. */
void out_heartbeat_restart(struct out *out);

size_t out_streams(const struct out *out);              /* open, replies included */
unsigned long long out_dropped(const struct out *out);  /* closed for not reading */

#endif
