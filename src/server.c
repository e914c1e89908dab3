/*
 * server — see server.h.
 *
 * A connection lives two lives. First a struct conn reads the request head without
 * ever blocking: bytes are buffered and walked by fcgi_head_scan until the request is
 * complete, and only then does libfcgi decode it (fcgi_request_parse). Then a struct
 * stream takes the descriptor for the answer: either an event stream, registered under
 * its resource until it ends, or a one-shot reply that closes once written. The conn's
 * buffer is freed at that point, so an idle event stream costs only its small struct.
 *
 * Writes are deferred: queuing marks a stream dirty and a zero-delay timer flushes every
 * dirty stream after the current batch of events, so several events queued in one loop
 * pass leave in one writev. Closes are deferred the same way, so a stream may be killed
 * from anywhere (even while its resource is being walked) and is freed in one place.
 *
 * What each route answers lives in server_routes.c; server_impl.h is what they share.
 */
#include "server.h"
#include "server_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ev.h"
#include "fcgi_record.h"
#include "fcgi_request.h"
#include "hub.h"
#include "log.h"
#include "registry.h"
#include "resume.h"
#include "sse.h"
#include "stream.h"

#define REQUEST_TIMEOUT_MS 10000   /* a request head must arrive within this */
#define ACCEPT_BATCH 64            /* accepts per wake-up, so accepting cannot starve streams */
#define HEAD_ROOM (64 * 1024)      /* params and record headers buffered besides the body */
#define SHUTDOWN_JITTER_MS 10000   /* retry: spread on shutdown */
#define STEP_BACK_MS 50            /* a full process leaves the accept race this long */

#define stream_of_node(n) ((struct stream *)((char *)(n) - offsetof(struct stream, node)))

struct conn {
	struct server *srv;
	struct conn *prev, *next;
	int fd;
	struct ev_timer timer;
	struct fcgi_head_scan scan;
	uint8_t *buf;
	size_t len, cap;
};

/* ---- message helpers ---- */

static struct msg *
msg_static(const char *text, size_t len)
{
	struct msg *m = msg_new(len, 0);

	if (m == NULL)
		return NULL;
	memcpy(m->data, text, len);
	m->refs = MSG_STATIC;
	return m;
}

/* ---- stream lifecycle ---- */

static void flush_schedule(struct server *srv);

static void
mark_dirty(struct server *srv, struct stream *s)
{
	if (s->flags & STREAM_DIRTY)
		return;
	s->flags |= STREAM_DIRTY;
	s->dirty_next = srv->dirty;
	srv->dirty = s;
	flush_schedule(srv);
}

/*
 * Every live stream is on exactly one list, through idle_prev/idle_next: event streams on
 * srv->idle (oldest write first, which is heartbeat order), replies and ending streams on
 * srv->replies. Dead streams are only on the dirty list, until they are freed.
 */
static void
slist_del(struct slist *l, struct stream *s)
{
	if (s->idle_prev != NULL)
		s->idle_prev->idle_next = s->idle_next;
	else
		l->head = s->idle_next;
	if (s->idle_next != NULL)
		s->idle_next->idle_prev = s->idle_prev;
	else
		l->tail = s->idle_prev;
	s->idle_prev = s->idle_next = NULL;
}

static void
slist_add(struct slist *l, struct stream *s)
{
	s->idle_prev = l->tail;
	s->idle_next = NULL;
	if (l->tail != NULL)
		l->tail->idle_next = s;
	else
		l->head = s;
	l->tail = s;
}

/* Takes the stream out of every list it is reachable from; freed at the next flush. */
void
server_stream_kill(struct server *srv, struct stream *s)
{
	if (s->flags & STREAM_DEAD)
		return;
	if (s->flags & STREAM_SSE) {
		registry_del(srv->reg, &s->node);
		slist_del(&srv->idle, s);
		s->flags &= (uint8_t)~STREAM_SSE;
	} else {
		slist_del(&srv->replies, s);
	}
	if (s->flags & STREAM_PENDING) {
		hub_cancel(srv->hub, s);
		s->flags &= (uint8_t)~STREAM_PENDING;
	}
	if (s->flags & STREAM_HOLD) {
		resume_stream_gone(srv->resume, s);
		s->flags &= (uint8_t)~STREAM_HOLD;
	}
	ev_io_del(srv->loop, s->fd);
	s->flags |= STREAM_DEAD;
	mark_dirty(srv, s);
}

/* A descriptor was freed: take back the reserve and resume accepting if we had paused. */
static void
fd_released(struct server *srv)
{
	if (srv->reserve_fd == -1)
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (srv->listen_paused && !srv->shutting_down) {
		srv->listen_paused = 0;
		ev_io_set(srv->loop, srv->listen_fd, EV_READ);
	}
	if (srv->shutting_down && srv->nstreams == 0 && srv->nconns == 0)
		ev_loop_stop(srv->loop);
}

static void
stream_finalize(struct server *srv, struct stream *s)
{
	close(s->fd);
	stream_release(s);
	free(s);
	srv->nstreams--;
	fd_released(srv);
}

/* Queues m on s; a stream that cannot take it is stalled and is closed. */
int
server_stream_push(struct server *srv, struct stream *s, struct msg *m, size_t limit)
{
	if (stream_queue(s, m, limit) == -1) {
		if (errno == ENOBUFS) {
			srv->dropped_slow++;
			log_info("stream on %s stalled with %u bytes queued, closing it",
			    registry_node_name(&s->node), s->queued);
		} else {
			log_warn("out of memory queuing on %s, closing the stream",
			    registry_node_name(&s->node));
		}
		server_stream_kill(srv, s);
		return -1;
	}
	if (s->flags & STREAM_SSE) {
		s->last_write_ms = ev_now_ms(srv->loop);
		if (srv->idle.tail != s) {   /* heartbeat order: most recent write last */
			slist_del(&srv->idle, s);
			slist_add(&srv->idle, s);
		}
	}
	if (!(s->flags & STREAM_BLOCKED))
		mark_dirty(srv, s);
	return 0;
}

static void
stream_flush_one(struct server *srv, struct stream *s)
{
	int r = stream_flush(s);

	if (r == -1) {
		server_stream_kill(srv, s);
		return;
	}
	if (r == 0) {
		if (!(s->flags & STREAM_BLOCKED)) {
			s->flags |= STREAM_BLOCKED;
			ev_io_set(srv->loop, s->fd, EV_READ | EV_WRITE);
		}
		return;
	}
	if (s->flags & STREAM_CLOSING) {
		server_stream_kill(srv, s);
		return;
	}
	if (s->flags & STREAM_BLOCKED) {
		s->flags &= (uint8_t)~STREAM_BLOCKED;
		ev_io_set(srv->loop, s->fd, EV_READ);
	}
}

static void
on_flush(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct server *srv = arg;
	struct stream *s = srv->dirty, *next;

	(void)loop;
	(void)t;
	srv->dirty = NULL;
	for (; s != NULL; s = next) {
		next = s->dirty_next;
		s->flags &= (uint8_t)~STREAM_DIRTY;
		if (s->flags & STREAM_DEAD)
			stream_finalize(srv, s);
		else if (!(s->flags & STREAM_BLOCKED))
			stream_flush_one(srv, s);
	}
}

static void
flush_schedule(struct server *srv)
{
	if (!ev_timer_is_active(&srv->flush_timer))
		ev_timer_start(srv->loop, &srv->flush_timer, 0);
}

/* The peer only ever sends EOF or ABORT_REQUEST once the request is in. */
static void
on_stream_io(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct stream *s = arg;
	struct server *srv = s->owner;

	(void)loop;
	if (events & EV_READ) {
		uint8_t buf[512];
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			server_stream_kill(srv, s);
			return;
		}
		if (n > 0 && fcgi_tail_feed(&s->tail, buf, (size_t)n) != 0) {
			log_debug("stream on %s aborted by the web server",
			    registry_node_name(&s->node));
			server_stream_kill(srv, s);
			return;
		}
	}
	if (events & EV_WRITE)
		stream_flush_one(srv, s);
}

/* Takes over fd, still registered for EV_READ by the conn it came from. On failure
 * the caller closes fd (and must ev_io_del it first). */
static struct stream *
stream_adopt(struct server *srv, int fd, uint16_t id)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->owner = srv;
	s->fd = fd;
	s->id = id;
	ev_io_rebind(srv->loop, fd, on_stream_io, s);
	slist_add(&srv->replies, s);
	srv->nstreams++;
	return s;
}

int
server_stream_listen(struct server *srv, struct stream *s, const char *resource, size_t len)
{
	if (registry_add(srv->reg, &s->node, resource, len) == -1)
		return -1;
	slist_del(&srv->replies, s);
	s->flags |= STREAM_SSE;
	slist_add(&srv->idle, s);
	server_stream_push(srv, s, srv->open_msg, SIZE_MAX);
	return 0;
}

void
server_stream_end(struct server *srv, struct stream *s, unsigned retry_ms)
{
	char text[SSE_RETRY_MAX];

	registry_del(srv->reg, &s->node);
	slist_del(&srv->idle, s);
	slist_add(&srv->replies, s);
	s->flags &= (uint8_t)~STREAM_SSE;
	server_reply_text(srv, s, text, sse_retry_encode(text, retry_ms));
}

/* ---- request heads ---- */

/* close_fd 0 hands the descriptor, still registered in the loop, to a stream. */
static void
conn_close(struct conn *c, int close_fd)
{
	struct server *srv = c->srv;

	ev_timer_stop(srv->loop, &c->timer);
	if (close_fd) {
		ev_io_del(srv->loop, c->fd);
		close(c->fd);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->nconns--;
	free(c->buf);
	free(c);
	if (close_fd)
		fd_released(srv);
}

/* The whole request is in: decode it, hand the descriptor to a stream, answer. */
static void
conn_dispatch(struct conn *c)
{
	struct server *srv = c->srv;
	struct fcgi_request req;
	struct fcgi_tail tail = { 0 };
	struct stream *s;
	int fd = c->fd, too_large = c->scan.stdin_dropped, tail_rc;

	if (fcgi_request_parse(&req, c->buf, c->len) == -1) {
		if (errno != EMFILE && errno != ENFILE && errno != ENOMEM) {
			log_warn("undecodable FastCGI request: %s", strerror(errno));
			conn_close(c, 1);
			return;
		}
		/* decoding needs a descriptor and memory; without them the answer is 503 */
		req.id = c->scan.id;
		conn_close(c, 0);
		s = stream_adopt(srv, fd, req.id);
		if (s == NULL) {
			ev_io_del(srv->loop, fd);
			close(fd);
			fd_released(srv);
			return;
		}
		server_reply_error(srv, s, 503, "Retry-After: " RETRY_AFTER "\r\n",
		    "out of file descriptors");
		return;
	}
	/* bytes past the request (normally none) are the stream's to watch */
	tail_rc = fcgi_tail_feed(&tail, c->buf + c->scan.off, c->len - c->scan.off);
	conn_close(c, 0);   /* c is gone; the descriptor stays open */
	s = stream_adopt(srv, fd, req.id);
	if (s == NULL) {
		log_warn("out of memory for a stream, dropping the connection");
		ev_io_del(srv->loop, fd);
		close(fd);
		fd_released(srv);
	} else if (tail_rc != 0) {
		s->tail = tail;
		server_stream_kill(srv, s);
	} else {
		s->tail = tail;
		server_route(srv, s, &req, too_large);
	}
	fcgi_request_release(&req);
}

static void
on_conn_io(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct conn *c = arg;
	size_t max_stdin = (size_t)c->srv->conf->max_message_bytes;
	size_t limit = max_stdin + HEAD_ROOM;

	(void)loop;
	(void)events;
	for (;;) {
		ssize_t n;
		int r;

		if (c->len == c->cap) {
			size_t ncap = c->cap * 2;
			uint8_t *nb;

			if (c->cap >= limit) {
				log_warn("FastCGI request head over %zu bytes, closing", limit);
				conn_close(c, 1);
				return;
			}
			if (ncap > limit)
				ncap = limit;
			nb = realloc(c->buf, ncap);
			if (nb == NULL) {
				conn_close(c, 1);
				return;
			}
			c->buf = nb;
			c->cap = ncap;
		}
		n = read(fd, c->buf + c->len, c->cap - c->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c, 1);
			return;
		}
		c->len += (size_t)n;
		r = fcgi_head_scan(&c->scan, c->buf, &c->len, max_stdin);
		if (r == 0) {
			conn_dispatch(c);
			return;
		}
		if (r == -1) {
			if (!c->scan.aborted)
				log_warn("malformed FastCGI request, closing");
			conn_close(c, 1);
			return;
		}
	}
}

static void
on_conn_timeout(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct conn *c = arg;

	(void)loop;
	(void)t;
	log_info("request head not complete after %d ms, closing", REQUEST_TIMEOUT_MS);
	conn_close(c, 1);
}

static void
conn_start(struct server *srv, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		goto fail;
	c->srv = srv;
	c->fd = fd;
	c->cap = 2048;
	c->buf = malloc(c->cap);
	if (c->buf == NULL)
		goto fail;
	fcgi_head_scan_init(&c->scan);
	if (ev_io_add(srv->loop, fd, EV_READ, on_conn_io, c) == -1)
		goto fail;
	ev_timer_init(&c->timer, on_conn_timeout, c);
	ev_timer_start(srv->loop, &c->timer, REQUEST_TIMEOUT_MS);
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	/*
	 * The web server writes its request right after connecting, so it is usually
	 * already here: reading now saves a trip through the poller, and requests accepted
	 * in one batch are answered in one pass, their events sharing one flush.
	 */
	on_conn_io(srv->loop, fd, EV_READ, c);
	return;

fail:
	if (c != NULL)
		free(c->buf);
	free(c);
	close(fd);
}

static void on_listen(struct ev_loop *loop, int fd, int events, void *arg);

/* Out of descriptors: stop polling the listen socket until one is released, or the
 * level-triggered readiness would spin the loop. */
static void
listen_pause(struct server *srv)
{
	if (!srv->listen_paused) {
		srv->listen_paused = 1;
		ev_io_set(srv->loop, srv->listen_fd, EV_NONE);
		log_warn("out of file descriptors: not accepting until a stream ends");
	}
}

/*
 * A process at its stream ceiling steps back from the accept race for a moment, so that
 * a sibling with room (spawn-fcgi -F N) takes the next connections. Alone, it resumes
 * after STEP_BACK_MS (or as soon as a stream ends) and answers 503 as before.
 */
void
server_listen_step_back(struct server *srv)
{
	if (srv->listen_paused || srv->shutting_down)
		return;
	srv->listen_paused = 1;
	ev_io_set(srv->loop, srv->listen_fd, EV_NONE);
	ev_timer_start(srv->loop, &srv->step_back_timer, STEP_BACK_MS);
}

static void
on_step_back_over(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct server *srv = arg;

	(void)t;
	if (srv->listen_paused && !srv->shutting_down && srv->reserve_fd != -1) {
		srv->listen_paused = 0;
		ev_io_set(loop, srv->listen_fd, EV_READ);
	}
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
	ev_io_del(srv->loop, srv->listen_fd);
	if (ev_io_add(srv->loop, srv->listen_fd, EV_READ | EV_EXCLUSIVE, on_listen, srv) == -1)
		log_error("cannot watch the listen socket again: %s", strerror(errno));
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
			conn_start(srv, cfd);
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
					srv->refused++;
					conn_start(srv, cfd);
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

/* ---- heartbeat ---- */

static void
on_heartbeat(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct server *srv = arg;
	uint64_t period = (uint64_t)srv->conf->heartbeat * 1000;
	uint64_t now = ev_now_ms(loop);
	struct stream *s;

	while ((s = srv->idle.head) != NULL && s->last_write_ms + period <= now)
		server_stream_push(srv, s, srv->hb_msg, (size_t)srv->conf->stream_queue_bytes);
	s = srv->idle.head;
	ev_timer_start(loop, t, s != NULL ? s->last_write_ms + period - now : period);
}

/* ---- delivery ---- */

/* Encodes the event once and queues the same bytes on every stream of the resource. */
static size_t
on_deliver(void *arg, const char *resource, size_t resource_len, const char *event,
    size_t event_len, const char *data, size_t len, const char *id, size_t id_len)
{
	struct server *srv = arg;
	struct resource *res = registry_find(srv->reg, resource, resource_len);
	struct registry_node *n, *next;
	size_t ok = 0, failed = 0;
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
	for (n = registry_resource_first(res); n != NULL; n = next) {
		next = n->next;   /* a stalled stream leaves the list while we walk it */
		if ((stream_of_node(n)->flags & STREAM_HOLD) &&
		    resume_offer(srv->resume, stream_of_node(n), m, id, id_len))
			continue;   /* held for a replay, or sent by it */
		if (server_stream_push(srv, stream_of_node(n), m, (size_t)srv->conf->stream_queue_bytes) == 0)
			ok++;
		else
			failed++;
	}
	msg_unref(m);
	srv->messages_out += ok;
	log_debug("Local broadcast to %.*s: %zu success, %zu failed", (int)resource_len, resource,
	    ok, failed);
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
	char open_text[1024], retry[SSE_RETRY_MAX + 1];
	int n, fl;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		goto fail;
	srv->loop = loop;
	srv->conf = conf;
	srv->listen_fd = listen_fd;
	srv->reserve_fd = -1;
	srv->ceiling = (size_t)(stream_ceiling > 0 ? stream_ceiling : 0);
	srv->started = time(NULL);
	srv->prefixes.subscribe = conf->subscribe_prefix;
	srv->prefixes.publish = conf->publish_prefix;
	srv->prefixes.stats = conf->stats_path;
	ev_timer_init(&srv->flush_timer, on_flush, srv);
	ev_timer_init(&srv->heartbeat_timer, on_heartbeat, srv);
	ev_timer_init(&srv->shutdown_timer, on_grace_over, srv);
	ev_timer_init(&srv->step_back_timer, on_step_back_over, srv);

	srv->reg = registry_new();
	if (srv->reg == NULL)
		goto fail;
	retry[sse_retry_encode(retry, (unsigned)conf->retry)] = '\0';
	n = snprintf(open_text, sizeof(open_text),
	    "Status: 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
	    "X-Accel-Buffering: no\r\n%s%s%s\r\n%s",
	    conf->cors_origin ? "Access-Control-Allow-Origin: " : "",
	    conf->cors_origin ? conf->cors_origin : "", conf->cors_origin ? "\r\n" : "", retry);
	if (n < 0 || (size_t)n >= sizeof(open_text)) {
		log_error("cors_origin is too long");
		goto fail;
	}
	srv->open_msg = msg_static(open_text, (size_t)n);
	srv->hb_msg = msg_static(sse_heartbeat, sse_heartbeat_len);
	if (srv->open_msg == NULL || srv->hb_msg == NULL)
		goto fail;
	srv->hub = hub_new(loop, conf, on_deliver, srv);
	if (srv->hub == NULL)
		goto fail;
	srv->resume = resume_new(loop, conf, srv->hub, srv->reg, &server_resume_ops, srv);
	if (srv->resume == NULL)
		goto fail;

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
	ev_timer_start(loop, &srv->heartbeat_timer, (uint64_t)conf->heartbeat * 1000);
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
	srv->ceiling = (size_t)(stream_ceiling > 0 ? stream_ceiling : 0);
	if (!srv->shutting_down)
		ev_timer_start(srv->loop, &srv->heartbeat_timer, 0);   /* re-plans from the list */
}

void
server_shutdown(struct server *srv, unsigned grace_ms)
{
	struct stream *s, *next;
	struct conn *c;

	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	ev_io_del(srv->loop, srv->listen_fd);
	ev_timer_stop(srv->loop, &srv->heartbeat_timer);
	while ((c = srv->conns) != NULL)
		conn_close(c, 1);
	log_notice("shutting down: ending %zu streams", registry_streams(srv->reg));
	/* Each browser is told a different retry so that they do not all come back at once. */
	for (s = srv->idle.head; s != NULL; s = next) {
		char text[SSE_RETRY_MAX];
		unsigned ms = (unsigned)srv->conf->retry +
		    (unsigned)(random() % (SHUTDOWN_JITTER_MS + 1));

		next = s->idle_next;
		registry_del(srv->reg, &s->node);
		slist_del(&srv->idle, s);
		slist_add(&srv->replies, s);
		s->flags &= (uint8_t)~STREAM_SSE;
		server_reply_text(srv, s, text, sse_retry_encode(text, ms));
	}
	ev_timer_start(srv->loop, &srv->shutdown_timer, grace_ms);
	fd_released(srv);   /* stops the loop at once when nothing is open */
}

void
server_free(struct server *srv)
{
	struct stream *s;

	if (srv == NULL)
		return;
	while (srv->conns != NULL)
		conn_close(srv->conns, 1);
	while (srv->idle.head != NULL)
		server_stream_kill(srv, srv->idle.head);
	while (srv->replies.head != NULL)
		server_stream_kill(srv, srv->replies.head);
	while ((s = srv->dirty) != NULL) {
		srv->dirty = s->dirty_next;
		close(s->fd);
		stream_release(s);
		free(s);
	}
	ev_timer_stop(srv->loop, &srv->flush_timer);
	ev_timer_stop(srv->loop, &srv->heartbeat_timer);
	ev_timer_stop(srv->loop, &srv->shutdown_timer);
	ev_timer_stop(srv->loop, &srv->step_back_timer);
	if (srv->listen_fd != -1) {
		ev_io_del(srv->loop, srv->listen_fd);
		close(srv->listen_fd);
	}
	if (srv->reserve_fd != -1)
		close(srv->reserve_fd);
	hub_free(srv->hub);
	resume_free(srv->resume);   /* after every stream: they may still be held */
	registry_free(srv->reg);
	free(srv->open_msg);
	free(srv->hb_msg);
	free(srv);
}
