/* fcgi_request: decoding whole requests through libfcgi, one reused in-memory file. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fcgi_record.h"
#include "fcgi_request.h"

static size_t
rec(uint8_t *o, int type, uint16_t id, const void *c, size_t n)
{
	fcgi_header_encode(o, (enum fcgi_rec_type)type, id, (uint16_t)n, 0);
	memcpy(o + 8, c, n);
	return 8 + n;
}

/* BEGIN_REQUEST (role), PARAMS method + uri, the body in STDIN records, the end. */
static size_t
request(uint8_t *buf, int role, const char *method, const char *uri, const char *body,
    size_t body_len)
{
	uint8_t begin[8] = { 0, (uint8_t)role, 0, 0, 0, 0, 0, 0 };
	uint8_t params[256];
	size_t len = 0, pl = 0, ml = strlen(method), ul = strlen(uri);

	params[pl++] = 14;
	params[pl++] = (uint8_t)ml;
	memcpy(params + pl, "REQUEST_METHOD", 14);
	pl += 14;
	memcpy(params + pl, method, ml);
	pl += ml;
	params[pl++] = 11;
	params[pl++] = (uint8_t)ul;
	memcpy(params + pl, "REQUEST_URI", 11);
	pl += 11;
	memcpy(params + pl, uri, ul);
	pl += ul;
	len += rec(buf + len, FCGI_REC_BEGIN_REQUEST, 7, begin, 8);
	len += rec(buf + len, FCGI_REC_PARAMS, 7, params, pl);
	len += rec(buf + len, FCGI_REC_PARAMS, 7, "", 0);
	while (body_len > 0) {
		size_t n = body_len > 60000 ? 60000 : body_len;

		len += rec(buf + len, FCGI_REC_STDIN, 7, body, n);
		body += n;
		body_len -= n;
	}
	len += rec(buf + len, FCGI_REC_STDIN, 7, "", 0);
	return len;
}

static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	(void)state;
	return fcgi_lib_init();
}

static void
test_params_and_body(void **state)
{
	static uint8_t buf[4096];
	struct fcgi_request r;
	size_t len = request(buf, 1, "POST", "/publish/a", "{\"x\":1}", 7);

	(void)state;
	assert_int_equal(fcgi_request_parse(&r, buf, len), 0);
	assert_int_equal(r.id, 7);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.uri, "/publish/a");
	assert_string_equal(r.authorization, "");
	assert_int_equal(r.body_len, 7);
	assert_memory_equal(r.body, "{\"x\":1}", 7);
	fcgi_request_release(&r);
}

/* The file is reused: a short request after a long one sees only its own bytes. */
static void
test_short_after_long(void **state)
{
	static uint8_t buf[80000];
	static char big[70000];
	struct fcgi_request r;
	size_t len;

	(void)state;
	memset(big, 'b', sizeof(big));
	len = request(buf, 1, "POST", "/publish/long", big, sizeof(big));
	assert_int_equal(fcgi_request_parse(&r, buf, len), 0);
	assert_int_equal(r.body_len, sizeof(big));
	fcgi_request_release(&r);
	len = request(buf, 1, "GET", "/sse/s", NULL, 0);
	assert_int_equal(fcgi_request_parse(&r, buf, len), 0);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.uri, "/sse/s");
	assert_null(r.body);
	assert_int_equal(r.body_len, 0);
	fcgi_request_release(&r);
}

/* A request libfcgi refuses fails cleanly, and the next one decodes; no descriptor
 * is leaked or left behind over many requests. */
static void
test_refused_then_good_no_fd_leak(void **state)
{
	static uint8_t buf[4096];
	struct fcgi_request r;
	size_t len;
	int before;

	(void)state;
	len = request(buf, 1, "GET", "/warm", NULL, 0);
	assert_int_equal(fcgi_request_parse(&r, buf, len), 0);
	fcgi_request_release(&r);
	before = open_fds();
	/* a truncated BEGIN_REQUEST only: no params ever come */
	len = rec(buf, FCGI_REC_BEGIN_REQUEST, 1, "\0\1\0\0\0\0\0", 4);
	assert_int_equal(fcgi_request_parse(&r, buf, len), -1);
	assert_null(r.method);
	for (int i = 0; i < 200; i++) {
		len = request(buf, 1, "POST", "/publish/n", "1", 1);
		assert_int_equal(fcgi_request_parse(&r, buf, len), 0);
		assert_string_equal(r.uri, "/publish/n");
		assert_int_equal(r.body_len, 1);
		fcgi_request_release(&r);
	}
	assert_int_equal(open_fds(), before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_and_body),
		cmocka_unit_test(test_short_after_long),
		cmocka_unit_test(test_refused_then_good_no_fd_leak),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
