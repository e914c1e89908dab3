/*
 * ev.c — event loop core: backend table, fd table, timer heap, dispatch.
 * See ev.h for the contract and ev_impl.h for the backend interface.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ev.h"
#include "ev_impl.h"

/* Sorted by goodness, best first (lighttpd fdevent): NULL picks [0], and
 * every backend stays reachable by name so tests cover each in one build. */
static const struct ev_backend *const backends[] = {
#ifdef __linux__
	&ev_backend_epoll,
#endif
	&ev_backend_select,
};

/* ev_backends() must return plain names; kept beside the table above and
 * checked against it by the assertion below. */
static const char *const backend_names[] = {
#ifdef __linux__
	"epoll",
#endif
	"select",
	NULL
};

_Static_assert(sizeof backend_names / sizeof backend_names[0] ==
    sizeof backends / sizeof backends[0] + 1, "backend tables out of sync");

/* Timer positions: heap_index < EV_TIMER_DUE is a heap slot; EV_TIMER_DUE | i
 * is slot i of the running pass's due[] (so stop/start can pull it out);
 * SIZE_MAX is inactive. */
#define EV_TIMER_DUE (SIZE_MAX / 2 + 1)

const char *const *
ev_backends(void)
{
	return backend_names;
}

/* Linear on purpose: two entries, called once per loop. */
static const struct ev_backend *
backend_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return backends[0];
	for (i = 0; i < sizeof backends / sizeof backends[0]; i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

/* Everything is sized here, once, so that neither io nor timer dispatch ever
 * allocates: the fd table at setsize (an fd is its own index, as in redis ae)
 * and the fired batch at min(setsize, EV_BATCH_MAX). */
struct ev_loop *
ev_loop_new(const char *backend, int setsize)
{
	const struct ev_backend *be = NULL;
	struct ev_loop *loop = NULL;
	int saved;

	if (setsize <= 0 || (be = backend_find(backend)) == NULL) {
		errno = EINVAL;
		goto fail;
	}
	if ((loop = calloc(1, sizeof *loop)) == NULL)
		goto fail;
	loop->backend = be;
	loop->setsize = setsize < be->max_setsize ? setsize : be->max_setsize;
	loop->fired_cap = loop->setsize < EV_BATCH_MAX ? loop->setsize : EV_BATCH_MAX;
	loop->fds = calloc((size_t)loop->setsize, sizeof *loop->fds);
	loop->fired = calloc((size_t)loop->fired_cap, sizeof *loop->fired);
	if (loop->fds == NULL || loop->fired == NULL)
		goto fail;
	if (be->init(loop) < 0)
		goto fail;
	ev_now_update(loop);
	return loop;
fail:
	saved = errno;
	ev_loop_free(loop);
	errno = saved;
	return NULL;
}

/* Registered fds belong to the caller, and active timers may be embedded in
 * objects already freed, so neither is touched: only the loop's own memory
 * goes. */
void
ev_loop_free(struct ev_loop *loop)
{
	if (loop == NULL)
		return;
	if (loop->impl != NULL)
		loop->backend->release(loop);
	free(loop->fds);
	free(loop->fired);
	free(loop->heap);
	free(loop->due);
	free(loop);
}

const char *
ev_loop_backend(const struct ev_loop *loop)
{
	return loop->backend->name;
}

int
ev_loop_setsize(const struct ev_loop *loop)
{
	return loop->setsize;
}

/* Shared range check: EBADF for negatives like the kernel, ERANGE above the
 * table so a caller can tell "raise setsize" from "bad descriptor". */
static int
fd_check(const struct ev_loop *loop, int fd)
{
	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fd >= loop->setsize) {
		errno = ERANGE;
		return -1;
	}
	return 0;
}

/* The kernel is told only when there is interest: an EV_NONE registration is
 * a table entry alone (see ev.h on why epoll must not hold it). */
int
ev_io_add(struct ev_loop *loop, int fd, int events, ev_io_fn *fn, void *arg)
{
	struct ev_fd *e;

	if (fd_check(loop, fd) < 0)
		return -1;
	if (fn == NULL || (events & ~(EV_MASK_RW | EV_EXCLUSIVE)) != 0) {
		errno = EINVAL;
		return -1;
	}
	e = &loop->fds[fd];
	if (e->fn != NULL) {
		errno = EEXIST;
		return -1;
	}
	if ((events & EV_MASK_RW) != 0 &&
	    loop->backend->update(loop, fd, events & EV_EXCLUSIVE, events) < 0)
		return -1;
	e->fn = fn;
	e->arg = arg;
	e->mask = (uint8_t)events;
	return 0;
}

/* Called on every write-buffer transition of every stream, so an unchanged
 * mask returns before any system call. EV_EXCLUSIVE is refused because the
 * kernel cannot add it to an existing registration. */
int
ev_io_set(struct ev_loop *loop, int fd, int events)
{
	struct ev_fd *e;
	int mask;

	if (fd_check(loop, fd) < 0)
		return -1;
	if ((events & ~EV_MASK_RW) != 0) {
		errno = EINVAL;
		return -1;
	}
	e = &loop->fds[fd];
	if (e->fn == NULL) {
		errno = ENOENT;
		return -1;
	}
	if ((e->mask & EV_MASK_RW) == events)
		return 0;
	mask = (e->mask & EV_EXCLUSIVE) | events;
	if (loop->backend->update(loop, fd, e->mask, mask) < 0)
		return -1;
	e->mask = (uint8_t)mask;
	return 0;
}

/* Bumping gen is what makes deletion safe mid-batch: fired entries carry the
 * gen seen at poll time, so neither this fd nor a new registration reusing
 * the number gets the stale event. Kernel errors are ignored because the
 * usual one (EBADF: already closed) means the kernel already forgot it. */
int
ev_io_del(struct ev_loop *loop, int fd)
{
	struct ev_fd *e;

	if (fd_check(loop, fd) < 0)
		return -1;
	e = &loop->fds[fd];
	if (e->fn == NULL) {
		errno = ENOENT;
		return -1;
	}
	if ((e->mask & EV_MASK_RW) != 0)
		(void)loop->backend->update(loop, fd, e->mask, e->mask & EV_EXCLUSIVE);
	e->fn = NULL;
	e->arg = NULL;
	e->mask = 0;
	e->gen++;
	return 0;
}

/*
 * A descriptor changing hands (a request becoming a stream) keeps its kernel
 * registration: only the callback changes, so no syscall is spent on it. Events already
 * fired in this batch are not delivered to the new owner (bumps gen, as a del would).
 */
int
ev_io_rebind(struct ev_loop *loop, int fd, ev_io_fn *fn, void *arg)
{
	struct ev_fd *e;

	if (fd < 0 || fd >= loop->setsize || loop->fds[fd].fn == NULL || fn == NULL) {
		errno = fd < 0 || fd >= loop->setsize ? ERANGE : ENOENT;
		return -1;
	}
	e = &loop->fds[fd];
	e->fn = fn;
	e->arg = arg;
	e->gen++;
	return 0;
}

int
ev_io_events(const struct ev_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->setsize || loop->fds[fd].fn == NULL)
		return -1;
	return loop->fds[fd].mask & EV_MASK_RW;
}

/* ---- timers: binary min-heap on when_ms, index kept in each timer ---- */

static void
heap_place(struct ev_loop *loop, size_t i, struct ev_timer *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

/* Hole-moving sift (no swaps): each level costs one write. */
static void
heap_sift_up(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (loop->heap[parent]->when_ms <= t->when_ms)
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void
heap_sift_down(struct ev_loop *loop, size_t i)
{
	struct ev_timer *t = loop->heap[i];
	size_t n = loop->heap_len;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && loop->heap[c + 1]->when_ms < loop->heap[c]->when_ms)
			c++;
		if (t->when_ms <= loop->heap[c]->when_ms)
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, t);
}

/* Fill slot i with the last element and restore order: O(log n) removal from
 * anywhere, which is what heap_index is for. */
static void
heap_remove(struct ev_loop *loop, size_t i)
{
	struct ev_timer *last;

	assert(i < loop->heap_len);
	loop->heap[i]->heap_index = SIZE_MAX;
	last = loop->heap[--loop->heap_len];
	loop->heap[loop->heap_len] = NULL;
	if (i == loop->heap_len)
		return;
	heap_place(loop, i, last);
	heap_sift_up(loop, i);
	heap_sift_down(loop, last->heap_index);
}

/* Grow heap[] and due[] together (doubling) so the timer pass can move every
 * due timer into due[] without allocating. Each array's capacity is updated
 * as soon as its own realloc succeeds, so a failure half-way loses nothing. */
static int
heap_reserve(struct ev_loop *loop)
{
	size_t want;
	void *p;

	if (loop->heap_len < loop->heap_cap && loop->heap_len < loop->due_cap)
		return 0;
	want = loop->heap_cap < 64 ? 64 : loop->heap_cap * 2;
	if (want > SIZE_MAX / 4 / sizeof *loop->heap) {
		errno = ENOMEM;
		return -1;
	}
	if (loop->heap_cap < want) {
		if ((p = realloc(loop->heap, want * sizeof *loop->heap)) == NULL)
			return -1;
		loop->heap = p;
		loop->heap_cap = want;
	}
	if (loop->due_cap < want) {
		if ((p = realloc(loop->due, want * sizeof *loop->due)) == NULL)
			return -1;
		loop->due = p;
		loop->due_cap = want;
	}
	return 0;
}

void
ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg)
{
	t->when_ms = 0;
	t->heap_index = SIZE_MAX;
	t->fn = fn;
	t->arg = arg;
}

/* A restart of a heap timer re-keys it in place (no allocation, cannot fail).
 * A timer waiting in the running pass's due[] is pulled out and pushed back
 * into the heap, so it will not fire in this pass: that is what keeps a
 * 0 ms self-re-arm from looping forever inside one pass. */
int
ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms)
{
	uint64_t now = loop->now_ms;
	uint64_t when = after_ms > UINT64_MAX - now ? UINT64_MAX : now + after_ms;

	if (t->heap_index != SIZE_MAX && t->heap_index < EV_TIMER_DUE) {
		assert(loop->heap[t->heap_index] == t);
		t->when_ms = when;
		heap_sift_up(loop, t->heap_index);
		heap_sift_down(loop, t->heap_index);
		return 0;
	}
	if (t->heap_index != SIZE_MAX) {
		size_t d = t->heap_index & ~EV_TIMER_DUE;

		assert(d < loop->due_len && loop->due[d] == t);
		loop->due[d] = NULL;
		t->heap_index = SIZE_MAX;
	}
	if (heap_reserve(loop) < 0)
		return -1;
	t->when_ms = when;
	loop->heap[loop->heap_len] = t;
	t->heap_index = loop->heap_len++;
	heap_sift_up(loop, t->heap_index);
	return 0;
}

/* Idempotent so owners can stop unconditionally on teardown. */
void
ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
	if (t->heap_index == SIZE_MAX)
		return;
	if (t->heap_index & EV_TIMER_DUE) {
		size_t d = t->heap_index & ~EV_TIMER_DUE;

		assert(d < loop->due_len && loop->due[d] == t);
		loop->due[d] = NULL;
		t->heap_index = SIZE_MAX;
		return;
	}
	assert(loop->heap[t->heap_index] == t);
	heap_remove(loop, t->heap_index);
}

int
ev_timer_is_active(const struct ev_timer *t)
{
	return t->heap_index != SIZE_MAX;
}

/* Cached so that the thousands of timers armed in one iteration cost no
 * clock reads and agree on "now". */
uint64_t
ev_now_ms(struct ev_loop *loop)
{
	return loop->now_ms;
}

/* CLOCK_MONOTONIC: wall-clock steps must not fire or starve timers. Floor to
 * ms, so a wait of (when - now) ms never wakes before when_ms. */
void
ev_now_update(struct ev_loop *loop)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	loop->now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Poll timeout: the caller's bound, cut to the next deadline. */
static int
poll_timeout(struct ev_loop *loop, int max_wait_ms)
{
	uint64_t when, delta;

	if (loop->heap_len == 0)
		return max_wait_ms < 0 ? -1 : max_wait_ms;
	when = loop->heap[0]->when_ms;
	delta = when > loop->now_ms ? when - loop->now_ms : 0;
	if (delta > INT_MAX)
		delta = INT_MAX;
	if (max_wait_ms >= 0 && (uint64_t)max_wait_ms < delta)
		return max_wait_ms;
	return (int)delta;
}

/* io dispatch. Each event is checked against the fd's state *now*, not at poll
 * time: an earlier callback in the batch may have deleted it (gen differs),
 * re-added it (gen differs too), or narrowed its interest (mask). */
static int
dispatch_io(struct ev_loop *loop, int n)
{
	int i, count = 0;

	for (i = 0; i < n; i++)
		loop->fired[i].gen = loop->fds[loop->fired[i].fd].gen;
	for (i = 0; i < n; i++) {
		const struct ev_fired *f = &loop->fired[i];
		struct ev_fd *e = &loop->fds[f->fd];
		int events;

		if (e->fn == NULL || e->gen != f->gen)
			continue;
		events = f->events & e->mask & EV_MASK_RW;
		if (events == 0)
			continue;
		e->fn(loop, f->fd, events, e->arg);
		count++;
	}
	return count;
}

/* Two phases: first pop everything due into due[] (earliest first), then run
 * them. Timers armed by callbacks land in the heap and wait for the next
 * iteration; timers stopped or restarted by callbacks are pulled out of due[].
 * Each timer is made inactive before its callback, so it may re-arm itself. */
static int
dispatch_timers(struct ev_loop *loop)
{
	uint64_t now = loop->now_ms;
	size_t i;
	int count = 0;

	loop->due_len = 0;
	while (loop->heap_len > 0 && loop->heap[0]->when_ms <= now) {
		struct ev_timer *t = loop->heap[0];

		heap_remove(loop, 0);
		loop->due[loop->due_len] = t;
		t->heap_index = EV_TIMER_DUE | loop->due_len;
		loop->due_len++;
	}
	for (i = 0; i < loop->due_len; i++) {
		struct ev_timer *t = loop->due[i];

		if (t == NULL)
			continue;
		loop->due[i] = NULL;
		t->heap_index = SIZE_MAX;
		t->fn(loop, t, t->arg);
		count++;
	}
	loop->due_len = 0;
	return count;
}

/* io before timers (redis ae order): a timer that guards an fd (idle timeout)
 * sees the fd's latest activity first. Time is read before the poll to size
 * the wait and after it because the poll slept. */
int
ev_loop_run_once(struct ev_loop *loop, int max_wait_ms)
{
	int n, count;

	if (loop->dispatching) {
		errno = EBUSY;
		return -1;
	}
	ev_now_update(loop);
	n = loop->backend->poll(loop, poll_timeout(loop, max_wait_ms));
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	ev_now_update(loop);
	loop->dispatching = 1;
	count = dispatch_io(loop, n);
	count += dispatch_timers(loop);
	loop->dispatching = 0;
	return count;
}

/* The stop flag is cleared on the way out, not on entry, so a stop requested
 * between two runs is not lost. */
int
ev_loop_run(struct ev_loop *loop)
{
	int rc = 0;

	while (!loop->stop) {
		if (ev_loop_run_once(loop, -1) < 0) {
			rc = -1;
			break;
		}
	}
	loop->stop = 0;
	return rc;
}

void
ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = 1;
}
