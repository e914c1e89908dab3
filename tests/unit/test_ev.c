/*
 * test_ev.c — the event loop, every test run once per backend in ev_backends().
 *
 * Readiness is produced synchronously (write before poll, close the peer), so
 * no test sleeps to synchronise; the timer tests measure with generous bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ev.h"

#define SETSIZE 64
#define MAX_REC 64
#define MAX_FDS 16

struct rec {
	int fd;
	int events;
	int tag;
};

struct fx {
	struct ev_loop *loop;
	const char *backend;
	int fds[MAX_FDS];       /* closed by teardown unless -1 */
	int nfds;
	struct rec rec[MAX_REC];
	int nrec;
	/* knobs read by the callbacks */
	int pair[2];            /* two fds ready in the same batch */
	int action;             /* what the first of them does to the other */
	int nested_rc, nested_errno;
	long count;
};

static int
setup(void **state)
{
	const char *backend = *state;
	struct fx *fx = calloc(1, sizeof *fx);

	if (fx == NULL)
		return -1;
	fx->backend = backend;
	fx->loop = ev_loop_new(backend, SETSIZE);
	if (fx->loop == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	int i;

	ev_loop_free(fx->loop);
	for (i = 0; i < fx->nfds; i++)
		if (fx->fds[i] >= 0)
			close(fx->fds[i]);
	free(fx);
	return 0;
}

/* Track fds for teardown; the test may close one early by calling fx_close. */
static void
fx_track(struct fx *fx, const int pair[2])
{
	assert_true(fx->nfds + 2 <= MAX_FDS);
	fx->fds[fx->nfds++] = pair[0];
	fx->fds[fx->nfds++] = pair[1];
}

static void
fx_close(struct fx *fx, int fd)
{
	int i;

	for (i = 0; i < fx->nfds; i++)
		if (fx->fds[i] == fd)
			fx->fds[i] = -1;
	assert_int_equal(close(fd), 0);
}

static void
make_pipe(struct fx *fx, int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	fx_track(fx, p);
}

static void
make_socketpair(struct fx *fx, int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	fx_track(fx, sp);
}

static void
put_byte(int fd)
{
	assert_int_equal(write(fd, "x", 1), 1);
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
record(struct fx *fx, int fd, int events, int tag)
{
	assert_true(fx->nrec < MAX_REC);
	fx->rec[fx->nrec].fd = fd;
	fx->rec[fx->nrec].events = events;
	fx->rec[fx->nrec].tag = tag;
	fx->nrec++;
}

static void
on_io(struct ev_loop *loop, int fd, int events, void *arg)
{
	(void)loop;
	record(arg, fd, events, 0);
}

static void
on_io_other(struct ev_loop *loop, int fd, int events, void *arg)
{
	(void)loop;
	record(arg, fd, events, 1);
}

/* For fds that stay ready for a while: level-triggered, they fire every
 * iteration, more often than rec[] can hold. */
static void
on_io_count(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct fx *fx = arg;

	(void)loop;
	(void)fd;
	(void)events;
	fx->count++;
}

enum { ACT_DEL = 1, ACT_READD, ACT_SILENCE };

/* Both pair fds use this; whichever the backend reports first acts on the
 * other (once), so the test holds for any order within the batch. */
static void
on_pair(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct fx *fx = arg;
	int other = fd == fx->pair[0] ? fx->pair[1] : fx->pair[0];

	record(fx, fd, events, 0);
	switch (fx->action) {
	case ACT_DEL:
		assert_int_equal(ev_io_del(loop, other), 0);
		break;
	case ACT_READD:
		assert_int_equal(ev_io_del(loop, other), 0);
		assert_int_equal(ev_io_add(loop, other, EV_READ, on_io_other, fx), 0);
		break;
	case ACT_SILENCE:
		assert_int_equal(ev_io_set(loop, other, EV_NONE), 0);
		break;
	}
	fx->action = 0;
}

/* ---- loop ---- */

static void
test_loop_names(void **state)
{
	struct fx *fx = *state;
	const char *const *b = ev_backends();
	struct ev_loop *l;
	int found = 0;

	assert_string_equal(ev_loop_backend(fx->loop), fx->backend);
	assert_int_equal(ev_loop_setsize(fx->loop), SETSIZE);
	for (; *b != NULL; b++)
		found += strcmp(*b, fx->backend) == 0;
	assert_int_equal(found, 1);

	l = ev_loop_new(NULL, SETSIZE);
	assert_non_null(l);
	assert_string_equal(ev_loop_backend(l), ev_backends()[0]);
	ev_loop_free(l);

	errno = 0;
	assert_null(ev_loop_new("kqueue-on-linux", SETSIZE));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(ev_loop_new(fx->backend, 0));
	assert_int_equal(errno, EINVAL);
	ev_loop_free(NULL);
}

/* select must clamp (FD_SET past FD_SETSIZE corrupts memory); epoll must not. */
static void
test_setsize_clamp(void **state)
{
	struct fx *fx = *state;
	struct ev_loop *l = ev_loop_new(fx->backend, FD_SETSIZE * 4);
	int p[2], big;

	assert_non_null(l);
	if (strcmp(fx->backend, "select") == 0) {
		assert_int_equal(ev_loop_setsize(l), FD_SETSIZE);
		errno = 0;
		assert_int_equal(ev_io_add(l, FD_SETSIZE, EV_READ, on_io, fx), -1);
		assert_int_equal(errno, ERANGE);
		assert_int_equal(ev_io_add(l, FD_SETSIZE - 1, EV_NONE, on_io, fx), 0);
		assert_int_equal(ev_io_del(l, FD_SETSIZE - 1), 0);
	} else {
		assert_int_equal(ev_loop_setsize(l), FD_SETSIZE * 4);
		/* A real descriptor above FD_SETSIZE, if the fd limit allows. */
		make_pipe(fx, p);
		big = fcntl(p[0], F_DUPFD_CLOEXEC, FD_SETSIZE + 10);
		if (big >= 0) {
			put_byte(p[1]);
			assert_int_equal(ev_io_add(l, big, EV_READ, on_io, fx), 0);
			assert_int_equal(ev_loop_run_once(l, 1000), 1);
			assert_int_equal(fx->nrec, 1);
			assert_int_equal(fx->rec[0].fd, big);
			assert_int_equal(ev_io_del(l, big), 0);
			close(big);
		}
	}
	ev_loop_free(l);
}

static void
test_io_errors(void **state)
{
	struct fx *fx = *state;
	struct ev_loop *l = fx->loop;
	int p[2];

	make_pipe(fx, p);
	errno = 0;
	assert_int_equal(ev_io_add(l, SETSIZE, EV_READ, on_io, fx), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(ev_io_set(l, SETSIZE + 5, EV_READ), -1);
	assert_int_equal(errno, ERANGE);
	errno = 0;
	assert_int_equal(ev_io_del(l, SETSIZE), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(ev_io_events(l, SETSIZE), -1);
	errno = 0;
	assert_int_equal(ev_io_add(l, -1, EV_READ, on_io, fx), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(ev_io_events(l, -1), -1);

	errno = 0;
	assert_int_equal(ev_io_add(l, p[0], EV_READ, NULL, fx), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(ev_io_add(l, p[0], 8, on_io, fx), -1);
	assert_int_equal(errno, EINVAL);

	assert_int_equal(ev_io_events(l, p[0]), -1);
	errno = 0;
	assert_int_equal(ev_io_set(l, p[0], EV_READ), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(ev_io_del(l, p[0]), -1);
	assert_int_equal(errno, ENOENT);

	assert_int_equal(ev_io_add(l, p[0], EV_READ, on_io, fx), 0);
	errno = 0;
	assert_int_equal(ev_io_add(l, p[0], EV_READ, on_io, fx), -1);
	assert_int_equal(errno, EEXIST);
	errno = 0;
	assert_int_equal(ev_io_set(l, p[0], EV_READ | EV_EXCLUSIVE), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ev_io_events(l, p[0]), EV_READ);
	assert_int_equal(ev_io_del(l, p[0]), 0);
	assert_int_equal(ev_io_events(l, p[0]), -1);
}

/* ev_loop_free must leave registered descriptors open: they are the caller's. */
static void
test_free_keeps_fds(void **state)
{
	struct fx *fx = *state;
	struct ev_loop *l = ev_loop_new(fx->backend, SETSIZE);
	int p[2];

	assert_non_null(l);
	make_pipe(fx, p);
	assert_int_equal(ev_io_add(l, p[0], EV_READ, on_io, fx), 0);
	ev_loop_free(l);
	assert_true(fcntl(p[0], F_GETFD) >= 0);
}

/* ---- io ---- */

static void
test_pipe_read(void **state)
{
	struct fx *fx = *state;
	int p[2];

	make_pipe(fx, p);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_READ, on_io, fx), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	assert_int_equal(fx->nrec, 0);

	put_byte(p[1]);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nrec, 1);
	assert_int_equal(fx->rec[0].fd, p[0]);
	assert_int_equal(fx->rec[0].events, EV_READ);

	/* level-triggered: still readable, fires again */
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nrec, 2);
}

static void
test_socketpair_write(void **state)
{
	struct fx *fx = *state;
	int sp[2];

	make_socketpair(fx, sp);
	assert_int_equal(ev_io_add(fx->loop, sp[0], EV_WRITE, on_io, fx), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nrec, 1);
	assert_int_equal(fx->rec[0].fd, sp[0]);
	assert_int_equal(fx->rec[0].events, EV_WRITE);

	/* both directions in one callback, masked to what is ready */
	put_byte(sp[1]);
	assert_int_equal(ev_io_set(fx->loop, sp[0], EV_READ | EV_WRITE), 0);
	assert_int_equal(ev_io_events(fx->loop, sp[0]), EV_READ | EV_WRITE);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[1].events, EV_READ | EV_WRITE);

	/* interest narrows what is reported even though both are ready */
	assert_int_equal(ev_io_set(fx->loop, sp[0], EV_READ), 0);
	assert_int_equal(ev_io_set(fx->loop, sp[0], EV_READ), 0);   /* no-op */
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[2].events, EV_READ);
}

static void
test_none_silences(void **state)
{
	struct fx *fx = *state;
	int p[2];

	make_pipe(fx, p);
	put_byte(p[1]);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_READ, on_io, fx), 0);
	assert_int_equal(ev_io_set(fx->loop, p[0], EV_NONE), 0);
	assert_int_equal(ev_io_events(fx->loop, p[0]), EV_NONE);
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);

	/* even a hang-up must not wake a silenced fd (epoll would report
	 * EPOLLHUP for a 0-event registration and spin) */
	fx_close(fx, p[1]);
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	assert_int_equal(fx->nrec, 0);

	assert_int_equal(ev_io_set(fx->loop, p[0], EV_READ), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[0].events, EV_READ);

	/* registered from the start with no interest */
	assert_int_equal(ev_io_del(fx->loop, p[0]), 0);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_NONE, on_io, fx), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	assert_int_equal(fx->nrec, 1);
}

static void
run_pair(struct fx *fx, int action)
{
	int a[2], b[2];

	make_pipe(fx, a);
	make_pipe(fx, b);
	put_byte(a[1]);
	put_byte(b[1]);
	fx->pair[0] = a[0];
	fx->pair[1] = b[0];
	fx->action = action;
	assert_int_equal(ev_io_add(fx->loop, a[0], EV_READ, on_pair, fx), 0);
	assert_int_equal(ev_io_add(fx->loop, b[0], EV_READ, on_pair, fx), 0);
	/* both are ready before the poll, so both are in one batch */
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nrec, 1);
	assert_int_equal(fx->rec[0].tag, 0);
}

static void
test_del_other_in_batch(void **state)
{
	struct fx *fx = *state;

	run_pair(fx, ACT_DEL);
	assert_int_equal(ev_io_events(fx->loop, fx->rec[0].fd == fx->pair[0] ? fx->pair[1] : fx->pair[0]), -1);
}

/* Deleted and re-added under a new callback: the stale event of the old
 * registration must not reach the new one in this batch, only next poll. */
static void
test_readd_other_in_batch(void **state)
{
	struct fx *fx = *state;
	int other;

	run_pair(fx, ACT_READD);
	other = fx->rec[0].fd == fx->pair[0] ? fx->pair[1] : fx->pair[0];
	assert_int_equal(ev_io_events(fx->loop, other), EV_READ);
	assert_int_equal(ev_io_set(fx->loop, fx->rec[0].fd, EV_NONE), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nrec, 2);
	assert_int_equal(fx->rec[1].fd, other);
	assert_int_equal(fx->rec[1].tag, 1);
}

static void
test_silence_other_in_batch(void **state)
{
	struct fx *fx = *state;

	run_pair(fx, ACT_SILENCE);
	assert_int_equal(ev_io_events(fx->loop, fx->rec[0].fd == fx->pair[0] ? fx->pair[1] : fx->pair[0]),
	    EV_NONE);
}

static void
test_exclusive(void **state)
{
	struct fx *fx = *state;
	int sp[2], ep[2];

	make_socketpair(fx, sp);
	put_byte(sp[1]);
	assert_int_equal(ev_io_add(fx->loop, sp[0], EV_READ | EV_EXCLUSIVE, on_io, fx), 0);
	assert_int_equal(ev_io_events(fx->loop, sp[0]), EV_READ);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[0].events, EV_READ);

	/* changing an exclusive registration (the kernel refuses MOD on it) */
	assert_int_equal(ev_io_set(fx->loop, sp[0], EV_READ | EV_WRITE), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[1].events, EV_READ | EV_WRITE);
	assert_int_equal(ev_io_set(fx->loop, sp[0], EV_NONE), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	assert_int_equal(ev_io_set(fx->loop, sp[0], EV_WRITE), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[2].events, EV_WRITE);
	assert_int_equal(ev_io_del(fx->loop, sp[0]), 0);

	/* the kernel refuses EPOLLEXCLUSIVE on an epoll fd (EINVAL): being a
	 * hint, it is dropped and the add succeeds */
	ep[0] = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep[0] >= 0);
	ep[1] = dup(ep[0]);
	assert_true(ep[1] >= 0);
	fx_track(fx, ep);
	assert_int_equal(ev_io_add(fx->loop, ep[0], EV_READ | EV_EXCLUSIVE, on_io, fx), 0);
	assert_int_equal(ev_io_set(fx->loop, ep[0], EV_READ | EV_WRITE), 0);
	assert_int_equal(ev_io_del(fx->loop, ep[0]), 0);
}

static void
test_hup_socketpair(void **state)
{
	struct fx *fx = *state;
	char c;
	int sp[2];

	make_socketpair(fx, sp);
	assert_int_equal(ev_io_add(fx->loop, sp[0], EV_READ, on_io, fx), 0);
	fx_close(fx, sp[1]);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[0].events, EV_READ);
	assert_int_equal(read(sp[0], &c, 1), 0);
}

/* A pipe whose writer is gone polls as EPOLLHUP without EPOLLIN. */
static void
test_hup_pipe(void **state)
{
	struct fx *fx = *state;
	char c;
	int p[2];

	make_pipe(fx, p);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_READ, on_io, fx), 0);
	fx_close(fx, p[1]);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[0].events, EV_READ);
	assert_int_equal(read(p[0], &c, 1), 0);
}

/* A writer-only fd whose peer is gone still gets its callback (as EV_WRITE),
 * and write() then reports the error. */
static void
test_hup_writer(void **state)
{
	struct fx *fx = *state;
	int sp[2];

	make_socketpair(fx, sp);
	assert_int_equal(ev_io_add(fx->loop, sp[0], EV_WRITE, on_io, fx), 0);
	fx_close(fx, sp[1]);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->rec[0].events, EV_WRITE);
	assert_int_equal(send(sp[0], "x", 1, MSG_NOSIGNAL), -1);
	assert_int_equal(errno, EPIPE);
}

/* ---- timers ---- */

#define MANY 10000

struct tfx {
	struct fx *fx;
	uint64_t fired_when[MANY];
	int fired_id[MANY];
	int nfired;
	int bad_early;          /* fired before its deadline */
	int rearm_left;
	struct ev_timer *peer;
	int peer_action;
	struct ev_timer t[MANY];
};

static struct tfx *
tfx_new(struct fx *fx)
{
	struct tfx *tf = calloc(1, sizeof *tf);

	assert_non_null(tf);
	tf->fx = fx;
	return tf;
}

static void
on_timer(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct tfx *tf = arg;

	assert_false(ev_timer_is_active(t));
	if (ev_now_ms(loop) < t->when_ms)
		tf->bad_early++;
	tf->fired_when[tf->nfired] = t->when_ms;
	tf->fired_id[tf->nfired] = (int)(t - tf->t);
	tf->nfired++;
}

/* Run until n timers fired in total, with a cap on iterations. */
static void
run_until_fired(struct ev_loop *loop, struct tfx *tf, int n)
{
	int i;

	for (i = 0; i < 100000 && tf->nfired < n; i++)
		assert_true(ev_loop_run_once(loop, -1) >= 0);
	assert_int_equal(tf->nfired, n);
}

static void
test_timer_order(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);
	int i;

	for (i = 0; i < 3; i++)
		ev_timer_init(&tf->t[i], on_timer, tf);
	assert_false(ev_timer_is_active(&tf->t[0]));
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 30), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[1], 10), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[2], 20), 0);
	assert_true(ev_timer_is_active(&tf->t[0]));
	run_until_fired(fx->loop, tf, 3);
	assert_int_equal(tf->fired_id[0], 1);
	assert_int_equal(tf->fired_id[1], 2);
	assert_int_equal(tf->fired_id[2], 0);
	assert_int_equal(tf->bad_early, 0);
	for (i = 0; i < 3; i++)
		assert_false(ev_timer_is_active(&tf->t[i]));
	free(tf);
}

static void
test_timer_stop(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);

	ev_timer_init(&tf->t[0], on_timer, tf);
	ev_timer_init(&tf->t[1], on_timer, tf);
	ev_timer_stop(fx->loop, &tf->t[0]);             /* inactive: no-op */
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 5), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[1], 15), 0);
	ev_timer_stop(fx->loop, &tf->t[0]);
	ev_timer_stop(fx->loop, &tf->t[0]);             /* idempotent */
	assert_false(ev_timer_is_active(&tf->t[0]));
	run_until_fired(fx->loop, tf, 1);
	assert_int_equal(tf->fired_id[0], 1);
	/* nothing left: a bounded wait returns without firing */
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	assert_int_equal(tf->nfired, 1);
	free(tf);
}

static void
test_timer_restart_moves(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);
	int i;

	for (i = 0; i < 3; i++)
		ev_timer_init(&tf->t[i], on_timer, tf);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 10), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[1], 20), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[2], 40), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 60), 0);  /* later */
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[2], 5), 0);   /* earlier */
	run_until_fired(fx->loop, tf, 3);
	assert_int_equal(tf->fired_id[0], 2);
	assert_int_equal(tf->fired_id[1], 1);
	assert_int_equal(tf->fired_id[2], 0);
	assert_int_equal(tf->bad_early, 0);
	free(tf);
}

static void
on_timer_rearm0(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct tfx *tf = arg;

	on_timer(loop, t, arg);
	if (tf->rearm_left-- > 0)
		assert_int_equal(ev_timer_start(loop, t, 0), 0);
}

/* A callback re-arming itself with 0 ms must not fire again in the same
 * pass (that would loop forever and starve io): it fires once per
 * iteration, and iterations do not wait for it. */
static void
test_timer_zero_in_callback(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);
	int i;

	ev_timer_init(&tf->t[0], on_timer_rearm0, tf);
	tf->rearm_left = 3;
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 0), 0);
	for (i = 1; i <= 4; i++) {
		assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
		assert_int_equal(tf->nfired, i);
	}
	assert_false(ev_timer_is_active(&tf->t[0]));
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	free(tf);
}

enum { PEER_STOP = 1, PEER_RESTART0 };

static void
on_timer_peer(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	struct tfx *tf = arg;

	on_timer(loop, t, arg);
	if (tf->peer_action == PEER_STOP)
		ev_timer_stop(loop, t == &tf->t[0] ? &tf->t[1] : &tf->t[0]);
	else if (tf->peer_action == PEER_RESTART0)
		assert_int_equal(ev_timer_start(loop, t == &tf->t[0] ? &tf->t[1] : &tf->t[0], 0), 0);
	tf->peer_action = 0;
}

/* Two timers due in the same pass: the first stops the second, which must
 * then not fire; or restarts it, which defers it to the next iteration. */
static void
test_timer_peer_in_pass(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);

	ev_timer_init(&tf->t[0], on_timer_peer, tf);
	ev_timer_init(&tf->t[1], on_timer_peer, tf);
	tf->peer_action = PEER_STOP;
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 0), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[1], 0), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(tf->nfired, 1);
	assert_false(ev_timer_is_active(&tf->t[0]));
	assert_false(ev_timer_is_active(&tf->t[1]));

	tf->peer_action = PEER_RESTART0;
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 0), 0);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[1], 0), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(tf->nfired, 2);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(tf->nfired, 3);
	assert_int_not_equal(tf->fired_id[1], tf->fired_id[2]);
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	free(tf);
}

/* 10,000 random deadlines, a tenth stopped and a tenth restarted: the rest
 * fire in deadline order, each exactly once and never early. */
static void
test_timer_many_sorted(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);
	static unsigned char stopped[MANY];
	int i, expect = 0;

	srand(12345);
	memset(stopped, 0, sizeof stopped);
	for (i = 0; i < MANY; i++) {
		ev_timer_init(&tf->t[i], on_timer, tf);
		assert_int_equal(ev_timer_start(fx->loop, &tf->t[i], (uint64_t)(rand() % 80)), 0);
	}
	for (i = 0; i < MANY / 10; i++) {
		int k = rand() % MANY;

		ev_timer_stop(fx->loop, &tf->t[k]);
		stopped[k] = 1;
	}
	for (i = 0; i < MANY / 10; i++) {
		int k = rand() % MANY;

		assert_int_equal(ev_timer_start(fx->loop, &tf->t[k], (uint64_t)(rand() % 80)), 0);
		stopped[k] = 0;
	}
	for (i = 0; i < MANY; i++)
		expect += !stopped[i];
	run_until_fired(fx->loop, tf, expect);
	for (i = 1; i < expect; i++)
		assert_true(tf->fired_when[i - 1] <= tf->fired_when[i]);
	for (i = 0; i < expect; i++) {
		int id = tf->fired_id[i];

		assert_false(stopped[id]);
		stopped[id] = 2;                        /* fired: not again */
	}
	for (i = 0; i < MANY; i++)
		assert_false(ev_timer_is_active(&tf->t[i]));
	assert_int_equal(tf->bad_early, 0);
	free(tf);
}

/* ---- run ---- */

static void
test_run_once_max_wait(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);
	uint64_t t0, dt;
	int p[2];

	make_pipe(fx, p);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_READ, on_io, fx), 0);

	t0 = mono_ms();
	assert_int_equal(ev_loop_run_once(fx->loop, 0), 0);
	assert_true(mono_ms() - t0 < 500);

	t0 = mono_ms();
	assert_int_equal(ev_loop_run_once(fx->loop, 50), 0);
	dt = mono_ms() - t0;
	assert_true(dt >= 49);
	assert_true(dt < 2000);

	/* a far timer does not stretch the wait ... */
	ev_timer_init(&tf->t[0], on_timer, tf);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 100000), 0);
	t0 = mono_ms();
	assert_int_equal(ev_loop_run_once(fx->loop, 20), 0);
	dt = mono_ms() - t0;
	assert_true(dt >= 19);
	assert_true(dt < 2000);

	/* ... and a near one cuts it short; -1 waits for exactly that timer */
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 30), 0);
	t0 = mono_ms();
	assert_int_equal(ev_loop_run_once(fx->loop, 100000), 1);
	assert_int_equal(tf->nfired, 1);
	assert_true(mono_ms() - t0 < 2000);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 30), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, -1), 1);
	assert_int_equal(tf->nfired, 2);
	assert_int_equal(tf->bad_early, 0);
	free(tf);
}

static void
on_timer_stop_loop(struct ev_loop *loop, struct ev_timer *t, void *arg)
{
	on_timer(loop, t, arg);
	ev_loop_stop(loop);
}

static void
test_run_stop(void **state)
{
	struct fx *fx = *state;
	struct tfx *tf = tfx_new(fx);
	int sp[2];

	make_socketpair(fx, sp);
	put_byte(sp[1]);
	assert_int_equal(ev_io_add(fx->loop, sp[0], EV_READ, on_io_count, fx), 0);
	ev_timer_init(&tf->t[0], on_timer_stop_loop, tf);
	assert_int_equal(ev_timer_start(fx->loop, &tf->t[0], 10), 0);
	assert_int_equal(ev_loop_run(fx->loop), 0);
	assert_int_equal(tf->nfired, 1);
	assert_true(fx->count >= 1);                    /* io kept flowing */

	/* a stop requested between runs is not lost */
	assert_int_equal(ev_io_del(fx->loop, sp[0]), 0);
	ev_loop_stop(fx->loop);
	assert_int_equal(ev_loop_run(fx->loop), 0);
	free(tf);
}

static void
on_io_nested(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct fx *fx = arg;

	record(fx, fd, events, 0);
	errno = 0;
	fx->nested_rc = ev_loop_run_once(loop, 0);
	fx->nested_errno = errno;
}

static void
test_nested_run_refused(void **state)
{
	struct fx *fx = *state;
	int p[2];

	make_pipe(fx, p);
	put_byte(p[1]);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_READ, on_io_nested, fx), 0);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nested_rc, -1);
	assert_int_equal(fx->nested_errno, EBUSY);
}

/* A request becoming a stream keeps its registration: rebind changes only the
 * callback, keeps the interest, and refuses an fd that is not registered. */
static void
test_rebind(void **state)
{
	struct fx *fx = *state;
	int p[2];

	make_pipe(fx, p);
	assert_int_equal(ev_io_add(fx->loop, p[0], EV_READ, on_io, fx), 0);
	assert_int_equal(ev_io_rebind(fx->loop, p[0], on_io_other, fx), 0);
	assert_int_equal(ev_io_events(fx->loop, p[0]), EV_READ);
	put_byte(p[1]);
	assert_int_equal(ev_loop_run_once(fx->loop, 1000), 1);
	assert_int_equal(fx->nrec, 1);
	assert_int_equal(fx->rec[0].tag, 1);
	assert_int_equal(ev_io_rebind(fx->loop, p[1], on_io, fx), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(ev_io_rebind(fx->loop, SETSIZE + 1, on_io, fx), -1);
	assert_int_equal(errno, ERANGE);
}

#define T(f) cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)backend)

int
main(void)
{
	const char *const *b;
	int failed = 0;

	for (b = ev_backends(); *b != NULL; b++) {
		const char *backend = *b;
		const struct CMUnitTest tests[] = {
			T(test_loop_names),
			T(test_rebind),
			T(test_setsize_clamp),
			T(test_io_errors),
			T(test_free_keeps_fds),
			T(test_pipe_read),
			T(test_socketpair_write),
			T(test_none_silences),
			T(test_del_other_in_batch),
			T(test_readd_other_in_batch),
			T(test_silence_other_in_batch),
			T(test_exclusive),
			T(test_hup_socketpair),
			T(test_hup_pipe),
			T(test_hup_writer),
			T(test_timer_order),
			T(test_timer_stop),
			T(test_timer_restart_moves),
			T(test_timer_zero_in_callback),
			T(test_timer_peer_in_pass),
			T(test_timer_many_sorted),
			T(test_run_once_max_wait),
			T(test_run_stop),
			T(test_nested_run_refused),
		};
		char name[64];

		snprintf(name, sizeof name, "ev/%s", backend);
		printf("[ BACKEND  ] %s\n", backend);
		fflush(stdout);
		failed += _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
	}
	return failed;
}
