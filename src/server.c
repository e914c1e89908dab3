/*
 * server — see server.h.
 *
 * The process level: the listen socket and the policy of accepting (batches, turns with
 * siblings, the reserve descriptor for a 503, stepping back when full), the fan-out of
 * each message to its resource's streams, and shutdown. The layers below:
 *
 *   conn (conn.c)            reads request heads until they are complete
 *   server_routes            decides what a request gets, through out's API only
 *   out (out.c)              streams and replies: queues, flushing, heartbeats, closing
 *
 * A descriptor goes listen -> conn -> out and is closed by whichever holds it.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "conn.h"
#include "ev.h"
#include "heap.h"
#include "hub.h"
#include "log.h"
#include "out.h"
#include "registry.h"
#include "resume.h"
#include "server_routes.h"
#include "sse.h"
#include "stream.h"

#define ACCEPT_BATCH 64            /* accepts per wake-up, so accepting cannot starve streams */
/* Every TRIM_EVERY_MS, freed memory is given back to the system once it is over
 * TRIM_MIN_FREE and over 1/TRIM_SHARE of the heap: what churning streams, replies and
 * Redis round trips leave free between the live allocations otherwise stays resident
 * (heap.h), so resident size would float up to a burst's worth above what is in use.
 * One malloc_trim per 10 s at most, about a millisecond per tens of megabytes. */
#define TRIM_EVERY_MS 10000
#define TRIM_MIN_FREE (256u << 10)
#define TRIM_SHARE 16
#define SHUTDOWN_JITTER_MS 10000   /* retry: spread on shutdown */
#define STEP_BACK_MS 50            /* a full process leaves the accept race this long */
#define LISTEN_RETRY_MS 1000       /* watching the listen socket failed: try again after */

struct server {
	struct ev_loop *loop;
	const struct conf *conf;
	int listen_fd;
	int reserve_fd;         /* held open so EMFILE can still be answered with a 503 */
	int listen_paused;
	int stepped_back;       /* at the stream ceiling: out of the accept race (on_full) */
	int waiting_seen;       /* the last step-back tick found connections nobody took */
	int shutting_down;
	struct registry *reg;
	struct hub *hub;
	struct conn_pool *conns;
	struct out *out;
	struct resume *resume;  /* event ids and history (resume.h) */
	struct server_routes routes;
	struct ev_timer shutdown_timer, step_back_timer, trim_timer;
};

static void on_listen(struct ev_loop *loop, int fd, int events, void *arg);
static void listen_watch(struct server *srv);

/* A descriptor was freed: take back the reserve and resume accepting if we had paused. */
static void
on_fd_released(void *arg)
{
	struct server *srv = arg;

	if (srv->reserve_fd == -1)
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* The descriptor of a refused stream is released too: a full process rejoins the
	 * race only once it has room, or the step-back would end with the 503 it sent. */
	if (srv->listen_paused && !srv->shutting_down &&
	    (!srv->stepped_back || registry_streams(srv->reg) < srv->routes.ceiling)) {
		srv->stepped_back = 0;
		listen_watch(srv);
	}
	if (srv->shutting_down && out_streams(srv->out) == 0 && conn_pool_count(srv->conns) == 0)
		ev_loop_stop(srv->loop);
}

/* A kept connection's answer is out: read its next request (not while shutting down:
 * the pool is being emptied then). */
static void
on_keep(void *arg, int fd)
{
	struct server *srv = arg;

	if (srv->shutting_down) {
		close(fd);
		on_fd_released(srv);
		return;
	}
	conn_pool_keep(srv->conns, fd);
}

static void
on_abandon(void *arg, struct stream *s)
{
	struct server *srv = arg;

	if (s->flags & STREAM_PENDING)
		hub_cancel(srv->hub, s);
	if (s->flags & STREAM_HOLD)
		resume_stream_gone(srv->resume, s);
}

/* A request head is complete: the descriptor becomes a stream, and the routes answer. */
static void
on_request(void *arg, int fd, const struct conn_request *cr)
{
	struct server *srv = arg;
	struct stream *s = out_stream_adopt(srv->out, fd, cr->id, &cr->tail);

	if (s == NULL)
		return;
	if (cr->req == NULL)
		server_reply_error(&srv->routes, s, 503, "Retry-After: " RETRY_AFTER "\r\n",
		    "out of file descriptors");
	else if (cr->ended)
		out_stream_kill(srv->out, s);
	else
		server_route(&srv->routes, s, cr->req, cr->too_large);
}

/* ---- accepting ---- */

/*
 * The listen socket is watched (registered for EV_READ) unless listen_paused. Pausing
 * unregisters it, which cannot fail; watching it again can, and then the process must
 * not stay deaf for good: it tries again after LISTEN_RETRY_MS, and whenever a
 * descriptor is released.
 */
static void
listen_watch(struct server *srv)
{
	if (ev_io_add(srv->loop, srv->listen_fd, EV_READ | EV_EXCLUSIVE, on_listen, srv) == 0) {
		srv->listen_paused = 0;
		return;
	}
	log_error("cannot watch the listen socket: %s; trying again in %d ms", strerror(errno),
	    LISTEN_RETRY_MS);
	srv->listen_paused = 1;
	if (ev_timer_start(srv->loop, &srv->step_back_timer, LISTEN_RETRY_MS) == -1)
		log_error("cannot arm the listen retry: %s", strerror(errno));
}

static void
listen_unwatch(struct server *srv)
{
	if (!srv->listen_paused) {
		srv->listen_paused = 1;
		ev_io_del(srv->loop, srv->listen_fd);
	}
}

/* Out of descriptors: stop polling the listen socket until one is released, or the
 * level-triggered readiness would spin the loop. */
static void
listen_pause(struct server *srv)
{
	if (!srv->listen_paused) {
		listen_unwatch(srv);
		log_warn("out of file descriptors: not accepting until a stream ends");
	}
}

/*
 * A process at its stream ceiling leaves the accept race as soon as it gets there, so
 * that a sibling with room (spawn-fcgi -F N) takes the next connections; a sibling idle
 * in epoll_wait takes a new connection within microseconds. Every STEP_BACK_MS the full
 * process looks at the listen socket: it rejoins when it has room again (or a stream
 * ends), or when connections were waiting at two ticks in a row, which means no sibling
 * takes them (all full, or alone): it then accepts and answers 503 as before. One tick
 * is not enough: a connection a sibling is about to accept is readable for a moment.
 */
static void
on_full(void *arg)
{
	struct server *srv = arg;

	if (srv->shutting_down || (srv->listen_paused && !srv->stepped_back))
		return;
	listen_unwatch(srv);
	srv->stepped_back = 1;
	srv->waiting_seen = 0;
	if (!ev_timer_is_active(&srv->step_back_timer) &&
	    ev_timer_start(srv->loop, &srv->step_back_timer, STEP_BACK_MS) == -1) {
		srv->stepped_back = 0;
		listen_watch(srv);   /* no timer to come back: do not step back at all */
	}
}

static int
listen_has_waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void
on_trim(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(void)arg;
	if (heap_trim_if_free(TRIM_MIN_FREE, TRIM_SHARE))
		log_debug("freed memory given back to the system");
	/* without memory for the timer heap trimming stops; nothing else depends on it */
	if (ev_timer_start(loop, t, TRIM_EVERY_MS) == -1)
		log_warn("cannot arm the memory trim timer: %s", strerror(errno));
}

static void
on_step_back_over(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct server *srv = arg;

	(void)t;
	if (!srv->listen_paused || srv->shutting_down)
		return;
	if (srv->stepped_back && registry_streams(srv->reg) >= srv->routes.ceiling) {
		int waiting = listen_has_waiting(srv->listen_fd);

		if (!waiting || !srv->waiting_seen) {
			srv->waiting_seen = waiting;
			if (ev_timer_start(loop, &srv->step_back_timer, STEP_BACK_MS) == 0)
				return;
		}
	}
	srv->stepped_back = 0;
	if (srv->reserve_fd != -1)
		listen_watch(srv);
}

/*
 * Siblings share one listen socket. With EPOLLEXCLUSIVE the kernel wakes the first idle
 * waiter in the socket's wait queue, which is the process that registered first: left
 * alone, one idle process would take every connection. Registering again after a batch
 * puts this process at the back of the queue, so idle siblings take turns; it costs two
 * epoll_ctl calls per wake-up, not per connection.
 */
static void
listen_rotate(struct server *srv)
{
	if (srv->listen_paused)
		return;
	listen_unwatch(srv);
	listen_watch(srv);
}

static void
on_listen(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct server *srv = arg;
	int accepted = 0;

	(void)loop;
	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd >= ev_loop_setsize(srv->loop)) {
			close(cfd);
			cfd = -1;
			errno = EMFILE;
		}
		if (cfd >= 0) {
			conn_pool_add(srv->conns, cfd);
			accepted++;
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
			/* Spend the reserve descriptor on this one request to answer 503. */
			if (srv->reserve_fd != -1) {
				close(srv->reserve_fd);
				srv->reserve_fd = -1;
				cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (cfd >= 0 && cfd < ev_loop_setsize(srv->loop)) {
					srv->routes.refused++;
					conn_pool_add(srv->conns, cfd);
					continue;
				}
				if (cfd >= 0)
					close(cfd);
			}
			listen_pause(srv);
			return;
		default:
			/* EAGAIN: a sibling process took it, or nothing is left */
			i = ACCEPT_BATCH;
			break;
		}
	}
	if (accepted > 0)
		listen_rotate(srv);
}

/* ---- delivery ---- */

/* Encodes the event once and queues the same bytes on every stream of the resource. */
static size_t
on_deliver(void *arg, const char *resource, size_t resource_len, const char *event,
    size_t event_len, const char *data, size_t len, const char *id, size_t id_len, int own)
{
	struct server *srv = arg;
	struct resource *res = registry_find(srv->reg, resource, resource_len);
	struct registry_node *n, *next;
	size_t ok = 0, all;
	struct msg *m;

	/* With history on, an event is framed (it gets its id) and kept even when no
	 * stream listens now: a client that reconnects later is owed it. */
	if (res == NULL && !resume_is_on(srv->resume)) {
		log_debug("Local broadcast to %.*s: 0 success, 0 failed", (int)resource_len, resource);
		return 0;
	}
	m = resume_event_new(srv->resume, resource, resource_len, event, event_len, data, len,
	    id, id_len, res != NULL);
	if (m == NULL) {
		log_warn("out of memory encoding an event for %.*s", (int)resource_len, resource);
		return 0;
	}
	if (res == NULL) {
		msg_unref(m);
		log_debug("Local broadcast to %.*s: 0 success, 0 failed", (int)resource_len, resource);
		return 0;
	}
	all = registry_resource_streams(res);   /* res is gone if every stream stalls */
	if (!resume_has_held(srv->resume)) {
		ok = out_deliver(srv->out, res, m);
	} else {
		/* Streams waiting for a replay take the event through resume (held, or
		 * dropped as already replayed); the others as usual. */
		for (n = registry_resource_first(res); n != NULL; n = next) {
			struct stream *s = (struct stream *)(void *)((char *)n -
			    offsetof(struct stream, node));

			next = n->next;
			if ((s->flags & STREAM_HOLD) && resume_offer(srv->resume, s, m, id, id_len, own)) {
				all--;
				continue;
			}
			if (out_stream_push(srv->out, s, m) == 0)
				ok++;
		}
	}
	msg_unref(m);
	srv->routes.messages_out += ok;
	log_debug("Local broadcast to %.*s: %zu success, %zu failed", (int)resource_len, resource,
	    ok, all - ok);
	return ok;
}

/* ---- life cycle ---- */

static void
on_grace_over(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	log_notice("shutdown grace period over, closing what is left");
	ev_loop_stop(loop);
}

struct server *
server_new(struct ev_loop *loop, const struct conf *conf, int listen_fd, int stream_ceiling)
{
	struct server *srv = NULL;
	int fl;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		goto fail;
	srv->loop = loop;
	srv->conf = conf;
	srv->listen_fd = listen_fd;
	srv->reserve_fd = -1;
	ev_timer_init(&srv->shutdown_timer, on_grace_over, srv);
	ev_timer_init(&srv->step_back_timer, on_step_back_over, srv);
	ev_timer_init(&srv->trim_timer, on_trim, srv);
	if (server_routes_init(&srv->routes, conf) == -1)
		goto fail;
	srv->reg = registry_new();
	if (srv->reg == NULL)
		goto fail;
	srv->hub = hub_new(loop, conf, on_deliver, srv);
	if (srv->hub == NULL)
		goto fail;
	srv->out = out_new(loop, conf, srv->reg, on_fd_released, on_abandon, on_keep, srv);
	if (srv->out == NULL)
		goto fail;
	srv->resume = resume_new(loop, conf, srv->hub, srv->reg, &server_resume_ops, &srv->routes);
	if (srv->resume == NULL)
		goto fail;
	srv->conns = conn_pool_new(loop, conf, on_request, on_fd_released, srv);
	if (srv->conns == NULL)
		goto fail;
	srv->routes.loop = loop;
	srv->routes.out = srv->out;
	srv->routes.reg = srv->reg;
	srv->routes.hub = srv->hub;
	srv->routes.resume = srv->resume;
	srv->routes.conns = srv->conns;
	srv->routes.ceiling = (size_t)(stream_ceiling > 0 ? stream_ceiling : 0);
	srv->routes.started = time(NULL);
	srv->routes.on_full = on_full;
	srv->routes.arg = srv;

	fl = fcntl(listen_fd, F_GETFL);
	if (fl == -1 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		log_error("cannot make the listen socket non-blocking: %s", strerror(errno));
		goto fail;
	}
	if (ev_io_add(loop, listen_fd, EV_READ | EV_EXCLUSIVE, on_listen, srv) == -1) {
		log_error("cannot watch the listen socket: %s", strerror(errno));
		goto fail;
	}
	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (ev_timer_start(loop, &srv->trim_timer, TRIM_EVERY_MS) == -1) {
		log_error("cannot arm the memory trim timer: %s", strerror(errno));
		goto fail;
	}
	return srv;

fail:
	if (srv != NULL)
		srv->listen_fd = -1;   /* on failure the caller still owns it */
	server_free(srv);
	return NULL;
}

void
server_reconfigure(struct server *srv, int stream_ceiling)
{
	srv->routes.ceiling = (size_t)(stream_ceiling > 0 ? stream_ceiling : 0);
	if (!srv->shutting_down)
		out_heartbeat_restart(srv->out);
	if (srv->stepped_back && !srv->shutting_down && registry_streams(srv->reg) < srv->routes.ceiling) {
		srv->stepped_back = 0;
		listen_watch(srv);
	}
}

void
server_shutdown(struct server *srv, unsigned grace_ms)
{
	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	srv->routes.shutting_down = 1;
	listen_unwatch(srv);
	conn_pool_close_all(srv->conns);
	log_notice("shutting down: ending %zu streams", registry_streams(srv->reg));
	out_end_all(srv->out, (unsigned)srv->conf->retry, SHUTDOWN_JITTER_MS);
	if (ev_timer_start(srv->loop, &srv->shutdown_timer, grace_ms) == -1) {
		/* without its deadline a shutdown could wait forever on one stream */
		log_error("cannot arm the shutdown grace period: %s; stopping now", strerror(errno));
		ev_loop_stop(srv->loop);
	}
	on_fd_released(srv);   /* stops the loop at once when nothing is open */
}

void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	conn_pool_free(srv->conns);
	out_free(srv->out);   /* before the hub: pending publishers are cancelled there */
	ev_timer_stop(srv->loop, &srv->shutdown_timer);
	ev_timer_stop(srv->loop, &srv->step_back_timer);
	ev_timer_stop(srv->loop, &srv->trim_timer);
	if (srv->listen_fd != -1) {
		listen_unwatch(srv);
		close(srv->listen_fd);
	}
	if (srv->reserve_fd != -1)
		close(srv->reserve_fd);
	hub_free(srv->hub);
	resume_free(srv->resume);   /* after out_free: held streams are forgotten there */
	registry_free(srv->reg);
	server_routes_release(&srv->routes);
	free(srv);
}
