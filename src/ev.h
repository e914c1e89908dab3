/*
 * ev — a single-threaded readiness event loop: fd events and one-shot timers.
 *
 * Modelled on redis ae (fd table indexed by descriptor, timers beside fd
 * events) and lighttpd fdevent (opaque loop, backend chosen by name at run
 * time from a table sorted by goodness, so every backend is testable in one
 * build). Pure: no logging, no allocation on dispatch; operations return 0,
 * or -1 with errno set; constructors return NULL with errno set.
 *
 * Fd events
 *   - Level-triggered: an fd keeps firing while it is ready and has interest.
 *   - The callback gets the subset of its *current* interest that is ready.
 *     Hang-up and error conditions are reported as every interest the fd has
 *     (EV_READ for a reader, EV_WRITE for a writer), so read() sees EOF / the
 *     error and write() sees EPIPE; an fd with EV_NONE interest is never
 *     reported, not even on hang-up (the epoll backend removes it from the
 *     kernel set while its interest is EV_NONE, because epoll reports
 *     EPOLLHUP/EPOLLERR even for 0 events and that would spin the loop).
 *   - Callbacks may add, change or delete any fd, including others fired in
 *     the same batch: an event whose fd was deleted (or deleted and re-added)
 *     since the poll is dropped, and an event is masked by the fd's interest
 *     at the moment it is dispatched.
 *
 * Timers
 *   - struct ev_timer is embedded in the caller's object; the loop keeps a
 *     pointer to it while active (binary min-heap, O(log n) start/stop).
 *     Stop an active timer before freeing the object it is embedded in.
 *   - Each iteration fires the timers that were due when the timer pass
 *     began, earliest first (equal deadlines: unspecified order). A timer
 *     (re)started by a callback during the pass, even with 0 ms, waits for the
 *     next iteration: a timer re-arming itself with 0 ms cannot starve I/O.
 *   - Deadlines are ev_now_ms() + after_ms, where ev_now_ms() is cached once
 *     per iteration; call ev_now_update() after long work if it matters.
 *
 * Not thread-safe; one loop per thread. A callback must not free the loop or
 * call ev_loop_run_once()/ev_loop_run() on the loop that is dispatching it.
 */
#ifndef SSE_EV_H
#define SSE_EV_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;                                 /* opaque */

enum {
	EV_NONE = 0,
	EV_READ = 1,
	EV_WRITE = 2,
	/* Hint: EPOLLEXCLUSIVE (wake one of several processes sharing a listen
	 * socket). Only accepted by ev_io_add; ignored by select and silently
	 * dropped where the kernel refuses it. */
	EV_EXCLUSIVE = 4
};

/* events: EV_READ and/or EV_WRITE that fired, within the fd's interest. */
typedef void ev_io_fn(struct ev_loop *loop, int fd, int events, void *arg);

struct ev_timer;
typedef void ev_timer_fn(struct ev_loop *loop, struct ev_timer *t, void *arg);

/* Embedded by the caller; initialise with ev_timer_init(). Fields are read-only
 * for the caller: when_ms is the deadline of an active timer, heap_index is the
 * loop's bookkeeping (SIZE_MAX = inactive). */
struct ev_timer {
	uint64_t when_ms;
	size_t heap_index;
	ev_timer_fn *fn;
	void *arg;
};

/* Loop. backend: "epoll", "select", or NULL for the best one compiled in.
 * Descriptors 0..setsize-1 may be registered; select clamps setsize to
 * FD_SETSIZE. Returns NULL with errno EINVAL (unknown backend, setsize <= 0),
 * ENOMEM, or the backend's error (e.g. EMFILE from epoll_create1). */
struct ev_loop *ev_loop_new(const char *backend, int setsize);
/* Accepts NULL. Does not close registered fds and does not touch timers that
 * are still active (their objects may already be gone). */
void ev_loop_free(struct ev_loop *loop);
/* Static string, lives forever. */
const char *ev_loop_backend(const struct ev_loop *loop);
/* Effective (clamped) size: valid fds are 0..ev_loop_setsize()-1. */
int ev_loop_setsize(const struct ev_loop *loop);
/* NULL-terminated list of backend names compiled in, best first. Static. */
const char *const *ev_backends(void);

/* Register fd with interest events (EV_READ|EV_WRITE, may be EV_NONE, plus
 * optionally EV_EXCLUSIVE). fn must not be NULL; arg is borrowed and passed
 * back. Errors: EBADF fd < 0, ERANGE fd >= setsize, EEXIST already added,
 * EINVAL bad events or NULL fn, or the kernel's error (EPERM for a regular
 * file under epoll). */
int ev_io_add(struct ev_loop *loop, int fd, int events, ev_io_fn *fn, void *arg);
/* Change interest (EV_READ|EV_WRITE or EV_NONE), keeping callback and arg.
 * A no-op without a system call if unchanged. Errors: EBADF/ERANGE, ENOENT
 * not added, EINVAL bad events (EV_EXCLUSIVE included), or the kernel's
 * error (interest then unchanged). */
int ev_io_set(struct ev_loop *loop, int fd, int events);
/* Unregister. Call BEFORE close(fd). Safe inside callbacks: a pending event
 * for fd in the current batch is not delivered. Kernel errors are ignored
 * (the slot is always released); fails only with EBADF/ERANGE/ENOENT. */
int ev_io_del(struct ev_loop *loop, int fd);
/* Current interest (EV_READ|EV_WRITE bits), -1 if fd is not registered. */
/* Hands fd's registration to another callback, interest unchanged; no syscall. Events
 * already fired in the running batch are not delivered to the new callback. -1 ENOENT
 * when fd is not registered. */
int ev_io_rebind(struct ev_loop *loop, int fd, ev_io_fn *fn, void *arg);
int ev_io_events(const struct ev_loop *loop, int fd);

/* Timers. ev_timer_init() makes t inactive; call it once before first use. */
void ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg);
/* (Re)arm one-shot after_ms from ev_now_ms(); restarting an active timer moves
 * it. Returns 0, or -1 ENOMEM when the heap could not grow: the timer is then
 * inactive. Restarting a timer that is waiting in the heap re-keys it in
 * place and cannot fail; only a start of an inactive timer (or of one due in
 * the pass now running) may. Callers that ignore the result can test
 * ev_timer_is_active(). */
int ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
/* Idempotent; t must be inactive or active on this loop. */
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
int ev_timer_is_active(const struct ev_timer *t);

/* CLOCK_MONOTONIC in ms, cached: refreshed once per iteration after the poll,
 * or by ev_now_update(). */
uint64_t ev_now_ms(struct ev_loop *loop);
void ev_now_update(struct ev_loop *loop);

/* One iteration: poll for at most max_wait_ms (< 0: until the next timer, or
 * forever without timers; the wait is also cut short by the next timer), then
 * dispatch fd events, then the timers due. Returns the number of callbacks
 * run, 0 if interrupted by a signal (EINTR), -1 on error (EBUSY when called
 * from one of this loop's callbacks, or the poll's errno, e.g. EBADF when a
 * registered fd was closed without ev_io_del). */
int ev_loop_run_once(struct ev_loop *loop, int max_wait_ms);
/* Iterate until ev_loop_stop(); returns 0, or -1 on a poll error. A stop
 * requested while not running makes the next run return at once. */
int ev_loop_run(struct ev_loop *loop);
/* Ask ev_loop_run() to return after the current iteration. */
void ev_loop_stop(struct ev_loop *loop);

#endif
