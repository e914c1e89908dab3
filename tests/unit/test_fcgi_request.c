/*
 * fcgi_request: libfcgi as the decoder of a complete request. close() and
 * memfd_create() are wrapped here to count what happens to the in-memory file: when
 * libfcgi refuses a request it closes that file itself, and the descriptor number must
 * not be closed a second time (it may belong to another thread by then).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fcgi_request.h"
#include "fcgi_shapes.h"

int memfd_create(const char *name, unsigned int flags);
int close(int fd);

static int memfd = -1, memfd_closes;

int
memfd_create(const char *name, unsigned int flags)
{
	memfd = (int)syscall(SYS_memfd_create, name, flags);
	memfd_closes = 0;
	return memfd;
}

int
close(int fd)
{
	if (fd != -1 && fd == memfd)
		memfd_closes++;
	return (int)syscall(SYS_close, fd);
}

static int
setup(void **state)
{
	(void)state;
	return fcgi_lib_init();
}

/* The lowest free descriptor: the same before and after, or a descriptor leaked. */
static int
lowest_free_fd(void)
{
	int fd = dup(0);

	syscall(SYS_close, fd);
	return fd;
}

static void
test_decodes(void **state)
{
	uint8_t buf[1024];
	struct fcgi_request req;
	size_t len = 0;
	int fd0 = lowest_free_fd();

	(void)state;
	len += shape_rec(buf + len, FCGI_REC_BEGIN_REQUEST, 7, shape_begin_ok, 8, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 7, SHAPE_PARAMS, sizeof(SHAPE_PARAMS) - 1, 3);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 7, "", 0, 0);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 7, "{\"a\":1}", 7, 1);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 7, "", 0, 0);
	assert_int_equal(fcgi_request_parse(&req, buf, len), 0);
	assert_int_equal(memfd_closes, 1);
	assert_int_equal(req.id, 7);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.uri, "/sse/doc-123");
	assert_string_equal(req.authorization, "");
	assert_int_equal(req.body_len, 7);
	assert_memory_equal(req.body, "{\"a\":1}", 7);
	fcgi_request_release(&req);
	assert_int_equal(lowest_free_fd(), fd0);
}

/*
 * Each request libfcgi refuses (BEGIN_REQUEST body not 8 bytes, an unknown role, params
 * cut short): -1 with EPROTO, the file closed exactly once, nothing leaked. Before, the
 * fail path closed the number libfcgi had already closed.
 */
static void
test_refused_closes_once(void **state)
{
	uint8_t buf[1024];
	struct fcgi_request req;
	int fd0 = lowest_free_fd(), n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(shapes_bad) / sizeof(shapes_bad[0]); i++) {
		const struct shape *s = &shapes_bad[i];
		size_t len;

		if (s->libfcgi != -1)
			continue;
		len = shape_bytes(buf, s);
		memfd = -1;
		errno = 0;
		if (fcgi_request_parse(&req, buf, len) != -1)
			fail_msg("%s: libfcgi took it", s->name);
		assert_int_equal(errno, EPROTO);
		if (memfd_closes != 1)
			fail_msg("%s: the in-memory file was closed %d times", s->name, memfd_closes);
		assert_null(req.method);
		assert_int_equal(lowest_free_fd(), fd0);
		n++;
	}
	assert_true(n >= 7);
}

/*
 * Found by fuzz_fcgi_libfcgi: Debian 12's libfcgi (2.4.2-2+deb12u1) still aborts the
 * whole process on PARAMS lengths that add up past INT_MAX (its Malloc asserts). This is
 * why the scanner checks every length before libfcgi may read one (fcgi_record tests).
 * Run in a child, so the abort is observed rather than suffered.
 */
static void
test_libfcgi_dies_on_huge_lengths(void **state)
{
	uint8_t buf[1024];
	size_t len = 0;
	int status;
	pid_t pid;

	(void)state;
	for (size_t i = 0; i < sizeof(shapes_bad) / sizeof(shapes_bad[0]); i++)
		if (shapes_bad[i].libfcgi == 3)
			len = shape_bytes(buf, &shapes_bad[i]);
	assert_true(len > 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct fcgi_request req;

		/* libfcgi's assertion message is expected: keep it out of the test log */
		int null = open("/dev/null", O_WRONLY);

		if (null != -1)
			dup2(null, 2);
		_exit(fcgi_request_parse(&req, buf, len) == -1 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		assert_int_equal(WEXITSTATUS(status), 0);   /* a fixed libfcgi refuses it */
	else
		assert_true(WIFSIGNALED(status));
}

/*
 * Found by fuzz_fcgi_libfcgi: libfcgi keeps skipping after an empty record of another
 * request id and drops the content of its own next record, and answers a second
 * BEGIN_REQUEST by writing into the very file it reads. The scanner cuts records of
 * other ids and refuses a second BEGIN_REQUEST, so what it hands over decodes whole.
 */
static void
test_scanned_request_decodes_whole(void **state)
{
	uint8_t buf[1024];
	struct fcgi_head_scan s;
	struct fcgi_request req;
	size_t len = 0;

	(void)state;
	len += shape_rec(buf + len, FCGI_REC_BEGIN_REQUEST, 1, shape_begin_ok, 8, 0);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 9, "", 0, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, SHAPE_PARAMS, sizeof(SHAPE_PARAMS) - 1, 0);
	len += shape_rec(buf + len, FCGI_REC_PARAMS, 1, "", 0, 0);
	len += shape_rec(buf + len, FCGI_REC_STDIN, 1, "", 0, 0);
	/* (handed over as it came, Debian 12's libfcgi decodes no params at all) */
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), 0);
	assert_int_equal(fcgi_request_parse(&req, buf, len), 0);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.uri, "/sse/doc-123");
	fcgi_request_release(&req);

	/* a second BEGIN_REQUEST, of any id, is refused before libfcgi could answer it */
	len = shape_rec(buf, FCGI_REC_BEGIN_REQUEST, 1, shape_begin_ok, 8, 0);
	len += shape_rec(buf + len, FCGI_REC_BEGIN_REQUEST, 2, shape_begin_ok, 8, 0);
	fcgi_head_scan_init(&s);
	assert_int_equal(fcgi_head_scan(&s, buf, &len, 100), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decodes),
		cmocka_unit_test(test_refused_closes_once),
		cmocka_unit_test(test_libfcgi_dies_on_huge_lengths),
		cmocka_unit_test(test_scanned_request_decodes_whole),
	};

	return cmocka_run_group_tests_name("fcgi_request", tests, setup, NULL);
}
