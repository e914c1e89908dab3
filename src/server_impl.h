/*
 * server_impl — what server.c (connections, streams, the process) and server_routes.c
 * (what each route answers) share. Private to those two files.
 */
#ifndef SSE_SERVER_IMPL_H
#define SSE_SERVER_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ev.h"
#include "route.h"
#include "stream.h"

struct conf;
struct conn;
struct fcgi_request;
struct hub;
struct registry;
struct resume;
struct resume_ops;

#define RETRY_AFTER "5"            /* seconds, on 429 and 503 */
#define STREAM_BLOCKED 16          /* stream flag: waiting for EV_WRITE, do not flush early */
#define STREAM_PENDING 32          /* stream flag: a publish awaits the hub's answer */
#define STREAM_HOLD 64             /* stream flag: resume.c decides about each event */

struct slist {
	struct stream *head, *tail;
};

struct server {
	struct ev_loop *loop;
	const struct conf *conf;
	int listen_fd;
	int reserve_fd;         /* held open so EMFILE can still be answered with a 503 */
	int listen_paused;
	int shutting_down;
	size_t ceiling;         /* event streams this process will hold */
	struct registry *reg;
	struct hub *hub;
	struct resume *resume;  /* event ids and history (resume.h) */
	struct route_prefixes prefixes;
	struct msg *open_msg;   /* headers + retry:, shared by every stream */
	struct msg *hb_msg;     /* heartbeat comment */
	struct slist idle, replies;   /* see server.c: every live stream is on one */
	struct stream *dirty;
	struct conn *conns;
	size_t nconns, nstreams;  /* request heads being read; streams incl. replies */
	struct ev_timer flush_timer, heartbeat_timer, shutdown_timer, step_back_timer;
	time_t started;
	unsigned long long messages_in, messages_out, dropped_slow, refused;
};

/* server.c */

/* Queues m on s (marks it for the next flush); a stream that cannot take it is stalled
 * and is closed: -1. m is referenced, not taken. */
int server_stream_push(struct server *srv, struct stream *s, struct msg *m, size_t limit);
/* Takes s out of every list; it is closed and freed at the next flush. */
void server_stream_kill(struct server *srv, struct stream *s);
/* Registers s as an event stream of resource and queues the stream's head. -1 ENOMEM. */
int server_stream_listen(struct server *srv, struct stream *s, const char *resource,
    size_t len);
/* Ends event stream s early and cleanly: out of its resource, then a last `retry:` of
 * retry_ms and the end of the request; the browser reconnects on its own. */
void server_stream_end(struct server *srv, struct stream *s, unsigned retry_ms);
/* A full process leaves the accept race for a moment (see server.c). */
void server_listen_step_back(struct server *srv);

/* server_routes.c */

/* What resume.c asks of the server (push, hold, finish, node -> stream). */
extern const struct resume_ops server_resume_ops;

/* Answers the decoded request on s: a stream, a publish, a count, stats or an error. */
void server_route(struct server *srv, struct stream *s, const struct fcgi_request *req,
    int too_large);
/* Queues text (CGI headers and body, or a last retry:) and the end of the request; s
 * closes once it is out. */
void server_reply_text(struct server *srv, struct stream *s, const char *text, size_t len);
/* A JSON error reply; extra is zero or more full header lines. */
void server_reply_error(struct server *srv, struct stream *s, int status, const char *extra,
    const char *why);

#endif
