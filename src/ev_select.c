/*
 * ev_select.c — portable select(2) backend (redis ae_select.c).
 *
 * Only fds below FD_SETSIZE: FD_SET beyond it writes past the fd_set. The core
 * enforces that through max_setsize, which clamps the loop's setsize.
 * Hang-up shows as readable (read() returns 0); EV_EXCLUSIVE is ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>

#include "ev_impl.h"

struct select_state {
	fd_set rfds, wfds;      /* interest, kept across polls */
	fd_set rout, wout;      /* select() overwrites its arguments: copies */
	int maxfd;              /* highest fd with interest, -1 if none */
};

static int
select_init(struct ev_loop *loop)
{
	struct select_state *s = calloc(1, sizeof *s);

	if (s == NULL)
		return -1;
	FD_ZERO(&s->rfds);
	FD_ZERO(&s->wfds);
	s->maxfd = -1;
	loop->impl = s;
	return 0;
}

static void
select_release(struct ev_loop *loop)
{
	free(loop->impl);
	loop->impl = NULL;
}

/* Never fails. maxfd is lowered by a scan only when the top fd loses all
 * interest, which keeps the per-poll scan short without per-poll work. */
static int
select_update(struct ev_loop *loop, int fd, int old_mask, int new_mask)
{
	struct select_state *s = loop->impl;

	(void)old_mask;
	if (new_mask & EV_READ)
		FD_SET(fd, &s->rfds);
	else
		FD_CLR(fd, &s->rfds);
	if (new_mask & EV_WRITE)
		FD_SET(fd, &s->wfds);
	else
		FD_CLR(fd, &s->wfds);
	if ((new_mask & EV_MASK_RW) != 0 && fd > s->maxfd)
		s->maxfd = fd;
	while (s->maxfd >= 0 && !FD_ISSET(s->maxfd, &s->rfds) && !FD_ISSET(s->maxfd, &s->wfds))
		s->maxfd--;
	return 0;
}

/* select() overwrites its sets, so it gets copies (128 bytes each), and the
 * result is found by scanning 0..maxfd: O(maxfd) per poll is select's price,
 * paid only where epoll is missing. */
static int
select_poll(struct ev_loop *loop, int timeout_ms)
{
	struct select_state *s = loop->impl;
	struct timeval tv, *tvp = NULL;
	int fd, n, count = 0;

	if (timeout_ms >= 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		tvp = &tv;
	}
	s->rout = s->rfds;
	s->wout = s->wfds;
	n = select(s->maxfd + 1, &s->rout, &s->wout, NULL, tvp);
	if (n <= 0)
		return n;
	for (fd = 0; fd <= s->maxfd && count < loop->fired_cap; fd++) {
		int events = (FD_ISSET(fd, &s->rout) ? EV_READ : 0) |
		    (FD_ISSET(fd, &s->wout) ? EV_WRITE : 0);

		if (events == 0)
			continue;
		loop->fired[count].fd = fd;
		loop->fired[count].events = events;
		count++;
	}
	return count;
}

const struct ev_backend ev_backend_select = {
	.name = "select",
	.max_setsize = FD_SETSIZE,
	.init = select_init,
	.release = select_release,
	.update = select_update,
	.poll = select_poll,
};
