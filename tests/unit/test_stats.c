/* stats: JSON and Prometheus text for /stats, without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

static const struct stats_view view = {
	.pid = 4242, .mode = "redis", .loop = "epoll", .streams = 3, .resources = 2,
	.ceiling = 65504, .connections = 4, .in = 10, .out = 30, .dropped = 1, .refused = 2,
	.reconnects = 5, .fallbacks = 6, .probe_failures = 7, .uptime = 120,
};

static void
test_json(void **state)
{
	char out[2048];
	size_t n = stats_format_json(out, sizeof(out), &view);

	(void)state;
	assert_true(n < sizeof(out));
	assert_int_equal(strlen(out), n);
	assert_non_null(strstr(out, "\"pid\":4242,"));
	assert_non_null(strstr(out, "\"mode\":\"redis\""));
	assert_non_null(strstr(out, "\"streams\":3,"));
	assert_non_null(strstr(out, "\"messages_out\":30,"));
	assert_non_null(strstr(out, "\"dropped_slow\":1,"));
	assert_non_null(strstr(out, "\"probe_failures\":7,"));
	assert_int_equal(out[0], '{');
	assert_int_equal(out[n - 1], '}');
}

/* Every sample line carries the pid label; every TYPE names a series that follows. */
static void
test_prometheus(void **state)
{
	char out[4096], *line, *save = NULL;
	size_t n = stats_format_prometheus(out, sizeof(out), &view);
	int samples = 0, types = 0;

	(void)state;
	assert_true(n < sizeof(out));
	assert_non_null(strstr(out, "sse_fcgi_redis_up{pid=\"4242\"} 1\n"));
	assert_non_null(strstr(out, "sse_fcgi_messages_out_total{pid=\"4242\"} 30\n"));
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# TYPE ", 7) == 0)
			types++;
		if (line[0] == '#')
			continue;
		samples++;
		assert_non_null(strstr(line, "{pid=\"4242\""));
	}
	assert_int_equal(samples, types);
	assert_true(samples >= 10);
}

/* Like snprintf: a short buffer gets a terminated prefix and the full length back. */
static void
test_truncation(void **state)
{
	char small[16];
	char big[4096];
	size_t need = stats_format_prometheus(big, sizeof(big), &view);

	(void)state;
	assert_int_equal(stats_format_prometheus(small, sizeof(small), &view), need);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_truncation),
	};

	return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
