/* Unit tests for src/log.c: level names, the exact line format, filtering,
 * truncation, sanitising, errno, reopening, stderr, and fatal(). Lines go to
 * files in a mkdtemp directory that is removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static char dir[64];
static char path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_log.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/out.log", dir);
	return 0;
}

static int
teardown(void **state)
{
	char p[160];

	(void)state;
	log_close();
	log_set_level(LOG_LEVEL_DEFAULT);
	unlink(path);
	snprintf(p, sizeof(p), "%s/rotated.log", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/stderr.log", dir);
	unlink(p);
	return rmdir(dir);
}

/* Whole file as a string (caller frees). */
static char *
slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void
test_level_parse(void **state)
{
	static const char *names[] = { "error", "warning", "notice", "info", "debug" };
	enum log_level l;
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		l = (enum log_level)99;
		assert_int_equal(log_level_parse(names[i], &l), 0);
		assert_int_equal(l, i);
		assert_string_equal(log_level_name(l), names[i]);
	}
	l = LOG_LEVEL_NOTICE;
	assert_int_equal(log_level_parse("Info", &l), -1);
	assert_int_equal(log_level_parse("warn", &l), -1);
	assert_int_equal(log_level_parse("", &l), -1);
	assert_int_equal(log_level_parse(NULL, &l), -1);
	assert_int_equal(l, LOG_LEVEL_NOTICE);
	assert_string_equal(log_level_name((enum log_level)42), "unknown");
	assert_int_equal(LOG_LEVEL_DEFAULT, LOG_LEVEL_INFO);
}

static void
test_line_format(void **state)
{
	regex_t re;
	regmatch_t m[2];
	char *s, want[64];

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_notice("hello %s %d", "world", 42);
	log_error("boom");
	s = slurp(path);
	assert_int_equal(count_lines(s), 2);
	assert_int_equal(regcomp(&re,
	    "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "
	    "sse-fcgi\\[([0-9]+)\\] notice: hello world 42\n"
	    "[0-9T:.Z-]{24} sse-fcgi\\[[0-9]+\\] error: boom\n$", REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, s, 2, m, 0), 0);
	snprintf(want, sizeof(want), "%ld", (long)getpid());
	assert_int_equal((size_t)(m[1].rm_eo - m[1].rm_so), strlen(want));
	assert_memory_equal(s + m[1].rm_so, want, strlen(want));
	regfree(&re);
	free(s);
}

static void
test_ident(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(log_open(path, 0, "other"), 0);
	log_warn("w");
	assert_int_equal(log_open(path, 0, NULL), 0);
	log_warn("w");
	s = slurp(path);
	assert_non_null(strstr(s, " other["));
	assert_non_null(strstr(s, "] warning: w\n"));
	assert_non_null(strstr(s, " sse-fcgi["));
	free(s);
}

static void
test_filtering(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(log_get_level(), LOG_LEVEL_INFO);
	assert_true(log_is_enabled(LOG_LEVEL_ERROR));
	assert_true(log_is_enabled(LOG_LEVEL_INFO));
	assert_false(log_is_enabled(LOG_LEVEL_DEBUG));
	log_debug("hidden %d", 1);
	log_info("shown");
	log_set_level(LOG_LEVEL_DEBUG);
	assert_true(log_is_enabled(LOG_LEVEL_DEBUG));
	log_debug("now shown");
	log_set_level(LOG_LEVEL_ERROR);
	log_warn("hidden too");
	log_notice("hidden too");
	log_error("error always");
	s = slurp(path);
	assert_int_equal(count_lines(s), 3);
	assert_null(strstr(s, "hidden"));
	assert_non_null(strstr(s, "] info: shown\n"));
	assert_non_null(strstr(s, "] debug: now shown\n"));
	assert_non_null(strstr(s, "] error: error always\n"));
	free(s);
}

static void
test_truncation(void **state)
{
	char *big, *s;
	size_t n = 3 * LOG_LINE_MAX;

	(void)state;
	big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_info("%s", big);
	log_info("after");
	s = slurp(path);
	assert_int_equal(count_lines(s), 2);
	assert_ptr_equal(strchr(s, '\n'), s + LOG_LINE_MAX - 1);
	assert_memory_equal(s + LOG_LINE_MAX - 5, "x...\n", 5);
	assert_non_null(strstr(s + LOG_LINE_MAX, "] info: after\n"));
	free(s);

	/* A message that exactly fits is not cut. */
	unlink(path);
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_info("x");
	s = slurp(path);
	n = strlen(s) - 2;                   /* prefix length */
	free(s);
	unlink(path);
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	big[LOG_LINE_MAX - 1 - n] = '\0';
	log_info("%s", big);
	s = slurp(path);
	assert_int_equal(strlen(s), LOG_LINE_MAX);
	assert_memory_equal(s + LOG_LINE_MAX - 3, "xx\n", 3);
	free(s);
	free(big);
}

static void
test_one_line_per_call(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_warn("redis said: ERR bad\r\nforged 2026-01-01T00:00:00.000Z x[1] error: y\tz\x01\x7f");
	s = slurp(path);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, "redis said: ERR bad  forged "));
	assert_non_null(strstr(s, "y z??\n"));
	free(s);
}

static void
test_errno_kept(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	errno = ENOENT;
	log_error("open failed: %m");
	assert_int_equal(errno, ENOENT);
	log_debug("suppressed");
	assert_int_equal(errno, ENOENT);
	s = slurp(path);
	assert_non_null(strstr(s, "open failed: No such file or directory\n"));
	free(s);
}

static void
test_open_failure_keeps_destination(void **state)
{
	char bad[160], *s;

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	snprintf(bad, sizeof(bad), "%s/no/such/dir.log", dir);
	errno = 0;
	assert_int_equal(log_open(bad, 0, "sse-fcgi"), -1);
	assert_int_equal(errno, ENOENT);
	log_notice("still here");
	s = slurp(path);
	assert_non_null(strstr(s, "] notice: still here\n"));
	free(s);
}

static void
test_reopen_after_rotate(void **state)
{
	char rotated[160], *s;
	struct stat st;
	mode_t old = umask(0);

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	log_notice("before");
	snprintf(rotated, sizeof(rotated), "%s/rotated.log", dir);
	assert_int_equal(rename(path, rotated), 0);
	log_notice("still old");
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_notice("after");
	s = slurp(rotated);
	assert_int_equal(count_lines(s), 2);
	assert_null(strstr(s, "after"));
	free(s);
	s = slurp(path);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, "] notice: after\n"));
	free(s);

	/* Appends, never truncates. */
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_notice("again");
	s = slurp(path);
	assert_int_equal(count_lines(s), 2);
	free(s);
}

static void
test_stderr_default_and_close(void **state)
{
	char p[160], *s;
	int saved, fd;

	(void)state;
	snprintf(p, sizeof(p), "%s/stderr.log", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);

	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_notice("to file");
	log_close();
	log_notice("to stderr");
	log_close();                        /* idempotent, stderr stays open */
	log_notice("still stderr");
	assert_int_equal(log_open(NULL, 0, "sse-fcgi"), 0);
	log_notice("stderr by NULL path");

	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	s = slurp(p);
	assert_int_equal(count_lines(s), 3);
	assert_null(strstr(s, "to file"));
	free(s);
	s = slurp(path);
	assert_int_equal(count_lines(s), 1);
	free(s);
}

static void
test_syslog_open_close(void **state)
{
	(void)state;
	/* Nothing is logged: only that switching to and from syslog is clean. */
	assert_int_equal(log_open(NULL, 1, "sse-fcgi-test"), 0);
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	assert_int_equal(log_open(NULL, 1, NULL), 0);
	log_close();
}

static void
test_fatal(void **state)
{
	pid_t pid;
	int status;
	char *s;

	(void)state;
	assert_int_equal(log_open(path, 0, "sse-fcgi"), 0);
	log_set_level(LOG_LEVEL_ERROR);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fatal("cannot start: %s", "reason");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	s = slurp(path);
	assert_non_null(strstr(s, "] error: cannot start: reason\n"));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filtering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_line_per_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_failure_keeps_destination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_after_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_default_and_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syslog_open_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fatal, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
