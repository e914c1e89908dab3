/*
 * conn — FastCGI connections while their request head arrives, and nothing after.
 *
 * A connection is read without ever blocking: bytes are buffered and walked by
 * fcgi_head_scan() until the whole request (BEGIN_REQUEST, PARAMS, STDIN) is in, and only
 * then does libfcgi decode it (fcgi_request_parse). The descriptor then goes to the
 * owner through on_request and the connection's buffer is freed, so an idle event
 * stream costs nothing here. A head that does not arrive within CONN_REQUEST_TIMEOUT_MS,
 * or whose bytes (records cut out by the scanner included) pass max_message_bytes +
 * CONN_HEAD_ROOM, is closed.
 *
 * Work per wake-up is bounded (CONN_WAKE_BYTES), as redis reads a client's query once
 * per readable event: a peer that streams records without end cannot keep the loop
 * from its timers and other descriptors.
 */
#ifndef SSE_CONN_H
#define SSE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "fcgi_record.h"

#define CONN_REQUEST_TIMEOUT_MS 10000   /* a request head must arrive within this */
#define CONN_HEAD_ROOM (64 * 1024)      /* params and record headers besides the body */
#define CONN_WAKE_BYTES (64 * 1024)     /* read per readiness event, at most */

struct ev_loop;
struct conf;
struct fcgi_request;
struct conn_pool;

/* What a complete request head became. Borrowed for the duration of on_request. */
struct conn_request {
	uint16_t id;                      /* FastCGI request id */
	const struct fcgi_request *req;   /* NULL: decoding lacked memory or descriptors */
	struct fcgi_tail tail;            /* watcher state for the bytes after the request */
	int ended;                        /* those bytes already aborted the request */
	int too_large;                    /* STDIN passed max_message_bytes: answer 413 */
};

/* fd, still registered in the loop for EV_READ, is the callee's from now on. */
typedef void conn_request_fn(void *arg, int fd, const struct conn_request *cr);
/* A connection's descriptor was closed (one fewer in use). */
typedef void conn_close_fn(void *arg);

/* loop and conf are borrowed and outlive the pool; conf is read live (SIGHUP).
 * NULL on ENOMEM. */
struct conn_pool *conn_pool_new(struct ev_loop *loop, const struct conf *conf,
    conn_request_fn *on_request, conn_close_fn *on_close, void *arg);
/* Closes every connection (on_close is not called) and frees the pool; accepts NULL. */
void conn_pool_free(struct conn_pool *p);

/*
 * Takes fd (a new connection, non-blocking) and reads what has already arrived: the web
 * server writes its request right after connecting, so the request is usually complete
 * and answered within this call. On failure fd is closed and on_close is called: -1.
 */
int conn_pool_add(struct conn_pool *p, int fd);
/* Closes every connection still reading its head (shutdown); on_close for each. */
void conn_pool_close_all(struct conn_pool *p);
/* Connections still reading their head. */
size_t conn_pool_count(const struct conn_pool *p);

#endif
