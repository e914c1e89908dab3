/* Unit tests for src/hub.c without a Redis: single-server mode, and a Redis
 * that refuses connections (127.0.0.1 port 1): local fallback answers, the
 * reconnect backoff running on the loop, hub_cancel, and freeing a hub whose
 * connections and timers are live (run under valgrind / ASan). Host names are
 * left to the integration tests: getaddrinfo_a()'s resolver thread keeps
 * glibc-internal memory that valgrind reports at exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "ev.h"
#include "hub.h"
#include "log.h"

/* Linked with --wrap=ev_timer_start (Makefile): while fail_timers is set, arming a timer
 * that is not armed yet fails as it would without memory for the timer heap. */
static int fail_timers;

int __real_ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
int __wrap_ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);

int
__wrap_ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms)
{
	if (fail_timers && !ev_timer_is_active(t)) {
		errno = ENOMEM;
		return -1;
	}
	return __real_ev_timer_start(loop, t, after_ms);
}

struct world {
	struct ev_loop *loop;
	struct conf conf;
	struct hub *hub;
	int delivered, done;
	char last_event[32];
	char last_data[64];
	struct hub_result last;
	char last_reason[256];
};

static size_t
on_deliver(void *arg, const char *resource, size_t resource_len, const char *event,
    size_t event_len, const char *data, size_t len, const char *id, size_t id_len, int own)
{
	struct world *w = arg;

	(void)id;
	(void)id_len;
	assert_int_equal(own, 1);   /* only publishes of this process here */
	(void)resource;
	(void)resource_len;
	w->delivered++;
	snprintf(w->last_event, sizeof(w->last_event), "%.*s", (int)event_len, event ? event : "");
	snprintf(w->last_data, sizeof(w->last_data), "%.*s", (int)len, data);
	return 2;   /* two streams */
}

static void
on_done(void *arg, const struct hub_result *res)
{
	struct world *w = arg;

	w->done++;
	w->last = *res;
	snprintf(w->last_reason, sizeof(w->last_reason), "%s", res->reason);
	w->last.reason = w->last_reason;
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	log_set_level(LOG_LEVEL_ERROR);
	w->loop = ev_loop_new(NULL, 1024);
	conf_init(&w->conf);
	*state = w;
	return w->loop == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	hub_free(w->hub);
	ev_loop_free(w->loop);
	conf_release(&w->conf);
	free(w);
	return 0;
}

static void
single_server(void **state)
{
	struct world *w = *state;

	w->hub = hub_new(w->loop, &w->conf, on_deliver, w);
	assert_non_null(w->hub);
	assert_string_equal(hub_mode(w->hub), "local");
	assert_int_equal(hub_publish(w->hub, "doc-1", 5, "ev", 2, "{\"a\":1}", 7, on_done, w), 0);
	/* delivered and answered before hub_publish returned */
	assert_int_equal(w->delivered, 1);
	assert_int_equal(w->done, 1);
	assert_string_equal(w->last.mode, "local");
	assert_int_equal(w->last.delivered, 2);
	assert_int_equal(w->last.fallback, 0);
	assert_string_equal(w->last_event, "ev");
	assert_string_equal(w->last_data, "{\"a\":1}");
	assert_int_equal(hub_publish(w->hub, "doc-1", 5, NULL, 0, "x", 1, on_done, w), 0);
	assert_string_equal(w->last_event, "");
	assert_int_equal(hub_fallbacks(w->hub), 0);
	assert_int_equal(hub_reconnects(w->hub), 0);
	assert_int_equal(hub_probe_failures(w->hub), 0);
	hub_cancel(w->hub, w);   /* nothing pending: no effect */
}

static void
refused(void **state)
{
	struct world *w = *state;
	int i;

	w->conf.redis.host = strdup("127.0.0.1");
	w->conf.redis.port = 1;
	w->conf.redis.reconnect_min_ms = 5;
	w->conf.redis.reconnect_max_ms = 20;
	w->hub = hub_new(w->loop, &w->conf, on_deliver, w);
	assert_non_null(w->hub);
	assert_string_equal(hub_mode(w->hub), "local");
	/* let the attempts fail and retry a few times on the loop */
	for (i = 0; i < 200 && hub_reconnects(w->hub) < 6; i++)
		ev_loop_run_once(w->loop, 50);
	assert_true(hub_reconnects(w->hub) >= 6);
	assert_string_equal(hub_mode(w->hub), "local");

	assert_int_equal(hub_publish(w->hub, "doc-1", 5, NULL, 0, "hello", 5, on_done, w), 0);
	assert_int_equal(w->done, 1);
	assert_int_equal(w->delivered, 1);
	assert_string_equal(w->last.mode, "local");
	assert_int_equal(w->last.fallback, 1);
	assert_int_equal(w->last.delivered, 2);
	assert_non_null(strstr(w->last_reason, "Redis unavailable"));
	/* JSON-safe: no quote, backslash or control character */
	assert_null(strpbrk(w->last_reason, "\"\\\r\n\t"));
	assert_int_equal(hub_fallbacks(w->hub), 1);
	/* freed with a retry timer armed (teardown) */
}

/*
 * A reconnect timer that cannot be armed (no memory for the timer heap) does not leave
 * the connection down for good: the next publish arms it again.
 */
static void
retry_timer_lost(void **state)
{
	struct world *w = *state;
	unsigned long n;
	int i;

	w->conf.redis.host = strdup("127.0.0.1");
	w->conf.redis.port = 1;
	w->conf.redis.reconnect_min_ms = 5;
	w->conf.redis.reconnect_max_ms = 10;
	w->hub = hub_new(w->loop, &w->conf, on_deliver, w);
	assert_non_null(w->hub);
	for (i = 0; i < 200 && hub_reconnects(w->hub) < 2; i++)
		ev_loop_run_once(w->loop, 50);
	assert_true(hub_reconnects(w->hub) >= 2);
	/* every retry from now on finds no room for its timer */
	fail_timers = 1;
	for (i = 0; i < 20; i++)
		ev_loop_run_once(w->loop, 20);
	fail_timers = 0;
	n = hub_reconnects(w->hub);
	for (i = 0; i < 10; i++)
		ev_loop_run_once(w->loop, 20);
	assert_int_equal(hub_reconnects(w->hub), n);   /* stalled: nothing armed */
	/* a publish arms the lost timers again, and the attempts resume */
	assert_int_equal(hub_publish(w->hub, "doc-1", 5, NULL, 0, "x", 1, on_done, w), 0);
	assert_int_equal(w->done, 1);
	for (i = 0; i < 200 && hub_reconnects(w->hub) < n + 2; i++)
		ev_loop_run_once(w->loop, 50);
	assert_true(hub_reconnects(w->hub) >= n + 2);
}

/*
 * A loopback listener with a full accept queue: with backlog 0 the kernel keeps one
 * connection waiting and drops later SYNs, so a connect to it stays in progress (and
 * no packet leaves the machine). Returns the listener; *filler is the queued client.
 */
static int
full_listener(int *port, int *filler)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 0), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	*filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(*filler >= 0);
	(void)connect(*filler, (struct sockaddr *)&a, sizeof(a));   /* queued, never accepted */
	return fd;
}

static void
free_while_connecting(void **state)
{
	struct world *w = *state;
	int port, filler, lfd = full_listener(&port, &filler);

	/* The connect stays in progress; free at once (teardown). */
	w->conf.redis.host = strdup("127.0.0.1");
	w->conf.redis.port = port;
	w->conf.redis.connect_timeout_ms = 10000;
	w->hub = hub_new(w->loop, &w->conf, on_deliver, w);
	assert_non_null(w->hub);
	ev_loop_run_once(w->loop, 0);
	assert_string_equal(hub_mode(w->hub), "local");
	hub_free(w->hub);
	w->hub = NULL;
	close(filler);
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(single_server, setup, teardown),
		cmocka_unit_test_setup_teardown(refused, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_timer_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(free_while_connecting, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
