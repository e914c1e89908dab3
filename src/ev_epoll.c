/*
 * ev_epoll.c — Linux epoll backend, level-triggered.
 *
 * An fd is in the epoll set only while its interest is not EV_NONE: epoll
 * reports EPOLLHUP/EPOLLERR even for a registration with 0 events, and level-
 * triggered that would wake the loop forever for a silenced, hung-up fd.
 */
#ifdef __linux__

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ev_impl.h"

struct epoll_state {
	int epfd;
	struct epoll_event *events;     /* [loop->fired_cap] */
};

static int
epoll_init(struct ev_loop *loop)
{
	struct epoll_state *s = NULL;
	int saved;

	if ((s = calloc(1, sizeof *s)) == NULL)
		goto fail;
	s->epfd = -1;
	if ((s->events = calloc((size_t)loop->fired_cap, sizeof *s->events)) == NULL)
		goto fail;
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		goto fail;
	loop->impl = s;
	return 0;
fail:
	saved = errno;
	if (s != NULL)
		free(s->events);
	free(s);
	errno = saved;
	return -1;
}

static void
epoll_release(struct ev_loop *loop)
{
	struct epoll_state *s = loop->impl;

	close(s->epfd);
	free(s->events);
	free(s);
	loop->impl = NULL;
}

/* EV_EXCLUSIVE maps to EPOLLEXCLUSIVE; callers pass it only with ADD. */
static int
ctl(struct epoll_state *s, int op, int fd, int mask)
{
	struct epoll_event ee = { 0 };

	ee.events = ((mask & EV_READ) ? EPOLLIN : 0u) | ((mask & EV_WRITE) ? EPOLLOUT : 0u) |
	    ((mask & EV_EXCLUSIVE) ? EPOLLEXCLUSIVE : 0u);
	ee.data.fd = fd;
	return epoll_ctl(s->epfd, op, fd, &ee);
}

/* EPOLLEXCLUSIVE is only a hint, and old kernels and some fd types (an epoll
 * fd, for one) refuse it with EINVAL: retry without rather than fail. The
 * core keeps the EV_EXCLUSIVE bit, so a later re-ADD tries it again; that
 * costs one refused syscall on an fd whose interest rarely changes. */
static int
add(struct epoll_state *s, int fd, int mask)
{
	if (ctl(s, EPOLL_CTL_ADD, fd, mask) == 0)
		return 0;
	if (errno != EINVAL || (mask & EV_EXCLUSIVE) == 0)
		return -1;
	return ctl(s, EPOLL_CTL_ADD, fd, mask & ~EV_EXCLUSIVE);
}

/* One syscall per real change (the core filters no-ops). An exclusive
 * registration cannot be MODified (EINVAL), so it is changed by DEL + ADD,
 * and put back as it was if the ADD fails. */
static int
epoll_update(struct ev_loop *loop, int fd, int old_mask, int new_mask)
{
	struct epoll_state *s = loop->impl;
	int saved;

	if ((old_mask & EV_MASK_RW) == 0)
		return add(s, fd, new_mask);
	if ((new_mask & EV_MASK_RW) == 0)
		return ctl(s, EPOLL_CTL_DEL, fd, 0);
	if ((old_mask & EV_EXCLUSIVE) == 0)
		return ctl(s, EPOLL_CTL_MOD, fd, new_mask);
	if (ctl(s, EPOLL_CTL_DEL, fd, 0) < 0)
		return -1;
	if (add(s, fd, new_mask) == 0)
		return 0;
	saved = errno;
	(void)add(s, fd, old_mask);
	errno = saved;
	return -1;
}

/* Hang-up and error count as every direction, so whichever interest the fd
 * has, its owner gets a callback and meets EOF or the error in read/write;
 * the core masks the result with the current interest. */
static int
epoll_poll(struct ev_loop *loop, int timeout_ms)
{
	struct epoll_state *s = loop->impl;
	int i, n;

	n = epoll_wait(s->epfd, s->events, loop->fired_cap, timeout_ms);
	for (i = 0; i < n; i++) {
		uint32_t ev = s->events[i].events;
		int events = 0;

		if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
			events |= EV_READ;
		if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			events |= EV_WRITE;
		loop->fired[i].fd = s->events[i].data.fd;
		loop->fired[i].events = events;
	}
	return n;
}

const struct ev_backend ev_backend_epoll = {
	.name = "epoll",
	.max_setsize = 0x7fffffff,
	.init = epoll_init,
	.release = epoll_release,
	.update = epoll_update,
	.poll = epoll_poll,
};

#else
/* ISO C wants at least one declaration per translation unit. */
typedef int ev_epoll_unavailable;
#endif
