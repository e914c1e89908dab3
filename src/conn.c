/* conn — see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ev.h"
#include "fcgi_request.h"
#include "log.h"

/* One connection whose request head is being read. */
struct conn {
	struct conn_pool *pool;
	struct conn *prev, *next;
	int fd;
	struct ev_timer timer;
	struct fcgi_head_scan scan;
	uint8_t *buf;
	size_t len, cap;
};

struct conn_pool {
	struct ev_loop *loop;
	const struct conf *conf;
	conn_request_fn *on_request;
	conn_close_fn *on_close;
	void *arg;
	struct conn *head;
	size_t n;
};

struct conn_pool *
conn_pool_new(struct ev_loop *loop, const struct conf *conf, conn_request_fn *on_request,
    conn_close_fn *on_close, void *arg)
{
	struct conn_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->loop = loop;
	p->conf = conf;
	p->on_request = on_request;
	p->on_close = on_close;
	p->arg = arg;
	return p;
}

/* Unlinks and frees c. close_fd 0: the descriptor, still registered in the loop, has
 * been handed on. notify: tell the owner a descriptor was closed. */
static void
conn_free(struct conn *c, int close_fd, int notify)
{
	struct conn_pool *p = c->pool;

	ev_timer_stop(p->loop, &c->timer);
	if (close_fd) {
		ev_io_del(p->loop, c->fd);
		close(c->fd);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		p->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	p->n--;
	free(c->buf);
	free(c);
	if (close_fd && notify)
		p->on_close(p->arg);
}

void
conn_pool_close_all(struct conn_pool *p)
{
	while (p->head != NULL)
		conn_free(p->head, 1, 1);
}

void
conn_pool_free(struct conn_pool *p)
{
	if (p == NULL)
		return;
	while (p->head != NULL)
		conn_free(p->head, 1, 0);
	free(p);
}

size_t
conn_pool_count(const struct conn_pool *p)
{
	return p->n;
}

/* The whole request is in: decode it and hand the descriptor on. */
static void
conn_dispatch(struct conn *c)
{
	struct conn_pool *p = c->pool;
	struct fcgi_request req;
	struct conn_request cr;
	int fd = c->fd;

	memset(&cr, 0, sizeof(cr));
	cr.id = c->scan.id;
	cr.too_large = c->scan.stdin_dropped;
	if (fcgi_request_parse(&req, c->buf, c->len) == -1) {
		if (errno != EMFILE && errno != ENFILE && errno != ENOMEM) {
			log_warn("undecodable FastCGI request: %s", strerror(errno));
			conn_free(c, 1, 1);
			return;
		}
		/* decoding needs a descriptor and memory; without them the answer is 503 */
		conn_free(c, 0, 0);
		p->on_request(p->arg, fd, &cr);
		return;
	}
	cr.req = &req;
	/* bytes past the request (normally none) are the stream's to watch */
	cr.ended = fcgi_tail_feed(&cr.tail, c->buf + c->scan.off, c->len - c->scan.off) != 0;
	conn_free(c, 0, 0);   /* c is gone; the descriptor stays open */
	p->on_request(p->arg, fd, &cr);
	fcgi_request_release(&req);
}

/*
 * Reads at most CONN_WAKE_BYTES per readiness event, then returns to the loop even if
 * more is waiting: the descriptor stays readable and is served again after the timers
 * and the other descriptors of this turn. Without the budget, a peer that writes as
 * fast as we read would keep this function from ever returning.
 */
static void
on_conn_io(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct conn *c = arg;
	size_t max_stdin = (size_t)c->pool->conf->max_message_bytes;
	size_t limit = max_stdin + CONN_HEAD_ROOM, budget = CONN_WAKE_BYTES;

	(void)loop;
	(void)events;
	while (budget > 0) {
		size_t want;
		ssize_t n;
		int r;

		if (c->len == c->cap) {
			size_t ncap = c->cap * 2;
			uint8_t *nb;

			if (ncap > limit)
				ncap = limit;
			nb = realloc(c->buf, ncap);
			if (nb == NULL) {
				conn_free(c, 1, 1);
				return;
			}
			c->buf = nb;
			c->cap = ncap;
		}
		want = c->cap - c->len < budget ? c->cap - c->len : budget;
		n = read(fd, c->buf + c->len, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_free(c, 1, 1);
			return;
		}
		budget -= (size_t)n;
		c->len += (size_t)n;
		r = fcgi_head_scan(&c->scan, c->buf, &c->len, max_stdin);
		if (r == 0) {
			conn_dispatch(c);
			return;
		}
		if (r == -1) {
			if (!c->scan.aborted)
				log_warn("malformed FastCGI request, closing");
			conn_free(c, 1, 1);
			return;
		}
		/* records cut out by the scanner were still sent to us: they count */
		if (c->len + c->scan.skipped >= limit) {
			log_warn("FastCGI request head over %zu bytes, closing", limit);
			conn_free(c, 1, 1);
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
	log_info("request head not complete after %d ms, closing", CONN_REQUEST_TIMEOUT_MS);
	conn_free(c, 1, 1);
}

int
conn_pool_add(struct conn_pool *p, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		goto fail;
	ev_timer_init(&c->timer, on_conn_timeout, c);
	c->pool = p;
	c->fd = fd;
	c->cap = 2048;
	c->buf = malloc(c->cap);
	if (c->buf == NULL)
		goto fail;
	fcgi_head_scan_init(&c->scan);
	/* a connection without its timeout could hold a descriptor for ever */
	if (ev_timer_start(p->loop, &c->timer, CONN_REQUEST_TIMEOUT_MS) == -1) {
		log_warn("cannot arm a request timeout (%s), closing the connection",
		    strerror(errno));
		goto fail;
	}
	if (ev_io_add(p->loop, fd, EV_READ, on_conn_io, c) == -1)
		goto fail;
	c->next = p->head;
	if (p->head != NULL)
		p->head->prev = c;
	p->head = c;
	p->n++;
	/*
	 * The web server writes its request right after connecting, so it is usually
	 * already here: reading now saves a trip through the poller, and requests accepted
	 * in one batch are answered in one pass, their events sharing one flush.
	 */
	on_conn_io(p->loop, fd, EV_READ, c);
	return 0;

fail:
	if (c != NULL) {
		ev_timer_stop(p->loop, &c->timer);
		free(c->buf);
	}
	free(c);
	close(fd);
	p->on_close(p->arg);
	return -1;
}
