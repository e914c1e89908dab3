/*
 * server, conn and out together over a real loop and real sockets, with failures of the
 * loop's calls injected (the link wraps ev_timer_start, ev_io_add and ev_io_set; see the
 * Makefile): a connection without a timeout, a listener that cannot be watched again and
 * a stream that cannot wait for EV_WRITE must each end up handled, never forgotten.
 * pace_due is wrapped too, so a test can make the process pace its streams (pace.h)
 * without making it busy.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "ev.h"
#include "fcgi_record.h"
#include "fcgi_request.h"
#include "log.h"
#include "pace.h"
#include "server.h"

/* ---- failure injection: the n-th call from now fails (0: none) ---- */

static int fail_timer_start, fail_io_add, fail_io_set;

int __real_ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
int __wrap_ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
int __real_ev_io_add(struct ev_loop *loop, int fd, int events, ev_io_fn *fn, void *arg);
int __wrap_ev_io_add(struct ev_loop *loop, int fd, int events, ev_io_fn *fn, void *arg);
int __real_ev_io_set(struct ev_loop *loop, int fd, int events);
int __wrap_ev_io_set(struct ev_loop *loop, int fd, int events);

static int
injected(int *countdown)
{
	if (*countdown > 0 && --*countdown == 0) {
		errno = ENOMEM;
		return 1;
	}
	return 0;
}

int
__wrap_ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms)
{
	if (!ev_timer_is_active(t) && injected(&fail_timer_start))
		return -1;
	return __real_ev_timer_start(loop, t, after_ms);
}

/* While forced_pace_ms is set, every stream that pace_due() is asked about waits that
 * long, unless it holds PACE_BYTES (as in a busy process). */
static uint64_t forced_pace_ms;

uint64_t __real_pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms,
    size_t queued);
uint64_t __wrap_pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms,
    size_t queued);

uint64_t
__wrap_pace_due(const struct pace *p, uint64_t now_ms, uint32_t flushed_ms, size_t queued)
{
	if (forced_pace_ms == 0)
		return __real_pace_due(p, now_ms, flushed_ms, queued);
	return queued >= PACE_BYTES ? 0 : now_ms + forced_pace_ms;
}

int
__wrap_ev_io_add(struct ev_loop *loop, int fd, int events, ev_io_fn *fn, void *arg)
{
	return injected(&fail_io_add) ? -1 : __real_ev_io_add(loop, fd, events, fn, arg);
}

int
__wrap_ev_io_set(struct ev_loop *loop, int fd, int events)
{
	return injected(&fail_io_set) ? -1 : __real_ev_io_set(loop, fd, events);
}

/* ---- a server on an abstract Unix socket ---- */

struct fixture {
	struct ev_loop *loop;
	struct conf conf;
	struct server *srv;
	struct sockaddr_un sa;
	socklen_t salen;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int lfd;

	assert_non_null(f);
	fail_timer_start = fail_io_add = fail_io_set = 0;
	forced_pace_ms = 0;
	log_set_level(LOG_LEVEL_ERROR);
	conf_init(&f->conf);
	f->loop = ev_loop_new("epoll", 1024);
	assert_non_null(f->loop);
	f->sa.sun_family = AF_UNIX;
	snprintf(f->sa.sun_path + 1, sizeof(f->sa.sun_path) - 1, "sse-test-%ld-%p", (long)getpid(),
	    (void *)f);
	f->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(f->sa.sun_path + 1));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&f->sa, f->salen), 0);
	assert_int_equal(listen(lfd, 16), 0);
	f->srv = server_new(f->loop, &f->conf, lfd, 100);
	assert_non_null(f->srv);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	fail_timer_start = fail_io_add = fail_io_set = 0;
	server_free(f->srv);
	ev_loop_free(f->loop);
	conf_release(&f->conf);
	free(f);
	return 0;
}

static int
client(struct fixture *f)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&f->sa, f->salen), 0);
	return fd;
}

static size_t
nv(uint8_t *o, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);

	o[0] = (uint8_t)n;
	o[1] = (uint8_t)v;
	memcpy(o + 2, name, n);
	memcpy(o + 2 + n, value, v);
	return 2 + n + v;
}

/* Writes a whole request (body NULL for none) on fd. */
static void
send_request(int fd, const char *method, const char *uri, const char *body, size_t blen)
{
	static uint8_t buf[1 << 17];
	uint8_t params[256];
	size_t len = 0, plen = 0, off = 0;

	plen += nv(params + plen, "REQUEST_METHOD", method);
	plen += nv(params + plen, "REQUEST_URI", uri);
	fcgi_header_encode(buf, FCGI_REC_BEGIN_REQUEST, 1, 8, 0);
	memset(buf + 8, 0, 8);
	buf[9] = 1;   /* responder */
	len = 16;
	fcgi_header_encode(buf + len, FCGI_REC_PARAMS, 1, (uint16_t)plen, 0);
	memcpy(buf + len + 8, params, plen);
	len += 8 + plen;
	fcgi_header_encode(buf + len, FCGI_REC_PARAMS, 1, 0, 0);
	len += 8;
	while (off < blen) {
		size_t k = blen - off < 65535 ? blen - off : 65535;

		fcgi_header_encode(buf + len, FCGI_REC_STDIN, 1, (uint16_t)k, 0);
		memcpy(buf + len + 8, body + off, k);
		len += 8 + k;
		off += k;
	}
	fcgi_header_encode(buf + len, FCGI_REC_STDIN, 1, 0, 0);
	len += 8;
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Runs the loop until fd has reached EOF (everything before it is read and dropped) or
 * ms have passed; 1 on EOF. */
static int
run_until_eof(struct fixture *f, int fd, int ms)
{
	uint64_t end;

	ev_now_update(f->loop);
	end = ev_now_ms(f->loop) + (uint64_t)ms;
	while (ev_now_ms(f->loop) < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		char buf[65536];

		ev_loop_run_once(f->loop, 10);
		while (poll(&p, 1, 0) == 1) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n == 0)
				return 1;
			if (n < 0)
				break;
		}
		ev_now_update(f->loop);
	}
	return 0;
}

/* Reads a whole reply (until EOF), running the loop meanwhile. */
static size_t
read_reply(struct fixture *f, int fd, char *out, size_t cap, int ms)
{
	uint64_t end;
	size_t len = 0;

	ev_now_update(f->loop);
	end = ev_now_ms(f->loop) + (uint64_t)ms;
	while (ev_now_ms(f->loop) < end) {
		ssize_t n;

		ev_loop_run_once(f->loop, 10);
		while ((n = recv(fd, out + len, cap - 1 - len, MSG_DONTWAIT)) > 0)
			len += (size_t)n;
		if (n == 0)
			break;
		ev_now_update(f->loop);
	}
	out[len] = '\0';
	return len;
}

/* ---- the cases ---- */

/* The request timeout of a new connection cannot be armed: the connection is closed at
 * once instead of living without a timeout. */
static void
test_conn_timer_fails(void **state)
{
	struct fixture *f = *state;
	int fd = client(f);

	fail_timer_start = 1;   /* the next start is the connection's request timeout */
	assert_true(run_until_eof(f, fd, 1000));
	assert_int_equal(fail_timer_start, 0);
	close(fd);
}

/* Watching the listen socket again after a batch of accepts fails: the server tries
 * again (the stream it accepted stays open, so no released descriptor helps: the retry
 * timer does) and serves the next connection. */
static void
test_listen_retry(void **state)
{
	struct fixture *f = *state;
	static char reply[8192];
	size_t n;
	int a, b;

	a = client(f);
	fail_io_add = 2;   /* the connection's registration, then the listen socket's */
	send_request(a, "GET", "/sse/keep", NULL, 0);
	n = 0;
	for (int i = 0; i < 100 && memmem(reply, n, "retry:", 6) == NULL; i++) {
		ssize_t k;

		ev_loop_run_once(f->loop, 10);
		k = recv(a, reply + n, sizeof(reply) - n, MSG_DONTWAIT);
		n += k > 0 ? (size_t)k : 0;
	}
	assert_non_null(memmem(reply, n, "retry:", 6));
	assert_int_equal(fail_io_add, 0);
	b = client(f);
	send_request(b, "GET", "/stats", NULL, 0);
	n = read_reply(f, b, reply, sizeof(reply), 3000);
	assert_non_null(memmem(reply, n, "Status: 200", 11));
	close(b);
	close(a);
}

/* A stream whose socket is full cannot be set to wait for EV_WRITE: it is closed, not
 * left blocked for ever. */
static void
test_stream_cannot_wait(void **state)
{
	struct fixture *f = *state;
	static char body[60000], reply[8192];
	int s = client(f), small = 4096;

	memset(body, 'x', sizeof(body));
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	send_request(s, "GET", "/sse/full", NULL, 0);
	for (int i = 0; i < 20; i++) {
		int p = client(f);

		if (i == 0)
			fail_io_set = 1;   /* the first wait for EV_WRITE */
		send_request(p, "POST", "/publish/full", body, sizeof(body));
		read_reply(f, p, reply, sizeof(reply), 1000);
		close(p);
		if (fail_io_set == 0)
			break;
	}
	assert_int_equal(fail_io_set, 0);
	assert_true(run_until_eof(f, s, 2000));
	close(s);
}

/* Runs the loop until the stream's bytes in buf contain want or ms have passed; returns
 * the bytes in buf (appended to *len). */
static int
read_stream_until(struct fixture *f, int fd, char *buf, size_t cap, size_t *len,
    const char *want, int ms)
{
	uint64_t end;

	ev_now_update(f->loop);
	end = ev_now_ms(f->loop) + (uint64_t)ms;
	while (memmem(buf, *len, want, strlen(want)) == NULL && ev_now_ms(f->loop) < end) {
		ssize_t n;

		ev_loop_run_once(f->loop, 5);
		while ((n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT)) > 0)
			*len += (size_t)n;
		ev_now_update(f->loop);
	}
	return memmem(buf, *len, want, strlen(want)) != NULL;
}

/* STDOUT records with content in buf[0..len), which holds whole records. */
static int
stdout_records(const uint8_t *buf, size_t len)
{
	size_t off = 0;
	int n = 0;

	while (off + 8 <= len) {
		size_t clen = (size_t)buf[off + 4] << 8 | buf[off + 5];

		n += buf[off + 1] == FCGI_REC_STDOUT && clen > 0;
		off += 8 + clen + buf[off + 6];
	}
	assert_int_equal(off, len);
	return n;
}

/* Publishes and checks the reply came within 1 s (well before a forced pace's 2 s). */
static void
publish(struct fixture *f, const char *uri, const char *body, size_t len)
{
	static char reply[8192];
	int p = client(f);
	uint64_t t0;

	ev_now_update(f->loop);
	t0 = ev_now_ms(f->loop);
	send_request(p, "POST", uri, body, len);
	assert_non_null(memmem(reply, read_reply(f, p, reply, sizeof(reply), 3000),
	    "Status: 200", 11));
	ev_now_update(f->loop);
	assert_true(ev_now_ms(f->loop) - t0 < 1000);
	close(p);
}

/* A paced stream: its events wait for the pace timer and then leave together, in one
 * record; the publishes' replies never wait; and one that comes to hold PACE_BYTES
 * leaves at once. */
static void
test_paced_stream(void **state)
{
	struct fixture *f = *state;
	static char buf[65536], big[9000];
	size_t len = 0;
	uint64_t t0, t1;
	int s = client(f);

	send_request(s, "GET", "/sse/paced", NULL, 0);
	assert_true(read_stream_until(f, s, buf, sizeof(buf), &len, "retry:", 3000));
	assert_true(read_stream_until(f, s, buf, sizeof(buf), &len, "\n\n", 3000));
	forced_pace_ms = 2000;
	ev_now_update(f->loop);
	t0 = ev_now_ms(f->loop);
	/* each publish is answered at once while the stream waits */
	publish(f, "/publish/paced", "one", 3);
	publish(f, "/publish/paced", "two", 3);
	len = 0;
	assert_int_equal(recv(s, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_true(read_stream_until(f, s, buf, sizeof(buf), &len, "data: two", 6000));
	ev_now_update(f->loop);
	t1 = ev_now_ms(f->loop);
	assert_true(t1 - t0 >= 1500);
	assert_non_null(memmem(buf, len, "data: one", 9));
	assert_int_equal(stdout_records((uint8_t *)buf, len), 1);
	/* the stream was just written: the next event waits again, until one more brings
	 * the stream to PACE_BYTES; then both leave at once */
	publish(f, "/publish/paced", "three", 5);
	assert_int_equal(recv(s, buf, sizeof(buf), MSG_DONTWAIT), -1);
	memset(big, 'b', sizeof(big));
	ev_now_update(f->loop);
	t0 = ev_now_ms(f->loop);
	publish(f, "/publish/paced", big, sizeof(big));
	len = 0;
	assert_true(read_stream_until(f, s, buf, sizeof(buf), &len, "bbbb\n\n", 6000));
	ev_now_update(f->loop);
	assert_true(ev_now_ms(f->loop) - t0 < 1500);
	assert_non_null(memmem(buf, len, "data: three", 11));
	close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_conn_timer_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_cannot_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paced_stream, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	if (fcgi_lib_init() != 0)
		return 1;
	return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
