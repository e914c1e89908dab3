/*
 * server_routes — what each route answers: the event stream's checks and limits
 * (subscribe), the publish (auth, size, UTF-8, then the hub), the stream count, /stats,
 * and every error reply. It talks to connections only through out.h and knows nothing
 * of how they were accepted or read: the server fills a struct server_routes, and calls
 * server_route() with each decoded request.
 */
#ifndef SSE_SERVER_ROUTES_H
#define SSE_SERVER_ROUTES_H

#include <stddef.h>
#include <time.h>

#include "route.h"

struct conf;
struct ev_loop;
struct conn_pool;
struct fcgi_request;
struct hub;
struct msg;
struct out;
struct registry;
struct resume;
struct resume_ops;
struct stream;

#define RETRY_AFTER "5"   /* seconds, on 429 and 503 */

/* The process has no room for another stream: leave the accept race for a moment. */
typedef void server_full_fn(void *arg);

/* Everything the routes read and count. Pointers are borrowed from the server. */
struct server_routes {
	struct ev_loop *loop;
	const struct conf *conf;
	struct out *out;
	struct registry *reg;
	struct hub *hub;
	struct resume *resume;         /* event ids and resume (resume.h) */
	struct conn_pool *conns;
	struct route_prefixes prefixes;
	struct msg *open_msg;          /* headers + retry:, shared by every stream */
	size_t ceiling;                /* event streams this process will hold */
	int shutting_down;
	time_t started;
	unsigned long long messages_in, messages_out, refused;
	server_full_fn *on_full;
	void *arg;
};

/* Fills the fields that come from conf (prefixes, the stream head); the caller sets the
 * rest. -1 when cors_origin does not fit a header or on ENOMEM (logged). */
int server_routes_init(struct server_routes *rt, const struct conf *conf);
void server_routes_release(struct server_routes *rt);

/* What resume.c asks of the server (push, hold, finish, node -> stream); its arg is the
 * struct server_routes. */
extern const struct resume_ops server_resume_ops;

/* Answers the decoded request on s: a stream, a publish, a count, stats or an error. */
void server_route(struct server_routes *rt, struct stream *s, const struct fcgi_request *req,
    int too_large);
/* A JSON error reply; extra is zero or more full header lines ("Name: value\r\n"). */
void server_reply_error(struct server_routes *rt, struct stream *s, int status,
    const char *extra, const char *why);

#endif
