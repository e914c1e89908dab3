/*
 * ev_impl.h — private interface between the ev core (ev.c) and its backends
 * (ev_epoll.c, ev_select.c). Nothing outside src/ev*.c includes this.
 *
 * The core owns the fd table, the fired batch and the timers; a backend only
 * mirrors interest into the kernel and fills loop->fired from one poll.
 */
#ifndef SSE_EV_IMPL_H
#define SSE_EV_IMPL_H

#include <stdint.h>

#include "ev.h"

/* Upper bound on one poll's batch. Level-triggered, so what does not fit is
 * reported by the next poll; epoll rotates its ready list, so no fd starves.
 * select's setsize is <= FD_SETSIZE == this, so its batch never truncates. */
#define EV_BATCH_MAX 1024

#define EV_MASK_RW (EV_READ | EV_WRITE)

/* One per descriptor, indexed by fd, allocated at setsize (redis ae): kept at
 * 24 bytes because a process may hold 50,000+ streams. fn == NULL: free. */
struct ev_fd {
	ev_io_fn *fn;
	void *arg;
	uint32_t gen;       /* bumped by ev_io_del: invalidates fired events */
	uint8_t mask;       /* EV_READ|EV_WRITE interest, plus EV_EXCLUSIVE */
};

/* One ready fd from the last poll. The backend fills fd and events (every
 * condition it saw, even beyond interest); the core stamps gen before the
 * first callback runs. */
struct ev_fired {
	int fd;
	int events;
	uint32_t gen;
};

struct ev_backend {
	const char *name;
	int max_setsize;    /* the core clamps setsize to this */
	/* Set up loop->impl; on failure leave it NULL and return -1 with errno. */
	int (*init)(struct ev_loop *loop);
	/* Free loop->impl (non-NULL). */
	void (*release)(struct ev_loop *loop);
	/* Mirror a change of fd's mask from old_mask to new_mask; the core only
	 * calls it when the EV_MASK_RW bits differ. On -1 the kernel set must be
	 * as before (best effort), since the core keeps old_mask. */
	int (*update)(struct ev_loop *loop, int fd, int old_mask, int new_mask);
	/* Wait up to timeout_ms (-1: forever), fill loop->fired[0..n-1] with at
	 * most loop->fired_cap entries; return n, or -1 with errno. */
	int (*poll)(struct ev_loop *loop, int timeout_ms);
};

struct ev_loop {
	const struct ev_backend *backend;
	void *impl;                  /* backend state */
	int setsize;
	int stop;
	int dispatching;             /* guards against nested run_once */
	struct ev_fd *fds;           /* [setsize] */
	struct ev_fired *fired;      /* [fired_cap] */
	int fired_cap;
	uint64_t now_ms;
	/* Timers: heap[0..heap_len) is a min-heap on when_ms; due[0..due_len)
	 * holds the timers popped for the running pass (NULL once fired or
	 * stopped). Both arrays are kept at least heap_len long, so moving every
	 * due timer into due[] never allocates. */
	struct ev_timer **heap;
	size_t heap_len, heap_cap;
	struct ev_timer **due;
	size_t due_len, due_cap;
};

#ifdef __linux__
extern const struct ev_backend ev_backend_epoll;
#endif
extern const struct ev_backend ev_backend_select;

#endif
